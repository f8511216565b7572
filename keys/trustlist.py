"""The signed trust list: every certificate of ours with its key id, status and validity.

A third party (or an offline verifier) pins our root certificate once, then fetches this
list whenever it is stale: canonical JSON (sorted keys, no spaces, UTF-8) so the detached
SM2 signature by the root covers exact bytes, ETag = SM3 of those bytes, ``max_age`` /
``next_update`` for caching. `load_trust_list` checks it against the pinned root and gives
the roots and a revocation lookup for ``verifier.trust.TrustConfig`` (duck-typed: keys/
is a leaf and does not import the verifier).

Document (format ``ecert-trust-list``, version 1)::

    {"format", "version", "issued_at", "next_update", "max_age", "signed_by": root kid,
     "keys": [{"kid", "issuer_code", "issuer_name", "role", "status", "not_before", "not_after",
               "revoked_at", "reason", "parent_kid", "cert": base64 DER}, ...]}

Times are UTC, ``YYYY-MM-DDTHH:MM:SSZ``. Pending keys are listed too, so verifiers learn a
staged key before it signs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, field

from . import x509
from .sm3 import sm3
from .store import PLATFORM, ROLES, STATUSES, KeyStore

__all__ = [
    "TrustList", "TrustedKey", "KeyStatus", "SignedTrustList", "TrustListError", "build_trust_list",
    "load_trust_list", "canonical_json", "etag_of", "FORMAT", "VERSION", "DEFAULT_MAX_AGE",
]

UTC = dt.timezone.utc
FORMAT = "ecert-trust-list"
VERSION = 1
DEFAULT_MAX_AGE = 3600  # seconds: how late a revocation may reach a verifier that caches the list
MAX_LIST_BYTES = 16 * 1024 * 1024
CLOCK_SKEW = dt.timedelta(minutes=5)
_TIME_FMT = "%Y-%m-%dT%H:%M:%SZ"


class TrustListError(ValueError):
    """The trust list cannot be trusted or read; the message says why (Chinese / English)."""


# --------------------------------------------------------------------------- model

@dataclass(frozen=True)
class KeyStatus:
    """Same fields as ``verifier.trust.Revocation``: what the verifier asks about a kid."""

    status: str
    revoked_at: dt.datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    issuer: str  # issuer code (``platform`` for the root and the seal maker)
    issuer_name: str | None
    role: str
    status: str
    cert_der: bytes = field(repr=False)
    not_before: dt.datetime
    not_after: dt.datetime
    revoked_at: dt.datetime | None = None
    reason: str | None = None
    parent_kid: str | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.Certificate.load(self.cert_der)


@dataclass(frozen=True)
class TrustList:
    """A verified trust list. ``roots``: the pinned root and any other unrevoked root it lists."""

    issued_at: dt.datetime
    next_update: dt.datetime
    max_age: int
    signed_by: str
    keys: dict[str, TrustedKey]
    roots: list[x509.Certificate]
    etag: str

    def revocation(self, kid: str) -> KeyStatus | None:
        """Status of ``kid`` for ``TrustConfig(revocation=...)``; None for a key not on the list."""
        k = self.keys.get(kid)
        return KeyStatus(k.status, k.revoked_at, k.reason) if k is not None else None

    def is_fresh(self, at: dt.datetime | None = None) -> bool:
        return (at or dt.datetime.now(UTC)) <= self.next_update


@dataclass(frozen=True)
class SignedTrustList:
    json_bytes: bytes = field(repr=False)
    signature: bytes = field(repr=False)  # DER SEQUENCE{r, s} by the root over json_bytes
    etag: str
    max_age: int
    issued_at: dt.datetime

    def http_headers(self) -> dict[str, str]:
        return {"ETag": f'"{self.etag}"', "Cache-Control": f"public, max-age={self.max_age}"}


# --------------------------------------------------------------------------- encoding

def canonical_json(obj) -> bytes:
    """Sorted keys, no spaces, UTF-8: one byte string per document, so signatures and ETags are stable."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def etag_of(json_bytes: bytes) -> str:
    """SM3 (hex) of the exact bytes."""
    return sm3(json_bytes).hex()


def _time(t: dt.datetime | None) -> str | None:
    return t.astimezone(UTC).strftime(_TIME_FMT) if t is not None else None


def _parse_time(value, what: str, *, optional: bool = False) -> dt.datetime | None:
    if value is None and optional:
        return None
    try:
        return dt.datetime.strptime(value, _TIME_FMT).replace(tzinfo=UTC)
    except (TypeError, ValueError):
        raise TrustListError(f"信任列表时间格式错误 / trust list: {what} is not a UTC time like 2026-01-31T08:00:00Z") from None


# --------------------------------------------------------------------------- export

def build_trust_list(store: KeyStore, *, now: dt.datetime | None = None, max_age: int = DEFAULT_MAX_AGE) -> SignedTrustList:
    """Every key's certificate and state from ``store``, signed by the active root."""
    if not isinstance(max_age, int) or not 60 <= max_age <= 31 * 86400:
        raise TrustListError("缓存时间无效 / max_age must be whole seconds between 60 and 31 days")
    now = (now or dt.datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    root = store.root()
    names = {i.code: i.name for i in store.issuers()}
    entries = [
        {
            "kid": r.kid, "issuer_code": r.issuer_code, "issuer_name": names.get(r.issuer_code), "role": r.role,
            "status": r.status, "not_before": _time(r.not_before), "not_after": _time(r.not_after),
            "revoked_at": _time(r.revoked_at), "reason": r.revocation_reason, "parent_kid": r.parent_kid,
            "cert": base64.b64encode(r.cert_der).decode("ascii"),
        }
        for r in store.list_keys()
    ]
    doc = {
        "format": FORMAT, "version": VERSION, "issued_at": _time(now),
        "next_update": _time(now + dt.timedelta(seconds=max_age)), "max_age": max_age,
        "signed_by": root.kid, "keys": entries,
    }
    data = canonical_json(doc)
    signature = store.private_key(root.kid).sign(data)
    return SignedTrustList(json_bytes=data, signature=signature, etag=etag_of(data), max_age=max_age, issued_at=now)


# --------------------------------------------------------------------------- import

def _pinned(root) -> x509.Certificate:
    try:
        cert = root if isinstance(root, x509.Certificate) else x509.Certificate.load(bytes(root))
        cert.public_key  # noqa: B018 - CertificateError unless SM2
    except (x509.CertificateError, TypeError) as exc:
        raise TrustListError(f"固定的根证书无效 / the pinned root certificate is unusable: {exc}") from None
    if not cert.is_ca:
        raise TrustListError("固定的证书不是 CA 证书 / the pinned certificate is not a CA certificate")
    return cert


def _signature_bytes(signature) -> bytes:
    """DER or raw r||s; a base64 text copy (e.g. from a web page) is accepted too."""
    if not isinstance(signature, (bytes, bytearray)) or not signature:
        raise TrustListError("签名缺失 / the trust list signature is missing or not bytes")
    sig = bytes(signature)
    if sig[:1] != b"\x30" and len(sig) != 64:
        try:
            sig = base64.b64decode(b"".join(sig.split()), validate=True)
        except (binascii.Error, ValueError):
            raise TrustListError("签名格式错误 / the trust list signature is neither DER, raw r||s nor base64") from None
    return sig


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise TrustListError(f"信任列表含重复字段 / trust list repeats the field {k!r}")
        out[k] = v
    return out


def _key(entry, at_index: int) -> TrustedKey:
    where = f"keys[{at_index}]"
    if not isinstance(entry, dict):
        raise TrustListError(f"信任列表条目格式错误 / trust list: {where} is not an object")
    try:
        der = base64.b64decode(entry.get("cert") or "", validate=True)
        cert = x509.Certificate.load(der)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise TrustListError(f"信任列表证书无法解析 / trust list: {where}.cert is not a certificate ({exc})") from None
    kid = entry.get("kid")
    if kid != cert.kid:
        raise TrustListError(f"密钥标识与证书不符 / trust list: {where}: kid {kid!r} does not match its certificate ({cert.kid})")
    role, status, reason = entry.get("role"), entry.get("status"), entry.get("reason")
    if role not in ROLES or status not in STATUSES:
        raise TrustListError(f"信任列表条目无效 / trust list: {where}: unknown role {role!r} or status {status!r}")
    revoked_at = _parse_time(entry.get("revoked_at"), f"{where}.revoked_at", optional=True)
    if status == "revoked" and revoked_at is None:
        raise TrustListError(f"吊销条目缺少吊销时间 / trust list: {where}: revoked key {kid} has no revoked_at")
    issuer, issuer_name, parent = entry.get("issuer_code"), entry.get("issuer_name"), entry.get("parent_kid")
    if not isinstance(issuer, str) or not all(v is None or isinstance(v, str) for v in (issuer_name, reason, parent)):
        raise TrustListError(f"信任列表条目无效 / trust list: {where}: issuer_code, issuer_name, reason must be text")
    return TrustedKey(
        kid=kid, issuer=issuer, issuer_name=issuer_name, role=role, status=status, cert_der=cert.der,
        not_before=_parse_time(entry.get("not_before"), f"{where}.not_before"),
        not_after=_parse_time(entry.get("not_after"), f"{where}.not_after"),
        revoked_at=revoked_at, reason=reason, parent_kid=parent,
    )


def load_trust_list(
    json_bytes: bytes,
    signature: bytes,
    pinned_root_cert,
    *,
    at: dt.datetime | None = None,
    require_fresh: bool = False,
) -> TrustList:
    """Verify ``json_bytes`` against the pinned root (DER, PEM or ``Certificate``) and read it.

    Raises TrustListError when the signature does not verify, the bytes are not the canonical
    form, the content is malformed, the pinned root is revoked by the list, the list was issued
    after ``at`` (clock skew allowed) or, with ``require_fresh``, its ``next_update`` has passed.
    """
    root = _pinned(pinned_root_cert)
    if not isinstance(json_bytes, (bytes, bytearray)) or not json_bytes or len(json_bytes) > MAX_LIST_BYTES:
        raise TrustListError(f"信任列表为空或过大 / the trust list must be 1 byte to {MAX_LIST_BYTES} bytes")
    data = bytes(json_bytes)
    if not root.public_key.verify(data, _signature_bytes(signature)):
        raise TrustListError(
            f"信任列表签名验证失败 / the trust list signature does not verify against the pinned root {root.kid} "
            "(altered, or signed by another root)"
        )
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, TrustListError):
            raise
        raise TrustListError(f"信任列表不是 JSON / the trust list is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise TrustListError(f"不支持的信任列表格式 / not an {FORMAT} version {VERSION} document")
    if canonical_json(doc) != data:
        raise TrustListError("信任列表不是规范 JSON / the trust list is not in canonical JSON form")
    if doc.get("signed_by") != root.kid:
        raise TrustListError(f"签名者不符 / the list names signer {doc.get('signed_by')!r}, the pinned root is {root.kid}")
    max_age = doc.get("max_age")
    if not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 1:
        raise TrustListError("信任列表缓存时间无效 / trust list: max_age must be a positive whole number of seconds")
    issued_at = _parse_time(doc.get("issued_at"), "issued_at")
    next_update = _parse_time(doc.get("next_update"), "next_update")
    if not isinstance(doc.get("keys"), list):
        raise TrustListError("信任列表缺少密钥列表 / trust list: keys must be a list")
    keys: dict[str, TrustedKey] = {}
    for i, entry in enumerate(doc["keys"]):
        k = _key(entry, i)
        if k.kid in keys:
            raise TrustListError(f"信任列表重复列出密钥 / trust list lists key {k.kid} twice")
        keys[k.kid] = k
    listed = keys.get(root.kid)
    if listed is not None and listed.status == "revoked":
        raise TrustListError(f"固定的根证书已被吊销 / the pinned root {root.kid} is revoked by this list")
    now = (at or dt.datetime.now(UTC)).astimezone(UTC)
    if issued_at > now + CLOCK_SKEW:
        raise TrustListError(f"信任列表签发时间在将来 / the trust list was issued in the future ({_time(issued_at)})")
    if require_fresh and now > next_update:
        raise TrustListError(
            f"信任列表已过期 / the trust list is stale: next update was due {_time(next_update)}; fetch a new copy"
        )
    roots = [root] + [
        k.certificate for k in keys.values()
        if k.role == "root" and k.issuer == PLATFORM and k.status != "revoked" and k.kid != root.kid
    ]
    return TrustList(
        issued_at=issued_at, next_update=next_update, max_age=max_age, signed_by=root.kid, keys=keys, roots=roots,
        etag=etag_of(data),
    )
