"""The XML side of OFD signatures (GB/T 33190 Signatures.xml / Signature.xml), no crypto.

Gives the verifier what it must check and exactly where it lives: the resolved path and
the *exact bytes* of each Signature.xml (its SM3 is what the seal signs), each
Reference's resolved FileRef and decoded CheckValue, the StampAnnots and the resolved
Seal.esl / SignedValue.dat paths. Vendor quirks handled (STANDARDS.md §3.7): BaseLoc
relative to Signatures.xml ("Sign_0/Signature.xml", KingGrid), ofdrw's "Signs/" prefix
hack, SignedValue relative to Signature.xml (Yunnan), Signatures.xml outside Signs/
(iOFD), Provider given as child elements instead of attributes (iOFD).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ofd.errors import MalformedOFD
from ofd.xmlsafe import child, child_text, children, local_name, parse_box, parse_id, required, required_attr

if TYPE_CHECKING:
    from ofd.reader import OFDDocument

_PROVIDER_FIELDS = ("ProviderName", "Version", "Company", "ProtocolVer")


@dataclass(frozen=True)
class SignatureEntry:
    id: str
    type: str  # 'Seal' (the default when absent) or 'Sign'
    base_loc: str  # resolved package path of Signature.xml
    raw_base_loc: str = ""  # as written in Signatures.xml


@dataclass(frozen=True)
class Reference:
    file_ref: str  # resolved package path (may be absent from the package: the verifier reports it)
    raw_file_ref: str
    check_value: bytes


@dataclass(frozen=True)
class StampAnnot:
    id: str
    page_ref: int
    boundary: tuple[float, float, float, float]
    clip: tuple[float, float, float, float] | None = None


@dataclass
class SignatureXml:
    path: str
    raw: bytes  # exact bytes of Signature.xml as stored in the package
    provider: dict[str, str]
    signature_method: str | None
    signature_datetime: str | None
    check_method: str | None  # None = attribute absent (the 2016 XSD default would be MD5)
    references: list[Reference]
    stamp_annots: list[StampAnnot]
    seal_path: str | None
    signed_value_path: str
    parameters: dict[str, str] = field(default_factory=dict)


def parse_signatures(doc: "OFDDocument") -> list[SignatureEntry]:
    """Entries of Signatures.xml with each BaseLoc resolved to an existing Signature.xml."""
    path = doc.signatures_path
    if path is None:
        return []
    root = doc.xml(path, "Signatures")
    sig_dir = path.rpartition("/")[0]
    # Standard base first, then ofdrw's DLOFDReader "Signs/" hack, then the package root.
    bases = [sig_dir, f"{doc.doc_dir}/Signs" if doc.doc_dir else "Signs", ""]
    entries: list[SignatureEntry] = []
    seen_ids: set[str] = set()
    seen_paths: set[str] = set()
    for el in children(root, "Signature"):
        sid = required_attr(el, "ID", path)
        raw_loc = required_attr(el, "BaseLoc", path)
        resolved = doc.locate(raw_loc, bases, path)
        if resolved in seen_paths:  # one signature must not be counted twice
            raise MalformedOFD("duplicate_ref", entry=path, loc=raw_loc)
        if sid in seen_ids:
            doc.warnings.append(f"{path}: signature ID '{sid}' repeated")
        seen_paths.add(resolved)
        seen_ids.add(sid)
        entries.append(SignatureEntry(sid, (el.get("Type") or "Seal").strip(), resolved, raw_loc))
    return entries


def _provider(signed_info, where: str) -> dict[str, str]:
    el = required(child(signed_info, "Provider"), "Provider", where)
    out = {k: v for k, v in el.attrib.items() if isinstance(k, str)}
    for c in el:  # iOFD writes the fields as child elements
        name = local_name(c)
        if name in _PROVIDER_FIELDS and (c.text or "").strip():
            out.setdefault(name, c.text.strip())
    return out


def _check_value(el, where: str) -> bytes:
    text = "".join((child_text(el, "CheckValue") or "").split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedOFD("bad_value", entry=where, what="CheckValue", value=text[:60]) from None


def parse_signature_xml(doc: "OFDDocument", entry: SignatureEntry) -> SignatureXml:
    """Parse one Signature.xml; paths inside it resolve against its own directory first."""
    where = entry.base_loc
    raw = doc.read(where)
    root = doc.xml(where, "Signature")
    sig_dir = where.rpartition("/")[0]
    info = required(child(root, "SignedInfo"), "SignedInfo", where)
    refs_el = required(child(info, "References"), "References", where)
    references = []
    for ref in children(refs_el, "Reference"):
        raw_ref = required_attr(ref, "FileRef", where)
        path = doc.locate(raw_ref, ["", sig_dir] if raw_ref.startswith("/") else [sig_dir, ""], where, False)
        references.append(Reference(path, raw_ref, _check_value(ref, where)))
    stamps = []
    for st in children(info, "StampAnnot"):
        clip = st.get("Clip")
        stamps.append(StampAnnot(
            required_attr(st, "ID", where),
            parse_id(required_attr(st, "PageRef", where), where, "StampAnnot PageRef"),
            parse_box(required_attr(st, "Boundary", where), where, "StampAnnot Boundary"),
            parse_box(clip, where, "StampAnnot Clip") if clip and clip.strip() else None))
    seal = child(info, "Seal")
    seal_loc = child_text(seal, "BaseLoc") if seal is not None else None
    signed_value = required(child_text(root, "SignedValue"), "SignedValue", where)
    params = child(info, "Parameters")
    return SignatureXml(
        path=where,
        raw=raw,
        provider=_provider(info, where),
        signature_method=child_text(info, "SignatureMethod"),
        signature_datetime=child_text(info, "SignatureDateTime"),
        check_method=(refs_el.get("CheckMethod") or "").strip() or None,
        references=references,
        stamp_annots=stamps,
        seal_path=doc.locate(seal_loc, [sig_dir, ""], where, must_exist=False) if seal_loc else None,
        signed_value_path=doc.locate(signed_value, [sig_dir, ""], where, must_exist=False),
        parameters={p.get("Name") or "": (p.text or "") for p in children(params, "Parameter")} if params is not None else {},
    )
