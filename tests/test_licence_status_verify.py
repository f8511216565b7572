"""A revoked or cancelled licence verifies as invalid with the reason and date, whatever its seal says."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from signer.issue import LicenceIssuer
from signer.registry import Registry
from verifier.ofd_verify import verify_ofd
from verifier.trust import trust_from_store

from .conftest import make_record


def _status_check(report):
    return next(c for c in report.checks if c.name == "licence_status")


def test_registry_status_drives_the_verdict(dev_store, dev_issuer):
    trust = trust_from_store(dev_store, at=datetime.now(timezone.utc) + timedelta(minutes=10))
    with Registry(dev_store) as reg:
        li = LicenceIssuer(dev_store, dev_issuer.code)
        out = reg.issue_file(li, make_record(dev_issuer.code, dev_issuer.name, seq=61, name="赵状态"))
        data = out.issued.data
        r = verify_ofd(data, trust)
        assert r.verdict == "valid" and _status_check(r).status == "pass"

        reg.revoke(out.entry.identifier, "fraud", note="test")
        r = verify_ofd(data, trust)
        assert r.verdict == "invalid"
        c = _status_check(r)
        assert c.status == "fail" and "撤销" in c.reason_zh and "revoked" in c.reason_en.lower()

        other = reg.issue_file(li, make_record(dev_issuer.code, dev_issuer.name, seq=62, name="钱注销"))
        reg.cancel(other.entry.identifier, "death")
        r = verify_ofd(other.issued.data, trust)
        assert r.verdict == "invalid" and "注销" in _status_check(r).reason_zh


def test_unregistered_licence_only_warns(dev_store, dev_issuer):
    trust = trust_from_store(dev_store, at=datetime.now(timezone.utc) + timedelta(minutes=10))
    issued = LicenceIssuer(dev_store, dev_issuer.code).issue(make_record(dev_issuer.code, dev_issuer.name, seq=63))
    r = verify_ofd(issued.data, trust)
    assert r.verdict == "valid" and _status_check(r).status == "warn"


def test_the_service_reuses_one_registry_for_every_verification(dev_store, dev_issuer, monkeypatch):
    """Each verification used to open a new Registry (schema inspection, meta read, and on
    PostgreSQL a new engine); the pool process's own registry serves them all."""
    from api.signing_pool import WorkContext

    ctx = WorkContext(dev_store.settings)
    try:
        out = ctx.registry.issue_file(ctx.issuer(dev_issuer.code),
                                      make_record(dev_issuer.code, dev_issuer.name, seq=64, name="孙复用"))
        ctx.registry.revoke(out.entry.identifier, "fraud")
        opened = []
        original = Registry.__init__

        def counting_init(self, store):  # the real constructor, counted
            opened.append(1)
            original(self, store)

        monkeypatch.setattr(Registry, "__init__", counting_init)
        for _ in range(5):
            rep = ctx.verify(out.issued.data)
            assert rep["verdict"] == "invalid"
            assert any(c["name"] == "licence_status" and c["status"] == "fail" for c in rep["checks"])
        assert opened == []
    finally:
        ctx.close()
