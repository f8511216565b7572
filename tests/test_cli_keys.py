"""`ecert keys init|list`, through Typer's CliRunner and once through the installed console script."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from keys.config import load_settings
from keys.store import DEV_ISSUER_CODE, KeyStore

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("ECERT_HOME", "ECERT_KEK", "ECERT_KEK_FILE", "ECERT_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def run(home: Path, *args: str, **env: str):
    return runner.invoke(app, ["keys", *args], env={"ECERT_HOME": str(home), "COLUMNS": "80", **env})


def secrets_of(home: Path) -> list[str]:
    """Every text form a private key could leak in: hex, base64 of the scalar, PEM/PKCS#8, the KEK."""
    with KeyStore(load_settings({"ECERT_HOME": str(home)})) as store:
        keys = [store.private_key(r.kid) for r in store.list_keys()]
    forms = [(home / "kek").read_text().strip()]
    for key in keys:
        d = key.to_bytes()
        forms += [d.hex(), d.hex().upper(), base64.b64encode(d).decode(), base64.b64encode(key.to_der()).decode()[:40]]
        forms += key.to_pem().decode().splitlines()[1:3]
    return forms


def test_init_then_list(tmp_path):
    home = tmp_path / "home"
    first = run(home, "init")
    assert first.exit_code == 0, first.output
    assert "keystore initialised: created root, seal_maker, issuer, signing" in first.output
    with KeyStore(load_settings({"ECERT_HOME": str(home)})) as store:
        records = store.list_keys()
    assert [r.role for r in records] == ["root", "seal_maker", "signing"]

    listed = run(home, "list")
    assert listed.exit_code == 0, listed.output
    for r in records:
        assert r.kid in listed.output
    assert DEV_ISSUER_CODE in listed.output and "active" in listed.output
    assert f"{records[0].not_after:%Y-%m-%d}" in listed.output

    as_json = json.loads(run(home, "list", "--json").stdout)
    assert [(k["kid"], k["role"], k["status"]) for k in as_json] == [(r.kid, r.role, r.status) for r in records]

    for out in (first.output, listed.output, json.dumps(as_json)):
        assert not [s for s in secrets_of(home) if s in out]


def test_second_init_changes_nothing_and_says_so(tmp_path):
    home = tmp_path / "home"
    assert run(home, "init").exit_code == 0
    before = (home / "keystore.db").read_bytes()
    again = run(home, "init")
    assert again.exit_code == 0
    assert "nothing changed" in again.output and "未做任何更改" in again.output
    assert (home / "keystore.db").read_bytes() == before


def test_init_with_custom_issuer(tmp_path):
    home = tmp_path / "home"
    result = run(home, "init", "--issuer-code", "DEV-2", "--issuer-name", "第二测试机构 [bold]x[/]")
    assert result.exit_code == 0, result.output
    assert "DEV-2" in run(home, "list").output
    assert "第二测试机构 [bold]x[/]" in run(home, "list").output  # names are shown as typed, not as markup


def test_errors_are_clean(tmp_path):
    home = tmp_path / "home"
    assert run(home, "init").exit_code == 0
    wrong = run(home, "list", ECERT_KEK="ff" * 16)
    assert wrong.exit_code == 1
    assert "wrong key-encryption key" in wrong.stderr and "Traceback" not in wrong.output
    bad = run(tmp_path / "other", "init", "--issuer-code", "bad code!")
    assert bad.exit_code == 1 and "invalid issuer code" in bad.stderr
    empty = run(tmp_path / "empty", "list")
    assert empty.exit_code == 0 and "empty" in empty.output
    assert not (tmp_path / "empty").exists()  # listing never creates a keystore or a KEK


def test_real_console_script(tmp_path):
    script = Path(sys.executable).with_name("ecert")
    assert script.exists(), "install the project into the venv (pip install -e .)"
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECERT_")} | {"ECERT_HOME": str(home)}
    outputs = []
    for args in (["keys", "init"], ["keys", "init"], ["keys", "list"]):
        proc = subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    assert "created root" in outputs[0] and "nothing changed" in outputs[1]
    with KeyStore(load_settings({"ECERT_HOME": str(home)})) as store:
        kids = [r.kid for r in store.list_keys()]
    assert len(kids) == 3 and all(k in outputs[2] for k in kids)
    assert (home / "kek").stat().st_mode & 0o777 == 0o600
    leaked = [s for s in secrets_of(home) for out in outputs if s in out]
    assert not leaked
