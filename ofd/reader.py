"""Open any vendor's OFD: OFD.xml → DocRoot → Document.xml → pages, resources, signatures.

Everything comes from `read_package` (hostile-zip checks) and `parse_xml` (no DTDs), and
every ST_Loc goes through `resolve_loc`, which refuses to leave the package. Producers
disagree on where relative paths start (GB/T 33190 §7.4 vs. practice, STANDARDS.md
§3.1/§3.7), so `OFDDocument.locate` tries the standard base first and then the known
vendor bases, taking the first that names an existing entry.

Only OFD.xml and Document.xml are parsed when opening; resources, pages, annotations and
signatures are parsed on first use and cached, because verification needs only a few of
them and must stay fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Iterable

from lxml import etree

from ofd.errors import MalformedOFD
from ofd.package import Package
from ofd.safezip import Limits, read_package
from ofd.xmlsafe import (
    check_root,
    child,
    child_text,
    children,
    local_name,
    parse_box,
    parse_id,
    parse_xml,
    required,
    required_attr,
)

if TYPE_CHECKING:
    from ofd.signatures_xml import SignatureEntry

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # file:, http:, C: ... never inside a package
A4 = (0.0, 0.0, 210.0, 297.0)


def resolve_loc(loc: str, base_dir: str = "", where: str | None = None) -> str:
    """ST_Loc → package entry name. Leading '/' = package root, else relative to `base_dir`.

    Raises MalformedOFD 'bad_loc' (empty, scheme, backslash, control characters) or
    'path_escape' ('..' above the root). `where` names the referring file in messages.
    """
    if isinstance(loc, str) and len(loc) + len(base_dir) <= 512:  # only short strings are cached: the cache outlives the upload
        return _resolve_cached(loc, base_dir, where)
    return _resolve(loc, base_dir, where)


def _resolve(loc: str, base_dir: str, where: str | None) -> str:
    text = loc.strip() if isinstance(loc, str) else ""
    if not text or "\\" in text or _SCHEME.match(text) or any(ord(c) < 0x20 for c in text):
        raise MalformedOFD("bad_loc", entry=where, loc=str(loc)[:120])
    stack = [] if text.startswith("/") else [p for p in base_dir.split("/") if p and p != "."]
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise MalformedOFD("path_escape", entry=where, loc=text[:120])
            stack.pop()
        else:
            stack.append(part)
    if not stack:
        raise MalformedOFD("bad_loc", entry=where, loc=text[:120])
    return "/".join(stack)


_resolve_cached = lru_cache(maxsize=4096)(_resolve)


def dirname(path: str) -> str:
    return path.rpartition("/")[0]


@dataclass(frozen=True)
class PageRef:
    """A page of Document.xml; `xml` (its Content.xml root) is parsed on first access."""

    id: int
    path: str
    doc: "OFDDocument" = field(repr=False, compare=False)

    @property
    def xml(self) -> etree._Element:
        return self.doc.xml(self.path, "Page")


@dataclass(frozen=True)
class TemplateRef(PageRef):
    """A TemplatePage of CommonData: a page-shaped XML drawn under/over the pages that use it."""

    name: str | None = None
    zorder: str | None = None


@dataclass(frozen=True)
class FontRes:
    id: int
    name: str
    family: str | None = None
    charset: str = "unicode"
    bold: bool = False
    italic: bool = False
    serif: bool = False
    fixed_width: bool = False
    file: str | None = None  # resolved embedded font file, if any


@dataclass(frozen=True)
class MediaRes:
    id: int
    path: str | None  # resolved MediaFile; None if the resource names no file
    format: str | None = None  # as declared ("PNG", "JPEG", "JB2", ...) — may be absent
    type: str = "Image"


@dataclass(frozen=True)
class ColorSpaceRes:
    id: int
    type: str
    bits: int = 8
    profile: str | None = None
    element: etree._Element | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class CustomTagRef:
    namespace: str
    path: str | None
    schema_path: str | None = None


@dataclass(frozen=True)
class AttachmentRef:
    id: str
    name: str
    format: str | None
    path: str | None


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1")


class OFDDocument:
    """The first document (DocBody) of an OFD package, read lazily.

    `warnings` collects tolerated vendor quirks (fallback path bases, duplicate IDs,
    missing optional files) so a report can show them.
    """

    def __init__(self, package: Package) -> None:
        self.package = package
        self.warnings: list[str] = []
        self._xml: dict[str, etree._Element] = {}
        if "OFD.xml" not in package.files:
            raise MalformedOFD("missing_ofd_xml", entry="OFD.xml")
        self.ofd_root = self.xml("OFD.xml", "OFD")
        self.version = self.ofd_root.get("Version")
        self.doc_type = self.ofd_root.get("DocType")
        bodies = children(self.ofd_root, "DocBody")
        self.doc_body = required(bodies[0] if bodies else None, "DocBody", "OFD.xml")
        if len(bodies) > 1:
            self.warnings.append(f"OFD.xml has {len(bodies)} DocBody elements; only the first is read")
        doc_root = required(child_text(self.doc_body, "DocRoot"), "DocRoot", "OFD.xml")
        self.doc_root_path = self.locate(doc_root, [""], "OFD.xml")
        self.doc_dir = dirname(self.doc_root_path)
        self.document = self.xml(self.doc_root_path, "Document")
        sigs = child_text(self.doc_body, "Signatures")
        self.signatures_path = self.locate(sigs, ["", self.doc_dir], "OFD.xml") if sigs else None
        where = self.doc_root_path
        self.common_data = required(child(self.document, "CommonData"), "CommonData", where)
        max_id = child_text(self.common_data, "MaxUnitID")
        self.max_unit_id = parse_id(max_id, where, "MaxUnitID") if max_id else None
        self.physical_box = self._physical_box()
        self.pages = self._page_list()

    # --- package access -------------------------------------------------------------

    def read(self, path: str) -> bytes:
        """Exact bytes of a package entry (leading '/' allowed); MalformedOFD if absent."""
        data = self.package.files.get(path.lstrip("/"))
        if data is None:
            raise MalformedOFD("missing_entry", entry=path[:200])
        return data

    def xml(self, path: str, root: str | None = None) -> etree._Element:
        """Parsed (and cached) XML entry, its root checked to be the OFD element `root`."""
        el = self._xml.get(path)
        if el is None:
            el = self._xml[path] = parse_xml(self.read(path), path)
        if root is not None:
            check_root(el, root, path)
        return el

    def locate(self, loc: str, bases: Iterable[str], where: str, must_exist: bool = True) -> str:
        """Resolve `loc` against each base in turn; the first existing entry wins.

        The first base is the standard one: its escape/syntax errors are raised. If no
        candidate exists: MalformedOFD 'dangling_ref' when `must_exist`, else the first
        candidate is returned (and a warning recorded) so the caller can report it.
        """
        first = None
        for i, base in enumerate(bases):
            try:
                path = resolve_loc(loc, base, where)
            except MalformedOFD:
                if i == 0:
                    raise
                continue
            if path in self.package.files:
                if i:
                    self.warnings.append(f"{where}: '{loc[:120]}' found only relative to '/{base}'")
                return path
            first = first or path
        folded = self._casefold_index.get(first.lower()) if first else None
        if folded:  # Windows-made packages: 'TPLS/Tpl_0' written for 'Tpls/Tpl_0'
            self.warnings.append(f"{where}: '{loc[:120]}' matched '{folded}' only ignoring case")
            return folded
        if must_exist:
            raise MalformedOFD("dangling_ref", entry=where, loc=loc)
        self.warnings.append(f"{where}: '{loc[:120]}' is not in the package")
        return first or ""

    @cached_property
    def _casefold_index(self) -> dict[str, str]:
        """Lower-cased entry name → entry name, for names that are unique ignoring case."""
        index: dict[str, str | None] = {}
        for name in self.package.files:
            key = name.lower()
            index[key] = None if key in index else name
        return {k: v for k, v in index.items() if v is not None}

    # --- Document.xml ---------------------------------------------------------------

    def _physical_box(self) -> tuple[float, float, float, float]:
        area = child(self.common_data, "PageArea")
        box = child_text(area, "PhysicalBox") if area is not None else None
        if box is None:
            self.warnings.append("Document.xml has no PageArea/PhysicalBox; A4 assumed")
            return A4
        return parse_box(box, self.doc_root_path, "PhysicalBox")

    def _page_list(self) -> list[PageRef]:
        where = self.doc_root_path
        pages_el = required(child(self.document, "Pages"), "Pages", where)
        pages, seen = [], set()
        for el in children(pages_el, "Page"):
            page_id = parse_id(required_attr(el, "ID", where), where, "Page ID")
            path = self.locate(required_attr(el, "BaseLoc", where), [self.doc_dir], where)
            if page_id in seen:
                raise MalformedOFD("duplicate_ref", entry=where, loc=f"Page ID {page_id}")
            seen.add(page_id)
            pages.append(PageRef(page_id, path, self))
        return pages

    def page_by_id(self, page_id: int) -> PageRef | None:
        return next((p for p in self.pages if p.id == page_id), None)

    @cached_property
    def templates(self) -> dict[int, TemplateRef]:
        where, out = self.doc_root_path, {}
        for el in children(self.common_data, "TemplatePage"):
            tid = parse_id(required_attr(el, "ID", where), where, "TemplatePage ID")
            path = self.locate(required_attr(el, "BaseLoc", where), [self.doc_dir], where)
            out.setdefault(tid, TemplateRef(tid, path, self, el.get("Name"), el.get("ZOrder")))
        return out

    @cached_property
    def doc_info(self) -> dict:
        """DocInfo children by name (Keywords as a list); CustomDatas are in `custom_datas`."""
        info: dict = {}
        el = child(self.doc_body, "DocInfo")
        for c in el if el is not None else ():
            name = local_name(c)
            if name == "Keywords":
                info[name] = [(k.text or "").strip() for k in children(c, "Keyword")]
            elif name and name != "CustomDatas":
                info.setdefault(name, (c.text or "").strip())
        return info

    @cached_property
    def custom_datas(self) -> dict[str, str]:
        out: dict[str, str] = {}
        info = child(self.doc_body, "DocInfo")
        datas = child(info, "CustomDatas") if info is not None else None
        for c in children(datas, "CustomData") if datas is not None else ():
            name = required_attr(c, "Name", "OFD.xml")
            if name in out:
                self.warnings.append(f"OFD.xml: CustomData '{name}' repeated; first kept")
                continue
            out[name] = c.text or ""
        return out

    # --- resources ------------------------------------------------------------------

    @cached_property
    def res_paths(self) -> list[str]:
        """PublicRes then DocumentRes files of CommonData that exist, resolved."""
        where = self.doc_root_path
        locs = [c.text or "" for c in children(self.common_data, "PublicRes")]
        locs += [c.text or "" for c in children(self.common_data, "DocumentRes")]
        paths = [self.locate(loc, [self.doc_dir], where, must_exist=False) for loc in locs]
        return [p for p in paths if p in self.package.files]  # ofdrw may list a PublicRes it never wrote

    @cached_property
    def _resources(self) -> dict[str, dict]:
        res: dict[str, dict] = {"fonts": {}, "media": {}, "colorspaces": {}, "draw_params": {}, "composites": {}}
        for path in self.res_paths:
            self._load_res(path, res)
        return res

    def _load_res(self, path: str, res: dict[str, dict]) -> None:
        root = self.xml(path, "Res")
        file_dir = dirname(path)
        data_dir = resolve_loc(root.get("BaseLoc"), file_dir, path) if (root.get("BaseLoc") or "").strip() else file_dir
        file_of = self.file_locator([data_dir, file_dir, self.doc_dir, ""], path)

        def items(group: str, item: str, kind: str, make) -> None:
            for g in children(root, group):
                for el in children(g, item):
                    rid = parse_id(required_attr(el, "ID", path), path, f"{item} ID")
                    if rid in res[kind]:
                        self.warnings.append(f"{path}: {item} ID {rid} repeated; first kept")
                    else:
                        res[kind][rid] = make(rid, el)

        items("Fonts", "Font", "fonts", lambda rid, el: FontRes(
            rid, el.get("FontName") or "", el.get("FamilyName"), el.get("Charset") or "unicode",
            _bool(el.get("Bold")), _bool(el.get("Italic")), _bool(el.get("Serif")), _bool(el.get("FixedWidth")),
            file_of(el, "FontFile")))
        items("MultiMedias", "MultiMedia", "media", lambda rid, el: MediaRes(
            rid, file_of(el, "MediaFile"), el.get("Format"), el.get("Type") or "Image"))
        items("ColorSpaces", "ColorSpace", "colorspaces", lambda rid, el: ColorSpaceRes(
            rid, el.get("Type") or "RGB", _int(el.get("BitsPerComponent"), 8), file_of(el, "Profile"), el))
        items("DrawParams", "DrawParam", "draw_params", lambda rid, el: el)
        items("CompositeGraphicUnits", "CompositeGraphicUnit", "composites", lambda rid, el: el)

    def load_page_res(self, page: PageRef) -> None:
        """Merge a page's own PageRes files into the resource maps (IDs are document-wide)."""
        for loc in children(page.xml, "PageRes"):
            path = self.locate(loc.text or "", [dirname(page.path), self.doc_dir], page.path, must_exist=False)
            if path in self.package.files and path not in self.res_paths:
                self.res_paths.append(path)
                self._load_res(path, self._resources)

    @property
    def fonts(self) -> dict[int, FontRes]:
        return self._resources["fonts"]

    @property
    def media(self) -> dict[int, MediaRes]:
        return self._resources["media"]

    @property
    def colorspaces(self) -> dict[int, ColorSpaceRes]:
        return self._resources["colorspaces"]

    @property
    def draw_params(self) -> dict[int, etree._Element]:
        return self._resources["draw_params"]

    @property
    def composite_units(self) -> dict[int, etree._Element]:
        return self._resources["composites"]

    def check_composite_cycles(self) -> None:
        """Raise MalformedOFD 'cyclic_ref' if a CompositeGraphicUnit draws itself, directly or not."""
        units = self.composite_units
        edges = {
            uid: {_int(o.get("ResourceID"), -1) for o in el.iter() if local_name(o) == "CompositeObject"}
            for uid, el in units.items()
        }
        done: set[int] = set()
        for start in edges:
            stack, on_path = [(start, iter(edges[start]))], {start}
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    on_path.discard(node)
                    done.add(node)
                elif nxt in on_path:
                    raise MalformedOFD("cyclic_ref", entry=self.doc_root_path, what="CompositeGraphicUnit", value=nxt)
                elif nxt in edges and nxt not in done:
                    on_path.add(nxt)
                    stack.append((nxt, iter(edges[nxt])))

    # --- optional parts (annotations, custom tags, attachments) ----------------------

    def file_locator(self, bases: list[str], where: str):
        """f(element, child_tag) → resolved path of that child's ST_Loc text, or None if absent."""

        def file_of(el: etree._Element, tag: str) -> str | None:
            loc = child_text(el, tag)
            return self.locate(loc, bases, where, must_exist=False) if loc else None

        return file_of

    def _index_items(self, tag: str, root: str, item: str):
        """(path, element, file_of) for each `item` of an optional index file named by Document.xml."""
        loc = child_text(self.document, tag)
        path = self.locate(loc, [self.doc_dir], self.doc_root_path, must_exist=False) if loc else ""
        if path not in self.package.files:
            return
        file_of = self.file_locator([dirname(path), self.doc_dir], path)
        for el in children(self.xml(path, root), item):
            yield path, el, file_of

    @cached_property
    def annotations(self) -> dict[int, str | None]:
        """Page ID → its annotation file (resolved)."""
        return {
            parse_id(required_attr(page, "PageID", path), path, "PageID"): file_of(page, "FileLoc")
            for path, page, file_of in self._index_items("Annotations", "Annotations", "Page")
        }

    @cached_property
    def custom_tags(self) -> list[CustomTagRef]:
        return [
            CustomTagRef(tag.get("NameSpace") or tag.get("TypeID") or "", file_of(tag, "FileLoc"), file_of(tag, "SchemaLoc"))
            for _, tag, file_of in self._index_items("CustomTags", "CustomTags", "CustomTag")
        ]

    @cached_property
    def attachments(self) -> list[AttachmentRef]:
        return [
            AttachmentRef(att.get("ID") or "", att.get("Name") or "", att.get("Format"), file_of(att, "FileLoc"))
            for _, att, file_of in self._index_items("Attachments", "Attachments", "Attachment")
        ]

    # --- signatures -------------------------------------------------------------------

    @cached_property
    def signatures(self) -> list["SignatureEntry"]:
        from ofd.signatures_xml import parse_signatures

        return parse_signatures(self)


def _int(value: str | None, default: int) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        return default


def open_ofd(data: bytes, limits: Limits = Limits()) -> OFDDocument:
    """Vet, unpack and open an untrusted OFD; raises only `OFDError` subclasses for bad input."""
    return OFDDocument(read_package(data, limits))
