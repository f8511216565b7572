"""SM2 digital signatures (GB/T 32918.2) behind one seam.

Everything that signs or verifies in ecert goes through this module. It computes
Z_A and e = SM3(Z_A || M) itself (SM3 from `cryptography`, Z_A cached per key and
ID) and hands only the 32-byte e to a compiled backend, chosen per operation by
measurement on the target machine (README, `make bench`):

* sign   -- GmSSL 3 (``gmssl_pyx`` wheel), digest API: fastest signer measured;
* verify -- OpenSSL 3 libcrypto (system ``libssl3``) via ctypes: fastest verifier.

Either backend can do both; ``set_backends`` swaps them (tests run every backend
against the standard vectors). Signatures are emitted as DER SEQUENCE{r, s};
DER and raw 64-byte r||s are accepted. Public keys travel as uncompressed points.
"""

from __future__ import annotations

import base64
import hmac as _hmac
import os
import threading
from dataclasses import dataclass
from typing import Protocol

import gmssl_pyx

from . import _libcrypto
from .oids import EC_PUBLIC_KEY, SM2_CURVE
from .sm3 import sm3

DEFAULT_ID = b"1234567812345678"  # GM/T 0009 default signer ID (ENTL = 128 bits)

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

_CURVE_BYTES = b"".join(v.to_bytes(32, "big") for v in (A, B, GX, GY))

# DER prefixes: SubjectPublicKeyInfo{ AlgorithmIdentifier{ecPublicKey, sm2p256v1}, BIT STRING 04||X||Y }
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")
# SEC1 ECPrivateKey{1, d, [0] sm2p256v1} without the public key (libcrypto derives it).
_SEC1_PREFIX = bytes.fromhex("3031020101" "0420")
_SEC1_CURVE = bytes.fromhex("a00a06082a811ccf5501822d")


class SM2Error(ValueError):
    """Malformed SM2 key or signature (the message says which)."""


# --------------------------------------------------------------------------- encoding

def _der_int(v: int) -> bytes:
    b = v.to_bytes((v.bit_length() + 8) // 8 or 1, "big")  # leading 0x00 when top bit set
    return b"\x02" + bytes([len(b)]) + b


def encode_signature(r: int, s: int) -> bytes:
    """DER SEQUENCE{INTEGER r, INTEGER s} (GB/T 35276 / X.509 form)."""
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def _read_der_int(buf: bytes, i: int) -> tuple[int, int]:
    if i + 2 > len(buf) or buf[i] != 0x02:
        raise SM2Error("signature: INTEGER expected")
    n = buf[i + 1]
    if n == 0 or n > 33 or i + 2 + n > len(buf):
        raise SM2Error("signature: bad INTEGER length")
    raw = buf[i + 2 : i + 2 + n]
    if raw[0] & 0x80:
        raise SM2Error("signature: negative INTEGER")
    if n > 1 and raw[0] == 0 and not raw[1] & 0x80:
        raise SM2Error("signature: non-minimal INTEGER")
    return int.from_bytes(raw, "big"), i + 2 + n


def decode_signature(sig: bytes) -> tuple[int, int]:
    """(r, s) from strict DER or raw 64-byte r||s; range-checked to [1, n-1]."""
    if not isinstance(sig, (bytes, bytearray)):
        raise SM2Error("signature must be bytes")
    sig = bytes(sig)
    if len(sig) == 64:
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    else:
        if len(sig) < 8 or sig[0] != 0x30 or sig[1] != len(sig) - 2:
            raise SM2Error(f"signature is neither DER SEQUENCE{{r,s}} nor raw 64 bytes ({len(sig)} bytes)")
        r, i = _read_der_int(sig, 2)
        s, i = _read_der_int(sig, i)
        if i != len(sig):
            raise SM2Error("signature: trailing bytes")
    if not (1 <= r < N and 1 <= s < N):
        raise SM2Error("signature: r or s out of range")
    return r, s


def to_der(sig: bytes) -> bytes:
    """Normalise a DER or raw signature to canonical DER."""
    return encode_signature(*decode_signature(sig))


def to_raw(sig: bytes) -> bytes:
    r, s = decode_signature(sig)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# --------------------------------------------------------------------------- Z_A and e

def za(point: bytes, signer_id: bytes = DEFAULT_ID) -> bytes:
    """Z_A = SM3(ENTL_A || ID_A || a || b || xG || yG || xA || yA), ENTL in bits."""
    if len(signer_id) * 8 > 0xFFFF:
        raise SM2Error("signer ID longer than 8191 bytes")
    entl = (len(signer_id) * 8).to_bytes(2, "big")
    return sm3(entl, signer_id, _CURVE_BYTES, point[1:])


# --------------------------------------------------------------------------- backends

class Backend(Protocol):
    name: str

    def sign_digest(self, key: "PrivateKey", e: bytes) -> bytes: ...

    def verify_digest(self, key: "PublicKey", e: bytes, der_sig: bytes) -> bool: ...


class OpenSSLBackend:
    """OpenSSL 3 libcrypto (system library, ctypes)."""

    name = "openssl"

    def sign_digest(self, key: "PrivateKey", e: bytes) -> bytes:
        return _libcrypto.sign_digest(key._ossl(), e)

    def verify_digest(self, key: "PublicKey", e: bytes, der_sig: bytes) -> bool:
        return _libcrypto.verify_digest(key._ossl(), e, der_sig)


class GmSSLBackend:
    """GmSSL 3 through the ``gmssl_pyx`` wheel (digest API)."""

    name = "gmssl"

    def sign_digest(self, key: "PrivateKey", e: bytes) -> bytes:
        return gmssl_pyx.sm2_sign_sm3_digest(key._d, e)

    def verify_digest(self, key: "PublicKey", e: bytes, der_sig: bytes) -> bool:
        if not _is_canonical_der(der_sig):  # GmSSL's own DER reader is lenient; be strict here
            return False
        try:
            return bool(gmssl_pyx.sm2_verify_sm3_digest(key.point[1:], e, der_sig))
        except gmssl_pyx.GmsslInnerError:
            return False


BACKENDS: dict[str, Backend] = {"openssl": OpenSSLBackend(), "gmssl": GmSSLBackend()}
_sign_backend: Backend = BACKENDS[os.environ.get("ECERT_SM2_SIGN_BACKEND", "gmssl")]
_verify_backend: Backend = BACKENDS[os.environ.get("ECERT_SM2_VERIFY_BACKEND", "openssl")]


def set_backends(sign: str | None = None, verify: str | None = None) -> tuple[str, str]:
    """Swap the backend per operation; returns the previous (sign, verify) names."""
    global _sign_backend, _verify_backend
    prev = (_sign_backend.name, _verify_backend.name)
    if sign:
        _sign_backend = BACKENDS[sign]
    if verify:
        _verify_backend = BACKENDS[verify]
    return prev


def backends() -> tuple[str, str]:
    return _sign_backend.name, _verify_backend.name


# --------------------------------------------------------------------------- keys

def _pem(label: str, der: bytes) -> bytes:
    b64 = base64.encodebytes(der).replace(b"\n", b"")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return b"-----BEGIN " + label.encode() + b"-----\n" + b"\n".join(lines) + b"\n-----END " + label.encode() + b"-----\n"


def _unpem(data: bytes, labels: tuple[str, ...]) -> bytes:
    text = data.decode("ascii", "replace")
    for label in labels:
        begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
        if begin in text:
            body = text.split(begin, 1)[1].split(end, 1)[0]
            return base64.b64decode("".join(body.split()))
    raise SM2Error(f"no PEM block of type {' / '.join(labels)}")


@dataclass(frozen=True, eq=False)
class PublicKey:
    """An SM2 public key: the uncompressed point 04 || X || Y (65 bytes)."""

    point: bytes

    def __post_init__(self):
        p = self.point
        if len(p) != 65 or p[0] != 4:
            raise SM2Error("SM2 public key must be an uncompressed point 04||X||Y (65 bytes)")
        x, y = int.from_bytes(p[1:33], "big"), int.from_bytes(p[33:], "big")
        if x >= P or y >= P or (y * y - (x * x * x + A * x + B)) % P != 0:
            raise SM2Error("SM2 public key is not a point on sm2p256v1")
        object.__setattr__(self, "_z", {})
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_evp", None)

    def __eq__(self, other):
        return isinstance(other, PublicKey) and self.point == other.point

    def __hash__(self):
        return hash(self.point)

    @classmethod
    def from_bytes(cls, data: bytes) -> "PublicKey":
        """Uncompressed 65-byte point, or bare 64-byte X||Y."""
        if len(data) == 64:
            data = b"\x04" + data
        return cls(bytes(data))

    @classmethod
    def from_der(cls, der: bytes) -> "PublicKey":
        """SubjectPublicKeyInfo DER (id-ecPublicKey with the SM2 curve)."""
        from asn1crypto import keys as ak

        try:
            info = ak.PublicKeyInfo.load(der, strict=True)
            alg = info["algorithm"]
            if alg["algorithm"].dotted != EC_PUBLIC_KEY or alg["parameters"].chosen.dotted != SM2_CURVE:
                raise SM2Error("public key is not an SM2 (sm2p256v1) key")
            return cls(bytes(info["public_key"]))
        except SM2Error:
            raise
        except Exception as exc:
            raise SM2Error(f"malformed SubjectPublicKeyInfo: {exc}") from None

    @classmethod
    def from_pem(cls, pem: bytes) -> "PublicKey":
        return cls.from_der(_unpem(pem, ("PUBLIC KEY",)))

    def to_der(self) -> bytes:
        return _SPKI_PREFIX + self.point[1:]

    def to_pem(self) -> bytes:
        return _pem("PUBLIC KEY", self.to_der())

    def z(self, signer_id: bytes = DEFAULT_ID) -> bytes:
        zc = self._z
        v = zc.get(signer_id)
        if v is None:
            v = za(self.point, signer_id)
            if len(zc) < 8:
                zc[signer_id] = v
        return v

    def digest(self, message: bytes, signer_id: bytes = DEFAULT_ID) -> bytes:
        """e = SM3(Z_A || M)."""
        return sm3(self.z(signer_id), message)

    def verify(self, message: bytes, signature: bytes, signer_id: bytes = DEFAULT_ID) -> bool:
        """True iff ``signature`` (DER or raw r||s) is valid over ``message``. Never raises on bad input."""
        return self.verify_digest(self.digest(message, signer_id), signature)

    def verify_digest(self, e: bytes, signature: bytes) -> bool:
        if not isinstance(signature, (bytes, bytearray)) or len(e) != 32:
            return False
        if len(signature) == 64:  # raw r||s (SKF/SDF devices): normalise to DER
            try:
                signature = to_der(signature)
            except SM2Error:
                return False
        # DER goes to the backend as is: each backend decodes strictly (canonical DER, 1 <= r,s < n).
        return _verify_backend.verify_digest(self, e, bytes(signature))

    def _ossl(self):
        evp = self._evp
        if evp is None:
            with self._lock:
                evp = self._evp
                if evp is None:
                    evp = _libcrypto.load_public(self.to_der())
                    object.__setattr__(self, "_evp", evp)
        return evp


def _is_canonical_der(sig: bytes) -> bool:
    try:
        return len(sig) != 64 and encode_signature(*decode_signature(sig)) == sig
    except (SM2Error, TypeError):
        return False


class PrivateKey:
    """An SM2 private key (scalar d). Never printed, never pickled in clear."""

    __slots__ = ("_d", "public_key", "_evp", "_lock")

    def __init__(self, d: bytes, public_point: bytes | None = None, *, _trusted: bool = False):
        if len(d) != 32:
            raise SM2Error("SM2 private key must be 32 bytes")
        dv = int.from_bytes(d, "big")
        if not 1 <= dv <= N - 2:
            raise SM2Error("SM2 private key out of range [1, n-2]")
        self._d = bytes(d)
        self._evp = None
        self._lock = threading.Lock()
        if _trusted and public_point is not None:  # fresh from our own key generator
            self.public_key = PublicKey(public_point)
            return
        derived = self._derive_point()
        if public_point is not None and not _hmac.compare_digest(derived, public_point):
            raise SM2Error("SM2 public key does not match the private key")
        self.public_key = PublicKey(derived)

    def __repr__(self):
        return f"<SM2 PrivateKey pub={self.public_key.point[1:9].hex()}…>"

    def __reduce__(self):
        raise TypeError("SM2 private keys are not picklable; load them from the keystore")

    def _derive_point(self) -> bytes:
        spki = _libcrypto.public_spki(self._ossl())
        if not spki.startswith(_SPKI_PREFIX) or len(spki) != len(_SPKI_PREFIX) + 64:
            raise SM2Error("libcrypto returned an unexpected public key encoding")
        return b"\x04" + spki[len(_SPKI_PREFIX) :]

    def _ossl(self):
        if self._evp is None:
            with self._lock:
                if self._evp is None:
                    self._evp = _libcrypto.load_private(_SEC1_PREFIX + self._d + _SEC1_CURVE)
        return self._evp

    @classmethod
    def generate(cls) -> "PrivateKey":
        pub, priv = gmssl_pyx.sm2_key_generate()
        return cls(priv, b"\x04" + pub, _trusted=True)

    @classmethod
    def from_bytes(cls, d: bytes) -> "PrivateKey":
        return cls(d)

    def to_bytes(self) -> bytes:
        """The raw 32-byte scalar: only for the keystore's encryption and tests."""
        return self._d

    # PKCS#8 (RFC 5208) with id-ecPublicKey + sm2p256v1, SEC1 ECPrivateKey inside.
    def to_der(self) -> bytes:
        from asn1crypto import keys as ak

        ec = ak.ECPrivateKey(
            {"version": "ecPrivkeyVer1", "private_key": int.from_bytes(self._d, "big"), "public_key": self.public_key.point}
        )
        info = ak.PrivateKeyInfo(
            {
                "version": 0,
                "private_key_algorithm": {"algorithm": "ec", "parameters": ak.ECDomainParameters("named", SM2_CURVE)},
                "private_key": ec,
            }
        )
        return info.dump()

    def to_pem(self) -> bytes:
        return _pem("PRIVATE KEY", self.to_der())

    @classmethod
    def from_der(cls, der: bytes) -> "PrivateKey":
        """PKCS#8 PrivateKeyInfo or SEC1 ECPrivateKey (as `openssl genpkey -algorithm SM2` writes)."""
        from asn1crypto import keys as ak

        try:
            try:
                info = ak.PrivateKeyInfo.load(der, strict=True)
                alg = info["private_key_algorithm"]
                if alg["algorithm"].dotted != EC_PUBLIC_KEY or alg["parameters"].chosen.dotted != SM2_CURVE:
                    raise SM2Error("private key is not an SM2 (sm2p256v1) key")
                ec = info["private_key"].parsed
            except SM2Error:
                raise
            except Exception:
                ec = ak.ECPrivateKey.load(der, strict=True)
                params = ec["parameters"]
                if params.native is not None and params.chosen.dotted != SM2_CURVE:
                    raise SM2Error("private key is not an SM2 (sm2p256v1) key")
            d = ec["private_key"].native
            pub = ec["public_key"].native if ec["public_key"].native is not None else None
        except SM2Error:
            raise
        except Exception as exc:
            raise SM2Error(f"malformed SM2 private key: {exc}") from None
        return cls(d.to_bytes(32, "big"), bytes(pub) if pub else None)

    @classmethod
    def from_pem(cls, pem: bytes) -> "PrivateKey":
        return cls.from_der(_unpem(pem, ("PRIVATE KEY", "EC PRIVATE KEY", "SM2 PRIVATE KEY")))

    def sign(self, message: bytes, signer_id: bytes = DEFAULT_ID) -> bytes:
        """DER SEQUENCE{r, s} over SM3(Z_A || message)."""
        return self.sign_digest(self.public_key.digest(message, signer_id))

    def sign_digest(self, e: bytes) -> bytes:
        if len(e) != 32:
            raise SM2Error("SM2 digest e must be 32 bytes")
        return _sign_backend.sign_digest(self, e)


def generate() -> PrivateKey:
    return PrivateKey.generate()


# Register the SM2 curve with asn1crypto once, so SPKI/PKCS#8/X.509 parsing names it.
def _register_curve():
    from asn1crypto import keys as ak

    if SM2_CURVE not in ak.NamedCurve._map:
        ak.NamedCurve.register("sm2p256v1", SM2_CURVE, 32)


_register_curve()
