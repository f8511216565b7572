"""The OFD writer and the licence layout: schema validity, an independent reader (easyofd),
determinism, metadata, custom tags, the QR read back from a raster of the page, text metrics.

The page raster here is a small test-only renderer (Pillow + the Noto CJK fonts the
layout's font names map to), so the QR test decodes what a viewer would show.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
import zxingcpp
from lxml import etree
from PIL import Image, ImageDraw, ImageFont

from ofd.fonts import HEI, NOTO_SC_INDEX, SONG, face_for
from ofd.layout import (
    PAGE_ID,
    PAGE_SIZE_MM,
    QR_BOX_MM,
    SEAL_BOX_MM,
    SPECIMEN,
    LicenceLayoutError,
    build_licence_package,
    doc_id_for,
    licence_ofd_bytes,
)
from ofd.licence import validate_record
from ofd.licence.uscc import uscc_check_char
from ofd.package import OFD_NS, Package
from ofd.qr import QRError
from ofd.writer import OFDBuilder, OFDWriteError, delta_array

from .conftest import SHARED, make_record

SCHEMAS = SHARED / "schemas" / "ofd"
NS = {"ofd": OFD_NS}
ISSUER_CODE = "11110000MB0327169" + uscc_check_char("11110000MB0327169")
ISSUER = "北京市朝阳区应急管理局"
CREATED = datetime(2024, 3, 1, 9, 30, 0)
QR_TEXT = "https://ecert.example.gov.cn/v#ECERT1:" + "6BFTJ4Q%1SAB4L*:5H/V2$U2YH0+47K" * 7
XSD_FOR_ROOT = {
    "OFD": "OFD.xsd", "Document": "Document.xsd", "Res": "Res.xsd", "Page": "Page.xsd", "CustomTags": "CustomTags.xsd",
}


def _licence(**over):
    rec = make_record(ISSUER_CODE, ISSUER)
    rec.update(over)
    return validate_record(rec, today=date(2024, 3, 1))


@pytest.fixture(scope="module")
def lic():
    return _licence(reviewed_on=date(2024, 2, 20))


@pytest.fixture(scope="module")
def pkg(lic) -> Package:
    return build_licence_package(lic, qr_text=QR_TEXT, created=CREATED)


def _xml(pkg: Package, name: str) -> etree._Element:
    return etree.fromstring(pkg[name])


def _content(pkg: Package) -> etree._Element:
    return _xml(pkg, "Doc_0/Pages/Page_0/Content.xml")


def _objects(pkg: Package) -> dict[int, etree._Element]:
    return {int(e.get("ID")): e for e in _content(pkg).iterfind(".//ofd:Layer/*", NS)}


def _expand(arr: str | None) -> list[float]:
    """ST_Array with the 'g N v' run notation expanded."""
    toks, out, i = (arr or "").split(), [], 0
    while i < len(toks):
        if toks[i] == "g":
            out += [float(toks[i + 2])] * int(toks[i + 1])
            i += 3
        else:
            out.append(float(toks[i]))
            i += 1
    return out


def _box(s: str) -> tuple[float, ...]:
    return tuple(float(v) for v in s.split())


def _text_of(obj: etree._Element) -> str:
    return "".join(tc.text for tc in obj.iterfind("ofd:TextCode", NS))


def _tag_index(pkg: Package) -> dict[str, list[tuple[int, int]]]:
    tags = _xml(pkg, "Doc_0/Tags/CustomTags.xml")
    loc = tags.find("ofd:CustomTag/ofd:FileLoc", NS).text
    index = _xml(pkg, f"Doc_0/Tags/{loc}")
    return {
        etree.QName(e).localname: [(int(r.get("PageRef")), int(r.text)) for r in e.iterfind("ofd:ObjectRef", NS)]
        for e in index
    }


def _media(pkg: Package) -> dict[int, bytes]:
    res = _xml(pkg, "Doc_0/DocumentRes.xml")
    base = res.get("BaseLoc")
    return {int(m.get("ID")): pkg[f"Doc_0/{base}/{m.find('ofd:MediaFile', NS).text}"] for m in res.iterfind(".//ofd:MultiMedia", NS)}


# ---------------------------------------------------------------- test-only page raster


def _render(pkg: Package, dpi: int = 200) -> Image.Image:
    """Rasterise page 0: images (bilinear, like viewers), paths (M/L/C), text (Noto, glyph by glyph)."""
    px = dpi / 25.4
    w, h = (float(v) for v in _xml(pkg, "Doc_0/Document.xml").find(".//ofd:PhysicalBox", NS).text.split()[2:])
    page = Image.new("RGB", (round(w * px), round(h * px)), "white")
    draw = ImageDraw.Draw(page)
    fonts = {int(f.get("ID")): f for f in _xml(pkg, "Doc_0/PublicRes.xml").iterfind(".//ofd:Font", NS)}
    media = _media(pkg)

    def color(obj, tag, default):
        c = obj.find(f"ofd:{tag}", NS)
        return tuple(int(v) for v in c.get("Value").split()) if c is not None else default

    for obj in _content(pkg).iterfind(".//ofd:Layer/*", NS):
        bx, by, bw, bh = _box(obj.get("Boundary"))
        kind = etree.QName(obj).localname
        if kind == "ImageObject":
            img = Image.open(io.BytesIO(media[int(obj.get("ResourceID"))])).convert("RGB")
            page.paste(img.resize((round(bw * px), round(bh * px)), Image.BILINEAR), (round(bx * px), round(by * px)))
        elif kind == "PathObject":
            toks = obj.find("ofd:AbbreviatedData", NS).text.split()
            subpaths, i = [], 0
            while i < len(toks):
                op = toks[i]
                if op in "ML":
                    pt = ((bx + float(toks[i + 1])) * px, (by + float(toks[i + 2])) * px)
                    subpaths.append([pt]) if op == "M" else subpaths[-1].append(pt)
                    i += 3
                else:  # C: close
                    subpaths[-1].append(subpaths[-1][0])
                    i += 1
            lw = max(1, round(float(obj.get("LineWidth", "0.353")) * px))
            for sp in subpaths:
                if obj.get("Fill") == "true":
                    draw.polygon(sp, fill=color(obj, "FillColor", (0, 0, 0)))
                if obj.get("Stroke", "true") == "true":
                    draw.line(sp, fill=color(obj, "StrokeColor", (0, 0, 0)), width=lw)
        elif kind == "TextObject":
            f = fonts[int(obj.get("Font"))]
            face = face_for(f.get("FontName"), f.get("FamilyName"))
            if not face.noto_path.exists():  # fonts-noto-cjk missing: the rest of the page still renders
                continue
            font = ImageFont.truetype(str(face.noto_path), round(float(obj.get("Size")) * px), index=NOTO_SC_INDEX)
            for tc in obj.iterfind("ofd:TextCode", NS):
                x, y = bx + float(tc.get("X")), by + float(tc.get("Y"))
                dx = _expand(tc.get("DeltaX"))
                for k, ch in enumerate(tc.text):
                    draw.text((x * px, y * px), ch, font=font, fill=color(obj, "FillColor", (0, 0, 0)), anchor="ls")
                    x += dx[k] if k < len(dx) else 0
    return page


# ---------------------------------------------------------------- schema and structure


def test_every_xml_file_validates_against_its_xsd(pkg):
    checked = set()
    for name in pkg.names():
        if not name.endswith(".xml"):
            continue
        root = etree.fromstring(pkg[name])
        if name == "Doc_0/Tags/CustomTag.xml":  # our tag index: free content by design, no XSD
            assert etree.QName(root).namespace == "urn:ecert:c0210:licence-face:1"
            continue
        assert etree.QName(root).namespace == OFD_NS, name
        xsd = XSD_FOR_ROOT[etree.QName(root).localname]
        schema = etree.XMLSchema(etree.parse(str(SCHEMAS / xsd)))
        assert schema.validate(root), f"{name}: {schema.error_log.last_error}"
        checked.add(xsd)
    assert checked == set(XSD_FOR_ROOT.values())


def test_structure_ids_and_references(pkg, lic):
    doc = _xml(pkg, "Doc_0/Document.xml")
    assert _xml(pkg, "OFD.xml").find(".//ofd:DocRoot", NS).text == "Doc_0/Document.xml"
    assert doc.find(".//ofd:PhysicalBox", NS).text == f"0 0 {PAGE_SIZE_MM[0]:g} {PAGE_SIZE_MM[1]:g}"
    page = doc.find(".//ofd:Pages/ofd:Page", NS)
    assert int(page.get("ID")) == PAGE_ID and page.get("BaseLoc") in [n.removeprefix("Doc_0/") for n in pkg.names()]
    # IDs unique across resources, page, layer and objects; MaxUnitID is the largest
    ids = [int(e.get("ID")) for n in pkg.names() if n.endswith(".xml") for e in etree.fromstring(pkg[n]).iter() if e.get("ID")]
    assert len(ids) == len(set(ids))
    assert int(doc.find(".//ofd:MaxUnitID", NS).text) == max(ids)
    # every MediaFile exists; the photo is embedded byte for byte
    assert lic.photo in _media(pkg).values()
    for ref in ("PublicRes", "DocumentRes"):
        assert f"Doc_0/{doc.find(f'.//ofd:{ref}', NS).text}" in pkg
    assert f"Doc_0/{doc.find('ofd:CustomTags', NS).text}" in pkg


def test_doc_info(pkg, lic):
    info = _xml(pkg, "OFD.xml").find(".//ofd:DocInfo", NS)
    doc_id = info.find("ofd:DocID", NS).text
    assert re.fullmatch(r"[0-9a-f]{32}", doc_id) and doc_id == doc_id_for(lic.identifier)
    assert info.find("ofd:CreationDate", NS).text == "2024-03-01"
    assert info.find("ofd:Creator", NS).text == "ecert"
    assert info.find("ofd:Title", NS).text == "特种作业操作证"


def test_custom_datas_hold_all_metadata_in_order(pkg, lic):
    datas = _xml(pkg, "OFD.xml").findall(".//ofd:CustomDatas/ofd:CustomData", NS)
    got = [(d.get("Name"), d.text or "") for d in datas]
    assert got == list(lic.metadata().items())
    assert ("KZ_SJFSRQ", "2024-02-20") in got and ("CZZT", "王测试") in got


# ---------------------------------------------------------------- tags, text, QR


def test_custom_tags_point_at_the_face_fields(pkg, lic):
    index, objs, media = _tag_index(pkg), _objects(pkg), _media(pkg)
    expected = {
        "name": lic.name, "sex": lic.sex, "licence_number": lic.licence_number, "id_number": lic.id_number,
        "category": lic.category, "item": lic.item, "first_issue_date": "2020-03-01",
        "valid_from": "2023-03-01 至 2029-03-01", "valid_until": "2023-03-01 至 2029-03-01",
        "review_due": "2026-03-01", "reviewed_on": "2024-02-20", "issuer_name": ISSUER,
    }
    for field, text in expected.items():
        [(page, oid)] = index[field]
        assert page == PAGE_ID
        assert etree.QName(objs[oid]).localname == "TextObject" and _text_of(objs[oid]) == text, field
    [(_, photo)] = index["photo"]
    assert media[int(objs[photo].get("ResourceID"))] == lic.photo
    [(_, qr)] = index["qr"]
    assert _box(objs[qr].get("Boundary")) == QR_BOX_MM


def _qr_texts_in(page: Image.Image, dpi: int) -> list[str]:
    x, y, w, h = (round(v * dpi / 25.4) for v in QR_BOX_MM)
    crop = np.asarray(page.convert("L").crop((x - 10, y - 10, x + w + 10, y + h + 10)))
    return [r.text for r in zxingcpp.read_barcodes(crop, formats=zxingcpp.BarcodeFormat.QRCode)]


def test_qr_decodes_from_a_200dpi_raster_of_the_page(pkg):
    assert _qr_texts_in(_render(pkg, dpi=200), 200) == [QR_TEXT]


def test_qr_decodes_from_the_project_renderer(pkg):
    from ofd.reader import open_ofd
    from ofd.render import render_page

    doc = open_ofd(pkg.to_bytes())
    assert _qr_texts_in(render_page(doc, 0, dpi=200), 200) == [QR_TEXT]
    assert doc.warnings == []


def test_chinese_text_and_sane_glyph_advances(pkg):
    objs = [o for o in _objects(pkg).values() if etree.QName(o).localname == "TextObject"]
    texts = {_text_of(o) for o in objs}
    assert {"中华人民共和国特种作业操作证", "姓名", "王测试", "签发机关", ISSUER, "实际复审日期"} <= texts
    for o in objs:
        size = float(o.get("Size"))
        bx, by, bw, bh = _box(o.get("Boundary"))
        assert 0 <= bx and bx + bw <= PAGE_SIZE_MM[0] and 0 <= by and by + bh <= PAGE_SIZE_MM[1]
        for tc in o.iterfind("ofd:TextCode", NS):
            dx = _expand(tc.get("DeltaX"))
            assert len(dx) == len(tc.text) - 1
            for ch, d in zip(tc.text, dx):
                if "\u4e00" <= ch <= "\u9fff":
                    assert d == pytest.approx(size, abs=1e-3), (tc.text, ch)  # ideographs: 1 em
                else:
                    assert 0.2 * size <= d <= 1.1 * size, (tc.text, ch)
            assert float(tc.get("X")) + sum(dx) <= bw  # the line starts and stays inside its Boundary


def test_advance_tables_match_the_installed_noto_fonts():
    pytest.importorskip("fontTools")
    from fontTools.ttLib import TTFont

    for face in (SONG, HEI):
        if not face.noto_path.exists():
            pytest.skip("fonts-noto-cjk not installed")
        font = TTFont(str(face.noto_path), fontNumber=NOTO_SC_INDEX, lazy=True)
        cmap, hmtx, upm = font.getBestCmap(), font["hmtx"], font["head"].unitsPerEm
        for ch in "0123456789TX-/ 至中华":
            assert face.advance_em(ch) == pytest.approx(hmtx[cmap[ord(ch)]][0] / upm, abs=1e-3), (face.font_name, ch)


def test_fonts_are_referenced_by_standard_names(pkg):
    fonts = _xml(pkg, "Doc_0/PublicRes.xml").findall(".//ofd:Font", NS)
    assert {(f.get("FontName"), f.get("FamilyName")) for f in fonts} == {("宋体", "SimSun"), ("黑体", "SimHei")}
    assert all(f.find("ofd:FontFile", NS) is None for f in fonts)
    assert face_for("SimSun") is SONG and face_for(None, "黑体") is HEI and face_for("Comic Sans") is None


def test_seal_box_sits_over_the_issuer_name(pkg):
    index, objs = _tag_index(pkg), _objects(pkg)
    ix, iy, iw, ih = _box(objs[index["issuer_name"][0][1]].get("Boundary"))
    sx, sy, sw, sh = SEAL_BOX_MM
    assert sx < ix + iw and ix < sx + sw and sy < iy + ih and iy < sy + sh  # overlap
    assert sx >= 0 and sy >= 0 and sx + sw <= PAGE_SIZE_MM[0] and sy + sh <= PAGE_SIZE_MM[1]


# ---------------------------------------------------------------- determinism and variants


def test_same_input_same_bytes_and_different_name_differs(lic):
    a = licence_ofd_bytes(lic, qr_text=QR_TEXT, created=CREATED)
    assert a == licence_ofd_bytes(lic, qr_text=QR_TEXT, created=CREATED)
    assert zipfile.ZipFile(io.BytesIO(a)).namelist()[0] == "OFD.xml"
    other = _licence(name="李测试", reviewed_on=date(2024, 2, 20))
    assert licence_ofd_bytes(other, qr_text=QR_TEXT, created=CREATED) != a
    assert licence_ofd_bytes(lic, qr_text=QR_TEXT, created=CREATED + timedelta(days=1)) != a
    assert licence_ofd_bytes(lic, qr_text=QR_TEXT + "X", created=CREATED) != a


def test_aware_created_time_is_taken_in_beijing_time(lic):
    aware = datetime(2024, 3, 1, 1, 30, tzinfo=timezone.utc)  # 09:30 in Beijing
    assert licence_ofd_bytes(lic, qr_text=QR_TEXT, created=aware) == licence_ofd_bytes(lic, qr_text=QR_TEXT, created=CREATED)
    late = build_licence_package(lic, qr_text="x", created=datetime(2024, 2, 29, 20, 0, tzinfo=timezone.utc))
    assert b"<ofd:CreationDate>2024-03-01<" in late["OFD.xml"]
    with pytest.raises(LicenceLayoutError):
        build_licence_package(lic, qr_text="x", created="2024-03-01")  # type: ignore[arg-type]


def test_long_values_shrink_or_wrap_inside_their_column():
    long_name = "阿卜杜热合曼·买买提艾力·库尔班江·阿不都热西提·玉素甫江·艾合买提江"
    lic = _licence(name=long_name, issuer_name="新疆生产建设兵团第十四师昆玉市应急管理局（特种作业考核发证中心）")
    pkg = build_licence_package(lic, qr_text="x", created=CREATED)
    index, objs = _tag_index(pkg), _objects(pkg)
    name_obj = objs[index["name"][0][1]]
    assert _text_of(name_obj) == long_name
    bx, _, bw, _ = _box(name_obj.get("Boundary"))
    assert bx + bw <= 100  # stays left of the 性别 label
    assert len(name_obj.findall("ofd:TextCode", NS)) == 2 and float(name_obj.get("Size")) >= 2.4
    assert "reviewed_on" not in index  # no review yet: nothing printed, nothing tagged


def test_development_licence_is_marked_specimen(lic, pkg):
    assert lic.is_development  # tests run with the placeholder type code
    assert SPECIMEN in {_text_of(o) for o in _objects(pkg).values() if o.get("Font")}


def test_png_photo_and_missing_pixel_size():
    from .conftest import make_photo

    lic = _licence(photo=make_photo("PNG", (200, 300)))
    pkg = build_licence_package(lic, qr_text="x", created=CREATED)
    assert any(n.endswith(".png") and pkg[n] == lic.photo for n in pkg.names())


# ---------------------------------------------------------------- independent reader


def test_easyofd_reads_the_package(pkg, tmp_path, monkeypatch):
    easyofd = pytest.importorskip("easyofd")
    monkeypatch.chdir(tmp_path)  # easyofd unpacks into the working directory
    o = easyofd.OFD()
    o.read(pkg.to_bytes(), fmt="binary")
    doc = o.data[0]
    assert doc["default_page_size"] == [0.0, 0.0, *PAGE_SIZE_MM]
    texts = {t["text"] for t in doc["page_info"][0]["text_list"]}
    assert {"中华人民共和国特种作业操作证", "王测试", ISSUER} <= texts
    assert {v["format"] for v in doc["images"].values()} == {"JPEG", "PNG"}
    assert all(v["imgb64"] for v in doc["images"].values())
    assert {f["FontNameORI"] for f in doc["fonts"].values()} == {"宋体", "黑体"}


# ---------------------------------------------------------------- bad input and the generic builder


def test_bad_input_gives_typed_errors(lic):
    class NoName:
        def __getattr__(self, item):
            if item == "name":
                raise AttributeError(item)
            return getattr(lic, item)

    with pytest.raises(LicenceLayoutError) as e:
        build_licence_package(NoName(), qr_text="x", created=CREATED)
    assert e.value.code == "missing_field" and "姓名" in e.value.message_zh
    with pytest.raises(QRError):
        build_licence_package(lic, qr_text="", created=CREATED)
    bad = lic.model_copy(update={"issuer_name": "应急\x01管理局"})
    with pytest.raises(OFDWriteError) as e:
        build_licence_package(bad, qr_text="x", created=CREATED)
    assert e.value.code == "not_xml_text"
    with pytest.raises(OFDWriteError) as e:
        build_licence_package(lic.model_copy(update={"photo_format": "TIFF"}), qr_text="x", created=CREATED)
    assert e.value.code == "bad_image_format"


def test_builder_refuses_what_it_cannot_write():
    b = OFDBuilder((100, 100))
    page = b.add_page()
    font = b.add_font("宋体")
    with pytest.raises(OFDWriteError):
        b.add_text(page, [("ab", [1.0])], font=font, size=3, x=0, baseline=5)  # advances != chars
    with pytest.raises(OFDWriteError):
        b.add_text(page, [("ab", [1.0, 1.0])], font=font + 99, size=3, x=0, baseline=5)
    with pytest.raises(OFDWriteError):
        b.tag("1bad name", page, 1)
    with pytest.raises(OFDWriteError):
        b.build()  # no doc info
    with pytest.raises(OFDWriteError):
        b.set_doc_info(doc_id="x", created="2024-01-01")  # type: ignore[arg-type]
    b.set_doc_info(doc_id="x", created=date(2024, 1, 1), title="标题\x00")
    with pytest.raises(OFDWriteError) as e:
        b.build()
    assert e.value.code == "not_xml_text" and "Title" in str(e.value)
    b.set_doc_info(doc_id="x", created=date(2024, 1, 1))
    b.add_custom_data("ZZMC", "值\x1b")
    with pytest.raises(OFDWriteError):
        b.build()
    with pytest.raises(OFDWriteError):
        b.add_path(page, "M 0 0 L 1 1", boundary=(0, 0, 1, 1))  # neither fill nor stroke
    with pytest.raises(OFDWriteError):
        OFDBuilder((0, 10))


def test_fork_is_independent_and_build_is_repeatable():
    base = OFDBuilder((100, 50))
    page = base.add_page()
    font = base.add_font("黑体", "SimHei")
    base.add_text(page, [("模板", HEI.advances("模板", 4))], font=font, size=4, x=5, baseline=10)
    a, b = base.fork(), base.fork()
    for x in (a, b):
        x.set_doc_info(doc_id="d" * 32, created=date(2024, 1, 1))
    a.add_text(page, [("甲", [4.0])], font=font, size=4, x=5, baseline=20)
    pa, pb = a.build(), b.build()
    assert "甲".encode() in pa["Doc_0/Pages/Page_0/Content.xml"]
    assert "甲".encode() not in pb["Doc_0/Pages/Page_0/Content.xml"]
    assert a.max_unit_id == b.max_unit_id + 1 == base.max_unit_id + 1
    assert a.build().to_bytes() == pa.to_bytes()


def test_delta_array_run_compression():
    assert delta_array([3.175] * 11) == "g 11 3.175"
    assert delta_array([1, 2, 2, 2, 1.25, 0.1 + 0.2]) == "1 g 3 2 1.25 0.3"
    assert _expand(delta_array([0.5, 0.5, 1.0])) == [0.5, 0.5, 1.0]


def test_project_reader_and_licence_round_trip(pkg, lic):
    from ofd.licence import Licence
    from ofd.reader import open_ofd

    doc = open_ofd(pkg.to_bytes())
    assert [p.id for p in doc.pages] == [PAGE_ID]
    assert doc.custom_datas == lic.metadata()
    photo = next(doc.read(m.path) for m in doc.media.values() if m.format == "JPEG")
    assert Licence.from_metadata(doc.custom_datas, photo) == lic
