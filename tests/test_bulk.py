"""Bulk engine on a real Dask LocalCluster (2 worker processes): manifest, files, resume after kill -9."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_photo, make_record

ROOT = Path(__file__).resolve().parents[1]


def _jsonable(rec: dict) -> dict:
    out = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in rec.items()}
    out["photo"] = base64.b64encode(rec["photo"]).decode()
    return out


def write_jsonl(path: Path, issuer, n: int, *, start: int = 1, bad: dict[int, dict] | None = None) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(start, start + n):
            rec = _jsonable(make_record(issuer.code, issuer.name, seq=i))
            rec.update((bad or {}).get(i, {}))
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def new_home(tmp_path_factory, name: str = "bulk_home"):
    """(settings, development issuer) of a fresh keystore."""
    from keys.config import load_settings
    from keys.store import DEV_ISSUER_CODE, KeyStore

    settings = load_settings({"ECERT_HOME": str(tmp_path_factory.mktemp(name))})
    with KeyStore(settings) as store:
        store.init_dev()
        issuer = store.issuer(DEV_ISSUER_CODE)
    return settings, issuer


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return new_home(tmp_path_factory)


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    from signer.bulk import local_cluster

    cluster = local_cluster(2)  # the engine's own embedded cluster
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def check_output(out: Path, lines: list[dict]) -> None:
    """One file per identifier, each the file the manifest names by SM3, nothing else in the folder."""
    from keys.sm3 import sm3

    idents = [x["identifier"] for x in lines if "identifier" in x]
    assert len(idents) == len(set(idents))
    assert sorted(p.name for p in out.iterdir() if p.name != "manifest.jsonl") == sorted(f"{i}.ofd" for i in idents)
    for x in lines:
        if "identifier" in x:
            assert sm3((out / f"{x['identifier']}.ofd").read_bytes()).hex() == x["sm3"]


def log_check(settings):
    from keys.store import KeyStore
    from signer.registry import Registry

    with KeyStore(settings) as store, Registry(store) as reg:
        return reg.verify_log()


# ---------------------------------------------------------------- streamed input


def test_chunks_are_numbered_and_bad_lines_are_records(tmp_path, home):
    from signer.bulk_io import BulkInputError, read_chunks

    _, issuer = home
    p = write_jsonl(tmp_path / "in.jsonl", issuer, 5)
    with p.open("a") as f:
        f.write("\n{oops\n[1, 2]\n")
    chunks = list(read_chunks(p, 3))
    assert [c.no for c in chunks] == [0, 1, 2]
    items = [list(c.records()) for c in chunks]
    assert [len(x) for x in items] == [3, 3, 1]
    assert [line for line, _ in items[1]] == [4, 5, 7]
    assert "not JSON" in items[1][2][1] and "not a JSON object" in items[2][0][1]
    assert [c.no for c in read_chunks(p, 3, skip={0, 2})] == [1]
    with pytest.raises(BulkInputError) as e:
        list(read_chunks(p, 0))
    assert e.value.code == "chunk_size"
    with pytest.raises(BulkInputError) as e:
        list(read_chunks(tmp_path / "in.xlsx", 3))
    assert e.value.code == "format" and ".jsonl" in e.value.message_zh
    with pytest.raises(BulkInputError) as e:
        list(read_chunks(tmp_path / "missing.csv", 3))
    assert e.value.code == "not_found"


def test_csv_rows_with_photo_paths(tmp_path, home):
    import csv

    from signer.bulk_io import count_records, read_chunks

    _, issuer = home
    (tmp_path / "p1.jpg").write_bytes(make_photo(shade=3))
    rec = _jsonable(make_record(issuer.code, issuer.name, seq=1))
    rec["photo"] = "p1.jpg"
    rec["name"] = "张,三\n"  # a quoted field with a comma and a newline stays one record
    with (tmp_path / "in.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rec))
        w.writeheader()
        w.writerow(rec)
        w.writerow({**rec, "sex": ""})
    (chunk,) = list(read_chunks(tmp_path / "in.csv", 10))
    (_, a), (_, b) = chunk.records()
    assert a["photo"] == (tmp_path / "p1.jpg").read_bytes()
    assert a["name"] == "张,三\n" and "sex" not in b
    assert count_records(tmp_path / "in.jsonl") is None


# ---------------------------------------------------------------- the engine


def test_bulk_run_manifest_files_and_idempotence(tmp_path, home, client):
    from keys.store import KeyStore
    from signer.bulk import run_bulk
    from verifier.ofd_verify import verify_ofd
    from verifier.trust import trust_from_store

    settings, issuer = home
    src = write_jsonl(tmp_path / "in.jsonl", issuer, 9, start=100, bad={103: {"id_number": "123"},
                                                                          107: {"category": "不存在的作业"}})
    seen = []
    r = run_bulk(src, tmp_path / "out", store_settings=settings, chunk_size=4, client=client, on_progress=seen.append)
    lines = manifest_lines(r.out_dir)
    assert [x["line"] for x in lines] == list(range(1, 10))  # one line per record, input order
    assert (r.done, r.failed, r.chunks) == (7, 2, 3)
    assert lines[3]["errors"][0]["field"] == "id_number" and lines[3]["errors"][0]["message_zh"]
    assert lines[7]["errors"][0]["field"] == "category"
    assert all(x["registered"] for x in lines if "identifier" in x)
    check_output(r.out_dir, lines)
    assert seen and seen[-1].done + seen[-1].failed == 9 and seen[-1].total == 9
    with KeyStore(settings) as store:
        one = (r.out_dir / f"{lines[0]['identifier']}.ofd").read_bytes()
        assert verify_ofd(one, trust_from_store(store)).verdict == "valid"
    size = log_check(settings).size

    again = run_bulk(src, tmp_path / "out", store_settings=settings, chunk_size=4, client=client, job_id=r.job_id)
    assert again.signed_now == 0 and again.done == 7  # a finished job is not run twice

    other = run_bulk(src, tmp_path / "out2", store_settings=settings, chunk_size=5, client=client)
    lines2 = manifest_lines(other.out_dir)
    assert [x.get("identifier") for x in lines2] == [x.get("identifier") for x in lines]
    assert not any(x.get("registered") for x in lines2)  # same records: same identifiers, no new rows
    check = log_check(settings)
    assert check.ok and check.size == size


def test_resume_with_other_input_is_refused(tmp_path, home, client):
    from signer.bulk import BulkJobError, job_progress, run_bulk

    settings, issuer = home
    src = write_jsonl(tmp_path / "in.jsonl", issuer, 2, start=200)
    r = run_bulk(src, tmp_path / "out", store_settings=settings, chunk_size=2, client=client, job_id="job-a")
    assert job_progress("job-a", settings).state == "done"
    with pytest.raises(BulkJobError) as e:
        run_bulk(src, tmp_path / "out", store_settings=settings, chunk_size=1, client=client, job_id=r.job_id)
    assert e.value.code == "mismatch"
    with pytest.raises(BulkJobError) as e:
        job_progress("no-such-job", settings)
    assert e.value.code == "not_found"


def kill_9_after_chunks(code: str, args: list, settings, job_id: str, chunks: int) -> None:
    """Run ``code`` (a bulk job) in a child process group and kill -9 all of it once ``chunks`` are done."""
    from signer.bulk import job_progress

    env = {**os.environ, "ECERT_HOME": str(settings.home), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env,
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            try:
                if job_progress(job_id, settings).chunks_done >= chunks:
                    break
            except Exception:  # the job row is not there yet
                pass
            time.sleep(0.02)
        assert child.poll() is None, "the job finished before it could be killed; give it more records"
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the coordinator and its worker processes, mid-job
        child.wait()


_CHILD = """
import sys
from keys.config import load_settings
from signer.bulk import run_bulk
run_bulk(sys.argv[1], sys.argv[2], store_settings=load_settings(), chunk_size=2, job_id="killed", n_workers=2)
"""


def test_kill_9_mid_job_then_resume(tmp_path, home, client):
    from signer.bulk import job_progress, run_bulk

    settings, issuer = home
    n = 60
    src = write_jsonl(tmp_path / "in.jsonl", issuer, n, start=300, bad={310: {"sex": "?"}})
    out = tmp_path / "out"
    size0 = log_check(settings).size
    kill_9_after_chunks(_CHILD, [src, out], settings, "killed", 3)
    before = job_progress("killed", settings)
    assert before.state == "running" and 0 < before.done + before.failed < n
    assert not (out / "manifest.jsonl").exists()

    r = run_bulk(src, out, store_settings=settings, chunk_size=2, client=client, job_id="killed")
    lines = manifest_lines(out)
    assert [x["line"] for x in lines] == list(range(1, n + 1))
    assert (r.done, r.failed) == (n - 1, 1) and lines[10]["errors"][0]["field"] == "sex"
    assert r.signed_now < n  # finished chunks were not redone
    check_output(out, lines)
    check = log_check(settings)
    assert check.ok, check.problems
    assert check.size == size0 + n - 1  # each good record logged exactly once, kill or not
    assert job_progress("killed", settings).state == "done"


def test_publish_once_keeps_the_first_complete_file(tmp_path):
    from signer.bulk_io import publish_once

    target = tmp_path / "x.ofd"
    assert publish_once(target, b"first") == b"first"
    assert publish_once(target, b"second") == b"first"  # a racing redo reports the file that is there
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["x.ofd"]


def test_cli_run_on_a_scheduler_and_status(tmp_path, home, client):
    from typer.testing import CliRunner

    from api.cli_bulk import app

    settings, issuer = home
    src = write_jsonl(tmp_path / "in.jsonl", issuer, 3, start=400, bad={401: {"name": ""}})
    env = {"ECERT_HOME": str(settings.home)}
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(src), "-o", str(tmp_path / "out"), "--scheduler", client.scheduler.address,
                              "--chunk-size", "2", "--job-id", "cli-job"], env=env)
    assert res.exit_code == 1, res.output  # one record failed
    assert "issued 2, failed 1" in res.output
    check_output(tmp_path / "out", manifest_lines(tmp_path / "out"))
    res = runner.invoke(app, ["status", "cli-job", "--json"], env=env)
    p = json.loads(res.output)
    assert res.exit_code == 0 and (p["state"], p["done"], p["failed"], p["total"]) == ("done", 2, 1, 3)
    res = runner.invoke(app, ["run", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o2")], env=env)
    assert res.exit_code == 2 and ".jsonl" in res.output
    res = runner.invoke(app, ["status", "nope"], env=env)
    assert res.exit_code == 1 and "no bulk job" in res.output

    from api.cli import app as ecert  # `ecert issue` on the same cluster: the same engine

    res = runner.invoke(ecert, ["issue", str(src), "-o", str(tmp_path / "o3"), "--scheduler", client.scheduler.address],
                        env=env)
    assert res.exit_code == 1 and "line 2: name" in res.output and "issued 2, failed 1" in res.output
    check_output(tmp_path / "o3", manifest_lines(tmp_path / "o3"))


def test_errors_cross_the_worker_boundary_intact():
    import pickle

    from signer.bulk import BulkError

    e = pickle.loads(pickle.dumps(BulkError("签章服务暂不可用", "signing is unavailable", "unavailable")))
    assert (type(e), e.message_zh, e.message_en, e.code) == (BulkError, "签章服务暂不可用", "signing is unavailable",
                                                              "unavailable")


def test_parquet_in_zip_out_on_dask(tmp_path, home, client):
    """Parquet rows travel in the task (dates, binary photos); the ZIP is assembled by the coordinator."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from signer.bulk import run_bulk
    from tests.test_bulk_zip import check_zip

    settings, issuer = home
    rows = [make_record(issuer.code, issuer.name, seq=i) for i in range(500, 505)]
    rows[4]["valid_from"] = None
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet", row_group_size=2)
    r = run_bulk(tmp_path / "in.parquet", tmp_path / "out.zip", store_settings=settings, chunk_size=2, client=client)
    assert (r.done, r.failed, r.chunks) == (4, 1, 3)
    lines = check_zip(tmp_path / "out.zip")
    assert [x["line"] for x in lines] == [1, 2, 3, 4, 5] and lines[4]["errors"][0]["field"] == "valid_from"
