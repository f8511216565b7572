"""Shared test fixtures: a development keystore, realistic (clearly fake) licence records."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES = SHARED / "samples"


def _id_number(region: str, birth: str, seq: int, female: bool) -> str:
    from ofd.licence.idcard import id_check_char

    seq3 = seq * 2 + (0 if female else 1)
    first17 = f"{region}{birth}{seq3 % 1000:03d}"
    return first17 + id_check_char(first17)


def make_photo(fmt: str = "JPEG", size: tuple[int, int] = (300, 400), shade: int = 0) -> bytes:
    """A passport-style placeholder portrait drawn with Pillow."""
    img = Image.new("RGB", size, (225 - shade, 235, 245))
    d = ImageDraw.Draw(img)
    w, h = size
    d.ellipse((w * 0.3, h * 0.18, w * 0.7, h * 0.55), fill=(205, 170, 140))
    d.rectangle((w * 0.18, h * 0.6, w * 0.82, h), fill=(40, 60, 110))
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=85)
    return buf.getvalue()


def make_record(issuer_code: str, issuer_name: str, seq: int = 1, **over) -> dict:
    rec = {
        "name": "王测试",
        "sex": "男",
        "id_number": _id_number("110105", "19850312", seq, female=False),
        "category": "电工作业",
        "item": "低压电工作业",
        "first_issue_date": date(2020, 3, 1),
        "valid_from": date(2023, 3, 1),
        "issuer_name": issuer_name,
        "issuer_code": issuer_code,
        "photo": make_photo(shade=seq % 40),
    }
    rec.update(over)
    return rec


@pytest.fixture(scope="session")
def dev_store(tmp_path_factory):
    from keys.config import load_settings
    from keys.store import KeyStore

    home = tmp_path_factory.mktemp("ecert_home")
    store = KeyStore(load_settings({"ECERT_HOME": str(home)}))
    store.init_dev()
    yield store
    store.close()


@pytest.fixture(scope="session")
def dev_issuer(dev_store):
    from keys.store import DEV_ISSUER_CODE

    return dev_store.issuer(DEV_ISSUER_CODE)


@pytest.fixture
def record(dev_issuer):
    return make_record(dev_issuer.code, dev_issuer.name)


def gmssl_oracle(point: bytes, private_key: bytes | None = None):
    """The pure-Python `gmssl` SM2 (independent oracle). Its constructor lstrip("04")s the public
    key hex, which eats leading '0'/'4' digits of X, so the key is set after construction."""
    from gmssl import sm2 as oracle_sm2

    o = oracle_sm2.CryptSM2(private_key=private_key.hex() if private_key else None, public_key="")
    o.public_key = point[1:].hex()
    return o


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL for the keystore tests (see tests/pg_server.py)."""
    from .pg_server import postgres_url as _pg

    with _pg() as url:
        if url is None:
            pytest.skip("no PostgreSQL server available (install Debian package postgresql)")
        yield url


@pytest.fixture
def pg_schema(postgres_url):
    """A fresh PostgreSQL schema for one test: `.url` (search_path set to it), `.schema`, `.admin`
    (an engine on the server for direct SQL); dropped afterwards."""
    import types
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"ecert_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_url else "?"
    try:
        yield types.SimpleNamespace(url=f"{postgres_url}{sep}options=-csearch_path%3D{schema}", schema=schema, admin=admin)
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
