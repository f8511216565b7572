"""GB/T 36904-2018 电子证照标识 (electronic licence identifier).

    1.2.156.3005.2.<证照类型代码>.<颁发机构代码>.<流水号>.<版本号>.<校验位>

The check character is ISO/IEC 7064 MOD 37,36 over typeCode‖issuerCode‖serial‖version
(no dots, no root). Structure and algorithm are practice observed in several code
bases and reproduce four real identifiers (docs STANDARDS.md §2.1); the official text
was not available. What the check catches: every single-character substitution;
every adjacent transposition except one narrow class: two cyclically neighbouring
characters (0/1, 1/2, ..., Y/Z, Z/0) swapped at the one running state of 36 where
their effects commute (exhaustively characterised in tests/test_identifier.py).
Only upper-case letters and digits occur in the parts, so the
identifier is also safe as a file name and in a URL.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .errors import LicenceError, field_error, single_error

ROOT = "1.2.156.3005.2"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
MAX_SERIAL = 64

_TYPE_CODE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}[0-9]{3}")  # USCC of the defining body + 3 digits
_ISSUER = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}|[0-9]{6}")  # USCC, or (seen in practice) a 6-digit division code
_SERIAL = re.compile(r"[0-9A-Z]{1,%d}" % MAX_SERIAL)
_VERSION = re.compile(r"(?!000)[0-9]{3}")


def check_char(s: str) -> str:
    """ISO/IEC 7064 MOD 37,36 check character of ``s`` (0-9, A-Z)."""
    p = 36
    for ch in s:
        try:
            v = _VALUE[ch]
        except KeyError:
            raise ValueError(f"character {ch!r} is not in 0-9A-Z") from None
        p = (p + v) % 36 or 36
        p = (2 * p) % 37
    return ALPHABET[(37 - p) % 36]


@dataclass(frozen=True)
class Identifier:
    type_code: str
    issuer_code: str
    serial: str
    version: str  # 3 digits, "001".."999"
    check: str

    def __str__(self) -> str:
        return ".".join((ROOT, self.type_code, self.issuer_code, self.serial, self.version, self.check))


def _part_problems(type_code: str, issuer_code: str, serial: str, version: str) -> list[tuple[str, str, str]]:
    """(code, zh, en) for each malformed part."""
    problems = []
    if not _TYPE_CODE.fullmatch(type_code):
        problems.append(("type_code", "证照类型代码应为18位统一社会信用代码加3位数字", "type code must be an 18-character USCC plus 3 digits"))
    if not _ISSUER.fullmatch(issuer_code):
        problems.append(("issuer_code", "颁发机构代码应为18位统一社会信用代码", "issuer code must be an 18-character USCC"))
    if not _SERIAL.fullmatch(serial):
        problems.append(("serial", f"流水号应为1至{MAX_SERIAL}位大写字母或数字", f"serial must be 1-{MAX_SERIAL} upper-case letters or digits"))
    if not _VERSION.fullmatch(version):
        problems.append(("version", "版本号应为001至999的3位数字", "version must be 3 digits, 001-999"))
    return problems


def make_identifier(type_code: str, issuer_code: str, serial: str, version: int | str) -> str:
    """Build the identifier; ``version`` may be an int 1..999 or a 3-digit string."""
    if isinstance(version, int) and not isinstance(version, bool):
        version = f"{version:03d}" if 1 <= version <= 999 else str(version)
    problems = _part_problems(type_code, issuer_code, serial, str(version))
    if problems:
        raise LicenceError([field_error("identifier", code, zh, en) for code, zh, en in problems])
    return str(Identifier(type_code, issuer_code, serial, version, check_char(type_code + issuer_code + serial + version)))


def parse_identifier(s: str) -> Identifier:
    """Split and check an identifier (root, part shapes, check character)."""

    fail = functools.partial(single_error, "identifier")

    if not isinstance(s, str):
        raise fail("type", "应为字符串", "must be a string")
    s = s.strip()
    if not s.startswith(ROOT + "."):
        raise fail("root", f"应以根代码 {ROOT} 开头", f"must start with the root {ROOT}")
    parts = s[len(ROOT) + 1 :].split(".")
    if len(parts) != 5:
        raise fail(
            "parts",
            "根代码后应为 类型代码.颁发机构代码.流水号.版本号.校验位 五段",
            "after the root there must be 5 parts: type.issuer.serial.version.check",
        )
    type_code, issuer_code, serial, version, check = parts
    problems = _part_problems(type_code, issuer_code, serial, version)
    if problems:
        raise LicenceError([field_error("identifier", code, zh, en) for code, zh, en in problems])
    expected = check_char(type_code + issuer_code + serial + version)
    if check != expected:
        raise fail("check_char", "校验位错误，标识有误或被篡改", f"check character is wrong (expected {expected}); mistyped or altered")
    return Identifier(type_code, issuer_code, serial, version, check)
