"""GB/T 36904 电子证照标识 (ISO 7064 MOD 37,36) and GB 32100 统一社会信用代码."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ofd.licence import LicenceError, check_char, make_identifier, parse_identifier, uscc_check_char, validate_uscc
from ofd.licence.identifier import ROOT

ALNUM = string.digits + string.ascii_uppercase

# Real identifiers found in public code (docs/STANDARDS.md §2.1).
REAL = [
    "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F",
    "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U",
    "1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0",
    "1.2.156.3005.2.11100000MB03271699022.340100.000000016.001.9",
]
# A swagger placeholder whose check character was never computed (computed: D).
PLACEHOLDER = "1.2.156.3005.2.11100000000013661B006.113700000045046442.209FA4E88F9E4C878F3E9BED2CE7EA49.001.M"


def mod37_36_valid(s_with_check: str) -> bool:
    """ISO 7064 hybrid-system *verification* (the check character processed as data ends at S = 1)."""
    p = 36
    for i, ch in enumerate(s_with_check):
        s = (p + ALNUM.index(ch)) % 36 or 36
        if i == len(s_with_check) - 1:
            return s == 1
        p = (2 * s) % 37
    return False


@pytest.mark.parametrize("ident", REAL)
def test_real_identifiers_reproduce(ident):
    parts = ident[len(ROOT) + 1 :].split(".")
    assert make_identifier(*parts[:4]) == ident
    parsed = parse_identifier(ident)
    assert str(parsed) == ident
    assert (parsed.type_code, parsed.issuer_code, parsed.serial, parsed.version, parsed.check) == tuple(parts)
    assert mod37_36_valid("".join(parts))


def test_placeholder_does_not_reproduce():
    with pytest.raises(LicenceError) as exc:
        parse_identifier(PLACEHOLDER)
    assert exc.value.codes == {("identifier", "check_char")}
    assert "expected D" in exc.value.errors[0].message_en


def test_malformed_placeholder_is_refused():
    # A front-end demo value (6-char type code, underscore in the serial): not an identifier at all.
    with pytest.raises(LicenceError) as exc:
        parse_identifier("1.2.156.3005.2.062301.1101101102.0624_001.001.U")
    assert {("identifier", "type_code"), ("identifier", "issuer_code"), ("identifier", "serial")} <= exc.value.codes


def test_altered_real_identifier_is_refused():
    # Real #1 with version 002 but its 001 check character: a "bumped version" forgery.
    forged = REAL[0].replace(".001.F", ".002.F")
    with pytest.raises(LicenceError) as exc:
        parse_identifier(forged)
    assert exc.value.codes == {("identifier", "check_char")}


def test_version_int_and_string_forms_agree():
    a = make_identifier("11100000000013338W032", "11220000013544541J", "2430599", 1)
    assert a == make_identifier("11100000000013338W032", "11220000013544541J", "2430599", "001") == REAL[0]


@pytest.mark.parametrize(
    "args,code",
    [
        (("11100000000013338W03", "11220000013544541J", "1", 1), "type_code"),  # 20 chars
        (("11100000000013338WA32", "11220000013544541J", "1", 1), "type_code"),
        (("11100000000013338w032", "11220000013544541J", "1", 1), "type_code"),
        (("11100000000013338W032", "1122000001354454", "1", 1), "issuer_code"),
        (("11100000000013338W032", "11220000013544541J", "", 1), "serial"),
        (("11100000000013338W032", "11220000013544541J", "t123", 1), "serial"),
        (("11100000000013338W032", "11220000013544541J", "A.B", 1), "serial"),
        (("11100000000013338W032", "11220000013544541J", "A" * 65, 1), "serial"),
        (("11100000000013338W032", "11220000013544541J", "1", 0), "version"),
        (("11100000000013338W032", "11220000013544541J", "1", 1000), "version"),
        (("11100000000013338W032", "11220000013544541J", "1", "01"), "version"),
    ],
)
def test_make_identifier_rejects_bad_parts(args, code):
    with pytest.raises(LicenceError) as exc:
        make_identifier(*args)
    assert ("identifier", code) in exc.value.codes


@pytest.mark.parametrize(
    "s,code",
    [
        ("1.2.156.3003.2.11100000000013338W032.11220000013544541J.2430599.001.F", "root"),  # typo seen in the wild
        ("11100000000013338W032.11220000013544541J.2430599.001.F", "root"),
        ("1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001", "parts"),
        ("1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F.X", "parts"),
        ("1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.000.F", "version"),
        (None, "type"),
    ],
)
def test_parse_identifier_structure_errors(s, code):
    with pytest.raises(LicenceError) as exc:
        parse_identifier(s)
    assert ("identifier", code) in exc.value.codes


def test_check_char_rejects_foreign_characters():
    with pytest.raises(ValueError):
        check_char("abc")


# ---- what the check character catches


def _state_of(prefix: str) -> int:
    """Running MOD 37,36 state after ``prefix``, read off the public check_char (an injective map)."""
    idx = ALNUM.index(check_char(prefix))
    return 1 if idx == 0 else 37 - idx


def test_transposition_blind_spot_is_exactly_the_documented_class():
    # Reach all 36 running states with short prefixes, then try every ordered pair.
    prefixes: dict[int, str] = {}
    for a in ALNUM:
        for b in [""] + list(ALNUM):
            prefixes.setdefault(_state_of(a + b), a + b)
    assert len(prefixes) == 36
    missed = set()
    for p, prefix in prefixes.items():
        for a in ALNUM:
            for b in ALNUM:
                if a != b and check_char(prefix + a + b) == check_char(prefix + b + a):
                    missed.add((p, a, b))
    expected = {(p, a, b) for p in range(1, 37) for a in ALNUM for b in ALNUM if a != b and _blind_spot(p, a, b)}
    assert missed == expected
    assert len(missed) == 72  # of 36 * 36 * 35 = 45360 (state, ordered pair) combinations


def _blind_spot(state: int, a: str, b: str) -> bool:
    """Cyclic neighbours i, i+1 swapped at the running state 18 - i (mod 36)."""
    ia, ib = ALNUM.index(a), ALNUM.index(b)
    low = ia if (ib - ia) % 36 == 1 else ib if (ia - ib) % 36 == 1 else None
    return low is not None and (state + low) % 36 == 18


identifier_parts = st.tuples(
    st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=18, max_size=18),
    st.text(alphabet=string.digits, min_size=3, max_size=3),
    st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=18, max_size=18),
    st.text(alphabet=ALNUM, min_size=1, max_size=32),
    st.integers(min_value=1, max_value=999),
)


@settings(max_examples=150, deadline=None)
@given(identifier_parts, st.data())
def test_every_single_substitution_is_detected(parts, data):
    uscc, seq, issuer, serial, version = parts
    ident = make_identifier(uscc + seq, issuer, serial, version)
    assert mod37_36_valid(ident[len(ROOT) + 1 :].replace(".", ""))
    tail = len(ROOT) + 1
    i = data.draw(st.integers(min_value=tail, max_value=len(ident) - 1))
    c = data.draw(st.sampled_from(ALNUM + ".").filter(lambda x: x != ident[i]))
    with pytest.raises(LicenceError):
        parse_identifier(ident[:i] + c + ident[i + 1 :])


@settings(max_examples=150, deadline=None)
@given(identifier_parts, st.data())
def test_adjacent_transpositions_detected_outside_the_blind_spot(parts, data):
    uscc, seq, issuer, serial, version = parts
    ident = make_identifier(uscc + seq, issuer, serial, version)
    tail = len(ROOT) + 1
    i = data.draw(st.integers(min_value=tail, max_value=len(ident) - 2))
    a, b = ident[i], ident[i + 1]
    if a == b:
        return
    swapped = ident[:i] + b + a + ident[i + 2 :]
    if "." not in (a, b) and _blind_spot(_state_of(ident[tail:i].replace(".", "")), a, b):
        return  # the documented blind spot (see the exhaustive test above)
    with pytest.raises(LicenceError):
        parse_identifier(swapped)


# ---- GB 32100 USCC

REAL_USCC = ["11100000000013338W", "11220000013544541J", "11430000006122244L", "11330105002500287C", "11100000MB03271699"]


@pytest.mark.parametrize("code", REAL_USCC)
def test_real_usccs_are_valid(code):
    assert validate_uscc(code) == code
    assert uscc_check_char(code[:17]) == code[17]


def test_uscc_single_substitution_detected():
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    code = REAL_USCC[0]
    for i in range(18):
        for c in alphabet:
            if c != code[i]:
                with pytest.raises(LicenceError) as exc:
                    validate_uscc(code[:i] + c + code[i + 1 :])
                assert exc.value.fields == {"issuer_code"}


@pytest.mark.parametrize(
    "value,code",
    [
        ("11100000000013338", "length"),
        ("11100000000013338w", "lowercase"),
        ("1110000000001333IW", "format"),  # I is not in the GB 32100 alphabet
        ("11100000000013338O", "format"),
        ("111000A0000013338W", "format"),  # division code must be digits
        ("11100000000013338X", "check_char"),
        (None, "type"),
    ],
)
def test_uscc_errors(value, code):
    with pytest.raises(LicenceError) as exc:
        validate_uscc(value, field="issuer_code")
    assert exc.value.codes == {("issuer_code", code)}
