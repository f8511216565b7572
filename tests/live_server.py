"""Start, wait for and stop a real server process on 127.0.0.1 for the tests (bounded in time,
always killed with its whole process group)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], home: Path, env: dict, unset: tuple[str, ...] = ()) -> subprocess.Popen:
    """Run ``cmd`` from the repo with ``env`` (on top of this process's, less ``unset``),
    logging to home/server.log."""
    full = {k: v for k, v in {**os.environ, "PYTHONPATH": str(ROOT), **env}.items() if k not in unset}
    with (home / "server.log").open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def wait_ready(proc: subprocess.Popen, base: str, home: Path, seconds: float = 60) -> None:
    """Poll /healthz; on failure stop the process and fail the test with the end of its log."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"server did not start:\n{(home / 'server.log').read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
