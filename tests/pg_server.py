"""A throwaway PostgreSQL server for the tests: real database, no mocks.

Uses ECERT_TEST_POSTGRES_URL when set; otherwise runs Debian's initdb/pg_ctl (package
`postgresql`, installed by scripts/sysdeps.sh) on a Unix socket in a temporary folder,
as the `postgres` user when the tests run as root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_url():
    """Yield a SQLAlchemy URL of a running PostgreSQL, or None when none can be had here."""
    url = os.environ.get("ECERT_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        yield None
        return
    as_root = os.geteuid() == 0
    base = tempfile.mkdtemp(prefix="ecert-pg-")
    data, sock = os.path.join(base, "data"), os.path.join(base, "sock")
    os.makedirs(sock)
    user = "postgres" if as_root else os.environ.get("USER", "postgres")
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    pre = ["runuser", "-u", "postgres", "--"] if as_root else []
    port = _free_port()
    log = os.path.join(base, "log")
    try:
        subprocess.run(pre + [initdb, "-D", data, "-A", "trust", "-U", user, "--no-sync"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run(pre + [pg_ctl, "-D", data, "-l", log, "-w", "-t", "60", "-o",
                              f"-k {sock} -p {port} -c listen_addresses='' -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=90)
    except (subprocess.SubprocessError, OSError):
        shutil.rmtree(base, ignore_errors=True)
        yield None
        return
    try:
        yield f"postgresql+psycopg://{user}@/postgres?host={sock}&port={port}"
    finally:
        subprocess.run(pre + [pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
