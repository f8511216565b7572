"""The licence registry: every issued licence, its status, and the log that proves both.

One row per licence version (`registry_licences`): identifier, licence number, holder
ID hash, issuer, key id, SM3 of the signed file, issue time, status. The rows are a
materialised view of the issuance log (`signer.issuance_log`): every change is a log
entry first, `signer.licence_status.apply` turns entries into rows, and `verify_log`
replays the log to find a row edited behind its back.

* Idempotent issuing, keyed on (issuer code, licence number): the SM3 digest of the
  canonical data items (photo by its SM3) decides -- same digest, the existing version
  is returned and nothing is written; a changed record becomes version + 1 (版本号 in
  the GB/T 36904 identifier) and supersedes the previous version.
* The holder's ID number is kept only as HMAC-SM3 under a random per-deployment key
  (`registry_meta`): an 18-digit ID has too little entropy for a plain hash.
* Revocation (撤销) and cancellation (注销) follow Order 30 §§30-31 (`Reason`).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select

from keys.sm3 import hmac_sm3, sm3
from keys.store import KeyStore
from ofd.licence.identifier import make_identifier
from ofd.licence.model import Licence, beijing_today, validate_record

from . import licence_status as ls
from .issuance_log import IssuanceLog, LogCheck, LogEntry, LogProblem, SignedTreeHead, canonical_json
from .licence_status import Reason, TransitionError, UnknownLicence
from .registry_db import LICENCE_COLUMNS, RegistryDB, RegistryError, iso, licences_t, upsert

__all__ = [
    "Registry", "LicenceEntry", "LicenceStatus", "IssuePlan", "IssueOutcome", "Reason", "RegistryError",
    "TransitionError", "UnknownLicence", "record_digest", "with_version", "status_source",
]

_HOLDER_KEY = "holder_hmac_key"
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


def record_digest(lic: Licence) -> str:
    """SM3 (hex) of the licence's canonical data items; the photo enters by its SM3, the version not at all."""
    items = lic.model_dump(mode="json", exclude={"photo", "identifier", "version"})
    return sm3(canonical_json(items)).hex()


def with_version(lic: Licence, version: int) -> Licence:
    """The same licence as version ``version`` (new identifier, same data items)."""
    if lic.version == version:
        return lic
    ident = make_identifier(lic.type_code, lic.issuer_code, lic.licence_number, version)
    return lic.model_copy(update={"version": version, "identifier": ident})


@dataclass(frozen=True)
class LicenceEntry:
    """One registered licence version (no personal data beyond the keyed holder hash)."""

    identifier: str
    issuer_code: str
    licence_number: str
    version: int
    record_digest: str
    holder_hash: str
    kid: str
    file_sm3: str
    issued_at: str
    status: str
    reason: str | None
    status_at: str | None
    note: str | None
    superseded_by: str | None
    last_seq: int

    @property
    def reason_enum(self) -> Reason | None:
        return Reason(self.reason) if self.reason else None

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        zh, en = ls.STATUS_WORDS[self.status]
        d.update(status_zh=zh, status_en=en)
        if self.reason:
            r = Reason(self.reason)
            d.update(reason_zh=r.zh, reason_en=r.en, reason_article=r.article)
        return d


@dataclass(frozen=True)
class LicenceStatus:
    entry: LicenceEntry
    current: str  # identifier of the newest version of this licence
    history: list[LogEntry] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.entry.status

    @property
    def reason(self) -> Reason | None:
        return self.entry.reason_enum

    @property
    def at(self) -> str | None:
        return self.entry.status_at

    def describe(self) -> tuple[str, str]:
        """(zh, en) one-line status, e.g. 已撤销（对发生生产安全事故负有责任，2026-11-23）."""
        zh, en = ls.STATUS_WORDS[self.status]
        r = self.reason
        if r is not None:
            return f"{zh}（{r.zh}，{r.article}，{self.at[:10]}）", f"{en} ({r.en}, {self.at[:10]})"
        if self.status == ls.SUPERSEDED:
            return f"{zh}：{self.entry.superseded_by}", f"{en}: {self.entry.superseded_by}"
        return zh, en


@dataclass(frozen=True)
class IssuePlan:
    version: int
    licence: Licence  # the licence with that version's identifier
    existing: LicenceEntry | None  # set when this exact record is already registered: nothing to issue


@dataclass(frozen=True)
class IssueOutcome:
    entry: LicenceEntry
    issued: object | None  # signer.issue.IssuedLicence when a file was made now, None when already registered
    created: bool


def _row_dict(row) -> dict:
    return {k: row._mapping[k] for k in LICENCE_COLUMNS}


class Registry:
    """Licence registry and issuance log in the keystore's database. Safe across processes."""

    def __init__(self, store: KeyStore):
        self.store = store
        self.db = RegistryDB(store)
        self.log = IssuanceLog(self.db)
        try:
            self._holder_key = self._load_holder_key()
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _load_holder_key(self) -> bytes:
        with self.db.tx() as c:
            key = self.db.get_meta(c, _HOLDER_KEY)
        if key is None:
            with self.db.tx(write=True) as c:  # first run; concurrent first runs take turns
                key = self.db.get_meta(c, _HOLDER_KEY)
                if key is None:
                    key = os.urandom(32)
                    self.db.put_meta(c, {_HOLDER_KEY: key})
        return key

    def holder_hash(self, id_number: str) -> str:
        return hmac_sm3(self._holder_key, id_number.strip().upper().encode("ascii", "replace")).hex()

    # ---- reading

    def _rows(self, c, where) -> list[dict]:
        return [_row_dict(r) for r in c.execute(select(licences_t).where(where).order_by(licences_t.c.version))]

    def get(self, identifier: str) -> LicenceEntry:
        with self.db.tx() as c:
            rows = self._rows(c, licences_t.c.identifier == identifier)
        if not rows:
            raise UnknownLicence(f"登记簿中没有证照 {identifier}", f"no licence {identifier} in the registry",
                                 "unknown_licence")
        return LicenceEntry(**rows[0])

    def versions(self, issuer_code: str, licence_number: str) -> list[LicenceEntry]:
        """Every registered version of a licence, oldest first."""
        with self.db.tx() as c:
            return [LicenceEntry(**r) for r in self._rows(c, self._same_licence(issuer_code, licence_number))]

    @staticmethod
    def _same_licence(issuer_code: str, licence_number: str):
        return and_(licences_t.c.issuer_code == issuer_code, licences_t.c.licence_number == licence_number)

    def find_by_holder(self, id_number: str) -> list[LicenceEntry]:
        with self.db.tx() as c:
            return [LicenceEntry(**r) for r in self._rows(c, licences_t.c.holder_hash == self.holder_hash(id_number))]

    def status(self, identifier: str) -> LicenceStatus:
        entry = self.get(identifier)
        current = self.versions(entry.issuer_code, entry.licence_number)[-1].identifier
        return LicenceStatus(entry, current, self.log.entries(identifier=identifier))

    def status_for(self, identifier: str) -> tuple[str, str | None, str | None, str | None] | None:
        """For the verifier: (status, reason_zh, reason_en, at) of a registered licence, None if unknown."""
        try:
            st = self.status(identifier)
        except UnknownLicence:
            return None
        if st.status == ls.VALID:
            return ls.VALID, None, None, None
        zh, en = st.describe()
        return st.status, zh, en, st.at

    # ---- issuing

    def plan(self, lic: Licence, *, today: dt.date | None = None) -> IssuePlan:
        """Which version ``lic`` must be issued as; ``existing`` set when it is already registered unchanged."""
        self._check_reapplication(lic, today or beijing_today())
        versions = self.versions(lic.issuer_code, lic.licence_number)
        if not versions:
            return IssuePlan(1, with_version(lic, 1), None)
        latest = versions[-1]
        if latest.record_digest == record_digest(lic):
            if latest.status != ls.VALID:
                zh, en = ls.STATUS_WORDS[latest.status]
                raise TransitionError(f"证照 {latest.identifier} {zh}，不能按原内容重新颁发",
                                      f"licence {latest.identifier} is {en}; it cannot be issued again unchanged",
                                      "not_valid")
            return IssuePlan(latest.version, with_version(lic, latest.version), latest)
        if latest.version >= 999:
            raise RegistryError("版本号已达上限 999", "version 999 reached: no further version possible", "version")
        return IssuePlan(latest.version + 1, with_version(lic, latest.version + 1), None)

    def _check_reapplication(self, lic: Licence, today: dt.date) -> None:
        """第三十条第二款: a holder whose licence (any issuer, any item) was revoked for false information
        or fraud gets no new licence for three years."""
        for old in self.find_by_holder(lic.id_number):
            if old.status not in (ls.REVOKED, ls.CANCELLED):
                continue
            for e in self.log.entries(identifier=old.identifier):
                if e.kind != "revoke":
                    continue
                reason = Reason(e.payload["reason"])
                until = ls.reapplication_barred_until(reason, e.at)
                if until and today < until:
                    raise TransitionError(
                        f"持证人的证照 {old.identifier} 因“{reason.zh}”被撤销，{until} 前不得再次申请",
                        f"the holder's licence {old.identifier} was revoked ({reason.code}); no new licence "
                        f"before {until}", "reapplication_barred")

    def record_issued(self, issued) -> LicenceEntry:
        """Register a signed licence (an `IssuedLicence`: .licence, .sm3_hex, .kid, .signed_at)."""
        return self.record_issued_many([issued])[0]

    def record_issued_many(self, issued_list) -> list[LicenceEntry]:
        """Register many signed licences in one transaction (bulk issuing); all or none."""
        prepared = [self._issue_item(i) for i in issued_list]
        if not prepared:
            return []
        with self.db.tx(write=True) as c:
            rows = self._load_for_issue(c, prepared)
            results: dict[str, dict] = {}
            items = []
            batch = self.log.batch(c)
            for lic, item in prepared:
                existing = rows.get(lic.identifier)
                if existing is not None:
                    if existing["record_digest"] != item[3]["record_digest"]:
                        raise TransitionError(
                            f"证照标识 {lic.identifier} 已登记为不同内容", f"identifier {lic.identifier} is already "
                            "registered with different data items (concurrent issue?): plan again", "conflict")
                    results[lic.identifier] = existing
                    continue
                latest = self._latest(rows, lic.issuer_code, lic.licence_number)
                expected = latest["version"] + 1 if latest else 1
                if lic.version != expected:
                    raise TransitionError(f"版本号应为 {expected:03d}",
                                          f"{lic.identifier}: version must be {expected:03d} (plan again)", "version")
                if latest:
                    item[3]["supersedes"] = latest["identifier"]
                    item = ("reissue",) + item[1:]
                items.append(item)
                ls.apply(rows, batch.add(*item))
                results[lic.identifier] = rows[lic.identifier]
            batch.flush()
            upsert(c, licences_t, [rows[k] for k in self._touched(items)])
        return [LicenceEntry(**results[lic.identifier]) for lic, _ in prepared]

    @staticmethod
    def _touched(items: list) -> list[str]:
        out = []
        for kind, ident, _, p in items:
            out.append(ident)
            if p.get("supersedes"):
                out.append(p["supersedes"])
        return list(dict.fromkeys(out))

    @staticmethod
    def _latest(rows: dict, issuer_code: str, number: str) -> dict | None:
        same = [r for r in rows.values() if r["issuer_code"] == issuer_code and r["licence_number"] == number]
        return max(same, key=lambda r: r["version"]) if same else None

    def _load_for_issue(self, c, prepared) -> dict[str, dict]:
        keys = {(lic.issuer_code, lic.licence_number) for lic, _ in prepared}
        where = or_(*(self._same_licence(i, n) for i, n in keys))
        return {r["identifier"]: r for r in self._rows(c, where)}

    def _issue_item(self, issued) -> tuple[Licence, tuple]:
        lic = issued.licence
        data = getattr(issued, "data", None)
        if data is not None and sm3(data).hex() != issued.sm3_hex:
            raise RegistryError("签发文件的 SM3 摘要不符", "the signed file's SM3 does not match sm3_hex", "file_sm3")
        payload = {
            "issuer_code": lic.issuer_code, "licence_number": lic.licence_number, "version": lic.version,
            "record_digest": record_digest(lic), "holder_hash": self.holder_hash(lic.id_number),
            "kid": issued.kid, "file_sm3": issued.sm3_hex, "issued_at": iso(issued.signed_at),
        }
        return lic, ("issue", lic.identifier, iso(issued.signed_at), payload)

    def issue(self, issuer, record, *, when: dt.datetime | None = None, qr_text: str | None = None,
              **validate_opts) -> IssueOutcome:
        """Validate, plan, sign (``issuer``: a `signer.issue.LicenceIssuer`) and register one record.
        An unchanged record that is already registered is not signed again (``created`` False)."""
        lic = record if isinstance(record, Licence) else validate_record(record, **validate_opts)
        plan = self.plan(lic)
        if plan.existing is not None:
            return IssueOutcome(plan.existing, None, False)
        issued = issuer.issue(plan.licence, when=when, qr_text=qr_text)
        entry = self.record_issued(issued)
        if entry.file_sm3 != issued.sm3_hex:  # another process registered the same record first: keep its file
            return IssueOutcome(entry, None, False)
        return IssueOutcome(entry, issued, True)

    def issue_file(self, issuer, record, *, when: dt.datetime | None = None, qr_text: str | None = None,
                   **validate_opts) -> IssueOutcome:
        """Like `issue`, but always hands back a signed file: for a record already registered
        unchanged, a fresh signature over the same licence (same identifier and version) that
        adds no registry row (``created`` False). What issuing systems expect from a retry."""
        lic = record if isinstance(record, Licence) else validate_record(record, **validate_opts)
        out = self.issue(issuer, lic, when=when, qr_text=qr_text)
        if out.issued is None:
            out = IssueOutcome(out.entry, issuer.issue(self.plan(lic).licence, when=when, qr_text=qr_text), False)
        return out

    # ---- status changes

    def revoke(self, identifier: str, reason: Reason | str, *, at: dt.datetime | dt.date | None = None,
               note: str | None = None) -> LicenceEntry:
        """撤销 a licence on one of the grounds of Order 30 §30."""
        return self._change("revoke", identifier, Reason.parse(reason, "revoke"), at, note)

    def cancel(self, identifier: str, reason: Reason | str, *, at: dt.datetime | dt.date | None = None,
               note: str | None = None) -> LicenceEntry:
        """注销 a licence on one of the grounds of Order 30 §31."""
        return self._change("cancel", identifier, Reason.parse(reason, "cancel"), at, note)

    def _change(self, kind: str, identifier: str, reason: Reason, at, note: str | None) -> LicenceEntry:
        when = iso(at)
        if when > iso(dt.datetime.now(dt.timezone.utc) + MAX_CLOCK_SKEW):
            raise TransitionError("时间不得晚于当前时间", f"{kind} time {when} lies in the future", "future")
        if note is not None and (not isinstance(note, str) or len(note) > 500):
            raise RegistryError("备注过长（最多500字）", "note must be text of at most 500 characters", "note")
        payload = {"reason": reason.code, "note": note.strip() if note else None}
        with self.db.tx(write=True) as c:
            rows = {r["identifier"]: r for r in self._rows(c, licences_t.c.identifier == identifier)}
            self.log.append(c, [(kind, identifier, when, payload)], check=lambda e: ls.apply(rows, e))
            upsert(c, licences_t, [rows[identifier]])
        return LicenceEntry(**rows[identifier])

    # ---- the check

    def verify_log(self, pinned: SignedTreeHead | None = None) -> LogCheck:
        """Check the whole log (hashes, chain, tree, head) and that the licence rows are what it says."""
        replayed: dict[str, dict] = {}
        check = self.log.verify(lambda e: ls.apply(replayed, e), pinned)
        if not check.ok:
            return check
        with self.db.tx() as c:
            stored = {r["identifier"]: r for r in self._rows(c, licences_t.c.identifier.isnot(None))}
        problems = []
        for ident in sorted(set(stored) | set(replayed), key=lambda i: (replayed.get(i) or {}).get("last_seq", 0)):
            want, got = replayed.get(ident), stored.get(ident)
            if want == got:
                continue
            cols = sorted(k for k in LICENCE_COLUMNS if (want or {}).get(k) != (got or {}).get(k))
            seq = want["last_seq"] if want else None
            problems.append(_row_problem(seq, ident, want is None, got is None, cols))
        return LogCheck(check.size, check.root, problems)

    def sign_head(self, when: dt.datetime | None = None) -> SignedTreeHead:
        return self.log.sign_head(self.store, when)


def _row_problem(seq, ident, extra: bool, missing: bool, cols: list[str]) -> LogProblem:
    if extra:
        return LogProblem(None, "row_extra", f"登记簿中有日志未记载的证照 {ident}",
                          f"registry row {ident} has no log entry (inserted behind the log)")
    if missing:
        return LogProblem(seq, "row_missing", f"证照 {ident} 的登记记录缺失", f"registry row {ident} was deleted")
    return LogProblem(seq, "row_altered", f"证照 {ident} 的登记记录与日志不符（{', '.join(cols)}）",
                      f"registry row {ident} disagrees with the log in: {', '.join(cols)}")


def status_source(store: KeyStore):
    """A ``status_for(identifier)`` callable for the verifier (one registry, opened lazily)."""
    holder: list[Registry] = []

    def status_for(identifier: str):
        if not holder:
            holder.append(Registry(store))
        return holder[0].status_for(identifier)

    return status_for
