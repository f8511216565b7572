"""Sign an OFD package with an electronic seal (GB/T 38540 V4, Type="Seal").

The procedure follows GB/T 33190 §18 as implemented by the common readers (see
docs/STANDARDS.md §4.4), in "continue-sign" mode: Signatures.xml is not covered, so
later signatures can be added and earlier ones keep verifying. Every other file of
the package at signing time is covered by a Reference with its SM3 digest, including
OFD.xml (after the Signatures pointer is added), Seal.esl and earlier signatures.

SignedValue.dat = DER(SES_Signature) whose TBS_Sign carries dataHash = SM3 of the exact
bytes of Signature.xml, signed with SM2 by the issuer's active key.

Speed (issue path, one licence per call): the new XML files are written as strings with
the writer's lxml-exact serialiser; the digests of files that repeat in every licence
(Seal.esl, Document.xml, PublicRes.xml, ...) are memoised by content; an OFD.xml that our
own writer emitted in this process gets its Signatures pointer by a text edit (its
structure is known) instead of a parse and re-serialisation.  Any other package takes
the general lxml path; tests check both paths give the same bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone

from lxml import etree

from keys import oids, sm2
from keys.sm3 import sm3, sm3_state
from ofd import writer
from ofd.package import OFD, ContentMemo, Package
from ofd.reader import resolve_loc
from ofd.writer import element_xml, escape_xml
from ofd.xmlsafe import parse_xml

from . import ses

PROVIDER = {"ProviderName": "ecert", "Version": "0.1.0", "Company": "ecert"}
XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'

# SM3 of package files by content: Seal.esl and the structural files repeat in every licence.
_sm3_memo = ContentMemo(sm3)


# SM3 state after Z_A || the TBS_Sign bytes up to the end of the embedded seal, by content.
_tbs_head_state = ContentMemo(sm3_state, max_entries=8, max_bytes=1 << 20)


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


def _point_ofd_xml_at(pkg: Package, ofd_root: etree._Element | None, sigs_path: str) -> None:
    """Add the DocBody/Signatures pointer to OFD.xml (after DocRoot, as the schema orders it).

    ``ofd_root`` None = OFD.xml is our writer's: DocBody ends with DocRoot, so the pointer
    goes right before the closing tags, and the declaration becomes the one lxml writes here.
    """
    if ofd_root is None:
        data, close = pkg["OFD.xml"], writer.OFD_XML_CLOSE
        pointer = element_xml("Signatures", text="/" + sigs_path).encode("utf-8")
        pkg["OFD.xml"] = XML_DECL + data[len(writer.XML_DECLARATION):-len(close)] + pointer + close
        return
    pointer_el = etree.Element(OFD + "Signatures")
    pointer_el.text = "/" + sigs_path
    # DocBody children in schema order: DocInfo, DocRoot, Versions?, Signatures?
    ofd_root.find(OFD + "DocBody").append(pointer_el)
    pkg["OFD.xml"] = _xml_bytes(ofd_root)


def _locate(pkg: Package) -> tuple[etree._Element | None, str | None, str]:
    """(parsed OFD.xml or None when it is our writer's, Signatures.xml entry or None, document directory)."""
    if writer.emitted_ofd_xml(pkg["OFD.xml"]):
        return None, None, writer.DOC_DIR
    return _signatures_location(pkg)


def _existing_signatures(out: Package, sigs_path: str) -> etree._Element:
    """Signatures.xml root, refusing when an earlier signature protects Signatures.xml itself."""
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
    return sigs_root


def _signature_xml(out: Package, *, skip: tuple[str, ...], when: datetime, stamps: list[StampPlacement],
                   n: int, seal_path: str, sv_path: str) -> bytes:
    """Signature.xml covering every file of ``out`` but ``skip`` (the schema's child order)."""
    refs = "".join([  # element_xml's form, written directly: one per file of the package
        f'<ofd:Reference FileRef="/{escape_xml(name, "Reference", True)}">'
        f"<ofd:CheckValue>{base64.b64encode(_sm3_memo(data)).decode()}</ofd:CheckValue></ofd:Reference>"
        for name, data in out.files.items() if name not in skip
    ])
    info = [
        element_xml("Provider", PROVIDER),
        element_xml("SignatureMethod", text=oids.SM3_WITH_SM2),
        element_xml("SignatureDateTime", text=when.strftime("%Y%m%d%H%M%SZ")),
        element_xml("References", {"CheckMethod": oids.SM3}, inner=refs),
    ]
    info += [
        element_xml("StampAnnot", {"ID": f"sa{n + 1}_{i}", "PageRef": str(st.page_id),
                                   "Boundary": " ".join(_fmt(v) for v in st.box)})
        for i, st in enumerate(stamps, 1)
    ]
    info.append(element_xml("Seal", inner=element_xml("BaseLoc", text="/" + seal_path)))
    root = element_xml("Signature", xmlns=True,
                       inner=element_xml("SignedInfo", inner="".join(info)) + element_xml("SignedValue", text="/" + sv_path))
    return XML_DECL + root.encode("utf-8")


def _tbs_digest(key: sm2.PrivateKey, tbs: bytes, seal_der: bytes) -> bytes:
    """e = SM3(Z_A || TBS_Sign), what ``key.sign(tbs)`` would sign (GB/T 32918.2 §6.1).

    The seal (~12 kB with its picture) is nearly all of the TBS and the same in every
    signature of a key, so the SM3 state after Z_A, the TBS header and the seal is kept
    and only the ~100 bytes after it (time, dataHash, propertyInfo) are hashed per call.
    """
    at = tbs.find(seal_der)
    if at < 0 or at > 16:  # the seal follows the SEQUENCE header and version INTEGER
        return key.public_key.digest(tbs)
    cut = at + len(seal_der)
    h = _tbs_head_state(key.public_key.z() + tbs[:cut]).copy()
    h.update(tbs[cut:])
    return h.finalize()


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
    ofd_root, sigs_path, doc_dir = _locate(out)
    signs_dir = f"{doc_dir}/Signs" if doc_dir else "Signs"

    if sigs_path is None:
        sigs_path = f"{signs_dir}/Signatures.xml"
        _point_ofd_xml_at(out, ofd_root, sigs_path)
        sigs_root = None
        n = 0
    else:
        sigs_root = _existing_signatures(out, sigs_path)
        n = len(sigs_root.findall(OFD + "Signature"))
    while f"{signs_dir}/Sign_{n}/Signature.xml" in out:
        n += 1
    sign_dir = f"{signs_dir}/Sign_{n}"
    sig_id = f"s{n + 1:03d}"
    sx_path, sv_path, seal_path = f"{sign_dir}/Signature.xml", f"{sign_dir}/SignedValue.dat", f"{sign_dir}/Seal.esl"

    # No MaxSignId: the schema types it xs:ID, so it could not repeat the last Signature's ID
    # without making the file invalid; it is optional.
    entry = {"ID": sig_id, "Type": "Seal", "BaseLoc": "/" + sx_path}
    if sigs_root is None:
        out[sigs_path] = XML_DECL + element_xml("Signatures", xmlns=True, inner=element_xml("Signature", entry)).encode("utf-8")
    else:
        etree.SubElement(sigs_root, OFD + "Signature", entry)
        out[sigs_path] = _xml_bytes(sigs_root)
    out[seal_path] = identity.seal_der

    # Signature.xml: cover every file except Signatures.xml (continue-sign) and our own outputs.
    sx_bytes = _signature_xml(out, skip=(sigs_path, sx_path, sv_path), when=when, stamps=stamps, n=n,
                              seal_path=seal_path, sv_path=sv_path)
    out[sx_path] = sx_bytes

    tbs = ses.build_tbs_sign_v4(
        seal_der=identity.seal_der, time_info=when, data_hash=sm3(sx_bytes), property_info="/" + sx_path
    )
    signature = identity.key.sign_digest(_tbs_digest(identity.key, tbs, identity.seal_der))
    out[sv_path] = ses.build_signed_value_v4(tbs_der=tbs, signer_cert=identity.cert_der, signature=signature)
    return out
