"""The security review of issue #9, one test (or a cited one) per item; docs/SECURITY.md maps
each item to how it is enforced and to these tests.

* every mutating route needs a scope (found by walking the app's routes, so a new unprotected
  route fails here), and answers 401 / 403 before it reads its body;
* no token, token secret, private key (raw, hex, DER, PEM) or KEK in any log line, error or
  response over a full flow against a real uvicorn logging at DEBUG, access log included --
  and no full ID number in that log (``signer.log_redact`` masks them); no private key in the
  database files after it;
* every upload route refuses an over-limit body with 413 while streaming it (not buffered);
* a record with markup in a name is refused, so only a forged document can carry markup, and
  the portal shows that as text (tests/test_portal.py::test_markup_in_any_field_is_shown_as_text_never_run).
"""

from __future__ import annotations

import base64
import json
import logging
import select
import socket
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from ofd.licence.idcard import mask_id_number

from . import live_server
from .conftest import make_record
from .test_api import _json_record
from .test_keystore import private_forms

ISSUE, BATCH = "/v1/licences", "/v1/licences:batch"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Which scope each state-changing route needs. A new mutating route must need *some* scope
# (test below); add it here to pin which one.
EXPECTED_SCOPE = {
    ("POST", ISSUE): "issue",
    ("POST", BATCH): "issue",
    ("POST", "/v1/licences/{identifier}/revoke"): "admin",
    ("POST", "/v1/licences/{identifier}/cancel"): "admin",
    ("POST", "/v1/keys/rotate"): "admin",
    ("POST", "/v1/keys/{kid}/revoke"): "admin",
}
# POSTs that only compute an answer from the upload and write nothing: public on purpose.
PUBLIC_POSTS = {"/v1/verify", "/v1/qr/verify", "/v1/render"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from api.auth import TokenStore
    from keys.config import load_settings
    from keys.store import KeyStore
    from signer.registry import Registry

    home = tmp_path_factory.mktemp("security_home")
    with KeyStore(load_settings({"ECERT_HOME": str(home)})) as store:
        issuer = store.init_dev().issuer
        Registry(store).close()
    ts = TokenStore(store.settings.database_url)
    issue_tok = ts.create("issuing system", ["issue"])[0]
    admin_tok = ts.create("security team", ["admin"])[0]
    both_tok = ts.create("both", ["issue", "admin"])[0]
    ts.close()
    return {"home": home, "db": home / "keystore.db", "issuer": issuer, "env": {"ECERT_HOME": str(home)},
            "issue": issue_tok, "admin": admin_tok, "both": both_tok}


def app_for(env, **over):
    from api.app import create_app
    from api.settings import load_api_settings

    return create_app(load_api_settings(env["env"], sign_workers=0, **over))


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _dependency_calls(dependant) -> list:
    out = []
    for d in dependant.dependencies:
        out.append(d.call)
        out.extend(_dependency_calls(d))
    return out


def _api_routes(routes, prefix: str = "", deps: tuple = ()):
    """(full path, route, scopes of the dependencies added where its router was included), however deeply
    routers are included (FastAPI keeps included routers as ``_IncludedRouter`` wrappers)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield prefix + r.path, r, deps
        elif hasattr(r, "original_router"):
            ctx = getattr(r, "include_context", None)
            extra = tuple(d.dependency for d in getattr(ctx, "dependencies", ()))
            yield from _api_routes(r.original_router.routes, prefix + getattr(ctx, "prefix", ""), deps + extra)


def mutating_routes(app) -> list[tuple[str, str, list]]:
    """(method, path, dependency callables) of every state-changing method of the app."""
    found = [(m, path, _dependency_calls(r.dependant) + list(deps))
             for path, r, deps in _api_routes(app.routes) for m in r.methods & MUTATING]
    assert found, "no routes found: has FastAPI changed how it keeps them?"
    return sorted(found, key=lambda x: x[:2])


def concrete(path: str) -> str:
    return path.replace("{identifier}", "1.2.156.3005.2.x.y.T1.001.A").replace("{kid}", "0123456789abcdef")


def db_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db, timeout=30) as c:
        return {t: c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("keystore_keys", "keystore_seals", "registry_log", "registry_licences", "api_tokens")}


# ---------------------------------------------------------------- scopes


def test_every_mutating_route_needs_a_scope(env):
    """A route without a scope may only be one of the public, read-only POSTs, or refuse its method (405)."""
    app = app_for(env)
    routes = mutating_routes(app)
    assert {(m, p) for m, p, _ in routes} >= set(EXPECTED_SCOPE)  # the map is not stale
    unscoped = []
    for method, path, calls in routes:
        scopes = {getattr(call, "scope", None) for call in calls} - {None}
        if path in PUBLIC_POSTS:
            assert not scopes, f"{method} {path} is listed as public but needs {scopes}"
        elif not scopes:
            unscoped.append((method, path))
        elif (method, path) in EXPECTED_SCOPE:
            assert scopes == {EXPECTED_SCOPE[(method, path)]}, (method, path, scopes)
    with TestClient(app, raise_server_exceptions=False) as c:
        for method, path in unscoped:
            r = c.request(method, concrete(path), json={})
            assert r.status_code == 405, f"{method} {path} changes state but needs no token scope (api.deps.require_scope)"


def test_mutating_routes_refuse_no_token_and_the_wrong_scope_before_reading_the_body(env):
    before = db_counts(env["db"])
    with TestClient(app_for(env), raise_server_exceptions=False) as c:
        for method, path, calls in mutating_routes(c.app):
            if path in PUBLIC_POSTS or not any(hasattr(call, "scope") for call in calls):
                continue  # public, or a method refused with 405 (previous test)
            url = concrete(path)
            r = c.request(method, url, json={})
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), (path, r.text)
            r = c.request(method, url, json={}, headers=auth("ect_00000000_" + "A" * 43))
            assert r.status_code == 401 and r.json()["error"] == "invalid_token", (path, r.text)
            needed = EXPECTED_SCOPE.get((method, path))
            if needed:
                wrong = env["admin"] if needed == "issue" else env["issue"]
                r = c.request(method, url, json={}, headers=auth(wrong))
                assert r.status_code == 403 and r.json()["error"] == "insufficient_scope", (path, r.text)
                assert r.json()["message_zh"] and needed in r.json()["message_en"]
        for path in PUBLIC_POSTS:  # public, and writing nothing
            assert c.post(path, content=b"not a document", headers={"content-type": "text/plain"}).status_code < 500
    assert db_counts(env["db"]) == before


# Tokens compared in constant time and stored only as SM3:
#   tests/test_api.py::test_token_compare_is_constant_time (every check is one hmac.compare_digest
#   of two 32-byte digests, known id or not) and ::test_tokens_are_stored_only_as_sm3 (oracle SM3,
#   the secret is in no database file).
# Keys encrypted at rest: tests/test_keystore.py::test_database_never_contains_private_key_bytes,
#   ::test_wrapped_key_is_bound_to_its_kid, ::test_wrong_kek_is_refused_and_changes_nothing; and
#   after a full HTTP flow with a rotation, test_full_flow_leaks_no_secret_and_no_id_number below.


# ---------------------------------------------------------------- ID numbers in logs


def test_id_numbers_are_masked_in_every_log_record(caplog):
    from signer import log_redact
    from uvicorn.logging import AccessFormatter

    log_redact.install()
    log_redact.install()  # idempotent
    idn, idx = "110105198503120039", "11010519850312004X"
    ident = f"1.2.156.3005.2.000000000000000000999.11100000ECERT00047.T{idn}.001.A"
    assert log_redact.mask_id_numbers(f"T{idn} {idx}") == "T110105********0039 110105********004X"
    # not ID-shaped: longer digit runs, impossible dates, short numbers
    for keep in ("1101051985031200391", "110105198513120039", "2026112315060312", "kid 0123456789abcdef"):
        assert log_redact.mask_id_numbers(keep) == keep
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("ecert.test.redact")
    log.info("issued %s for %s", ident, {"id_number": idn})
    log.debug(f"inline {idx}")
    try:
        raise ValueError(f"bad licence number T{idn}")
    except ValueError:
        log.exception("failed %d", 3)
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/v1/licences/{ident}/status", "1.1", 200)
    text = caplog.text + "".join(AccessFormatter("%(request_line)s %(status_code)s").format(r) for r in caplog.records
                                 if r.name == "uvicorn.access")
    assert idn not in text and idx not in text and idn[:-1] not in text
    assert "T110105********0039" in text and "110105********004X" in text
    assert f"GET /v1/licences/1.2.156.3005.2.000000000000000000999.11100000ECERT00047.T110105********0039.001.A/status" \
           in text  # the access formatter still unpacks the (masked) arguments


# ---------------------------------------------------------------- a full flow at DEBUG

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelname)s %(name)s %(message)s",
                    "use_colors": False},
        "access": {"()": "uvicorn.logging.AccessFormatter", "use_colors": False,
                   "fmt": '%(levelname)s access %(client_addr)s "%(request_line)s" %(status_code)s'},
    },
    "handlers": {
        "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"},
        "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "": {"handlers": ["default"], "level": "DEBUG"},
        "uvicorn": {"handlers": ["default"], "level": "DEBUG", "propagate": False},
        "uvicorn.access": {"handlers": ["access"], "level": "DEBUG", "propagate": False},
        "sqlalchemy.engine": {"level": "DEBUG"},  # every statement and its parameters
    },
}


def _text_forms(key) -> list[str]:
    return [f.decode("ascii") for f in private_forms(key)[2:]]


def test_full_flow_leaks_no_secret_and_no_id_number(env, tmp_path):
    """Real uvicorn (2 workers), every logger at DEBUG (SQL and its parameters included), access log on."""
    from keys.config import load_settings
    from keys.store import KeyStore
    from ofd.licence.model import validate_record

    home, issuer = env["home"], env["issuer"]
    recs = [_json_record(make_record(issuer.code, issuer.name, seq=s)) for s in (501, 502, 503, 504)]
    ids = [validate_record({**r, "photo": base64.b64decode(r["photo"])}).id_number for r in recs]
    store = KeyStore(load_settings(env["env"]))
    keys = {r.kid: store.private_key(r.kid) for r in store.list_keys() if r.status == "active"}
    (tmp_path / "log.json").write_text(json.dumps(LOG_CONFIG))
    port = live_server.free_port()
    proc = live_server.start(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
         "--log-config", str(tmp_path / "log.json")], home, {"ECERT_HOME": str(home), "ECERT_SIGN_WORKERS": "1"},
        unset=("PROMETHEUS_MULTIPROC_DIR",))
    base = f"http://127.0.0.1:{port}"
    answers: list[httpx.Response] = []
    try:
        live_server.wait_ready(proc, base, home)
        with httpx.Client(base_url=base, timeout=60, event_hooks={"response": [lambda r: answers.append(r)]}) as c:
            r = c.post(ISSUE, json=recs[0], headers=auth(env["issue"]))
            assert r.status_code == 200, r.text
            ident, ofd = r.headers["x-ecert-identifier"], r.content
            assert ids[0] in ident  # why the masking matters: the identifier carries the ID number
            assert c.post(ISSUE + "?format=json", json=recs[1], headers=auth(env["issue"])).status_code == 200
            assert c.post(BATCH, json=recs[2:], headers=auth(env["both"])).status_code == 200
            assert c.post(ISSUE, json={**recs[0], "sex": "?"}, headers=auth(env["issue"])).status_code == 422
            assert c.post(ISSUE, json=recs[0], headers=auth(env["issue"][:-2] + "zz")).status_code == 401
            assert c.post(ISSUE, json=recs[0], headers=auth(env["admin"])).status_code == 403
            assert c.post("/v1/verify", files={"file": ("l.ofd", ofd)}).json()["verdict"] == "valid"
            assert c.get(f"/v1/licences/{ident}/status").json()["status"] == "valid"
            assert c.get(f"/v1/licences/{ident}X/status").status_code == 404
            r = c.post(f"/v1/licences/{ident}/revoke", json={"reason": "unfit"}, headers=auth(env["admin"]))
            assert r.status_code == 200, r.text
            r = c.post("/v1/keys/rotate", json={"issuer_code": issuer.code}, headers=auth(env["admin"]))
            assert r.status_code == 200, r.text
            new_kid = r.json()["new_kid"]
            keys[new_kid] = store.private_key(new_kid)
            assert c.post("/v1/qr/verify", json={"text": "EC1:12345"}).status_code == 200
            for path in ("/v1/trust-list", "/v1/trust-list.sig", "/v1/trust-list/root.pem", "/metrics", "/readyz"):
                assert c.get(path).status_code == 200, path
            r = c.post(f"/v1/keys/{new_kid}/revoke", json={"reason": "keyCompromise"}, headers=auth(env["admin"]))
            assert r.status_code == 200, r.text
            assert c.post("/v1/keys/ffffffffffffffff/revoke", json={"reason": "keyCompromise"},
                          headers=auth(env["admin"])).status_code == 404
            r = c.post(f"/v1/keys/{new_kid}/revoke", json={"reason": "keyCompromise"}, headers=auth(env["admin"]))
            assert r.status_code == 409, r.text  # revoked once: the cut-off cannot be moved later
    finally:
        live_server.stop(proc)
        store.close()
    log = (home / "server.log").read_text(errors="replace")
    assert '"POST /v1/licences HTTP/1.1" 200' in log and "DEBUG" in log and "SELECT" in log  # really at DEBUG
    kek = (home / "kek").read_text().strip()
    # the secret part is everything after "ect_<8 hex>_" (it may itself contain "_")
    secrets = [env["issue"], env["admin"], env["both"], kek] + [t[len("ect_12345678_"):] for t in
                                                                 (env["issue"], env["admin"], env["both"])]
    assert all(len(s) == 43 for s in secrets[4:7])
    secrets += [form for key in keys.values() for form in _text_forms(key)]
    shown = [log] + [r.text if "json" in r.headers.get("content-type", "") or "text" in r.headers.get(
        "content-type", "") else r.content.decode("latin-1") for r in answers]
    shown += [json.dumps(dict(r.headers)) for r in answers]
    for i, s in enumerate(secrets):
        where = [j for j, text in enumerate(shown) if s in text]
        assert not where, f"secret #{i} (of {len(secrets)}) reached a log line or a response: {where}"
    for idn in ids:
        assert idn not in log, "a full ID number reached the server log"
    assert f"T{mask_id_number(ids[0])}" in log  # masked, in the access log's URL
    blob = b"".join(p.read_bytes() for p in home.iterdir() if p.is_file() and p.name.startswith("keystore.db"))
    for key in keys.values():  # at rest: wrapped under the KEK, never in clear
        assert not any(form in blob for form in private_forms(key))


# ---------------------------------------------------------------- request size


def _stream_until_answered(port: int, method: str, path: str, headers: dict, most: int) -> tuple[bytes, int]:
    """Send a chunked body 1 KiB at a time, giving the server a moment after each; stop as soon as it answers.
    Returns (the answer, bytes sent). A server that buffered the body would answer only after ``most``."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{head}\r\n".encode())
        sent = 0
        while sent < most:
            if select.select([s], [], [], 0.01)[0]:
                break
            try:
                s.sendall(b"400\r\n" + b" " * 1024 + b"\r\n")
            except OSError:  # the server answered and closed meanwhile
                break
            sent += 1024
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := s.recv(65536)):
            answer += chunk
        return answer, sent
    finally:
        s.close()


def test_every_upload_route_refuses_an_over_limit_body_while_streaming(env, tmp_path):
    """Real uvicorn, every limit set small: each state-changing or upload route answers 413 to a declared
    over-limit length at once, and to a chunked body as soon as the limit is passed -- long before the end."""
    import dataclasses

    from api.errors import BodyLimit
    from api.settings import ApiSettings

    small = {f.name: 4096 * (i + 1) for i, f in enumerate(dataclasses.fields(ApiSettings)) if f.name.endswith("_bytes")}
    (limits,) = [m.kwargs for m in app_for(env, **small).user_middleware if m.cls is BodyLimit]
    routes = mutating_routes(app_for(env, **small))
    port = live_server.free_port()
    home = env["home"]
    proc = live_server.start(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)], home,
        {"ECERT_HOME": str(home), "ECERT_SIGN_WORKERS": "0", **{f"ECERT_{k.upper()}": str(v) for k, v in small.items()}},
        unset=("PROMETHEUS_MULTIPROC_DIR",))
    try:
        live_server.wait_ready(proc, f"http://127.0.0.1:{port}", home)
        for method, path, calls in routes:
            if path not in PUBLIC_POSTS and not any(hasattr(call, "scope") for call in calls):
                continue  # a method refused with 405 reads no body
            limit = limits["per_path"].get(path, limits["default"])
            assert limit in small.values(), (path, limit)  # every upload is bounded by a setting
            url = concrete(path)
            for media in ("application/json", "application/x-ndjson"):  # a route refusing JSON gets NDJSON
                h = {"Authorization": f"Bearer {env['both']}", "Content-Type": media}
                answer, sent = _stream_until_answered(port, method, url, h, most=1 << 20)
                if not answer.startswith(b"HTTP/1.1 415"):
                    break
            assert answer.startswith(b"HTTP/1.1 413"), (path, answer[:200])
            assert sent < limit + 64 * 1024, (path, sent)  # refused while streaming, not after reading 1 MiB
            r = httpx.request(method, f"http://127.0.0.1:{port}{url}", content=b" " * (limit + 1), headers=h,
                              timeout=30)
            assert r.status_code == 413 and r.json()["error"] == "too_large", (path, r.status_code, r.text[:200])
    finally:
        live_server.stop(proc)


def test_markup_in_a_name_is_refused_so_only_a_forged_document_can_carry_it(env):
    issuer = env["issuer"]
    rec = _json_record(make_record(issuer.code, issuer.name, seq=600, name="<script>alert(1)</script>"))
    with TestClient(app_for(env), raise_server_exceptions=False) as c:
        r = c.post(ISSUE, json=rec, headers=auth(env["issue"]))
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["name"]
    assert "<script>" not in r.headers.get("content-type", "")


def test_revoking_a_revoked_key_again_is_refused_at_once(tmp_path):
    """The revocation that replaces an active key stores a whole-second cut-off, like every other: a
    second revocation a moment later (same second) must not pass as "moving the cut-off earlier"."""
    from keys import rotation
    from keys.config import load_settings
    from keys.store import KeyStore, KeyStoreError

    with KeyStore(load_settings({"ECERT_HOME": str(tmp_path)})) as store:
        kid = store.init_dev().signing.kid
        rec, done = rotation.revoke_key(store, kid, reason="keyCompromise")
        assert rec.status == "revoked" and rec.revoked_at.microsecond == 0 and done is not None
        with pytest.raises(KeyStoreError, match="already revoked"):
            rotation.revoke_key(store, kid, reason="keyCompromise")
