"""GB 11643 公民身份号码: check digit, birth date, sex, region, 15-digit policy."""

from __future__ import annotations

from datetime import date

import pytest

from ofd.licence import LicenceError, mask_id_number, validate_id_number
from ofd.licence.idcard import id_check_char

TODAY = date(2026, 1, 15)


def iso7064_mod11_2(body: str) -> str:
    """Reference ISO 7064 MOD 11-2 in its recursive form (not the weight table of idcard.py)."""
    p = 0
    for ch in body:
        p = ((p + int(ch)) * 2) % 11
    c = (12 - p) % 11  # (p + c) ≡ 1 (mod 11)
    return "X" if c == 10 else str(c)


def make_id(region: str, birth: str, seq: str) -> str:
    body = region + birth + seq
    return body + iso7064_mod11_2(body)


def codes(exc: pytest.ExceptionInfo) -> set[tuple[str, str]]:
    return exc.value.codes


@pytest.mark.parametrize("published", ["11010519491231002X", "440524188001010014"])
def test_published_examples_are_valid(published):
    # The two examples printed in GB 11643-1999 itself.
    info = validate_id_number(published, today=TODAY)
    assert info.number == published
    assert iso7064_mod11_2(published[:17]) == published[17]


def test_reference_algorithm_agrees_with_module():
    for body in ("11010519491231002", "44052418800101001", "65010219800101123", "99999999999999999"):
        assert id_check_char(body) == iso7064_mod11_2(body)


@pytest.mark.parametrize(
    "region,birth,seq,sex,province",
    [
        ("110105", "19491231", "002", "女", "北京市"),
        ("650102", "19850315", "131", "男", "新疆维吾尔自治区"),
        ("540102", "20000229", "018", "女", "西藏自治区"),  # leap day
        ("810000", "19900101", "005", "男", "香港特别行政区"),
        ("320106", "19701010", "999", "男", "江苏省"),
    ],
)
def test_built_numbers_decode(region, birth, seq, sex, province):
    n = make_id(region, birth, seq)
    info = validate_id_number(n, today=TODAY)
    assert info.birth_date == date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    assert info.sex == sex
    assert info.region == region
    assert info.province == province


def test_every_single_wrong_character_is_detected():
    n = make_id("330106", "19880808", "123")
    validate_id_number(n, today=TODAY)
    for i in range(18):
        for c in "0123456789X":
            if c == n[i]:
                continue
            wrong = n[:i] + c + n[i + 1 :]
            with pytest.raises(LicenceError) as exc:
                validate_id_number(wrong, today=TODAY)
            assert exc.value.fields == {"id_number"}


def test_adjacent_transpositions_detected():
    n = make_id("330106", "19880808", "123")
    for i in range(17):
        if n[i] == n[i + 1]:
            continue
        swapped = n[:i] + n[i + 1] + n[i] + n[i + 2 :]
        with pytest.raises(LicenceError):
            validate_id_number(swapped, today=TODAY)


def test_check_digit_error_code():
    n = make_id("330106", "19880808", "123")
    wrong = n[:17] + ("0" if n[17] != "0" else "1")
    with pytest.raises(LicenceError) as exc:
        validate_id_number(wrong, today=TODAY)
    assert codes(exc) == {("id_number", "check_digit")}
    e = exc.value.errors[0]
    assert "校验码" in e.message_zh and "check digit" in e.message_en


@pytest.mark.parametrize(
    "birth,code",
    [
        ("19900230", "birth_date"),  # 30 February
        ("19000229", "birth_date"),  # 1900 is not a leap year
        ("19901301", "birth_date"),
        ("19900000", "birth_date"),
        ("20260116", "birth_future"),  # one day after TODAY
        ("20991231", "birth_future"),
        ("17991231", "birth_too_early"),
    ],
)
def test_bad_birth_dates(birth, code):
    with pytest.raises(LicenceError) as exc:
        validate_id_number(make_id("110105", birth, "001"), today=TODAY)
    assert codes(exc) == {("id_number", code)}


def test_birth_today_is_accepted():
    assert validate_id_number(make_id("110105", "20260115", "001"), today=TODAY).birth_date == TODAY


def test_lowercase_x_and_full_width_digits_normalised():
    assert validate_id_number("11010519491231002x", today=TODAY).number == "11010519491231002X"
    full = "１１０１０５１９４９１２３１００２Ｘ"
    assert validate_id_number(f"  {full} ", today=TODAY).number == "11010519491231002X"


def test_fifteen_digit_numbers_are_refused_with_clear_message():
    with pytest.raises(LicenceError) as exc:
        validate_id_number("110105491231002", today=TODAY)
    assert codes(exc) == {("id_number", "old_15_digit")}
    assert "18位" in exc.value.errors[0].message_zh


@pytest.mark.parametrize(
    "value,code",
    [
        ("1101051949123100", "length"),
        ("1101051949123100211", "length"),
        ("", "length"),
        ("11010519491231A02X", "format"),
        ("X10105194912310021", "format"),
        ("1101051949123100-X", "format"),
        (make_id("990105", "19491231", "002"), "region"),
        (make_id("000000", "19491231", "002"), "region"),
        (11010519491231002, "type"),
        (None, "type"),
    ],
)
def test_malformed_numbers(value, code):
    with pytest.raises(LicenceError) as exc:
        validate_id_number(value, today=TODAY)
    assert codes(exc) == {("id_number", code)}


def test_field_name_is_configurable():
    with pytest.raises(LicenceError) as exc:
        validate_id_number("123", field="holder.id", today=TODAY)
    assert exc.value.fields == {"holder.id"}


def test_mask():
    assert mask_id_number("11010519491231002X") == "110105********002X"
    assert mask_id_number("123") == "***"
