"""Cryptographic leaf of ecert: SM2/SM3/SM4 primitives, SM2 X.509, the keystore.

Nothing here imports from the other ecert packages (ARCHITECTURE.md: keys/ stays a leaf).
"""
