"""Verify every signature of any signed OFD: ours or another vendor's.

Order of checks per signature (docs/STANDARDS.md §4.5, extended):
references -> coverage -> dataHash -> SM2 signature -> seal -> signer certificate
(validity at signing time, chain, key usage, revocation) -> timestamp.
Vendor quirks are tolerated where the samples show vendors do them (relative
BaseLoc, CheckMethod by name, no Seal element, uncovered OFD.xml), never by file name.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from keys import oids, sm2
from keys.sm3 import sm3
from keys.x509 import Certificate, CertificateError, verify_chain
from ofd.errors import OFDError
from ofd.reader import OFDDocument, open_ofd
from ofd.signatures_xml import SignatureEntry, SignatureXml, parse_signature_xml, parse_signatures
from signer import cms35275, ses

from . import repeats
from .report import Report, SignatureSummary
from .trust import TrustConfig

# CheckMethod values seen in the wild -> (hash function, weak?)
_SM3_NAMES = {oids.SM3, "sm3", "1.2.156.10197.1.401.1"}
_WEAK = {
    "md5": hashlib.md5, "1.2.840.113549.2.5": hashlib.md5,
    "sha1": hashlib.sha1, "sha-1": hashlib.sha1, "1.3.14.3.2.26": hashlib.sha1,
}


# SM2-with-SM3, and SM2-1 (the signature scheme OID) which some CMS producers write instead
_SM2_SIGNATURE_ALGS = {oids.SM3_WITH_SM2, "1.2.156.10197.1.301.1"}


def _digest_fn(method: str | None):
    """(function, weak) for a CheckMethod, or (None, False) when unsupported."""
    m = (method or "").strip()
    key = m.lower()
    if key in _SM3_NAMES or m in _SM3_NAMES:
        return sm3, False
    if not m:  # the 2016 schema's default is MD5
        return hashlib.md5, True
    if key in _WEAK:
        fn = _WEAK[key]
        return (lambda data: fn(data).digest()), True
    return None, False


def _plain_verify(cert: Certificate, data: bytes, sig: bytes) -> bool:
    return cert.public_key.verify(data, sig)


def _seal_end(tbs_der: bytes, seal_raw: bytes) -> int:
    """Offset in TBS_Sign where its embedded seal ends (0 if not found): the seal is the second
    element, right after TBS_Sign's header and version INTEGER, in every SES version."""
    for at in range(4, 16):
        if tbs_der.startswith(seal_raw, at):
            return at + len(seal_raw)
    return 0


def _fmt_time(t: datetime | None) -> str | None:
    """UTC as YYYY-MM-DDTHH:MM:SSZ (what strftime("%Y-%m-%dT%H:%M:%SZ") gives, at a fifth of its cost)."""
    if not t:
        return None
    u = t.astimezone(timezone.utc)
    return f"{u.year}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}Z"


class _SignatureCheck:
    """Checks of one signature; results go straight into the shared report."""

    def __init__(self, doc: OFDDocument, entry: SignatureEntry, trust: TrustConfig, report: Report):
        self.doc, self.entry, self.trust, self.report = doc, entry, trust, report
        self.sid = entry.id
        self.summary = SignatureSummary(id=entry.id, type=entry.type)
        report.signatures.append(self.summary)
        self.covered: set[str] = set()
        self.own_files: set[str] = {entry.base_loc}

    def add(self, name, status, en, zh, **kw):
        return self.report.add(name, status, en, zh, signature=self.sid, **kw)

    # ------------------------------------------------------------------ entry point
    def run(self) -> None:
        try:
            sx = parse_signature_xml(self.doc, self.entry)
        except OFDError as exc:
            self.add("signature_xml", "fail", f"Signature.xml unreadable: {exc.message_en}",
                     f"签名描述文件无法读取：{exc.message_zh}")
            return
        self.own_files.add(sx.signed_value_path)
        self.check_references(sx)
        try:
            value = self.doc.read(sx.signed_value_path)
        except (OFDError, KeyError):
            self.add("signed_value", "fail", f"signed value {sx.signed_value_path} is missing",
                     f"签名值文件 {sx.signed_value_path} 缺失")
            return
        if self.entry.type == "Sign":
            self.check_sign_type(sx, value)
        else:
            self.check_seal_type(sx, value)

    # ------------------------------------------------------------------ references
    def check_references(self, sx: SignatureXml) -> None:
        fn, weak = _digest_fn(sx.check_method)
        bad, missing = [], []
        for ref in sx.references:
            self.covered.add(ref.file_ref)
            try:
                data = self.doc.read(ref.file_ref)
            except (OFDError, KeyError):
                missing.append(ref.raw_file_ref)
                continue
            if fn is sm3 and ref.file_ref == sx.seal_path:
                digest = repeats.seal_file_sm3(data)  # the issuer's seal: same bytes in every document
            else:
                digest = fn(data) if fn is not None else None
            if fn is not None and digest != ref.check_value:
                bad.append(ref.raw_file_ref)
        total = len(sx.references)
        if missing:
            self.add("references", "fail", f"referenced file(s) missing: {', '.join(missing)}",
                     f"被引用的文件缺失：{', '.join(missing)}")
        if fn is None:
            plain = sum(1 for r in sx.references if r.file_ref in self.doc.package
                        and sm3(self.doc.read(r.file_ref)) == r.check_value)
            self.add("references", "skip",
                     f"unsupported digest method {sx.check_method!r} ({plain}/{total} match plain SM3)",
                     f"不支持的摘要算法 {sx.check_method!r}（{plain}/{total} 个与标准 SM3 一致）", undetermined=True)
        elif bad:
            self.add("references", "fail", f"file(s) altered after signing: {', '.join(bad)}",
                     f"文件在签名后被篡改：{', '.join(bad)}")
        elif not missing:
            if total == 0:
                self.add("references", "fail", "the signature covers no file", "签名未保护任何文件")
            elif weak:  # colliding files can be made for MD5 and SHA-1: a match proves no integrity
                self.add("references", "warn", f"all {total} file digests match, but {sx.check_method or 'MD5'} is broken "
                         "(collisions can be made): integrity not established",
                         f"{total} 个文件摘要均一致，但摘要算法 {sx.check_method or 'MD5'} 已被攻破（可构造碰撞），无法确认完整性",
                         undetermined=True)
            else:
                self.add("references", "pass", f"all {total} file digests match (SM3)", f"{total} 个文件的 SM3 摘要均一致")

    # ------------------------------------------------------------------ Type="Seal"
    def check_seal_type(self, sx: SignatureXml, value: bytes) -> None:
        try:
            sv = ses.parse_signed_value(value)
        except ses.SESError as exc:
            self.add("signed_value", "fail", f"SignedValue.dat is not a valid electronic-seal signature: {exc.message_en}",
                     f"签名值不是有效的电子签章数据：{exc.message_zh}")
            return
        self.summary.format = {1: "GM/T 0031 v1", 4: "GB/T 38540 v4", 5: "GM/T 0031-2025 v5"}.get(sv.version, f"v{sv.version}")
        self.summary.signed_at = _fmt_time(sv.time_info)
        if sm3(sx.raw) == sv.data_hash:
            self.add("data_hash", "pass", "dataHash equals SM3(Signature.xml)", "签名描述文件的 SM3 摘要与签名值中的 dataHash 一致")
        else:
            self.add("data_hash", "fail", "Signature.xml was altered: its SM3 differs from dataHash",
                     "签名描述文件被篡改：SM3 摘要与 dataHash 不一致")
        cert = self._load_cert(sv.signer_cert)
        if cert is not None:
            prefix = _seal_end(sv.tbs_der, sv.seal_raw)  # TBS_Sign up to the end of its seal repeats in every document
            self._check_sm2("signature", cert, sv.sign_alg, sv.tbs_der, sv.signature,
                            "SM2 signature over TBS_Sign", "TBS_Sign 的 SM2 签名",
                            verify=lambda c, d, s: repeats.sm2_verify_with_prefix(c.public_key, d, prefix, s))
        self.check_seal(sx, sv, cert)
        if cert is not None:
            self.check_certificate(cert, sv.time_info, [])
        self._timestamp(sv.timestamp)

    def check_seal(self, sx: SignatureXml, sv, signer: Certificate | None) -> None:
        seal = sv.seal
        if sx.seal_path:
            self.covered.add(sx.seal_path)
            try:
                esl = self.doc.read(sx.seal_path)
            except (OFDError, KeyError):
                esl = None
            if esl is None:
                self.add("seal_match", "fail", f"Seal.esl {sx.seal_path} is missing", f"印章文件 {sx.seal_path} 缺失")
            elif esl == sv.seal_raw:
                self.add("seal_match", "pass", "Seal.esl equals the seal inside SignedValue.dat", "印章文件与签章数据中的印章一致")
            else:
                self.add("seal_match", "fail", "Seal.esl differs from the seal inside SignedValue.dat",
                         "印章(Seal.esl)与电子签章数据中的印章不匹配")
        else:
            self.add("seal_match", "skip", "no Seal element: the seal is only inside SignedValue.dat",
                     "未提供印章文件，印章仅存在于签章数据中")
        maker = self._load_cert(seal.maker_cert, name="seal_maker_cert")
        if maker is not None:
            self._check_sm2("seal_signature", maker, seal.sign_alg, seal.signed_part, seal.maker_signature,
                            "seal maker's SM2 signature over the seal", "制章者对印章信息的 SM2 签名",
                            verify=repeats.sm2_verify)
        t = sv.time_info
        if t is None:
            self.add("seal_validity", "skip", "no signing time to check the seal period against", "无签章时间，无法检查印章有效期",
                     undetermined=True)
        elif seal.valid_start <= t <= seal.valid_end:
            self.add("seal_validity", "pass", f"seal valid at signing time ({_fmt_time(seal.valid_start)} – {_fmt_time(seal.valid_end)})",
                     "签章时印章在有效期内")
        else:
            self.add("seal_validity", "fail", f"seal not valid at signing time {_fmt_time(t)} "
                     f"(valid {_fmt_time(seal.valid_start)} – {_fmt_time(seal.valid_end)})", "签章时印章不在有效期内")
        if signer is not None:
            self._check_cert_list(seal, signer)

    def _check_cert_list(self, seal, signer: Certificate) -> None:
        if seal.cert_list_type == 1:
            ok = signer.der in seal.certs
        elif seal.cert_list_type == 2:
            ok = None
            for alg, digest in seal.cert_digests:
                a = alg.strip().lower()
                if a in ("sm3", oids.SM3):
                    ok = bool(ok) or sm3(signer.der) == digest
                elif a in ("sha1", "sha-1"):
                    ok = bool(ok) or hashlib.sha1(signer.der).digest() == digest
                elif a in ("sha256", "sha-256"):
                    ok = bool(ok) or hashlib.sha256(signer.der).digest() == digest
            if ok is None:
                self.add("seal_cert_list", "skip", "seal lists certificate digests of an unsupported type",
                         "印章证书摘要类型不受支持", undetermined=True)
                return
        else:
            self.add("seal_cert_list", "skip", f"unknown certListType {seal.cert_list_type}", "未知的证书列表类型",
                     undetermined=True)
            return
        if ok:
            self.add("seal_cert_list", "pass", "the signer's certificate is listed in the seal", "签章者证书在印章的证书列表中")
        else:
            self.add("seal_cert_list", "fail", "the signer's certificate is not listed in the seal (seal of another holder)",
                     "签章者证书不在印章的证书列表中（非本单位印章）")

    # ------------------------------------------------------------------ Type="Sign"
    def check_sign_type(self, sx: SignatureXml, value: bytes) -> None:
        try:
            cms = cms35275.parse_cms_signed_data(value)
        except cms35275.CMSError:
            cms = None
        if cms is not None:
            self.check_cms(sx, cms)
            return
        try:
            sm2.decode_signature(value)
        except sm2.SM2Error:
            self.add("signed_value", "fail", "SignedValue.dat is neither GB/T 35275 SignedData nor an SM2 signature",
                     "签名值既不是 GB/T 35275 签名数据也不是 SM2 签名")
            return
        self.summary.format = "raw SM2"
        self.add("data_hash", "skip", "raw SM2 signature: Signature.xml is signed directly", "裸 SM2 签名：直接对签名描述文件签名")
        candidates = self.trust.signer_certs
        if not candidates:
            self.add("signature", "skip", "no signer certificate in the document (supply one with --signer-cert)",
                     "文件中没有签名者证书（可用 --signer-cert 提供）", undetermined=True)
            return
        for cert in candidates:
            if cert.public_key.verify(sx.raw, value):
                self.add("signature", "pass", f"SM2 signature over Signature.xml verifies with {cert.subject_cn}",
                         f"使用证书 {cert.subject_cn} 验证 SM2 签名通过")
                self.summary.signer = cert.subject_cn
                t = _parse_sig_datetime(sx.signature_datetime)
                self.check_certificate(cert, t, [])
                self._timestamp(None)
                return
        self.add("signature", "fail", "SM2 signature over Signature.xml does not verify with the supplied certificate(s)",
                 "使用所提供的证书验证 SM2 签名失败")

    def check_cms(self, sx: SignatureXml, cms) -> None:
        self.summary.format = "GB/T 35275 CMS"
        self.summary.signed_at = _fmt_time(cms.signing_time)
        if cms.signer_cert is None:
            self.add("signature", "skip", "SignedData carries no signer certificate", "签名数据中没有签名者证书", undetermined=True)
            return
        cert = self._load_cert(cms.signer_cert)
        if cert is None:
            return
        if cms.signed_attrs_der is not None:
            if cms.message_digest == sm3(sx.raw):
                self.add("data_hash", "pass", "messageDigest equals SM3(Signature.xml)", "签名属性中的消息摘要与签名描述文件一致")
            else:
                self.add("data_hash", "fail", "Signature.xml was altered: messageDigest differs",
                         "签名描述文件被篡改：消息摘要不一致")
            signed = cms.signed_attrs_der
        else:
            content = cms.encap_content if cms.encap_content is not None else sx.raw
            if cms.encap_content is not None and cms.encap_content != sx.raw:
                self.add("data_hash", "fail", "signed content differs from Signature.xml", "签名内容与签名描述文件不一致")
            else:
                self.add("data_hash", "pass", "signature is over Signature.xml", "签名对象为签名描述文件")
            signed = content
        self._check_sm2("signature", cert, cms.signature_alg, signed, cms.signature,
                        "SM2 signature of the SignedData", "签名数据的 SM2 签名")
        extra = []
        for der in cms.certificates:
            try:
                extra.append(Certificate.load(der))
            except CertificateError:
                pass
        self.check_certificate(cert, cms.signing_time, extra)
        self._timestamp(None)

    # ------------------------------------------------------------------ shared pieces
    def _load_cert(self, der: bytes, name: str = "signer_cert") -> Certificate | None:
        try:
            cert = Certificate.load(der)
        except CertificateError as exc:
            self.add(name, "fail", f"certificate unreadable: {exc.message_en}", f"证书无法解析：{exc.message_zh}")
            return None
        if name == "signer_cert":
            self.summary.signer = cert.subject_cn
            self.summary.issuer_code = cert.subject_uscc
            self.summary.kid = cert.kid
        return cert

    def _check_sm2(self, name, cert: Certificate, alg: str, data: bytes, sig: bytes, what_en: str, what_zh: str,
                   verify=_plain_verify) -> None:
        if alg not in _SM2_SIGNATURE_ALGS:
            self.add(name, "skip", f"{what_en}: unsupported algorithm {alg}", f"{what_zh}：不支持的算法 {alg}", undetermined=True)
        elif verify(cert, data, sig):
            self.add(name, "pass", f"{what_en} verifies", f"{what_zh}验证通过")
        else:
            self.add(name, "fail", f"{what_en} does not verify", f"{what_zh}验证失败")

    def check_certificate(self, cert: Certificate, signed_at: datetime | None, intermediates: list[Certificate]) -> None:
        t = signed_at
        if t is None:
            t = self.trust.now()
            self.add("signing_time", "warn", "no signing time in the signed value: certificate checked at verification time",
                     "签名值中没有签名时间，按验证时间检查证书")
        elif t > self.trust.now():
            self.add("signing_time", "fail", f"signing time {_fmt_time(t)} lies in the future", f"签名时间 {_fmt_time(t)} 晚于验证时间")
        if cert.valid_at(t):
            self.add("signer_cert_validity", "pass", f"signer certificate valid at signing time {_fmt_time(t)}",
                     "签名时签名者证书在有效期内")
        else:
            state_en = "expired" if t > cert.not_after else "not yet valid"
            state_zh = "已过期" if t > cert.not_after else "尚未生效"
            self.add("signer_cert_validity", "fail",
                     f"signer certificate {state_en} at signing time {_fmt_time(t)} "
                     f"(valid {_fmt_time(cert.not_before)} – {_fmt_time(cert.not_after)})",
                     f"签名时签名者证书{state_zh}")
        usage = cert.key_usage
        if usage and not usage & {"digital_signature", "non_repudiation"}:
            self.add("key_usage", "fail", "signer certificate is not for signing (keyUsage)", "签名者证书的密钥用法不允许签名")
        chain = verify_chain(cert, self.trust.roots, intermediates=intermediates, at=t)
        codes = {e.code for e in chain.errors}
        if chain.ok or (codes and codes <= {"expired", "not_yet_valid"}):  # validity is its own check above
            root = chain.chain[-1].subject_cn if chain.chain else "?"
            self.add("certificate_chain", "pass", f"chains to trusted root {root}", f"证书链可信（根证书：{root}）")
        elif codes & {"bad_signature", "not_ca"}:
            self.add("certificate_chain", "fail", "certificate chain is broken: " + "; ".join(e.message_en for e in chain.errors),
                     "证书链无效：" + "；".join(e.message_zh for e in chain.errors))
        else:
            self.add("certificate_chain", "warn", "the signer certificate does not chain to a trusted root",
                     "签名者证书未链接到受信任的根证书", undetermined=True)
        self._revocation(cert, t)

    def _revocation(self, cert: Certificate, t: datetime) -> None:
        if self.trust.revocation is None:
            return
        rev = self.trust.revocation(cert.kid)
        if rev is None:
            return
        if rev.status == "revoked" and rev.revoked_at is not None:
            if t >= rev.revoked_at:
                self.add("revocation", "fail", f"signing key {cert.kid} was revoked at {_fmt_time(rev.revoked_at)}, before signing"
                         f" ({rev.reason or 'no reason given'})", f"签名密钥已于 {_fmt_time(rev.revoked_at)} 吊销（签名在吊销之后）")
            else:
                self.add("revocation", "warn", f"signing key {cert.kid} was revoked later, at {_fmt_time(rev.revoked_at)}",
                         f"签名密钥于签名之后（{_fmt_time(rev.revoked_at)}）被吊销")
        else:
            self.add("revocation", "pass", f"signing key {cert.kid} is not revoked ({rev.status})", "签名密钥未被吊销")

    def _timestamp(self, ts: bytes | None) -> None:
        if ts:
            self.add("timestamp", "warn", "a timestamp is present but not verified", "包含时间戳，但未验证")
        else:
            self.add("timestamp", "warn", "not timestamped: the signing time is the signer's own claim",
                     "无时间戳：签名时间由签名方声明")


_BEIJING = timezone(timedelta(hours=8))


def _parse_sig_datetime(s: str | None) -> datetime | None:
    if not s:
        return None
    s = s.strip()
    for fmt in ("%Y%m%d%H%M%SZ", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            t = datetime.strptime(s, fmt)
        except ValueError:
            continue
        # without a zone, vendors write Beijing time
        return t.replace(tzinfo=timezone.utc if fmt.endswith("Z") else _BEIJING)
    return None


def _check_coverage(doc: OFDDocument, checks: list[_SignatureCheck], report: Report) -> None:
    exempt = {doc.signatures_path} if doc.signatures_path else set()
    covered: set[str] = set()
    for c in checks:
        exempt |= c.own_files
        covered |= c.covered
    uncovered = [n for n in doc.package.names() if n not in covered and n not in exempt]
    if not uncovered:
        report.add("coverage", "pass", "every file of the package is covered by a signature", "文件包中的每个文件都受签名保护")
    elif uncovered == ["OFD.xml"]:
        report.add("coverage", "warn", "OFD.xml is not covered by any signature (added after signing); nothing read from it is protected",
                   "OFD.xml 未受签名保护（签名后改动），其内容不作为受保护信息")
    else:
        report.add("coverage", "fail", f"file(s) not covered by any signature: {', '.join(uncovered)}",
                   f"存在未受签名保护的文件：{', '.join(uncovered)}")


def verify_ofd(data: bytes, trust: TrustConfig | None = None) -> Report:
    """Verify ``data`` (an OFD file) and return the report. Never raises on bad input."""
    trust = trust or TrustConfig()
    report = Report(verified_at=_fmt_time(trust.now()))
    try:
        doc = open_ofd(data)
        entries = parse_signatures(doc)
    except OFDError as exc:
        report.add("package", "fail", f"{exc.message_en} ({exc.code})", exc.message_zh)
        return report
    report.add("package", "pass", f"OFD package opened safely ({len(doc.package.names())} files, {len(doc.pages)} page(s))",
               f"OFD 文件包安全打开（{len(doc.package.names())} 个文件，{len(doc.pages)} 页）")
    if not entries:
        report.add("signatures", "fail", "the document is not signed", "文件未进行电子签名")
        return report
    checks = [_SignatureCheck(doc, e, trust, report) for e in entries]
    for c in checks:
        c.run()
    _check_coverage(doc, checks, report)
    lic = _read_licence(doc, report)
    if lic is not None:
        _check_licence_status(lic.identifier, trust, report)
    return report


def _read_licence(doc: OFDDocument, report: Report):
    """For our own licences, the data items read back from the metadata (masked ID number)."""
    md = doc.custom_datas
    if not md:
        return None
    try:
        from ofd.licence.model import Licence

        lic = Licence.from_metadata(md, None)
    except Exception:
        return None
    report.licence = lic.public_view()
    return lic


def _check_licence_status(identifier: str, trust: TrustConfig, report: Report) -> None:
    """撤销 / 注销 in our registry make the licence invalid whatever its signatures say."""
    if trust.licence_status is None:
        return
    found = trust.licence_status(identifier)
    if found is None:
        report.add("licence_status", "warn", "the licence is not in this service's registry",
                   "本系统登记簿中没有该证照")
        return
    status, reason_zh, reason_en, at = found
    if status == "valid":
        report.add("licence_status", "pass", "the registry lists the licence as valid", "登记簿记载该证照有效")
    elif status == "superseded":  # re-issued with changed data: this file is an older version
        report.add("licence_status", "warn", f"licence {reason_en}", f"证照{reason_zh}")
    else:
        report.add("licence_status", "fail", f"licence {reason_en}", f"证照{reason_zh}")
