"""Issuance log: RFC 9162 Merkle tree (SHA-256 vectors, SM3), proofs, tamper detection by direct SQL,
signed tree heads, concurrent appends from two processes, `ecert log` through CliRunner."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keys.sm3 import sm3
from keys.x509 import Certificate
from signer import merkle
from signer.issuance_log import SignedTreeHead

from .test_registry import Env, open_env

ROOT = Path(__file__).resolve().parents[1]

# RFC 6962 reference inputs and the tree heads of certificate-transparency's merkle_tree_test (SHA-256).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def naive_mth(entries: list[bytes], h) -> bytes:
    """MTH straight from RFC 9162 §2.1.1 (recursive split at the largest power of two below n)."""
    if not entries:
        return h(b"")
    if len(entries) == 1:
        return h(b"\x00" + entries[0])
    k = 1
    while k * 2 < len(entries):
        k *= 2
    return h(b"\x01" + naive_mth(entries[:k], h) + naive_mth(entries[k:], h))


# --------------------------------------------------------------------------- Merkle algorithms

def test_sha256_tree_heads_match_certificate_transparency():
    sha = merkle.SHA256_HASHER
    for n in range(1, 9):
        leaves = [sha.leaf(e) for e in CT_LEAVES[:n]]
        assert merkle.tree_root(leaves, sha).hex() == CT_ROOTS[n - 1]
        assert naive_mth(CT_LEAVES[:n], lambda b: hashlib.sha256(b).digest()).hex() == CT_ROOTS[n - 1]
    assert merkle.tree_root([], sha) == hashlib.sha256(b"").digest()


def test_sm3_frontier_equals_the_recursive_definition():
    entries = [f"entry {i}".encode() for i in range(70)]
    f = merkle.Frontier()
    for n, e in enumerate(entries, start=1):
        f.append(merkle.SM3_HASHER.leaf(e))
        assert f.root() == naive_mth(entries[:n], lambda b: sm3(b))
        assert merkle.Frontier.from_bytes(n, f.to_bytes()).root() == f.root()
    with pytest.raises(merkle.MerkleError):
        merkle.Frontier.from_bytes(5, f.to_bytes())


def test_inclusion_proofs_verify_and_fail_when_tampered():
    for n in range(1, 22):
        leaves = [merkle.SM3_HASHER.leaf(bytes([i])) for i in range(n)]
        root = merkle.tree_root(leaves)
        for i in range(n):
            proof = merkle.inclusion_proof(i, leaves)
            assert merkle.verify_inclusion(leaves[i], i, n, proof, root)
            assert not merkle.verify_inclusion(leaves[(i + 1) % n], i, n, proof, root) or n == 1
            assert not merkle.verify_inclusion(leaves[i], n, n, proof, root)  # index outside the tree
            assert not merkle.verify_inclusion(leaves[i], i, n, proof, sm3(root))
            if proof:
                bad = list(proof)
                bad[-1] = bytes([bad[-1][0] ^ 1]) + bad[-1][1:]
                assert not merkle.verify_inclusion(leaves[i], i, n, bad, root)
                assert not merkle.verify_inclusion(leaves[i], i ^ 1, n, proof, root) or (i ^ 1) >= n
                assert not merkle.verify_inclusion(leaves[i], i, n, proof[:-1], root)
    with pytest.raises(merkle.MerkleError):
        merkle.inclusion_proof(3, leaves[:3])


def test_consistency_proofs_verify_and_fail_when_tampered():
    leaves = [merkle.SM3_HASHER.leaf(bytes([i])) for i in range(20)]
    for n in range(1, 21):
        new_root = merkle.tree_root(leaves[:n])
        for m in range(1, n + 1):
            old_root = merkle.tree_root(leaves[:m])
            proof = merkle.consistency_proof(m, leaves[:n])
            assert merkle.verify_consistency(m, n, old_root, new_root, proof)
            assert not merkle.verify_consistency(m, n, sm3(old_root), new_root, proof)
            if m < n:
                assert not merkle.verify_consistency(m, n, old_root, sm3(new_root), proof)
                other = merkle.tree_root(leaves[:m - 1] + [sm3(b"x")])  # a different history of the same size
                assert not merkle.verify_consistency(m, n, other, new_root, proof)


# --------------------------------------------------------------------------- the log in the database

@pytest.fixture(scope="module")
def filled_template(tmp_path_factory):
    """A home with 7 log entries, built once; each test gets its own copy to tamper with."""
    home = tmp_path_factory.mktemp("registry_template")
    env = open_env(home)
    ids = [env.issue(i).entry.identifier for i in range(1, 5)]  # seq 1-4
    ids.append(env.issue(1, item="高压电工作业").entry.identifier)  # seq 5: reissue of #1
    env.reg.revoke(ids[1], "unfit")  # seq 6
    env.reg.cancel(ids[2], "death")  # seq 7
    assert env.reg.verify_log().ok
    env.reg.close()
    env.store.close()
    return home, ids


@pytest.fixture
def filled(filled_template, tmp_path):
    home, ids = filled_template
    shutil.copytree(home, tmp_path / "home")
    env = open_env(tmp_path / "home")
    env.ids = ids
    yield env
    env.reg.close()
    env.store.close()


def tamper(env: Env, sql: str, *args) -> None:
    with env.db() as c:
        c.execute(sql, args)


def test_log_entries_chain_and_tree(filled):
    entries = filled.reg.log.entries()
    assert [e.seq for e in entries] == list(range(1, 8))
    assert [e.kind for e in entries] == ["issue"] * 4 + ["reissue", "revoke", "cancel"]
    chain = bytes(32)
    for e in entries:
        leaf = sm3(b"\x00", e.entry_bytes())
        chain = sm3(chain, leaf)
        assert (e.leaf_hash, e.chain_hash) == (leaf, chain)
    head = filled.reg.log.head()
    assert head.size == 7 and head.chain_head == chain
    assert head.root == naive_mth([e.entry_bytes() for e in entries], lambda b: sm3(b))
    assert entries[4].payload["supersedes"] == filled.ids[0]
    assert filled.ids[0] not in json.dumps([e.payload for e in entries[:4]])  # payload has no ID number field
    assert all("id_number" not in e.payload for e in entries)


def test_inclusion_proofs_from_the_log(filled):
    log = filled.reg.log
    entries = log.entries()
    for e in entries:
        p = log.inclusion_proof(e.seq)
        assert p.verify() and p.root == log.head().root
        old = log.inclusion_proof(1, tree_size=e.seq)  # against an older head: that entry's stored root
        assert old.verify() and old.root == e.tree_root
    p = log.inclusion_proof(3)
    assert not merkle.verify_inclusion(entries[3].leaf_hash, 2, p.tree_size, p.path, p.root)
    assert not merkle.verify_inclusion(p.leaf_hash, 2, p.tree_size, [sm3(x) for x in p.path], p.root)
    proof = log.consistency_proof(3)
    assert merkle.verify_consistency(3, 7, entries[2].tree_root, log.head().root, proof)
    with pytest.raises(Exception) as exc:
        log.inclusion_proof(8)
    assert "no entry 8" in str(exc.value)


@pytest.mark.parametrize("sql, seq, code", [
    ("UPDATE registry_log SET payload = replace(payload, 'unfit', 'death') WHERE seq = 6", 6, "altered"),
    ("UPDATE registry_log SET identifier = identifier || 'X' WHERE seq = 3", 3, "altered"),
    ("UPDATE registry_log SET at = '2020-01-01T00:00:00Z' WHERE seq = 2", 2, "altered"),
    ("UPDATE registry_log SET chain_hash = zeroblob(32) WHERE seq = 4", 4, "chain"),
    ("UPDATE registry_log SET tree_root = zeroblob(32) WHERE seq = 5", 5, "tree_root"),
    ("DELETE FROM registry_log WHERE seq = 2", 2, "missing"),
    ("DELETE FROM registry_log WHERE seq = 7", 7, "truncated"),
    ("UPDATE registry_licences SET status = 'valid', reason = NULL, status_at = NULL WHERE last_seq = 6", 6,
     "row_altered"),
    ("UPDATE registry_licences SET file_sm3 = '00' WHERE last_seq = 4", 4, "row_altered"),
    ("DELETE FROM registry_licences WHERE last_seq = 7", 7, "row_missing"),
    ("UPDATE registry_meta SET value = CAST('5' AS BLOB) WHERE name = 'log_size'", None, "head"),
    ("UPDATE registry_meta SET value = CAST('11' AS BLOB) WHERE name = 'log_size'", 8, "truncated"),
])
def test_direct_sql_tampering_is_found(filled, sql, seq, code):
    tamper(filled, sql)
    check = filled.reg.verify_log()
    assert not check.ok
    assert check.first_bad_seq == seq and check.problems[0].code == code, check.problems


def test_no_append_on_a_damaged_head(filled):
    from signer.registry import RegistryError

    tamper(filled, "UPDATE registry_meta SET value = CAST('5' AS BLOB) WHERE name = 'log_size'")
    with pytest.raises(RegistryError) as exc:
        filled.reg.revoke(filled.ids[3], "unfit")
    assert exc.value.code == "head" and "ecert log verify" in str(exc.value)


def test_a_row_inserted_behind_the_log_is_found(filled):
    tamper(filled, "INSERT INTO registry_licences SELECT replace(identifier, '.001.', '.009.'), issuer_code, "
                   "licence_number, 9, record_digest, holder_hash, kid, file_sm3, issued_at, status, reason, "
                   "status_at, note, superseded_by, last_seq FROM registry_licences WHERE last_seq = 4")
    check = filled.reg.verify_log()
    assert [p.code for p in check.problems] == ["row_extra"]


def test_signed_tree_head_pins_the_log_against_a_rollback(filled):
    db = filled.store.settings.sqlite_path
    snapshot = sqlite3.connect(":memory:")
    with sqlite3.connect(db) as src:
        src.backup(snapshot)  # an attacker's copy at 7 entries
    filled.issue(9)
    sth = filled.reg.sign_head()
    root_key = Certificate.load(filled.store.root().cert_der).public_key
    assert sth.tree_size == 8 and sth.verify(root_key)
    assert not SignedTreeHead(7, sth.root_hash, sth.timestamp, sth.kid, sth.signature).verify(root_key)
    assert filled.reg.verify_log(pinned=sth).ok
    with sqlite3.connect(db) as dst:
        snapshot.backup(dst)  # roll the whole database back: the log alone looks intact
    assert filled.reg.verify_log().ok
    check = filled.reg.verify_log(pinned=sth)
    assert not check.ok and check.problems[0].code == "pinned_head"
    older = SignedTreeHead(5, sm3(b"other history").hex(), sth.timestamp, sth.kid, "")
    assert filled.reg.verify_log(pinned=older).problems[0].code == "pinned_head"


_CHILD = """
import sys
from keys.config import load_settings
from keys.store import KeyStore
from signer.issue import LicenceIssuer
from signer.registry import Registry
from tests.conftest import make_record
store = KeyStore(load_settings({"ECERT_HOME": sys.argv[1]}))
issuer = store.issuer(sys.argv[2])
li = LicenceIssuer(store, issuer.code)
with Registry(store) as reg:
    for i in range(int(sys.argv[3]), int(sys.argv[3]) + 6):
        reg.issue(li, make_record(issuer.code, issuer.name, i))
        if i % 3 == 0:
            reg.record_issued_many([li.issue(make_record(issuer.code, issuer.name, 300 + i))])
"""


def test_concurrent_appends_from_two_processes_keep_the_chain(tmp_path):
    env = open_env(tmp_path)
    try:
        cmd = [sys.executable, "-c", _CHILD, str(tmp_path), env.code]
        envvars = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [subprocess.Popen(cmd + [str(start)], cwd=ROOT, env=envvars, stderr=subprocess.PIPE)
                 for start in (10, 100)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()[-2000:]
        check = env.reg.verify_log()
        assert check.ok, check.problems
        entries = env.reg.log.entries()
        assert [e.seq for e in entries] == list(range(1, 17))
        assert len({e.identifier for e in entries}) == 16
        with env.db() as c:
            assert c.execute("SELECT count(*) FROM registry_licences").fetchone()[0] == 16
    finally:
        env.reg.close()
        env.store.close()


# --------------------------------------------------------------------------- CLI

def test_cli_log_verify_show_proof_head(filled, monkeypatch, tmp_path):
    from api.cli_log import app

    monkeypatch.setenv("ECERT_HOME", filled.home)
    monkeypatch.delenv("ECERT_DATABASE_URL", raising=False)
    run = CliRunner().invoke
    res = run(app, ["verify"])
    assert res.exit_code == 0 and "7" in res.output and "log intact" in res.output, res.output
    shown = json.loads(run(app, ["show", "--json", "--from", "5"]).output)
    assert shown["size"] == 7 and [e["seq"] for e in shown["entries"]] == [5, 6, 7]
    assert filled.ids[1] in run(app, ["show"]).output
    proof = json.loads(run(app, ["proof", "6"]).output)
    assert proof["verifies"] and proof["root"] == shown["root"]
    assert run(app, ["proof", "99"]).exit_code == 1
    sth_file = tmp_path / "sth.json"
    res = run(app, ["head", "--sign"])
    assert res.exit_code == 0
    sth_file.write_text(res.output)
    assert run(app, ["verify", "--pinned", str(sth_file)]).exit_code == 0
    forged = json.loads(res.output) | {"tree_size": 3}
    sth_file.write_text(json.dumps(forged))
    res = run(app, ["verify", "--pinned", str(sth_file)])
    assert res.exit_code == 1 and "signature" in res.output
    tamper(filled, "UPDATE registry_log SET payload = replace(payload, 'death', 'own_request') WHERE seq = 7")
    res = run(app, ["verify", "--json"])
    assert res.exit_code == 1 and json.loads(res.output)["first_bad_seq"] == 7
    res = run(app, ["verify"])
    assert res.exit_code == 1 and "first bad seq: 7" in res.output


def test_postgresql_registry(tmp_path, pg_schema):
    from sqlalchemy import text

    from keys.config import load_settings
    from keys.store import KeyStore
    from signer.issue import LicenceIssuer
    from signer.registry import Registry

    schema, admin, scoped = pg_schema.schema, pg_schema.admin, pg_schema.url
    settings = load_settings({"ECERT_HOME": str(tmp_path), "ECERT_DATABASE_URL": scoped,
                              "ECERT_KEK": "00112233445566778899aabbccddeeff"})
    with KeyStore(settings) as store, Registry(store) as reg:
        init = store.init_dev()
        env = Env(str(tmp_path), store, LicenceIssuer(store, init.issuer.code), reg, init.issuer.code,
                  init.issuer.name)
        ids = [env.issue(i).entry.identifier for i in (1, 2)]
        assert not env.issue(1).created
        assert env.issue(1, item="高压电工作业").entry.version == 2
        reg.revoke(ids[1], "accident")
        check = reg.verify_log()
        assert check.ok and check.size == 4 and check.root == reg.log.head().root
        assert reg.log.inclusion_proof(2).verify()
        with admin.begin() as c:
            c.execute(text(f'UPDATE "{schema}".registry_log SET at = \'2020-01-01T00:00:00Z\' WHERE seq = 3'))
        check = reg.verify_log()
        assert (check.first_bad_seq, check.problems[0].code) == (3, "altered")
