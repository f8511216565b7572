"""Hostile packages, all generated here: each must give the right typed error, quickly.

The generators (`raw_zip`, which can lie in any header field, the entity attacks) live in
tests/hostile/, shared with the hostile-input catalogue and the fuzz seeds.
"""

from __future__ import annotations

import io
import signal
import zipfile
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofd.errors import MalformedOFD, UnsafePackage
from ofd.package import OFD_NS, Package
from ofd.reader import open_ofd
from ofd.safezip import Limits, read_package
from ofd.signatures_xml import parse_signature_xml
from ofd.xmlsafe import parse_xml
from tests.hostile.xml_attacks import LAUGHS as LAUGHS_DECL
from tests.hostile.xml_attacks import XXE as XXE_DECL
from tests.hostile.zipcraft import E, MiB, exercise, raw_zip
from tests.test_reader import SAMPLES, build_ofd

NS = f'xmlns:ofd="{OFD_NS}"'


@pytest.fixture(autouse=True)
def time_limit():
    """Every hostile input must be refused fast; a hang fails the test instead of the suite."""

    def boom(signum, frame):
        raise TimeoutError("reader took too long on hostile input")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def code_of(exc_type, fn, *args, **kw) -> str:
    with pytest.raises(exc_type) as exc:
        fn(*args, **kw)
    assert exc.value.message_en and exc.value.message_zh
    return exc.value.code


OK = E(b"OFD.xml", b"<x/>")


def test_raw_zip_helper_makes_valid_zips():
    assert read_package(raw_zip([OK, E(b"a/b.txt", b"hello", method=0), E(b"a/", b"")])).files == {
        "OFD.xml": b"<x/>",
        "a/b.txt": b"hello",
    }


# --- zip bombs and size caps -------------------------------------------------------------


def test_ratio_bomb():
    assert code_of(UnsafePackage, read_package, raw_zip([E(b"bomb.xml", bytes(8 * MiB))])) == "ratio"


def test_size_bomb_with_honest_headers():
    data = raw_zip([E(b"big.bin", bytes(range(256)) * (8 * 1024), method=0)])  # 2 MiB stored
    assert code_of(UnsafePackage, read_package, data, Limits(max_entry_bytes=MiB)) == "too_large"


def test_declared_size_over_cap_is_refused_before_inflating():
    assert code_of(UnsafePackage, read_package, raw_zip([E(b"x", b"abc", usize=0xFFFFFFF0)])) == "too_large"


def test_total_size_cap():
    entries = [E(f"f{i}".encode(), b"a", usize=45 * MiB, csize=1 * MiB) for i in range(5)]
    exc = pytest.raises(UnsafePackage, read_package, raw_zip(entries)).value
    assert exc.code == "too_large" and exc.details["what"] == "total uncompressed"


def test_lying_header_bomb_stops_at_declared_size():
    # The directory says 100 bytes with an innocent ratio; the stream inflates to 64 MiB.
    data = raw_zip([E(b"liar.xml", bytes(64 * MiB), usize=100, csize=None, crc=0)])
    assert code_of(UnsafePackage, read_package, data) == "size_mismatch"


def test_archive_size_cap():
    data = raw_zip([E(b"r.bin", bytes(range(256)) * 4096, method=0)])
    assert code_of(UnsafePackage, read_package, data, Limits(max_archive_bytes=len(data) - 1)) == "too_large"


def test_too_many_entries_100k():
    entries = [E(b"%06d" % i, b"", method=0) for i in range(100_000)]
    assert code_of(UnsafePackage, read_package, raw_zip(entries)) == "too_many_entries"


def test_entry_count_that_lies_low():
    assert code_of(UnsafePackage, read_package, raw_zip([OK, E(b"b", b"b")], count=1)) == "corrupt_zip"


def test_overlapping_entries():
    data = raw_zip([OK, E(b"OFD2.xml", b"<x/>", offset=0)])
    assert code_of(UnsafePackage, read_package, data) == "overlapping_entries"


def test_hidden_data_between_entries():
    assert code_of(UnsafePackage, read_package, raw_zip([OK, E(b"b", b"b")], gap=b"JUNK" * 10)) == "hidden_data"


# --- names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, code",
    [
        (b"../evil.xml", "path_traversal"),
        (b"Doc_0/../../evil.xml", "path_traversal"),
        (b"/etc/passwd", "absolute_name"),
        (b"Doc_0\\Document.xml", "backslash_name"),
        (b"C:/Windows/win.ini", "drive_letter"),
        (b"OFD.xml\x00.png", "bad_name"),
        (b"a//b", "bad_name"),
        (b"./OFD.xml", "bad_name"),
        (b"a\x1bb", "bad_name"),
        (b"\xff\xfe\xfd", "bad_name"),
    ],
)
def test_bad_names(name, code):
    assert code_of(UnsafePackage, read_package, raw_zip([OK, E(name, b"x")])) == code


def test_gbk_name_without_utf8_flag_is_decoded():
    pkg = read_package(raw_zip([OK, E("照片.png".encode("gbk"), b"x", flags=0)]))
    assert "照片.png" in pkg


@pytest.mark.parametrize("second", [b"OFD.xml", b"OFD.xml/inner", b"OFD.xml/"])
def test_duplicate_names_and_file_dir_clash(second):
    assert code_of(UnsafePackage, read_package, raw_zip([OK, E(second, b"" if second.endswith(b"/") else b"y")])) == "duplicate_name"


# --- container oddities --------------------------------------------------------------------


def test_encrypted_flag():
    assert code_of(UnsafePackage, read_package, raw_zip([E(b"OFD.xml", b"<x/>", flags=0x801)])) == "encrypted"


def test_unsupported_method():
    assert code_of(UnsafePackage, read_package, raw_zip([E(b"a", b"abc", method=12)])) == "unsupported_compression"


def test_bad_crc():
    assert code_of(UnsafePackage, read_package, raw_zip([E(b"a", b"abc", crc=1)])) == "bad_crc"


def test_stored_size_mismatch():
    assert code_of(UnsafePackage, read_package, raw_zip([E(b"a", b"abc", method=0, usize=2)])) == "size_mismatch"


def test_nested_archive_refused_unless_allowed():
    inner = raw_zip([OK])
    data = raw_zip([OK, E(b"Doc_0/Attachs/a.zip", inner)])
    assert code_of(UnsafePackage, read_package, data) == "nested_archive"
    assert read_package(data, Limits(allow_nested_archives=True))["Doc_0/Attachs/a.zip"] == inner


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "empty"),
        (b"hello, world", "not_zip"),
        (b"%PDF-1.7\n" + bytes(100), "not_zip"),
        (b"PK\x03\x04" + bytes(10), "corrupt_zip"),
    ],
)
def test_not_a_package(data, code):
    assert code_of(UnsafePackage, open_ofd, data) == code


def test_truncated_zip():
    data = build_ofd()
    assert code_of(UnsafePackage, open_ofd, data[: len(data) // 2]) == "corrupt_zip"
    assert code_of(UnsafePackage, open_ofd, data[:-5]) == "corrupt_zip"


def test_corrupt_central_directory():
    data = bytearray(build_ofd())
    cd = data.rfind(b"PK\x01\x02")
    data[cd : cd + 4] = b"XX\x01\x02"
    assert code_of(UnsafePackage, open_ofd, bytes(data)) == "corrupt_zip"


def test_truncated_deflate_stream():
    body = zlib.compress(b"<x/>" * 100, 9)[2:-4]
    data = raw_zip([E(b"OFD.xml", b"<x/>" * 100, csize=len(body) // 2)])
    assert code_of(UnsafePackage, read_package, data) in ("corrupt_zip", "hidden_data")


# --- XML ------------------------------------------------------------------------------------

XXE = b'<?xml version="1.0"?>' + XXE_DECL + b"<ofd:OFD " + NS.encode() + b">&x;</ofd:OFD>"
LAUGHS = b'<?xml version="1.0"?>' + LAUGHS_DECL + b"<lolz>&lol9;</lolz>"


@pytest.mark.parametrize(
    "ofd_xml, code",
    [
        (b"", "not_xml"),
        (b"   \n", "not_xml"),
        (b"this is not xml", "not_xml"),
        (b"<ofd:OFD " + NS.encode() + b">", "not_xml"),
        (b'<OFD xmlns="http://example.com/ofd"><DocBody/></OFD>', "wrong_namespace"),
        (b"<OFD><DocBody/></OFD>", "wrong_namespace"),
        (b"<ofd:Document " + NS.encode() + b"/>", "wrong_root"),
        (XXE, "doctype_forbidden"),
        (LAUGHS, "doctype_forbidden"),
        ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r SYSTEM "http://evil/x.dtd"><r/>'.encode("utf-16"), "doctype_forbidden"),
        ('<?xml version="1.0" encoding="UTF-32"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'.encode("utf-32"), "doctype_forbidden"),
        (b"<a>" * 10_000 + b"</a>" * 10_000, "not_xml"),  # libxml2 depth limit stays on
        (b'<?xml version="1.0" encoding="bogus"?><a/>', "not_xml"),
        (b"<ofd:OFD " + NS.encode() + b"/>", "missing_element"),
        (b"<ofd:OFD " + NS.encode() + b"><ofd:DocBody/></ofd:OFD>", "missing_element"),
    ],
)
def test_bad_ofd_xml(ofd_xml, code):
    assert code_of(MalformedOFD, open_ofd, build_ofd(ofd_xml=ofd_xml)) == code


def test_parse_xml_never_resolves_entities_even_unchecked():
    for bad in (XXE, LAUGHS):
        with pytest.raises(MalformedOFD):
            parse_xml(bad, "x.xml")


def test_missing_ofd_xml():
    assert code_of(MalformedOFD, open_ofd, raw_zip([E(b"Doc_0/Document.xml", b"<x/>")])) == "missing_ofd_xml"
    assert code_of(MalformedOFD, open_ofd, raw_zip([])) == "missing_ofd_xml"


def ofd_with_root(doc_root: str, signatures: str | None = None) -> bytes:
    sig = f"<ofd:Signatures>{signatures}</ofd:Signatures>" if signatures else ""
    return (
        f"<ofd:OFD {NS} Version=\"1.0\" DocType=\"OFD\"><ofd:DocBody><ofd:DocInfo><ofd:DocID>1</ofd:DocID>"
        f"</ofd:DocInfo><ofd:DocRoot>{doc_root}</ofd:DocRoot>{sig}</ofd:DocBody></ofd:OFD>"
    ).encode()


@pytest.mark.parametrize(
    "doc_root, code",
    [
        ("Doc_0/Nothing.xml", "dangling_ref"),
        ("../../etc/passwd", "path_escape"),
        ("file:///etc/passwd", "bad_loc"),
        ("/OFD.xml", "wrong_root"),
    ],
)
def test_bad_doc_root(doc_root, code):
    assert code_of(MalformedOFD, open_ofd, build_ofd(ofd_xml=ofd_with_root(doc_root))) == code


def test_dangling_page_and_signatures_file():
    page = f'<ofd:Document {NS}><ofd:CommonData/><ofd:Pages><ofd:Page ID="1" BaseLoc="P/none.xml"/></ofd:Pages></ofd:Document>'
    assert code_of(MalformedOFD, open_ofd, build_ofd(files={"Doc_0/Document.xml": page.encode()})) == "dangling_ref"
    assert code_of(MalformedOFD, open_ofd, build_ofd(signatures_loc="Doc_0/Signs/None.xml")) == "dangling_ref"


def signatures_doc(base_locs: list[str], signature_xml: bytes | None = None) -> bytes:
    items = "".join(f'<ofd:Signature ID="{i}" BaseLoc="{b}"/>' for i, b in enumerate(base_locs))
    files = {"Doc_0/Signs/Signatures.xml": f"<ofd:Signatures {NS}>{items}</ofd:Signatures>".encode()}
    if signature_xml is not None:
        files["Doc_0/Signs/Sign_0/Signature.xml"] = signature_xml
        files["Doc_0/Signs/Sign_0/SignedValue.dat"] = b"\x30\x00"
    return build_ofd(signatures_loc="/Doc_0/Signs/Signatures.xml", files=files)


@pytest.mark.parametrize(
    "base_loc, code",
    [
        ("../../../etc/passwd", "path_escape"),
        ("/../../x", "path_escape"),
        ("http://evil.example/s.xml", "bad_loc"),
        ("Sign_9/Signature.xml", "dangling_ref"),
    ],
)
def test_signature_baseloc_escaping_or_dangling(base_loc, code):
    doc = open_ofd(signatures_doc([base_loc]))
    assert code_of(MalformedOFD, lambda: doc.signatures) == code


def test_same_signature_listed_twice():
    sig = b"<ofd:Signature " + NS.encode() + b"/>"
    doc = open_ofd(signatures_doc(["Sign_0/Signature.xml", "/Doc_0/Signs/Sign_0/Signature.xml"], sig))
    assert code_of(MalformedOFD, lambda: doc.signatures) == "duplicate_ref"


def signature_xml(refs: str = "", stamp: str = "", signed_value: str = "<ofd:SignedValue>SignedValue.dat</ofd:SignedValue>") -> bytes:
    return (
        f'<ofd:Signature {NS}><ofd:SignedInfo><ofd:Provider ProviderName="p"/><ofd:References CheckMethod="SM3">'
        f"{refs}</ofd:References>{stamp}</ofd:SignedInfo>{signed_value}</ofd:Signature>"
    ).encode()


@pytest.mark.parametrize(
    "sig, code",
    [
        (signature_xml(signed_value=""), "missing_element"),
        (signature_xml(signed_value="<ofd:SignedValue>../../../../x</ofd:SignedValue>"), "path_escape"),
        (signature_xml(refs='<ofd:Reference FileRef="/OFD.xml"><ofd:CheckValue>!!notb64</ofd:CheckValue></ofd:Reference>'), "bad_value"),
        (signature_xml(refs='<ofd:Reference FileRef="/../../x"><ofd:CheckValue>AA==</ofd:CheckValue></ofd:Reference>'), "path_escape"),
        (signature_xml(refs="<ofd:Reference><ofd:CheckValue>AA==</ofd:CheckValue></ofd:Reference>"), "missing_attribute"),
        (signature_xml(stamp='<ofd:StampAnnot ID="1" PageRef="1" Boundary="1 2 nan 4"/>'), "bad_value"),
        (signature_xml(stamp='<ofd:StampAnnot ID="1" PageRef="-3" Boundary="1 2 3 4"/>'), "bad_value"),
        (b"<ofd:Signatures " + NS.encode() + b"/>", "wrong_root"),
    ],
)
def test_bad_signature_xml(sig, code):
    doc = open_ofd(signatures_doc(["Sign_0/Signature.xml"], sig))
    assert code_of(MalformedOFD, parse_signature_xml, doc, doc.signatures[0]) == code


def test_missing_reference_target_is_reported_not_raised():
    sig = signature_xml(refs='<ofd:Reference FileRef="/Doc_0/Gone.xml"><ofd:CheckValue>AA==</ofd:CheckValue></ofd:Reference>')
    doc = open_ofd(signatures_doc(["Sign_0/Signature.xml"], sig))
    ref = parse_signature_xml(doc, doc.signatures[0]).references[0]
    assert ref.file_ref == "Doc_0/Gone.xml" and ref.file_ref not in doc.package


def test_cyclic_composite_graphic_units():
    res = (
        f'<ofd:Res {NS} BaseLoc="Res"><ofd:CompositeGraphicUnits>'
        '<ofd:CompositeGraphicUnit ID="5" Width="1" Height="1"><ofd:Content><ofd:Layer ID="1">'
        '<ofd:CompositeObject ID="8" ResourceID="6" Boundary="0 0 1 1"/></ofd:Layer></ofd:Content></ofd:CompositeGraphicUnit>'
        '<ofd:CompositeGraphicUnit ID="6" Width="1" Height="1"><ofd:Content><ofd:Layer ID="2">'
        '<ofd:CompositeObject ID="9" ResourceID="5" Boundary="0 0 1 1"/></ofd:Layer></ofd:Content></ofd:CompositeGraphicUnit>'
        "</ofd:CompositeGraphicUnits></ofd:Res>"
    )
    doc = open_ofd(build_ofd(files={"Doc_0/PublicRes.xml": res.encode()}))
    assert sorted(doc.composite_units) == [5, 6]
    assert code_of(MalformedOFD, doc.check_composite_cycles) == "cyclic_ref"
    open_ofd(build_ofd()).check_composite_cycles()  # no units, no cycle


# --- fuzz -----------------------------------------------------------------------------------


SEED = (SAMPLES / "ofdrw_v4_riding_seal.ofd").read_bytes() if SAMPLES.is_dir() else build_ofd()
SEED_PKG = read_package(SEED)
XML_NAMES = sorted(n for n in SEED_PKG.files if n.endswith(".xml"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_archive_bytes(edits):
    data = bytearray(SEED)
    for pos, value in edits:
        data[pos] = value
    exercise(bytes(data))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(XML_NAMES), st.data())
def test_fuzz_xml_content(name, data):
    """Mutate one XML entry and re-zip it, so the damage reaches the XML and structure layers."""
    original = SEED_PKG.files[name]
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(original) - 1), st.binary(max_size=3)), max_size=6))
    xml = bytearray(original)
    for pos, chunk in edits:
        xml[pos : pos + 1] = chunk
    pkg = Package(dict(SEED_PKG.files))
    pkg[name] = bytes(xml)
    exercise(pkg.to_bytes(compresslevel=1))


# --- honest archives from other writers must still open ----------------------------------


class _Unseekable(io.RawIOBase):
    """Forces zipfile to write data descriptors, as Java's ZipOutputStream does."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.buf += b
        return len(b)


@pytest.mark.parametrize("variant", ["comment", "zip64", "descriptor", "stored"])
def test_zipfile_variants_open(variant):
    files = {"OFD.xml": b"<a/>", "Doc_0/b.xml": b"<b/>" * 50}
    out = _Unseekable() if variant == "descriptor" else io.BytesIO()
    method = zipfile.ZIP_STORED if variant == "stored" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w", method) as zf:
        if variant == "comment":
            zf.comment = b"PK\x05\x06 a fake end record inside the comment"
        for name, data in files.items():
            with zf.open(name, "w", force_zip64=variant == "zip64") as f:
                f.write(data)
    raw = bytes(out.buf) if variant == "descriptor" else out.getvalue()
    assert read_package(raw).files == files
    assert read_package(bytearray(raw)).files == files


def test_page_res_merged_on_request():
    page = (
        f'<ofd:Page {NS}><ofd:PageRes>PageRes.xml</ofd:PageRes><ofd:Content/></ofd:Page>'
    ).encode()
    res = f'<ofd:Res {NS} BaseLoc="R"><ofd:Fonts><ofd:Font ID="7" FontName="KaiTi"/></ofd:Fonts></ofd:Res>'.encode()
    doc = open_ofd(build_ofd(files={"Doc_0/Pages/Page_0/Content.xml": page, "Doc_0/Pages/Page_0/PageRes.xml": res}))
    assert 7 not in doc.fonts
    doc.load_page_res(doc.pages[0])
    assert doc.fonts[7].name == "KaiTi" and 2 in doc.fonts


def test_too_many_siblings_is_bounded():
    pages = '<ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/>' * 50_001
    document = f"<ofd:Document {NS}><ofd:CommonData/><ofd:Pages>{pages}</ofd:Pages></ofd:Document>"
    data = build_ofd(files={"Doc_0/Document.xml": document.encode()})
    assert code_of(UnsafePackage, open_ofd, data) == "ratio"  # so repetitive that the zip layer objects first
    exc = pytest.raises(MalformedOFD, open_ofd, data, Limits(max_ratio=10_000)).value
    assert exc.code == "too_many_items" and exc.entry == "Doc_0/Document.xml"
