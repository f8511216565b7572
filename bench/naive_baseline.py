"""The naive baseline for issue+sign: the same licence built only from the design card's libraries.

What a first implementation would have done: pure-Python ``gmssl`` SM2 for both signatures
(the QR payload's and the seal's), with Z_A and e computed the way gmssl computes them
(hex strings through its pure-Python SM3, every call, no cache), ``segno`` for the QR PNG,
and the same OFD writer and record model. The output has the same shape as ours (a sealed
OFD whose QR carries a signed ``EC1:`` payload) and verifies with our verifier, so the
ratio compares like with like.

Where the baseline still uses our code it is flattered, never penalised, so the ratio
is a lower bound: `signer.ofd_sign.sign_package` builds Signature.xml and the SES
structure and hashes the referenced files and the TBS_Sign with our (C) SM3 and its
memo of the seal prefix — it offers no hook for another digest; gmssl alone would also
hash the ~12 kB TBS_Sign in pure Python (~80 ms). The layout still draws our QR before
segno's replaces it (~0.5 ms).
"""

from __future__ import annotations

import binascii
import io
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import segno
from gmssl import func
from gmssl import sm2 as gsm2
from gmssl import sm3 as gsm3

from keys import sm2

_GB_DEFAULT_ID_HEX = "31323334353637383132333435363738"  # "1234567812345678", what gmssl hard-codes


class _GmsslPublic:
    """The part of `keys.sm2.PublicKey` that `sign_package` uses, computed as gmssl does."""

    def __init__(self, crypt: gsm2.CryptSM2):
        self._crypt = crypt

    def z(self, signer_id: bytes = sm2.DEFAULT_ID) -> bytes:
        if signer_id != sm2.DEFAULT_ID:
            raise ValueError("gmssl only knows the default signer ID")
        t = self._crypt.ecc_table
        pre = binascii.a2b_hex("0080" + _GB_DEFAULT_ID_HEX + t["a"] + t["b"] + t["g"] + self._crypt.public_key)
        return bytes.fromhex(gsm3.sm3_hash(func.bytes_to_list(pre)))

    def digest(self, message: bytes, signer_id: bytes = sm2.DEFAULT_ID) -> bytes:
        return bytes.fromhex(self._crypt._sm3_z(message))


class GmsslKey:
    """An SM2 private key whose arithmetic is gmssl's pure Python (`sign_package`'s key protocol)."""

    def __init__(self, key: sm2.PrivateKey):
        point = key.public_key.point  # 04 || x || y
        self._crypt = gsm2.CryptSM2(private_key=key.to_bytes().hex(), public_key=point[1:].hex(), asn1=False)
        self.public_key = _GmsslPublic(self._crypt)

    def sign_digest(self, e: bytes) -> bytes:
        while True:  # gmssl returns None for the rare k that gives r = 0 or r + k = n
            raw = self._crypt.sign(e, func.random_hex(self._crypt.para_len))
            if raw:
                return sm2.encode_signature(int(raw[:64], 16), int(raw[64:], 16))

    def sign(self, message: bytes) -> bytes:
        """What a gmssl user calls: ``sign_with_sm3`` (Z_A and e through gmssl's SM3, then sign)."""
        while True:
            raw = self._crypt.sign_with_sm3(message)
            if raw:
                return bytes.fromhex(raw)  # r || s, 64 bytes, as the QR payload carries it


def segno_png(text: str) -> bytes:
    """The QR symbol at our error-correction level, 4 px per module, 4-module quiet zone."""
    from ofd.layout import QR_EC_LEVEL
    from ofd.qr import QUIET_ZONE

    buf = io.BytesIO()
    segno.make(text, error=QR_EC_LEVEL.lower(), micro=False, boost_error=False).save(
        buf, kind="png", scale=4, border=QUIET_ZONE)
    return buf.getvalue()


@dataclass
class NaiveIssuer:
    """Issue+sign with gmssl and segno; ``identity`` is our `SigningIdentity` of the same key."""

    identity: object
    portal: str

    def __post_init__(self):
        self.key = GmsslKey(self.identity.key)
        self.naive_identity = replace(self.identity, key=self.key)

    def qr_text(self, lic, when: datetime) -> str:
        from signer.qr_payload import PATH, PREFIX, encode_body, qr_data, signed_message, to_digits

        body = encode_body(qr_data(lic, self.identity.cert_der, when))
        return self.portal.rstrip("/") + PATH + PREFIX + to_digits(body + self.key.sign(signed_message(body)))

    def issue(self, record, when: datetime | None = None) -> tuple[bytes, str]:
        """(signed OFD bytes, QR text) of one record; the QR image in the OFD is segno's."""
        from ofd import layout
        from ofd.licence.model import Licence, validate_record
        from signer.ofd_sign import StampPlacement, sign_package

        lic = record if isinstance(record, Licence) else validate_record(record)
        when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
        text = self.qr_text(lic, when)
        pkg = layout.build_licence_package(lic, qr_text=text, created=when)
        qr_file = [n for n in pkg.files if "/Res/image_" in n][-1]  # added after the photo
        pkg[qr_file] = segno_png(text)
        signed = sign_package(pkg, self.naive_identity, when=when,
                              stamps=[StampPlacement(layout.PAGE_ID, layout.SEAL_BOX_MM)])
        return signed.to_bytes(), text


def naive_issuer(li) -> NaiveIssuer:
    """The baseline for the `signer.issue.LicenceIssuer` ``li`` (same key, certificate and seal)."""
    from signer.issue import portal_url

    return NaiveIssuer(li.identity(), portal_url())
