"""The C 0210 licence model: defaults, every validation rule, photo bounds, catalogue, metadata."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import zlib
from datetime import date

import pytest
from PIL import Image
from pydantic import ValidationError

from ofd.licence import (
    PLACEHOLDER_TYPE_CODE,
    ConfigError,
    Licence,
    LicenceError,
    LicenceRecord,
    inspect_photo,
    load_catalogue,
    make_identifier,
    parse_identifier,
    validate_record,
    validate_uscc,
)
from ofd.licence.catalogue import ENV_EXTRA
from ofd.licence.model import ENV_NUMBER_PREFIX, ENV_TYPE_CODE, METADATA_FIELDS
from tests.test_idcard import make_id

TODAY = date(2026, 1, 15)
ISSUER = "11220000013544541J"  # a real USCC (docs STANDARDS.md §2.1)
MALE_ID = make_id("320106", "19850315", "131")
FEMALE_ID = "11010519491231002X"  # GB 11643's own example


def image(fmt="JPEG", size=(358, 441), mode="RGB", **save) -> bytes:
    img = Image.new(mode, size, (120, 140, 160) if mode == "RGB" else None)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


JPEG = image()


def record(**over) -> dict:
    """A record as JSON would carry it: ISO dates, base64 photo."""
    rec = {
        "name": "李明",
        "sex": "男",
        "id_number": MALE_ID,
        "category": "电工作业",
        "item": "低压电工作业",
        "first_issue_date": "2020-06-01",
        "valid_from": "2023-03-01",
        "issuer_name": "江苏省应急管理厅",
        "issuer_code": ISSUER,
        "photo": base64.b64encode(JPEG).decode(),
    }
    rec.update(over)
    return {k: v for k, v in rec.items() if v is not ...}


def issue(**over) -> Licence:
    return validate_record(record(**over), today=TODAY)


def refused(rec: dict, **opts) -> LicenceError:
    with pytest.raises(LicenceError) as exc:
        validate_record(rec, **{"today": TODAY, **opts})
    return exc.value


# ---------------------------------------------------------------- defaults


def test_valid_record_gets_defaults():
    lic = issue()
    assert (lic.valid_until, lic.review_due, lic.issue_date) == (date(2029, 3, 1), date(2026, 3, 1), date(2023, 3, 1))
    assert lic.licence_number == "T" + MALE_ID
    assert lic.version == 1 and lic.reviewed_on is None
    assert (lic.title, lic.holder_id_type_code, lic.holder_id_type) == ("特种作业操作证", "111", "公民身份号码")
    assert (lic.category_code, lic.item_code) == ("1", "1.2")
    assert (lic.photo, lic.photo_format, lic.photo_size_px) == (JPEG, "JPEG", (358, 441))
    assert lic.type_code == PLACEHOLDER_TYPE_CODE and lic.is_development
    assert lic.identifier == make_identifier(PLACEHOLDER_TYPE_CODE, ISSUER, "T" + MALE_ID, "001")
    parsed = parse_identifier(lic.identifier)
    assert (parsed.serial, parsed.version) == ("T" + MALE_ID, "001")


def test_placeholder_type_code_is_syntactically_valid():
    assert len(PLACEHOLDER_TYPE_CODE) == 21 and PLACEHOLDER_TYPE_CODE[18:].isdigit()
    validate_uscc(PLACEHOLDER_TYPE_CODE[:18], field="type_code")


@pytest.mark.parametrize("start,until,review", [("2024-02-29", date(2030, 2, 28), date(2027, 2, 28)), ("2023-12-31", date(2029, 12, 31), date(2026, 12, 31))])
def test_default_dates_same_calendar_day(start, until, review):
    lic = issue(valid_from=start)
    assert (lic.valid_until, lic.review_due) == (until, review)


def test_python_record_with_raw_bytes_and_dates():
    rec = LicenceRecord(name="李明", sex="男", id_number=MALE_ID, category="电工作业", item="高压电工作业",
                        first_issue_date=date(2020, 6, 1), valid_from=date(2023, 3, 1), issuer_name="江苏省应急管理厅",
                        issuer_code=ISSUER, photo=JPEG, version=2, reviewed_on=date(2025, 12, 1))
    lic = Licence.from_record(rec, today=TODAY)
    assert (lic.item_code, lic.version, lic.photo) == ("1.1", 2, JPEG)
    assert lic.identifier.endswith(".002." + lic.identifier[-1])


def test_record_json_round_trip_uses_base64():
    rec = LicenceRecord.model_validate_json(json.dumps(record()))
    assert rec.photo == JPEG
    dumped = json.loads(rec.model_dump_json())
    assert dumped["photo"] == base64.b64encode(JPEG).decode() and dumped["valid_from"] == "2023-03-01"
    assert LicenceRecord.model_validate_json(rec.model_dump_json()) == rec


def test_photo_as_data_url_and_wrapped_base64():
    b64 = base64.b64encode(JPEG).decode()
    assert issue(photo="data:image/jpeg;base64," + b64).photo == JPEG
    assert issue(photo="\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))).photo == JPEG


def test_type_code_argument_and_environment(monkeypatch):
    tc = "11100000000013338W032"  # 住建部's code of another licence: syntactically valid
    lic = validate_record(record(), today=TODAY, type_code=tc)
    assert lic.type_code == tc and not lic.is_development and parse_identifier(lic.identifier).type_code == tc
    monkeypatch.setenv(ENV_TYPE_CODE, tc)
    assert issue().type_code == tc
    monkeypatch.setenv(ENV_TYPE_CODE, "11100000000013338X032")  # bad USCC check char
    with pytest.raises(ConfigError, match="type code"):
        issue()
    with pytest.raises(ConfigError):
        validate_record(record(), today=TODAY, type_code="123")


def test_licence_number_explicit_prefix_and_env(monkeypatch):
    lic = issue(licence_number="T4403002023004512")
    assert lic.licence_number == "T4403002023004512" and parse_identifier(lic.identifier).serial == "T4403002023004512"
    assert validate_record(record(), today=TODAY, number_prefix="TZ").licence_number == "TZ" + MALE_ID
    monkeypatch.setenv(ENV_NUMBER_PREFIX, "")
    assert issue().licence_number == MALE_ID
    monkeypatch.setenv(ENV_NUMBER_PREFIX, "t-")
    with pytest.raises(ConfigError):
        issue()


def test_female_holder_and_sex_agreement():
    assert issue(id_number=FEMALE_ID, sex="女").sex == "女"
    err = refused(record(id_number=FEMALE_ID, sex="男"))
    assert err.codes == {("sex", "id_mismatch")}
    assert "第17位" in err.errors[0].message_zh


# ---------------------------------------------------------------- every rule names its field

UNDERAGE_ID = make_id("110105", "20080101", "011")

RULES = [
    # names
    ({"name": ""}, "name", "length"),
    ({"name": "王"}, "name", "length"),
    ({"name": "王" * 51}, "name", "length"),
    ({"name": "<b>王</b>"}, "name", "html"),
    ({"name": "王&amp;"}, "name", "html"),
    ({"name": "王\u202e三"}, "name", "bidi_control"),
    ({"name": "王\u2066三"}, "name", "bidi_control"),
    ({"name": "王\u200b三"}, "name", "zero_width"),
    ({"name": "王\ufeff三"}, "name", "zero_width"),
    ({"name": "王\x07三"}, "name", "control_char"),
    ({"name": "王\n三"}, "name", "control_char"),
    ({"name": "王\ue000"}, "name", "private_use"),
    ({"name": "John Smith"}, "name", "invalid_char"),
    ({"name": "王 三"}, "name", "invalid_char"),
    ({"name": "王3"}, "name", "invalid_char"),
    ({"name": "·王三"}, "name", "dot_position"),
    ({"name": "王三·"}, "name", "dot_position"),
    ({"name": "王··三"}, "name", "dot_position"),
    ({"name": 12}, "name", "string_type"),
    # identity
    ({"id_number": MALE_ID[:17] + ("0" if MALE_ID[17] != "0" else "1")}, "id_number", "check_digit"),
    ({"id_number": "320106850315131"}, "id_number", "old_15_digit"),
    ({"id_number": make_id("320106", "19850230", "131")}, "id_number", "birth_date"),
    ({"sex": "M"}, "sex", "literal_error"),
    # catalogue
    ({"category": "电焊作业"}, "category", "unknown_category"),
    ({"item": "煤气作业"}, "item", "item_category_mismatch"),
    ({"item": "继电保护作业"}, "item", "unknown_item"),  # a provincial extra, not enabled
    # dates
    ({"first_issue_date": "2023-03-02"}, "first_issue_date", "after_valid_from"),
    ({"first_issue_date": "2026-01-16", "valid_from": "2026-01-16"}, "first_issue_date", "future"),
    ({"id_number": UNDERAGE_ID, "first_issue_date": "2025-12-31", "valid_from": "2025-12-31"}, "first_issue_date", "underage"),
    ({"valid_until": "2023-03-01"}, "valid_until", "not_after_start"),
    ({"valid_until": "2029-03-02"}, "valid_until", "too_long"),
    ({"valid_from": "2019-01-01", "first_issue_date": "2019-01-01"}, "valid_until", "expired"),
    ({"review_due": "2023-03-01"}, "review_due", "not_after_start"),
    ({"valid_until": "2027-03-01", "review_due": "2027-03-02"}, "review_due", "after_end"),
    ({"reviewed_on": "2023-02-28"}, "reviewed_on", "before_start"),
    ({"reviewed_on": "2026-01-16"}, "reviewed_on", "future"),
    ({"issue_date": "2020-05-31"}, "issue_date", "before_first_issue"),
    ({"issue_date": "2026-01-16"}, "issue_date", "future"),
    ({"first_issue_date": "2023/03/01"}, "first_issue_date", "date_format"),
    ({"valid_from": "2023-02-30"}, "valid_from", "date_invalid"),
    ({"valid_from": 1700000000}, "valid_from", "date_format"),
    ({"valid_from": "2023-03-01T00:00:00"}, "valid_from", "date_format"),
    # issuer
    ({"issuer_name": "局"}, "issuer_name", "length"),
    ({"issuer_name": "<script>x</script>应急管理局"}, "issuer_name", "html"),
    ({"issuer_code": ISSUER[:17] + "K"}, "issuer_code", "check_char"),
    ({"issuer_code": "1122000001354454"}, "issuer_code", "length"),
    # numbers
    ({"licence_number": "t-123"}, "licence_number", "format"),
    ({"version": 0}, "version", "greater_than_equal"),
    ({"version": 1000}, "version", "less_than_equal"),
    ({"version": "one"}, "version", "int_parsing"),
    # photo
    ({"photo": "not base64!"}, "photo", "photo_base64"),
    ({"photo": base64.b64encode(image("GIF")).decode()}, "photo", "format"),
    # structure
    ({"name": ...}, "name", "missing"),
    ({"photo": None}, "photo", "missing"),
    ({"nmae": "李明"}, "nmae", "extra_forbidden"),
]


@pytest.mark.parametrize("over,field,code", RULES, ids=[f"{f}-{c}" for _, f, c in RULES])
def test_rule_names_its_field(over, field, code):
    err = refused(record(**over))
    assert (field, code) in err.codes, err.codes
    e = next(e for e in err.errors if (e.field, e.code) == (field, code))
    assert e.message_en.startswith(field + ":")
    assert e.message_zh and all(ord(c) < 0x80 for c in e.message_en.split(":")[0])
    json.dumps(err.as_dicts(), ensure_ascii=False)  # API-ready


def test_all_errors_collected_at_once():
    bad = record(name="王\u202e", id_number="123", category="电焊作业", valid_from="2023-13-01",
                 issuer_code="X", photo="!!", version=0, extra_field=1)
    err = refused(bad)
    assert err.fields >= {"name", "id_number", "category", "valid_from", "issuer_code", "photo", "version", "extra_field"}
    assert len(err.errors) == len(err.codes)  # one entry per problem, no duplicates


def test_not_an_object():
    err = refused(["not", "a", "dict"])
    assert err.codes == {("record", "not_object")}


def test_expired_allowed_on_request():
    lic = validate_record(record(valid_from="2019-01-01", first_issue_date="2019-01-01"), today=TODAY, allow_expired=True)
    assert lic.status(TODAY) == "expired"


def test_optional_nulls_take_defaults():
    lic = issue(valid_until=None, review_due=None, licence_number=None, issue_date=None, reviewed_on=None)
    assert lic.valid_until == date(2029, 3, 1)


@pytest.mark.parametrize(
    "name,stored",
    [
        ("阿卜杜热合曼·麦麦提", "阿卜杜热合曼·麦麦提"),
        ("阿卜杜热合曼・麦麦提", "阿卜杜热合曼·麦麦提"),  # katakana middle dot folded
        ("阿卜杜热合曼•麦麦提", "阿卜杜热合曼·麦麦提"),  # bullet folded
        ("  欧阳修  ", "欧阳修"),
        ("艾力·买买提·阿不都热西提·吐尔逊·阿卜杜拉·克里木", "艾力·买买提·阿不都热西提·吐尔逊·阿卜杜拉·克里木"),
        ("王〇", "王〇"),
        ("𠮷田", "𠮷田"),  # CJK Extension B
    ],
)
def test_names_accepted_and_normalised(name, stored):
    assert issue(name=name).name == stored


# ---------------------------------------------------------------- photo


@pytest.mark.parametrize(
    "data,fmt,size",
    [
        (image("PNG", (300, 400)), "PNG", (300, 400)),
        (image("PNG", (300, 400), "RGBA"), "PNG", (300, 400)),
        (image("JPEG", (100, 125), "L"), "JPEG", (100, 125)),
        (image("JPEG", (1200, 1600)), "JPEG", (1200, 1600)),
        (image("PNG", (300, 400), "P"), "PNG", (300, 400)),
    ],
)
def test_photo_accepted(data, fmt, size):
    lic = issue(photo=base64.b64encode(data).decode())
    assert (lic.photo_format, lic.photo_size_px) == (fmt, size)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(w: int, h: int) -> bytes:
    """A tiny PNG that *declares* w x h (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b"")


def noise_png(size) -> bytes:
    img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def apng() -> bytes:
    frames = [Image.new("RGB", (200, 250), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
    return buf.getvalue()


@pytest.mark.parametrize(
    "data,code",
    [
        (png_header_only(100_000, 100_000), "pixel_size"),  # Pillow's own bomb guard
        (png_header_only(5000, 5000), "pixel_size"),  # passes Pillow's guard, not ours
        (image("JPEG", (99, 125)), "pixel_size"),
        (image("JPEG", (100, 124)), "pixel_size"),
        (image("JPEG", (1201, 1600)), "pixel_size"),
        (image("PNG", (1200, 1601)), "pixel_size"),
        (noise_png((500, 600)), "too_large"),
        (image("JPEG", (300, 400), "CMYK"), "color_mode"),
        (image("JPEG")[:1500], "corrupt"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 2000, "format"),  # JPEG magic bytes, no image
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "format"),
        (image("GIF"), "format"),
        (image("BMP"), "format"),
        (image("WEBP"), "format"),
        (apng(), "animated"),
        (b"", "empty"),
    ],
    ids=["bomb-huge", "bomb-5000", "narrow", "short", "wide", "tall", "bytes", "cmyk", "truncated", "fake-jpeg",
         "fake-png", "gif", "bmp", "webp", "apng", "empty"],
)
def test_photo_refused(data, code):
    with pytest.raises(LicenceError) as exc:
        inspect_photo(data)
    assert exc.value.codes == {("photo", code)}
    err = refused(record(photo=base64.b64encode(data).decode()))
    assert ("photo", code) in err.codes or ("photo", "missing") in err.codes  # b"" is "missing" in a record


# ---------------------------------------------------------------- catalogue


def test_catalogue_folds_ascii_brackets_and_prints_canonical():
    lic = issue(category="冶金(有色)生产安全作业", item="煤气作业")
    assert (lic.category, lic.category_code, lic.item_code) == ("冶金（有色）生产安全作业", "8", "8.1")


def test_catalogue_extras_from_environment(tmp_path, monkeypatch):
    extra = {"categories": [
        {"code": "1", "name": "电工作业", "items": [{"code": "1.4", "name": "电力电缆作业"}, {"code": "1.5", "name": "继电保护作业"}, {"code": "1.6", "name": "电气试验作业"}]},
        {"code": "12", "name": "有限空间作业", "items": [{"code": "12.1", "name": "地下有限空间监护作业"}]},
    ]}
    path = tmp_path / "province.json"
    path.write_text(json.dumps(extra, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv(ENV_EXTRA, str(path))
    assert issue(item="继电保护作业").item_code == "1.5"
    lic = issue(category="有限空间作业", item="地下有限空间监护作业")
    assert (lic.category_code, lic.item_code) == ("12", "12.1")
    assert issue(item="低压电工作业").item_code == "1.2"  # built-in items kept


def test_catalogue_extras_by_argument_and_common():
    assert validate_record(record(item="电力电缆作业"), today=TODAY, catalogue=load_catalogue("common")).item_code == "1.4"
    cat = load_catalogue({"categories": [{"code": "2", "name": "焊接与热切割作业", "items": [{"code": "2.4", "name": "气割作业"}]}]})
    lic = validate_record(record(category="焊接与热切割作业", item="气割作业"), today=TODAY, catalogue=cat)
    assert lic.item_code == "2.4"
    assert "有限空间作业" not in load_catalogue() and "有限空间作业" in load_catalogue("common")


@pytest.mark.parametrize(
    "extra",
    [
        {"categories": [{"code": "1", "name": "焊接作业", "items": []}]},  # code 1 is 电工作业
        {"categories": [{"code": "99", "name": "电工作业", "items": []}]},  # name exists under code 1
        {"categories": [{"code": "1", "name": "电工作业", "items": [{"code": "1.1", "name": "别的作业"}]}]},  # item code taken
        {"categories": [{"code": "1", "name": "电工作业", "items": [{"code": "2.9", "name": "新作业"}]}]},  # wrong prefix
        {"categories": [{"code": "1", "name": "电工作业", "items": [{"code": "1.7", "name": "<b>x</b>"}]}]},
        {"categories": "nope"},
        {"nothing": []},
    ],
)
def test_catalogue_bad_extras_are_config_errors(extra):
    with pytest.raises(ConfigError):
        load_catalogue(extra)


def test_catalogue_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalogue(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid"):
        load_catalogue(bad)


# ---------------------------------------------------------------- metadata round trip


def test_metadata_round_trip():
    lic = issue(reviewed_on="2025-12-01", version=3)
    md = lic.metadata()
    assert set(md) == {k for k, _, _ in METADATA_FIELDS}
    assert all(isinstance(v, str) for v in md.values())
    assert (md["ZZBS"], md["CZZTDM"], md["CZZTDMLXDM"], md["ZZYXQJZRQ"], md["KZ_SJFSRQ"]) == (lic.identifier, MALE_ID, "111", "2029-03-01", "2025-12-01")
    assert Licence.from_metadata(md, JPEG) == lic
    no_photo = Licence.from_metadata(md)
    assert no_photo.photo == b"" and no_photo.model_dump(exclude={"photo"}) == lic.model_dump(exclude={"photo"})
    assert "KZ_SJFSRQ" not in issue().metadata()


def test_metadata_of_extra_item_reads_without_the_extra():
    lic = validate_record(record(item="电气试验作业"), today=TODAY, catalogue=load_catalogue("common"))
    assert Licence.from_metadata(lic.metadata(), JPEG) == lic


def test_metadata_of_expired_licence_still_reads():
    lic = validate_record(record(valid_from="2015-01-01", first_issue_date="2015-01-01"), today=TODAY, allow_expired=True)
    assert Licence.from_metadata(lic.metadata(), JPEG) == lic


@pytest.mark.parametrize(
    "change,field,code",
    [
        ({"ZZBH": "T000"}, "identifier", "mismatch"),
        ({"ZZBFJGDM": "11430000006122244L"}, "identifier", "mismatch"),
        ({"ZZBS": None}, "metadata.ZZBS", "missing"),
        ({"CZZT": ""}, "metadata.CZZT", "missing"),
        ({"KZ_ZPSM3": "0" * 64}, "photo", "mismatch"),
        ({"KZ_ZPCC": "359x441"}, "photo", "mismatch"),
        ({"KZ_ZPGS": "GIF"}, "photo", "metadata"),
        ({"ZZMC": "驾驶证"}, "title", "not_this_licence"),
        ({"CZZTDMLXDM": "001"}, "holder_id_type_code", "unsupported"),
        ({"CZZTDM": FEMALE_ID}, "sex", "id_mismatch"),
        ({"ZZYXQJZRQ": "2029-13-01"}, "valid_until", "date_format"),
        ({"KZ_CZXMDM": "1.2<"}, "item_code", "format"),
        ({"ZZLXDM": "12345"}, "type_code", "format"),
    ],
)
def test_metadata_tampering_detected(change, field, code):
    md = issue().metadata()
    for k, v in change.items():
        if v is None:
            del md[k]
        else:
            md[k] = v
    with pytest.raises(LicenceError) as exc:
        Licence.from_metadata(md, JPEG)
    assert (field, code) in exc.value.codes, exc.value.codes


def test_metadata_with_a_different_photo():
    md = issue().metadata()
    with pytest.raises(LicenceError) as exc:
        Licence.from_metadata(md, image("JPEG", (358, 441), "L"))
    assert ("photo", "mismatch") in exc.value.codes


def test_metadata_identifier_check_char():
    md = issue().metadata()
    md["ZZBS"] = md["ZZBS"][:-1] + ("0" if md["ZZBS"][-1] != "0" else "1")
    with pytest.raises(LicenceError) as exc:
        Licence.from_metadata(md)
    assert ("identifier", "check_char") in exc.value.codes


# ---------------------------------------------------------------- views, status, immutability, schema


def test_masking_and_public_view():
    lic = issue()
    masked = MALE_ID[:6] + "********" + MALE_ID[-4:]
    assert lic.masked_id() == masked
    view = lic.public_view()
    assert MALE_ID not in json.dumps(view, ensure_ascii=False)
    assert view["id_number"] == masked and view["licence_number"] == "T" + masked
    assert view["name"] == "李明" and view["valid_until"] == "2029-03-01"


def test_face_items_in_reading_order():
    labels = [k for k, _ in issue().face_items()]
    assert labels[:5] == ["姓名", "性别", "公民身份号码", "作业类别", "操作项目"]
    assert "有效期" in labels and "发证机关" in labels


def test_status():
    lic = issue()
    assert lic.status(date(2023, 2, 28)) == "not_yet_valid"
    assert lic.status(date(2025, 1, 1)) == "valid"
    assert lic.status(date(2026, 3, 2)) == "review_overdue"
    assert issue(reviewed_on="2026-01-10").status(date(2026, 3, 2)) == "valid"
    assert lic.status(date(2029, 3, 2)) == "expired"


def test_licence_is_immutable():
    lic = issue()
    with pytest.raises(ValidationError):
        lic.name = "张三"


def test_json_schemas():
    schema = LicenceRecord.model_json_schema()
    assert set(schema["required"]) == {"name", "sex", "id_number", "category", "item", "first_issue_date", "valid_from", "issuer_name", "issuer_code", "photo"}
    props = schema["properties"]
    assert props["photo"]["contentEncoding"] == "base64" and props["photo"]["type"] == "string"
    assert props["valid_from"]["format"] == "date" and props["sex"]["enum"] == ["男", "女"]
    out = Licence.model_json_schema(mode="serialization")
    assert {"identifier", "type_code", "category_code", "photo_size_px"} <= set(out["properties"])
    assert json.loads(issue().model_dump_json())["photo"] == base64.b64encode(JPEG).decode()


def test_fastapi_uses_the_record_schema():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()

    @app.post("/licences")
    def create(rec: LicenceRecord) -> dict:
        return validate_record(rec, today=TODAY).metadata()

    client = TestClient(app)
    assert "LicenceRecord" in client.get("/openapi.json").json()["components"]["schemas"]
    r = client.post("/licences", json=record())
    assert r.status_code == 200 and r.json()["CZZTDM"] == MALE_ID
    assert client.post("/licences", json=record(photo="@@")).status_code == 422
