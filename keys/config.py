"""Where the keystore keeps its state, read from the environment in one place.

Everything lives under one directory, ``ECERT_HOME`` (default ``.ecert/`` in the working
directory), so tests and tools run side by side by giving each its own home:

* ``ECERT_HOME``          -- state directory (database, KEK file);
* ``ECERT_DATABASE_URL``  -- any SQLAlchemy URL (e.g. ``postgresql+psycopg://...``);
                             default: the SQLite file ``$ECERT_HOME/keystore.db``;
* ``ECERT_KEK``           -- the key-encryption key itself (32 hex chars or base64 of 16 bytes);
* ``ECERT_KEK_FILE``      -- where the KEK is kept otherwise (default ``$ECERT_HOME/kek``),
                             created 0600 on the first run against an empty keystore;
* ``ECERT_DB_BUSY_TIMEOUT`` -- seconds a SQLite writer waits for another process's lock
                             before giving up with a clear error (default 30; the API then
                             answers 503 with Retry-After instead of hanging).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOME = ".ecert"
DATABASE_FILE = "keystore.db"
KEK_FILE = "kek"
DEFAULT_BUSY_TIMEOUT = 30.0


class KeyStoreError(Exception):
    """Base of every keystore error; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    kek_file: Path
    # The KEK given directly (ECERT_KEK); kept out of repr so it never reaches a log.
    kek: str | None = field(default=None, repr=False)
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT  # seconds (SQLite only)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when the URL is a SQLite file, else None."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        path = self.database_url[len(prefix):].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None


def load_settings(env: Mapping[str, str] = os.environ, *, cwd: Path | None = None) -> Settings:
    """Settings from ``env`` (default: the process environment); relative paths are taken from ``cwd``."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    home = (base / (env.get("ECERT_HOME") or DEFAULT_HOME)).absolute()
    url = env.get("ECERT_DATABASE_URL") or f"sqlite:///{home / DATABASE_FILE}"
    kek_file = (base / env["ECERT_KEK_FILE"]).absolute() if env.get("ECERT_KEK_FILE") else home / KEK_FILE
    return Settings(home=home, database_url=url, kek_file=kek_file, kek=env.get("ECERT_KEK") or None,
                    busy_timeout=_busy_timeout(env.get("ECERT_DB_BUSY_TIMEOUT", "")))


def _busy_timeout(raw: str) -> float:
    raw = raw.strip()
    if not raw:
        return DEFAULT_BUSY_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 3600:
        raise KeyStoreError(f"ECERT_DB_BUSY_TIMEOUT={raw!r} 无效 / must be seconds between 0.1 and 3600")
    return value
