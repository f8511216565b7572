"""Text hygiene for names and other printed fields.

Whatever is accepted here is printed on a legal document, embedded in OFD XML,
shown in the verification portal and written to logs, so invisible or deceptive
characters are refused with a reason: control characters, bidi overrides (text that
displays differently from what is stored), zero-width characters (two names that look
equal but differ), private-use code points (legacy 生僻字 encodings no font shows)
and HTML syntax. Holder names are Chinese: CJK ideographs (every extension block,
plus 〇) with the separator dot · of ethnic-minority and transliterated names.
"""

from __future__ import annotations

import functools
import unicodedata

from .errors import single_error

NAME_MIN, NAME_MAX = 2, 50
NAME_DOT = "\u00b7"  # ·
# Look-alike dots people type for the separator; stored as U+00B7.
_DOT_VARIANTS = dict.fromkeys(map(ord, "\u2022\u2027\u30fb\uff65\u2219\u22c5\u0387\u16eb\u2e31"), NAME_DOT)

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ZERO_WIDTH = frozenset("\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff")
_HTML = frozenset("<>&\"'`")
_CJK_RANGES = (
    (0x3007, 0x3007),  # 〇
    (0x3400, 0x4DBF),  # Ext A
    (0x4E00, 0x9FFF),  # URO
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0x20000, 0x2EE5F),  # Ext B-I
    (0x2F800, 0x2FA1F),  # compatibility supplement
    (0x30000, 0x323AF),  # Ext G-H
)


def is_cjk_ideograph(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _hostile(s: str) -> tuple[str, str, str] | None:
    """(code, zh, en) for the first invisible/deceptive/markup character, or None."""
    for ch in s:
        cp = f"U+{ord(ch):04X}"
        if ch in _BIDI:
            return ("bidi_control", f"含双向文本控制字符 {cp}", f"contains a bidirectional control character {cp}")
        if ch in _ZERO_WIDTH:
            return ("zero_width", f"含零宽字符 {cp}", f"contains a zero-width character {cp}")
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return ("control_char", f"含控制字符 {cp}", f"contains a control character {cp}")
        if cat == "Co":
            return ("private_use", f"含私用区字符 {cp}，请使用标准汉字编码", f"contains a private-use character {cp}; use the standard Unicode character")
        if ch in _HTML:
            return ("html", f"含 HTML 特殊字符 {ch}", f"contains an HTML special character {ch!r}")
    return None


def clean_text(value: str, field: str, *, min_len: int = 1, max_len: int = 100) -> str:
    """NFC-normalise and trim free text; raise LicenceError if it is unsafe or out of bounds."""

    fail = functools.partial(single_error, field)

    if not isinstance(value, str):
        raise fail("type", "应为字符串", "must be a string")
    s = unicodedata.normalize("NFC", value).strip()
    problem = _hostile(s)
    if problem:
        raise fail(*problem)
    if not min_len <= len(s) <= max_len:
        raise fail("length", f"长度应为{min_len}至{max_len}个字符，实为{len(s)}", f"length must be {min_len}-{max_len} characters, got {len(s)}")
    return s


def clean_name(value: str, field: str = "name") -> str:
    """A holder name: CJK ideographs, parts joined by single · (look-alike dots folded)."""

    fail = functools.partial(single_error, field)

    s = clean_text(value, field, min_len=0, max_len=10 * NAME_MAX).translate(_DOT_VARIANTS)
    for ch in s:
        if ch != NAME_DOT and not is_cjk_ideograph(ch):
            shown = "空格" if ch.isspace() else ch
            raise fail("invalid_char", f"含不允许的字符“{shown}”（仅限汉字和间隔号·）", f"character {ch!r} is not allowed (Chinese characters and the dot · only)")
    if not NAME_MIN <= len(s) <= NAME_MAX:
        raise fail("length", f"长度应为{NAME_MIN}至{NAME_MAX}个字符，实为{len(s)}", f"length must be {NAME_MIN}-{NAME_MAX} characters, got {len(s)}")
    if s.startswith(NAME_DOT) or s.endswith(NAME_DOT) or NAME_DOT * 2 in s:
        raise fail("dot_position", "间隔号·不能在首尾或连续出现", "the dot · may not start or end the name or repeat")
    return s
