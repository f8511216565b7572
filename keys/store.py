"""The keystore: issuers, their SM2 keys and certificates, and the platform root (SQLAlchemy 2.x).

SQLite file under ``ECERT_HOME`` by default (WAL, busy timeout, writes take the lock up
front with ``BEGIN IMMEDIATE``); any database by URL (``postgresql+psycopg://...``).

* Private keys are stored only wrapped (SM4-GCM under the KEK, the key id as AAD, see
  `keys.kek`); `KeyStore.private_key` is the one way they come out, and `KeyRecord`
  never holds private bytes.
* Key id (kid) = hex of the first 8 bytes of SM3(certificate DER) (`keys.x509.key_id`).
* At most one *active* key per (issuer, role), enforced by a partial unique index in the
  database itself, so two processes cannot both activate one.
* The root CA and the seal maker (制章者, GB/T 38540) belong to the reserved issuer
  ``platform``; issuing authorities own ``signing`` keys whose certificates the root issues.
* Key life cycle: ``pending`` (created, not yet used) -> ``active`` -> ``retired`` (verifies,
  never signs) or ``revoked`` (from a cut-off time: signatures made later are invalid).
  Switching the active key is one transaction (`switch_to`); `active_kid` lets running
  signers notice a switch cheaply. Rotation and the trust list build on these
  (`keys.rotation`, `keys.trustlist`).
* Each signing key's seal (SES_Seal DER, public) is kept once made (`seal`, `put_seal`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.types import DateTime, TypeDecorator

from . import kek as _kek
from . import sm2, sm4, x509
from .config import DEFAULT_BUSY_TIMEOUT, KeyStoreError, Settings, load_settings
from .kek import KekError

__all__ = [
    "KeyStore", "KeyRecord", "Issuer", "InitResult", "KeyStoreError", "KekError", "UnknownIssuer",
    "UnknownKey", "NoActiveKey", "KeyRevoked", "KeyIntegrityError", "PLATFORM", "ROLES", "STATUSES",
    "DEV_ISSUER_CODE", "DEV_ISSUER_NAME", "DEV_ROOT_CN", "is_valid_uscc", "make_engine", "serialised_tx",
]

UTC = dt.timezone.utc
PLATFORM = "platform"  # reserved issuer code owning the root CA and the seal maker
ROLES = ("root", "seal_maker", "signing")
STATUSES = ("pending", "active", "retired", "revoked")
_PLATFORM_ROLES = ("root", "seal_maker")
_ISSUER_ROLES = ("signing",)
DEFAULT_VALIDITY_YEARS = {"root": 20, "seal_maker": 10, "signing": 3}
DEFAULT_CN = {"root": "ecert Root CA", "seal_maker": "ecert Seal Maker"}
PLATFORM_ORG = "ecert"

DEV_ROOT_CN = "ecert Development Root CA"
DEV_SEAL_MAKER_CN = "ecert Development Seal Maker"
# A development authority with a syntactically valid USCC: 1 (机构编制) 1 (机关), region
# 100000, organisation code ECERT000 + GB 11714 check 4, GB 32100 check 7.
DEV_ISSUER_CODE = "11100000ECERT00047"
DEV_ISSUER_NAME = "ecert 开发测试应急管理厅"

_CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


# --------------------------------------------------------------------------- errors

class UnknownIssuer(KeyStoreError):
    pass


class UnknownKey(KeyStoreError):
    pass


class NoActiveKey(KeyStoreError):
    pass


class KeyRevoked(KeyStoreError):
    pass


class KeyIntegrityError(KeyStoreError):
    """A stored key does not decrypt under its kid or does not match its certificate."""


def is_valid_uscc(code: str) -> bool:
    """True iff ``code`` is an 18-character 统一社会信用代码 with a correct GB 32100 check character."""
    try:
        x509.check_uscc(code)
    except x509.CertificateError:
        return False
    return True


# --------------------------------------------------------------------------- records

@dataclass(frozen=True)
class Issuer:
    code: str
    name: str
    uscc: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class KeyRecord:
    """Public facts about one key; never private material."""

    kid: str
    issuer_code: str
    role: str
    status: str
    cert_der: bytes = field(repr=False)
    not_before: dt.datetime
    not_after: dt.datetime
    created_at: dt.datetime
    retired_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None
    parent_kid: str | None = None  # kid of the issuing CA key; None for a self-signed root
    activated_at: dt.datetime | None = None


@dataclass(frozen=True)
class InitResult:
    root: KeyRecord
    seal_maker: KeyRecord
    issuer: Issuer
    signing: KeyRecord
    created: tuple[str, ...]  # what this run added: "root", "seal_maker", "issuer", "signing"

    @property
    def changed(self) -> bool:
        return bool(self.created)


# --------------------------------------------------------------------------- schema

class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the keystore")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

meta_t = Table(
    "keystore_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

issuers_t = Table(
    "keystore_issuers",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("uscc", String(18)),
    Column("created_at", UTCDateTime, nullable=False),
)

keys_t = Table(
    "keystore_keys",
    metadata,
    Column("kid", String(16), primary_key=True),
    Column("issuer_code", String(64), ForeignKey("keystore_issuers.code"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("parent_kid", String(16), ForeignKey("keystore_keys.kid")),
    Column("cert_der", LargeBinary, nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("not_before", UTCDateTime, nullable=False),
    Column("not_after", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("activated_at", UTCDateTime),
    Column("retired_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("revocation_reason", Text),
    CheckConstraint("role IN ('root', 'seal_maker', 'signing')", name="ck_keystore_keys_role"),
    CheckConstraint("status IN ('pending', 'active', 'retired', 'revoked')", name="ck_keystore_keys_status"),
)

# The issuer's electronic seal (GB/T 38540 SES_Seal DER) made for a signing key: public data,
# made once per key by the signer and kept here so every process stamps with the same seal.
seals_t = Table(
    "keystore_seals",
    metadata,
    Column("kid", String(16), ForeignKey("keystore_keys.kid"), primary_key=True),
    Column("seal_der", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

_ACTIVE = keys_t.c.status == "active"
Index(
    "uq_keystore_one_active",
    keys_t.c.issuer_code,
    keys_t.c.role,
    unique=True,
    sqlite_where=_ACTIVE,
    postgresql_where=_ACTIVE,
)

SCHEMA_VERSION = b"1"
_PG_WRITE_LOCK = 0x6563657274  # "ecert": advisory lock id serialising keystore writers on PostgreSQL
_KEK_CHECK = "kek_check"
KEYS_CHANGED_FILE = "keys.changed"  # replaced whenever a key is added, switched or revoked (see cached_keys)
ACTIVE_KID_TTL = 1.0  # seconds a signer may keep using a key after another process rotated it
CLOCK_SKEW = dt.timedelta(minutes=5)  # how far a revocation cut-off may lie ahead of this clock


# --------------------------------------------------------------------------- engine

def make_engine(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout (seconds), foreign keys and explicit BEGINs."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise KeyStoreError(
            "ECERT_DATABASE_URL 不是有效的数据库地址 / ECERT_DATABASE_URL is not a database URL "
            "(e.g. sqlite:////path/keystore.db or postgresql+psycopg://user@host/db)"
        ) from None
    shown = u.render_as_string(hide_password=True)
    try:
        if u.get_backend_name() != "sqlite":
            return create_engine(u, pool_pre_ping=True)
        if u.database and u.database != ":memory:":
            path = Path(u.database)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Create the file 0600 (SQLite gives -wal/-shm the same mode) only when missing: opening
            # and closing an existing database file drops every POSIX lock this process holds on it
            # (fcntl semantics), which lets another process checkpoint under live connections.
            if not path.exists():
                try:
                    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
                except FileExistsError:
                    pass
        engine = create_engine(u, connect_args={"timeout": busy_timeout})
    except ImportError as exc:
        raise KeyStoreError(
            f"数据库驱动未安装 / database driver for {shown} is not installed ({exc.name}); "
            "for PostgreSQL: pip install 'psycopg[binary]'"
        ) from None
    except (SQLAlchemyError, OSError) as exc:
        raise KeyStoreError(f"无法打开密钥库 / cannot open keystore {shown}: {exc}") from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # transactions are begun by _on_begin
        cur = dbapi_conn.cursor()
        for pragma in (f"busy_timeout = {int(busy_timeout * 1000)}", "foreign_keys = ON", "synchronous = NORMAL"):
            cur.execute(f"PRAGMA {pragma}")
        _set_wal(cur)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A writer takes the write lock at BEGIN, so a read-then-write never dies on SQLITE_BUSY.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("ecert_write") else "BEGIN")

    return engine


def _set_wal(cur) -> None:
    """WAL is persistent, so only a new file needs it; switching skips the busy handler, hence the retries."""
    for attempt in range(100):
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.02)


@contextmanager
def serialised_tx(engine: Engine, write: bool, pg_lock: int) -> Iterator[Connection]:
    """One transaction on an engine from `make_engine`. Writers are serialised: on SQLite by
    BEGIN IMMEDIATE (the engine's begin hook, asked for by ``ecert_write``), on PostgreSQL by the
    transaction-scoped advisory lock ``pg_lock`` (one id per set of tables)."""
    with engine.connect() as conn:
        if write:
            conn.execution_options(ecert_write=True)
        with conn.begin():
            if write and conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({int(pg_lock)})")
            yield conn


def _now() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)


def _check_cutoff(at) -> dt.datetime:
    if not isinstance(at, dt.datetime) or at.tzinfo is None:
        raise KeyStoreError("吊销时间须带时区 / revocation time must be a timezone-aware datetime (e.g. ...Z or +08:00)")
    at = at.astimezone(UTC)
    if at > dt.datetime.now(UTC) + CLOCK_SKEW:
        raise KeyStoreError(
            f"吊销时间不能在将来 / revocation time {at:%Y-%m-%d %H:%M:%S} UTC lies in the future; revoke when it is due"
        )
    return at


def _check_reason(reason) -> str:
    if (
        not isinstance(reason, str) or not reason.strip() or len(reason.strip()) > 200
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in reason)
    ):
        raise KeyStoreError("吊销原因无效 / revocation reason must be 1-200 printable characters (e.g. keyCompromise)")
    return reason.strip()


def _add_years(t: dt.datetime, years: int) -> dt.datetime:
    try:
        return t.replace(year=t.year + years)
    except ValueError:  # 29 February
        return t.replace(year=t.year + years, day=28)


def _record(row) -> KeyRecord:
    return KeyRecord(
        kid=row.kid, issuer_code=row.issuer_code, role=row.role, status=row.status, cert_der=bytes(row.cert_der),
        not_before=row.not_before, not_after=row.not_after, created_at=row.created_at,
        retired_at=row.retired_at, revoked_at=row.revoked_at, revocation_reason=row.revocation_reason,
        parent_kid=row.parent_kid, activated_at=row.activated_at,
    )


_PUBLIC_COLUMNS = [c for c in keys_t.c if c.name != "wrapped_key"]


# --------------------------------------------------------------------------- the store

class KeyStore:
    """Issuers, keys and certificates in one database; see the module docstring."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings if settings is not None else load_settings()
        self._engine = make_engine(self.settings.database_url, self.settings.busy_timeout)
        self.url = self._engine.url.render_as_string(hide_password=True)  # password hidden: safe to show
        self._cache: dict[str, sm2.PrivateKey] = {}
        self._cache_lock = threading.Lock()
        self._active_kids: dict[tuple[str, str], tuple[str | None, float]] = {}  # (issuer, role) -> (kid, when)
        self._key_list: tuple[list[KeyRecord], float, tuple] | None = None  # (list_keys(), when, change mark)
        self._keys_changed = self.settings.home / KEYS_CHANGED_FILE
        self.active_kid_ttl = ACTIVE_KID_TTL
        try:
            self._kek = self._open()
        except BaseException:
            self._engine.dispose()
            raise

    # ---- plumbing

    @property
    def engine(self) -> Engine:
        """The keystore's engine; other tables in the same database (registry, tokens, jobs) share it."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()
        self._cache.clear()

    def __enter__(self) -> "KeyStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<KeyStore {self.url}>"

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        """A transaction; writers are serialised (SQLite: BEGIN IMMEDIATE, PostgreSQL: advisory lock)."""
        try:
            with serialised_tx(self._engine, write, _PG_WRITE_LOCK) as conn:
                yield conn
        except (KeyStoreError, IntegrityError):
            raise
        except SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise KeyStoreError(
                f"密钥库数据库错误 / keystore database error ({self.url}): {type(detail).__name__}: {detail}"
            ) from exc

    def _open(self) -> bytes:
        """Create the schema if absent, then load and check the KEK before any row is written."""
        with self._tx() as c:  # an existing keystore is only read
            complete = all(inspect(c).has_table(t.name) for t in metadata.sorted_tables)
        if not complete:
            with self._tx(write=True) as c:  # under the write lock: concurrent first runs take turns
                metadata.create_all(c)
        with self._tx() as c:
            stored = c.scalar(select(meta_t.c.value).where(meta_t.c.name == _KEK_CHECK))
        kek = _kek.load_kek(self.settings, may_create=stored is None)
        if stored is None:
            with self._tx(write=True) as c:
                stored = c.scalar(select(meta_t.c.value).where(meta_t.c.name == _KEK_CHECK))
                if stored is None:  # we are the first run: bind this keystore to this KEK
                    c.execute(insert(meta_t), [
                        {"name": _KEK_CHECK, "value": _kek.check_value(kek)},
                        {"name": "schema_version", "value": SCHEMA_VERSION},
                    ])
                    c.execute(insert(issuers_t).values(
                        code=PLATFORM, name="ecert 平台 / platform (root CA, seal maker)", uscc=None, created_at=_now()
                    ))
                    return kek
        _kek.verify_check_value(kek, bytes(stored))
        return kek

    # ---- issuers

    def add_issuer(self, code: str, name: str, *, uscc: str | None = None) -> Issuer:
        """A new issuing authority; ``code`` is normally its USCC, which then becomes ``uscc`` too."""
        self._check_new_issuer(code, name, uscc)
        if uscc is None and is_valid_uscc(code):
            uscc = code
        issuer = Issuer(code=code, name=name.strip(), uscc=uscc, created_at=_now())
        try:
            with self._tx(write=True) as c:
                c.execute(insert(issuers_t).values(**asdict(issuer)))
        except IntegrityError:
            raise KeyStoreError(f"发证机构已存在 / issuer {code!r} already exists") from None
        return issuer

    @staticmethod
    def _check_new_issuer(code: str, name: str, uscc: str | None) -> None:
        if not isinstance(code, str) or not _CODE_RE.fullmatch(code) or code == PLATFORM:
            raise KeyStoreError(
                f"发证机构代码无效 / invalid issuer code {code!r}: 1-64 letters, digits, '.', '_' or '-' "
                f"(and not the reserved {PLATFORM!r})"
            )
        if (
            not isinstance(name, str) or not name.strip() or len(name.strip()) > 64
            or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name)
        ):
            raise KeyStoreError("发证机构名称无效 / issuer name must be 1-64 printable characters (X.520 bound)")
        if uscc is not None and not is_valid_uscc(uscc):
            raise KeyStoreError(f"统一社会信用代码无效 / {uscc!r} is not a valid 18-character USCC (GB 32100)")

    def issuers(self) -> list[Issuer]:
        """The issuing authorities (without the reserved platform issuer)."""
        with self._tx() as c:
            rows = c.execute(select(issuers_t).where(issuers_t.c.code != PLATFORM).order_by(issuers_t.c.code))
            return [Issuer(**row._mapping) for row in rows]

    def issuer(self, code: str) -> Issuer:
        with self._tx() as c:
            row = c.execute(select(issuers_t).where(issuers_t.c.code == code)).first()
        if row is None:
            raise UnknownIssuer(f"未知发证机构 / unknown issuer {code!r} (see `ecert keys list`)")
        return Issuer(**row._mapping)

    # ---- keys

    def get_key(self, kid: str) -> KeyRecord:
        with self._tx() as c:
            row = c.execute(select(*_PUBLIC_COLUMNS).where(keys_t.c.kid == kid)).first()
        if row is None:
            raise UnknownKey(f"未知密钥 / unknown key id {kid!r}")
        return _record(row)

    def list_keys(self, issuer_code: str | None = None) -> list[KeyRecord]:
        """Platform keys (root first) then each issuer's, oldest first within a role."""
        q = select(*_PUBLIC_COLUMNS)
        if issuer_code is not None:
            q = q.where(keys_t.c.issuer_code == issuer_code)
        with self._tx() as c:
            records = [_record(row) for row in c.execute(q)]
        records.sort(key=lambda r: (r.issuer_code != PLATFORM, r.issuer_code, ROLES.index(r.role), r.created_at))
        return records

    def _find_active(self, c: Connection, issuer_code: str, role: str) -> KeyRecord | None:
        row = c.execute(
            select(*_PUBLIC_COLUMNS).where(keys_t.c.issuer_code == issuer_code, keys_t.c.role == role, _ACTIVE)
        ).first()
        return _record(row) if row is not None else None

    def active_key(self, issuer_code: str, role: str = "signing") -> KeyRecord:
        with self._tx() as c:
            found = self._find_active(c, issuer_code, role)
        if found is None:
            self.issuer(issuer_code)  # UnknownIssuer if that is the real problem
            raise NoActiveKey(
                f"没有有效密钥 / issuer {issuer_code!r} has no active {role} key (run `ecert keys init` "
                "or create one)"
            )
        return found

    def root(self) -> KeyRecord:
        return self.active_key(PLATFORM, "root")

    def seal_maker(self) -> KeyRecord:
        return self.active_key(PLATFORM, "seal_maker")

    def create_key(
        self,
        issuer_code: str,
        role: str,
        *,
        validity_days: int | None = None,
        activate: bool = True,
        common_name: str | None = None,
    ) -> KeyRecord:
        """Generate a key and its certificate (self-signed for a root, else issued by the active root).

        With ``activate`` the new key replaces the current active key of (issuer, role) in the
        same transaction (the old one is retired); otherwise it is stored ``pending``.
        """
        return self._create_key(issuer_code, role, validity_days, common_name, "replace" if activate else "pending")[0]

    def _create_key(self, issuer_code, role, validity_days, common_name, mode) -> tuple[KeyRecord, bool]:
        """(record, created); ``mode``: "replace" the active key, store "pending", or activate "if_absent"."""
        issuer = self.issuer(issuer_code)
        allowed = _PLATFORM_ROLES if issuer_code == PLATFORM else _ISSUER_ROLES
        if role not in allowed:
            raise KeyStoreError(f"角色无效 / role {role!r} is not allowed for issuer {issuer_code!r} (allowed: {allowed})")
        if validity_days is not None and (not isinstance(validity_days, int) or validity_days < 1):
            raise KeyStoreError("有效期无效 / validity_days must be a positive whole number of days")
        key = sm2.PrivateKey.generate()
        now = _now()
        if validity_days:
            not_after = now + dt.timedelta(days=validity_days)
        else:
            not_after = _add_years(now, DEFAULT_VALIDITY_YEARS[role])
        cn = common_name or DEFAULT_CN.get(role) or issuer.name
        parent = None if role == "root" else self.root()
        try:
            if parent is None:
                cert_der = x509.build_root(key, cn, organization=PLATFORM_ORG, not_before=now, not_after=not_after)
            else:
                not_after = min(not_after, parent.not_after)  # never outlive the issuing CA
                cert_der = x509.issue_certificate(
                    parent.cert_der, self.private_key(parent.kid), key.public_key, common_name=cn,
                    organization=PLATFORM_ORG if issuer_code == PLATFORM else issuer.name, uscc=issuer.uscc,
                    not_before=now, not_after=not_after, usage=role,
                )
        except x509.CertificateError as exc:
            raise KeyStoreError(f"无法签发证书 / cannot issue the {role} certificate: {exc}") from None
        kid = x509.key_id(cert_der)
        row = dict(
            kid=kid, issuer_code=issuer_code, role=role, status="pending", parent_kid=parent.kid if parent else None,
            cert_der=cert_der, wrapped_key=_kek.wrap(self._kek, kid, key.to_bytes()),
            not_before=now, not_after=not_after, created_at=now,
        )
        try:
            with self._tx(write=True) as c:
                if mode == "if_absent":
                    existing = self._find_active(c, issuer_code, role)
                    if existing is not None:
                        return existing, False
                c.execute(insert(keys_t).values(**row))
                if mode != "pending":
                    self._activate(c, kid, issuer_code, role, now)
            self._forget_key_state()
        except IntegrityError:
            if mode == "if_absent":  # a concurrent run activated one first (PostgreSQL)
                return self.active_key(issuer_code, role), False
            raise KeyStoreError(
                f"并发冲突 / another {role} key of {issuer_code!r} was activated at the same time; retry"
            ) from None
        return self.get_key(kid), True

    @staticmethod
    def _activate(
        c: Connection, kid: str, issuer_code: str, role: str, now: dt.datetime,
        revoke_as: tuple[dt.datetime, str] | None = None, checkpoint: Callable[[], None] | None = None,
    ) -> None:
        """Retire (or revoke) the active key of (issuer, role) and activate ``kid``, inside the caller's transaction.

        Both updates commit together, so a reader sees the old key or the new one, never none."""
        previous = {"status": "retired", "retired_at": now}
        if revoke_as is not None:  # (cut-off, reason)
            previous.update(status="revoked", revoked_at=revoke_as[0], revocation_reason=revoke_as[1])
        c.execute(
            update(keys_t).where(keys_t.c.issuer_code == issuer_code, keys_t.c.role == role, _ACTIVE).values(**previous)
        )
        if checkpoint is not None:  # rotation's crash-test hook, between the two updates
            checkpoint()
        c.execute(update(keys_t).where(keys_t.c.kid == kid).values(status="active", activated_at=now))

    def activate(self, kid: str) -> KeyRecord:
        """Make a pending key the active one of its (issuer, role); the previous one is retired atomically."""
        return self.switch_to(kid)[0]

    def switch_to(
        self,
        kid: str,
        *,
        revoke_previous: tuple[str, dt.datetime, str] | None = None,
        checkpoint: Callable[[], None] | None = None,
    ) -> tuple[KeyRecord, KeyRecord | None]:
        """Make a pending key the active one of its (issuer, role) in one transaction: (new, previous).

        The previous active key is retired, or revoked with ``revoke_previous = (its kid, cut-off,
        reason)``; if another key became active meanwhile nothing changes and KeyStoreError says so.
        Activating a key that is already active changes nothing (a repeated rotation finishing).
        """
        if revoke_previous is not None:
            expected, cutoff, reason = revoke_previous
            revoke_previous = (expected, _check_cutoff(cutoff), _check_reason(reason))
        with self._tx(write=True) as c:
            row = c.execute(select(*_PUBLIC_COLUMNS).where(keys_t.c.kid == kid)).first()
            if row is None:
                raise UnknownKey(f"未知密钥 / unknown key id {kid!r}")
            rec = _record(row)
            if rec.status == "active":
                return rec, None
            if rec.status != "pending":
                raise KeyStoreError(f"只能启用待用密钥 / only a pending key can be activated ({kid} is {rec.status})")
            if rec.not_after <= dt.datetime.now(UTC):
                raise KeyStoreError(f"待用密钥已过期 / pending key {kid} expired on {rec.not_after:%Y-%m-%d}")
            previous = self._find_active(c, rec.issuer_code, rec.role)
            if revoke_previous is not None and (previous is None or previous.kid != revoke_previous[0]):
                raise KeyStoreError(
                    f"当前有效密钥已变更 / {revoke_previous[0]} is no longer the active key of {rec.issuer_code!r} "
                    "(rotated meanwhile); revoke it on its own"
                )
            self._activate(c, kid, rec.issuer_code, rec.role, _now(), revoke_previous and revoke_previous[1:], checkpoint)
        self._forget_key_state()
        return self.get_key(kid), (self.get_key(previous.kid) if previous is not None else None)

    def pending_key(self, issuer_code: str, role: str = "signing") -> KeyRecord | None:
        """The newest unexpired pending key of (issuer, role): staged for activation, e.g. by a rotation cut short."""
        now = dt.datetime.now(UTC)
        found = [r for r in self.list_keys(issuer_code) if r.role == role and r.status == "pending" and r.not_after > now]
        return found[-1] if found else None

    def _forget_key_state(self) -> None:
        """A key changed: drop this store's caches of key state and tell the other processes on
        this machine (they compare `_change_mark` before trusting their `cached_keys`)."""
        self._active_kids.clear()
        self._key_list = None
        try:
            self._keys_changed.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._keys_changed.with_name(f"{KEYS_CHANGED_FILE}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_bytes(os.urandom(8))
            os.replace(tmp, self._keys_changed)  # a new inode: the mark changes even within one mtime tick
        except OSError:
            pass  # a read-only home: other processes fall back to the time bound

    def _change_mark(self) -> tuple:
        try:
            st = os.stat(self._keys_changed)
        except OSError:
            return ()
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def cached_keys(self, *, max_age: float | None = None) -> list[KeyRecord]:
        """`list_keys()`, cached: for verifiers answering thousands of requests a second (the key
        list was half the work of an HTTP QR verification).

        A change made by any process sharing this home (service, CLI, another worker) is seen at
        once: it replaces the ``keys.changed`` marker, one stat() per call here. A change made
        on another machine (a shared PostgreSQL) is seen within ``max_age`` seconds (default
        ``self.active_kid_ttl``, the bound signers already have for a rotation)."""
        ttl = self.active_kid_ttl if max_age is None else max_age
        now = time.monotonic()
        mark = self._change_mark()  # read before the list: a change after this shows up next call
        hit = self._key_list
        if hit is not None and now - hit[1] < ttl and hit[2] == mark:
            return hit[0]
        keys = self.list_keys()
        self._key_list = (keys, now, mark)
        return keys

    def active_kid(self, issuer_code: str, role: str = "signing", *, max_age: float | None = None) -> str | None:
        """The kid of the active key, or None; cached ``max_age`` seconds (default ``self.active_kid_ttl``).

        Cheap enough to call per request: long-running signers poll it to notice a rotation made
        by another process without restarting."""
        ttl = self.active_kid_ttl if max_age is None else max_age
        now = time.monotonic()
        hit = self._active_kids.get((issuer_code, role))
        if hit is not None and now - hit[1] < ttl:
            return hit[0]
        with self._tx() as c:
            kid = c.scalar(
                select(keys_t.c.kid).where(keys_t.c.issuer_code == issuer_code, keys_t.c.role == role, _ACTIVE)
            )
        self._active_kids[(issuer_code, role)] = (kid, now)
        return kid

    def revoke(self, kid: str, *, reason: str, at: dt.datetime | None = None) -> KeyRecord:
        """Revoke ``kid`` from cut-off ``at`` (default now; may lie in the past, never in the future).

        Signatures made before the cut-off stay valid (with a warning), later ones are invalid;
        the private key never leaves the store again. An active key leaves its issuer without
        one: rotate with ``keys.rotation.rotate(..., revoke=...)`` to replace it in the same step.
        A revoked key's cut-off may only be moved earlier.
        """
        at = _check_cutoff(at if at is not None else _now())
        reason = _check_reason(reason)
        with self._tx(write=True) as c:
            row = c.execute(select(*_PUBLIC_COLUMNS).where(keys_t.c.kid == kid)).first()
            if row is None:
                raise UnknownKey(f"未知密钥 / unknown key id {kid!r}")
            rec = _record(row)
            if rec.status == "revoked" and rec.revoked_at is not None and rec.revoked_at <= at:
                raise KeyStoreError(
                    f"密钥已吊销 / key {kid} is already revoked since {rec.revoked_at:%Y-%m-%d %H:%M:%S} UTC "
                    "(a cut-off can only be moved earlier)"
                )
            values = {"status": "revoked", "revoked_at": at, "revocation_reason": reason}
            if rec.status == "active":
                values["retired_at"] = _now()
            c.execute(update(keys_t).where(keys_t.c.kid == kid).values(**values))
        with self._cache_lock:
            self._cache.pop(kid, None)
        self._forget_key_state()
        return self.get_key(kid)

    # ---- seals

    def seal(self, kid: str) -> bytes | None:
        """The seal (SES_Seal DER) stored for key ``kid``, or None if none was made yet."""
        with self._tx() as c:
            found = c.scalar(select(seals_t.c.seal_der).where(seals_t.c.kid == kid))
        return bytes(found) if found is not None else None

    def put_seal(self, kid: str, seal_der: bytes) -> bytes:
        """Keep ``seal_der`` for ``kid`` unless one is there already; returns the stored seal (first wins)."""
        if not isinstance(seal_der, (bytes, bytearray)) or not seal_der:
            raise KeyStoreError("印章数据无效 / seal must be non-empty DER bytes")
        self.get_key(kid)  # UnknownKey
        try:
            with self._tx(write=True) as c:
                found = c.scalar(select(seals_t.c.seal_der).where(seals_t.c.kid == kid))
                if found is not None:
                    return bytes(found)
                c.execute(insert(seals_t).values(kid=kid, seal_der=bytes(seal_der), created_at=_now()))
        except IntegrityError:  # a concurrent writer stored one first (PostgreSQL)
            return self.seal(kid)
        return bytes(seal_der)

    # ---- private material

    def private_key(self, kid: str) -> sm2.PrivateKey:
        """Decrypt the private key of ``kid`` (refused once revoked); checked against its certificate."""
        with self._tx() as c:
            row = c.execute(
                select(keys_t.c.status, keys_t.c.wrapped_key, keys_t.c.cert_der).where(keys_t.c.kid == kid)
            ).first()
        if row is None:
            raise UnknownKey(f"未知密钥 / unknown key id {kid!r}")
        if row.status == "revoked":
            raise KeyRevoked(f"密钥已吊销 / key {kid} is revoked and can no longer be used")
        cached = self._cache.get(kid)
        if cached is not None:
            return cached
        try:
            secret = _kek.unwrap(self._kek, kid, bytes(row.wrapped_key))
            key = sm2.PrivateKey(secret, x509.Certificate.load(bytes(row.cert_der)).public_key.point)
        except (sm4.DecryptionError, sm2.SM2Error, x509.CertificateError) as exc:
            raise KeyIntegrityError(
                f"密钥记录被篡改 / stored key {kid} does not decrypt under its key id or does not match its "
                f"certificate (row altered or swapped): {type(exc).__name__}"
            ) from None
        with self._cache_lock:
            self._cache[kid] = key
        return key

    def signer(self, issuer_code: str) -> tuple[sm2.PrivateKey, bytes, KeyRecord]:
        """The active signing key of an issuer, its certificate DER and its record."""
        rec = self.active_key(issuer_code, "signing")
        if rec.not_after <= dt.datetime.now(UTC):
            raise NoActiveKey(
                f"签名证书已过期 / the active signing key {rec.kid} of {issuer_code!r} expired on "
                f"{rec.not_after:%Y-%m-%d}; rotate it"
            )
        return self.private_key(rec.kid), rec.cert_der, rec

    # ---- development bootstrap

    def init_dev(self, issuer_code: str = DEV_ISSUER_CODE, issuer_name: str = DEV_ISSUER_NAME) -> InitResult:
        """Root CA, seal maker, one issuer and its active signing key; a second run changes nothing."""
        created: list[str] = []

        def ensure(issuer: str, role: str, cn: str | None) -> KeyRecord:
            try:
                return self.active_key(issuer, role)
            except NoActiveKey:
                rec, new = self._create_key(issuer, role, None, cn, "if_absent")
                if new:
                    created.append(role)
                return rec

        try:
            issuer = self.issuer(issuer_code)
        except UnknownIssuer:
            issuer = None
            self._check_new_issuer(issuer_code, issuer_name, None)  # refuse bad input before writing
        root = ensure(PLATFORM, "root", DEV_ROOT_CN)
        seal_maker = ensure(PLATFORM, "seal_maker", DEV_SEAL_MAKER_CN)
        if issuer is None:
            try:
                issuer = self.add_issuer(issuer_code, issuer_name)
                created.append("issuer")
            except KeyStoreError:  # a concurrent run added it first
                issuer = self.issuer(issuer_code)
        signing = ensure(issuer_code, "signing", None)
        return InitResult(root=root, seal_maker=seal_maker, issuer=issuer, signing=signing, created=tuple(created))
