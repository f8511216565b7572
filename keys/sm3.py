"""SM3 hash (GB/T 32905) and HMAC-SM3, from `cryptography` (OpenSSL inside)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, hmac

DIGEST_SIZE = 32


def sm3_state(*parts: bytes) -> hashes.Hash:
    """An SM3 state fed ``parts``: for streamed input, and to copy() a shared prefix."""
    h = hashes.Hash(hashes.SM3())
    for p in parts:
        h.update(p)
    return h


def sm3(*parts: bytes) -> bytes:
    """SM3 over the concatenation of ``parts`` (no copy of the joined bytes)."""
    return sm3_state(*parts).finalize()


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SM3())
    h.update(data)
    return h.finalize()


def hmac_sm3_verify(key: bytes, data: bytes, tag: bytes) -> bool:
    """Constant-time comparison of an HMAC-SM3 tag."""
    h = hmac.HMAC(key, hashes.SM3())
    h.update(data)
    try:
        h.verify(tag)
    except Exception:
        return False
    return True
