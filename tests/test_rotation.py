"""Key rotation and revocation on a real SQLite (WAL) keystore, with real processes.

Signers run as separate processes signing in a loop while a third process rotates; crashes
are real `os._exit` at each rotation step (ECERT_TEST_CRASH_AT); every licence produced is
checked by the real verifier. Run as ``python -m tests.test_rotation signer ...`` this file
is also the signing worker.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from keys import rotation
from keys.config import load_settings
from keys.store import DEV_ISSUER_CODE, KeyRevoked, KeyStore, KeyStoreError, NoActiveKey, UnknownKey
from signer.issue import LicenceIssuer
from verifier.ofd_verify import verify_ofd
from verifier.trust import trust_from_store

from .conftest import make_photo, make_record

REPO = Path(__file__).resolve().parents[1]
UTC = dt.timezone.utc
runner = CliRunner()


def open_store(home: Path) -> KeyStore:
    return KeyStore(load_settings({"ECERT_HOME": str(home)}))


def child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECERT_")}
    return env | {"ECERT_HOME": str(home), "PYTHONPATH": str(REPO)} | extra


def ecert(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    """The real `ecert` console script in its own process."""
    script = Path(sys.executable).with_name("ecert")
    return subprocess.run([str(script), *args], env=child_env(home, **extra), capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def cli(home: Path, *args: str, **extra: str):
    return runner.invoke(app, ["keys", *args], env={"ECERT_HOME": str(home), "COLUMNS": "200", **extra})


def signing_keys(store: KeyStore, issuer: str = DEV_ISSUER_CODE) -> dict[str, str]:
    return {r.kid: r.status for r in store.list_keys(issuer)}


def active_rows(db: Path, issuer: str = DEV_ISSUER_CODE) -> list[str]:
    """Read with the stdlib driver, not through the store."""
    with sqlite3.connect(db) as c:
        return [k for (k,) in c.execute(
            "SELECT kid FROM keystore_keys WHERE issuer_code=? AND role='signing' AND status='active'", (issuer,))]


@pytest.fixture
def home(tmp_path) -> Path:
    h = tmp_path / "home"
    with open_store(h) as s:
        s.init_dev()
    return h


@pytest.fixture
def store(home):
    with open_store(home) as s:
        s.active_kid_ttl = 0  # this process sees other processes' switches at once
        yield s


def issue(store: KeyStore, seq: int = 1, when: dt.datetime | None = None):
    iss = store.issuer(DEV_ISSUER_CODE)
    return LicenceIssuer(store, DEV_ISSUER_CODE).issue(make_record(iss.code, iss.name, seq=seq), when=when)


# --------------------------------------------------------------------------- switching

def test_rotation_retires_the_old_key_and_signs_with_the_new(store):
    before = issue(store)
    signer = LicenceIssuer(store, DEV_ISSUER_CODE)
    assert signer.identity().kid == before.kid
    r = rotation.rotate(store, DEV_ISSUER_CODE, validity_days=400)
    assert r.old.kid == before.kid and r.old.status == "retired" and r.old.retired_at is not None
    assert r.new.status == "active" and r.new.kid != before.kid and not r.resumed
    assert (r.new.not_after - r.new.not_before).days == 400 and r.new.parent_kid == store.root().kid
    assert store.signer(DEV_ISSUER_CODE)[2].kid == r.new.kid  # the retired key is never handed out to sign
    assert signer.identity().kid == r.new.kid  # the running issuer reloads
    after = signer.issue(make_record(DEV_ISSUER_CODE, store.issuer(DEV_ISSUER_CODE).name, seq=2))
    assert after.kid == r.new.kid
    trust = trust_from_store(store)
    for lic in (before, after):  # the retired key still verifies
        rep = verify_ofd(lic.data, trust)
        assert rep.verdict == "valid", [c.to_dict() for c in rep.checks if c.status != "pass"]
    assert store.seal(r.new.kid) is not None  # made by the signer on first use
    assert list(signing_keys(store).values()).count("active") == 1


def test_rotation_refuses_platform_and_unknown_issuers(store):
    with pytest.raises(KeyStoreError, match="platform keys"):
        rotation.rotate(store, "platform")
    with pytest.raises(KeyStoreError, match="unknown issuer"):
        rotation.rotate(store, "no-such-issuer")
    active = store.active_kid(DEV_ISSUER_CODE)
    stale = ("0123456789abcdef", dt.datetime.now(UTC), "keyCompromise")  # e.g. another process rotated meanwhile
    with pytest.raises(KeyStoreError, match="no longer the active key"):
        rotation.rotate(store, DEV_ISSUER_CODE, revoke=stale)
    assert store.active_kid(DEV_ISSUER_CODE) == active and "revoked" not in signing_keys(store).values()


def test_a_reader_never_sees_zero_active_keys(home, store):
    seen: list[str | None] = []
    stop = threading.Event()

    def reader():
        with open_store(home) as mine:
            while not stop.is_set():
                seen.append(mine.active_kid(DEV_ISSUER_CODE, max_age=0))

    t = threading.Thread(target=reader)
    t.start()
    try:
        kids = [rotation.rotate(store, DEV_ISSUER_CODE).new.kid for _ in range(5)]
        time.sleep(0.05)
    finally:
        stop.set()
        t.join(10)
    assert seen and None not in seen
    assert len(set(seen)) >= 2 and set(seen) <= set(signing_keys(store))
    assert active_rows(Path(store._engine.url.database)) == [kids[-1]]


# --------------------------------------------------------------------------- two signers, a third rotates

def _signer_main(home: str, out_dir: str, stop_file: str, name: str) -> None:
    """Worker: sign licences in a loop until told to stop; every result goes to a file named by its kid."""
    out = Path(out_dir)
    summary = {"signed": 0, "failed": 0, "errors": []}
    with open_store(Path(home)) as s:
        iss = s.issuer(DEV_ISSUER_CODE)
        signer = LicenceIssuer(s, DEV_ISSUER_CODE)
        photo = make_photo()
        n = 0
        while not os.path.exists(stop_file):
            n += 1
            try:
                lic = signer.issue(make_record(iss.code, iss.name, seq=n, photo=photo))
            except Exception as exc:  # noqa: BLE001 - counted and reported, the point of the test
                summary["failed"] += 1
                summary["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            tmp = out / f".{name}-{n}.tmp"
            tmp.write_bytes(lic.data)
            tmp.rename(out / f"{name}-{n:05d}-{lic.kid}.ofd")
            summary["signed"] += 1
            time.sleep(0.05)  # leave the shared CPU some room
    (out / f"{name}.json").write_text(json.dumps(summary))


def _wait_for(out: Path, names: list[str], kid: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(any(out.glob(f"{n}-*-{kid}.ofd")) for n in names):
            return
        time.sleep(0.05)
    raise AssertionError(f"signers did not switch to {kid} within {timeout}s")


def test_two_signing_processes_never_fail_while_a_third_rotates(home, store, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stop = tmp_path / "stop"
    names = ["a", "b"]
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.test_rotation", "signer", str(home), str(out), str(stop), n],
                         env=child_env(home), cwd=REPO, stderr=subprocess.PIPE)
        for n in names
    ]
    kids = [store.active_kid(DEV_ISSUER_CODE)]
    try:
        _wait_for(out, names, kids[0])
        for _ in range(3):
            res = cli(home, "rotate", "--issuer", DEV_ISSUER_CODE)  # this test process is the third one
            assert res.exit_code == 0, res.output
            kids.append(store.active_kid(DEV_ISSUER_CODE))
            assert kids[-1] in res.output and kids[-2] in res.output
            _wait_for(out, names, kids[-1])
    finally:
        stop.touch()
        errs = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    for n in names:
        summary = json.loads((out / f"{n}.json").read_text())
        assert summary["failed"] == 0, summary["errors"]
        assert summary["signed"] >= 4
    assert len(set(kids)) == 4
    assert signing_keys(store) == {k: ("active" if k == kids[-1] else "retired") for k in kids}
    files = sorted(out.glob("*.ofd"))
    assert {f.stem.rsplit("-", 1)[1] for f in files} == set(kids)
    trust = trust_from_store(store)
    for f in files:
        rep = verify_ofd(f.read_bytes(), trust)
        assert rep.verdict == "valid", (f.name, [c.to_dict() for c in rep.checks if c.status != "pass"])
        assert rep.signatures[0].kid == f.stem.rsplit("-", 1)[1]


# --------------------------------------------------------------------------- crashes

@pytest.mark.parametrize("step", rotation.CRASH_STEPS)
def test_a_crash_at_any_step_leaves_one_active_key_and_a_consistent_store(home, store, step):
    old = store.active_key(DEV_ISSUER_CODE).kid
    before = issue(store)
    res = ecert(home, "keys", "rotate", "--issuer", DEV_ISSUER_CODE, ECERT_TEST_CRASH_AT=step)
    assert res.returncode == rotation.CRASH_EXIT_CODE, res.stdout + res.stderr
    db = Path(store._engine.url.database)
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    active = active_rows(db)
    assert len(active) == 1
    keys = signing_keys(store)
    pending = [k for k, s in keys.items() if s == "pending"]
    if step == "start":
        assert keys == {old: "active"}
    elif step in ("staged", "switching"):  # the new key is stored, the switch never committed
        assert active == [old] and len(pending) == 1 and len(keys) == 2
    else:
        assert active[0] != old and keys[old] == "retired" and not pending
        assert (store.seal(active[0]) is not None) == (step == "sealed")
    for kid in keys:  # every stored key still decrypts and matches its certificate
        assert store.private_key(kid).public_key.point
    # finishing: the next rotation resumes a staged key instead of piling up new ones
    r = rotation.rotate(store, DEV_ISSUER_CODE)
    assert r.resumed == bool(pending) and (r.new.kid == pending[0] if pending else True)
    assert active_rows(db) == [r.new.kid] and "pending" not in signing_keys(store).values()
    after = issue(store, seq=2)
    assert after.kid == r.new.kid
    trust = trust_from_store(store)
    assert [verify_ofd(x.data, trust).verdict for x in (before, after)] == ["valid", "valid"]


# --------------------------------------------------------------------------- scheduled rotation

def _age(db: Path, kid: str, days: int) -> None:
    then = (dt.datetime.now(UTC) - dt.timedelta(days=days)).replace(tzinfo=None, microsecond=0)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE keystore_keys SET activated_at=?, created_at=? WHERE kid=?", (str(then), str(then), kid))


def test_rotate_due_rotates_only_old_or_expiring_keys(home, store):
    db = Path(store._engine.url.database)
    store.add_issuer("second-authority", "第二测试应急管理局")
    store.create_key("second-authority", "signing")
    store.add_issuer("third-authority", "第三测试应急管理局")
    expiring = store.create_key("third-authority", "signing", validity_days=10).kid
    old = store.active_kid(DEV_ISSUER_CODE)
    fresh = store.active_kid("second-authority")
    _age(db, old, 40)
    _age(db, fresh, 20)
    assert {r.kid for r in rotation.due_keys(store, after_days=30)} == {old, expiring}
    assert {r.kid for r in rotation.due_keys(store, after_days=50)} == {expiring}
    res = cli(home, "rotate", "--due", ECERT_ROTATE_AFTER_DAYS="30")
    assert res.exit_code == 0, res.output
    assert store.get_key(old).status == "retired" and store.get_key(expiring).status == "retired"
    assert store.active_kid("second-authority") == fresh
    assert old in res.output and expiring in res.output and fresh not in res.output
    assert rotation.rotate_due(store, after_days=30) == []  # nothing left to do
    res = cli(home, "rotate", "--due")  # default 365 days
    assert res.exit_code == 0 and "no signing key is due" in res.output


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "a year"])
def test_bad_rotation_setting_is_a_clear_error(value):
    with pytest.raises(KeyStoreError, match="ECERT_ROTATE_AFTER_DAYS"):
        rotation.rotate_after_days({"ECERT_ROTATE_AFTER_DAYS": value})
    assert rotation.rotate_after_days({}) == rotation.DEFAULT_ROTATE_AFTER_DAYS
    assert rotation.rotate_after_days({"ECERT_ROTATE_AFTER_DAYS": " 90 "}) == 90


def test_rotate_cli_needs_exactly_one_target(home):
    for args in ([], ["--issuer", DEV_ISSUER_CODE, "--due"]):
        res = cli(home, "rotate", *args)
        assert res.exit_code == 1 and "exactly one of --issuer" in res.output
    res = cli(home, "rotate", "--issuer", "no-such-issuer")
    assert res.exit_code == 1 and "unknown issuer" in res.output and "Traceback" not in res.output


# --------------------------------------------------------------------------- revocation

def _checks(rep, name: str) -> list[str]:
    return [c.status for c in rep.checks if c.name == name]


def test_revocation_cut_off_end_to_end(home, store):
    kid = store.active_kid(DEV_ISSUER_CODE)
    t0 = store.get_key(kid).not_before
    early = issue(store, 1, when=t0 + dt.timedelta(seconds=1))
    late = issue(store, 2, when=t0 + dt.timedelta(seconds=3))
    cutoff = (t0 + dt.timedelta(seconds=2)).astimezone(dt.timezone(dt.timedelta(hours=8)))  # given in Beijing time
    res = cli(home, "revoke", kid, "--at", cutoff.isoformat(), "--reason", "keyCompromise")
    assert res.exit_code == 0, res.output
    rec = store.get_key(kid)
    assert rec.status == "revoked" and rec.revoked_at == t0 + dt.timedelta(seconds=2)
    assert rec.revocation_reason == "keyCompromise"
    listed = {k["kid"]: k for k in json.loads(cli(home, "list", "--json").output)}
    assert listed[kid]["revoked_at"] == rec.revoked_at.isoformat() and listed[kid]["revocation_reason"] == "keyCompromise"
    new = store.active_kid(DEV_ISSUER_CODE)
    assert new != kid and new in res.output  # replaced in the same step: signing goes on
    trust = trust_from_store(store, at=t0 + dt.timedelta(minutes=1))
    rep = verify_ofd(early.data, trust)
    assert rep.verdict == "valid" and _checks(rep, "revocation") == ["warn"]
    rep = verify_ofd(late.data, trust)
    assert rep.verdict == "invalid" and _checks(rep, "revocation") == ["fail"]
    with pytest.raises(KeyRevoked):
        store.private_key(kid)
    assert issue(store, 3).kid == new


def test_revoke_without_rotation_stops_signing_until_rotated(home, store):
    kid = store.active_kid(DEV_ISSUER_CODE)
    res = cli(home, "revoke", kid, "--reason", "cessationOfOperation", "--no-rotate")
    assert res.exit_code == 0 and "no active signing key" in res.output
    with pytest.raises(NoActiveKey):
        issue(store)
    assert cli(home, "rotate", "--issuer", DEV_ISSUER_CODE).exit_code == 0
    assert issue(store).kid not in (kid, None)


def test_revocation_input_errors(home, store):
    kid = store.active_kid(DEV_ISSUER_CODE)
    now = dt.datetime.now(UTC)
    with pytest.raises(KeyStoreError, match="future"):
        store.revoke(kid, reason="keyCompromise", at=now + dt.timedelta(hours=1))
    with pytest.raises(KeyStoreError, match="timezone"):
        store.revoke(kid, reason="keyCompromise", at=now.replace(tzinfo=None))
    for bad in ("", "   ", "x" * 201, "bad\nreason", None):
        with pytest.raises(KeyStoreError, match="reason"):
            store.revoke(kid, reason=bad)
    with pytest.raises(UnknownKey):
        store.revoke("0000000000000000", reason="superseded")
    assert store.get_key(kid).status == "active"  # nothing above changed anything
    first = store.revoke(kid, reason="superseded", at=now - dt.timedelta(hours=1))
    with pytest.raises(KeyStoreError, match="only be moved earlier"):
        store.revoke(kid, reason="superseded", at=now)
    earlier = store.revoke(kid, reason="keyCompromise", at=now - dt.timedelta(hours=2))
    assert earlier.revoked_at < first.revoked_at and earlier.revocation_reason == "keyCompromise"
    for args, message in ((["--at", "2026-01-01T00:00:00"], "with its zone"), (["--at", "yesterday"], "ISO 8601"),
                          (["--at", "now", "--reason", ""], "reason")):
        res = cli(home, "revoke", kid, *args, *([] if "--reason" in args else ["--reason", "superseded"]))
        assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output
    res = cli(home, "revoke", "0000000000000000", "--reason", "superseded")
    assert res.exit_code == 1 and "unknown key" in res.output


if __name__ == "__main__" and sys.argv[1:2] == ["signer"]:
    _signer_main(*sys.argv[2:6])
