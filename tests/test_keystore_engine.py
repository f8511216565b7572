"""Regression: opening a second engine on an SQLite keystore must not drop this process's locks.

`make_engine` used to open+close the database file even when it existed; closing any
descriptor of a file releases all of the process's POSIX (fcntl) locks on it. The shared
lock a live WAL connection keeps on the database file is what tells another process it is
not the last user; without it, that process checkpoints and deletes the WAL on close, under
our live connections ("database disk image is malformed" in a two-process test).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

from keys.store import make_engine


def _other_process_opens_and_closes(path) -> None:
    code = (
        "import sqlite3\n"
        f"c=sqlite3.connect({str(path)!r}, timeout=5)\n"
        "c.execute('SELECT count(*) FROM t').fetchone(); c.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_second_engine_keeps_our_locks(tmp_path):
    path = tmp_path / "keystore.db"
    wal = tmp_path / "keystore.db-wal"
    make_engine(f"sqlite:///{path}").dispose()  # creates the file
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t(x)")
    holder.execute("INSERT INTO t VALUES (1)")
    holder.execute("SELECT * FROM t").fetchall()
    assert wal.exists()
    _other_process_opens_and_closes(path)
    assert wal.exists()  # we are still connected: the other process was not the last user
    make_engine(f"sqlite:///{path}").dispose()  # a second engine in this process
    _other_process_opens_and_closes(path)
    assert wal.exists(), "opening a second engine dropped this process's lock: the WAL was checkpointed away"
    holder.close()
    assert os.path.exists(path)
