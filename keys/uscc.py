"""GB 32100-2015 统一社会信用代码 (unified social credit code, USCC).

18 characters: registration authority (1), organisation category (1), administrative
division (6 digits), subject identifier (9, GB 11714), check character (1). The check
uses weights 3^i mod 31 over a 31-character alphabet that leaves out I O Z S V
(easily confused with 1 0 2 5 U). Issuer codes and the first 18 characters of a
证照类型代码 are USCCs, so one mistyped character must be caught here.
"""

from __future__ import annotations

import re

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
_SHAPE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a USCC."""
    if len(first17) != 17 or any(c not in _VALUE for c in first17):
        raise ValueError("uscc_check_char needs 17 characters from the GB 32100 alphabet")
    total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS))
    return ALPHABET[(31 - total % 31) % 31]


def uscc_problem(s: str) -> tuple[str, str, str] | None:
    """(code, zh, en) describing what is wrong with ``s`` as a USCC, or None if valid."""
    if not isinstance(s, str):
        return ("type", "应为字符串", "must be a string")
    if len(s) != 18:
        return ("length", f"应为18位，实为{len(s)}位", f"must be 18 characters, got {len(s)}")
    if s != s.upper():
        return ("lowercase", "字母应为大写", "letters must be upper case")
    if not _SHAPE.fullmatch(s):
        return (
            "format",
            "含非法字符（不得含 I、O、Z、S、V，第3-8位须为行政区划数字）",
            "invalid characters (I, O, Z, S, V are not used; characters 3-8 must be digits)",
        )
    expected = uscc_check_char(s[:17])
    if s[17] != expected:
        return ("check_char", "校验码错误", f"check character is wrong (expected {expected})")
    return None
