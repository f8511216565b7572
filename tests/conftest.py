"""Shared test fixtures: a development keystore, realistic (clearly fake) licence records."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES = SHARED / "samples"


# One generator of fake people for examples, tests and benchmarks (ofd/licence/fake.py).
from ofd.licence.fake import id_number as _id_number  # noqa: E402
from ofd.licence.fake import record as make_record  # noqa: E402


def make_photo(fmt: str = "JPEG", size: tuple[int, int] = (300, 400), shade: int = 0) -> bytes:
    from ofd.licence.fake import portrait

    return portrait(seed=shade, fmt=fmt, size=size)


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
