"""Bulk output as one ZIP: streamed, atomic, input order, one copy per licence even after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.test_bulk import kill_9_after_chunks, log_check, new_home, write_jsonl


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return new_home(tmp_path_factory, "bulk_zip_home")


def check_zip(path: Path) -> list[dict]:
    """The ZIP is sound; it holds each identifier's OFD once, in input order, then the manifest, and every
    SM3 in the manifest is the SM3 of the entry. Returns the manifest lines."""
    from keys.sm3 import sm3

    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        lines = [json.loads(x) for x in zf.read("manifest.jsonl").decode().splitlines()]
        idents = list(dict.fromkeys(x["identifier"] for x in lines if "identifier" in x))
        assert names == [f"{i}.ofd" for i in idents] + ["manifest.jsonl"]
        for x in lines:
            if "identifier" in x:
                assert sm3(zf.read(f"{x['identifier']}.ofd")).hex() == x["sm3"]
    assert [x["line"] for x in lines] == sorted(x["line"] for x in lines)
    return lines


def test_zip_output_in_input_order_with_duplicates_and_errors(tmp_path, home):
    from signer.bulk import run_bulk

    settings, issuer = home
    src = write_jsonl(tmp_path / "in.jsonl", issuer, 5, start=700, bad={702: {"id_number": "1"}})
    with src.open("a", encoding="utf-8") as f:  # the first record once more: same licence, one file
        f.write(src.read_text(encoding="utf-8").splitlines()[0] + "\n")
    r = run_bulk(src, tmp_path / "licences.zip", store_settings=settings, chunk_size=2, n_workers=0)
    assert r.archive == tmp_path / "licences.zip" and (r.done, r.failed) == (5, 1)
    lines = check_zip(r.archive)
    assert len(lines) == 6 and lines[5]["identifier"] == lines[0]["identifier"]
    assert lines[2]["errors"][0]["field"] == "id_number"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "licences.zip"]  # no staging, no .part

    again = run_bulk(src, tmp_path / "licences.zip", store_settings=settings, chunk_size=2, n_workers=0, job_id=r.job_id)
    assert again.signed_now == 0 and again.archive == r.archive  # a finished job is not run twice


def test_zip64_records_read_back(tmp_path):
    """The Zip64 end records and per-entry offsets (used past 65,535 entries or 4 GiB), forced early."""
    from signer.bulk_zip import ZipStream

    (tmp_path / "big.bin").write_bytes(os.urandom(300_000))
    for kw in ({}, {"zip64_from": 100, "entries64_from": 2}):
        z = ZipStream(tmp_path / "x.zip", **kw)
        z.add("a.ofd", b"first")
        z.add_file("b.bin", tmp_path / "big.bin")
        z.add("c.ofd", b"third")
        z.close()
        with zipfile.ZipFile(tmp_path / "x.zip") as zf:
            assert zf.testzip() is None and zf.namelist() == ["a.ofd", "b.bin", "c.ofd"]
            assert zf.read("b.bin") == (tmp_path / "big.bin").read_bytes() and zf.read("c.ofd") == b"third"
        if shutil.which("unzip"):
            assert subprocess.run(["unzip", "-tq", str(tmp_path / "x.zip")], capture_output=True).returncode == 0
    z = ZipStream(tmp_path / "y.zip")
    z.add("a", b"x")
    z.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin", "x.zip"]


_CHILD = """
import sys
from keys.config import load_settings
from signer.bulk import run_bulk
run_bulk(sys.argv[1], sys.argv[2], store_settings=load_settings(), chunk_size=2, job_id="zip-killed", n_workers=0)
"""


def test_kill_9_mid_zip_job_then_resume_gives_one_copy_each(tmp_path, home):
    from signer.bulk import run_bulk

    settings, issuer = home
    n = 70
    src = write_jsonl(tmp_path / "in.jsonl", issuer, n, start=800)
    out = tmp_path / "out.zip"
    size0 = log_check(settings).size
    kill_9_after_chunks(_CHILD, [src, out], settings, "zip-killed", 3)
    assert not out.exists()  # no ZIP until the job is complete

    r = run_bulk(src, out, store_settings=settings, chunk_size=2, n_workers=0, job_id="zip-killed")
    lines = check_zip(out)
    assert [x["line"] for x in lines] == list(range(1, n + 1)) and r.done == n
    assert r.signed_now < n  # finished chunks were not redone
    check = log_check(settings)
    assert check.ok and check.size == size0 + n  # each licence logged exactly once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.zip"]


def test_ecert_issue_to_a_zip_lists_failed_lines(tmp_path, home):
    from typer.testing import CliRunner

    from api.cli import app

    settings, issuer = home
    src = write_jsonl(tmp_path / "in.jsonl", issuer, 3, start=900, bad={901: {"category": "不存在的作业"}})
    res = CliRunner().invoke(app, ["issue", str(src), "-o", str(tmp_path / "o.zip")], env={"ECERT_HOME": str(settings.home)})
    assert res.exit_code == 1, res.output
    assert "line 2: category" in res.output and "issued 2, failed 1" in res.output
    assert len(check_zip(tmp_path / "o.zip")) == 3
    res = CliRunner().invoke(app, ["issue", str(src), "-o", str(tmp_path / "o"), "--zip", "--workers", "0"],
                             env={"ECERT_HOME": str(settings.home)})
    assert res.exit_code == 1 and zipfile.is_zipfile(tmp_path / "o")
