"""Work the verifier does once per issuer instead of once per document.

An issuer's seal is the same bytes in every licence it seals: the Seal.esl file, the
seal inside TBS_Sign, the seal maker's signature over it. Each helper here is a pure
function of its exact input bytes (a cache hit compares them in full), bounded in
entries and in the size of what it keeps, so a verdict can never differ from the
uncached computation; only repeated inputs get cheaper. Worst case (hostile uploads
filling every cache with 128 KiB inputs) is ~25 MiB.
"""

from __future__ import annotations

import functools
import threading

from cryptography.hazmat.primitives import hashes

from keys import sm2
from keys.sm3 import sm3, sm3_state
from keys.x509 import Certificate

MAX_KEPT_BYTES = 128 * 1024  # real seals are < 100 KiB; larger inputs are computed every time, never kept
MIN_PREFIX_BYTES = 4096  # below this, re-hashing costs less than the cache lookup


@functools.lru_cache(maxsize=64)
def _verify(cert: Certificate, data: bytes, sig: bytes) -> bool:
    return cert.public_key.verify(data, sig)


def sm2_verify(cert: Certificate, data: bytes, sig: bytes) -> bool:
    """`cert.public_key.verify(data, sig)`, remembered (the seal maker's signature over a seal)."""
    return _verify(cert, data, sig) if len(data) <= MAX_KEPT_BYTES else cert.public_key.verify(data, sig)


@functools.lru_cache(maxsize=64)
def _seal_sm3(data: bytes) -> bytes:
    return sm3(data)


def seal_file_sm3(data: bytes) -> bytes:
    """SM3 of a Seal.esl entry, remembered."""
    return _seal_sm3(data) if len(data) <= MAX_KEPT_BYTES else sm3(data)


class _PrefixHashes:
    """SM3 states after Z_A || prefix, for messages that start with the same long prefix."""

    MAX_ENTRIES = 64

    def __init__(self) -> None:
        self._states: dict[tuple[bytes, bytes], hashes.Hash] = {}
        self._lock = threading.Lock()

    def digest(self, z: bytes, prefix: bytes, rest: bytes) -> bytes:
        key = (z, prefix)
        state = self._states.get(key)
        if state is None:
            state = sm3_state(z, prefix)
            with self._lock:
                while len(self._states) >= self.MAX_ENTRIES:
                    del self._states[next(iter(self._states))]
                self._states[key] = state
        with self._lock:  # copy() must not run while another thread copies the same state
            h = state.copy()
        h.update(rest)
        return h.finalize()


_PREFIXES = _PrefixHashes()


def sm2_verify_with_prefix(key: sm2.PublicKey, message: bytes, prefix_len: int, sig: bytes) -> bool:
    """`key.verify(message, sig)` for a message whose first `prefix_len` bytes repeat across
    documents (TBS_Sign up to the end of the embedded seal): e = SM3(Z_A || M) resumes from
    the remembered state after Z_A || M[:prefix_len]. Any split gives the same e."""
    if not MIN_PREFIX_BYTES <= prefix_len <= min(len(message), MAX_KEPT_BYTES):
        return key.verify(message, sig)
    e = _PREFIXES.digest(key.z(), message[:prefix_len], message[prefix_len:])
    return key.verify_digest(e, sig)
