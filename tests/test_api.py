"""The HTTP API through the real app (FastAPI TestClient): real keystore, real SM2 seals,
signing in a real worker process, verification of what came back."""

from __future__ import annotations

import base64
import hmac
import io
import json
import logging
import sqlite3
import zipfile
from datetime import date, datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from .conftest import make_photo, make_record

ISSUE = "/v1/licences"
BATCH = "/v1/licences:batch"


def _json_record(rec: dict) -> dict:
    out = {k: v.isoformat() if isinstance(v, date) else v for k, v in rec.items()}
    out["photo"] = base64.b64encode(rec["photo"]).decode()
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from keys.config import load_settings
    from keys.store import KeyStore

    home = tmp_path_factory.mktemp("api_home")
    env = {"ECERT_HOME": str(home)}
    store = KeyStore(load_settings(env))
    init = store.init_dev()
    yield {"env": env, "store": store, "issuer": init.issuer, "kid": init.signing.kid, "home": home}
    store.close()


@pytest.fixture(scope="module")
def tokens(env):
    from api.auth import TokenStore

    ts = TokenStore(env["store"].settings.database_url)
    yield ts
    ts.close()


@pytest.fixture(scope="module")
def issue_token(tokens):
    return tokens.create("issuing system", ["issue"])[0]


@pytest.fixture(scope="module")
def client(env):
    """The production path: sealing and verification in a separate signing process."""
    from api.app import create_app
    from api.settings import load_api_settings

    app = create_app(load_api_settings(env["env"], sign_workers=1))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _small_client(env, **over):
    from api.app import create_app
    from api.settings import load_api_settings

    return TestClient(create_app(load_api_settings(env["env"], sign_workers=0, **over)), raise_server_exceptions=False)


def record(env, seq=1, **over):
    return _json_record(make_record(env["issuer"].code, env["issuer"].name, seq=seq, **over))


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def _verify_locally(env, data: bytes):
    from verifier.ofd_verify import verify_ofd
    from verifier.trust import trust_from_store

    return verify_ofd(data, trust_from_store(env["store"]))


# ---------------------------------------------------------------- issuing


def test_issue_returns_a_sealed_ofd_that_verifies(client, env, issue_token):
    r = client.post(ISSUE, json=record(env, 1), headers=auth(issue_token))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/ofd"
    ident = r.headers["x-ecert-identifier"]
    assert ident.startswith("1.2.156.3005.2.") and env["issuer"].code in ident
    assert r.headers["x-ecert-kid"] == env["kid"]
    report = _verify_locally(env, r.content)
    assert report.verdict == "valid", report.to_dict()
    assert report.licence["identifier"].split(".")[:5] == ident.split(".")[:5]  # serial masked in the report
    # the API's own verification agrees
    v = client.post("/v1/verify", files={"file": ("x.ofd", r.content, "application/ofd")})
    assert v.status_code == 200 and v.json()["verdict"] == "valid"
    assert all(c["status"] in ("pass", "warn", "skip") for c in v.json()["checks"])


def test_issue_format_json_carries_the_file_and_its_sm3(client, env, issue_token):
    from gmssl import sm3 as oracle

    r = client.post(ISSUE + "?format=json", json=record(env, 2), headers=auth(issue_token))
    assert r.status_code == 200, r.text
    body = r.json()
    data = base64.b64decode(body["ofd_base64"])
    assert body["size"] == len(data)
    assert body["sm3"] == oracle.sm3_hash(list(data))  # independent SM3
    assert body["licence"]["category"] == "电工作业"
    assert "19850312" not in body["licence"]["id_number"]  # masked in the summary
    assert _verify_locally(env, data).verdict == "valid"


def test_issue_multipart_record_and_photo_file(client, env, issue_token):
    rec = record(env, 3)
    del rec["photo"]
    photo = make_photo("PNG", shade=9)
    r = client.post(ISSUE, headers=auth(issue_token),
                    data={"record": json.dumps(rec, ensure_ascii=False)}, files={"photo": ("p.png", photo, "image/png")})
    assert r.status_code == 200, r.text
    report = _verify_locally(env, r.content)
    assert report.verdict == "valid"


def test_issue_multipart_one_part_per_field(client, env, issue_token):
    rec = record(env, 4)
    photo = base64.b64decode(rec.pop("photo"))
    r = client.post(ISSUE, headers=auth(issue_token), data=rec, files={"photo": ("p.jpg", photo, "image/jpeg")})
    assert r.status_code == 200, r.text


def test_bad_record_gets_every_problem_by_field(client, env, issue_token):
    rec = record(env, 5, sex="X", valid_from="yesterday")
    rec["id_number"] = "110105198503120038"  # wrong GB 11643 check digit
    del rec["name"]
    r = client.post(ISSUE, json=rec, headers=auth(issue_token))
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_record"
    fields = {e["field"] for e in body["errors"]}
    assert {"name", "sex", "valid_from"} <= fields
    assert all(e["message_zh"] and e["message_en"] for e in body["errors"])


def test_malformed_json_is_422_naming_the_body(client, issue_token):
    r = client.post(ISSUE, content=b'{"name": "x",', headers={**auth(issue_token), "content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"] == "malformed_json" and r.json()["errors"][0]["field"] == "body"
    for body in (b"[1, 2]", b'"text"', b"[" * 100_000, b"1" * 10_000, b"\xff\xfe"):
        r = client.post(ISSUE, content=body, headers={**auth(issue_token), "content-type": "application/json"})
        assert r.status_code == 422, (body[:10], r.text)


def test_deeply_nested_values_are_type_errors(client, env, issue_token):
    deep = json.loads("[" * 900 + "]" * 900)
    r = client.post(ISSUE, json={**record(env, 12), "name": deep, "category": {"a": deep}}, headers=auth(issue_token))
    assert r.status_code == 422
    assert {"name", "category"} <= {e["field"] for e in r.json()["errors"]}
    r = client.post(BATCH, json=[{**record(env, 12), "name": deep}], headers=auth(issue_token))
    assert r.status_code == 200


def test_photo_not_base64_names_the_photo(client, env, issue_token):
    r = client.post(ISSUE, json={**record(env, 6), "photo": "not base64!!"}, headers=auth(issue_token))
    assert r.status_code == 422
    assert "photo" in {e["field"] for e in r.json()["errors"]}


def test_unknown_issuer_is_a_field_error(client, env, issue_token):
    from keys.uscc import uscc_check_char

    first17 = "11100000ECERT0010"
    other = first17 + uscc_check_char(first17)
    r = client.post(ISSUE, json={**record(env, 7), "issuer_code": other}, headers=auth(issue_token))
    assert r.status_code == 422, r.text
    assert ("issuer_code", "unknown_issuer") in {(e["field"], e["code"]) for e in r.json()["errors"]}


def test_unsupported_media_type_and_bad_multipart(client, issue_token):
    r = client.post(ISSUE, content=b"name=x", headers={**auth(issue_token), "content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    r = client.post(ISSUE, content=b"--zzz\r\ngarbage", headers={**auth(issue_token),
                                                                  "content-type": "multipart/form-data; boundary=zzz"})
    assert 400 <= r.status_code < 500


# ---------------------------------------------------------------- auth


def test_auth_missing_wrong_and_scope(client, env, tokens):
    rec = record(env, 8)
    r = client.post(ISSUE, json=rec)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"] == "unauthorized"
    token, _ = tokens.create("x", ["issue"])
    wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (wrong_secret, "ect_00000000_" + "A" * 43, "garbage", "", "ect_" + "é" * 60):
        r = client.post(ISSUE, json=rec, headers={"Authorization": f"Bearer {bad}".encode()})
        assert r.status_code == 401, bad
    r = client.post(ISSUE, json=rec, headers={"Authorization": f"Basic {token}"})
    assert r.status_code == 401
    admin, _ = tokens.create("security team", ["admin"])
    r = client.post(ISSUE, json=rec, headers=auth(admin))
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"


def test_revoked_and_expired_tokens_are_refused(client, env, tokens):
    token, info = tokens.create("soon revoked", ["issue"])
    assert client.post(ISSUE, json=record(env, 9), headers=auth(token)).status_code == 200
    tokens.revoke(info.id)
    assert client.post(ISSUE, json=record(env, 9), headers=auth(token)).status_code == 401
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    expired, _ = tokens.create("expired", ["issue"], expires_at=past)
    assert client.post(ISSUE, json=record(env, 9), headers=auth(expired)).status_code == 401


def test_token_bound_to_an_issuer(client, env, tokens):
    from keys.uscc import uscc_check_char

    bound, _ = tokens.create("one issuer", ["issue"], issuer_code=env["issuer"].code)
    assert client.post(ISSUE, json=record(env, 10), headers=auth(bound)).status_code == 200
    other_code = "11100000ECERT0010" + uscc_check_char("11100000ECERT0010")
    elsewhere, _ = tokens.create("other issuer", ["issue"], issuer_code=other_code)
    r = client.post(ISSUE, json=record(env, 10), headers=auth(elsewhere))  # names our issuer, token says other
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "issuer_code"


def test_tokens_are_stored_only_as_sm3(env, tokens):
    from gmssl import sm3 as oracle

    token, info = tokens.create("hash check", ["issue", "admin"])
    db = env["store"].settings.sqlite_path
    con = sqlite3.connect(db)
    try:
        (stored,) = con.execute("SELECT token_sm3 FROM api_tokens WHERE id = ?", (info.id,)).fetchone()
    finally:
        con.close()
    expected = oracle.sm3_hash(list(b"ecert api token v1\x00" + token.encode()))
    assert stored.hex() == expected
    secret = token.rsplit("_", 1)[1].encode()
    for path in db.parent.glob("keystore.db*"):
        assert secret not in path.read_bytes()


def test_token_compare_is_constant_time(tokens, monkeypatch):
    """Every presented token, known id or not, goes through hmac.compare_digest."""
    import api.auth

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(api.auth.hmac, "compare_digest", lambda a, b: calls.append((len(a), len(b))) or real(a, b))
    token, _ = tokens.create("ct", ["issue"])
    assert tokens.authenticate(token) is not None
    assert tokens.authenticate(token[:-1] + ("x" if token[-1] != "x" else "y")) is None
    assert tokens.authenticate("ect_ffffffff_" + "A" * 43) is None
    assert tokens.authenticate("not a token") is None
    assert calls == [(32, 32)] * 4


def test_token_requests_are_checked(tokens):
    from api.auth import TokenError

    for bad in ([], ["root"], ["issue", "superuser"]):
        with pytest.raises(TokenError):
            tokens.create("x", bad)
    with pytest.raises(TokenError):
        tokens.create("", ["issue"])
    with pytest.raises(TokenError):
        tokens.revoke("00000000")


# ---------------------------------------------------------------- limits


def test_body_size_limit_is_413(env, issue_token):
    with _small_client(env, max_upload_bytes=4096) as c:
        big = {**record(env, 11)}  # the photo alone is over 4 KiB
        r = c.post(ISSUE, json=big, headers=auth(issue_token))
        assert r.status_code == 413 and r.json()["error"] == "too_large"

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b"x" * 1000

        r = c.post("/v1/verify", content=chunks(), headers={"content-type": "application/octet-stream"})
        assert r.status_code == 413
        r = c.post("/v1/verify", content=b"x" * 5000)
        assert r.status_code == 413
        assert c.post("/v1/verify", content=b"x" * 100).json()["verdict"] == "invalid"


# ---------------------------------------------------------------- batch


def _unzip(content: bytes) -> tuple[dict[str, bytes], list[dict]]:
    z = zipfile.ZipFile(io.BytesIO(content))
    files = {n: z.read(n) for n in z.namelist()}
    manifest = [json.loads(line) for line in files.pop("manifest.jsonl").decode().splitlines()]
    return files, manifest


def test_batch_one_bad_record_spoils_nothing(client, env, issue_token):
    good1, good2 = record(env, 21), record(env, 22)
    bad = record(env, 23, sex="?")
    r = client.post(BATCH, json=[good1, bad, good2, "not a record", good1], headers=auth(issue_token))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    files, manifest = _unzip(r.content)
    assert [m["record"] for m in manifest] == [1, 2, 3, 4, 5]
    assert "identifier" in manifest[0] and "identifier" in manifest[2]
    assert {e["field"] for e in manifest[1]["errors"]} == {"sex"}
    assert manifest[3]["errors"][0]["field"] == "record"
    assert manifest[4]["errors"][0]["code"] == "duplicate"
    assert sorted(files) == sorted([manifest[0]["file"], manifest[2]["file"]])
    for m in (manifest[0], manifest[2]):
        assert _verify_locally(env, files[m["file"]]).verdict == "valid"


def test_batch_ndjson_names_the_broken_line(client, env, issue_token):
    lines = [json.dumps(record(env, 31)), "{not json", "", json.dumps(record(env, 32))]
    r = client.post(BATCH, content="\n".join(lines).encode(),
                    headers={**auth(issue_token), "content-type": "application/x-ndjson"})
    assert r.status_code == 200
    files, manifest = _unzip(r.content)
    assert len(files) == 2 and len(manifest) == 3
    assert manifest[1]["record"] == 2 and manifest[1]["errors"][0]["code"] == "json_invalid"
    assert manifest[2]["record"] == 4


def test_batch_request_errors(client, env, issue_token):
    h = auth(issue_token)
    assert client.post(BATCH, json={"not": "an array"}, headers=h).status_code == 422
    assert client.post(BATCH, json=[], headers=h).status_code == 422
    assert client.post(BATCH, json=[record(env, 40)]).status_code == 401
    with _small_client(env, max_batch_records=2) as c:
        r = c.post(BATCH, json=[{}, {}, {}], headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "records"


# ---------------------------------------------------------------- verify


def test_verify_tampered_licence_names_the_failing_check(client, env, issue_token):
    data = client.post(ISSUE, json=record(env, 50), headers=auth(issue_token)).content
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for n in src.namelist():
            body = src.read(n)
            if n.endswith("Content.xml") and "Pages" in n:
                body = body.replace("王测试".encode(), "李测试".encode())
                assert "李测试".encode() in body
            dst.writestr(n, body)
    r = client.post("/v1/verify", content=out.getvalue(), headers={"content-type": "application/ofd"})
    assert r.status_code == 200
    body = r.json()
    assert body["verdict"] == "invalid"
    assert "references" in {c["name"] for c in body["checks"] if c["status"] == "fail"}


def test_verify_garbage_is_a_normal_invalid_answer(client):
    for payload in (b"garbage", b"PK\x03\x04" + b"\x00" * 100, bytes(range(256)) * 10):
        r = client.post("/v1/verify", files={"file": ("g.ofd", payload)})
        assert r.status_code == 200
        assert r.json()["verdict"] == "invalid" and r.json()["checks"][0]["status"] == "fail"
    assert client.post("/v1/verify", content=b"").status_code == 422
    r = client.post("/v1/verify", data={"other": "x"}, files={"nope": ("a", b"a")})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "file"


def test_unknown_route_and_method_are_json(client):
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.get("/v1/verify")
    assert r.status_code == 405 and r.json()["message_en"]


# ---------------------------------------------------------------- ops


def _sample(text: str, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_metrics_count_requests_signatures_and_verdicts(client, env, issue_token):
    before = client.get("/metrics").text
    r = client.post(ISSUE, json=record(env, 60), headers=auth(issue_token))
    client.post("/v1/verify", content=r.content)
    client.post("/v1/verify", content=b"junk")
    after = client.get("/metrics")
    assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain")
    text = after.text
    code = env["issuer"].code
    assert _sample(text, "ecert_signatures_total", issuer=code) - _sample(before, "ecert_signatures_total", issuer=code) == 1
    for verdict in ("valid", "invalid"):
        assert _sample(text, "ecert_verifications_total", verdict=verdict) - \
            _sample(before, "ecert_verifications_total", verdict=verdict) == 1
    assert _sample(text, "ecert_http_requests_total", route="/v1/verify", status="200") - \
        _sample(before, "ecert_http_requests_total", route="/v1/verify", status="200") == 2
    assert _sample(text, "ecert_http_request_duration_seconds_count", route="/v1/licences") >= 1


def test_metrics_can_require_admin(env, tokens, issue_token):
    admin, _ = tokens.create("scraper", ["admin"])
    with _small_client(env, metrics_public=False) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=auth(issue_token)).status_code == 403
        assert c.get("/metrics", headers=auth(admin)).status_code == 200


def test_health_and_readiness(client):
    assert client.get("/healthz").json()["status"] == "ok"
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert client.get("/openapi.json").json()["paths"]["/v1/licences:batch"]["post"]
    assert client.get("/docs").status_code == 200


def test_no_token_or_private_key_in_logs(env, tokens, caplog, capfd):
    token, _ = tokens.create("log check", ["issue"])
    key = env["store"].private_key(env["kid"])
    secrets = [token, token.rsplit("_", 1)[1], key.to_bytes().hex(), key.to_pem() if isinstance(key.to_pem(), str)
               else key.to_pem().decode()]
    caplog.set_level(logging.DEBUG)
    with _small_client(env) as c:
        c.post(ISSUE, json=record(env, 70), headers=auth(token))
        c.post(ISSUE, json=record(env, 71, sex="?"), headers=auth(token))
        c.post(ISSUE, json=record(env, 72), headers=auth(token[:-2] + "zz"))
        c.post(BATCH, json=[record(env, 73)], headers=auth(token))
        c.post("/v1/verify", content=b"junk")
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert caplog.records  # something was logged (httpx, sqlalchemy, ...) and checked
    for s in secrets:
        assert s not in logged


def test_cli_tokens_create_list_revoke(env, monkeypatch):
    from typer.testing import CliRunner

    from api.auth import TokenStore
    from api.cli_tokens import app

    monkeypatch.setenv("ECERT_HOME", env["env"]["ECERT_HOME"])
    runner = CliRunner()
    r = runner.invoke(app, ["create", "--scope", "issue", "--name", "clerk desk"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[0]
    assert token.startswith("ect_")
    ts = TokenStore(env["store"].settings.database_url)
    try:
        info = ts.authenticate(token)
        assert info is not None and info.scopes == ("issue",) and info.name == "clerk desk"
        r = runner.invoke(app, ["list", "--json"])
        assert r.exit_code == 0 and token not in r.stdout and token.split("_", 2)[2] not in r.stdout
        assert info.id in {t["id"] for t in json.loads(r.stdout)}
        r = runner.invoke(app, ["revoke", info.id])
        assert r.exit_code == 0 and ts.authenticate(token) is None
        r = runner.invoke(app, ["create", "--scope", "root"])
        assert r.exit_code == 1 and "scopes" in r.output
    finally:
        ts.close()


def test_a_rotated_key_is_used_at_once(tmp_path):
    """Another process rotates the issuer's key: the next licence is sealed with the new one."""
    from api.app import create_app
    from api.auth import TokenStore
    from api.settings import load_api_settings
    from keys.config import load_settings
    from keys.store import KeyStore

    env = {"ECERT_HOME": str(tmp_path)}
    with KeyStore(load_settings(env)) as store:
        init = store.init_dev()
        ts = TokenStore(store.settings.database_url)
        token = ts.create("rotation", ["issue"])[0]
        ts.close()
        rec = _json_record(make_record(init.issuer.code, init.issuer.name))
        with TestClient(create_app(load_api_settings(env, sign_workers=0))) as c:
            assert c.post(ISSUE, json=rec, headers=auth(token)).headers["x-ecert-kid"] == init.signing.kid
            new = store.create_key(init.issuer.code, "signing")
            r = c.post(ISSUE, json=rec, headers=auth(token))
            assert r.status_code == 200 and r.headers["x-ecert-kid"] == new.kid != init.signing.kid
            assert c.post("/v1/verify", content=r.content).json()["verdict"] == "valid"


def test_broken_keystore_is_503_not_500(tmp_path, env):
    """A database that cannot open: every route says 503 (retry later) in JSON, never 500."""
    from api.app import create_app
    from api.settings import load_api_settings

    blocker = tmp_path / "not_a_dir"
    blocker.write_bytes(b"")
    bad = {"ECERT_HOME": str(tmp_path), "ECERT_DATABASE_URL": f"sqlite:///{blocker}/keystore.db"}
    with TestClient(create_app(load_api_settings(bad, sign_workers=0)), raise_server_exceptions=False) as c:
        r = c.post(ISSUE, json=record(env, 80), headers=auth("ect_00000000_" + "A" * 43))
        assert r.status_code == 503 and r.json()["error"] == "unavailable" and r.headers["retry-after"]
        r = c.post("/v1/verify", content=b"junk")
        assert r.status_code == 503 and r.json()["message_en"]
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200


def test_a_crashed_signing_process_is_replaced(env, issue_token):
    """A signing process killed outright (OOM killer, segfault): that request gets 503, the next a licence."""
    import os
    import signal
    import time

    from api.app import create_app
    from api.settings import load_api_settings

    app = create_app(load_api_settings(env["env"], sign_workers=1))
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.post(ISSUE, json=record(env, 90), headers=auth(issue_token)).status_code == 200
        executor = app.state.ecert.pool._executor
        (pid,) = list(executor._processes)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        statuses = []
        while time.monotonic() < deadline:
            r = c.post(ISSUE, json=record(env, 90), headers=auth(issue_token))
            statuses.append(r.status_code)
            if r.status_code == 200:
                break
            assert r.status_code == 503 and r.json()["error"] == "unavailable"
        assert statuses[-1] == 200 and app.state.ecert.pool._executor is not executor


def test_signing_processes_and_the_server_settle_their_heap_at_start(env):
    """Long-lived objects are frozen out of the garbage collector once a process has started
    (api.signing_pool.settle_heap): a full collection of a warmed-up process took ~75 ms and
    showed up as p99 spikes in the soak test. Checked in a real signing process and in the
    server process after its lifespan started."""
    import gc

    from api.app import create_app
    from api.settings import load_api_settings

    before = gc.get_freeze_count()
    app = create_app(load_api_settings(env["env"], sign_workers=1))
    try:
        with TestClient(app):
            child_frozen = app.state.ecert.pool._pool().submit(gc.get_freeze_count).result(timeout=60)
            assert child_frozen > 10_000  # the modules and the WorkContext of the signing process
            assert gc.get_freeze_count() > before  # this (server) process after startup
    finally:
        gc.unfreeze()  # leave the test process as it was
