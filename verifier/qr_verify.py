"""Verify a licence QR offline (issue 5 §1): the printed URL or the bare ``EC1:`` payload.

Needs only a `Keyring`: the signers' public keys by key id with their status (from the
keystore, `keyring_from_store`, or from the root-signed trust list, `keyring_from_trust_list`).
Checks, in order:
format -> key id known -> SM2 signature -> issuer of the key -> signing time and
certificate validity -> certificate chain (when the keyring holds roots) -> revocation ->
licence validity on the verification day -> specimen marker. The answer is the same
`Report` as for an OFD (verdict, named bilingual checks, ``report.licence``).

Speed: one SM2 verification (~370 µs) dominates. Public keys are parsed once per key (Z_A
and the libcrypto key object are cached on them) and the chain is checked once per key.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

from keys import sm2
from keys.x509 import Certificate, CertificateError, verify_chain
from ofd.licence.model import BEIJING, PLACEHOLDER_TYPE_CODE, Licence
from signer.qr_payload import FORMAT, VERSION, QRData, QRPayloadError, decode_body, from_text, signed_message

from .report import Check, Report, SignatureSummary

SIGNATURE_ID = "qr"
_FORMAT_NAME = f"ecert QR {FORMAT}{VERSION} (SM2)"
_MINUTE = timedelta(minutes=1)
CLOCK_SKEW = timedelta(minutes=5)  # a phone's clock may lag the issuer's: not "signed in the future"


@dataclass(frozen=True, eq=False)
class KeyringEntry:
    """One signing key a verifier trusts, with what it knows of its life cycle."""

    kid: str
    public_key: sm2.PublicKey
    status: str = "active"  # pending | active | retired | revoked
    revoked_at: datetime | None = None
    issuer_code: str | None = None  # whose licences this key may sign
    cert: Certificate | None = None
    reason: str | None = None  # revocation reason

    @classmethod
    def from_cert(cls, cert_der: bytes, **kw) -> "KeyringEntry":
        """From the signer certificate (DER/PEM): kid and public key come from it."""
        cert = Certificate.load(cert_der)
        return cls(kid=cert.kid, public_key=cert.public_key, cert=cert, **kw)


class Keyring:
    """kid -> `KeyringEntry`, plus the roots certificates must chain to (none: the list is the trust).

    Treat it as immutable: per-key checks are cached, so build a new one when the trust list changes."""

    def __init__(self, entries: Iterable[KeyringEntry] = (), roots: Iterable[Certificate] = ()):
        self.entries: dict[str, KeyringEntry] = {e.kid: e for e in entries}
        self.roots: list[Certificate] = list(roots)
        self._key_checks: dict[str, tuple[Check, Check, Check | None]] = {}
        self._lock = threading.Lock()

    def get(self, kid: str) -> KeyringEntry | None:
        return self.entries.get(kid)

    def __len__(self) -> int:
        return len(self.entries)

    def key_checks(self, entry: KeyringEntry) -> tuple[Check, Check, Check | None]:
        """The checks that depend on the key alone, made once per key: (key_id, certificate_chain,
        revocation unless revoked; a revocation depends on the signing time)."""
        got = self._key_checks.get(entry.kid)
        if got is None:
            kid = entry.kid
            status, en, zh = self._check_chain(entry)
            got = (
                _check("key_id", "pass", f"signing key {kid} is in the trust list", f"签名密钥 {kid} 在信任列表中"),
                _check("certificate_chain", status, en, zh, undetermined=status == "warn"),
                _status_check(entry),
            )
            with self._lock:
                self._key_checks[kid] = got
        return got

    def _check_chain(self, entry: KeyringEntry) -> tuple[str, str, str]:
        cert = entry.cert
        if not self.roots:
            return "pass", "key taken from the trust list (no root given to chain to)", "密钥来自信任列表（未提供根证书）"
        if cert is None:
            return "warn", "no certificate for this key: cannot chain it to a root", "缺少该密钥的证书，无法验证证书链"
        # Validity is checked per payload at its signing time: chain at a time inside the leaf's window.
        at = min(max(datetime.now(timezone.utc), cert.not_before), cert.not_after)
        res = verify_chain(cert, self.roots, at=at)
        codes = {e.code for e in res.errors}
        if res.ok or codes <= {"expired", "not_yet_valid"}:
            root = res.chain[-1].subject_cn if res.chain else "?"
            return "pass", f"signer certificate chains to trusted root {root}", f"证书链可信（根证书：{root}）"
        if codes & {"bad_signature", "not_ca", "key_usage", "path_length"}:
            return ("fail", "certificate chain is broken: " + "; ".join(e.message_en for e in res.errors),
                    "证书链无效：" + "；".join(e.message_zh for e in res.errors))
        return "warn", "the signer certificate does not chain to a trusted root", "签名者证书未链接到受信任的根证书"


def _check(name: str, status: str, en: str, zh: str, undetermined: bool = False) -> Check:
    return Check(name, status, en, zh, SIGNATURE_ID, undetermined)


def _status_check(entry: KeyringEntry) -> Check | None:
    kid = entry.kid
    if entry.status == "revoked":
        return None
    if entry.status == "pending":
        return _check("revocation", "warn", f"signing key {kid} was never activated", f"签名密钥 {kid} 尚未启用")
    if entry.status == "retired":
        return _check("revocation", "pass", f"signing key {kid} is retired (no longer signs), not revoked", "签名密钥已停用，未被吊销")
    return _check("revocation", "pass", f"signing key {kid} is in use, not revoked", "签名密钥在用，未被吊销")


_DECODED = _check("qr_format", "pass", f"{_FORMAT_NAME} payload decoded", "二维码数据解码成功")
_SIGNATURE_OK = _check("qr_signature", "pass", "SM2 signature verifies", "SM2 签名验证通过")
_SPECIMEN = _check("specimen", "warn", "issued under the development type code: a specimen, not a real licence",
                   "使用开发测试证照类型代码签发：样证，非正式证照")


def _signing_entry(kid: str, cert_der: bytes, issuer_code: str, status: str, revoked_at, reason) -> KeyringEntry:
    entry = KeyringEntry.from_cert(cert_der, status=status, revoked_at=revoked_at, issuer_code=issuer_code, reason=reason)
    if entry.kid != kid:  # the kid is SM3 of the certificate: a mismatch means a corrupted source
        raise CertificateError(f"key id {kid} does not match its certificate ({entry.kid})", f"密钥标识 {kid} 与证书不符")
    return entry


def keyring_from_store(store) -> Keyring:
    """Every signing key of the keystore (``keys.store.KeyStore``; retired and revoked ones too) and its roots."""
    recs = store.list_keys()
    return Keyring(
        [_signing_entry(r.kid, r.cert_der, r.issuer_code, r.status, r.revoked_at, r.revocation_reason)
         for r in recs if r.role == "signing"],
        [Certificate.load(r.cert_der) for r in recs if r.role == "root" and r.status != "revoked"],
    )


def keyring_from_trust_list(tl) -> Keyring:
    """From a verified ``keys.trustlist.TrustList`` (`load_trust_list` checked its root signature)."""
    return Keyring(
        [_signing_entry(k.kid, k.cert_der, k.issuer, k.status, k.revoked_at, k.reason)
         for k in tl.keys.values() if k.role == "signing"],
        tl.roots,
    )


def _fmt(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


class _QRCheck:
    """One verification; messages reuse the report's strings (this runs thousands of times a second)."""

    def __init__(self, keyring: Keyring, at: datetime):
        self.keyring, self.at = keyring, at
        self.report = Report(verified_at=at.isoformat(timespec="seconds")[:19] + "Z")
        self.view: dict[str, str] = {}

    def add(self, name: str, status: str, en: str, zh: str, undetermined: bool = False) -> None:
        self.report.checks.append(_check(name, status, en, zh, undetermined))

    def run(self, text: str) -> Report:
        try:
            body, sig = from_text(text)
            data = decode_body(body)
        except QRPayloadError as exc:
            self.report.add("qr_format", "fail", f"{exc.message_en} ({exc.code})", exc.message_zh)
            return self.report
        checks = self.report.checks
        checks.append(_DECODED)
        self.report.licence = view = self.view = data.to_dict()
        kid = data.kid
        summary = SignatureSummary(SIGNATURE_ID, "QR", None, data.issuer_code, kid, view["signed_at"], _FORMAT_NAME)
        self.report.signatures.append(summary)
        entry = self.keyring.get(kid)
        if entry is None:
            self.add("key_id", "skip", f"signing key {kid} is not in the trust list (update it?): cannot verify",
                     f"签名密钥 {kid} 不在信任列表中（请更新信任列表），无法验证", undetermined=True)
            return self.report
        summary.signer = entry.cert.subject_cn if entry.cert else entry.issuer_code
        key_check, chain_check, status_check = self.keyring.key_checks(entry)
        checks.append(key_check)
        if not entry.public_key.verify(signed_message(body), sig):
            self.add("qr_signature", "fail", "the SM2 signature does not verify: the QR was altered or forged",
                     "SM2 签名验证失败：二维码内容被篡改或伪造")
            return self.report
        checks.append(_SIGNATURE_OK)
        if entry.issuer_code is not None and entry.issuer_code != data.issuer_code:
            self.add("issuer", "fail", f"key {kid} belongs to issuer {entry.issuer_code}, not to {data.issuer_code}",
                     f"签名密钥属于发证机关 {entry.issuer_code}，而非 {data.issuer_code}")
        self.check_time(entry, data)
        checks.append(chain_check)
        if status_check is not None:
            checks.append(status_check)
        else:
            self.check_revoked(entry, data)
        self.check_licence(data)
        return self.report

    def check_time(self, entry: KeyringEntry, data: QRData) -> None:
        t, shown = data.signed_at, self.view["signed_at"]
        if t > self.at + CLOCK_SKEW:
            self.add("signing_time", "fail", f"signing time {shown} lies in the future", f"签名时间 {shown} 晚于验证时间")
        cert = entry.cert
        if cert is None:
            return
        # the payload keeps whole minutes: the certificate's first minute counts as inside
        if cert.not_before - _MINUTE < t <= cert.not_after:
            self.add("signer_cert_validity", "pass", f"signer certificate valid at signing time {shown}",
                     "签名时签名者证书在有效期内")
        else:
            self.add("signer_cert_validity", "fail",
                     f"signer certificate not valid at signing time {shown} "
                     f"(valid {_fmt(cert.not_before)} – {_fmt(cert.not_after)})", "签名时签名者证书不在有效期内")

    def check_revoked(self, entry: KeyringEntry, data: QRData) -> None:
        rev, kid, why = entry.revoked_at, entry.kid, entry.reason or "no reason given"
        # whole minutes: the QR was surely signed before rev only if its minute ended by then
        if rev is None or data.signed_at > rev - _MINUTE:
            when = _fmt(rev) if rev else "an unknown time"
            self.add("revocation", "fail", f"signing key {kid} was revoked at {when}, not after this QR was signed ({why})",
                     f"签名密钥已于 {when if rev else '未知时间'} 吊销，二维码签署不早于吊销时间")
        else:
            self.add("revocation", "warn", f"signing key {kid} was revoked later, at {_fmt(rev)} ({why}); "
                     "the QR was signed before", f"签名密钥于签署之后（{_fmt(rev)}）被吊销")

    def check_licence(self, data: QRData) -> None:
        v = self.view
        day = self.at.astimezone(BEIJING).date()
        state = Licence.status(data, day)  # the licence model's own rule, applied to the QR's items
        if state == "valid":
            window = f"{v['valid_from']} – {v['valid_until']}"
            self.add("licence_validity", "pass", f"licence valid on {day} ({window})", f"证照在 {day} 有效（{window}）")
        elif state == "review_overdue":
            self.add("licence_validity", "warn", f"licence review was due on {v['review_due']} and none is recorded",
                     f"证照应于 {v['review_due']} 复审，未见复审记录")
        elif state == "expired":
            self.add("licence_validity", "fail", f"licence expired on {v['valid_until']}", f"证照已于 {v['valid_until']} 过期")
        else:
            self.add("licence_validity", "fail", f"licence not valid before {v['valid_from']}", f"证照 {v['valid_from']} 起生效")
        if data.unknown_code is not None:
            self.add("catalogue", "skip", f"catalogue code {data.unknown_code} is unknown to this verifier: update it to "
                     "name the 作业类别 / 操作项目", f"本程序的特种作业目录中没有代码 {data.unknown_code}，请更新后查看作业类别/操作项目",
                     undetermined=True)
        if data.type_code == PLACEHOLDER_TYPE_CODE:
            self.report.checks.append(_SPECIMEN)


def verify_qr(text: str, keyring: Keyring, *, at: datetime | None = None) -> Report:
    """Verify QR text (printed URL or bare payload) offline. Never raises on bad input."""
    at = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return _QRCheck(keyring, at).run(text)
