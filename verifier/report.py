"""The verification report: one verdict and a list of named checks with reasons.

Each check is ``pass`` / ``fail`` / ``warn`` / ``skip`` with a reason in Chinese and
English. The verdict follows from the checks alone:

* ``invalid``        -- some check failed: something is provably wrong;
* ``indeterminate``  -- nothing failed, but some check could not establish trust
                         (unknown root, no signer certificate, unsupported algorithm);
* ``valid``          -- every check passed (warnings allowed) against a trusted root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pass", "fail", "warn", "skip"]
Verdict = Literal["valid", "invalid", "indeterminate"]

VERDICT_WORDS = {
    "valid": ("有效", "valid"),
    "invalid": ("无效", "invalid"),
    "indeterminate": ("无法确认", "indeterminate"),
}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    reason_en: str
    reason_zh: str
    signature: str | None = None  # the signature ID this check belongs to, None for document-level
    undetermined: bool = False  # True: trust could not be established (drives `indeterminate`)

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "status": self.status,
            "reason": f"{self.reason_zh} / {self.reason_en}",
            "reason_zh": self.reason_zh,
            "reason_en": self.reason_en,
        }
        if self.signature is not None:
            d["signature"] = self.signature
        if self.undetermined:
            d["undetermined"] = True
        return d


@dataclass
class SignatureSummary:
    id: str
    type: str
    signer: str | None = None
    issuer_code: str | None = None
    kid: str | None = None
    signed_at: str | None = None
    format: str | None = None  # e.g. "GB/T 38540 v4", "GM/T 0031 v1", "GB/T 35275 CMS", "raw SM2"

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    signatures: list[SignatureSummary] = field(default_factory=list)
    licence: dict | None = None  # data items read back from one of our licences
    verified_at: str | None = None

    def add(self, name: str, status: Status, en: str, zh: str, *, signature: str | None = None,
            undetermined: bool = False) -> Check:
        c = Check(name, status, en, zh, signature, undetermined)
        self.checks.append(c)
        return c

    @property
    def verdict(self) -> Verdict:
        if not self.checks or any(c.status == "fail" for c in self.checks):
            return "invalid"
        if any(c.undetermined for c in self.checks):
            return "indeterminate"
        return "valid"

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def to_dict(self) -> dict:
        zh, en = VERDICT_WORDS[self.verdict]
        d = {
            "verdict": self.verdict,
            "verdict_zh": zh,
            "checks": [c.to_dict() for c in self.checks],
            "signatures": [s.to_dict() for s in self.signatures],
        }
        if self.licence is not None:
            d["licence"] = self.licence
        if self.verified_at:
            d["verified_at"] = self.verified_at
        return d

    def exit_code(self) -> int:
        """CLI convention: 0 valid, 1 invalid, 3 indeterminate (2 = usage / unreadable input)."""
        return {"valid": 0, "invalid": 1, "indeterminate": 3}[self.verdict]
