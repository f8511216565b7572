"""A throw-away development keystore that seals real licences, and variants of them signed
with deliberately wrong identities (expired, not yet valid, wrong key usage, untrusted root,
another issuer's seal): the raw material of the signed hostile inputs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path

from keys import sm2
from keys.config import load_settings
from keys.store import KeyStore
from keys.x509 import build_root, issue_certificate
from ofd import layout
from ofd.licence.fake import record as make_record
from ofd.licence.model import validate_record
from ofd.package import Package
from ofd.safezip import read_package
from signer.issue import LicenceIssuer, load_identity
from signer.ofd_sign import SigningIdentity, StampPlacement, sign_package
from signer.seal import make_issuer_seal

SIGN_DIR = "Doc_0/Signs/Sign_0/"
SIGNATURE_XML, SIGNED_VALUE, SEAL = SIGN_DIR + "Signature.xml", SIGN_DIR + "SignedValue.dat", SIGN_DIR + "Seal.esl"
OTHER_CODE, OTHER_NAME = "91110000600037341L", "另一测试应急管理局"


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class Lab:
    """Dev keys in ``home``: the platform root, the seal maker, the dev issuer (and a second
    issuer made on demand). ``env`` is what `api.settings.load_api_settings` needs to serve them."""

    def __init__(self, home: Path):
        self.env = {"ECERT_HOME": str(home)}
        self.store = KeyStore(load_settings(self.env))
        init = self.store.init_dev()
        self.code, self.name = init.issuer.code, init.issuer.name
        self.issuer = LicenceIssuer(self.store, self.code)
        self._cache: dict[str, object] = {}

    def close(self) -> None:
        self.store.close()

    def cached(self, key: str, make):
        """``make()`` once per lab (a base licence is sealed once and mutated by many cases)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def record(self, seq: int = 1, **over) -> dict:
        return make_record(self.code, self.name, seq=seq, **over)

    @cached_property
    def registry(self):
        from signer.registry import Registry

        return Registry(self.store)

    def licence(self, seq: int = 1, *, when: datetime | None = None) -> bytes:
        """A sealed licence, registered (so the registry's status check passes)."""
        return self.registry.issue_file(self.issuer, self.record(seq), when=when).issued.data

    # ---------------------------------------------------------------- identities

    @cached_property
    def root_key(self) -> sm2.PrivateKey:
        return self.store.private_key(self.store.root().kid)

    @cached_property
    def own(self) -> SigningIdentity:
        return load_identity(self.store, self.code)

    def identity(self, *, not_before: datetime, not_after: datetime, usage: str = "signing",
                 untrusted_root: bool = False, seal_days: int = 3650) -> SigningIdentity:
        """A fresh key for the dev issuer with a certificate exactly as asked, and a seal for it
        (valid ``seal_days`` around the certificate, so that only the certificate is at fault)."""
        key = sm2.PrivateKey.generate()
        if untrusted_root:
            ca_key = sm2.PrivateKey.generate()
            ca_cert = build_root(ca_key, "Mallory Root CA", not_before=not_before - timedelta(days=1),
                                 not_after=not_after + timedelta(days=365))
        else:
            ca_key, ca_cert = self.root_key, self.store.root().cert_der
        cert = issue_certificate(ca_cert, ca_key, key.public_key, common_name=f"{self.name} 签章", uscc=self.code,
                                 not_before=not_before, not_after=not_after, usage=usage)
        maker = self.store.seal_maker()
        seal = make_issuer_seal(issuer_name=self.name, issuer_code=self.code, signer_cert_der=cert, kid="hostile",
                                maker_key=self.store.private_key(maker.kid), maker_cert_der=maker.cert_der,
                                valid_start=not_before - timedelta(days=seal_days),
                                valid_end=not_after + timedelta(days=seal_days))
        return SigningIdentity(key=key, cert_der=cert, seal_der=seal, kid="hostile")

    @cached_property
    def other_issuer(self) -> LicenceIssuer:
        self.store.add_issuer(OTHER_CODE, OTHER_NAME)
        self.store.create_key(OTHER_CODE, "signing")
        return LicenceIssuer(self.store, OTHER_CODE)

    def revoked_licence(self) -> bytes:
        """A licence sealed now by a second (pending) key of the dev issuer, which is then revoked
        with its cut-off at the signing time: the active key, used by every other case, stays good."""

        def make() -> bytes:
            rec = self.store.create_key(self.code, "signing", activate=False)
            maker = self.store.seal_maker()
            seal = make_issuer_seal(issuer_name=self.name, issuer_code=self.code, signer_cert_der=rec.cert_der,
                                    kid=rec.kid, maker_key=self.store.private_key(maker.kid), maker_cert_der=maker.cert_der,
                                    valid_start=rec.not_before, valid_end=rec.not_after)
            ident = SigningIdentity(key=self.store.private_key(rec.kid), cert_der=rec.cert_der, seal_der=seal, kid=rec.kid)
            when = now()
            data = self.signed_with(ident, seq=70, when=when)
            self.store.revoke(rec.kid, reason="key compromise (hostile-input catalogue)", at=when)
            return data

        return self.cached("revoked", make)

    def signed_with(self, identity: SigningIdentity, *, seq: int = 50, when: datetime | None = None) -> bytes:
        """A licence of the dev issuer sealed by ``identity`` at ``when``."""
        when = when or now()
        lic = validate_record(self.record(seq))
        pkg = layout.build_licence_package(lic, qr_text="https://portal.example/v#hostile", created=when)
        return sign_package(pkg, identity, when=when,
                            stamps=[StampPlacement(layout.PAGE_ID, layout.SEAL_BOX_MM)]).to_bytes()


def unpack(data: bytes) -> Package:
    """A package through the product's own safe reader (what the service would see)."""
    return read_package(data)


def edit_files(data: bytes, changes: dict[str, bytes | None]) -> bytes:
    pkg = unpack(data)
    for name, value in changes.items():
        if value is None:
            pkg.files.pop(name, None)
        else:
            pkg[name] = value
    return pkg.to_bytes()
