"""特种作业目录: the 作业类别 (category) / 操作项目 (item) catalogue.

The built-in list (catalogue.json) is the national directory (docs STANDARDS.md §1.4).
Provinces add items, so extras merge in from a JSON file of the same shape:

    {"categories": [{"code": "1", "name": "电工作业",
                     "items": [{"code": "1.4", "name": "电力电缆作业"}]}]}

named by the argument ``extra=`` (a path, a dict, the word ``"common"``, or a list of
these) or by the environment variable ``ECERT_CATALOGUE_EXTRA`` (paths separated by
``os.pathsep``; ``common`` = the bundled, not-by-default-active extras: 电力电缆作业,
继电保护作业, 电气试验作业 and 有限空间作业/地下有限空间监护作业). An extra may add
items to an existing category (same code *and* name) or add a new category; a code or
name that clashes is a ConfigError, never a silent override.

Names match after NFKC folding and whitespace removal, so "冶金(有色)生产安全作业"
typed with ASCII brackets finds "冶金（有色）生产安全作业"; the catalogue's spelling
is what gets printed. Codes are this product's numbering (no official code set found).
"""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import ConfigError, LicenceError, field_error
from .text import clean_text

ENV_EXTRA = "ECERT_CATALOGUE_EXTRA"
COMMON = "common"
_CAT_CODE = re.compile(r"[0-9A-Z]{1,4}")
_NAME_MAX = 60


@dataclass(frozen=True)
class Item:
    code: str  # "1.2"
    name: str  # "低压电工作业"


@dataclass(frozen=True)
class Category:
    code: str  # "1"
    name: str  # "电工作业"
    items: tuple[Item, ...]


def _key(name: str) -> str:
    return "".join(unicodedata.normalize("NFKC", name).split())


class Catalogue:
    """An immutable, validated catalogue. Build with `load_catalogue`."""

    def __init__(self, categories: Iterable[Category]):
        self._cats: tuple[Category, ...] = tuple(categories)
        self._by_key = {_key(c.name): c for c in self._cats}
        self._by_code = {c.code: c for c in self._cats}

    @property
    def categories(self) -> tuple[Category, ...]:
        return self._cats

    def __contains__(self, category: str) -> bool:
        return _key(category) in self._by_key

    def by_codes(self, category_code: str, item_code: str) -> tuple[Category, Item] | None:
        cat = self._by_code.get(category_code)
        item = next((i for i in cat.items if i.code == item_code), None) if cat else None
        return (cat, item) if item else None

    def match(self, category: str, item: str) -> tuple[Category, Item]:
        """The canonical (Category, Item) for the names; LicenceError naming the bad field."""
        cat = self._by_key.get(_key(category))
        owner = self._item_owner(item)
        if cat is None:
            hint_zh = f"；操作项目“{item}”属于“{owner.name}”" if owner else ""
            hint_en = f"; item {item!r} belongs to {owner.name!r}" if owner else ""
            raise LicenceError([field_error(
                "category", "unknown_category",
                f"“{category}”不在特种作业目录中（可选：{'、'.join(c.name for c in self._cats)}）{hint_zh}",
                f"{category!r} is not in the special-operation catalogue{hint_en}",
            )])
        found = next((i for i in cat.items if _key(i.name) == _key(item)), None)
        if found:
            return cat, found
        if owner:
            raise LicenceError([field_error(
                "item", "item_category_mismatch",
                f"“{item}”属于作业类别“{owner.name}”，不属于“{cat.name}”",
                f"{item!r} belongs to category {owner.name!r}, not {cat.name!r}",
            )])
        allowed = "、".join(i.name for i in cat.items) or "无（需由本省目录补充）"
        raise LicenceError([field_error(
            "item", "unknown_item",
            f"“{item}”不是“{cat.name}”的操作项目（可选：{allowed}）",
            f"{item!r} is not an item of category {cat.name!r}",
        )])

    def _item_owner(self, item: str) -> Category | None:
        k = _key(item)
        return next((c for c in self._cats for i in c.items if _key(i.name) == k), None)

    def merged(self, extra: Mapping, source: str = "extra") -> Catalogue:
        """A new catalogue with the categories/items of ``extra`` added (ConfigError on clashes)."""
        cats = {c.code: c for c in self._cats}
        for cat in _parse(extra, source):
            old = cats.get(cat.code)
            if old is None:
                if _key(cat.name) in {_key(c.name) for c in cats.values()}:
                    raise _clash(source, f"作业类别名称“{cat.name}”已存在但代码不同", f"category name {cat.name!r} exists with another code")
                cats[cat.code] = cat
                continue
            if _key(old.name) != _key(cat.name):
                raise _clash(source, f"作业类别代码 {cat.code} 已是“{old.name}”", f"category code {cat.code} is already {old.name!r}")
            items = list(old.items)
            for it in cat.items:
                same = [o for o in items if o.code == it.code or _key(o.name) == _key(it.name)]
                if same and same != [it]:
                    raise _clash(source, f"操作项目 {it.code}“{it.name}”与已有项目冲突", f"item {it.code} {it.name!r} clashes with an existing item")
                if not same:
                    items.append(it)
            cats[cat.code] = Category(old.code, old.name, tuple(items))
        return Catalogue(cats.values())

    def to_dict(self) -> dict:
        return {"categories": [
            {"code": c.code, "name": c.name, "items": [{"code": i.code, "name": i.name} for i in c.items]}
            for c in self._cats
        ]}


def _clash(source: str, zh: str, en: str) -> ConfigError:
    return ConfigError(f"特种作业目录扩展 {source}：{zh}", f"catalogue extra {source}: {en}")


def _parse(doc: Mapping, source: str) -> list[Category]:
    """Validate the shape of a catalogue document."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("categories"), list):
        raise _clash(source, "应为含 categories 列表的 JSON 对象", 'must be a JSON object with a "categories" list')
    out = []
    for c in doc["categories"]:
        code, name, items = (c.get("code"), c.get("name"), c.get("items", [])) if isinstance(c, Mapping) else (None, None, None)
        if not (isinstance(code, str) and _CAT_CODE.fullmatch(code) and _good_name(name) and isinstance(items, list)):
            raise _clash(source, f"作业类别条目无效：{c!r}", f"invalid category entry: {c!r}")
        parsed = []
        for i in items:
            icode, iname = (i.get("code"), i.get("name")) if isinstance(i, Mapping) else (None, None)
            if not (isinstance(icode, str) and re.fullmatch(re.escape(code) + r"\.[0-9A-Z]{1,4}", icode) and _good_name(iname)):
                raise _clash(source, f"操作项目条目无效（代码须以“{code}.”开头）：{i!r}", f"invalid item entry (code must start with {code + '.'!r}): {i!r}")
            parsed.append(Item(icode, unicodedata.normalize("NFC", iname.strip())))
        if len({p.code for p in parsed}) != len(parsed) or len({_key(p.name) for p in parsed}) != len(parsed):
            raise _clash(source, f"作业类别 {code} 内有重复的操作项目", f"duplicate items in category {code}")
        out.append(Category(code, unicodedata.normalize("NFC", name.strip()), tuple(parsed)))
    return out


def _good_name(name: object) -> bool:
    try:
        clean_text(name, "catalogue", max_len=_NAME_MAX)  # type: ignore[arg-type]
    except LicenceError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _bundled() -> dict:
    return json.loads(resources.files(__package__).joinpath("catalogue.json").read_text(encoding="utf-8"))


def _read_extra(spec: str | os.PathLike | Mapping) -> tuple[dict, str]:
    if isinstance(spec, Mapping):
        return dict(spec), "dict"
    if str(spec) == COMMON:
        return _bundled()["common_extras"], COMMON
    path = Path(spec)
    try:
        return json.loads(path.read_text(encoding="utf-8")), str(path)
    except OSError as exc:
        raise ConfigError(f"无法读取特种作业目录扩展文件 {path}：{exc.strerror}", f"cannot read catalogue extra file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"特种作业目录扩展文件 {path} 不是有效的 UTF-8 JSON", f"catalogue extra file {path} is not valid UTF-8 JSON: {exc}") from None


def load_catalogue(extra: str | os.PathLike | Mapping | Iterable | None = None) -> Catalogue:
    """The built-in catalogue plus ``extra`` (see module doc); ConfigError if an extra is bad."""
    cat = Catalogue(_parse(_bundled(), "catalogue.json"))
    if extra is None:
        return cat
    specs = [extra] if isinstance(extra, (str, os.PathLike, Mapping)) else list(extra)
    for spec in specs:
        doc, source = _read_extra(spec)
        cat = cat.merged(doc, source)
    return cat


@functools.lru_cache(maxsize=8)
def _cached(env_value: str) -> Catalogue:
    return load_catalogue([p for p in env_value.split(os.pathsep) if p.strip()] or None)


def default_catalogue() -> Catalogue:
    """Built-in catalogue + ``$ECERT_CATALOGUE_EXTRA`` (cached per value; restart to reload files)."""
    return _cached(os.environ.get(ENV_EXTRA, ""))
