"""Generic GB/T 33190 (OFD 1.0) package writer.

Knows nothing about licences: it allocates object IDs, collects fonts, images, one or
more pages of text / path / image objects, document metadata and a custom-tag index, and
writes the XML files in the strict child order of the 2016 schemas (shared/schemas/ofd),
so every file it emits validates:

    OFD.xml                      OFD.xsd        DocInfo (+CustomDatas), DocRoot
    Doc_0/Document.xml           Document.xsd   CommonData, Pages, CustomTags
    Doc_0/PublicRes.xml          Res.xsd        Fonts (+ Res/font_N.* when embedded)
    Doc_0/DocumentRes.xml        Res.xsd        MultiMedias (Res/image_N.*)
    Doc_0/Pages/Page_N/Content.xml  Page.xsd    one Body layer per page
    Doc_0/Tags/CustomTags.xml    CustomTags.xsd
    Doc_0/Tags/CustomTag.xml     (no XSD: its content is ours, ObjectRef as in e-invoices)

All IDs come from one counter, so they are unique document-wide and ``MaxUnitID`` is the
last one issued (the signer continues from it).  Numbers are written with at most 3
decimals (1 µm) so the same input always gives the same bytes.

The per-document files (page content, OFD.xml) are written as strings, each object as
one fragment when it is added: building lxml trees and serialising them cost ~4x more,
and a fork of the licence template is then a list copy instead of a deep tree copy.
The strings are exactly what lxml would serialise (same escaping, same empty-element
form; tests re-serialise them with lxml and compare bytes).  The structural files,
which repeat from one document to the next, are built with lxml once and cached.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime
from typing import Sequence

from lxml import etree

from .errors import OFDError
from .package import NSMAP, OFD, ContentMemo, Package

DOC_DIR = "Doc_0"
DOC_ROOT = f"{DOC_DIR}/Document.xml"
RES_DIR = "Res"  # BaseLoc of both resource files, relative to Doc_0/
TAGS_FILE = "Tags/CustomTags.xml"
TAG_INDEX_FILE = "Tags/CustomTag.xml"

Box = tuple[float, float, float, float]  # x, y, w, h in mm (ST_Box)
RGB = tuple[int, int, int]

_IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "JPG": "jpg", "BMP": "bmp", "GIF": "gif", "TIF": "tif"}
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_WEIGHTS = frozenset(range(0, 1001, 100))
_GOOD_NAMES: set[str] = set()  # tag names already checked (the same dozen in every licence)


class OFDWriteError(OFDError):
    """The writer was asked for something it cannot emit as a valid OFD."""

    CATALOGUE = {
        "bad_value": ("Cannot write {what}: {reason}.", "无法写入{what_zh}：{reason}。"),
        "not_xml_text": (
            "{what} contains characters XML cannot hold (control characters?).",
            "{what_zh}包含 XML 不允许的字符（控制字符？）。",
        ),
        "bad_image_format": (
            "Unsupported image format {fmt!r}; use PNG or JPEG.",
            "不支持的图像格式 {fmt!r}，请使用 PNG 或 JPEG。",
        ),
        "unknown_ref": ("{what} {ref} was never added to this document.", "{what_zh} {ref} 未添加到本文档。"),
        "bad_tag_name": (
            "Custom tag name {name!r} is not an XML name.",
            "自定义标引名 {name!r} 不是合法的 XML 名称。",
        ),
    }


@lru_cache(maxsize=8192)  # layout coordinates repeat from one licence to the next
def num(v: float) -> str:
    """mm / unit number as OFD text: at most 3 decimals, no trailing zeros, no '-0'."""
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def box(b: Box) -> str:
    x, y, w, h = b
    return f"{num(x)} {num(y)} {num(w)} {num(h)}"


@lru_cache(maxsize=4096)
def _delta_array_cached(deltas: tuple[float, ...]) -> str:
    return delta_array(deltas)


def delta_array(deltas: Sequence[float]) -> str:
    """ST_Array for DeltaX/DeltaY with the standard's ``g N v`` run compression.

    Chinese e-invoices write it this way (``g 10 6.5297``); runs of one stay literal.
    """
    out: list[str] = []
    i, n = 0, len(deltas)
    while i < n:
        v = num(deltas[i])
        j = i + 1
        while j < n and num(deltas[j]) == v:
            j += 1
        out.append(f"g {j - i} {v}" if j - i > 1 else v)
        i = j
    return " ".join(out)


def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _el(tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    e = etree.Element(OFD + tag, attrs, nsmap=NSMAP)
    if text is not None:
        e.text = text
    return e


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, attrs: dict[str, str] | None = None, **kw: str
) -> etree._Element:
    """Child element in the OFD namespace; text or attribute values XML cannot hold become a typed error."""
    try:
        e = etree.SubElement(parent, OFD + tag, attrs or {}, **kw)
        if text is not None:
            e.text = text
    except ValueError as exc:  # lxml: "All strings must be XML compatible" (control characters, NUL)
        raise OFDWriteError("not_xml_text", what=tag, what_zh=tag) from exc
    return e


# ---- string XML, serialised exactly as lxml/libxml2 does ---------------------------
# XML 1.0 cannot hold C0 controls other than TAB/LF/CR, surrogates, U+FFFE/U+FFFF (lxml
# refuses the same set); text escapes & < > CR, attributes also " LF TAB.
_SPECIAL = re.compile("[\x00-\x1f&<>\"\ud800-\udfff\ufffe\uffff]")
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
XML_HEADER = "<?xml version='1.0' encoding='UTF-8'?>\n"  # what lxml's xml_declaration=True writes
XML_DECLARATION = XML_HEADER.encode("ascii")
OFD_XML_CLOSE = b"</ofd:DocBody></ofd:OFD>"  # how every OFD.xml of ours ends (after DocRoot)
_XMLNS = f' xmlns:ofd="{NSMAP["ofd"]}"'

# OFD.xml files this writer emitted lately, by content: the signer may add its pointer to
# them as text, their structure being known (DocInfo, DocRoot, no Signatures).
_emitted_ofd_xml = ContentMemo(lambda data: True, max_entries=256, max_bytes=1 << 20)


def emitted_ofd_xml(data: bytes) -> bool:
    """True if ``data`` is byte for byte an OFD.xml this process's writer produced lately."""
    return data in _emitted_ofd_xml


def escape_xml(value: str, tag: str, attr: bool) -> str:
    """``value`` as lxml writes it in element text (``attr`` False) or an attribute value;
    characters XML cannot hold are an OFDWriteError naming ``tag``."""
    if not _SPECIAL.search(value):
        return value
    if _INVALID.search(value):
        raise OFDWriteError("not_xml_text", what=tag, what_zh=tag)
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    if attr:
        value = value.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return value


def element_xml(
    tag: str, attrs: dict[str, str] | None = None, text: str | None = None, inner: str = "", xmlns: bool = False
) -> str:
    """One serialised ``ofd:`` element, byte for byte as lxml would write it.

    ``inner`` = its already serialised children; no text and no children = ``<ofd:X/>``;
    ``xmlns`` declares the ofd prefix (root elements).
    """
    head = "<ofd:" + tag + (_XMLNS if xmlns else "")
    if attrs:
        head += "".join([f' {k}="{escape_xml(v, tag, True)}"' for k, v in attrs.items()])
    if text is None and not inner:
        return head + "/>"
    return f"{head}>{'' if text is None else escape_xml(text, tag, False)}{inner}</ofd:{tag}>"


@lru_cache(maxsize=64)
def _color_xml(tag: str, rgb: RGB | None) -> str:
    return "" if rgb is None else element_xml(tag, {"Value": " ".join(str(int(c)) for c in rgb)})


@dataclass
class _Page:
    id: int
    index: int
    layer_id: int  # its single Body <Layer>
    objects: list[str]  # serialised page objects, in drawing order

    def xml(self) -> bytes:
        layer = element_xml("Layer", {"ID": str(self.layer_id), "Type": "Body"}, inner="".join(self.objects))
        return (XML_HEADER + element_xml("Page", inner=element_xml("Content", inner=layer), xmlns=True)).encode("utf-8")




class OFDBuilder:
    """Collects one document and writes it as a `Package` (``build()``).

    Coordinates are page millimetres, y downwards (GB/T 33190 §7.3).  Text, path and
    image objects take their ``Boundary`` in page coordinates; inside it, TextCode X/Y
    and path data are relative to the Boundary's top-left corner.
    """

    def __init__(
        self,
        page_size_mm: tuple[float, float],
        *,
        tag_namespace: str = "urn:ecert:custom-tags",
        tag_root: str = "Index",
    ) -> None:
        w, h = page_size_mm
        if not (w > 0 and h > 0):
            raise OFDWriteError("bad_value", what="page size", what_zh="页面尺寸", reason=f"{page_size_mm}")
        self._check_name(tag_root)
        self.page_size_mm = (float(w), float(h))
        self.tag_namespace, self.tag_root = tag_namespace, tag_root
        self.doc_id: str | None = None
        self.created: date | None = None
        self.title = self.author = self.creator_version = None
        self.creator = "ecert"
        self._next_id = 0
        self._fonts: list[tuple[int, dict[str, str], str | None]] = []  # id, attrs, file name
        self._font_ids: set[int] = set()
        self._media: list[tuple[int, str, str]] = []  # id, format, file name
        self._files: dict[str, bytes] = {}  # resource payloads, relative to Doc_0/
        self._pages: list[_Page] = []
        self._custom: list[tuple[str, str]] = []
        self._tags: dict[str, list[tuple[int, int]]] = {}  # tag name -> [(page ID, object ID)]

    def set_doc_info(
        self,
        *,
        doc_id: str,
        created: date | datetime,
        title: str | None = None,
        author: str | None = None,
        creator: str = "ecert",
        creator_version: str | None = None,
    ) -> None:
        """OFD.xml DocInfo.  ``created`` is written as xs:date (the 2016 schema has no time)."""
        if not doc_id or not isinstance(doc_id, str):
            raise OFDWriteError("bad_value", what="DocID", what_zh="文档标识", reason="empty")
        if not isinstance(created, date):
            raise OFDWriteError("bad_value", what="CreationDate", what_zh="创建日期", reason=f"not a date: {created!r}")
        self.doc_id = doc_id
        self.created = created.date() if isinstance(created, datetime) else created
        self.title, self.author = title, author
        self.creator, self.creator_version = creator, creator_version

    def fork(self) -> "OFDBuilder":
        """An independent copy: build the document-independent part once, fork it per document."""
        other = copy.copy(self)
        other._fonts = list(self._fonts)
        other._font_ids = set(self._font_ids)
        other._media = list(self._media)
        other._files = dict(self._files)
        other._custom = list(self._custom)
        other._tags = {k: list(v) for k, v in self._tags.items()}
        other._pages = [_Page(p.id, p.index, p.layer_id, list(p.objects)) for p in self._pages]
        return other

    # ---- IDs -------------------------------------------------------------------
    def new_id(self) -> int:
        """Next object ID (1, 2, ...); every resource and page object takes one."""
        self._next_id += 1
        return self._next_id

    @property
    def max_unit_id(self) -> int:
        return self._next_id

    # ---- resources -------------------------------------------------------------
    def add_font(
        self,
        font_name: str,
        family_name: str | None = None,
        *,
        serif: bool = False,
        bold: bool = False,
        fixed_width: bool = False,
        font_file: bytes | None = None,
        file_ext: str = "otf",
    ) -> int:
        """Declare a font in PublicRes.xml; with ``font_file`` it is embedded (Res/font_N.ext)."""
        fid = self.new_id()
        attrs = {"ID": str(fid), "FontName": font_name}
        if family_name:
            attrs["FamilyName"] = family_name
        for key, flag in (("Bold", bold), ("Serif", serif), ("FixedWidth", fixed_width)):
            if flag:
                attrs[key] = "true"
        fname = None
        if font_file is not None:
            fname = f"font_{fid}.{file_ext}"
            self._files[f"{RES_DIR}/{fname}"] = bytes(font_file)
        self._fonts.append((fid, attrs, fname))
        self._font_ids.add(fid)
        return fid

    def add_image(self, data: bytes, fmt: str) -> int:
        """Declare an image in DocumentRes.xml (MultiMedia Type=Image), stored as Res/image_N.ext."""
        ext = _IMAGE_FORMATS.get(str(fmt).upper())
        if ext is None:
            raise OFDWriteError("bad_image_format", fmt=fmt)
        if not data:
            raise OFDWriteError("bad_value", what="image", what_zh="图像", reason="no data")
        mid = self.new_id()
        fname = f"image_{mid}.{ext}"
        self._files[f"{RES_DIR}/{fname}"] = bytes(data)
        self._media.append((mid, "JPEG" if ext == "jpg" else str(fmt).upper(), fname))
        return mid

    # ---- pages and objects ---------------------------------------------------------
    def add_page(self) -> int:
        """New page (with one Body layer); returns the page ID used by PageRef/StampAnnot."""
        pid = self.new_id()
        self._pages.append(_Page(pid, len(self._pages), self.new_id(), []))
        return pid

    def _layer(self, page: int) -> list[str]:
        """The object list of ``page``'s Body layer."""
        for p in self._pages:
            if p.id == page:
                return p.objects
        raise OFDWriteError("unknown_ref", what="page", what_zh="页面", ref=page)

    def add_text(
        self,
        page: int,
        lines: Sequence[tuple[str, Sequence[float]]],
        *,
        font: int,
        size: float,
        x: float,
        baseline: float,
        line_height: float | None = None,
        fill: RGB | None = None,
        weight: int | None = None,
        name: str | None = None,
    ) -> int:
        """One text object: ``lines`` of (text, per-glyph advances in mm), first baseline at (x, baseline).

        All advances but each line's last become DeltaX, so every reader puts each glyph
        where we measured it, whatever font it substitutes.  Further lines go
        ``line_height`` lower (one TextCode each).  The Boundary spans the text.
        """
        if not lines:
            raise OFDWriteError("bad_value", what="text", what_zh="文本", reason="no line")
        if not size > 0:
            raise OFDWriteError("bad_value", what="font size", what_zh="字号", reason=str(size))
        if font not in self._font_ids:
            raise OFDWriteError("unknown_ref", what="font", what_zh="字体", ref=font)
        if weight is not None and weight not in _WEIGHTS:
            raise OFDWriteError("bad_value", what="font weight", what_zh="字重", reason=str(weight))
        lh = size * 1.2 if line_height is None else line_height
        for text, advances in lines:
            if not text:
                raise OFDWriteError("bad_value", what="text", what_zh="文本", reason="empty string")
            if len(advances) != len(text):
                raise OFDWriteError(
                    "bad_value", what="text advances", what_zh="字符步进", reason=f"{len(advances)} for {len(text)} chars"
                )
        layer = self._layer(page)
        oid = self.new_id()
        width = max(sum(adv) for _, adv in lines)
        bound = (x, baseline - size, width + size * 0.1, size * 1.3 + (len(lines) - 1) * lh)
        # The hottest object of the licence: formatted directly, in element_xml's exact form.
        head = f'<ofd:TextObject ID="{oid}" Boundary="{box(bound)}" Font="{font}" Size="{num(size)}"'
        if name:
            head += f' Name="{escape_xml(name, "TextObject", True)}"'
        if weight is not None and weight != 400:
            head += f' Weight="{weight}"'
        out = [head, ">", _color_xml("FillColor", fill)]
        for k, (text, advances) in enumerate(lines):
            delta = f' DeltaX="{_delta_array_cached(tuple(advances[:-1]))}"' if len(text) > 1 else ""
            code = escape_xml(text, "TextCode", False)
            out.append(f'<ofd:TextCode X="0" Y="{num(size + k * lh)}"{delta}>{code}</ofd:TextCode>')
        out.append("</ofd:TextObject>")
        layer.append("".join(out))
        return oid

    def add_path(
        self,
        page: int,
        data: str,
        *,
        boundary: Box,
        fill: RGB | None = None,
        stroke: RGB | None = None,
        line_width: float | None = None,
        rule: str | None = None,
        name: str | None = None,
    ) -> int:
        """A path (AbbreviatedData in Boundary-relative mm); filled and/or stroked by the colours given."""
        if not data.strip():
            raise OFDWriteError("bad_value", what="path", what_zh="路径", reason="empty data")
        if fill is None and stroke is None:
            raise OFDWriteError("bad_value", what="path", what_zh="路径", reason="neither fill nor stroke")
        layer = self._layer(page)
        oid = self.new_id()
        attrs = {"ID": str(oid), "Boundary": box(boundary)}
        if name:
            attrs["Name"] = name
        if line_width is not None:
            attrs["LineWidth"] = num(line_width)
        if stroke is None:
            attrs["Stroke"] = "false"
        if fill is not None:
            attrs["Fill"] = "true"
        if rule:
            attrs["Rule"] = rule
        # CT_Path order: StrokeColor, FillColor, AbbreviatedData
        inner = _color_xml("StrokeColor", stroke) + _color_xml("FillColor", fill) + element_xml("AbbreviatedData", text=data)
        layer.append(element_xml("PathObject", attrs, inner=inner))
        return oid

    def add_image_object(self, page: int, resource: int, boundary: Box, *, name: str | None = None) -> int:
        """Show image ``resource`` stretched over ``boundary`` (CTM maps the unit square to w x h)."""
        if not any(mid == resource for mid, _, _ in self._media):
            raise OFDWriteError("unknown_ref", what="image", what_zh="图像", ref=resource)
        layer = self._layer(page)
        oid = self.new_id()
        _, _, w, h = boundary
        attrs = {"ID": str(oid), "Boundary": box(boundary), "CTM": f"{num(w)} 0 0 {num(h)} 0 0", "ResourceID": str(resource)}
        if name:
            attrs["Name"] = name
        layer.append(element_xml("ImageObject", attrs))
        return oid

    # ---- metadata and tags ---------------------------------------------------------
    def add_custom_data(self, name: str, value: str) -> None:
        """A DocInfo/CustomDatas/CustomData entry (Name = key), in insertion order."""
        if not name:
            raise OFDWriteError("bad_value", what="CustomData name", what_zh="自定义数据名称", reason="empty")
        self._custom.append((str(name), "" if value is None else str(value)))

    def tag(self, name: str, page: int, object_id: int) -> None:
        """Index page object ``object_id`` under ``name`` in the custom-tag file."""
        self._check_name(name)
        self._layer(page)
        self._tags.setdefault(name, []).append((page, object_id))

    @staticmethod
    def _check_name(name: str) -> None:
        if isinstance(name, str) and name in _GOOD_NAMES:
            return
        if not isinstance(name, str) or not _NCNAME.match(name):
            raise OFDWriteError("bad_tag_name", name=name)
        if len(_GOOD_NAMES) < 1024:
            _GOOD_NAMES.add(name)

    # ---- output ------------------------------------------------------------------
    def _ofd_xml(self) -> bytes:
        if self.doc_id is None or self.created is None:
            raise OFDWriteError("bad_value", what="DocInfo", what_zh="文档元数据", reason="set_doc_info() not called")
        info = [element_xml("DocID", text=self.doc_id)]
        if self.title:
            info.append(element_xml("Title", text=self.title))
        if self.author:
            info.append(element_xml("Author", text=self.author))
        info.append(element_xml("CreationDate", text=self.created.isoformat()))
        info.append(element_xml("Creator", text=self.creator))
        if self.creator_version:
            info.append(element_xml("CreatorVersion", text=self.creator_version))
        if self._custom:
            datas = "".join([  # element_xml's form, written directly (two dozen per licence)
                f'<ofd:CustomData Name="{escape_xml(name, "CustomData", True)}">{escape_xml(value, "CustomData", False)}</ofd:CustomData>'
                for name, value in self._custom
            ])
            info.append(element_xml("CustomDatas", inner=datas))
        body = element_xml("DocInfo", inner="".join(info)) + element_xml("DocRoot", text=DOC_ROOT)
        root = element_xml("OFD", {"Version": "1.0", "DocType": "OFD"}, inner=element_xml("DocBody", inner=body), xmlns=True)
        data = (XML_HEADER + root).encode("utf-8")
        _emitted_ofd_xml(data)
        return data

    def build(self, timestamp: datetime | None = None) -> Package:
        """The package: XML files in reading order, then resources.  ``timestamp`` = zip entry time."""
        if not self._pages:
            raise OFDWriteError("bad_value", what="document", what_zh="文档", reason="no page")
        pkg = Package(timestamp=timestamp)
        pkg["OFD.xml"] = self._ofd_xml()
        pages = tuple((p.id, p.index) for p in self._pages)
        pkg[DOC_ROOT] = _document_xml(
            self.max_unit_id, self.page_size_mm, pages, bool(self._fonts), bool(self._media), bool(self._tags)
        )
        if self._fonts:
            pkg[f"{DOC_DIR}/PublicRes.xml"] = _public_res_xml(
                tuple((tuple(attrs.items()), fname) for _, attrs, fname in self._fonts)
            )
        if self._media:
            pkg[f"{DOC_DIR}/DocumentRes.xml"] = _document_res_xml(tuple(self._media))
        for p in self._pages:
            pkg[f"{DOC_DIR}/Pages/Page_{p.index}/Content.xml"] = p.xml()
        if self._tags:
            tags = tuple((name, tuple(refs)) for name, refs in self._tags.items())
            pkg[f"{DOC_DIR}/{TAGS_FILE}"], pkg[f"{DOC_DIR}/{TAG_INDEX_FILE}"] = _tag_xml(
                self.tag_namespace, self.tag_root, tags
            )
        for name, data in self._files.items():
            pkg[f"{DOC_DIR}/{name}"] = data
        return pkg


# The structural files depend only on small hashable descriptions, which repeat from one
# document to the next (same layout = same IDs): they are built once and reused.


@lru_cache(maxsize=256)
def _document_xml(
    max_unit_id: int,
    page_size_mm: tuple[float, float],
    pages: tuple[tuple[int, int], ...],
    has_fonts: bool,
    has_media: bool,
    has_tags: bool,
) -> bytes:
    root = _el("Document")
    common = _sub(root, "CommonData")
    _sub(common, "MaxUnitID", str(max_unit_id))
    _sub(_sub(common, "PageArea"), "PhysicalBox", box((0, 0, *page_size_mm)))
    if has_fonts:
        _sub(common, "PublicRes", "PublicRes.xml")
    if has_media:
        _sub(common, "DocumentRes", "DocumentRes.xml")
    pages_el = _sub(root, "Pages")
    for pid, index in pages:
        _sub(pages_el, "Page", ID=str(pid), BaseLoc=f"Pages/Page_{index}/Content.xml")
    if has_tags:
        _sub(root, "CustomTags", TAGS_FILE)
    return _xml(root)


@lru_cache(maxsize=64)
def _public_res_xml(fonts: tuple[tuple[tuple[tuple[str, str], ...], str | None], ...]) -> bytes:
    root = _el("Res", BaseLoc=RES_DIR)
    fonts_el = _sub(root, "Fonts")
    for attrs, fname in fonts:
        f = _sub(fonts_el, "Font", attrs=dict(attrs))
        if fname:
            _sub(f, "FontFile", fname)
    return _xml(root)


@lru_cache(maxsize=256)
def _document_res_xml(media: tuple[tuple[int, str, str], ...]) -> bytes:
    root = _el("Res", BaseLoc=RES_DIR)
    medias = _sub(root, "MultiMedias")
    for mid, fmt, fname in media:
        _sub(_sub(medias, "MultiMedia", ID=str(mid), Type="Image", Format=fmt), "MediaFile", fname)
    return _xml(root)


@lru_cache(maxsize=256)
def _tag_xml(namespace: str, root_name: str, tags: tuple[tuple[str, tuple[tuple[int, int], ...]], ...]) -> tuple[bytes, bytes]:
    """CustomTags.xml (CustomTags.xsd) and the index it points to: ObjectRef per tagged object,
    as Chinese e-invoices do (``<InvoiceNo><ofd:ObjectRef PageRef="1">70</ofd:ObjectRef>``)."""
    root = _el("CustomTags")
    _sub(_sub(root, "CustomTag", NameSpace=namespace), "FileLoc", TAG_INDEX_FILE.rsplit("/", 1)[1])
    index = etree.Element(f"{{{namespace}}}{root_name}", nsmap={None: namespace, "ofd": NSMAP["ofd"]})
    for name, refs in tags:
        e = etree.SubElement(index, f"{{{namespace}}}{name}")
        for page, oid in refs:
            _sub(e, "ObjectRef", str(oid), PageRef=str(page))
    return _xml(root), _xml(index)
