"""The OFD renderer: geometry on hand-made pages, every vendor sample, our own licence, hostile input, the CLI.

Expected pixels come from the standard's geometry (page mm × dpi / 25.4), not from
earlier renders: at 254 dpi one millimetre is exactly ten pixels.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from lxml import etree
from PIL import Image
from typer.testing import CliRunner

from ofd.errors import MalformedOFD, OFDError, UnsafePackage
from ofd.package import OFD_NS, Package
from ofd.reader import OFDDocument, open_ofd
from ofd.render import MAX_PIXELS, RenderError, page_count, render_page, render_png, render_svg
from ofd.render_path import deltas, parse_abbreviated
from ofd.signatures_xml import parse_signature_xml

from .conftest import SAMPLES, make_record
from .test_hostile_packages import time_limit  # noqa: F401  (autouse: a hanging render fails its test)

NS = f'xmlns:ofd="{OFD_NS}"'
DPI_10 = 254  # 10 px per mm
SAMPLE_FILES = sorted(SAMPLES.glob("*.ofd"))


# --------------------------------------------------------------------------- helpers


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def make_doc(content: str, *, res: str = "", files: dict[str, bytes] | None = None, box: str = "0 0 100 50",
             templates: str = "", page_head: str = "", annotations: bool = False) -> OFDDocument:
    """A one-page OFD (in memory, no zip) whose Content, resources and templates the test writes."""
    pkg = Package()
    pkg["OFD.xml"] = (f'<ofd:OFD {NS} Version="1.0" DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>'
                      f'{"0" * 32}</ofd:DocID></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot>'
                      "</ofd:DocBody></ofd:OFD>").encode()
    annots = "<ofd:Annotations>Annots/Annotations.xml</ofd:Annotations>" if annotations else ""
    pkg["Doc_0/Document.xml"] = (
        f"<ofd:Document {NS}><ofd:CommonData><ofd:MaxUnitID>999</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>{box}"
        f"</ofd:PhysicalBox></ofd:PageArea><ofd:PublicRes>PublicRes.xml</ofd:PublicRes>{templates}</ofd:CommonData>"
        f'<ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages>{annots}</ofd:Document>'
    ).encode()
    pkg["Doc_0/PublicRes.xml"] = (
        f'<ofd:Res {NS} BaseLoc="Res"><ofd:Fonts><ofd:Font ID="2" FontName="宋体"/><ofd:Font ID="3" FontName="黑体"/>'
        f"</ofd:Fonts>{res}</ofd:Res>"
    ).encode()
    pkg["Doc_0/Pages/Page_0/Content.xml"] = f"<ofd:Page {NS}>{page_head}<ofd:Content>{content}</ofd:Content></ofd:Page>".encode()
    for name, data in (files or {}).items():
        pkg[name] = data
    return OFDDocument(pkg)


def layer(*objects: str, extra: str = "") -> str:
    return f'<ofd:Layer ID="10"{extra}>{"".join(objects)}</ofd:Layer>'


def rect(x, y, w, h, color="255 0 0", extra="", oid=20) -> str:
    return (f'<ofd:PathObject ID="{oid}" Boundary="{x} {y} {w} {h}" Fill="true" Stroke="false"{extra}>'
            f'<ofd:FillColor Value="{color}"/><ofd:AbbreviatedData>M 0 0 L {w} 0 L {w} {h} L 0 {h} C'
            "</ofd:AbbreviatedData></ofd:PathObject>")


def ink_box(img: Image.Image, threshold: int = 128) -> tuple[int, int, int, int] | None:
    """Bounding box of the pixels darker than `threshold` in any channel."""
    mask = img.convert("RGB").point(lambda v: 255 if v < threshold else 0).convert("L")
    return mask.getbbox()


def reddish(img: Image.Image, box: tuple[int, int, int, int] | None = None) -> int:
    """Count of seal-red pixels (strong red, weak green and blue) in `box`."""
    part = img.convert("RGB").crop(box) if box else img.convert("RGB")
    r, g, b = part.split()
    red = r.point(lambda v: 255 if v > 150 else 0)
    not_g = g.point(lambda v: 255 if v < 110 else 0)
    not_b = b.point(lambda v: 255 if v < 110 else 0)
    from PIL import ImageChops

    both = ImageChops.multiply(ImageChops.multiply(red, not_g), not_b)
    return both.histogram()[255]


def non_white_fraction(img: Image.Image) -> float:
    grey = img.convert("L")
    hist = grey.histogram()
    return 1 - sum(hist[245:]) / (img.width * img.height)


# --------------------------------------------------------------------------- geometry


def test_filled_rectangle_lands_on_its_boundary():
    img = render_page(make_doc(layer(rect(10, 5, 20, 10))), dpi=DPI_10)
    assert img.size == (1000, 500)
    assert img.getpixel((150, 100)) == (255, 0, 0)
    assert img.getpixel((95, 100)) == (255, 255, 255) and img.getpixel((305, 100)) == (255, 255, 255)
    assert ink_box(img) == pytest.approx((100, 50, 301, 151), abs=1)


def test_ctm_scales_and_translates_a_path():
    img = render_page(make_doc(layer(rect(10, 5, 10, 5, extra=' CTM="2 0 0 2 3 1"'))), dpi=DPI_10)
    # object space (0..10, 0..5) → ×2 → +(3,1) → + Boundary origin (10,5): page (13..33, 6..16) mm
    assert ink_box(img) == pytest.approx((130, 60, 331, 161), abs=1)


def test_stroke_only_path_and_even_odd_hole():
    ring = ('<ofd:PathObject ID="21" Boundary="0 0 100 50" Fill="true" Stroke="false" Rule="Even-Odd">'
            '<ofd:FillColor Value="0 0 255"/><ofd:AbbreviatedData>M 10 10 L 40 10 L 40 40 L 10 40 C '
            "M 20 20 L 30 20 L 30 30 L 20 30 C</ofd:AbbreviatedData></ofd:PathObject>")
    line = ('<ofd:PathObject ID="22" Boundary="50 0 50 50" LineWidth="1"><ofd:AbbreviatedData>M 0 25 L 40 25'
            "</ofd:AbbreviatedData></ofd:PathObject>")
    img = render_page(make_doc(layer(ring, line)), dpi=DPI_10)
    assert img.getpixel((150, 150)) == (0, 0, 255)  # inside the outer square
    assert img.getpixel((250, 250)) == (255, 255, 255)  # the hole
    assert img.getpixel((700, 250)) == (0, 0, 0)  # default stroke colour is black
    assert img.getpixel((700, 240)) == (255, 255, 255)  # 1 mm wide line


def test_curves_and_arcs_are_flattened_through_their_end_points():
    subpaths, cut = parse_abbreviated("M 0 0 B 1 2 3 2 4 0 Q 5 -2 6 0 A 1 1 0 0 1 8 0 C")
    assert not cut and len(subpaths) == 1
    pts, closed = subpaths[0]
    assert closed and pts[0] == (0, 0) and pts[-1] == (0, 0)
    for end in ((4.0, 0.0), (6.0, 0.0), (8.0, 0.0)):
        assert any(abs(x - end[0]) < 1e-9 and abs(y - end[1]) < 1e-9 for x, y in pts)
    # the half circle from (6,0) to (8,0) with radius 1: its points lie on the circle round (7,0)
    arc = [(x, y) for x, y in pts if 6 < x < 8 and y < 0]
    assert len(arc) >= 8 and all(abs(((x - 7) ** 2 + y * y) ** 0.5 - 1) < 1e-9 for x, y in arc)
    assert min(y for _, y in arc) < -0.99


def test_delta_arrays_with_g_compression_are_lazy():
    assert deltas("1 g 3 2.5 4", 10) == [1, 2.5, 2.5, 2.5, 4]
    assert deltas("g 1000000000000 1", 3) == [1, 1, 1]  # never expanded beyond what is needed
    assert deltas("1 x 2", 5) == [1]  # garbage ends the array


def _glyph_columns(img: Image.Image) -> list[tuple[int, int]]:
    """Runs of columns holding ink, left to right."""
    grey = img.convert("L")
    cols = [any(grey.getpixel((x, y)) < 128 for y in range(grey.height)) for x in range(grey.width)]
    runs, start = [], None
    for x, on in enumerate(cols + [False]):
        if on and start is None:
            start = x
        elif not on and start is not None:
            runs.append((start, x))
            start = None
    return runs


def test_text_glyphs_follow_deltax_including_g_compression():
    text = ('<ofd:TextObject ID="30" Boundary="0 0 100 20" Font="2" Size="5">'
            '<ofd:TextCode X="10" Y="10" DeltaX="g 2 20">一一一</ofd:TextCode></ofd:TextObject>')
    img = render_page(make_doc(layer(text), box="0 0 100 20"), dpi=DPI_10)
    runs = _glyph_columns(img)
    assert len(runs) == 3
    starts = [r[0] for r in runs]
    assert starts[1] - starts[0] == pytest.approx(200, abs=2) and starts[2] - starts[1] == pytest.approx(200, abs=2)
    assert 100 <= starts[0] <= 115 and runs[0][1] - runs[0][0] < 55  # glyph ≤ 5 mm wide, starting at X=10 mm


def test_vertical_text_with_only_deltay_stays_in_one_column():
    text = ('<ofd:TextObject ID="30" Boundary="0 0 20 60" Font="2" Size="5">'
            '<ofd:TextCode X="5" Y="10" DeltaY="15 15">购买方</ofd:TextCode></ofd:TextObject>')
    img = render_page(make_doc(layer(text), box="0 0 20 60"), dpi=DPI_10)
    x0, y0, x1, y1 = ink_box(img)
    assert x1 - x0 < 60  # one glyph wide
    assert y1 - y0 > 300  # three rows, 15 mm apart


def test_rotated_text_is_drawn_rotated():
    upright = ('<ofd:TextObject ID="30" Boundary="20 20 10 10" Font="3" Size="8">'
               '<ofd:TextCode X="0" Y="0">一</ofd:TextCode></ofd:TextObject>')
    turned = upright.replace('Size="8"', 'Size="8" CTM="0 1 -1 0 0 0"')
    flat = ink_box(render_page(make_doc(layer(upright)), dpi=DPI_10))
    tall = ink_box(render_page(make_doc(layer(turned)), dpi=DPI_10))
    assert flat[2] - flat[0] > 3 * (flat[3] - flat[1])  # 一 is a horizontal stroke
    assert tall[3] - tall[1] > 3 * (tall[2] - tall[0])  # turned a quarter: vertical


def _quad_png() -> bytes:
    img = Image.new("RGB", (2, 2))
    img.putdata([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)])  # TL TR / BL BR
    return png_bytes(img)


IMG_RES = ('<ofd:MultiMedias><ofd:MultiMedia ID="5" Type="Image" Format="PNG"><ofd:MediaFile>q.png</ofd:MediaFile>'
           "</ofd:MultiMedia></ofd:MultiMedias>")


@pytest.mark.parametrize("ctm,expect", [
    ("40 0 0 20 0 0", {(5, 5): (255, 0, 0), (35, 5): (0, 255, 0), (5, 15): (0, 0, 255), (35, 15): (255, 255, 0)}),
    # a quarter turn: unit x → page +y, unit y → page -x, then shifted back into the box
    ("0 20 -40 0 40 0", {(35, 5): (255, 0, 0), (35, 15): (0, 255, 0), (5, 5): (0, 0, 255), (5, 15): (255, 255, 0)}),
    # a vertical flip
    ("40 0 0 -20 0 20", {(5, 15): (255, 0, 0), (35, 15): (0, 255, 0), (5, 5): (0, 0, 255), (35, 5): (255, 255, 0)}),
])
def test_image_is_mapped_from_the_unit_square_through_its_ctm(ctm, expect):
    obj = f'<ofd:ImageObject ID="40" Boundary="10 10 40 20" ResourceID="5" CTM="{ctm}"/>'
    img = render_page(make_doc(layer(obj), res=IMG_RES, files={"Doc_0/Res/q.png": _quad_png()}), dpi=DPI_10)
    for (x, y), colour in expect.items():
        px = img.getpixel((100 + x * 10, 100 + y * 10))
        assert all(abs(a - b) < 40 for a, b in zip(px, colour)), ((x, y), px, colour)
    assert img.getpixel((95, 150)) == (255, 255, 255) and img.getpixel((505, 150)) == (255, 255, 255)


def test_image_is_clipped_to_its_boundary():
    obj = '<ofd:ImageObject ID="40" Boundary="10 10 20 20" ResourceID="5" CTM="40 0 0 20 0 0"/>'
    img = render_page(make_doc(layer(obj), res=IMG_RES, files={"Doc_0/Res/q.png": _quad_png()}), dpi=DPI_10)
    assert ink_box(img, 200) == pytest.approx((100, 100, 301, 301), abs=1)


def test_undecodable_image_becomes_a_placeholder_with_a_warning():
    obj = '<ofd:ImageObject ID="40" Boundary="10 10 40 20" ResourceID="5"/>'
    doc = make_doc(layer(obj), res=IMG_RES.replace("PNG", "GBIG2"), files={"Doc_0/Res/q.png": b"\x97JB2\r\n\x1a\n junk"})
    img = render_page(doc, dpi=DPI_10)
    assert img.getpixel((300, 130)) == (225, 225, 225)
    assert any("cannot be decoded" in w for w in doc.warnings)


def test_alpha_drawparam_relative_colour_spaces():
    res = ('<ofd:ColorSpaces><ofd:ColorSpace ID="6" Type="CMYK"/><ofd:ColorSpace ID="7" Type="GRAY"/></ofd:ColorSpaces>'
           '<ofd:DrawParams><ofd:DrawParam ID="8"><ofd:FillColor Value="0 255 0"/></ofd:DrawParam>'
           '<ofd:DrawParam ID="9" Relative="8" LineWidth="2"/></ofd:DrawParams>')
    half_red = rect(0, 0, 10, 10, extra=' Alpha="128"', oid=21)
    cmyk = rect(20, 0, 10, 10, color='0 255 255 0" ColorSpace="6', oid=22)  # C=0 M=1 Y=1 K=0 → red
    gray = rect(40, 0, 10, 10, color='64" ColorSpace="7', oid=23)
    inherited = ('<ofd:PathObject ID="24" Boundary="60 0 10 10" Fill="true" Stroke="false" DrawParam="9">'
                 "<ofd:AbbreviatedData>M 0 0 L 10 0 L 10 10 L 0 10 C</ofd:AbbreviatedData></ofd:PathObject>")
    img = render_page(make_doc(layer(half_red, cmyk, gray, inherited), res=res), dpi=DPI_10)
    r, g, b = img.getpixel((50, 50))
    assert r == 255 and 120 <= g <= 135 and 120 <= b <= 135
    assert img.getpixel((250, 50)) == (255, 0, 0)
    assert img.getpixel((450, 50)) == (64, 64, 64)
    assert img.getpixel((650, 50)) == (0, 255, 0)


def test_templates_and_layers_are_drawn_in_order():
    templates = ('<ofd:TemplatePage ID="50" BaseLoc="Tpls/T0.xml"/>'
                 '<ofd:TemplatePage ID="51" BaseLoc="Tpls/T1.xml" ZOrder="Foreground"/>')
    background = f"<ofd:Page {NS}><ofd:Content>{layer(rect(0, 0, 100, 50, '0 0 255'))}</ofd:Content></ofd:Page>"
    foreground = f"<ofd:Page {NS}><ofd:Content>{layer(rect(80, 0, 20, 50, '0 0 0'))}</ofd:Content></ofd:Page>"
    content = (layer(rect(40, 0, 20, 50, "0 255 0"), extra=' Type="Foreground"')
               + layer(rect(0, 0, 60, 50, "255 0 0"), extra=' Type="Background"'))
    doc = make_doc(content, templates=templates,
                   page_head='<ofd:Template TemplateID="50"/><ofd:Template TemplateID="51"/>',
                   files={"Doc_0/Tpls/T0.xml": background.encode(), "Doc_0/Tpls/T1.xml": foreground.encode()})
    img = render_page(doc, dpi=DPI_10)
    assert img.getpixel((100, 250)) == (255, 0, 0)  # background layer over the background template
    assert img.getpixel((500, 250)) == (0, 255, 0)  # foreground layer although written first
    assert img.getpixel((700, 250)) == (0, 0, 255)  # template shows where the page draws nothing
    assert img.getpixel((900, 250)) == (0, 0, 0)  # foreground template on top of everything


def test_page_blocks_composites_and_annotation_appearances():
    res = ('<ofd:CompositeGraphicUnits><ofd:CompositeGraphicUnit ID="60" Width="10" Height="10"><ofd:Content>'
           + rect(0, 0, 10, 10, "0 0 255") + "</ofd:Content></ofd:CompositeGraphicUnit></ofd:CompositeGraphicUnits>")
    content = layer(f"<ofd:PageBlock ID=\"70\"><ofd:PageBlock ID=\"71\">{rect(0, 0, 10, 10)}</ofd:PageBlock></ofd:PageBlock>",
                    '<ofd:CompositeObject ID="72" Boundary="20 0 10 10" ResourceID="60" CTM="2 0 0 2 0 0"/>')
    annots = {
        "Doc_0/Annots/Annotations.xml": f'<ofd:Annotations {NS}><ofd:Page PageID="1"><ofd:FileLoc>A.xml</ofd:FileLoc>'
                                        "</ofd:Page></ofd:Annotations>".encode(),
        "Doc_0/Annots/A.xml": (f'<ofd:PageAnnot {NS}><ofd:Annot ID="80" Type="Watermark"><ofd:Appearance Boundary="60 30 20 10">'
                               + rect(5, 5, 5, 5, "0 255 0") + "</ofd:Appearance></ofd:Annot></ofd:PageAnnot>").encode(),
    }
    img = render_page(make_doc(content, res=res, files=annots, annotations=True), dpi=DPI_10)
    assert img.getpixel((50, 50)) == (255, 0, 0)
    assert img.getpixel((390, 190)) == (0, 0, 255)  # the unit's 10 mm square scaled ×2 from (20, 0)
    assert img.getpixel((670, 370)) == (0, 255, 0)  # appearance origin (60,30) + (5,5)


def test_svg_output_is_xml_with_text_paths_and_images():
    content = layer(rect(10, 5, 20, 10),
                    '<ofd:TextObject ID="30" Boundary="0 0 100 20" Font="2" Size="5"><ofd:TextCode X="10" Y="30" '
                    'DeltaX="5 5">证&lt;&amp;</ofd:TextCode></ofd:TextObject>',
                    '<ofd:ImageObject ID="40" Boundary="50 10 40 20" ResourceID="5"/>')
    svg = render_svg(make_doc(content, res=IMG_RES, files={"Doc_0/Res/q.png": _quad_png()}))
    root = etree.fromstring(svg.encode())
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == ns + "svg" and root.get("viewBox") == "0 0 100 50"
    texts = root.findall(f".//{ns}text")
    assert [t.text for t in texts] == ["证<&"] and texts[0].get("x") == "10 15 20"
    assert root.findall(f".//{ns}path")[0].get("fill") == "#ff0000"
    href = root.find(f".//{ns}image").get("{http://www.w3.org/1999/xlink}href")
    assert href.startswith("data:image/png;base64,")


# --------------------------------------------------------------------------- hostile input


def test_bad_page_index_and_dpi_are_typed_errors():
    doc = make_doc(layer(rect(10, 5, 20, 10)))
    assert page_count(doc) == 1
    with pytest.raises(RenderError) as e:
        render_page(doc, 1)
    assert e.value.code == "bad_page" and "第 2 页" in e.value.message_zh
    for dpi in (0, -5, float("nan"), float("inf"), 1e9):
        with pytest.raises(RenderError) as e:
            render_page(doc, 0, dpi=dpi)
        assert e.value.code == "bad_dpi"


def test_huge_page_times_dpi_is_refused_before_allocating():
    doc = make_doc(layer(rect(10, 5, 20, 10)), box="0 0 5000 5000")
    with pytest.raises(RenderError) as e:
        render_page(doc, 0, dpi=150)
    assert e.value.code == "too_large" and isinstance(e.value, OFDError)
    a4 = make_doc(layer(rect(10, 5, 20, 10)), box="0 0 210 297")
    with pytest.raises(RenderError):
        render_page(a4, 0, dpi=2400)  # 557 megapixels
    assert MAX_PIXELS >= 35_000_000  # A4 at 600 dpi stays allowed


def test_giant_delta_arrays_and_path_data_do_not_hang():
    big_delta = " ".join(["1.5"] * 1_000_000)
    text = (f'<ofd:TextObject ID="30" Boundary="0 0 100 20" Font="2" Size="5"><ofd:TextCode X="1" Y="10" '
            f'DeltaX="{big_delta}">超长数组</ofd:TextCode></ofd:TextObject>'
            '<ofd:TextObject ID="31" Boundary="0 20 100 20" Font="2" Size="5"><ofd:TextCode X="1" Y="10" '
            'DeltaX="g 99999999999 0.001">' + "字" * 5000 + "</ofd:TextCode></ofd:TextObject>")
    coords = " ".join(f"L {i % 97}.5 {(i * 7) % 43}.25" for i in range(120_000))  # ≈ 1.3 MB, over the point cap
    path = (f'<ofd:PathObject ID="32" Boundary="0 0 100 50" Fill="true"><ofd:AbbreviatedData>M 0 0 {coords} C'
            "</ofd:AbbreviatedData></ofd:PathObject>")
    assert len(coords) > 1_000_000
    doc = make_doc(layer(text, path))
    img = render_page(doc, dpi=150)
    assert non_white_fraction(img) > 0.05
    assert any("too many points" in w for w in doc.warnings)


def test_many_full_page_translucent_fills_stop_at_the_work_budget():
    fills = [rect(0, 0, 100, 50, extra=' Alpha="10"', oid=100 + i) for i in range(3000)]
    doc = make_doc(layer(*fills))
    img = render_page(doc, dpi=300)
    assert img.getpixel((10, 10)) != (255, 255, 255)
    assert any("drawing work" in w for w in doc.warnings)


def test_deep_nesting_and_composite_cycles_are_cut():
    nested = "<ofd:PageBlock ID=\"1\">" * 200 + rect(0, 0, 10, 10) + "</ofd:PageBlock>" * 200
    res = ('<ofd:CompositeGraphicUnits><ofd:CompositeGraphicUnit ID="60" Width="10" Height="10"><ofd:Content>'
           '<ofd:CompositeObject ID="61" Boundary="0 0 10 10" ResourceID="60"/>' + rect(0, 0, 5, 5)
           + "</ofd:Content></ofd:CompositeGraphicUnit></ofd:CompositeGraphicUnits>")
    doc = make_doc(layer(nested, '<ofd:CompositeObject ID="72" Boundary="20 0 10 10" ResourceID="60"/>'), res=res)
    img = render_page(doc, dpi=DPI_10)
    assert img.getpixel((220, 20)) == (255, 0, 0)  # the cycle's own content is drawn (to the depth cap)
    assert any("nested deeper" in w for w in doc.warnings)


def test_reader_errors_propagate_typed():
    doc = make_doc(layer(rect(10, 5, 20, 10)))
    doc.package["Doc_0/Pages/Page_0/Content.xml"] = b"<ofd:Page"
    with pytest.raises(MalformedOFD):
        render_page(doc)
    with pytest.raises(UnsafePackage):
        render_png(b"definitely not a zip")


# --------------------------------------------------------------------------- vendor samples


def _stamp_boxes(doc, page_index: int, dpi: float) -> list[tuple[int, int, int, int]]:
    page = doc.pages[page_index]
    k = dpi / 25.4
    boxes = []
    for entry in doc.signatures:
        for st in parse_signature_xml(doc, entry).stamp_annots:
            if st.page_ref == page.id:
                x, y, w, h = st.boundary
                if st.clip:
                    x, y, w, h = x + st.clip[0], y + st.clip[1], st.clip[2], st.clip[3]
                boxes.append((int(x * k), int(y * k), int((x + w) * k), int((y + h) * k)))
    return boxes


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.stem for p in SAMPLE_FILES])
def test_every_vendor_sample_renders_with_its_seals(path):
    doc = open_ofd(path.read_bytes())
    for index in range(page_count(doc)):
        img = render_page(doc, index, dpi=100)
        boxes = _stamp_boxes(doc, index, 100)
        if not boxes:
            continue
        bare = render_page(doc, index, dpi=100, with_stamps=False)
        for box in boxes:
            area = max(1, (box[2] - box[0]) * (box[3] - box[1]))
            added = reddish(img, box) - reddish(bare, box)
            assert added > 0.05 * area, (path.name, index, box, added, area)
    first = render_page(doc, 0, dpi=100)
    assert non_white_fraction(first) > 0.0005  # ink is there (ofdrw's one-line pages are mostly white)


def test_einvoice_page_has_text_frame_qr_and_nested_ofd_seal():
    doc = open_ofd((SAMPLES / "einvoice_chongqing_gomain.ofd").read_bytes())
    img = render_page(doc, 0, dpi=150)
    assert img.size == (1240, 827)  # the page's own Area (210 × 140 mm) overrides Document.xml's A4
    assert non_white_fraction(img) > 0.03
    import zxingcpp

    qr = zxingcpp.read_barcodes(img.crop((0, 0, 300, 300)))
    assert qr and qr[0].text.startswith("01,")  # the invoice QR (an embedded PNG) is readable
    svg = render_svg(doc, 0)
    assert svg.count("<image") == 2 and "mix-blend-mode:multiply" in svg  # QR + the seal (an OFD, rasterised)
    etree.fromstring(svg.encode())


# --------------------------------------------------------------------------- our licence


@pytest.fixture(scope="module")
def licence(dev_store, dev_issuer):
    from signer.issue import LicenceIssuer

    qr_text = "https://verify.example.gov.cn/v#T-RENDER-TEST-0001"
    issued = LicenceIssuer(dev_store, dev_issuer.code).issue(
        make_record(dev_issuer.code, dev_issuer.name), when=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        qr_text=qr_text)
    return issued.data, qr_text


def test_licence_qr_decodes_from_the_150_dpi_render(licence):
    import zxingcpp

    data, qr_text = licence
    img = Image.open(io.BytesIO(render_png(data, dpi=150)))
    assert [r.text for r in zxingcpp.read_barcodes(img)] == [qr_text]


def test_licence_seal_photo_and_title_appear(licence):
    from ofd import layout

    data, _ = licence
    doc = open_ofd(data)
    img = render_page(doc, 0, dpi=150)
    k = 150 / 25.4
    assert img.size == (round(layout.PAGE_SIZE_MM[0] * k), round(layout.PAGE_SIZE_MM[1] * k))
    (box,) = _stamp_boxes(doc, 0, 150)
    bare = render_page(doc, 0, dpi=150, with_stamps=False)
    area = (box[2] - box[0]) * (box[3] - box[1])
    assert reddish(img, box) - reddish(bare, box) > 0.08 * area
    x, y, w, h = layout.PHOTO_BOX_MM
    photo = img.crop((int(x * k), int(y * k), int((x + w) * k), int((y + h) * k)))
    assert non_white_fraction(photo) > 0.5
    title = img.crop((0, 0, img.width, int(22 * k)))
    assert non_white_fraction(title) > 0.02


def test_broken_seal_esl_falls_back_to_the_seal_inside_the_signed_value(licence):
    data, _ = licence
    doc = open_ofd(data)
    sx = parse_signature_xml(doc, doc.signatures[0])
    doc.package.files[sx.seal_path] = b"\x30\x03\x02\x01\x07"
    img = render_page(doc, 0, dpi=150)
    (box,) = _stamp_boxes(doc, 0, 150)
    centre = ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
    assert reddish(img, (centre[0] - 3, centre[1] - 3, centre[0] + 3, centre[1] + 3)) == 36  # the seal's star
    assert not any("no seal picture" in w for w in doc.warnings)


def test_licence_with_a_broken_seal_gets_a_placeholder_seal(licence):
    data, _ = licence
    doc = open_ofd(data)
    sx = parse_signature_xml(doc, doc.signatures[0])
    doc.package.files[sx.seal_path] = b"\x30\x03\x02\x01\x07"
    doc.package.files[sx.signed_value_path] = b"\x30\x03\x02\x01\x07"
    img = render_page(doc, 0, dpi=150)
    (box,) = _stamp_boxes(doc, 0, 150)
    assert reddish(img, box) > 0.02 * (box[2] - box[0]) * (box[3] - box[1])
    assert any("no seal picture" in w for w in doc.warnings)


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def cli():
    from api.cli_render import app

    return CliRunner(), app


def test_cli_renders_png_and_svg(cli, tmp_path):
    runner, app = cli
    src = SAMPLES / "einvoice_chongqing_kinggrid.ofd"
    out = tmp_path / "p2.png"
    res = runner.invoke(app, [str(src), "-o", str(out), "--page", "2", "--dpi", "60"])
    assert res.exit_code == 0, res.output
    img = Image.open(out)
    assert img.format == "PNG" and img.size == (round(210 * 60 / 25.4), round(297 * 60 / 25.4))  # page 2's own Area
    svg = tmp_path / "p1.svg"
    res = runner.invoke(app, [str(src), "-o", str(svg), "--format", "svg"])
    assert res.exit_code == 0, res.output
    assert etree.parse(str(svg)).getroot().tag == "{http://www.w3.org/2000/svg}svg"


@pytest.mark.parametrize("args,needle", [
    (["{missing}"], "cannot read"),
    (["{garbage}"], "not a ZIP"),
    (["{sample}", "--page", "9"], "page(s)"),
    (["{sample}", "--dpi", "100000"], "dpi"),
])
def test_cli_bad_input_exits_2_with_a_bilingual_message(cli, tmp_path, args, needle):
    runner, app = cli
    garbage = tmp_path / "bad.ofd"
    garbage.write_bytes(b"hello, not an ofd")
    names = {"missing": str(tmp_path / "nope.ofd"), "garbage": str(garbage),
             "sample": str(SAMPLES / "ofdrw_v4_whole_protected.ofd")}
    res = runner.invoke(app, [a.format(**names) for a in args] + ["-o", str(tmp_path / "x.png")])
    assert res.exit_code == 2
    assert needle in res.output and "错误" in res.output
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- JBIG2 and embedded fonts


def test_jbig2_qr_of_a_gomain_invoice_is_decoded_and_readable():
    import zxingcpp

    doc = open_ofd((SAMPLES / "einvoice_guizhou_gomain.ofd").read_bytes())
    img = render_page(doc, 0, dpi=150)
    (qr,) = zxingcpp.read_barcodes(img)
    fields = qr.text.split(",")
    page_text = "".join(doc.xml(doc.pages[0].path).itertext())
    assert fields[2] in page_text and fields[3] in page_text  # invoice code and number printed on the page
    assert not any("cannot be decoded" in w for w in doc.warnings)


def test_damaged_jbig2_is_refused_cleanly():
    import random

    from ofd.render_jbig2 import JBIG2Error, decode_jbig2

    good = open_ofd((SAMPLES / "einvoice_jiangsu_gomain.ofd").read_bytes()).read("Doc_0/Res/image_80.jb2")
    assert decode_jbig2(good).size == (100, 100)
    huge = bytearray(good)
    huge[54:58] = (60000).to_bytes(4, "big")  # the generic region's width (after 13 + 11 + 19 + 11 header bytes)
    with pytest.raises(JBIG2Error, match="larger than"):
        decode_jbig2(bytes(huge))
    mmr = bytearray(good)
    mmr[71] |= 1  # generic region flags: MMR
    with pytest.raises(JBIG2Error, match="template 0"):
        decode_jbig2(bytes(mmr))
    cases = [good[:40], good[:9], b"\x97JB2\r\n\x1a\n", good[:80]]
    rng = random.Random(7)
    for _ in range(60):
        bad = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        cases.append(bytes(bad))
    for data in cases:
        try:
            img = decode_jbig2(data)
        except JBIG2Error:
            continue
        assert img.mode == "L" and img.width * img.height <= 600_000


def test_embedded_font_is_used_and_a_broken_one_falls_back():
    from pathlib import Path

    from PIL import ImageFont

    ttf = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
    if not ttf.exists():
        pytest.skip("DejaVu fonts not installed")
    res_font = '<ofd:Fonts><ofd:Font ID="4" FontName="EmbeddedFace"><ofd:FontFile>f.ttf</ofd:FontFile></ofd:Font></ofd:Fonts>'
    text = ('<ofd:TextObject ID="30" Boundary="0 0 100 50" Font="4" Size="10">'
            '<ofd:TextCode X="10" Y="30">W</ofd:TextCode></ofd:TextObject>')
    img = render_page(make_doc(layer(text), res=res_font, files={"Doc_0/Res/f.ttf": ttf.read_bytes()}), dpi=DPI_10)
    left, top, right, bottom = ImageFont.truetype(str(ttf), 100).getbbox("W", anchor="ls")
    x0, y0, x1, y1 = ink_box(img)
    assert abs((x1 - x0) - (right - left)) <= 3 and abs((y1 - y0) - (bottom - top)) <= 3
    assert abs(y1 - 300) <= 3  # baseline at Y = 30 mm
    broken = make_doc(layer(text), res=res_font, files={"Doc_0/Res/f.ttf": b"OTTO not a font"})
    assert ink_box(render_page(broken, dpi=DPI_10)) is not None  # drawn with a system face instead


def test_cli_default_output_name(cli, tmp_path):
    runner, app = cli
    src = tmp_path / "doc.ofd"
    src.write_bytes((SAMPLES / "ofdrw_v4_whole_protected.ofd").read_bytes())
    res = runner.invoke(app, [str(src), "--dpi", "50"])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "doc.png").size == (round(210 * 50 / 25.4), round(297 * 50 / 25.4))


def test_polygon_and_polyline_clipping():
    from ofd.render_path import clip_polygon, clip_polyline

    square = [(-5.0, -5.0), (5.0, -5.0), (5.0, 5.0), (-5.0, 5.0)]
    clipped = clip_polygon(square, (0.0, 0.0, 10.0, 10.0))
    assert sorted(set(clipped)) == [(0.0, 0.0), (0.0, 5.0), (5.0, 0.0), (5.0, 5.0)]
    assert clip_polygon(square, (20.0, 20.0, 30.0, 30.0)) == []
    runs = clip_polyline([(-10.0, 5.0), (20.0, 5.0), (20.0, 50.0), (5.0, 50.0), (5.0, 0.0)], (0.0, 0.0, 10.0, 10.0))
    assert runs == [[(0.0, 5.0), (10.0, 5.0)], [(5.0, 10.0), (5.0, 0.0)]]


HOSTILE_GEOMETRY = {
    "far_boundary": rect("1e300", 0, 10, 10),
    "infinite_boundary": rect("inf", 0, 10, 10),
    "huge_triangle": ('<ofd:PathObject ID="5" Boundary="0 0 10 10" Fill="true" CTM="9999999 0 0 9999999 0 0">'
                      "<ofd:AbbreviatedData>M -1 -1 L 1 -1 L 0 1 C</ofd:AbbreviatedData></ofd:PathObject>"),
    "huge_line_width": ('<ofd:PathObject ID="5" Boundary="0 0 10 10" LineWidth="9999999">'
                        "<ofd:AbbreviatedData>M 0 0 L 10 10</ofd:AbbreviatedData></ofd:PathObject>"),
    "huge_text": ('<ofd:TextObject ID="30" Boundary="0 0 100 20" Font="2" Size="9999" CTM="999 0 0 999 0 0">'
                  '<ofd:TextCode X="0" Y="0">字字</ofd:TextCode></ofd:TextObject>'),
    "huge_image": '<ofd:ImageObject ID="40" Boundary="0 0 1e8 1e8" ResourceID="5" CTM="9999999 0 0 9999999 -5e6 -5e6"/>',
    "huge_turned_image": '<ofd:ImageObject ID="40" Boundary="0 0 1e8 1e8" ResourceID="5" CTM="0 9999999 9999999 1 -5e6 -5e6"/>',
    "singular_ctm": '<ofd:ImageObject ID="40" Boundary="0 0 10 10" ResourceID="5" CTM="0 0 0 0 0 0"/>',
    "negative_size": ('<ofd:TextObject ID="30" Boundary="0 0 100 20" Font="2" Size="-5">'
                      '<ofd:TextCode X="0" Y="0">字</ofd:TextCode></ofd:TextObject>'),
}


@pytest.mark.parametrize("name", list(HOSTILE_GEOMETRY))
def test_absurd_coordinates_render_without_stalling(name):
    doc = make_doc(layer(HOSTILE_GEOMETRY[name]), res=IMG_RES, files={"Doc_0/Res/q.png": _quad_png()})
    img = render_page(doc, dpi=300)
    assert img.size == (round(100 * 300 / 25.4), round(50 * 300 / 25.4))
    etree.fromstring(render_svg(doc).encode())
    if name in ("huge_triangle", "huge_image"):
        assert img.getpixel((img.width // 2, img.height // 2)) != (255, 255, 255)  # clipped, not dropped
    if name == "huge_line_width":  # a 10 mm diagonal, wider than the page: a band across it
        assert img.getpixel((30, 90)) == (0, 0, 0) and img.getpixel((90, 30)) == (0, 0, 0)


def test_concurrent_renders_give_identical_pictures():
    from concurrent.futures import ThreadPoolExecutor

    from ofd.render_text import _advance, _load
    from ofd.render_raster import _glyph_mask

    data = (SAMPLES / "einvoice_chongqing_kinggrid.ofd").read_bytes()
    for cache in (_glyph_mask, _advance, _load):
        cache.cache_clear()  # make the threads race on cold font caches
    with ThreadPoolExecutor(4) as pool:
        pictures = list(pool.map(lambda _: render_png(data, dpi=60), range(6)))
    assert len(set(pictures)) == 1
    assert pictures[0] == render_png(data, dpi=60)
