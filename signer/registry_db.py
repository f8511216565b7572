"""Tables of the licence registry and its issuance log, in the keystore's database.

Own tables (``registry_*``) in the keystore's database, so one backup holds keys, licences
and log together, through the keystore's own engine (one connection pool per process).
Writers are serialised like the keystore's: ``BEGIN IMMEDIATE`` on SQLite, a transaction
advisory lock on PostgreSQL (a different lock id, so registry appends never wait on key
generation). Times are stored as the exact ISO text that is hashed into the log, so a
row read back re-hashes to the same bytes on every backend.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from keys.store import KeyStore, serialised_tx

UTC = dt.timezone.utc
_PG_REGISTRY_LOCK = 0x6563657274_02  # distinct from the keystore's advisory lock id


class RegistryError(Exception):
    """Base of the registry's errors; ``message_zh`` / ``message_en`` say what is wrong."""

    def __init__(self, zh: str, en: str, code: str = "registry"):
        super().__init__(f"{zh} / {en}")
        self.code = code
        self.message_zh = zh
        self.message_en = en


metadata = MetaData()

meta_t = Table(
    "registry_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

log_t = Table(
    "registry_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("identifier", String(200), nullable=False),
    Column("at", String(20), nullable=False),
    Column("payload", Text, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("chain_hash", LargeBinary(32), nullable=False),
    Column("tree_root", LargeBinary(32), nullable=False),
)
Index("ix_registry_log_identifier", log_t.c.identifier)

licences_t = Table(
    "registry_licences",
    metadata,
    Column("identifier", String(200), primary_key=True),
    Column("issuer_code", String(64), nullable=False),
    Column("licence_number", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("record_digest", String(64), nullable=False),
    Column("holder_hash", String(64), nullable=False),
    Column("kid", String(16), nullable=False),
    Column("file_sm3", String(64), nullable=False),
    Column("issued_at", String(20), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(32)),
    Column("status_at", String(20)),
    Column("note", Text),
    Column("superseded_by", String(200)),
    Column("last_seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
)
Index("uq_registry_licence_version", licences_t.c.issuer_code, licences_t.c.licence_number, licences_t.c.version,
      unique=True)
Index("ix_registry_holder", licences_t.c.holder_hash)

LICENCE_COLUMNS = tuple(c.name for c in licences_t.c)


def iso(t: dt.datetime | dt.date | None) -> str:
    """UTC second-precision ISO text ``YYYY-MM-DDTHH:MM:SSZ``; a date means its start (UTC)."""
    if t is None:
        t = dt.datetime.now(UTC)
    elif not isinstance(t, dt.datetime):
        t = dt.datetime(t.year, t.month, t.day, tzinfo=UTC)
    if t.tzinfo is None:
        raise RegistryError("时间缺少时区", "naive datetime: give a time zone (UTC)", "naive_time")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RegistryDB:
    """The engine and transactions of the registry tables; created on first use."""

    def __init__(self, store: KeyStore):
        self.store = store
        self.engine = store.engine
        try:
            with self.tx() as c:
                complete = all(inspect(c).has_table(t.name) for t in metadata.sorted_tables)
            if not complete:
                with self.tx(write=True) as c:  # concurrent first runs take turns
                    metadata.create_all(c)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Nothing to release: the engine is the keystore's, closed with it."""

    @contextmanager
    def tx(self, write: bool = False) -> Iterator[Connection]:
        """A transaction; writers hold the registry write lock until commit."""
        try:
            with serialised_tx(self.engine, write, _PG_REGISTRY_LOCK) as conn:
                yield conn
        except RegistryError:
            raise
        except SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise RegistryError("登记簿数据库错误", f"registry database error ({self.store.url}): "
                                f"{type(detail).__name__}: {detail}", "database") from exc

    @staticmethod
    def get_meta(c: Connection, name: str) -> bytes | None:
        v = c.scalar(select(meta_t.c.value).where(meta_t.c.name == name))
        return bytes(v) if v is not None else None

    @classmethod
    def put_meta(cls, c: Connection, values: dict[str, bytes]) -> None:
        """Upsert meta values (inside a write transaction)."""
        upsert(c, meta_t, [{"name": k, "value": v} for k, v in values.items()])


def upsert(c: Connection, table: Table, rows: list[dict]) -> None:
    """Insert or replace ``rows`` by primary key (SQLite and PostgreSQL both have ON CONFLICT)."""
    if not rows:
        return
    key = [col.name for col in table.primary_key.columns]
    stmt = (pg_insert if c.dialect.name == "postgresql" else sqlite_insert)(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=key, set_={n: stmt.excluded[n] for n in rows[0] if n not in key})
    c.execute(stmt, rows)
