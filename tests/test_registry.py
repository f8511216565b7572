"""Licence registry: idempotent issuing, versions, 撤销/注销 rules, holder hash, status for the verifier, CLI."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import date

import pytest
from typer.testing import CliRunner

from keys.config import load_settings
from keys.sm3 import sm3
from keys.store import KeyStore
from ofd.licence.identifier import check_char, parse_identifier
from signer.issue import IssuedLicence, LicenceIssuer
from signer.licence_status import Reason, TransitionError, UnknownLicence
from signer.registry import Registry, RegistryError, record_digest

from .conftest import make_record


@dataclass
class Env:
    home: str
    store: KeyStore
    issuer: LicenceIssuer
    reg: Registry
    code: str
    name: str

    def record(self, seq: int = 1, **over) -> dict:
        return make_record(self.code, self.name, seq, **over)

    def issue(self, seq: int = 1, **over):
        return self.reg.issue(self.issuer, self.record(seq, **over))

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.store.settings.sqlite_path)


def open_env(home) -> Env:
    store = KeyStore(load_settings({"ECERT_HOME": str(home)}))
    init = store.init_dev()
    return Env(str(home), store, LicenceIssuer(store, init.issuer.code), Registry(store), init.issuer.code,
               init.issuer.name)


@pytest.fixture(scope="module")
def keystore_template(tmp_path_factory):
    """An initialised keystore with the issuer's seal made, built once and copied per test."""
    home = tmp_path_factory.mktemp("registry_keystore")
    e = open_env(home)
    e.issuer.identity()
    e.reg.close()
    e.store.close()
    return home


@pytest.fixture
def env(keystore_template, tmp_path):
    shutil.copytree(keystore_template, tmp_path / "home")
    e = open_env(tmp_path / "home")
    yield e
    e.reg.close()
    e.store.close()


def count(env: Env, table: str) -> int:
    with env.db() as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# --------------------------------------------------------------------------- issuing and versions

def test_reissuing_the_same_record_is_idempotent(env):
    first = env.issue()
    again = env.issue()
    assert first.created and not again.created and again.issued is None
    assert again.entry == first.entry
    assert (count(env, "registry_licences"), count(env, "registry_log")) == (1, 1)
    e = first.entry
    assert e.version == 1 and e.status == "valid" and e.kid == first.issued.kid
    assert e.file_sm3 == sm3(first.issued.data).hex()
    assert parse_identifier(e.identifier).version == "001"


def test_changed_record_becomes_version_2_and_supersedes_version_1(env):
    v1 = env.issue().entry
    v2 = env.issue(item="高压电工作业").entry
    ident = parse_identifier(v2.identifier)  # checks the check character too
    assert ident.version == "002"
    assert v2.identifier.endswith(".002." + check_char(ident.type_code + ident.issuer_code + ident.serial + "002"))
    assert v2.identifier.rsplit(".", 2)[0] == v1.identifier.rsplit(".", 2)[0]
    old = env.reg.get(v1.identifier)
    assert (old.status, old.superseded_by) == ("superseded", v2.identifier)
    assert env.reg.status(v1.identifier).current == v2.identifier
    # the signed file carries the new identifier
    from verifier.ofd_verify import verify_ofd

    issued = env.reg.issue(env.issuer, env.record(item="高压电工作业", name="王测叁")).issued
    assert verify_ofd(issued.data).licence["identifier"].split(".")[-2] == "003"
    # unchanged again -> the latest version, nothing written
    n = count(env, "registry_log")
    assert env.issue(item="高压电工作业", name="王测叁").entry.version == 3 and count(env, "registry_log") == n


def test_digest_covers_the_data_items_and_photo_but_not_the_version(env):
    from ofd.licence.model import validate_record
    from signer.registry import with_version

    lic = validate_record(env.record())
    assert record_digest(lic) == record_digest(with_version(lic, 7))
    assert record_digest(lic) != record_digest(validate_record(env.record(photo=make_record("x", "y", 9)["photo"])))
    assert record_digest(lic) != record_digest(validate_record(env.record(valid_from=date(2023, 3, 2))))


def test_bulk_registration_and_guards(env):
    made = [env.issuer.issue(env.record(i)) for i in range(2, 7)]
    entries = env.reg.record_issued_many(made + [made[0]])  # a duplicate in the batch is registered once
    assert len(entries) == 6 and entries[0] == entries[-1]
    assert count(env, "registry_log") == 5 and env.reg.verify_log().ok
    other = env.issuer.issue(env.record(9))
    with pytest.raises(RegistryError) as exc:  # the file is not the one the digest names
        env.reg.record_issued(
            IssuedLicence(other.licence, other.data + b"x", other.sm3_hex, other.kid, other.signed_at))
    assert exc.value.code == "file_sm3"
    # a stale plan (version 1 again, different content) is refused, not silently added
    with pytest.raises(TransitionError) as exc:
        env.reg.record_issued(env.issuer.issue(env.record(2, item="高压电工作业")))
    assert exc.value.code == "conflict"
    with pytest.raises(TransitionError) as exc:  # skipping a version is refused too
        env.reg.record_issued(env.issuer.issue(env.reg.plan(env.issuer.issue(env.record(3, name="王改")).licence)
                                               .licence.model_copy(update={"version": 3})))
    assert exc.value.code in ("version", "conflict")
    # the same record signed twice (two workers racing): the first file stays the registered one
    again = env.issuer.issue(made[1].licence, when=made[1].signed_at + dt.timedelta(seconds=5))
    assert again.sm3_hex != made[1].sm3_hex
    assert env.reg.record_issued(again).file_sm3 == made[1].sm3_hex
    assert count(env, "registry_log") == 5


# --------------------------------------------------------------------------- 撤销 / 注销

def test_revoke_then_cancel_and_the_rules(env):
    ident = env.issue().entry.identifier
    r = env.reg.revoke(ident, "accident", at=dt.datetime.now(dt.timezone.utc), note="事故调查报告 2026-17")
    assert (r.status, r.reason, r.note) == ("revoked", "accident", "事故调查报告 2026-17")
    with pytest.raises(TransitionError) as exc:
        env.reg.revoke(ident, Reason.UNFIT)
    assert exc.value.code == "already_revoked"
    c = env.reg.cancel(ident, "after_revocation")
    assert c.status == "cancelled"
    for action, reason in (("cancel", "death"), ("revoke", "fraud")):
        with pytest.raises(TransitionError) as exc:
            getattr(env.reg, action)(ident, reason)
        assert exc.value.code == "already_cancelled"
    st = env.reg.status(ident)
    assert [e.kind for e in st.history] == ["issue", "revoke", "cancel"]
    assert env.reg.verify_log().ok


def test_cancel_rules_on_a_valid_licence(env):
    ident = env.issue().entry.identifier
    with pytest.raises(TransitionError) as exc:
        env.reg.cancel(ident, "after_revocation")
    assert exc.value.code == "not_revoked"
    with pytest.raises(RegistryError) as exc:
        env.reg.cancel(ident, "accident")  # a revocation ground is not a cancellation ground
    assert exc.value.code == "reason" and "own_request" in exc.value.message_en
    with pytest.raises(RegistryError) as exc:
        env.reg.revoke(ident, "bogus")
    assert exc.value.code == "reason" and "撤销原因无效" in exc.value.message_zh
    with pytest.raises(TransitionError) as exc:
        env.reg.revoke(ident, "unfit", at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2))
    assert exc.value.code == "future"
    with pytest.raises(TransitionError) as exc:
        env.reg.revoke(ident, "unfit", at=date(2020, 1, 1))
    assert exc.value.code == "before_issue"
    with pytest.raises(UnknownLicence):
        env.reg.revoke(ident.replace(".001.", ".002."), "unfit")
    assert env.reg.cancel(ident, "own_request").status == "cancelled"
    assert count(env, "registry_log") == 2  # refused changes wrote nothing


def test_superseded_version_cannot_be_revoked_and_revoked_record_is_not_reissued(env):
    v1 = env.issue().entry.identifier
    v2 = env.issue(item="高压电工作业").entry.identifier
    with pytest.raises(TransitionError) as exc:
        env.reg.revoke(v1, "unfit")
    assert exc.value.code == "superseded" and v2 in exc.value.message_en
    env.reg.revoke(v2, "unfit")
    with pytest.raises(TransitionError) as exc:
        env.issue(item="高压电工作业")
    assert exc.value.code == "not_valid"
    assert env.issue(item="高压电工作业", reviewed_on=date(2026, 3, 1)).entry.version == 3  # new exam: new version


def test_fraud_bars_a_new_licence_for_three_years(env):
    ident = env.issue().entry.identifier
    env.reg.revoke(ident, "fraud")
    with pytest.raises(TransitionError) as exc:
        env.issue(name="王新证")
    assert exc.value.code == "reapplication_barred"
    with pytest.raises(TransitionError) as exc:  # the bar is on the person, whatever the licence number
        env.issue(licence_number="X1", item="高压电工作业")
    assert exc.value.code == "reapplication_barred"
    assert env.issue(2).created  # another holder is not affected
    lic = env.issuer.issue(env.record(name="王新证")).licence
    later = date.today().replace(year=date.today().year + 3, day=min(date.today().day, 28))
    assert env.reg.plan(lic, today=later).version == 2


def test_status_for_the_verifier(env):
    ident = env.issue().entry.identifier
    assert env.reg.status_for(ident) == ("valid", None, None, None)
    env.reg.revoke(ident, "accident", at=dt.datetime.now(dt.timezone.utc).date())
    status, zh, en, at = env.reg.status_for(ident)
    assert status == "revoked" and "对发生生产安全事故负有责任" in zh and "第三十条第三项" in zh
    assert "accident" in en and at[:10] in zh and at[:10] in en
    assert env.reg.status_for(ident.replace(".001.", ".005.")) is None
    from signer.registry import status_source

    assert status_source(env.store)(ident)[0] == "revoked"


def test_holder_hash_is_keyed_and_stable(env):
    rec = env.record()
    entry = env.issue().entry
    assert entry.holder_hash != sm3(rec["id_number"].encode()).hex()
    with Registry(env.store) as again:
        assert again.holder_hash(rec["id_number"]) == entry.holder_hash
        assert [e.identifier for e in again.find_by_holder(rec["id_number"])] == [entry.identifier]
    other = open_env(env.home + "_other")
    try:
        assert other.reg.holder_hash(rec["id_number"]) != entry.holder_hash  # per-deployment key
    finally:
        other.reg.close()
        other.store.close()


# --------------------------------------------------------------------------- CLI

@pytest.fixture
def cli_env(env, monkeypatch):
    monkeypatch.setenv("ECERT_HOME", env.home)
    monkeypatch.delenv("ECERT_DATABASE_URL", raising=False)
    return env


def test_cli_status_revoke_cancel(cli_env):
    from api.cli_licences import app

    ident = cli_env.issue().entry.identifier
    run = CliRunner().invoke
    res = run(app, ["status", ident, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["status"] == "valid"
    res = run(app, ["revoke", ident, "--reason", "unfit", "--note", "体检不合格"])
    assert res.exit_code == 0, res.output
    assert "已撤销" in res.output and "身体条件已不适合继续从事特种作业" in res.output
    res = run(app, ["revoke", ident, "--reason", "unfit"])
    assert res.exit_code == 1 and "already revoked" in res.output
    res = run(app, ["cancel", ident, "--reason", "nope"])
    assert res.exit_code == 1 and "注销原因无效" in res.output
    res = run(app, ["cancel", ident, "--reason", "after_revocation", "--at", "not-a-date"])
    assert res.exit_code == 2
    res = run(app, ["cancel", ident, "--reason", "after_revocation", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["status"] == "cancelled"
    res = run(app, ["status", ident])
    assert "已注销" in res.output and "#3" in res.output
    res = run(app, ["status", "1.2.156.3005.2.nothing"])
    assert res.exit_code == 1
    assert "after_revocation" in run(app, ["reasons"]).output


def test_cli_without_a_keystore(tmp_path, monkeypatch):
    from api.cli_log import app

    monkeypatch.setenv("ECERT_HOME", str(tmp_path / "none"))
    monkeypatch.delenv("ECERT_DATABASE_URL", raising=False)
    res = CliRunner().invoke(app, ["verify"])
    assert res.exit_code == 1 and "ecert keys init" in res.output
    assert not (tmp_path / "none").exists()
