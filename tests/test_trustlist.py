"""The root-signed trust list: export, verification against the pinned root, offline licence checks.

Independent checks: the detached signature is verified by the `openssl` CLI and the ETag is
recomputed with the pure-Python `gmssl` SM3.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
import typer
from gmssl import func as oracle_func
from gmssl import sm3 as oracle_sm3
from typer.testing import CliRunner

from api import cli_trust
from api.cli import app as ecert_app
from keys import trustlist as tlmod
from keys.config import load_settings
from keys.store import DEV_ISSUER_CODE, PLATFORM, KeyStore
from keys.trustlist import TrustListError, build_trust_list, canonical_json, load_trust_list
from keys.x509 import Certificate
from signer.issue import LicenceIssuer
from verifier.ofd_verify import verify_ofd
from verifier.trust import TrustConfig

from .conftest import make_record

UTC = dt.timezone.utc
runner = CliRunner()


@pytest.fixture
def store(tmp_path):
    with KeyStore(load_settings({"ECERT_HOME": str(tmp_path / "home")})) as s:
        s.init_dev()
        s.active_kid_ttl = 0
        yield s


@pytest.fixture
def signed(store):
    return build_trust_list(store)


def root_key(store: KeyStore):
    return store.private_key(store.root().kid)


def resign(store: KeyStore, doc, *, raw: bytes | None = None) -> tuple[bytes, bytes]:
    """A list with other content but a valid root signature: only the content checks can catch it."""
    data = raw if raw is not None else canonical_json(doc)
    return data, root_key(store).sign(data)


def trust_cli(home: Path, *args: str):
    sub = typer.Typer()
    sub.add_typer(cli_trust.app, name="trust")
    return runner.invoke(sub, ["trust", *args], env={"ECERT_HOME": str(home), "COLUMNS": "200"})


def test_round_trip_lists_every_key_with_its_state(store, signed):
    tl = load_trust_list(signed.json_bytes, signed.signature, store.root().cert_der)
    records = store.list_keys()
    assert set(tl.keys) == {r.kid for r in records}
    for r in records:
        k = tl.keys[r.kid]
        assert (k.status, k.role, k.issuer, k.cert_der, k.not_before, k.not_after) == (
            r.status, r.role, r.issuer_code, r.cert_der, r.not_before, r.not_after)
    assert [c.der for c in tl.roots] == [store.root().cert_der]
    assert tl.keys[store.active_kid(DEV_ISSUER_CODE)].issuer_name == store.issuer(DEV_ISSUER_CODE).name
    assert tl.revocation(store.active_kid(DEV_ISSUER_CODE)) == tlmod.KeyStatus("active", None, None)
    assert tl.revocation("0000000000000000") is None
    assert tl.next_update - tl.issued_at == dt.timedelta(seconds=tlmod.DEFAULT_MAX_AGE) and tl.is_fresh()
    # canonical bytes, ETag = SM3 of them (independent SM3), HTTP caching headers
    doc = json.loads(signed.json_bytes)
    assert json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() == signed.json_bytes
    assert signed.etag == tl.etag == oracle_sm3.sm3_hash(oracle_func.bytes_to_list(signed.json_bytes))
    assert signed.http_headers() == {"ETag": f'"{signed.etag}"', "Cache-Control": f"public, max-age={signed.max_age}"}
    # PEM pin, Certificate pin and a base64 copy of the signature work too
    pem = Certificate.load(store.root().cert_der).to_pem()
    assert load_trust_list(signed.json_bytes, base64.b64encode(signed.signature), pem).etag == signed.etag
    assert load_trust_list(signed.json_bytes, signed.signature, Certificate.load(pem)).signed_by == store.root().kid


def test_openssl_verifies_the_detached_signature(store, tmp_path):
    res = trust_cli(store.settings.home, "export", "--out", str(tmp_path / "tl.json"), "--root-out",
                    str(tmp_path / "root.pem"))
    assert res.exit_code == 0, res.output
    cmd = ["openssl", "pkeyutl", "-verify", "-certin", "-inkey", str(tmp_path / "root.pem"), "-rawin", "-digest", "sm3",
           "-in", str(tmp_path / "tl.json"), "-sigfile", str(tmp_path / "tl.json.sig"),
           "-pkeyopt", "distid:1234567812345678"]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    (tmp_path / "tl.json").write_bytes((tmp_path / "tl.json").read_bytes().replace(b'"active"', b'"revoked"', 1))
    assert subprocess.run(cmd, capture_output=True).returncode != 0


def test_any_changed_byte_is_rejected(store, signed):
    root = store.root().cert_der
    data, sig = signed.json_bytes, signed.signature
    for i in range(len(data)):
        bad = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
        with pytest.raises(TrustListError, match="does not verify"):
            load_trust_list(bad, sig, root)
    for i in range(len(sig)):
        bad = sig[:i] + bytes([sig[i] ^ 0x01]) + sig[i + 1:]
        with pytest.raises(TrustListError):
            load_trust_list(data, bad, root)
    for cut in (data[:-1], data + b" ", b" " + data):
        with pytest.raises(TrustListError):
            load_trust_list(cut, sig, root)


def test_wrong_root_is_rejected(store, signed, tmp_path):
    with KeyStore(load_settings({"ECERT_HOME": str(tmp_path / "other")})) as other:
        other.init_dev()
        other_root = other.root().cert_der
        foreign = build_trust_list(other)
    with pytest.raises(TrustListError, match="pinned root"):
        load_trust_list(signed.json_bytes, signed.signature, other_root)
    with pytest.raises(TrustListError, match="pinned root"):
        load_trust_list(foreign.json_bytes, foreign.signature, store.root().cert_der)
    signing_cert = store.active_key(DEV_ISSUER_CODE).cert_der
    with pytest.raises(TrustListError, match="not a CA"):
        load_trust_list(signed.json_bytes, signed.signature, signing_cert)
    for junk in (b"", b"not a certificate", None):
        with pytest.raises(TrustListError, match="pinned root"):
            load_trust_list(signed.json_bytes, signed.signature, junk)
    for bad_sig in (b"", None, b"!!not base64!!"):
        with pytest.raises(TrustListError, match="signature"):
            load_trust_list(signed.json_bytes, bad_sig, store.root().cert_der)


def _doc(signed) -> dict:
    return json.loads(signed.json_bytes)


@pytest.mark.parametrize("change, message", [
    (lambda d: None, "canonical"),  # same content, pretty-printed bytes
    (lambda d: d.update(format="x"), "not an ecert-trust-list"),
    (lambda d: d.update(version=2), "not an ecert-trust-list"),
    (lambda d: d.update(signed_by="0" * 16), "names signer"),
    (lambda d: d.update(max_age=0), "max_age"),
    (lambda d: d.update(issued_at="yesterday"), "issued_at"),
    (lambda d: d.update(keys={}), "keys must be a list"),
    (lambda d: d["keys"][2].update(kid="0" * 16), "does not match its certificate"),
    (lambda d: d["keys"][2].update(cert="AAAA"), "not a certificate"),
    (lambda d: d["keys"][2].update(status="lost"), "unknown role"),
    (lambda d: d["keys"][2].update(status="revoked", revoked_at=None), "no revoked_at"),
    (lambda d: d["keys"][2].update(issuer_code=7), "must be text"),
    (lambda d: d["keys"].append(d["keys"][0]), "twice"),
    (lambda d: d["keys"][0].update(status="revoked", revoked_at="2026-01-01T00:00:00Z"), "pinned root .* is revoked"),
    (lambda d: d.update(issued_at="2999-01-01T00:00:00Z"), "in the future"),
])
def test_signed_but_malformed_content_is_rejected(store, signed, change, message):
    doc = _doc(signed)
    change(doc)
    raw = json.dumps(doc, indent=1).encode() if message == "canonical" else None
    data, sig = resign(store, doc, raw=raw)
    with pytest.raises(TrustListError, match=message):
        load_trust_list(data, sig, store.root().cert_der)


def test_duplicate_fields_and_non_json_are_rejected(store):
    for raw in (b'{"format":"a","format":"b"}', b"\xff\xfe", b"[1,2"):
        data, sig = resign(store, None, raw=raw)
        with pytest.raises(TrustListError, match="repeats the field|not UTF-8 JSON"):
            load_trust_list(data, sig, store.root().cert_der)


def test_staleness(store):
    t = dt.datetime(2026, 1, 1, tzinfo=UTC)
    old = build_trust_list(store, now=t, max_age=600)
    later = t + dt.timedelta(seconds=601)
    tl = load_trust_list(old.json_bytes, old.signature, store.root().cert_der, at=later)
    assert not tl.is_fresh(later) and tl.is_fresh(t + dt.timedelta(seconds=600))
    with pytest.raises(TrustListError, match="stale"):
        load_trust_list(old.json_bytes, old.signature, store.root().cert_der, at=later, require_fresh=True)
    for bad in (0, 59, 10**9, "3600"):
        with pytest.raises(TrustListError, match="max_age"):
            build_trust_list(store, max_age=bad)


def test_offline_verification_from_saved_copies(store, tmp_path):
    """Only files: the exported list, its signature and the pinned root. No keystore."""
    home = store.settings.home
    issuer = LicenceIssuer(store, DEV_ISSUER_CODE)
    name = store.issuer(DEV_ISSUER_CODE).name
    kid = store.active_kid(DEV_ISSUER_CODE)
    t0 = store.get_key(kid).not_before
    early = issuer.issue(make_record(DEV_ISSUER_CODE, name, seq=1), when=t0 + dt.timedelta(seconds=1))
    late = issuer.issue(make_record(DEV_ISSUER_CODE, name, seq=2), when=t0 + dt.timedelta(seconds=3))
    before, after = tmp_path / "before", tmp_path / "after"
    for out in (before, after):
        out.mkdir()
    res = trust_cli(home, "export", "-o", str(before / "trustlist.json"), "--root-out", str(tmp_path / "root.pem"))
    assert res.exit_code == 0 and "ETag" in res.output, res.output
    cutoff = (t0 + dt.timedelta(seconds=2)).isoformat()
    res = runner.invoke(ecert_app, ["keys", "revoke", kid, "--at", cutoff, "--reason", "keyCompromise"],
                        env={"ECERT_HOME": str(home)})
    assert res.exit_code == 0, res.output
    assert trust_cli(home, "export", "-o", str(after / "trustlist.json"), "--max-age", "600").exit_code == 0

    def offline(folder: Path) -> TrustConfig:
        tl = load_trust_list((folder / "trustlist.json").read_bytes(), (folder / "trustlist.json.sig").read_bytes(),
                             (tmp_path / "root.pem").read_bytes())
        return TrustConfig(roots=tl.roots, revocation=tl.revocation, at=t0 + dt.timedelta(minutes=1))

    verdicts = {f: [verify_ofd(x.data, offline(f)).verdict for x in (early, late)] for f in (before, after)}
    assert verdicts == {before: ["valid", "valid"], after: ["valid", "invalid"]}
    rep = verify_ofd(early.data, offline(after))
    assert [c.status for c in rep.checks if c.name == "revocation"] == ["warn"]
    tl = load_trust_list((after / "trustlist.json").read_bytes(), (after / "trustlist.json.sig").read_bytes(),
                         (tmp_path / "root.pem").read_bytes())
    assert tl.keys[kid].status == "revoked" and tl.keys[kid].reason == "keyCompromise" and tl.max_age == 600
    assert sum(1 for k in tl.keys.values() if k.issuer == DEV_ISSUER_CODE and k.status == "active") == 1
    assert {k.issuer for k in tl.keys.values() if k.role != "signing"} == {PLATFORM}
    # without the trust list the licence does not chain to anything
    assert verify_ofd(early.data, TrustConfig(at=t0 + dt.timedelta(minutes=1))).verdict == "indeterminate"


def test_trust_cli_verify(store, tmp_path):
    home = store.settings.home
    out = tmp_path / "tl.json"
    assert trust_cli(home, "export", "-o", str(out), "--root-out", str(tmp_path / "root.pem")).exit_code == 0
    res = trust_cli(home, "verify", str(out), "--root", str(tmp_path / "root.pem"), "--require-fresh")
    assert res.exit_code == 0 and "trust list verified" in res.output and "3 active" in res.output, res.output
    out.write_bytes(out.read_bytes().replace(b'"active"', b'"retired"', 1))
    res = trust_cli(home, "verify", str(out), "--root", str(tmp_path / "root.pem"))
    assert res.exit_code == 1 and "does not verify" in res.output and "Traceback" not in res.output
    res = trust_cli(home, "verify", str(out), "--root", str(tmp_path / "missing.pem"))
    assert res.exit_code == 1 and "cannot read" in res.output
    res = trust_cli(home, "export", "--max-age", "5", "-o", str(out))
    assert res.exit_code == 1 and "max_age" in res.output


def test_postgresql_rotation_revocation_and_trust_list(tmp_path, pg_schema):
    """The same life cycle on PostgreSQL (timezone-aware columns, advisory-lock writers)."""
    from keys import rotation

    url = pg_schema.url
    env = {"ECERT_DATABASE_URL": url, "ECERT_KEK": "00112233445566778899aabbccddeeff", "ECERT_HOME": str(tmp_path)}
    with KeyStore(load_settings(env)) as s:
        s.init_dev()
        first = s.active_kid(DEV_ISSUER_CODE)
        r = rotation.rotate(s, DEV_ISSUER_CODE)
        assert r.old.kid == first and s.active_kid(DEV_ISSUER_CODE, max_age=0) == r.new.kid
        cutoff = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
        r2 = rotation.rotate(s, DEV_ISSUER_CODE, revoke=(r.new.kid, cutoff, "keyCompromise"))
        assert s.get_key(r.new.kid).revoked_at == cutoff and r2.old.status == "revoked"
        signed = build_trust_list(s)
        tl = load_trust_list(signed.json_bytes, signed.signature, s.root().cert_der)
        assert {k: v.status for k, v in tl.keys.items() if v.role == "signing"} == {
            first: "retired", r.new.kid: "revoked", r2.new.kid: "active"}
        assert tl.revocation(r.new.kid) == tlmod.KeyStatus("revoked", cutoff, "keyCompromise")
