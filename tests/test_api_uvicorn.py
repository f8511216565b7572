"""The service as deployed: a real uvicorn with two workers on 127.0.0.1, signing processes,
the shared SQLite (WAL) keystore, and Prometheus multiprocess metrics summed over workers."""

from __future__ import annotations

import socket
import sys

import httpx
import pytest

from . import live_server
from .test_api import _json_record
from .conftest import make_record

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from api.auth import TokenStore
    from keys.config import load_settings
    from keys.store import KeyStore

    home = tmp_path_factory.mktemp("uvicorn_home")
    settings = load_settings({"ECERT_HOME": str(home)})
    with KeyStore(settings) as store:
        issuer = store.init_dev().issuer
    ts = TokenStore(settings.database_url)
    token, _ = ts.create("uvicorn test", ["issue"])
    ts.close()
    prom = home / "prom"
    prom.mkdir()
    port = live_server.free_port()
    proc = live_server.start(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2", "--log-level", "debug"],
        home, {"ECERT_HOME": str(home), "PROMETHEUS_MULTIPROC_DIR": str(prom), "ECERT_SIGN_WORKERS": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        live_server.wait_ready(proc, base, home)
        yield {"base": base, "token": token, "issuer": issuer, "log": home / "server.log", "port": port}
    finally:
        live_server.stop(proc)


def test_issue_verify_and_metrics_over_real_http(server):
    from prometheus_client.parser import text_string_to_metric_families

    issuer = server["issuer"]
    h = {"Authorization": f"Bearer {server['token']}"}
    with httpx.Client(base_url=server["base"], timeout=60) as c:
        files = []
        for seq in (1, 2, 3):
            r = c.post("/v1/licences", json=_json_record(make_record(issuer.code, issuer.name, seq=seq)), headers=h)
            assert r.status_code == 200, r.text
            files.append(r.content)
        verdicts = [c.post("/v1/verify", files={"file": ("l.ofd", f)}).json()["verdict"] for f in files]
        assert verdicts == ["valid"] * 3
        assert c.post("/v1/licences", json={}).status_code == 401
        # every worker answers with the sum over both workers
        for _ in range(4):
            text = c.get("/metrics").text
            signed = sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
                         if s.name == "ecert_signatures_total" and s.labels.get("issuer") == issuer.code)
            valid = sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
                        if s.name == "ecert_verifications_total" and s.labels.get("verdict") == "valid")
            assert (signed, valid) == (3, 3)


def test_a_slow_upload_does_not_stall_others(server):
    """A client trickling its body holds no worker: other requests are answered meanwhile."""
    slow = socket.create_connection(("127.0.0.1", server["port"]), timeout=30)
    try:
        slow.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/ofd\r\n"
                     b"Content-Length: 100000\r\n\r\n" + b"PK" * 100)
        with httpx.Client(base_url=server["base"], timeout=30) as c:
            for _ in range(6):  # both workers, several times
                assert c.get("/healthz").status_code == 200
                assert c.post("/v1/verify", content=b"junk").json()["verdict"] == "invalid"
        slow.sendall(b"x" * (100000 - 200))
        reply = slow.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200")
    finally:
        slow.close()


def test_server_log_holds_no_token(server):
    with httpx.Client(base_url=server["base"], timeout=30) as c:
        c.post("/v1/licences", json={}, headers={"Authorization": f"Bearer {server['token']}x"})
    log = server["log"].read_text(errors="replace")
    assert "Uvicorn running" in log or "Started server process" in log
    assert server["token"] not in log and server["token"].rsplit("_", 1)[1] not in log
