"""SM4-GCM authenticated encryption (GB/T 32907 block cipher, GCM mode), from `cryptography`.

Used to keep private keys encrypted at rest. The blob is ``nonce(12) || ciphertext || tag(16)``;
``aad`` binds the ciphertext to its context (e.g. the key id) so rows cannot be swapped.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16


class DecryptionError(Exception):
    """The key is wrong or the ciphertext/aad was altered."""


def encrypt(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    if len(key) != KEY_SIZE:
        raise ValueError("SM4 key must be 16 bytes")
    nonce = os.urandom(NONCE_SIZE)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    ct = enc.update(plaintext) + enc.finalize()
    return nonce + ct + enc.tag


def decrypt(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    if len(key) != KEY_SIZE:
        raise ValueError("SM4 key must be 16 bytes")
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError("ciphertext too short")
    nonce, ct, tag = blob[:NONCE_SIZE], blob[NONCE_SIZE:-TAG_SIZE], blob[-TAG_SIZE:]
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    dec.authenticate_additional_data(aad)
    try:
        return dec.update(ct) + dec.finalize()
    except InvalidTag as exc:
        raise DecryptionError("SM4-GCM authentication failed (wrong key or altered data)") from exc
