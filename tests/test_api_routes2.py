"""Trust list, key rotation/revocation, licence revoke/cancel/status and QR verification through
the real app: real keystore and registry, real SM2, a real signing process for sealing and QR checks."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from fastapi.testclient import TestClient

from .conftest import make_record
from .test_api import _json_record, env, tokens  # noqa: F401 - fixtures: a keystore and token store of our own

TL = "/v1/trust-list"
OTHER_ISSUER = "11100000ECERT0010"


@pytest.fixture(scope="module")
def tok(env, tokens):
    from keys.uscc import uscc_check_char

    other = OTHER_ISSUER + uscc_check_char(OTHER_ISSUER)
    return {"issue": tokens.create("issuing", ["issue"])[0], "admin": tokens.create("security", ["admin"])[0],
            "bound": tokens.create("own issuer", ["admin"], issuer_code=env["issuer"].code)[0],
            "elsewhere": tokens.create("other issuer", ["admin"], issuer_code=other)[0]}


@pytest.fixture(scope="module")
def client(env):
    """Production path: sealing, verification and QR checks in a separate signing process."""
    from api.app import create_app
    from api.settings import load_api_settings

    with TestClient(create_app(load_api_settings(env["env"], sign_workers=1)), raise_server_exceptions=False) as c:
        yield c


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def issue(client, env, tok, seq: int) -> dict:
    rec = _json_record(make_record(env["issuer"].code, env["issuer"].name, seq=seq))
    r = client.post("/v1/licences?format=json", json=rec, headers=auth(tok["issue"]))
    assert r.status_code == 200, r.text
    body = r.json()
    body["data"] = base64.b64decode(body.pop("ofd_base64"))
    return body


def verify(client, data: bytes) -> dict:
    r = client.post("/v1/verify", files={"file": ("x.ofd", data, "application/ofd")})
    assert r.status_code == 200, r.text
    return r.json()


def check(report: dict, name: str) -> dict | None:
    return next((c for c in report["checks"] if c["name"] == name), None)


def active_kid(env) -> str:
    return env["store"].active_key(env["issuer"].code).kid


def fetch_trust_list(client):
    """(verified TrustList, response) — verified with load_trust_list against the served root.pem."""
    from keys.trustlist import load_trust_list

    r = client.get(TL)
    assert r.status_code == 200, r.text
    sig = client.get(TL + ".sig")
    assert sig.status_code == 200 and sig.headers["etag"] == r.headers["etag"]
    assert base64.b64decode(r.headers["x-ecert-signature"]) == sig.content
    root = client.get(TL + "/root.pem")
    assert root.status_code == 200 and root.text.startswith("-----BEGIN CERTIFICATE-----")
    return load_trust_list(r.content, sig.content, root.content), r


# ---------------------------------------------------------------- trust list


def test_trust_list_verifies_against_the_served_root_and_revalidates(client, env):
    tl, r = fetch_trust_list(client)
    assert r.headers["etag"] == f'"{tl.etag}"'
    assert tl.signed_by == env["store"].root().kid
    assert tl.keys[active_kid(env)].status == "active"
    cc = r.headers["cache-control"]
    assert cc.startswith("public, max-age=") and 0 < int(cc.split("=")[1]) <= tl.max_age
    again = client.get(TL)
    assert again.content == r.content  # one list per process while nothing changed
    for header in (r.headers["etag"], f'W/{r.headers["etag"]}', f'"nope", {r.headers["etag"]}', "*"):
        nm = client.get(TL, headers={"If-None-Match": header})
        assert nm.status_code == 304 and nm.content == b"" and nm.headers["etag"] == r.headers["etag"], header
    assert client.get(TL, headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get(TL + ".sig", headers={"If-None-Match": r.headers["etag"]}).status_code == 304


def test_altered_trust_list_fails_against_the_root(client):
    from keys.trustlist import TrustListError, load_trust_list

    r = client.get(TL)
    root = client.get(TL + "/root.pem").content
    with pytest.raises(TrustListError):
        load_trust_list(r.content.replace(b'"active"', b'"retired"', 1), client.get(TL + ".sig").content, root)


def test_trust_list_cache_rebuilds_at_half_its_age_and_on_key_change(env):
    from api.routes_trust import TrustListCache

    cache = TrustListCache(max_age=600)
    now = dt.datetime.now(dt.timezone.utc)
    first = cache.get(env["store"], now)
    assert cache.get(env["store"], now + dt.timedelta(seconds=299)) is first
    later = cache.get(env["store"], now + dt.timedelta(seconds=300))
    assert later is not first and later.etag != first.etag and later.issued_at > first.issued_at


# ---------------------------------------------------------------- key rotation


def test_rotate_needs_an_admin_token_for_that_issuer(client, env, tok):
    body = {"issuer_code": env["issuer"].code}
    r = client.post("/v1/keys/rotate", json=body)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = client.post("/v1/keys/rotate", json=body, headers=auth(tok["issue"]))
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    r = client.post("/v1/keys/rotate", json=body, headers=auth(tok["elsewhere"]))
    assert r.status_code == 403 and r.json()["error"] == "issuer_not_allowed"
    r = client.post("/v1/keys/rotate", json={"issuer_code": "X" * 18}, headers=auth(tok["admin"]))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "issuer_code"
    r = client.post("/v1/keys/rotate", json={**body, "validity_days": 0}, headers=auth(tok["admin"]))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "validity_days"
    r = client.post("/v1/keys/rotate", json={"issuer_code": "platform"}, headers=auth(tok["admin"]))
    assert r.status_code == 409 and r.json()["message_en"]


def test_rotate_then_issue_signs_with_the_new_key(client, env, tok):
    old = active_kid(env)
    tl_before, r_before = fetch_trust_list(client)
    r = client.post("/v1/keys/rotate", json={"issuer_code": env["issuer"].code, "validity_days": 400},
                    headers=auth(tok["bound"]))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["old_kid"] == old and out["old_status"] == "retired" and out["new_kid"] != old
    assert out["new_kid"] == active_kid(env)
    assert env["store"].seal(out["new_kid"]) is not None  # made at once, like `ecert keys rotate`
    issued = issue(client, env, tok, 201)
    assert issued["kid"] == out["new_kid"]
    assert verify(client, issued["data"])["verdict"] == "valid"
    tl, r_after = fetch_trust_list(client)  # keys changed: a new list and ETag at once
    assert r_after.headers["etag"] != r_before.headers["etag"]
    assert tl.keys[old].status == "retired" and tl.keys[out["new_kid"]].status == "active"


# ---------------------------------------------------------------- key revocation


def test_revoke_key_refusals(client, env, tok):
    kid = active_kid(env)
    r = client.post(f"/v1/keys/{kid}/revoke", json={"reason": "keyCompromise"})
    assert r.status_code == 401
    r = client.post(f"/v1/keys/{kid}/revoke", json={"reason": "keyCompromise"}, headers=auth(tok["elsewhere"]))
    assert r.status_code == 403 and r.json()["error"] == "issuer_not_allowed"
    root = env["store"].root().kid
    r = client.post(f"/v1/keys/{root}/revoke", json={"reason": "x"}, headers=auth(tok["bound"]))
    assert r.status_code == 403  # an issuer's token never touches platform keys
    r = client.post("/v1/keys/deadbeef/revoke", json={"reason": "keyCompromise"}, headers=auth(tok["admin"]))
    assert r.status_code == 404 and r.json()["error"] == "unknown_key"
    r = client.post(f"/v1/keys/{kid}/revoke", json={"reason": "x", "at": "2026-05-01T09:00:00"},
                    headers=auth(tok["admin"]))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "at"  # no zone
    for body in ({"reason": "x", "at": "0001-01-01T00:00:00+01:00"}, {"reason": "bad\x01"}, {"reason": ""}):
        r = client.post(f"/v1/keys/{kid}/revoke", json=body, headers=auth(tok["admin"]))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] in ("at", "reason"), body
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).isoformat()
    r = client.post(f"/v1/keys/{kid}/revoke", json={"reason": "x", "at": future}, headers=auth(tok["admin"]))
    assert r.status_code == 409 and "future" in r.json()["message_en"]
    assert active_kid(env) == kid  # nothing changed


def _signed_at(issued: dict) -> dt.datetime:
    return dt.datetime.strptime(issued["signed_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def test_revoked_key_invalidates_what_it_signed_after_the_cutoff(client, env, tok):
    kid = active_kid(env)
    issued = issue(client, env, tok, 202)
    assert issued["kid"] == kid and verify(client, issued["data"])["verdict"] == "valid"
    cutoff = _signed_at(issued) - dt.timedelta(seconds=1)
    r = client.post(f"/v1/keys/{kid}/revoke", headers=auth(tok["admin"]),
                    json={"reason": "keyCompromise", "at": cutoff.isoformat()})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "revoked" and out["reason"] == "keyCompromise" and out["new_kid"] not in (None, kid)
    assert out["revoked_at"] == cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")
    report = verify(client, issued["data"])
    assert report["verdict"] == "invalid"
    assert any(c["status"] == "fail" and kid in c["reason_en"] for c in report["checks"]), report["checks"]
    # the replacement signs and verifies; the trust list says revoked
    fresh = issue(client, env, tok, 203)
    assert fresh["kid"] == out["new_kid"] and verify(client, fresh["data"])["verdict"] == "valid"
    tl, _ = fetch_trust_list(client)
    assert tl.revocation(kid).status == "revoked" and tl.revocation(kid).reason == "keyCompromise"
    # a cut-off can only move earlier
    r = client.post(f"/v1/keys/{kid}/revoke", json={"reason": "again"}, headers=auth(tok["admin"]))
    assert r.status_code == 409 and r.json()["error"] == "key_operation_refused"


# ---------------------------------------------------------------- licence revoke / cancel / status


def test_licence_revoke_cancel_and_public_status(client, env, tok):
    issued = issue(client, env, tok, 204)
    ident = issued["identifier"]
    st = client.get(f"/v1/licences/{ident}/status")
    assert st.status_code == 200 and st.json()["status"] == "valid" and st.json()["reason"] is None
    url = f"/v1/licences/{ident}/revoke"
    assert client.post(url, json={"reason": "accident"}).status_code == 401
    assert client.post(url, json={"reason": "accident"}, headers=auth(tok["issue"])).status_code == 403
    r = client.post(url, json={"reason": "accident"}, headers=auth(tok["elsewhere"]))
    assert r.status_code == 403 and r.json()["error"] == "issuer_not_allowed"
    for bad in ("nonsense", "death"):  # death is a ground for 注销, not 撤销
        r = client.post(url, json={"reason": bad}, headers=auth(tok["admin"]))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason", bad
        assert "accident" in r.json()["message_en"]
    for at in ("tomorrow", "2026-11-23T09:00:00", "9999-12-31T23:59:59-12:00"):  # no zone; no UTC equivalent
        r = client.post(url, json={"reason": "accident", "at": at}, headers=auth(tok["admin"]))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "at", at
    r = client.post(url, json={"reason": "accident", "note": "安监罚〔2026〕12号"}, headers=auth(tok["bound"]))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "revoked" and r.json()["note"] == "安监罚〔2026〕12号"

    body = client.get(f"/v1/licences/{ident}/status").json()
    assert body["status"] == "revoked" and body["reason"] == "accident"
    assert body["reason_zh"] == "对发生生产安全事故负有责任" and body["reason_article"] == "第三十条第三项"
    assert body["status_at"][:10] == dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    assert [h["type"] for h in body["history"]] == ["issue", "revoke"] and body["history"][1]["reason"] == "accident"
    for private in ("holder_hash", "note", "record_digest", "file_sm3", "licence_number", "name", "id_number"):
        assert private not in body, private
    assert "王测试" not in str(body)

    r = client.post(url, json={"reason": "fraud"}, headers=auth(tok["admin"]))
    assert r.status_code == 409 and r.json()["error"] == "already_revoked"
    today = issued["signed_at"][:10]  # a decision date: recorded as that day
    r = client.post(f"/v1/licences/{ident}/cancel", json={"reason": "after_revocation", "at": today},
                    headers=auth(tok["admin"]))
    assert r.status_code == 200, r.text
    body = client.get(f"/v1/licences/{ident}/status").json()
    assert body["status"] == "cancelled" and body["status_at"] == today + "T00:00:00Z"
    assert [h["type"] for h in body["history"]] == ["issue", "revoke", "cancel"]

    report = verify(client, issued["data"])  # the registry check, where the verifier has it
    status_check = check(report, "licence_status")
    if status_check is not None:
        assert status_check["status"] == "fail" and report["verdict"] == "invalid"


def test_cancel_rules_and_unknown_licences(client, env, tok):
    issued = issue(client, env, tok, 205)
    url = f"/v1/licences/{issued['identifier']}/cancel"
    r = client.post(url, json={"reason": "after_revocation"}, headers=auth(tok["admin"]))
    assert r.status_code == 409 and r.json()["error"] == "not_revoked"
    r = client.post(url, json={"reason": "own_request", "at": "2020-01-01"}, headers=auth(tok["admin"]))
    assert r.status_code == 409 and r.json()["error"] == "before_issue"
    r = client.post(url, json={"reason": "own_request"}, headers=auth(tok["admin"]))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["reason_en"] == "cancelled at the holder's request"
    unknown = "1.2.156.3005.2.nope"
    assert client.get(f"/v1/licences/{unknown}/status").status_code == 404
    r = client.post(f"/v1/licences/{unknown}/revoke", json={"reason": "fraud"}, headers=auth(tok["admin"]))
    assert r.status_code == 404 and r.json()["error"] == "unknown_licence" and r.json()["message_zh"]
    assert client.get("/v1/licences/" + "9" * 200 + "/status").status_code == 422


# ---------------------------------------------------------------- QR


def _qr_text(env, seq: int) -> str:
    from ofd.licence.model import validate_record
    from signer.issue import load_identity
    from signer.qr_payload import make_qr_text

    lic = validate_record(make_record(env["issuer"].code, env["issuer"].name, seq=seq))
    return make_qr_text(lic, load_identity(env["store"], env["issuer"].code), portal="https://cert.example.gov.cn")


def test_qr_verify_valid_garbage_and_tampered(client, env):
    text = _qr_text(env, 206)
    r = client.post("/v1/qr/verify", json={"text": text})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "valid", body["checks"]
    assert check(body, "qr_signature")["status"] == "pass" and body["document"]["size"] == len(text)
    r = client.post("/v1/qr/verify", content=text.encode(), headers={"content-type": "text/plain; charset=utf-8"})
    assert r.status_code == 200 and r.json()["verdict"] == "valid"
    digits = text.rsplit(":", 1)
    flipped = digits[0] + ":" + digits[1][:-5] + ("1" if digits[1][-5] != "1" else "2") + digits[1][-4:]
    for bad in ("garbage", "https://cert.example.gov.cn/v#EC1:123", flipped, "\x00" * 10, "EC1:" + "9" * 5000):
        r = client.post("/v1/qr/verify", json={"text": bad})
        assert r.status_code == 200 and r.json()["verdict"] == "invalid", (bad[:40], r.text)
    r = client.post("/v1/qr/verify", content=b"\xff\xfe\xfa", headers={"content-type": "text/plain"})
    assert r.status_code == 200 and r.json()["verdict"] == "invalid"


def test_qr_verify_bad_requests(client):
    for body, ctype, status in ((b"", "text/plain", 422), (b"{}", "application/json", 422),
                                (b'{"text": 5}', "application/json", 422), (b'{"text": "  "}', "application/json", 422),
                                (b"{", "application/json", 422), (b"x", "image/png", 415)):
        r = client.post("/v1/qr/verify", content=body, headers={"content-type": ctype})
        assert r.status_code == status, (body, r.text)
        assert r.json()["message_zh"] and r.json()["message_en"]


def test_qr_of_a_revoked_key_turns_invalid(client, env, tok):
    """The keyring of the signing process is rebuilt when a key is revoked."""
    text = _qr_text(env, 207)
    assert client.post("/v1/qr/verify", json={"text": text}).json()["verdict"] == "valid"
    kid = active_kid(env)
    cutoff = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).isoformat()
    r = client.post(f"/v1/keys/{kid}/revoke", json={"reason": "keyCompromise", "at": cutoff}, headers=auth(tok["admin"]))
    assert r.status_code == 200, r.text
    body = client.post("/v1/qr/verify", json={"text": text}).json()
    assert body["verdict"] == "invalid" and check(body, "revocation")["status"] == "fail"
