"""Making an issuer's electronic seal (SES_Seal V4, GB/T 38540).

The seal binds the authority's name and picture to the signing certificate(s) it may
be used with (certList, type 1 = the certificates themselves) for a validity period,
and is signed by the seal maker (制章者): the development root's seal-maker key.
"""

from __future__ import annotations

from datetime import datetime, timezone

from keys import sm2

from . import ses
from .seal_image import seal_png

SEAL_TYPE_ORGANISATION = 1  # 单位印章 (GM/T 0031 comment; GB/T 38540 leaves the code list open)
VENDOR_ID = "ecert"
SEAL_SIZE_MM = (40, 40)


def make_issuer_seal(
    *,
    issuer_name: str,
    issuer_code: str,
    signer_cert_der: bytes,
    kid: str,
    maker_key: sm2.PrivateKey,
    maker_cert_der: bytes,
    valid_start: datetime,
    valid_end: datetime,
    created: datetime | None = None,
) -> bytes:
    """DER of a V4 SES_Seal for one signing key of one issuer."""
    created = created or datetime.now(timezone.utc)
    return ses.build_seal_v4(
        es_id=f"{issuer_code}{kid}".upper(),
        vid=VENDOR_ID,
        seal_type=SEAL_TYPE_ORGANISATION,
        name=issuer_name,
        certs=[signer_cert_der],
        create_date=created,
        valid_start=valid_start,
        valid_end=valid_end,
        picture_type="PNG",
        picture=seal_png(issuer_name),
        picture_size_mm=SEAL_SIZE_MM,
        maker_cert=maker_cert_der,
        maker_key=maker_key,
    )
