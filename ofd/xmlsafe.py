"""The one XML parser for untrusted OFD content.

OFD never needs a DTD, so any DOCTYPE or ENTITY declaration is refused outright (that
closes XXE, billion laughs and external-DTD fetches in one rule); the lxml parser is also
configured to resolve nothing, fetch nothing and keep libxml2's size/depth limits.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from ofd.errors import MalformedOFD
from ofd.package import OFD_NS

# The declarations, in ASCII-compatible encodings or in UTF-16 (either byte order).
_DECLARATION = re.compile(rb"<!(?:DOCTYPE|ENTITY)|<\x00!\x00(?:D\x00O\x00C|E\x00N\x00T)|\x00<\x00!\x00(?:D\x00O|E\x00N)")
_local = threading.local()  # lxml parsers must not be shared between threads


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_blank_text=False,
        )
    return parser


def parse_xml(data: bytes, name: str) -> etree._Element:
    """Parse `data` (the package entry `name`) or raise MalformedOFD ('not_xml', 'doctype_forbidden')."""
    if not data or data.isspace():
        raise MalformedOFD("not_xml", entry=name, reason="empty")
    if (b"<!" in data or b"!\x00" in data) and _DECLARATION.search(data):  # cheap test first
        raise MalformedOFD("doctype_forbidden", entry=name)
    try:
        root = etree.fromstring(data, _parser(), base_url=name)  # names the file in later errors
    except etree.XMLSyntaxError as exc:
        raise MalformedOFD("not_xml", entry=name, reason=str(exc.msg or exc)[:200]) from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding declaration
        raise MalformedOFD("not_xml", entry=name, reason=str(exc)[:200]) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # declarations in an exotic encoding
        raise MalformedOFD("doctype_forbidden", entry=name)
    return root


# --- Namespace-tolerant access. Vendors disagree on the namespace (Suwell writes
# "http://www.ofdspec.org" in OFD.xml) and sometimes leave child elements unqualified,
# so children are matched by local name once the root is known to be OFD.

OFD_NAMESPACES = frozenset({OFD_NS, "http://www.ofdspec.org", "http://www.ofdspec.org/", OFD_NS + "/"})


def local_name(el: etree._Element) -> str:
    tag = el.tag
    return tag[tag.rfind("}") + 1 :] if isinstance(tag, str) else ""


def check_root(root: etree._Element, expected: str, name: str) -> None:
    """Raise MalformedOFD unless `root` is the OFD element `expected`."""
    tag = root.tag
    ns = tag[1 : tag.index("}")] if tag.startswith("{") else ""
    if ns not in OFD_NAMESPACES:
        raise MalformedOFD("wrong_namespace", entry=name, ns=ns or "(none)")
    if local_name(root) != expected:
        raise MalformedOFD("wrong_root", entry=name, found=local_name(root), expected=expected)


# More same-named siblings than any real document has (pages, references, fonts...):
# bounds the work a hostile but well-formed XML can cause.
MAX_SIBLINGS = 50_000


def children(el: etree._Element, local: str) -> list[etree._Element]:
    found = list(el.iterchildren("{*}" + local))  # '{*}' = any namespace or none
    if len(found) > MAX_SIBLINGS:
        name = el.getroottree().docinfo.URL
        raise MalformedOFD("too_many_items", entry=name, what=local, count=len(found), limit=MAX_SIBLINGS)
    return found


def child(el: etree._Element, local: str) -> etree._Element | None:
    return next(el.iterchildren("{*}" + local), None)


def child_text(el: etree._Element, local: str) -> str | None:
    """Stripped text of the first child `local`; None when absent or empty."""
    c = child(el, local)
    text = (c.text or "").strip() if c is not None else ""
    return text or None


def required(el: etree._Element | None, what: str, name: str) -> etree._Element:
    if el is None:
        raise MalformedOFD("missing_element", entry=name, element=what)
    return el


def required_attr(el: etree._Element, attr: str, name: str) -> str:
    value = (el.get(attr) or "").strip()
    if not value:
        raise MalformedOFD("missing_attribute", entry=name, element=local_name(el), attribute=attr)
    return value


def parse_id(value: str, name: str, what: str = "ID") -> int:
    """ST_ID / ST_RefID: an xs:unsignedInt."""
    try:
        number = int(value.strip())
    except (ValueError, AttributeError):
        number = -1
    if not 0 <= number <= 0xFFFFFFFF:
        raise MalformedOFD("bad_value", entry=name, what=what, value=str(value)[:40])
    return number


def parse_box(value: str, name: str, what: str = "box") -> tuple[float, float, float, float]:
    """ST_Box "x y w h" (commas tolerated); width and height must be positive and finite."""
    try:
        x, y, w, h = (float(v) for v in value.replace(",", " ").split())
    except (ValueError, AttributeError):
        raise MalformedOFD("bad_value", entry=name, what=what, value=str(value)[:60]) from None
    if not (w > 0 and h > 0 and all(abs(v) < 1e6 for v in (x, y, w, h))):
        raise MalformedOFD("bad_value", entry=name, what=what, value=str(value)[:60])
    return x, y, w, h
