"""Bulk jobs over HTTP (issue #7): POST /v1/jobs, progress by GET and Server-Sent Events, manifest and
ZIP downloads, idempotency, clear 4xx for bad input, the lease that lets exactly one process run a
job, a kill -9 of the whole live server mid-job followed by a restart that finishes it, and the
portal's job page in real Chromium. Jobs run on a real Dask LocalCluster of 2 worker processes."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from . import live_server
from .test_bulk import check_output, log_check, write_jsonl

JSONL = {"Content-Type": "application/x-ndjson"}
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def auth(token: str, **extra) -> dict:
    return {"Authorization": f"Bearer {token}", **extra}


def new_home(tmp_path_factory, name: str) -> dict:
    """A development keystore and one token per kind of caller."""
    from api.auth import TokenStore
    from keys.config import load_settings
    from keys.store import KeyStore

    home = tmp_path_factory.mktemp(name)
    settings = load_settings({"ECERT_HOME": str(home)})
    with KeyStore(settings) as store:
        issuer = store.init_dev().issuer
    ts = TokenStore(settings.database_url)
    try:
        tokens = {"issue": ts.create("issuing system", ["issue"])[0],
                  "other": ts.create("another issuing system", ["issue"])[0],
                  "admin": ts.create("security team", ["admin"])[0],
                  "bound": ts.create("one issuer only", ["issue"], issuer_code=issuer.code)[0]}
    finally:
        ts.close()
    return {"home": home, "settings": settings, "issuer": issuer, "env": {"ECERT_HOME": str(home)}, **tokens}


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    yield c
    c.close()


@pytest.fixture(scope="module")
def svc(tmp_path_factory, cluster):
    """The app with its job runner on the shared cluster (a scheduler address, as in production)."""
    from api.app import create_app
    from api.settings import load_api_settings

    h = new_home(tmp_path_factory, "jobs_home")
    app = create_app(load_api_settings(h["env"], sign_workers=0, dask_scheduler=cluster.scheduler_address))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield {**h, "client": c}


@pytest.fixture(scope="module")
def idle(tmp_path_factory):
    """An app that accepts jobs but runs none (ECERT_JOB_RUNNER=0), with a 60 kB upload cap."""
    from api.app import create_app
    from api.settings import load_api_settings

    h = new_home(tmp_path_factory, "idle_home")
    app = create_app(load_api_settings({**h["env"], "ECERT_JOB_RUNNER": "0", "ECERT_MAX_JOB_BYTES": "60000"},
                                       sign_workers=0))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield {**h, "client": c}


def sse_events(response) -> list[tuple[str, dict]]:
    """(event, data) pairs of a text/event-stream until the server ends it."""
    out, event = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            out.append((event, json.loads(line[6:])))
    return out


def manifest_of(client, job_id: str, token: str, failed: bool = False) -> list[dict]:
    r = client.get(f"/v1/jobs/{job_id}/manifest" + ("?failed=1" if failed else ""), headers=auth(token))
    assert r.status_code == 200, r.text
    return [json.loads(x) for x in r.text.splitlines()]


def check_zip(data: bytes, lines: list[dict]) -> zipfile.ZipFile:
    """The ZIP holds each sealed licence once, with the bytes the manifest's SM3 names, and the manifest."""
    from keys.sm3 import sm3

    z = zipfile.ZipFile(io.BytesIO(data))
    assert z.testzip() is None
    idents = sorted({x["identifier"] for x in lines if "identifier" in x})
    assert sorted(z.namelist()) == sorted([f"{i}.ofd" for i in idents] + ["manifest.jsonl"])
    for x in lines:
        if "identifier" in x:
            assert sm3(z.read(f"{x['identifier']}.ofd")).hex() == x["sm3"]
    assert [json.loads(x) for x in z.read("manifest.jsonl").decode().splitlines()] == lines
    return z


# ---------------------------------------------------------------- the whole path


def test_job_runs_to_done_with_sse_progress_manifest_and_zip(svc, tmp_path):
    from keys.store import KeyStore
    from verifier.ofd_verify import verify_ofd
    from verifier.trust import trust_from_store

    c, issuer = svc["client"], svc["issuer"]
    size0 = log_check(svc["settings"]).size
    src = write_jsonl(tmp_path / "in.jsonl", issuer, 9, start=100,
                      bad={103: {"id_number": "123"}, 107: {"category": "不存在的作业"}})
    r = c.post("/v1/jobs?chunk_size=2", content=src.read_bytes(), headers=auth(svc["issue"], **JSONL))
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['job_id']}" == job["links"]["self"]
    assert job["state"] in ("queued", "running") and job["total"] == 9 and job["format"] == "jsonl"

    with c.stream("GET", job["links"]["events"]) as es:  # the ticket alone, as EventSource sends it
        assert es.headers["content-type"].startswith("text/event-stream")
        events = sse_events(es)
    assert events[-1][0] == "end" and [e for e, _ in events[:-1]] == ["progress"] * (len(events) - 1)
    processed = [d["processed"] for _, d in events]
    assert processed == sorted(processed) and processed[-1] == 9
    final = events[-1][1]
    assert (final["state"], final["done"], final["failed"], final["total"]) == ("done", 7, 2, 9)

    got = c.get(job["links"]["self"], headers=auth(svc["issue"])).json()
    assert (got["state"], got["percent"], got["eta_s"], got["runs"]) == ("done", 100.0, 0.0, 1)
    assert got["created_at"] <= got["started_at"] <= got["finished_at"]
    lines = manifest_of(c, job["job_id"], svc["issue"])
    assert [x["line"] for x in lines] == list(range(1, 10))
    failed = manifest_of(c, job["job_id"], svc["issue"], failed=True)
    assert [(x["line"], x["errors"][0]["field"]) for x in failed] == [(4, "id_number"), (8, "category")]
    assert all(e["message_zh"] and e["message_en"] for x in failed for e in x["errors"])

    res = c.get(job["links"]["result"], headers=auth(svc["issue"]))
    assert res.status_code == 200 and res.headers["content-type"] == "application/zip"
    z = check_zip(res.content, lines)
    check_output(Path(svc["home"]) / "jobs" / job["job_id"] / "out", lines)
    with KeyStore(svc["settings"]) as store:
        assert verify_ofd(z.read(z.namelist()[0]), trust_from_store(store)).verdict == "valid"
    check = log_check(svc["settings"])
    assert check.ok and check.size == size0 + 7

    listed = c.get("/v1/jobs", headers=auth(svc["issue"])).json()["jobs"]
    assert listed[0]["job_id"] == job["job_id"] and "ticket" not in listed[0]["links"]["events"]


def test_a_finished_job_taken_up_again_needs_no_cluster(svc):
    """A lease that lapsed after the engine finished (the server died before recording it): whoever
    claims the job next records it done from the engine's tables, without starting a cluster."""
    from signer.job_runner import JobService, RunnerConfig

    job = next(j for j in svc["client"].get("/v1/jobs", headers=auth(svc["issue"])).json()["jobs"]
               if j["state"] == "done")
    other = JobService(svc["settings"], RunnerConfig(jobs_dir=Path(svc["home"]) / "jobs",
                                                     scheduler="tcp://127.0.0.1:9", enabled=False))
    try:
        assert other._execute(other.queue.get(job["job_id"])) == ("done", None)  # port 9: nothing listens
    finally:
        other.close()


def test_a_token_bound_to_one_issuer_issues_only_for_it(svc, tmp_path):
    from keys.uscc import uscc_check_char

    c, issuer = svc["client"], svc["issuer"]
    first17 = issuer.code[:2] + "310000" + issuer.code[8:17]
    foreign = first17 + uscc_check_char(first17)  # a well-formed code of another authority
    src = write_jsonl(tmp_path / "in.jsonl", issuer, 2, start=250, bad={251: {"issuer_code": foreign}})
    r = c.post("/v1/jobs", content=src.read_bytes(), headers=auth(svc["bound"], **JSONL))
    assert r.status_code == 202, r.text
    with c.stream("GET", r.json()["links"]["events"]) as es:
        assert sse_events(es)[-1][1]["state"] == "done"
    lines = manifest_of(c, r.json()["job_id"], svc["bound"])
    assert "identifier" in lines[0]
    assert (lines[1]["errors"][0]["field"], lines[1]["errors"][0]["code"]) == ("issuer_code", "issuer_not_allowed")


def test_parquet_upload(svc, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .conftest import make_record

    c, issuer = svc["client"], svc["issuer"]
    recs = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in make_record(issuer.code, issuer.name,
                                                                                         seq=s).items()}
            for s in (260, 261)]
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "in.parquet")
    r = c.post("/v1/jobs", content=(tmp_path / "in.parquet").read_bytes(),
               headers=auth(svc["issue"], **{"Content-Type": "application/vnd.apache.parquet"}))
    assert r.status_code == 202 and (r.json()["format"], r.json()["total"]) == ("parquet", 2), r.text
    with c.stream("GET", r.json()["links"]["events"]) as es:
        assert sse_events(es)[-1][1]["done"] == 2
    pq.write_table(pa.Table.from_pylist([{"colour": "red"}]), tmp_path / "bad.parquet")
    r = c.post("/v1/jobs?format=parquet", content=(tmp_path / "bad.parquet").read_bytes(), headers=auth(svc["issue"]))
    assert r.status_code == 422 and r.json()["error"] == "parquet_schema" and "colour" in r.json()["message_en"]
    r = c.post("/v1/jobs?format=parquet", content=b"PAR1 not really", headers=auth(svc["issue"]))
    assert r.status_code == 422 and r.json()["error"] == "not_parquet"


def test_idempotency_key_and_same_input_return_the_same_job(svc, tmp_path):
    import csv

    c, issuer = svc["client"], svc["issuer"]
    src = write_jsonl(tmp_path / "in.jsonl", issuer, 2, start=200)
    body = src.read_bytes()
    h = auth(svc["issue"], **JSONL, **{"Idempotency-Key": "order-2026-11-23-001"})
    first = c.post("/v1/jobs", content=body, headers=h)
    again = c.post("/v1/jobs", content=body, headers=h)
    assert first.status_code == again.status_code == 202
    assert again.json()["job_id"] == first.json()["job_id"] and again.headers["idempotent-replayed"] == "true"
    conflict = c.post("/v1/jobs", content=body + body[:0] + b"\n" + body, headers=h)
    assert conflict.status_code == 409 and conflict.json()["error"] == "idempotency_conflict"
    same_input = c.post("/v1/jobs", content=body, headers=auth(svc["issue"], **JSONL))
    assert same_input.json()["job_id"] == first.json()["job_id"]
    with c.stream("GET", first.json()["links"]["events"]) as es:
        assert sse_events(es)[-1][1]["state"] == "done"
    size = log_check(svc["settings"]).size

    # another token, the same people as CSV: its own job, the same licences, nothing new in the log
    rows = [json.loads(x) for x in body.decode().splitlines()]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    other = c.post("/v1/jobs?output=zip", content=buf.getvalue().encode(),
                   headers=auth(svc["other"], **{"Content-Type": "text/csv"}))
    assert other.status_code == 202 and other.json()["job_id"] != first.json()["job_id"]
    with c.stream("GET", other.json()["links"]["events"]) as es:
        assert sse_events(es)[-1][1]["done"] == 2
    lines = manifest_of(c, other.json()["job_id"], svc["other"])
    assert [x["identifier"] for x in lines] == [x["identifier"] for x in manifest_of(c, first.json()["job_id"], svc["issue"])]
    assert log_check(svc["settings"]).size == size
    folder = Path(svc["home"]) / "jobs" / other.json()["job_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["input.csv", "result.zip"]  # output=zip: one archive
    check_zip(c.get(other.json()["links"]["result"], headers=auth(svc["other"])).content, lines)

    # a failed job (say the keystore was down) is queued again by repeating the request, and resumes
    from sqlalchemy import update

    from signer.job_runner import service_jobs_t

    app_jobs = c.app.state.ecert_jobs
    with app_jobs.store.engine.begin() as conn:
        conn.execute(update(service_jobs_t).where(service_jobs_t.c.job_id == first.json()["job_id"])
                     .values(state="failed", error=json.dumps({"code": "unavailable", "message_zh": "x",
                                                               "message_en": "signing is unavailable"})))
    assert c.get(first.json()["links"]["self"], headers=auth(svc["issue"])).json()["error"]["code"] == "unavailable"
    retry = c.post("/v1/jobs", content=body, headers=h)
    assert retry.json()["job_id"] == first.json()["job_id"] and retry.json()["error"] is None
    with c.stream("GET", retry.json()["links"]["events"]) as es:
        assert sse_events(es)[-1][1]["state"] == "done"
    assert log_check(svc["settings"]).size == size


# ---------------------------------------------------------------- refusals


def test_bad_inputs_and_callers_get_clear_4xx(idle, tmp_path):
    c, issuer = idle["client"], idle["issuer"]
    good = write_jsonl(tmp_path / "in.jsonl", issuer, 1, start=300).read_bytes()
    h = auth(idle["issue"], **JSONL)

    def refused(status: int, code: str, body: bytes, headers: dict, query: str = "") -> dict:
        r = c.post("/v1/jobs" + query, content=body, headers=headers)
        assert (r.status_code, r.json()["error"]) == (status, code), r.text
        assert r.json()["message_zh"] and r.json()["message_en"]
        return r.json()

    refused(422, "empty_input", b"", h)
    refused(422, "empty_input", b"\n  \n", h)
    refused(415, "unsupported_media_type", good, auth(idle["issue"], **{"Content-Type": "application/pdf"}))
    assert "xlsx" in refused(422, "unsupported_format", good, h, "?format=xlsx")["message_en"]
    refused(422, "not_jsonl", b"\x89PNG\r\n\x1a\n" + os.urandom(200), h)
    refused(422, "not_jsonl", b"42\n", h)  # JSON, but not a record
    refused(422, "not_utf8", b"name,id_number\n\xff\xfe\xfa,1\n", auth(idle["issue"]), "?format=csv")
    refused(422, "csv_header", b"a,b\n1,2\n", auth(idle["issue"]), "?format=csv")
    rec = json.loads(good)
    for path in ("/etc/hostname", "../keystore.db", "photo.jpg"):
        body = refused(422, "photo_not_inline", json.dumps({**rec, "photo": path}).encode(), h)
        assert body["errors"][0]["field"] == "photo"
    refused(413, "too_large", good * 8, h)  # over the 60 kB cap of this app
    refused(422, "invalid_idempotency_key", good, {**h, "Idempotency-Key": "key with spaces"})
    refused(401, "unauthorized", good, JSONL)
    refused(403, "insufficient_scope", good, auth(idle["admin"], **JSONL))

    job = c.post("/v1/jobs", content=good, headers=h).json()
    assert job["state"] == "queued"  # this server runs no jobs: it stays queued
    jid = job["job_id"]
    for path in (f"/v1/jobs/{jid}/manifest", f"/v1/jobs/{jid}/result"):
        r = c.get(path, headers=auth(idle["issue"]))
        assert r.status_code == 409 and r.json()["error"] == "job_not_done" and "queued" in r.json()["message_en"]
    for token in ("other", "bound"):  # another tenant's job does not exist for them
        r = c.get(f"/v1/jobs/{jid}", headers=auth(idle[token]))
        assert r.status_code == 404 and r.json()["error"] == "job_not_found"
    assert c.get(f"/v1/jobs/{jid}", headers=auth(idle["admin"])).json()["job_id"] == jid
    assert [j["job_id"] for j in c.get("/v1/jobs", headers=auth(idle["other"])).json()["jobs"]] == []
    r = c.get("/v1/jobs/0123456789abcdef", headers=auth(idle["issue"]))
    assert r.status_code == 404 and "0123456789abcdef" in r.json()["message_zh"] + r.json()["message_en"]
    assert c.get(f"/v1/jobs/{jid}").status_code == 401
    assert c.get(f"/v1/jobs/{jid}/events").status_code == 401
    r = c.get(f"/v1/jobs/{jid}/events?ticket=not-the-ticket")
    assert r.status_code == 403 and r.json()["error"] == "bad_ticket"
    assert c.get("/v1/jobs/0123456789abcdef/events?ticket=x").status_code == 404
    r = c.get("/v1/jobs?limt=5", headers=auth(idle["issue"]))  # a typo is refused, not ignored
    assert r.status_code == 422 and r.json()["error"] == "unknown_parameter" and "limt" in r.json()["message_en"]
    r = c.request("DELETE", "/v1/jobs", headers=auth(idle["issue"]))
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"


def test_event_stream_of_a_waiting_job_sends_heartbeats(idle, monkeypatch):
    from api import routes_jobs

    monkeypatch.setattr(routes_jobs, "SSE_HEARTBEAT_S", 0.3)
    c = idle["client"]
    src = json.dumps({"name": "x"}).encode() + b"\n"
    job = c.post("/v1/jobs", content=src, headers=auth(idle["issue"], **JSONL)).json()
    seen = []
    with c.stream("GET", job["links"]["events"]) as es:
        for line in es.iter_lines():
            seen.append(line)
            if line.startswith(":"):
                break
    assert "event: progress" in seen and json.loads(seen[seen.index("event: progress") + 1][6:])["state"] == "queued"
    assert seen[-1] == ": keep-alive"


# ---------------------------------------------------------------- the lease


def test_one_process_holds_a_job_until_its_lease_expires(tmp_path_factory, tmp_path):
    """Two runners on one database (as two uvicorn workers or two servers): the claim is exclusive,
    the job limit is global, and an expired lease -- a dead server -- hands the job over."""
    from keys.store import KeyStore
    from signer.job_runner import RUNNING, JobQueue

    h = new_home(tmp_path_factory, "lease_home")
    with KeyStore(h["settings"]) as store:
        q = JobQueue(store)

        def submit(n: int):
            up = tmp_path / f"up{n}"
            up.write_bytes(b"{}\n")
            return q.submit(owner="t", idem_key=None, input_sm3=f"{n:064x}", fmt="jsonl", chunk_size=1, output="dir",
                            size=3, total=1, upload=up, jobs_dir=tmp_path / "jobs")[0]

        j1, j2 = submit(1), submit(2)
        t0 = time.time()
        a = q.claim("server-a", 30, max_running=1, now=t0)
        assert a.job_id == j1.job_id and (a.state, a.lease_owner, a.runs) == (RUNNING, "server-a", 1)
        assert q.claim("server-b", 30, max_running=1, now=t0 + 1) is None  # one job at a time, everywhere
        b2 = q.claim("server-b", 30, max_running=2, now=t0 + 1)
        assert b2.job_id == j2.job_id
        assert q.claim("server-b", 30, max_running=5, now=t0 + 2) is None  # both held
        taken = q.claim("server-b", 30, max_running=2, now=t0 + 31)  # server-a stopped renewing
        assert (taken.job_id, taken.lease_owner, taken.runs) == (j1.job_id, "server-b", 2)
        assert not q.renew(j1.job_id, "server-a", 30) and not q.finish(j1.job_id, "server-a", "done")
        assert q.finish(j1.job_id, "server-b", "done") and q.get(j1.job_id).state == "done"


# ---------------------------------------------------------------- real servers


def _serve(home: Path, port: int, env: dict, workers: int = 1):
    cmd = [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--log-level", "warning"]
    proc = live_server.start(cmd, home, {"ECERT_HOME": str(home), "ECERT_SIGN_WORKERS": "0", **env},
                             unset=tuple(k for k in ("PROMETHEUS_MULTIPROC_DIR", "ECERT_DASK_SCHEDULER") if k not in env))
    live_server.wait_ready(proc, f"http://127.0.0.1:{port}", home)
    return proc


def test_kill_9_of_the_whole_server_mid_job_then_restart_finishes_it(tmp_path_factory, tmp_path):
    """uvicorn and its embedded 2-process LocalCluster, killed with SIGKILL as a process group
    mid-job; restarted on the same home (2 uvicorn workers) it resumes the job once the lease expires."""
    h = new_home(tmp_path_factory, "kill_home")
    home, n = h["home"], 60
    src = write_jsonl(tmp_path / "in.jsonl", h["issuer"], n, start=500, bad={510: {"sex": "?"}})
    size0 = log_check(h["settings"]).size
    port = live_server.free_port()
    base, env = f"http://127.0.0.1:{port}", {"ECERT_JOB_LEASE_SECONDS": "2", "ECERT_JOB_WORKERS": "2"}
    proc = _serve(home, port, env)
    try:
        r = httpx.post(base + "/v1/jobs?chunk_size=2", content=src.read_bytes(), headers=auth(h["issue"], **JSONL),
                       timeout=60)
        assert r.status_code == 202, r.text
        url = base + r.json()["links"]["self"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = httpx.get(url, headers=auth(h["issue"]), timeout=10).json()
            if job["processed"] >= 4 or job["state"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert job["state"] == "running" and job["processed"] < n, f"not killed mid-job: {job}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # uvicorn, its workers, the Dask cluster: everything at once
        proc.wait()

    proc = _serve(home, port, env, workers=2)  # two processes race to resume it: one does
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            job = httpx.get(url, headers=auth(h["issue"]), timeout=10).json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.2)
        assert (job["state"], job["done"], job["failed"]) == ("done", n - 1, 1), job
        assert job["runs"] >= 2  # claimed again after the kill
        with httpx.Client(base_url=base, headers=auth(h["issue"]), timeout=60) as c:
            lines = manifest_of(c, job["job_id"], h["issue"])
            zipped = c.get(job["links"]["result"]).content
    finally:
        live_server.stop(proc)
    assert [x["line"] for x in lines] == list(range(1, n + 1))
    assert lines[10]["errors"][0]["field"] == "sex"
    check_output(home / "jobs" / job["job_id"] / "out", lines)  # each identifier once, bytes = manifest SM3
    check_zip(zipped, lines)
    check = log_check(h["settings"])
    assert check.ok, check.problems
    assert check.size == size0 + n - 1  # every good record logged exactly once, kill or not


# ---------------------------------------------------------------- the portal's job page


def test_portal_job_page_uploads_follows_sse_lists_failures_and_offers_the_zip(tmp_path_factory, tmp_path, cluster):
    playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
    from .test_portal import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (scripts/sysdeps.sh)")
    h = new_home(tmp_path_factory, "portal_jobs_home")
    src = write_jsonl(tmp_path / "records.jsonl", h["issuer"], 5, start=700, bad={702: {"id_number": "12"}})
    port = live_server.free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(h["home"], port, {"ECERT_DASK_SCHEDULER": cluster.scheduler_address})  # this test's cluster
    try:
        r = httpx.get(base + "/portal/jobs.html")
        assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
        assert "/portal/jobs.html" in httpx.get(base + "/").text  # linked from the portal

        def with_markup(route):  # a manifest line carrying markup must show as text
            resp = route.fetch()
            extra = json.dumps({"line": 99, "errors": [{"field": XSS, "code": "x", "message_zh": XSS,
                                                        "message_en": XSS}]})
            route.fulfill(response=resp, body=resp.text() + extra + "\n")

        with playwright_sync.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(locale="zh-CN")
                errors, urls = [], []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("request", lambda req: urls.append(req.url))
                page.route("**/manifest?failed=1", with_markup)
                page.goto(base + "/portal/jobs.html")
                page.wait_for_selector("body[data-ready='1']")
                page.fill("#token", h["issue"])
                page.set_input_files("#records", str(src))
                page.click("#start")
                page.wait_for_selector("body[data-finished='1']", timeout=60_000)
                assert page.locator("#job-state").get_attribute("data-state") == "done"
                assert page.locator("#job-state").inner_text() == "已完成"
                assert page.evaluate("[document.getElementById('bar').value, document.getElementById('bar').max]") \
                    == [5, 5]
                assert "已签发 4 · 失败 1 · 共 5" in page.locator("#counts").inner_text()
                rows = page.locator("#failed tr").evaluate_all("rs => rs.map(r => [r.dataset.line, r.dataset.field])")
                assert rows == [["3", "id_number"], ["99", XSS]]
                assert XSS in page.locator("#failed").inner_text() and page.locator("#failed img").count() == 0
                link = page.locator("#download")
                assert link.is_visible() and link.get_attribute("href").startswith("blob:")
                assert link.get_attribute("download").endswith(".zip")
                assert any("/events?ticket=" in u for u in urls)  # progress came by SSE
                page.wait_for_timeout(200)
                assert page.evaluate("window.__xss") is None and errors == []
            finally:
                browser.close()
    finally:
        live_server.stop(proc)
