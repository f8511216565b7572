"""Generators of hostile input, shared by the catalogue (tests/test_hostile_catalogue.py), the
container tests (tests/test_hostile_packages.py) and the fuzz seeds (tests/fuzz/).

Nothing here is a committed binary: every hostile file is built at test time, the signed
ones from real licences sealed with the development keys (`lab.Lab`).
"""
