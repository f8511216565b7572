"""Signed QR payloads (signer/qr_payload.py, verifier/qr_verify.py, `ecert qr verify`):
real SM2 signatures over real licences, verified offline; sizes at QR level M; tampering;
a photo of the printed QR."""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timedelta, timezone

import pytest
import zxingcpp
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from api.cli_qr import app as qr_app
from keys import sm2
from ofd.licence.catalogue import COMMON, load_catalogue
from ofd.licence.model import validate_record
from signer.qr_payload import (
    DOMAIN, MAX_QR_VERSION, PATH, PREFIX, QRPayloadError, decode_body, encode_body, from_text, make_qr_text, qr_data, qr_size,
    signed_message, to_digits,
)
from verifier.qr_verify import Keyring, KeyringEntry, keyring_from_store, verify_qr

from .conftest import gmssl_oracle, make_record

PORTAL = "https://ecert.yjglt.example.gov.cn"  # 34 characters, longer than most portals
LONG_NAME = "阿卜杜热合曼·买买提艾力·阿卜杜热"  # 17 characters
LONGEST_ITEM = max(((c.name, i.name) for c in load_catalogue(COMMON).categories for i in c.items),
                   key=lambda ci: len(ci[1].encode("gb18030")))
WHEN = datetime(2026, 6, 1, 8, 30, tzinfo=timezone.utc)
runner = CliRunner()


@pytest.fixture(scope="module")
def signer(dev_store, dev_issuer):
    key, cert_der, rec = dev_store.signer(dev_issuer.code)
    if rec.not_before > WHEN:  # the dev key was made just now: sign "now" instead
        return key, cert_der, rec, rec.not_before + timedelta(minutes=1)
    return key, cert_der, rec, WHEN


@pytest.fixture(scope="module")
def keyring(dev_store):
    return keyring_from_store(dev_store)


PROVINCE = {"categories": [{"code": "30", "name": "省定特种作业", "items": [{"code": "30.1", "name": "大型游乐设施操作作业"}]},
                          {"code": "1", "name": "电工作业", "items": [{"code": "1.9", "name": "配电房值守作业"}]}]}


def _licence(dev_issuer, **over):
    over.setdefault("valid_from", date(2025, 3, 1))
    catalogue = load_catalogue([COMMON, PROVINCE])
    return validate_record(make_record(dev_issuer.code, dev_issuer.name, **over), catalogue=catalogue)


def _at(when):
    return when + timedelta(days=1)


@pytest.fixture(scope="module")
def qr(signer, dev_issuer):
    key, cert_der, _, when = signer
    lic = _licence(dev_issuer, name=LONG_NAME, category=LONGEST_ITEM[0], item=LONGEST_ITEM[1])
    return lic, make_qr_text(lic, key, cert_der, portal=PORTAL, when=when), when


def _reencode(body: bytes, sig: bytes) -> str:
    return PREFIX + to_digits(body + sig)


# ------------------------------------------------------------------ round trip and content

def test_round_trip_valid_with_public_view_items(qr, keyring):
    lic, text, when = qr
    assert text.startswith(PORTAL + PATH + PREFIX)
    r = verify_qr(text, keyring, at=_at(when))
    assert r.verdict == "valid", [c.to_dict() for c in r.checks]
    names = [c.name for c in r.checks]
    for name in ("qr_format", "key_id", "qr_signature", "signer_cert_validity", "certificate_chain", "revocation",
                 "licence_validity"):
        assert name in names
    assert r.exit_code() == 0
    view = lic.public_view()  # the licence model's own masking, derived independently of the QR
    for k in ("name", "licence_number", "identifier", "category", "item", "valid_from", "valid_until",
              "review_due", "issuer_code", "type_code"):
        assert r.licence[k] == view[k], k
    assert r.licence["masked_id"] == lic.masked_id() != lic.id_number
    assert lic.id_number not in text and lic.id_number not in json.dumps(r.to_dict(), ensure_ascii=False)
    assert r.signatures[0].kid == keyring_kid(keyring, lic)


def keyring_kid(keyring, lic):
    return next(e.kid for e in keyring.entries.values() if e.issuer_code == lic.issuer_code and e.status == "active")


def test_signing_identity_as_the_issue_path_passes_it(qr, dev_store, dev_issuer, keyring):
    from signer.issue import load_identity

    lic, _, when = qr
    text = make_qr_text(lic, load_identity(dev_store, dev_issuer.code), portal=PORTAL + "/", when=when)
    assert text.startswith(PORTAL + "/v#EC1:")
    assert verify_qr(text, keyring, at=_at(when)).verdict == "valid"


def test_bare_payload_and_url_give_the_same_report(qr, keyring):
    _, text, when = qr
    bare = text.split("#", 1)[1]
    a, b = verify_qr(text, keyring, at=_at(when)), verify_qr(bare, keyring, at=_at(when))
    assert a.verdict == b.verdict == "valid"
    assert a.licence == b.licence


def test_reviewed_on_and_province_item_travel_as_names(signer, dev_issuer, keyring):
    key, cert_der, _, when = signer
    lic = _licence(dev_issuer, category="省定特种作业", item="大型游乐设施操作作业", reviewed_on=date(2026, 2, 1),
                   licence_number="ZJ2025000123")
    d = decode_body(from_text(make_qr_text(lic, key, cert_der, portal=PORTAL, when=when))[0])
    assert (d.category, d.item, d.reviewed_on, d.licence_number) == (lic.category, lic.item, lic.reviewed_on, "ZJ2025000123")
    assert d.identifier == lic.identifier  # no ID number inside: the identifier is shown whole
    national = encode_body(qr_data(_licence(dev_issuer), cert_der, when))
    province = encode_body(d)
    assert "低压电工作业".encode("gb18030") not in national and "大型游乐设施操作作业".encode("gb18030") in province
    # a province's item under a national category: the item's name, the category's code
    lic = _licence(dev_issuer, category="电工作业", item="配电房值守作业")
    body = encode_body(qr_data(lic, cert_der, when))
    assert "电工作业".encode("gb18030") not in body and "配电房值守作业".encode("gb18030") in body
    d = decode_body(body)
    assert (d.category, d.item) == ("电工作业", "配电房值守作业")


def test_catalogue_code_unknown_to_the_verifier_is_indeterminate(qr, signer, keyring):
    import cbor2

    _, text, when = qr
    key, *_ = signer
    items = cbor2.loads(from_text(text)[0])
    items[9] = "1.99"  # an item a newer catalogue might add, signed by the real key
    body = cbor2.dumps(items)
    r = verify_qr(_reencode(body, sm2.to_raw(key.sign(signed_message(body)))), keyring, at=_at(when))
    assert r.verdict == "indeterminate" and r.licence["catalogue_code"] == "1.99"
    assert [c.name for c in r.checks if c.undetermined] == ["catalogue"]


def test_gmssl_oracle_verifies_the_qr_signature(qr, signer):
    _, text, _ = qr
    key, *_ = signer
    body, sig = from_text(text)
    oracle = gmssl_oracle(key.public_key.point)
    assert oracle.verify_with_sm3(sig.hex(), DOMAIN + body)
    assert not oracle.verify_with_sm3(sig.hex(), body)  # the domain tag is part of what is signed


# ------------------------------------------------------------------ sizes

@pytest.mark.parametrize("portal", ["http://127.0.0.1:8000", PORTAL])
@pytest.mark.parametrize("who", ["typical", "long"])
def test_fits_version_10_at_level_m(signer, dev_issuer, portal, who):
    key, cert_der, _, when = signer
    over = {} if who == "typical" else {"name": LONG_NAME, "category": LONGEST_ITEM[0], "item": LONGEST_ITEM[1]}
    text = make_qr_text(_licence(dev_issuer, **over), key, cert_der, portal=portal, when=when)
    s = qr_size(text)
    # sizes (bench/qr_bench.py reports them): typical ~129 B / v9, long name + longest item ~158 B / v10
    assert s.version <= MAX_QR_VERSION == 10 and s.ec_level == "M"
    assert s.payload_bytes == len(from_text(text)[0]) + 64
    decoded = zxingcpp.read_barcode(_qr_image(text, px_per_module=4))
    assert decoded is not None and decoded.text == text


# ------------------------------------------------------------------ tampering

def test_every_single_byte_change_is_caught(qr, keyring):
    _, text, when = qr
    body, sig = from_text(text)
    raw = body + sig
    kid_at = raw.index(bytes.fromhex(decode_body(body).kid))
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01 if i % 2 else 0x80
        r = verify_qr(PREFIX + to_digits(bytes(bad)), keyring, at=_at(when))
        if kid_at <= i < kid_at + 8:  # another key id: not in the trust list, so nothing can be confirmed
            assert r.verdict == "indeterminate" and r.checks[-1].name == "key_id", i
        else:
            assert r.verdict == "invalid", (i, [c.to_dict() for c in r.checks])
            assert r.failed()[0].name in ("qr_format", "qr_signature"), i


def test_wrong_key_id_of_a_known_key_fails_the_signature(qr, keyring):
    _, text, when = qr
    body, sig = from_text(text)
    d = decode_body(body)
    other = sm2.generate()
    ring = Keyring([*keyring.entries.values(), KeyringEntry(kid="00" * 8, public_key=other.public_key,
                                                            issuer_code=d.issuer_code)], keyring.roots)
    swapped = body.replace(bytes.fromhex(d.kid), b"\x00" * 8)
    r = verify_qr(_reencode(swapped, sig), ring, at=_at(when))
    assert r.verdict == "invalid" and r.failed()[0].name == "qr_signature"
    # the same payload signed by that other key verifies: the failure above is the key swap alone
    resigned = sm2.to_raw(other.sign(signed_message(swapped)))
    assert verify_qr(_reencode(swapped, resigned), ring, at=_at(when)).failed() == []


def test_unknown_key_is_indeterminate(qr):
    _, text, when = qr
    r = verify_qr(text, Keyring(), at=_at(when))
    assert r.verdict == "indeterminate" and r.exit_code() == 3
    assert r.licence["name"] == LONG_NAME  # the items are still shown, unconfirmed


def _ring_with(keyring, kid, **kw):
    e = keyring.get(kid)
    fields = dict(kid=e.kid, public_key=e.public_key, status=e.status, revoked_at=e.revoked_at,
                  issuer_code=e.issuer_code, cert=e.cert, reason=e.reason)
    fields.update(kw)
    return Keyring([KeyringEntry(**fields)], keyring.roots)


def test_revocation_cut_off(qr, keyring):
    _, text, when = qr
    kid = decode_body(from_text(text)[0]).kid
    at = _at(when)
    before = _ring_with(keyring, kid, status="revoked", revoked_at=when - timedelta(hours=1), reason="key compromise")
    r = verify_qr(text, before, at=at)
    assert r.verdict == "invalid" and r.failed()[0].name == "revocation" and "key compromise" in r.failed()[0].reason_en
    later = _ring_with(keyring, kid, status="revoked", revoked_at=when + timedelta(hours=1))
    r = verify_qr(text, later, at=at)
    assert r.verdict == "valid" and any(c.name == "revocation" and c.status == "warn" for c in r.checks)
    unknown_time = _ring_with(keyring, kid, status="revoked", revoked_at=None)
    assert verify_qr(text, unknown_time, at=at).verdict == "invalid"
    retired = _ring_with(keyring, kid, status="retired")
    assert verify_qr(text, retired, at=at).verdict == "valid"


def test_retired_then_revoked_key_through_the_keystore_and_the_trust_list(tmp_path):
    """Real life cycle: sign, rotate (retired: still valid), revoke with a cut-off (before or after signing)."""
    from keys.config import load_settings
    from keys.rotation import rotate
    from keys.store import DEV_ISSUER_CODE, KeyStore
    from keys.trustlist import build_trust_list, load_trust_list
    from verifier.qr_verify import keyring_from_trust_list

    with KeyStore(load_settings({"ECERT_HOME": str(tmp_path)})) as store:
        store.init_dev()
        issuer = store.issuer(DEV_ISSUER_CODE)
        key, cert_der, rec = store.signer(issuer.code)
        when = rec.not_before.replace(second=0) + timedelta(minutes=1)  # whole minutes, inside the cert
        text = make_qr_text(_licence(issuer), key, cert_der, portal=PORTAL, when=when)
        at = when + timedelta(days=1)

        def verdicts():
            signed = build_trust_list(store)
            tl = load_trust_list(signed.json_bytes, signed.signature, store.root().cert_der)
            return (verify_qr(text, keyring_from_store(store), at=at).verdict,
                    verify_qr(text, keyring_from_trust_list(tl), at=at).verdict)

        assert verdicts() == ("valid", "valid")
        rotate(store, issuer.code)
        assert store.get_key(rec.kid).status == "retired" and verdicts() == ("valid", "valid")
        store.revoke(rec.kid, reason="superseded", at=when + timedelta(minutes=1))
        assert verdicts() == ("valid", "valid")  # revoked after signing: a warning only
        store.revoke(rec.kid, reason="key compromise", at=when - timedelta(minutes=5))
        assert verdicts() == ("invalid", "invalid")


def test_key_of_another_issuer_is_refused(qr, keyring):
    _, text, when = qr
    kid = decode_body(from_text(text)[0]).kid
    r = verify_qr(text, _ring_with(keyring, kid, issuer_code="91110000600037341L"), at=_at(when))
    assert r.verdict == "invalid" and r.failed()[0].name == "issuer"


def test_expired_and_not_yet_valid_licence(qr, keyring):
    lic, text, when = qr
    r = verify_qr(text, keyring, at=datetime.combine(lic.valid_until + timedelta(days=2), datetime.min.time(), timezone.utc))
    assert r.verdict == "invalid" and r.failed()[0].name == "licence_validity"
    assert str(lic.valid_until) in r.failed()[0].reason_en
    r = verify_qr(text, keyring, at=when - timedelta(days=1))  # the QR claims to be signed tomorrow
    assert r.verdict == "invalid" and "signing_time" in {c.name for c in r.failed()}
    assert verify_qr(text, keyring, at=when - timedelta(minutes=2)).verdict == "valid"  # a phone's clock a bit late


def test_truncated(qr, keyring):
    _, text, when = qr
    body, sig = from_text(text)
    for cut in (text[:-1], text[:-30], text[: len(text) // 2], _reencode(body, sig[:-1]), _reencode(body[:-3], sig),
                _reencode(b"", sig[:20])):
        r = verify_qr(cut, keyring, at=_at(when))
        assert r.verdict == "invalid", cut[-20:]
        assert r.checks[0].name in ("qr_format", "qr_signature")


@pytest.mark.parametrize("prefix,code", [("EC2:", "version"), ("EC9:", "version"), ("XX1:", "prefix"),
                                         ("ec1:", "prefix"), ("", "prefix")])
def test_wrong_prefix(qr, keyring, prefix, code):
    _, text, when = qr
    r = verify_qr(text.replace(PREFIX, prefix), keyring, at=_at(when))
    assert r.verdict == "invalid" and r.checks[0].name == "qr_format" and f"({code})" in r.checks[0].reason_en
    assert r.checks[0].reason_zh


@pytest.mark.parametrize("junk", ["", " ", "#", "hello", "https://example.com/v#", "EC1:", "EC1:12a3", "EC1:٣٤٥",
                                  "EC1:+123", "EC1:1_000", "EC1:0" + "1" * 300, "EC1:" + "9" * 5000,
                                  "EC1:" + to_digits(b"\xff" * 200), "EC1:" + to_digits(b"\x8f" + b"\x00" * 100),
                                  None, 12345, b"EC1:123"])
def test_garbage_gets_a_verdict_not_a_crash(keyring, junk):
    r = verify_qr(junk, keyring)
    assert r.verdict == "invalid" and r.checks[0].name == "qr_format"
    assert r.checks[0].reason_en and r.checks[0].reason_zh


def test_making_refuses_a_wrong_key_or_portal(qr, signer, dev_issuer):
    lic, _, when = qr
    key, cert_der, *_ = signer
    with pytest.raises(QRPayloadError) as e:
        make_qr_text(lic, sm2.generate(), cert_der, portal=PORTAL, when=when)
    assert e.value.code == "bad_signer"
    for portal in ("ftp://x.cn", "https://x.cn/a#b", "https://x.cn/?q=1", "", "x.cn"):
        with pytest.raises(QRPayloadError) as e:
            make_qr_text(lic, key, cert_der, portal=portal, when=when)
        assert e.value.code == "bad_portal"


def test_decode_errors_are_typed():
    with pytest.raises(QRPayloadError) as e:
        from_text("EC1:" + "1" * 3000)
    assert e.value.code == "too_long" and e.value.message_zh


# ------------------------------------------------------------------ photos of the printed QR

def _qr_image(text: str, px_per_module: float) -> Image.Image:
    from ofd.qr import QUIET_ZONE, qr_matrix

    m = qr_matrix(text, "M")
    img = Image.frombytes("L", (m.size, m.size), bytes(0 if v else 255 for v in m.dark.flat))
    img = _with_quiet_zone(img, QUIET_ZONE)
    side = round(img.width * px_per_module)
    return img.resize((side, side), Image.NEAREST)


def _with_quiet_zone(img: Image.Image, q: int) -> Image.Image:
    out = Image.new("L", (img.width + 2 * q, img.height + 2 * q), 255)
    out.paste(img, (q, q))
    return out


def _photo(img: Image.Image) -> Image.Image:
    """Rotated 3° on a white page and a little out of focus."""
    img = img.convert("L").rotate(3, resample=Image.BICUBIC, expand=True, fillcolor=255)
    return img.filter(ImageFilter.GaussianBlur(1))


def test_printed_page_at_150_dpi_rotated_and_blurred_still_verifies(qr, signer, dev_store, dev_issuer, keyring, tmp_path):
    render = pytest.importorskip("ofd.render")
    from signer.issue import LicenceIssuer

    lic, text, when = qr
    issued = LicenceIssuer(dev_store, dev_issuer.code).issue(lic, when=when, qr_text=text)
    page = Image.open(io.BytesIO(render.render_png(issued.data, dpi=150)))
    photo = _photo(page)
    found = zxingcpp.read_barcodes(photo, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [b.text for b in found] == [text]
    path = tmp_path / "page.png"
    photo.save(path)
    r = runner.invoke(qr_app, ["verify", "--image", str(path), "--json", "--at", _at(when).isoformat()],
                      env={"ECERT_HOME": str(dev_store.settings.home)})
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["licence"]["name"] == LONG_NAME


def test_qr_alone_at_licence_size_150_dpi_rotated_and_blurred(qr, keyring):
    from ofd.layout import QR_BOX_MM

    _, text, when = qr
    img = _qr_image(text, px_per_module=1)
    # printed crisp at 150 dpi (30 mm box, ~2.7 px a module); the photo adds rotation and blur
    img = img.resize((round(QR_BOX_MM[2] / 25.4 * 150),) * 2, Image.NEAREST)
    got = zxingcpp.read_barcode(_photo(img))
    assert got is not None and got.text == text
    assert verify_qr(got.text, keyring, at=_at(when)).verdict == "valid"


# ------------------------------------------------------------------ command line

def _env(dev_store):
    return {"ECERT_HOME": str(dev_store.settings.home)}


def test_cli_exit_codes(qr, dev_store, tmp_path):
    _, text, when = qr
    at = ["--at", _at(when).isoformat()]
    r = runner.invoke(qr_app, ["verify", text, *at], env=_env(dev_store))
    assert r.exit_code == 0, r.output
    assert "有效" in r.output and LONG_NAME in r.output
    body, sig = from_text(text)
    tampered = _reencode(body, sig[:-1] + bytes([sig[-1] ^ 1]))
    r = runner.invoke(qr_app, ["verify", tampered, "--json", *at], env=_env(dev_store))
    assert r.exit_code == 1 and json.loads(r.stdout)["verdict"] == "invalid"
    empty_home = {"ECERT_HOME": str(tmp_path / "nokeys")}
    r = runner.invoke(qr_app, ["verify", text, "--json", *at], env=empty_home)
    assert r.exit_code == 3 and json.loads(r.stdout)["verdict"] == "indeterminate"
    assert runner.invoke(qr_app, ["verify"], env=_env(dev_store)).exit_code == 2
    assert runner.invoke(qr_app, ["verify", text, "--image", "x.png"], env=_env(dev_store)).exit_code == 2


def test_cli_image_errors(dev_store, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    not_image = tmp_path / "x.png"
    not_image.write_bytes(b"not an image")
    for path in (blank, not_image, tmp_path / "missing.png"):
        r = runner.invoke(qr_app, ["verify", "--image", str(path)], env=_env(dev_store))
        assert r.exit_code == 2, r.output
        assert "Traceback" not in r.output
