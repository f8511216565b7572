"""The hostile-input catalogue (issue #9): one generator per class of attack, with the answer
the service must give. docs/HARDENING.md shows it as a table.

A case goes to one route, through the real HTTP app and through the library function
behind that route:

* ``verify``  POST /v1/verify            and `verifier.ofd_verify.verify_ofd`
* ``render``  POST /v1/render            and `ofd.render.render_png`
* ``qr``      POST /v1/qr/verify         and `verifier.qr_verify.verify_qr`
* ``issue``   POST /v1/licences          and `ofd.licence.model.validate_record`

Expectations are derived from what each attack breaks, not read off the code's output:
e.g. a SignedValue.dat of another licence still verifies as a signature and carries the
same seal, so only ``data_hash`` fails.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import cbor2
from lxml import etree

from keys import sm2
from keys.sm3 import sm3
from ofd.package import OFD_NS
from signer import ses
from signer.qr_payload import PREFIX, from_text, signed_message, to_digits

from .lab import SIGNATURE_XML, SIGNED_VALUE, Lab, edit_files, now, unpack
from .xml_attacks import LAUGHS, LAUGHS_REF, XXE, XXE_REF, with_doctype
from .zipcraft import E, MiB, raw_zip

NS = f'xmlns:ofd="{OFD_NS}"'
_OFD = "{%s}" % OFD_NS

# ------------------------------------------------------------------ expectations


@dataclass(frozen=True)
class Verdict:
    """A report: this verdict, exactly these failed checks; ``code`` must appear in the
    failing ``package`` / ``qr_format`` reason (the reader's or payload's error code)."""

    verdict: str
    fails: frozenset[str] = frozenset()
    code: str | None = None


@dataclass(frozen=True)
class Refused:
    """An HTTP error answer: status and ``error`` code."""

    status: int
    error: str


@dataclass(frozen=True)
class FieldProblems:
    """422 ``invalid_record`` over HTTP, `LicenceError` from the library, naming these (field, code) pairs;
    ``exact`` = no other field is named."""

    problems: frozenset[tuple[str, str]]
    exact: bool = False


@dataclass(frozen=True)
class Unrenderable:
    """Render: 422 ``unrenderable`` over HTTP; the library raises OFDError with ``code``."""

    code: str


@dataclass(frozen=True)
class Placeholder:
    """Render: the page is drawn (200 PNG); the part named by ``warning`` (a substring of one of
    the document's warnings) is left out. None: drawn in full, bounded by the renderer's own caps."""

    warning: str | None


def fails(verdict: str, *names: str, code: str | None = None) -> Verdict:
    return Verdict(verdict, frozenset(names), code)


def package(code: str) -> Verdict:
    return Verdict("invalid", frozenset({"package"}), code)


def qr_format(code: str) -> Verdict:
    return Verdict("invalid", frozenset({"qr_format"}), code)


@dataclass(frozen=True)
class Case:
    id: str
    route: str  # verify | render | qr | issue
    build: Callable[[Lab], Any]  # bytes (verify, render), str (qr), dict (issue)
    expect: Any  # over HTTP, and from the library unless `library` says otherwise
    what: str
    library: Any = None
    family: str = ""  # the attack class; a parametrised family (XXE in each XML file) shares one
    extra: dict = field(default_factory=dict)

    @property
    def lib_expect(self):
        return self.expect if self.library is None else self.library


CASES: list[Case] = []


def case(id: str, route: str, expect, what: str, library=None, family: str = "", **extra):
    def register(fn):
        CASES.append(Case(id, route, fn, expect, what, library, family or id, extra))
        return fn

    return register


# ------------------------------------------------------------------ helpers on a real licence


def base(lab: Lab) -> bytes:
    return lab.cached("base", lambda: lab.licence(1))


def replace(lab: Lab, changes: dict[str, bytes | None]) -> bytes:
    return edit_files(base(lab), changes)


def files(lab: Lab) -> dict[str, bytes]:
    return unpack(base(lab)).files


def resign(lab: Lab, data: bytes, signature_xml: bytes, *, mangle: Callable[[bytes], bytes] | None = None) -> bytes:
    """``data`` with Signature.xml replaced and sealed again with the issuer's own key, at the
    original signing time: everything but the deliberate change stays cryptographically right."""
    pkg = unpack(data)
    ident = lab.own
    when = ses.parse_signed_value(pkg[SIGNED_VALUE]).time_info
    tbs = ses.build_tbs_sign_v4(seal_der=ident.seal_der, time_info=when, data_hash=sm3(signature_xml),
                                property_info="/" + SIGNATURE_XML)
    sig = ident.key.sign(tbs)
    if mangle is not None:  # the signature's encoding, deliberately wrong
        sig = mangle(sig)
    pkg[SIGNATURE_XML] = signature_xml
    pkg[SIGNED_VALUE] = ses.build_signed_value_v4(tbs_der=tbs, signer_cert=ident.cert_der, signature=sig)
    return pkg.to_bytes()


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(content)) + content


def signature_tree(lab: Lab) -> etree._Element:
    return etree.fromstring(files(lab)[SIGNATURE_XML])


def tostring(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def png_header_only(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of width x height, all black: tiny on disk, huge once decoded."""
    row = b"\x00" + bytes((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


FIFTY_MP = (7072, 7072)  # 50.0 megapixels

# ================================================================== ZIP container


@case("zip_bomb_ratio", "verify", package("ratio"), "8 MiB of zeros deflated ~1000:1")
def _(lab):
    return raw_zip([E(b"OFD.xml", bytes(8 * MiB))])


@case("zip_bomb_declared_4gib", "verify", package("too_large"), "one entry declaring 4 GiB uncompressed")
def _(lab):
    return raw_zip([E(b"OFD.xml", b"<x/>", usize=0xFFFFFFF0)])


@case("zip_bomb_total", "verify", package("too_large"),
      "5 entries of 45 MiB, each under the ratio cap, 225 MiB together (absolute cap 200 MiB)")
def _(lab):
    return raw_zip([E(f"f{i}".encode(), b"a", usize=45 * MiB, csize=1 * MiB) for i in range(5)])


@case("zip_bomb_lying_header", "verify", package("size_mismatch"),
      "directory declares 100 bytes, the stream inflates to 64 MiB")
def _(lab):
    return raw_zip([E(b"OFD.xml", bytes(64 * MiB), usize=100, crc=0)])


@case("zip_100k_entries", "verify", package("too_many_entries"), "100,000 empty entries (ZIP64 count)")
def _(lab):
    return raw_zip([E(b"%06d" % i, b"", method=0) for i in range(100_000)])


@case("zip_nested", "verify", package("nested_archive"), "the licence packed inside an attachment of an OFD")
def _(lab):
    return replace(lab, {"Doc_0/Attachs/inner.zip": base(lab)})


for _name, _raw, _code in [
    ("dotdot", b"../../evil.xml", "path_traversal"),
    ("absolute", b"/etc/passwd", "absolute_name"),
    ("backslash", b"..\\..\\evil.xml", "backslash_name"),
    ("drive_letter", b"C:/Windows/win.ini", "drive_letter"),
    ("nul", b"Doc_0/Res/photo.png\x00.exe", "bad_name"),
]:
    case(f"zip_path_{_name}", "verify", package(_code), f"entry named `{_raw!r}` next to a real licence's entries",
         family=f"zip_path_{_name}")(
        lambda lab, raw=_raw: raw_zip([E(n.encode(), v) for n, v in files(lab).items()] + [E(raw, b"x")]))


@case("zip_duplicate_name", "verify", package("duplicate_name"), "Content.xml twice: a forged page after the signed one")
def _(lab):
    fs = files(lab)
    page = "Doc_0/Pages/Page_0/Content.xml"
    return raw_zip([E(n.encode(), v) for n, v in fs.items()] + [E(page.encode(), fs[page].replace("王".encode(), "李".encode()))])


@case("zip_encrypted", "verify", package("encrypted"), "entries flagged as ZipCrypto-encrypted")
def _(lab):
    return raw_zip([E(n.encode(), v, flags=0x801) for n, v in files(lab).items()])


@case("zip_truncated", "verify", package("corrupt_zip"), "the licence cut in half (no central directory)")
def _(lab):
    data = base(lab)
    return data[: len(data) // 2]


@case("zip_central_directory_corrupt", "verify", package("corrupt_zip"),
      "last central-directory header's signature overwritten")
def _(lab):
    data = bytearray(base(lab))
    cd = data.rfind(b"PK\x01\x02")
    data[cd: cd + 4] = b"XX\x01\x02"
    return bytes(data)


@case("zip_overlapping_entries", "verify", package("overlapping_entries"), "two directory entries share one local header")
def _(lab):
    return raw_zip([E(b"OFD.xml", b"<x/>"), E(b"OFD2.xml", b"<x/>", offset=0)])


@case("zip_hidden_data", "verify", package("hidden_data"), "bytes between entries that no entry owns")
def _(lab):
    return raw_zip([E(n.encode(), v) for n, v in files(lab).items()], gap=b"JUNK")


@case("not_a_zip", "verify", package("not_zip"), "a PDF sent as the document")
def _(lab):
    return b"%PDF-1.7\n" + bytes(200)


@case("empty_body", "verify", Refused(422, "no_document"), "an empty request body", library=package("empty"))
def _(lab):
    return b""


@case("upload_200mb", "verify", Refused(413, "too_large"),
      "200 MiB upload, declared and streamed without Content-Length (over real HTTP: test_200_mib_upload_*)",
      library=package("too_large"), http=False)
def _(lab):
    return bytes(200 * MiB)


# ================================================================== OFD.xml and the XML layer


@case("ofd_xml_missing", "verify", package("missing_ofd_xml"), "the licence without OFD.xml")
def _(lab):
    return replace(lab, {"OFD.xml": None})


@case("ofd_xml_empty", "verify", package("not_xml"), "OFD.xml of zero bytes")
def _(lab):
    return replace(lab, {"OFD.xml": b""})


@case("ofd_xml_not_xml", "verify", package("not_xml"), "OFD.xml that is a PNG")
def _(lab):
    return replace(lab, {"OFD.xml": png_header_only(8, 8)})


@case("ofd_xml_wrong_namespace", "verify", package("wrong_namespace"), "OFD.xml in a look-alike namespace")
def _(lab):
    return replace(lab, {"OFD.xml": files(lab)["OFD.xml"].replace(OFD_NS.encode(), b"http://www.ofdspec.org/2016/evil")})


# Where each XML file of a licence is parsed, so where an entity attack is caught:
# OFD.xml, Document.xml and Signatures.xml open the package; Signature.xml belongs to its
# signature (and without it nothing is covered); resource, page and tag files are never
# parsed by the verifier, only digested, so there the change itself is what fails.
XML_FILES = {
    "OFD.xml": package("doctype_forbidden"),
    "Doc_0/Document.xml": package("doctype_forbidden"),
    "Doc_0/Signs/Signatures.xml": package("doctype_forbidden"),
    SIGNATURE_XML: fails("invalid", "signature_xml", "coverage"),
    "Doc_0/PublicRes.xml": fails("invalid", "references"),
    "Doc_0/DocumentRes.xml": fails("invalid", "references"),
    "Doc_0/Pages/Page_0/Content.xml": fails("invalid", "references"),
    "Doc_0/Tags/CustomTags.xml": fails("invalid", "references"),
    "Doc_0/Tags/CustomTag.xml": fails("invalid", "references"),
}
# The renderer parses OFD.xml, Document.xml, the resources and the page; it reads seals
# through Signatures.xml/Signature.xml but a broken seal only loses its picture.
RENDER_PARSES = {"OFD.xml", "Doc_0/Document.xml", "Doc_0/PublicRes.xml", "Doc_0/DocumentRes.xml",
                 "Doc_0/Pages/Page_0/Content.xml", "Doc_0/Signs/Signatures.xml"}

for _attack, _decl, _ref in (("xxe", XXE, XXE_REF), ("billion_laughs", LAUGHS, LAUGHS_REF)):
    for _file, _verdict in XML_FILES.items():
        _short = _file.rsplit("/", 1)[-1].removesuffix(".xml").lower()
        _build = (lambda lab, f=_file, d=_decl, r=_ref: replace(lab, {f: with_doctype(files(lab)[f], d, r)}))
        case(f"{_attack}_{_short}", "verify", _verdict, f"{_attack} DOCTYPE in {_file}", family=_attack)(_build)
        if _file in RENDER_PARSES:
            case(f"{_attack}_{_short}_render", "render", Unrenderable("doctype_forbidden"),
                 f"{_attack} DOCTYPE in {_file}, sent to render", family=_attack)(_build)


@case("xxe_utf16", "verify", package("doctype_forbidden"), "XXE in OFD.xml re-encoded as UTF-16")
def _(lab):
    xml = with_doctype(files(lab)["OFD.xml"], XXE, XXE_REF).decode("utf-8")
    return replace(lab, {"OFD.xml": xml.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")})


for _id, _loc, _code, _what in [
    ("st_loc_dangling_docroot", b"Doc_0/Nowhere.xml", "dangling_ref", "DocRoot pointing at a file that is not there"),
    ("st_loc_escape", b"../../etc/passwd", "path_escape", "DocRoot climbing out of the package (../../etc/passwd)"),
    ("st_loc_url", b"file:///etc/passwd", "bad_loc", "DocRoot as a URL (file:///etc/passwd)"),
    ("st_loc_self_docroot", b"/OFD.xml", "wrong_root", "DocRoot pointing back at OFD.xml (a cycle)"),
]:
    case(_id, "verify", package(_code), _what)(
        lambda lab, loc=_loc: replace(lab, {"OFD.xml": files(lab)["OFD.xml"].replace(b"Doc_0/Document.xml", loc)}))


@case("st_loc_cyclic_composite", "render", Placeholder("composite graphic units expand to more than"),
      "two CompositeGraphicUnits drawing each other ten times each (a cycle with 10^n fan-out), used on the page")
def _(lab):
    def unit(uid: int, other: int) -> str:
        objs = "".join(f'<ofd:CompositeObject ID="{uid * 100 + i}" ResourceID="{other}" Boundary="0 0 10 10"/>' for i in range(10))
        return f'<ofd:CompositeGraphicUnit ID="{uid}" Width="10" Height="10"><ofd:Content>{objs}</ofd:Content></ofd:CompositeGraphicUnit>'

    res = f'<ofd:Res {NS} BaseLoc="Res"><ofd:CompositeGraphicUnits>{unit(9005, 9006)}{unit(9006, 9005)}</ofd:CompositeGraphicUnits></ofd:Res>'
    page = files(lab)["Doc_0/Pages/Page_0/Content.xml"]
    page = page.replace(b"</ofd:Layer>", b'<ofd:CompositeObject ID="9007" ResourceID="9005" Boundary="0 0 10 10"/></ofd:Layer>', 1)
    pub = files(lab)["Doc_0/PublicRes.xml"].replace(b"</ofd:Res>", res.split(">", 1)[1].replace("</ofd:Res>", "").encode() + b"</ofd:Res>")
    return replace(lab, {"Doc_0/PublicRes.xml": pub, "Doc_0/Pages/Page_0/Content.xml": page})


@case("giant_deltax", "render", Placeholder(None),
      "a TextCode with a DeltaX of 10 million entries ('g 10000000 1') and another of 200,000 numbers")
def _(lab):
    parts = files(lab)["Doc_0/Pages/Page_0/Content.xml"].split(b'DeltaX="')  # the licence has 21
    parts[1] = b"g 10000000 1 " + parts[1]
    parts[2] = b"1 " * 200_000 + parts[2]
    return replace(lab, {"Doc_0/Pages/Page_0/Content.xml": b'DeltaX="'.join(parts)})


@case("image_50_megapixel_render", "render", Placeholder("(50.0 megapixels, over the 25 megapixel limit)"),
      "the holder photo replaced by a 7072x7072 (50 MP) PNG of a few KiB")
def _(lab):
    name = next(n for n in files(lab) if n.startswith("Doc_0/Res/") and n.endswith(".jpg"))
    return replace(lab, {name: png_header_only(*FIFTY_MP)})


# ================================================================== signatures


@case("signature_references_itself", "verify", fails("invalid", "references"),
      "Signature.xml lists itself among the files it protects (no digest can ever match); re-sealed properly")
def _(lab):
    root = signature_tree(lab)
    refs = root.find(f"{_OFD}SignedInfo/{_OFD}References")
    ref = etree.SubElement(refs, _OFD + "Reference", FileRef="/" + SIGNATURE_XML)
    etree.SubElement(ref, _OFD + "CheckValue").text = base64.b64encode(sm3(b"")).decode()
    return resign(lab, base(lab), tostring(root))


@case("signature_signed_value_is_itself", "verify", fails("invalid", "signed_value", "coverage"),
      "SignedValue of Signature.xml naming Signature.xml itself")
def _(lab):
    xml = files(lab)[SIGNATURE_XML].replace(b"/" + SIGNED_VALUE.encode(), b"/" + SIGNATURE_XML.encode())
    return replace(lab, {SIGNATURE_XML: xml})


def weak_references(lab: Lab, method: str) -> bytes:
    """The licence with every Reference digested by ``method`` (hashlib name), properly re-sealed."""
    root = signature_tree(lab)
    fs = files(lab)
    refs = root.find(f"{_OFD}SignedInfo/{_OFD}References")
    refs.set("CheckMethod", method)
    for ref in refs:
        digest = hashlib.new(method, fs[ref.get("FileRef").lstrip("/")]).digest()
        ref.find(_OFD + "CheckValue").text = base64.b64encode(digest).decode()
    return resign(lab, base(lab), tostring(root))


for _method in ("MD5", "SHA1"):
    case(f"{_method.lower()}_references", "verify", fails("indeterminate"),
         f"every Reference digested with {_method} (collisions can be made), properly re-sealed: integrity unproven",
         family="md5_references")(lambda lab, m=_method: weak_references(lab, m))


@case("signed_value_swapped", "verify", fails("invalid", "data_hash"), "SignedValue.dat of another genuine licence")
def _(lab):
    return replace(lab, {SIGNED_VALUE: unpack(lab.licence(2))[SIGNED_VALUE]})


@case("signed_value_truncated", "verify", fails("invalid", "signed_value"), "SignedValue.dat cut to its first 100 bytes",
      ses_code={"truncated"})
def _(lab):
    return replace(lab, {SIGNED_VALUE: files(lab)[SIGNED_VALUE][:100]})


@case("signed_value_missing", "verify", fails("invalid", "signed_value"), "SignedValue.dat removed")
def _(lab):
    return replace(lab, {SIGNED_VALUE: None})


@case("signature_raw_not_der", "verify", fails("valid"),
      "seal signature as raw 64-byte r||s instead of DER, otherwise correct: the same (r, s), accepted as vendors write both")
def _(lab):
    return resign(lab, base(lab), files(lab)[SIGNATURE_XML], mangle=sm2.to_raw)


@case("signature_raw_65_bytes", "verify", fails("invalid", "signature"),
      "seal signature as raw r||s plus one byte: neither DER nor raw", family="signature_raw_not_der")
def _(lab):
    return resign(lab, base(lab), files(lab)[SIGNATURE_XML], mangle=lambda sig: sm2.to_raw(sig) + b"\x00")


@case("signature_der_wrapped_twice", "verify", fails("invalid", "signature"),
      "seal signature DER inside another SEQUENCE (DER of DER)", family="signature_raw_not_der")
def _(lab):
    return resign(lab, base(lab), files(lab)[SIGNATURE_XML], mangle=lambda sig: _tlv(0x30, sig))


@case("signed_value_bare_raw_sm2", "verify", fails("invalid", "signed_value"),
      "Type=\"Seal\" signature whose SignedValue.dat is a bare raw r||s (64 bytes)")
def _(lab):
    return replace(lab, {SIGNED_VALUE: sm2.to_raw(lab.own.key.sign(files(lab)[SIGNATURE_XML]))})


# Malformed DER at every offset class: the outer SEQUENCE, its first child (TBS_Sign) and a
# deep element (the seal's first child); each mutation keeps every other length consistent.


def _header_len(buf: bytes, at: int) -> int:
    first = buf[at + 1]
    return 2 if first < 0x80 else 2 + (first & 0x7F)


def _tlv_at(buf: bytes, path: tuple[int, ...]) -> int:
    """Offset of the TLV at ``path``: () the whole value, (0,) its first child, (0, 1) that child's second child."""
    at = 0
    for i in path:
        at = ses.der_children(buf, at)[i][1]
    return at


def _mutate(buf: bytes, at: int, kind: str) -> bytes:
    h = _header_len(buf, at)
    if kind == "length_overflow":  # same header size, a length running past everything
        return buf[:at + 1] + bytes([0x80 | (h - 2)]) + b"\xff" * (h - 2) + buf[at + h:] if h > 2 else \
            buf[:at + 1] + b"\x7f" + buf[at + 2:]
    if kind == "wrong_tag":  # SEQUENCE -> SET, or a primitive's tag -> INTEGER with a constructed bit
        return buf[:at] + bytes([buf[at] ^ 0x01]) + buf[at + 1:]
    if kind == "indefinite_length":  # 0x80 and an end-of-contents after the value: same total size
        n = int.from_bytes(buf[at + 2:at + h], "big") if h > 2 else buf[at + 1]
        end = at + h + n
        pad = h - 2
        return buf[:at + 1] + b"\x80" + buf[at + h:end] + b"\x00\x00" + b"\x00" * (pad - 2) + buf[end:] if pad >= 2 \
            else buf[:at + 1] + b"\x80" + buf[at + 2:]
    raise ValueError(kind)


_SES_CODES = {"length_overflow": {"bad_length", "truncated"}, "wrong_tag": {"bad_der", "bad_structure", "not_ses", "bad_tag"},
              "indefinite_length": {"indefinite_length"}}
for _path, _where in (((), "outer"), ((0,), "tbs_sign"), ((0, 1), "seal")):
    for _kind, _codes in _SES_CODES.items():
        case(f"der_{_kind}_{_where}", "verify", fails("invalid", "signed_value"),
             f"SignedValue.dat: {_kind.replace('_', ' ')} at the {_where.replace('_', ' ')}", family=f"der_{_kind}",
             ses_code=_codes)(
            lambda lab, p=_path, k=_kind: replace(lab, {SIGNED_VALUE: _mutate(files(lab)[SIGNED_VALUE], _tlv_at(files(lab)[SIGNED_VALUE], p), k)}))


@case("der_trailing_bytes", "verify", fails("invalid", "signed_value"), "SignedValue.dat with one byte after the value",
      family="der_trailing_bytes", ses_code={"trailing_data"})
def _(lab):
    return replace(lab, {SIGNED_VALUE: files(lab)[SIGNED_VALUE] + b"\x00"})


@case("der_trailing_inside", "verify", fails("invalid", "signed_value"),
      "SignedValue.dat with an extra element inside the outer SEQUENCE (lengths consistent)",
      family="der_trailing_bytes", ses_code={"bad_structure"})
def _(lab):
    sv = files(lab)[SIGNED_VALUE]
    h = _header_len(sv, 0)
    return replace(lab, {SIGNED_VALUE: _tlv(0x30, sv[h:] + b"\x05\x00")})


# ------------------------------------------------------------------ wrong signers


@case("seal_of_another_issuer", "verify", fails("invalid", "seal_cert_list"),
      "our key and certificate, but the seal (Seal.esl and inside the signed value) of another issuer")
def _(lab):
    from signer.ofd_sign import SigningIdentity

    mine, theirs = lab.own, lab.other_issuer.identity()
    return lab.signed_with(SigningIdentity(key=mine.key, cert_der=mine.cert_der, seal_der=theirs.seal_der, kid=mine.kid))


@case("cert_expired", "verify", fails("invalid", "signer_cert_validity"),
      "signed a year after the signer certificate expired (certificate from our root)")
def _(lab):
    t = now()
    ident = lab.identity(not_before=t - timedelta(days=3 * 365), not_after=t - timedelta(days=2 * 365))
    return lab.signed_with(ident, when=t - timedelta(days=365))


@case("cert_not_yet_valid", "verify", fails("invalid", "signer_cert_validity"),
      "signed today with a certificate valid only from next year")
def _(lab):
    t = now()
    ident = lab.identity(not_before=t + timedelta(days=365), not_after=t + timedelta(days=2 * 365))
    return lab.signed_with(ident, when=t - timedelta(minutes=1))


@case("cert_wrong_key_usage", "verify", fails("invalid", "key_usage"),
      "signer certificate is a CA certificate (keyCertSign, no digitalSignature)")
def _(lab):
    t = now()
    ident = lab.identity(not_before=t - timedelta(days=1), not_after=t + timedelta(days=365), usage="ca")
    return lab.signed_with(ident, when=t - timedelta(minutes=1))


@case("cert_untrusted_root", "verify", fails("indeterminate"),
      "everything correct, but the certificate chains to a root we do not trust")
def _(lab):
    t = now()
    ident = lab.identity(not_before=t - timedelta(days=1), not_after=t + timedelta(days=365), untrusted_root=True)
    return lab.signed_with(ident, when=t - timedelta(minutes=1))


@case("cert_revoked", "verify", fails("invalid", "revocation"),
      "signed by a key of ours revoked (key compromise) with a cut-off before the signing time")
def _(lab):
    return lab.revoked_licence()


@case("signed_in_the_future", "verify", fails("invalid", "signing_time"), "signing time a day ahead of the verifier's clock")
def _(lab):
    return lab.signed_with(lab.own, when=now() + timedelta(days=1))


@case("unsigned_file_added", "verify", fails("invalid", "coverage"), "a genuine licence with one extra, unsigned page file")
def _(lab):
    return replace(lab, {"Doc_0/Pages/Page_1/Content.xml": files(lab)["Doc_0/Pages/Page_0/Content.xml"]})


# ================================================================== records (issue)

EVERY_FIELD_WRONG = {
    "name": "<script>", "sex": "X", "id_number": "110105198503120000", "category": "", "item": 7,
    "first_issue_date": "2099-13-45", "valid_from": "yesterday", "reviewed_on": "2020-02-30", "issuer_name": "\u202e",
    "issuer_code": "123", "photo": "not base64!", "version": 0, "valid_until": 5, "review_due": [],
    "licence_number": "lower-case", "issue_date": {"d": 1}, "nickname": "extra",
}
EVERY_FIELD = frozenset(EVERY_FIELD_WRONG)


@case("record_every_field_wrong", "issue", FieldProblems(frozenset(), exact=True),
      "a record in which every field (and one unknown field) is wrong: one error per field, all at once", fields=EVERY_FIELD)
def _(lab):
    return dict(EVERY_FIELD_WRONG)


@case("record_not_an_object", "issue", FieldProblems(frozenset({("record", "not_object")})),
      "a JSON array where the record belongs")
def _(lab):
    return [1, 2, 3]


@case("photo_50_megapixel", "issue", FieldProblems(frozenset({("photo", "pixel_size")})),
      "licence photo: a 7072x7072 (50 MP) PNG of a few KiB")
def _(lab):
    return lab.record(60, photo=png_header_only(*FIFTY_MP))


@case("name_rtl_override", "issue", FieldProblems(frozenset({("name", "bidi_control")})),
      "holder name with U+202E RIGHT-TO-LEFT OVERRIDE (displays reversed)")
def _(lab):
    return lab.record(61, name="王\u202e测试")


@case("name_zero_width", "issue", FieldProblems(frozenset({("name", "zero_width")})),
      "holder name with U+200B ZERO WIDTH SPACE (two names that look equal)")
def _(lab):
    return lab.record(62, name="王\u200b测试")


@case("issuer_name_bidi_isolate", "issue", FieldProblems(frozenset({("issuer_name", "bidi_control")})),
      "issuer name with U+2067 RIGHT-TO-LEFT ISOLATE")
def _(lab):
    return {**lab.record(63), "issuer_name": lab.name + "\u2067"}


# ================================================================== QR payloads


def qr_text(lab: Lab, seq: int = 1) -> str:
    from ofd.licence.model import validate_record
    from signer.qr_payload import make_qr_text

    return lab.cached(f"qr{seq}", lambda: make_qr_text(validate_record(lab.record(seq)), lab.own,
                                                       portal="https://portal.example"))


def qr_from_body(lab: Lab, body: bytes, sign: bool = True) -> str:
    """A payload with this CBOR body, signed by the issuer's own key (so only the body is wrong)."""
    sig = sm2.to_raw(lab.own.key.sign(signed_message(body))) if sign else bytes(64)
    return "https://portal.example/v#" + PREFIX + to_digits(body + sig)


def qr_items(lab: Lab) -> list:
    return cbor2.loads(from_text(qr_text(lab))[0])


def _qr_with(index: int, value):
    def build(lab):
        items = qr_items(lab)
        items[index] = value
        return qr_from_body(lab, cbor2.dumps(items))
    return build


@case("qr_empty", "qr", Refused(422, "no_text"), "empty QR text", library=qr_format("prefix"))
def _(lab):
    return ""


for _id, _build, _code, _what in [
    ("qr_foreign_url", lambda lab: "https://evil.example/login?next=/v", "prefix", "a phishing URL"),
    ("qr_wrong_version", lambda lab: qr_text(lab).replace("EC1:", "EC9:"), "version", "payload version EC9"),
    ("qr_not_digits", lambda lab: qr_text(lab)[:-5] + "１２３４５", "encoding", "full-width digits at the end"),
    ("qr_leading_zero", lambda lab: qr_text(lab).replace("EC1:", "EC1:0"), "encoding", "a leading zero digit"),
    ("qr_cut_short", lambda lab: qr_text(lab)[:-150], "encoding", "the last 150 digits missing (the marker byte no longer leads)"),
    ("qr_truncated", lambda lab: qr_from_body(lab, b"\x82\x01\x02"), "truncated", "3-byte body: shorter than key id + signature"),
    ("qr_too_long", lambda lab: qr_text(lab) + "0" * 3000, "too_long", "3000 extra digits"),
    ("qr_not_cbor", lambda lab: qr_from_body(lab, b"\xff" * 40), "cbor", "signed body that is not CBOR"),
    ("qr_wrong_shape", lambda lab: qr_from_body(lab, cbor2.dumps(qr_items(lab)[:-1])), "structure", "CBOR array one item short"),
    ("qr_not_array", lambda lab: qr_from_body(lab, cbor2.dumps({"kid": b"x" * 8, "pad": "y" * 40})), "structure", "CBOR map instead of array"),
    ("qr_wrong_type", _qr_with(8, 1234567890), "item", "masked ID number as an integer"),
    ("qr_bool_for_int", _qr_with(5, True), "item", "identifier version as CBOR true"),
    ("qr_non_canonical", lambda lab: qr_from_body(lab, b"\x9f" + cbor2.dumps(qr_items(lab))[1:] + b"\xff"),
     "structure", "indefinite-length CBOR array"),
    ("qr_date_out_of_range", _qr_with(11, 10**6), "item", "valid_from 2,700 years out"),
    ("qr_signed_after_9999", _qr_with(1, 2**32 - 1), "item", "signing minute 2^32-1 (year 10136): fuzz crash, now refused"),
    ("qr_bad_gb18030", _qr_with(7, b"\xff\xfe\xfd"), "item", "name bytes that are not GB 18030"),
]:
    case(_id, "qr", qr_format(_code), _what, family="qr_wrong_shape" if _code in ("structure", "cbor") else _id)(_build)


@case("qr_forged_signature", "qr", fails("invalid", "qr_signature"), "a genuine payload with one name character changed")
def _(lab):
    items = qr_items(lab)
    items[7] = "李测试".encode("gb18030")
    body = cbor2.dumps(items)
    return "https://portal.example/v#" + PREFIX + to_digits(body + from_text(qr_text(lab))[1])


@case("qr_unknown_key", "qr", fails("indeterminate"), "a well-formed payload signed by a key id we never issued")
def _(lab):
    items = qr_items(lab)
    items[0] = bytes(8)
    return qr_from_body(lab, cbor2.dumps(items))


def families() -> dict[str, list[Case]]:
    """Attack classes (a parametrised family, e.g. XXE in each XML file, counts once) and their cases."""
    out: dict[str, list[Case]] = {}
    for c in CASES:
        out.setdefault(c.family, []).append(c)
    return out


def describe(want) -> str:
    """One expectation as docs/HARDENING.md shows it."""
    if isinstance(want, Verdict):
        out = f"`{want.verdict}`"
        if want.fails:
            out += ", fails " + ", ".join(f"`{n}`" for n in sorted(want.fails))
        return out + (f" ({want.code})" if want.code else "")
    if isinstance(want, Refused):
        return f"{want.status} `{want.error}`"
    if isinstance(want, FieldProblems):
        named = ", ".join(f"`{f}`: {c}" for f, c in sorted(want.problems))
        return "422 `invalid_record`, " + (named or "one error for every field")
    if isinstance(want, Unrenderable):
        return f"422 `unrenderable` ({want.code})"
    if isinstance(want, Placeholder):
        return "200 PNG" + (f", warning “{want.warning}”" if want.warning else ", drawn within the renderer's caps")
    raise TypeError(want)


def markdown_table() -> str:
    """The catalogue as a Markdown table: one row per case, grouped by attack class."""
    rows = ["| class | case (test id) | input | route | expected (HTTP) | expected (library) |",
            "|---|---|---|---|---|---|"]
    for fam, cases in families().items():
        for c in cases:
            lib = describe(c.lib_expect) if c.library is not None else "same"
            rows.append(f"| {fam} | `{c.id}` | {c.what.replace('|', '/')} | {c.route} | {describe(c.expect)} | {lib} |")
    return "\n".join(rows)
