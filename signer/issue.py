"""The whole issue path in one call: licence record -> validated licence -> OFD -> sealed OFD bytes."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from keys.sm3 import sm3
from keys.store import KeyStore
from ofd import layout
from ofd.licence.model import Licence, validate_record

from .ofd_sign import SigningIdentity, StampPlacement, sign_package
from .qr_payload import make_qr_text
from .seal import make_issuer_seal

DEFAULT_PORTAL = "http://127.0.0.1:8000"


def portal_url() -> str:
    return os.environ.get("ECERT_PORTAL_URL", DEFAULT_PORTAL).rstrip("/")


@dataclass(frozen=True)
class IssuedLicence:
    licence: Licence
    data: bytes  # the signed OFD file
    sm3_hex: str
    kid: str
    signed_at: datetime

    @property
    def identifier(self) -> str:
        return self.licence.identifier


def load_identity(store: KeyStore, issuer_code: str) -> SigningIdentity:
    """The issuer's active key, certificate and seal; the seal is made once per key and kept in the store."""
    key, cert_der, rec = store.signer(issuer_code)
    seal = store.seal(rec.kid)
    if seal is None:
        maker = store.seal_maker()
        issuer = store.issuer(issuer_code)
        seal = make_issuer_seal(
            issuer_name=issuer.name,
            issuer_code=issuer_code,
            signer_cert_der=cert_der,
            kid=rec.kid,
            maker_key=store.private_key(maker.kid),
            maker_cert_der=maker.cert_der,
            valid_start=rec.not_before,
            valid_end=rec.not_after,
        )
        seal = store.put_seal(rec.kid, seal)
    return SigningIdentity(key=key, cert_der=cert_der, seal_der=seal, kid=rec.kid)


def make_seal(store: KeyStore, issuer_code: str) -> None:
    """Make the issuer's active key's seal now (after a rotation), so no signer pays for it.
    First writer wins; if this process dies first, the first signer makes it."""
    load_identity(store, issuer_code)


class LicenceIssuer:
    """Issues licences for one issuer with its active key. Thread-safe; cheap to call per record."""

    def __init__(self, store: KeyStore, issuer_code: str):
        self.store = store
        self.issuer_code = issuer_code
        self._lock = threading.Lock()
        self._identity: SigningIdentity | None = None
        self._seen_kid: str | None = None  # the active kid when _identity was loaded

    def identity(self) -> SigningIdentity:
        """The active identity, reloaded when another process rotates the key (noticed within
        `keys.store.ACTIVE_KID_TTL`); a request already holding the old one still signs with it."""
        active = self.store.active_kid(self.issuer_code)
        with self._lock:
            if self._identity is None or active != self._seen_kid:  # compare with what the check said last time:
                # a stale cached kid then costs one reload, not one per call
                self._identity = load_identity(self.store, self.issuer_code)  # NoActiveKey if revoked, not replaced
                self._seen_kid = active
            return self._identity

    def issue(self, record, *, when: datetime | None = None, qr_text: str | None = None) -> IssuedLicence:
        """Validate ``record`` (dict or LicenceRecord; raises LicenceError) and return the sealed OFD."""
        lic = record if isinstance(record, Licence) else validate_record(record)
        if lic.issuer_code != self.issuer_code:
            from ofd.licence.errors import FieldError, LicenceError

            raise LicenceError([FieldError("issuer_code", "issuer_mismatch",
                                           f"本服务的签发机关代码为 {self.issuer_code}",
                                           f"this service issues for {self.issuer_code}")])
        when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
        ident = self.identity()
        qr = qr_text or make_qr_text(lic, ident, portal=portal_url(), when=when)  # signed, verifiable offline
        pkg = layout.build_licence_package(lic, qr_text=qr, created=when)
        signed = sign_package(pkg, ident, when=when, stamps=[StampPlacement(layout.PAGE_ID, layout.SEAL_BOX_MM)])
        data = signed.to_bytes()
        return IssuedLicence(licence=lic, data=data, sm3_hex=sm3(data).hex(), kid=ident.kid, signed_at=when)
