"""Typed errors of the OFD reader, each with a stable code and an English + Chinese message.

Uploads are hostile, so every way a package can be refused ends here: the verifier turns
an `OFDError` into a verdict and the API into a 4xx, using `code` (stable, for machines)
and the two messages (for people). Messages live in one catalogue per class so the same
code always reads the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OFDError(Exception):
    """Base class: `code` is stable; `message_en` / `message_zh` are filled from the catalogue.

    `entry` names the package entry (or XML file) concerned, when there is one.
    """

    CATALOGUE: ClassVar[dict[str, tuple[str, str]]] = {}
    code: str
    message_en: str
    message_zh: str

    def __init__(self, code: str, entry: str | None = None, **details: Any) -> None:
        en, zh = self.CATALOGUE.get(code, ("{code}", "{code}"))
        fmt = {"code": code, "entry": entry if entry is not None else "?", **details}
        try:
            en, zh = en.format(**fmt), zh.format(**fmt)
        except (KeyError, IndexError, ValueError):  # a missing detail must never mask the error
            pass
        self.code, self.entry, self.details = code, entry, details
        self.message_en, self.message_zh = en, zh
        super().__init__(f"[{code}] {en} / {zh}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for reports and API error bodies."""
        return {"code": self.code, "entry": self.entry, "message_en": self.message_en, "message_zh": self.message_zh}


class UnsafePackage(OFDError):
    """The zip container is refused before any of its content is trusted."""

    CATALOGUE = {
        "empty": ("The file is empty.", "文件为空。"),
        "not_zip": ("The file is not a ZIP/OFD package.", "文件不是 ZIP/OFD 包。"),
        "corrupt_zip": ("The ZIP structure is damaged: {reason}.", "ZIP 结构损坏：{reason}。"),
        "too_large": (
            "Size limit exceeded ({what}: {size} bytes > {limit}).",
            "超出大小限制（{what}：{size} 字节 > {limit}）。",
        ),
        "too_many_entries": (
            "Too many entries in the package ({count} > {limit}).",
            "包内条目过多（{count} > {limit}）。",
        ),
        "ratio": (
            "Compression ratio too high for '{entry}' ({ratio:.0f} > {limit}): possible zip bomb.",
            "条目“{entry}”压缩比过高（{ratio:.0f} > {limit}），疑似压缩炸弹。",
        ),
        "size_mismatch": (
            "Entry '{entry}' does not have the size its header declares: possible zip bomb.",
            "条目“{entry}”的实际大小与头部声明不符，疑似压缩炸弹。",
        ),
        "bad_crc": ("Entry '{entry}' fails its CRC-32 check.", "条目“{entry}”CRC-32 校验失败。"),
        "path_traversal": ("Entry name '{entry}' escapes the package ('..').", "条目名“{entry}”越出包目录（“..”）。"),
        "absolute_name": ("Entry name '{entry}' is an absolute path.", "条目名“{entry}”为绝对路径。"),
        "backslash_name": ("Entry name '{entry}' contains a backslash.", "条目名“{entry}”包含反斜杠。"),
        "drive_letter": ("Entry name '{entry}' starts with a drive letter.", "条目名“{entry}”以盘符开头。"),
        "bad_name": ("Entry name '{entry}' is not allowed: {reason}.", "条目名“{entry}”不合法：{reason}。"),
        "duplicate_name": ("Entry name '{entry}' occurs more than once.", "条目名“{entry}”重复出现。"),
        "encrypted": ("Entry '{entry}' is encrypted; OFD packages must not be.", "条目“{entry}”已加密，OFD 包不允许加密。"),
        "unsupported_compression": (
            "Entry '{entry}' uses compression method {method}; only stored and deflate are allowed.",
            "条目“{entry}”使用压缩方法 {method}，仅允许存储或 deflate。",
        ),
        "overlapping_entries": (
            "Entry '{entry}' overlaps another entry's data: possible zip bomb.",
            "条目“{entry}”与其他条目的数据重叠，疑似压缩炸弹。",
        ),
        "hidden_data": (
            "The package holds {size} bytes outside any entry (near offset {offset}).",
            "包内有 {size} 字节数据不属于任何条目（偏移 {offset} 附近）。",
        ),
        "nested_archive": ("Entry '{entry}' is itself an archive.", "条目“{entry}”本身是一个压缩包。"),
    }


class MalformedOFD(OFDError):
    """The package is a sound zip but not a well-formed OFD document."""

    CATALOGUE = {
        "missing_ofd_xml": ("The package has no OFD.xml at its root.", "包根目录缺少 OFD.xml。"),
        "not_xml": ("'{entry}' is not well-formed XML: {reason}.", "“{entry}”不是格式正确的 XML：{reason}。"),
        "doctype_forbidden": (
            "'{entry}' contains a DOCTYPE/ENTITY declaration, which OFD never needs.",
            "“{entry}”包含 DOCTYPE/ENTITY 声明，OFD 不允许。",
        ),
        "wrong_namespace": (
            "'{entry}' uses namespace '{ns}', not the OFD namespace.",
            "“{entry}”使用的命名空间“{ns}”不是 OFD 命名空间。",
        ),
        "wrong_root": (
            "'{entry}' has root element '{found}', expected '{expected}'.",
            "“{entry}”的根元素为“{found}”，应为“{expected}”。",
        ),
        "missing_element": ("'{entry}' lacks the required element '{element}'.", "“{entry}”缺少必需元素“{element}”。"),
        "missing_attribute": (
            "'{entry}': element '{element}' lacks the required attribute '{attribute}'.",
            "“{entry}”：元素“{element}”缺少必需属性“{attribute}”。",
        ),
        "bad_value": ("'{entry}': invalid {what} '{value}'.", "“{entry}”：{what}“{value}”无效。"),
        "bad_loc": ("'{entry}': invalid location '{loc}'.", "“{entry}”：路径“{loc}”无效。"),
        "path_escape": (
            "'{entry}': location '{loc}' points outside the package.",
            "“{entry}”：路径“{loc}”指向包外。",
        ),
        "dangling_ref": (
            "'{entry}' refers to '{loc}', which is not in the package.",
            "“{entry}”引用的“{loc}”不在包内。",
        ),
        "missing_entry": ("'{entry}' is not in the package.", "包内没有“{entry}”。"),
        "duplicate_ref": (
            "'{entry}' lists '{loc}' more than once.",
            "“{entry}”多次列出“{loc}”。",
        ),
        "too_many_items": ("'{entry}' has too many {what} elements ({count} > {limit}).", "“{entry}”中 {what} 元素过多（{count} > {limit}）。"),
        "cyclic_ref": ("'{entry}': reference cycle through {what} {value}.", "“{entry}”：{what} {value} 存在循环引用。"),
    }
