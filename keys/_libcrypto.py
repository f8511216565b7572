"""ctypes binding to the system OpenSSL 3 libcrypto, for SM2 on a precomputed digest.

Only the handful of EVP calls needed: load keys from DER, sign / verify a 32-byte SM2
digest ``e`` (OpenSSL's SM2 provider treats the input of EVP_PKEY_sign/verify as ``e``),
and derive the public point of a private scalar. Every pointer we get is freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

_c_void_p = ctypes.c_void_p
_c_char_p = ctypes.c_char_p
_size_t = ctypes.c_size_t


def _load() -> ctypes.CDLL:
    for name in ("libcrypto.so.3", ctypes.util.find_library("crypto")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if hasattr(lib, "EVP_PKEY_CTX_new_from_pkey"):  # OpenSSL >= 3.0
            return lib
    raise ImportError("OpenSSL 3 libcrypto (libssl3) not found")


_L = _load()


def _sig(fn, restype, *argtypes):
    f = getattr(_L, fn)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_d2i_priv = _sig("d2i_AutoPrivateKey", _c_void_p, _c_void_p, ctypes.POINTER(_c_char_p), ctypes.c_long)
_d2i_pub = _sig("d2i_PUBKEY", _c_void_p, _c_void_p, ctypes.POINTER(_c_char_p), ctypes.c_long)
_i2d_pub = _sig("i2d_PUBKEY", ctypes.c_int, _c_void_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)))
_pkey_free = _sig("EVP_PKEY_free", None, _c_void_p)
_ctx_new = _sig("EVP_PKEY_CTX_new_from_pkey", _c_void_p, _c_void_p, _c_void_p, _c_char_p)
_ctx_free = _sig("EVP_PKEY_CTX_free", None, _c_void_p)
_sign_init = _sig("EVP_PKEY_sign_init", ctypes.c_int, _c_void_p)
_sign = _sig("EVP_PKEY_sign", ctypes.c_int, _c_void_p, _c_char_p, ctypes.POINTER(_size_t), _c_char_p, _size_t)
_verify_init = _sig("EVP_PKEY_verify_init", ctypes.c_int, _c_void_p)
_verify = _sig("EVP_PKEY_verify", ctypes.c_int, _c_void_p, _c_char_p, _size_t, _c_char_p, _size_t)
_err_clear = _sig("ERR_clear_error", None)
_crypto_free = _sig("CRYPTO_free", None, _c_void_p, _c_char_p, ctypes.c_int)

_tls = threading.local()


class LibcryptoError(Exception):
    pass


class _PKey:
    """Owns one EVP_PKEY*; freed with the object."""

    __slots__ = ("ptr",)

    def __init__(self, ptr: int):
        self.ptr = ptr

    def __del__(self):
        if self.ptr:
            _pkey_free(self.ptr)
            self.ptr = None


def load_private(der: bytes) -> _PKey:
    p = _c_char_p(der)
    ptr = _d2i_priv(None, ctypes.byref(p), len(der))
    if not ptr:
        _err_clear()
        raise LibcryptoError("libcrypto rejected the SM2 private key")
    return _PKey(ptr)


def load_public(spki_der: bytes) -> _PKey:
    p = _c_char_p(spki_der)
    ptr = _d2i_pub(None, ctypes.byref(p), len(spki_der))
    if not ptr:
        _err_clear()
        raise LibcryptoError("libcrypto rejected the SM2 public key (not on the curve?)")
    return _PKey(ptr)


def public_spki(key: _PKey) -> bytes:
    out = ctypes.POINTER(ctypes.c_ubyte)()
    n = _i2d_pub(key.ptr, ctypes.byref(out))
    if n <= 0:
        _err_clear()
        raise LibcryptoError("i2d_PUBKEY failed")
    try:
        return ctypes.string_at(out, n)
    finally:
        _crypto_free(ctypes.cast(out, _c_void_p), None, 0)


def sign_digest(key: _PKey, e: bytes) -> bytes:
    ctx = _ctx_new(None, key.ptr, None)
    if not ctx:
        raise LibcryptoError("EVP_PKEY_CTX_new failed")
    try:
        buf = getattr(_tls, "buf", None)
        if buf is None:
            buf = _tls.buf = ctypes.create_string_buffer(80)
        n = _size_t(80)
        if _sign_init(ctx) != 1 or _sign(ctx, buf, ctypes.byref(n), e, len(e)) != 1:
            _err_clear()
            raise LibcryptoError("SM2 sign failed")
        return buf.raw[: n.value]
    finally:
        _ctx_free(ctx)


def verify_digest(key: _PKey, e: bytes, der_sig: bytes) -> bool:
    ctx = _ctx_new(None, key.ptr, None)
    if not ctx:
        raise LibcryptoError("EVP_PKEY_CTX_new failed")
    try:
        if _verify_init(ctx) != 1:
            _err_clear()
            raise LibcryptoError("EVP_PKEY_verify_init failed")
        ok = _verify(ctx, der_sig, len(der_sig), e, len(e)) == 1
        if not ok:
            _err_clear()
        return ok
    finally:
        _ctx_free(ctx)
