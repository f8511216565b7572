"""Licence status and its legal transitions: 撤销 (revocation) and 注销 (cancellation).

Reasons follow 《特种作业人员安全技术培训考核管理规定》 (原安监总局令第30号, as amended):
第三十条 lists the five grounds on which the issuing authority 撤销 a licence (items 4
and 5 also bar a new application for three years); 第三十一条 the three grounds on which
it 注销 one. A new version of a licence (版本号 + 1) supersedes the current one.

`apply` is the one definition of what a log entry does to the registry rows: the
registry uses it when writing, and `ecert log verify` replays the whole log with it and
compares the result with the stored rows, so a row edited behind the log's back is found.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum

from .registry_db import RegistryError

VALID, REVOKED, CANCELLED, SUPERSEDED = "valid", "revoked", "cancelled", "superseded"
STATUS_WORDS = {
    VALID: ("有效", "valid"),
    REVOKED: ("已撤销", "revoked"),
    CANCELLED: ("已注销", "cancelled"),
    SUPERSEDED: ("已换发（被新版本取代）", "superseded by a newer version"),
}
REAPPLY_BAR_YEARS = 3  # 第三十条第二款


class TransitionError(RegistryError):
    """A status change the rules do not allow (cancel twice, revoke a cancelled licence, ...)."""


class UnknownLicence(RegistryError):
    pass


class Reason(Enum):
    """Grounds for 撤销 (action "revoke") and 注销 (action "cancel"), with the article they come from."""

    EXPIRED_WITHOUT_REVIEW = ("expired_without_review", "revoke", "第三十条第一项",
                              "超过特种作业操作证有效期未延期复审", "validity expired without the extended review")
    UNFIT = ("unfit", "revoke", "第三十条第二项",
             "身体条件已不适合继续从事特种作业", "physically no longer fit for the special operation")
    ACCIDENT = ("accident", "revoke", "第三十条第三项",
                "对发生生产安全事故负有责任", "responsible for a work-safety accident")
    FALSE_INFORMATION = ("false_information", "revoke", "第三十条第四项",
                         "特种作业操作证记载虚假信息", "the licence records false information")
    FRAUD = ("fraud", "revoke", "第三十条第五项",
             "以欺骗、贿赂等不正当手段取得", "obtained by deception, bribery or other improper means")
    DEATH = ("death", "cancel", "第三十一条第一项", "特种作业人员死亡", "the holder died")
    OWN_REQUEST = ("own_request", "cancel", "第三十一条第二项",
                   "特种作业人员提出注销申请", "cancelled at the holder's request")
    AFTER_REVOCATION = ("after_revocation", "cancel", "第三十一条第三项",
                        "特种作业操作证被依法撤销", "cancelled after lawful revocation")

    def __new__(cls, code: str, action: str, article: str, zh: str, en: str):
        obj = object.__new__(cls)
        obj._value_ = code
        obj.action, obj.article, obj.zh, obj.en = action, article, zh, en
        return obj

    @property
    def code(self) -> str:
        return self.value

    @property
    def bars_reapplication(self) -> bool:
        return self in (Reason.FALSE_INFORMATION, Reason.FRAUD)

    @classmethod
    def parse(cls, code: "str | Reason", action: str) -> "Reason":
        """The reason named ``code`` for ``action``; a typed error listing the valid codes otherwise."""
        allowed = [r for r in cls if r.action == action]
        found = code if isinstance(code, Reason) else next((r for r in cls if r.value == code), None)
        if found not in allowed:
            word = "撤销" if action == "revoke" else "注销"
            listing = ", ".join(f"{r.value} ({r.zh})" for r in allowed)
            raise RegistryError(f"{word}原因无效：{code}", f"invalid {action} reason {code!r}; use one of: {listing}",
                                "reason")
        return found


def apply(rows: dict[str, dict], entry) -> list[str]:
    """Apply a log ``entry`` (seq, kind, identifier, at, payload) to ``rows`` (identifier -> row dict,
    every row the entry touches already loaded); returns the identifiers changed. Raises TransitionError."""
    kind, ident, p = entry.kind, entry.identifier, entry.payload
    if kind in ("issue", "reissue"):
        if ident in rows:
            raise TransitionError(f"证照 {ident} 已登记", f"licence {ident} is already registered", "duplicate")
        old = p.get("supersedes")
        if (kind == "reissue") != (old is not None):
            raise TransitionError("换发记录缺少原版本", f"{kind} entry of {ident}: 'supersedes' does not fit", "kind")
        changed = [ident]
        if old is not None:
            prev = rows.get(old)
            if prev is None or prev["version"] + 1 != p["version"]:
                raise TransitionError(f"原版本 {old} 不存在或版本号不连续",
                                      f"superseded version {old} is missing or not the previous version", "version")
            if prev["status"] == VALID:
                prev.update(status=SUPERSEDED, status_at=entry.at, superseded_by=ident, last_seq=entry.seq)
                changed.append(old)
        rows[ident] = {
            "identifier": ident, "issuer_code": p["issuer_code"], "licence_number": p["licence_number"],
            "version": p["version"], "record_digest": p["record_digest"], "holder_hash": p["holder_hash"],
            "kid": p["kid"], "file_sm3": p["file_sm3"], "issued_at": p["issued_at"], "status": VALID,
            "reason": None, "status_at": None, "note": None, "superseded_by": None, "last_seq": entry.seq,
        }
        return changed
    if kind not in ("revoke", "cancel"):
        raise TransitionError(f"未知记录类型 {kind}", f"unknown log entry type {kind!r}", "kind")
    row = rows.get(ident)
    if row is None:
        raise UnknownLicence(f"登记簿中没有证照 {ident}", f"no licence {ident} in the registry", "unknown_licence")
    reason = Reason.parse(p.get("reason"), kind)
    _check_transition(row, kind, reason, entry.at)
    row.update(status=REVOKED if kind == "revoke" else CANCELLED, reason=reason.code, status_at=entry.at,
               note=p.get("note"), last_seq=entry.seq)
    return [ident]


def _check_transition(row: dict, kind: str, reason: Reason, at: str) -> None:
    ident, status = row["identifier"], row["status"]
    word_zh, word_en = ("撤销", "revoke") if kind == "revoke" else ("注销", "cancel")
    if status == CANCELLED:
        raise TransitionError(f"证照 {ident} 已注销，不能{word_zh}",
                              f"licence {ident} is already cancelled; cannot {word_en} it", "already_cancelled")
    if status == SUPERSEDED:
        raise TransitionError(f"证照 {ident} 已被新版本 {row['superseded_by']} 取代，请对当前版本操作",
                              f"licence {ident} was superseded by {row['superseded_by']}; act on the current version",
                              "superseded")
    if kind == "revoke" and status == REVOKED:
        raise TransitionError(f"证照 {ident} 已撤销", f"licence {ident} is already revoked", "already_revoked")
    if reason is Reason.AFTER_REVOCATION and status != REVOKED:
        raise TransitionError(f"证照 {ident} 未被撤销，不能以“撤销后注销”为由注销",
                              f"licence {ident} is not revoked: reason after_revocation does not apply", "not_revoked")
    if at[:10] < row["issued_at"][:10]:  # decisions are dated by day
        raise TransitionError(f"{word_zh}时间早于颁发时间 {row['issued_at']}",
                              f"{word_en} time {at} is before the issue time {row['issued_at']}", "before_issue")


def reapplication_barred_until(reason: Reason, revoked_at: str) -> dt.date | None:
    """The day a holder whose licence was revoked under 第三十条第四、五项 may apply again, else None."""
    if not reason.bars_reapplication:
        return None
    d = dt.date.fromisoformat(revoked_at[:10])
    try:
        return d.replace(year=d.year + REAPPLY_BAR_YEARS)
    except ValueError:  # 29 February
        return d.replace(year=d.year + REAPPLY_BAR_YEARS, day=28)
