"""`ecert issue` and `ecert verify` as a user runs them (exit codes, table, --json, --trust)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app

from .conftest import SAMPLES, make_record

runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    h = tmp_path_factory.mktemp("cli_home")
    env = {"ECERT_HOME": str(h)}
    r = runner.invoke(app, ["keys", "init"], env=env)
    assert r.exit_code == 0, r.output
    return h


def _env(home):
    return {"ECERT_HOME": str(home)}


def _records_file(tmp_path, home, n=3, bad=True) -> Path:
    from keys.config import load_settings
    from keys.store import DEV_ISSUER_CODE, KeyStore

    with KeyStore(load_settings(_env(home))) as st:
        iss = st.issuer(DEV_ISSUER_CODE)
    lines = []
    for i in range(n):
        rec = make_record(iss.code, iss.name, seq=20 + i)
        rec["photo"] = base64.b64encode(rec["photo"]).decode()
        lines.append(json.dumps(rec, default=str, ensure_ascii=False))
    if bad:
        rec = make_record(iss.code, iss.name, seq=99, id_number="110105198503120000")
        rec["photo"] = base64.b64encode(rec["photo"]).decode()
        lines.insert(1, json.dumps(rec, default=str, ensure_ascii=False))
        lines.insert(2, "{not json")
    p = tmp_path / "records.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_issue_then_verify(tmp_path, home):
    recs = _records_file(tmp_path, home)
    out = tmp_path / "out"
    r = runner.invoke(app, ["issue", str(recs), "-o", str(out)], env=_env(home))
    assert r.exit_code == 1, r.output  # one record was bad: reported, the others issued
    files = sorted(out.glob("*.ofd"))
    assert len(files) == 3
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sum("identifier" in m for m in manifest) == 3
    bad = [m for m in manifest if "errors" in m]
    assert bad and bad[0]["line"] == 2 and bad[0]["errors"][0]["field"] == "id_number"
    assert any("errors" in m and m["line"] == 3 for m in manifest)
    assert not list(out.glob("*.part"))

    r = runner.invoke(app, ["verify", str(files[0])], env=_env(home))
    assert r.exit_code == 0, r.output
    assert "有效" in r.output and "✓" in r.output
    r = runner.invoke(app, ["verify", "--json", str(files[0])], env=_env(home))
    rep = json.loads(r.stdout)
    assert rep["verdict"] == "valid" and all({"name", "status", "reason"} <= set(c) for c in rep["checks"])
    assert rep["licence"]["name"]

    # tamper: replace the photo -> invalid, exit 1, failing check named
    with zipfile.ZipFile(files[0]) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    photo = next(n for n in entries if n.startswith("Doc_0/Res/") and n.lower().endswith((".jpg", ".jpeg", ".png")))
    entries[photo] = entries[photo][:-10] + b"\x00" * 10
    bad_file = tmp_path / "tampered.ofd"
    with zipfile.ZipFile(bad_file, "w") as z:
        for n, d in entries.items():
            z.writestr(n, d)
    r = runner.invoke(app, ["verify", "--json", str(bad_file)], env=_env(home))
    assert r.exit_code == 1
    rep = json.loads(r.stdout)
    assert rep["verdict"] == "invalid"
    assert any(c["name"] == "references" and c["status"] == "fail" and photo in c["reason"] for c in rep["checks"])


def test_verify_vendor_sample_exit_codes(tmp_path):
    env = {"ECERT_HOME": str(tmp_path / "empty")}
    sample = str(SAMPLES / "ofdrw_v4_whole_protected.ofd")
    assert runner.invoke(app, ["verify", sample], env=env).exit_code == 3
    r = runner.invoke(app, ["verify", "--trust", str(SAMPLES / "keys" / "ofdrw-root.pem"), sample], env=env)
    assert r.exit_code == 0, r.output
    raw = str(SAMPLES / "ofdrw_raw_sm2_sign.ofd")
    r = runner.invoke(app, ["verify", "--trust", str(SAMPLES / "keys" / "ofdrw-root.pem"),
                            "--signer-cert", str(SAMPLES / "keys" / "ofdrw-user.pem"), raw], env=env)
    assert r.exit_code == 0, r.output
    # as of a time before the certificate existed, the signing time lies in the future
    r = runner.invoke(app, ["verify", "--at", "2019-01-01T00:00:00Z", "--json", sample], env=env)
    assert json.loads(r.stdout)["verdict"] == "invalid"
    assert runner.invoke(app, ["verify", str(tmp_path / "missing.ofd")], env=env).exit_code == 2
    assert runner.invoke(app, ["verify", "--trust", str(tmp_path / "nope.pem"), sample], env=env).exit_code == 2
    (tmp_path / "junk.ofd").write_bytes(b"junk")
    r = runner.invoke(app, ["verify", "--json", str(tmp_path / "junk.ofd")], env=env)
    assert r.exit_code == 1 and json.loads(r.stdout)["checks"][0]["name"] == "package"


def test_real_console_script(tmp_path, home):
    """The installed `ecert` entry point, as a user types it."""
    exe = Path(sys.executable).with_name("ecert")
    env = {**os.environ, "ECERT_HOME": str(home)}
    res = subprocess.run([str(exe), "verify", str(SAMPLES / "einvoice_jiangsu_gomain.ofd")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "无法确认" in res.stdout


@pytest.mark.parametrize("name", ["records.jsonl", "records.csv"])
def test_shipped_examples_issue_cleanly(tmp_path, home, name):
    """`ecert issue examples/records.jsonl -o out/` works right after `ecert keys init`."""
    examples = Path(__file__).resolve().parents[1] / "examples"
    out = tmp_path / "out"
    r = runner.invoke(app, ["issue", str(examples / name), "-o", str(out)], env=_env(home))
    assert r.exit_code == 0, r.output
    files = list(out.glob("*.ofd"))
    assert len(files) == 20
    from ofd.licence.catalogue import default_catalogue

    cats = set()
    for f in files[:20:4]:
        rep = runner.invoke(app, ["verify", "--json", str(f)], env=_env(home))
        assert json.loads(rep.stdout)["verdict"] == "valid"
    for line in (examples / "records.jsonl").read_text(encoding="utf-8").splitlines():
        cats.add(json.loads(line)["category"])
    assert cats == {c.name for c in default_catalogue().categories if c.items}


def test_verify_offline_from_a_saved_trust_list(tmp_path, home):
    """No keystore at all: a saved trust list and the pinned root are enough; a revoked key shows."""
    recs = _records_file(tmp_path, home, n=1, bad=False)
    out = tmp_path / "out"
    assert runner.invoke(app, ["issue", str(recs), "-o", str(out)], env=_env(home)).exit_code == 0
    licence = next(out.glob("*.ofd"))
    tl, root = tmp_path / "trustlist.json", tmp_path / "root.pem"
    r = runner.invoke(app, ["trust", "export", "-o", str(tl), "--root-out", str(root)], env=_env(home))
    assert r.exit_code == 0, r.output
    offline = {"ECERT_HOME": str(tmp_path / "no-keystore-here")}
    r = runner.invoke(app, ["verify", "--json", "--trust-list", str(tl), "--root", str(root), str(licence)], env=offline)
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "no-keystore-here").exists()
    # a tampered list is refused, not silently ignored
    tl.write_bytes(tl.read_bytes().replace(b'"active"', b'"revoked"', 1))
    r = runner.invoke(app, ["verify", "--trust-list", str(tl), "--root", str(root), str(licence)], env=offline)
    assert r.exit_code == 2 and "rejected" in r.output
    r = runner.invoke(app, ["verify", "--trust-list", str(tl), str(licence)], env=offline)
    assert r.exit_code == 2


def test_issue_with_a_missing_or_wrong_input_file_is_a_usage_error(tmp_path, home):
    r = runner.invoke(app, ["issue", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o")], env=_env(home))
    assert r.exit_code == 2 and "not found" in r.output
    (tmp_path / "records.txt").write_text("x")
    r = runner.invoke(app, ["issue", str(tmp_path / "records.txt"), "-o", str(tmp_path / "o")], env=_env(home))
    assert r.exit_code == 2 and "unsupported" in r.output
