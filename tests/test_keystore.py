"""Keystore: real SQLite files, real SM2 keys and certificates, real SM4-GCM at rest.

Checked from outside the store where it matters: DB bytes are grepped, constraints are
hit with the stdlib `sqlite3`, kids are recomputed with the pure-Python `gmssl` SM3.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from gmssl import func as oracle_func
from gmssl import sm3 as oracle_sm3

from keys import x509
from keys.config import Settings, load_settings
from keys.kek import KekError, parse_kek, unwrap, wrap
from keys.sm4 import DecryptionError
from keys.store import (
    DEV_ISSUER_CODE,
    DEV_ROOT_CN,
    PLATFORM,
    KeyIntegrityError,
    KeyRevoked,
    KeyStore,
    KeyStoreError,
    NoActiveKey,
    UnknownIssuer,
    UnknownKey,
    is_valid_uscc,
)

KEK_A = "00112233445566778899aabbccddeeff"


def settings_for(home: Path, **env: str) -> Settings:
    return load_settings({"ECERT_HOME": str(home), **env})


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home):
    with KeyStore(settings_for(home)) as s:
        s.init_dev()
        yield s


def db_path(s: KeyStore) -> Path:
    return Path(s._engine.url.database)


def state_bytes(home: Path) -> dict[str, bytes]:
    """Every file the keystore keeps under its home (database and any WAL), minus the KEK file."""
    return {p.name: p.read_bytes() for p in sorted(home.iterdir()) if p.name != "kek"}


def private_forms(key) -> list[bytes]:
    d = key.to_bytes()
    der = key.to_der()
    return [d, der, d.hex().encode(), d.hex().upper().encode(), base64.b64encode(der)[:60], key.to_pem()[:80]]


# --------------------------------------------------------------------------- round trip

def test_init_dev_creates_root_seal_maker_issuer_and_signing_key(store):
    root, maker, signing = store.root(), store.seal_maker(), store.active_key(DEV_ISSUER_CODE)
    assert (root.issuer_code, root.role, root.status) == (PLATFORM, "root", "active")
    assert (maker.role, signing.role) == ("seal_maker", "signing")
    root_cert, signing_cert = x509.Certificate.load(root.cert_der), x509.Certificate.load(signing.cert_der)
    assert root_cert.subject_cn == DEV_ROOT_CN and root_cert.is_self_issued
    assert x509.verify_signed_by(signing.cert_der, root.cert_der)
    assert x509.verify_signed_by(maker.cert_der, root.cert_der)
    assert signing.parent_kid == root.kid == maker.parent_kid and root.parent_kid is None
    years = lambda r: r.not_after.year - r.not_before.year  # noqa: E731
    assert (years(root), years(maker), years(signing)) == (20, 10, 3)
    assert (signing.not_before, signing.not_after) == (signing_cert.not_before, signing_cert.not_after)
    [issuer] = store.issuers()
    assert issuer.code == issuer.uscc == DEV_ISSUER_CODE and "开发测试" in issuer.name


def test_signer_round_trip_across_reopen(store, home):
    key, cert_der, rec = store.signer(DEV_ISSUER_CODE)
    sig = key.sign(b"licence bytes")
    assert x509.Certificate.load(cert_der).public_key.verify(b"licence bytes", sig)
    store.close()
    with KeyStore(settings_for(home)) as again:
        reopened = again.private_key(rec.kid)
        assert reopened.to_bytes() == key.to_bytes()
        assert again.get_key(rec.kid) == rec


def test_key_record_holds_no_private_material(store):
    for rec in store.list_keys():
        secret = store.private_key(rec.kid).to_bytes()
        assert "wrapped_key" not in rec.__dataclass_fields__
        assert all(secret not in v for v in vars(rec).values() if isinstance(v, bytes))
        assert secret.hex() not in repr(rec)


def test_kid_is_first_8_bytes_of_sm3_of_certificate(store):
    for rec in store.list_keys():
        expected = oracle_sm3.sm3_hash(oracle_func.bytes_to_list(rec.cert_der))[:16]
        assert rec.kid == expected == x509.Certificate.load(rec.cert_der).kid


# --------------------------------------------------------------------------- encryption at rest

def test_database_never_contains_private_key_bytes(store, home):
    records = store.list_keys()
    keys = [store.private_key(r.kid) for r in records]
    store.close()  # checkpoint the WAL into the file
    blob = b"".join(state_bytes(home).values())
    assert all(r.cert_der in blob for r in records)  # the grep does see what is stored in clear
    for key in keys:
        for form in private_forms(key):
            assert form not in blob


def test_rows_cannot_be_swapped(store):
    a, b = store.root().kid, store.active_key(DEV_ISSUER_CODE).kid
    store.close()
    with sqlite3.connect(db_path(store)) as db:
        wa = db.execute("SELECT wrapped_key FROM keystore_keys WHERE kid=?", (a,)).fetchone()[0]
        wb = db.execute("SELECT wrapped_key FROM keystore_keys WHERE kid=?", (b,)).fetchone()[0]
        db.execute("UPDATE keystore_keys SET wrapped_key=? WHERE kid=?", (wb, a))
        db.execute("UPDATE keystore_keys SET wrapped_key=? WHERE kid=?", (wa, b))
    with KeyStore(store.settings) as again:
        for kid in (a, b):
            with pytest.raises(KeyIntegrityError, match="altered or swapped"):
                again.private_key(kid)


# --------------------------------------------------------------------------- the KEK

def test_wrapped_key_is_bound_to_its_kid():
    kek = bytes.fromhex(KEK_A)
    blob = wrap(kek, "0123456789abcdef", b"s" * 32)
    assert unwrap(kek, "0123456789abcdef", blob) == b"s" * 32
    with pytest.raises(DecryptionError):
        unwrap(kek, "0123456789abcdee", blob)
    with pytest.raises(DecryptionError):
        unwrap(bytes(16), "0123456789abcdef", blob)


def test_missing_kek_file_is_created_0600(home):
    old = os.umask(0)  # the mode must not depend on the caller's umask
    try:
        KeyStore(settings_for(home)).close()
    finally:
        os.umask(old)
    kek_file = home / "kek"
    assert kek_file.stat().st_mode & 0o777 == 0o600
    assert home.stat().st_mode & 0o077 == 0
    assert len(parse_kek(kek_file.read_text(), "test")) == 16


def test_kek_file_elsewhere(tmp_path, home):
    elsewhere = tmp_path / "secrets" / "ecert.kek"
    with KeyStore(settings_for(home, ECERT_KEK_FILE=str(elsewhere))) as s:
        s.init_dev()
    assert elsewhere.stat().st_mode & 0o777 == 0o600
    assert not (home / "kek").exists()


def test_wrong_kek_is_refused_and_changes_nothing(store, home):
    store.close()
    before = state_bytes(home)
    file_kek = (home / "kek").read_text().strip()
    wrong_file = home.parent / "other.kek"
    wrong_file.write_text(KEK_A)
    wrong_file.chmod(0o600)
    for env in ({"ECERT_KEK": KEK_A}, {"ECERT_KEK_FILE": str(wrong_file)}):
        with pytest.raises(KekError) as err:
            KeyStore(settings_for(home, **env))
        message = str(err.value)
        assert "wrong key-encryption key" in message and "密钥加密密钥" in message
        assert KEK_A not in message and file_kek not in message
        assert state_bytes(home) == before


def test_missing_kek_file_for_existing_keystore_is_not_recreated(store, home):
    store.close()
    (home / "kek").unlink()
    before = state_bytes(home)
    with pytest.raises(KekError, match="missing"):
        KeyStore(settings_for(home))
    assert not (home / "kek").exists()
    assert state_bytes(home) == before


def test_unwritable_kek_or_database_location_is_a_clear_error(tmp_path, home):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(KekError, match="cannot create key-encryption key file"):
        KeyStore(settings_for(home, ECERT_KEK_FILE=str(blocker / "kek")))
    with pytest.raises(KeyStoreError, match="cannot open keystore"):
        KeyStore(settings_for(blocker / "home"))


def test_kek_from_env_hex_or_base64(home):
    raw = bytes.fromhex(KEK_A)
    with KeyStore(settings_for(home, ECERT_KEK=KEK_A)) as s:
        kid = s.init_dev().signing.kid
    assert not (home / "kek").exists()  # an env KEK never writes a file
    with KeyStore(settings_for(home, ECERT_KEK=base64.b64encode(raw).decode())) as s:
        assert s.private_key(kid).public_key == x509.Certificate.load(s.get_key(kid).cert_der).public_key


@pytest.mark.parametrize("bad", ["zz", "00112233", KEK_A + "00", base64.b64encode(b"x" * 15).decode()])
def test_malformed_kek_is_a_clear_error(home, bad):
    with pytest.raises(KekError, match="32 hex characters or base64 of 16 bytes") as err:
        KeyStore(settings_for(home, ECERT_KEK=bad))
    assert bad not in str(err.value)


def test_kek_file_readable_by_others_is_refused(store, home):
    store.close()
    (home / "kek").chmod(0o644)
    with pytest.raises(KekError, match="chmod 600"):
        KeyStore(settings_for(home))


def test_settings_repr_hides_the_kek(home):
    s = settings_for(home, ECERT_KEK=KEK_A)
    assert KEK_A not in repr(s) and s.kek == KEK_A


# --------------------------------------------------------------------------- one active key

def _copy_row(db: sqlite3.Connection, kid: str, new_kid: str, status: str) -> None:
    db.execute(
        "INSERT INTO keystore_keys (kid, issuer_code, role, status, parent_kid, cert_der, wrapped_key, "
        "not_before, not_after, created_at) SELECT ?, issuer_code, role, ?, parent_kid, cert_der, wrapped_key, "
        "not_before, not_after, created_at FROM keystore_keys WHERE kid = ?",
        (new_kid, status, kid),
    )


def test_database_refuses_a_second_active_key(store):
    kid = store.active_key(DEV_ISSUER_CODE).kid
    store.close()
    with sqlite3.connect(db_path(store)) as db:
        _copy_row(db, kid, "00000000000000aa", "pending")  # control: a non-active copy is accepted
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            _copy_row(db, kid, "00000000000000bb", "active")
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            db.execute("UPDATE keystore_keys SET status='active' WHERE kid='00000000000000aa'")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute("UPDATE keystore_keys SET status='bogus' WHERE kid='00000000000000aa'")


def test_create_key_retires_the_previous_active_key(store):
    old = store.active_key(DEV_ISSUER_CODE)
    new = store.create_key(DEV_ISSUER_CODE, "signing", validity_days=30)
    assert new.status == "active" and (new.not_after - new.not_before).days == 30
    retired = store.get_key(old.kid)
    assert retired.status == "retired" and retired.retired_at is not None
    assert store.signer(DEV_ISSUER_CODE)[2].kid == new.kid
    assert store.private_key(old.kid)  # retired keys still decrypt (verification, audit)
    pending = store.create_key(DEV_ISSUER_CODE, "signing", activate=False)
    assert pending.status == "pending" and store.active_key(DEV_ISSUER_CODE).kid == new.kid
    assert store.activate(pending.kid).status == "active"
    assert store.get_key(new.kid).status == "retired"
    with pytest.raises(KeyStoreError, match="only a pending key"):
        store.activate(old.kid)


def test_issued_certificate_never_outlives_the_root(store):
    rec = store.create_key(DEV_ISSUER_CODE, "signing", validity_days=365 * 40)
    assert rec.not_after == store.root().not_after


def test_revoked_key_never_leaves_the_store(store):
    kid = store.seal_maker().kid
    with sqlite3.connect(db_path(store)) as db:
        db.execute("UPDATE keystore_keys SET status='revoked' WHERE kid=?", (kid,))
    store._cache.clear()
    with pytest.raises(KeyRevoked):
        store.private_key(kid)


def test_seal_is_kept_once_per_key(store, home):
    kid = store.active_key(DEV_ISSUER_CODE).kid
    assert store.seal(kid) is None
    assert store.put_seal(kid, b"0\x03\x02\x01\x01") == b"0\x03\x02\x01\x01"
    assert store.put_seal(kid, b"another") == b"0\x03\x02\x01\x01"  # first one wins
    store.close()
    with KeyStore(settings_for(home)) as again:
        assert again.seal(kid) == b"0\x03\x02\x01\x01"
        with pytest.raises(UnknownKey):
            again.put_seal("0000000000000000", b"x")
        with pytest.raises(KeyStoreError, match="non-empty"):
            again.put_seal(kid, b"")


# --------------------------------------------------------------------------- idempotence, isolation

def test_init_dev_is_idempotent_and_writes_nothing_the_second_time(store, home):
    first = {r.kid for r in store.list_keys()}
    store.close()
    before = state_bytes(home)
    with KeyStore(settings_for(home)) as again:
        result = again.init_dev()
        assert not result.changed and result.created == ()
        assert {r.kid for r in again.list_keys()} == first
    assert state_bytes(home) == before


def race_first_runs(settings: Settings) -> None:
    """Two first runs at once (KEK file, schema, init_dev): one of each thing, the same for both."""
    results, errors = [], []

    def run():
        try:
            with KeyStore(settings) as s:
                results.append(s.init_dev())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results[0].signing.kid == results[1].signing.kid and results[0].root.kid == results[1].root.kid
    with KeyStore(settings) as s:
        assert [r.role for r in s.list_keys()] == ["root", "seal_maker", "signing"]


def test_concurrent_first_runs_create_one_of_each(home):
    race_first_runs(settings_for(home))


def test_two_homes_side_by_side(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with KeyStore(settings_for(a)) as sa, KeyStore(settings_for(b)) as sb:
        ra, rb = sa.init_dev(), sb.init_dev()
        assert ra.root.kid != rb.root.kid
        assert {r.kid for r in sa.list_keys()}.isdisjoint(r.kid for r in sb.list_keys())
    assert (a / "kek").read_bytes() != (b / "kek").read_bytes()
    crossed = Settings(home=a, database_url=settings_for(a).database_url, kek_file=b / "kek")
    with pytest.raises(KekError):
        KeyStore(crossed)


# --------------------------------------------------------------------------- errors and settings

def test_clear_errors(store):
    with pytest.raises(UnknownIssuer, match="unknown issuer"):
        store.active_key("NOPE")
    with pytest.raises(UnknownKey, match="unknown key id"):
        store.get_key("0000000000000000")
    with pytest.raises(UnknownKey):
        store.private_key("0000000000000000")
    store.add_issuer("EXTRA", "另一个发证机构")
    with pytest.raises(NoActiveKey, match="no active signing key"):
        store.signer("EXTRA")
    with pytest.raises(KeyStoreError, match="already exists"):
        store.add_issuer("EXTRA", "again")
    with pytest.raises(KeyStoreError, match="invalid issuer code"):
        store.add_issuer(PLATFORM, "x")
    with pytest.raises(KeyStoreError, match="invalid issuer code"):
        store.add_issuer("bad code!", "x")
    with pytest.raises(KeyStoreError, match="printable"):
        store.add_issuer("X3", "line\nbreak")
    with pytest.raises(KeyStoreError, match="not a valid 18-character USCC"):
        store.add_issuer("X2", "x", uscc="11100000ECERT00048")
    with pytest.raises(KeyStoreError, match="not allowed"):
        store.create_key("EXTRA", "root")
    with pytest.raises(KeyStoreError, match="positive"):
        store.create_key("EXTRA", "signing", validity_days=0)
    assert store.create_key("EXTRA", "signing").status == "active"


def test_expired_signing_key_does_not_sign(store):
    kid = store.active_key(DEV_ISSUER_CODE).kid
    with sqlite3.connect(db_path(store)) as db:
        db.execute("UPDATE keystore_keys SET not_after='2020-01-01 00:00:00.000000' WHERE kid=?", (kid,))
    with pytest.raises(NoActiveKey, match="expired"):
        store.signer(DEV_ISSUER_CODE)


def test_bad_database_url(home):
    with pytest.raises(KeyStoreError, match="not a database URL"):
        KeyStore(settings_for(home, ECERT_DATABASE_URL="not a url"))


def test_database_url_overrides_home(tmp_path, home):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    with KeyStore(settings_for(home, ECERT_DATABASE_URL=url)) as s:
        s.init_dev()
    assert (tmp_path / "elsewhere.db").exists() and not (home / "keystore.db").exists()


def test_default_home_is_dot_ecert_in_working_directory(tmp_path):
    s = load_settings({}, cwd=tmp_path)
    assert s.home == tmp_path / ".ecert" and s.kek_file == tmp_path / ".ecert" / "kek"
    assert s.database_url == f"sqlite:///{tmp_path / '.ecert' / 'keystore.db'}"
    assert s.sqlite_path == tmp_path / ".ecert" / "keystore.db"
    assert load_settings({"ECERT_DATABASE_URL": "postgresql+psycopg://u@h/db"}).sqlite_path is None


# --------------------------------------------------------------------------- GB 32100

_C = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _gb11714_check(body8: str) -> str:
    value = lambda ch: int(ch) if ch.isdigit() else ord(ch) - 55  # noqa: E731
    r = 11 - sum(value(c) * w for c, w in zip(body8, (3, 7, 9, 10, 5, 8, 4, 2))) % 11
    return {10: "X", 11: "0"}.get(r, str(r))


def test_dev_issuer_uscc_is_syntactically_valid():
    code = DEV_ISSUER_CODE
    assert len(code) == 18 and all(c in _C for c in code)
    # GB 32100 weights are 3^i mod 31; check character = 31 - (sum mod 31)
    total = sum(_C.index(c) * pow(3, i, 31) for i, c in enumerate(code[:17]))
    assert _C[(31 - total % 31) % 31] == code[17]
    assert _gb11714_check(code[8:16]) == code[16]  # the embedded organisation code checks too
    assert is_valid_uscc(code)
    # real codes (STANDARDS.md §1/§2.1) and one altered
    for real in ("11100000000013338W", "11220000013544541J", "11330105002500287C"):
        assert is_valid_uscc(real)
    assert not is_valid_uscc("11100000000013338X") and not is_valid_uscc("short")


# --------------------------------------------------------------------------- PostgreSQL

def test_postgresql_store(tmp_path, pg_schema):
    from sqlalchemy import text

    schema, admin, scoped = pg_schema.schema, pg_schema.admin, pg_schema.url
    env = {"ECERT_DATABASE_URL": scoped, "ECERT_KEK": KEK_A}
    race_first_runs(settings_for(tmp_path, **env))
    with KeyStore(settings_for(tmp_path, **env)) as s:
        first = s.init_dev()
        assert s.init_dev().created == ()
        key, cert, rec = s.signer(DEV_ISSUER_CODE)
        assert x509.Certificate.load(cert).public_key.verify(b"m", key.sign(b"m"))
        assert rec.not_after.tzinfo is not None
        assert s.put_seal(rec.kid, b"seal") == s.put_seal(rec.kid, b"other") == s.seal(rec.kid) == b"seal"
        s.create_key(DEV_ISSUER_CODE, "signing")
        assert s.get_key(first.signing.kid).status == "retired"
    with pytest.raises(KekError):
        KeyStore(settings_for(tmp_path, ECERT_DATABASE_URL=scoped, ECERT_KEK="ff" * 16))
    with admin.begin() as c:
        c.execute(text(f'SET search_path TO "{schema}"'))
        with pytest.raises(Exception, match="uq_keystore_one_active"):
            with c.begin_nested():
                c.execute(text(
                    "INSERT INTO keystore_keys (kid, issuer_code, role, status, cert_der, wrapped_key, "
                    "not_before, not_after, created_at) SELECT 'ffffffffffffffff', issuer_code, role, 'active', "
                    "cert_der, wrapped_key, not_before, not_after, created_at FROM keystore_keys "
                    "WHERE status = 'active' AND role = 'root'"
                ))


def test_cached_key_list_sees_changes_by_any_process_of_the_machine_at_once(store, home):
    """Verifiers read key state from `cached_keys`. A change through the same store, or through
    another store on the same home (another process: CLI, admin route, worker), is seen at once
    (the keys.changed marker); without the marker (another machine) only after the time bound,
    which the test shortens instead of sleeping."""
    from keys.rotation import rotate

    before = {r.kid: r.status for r in store.cached_keys()}
    done = rotate(store, DEV_ISSUER_CODE)  # through this store
    after = {r.kid: r.status for r in store.cached_keys()}
    assert done.new.kid in after and done.new.kid not in before
    assert after[done.old.kid] == "retired"

    with KeyStore(settings_for(home)) as other:  # another process on this machine
        other.revoke(done.old.kid, reason="keyCompromise")
    assert {r.kid: r.status for r in store.cached_keys()}[done.old.kid] == "revoked"

    # another machine: same database, its own home, so no shared marker
    elsewhere = settings_for(home.parent / "elsewhere", ECERT_DATABASE_URL=store.settings.database_url,
                             ECERT_KEK_FILE=str(store.settings.kek_file))
    with KeyStore(elsewhere) as remote:
        newest = rotate(remote, DEV_ISSUER_CODE).new.kid
    assert newest not in {r.kid for r in store.cached_keys()}  # within the bound
    store.active_kid_ttl = 0.0
    assert newest in {r.kid for r in store.cached_keys()}
