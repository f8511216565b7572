"""Faults on the real thing: kill -9 of a uvicorn worker and of the whole server mid-batch, a
file-size limit (RLIMIT_FSIZE: a "full disk") under `ecert issue`, a SQLite database held
locked by another process. After each: no licence lost or registered twice, the issuance log
verifies (`ecert log verify` in its own process), exactly one active key per issuer and role,
and the same request sent again completes idempotently.

Other fault cases live next to what they test: a killed signing process
(tests/test_api.py::test_a_crashed_signing_process_is_replaced), a crash at every rotation
step (tests/test_rotation.py::test_a_crash_at_any_step_leaves_one_active_key_and_a_consistent_store),
kill -9 of the bulk coordinator (tests/test_bulk.py::test_kill_9_mid_job_then_resume).
"""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import psutil
import pytest

from . import live_server
from .conftest import make_record
from .test_api import _json_record

ROOT = Path(__file__).resolve().parents[1]
ECERT = str(Path(sys.executable).with_name("ecert"))


# ---------------------------------------------------------------- helpers


@pytest.fixture
def home(tmp_path):
    """A fresh development keystore with its registry tables and one issue+admin token."""
    from api.auth import TokenStore
    from keys.config import load_settings
    from keys.store import KeyStore
    from signer.registry import Registry

    h = tmp_path / "home"
    with KeyStore(load_settings({"ECERT_HOME": str(h)})) as store:
        issuer = store.init_dev().issuer
        Registry(store).close()
        ts = TokenStore(store.settings.database_url)
        token = ts.create("faults", ["issue", "admin"])[0]
        ts.close()
    return {"home": h, "db": h / "keystore.db", "issuer": issuer, "token": token}


def child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECERT_", "PROMETHEUS_"))}
    return env | {"ECERT_HOME": str(home), "PYTHONPATH": str(ROOT)} | extra


def ecert(home: Path, *args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    """The real `ecert` console script; ``limit``: RLIMIT_FSIZE in bytes (SIGXFSZ ignored, so writes get EFBIG)."""

    def file_size_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([ECERT, *args], env=child_env(home), capture_output=True, text=True, timeout=120, cwd=ROOT,
                          preexec_fn=file_size_limit if limit else None)


def start_server(home: Path) -> tuple[subprocess.Popen, str, int]:
    port = live_server.free_port()
    prom = home / "prom"
    prom.mkdir(exist_ok=True)
    for f in prom.iterdir():
        f.unlink()
    proc = live_server.start(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2"],
        home, {"ECERT_HOME": str(home), "ECERT_SIGN_WORKERS": "1", "PROMETHEUS_MULTIPROC_DIR": str(prom)})
    base = f"http://127.0.0.1:{port}"
    live_server.wait_ready(proc, base, home)
    return proc, base, port


def records(issuer, seqs) -> list[dict]:
    return [_json_record(make_record(issuer.code, issuer.name, seq=s)) for s in seqs]


def registry_counts(db: Path) -> dict[str, int]:
    """Registered versions per licence number, read with the stdlib driver (not through the product)."""
    with sqlite3.connect(db, timeout=30) as c:
        return dict(c.execute("SELECT licence_number, COUNT(*) FROM registry_licences GROUP BY licence_number"))


def log_size(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as c:
        return c.execute("SELECT COUNT(*) FROM registry_log").fetchone()[0]


def assert_store_consistent(home: Path, db: Path, cli: bool = True) -> None:
    """integrity_check, one active key per (issuer, role), and the log verified: by the CLI in its own
    process (``cli``), else in this one (cheaper, for the checks between two steps of a test)."""
    with sqlite3.connect(db, timeout=30) as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        active = c.execute("SELECT issuer_code, role, COUNT(*) FROM keystore_keys WHERE status='active' "
                           "GROUP BY issuer_code, role").fetchall()
        roles = c.execute("SELECT DISTINCT issuer_code, role FROM keystore_keys").fetchall()
    assert sorted((i, r) for i, r, _ in active) == sorted(roles) and all(n == 1 for *_, n in active)
    if cli:
        res = ecert(home, "log", "verify", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        check = json.loads(res.stdout)
    else:
        from keys.config import load_settings
        from keys.store import KeyStore
        from signer.registry import Registry

        with KeyStore(load_settings({"ECERT_HOME": str(home)})) as store, Registry(store) as reg:
            check = reg.verify_log().to_dict()
    assert check["ok"] and check["size"] == log_size(db), check


def raw_post(port: int, path: str, body: bytes, token: str) -> socket.socket:
    """Send a request on a plain socket and return it unread: its local port names the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    return s


def worker_holding(master: int, client_port: int) -> int:
    """The uvicorn worker process (a child of the master) holding our connection, once one has accepted it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in psutil.Process(master).children():
            try:
                conns = child.net_connections(kind="tcp")
            except psutil.Error:  # a process ending meanwhile
                continue
            if any(c.raddr and c.raddr.port == client_port for c in conns):
                return child.pid
        time.sleep(0.02)  # still in the listen backlog
    raise AssertionError("no worker accepted the connection")


def wait_mid_batch(db: Path, start: int, n: int) -> int:
    """Block until the batch has registered some but not all records; returns how many so far."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = sum(registry_counts(db).values()) - start
        if done >= 3:
            assert done < n, "the batch finished before it could be interrupted; give it more records"
            return done
        time.sleep(0.02)
    raise AssertionError("the batch never started")


def unzip_manifest(content: bytes) -> tuple[dict[str, bytes], list[dict]]:
    z = zipfile.ZipFile(io.BytesIO(content))
    files = {n: z.read(n) for n in z.namelist()}
    return files, [json.loads(x) for x in files.pop("manifest.jsonl").decode().splitlines()]


def numbers(recs: list[dict]) -> list[str]:
    from ofd.licence.model import validate_record

    return [validate_record({**r, "photo": base64.b64decode(r["photo"])}).licence_number for r in recs]


# ---------------------------------------------------------------- kill -9


N_BATCH = 40


def test_kill_9_of_a_worker_then_of_the_whole_server_mid_batch(home):
    """One server start serves both cases (a start costs seconds): first one uvicorn worker is killed
    while it streams a batch, then the whole process group while it streams another; restarted on the
    same home, the batch sent again completes without registering anything twice."""
    h = {"Authorization": f"Bearer {home['token']}"}
    first = records(home["issuer"], range(1, N_BATCH + 1))
    second = records(home["issuer"], range(101, 101 + N_BATCH))
    nums1, nums2 = numbers(first), numbers(second)
    proc, base, port = start_server(home["home"])
    try:
        # 1. one worker, mid-request
        sock = raw_post(port, "/v1/licences:batch", json.dumps(first).encode(), home["token"])
        victim = worker_holding(proc.pid, sock.getsockname()[1])
        wait_mid_batch(home["db"], 0, N_BATCH)
        os.kill(victim, signal.SIGKILL)
        reply = b""
        try:
            while chunk := sock.recv(1 << 16):
                reply += chunk
        except OSError:
            pass
        sock.close()
        assert b"manifest.jsonl" not in reply  # the answer was cut off, not completed
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(4):  # the surviving worker (and the one uvicorn starts again) keep serving
                assert c.get("/healthz").status_code == 200
            counts = registry_counts(home["db"])
            assert all(counts.get(n, 0) in (0, 1) for n in nums1) and 0 < sum(counts.values()) < N_BATCH
            for rec in first:  # each record sent again on its own: one licence, never a second version
                r = c.post("/v1/licences", json=rec, headers=h)
                assert r.status_code == 200, r.text
                assert ".001." in r.headers["x-ecert-identifier"]
        assert registry_counts(home["db"]) == {n: 1 for n in nums1}
        assert proc.poll() is None

        # 2. the whole server, mid-batch
        sock = raw_post(port, "/v1/licences:batch", json.dumps(second).encode(), home["token"])
        wait_mid_batch(home["db"], N_BATCH, N_BATCH)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # master, workers and signing processes at once
        proc.wait(timeout=10)
    sock.close()
    counts = registry_counts(home["db"])
    assert all(counts.get(n, 0) in (0, 1) for n in nums2) and set(counts) <= set(nums1) | set(nums2)
    cut = sum(counts.get(n, 0) for n in nums2)
    assert 0 < cut < N_BATCH
    assert log_size(home["db"]) == N_BATCH + cut  # a registered licence is logged, a logged one registered

    proc, base, port = start_server(home["home"])  # the same home, after the crash
    try:
        with httpx.Client(base_url=base, timeout=120) as c:
            r = c.post("/v1/licences:batch", json=second, headers=h)
        assert r.status_code == 200, r.text
        files, manifest = unzip_manifest(r.content)
        assert [m["record"] for m in manifest] == list(range(1, N_BATCH + 1))
        assert all("identifier" in m for m in manifest), [m for m in manifest if "identifier" not in m]
        assert sum(not m["registered"] for m in manifest) == cut  # the ones that made it before the kill
        assert len(files) == N_BATCH
    finally:
        live_server.stop(proc)
    assert registry_counts(home["db"]) == {n: 1 for n in nums1 + nums2}
    assert log_size(home["db"]) == 2 * N_BATCH
    assert_store_consistent(home["home"], home["db"])


# ---------------------------------------------------------------- full disk


def _noise_jpeg(seed: int) -> bytes:
    """A photo that does not compress: the OFD is ~300 KB, far above the file-size limit, the database rows not."""
    import random

    from PIL import Image

    rnd = random.Random(seed)
    img = Image.frombytes("RGB", (480, 640), rnd.randbytes(480 * 640 * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _write_records(path: Path, issuer, seqs, big: bool = False) -> list[str]:
    recs = []
    for s in seqs:
        rec = make_record(issuer.code, issuer.name, seq=s)
        if big:
            rec["photo"] = _noise_jpeg(s)
        recs.append(_json_record(rec))
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    return numbers(recs)


def _check_output(home: dict, out: Path, nums: list[str]) -> None:
    """Every .ofd in ``out`` is complete (verifies) and registered once; every record has one."""
    from keys.config import load_settings
    from keys.store import KeyStore
    from verifier.ofd_verify import verify_ofd
    from verifier.trust import trust_from_store

    ofds = sorted(out.glob("*.ofd"))
    assert len(ofds) == len(nums)
    with KeyStore(load_settings({"ECERT_HOME": str(home["home"])})) as store:
        trust = trust_from_store(store)
        assert [verify_ofd(p.read_bytes(), trust).verdict for p in ofds] == ["valid"] * len(nums)
    assert registry_counts(home["db"]) == {n: 1 for n in nums}


def test_output_over_the_file_size_limit_leaves_no_partial_ofd_and_a_rerun_completes(home, tmp_path):
    src, out = tmp_path / "big.jsonl", tmp_path / "out"
    nums = _write_records(src, home["issuer"], (1, 2, 3), big=True)
    res = ecert(home["home"], "issue", str(src), "-o", str(out), limit=200 * 1024)
    failed = res.stdout + res.stderr
    assert res.returncode != 0 and "File too large" in failed, failed
    assert "Traceback" not in failed and "│" not in failed, failed  # one zh/en line, not a (Rich) traceback
    assert "无法写入输出文件" in failed and "cannot write the output file" in failed, failed
    assert not list(out.glob("*.part"))  # no torn temporary file left on the full disk either
    assert not list(out.glob("*.ofd"))  # never a truncated file under a licence's name
    assert set(registry_counts(home["db"])) <= set(nums)  # signed and registered, or not at all: never twice
    assert_store_consistent(home["home"], home["db"], cli=False)

    res = ecert(home["home"], "issue", str(src), "-o", str(out))  # the disk has room again
    assert res.returncode == 0, res.stdout + res.stderr
    _check_output(home, out, nums)
    assert_store_consistent(home["home"], home["db"])


def test_the_database_over_the_file_size_limit_is_a_clear_error_and_stays_consistent(home, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out"
    nums = _write_records(src, home["issuer"], range(1, 7))
    with sqlite3.connect(home["db"]) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    limit = home["db"].stat().st_size + 8 * 1024  # room for a record or two in the WAL, not six
    res = ecert(home["home"], "issue", str(src), "-o", str(out), limit=limit)
    failed = res.stdout + res.stderr
    assert res.returncode != 0 and "database error" in failed and "Traceback" not in failed, failed
    assert len(registry_counts(home["db"])) < len(nums)
    assert_store_consistent(home["home"], home["db"], cli=False)

    res = ecert(home["home"], "issue", str(src), "-o", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    _check_output(home, out, nums)
    assert_store_consistent(home["home"], home["db"])


# ---------------------------------------------------------------- a locked database

_HOLD_LOCK = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_locked_database_is_a_503_with_retry_after_then_works_once_released(home):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import load_api_settings

    env = {"ECERT_HOME": str(home["home"]), "ECERT_DB_BUSY_TIMEOUT": "1"}
    issuer = home["issuer"]
    h = {"Authorization": f"Bearer {home['token']}"}
    first, second = records(issuer, (1, 2))
    with TestClient(create_app(load_api_settings(env, sign_workers=0)), raise_server_exceptions=False) as c:
        issued = c.post("/v1/licences", json=first, headers=h)
        assert issued.status_code == 200
        ident = issued.headers["x-ecert-identifier"]
        holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(home["db"])], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            writes = [("/v1/licences", second), ("/v1/keys/rotate", {"issuer_code": issuer.code}),
                      (f"/v1/licences/{ident}/revoke", {"reason": "unfit"})]
            for path, body in writes:
                t0 = time.monotonic()
                r = c.post(path, json=body, headers=h)
                assert time.monotonic() - t0 < 20, path  # bounded by the busy timeout, not a hang
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.headers["retry-after"] and r.json()["error"] == "unavailable"
                assert r.json()["message_zh"] and r.json()["message_en"]
            # readers are not blocked by a writer (WAL): verification and status still answer
            assert c.post("/v1/verify", content=issued.content).json()["verdict"] == "valid"
            assert c.get(f"/v1/licences/{ident}/status").json()["status"] == "valid"
        finally:
            holder.stdin.close()
            holder.wait(timeout=10)
        for path, body in writes:
            r = c.post(path, json=body, headers=h)
            assert r.status_code == 200, (path, r.text)
    assert registry_counts(home["db"]) == dict.fromkeys(numbers([first, second]), 1)
    assert_store_consistent(home["home"], home["db"])


# ---------------------------------------------------------------- a revocation cut short

@pytest.mark.parametrize("step", ["switching", "switched"])  # inside the switch transaction, and just after it
def test_a_crash_at_each_step_of_revoke_with_rotation_leaves_one_active_key(home, step):
    """`ecert keys revoke` of the active key replaces it in the same step (a rotation with revoke=):
    killed at each rotation step (tests/test_rotation.py covers plain rotation at every step, "sealed" too),
    the old key is either still active and unrevoked, or revoked with its successor active -- never neither."""
    from keys import rotation
    from keys.config import load_settings
    from keys.store import KeyStore

    settings = load_settings({"ECERT_HOME": str(home["home"])})
    with KeyStore(settings) as store:
        old = store.active_key(home["issuer"].code).kid
    res = subprocess.run([ECERT, "keys", "revoke", old, "--reason", "keyCompromise"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env=child_env(home["home"], ECERT_TEST_CRASH_AT=step))
    assert res.returncode == rotation.CRASH_EXIT_CODE, res.stdout + res.stderr
    assert_store_consistent(home["home"], home["db"], cli=False)
    with KeyStore(settings) as store:
        keys = {r.kid: r.status for r in store.list_keys(home["issuer"].code)}
        if step in ("start", "staged", "switching"):  # nothing committed but perhaps a staged key
            assert keys[old] == "active" and store.get_key(old).revoked_at is None
        else:
            assert keys[old] == "revoked" and list(keys.values()).count("active") == 1
        if step in ("start", "staged", "switching"):  # finishing: the revocation is simply run again
            rotation.revoke_key(store, old, reason="keyCompromise")
        keys = {r.kid: r.status for r in store.list_keys(home["issuer"].code)}
        assert keys[old] == "revoked" and list(keys.values()).count("active") == 1
        assert "pending" not in keys.values()  # a staged key was used, not left behind


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "99999"])
def test_a_bad_busy_timeout_setting_is_a_clear_error(raw):
    from keys.config import KeyStoreError, load_settings

    assert load_settings({"ECERT_DB_BUSY_TIMEOUT": "2.5"}).busy_timeout == 2.5
    with pytest.raises(KeyStoreError, match="ECERT_DB_BUSY_TIMEOUT"):
        load_settings({"ECERT_DB_BUSY_TIMEOUT": raw})
