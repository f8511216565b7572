"""GB 11643-1999 公民身份号码 (citizen identity number).

18 characters: address code (6), birth date YYYYMMDD (8), sequence (3, odd = male,
even = female), check character (ISO 7064 MOD 11-2: weights 2^(17-i) mod 11, value
10 written "X").

Decision on 15-digit numbers (pre-1999 format, no check digit, 2-digit year): they
are **rejected** for new licences. Every 15-digit card was replaced by 2013, the
number cannot be checked, and the licence number ("T" + ID number) and the
e-licence identifier must be stable; the clerk is told to enter the 18-digit form.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from .errors import single_error

WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
CHECK_CHARS = "10X98765432"  # index = weighted sum mod 11
EARLIEST_BIRTH = date(1800, 1, 1)  # the standard's own example (440524188001010014) is born 1880

# First two digits of the address code (GB/T 2260 provinces; 81/82/83 are the
# residence permits of Hong Kong, Macao and Taiwan residents, which use the same scheme).
PROVINCES: dict[str, str] = {
    "11": "北京市", "12": "天津市", "13": "河北省", "14": "山西省", "15": "内蒙古自治区",
    "21": "辽宁省", "22": "吉林省", "23": "黑龙江省",
    "31": "上海市", "32": "江苏省", "33": "浙江省", "34": "安徽省", "35": "福建省", "36": "江西省", "37": "山东省",
    "41": "河南省", "42": "湖北省", "43": "湖南省", "44": "广东省", "45": "广西壮族自治区", "46": "海南省",
    "50": "重庆市", "51": "四川省", "52": "贵州省", "53": "云南省", "54": "西藏自治区",
    "61": "陕西省", "62": "甘肃省", "63": "青海省", "64": "宁夏回族自治区", "65": "新疆维吾尔自治区",
    "71": "台湾省", "81": "香港特别行政区", "82": "澳门特别行政区", "83": "台湾地区居民居住证",
}

_SHAPE18 = re.compile(r"[0-9]{17}[0-9X]")
_SHAPE15 = re.compile(r"[0-9]{15}")


@dataclass(frozen=True)
class IdInfo:
    number: str  # normalised: ASCII, upper-case X
    birth_date: date
    sex: str  # "男" | "女", from the 17th digit
    region: str  # 6-digit address code
    province: str  # name for the first two digits


def id_check_char(first17: str) -> str:
    """The GB 11643 check character for 17 digits."""
    if not (len(first17) == 17 and first17.isascii() and first17.isdigit()):
        raise ValueError("id_check_char needs exactly 17 ASCII digits")
    return CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, WEIGHTS)) % 11]


def normalise_id_number(s: str) -> str:
    """Full-width digits to ASCII, surrounding blanks removed, 'x' to 'X'."""
    return unicodedata.normalize("NFKC", s).strip().upper()


def validate_id_number(s: str, *, today: date | None = None, field: str = "id_number") -> IdInfo:
    """Check an 18-character ID number; raise LicenceError (naming ``field``) if wrong."""

    fail = functools.partial(single_error, field)

    if not isinstance(s, str):
        raise fail("type", "应为字符串", "must be a string")
    n = normalise_id_number(s)
    if _SHAPE15.fullmatch(n):
        raise fail(
            "old_15_digit",
            "不再受理15位旧号码，请填写18位公民身份号码",
            "15-digit numbers are no longer accepted; enter the 18-character number",
        )
    if len(n) != 18:
        raise fail("length", f"应为18位，实为{len(n)}位", f"must be 18 characters, got {len(n)}")
    if not _SHAPE18.fullmatch(n):
        raise fail("format", "前17位应为数字，末位为数字或X", "must be 17 digits followed by a digit or X")
    province = PROVINCES.get(n[:2])
    if province is None:
        raise fail("region", f"地址码前两位 {n[:2]} 不是有效的省级代码", f"address code prefix {n[:2]} is not a province code")
    try:
        birth = date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        raise fail("birth_date", f"出生日期 {n[6:14]} 不是有效日期", f"birth date {n[6:14]} is not a valid date") from None
    today = today or date.today()
    if birth > today:
        raise fail("birth_future", "出生日期晚于今天", "birth date is in the future")
    if birth < EARLIEST_BIRTH:
        raise fail("birth_too_early", "出生日期早于1800年", "birth date is before 1800")
    expected = id_check_char(n[:17])
    if n[17] != expected:
        raise fail("check_digit", "校验码错误，请核对号码", "check digit is wrong; re-check the number")
    sex = "男" if int(n[16]) % 2 else "女"
    return IdInfo(number=n, birth_date=birth, sex=sex, region=n[:6], province=province)


def mask_id_number(n: str) -> str:
    """Keep the address code and the last four characters: 110101********123X."""
    return n[:6] + "*" * (len(n) - 10) + n[-4:] if len(n) > 10 else "*" * len(n)
