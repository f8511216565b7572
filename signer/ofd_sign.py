"""Sign an OFD package with an electronic seal (GB/T 38540 V4, Type="Seal").

The procedure follows GB/T 33190 §18 as implemented by the common readers (see
docs/STANDARDS.md §4.4), in "continue-sign" mode: Signatures.xml is not covered, so
later signatures can be added and earlier ones keep verifying. Every other file of
the package at signing time is covered by a Reference with its SM3 digest, including
OFD.xml (after the Signatures pointer is added), Seal.esl and earlier signatures.

SignedValue.dat = DER(SES_Signature) whose TBS_Sign carries dataHash = SM3 of the exact
bytes of Signature.xml, signed with SM2 by the issuer's active key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone

from lxml import etree

from keys import oids, sm2
from keys.sm3 import sm3
from ofd.package import NSMAP, OFD, Package
from ofd.reader import resolve_loc
from ofd.xmlsafe import parse_xml

from . import ses

PROVIDER = {"ProviderName": "ecert", "Version": "0.1.0", "Company": "ecert"}
XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'


class SigningError(RuntimeError):
    """The package cannot be signed as asked (e.g. an earlier signature protects Signatures.xml)."""


@dataclass(frozen=True)
class SigningIdentity:
    """Everything a signer needs: the active key, its certificate and its seal (Seal.esl bytes)."""

    key: sm2.PrivateKey
    cert_der: bytes
    seal_der: bytes
    kid: str = ""


@dataclass(frozen=True)
class StampPlacement:
    page_id: int
    box: tuple[float, float, float, float]  # x y w h in mm, page coordinates


def _xml_bytes(root: etree._Element) -> bytes:
    return XML_DECL + etree.tostring(root, encoding="UTF-8")


def _fmt(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _signatures_location(pkg: Package) -> tuple[etree._Element, str | None, str]:
    """(OFD.xml root, Signatures.xml entry name or None, the document's directory)."""
    ofd_root = parse_xml(pkg["OFD.xml"], "OFD.xml")
    body = ofd_root.find(OFD + "DocBody")
    if body is None or body.find(OFD + "DocRoot") is None:
        raise SigningError("OFD.xml has no DocBody/DocRoot")
    doc_root = resolve_loc(body.findtext(OFD + "DocRoot").strip(), "")
    doc_dir = doc_root.rsplit("/", 1)[0] if "/" in doc_root else ""
    loc = body.findtext(OFD + "Signatures")
    return ofd_root, (resolve_loc(loc.strip(), "") if loc and loc.strip() else None), doc_dir


def sign_package(
    pkg: Package,
    identity: SigningIdentity,
    *,
    when: datetime,
    stamps: list[StampPlacement],
) -> Package:
    """Return a new package with one more seal signature; ``pkg`` is left untouched."""
    if when.tzinfo is None:
        raise ValueError("signing time must be timezone-aware")
    when = when.astimezone(timezone.utc).replace(microsecond=0)
    out = pkg.copy()
    ofd_root, sigs_path, doc_dir = _signatures_location(out)
    signs_dir = f"{doc_dir}/Signs" if doc_dir else "Signs"

    if sigs_path is None:
        sigs_path = f"{signs_dir}/Signatures.xml"
        sigs_root = etree.Element(OFD + "Signatures", nsmap=NSMAP)
        body = ofd_root.find(OFD + "DocBody")
        pointer = etree.Element(OFD + "Signatures")
        pointer.text = "/" + sigs_path
        # DocBody children in schema order: DocInfo, DocRoot, Versions?, Signatures?
        body.append(pointer)
        out["OFD.xml"] = _xml_bytes(ofd_root)
    else:
        if sigs_path not in out:
            raise SigningError(f"OFD.xml points at a missing {sigs_path}")
        sigs_root = parse_xml(out[sigs_path], sigs_path)
        sigs_dir = sigs_path.rsplit("/", 1)[0] if "/" in sigs_path else ""
        for s in sigs_root.findall(OFD + "Signature"):
            sx_path = resolve_loc(s.get("BaseLoc", ""), sigs_dir)
            if sx_path in out:
                sx = parse_xml(out[sx_path], sx_path)
                refs = {
                    resolve_loc(r.get("FileRef", ""), sx_path.rsplit("/", 1)[0])
                    for r in sx.iter(OFD + "Reference")
                }
                if sigs_path in refs:
                    raise SigningError("an earlier signature protects Signatures.xml: no further signature allowed")

    existing = sigs_root.findall(OFD + "Signature")
    n = len(existing)
    while f"{signs_dir}/Sign_{n}/Signature.xml" in out:
        n += 1
    sign_dir = f"{signs_dir}/Sign_{n}"
    sig_id = f"s{n + 1:03d}"
    sx_path, sv_path, seal_path = f"{sign_dir}/Signature.xml", f"{sign_dir}/SignedValue.dat", f"{sign_dir}/Seal.esl"

    # No MaxSignId: the schema types it xs:ID, so it could not repeat the last Signature's ID
    # without making the file invalid; it is optional.
    etree.SubElement(sigs_root, OFD + "Signature", ID=sig_id, Type="Seal", BaseLoc="/" + sx_path)
    out[sigs_path] = _xml_bytes(sigs_root)
    out[seal_path] = identity.seal_der

    # Signature.xml: cover every file except Signatures.xml (continue-sign) and our own outputs.
    sx = etree.Element(OFD + "Signature", nsmap=NSMAP)
    info = etree.SubElement(sx, OFD + "SignedInfo")
    etree.SubElement(info, OFD + "Provider", **PROVIDER)
    etree.SubElement(info, OFD + "SignatureMethod").text = oids.SM3_WITH_SM2
    etree.SubElement(info, OFD + "SignatureDateTime").text = when.strftime("%Y%m%d%H%M%SZ")
    refs = etree.SubElement(info, OFD + "References", CheckMethod=oids.SM3)
    for name, data in out.files.items():
        if name in (sigs_path, sx_path, sv_path):
            continue
        ref = etree.SubElement(refs, OFD + "Reference", FileRef="/" + name)
        etree.SubElement(ref, OFD + "CheckValue").text = base64.b64encode(sm3(data)).decode()
    for i, st in enumerate(stamps, 1):
        etree.SubElement(
            info, OFD + "StampAnnot", ID=f"sa{n + 1}_{i}", PageRef=str(st.page_id),
            Boundary=" ".join(_fmt(v) for v in st.box),
        )
    seal_el = etree.SubElement(info, OFD + "Seal")
    etree.SubElement(seal_el, OFD + "BaseLoc").text = "/" + seal_path
    etree.SubElement(sx, OFD + "SignedValue").text = "/" + sv_path
    sx_bytes = _xml_bytes(sx)
    out[sx_path] = sx_bytes

    tbs = ses.build_tbs_sign_v4(
        seal_der=identity.seal_der, time_info=when, data_hash=sm3(sx_bytes), property_info="/" + sx_path
    )
    signature = identity.key.sign(tbs)
    out[sv_path] = ses.build_signed_value_v4(tbs_der=tbs, signer_cert=identity.cert_der, signature=signature)
    return out
