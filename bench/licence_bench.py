"""Issue+sign and verify of a full licence, per core, next to the raw SM2 figures of the same run.

``run()`` also times each stage of the issue path on its own (µs per licence, keys
``stage_*_us``) so the README can show where the time goes and what the floor is.
Every figure cycles through a pool of distinct licences (names, ID numbers, photos):
the issue path memoises what repeats between licences (structural files, the seal's
digest), and re-issuing one record would flatter it by also hitting on what does not.
"""

from __future__ import annotations

import itertools
import tempfile
from datetime import datetime, timezone

from .harness import rate

# (key, label) of the per-stage breakdown, in issue-path order; *_us = µs per licence.
# LicenceIssuer.issue runs them all but the unsigned zip (that one is the unsigned-OFD path).
STAGES: tuple[tuple[str, str], ...] = (
    ("stage_validate_us", "validate record (model, ID checks, photo)"),
    ("stage_qr_payload_us", "signed QR payload (its own SM2 signature)"),
    ("stage_qr_us", "QR symbol + PNG"),
    ("stage_layout_xml_us", "layout + OFD XML (excl. QR)"),
    ("stage_zip_unsigned_us", "zip the unsigned package"),
    ("stage_sign_package_excl_sm2_us", "sign_package: SM3 refs, Signature.xml, SES (excl. SM2)"),
    ("stage_sm2_sign_us", "SM2 signature"),
    ("stage_zip_signed_us", "zip the signed package"),
    ("stage_file_sm3_us", "SM3 of the signed file (its registry digest)"),
)
POOL = 48  # distinct licences per figure: more than the per-process memo sizes hold
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭"
_GIVEN = ("伟", "芳", "秀英", "建国", "丽", "强", "德华", "晓明", "静", "海燕", "志强", "玉兰")


def _setup():
    from keys.config import load_settings
    from keys.store import DEV_ISSUER_CODE, KeyStore
    from keys.x509 import Certificate
    from signer.issue import LicenceIssuer
    from ofd.licence.fake import record as make_record
    from verifier.trust import TrustConfig

    home = tempfile.mkdtemp(prefix="ecert-bench-")
    store = KeyStore(load_settings({"ECERT_HOME": home}))
    store.init_dev()
    issuer = store.issuer(DEV_ISSUER_CODE)
    li = LicenceIssuer(store, issuer.code)
    record = make_record(issuer.code, issuer.name)
    trust = TrustConfig(roots=[Certificate.load(store.root().cert_der)])
    return li, record, trust


def _records(li, n: int = POOL) -> list[dict]:
    """``n`` distinct valid records of the issuer (name, ID number, photo all differ)."""
    from ofd.licence.fake import record as make_record

    issuer = li.store.issuer(li.issuer_code)
    return [
        make_record(issuer.code, issuer.name, seq=i + 1, name=_SURNAMES[i % 16] + _GIVEN[i % 12])
        for i in range(n)
    ]


def _cycling(fn, items):
    """A no-argument callable applying ``fn`` to the next of ``items`` each call."""
    it = itertools.cycle(items)
    return lambda: fn(next(it))


def _us(per_s: float) -> float:
    return 1e6 / per_s


def breakdown(li, records: list[dict], when: datetime, seconds: float = 0.3) -> dict[str, float]:
    """µs per licence of each stage of ``LicenceIssuer.issue``, each timed alone over ``records``.

    Layout and signing are timed whole; the QR and the SM2 signature alone, and their
    share is taken out of the layout and signing figures.
    """
    from keys.sm3 import sm3
    from ofd import layout
    from ofd.licence.model import validate_record
    from ofd.qr import qr_matrix, qr_png
    from signer.issue import portal_url
    from signer.ofd_sign import StampPlacement, sign_package
    from signer.qr_payload import make_qr_text

    lics = [validate_record(r) for r in records]
    ident = li.identity()
    stamps = [StampPlacement(layout.PAGE_ID, layout.SEAL_BOX_MM)]

    def payload(lic):
        return make_qr_text(lic, ident, portal=portal_url(), when=when)

    faces = [(lic, payload(lic)) for lic in lics]  # what issue() prints: the signed payload
    pkgs = [layout.build_licence_package(lic, qr_text=text, created=when) for lic, text in faces]
    signed = [sign_package(p, ident, when=when, stamps=stamps) for p in pkgs]
    files = [p.to_bytes() for p in signed]

    def build(face):
        return layout.build_licence_package(face[0], qr_text=face[1], created=when)

    build_us = _us(rate(_cycling(build, faces), seconds))
    qr_us = _us(rate(_cycling(lambda face: qr_png(qr_matrix(face[1], layout.QR_EC_LEVEL)), faces), seconds))
    sign_us = _us(rate(_cycling(lambda p: sign_package(p, ident, when=when, stamps=stamps), pkgs), seconds))
    sm2_us = _us(rate(lambda: ident.key.sign(b"x" * 200), seconds))  # as sm2_bench: Z_A cached, short message
    return {
        "stage_validate_us": _us(rate(_cycling(validate_record, records), seconds)),
        "stage_qr_payload_us": _us(rate(_cycling(payload, lics), seconds)),
        "stage_qr_us": qr_us,
        "stage_layout_xml_us": max(build_us - qr_us, 0.0),
        "stage_zip_unsigned_us": _us(rate(_cycling(lambda p: p.to_bytes(), pkgs), seconds)),
        "stage_sign_package_excl_sm2_us": max(sign_us - sm2_us, 0.0),
        "stage_sm2_sign_us": sm2_us,
        "stage_zip_signed_us": _us(rate(_cycling(lambda p: p.to_bytes(), signed), seconds)),
        "stage_file_sm3_us": _us(rate(_cycling(sm3, files), seconds)),
    }


def naive(li, records: list[dict], when: datetime, seconds: float = 1.0) -> dict[str, float]:
    """The naive baseline (`bench.naive_baseline`: gmssl + segno, same OFD writer) over the same records."""
    from .naive_baseline import naive_issuer

    base = naive_issuer(li)
    return {"naive_issue_sign_per_s_per_core": rate(_cycling(lambda r: base.issue(r, when), records), seconds, rounds=2)}


def run(seconds: float = 1.0, with_naive: bool = True) -> dict[str, float]:
    from ofd import layout
    from ofd.licence.model import validate_record
    from verifier.ofd_verify import verify_ofd

    li, _, trust = _setup()
    when = datetime.now(timezone.utc)
    records = _records(li)
    lics = [validate_record(r) for r in records]
    signed = li.issue(lics[0], when=when).data
    assert verify_ofd(signed, trust).verdict == "valid"

    def unsigned(lic):
        return layout.licence_ofd_bytes(lic, qr_text="x" * 120, created=when)

    def issue(r):
        return li.issue(r, when=when)

    out = {
        "validate_record_per_s": rate(_cycling(validate_record, records), seconds),
        "unsigned_ofd_per_s": rate(_cycling(unsigned, lics), seconds),
        "issue_sign_per_s_per_core": rate(_cycling(issue, records), seconds),
        "issue_sign_prevalidated_per_s_per_core": rate(_cycling(issue, lics), seconds),
        "verify_per_s_per_core": rate(lambda: verify_ofd(signed, trust), seconds),
        "signed_ofd_bytes": float(len(signed)),
    }
    out.update(breakdown(li, records, when, seconds=min(seconds, 0.3)))
    if with_naive:
        out.update(naive(li, records, when, seconds))
        out["issue_sign_ratio_vs_naive"] = out["issue_sign_per_s_per_core"] / out["naive_issue_sign_per_s_per_core"]
    return out


def table_rows(r: dict[str, float], sm2_figures: dict[str, float]) -> list[tuple[str, str, str, str]]:
    sign, verify = sm2_figures.get("sm2_sign_per_s"), sm2_figures.get("sm2_verify_per_s")
    rows = [
        ("record → unsigned OFD", f"{r['unsigned_ofd_per_s']:,.0f}/s", "goal 2,500/s", ""),
        ("issue+sign (validate, OFD, seal)", f"{r['issue_sign_per_s_per_core']:,.0f}/s",
         f"SM2 sign alone {sign:,.0f}/s" if sign else "", f"{r['issue_sign_per_s_per_core'] / sign:.2f}×" if sign else ""),
    ]
    if "naive_issue_sign_per_s_per_core" in r:
        rows.append(("issue+sign vs naive (gmssl + segno, same OFD writer)", f"{r['issue_sign_per_s_per_core']:,.0f}/s",
                     f"naive {r['naive_issue_sign_per_s_per_core']:,.1f}/s", f"{r['issue_sign_ratio_vs_naive']:.1f}×"))
    rows += [
        ("verify a signed licence", f"{r['verify_per_s_per_core']:,.0f}/s",
         f"SM2 verify alone {verify:,.0f}/s" if verify else "", f"{r['verify_per_s_per_core'] / verify:.2f}×" if verify else ""),
    ]
    total = sum(r.get(k, 0.0) for k, _ in STAGES if k != "stage_zip_unsigned_us")
    for key, label in STAGES:
        if key in r:
            share = "" if key == "stage_zip_unsigned_us" or not total else f"{r[key] / total:.0%} of issue"
            rows.append((f"  stage: {label}", f"{r[key]:,.0f} µs", "", share))
    return rows


if __name__ == "__main__":
    figures = run()
    for k, v in figures.items():
        print(f"{k:42s} {v:12,.1f}")
