"""Typed, bilingual errors for licence data.

A record is checked as a whole and *every* problem is reported at once (an issuing
clerk fixes a form in one pass), so the error carries a list of `FieldError`s, each
naming the field, a stable machine code, and a Chinese and an English message.
`ConfigError` is separate: it means the *deployment* is wrong (bad catalogue file,
bad ECERT_TYPE_CODE), which the API must answer with 500, not 422.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Chinese labels of the record fields, used in messages and on the licence face.
FIELD_LABELS: dict[str, str] = {
    "record": "证照数据",
    "name": "姓名",
    "sex": "性别",
    "id_number": "公民身份号码",
    "category": "作业类别",
    "item": "操作项目",
    "first_issue_date": "初领日期",
    "valid_from": "有效期开始日期",
    "valid_until": "有效期结束日期",
    "review_due": "应复审日期",
    "reviewed_on": "实际复审日期",
    "issuer_name": "发证机关",
    "issuer_code": "发证机关统一社会信用代码",
    "licence_number": "证照编号",
    "photo": "照片",
    "issue_date": "颁发日期",
    "version": "版本号",
    "type_code": "证照类型代码",
    "identifier": "证照标识",
    "metadata": "证照元数据",
}


@dataclass(frozen=True)
class FieldError:
    field: str  # attribute name, e.g. "id_number" (or "metadata.ZZBH" for metadata keys)
    code: str  # stable machine code, e.g. "check_digit"
    message_zh: str
    message_en: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.message_en} / {self.message_zh}"


def field_error(field: str, code: str, zh: str, en: str) -> FieldError:
    """A FieldError whose Chinese message starts with the field's Chinese label."""
    label = FIELD_LABELS.get(field.split(".")[0], field)
    return FieldError(field, code, f"{label}：{zh}", f"{field}: {en}")


def single_error(field: str, code: str, zh: str, en: str) -> LicenceError:
    """A LicenceError with one FieldError (checkers of one value raise this)."""
    return LicenceError([field_error(field, code, zh, en)])


class LicenceError(ValueError):
    """Licence data is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FieldError]):
        if not errors:
            raise ValueError("LicenceError needs at least one FieldError")
        self.errors: list[FieldError] = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    @property
    def fields(self) -> set[str]:
        return {e.field for e in self.errors}

    @property
    def codes(self) -> set[tuple[str, str]]:
        return {(e.field, e.code) for e in self.errors}

    def as_dicts(self) -> list[dict[str, str]]:
        """JSON-ready list for an API error body."""
        return [e.as_dict() for e in self.errors]


class ConfigError(ValueError):
    """The deployment's configuration (catalogue extras, type code) is invalid."""

    def __init__(self, message_zh: str, message_en: str):
        self.message_zh = message_zh
        self.message_en = message_en
        super().__init__(f"{message_en} / {message_zh}")
