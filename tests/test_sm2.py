"""SM2/SM3/SM4 core: published vectors, both backends, and cross-verification both ways
with the OpenSSL CLI and the pure-Python `gmssl` oracle."""

from __future__ import annotations

import subprocess

import pytest

from keys import sm2, sm4
from keys.sm3 import hmac_sm3, hmac_sm3_verify, sm3

from .conftest import gmssl_oracle

# GB/T 32918.2-2016 Annex A example on the recommended curve, default ID (STANDARDS.md §5.4)
STD_D = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
STD_X = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
STD_Y = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
STD_MSG = b"message digest"
STD_ZA = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
STD_E = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
STD_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
STD_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
STD_DER = (
    "3046022100F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
    "022100B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
)

# RustCrypto sm2/tests/sm2dsa.rs, non-default ID (STANDARDS.md §5.5)
RC_PUB = (
    "0408D77AE04C01CC4C1104360DD8AF6B6F7DF334283D7C1A6AFD5652407B87BEE5"
    "014E2A57C36C150D16324DC664E31E6432359609C4E79847A5B161C8C7364C8A"
)
RC_ID = b"example@rustcrypto.org"
RC_R = "d1dcccedd9fb785e0f67c16b7c52901625c0b69de9bca2144acc7be713cad2fc"
RC_S = "f7d1eae6e3a157b36c65f672f738ca8b46298bf149a6510072c431b49cd88b1c"

# GmSSL tests/sm3test.c: Z_A on the real curve with the TopsecCA key (§5.6)
TOPSEC_X = "D69C2F1EEC3BFB6B95B30C28085C77B125D77A9C39525D8190768F37D6B205B5"
TOPSEC_Y = "89DCD316BBE7D89A9DC21917F17799E698531F5E6E3E10BD31370B259C3F81C3"
TOPSEC_ZA = "4D38D2958CA7FD2CFAE3AF04486959CF92C8EF48E8B83A05C112E739D5F181D0"


@pytest.fixture(params=["openssl", "gmssl"])
def backend(request):
    prev = sm2.set_backends(request.param, request.param)
    yield request.param
    sm2.set_backends(*prev)


def flip(data: bytes, i: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[i] ^= 1 << bit
    return bytes(b)


# ------------------------------------------------------------------ SM3 / HMAC / SM4

def test_sm3_vectors():
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    assert sm3(b"ab", b"c") == sm3(b"abc")


def test_hmac_sm3_matches_openssl_cli(tmp_path):
    key, data = b"k" * 20, b"ecert hmac"
    (tmp_path / "d").write_bytes(data)
    out = subprocess.run(
        ["openssl", "dgst", "-sm3", "-mac", "HMAC", "-macopt", "hexkey:" + key.hex(), str(tmp_path / "d")],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.strip().split()[-1] == hmac_sm3(key, data).hex()
    assert hmac_sm3_verify(key, data, hmac_sm3(key, data))
    assert not hmac_sm3_verify(key, data + b"x", hmac_sm3(key, data))


def test_sm4_gcm_roundtrip_and_tamper():
    key = bytes(range(16))
    blob = sm4.encrypt(key, b"secret scalar", aad=b"kid1")
    assert sm4.decrypt(key, blob, aad=b"kid1") == b"secret scalar"
    with pytest.raises(sm4.DecryptionError):
        sm4.decrypt(key, blob, aad=b"kid2")
    with pytest.raises(sm4.DecryptionError):
        sm4.decrypt(bytes(16), blob, aad=b"kid1")
    with pytest.raises(sm4.DecryptionError):
        sm4.decrypt(key, flip(blob, 14), aad=b"kid1")
    assert sm4.encrypt(key, b"x") != sm4.encrypt(key, b"x")  # fresh nonce


def test_sm4_gcm_against_openssl_ecb_keystream():
    """Independent check of the SM4 block: GCM's first keystream block is SM4_K(J0+1).
    `openssl enc -sm4-ecb` gives SM4_K(counter block); XOR with the plaintext must equal our ciphertext."""
    key, nonce = bytes(range(16)), bytes(range(12))
    counter = nonce + (2).to_bytes(4, "big")  # J0 = nonce||1, first data block uses inc32(J0)
    ks = subprocess.run(
        ["openssl", "enc", "-sm4-ecb", "-K", key.hex(), "-nopad"], input=counter, capture_output=True, check=True
    ).stdout
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    pt = b"sixteen byte msg"
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    ct = enc.update(pt) + enc.finalize()
    assert ct == bytes(a ^ b for a, b in zip(pt, ks))


# ------------------------------------------------------------------ standard vectors

def test_standard_vector_public_key_za_and_e():
    key = sm2.PrivateKey(STD_D)
    assert key.public_key.point.hex().upper() == "04" + STD_X + STD_Y
    assert key.public_key.z().hex().upper() == STD_ZA
    assert key.public_key.digest(STD_MSG).hex().upper() == STD_E
    assert sm2.encode_signature(STD_R, STD_S).hex().upper() == STD_DER


def test_standard_vector_verifies(backend):
    pub = sm2.PublicKey.from_bytes(bytes.fromhex(STD_X + STD_Y))
    der = bytes.fromhex(STD_DER)
    raw = STD_R.to_bytes(32, "big") + STD_S.to_bytes(32, "big")
    assert pub.verify(STD_MSG, der)
    assert pub.verify(STD_MSG, raw)  # raw r||s accepted too
    assert not pub.verify(b"message digesT", der)
    assert not pub.verify(STD_MSG, der, signer_id=b"1234567812345679")


def test_rustcrypto_non_default_id_vector(backend):
    pub = sm2.PublicKey.from_bytes(bytes.fromhex(RC_PUB))
    raw = bytes.fromhex(RC_R + RC_S)
    assert pub.verify(b"testing", raw, signer_id=RC_ID)
    assert not pub.verify(b"testing", raw)  # default ID gives another Z_A
    assert not pub.verify(b"testinG", raw, signer_id=RC_ID)


def test_gmssl_za_vector():
    pub = sm2.PublicKey.from_bytes(bytes.fromhex(TOPSEC_X + TOPSEC_Y))
    assert pub.z().hex().upper() == TOPSEC_ZA


def test_sign_verify_and_bit_flips(backend):
    key = sm2.generate()
    msg = b"licence T110105194912310021"
    sig = key.sign(msg)
    assert sig[0] == 0x30 and 70 <= len(sig) <= 72
    assert key.public_key.verify(msg, sig)
    for i in range(len(msg)):
        assert not key.public_key.verify(flip(msg, i, i % 8), sig)
    # every byte of r and s (skip DER headers: tampered headers are malformed, also rejected)
    raw = sm2.to_raw(sig)
    for i in range(64):
        assert not key.public_key.verify(msg, flip(raw, i, 3))
    for i in range(len(sig)):
        assert not key.public_key.verify(msg, flip(sig, i, 5))
    other = sm2.generate()
    assert not other.public_key.verify(msg, sig)
    # a flipped bit in the public key is either off-curve (rejected) or another key (fails)
    for i in range(1, 65):
        try:
            pk = sm2.PublicKey(flip(key.public_key.point, i))
        except sm2.SM2Error:
            continue
        assert not pk.verify(msg, sig)


def test_signatures_are_randomised_but_all_verify():
    key = sm2.generate()
    sigs = {key.sign(b"m") for _ in range(5)}
    assert len(sigs) == 5
    assert all(key.public_key.verify(b"m", s) for s in sigs)


def test_backends_cross_verify():
    key = sm2.generate()
    for signer in ("openssl", "gmssl"):
        for verifier in ("openssl", "gmssl"):
            prev = sm2.set_backends(signer, verifier)
            try:
                assert key.public_key.verify(b"x", key.sign(b"x")), (signer, verifier)
            finally:
                sm2.set_backends(*prev)


# ------------------------------------------------------------------ encoding edge cases

@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x30\x00",
        bytes.fromhex(STD_DER) + b"\x00",  # trailing byte
        bytes.fromhex("3046" "022100" + "00" * 32 + "022100" + "00" * 32),  # r = s = 0
        bytes.fromhex("3047022200" + "00F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"[2:] + "00" + STD_DER[76:]),
        bytes.fromhex("3080") + bytes.fromhex(STD_DER)[2:] + b"\x00\x00",  # indefinite length
        b"\x00" * 63,
        b"\xff" * 64,  # r, s >= n
    ],
)
def test_malformed_signatures_rejected_not_raised(bad):
    pub = sm2.PrivateKey(STD_D).public_key
    assert pub.verify(STD_MSG, bad) is False


def test_non_minimal_der_is_rejected_by_decoder():
    with pytest.raises(sm2.SM2Error):
        sm2.decode_signature(bytes.fromhex("3007020200010201" "01"))


def test_invalid_keys():
    with pytest.raises(sm2.SM2Error):
        sm2.PrivateKey(b"\x00" * 32)
    with pytest.raises(sm2.SM2Error):
        sm2.PrivateKey((sm2.N - 1).to_bytes(32, "big"))
    with pytest.raises(sm2.SM2Error):
        sm2.PublicKey(b"\x04" + b"\x01" * 64)  # not on the curve
    with pytest.raises(sm2.SM2Error):
        sm2.PrivateKey(STD_D, public_point=sm2.generate().public_key.point)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(sm2.generate())
    assert STD_D.hex() not in repr(sm2.PrivateKey(STD_D)).lower()


# ------------------------------------------------------------------ PEM / DER interop

def test_key_pem_der_roundtrip_and_openssl_reads_ours(tmp_path):
    key = sm2.generate()
    assert sm2.PrivateKey.from_der(key.to_der()).public_key == key.public_key
    assert sm2.PrivateKey.from_pem(key.to_pem()).public_key == key.public_key
    assert sm2.PublicKey.from_pem(key.public_key.to_pem()) == key.public_key
    (tmp_path / "k.pem").write_bytes(key.to_pem())
    out = subprocess.run(
        ["openssl", "pkey", "-in", str(tmp_path / "k.pem"), "-pubout"], capture_output=True, check=True
    ).stdout
    assert sm2.PublicKey.from_pem(out) == key.public_key
    text = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "k.pem"), "-text", "-noout"],
                          capture_output=True, text=True, check=True).stdout
    assert "SM2" in text


def test_we_read_openssl_generated_keys(tmp_path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "k.pem")], check=True)
    key = sm2.PrivateKey.from_pem((tmp_path / "k.pem").read_bytes())
    pub = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "k.pem"), "-pubout"],
                         capture_output=True, check=True).stdout
    assert sm2.PublicKey.from_pem(pub) == key.public_key


def test_wrong_curve_key_rejected(tmp_path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", str(tmp_path / "p256.pem")], check=True)
    with pytest.raises(sm2.SM2Error):
        sm2.PrivateKey.from_pem((tmp_path / "p256.pem").read_bytes())
    pub = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "p256.pem"), "-pubout"],
                         capture_output=True, check=True).stdout
    with pytest.raises(sm2.SM2Error):
        sm2.PublicKey.from_pem(pub)


def _openssl(*args, **kw):
    return subprocess.run(["openssl", *args], capture_output=True, **kw)


@pytest.mark.parametrize("signer_id", [sm2.DEFAULT_ID, b"ecert@example.cn"])
def test_openssl_cli_verifies_our_signatures(tmp_path, signer_id, backend):
    key = sm2.generate()
    msg = "特种作业操作证 T11010519491231002X".encode()
    (tmp_path / "msg").write_bytes(msg)
    (tmp_path / "sig").write_bytes(key.sign(msg, signer_id=signer_id))
    (tmp_path / "pub.pem").write_bytes(key.public_key.to_pem())
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin", "-digest", "sm3",
            "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig"),
            "-pkeyopt", "distid:" + signer_id.decode()]
    ok = _openssl(*args)
    assert ok.returncode == 0 and b"Signature Verified Successfully" in ok.stdout
    (tmp_path / "msg").write_bytes(msg + b".")
    assert _openssl(*args).returncode != 0


@pytest.mark.parametrize("signer_id", [sm2.DEFAULT_ID, b"ecert@example.cn"])
def test_we_verify_openssl_cli_signatures(tmp_path, signer_id, backend):
    key = sm2.generate()
    (tmp_path / "k.pem").write_bytes(key.to_pem())
    msg = b"signed by the openssl CLI"
    (tmp_path / "msg").write_bytes(msg)
    _openssl("pkeyutl", "-sign", "-inkey", str(tmp_path / "k.pem"), "-rawin", "-digest", "sm3",
             "-in", str(tmp_path / "msg"), "-out", str(tmp_path / "sig"),
             "-pkeyopt", "distid:" + signer_id.decode(), check=True)
    sig = (tmp_path / "sig").read_bytes()
    assert key.public_key.verify(msg, sig, signer_id=signer_id)
    assert not key.public_key.verify(msg + b"!", sig, signer_id=signer_id)


def _oracle(key: sm2.PrivateKey | None, pub: sm2.PublicKey):
    return gmssl_oracle(pub.point, key.to_bytes() if key else None)


@pytest.mark.parametrize("round_", range(8))
def test_gmssl_oracle_verifies_ours(backend, round_):
    key = sm2.generate()
    msg = b"oracle check"
    sig = key.sign(msg)
    assert _oracle(None, key.public_key).verify_with_sm3(sm2.to_raw(sig).hex(), msg)
    assert not _oracle(None, key.public_key).verify_with_sm3(sm2.to_raw(sig).hex(), msg + b"x")


def test_we_verify_gmssl_oracle_signatures(backend):
    key = sm2.generate()
    msg = b"signed by the oracle"
    raw_hex = _oracle(key, key.public_key).sign_with_sm3(msg)
    raw = bytes.fromhex(raw_hex)
    assert key.public_key.verify(msg, raw)
    assert key.public_key.verify(msg, sm2.to_der(raw))
    assert not key.public_key.verify(msg + b"x", raw)


def test_non_canonical_der_rejected_by_every_backend(backend):
    """BER-ish variants of a valid signature (padded INTEGER, long-form length) must not verify."""
    key = sm2.generate()
    sig = key.sign(b"m")
    assert key.public_key.verify(b"m", sig)
    r_len = sig[3]
    padded_r = b"\x02" + bytes([r_len + 1]) + b"\x00" + sig[4 : 4 + r_len]
    rest = sig[4 + r_len :]
    variants = [
        b"\x30" + bytes([len(padded_r + rest)]) + padded_r + rest,
        b"\x30\x81" + bytes([len(sig) - 2]) + sig[2:],
    ]
    for v in variants:
        assert not key.public_key.verify(b"m", v)


def test_verify_from_many_threads_with_failures_interleaved():
    """The service verifies from a thread pool with one cached key object per issuer: a failed
    verification, a malformed signature or another thread's use must not change the next answer."""
    import threading

    k = sm2.PrivateKey.generate()
    pub = sm2.PublicKey.from_bytes(k.public_key.point)  # a fresh key object: its own contexts
    msgs = [b"m%d" % i for i in range(8)]
    sigs = [k.sign(m) for m in msgs]
    wrong = [bytes([s[0]]) + bytes(len(s) - 1) for s in sigs]  # same length, garbage body
    errors: list[str] = []

    def work(seed: int) -> None:
        for i in range(40):
            j = (i + seed) % len(msgs)
            if not pub.verify(msgs[j], sigs[j]):
                errors.append(f"good signature {j} rejected")
            if pub.verify(msgs[j], sigs[(j + 1) % len(msgs)]):
                errors.append(f"signature of another message accepted for {j}")
            if pub.verify(msgs[j], wrong[j]):
                errors.append("garbage signature accepted")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
