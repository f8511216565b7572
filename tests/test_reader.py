"""The safe OFD reader on the real vendor samples and on packages built here.

Expected values come from outside the reader: reference counts from the samples'
README (independently recomputed there), page counts and raw bytes from `zipfile`,
CheckValues by hashing the entries with SM3 ourselves.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from keys.sm3 import sm3
from ofd.errors import MalformedOFD
from ofd.package import OFD, OFD_NS, Package
from ofd.reader import OFDDocument, open_ofd, resolve_loc
from ofd.signatures_xml import parse_signature_xml

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="vendor samples not available")

# file -> Reference counts per signature, from samples/README.md.
REFERENCE_COUNTS = {
    "ofdrw_raw_sm2_sign.ofd": [4],
    "ofdrw_v4_seal_expired_cert.ofd": [5],
    "ofdrw_v4_whole_protected.ofd": [6],
    "ofdrw_v4_riding_seal.ofd": [9],
    "einvoice_jiangsu_gomain.ofd": [13],
    "einvoice_chongqing_gomain.ofd": [13],
    "einvoice_chongqing_kinggrid.ofd": [20],
    "yunnan_gbt35275_cms_two_signs.ofd": [12, 17],
    "iofd_v1_nonstandard_digest.ofd": [6],
    "einvoice_guizhou_gomain.ofd": [13],
}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def build_ofd(
    ofd_xml: bytes | None = None,
    files: dict[str, bytes] | None = None,
    custom_datas: dict[str, str] | None = None,
    signatures_loc: str | None = None,
) -> bytes:
    """A minimal valid OFD package (one page), with parts replaceable for negative tests."""
    if ofd_xml is None:
        root = etree.Element(OFD + "OFD", nsmap={"ofd": OFD_NS}, Version="1.0", DocType="OFD")
        body = etree.SubElement(root, OFD + "DocBody")
        info = etree.SubElement(body, OFD + "DocInfo")
        etree.SubElement(info, OFD + "DocID").text = "0" * 32
        etree.SubElement(info, OFD + "Title").text = "特种作业操作证"
        if custom_datas:
            datas = etree.SubElement(info, OFD + "CustomDatas")
            for k, v in custom_datas.items():
                etree.SubElement(datas, OFD + "CustomData", Name=k).text = v
        etree.SubElement(body, OFD + "DocRoot").text = "Doc_0/Document.xml"
        if signatures_loc:
            etree.SubElement(body, OFD + "Signatures").text = signatures_loc
        ofd_xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    ns = f'xmlns:ofd="{OFD_NS}"'
    pkg = Package()
    pkg["OFD.xml"] = ofd_xml
    pkg["Doc_0/Document.xml"] = (
        f"<ofd:Document {ns}><ofd:CommonData><ofd:MaxUnitID>9</ofd:MaxUnitID><ofd:PageArea>"
        "<ofd:PhysicalBox>0 0 86 54</ofd:PhysicalBox></ofd:PageArea><ofd:PublicRes>PublicRes.xml</ofd:PublicRes>"
        "</ofd:CommonData><ofd:Pages><ofd:Page ID=\"1\" BaseLoc=\"Pages/Page_0/Content.xml\"/></ofd:Pages>"
        "</ofd:Document>"
    ).encode()
    pkg["Doc_0/PublicRes.xml"] = (
        f'<ofd:Res {ns} BaseLoc="Res"><ofd:Fonts><ofd:Font ID="2" FontName="Noto Sans CJK SC" Bold="true">'
        "<ofd:FontFile>font.otf</ofd:FontFile></ofd:Font></ofd:Fonts><ofd:MultiMedias>"
        '<ofd:MultiMedia ID="3" Type="Image" Format="PNG"><ofd:MediaFile>/Doc_0/Res/photo.png</ofd:MediaFile>'
        "</ofd:MultiMedia></ofd:MultiMedias></ofd:Res>"
    ).encode()
    pkg["Doc_0/Res/font.otf"] = b"OTTO fake font"
    pkg["Doc_0/Res/photo.png"] = b"\x89PNG fake"
    pkg["Doc_0/Pages/Page_0/Content.xml"] = f"<ofd:Page {ns}><ofd:Content/></ofd:Page>".encode()
    for name, data in (files or {}).items():
        pkg[name] = data
    return pkg.to_bytes()


# --- vendor samples ---------------------------------------------------------------


@needs_samples
@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_sample_opens_with_pages_signatures_and_existing_refs(name):
    data = sample(name)
    doc = open_ofd(data)
    with zipfile.ZipFile(SAMPLES / name) as zf:
        page_files = {n for n in zf.namelist() if re.fullmatch(r"Doc_0/Pages/Page_\d+/Content\.xml", n)}
        sig_raw = {n: zf.read(n) for n in zf.namelist() if n.endswith("Signature.xml")}
    assert {p.path for p in doc.pages} == page_files
    assert all(etree.QName(p.xml).localname == "Page" for p in doc.pages)
    sigs = [parse_signature_xml(doc, e) for e in doc.signatures]
    assert [len(s.references) for s in sigs] == REFERENCE_COUNTS[name]
    page_ids = {p.id for p in doc.pages}
    for s in sigs:
        assert s.raw == sig_raw[s.path]  # exact bytes: their SM3 is what the seal signs
        assert s.signed_value_path in doc.package
        assert s.seal_path is None or s.seal_path in doc.package
        for ref in s.references:
            assert ref.file_ref in doc.package, ref
            assert len(ref.check_value) == 32
        for st in s.stamp_annots:
            assert st.page_ref in page_ids


@needs_samples
@pytest.mark.parametrize("name", sorted(set(REFERENCE_COUNTS) - {"iofd_v1_nonstandard_digest.ofd"}))
def test_sample_check_values_match_sm3_of_resolved_files(name):
    """The README says every Reference passes with plain SM3: proves paths and bytes are right."""
    doc = open_ofd(sample(name))
    for entry in doc.signatures:
        for ref in parse_signature_xml(doc, entry).references:
            assert sm3(doc.read(ref.file_ref)) == ref.check_value, ref.raw_file_ref


@needs_samples
def test_kinggrid_relative_baseloc_fonts_media_metadata():
    doc = open_ofd(sample("einvoice_chongqing_kinggrid.ofd"))
    (entry,) = doc.signatures
    assert entry.raw_base_loc == "Sign_0/Signature.xml"
    assert entry.base_loc == "Doc_0/Signs/Sign_0/Signature.xml"
    assert entry.type == "Seal"  # no Type attribute: the default
    assert len(doc.pages) == 5 and doc.physical_box == (0.0, 0.0, 210.0, 140.0)
    assert {k: f.name for k, f in doc.fonts.items()} == {2: "楷体", 3: "宋体", 4: "Courier New", 5: "黑体"}
    assert doc.media[6].path == "Doc_0/Res/qrcode.png" and doc.media[6].format == "PNG"
    assert doc.colorspaces[1].type == "RGB"
    assert doc.custom_datas["发票号码"] == "12235358"
    assert doc.doc_info["DocID"] == "050001700111_12235358"
    assert doc.annotations == {10: "Doc_0/Annots/Page_0/Annotation.xml"}
    assert doc.attachments[0].path == "Doc_0/Attachs/original_invoice.xml"
    assert sorted(doc.templates) == [9, 91, 270, 449, 628]


@needs_samples
def test_iofd_signatures_outside_signs_and_provider_elements():
    doc = open_ofd(sample("iofd_v1_nonstandard_digest.ofd"))
    assert doc.signatures_path == "Doc_0/Signatures.xml"
    sig = parse_signature_xml(doc, doc.signatures[0])
    assert sig.provider["Version"] == "2.1.1" and sig.provider["Company"] == "dms360.cn"
    assert sig.check_method == "1.2.156.10197.1.401.2"
    assert sig.seal_path == "Doc_0/Signs/Sign_0/Seal.esl"
    assert sig.signature_datetime == "2020-01-25 15:31:56"
    assert [s.clip for s in sig.stamp_annots] == [(0.0, 0.0, 33.0, 33.0)]


@needs_samples
def test_yunnan_relative_signed_value_two_signs_and_namespace_variant():
    doc = open_ofd(sample("yunnan_gbt35275_cms_two_signs.ofd"))
    assert doc.doc_root_path == "Doc_0/Document_0.xml"  # OFD.xml uses ns "http://www.ofdspec.org"
    assert [e.type for e in doc.signatures] == ["Sign", "Sign"]
    sigs = [parse_signature_xml(doc, e) for e in doc.signatures]
    assert [s.signed_value_path for s in sigs] == [
        "Doc_0/Signs/Sign_0/SignedValue.dat",
        "Doc_0/Signs/Sign_1/SignedValue.dat",
    ]
    assert doc.media[18].path == "Doc_0/Res/image_18.PNG"
    assert doc.templates[2].path == "Doc_0/TPLS/TPL_0/Content.xml"


@needs_samples
def test_riding_seal_stamps_and_missing_public_res_tolerated():
    doc = open_ofd(sample("ofdrw_v4_riding_seal.ofd"))
    sig = parse_signature_xml(doc, doc.signatures[0])
    assert [s.page_ref for s in sig.stamp_annots] == [p.id for p in doc.pages] == [1, 21, 43, 63, 83]
    assert all(s.clip is not None for s in sig.stamp_annots)
    assert sig.check_method == "SM3"
    assert doc.fonts == {} and any("PublicRes.xml" in w for w in doc.warnings)


@needs_samples
def test_case_mismatched_template_path_resolves_with_warning():
    doc = open_ofd(sample("einvoice_chongqing_gomain.ofd"))
    assert doc.templates[2].path == "Doc_0/Tpls/Tpl_0/Content.xml"
    assert any("ignoring case" in w for w in doc.warnings)


# --- packages built here ----------------------------------------------------------------


def test_own_licence_metadata_reads_back():
    meta = {"证号": "T110101199001011234", "作业类别": "电工作业", "发证机关": "北京市应急管理局", "空": ""}
    doc = open_ofd(build_ofd(custom_datas=meta))
    assert doc.custom_datas == meta
    assert doc.doc_info == {"DocID": "0" * 32, "Title": "特种作业操作证"}
    assert doc.physical_box == (0.0, 0.0, 86.0, 54.0) and doc.max_unit_id == 9
    assert doc.fonts[2].bold and doc.fonts[2].file == "Doc_0/Res/font.otf"
    assert doc.media[3].path == "Doc_0/Res/photo.png"
    assert doc.signatures_path is None and doc.signatures == []
    assert doc.read("/Doc_0/Res/photo.png") == b"\x89PNG fake"


def test_ofdrw_signs_prefix_hack_and_root_fallback():
    ns = f'xmlns:ofd="{OFD_NS}"'
    sig_xml = (
        f"<ofd:Signature {ns}><ofd:SignedInfo><ofd:Provider ProviderName=\"x\"/>"
        '<ofd:References CheckMethod="1.2.156.10197.1.401"><ofd:Reference FileRef="Doc_0/Document.xml">'
        "<ofd:CheckValue>AAAA</ofd:CheckValue></ofd:Reference></ofd:References></ofd:SignedInfo>"
        "<ofd:SignedValue>SignedValue.dat</ofd:SignedValue></ofd:Signature>"
    ).encode()
    data = build_ofd(
        signatures_loc="Doc_0/Sigs.xml",
        files={
            # BaseLoc lacks "Signs/" and Signatures.xml is not in Signs/: only the ofdrw hack finds it.
            "Doc_0/Sigs.xml": f'<ofd:Signatures {ns}><ofd:Signature ID="1" BaseLoc="Sign_0/Signature.xml"/></ofd:Signatures>'.encode(),
            "Doc_0/Signs/Sign_0/Signature.xml": sig_xml,
            "Doc_0/Signs/Sign_0/SignedValue.dat": b"\x30\x00",
        },
    )
    doc = open_ofd(data)
    (entry,) = doc.signatures
    assert entry.base_loc == "Doc_0/Signs/Sign_0/Signature.xml"
    sig = parse_signature_xml(doc, entry)
    assert sig.references[0].file_ref == "Doc_0/Document.xml"  # relative FileRef: root fallback
    assert sig.references[0].check_value == b"\x00\x00\x00"
    assert sig.signed_value_path == "Doc_0/Signs/Sign_0/SignedValue.dat"


@pytest.mark.parametrize(
    "loc, base, expected",
    [
        ("/Doc_0/Document.xml", "Doc_0/Signs", "Doc_0/Document.xml"),
        ("Sign_0/Signature.xml", "Doc_0/Signs", "Doc_0/Signs/Sign_0/Signature.xml"),
        ("./Sign_0/./Signature.xml", "Doc_0/Signs", "Doc_0/Signs/Sign_0/Signature.xml"),
        ("../Res/a.png", "Doc_0/Pages", "Doc_0/Res/a.png"),
        ("  Doc_0/Document.xml ", "", "Doc_0/Document.xml"),
        ("a//b", "", "a/b"),
    ],
)
def test_resolve_loc(loc, base, expected):
    assert resolve_loc(loc, base) == expected


@pytest.mark.parametrize(
    "loc, code",
    [
        ("../../etc/passwd", "path_escape"),
        ("/../x", "path_escape"),
        ("", "bad_loc"),
        ("/", "bad_loc"),
        ("file:///etc/passwd", "bad_loc"),
        ("http://evil.example/x.xml", "bad_loc"),
        ("C:/Windows/win.ini", "bad_loc"),
        ("Doc_0\\Document.xml", "bad_loc"),
        ("a\x00b", "bad_loc"),
    ],
)
def test_resolve_loc_rejects(loc, code):
    with pytest.raises(MalformedOFD) as exc:
        resolve_loc(loc, "Doc_0")
    assert exc.value.code == code and exc.value.message_zh and exc.value.message_en


def test_document_is_reusable_from_package():
    pkg_doc = open_ofd(build_ofd())
    again = OFDDocument(pkg_doc.package)
    assert [p.path for p in again.pages] == ["Doc_0/Pages/Page_0/Content.xml"]


def test_read_missing_entry_and_bad_loc_type():
    doc = open_ofd(build_ofd())
    with pytest.raises(MalformedOFD) as exc:
        doc.read("/Doc_0/nothing.bin")
    assert exc.value.code == "missing_entry" and "Doc_0/nothing.bin" in exc.value.message_en
    with pytest.raises(MalformedOFD):
        resolve_loc(None, "")  # type: ignore[arg-type]
    assert exc.value.to_dict()["code"] == "missing_entry"
