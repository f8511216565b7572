"""`ecert serve` as `make run` starts it: first run bootstraps keys and one development token,
prints where to look, and the printed token works; a second run creates nothing new."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx

from . import live_server
from .conftest import make_record
from .test_api import _json_record


def _serve(home: Path):
    port = live_server.free_port()
    exe = str(Path(sys.executable).with_name("ecert"))
    proc = live_server.start([exe, "serve"], home, {"ECERT_HOME": str(home), "PORT": str(port), "ECERT_SIGN_WORKERS": "0"},
                             unset=("PROMETHEUS_MULTIPROC_DIR",))
    base = f"http://127.0.0.1:{port}"
    live_server.wait_ready(proc, base, home)
    return proc, base


def test_first_run_prints_a_working_token_and_where_to_look(tmp_path):
    proc, base = _serve(tmp_path)
    try:
        out = (tmp_path / "server.log").read_text(errors="replace")
        assert "development keys created" in out and f"{base}/docs" in out
        token = re.search(r"development API token .*: (ect_\S+)", out).group(1)
        from keys.config import load_settings
        from keys.store import DEV_ISSUER_CODE, KeyStore

        with KeyStore(load_settings({"ECERT_HOME": str(tmp_path)})) as st:
            iss = st.issuer(DEV_ISSUER_CODE)
        rec = _json_record(make_record(iss.code, iss.name, seq=71))
        r = httpx.post(base + "/v1/licences", json=rec, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert r.status_code == 200, r.text
        assert httpx.post(base + "/v1/licences", json=rec, headers={"Authorization": "Bearer ect_00000000_" + "x" * 43},
                          timeout=30).status_code == 401
    finally:
        live_server.stop(proc)
    (tmp_path / "server.log").unlink()
    proc, base = _serve(tmp_path)
    try:
        out = (tmp_path / "server.log").read_text(errors="replace")
        assert "development keys created" not in out and "ect_" not in out
    finally:
        live_server.stop(proc)
