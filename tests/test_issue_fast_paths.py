"""The issue path's fast implementations give exactly what the general ones give.

Each fast path has an independent reference here: Python's `zipfile` for the zip writer,
lxml's own serialisation for the string-built XML, the general lxml signing path for the
signer's text edit of our OFD.xml, ``PublicKey.digest`` for the memoised TBS digest.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime

import pytest
from lxml import etree

from keys import sm2
from ofd import writer
from ofd.layout import PAGE_ID, SEAL_BOX_MM, build_licence_package
from ofd.licence import validate_record
from ofd.package import ContentMemo, PackageTooLarge, zip_entries
from ofd.reader import open_ofd
from ofd.safezip import read_package
from ofd.writer import OFDBuilder, OFDWriteError
from signer.ofd_sign import StampPlacement, _tbs_digest, sign_package
from verifier.ofd_verify import verify_ofd

from .conftest import SHARED, make_photo, make_record
from .test_sign_verify import T0, issuer, trust  # noqa: F401  (the sealing fixtures, shared)

SCHEMAS = SHARED / "schemas" / "ofd"
CREATED = datetime(2025, 5, 6, 7, 8, 9)
HOSTILE = "O'Brien & <Smith> \"Jr\"\tA\r\nB ]]> 😀"  # everything XML escapes, plus an astral char
STORED_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".esl", ".dat")


class _Hostile:
    """A licence whose name and metadata carry every character XML must escape (the record
    model refuses them; the writer must still never emit broken XML)."""

    def __init__(self, lic):
        self._lic = lic

    def __getattr__(self, item):
        return getattr(self._lic, item)

    name = HOSTILE

    def metadata(self):
        return {**self._lic.metadata(), "note": HOSTILE, "empty": ""}


@pytest.fixture(scope="module")
def lic(dev_issuer):
    return validate_record(make_record(dev_issuer.code, dev_issuer.name, name="张三"))


def _zipfile_bytes(files: dict[str, bytes], ts: datetime | None, level: int) -> bytes:
    """The reference: what Python's zipfile writes for the same entries and policy."""
    date_time = (1980, 1, 1, 0, 0, 0) if ts is None else (ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=date_time)
            method = zipfile.ZIP_STORED if name.lower().endswith(STORED_SUFFIXES) else zipfile.ZIP_DEFLATED
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compress_type=method, compresslevel=level)
    return buf.getvalue()


# ---------------------------------------------------------------- zip writer


@pytest.mark.parametrize("level", [1, 6, 9])
def test_zip_writer_is_byte_identical_to_zipfile(lic, level):
    pkg = build_licence_package(lic, qr_text="https://x.example/v#1", created=CREATED)
    files = dict(pkg.files)
    files["Doc_0/Res/证照说明.txt"] = "非 ASCII 名称 (UTF-8 flag)".encode()  # non-ASCII entry name
    files["Doc_0/empty.xml"] = b""
    files["Doc_0/Res/photo.PNG"] = make_photo("PNG")  # stored whatever the case of the suffix
    for ts in (None, CREATED, datetime(1979, 12, 31, 23, 59, 59)):
        clamped = None if ts is None else (ts if ts.year >= 1980 else ts.replace(year=1980))
        assert zip_entries(files, ts, level) == _zipfile_bytes(files, clamped, level), (level, ts)


def test_zip_writer_output_reads_back_everywhere(lic):
    pkg = build_licence_package(lic, qr_text="https://x.example/v#2", created=CREATED)
    data = pkg.to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None  # every CRC checks
        assert {n: zf.read(n) for n in zf.namelist()} == pkg.files
    assert read_package(data).files == pkg.files  # our hostile-input reader
    assert open_ofd(data).pages  # and the OFD reader on top of it


def test_zip_writer_refuses_what_needs_zip64():
    with pytest.raises(PackageTooLarge):
        zip_entries({f"f{i}": b"" for i in range(0x10000)})


def test_content_memo_is_an_lru_by_content():
    calls = []
    memo = ContentMemo(lambda d: calls.append(d) or len(d), max_entries=2, max_bytes=8)
    assert memo(b"aa") == 2 and memo(bytes(b"a" * 2)) == 2 and calls == [b"aa"]  # equal content hits
    memo(b"bbb")
    memo(b"aa")  # refresh: b"bbb" is now the least recently used
    memo(b"cccc")
    assert b"aa" in memo and b"cccc" in memo and b"bbb" not in memo
    assert memo(b"x" * 9) == 9 and b"x" * 9 not in memo  # too large to keep, still computed


# ---------------------------------------------------------------- string-built XML


def _lxml_form(data: bytes) -> bytes:
    """How lxml serialises the parsed document: equal bytes = the string writer matched it.

    CustomData always had its text set (an empty value gives ``<a></a>``, not ``<a/>``).
    """
    root = etree.fromstring(data)
    for el in root.iter("{%s}CustomData" % writer.NSMAP["ofd"]):
        el.text = el.text or ""
    decl = data[: data.index(b"\n") + 1]
    return decl + etree.tostring(root, encoding="UTF-8")


@pytest.mark.parametrize("hostile", [False, True])
def test_string_xml_is_exactly_lxml_serialisation_and_schema_valid(lic, issuer, hostile):
    face = _Hostile(lic) if hostile else lic
    pkg = build_licence_package(face, qr_text="https://x.example/v#3", created=CREATED)
    signed = sign_package(pkg, issuer.identity(), when=T0, stamps=[StampPlacement(PAGE_ID, SEAL_BOX_MM)])
    xsd = {"OFD": "OFD.xsd", "Page": "Page.xsd", "Signatures": "Signatures.xsd", "Signature": "Signature.xsd"}
    seen = set()
    for name, data in signed.files.items():
        if not name.endswith(".xml"):
            continue
        assert data == _lxml_form(data), name
        root = etree.fromstring(data)
        local = etree.QName(root).localname
        if local in xsd:
            if local == "Signature":  # the 2016 XSD enumerates MD5|SHA1 only; real files write the
                for refs in root.iter("{%s}References" % writer.NSMAP["ofd"]):  # SM3 OID (STANDARDS.md)
                    del refs.attrib["CheckMethod"]
            schema = etree.XMLSchema(etree.parse(str(SCHEMAS / xsd[local])))
            assert schema.validate(root), f"{name}: {schema.error_log.last_error}"
            seen.add(local)
    assert seen == set(xsd)
    if hostile:  # the reader gets the exact strings back
        ofd_xml = etree.fromstring(signed["OFD.xml"])
        ns = {"ofd": writer.NSMAP["ofd"]}
        datas = {e.get("Name"): e.text or "" for e in ofd_xml.iterfind(".//ofd:CustomData", ns)}
        assert datas["note"] == HOSTILE and datas["empty"] == ""
        texts = ["".join(t.itertext()) for t in etree.fromstring(signed["Doc_0/Pages/Page_0/Content.xml"])
                 .iterfind(".//ofd:TextObject", ns)]
        assert "".join(texts).count("O'Brien & <Smith>") == 1


@pytest.mark.parametrize("bad", ["nul\x00", "bell\x07", "lone \ud800 surrogate", "\ufffe"])
def test_text_xml_cannot_hold_is_a_typed_error(bad):
    b = OFDBuilder((100, 50))
    page = b.add_page()
    font = b.add_font("宋体")
    with pytest.raises(OFDWriteError) as err:
        b.add_text(page, [(bad, [1.0] * len(bad))], font=font, size=3, x=1, baseline=5)
    assert err.value.code == "not_xml_text"
    with pytest.raises(OFDWriteError):
        b.add_text(page, [("ok", [1.0, 1.0])], font=font, size=3, x=1, baseline=5, name=bad)
    b.set_doc_info(doc_id="d", created=date(2025, 1, 1))
    b.add_custom_data("k", bad)
    with pytest.raises(OFDWriteError):
        b.build()


# ---------------------------------------------------------------- signer


def test_signer_text_edit_of_our_ofd_xml_equals_the_general_path(lic, issuer, trust, monkeypatch):
    pkg = build_licence_package(lic, qr_text="https://x.example/v#4", created=CREATED)
    assert writer.emitted_ofd_xml(pkg["OFD.xml"])
    stamps = [StampPlacement(PAGE_ID, SEAL_BOX_MM)]
    fast = sign_package(pkg, issuer.identity(), when=T0, stamps=stamps)
    monkeypatch.setattr(writer, "emitted_ofd_xml", lambda data: False)  # force the lxml path
    general = sign_package(pkg, issuer.identity(), when=T0, stamps=stamps)
    assert list(fast.files) == list(general.files)
    for name in fast.files:
        if not name.endswith("SignedValue.dat"):  # SM2 signatures are randomised
            assert fast[name] == general[name], name
    for out in (fast, general):
        r = verify_ofd(out.to_bytes(), trust)
        assert r.verdict == "valid", [c.to_dict() for c in r.checks if c.status != "pass"]


def test_an_edited_ofd_xml_takes_the_general_path(lic, issuer, trust):
    pkg = build_licence_package(lic, qr_text="https://x.example/v#5", created=CREATED)
    pkg["OFD.xml"] = pkg["OFD.xml"].replace(b"<ofd:DocBody>", b"<ofd:DocBody>\n")  # no longer our bytes
    assert not writer.emitted_ofd_xml(pkg["OFD.xml"])
    out = sign_package(pkg, issuer.identity(), when=T0, stamps=[StampPlacement(PAGE_ID, SEAL_BOX_MM)])
    assert b"<ofd:DocBody>\n" in out["OFD.xml"] and b"<ofd:Signatures>/Doc_0/Signs/Signatures.xml" in out["OFD.xml"]
    assert verify_ofd(out.to_bytes(), trust).verdict == "valid"


def test_memoised_tbs_digest_is_sm3_of_z_and_message():
    key = sm2.PrivateKey.generate()
    seal = bytes(range(256)) * 48
    for tail in (b"", b"\x18\x0f20250101000000Z", bytes(range(200))):
        tbs = b"\x30\x82\x30\x10\x02\x01\x04" + seal + tail
        e = _tbs_digest(key, tbs, seal)
        assert e == key.public_key.digest(tbs)
        assert key.public_key.verify(tbs, key.sign_digest(e))
    other = b"\x30\x03\x02\x01\x04"  # no seal inside: the plain digest
    assert _tbs_digest(key, other, seal) == key.public_key.digest(other)
