"""Bulk input formats: Parquet (written by pyarrow) and CSV/JSONL read by workers as byte ranges.

These run the engine in-process (``n_workers=0``): the same chunks and the same task
function as on Dask, without a cluster's start-up time."""

from __future__ import annotations

import csv
import datetime as dt
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import make_photo, make_record
from tests.test_bulk import check_output, manifest_lines, new_home


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return new_home(tmp_path_factory, "bulk_formats_home")


def _parquet_rows(issuer, n: int, start: int, photo_path: str | None = None) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        rec = make_record(issuer.code, issuer.name, seq=i)
        if photo_path is not None:
            rec["photo"] = photo_path
        rows.append(rec)
    return rows


def test_parquet_binary_and_path_photos_bad_rows_and_row_numbers(tmp_path, home):
    from signer.bulk import run_bulk

    settings, issuer = home
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(make_photo(shade=5))
    binary = _parquet_rows(issuer, 5, 600)
    binary[1]["id_number"] = "110105198503120000"  # wrong check digit
    binary[3]["sex"] = None  # a null is a missing field
    pq.write_table(pa.Table.from_pylist(binary), tmp_path / "bin.parquet", row_group_size=2)
    r = run_bulk(tmp_path / "bin.parquet", tmp_path / "out", store_settings=settings, chunk_size=3, n_workers=0)
    lines = manifest_lines(r.out_dir)
    assert [x["line"] for x in lines] == [1, 2, 3, 4, 5]  # row numbers, as CSV/JSONL number lines
    assert (r.done, r.failed, r.chunks) == (3, 2, 2)
    assert lines[1]["errors"][0]["field"] == "id_number" and lines[1]["errors"][0]["message_zh"]
    assert lines[3]["errors"][0]["field"] == "sex"
    check_output(r.out_dir, lines)

    by_path = _parquet_rows(issuer, 2, 610, photo_path="photos/a.jpg")  # a string column: path beside the file
    pq.write_table(pa.Table.from_pylist(by_path), tmp_path / "paths.parquet")
    r = run_bulk(tmp_path / "paths.parquet", tmp_path / "out2", store_settings=settings, chunk_size=5, n_workers=0)
    assert (r.done, r.failed) == (2, 0)
    with zipfile.ZipFile(r.out_dir / f"{manifest_lines(r.out_dir)[0]['identifier']}.ofd") as ofd:
        inside = [ofd.read(n) for n in ofd.namelist()]
    assert (tmp_path / "photos" / "a.jpg").read_bytes() in inside  # the photo the path named is in the sealed file


def test_parquet_chunks_are_exact_across_row_groups(tmp_path, home):
    from signer.bulk_io import count_records, read_chunks

    _, issuer = home
    rows = _parquet_rows(issuer, 11, 620)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet", row_group_size=3)
    chunks = list(read_chunks(tmp_path / "in.parquet", 4))
    got = [[line for line, _ in c.records()] for c in chunks]
    assert got == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11]]
    (_, first), = list(chunks[0].records())[:1]
    assert first["id_number"] == rows[0]["id_number"] and first["first_issue_date"] == rows[0]["first_issue_date"]
    assert [c.no for c in read_chunks(tmp_path / "in.parquet", 4, skip={0, 2})] == [1]
    assert count_records(tmp_path / "in.parquet") == 11


@pytest.mark.parametrize("columns, words", [
    ({"name": ["x"], "nickname": ["y"]}, ["nickname", "sex", "missing"]),
    ({"tags": [["a", "b"]]}, ["tags"]),
])
def test_parquet_with_the_wrong_schema_is_refused_clearly(tmp_path, home, columns, words):
    from signer.bulk import BulkInputError, run_bulk

    settings, issuer = home
    base = {k: [v] for k, v in make_record(issuer.code, issuer.name, seq=630).items()}
    table = pa.table({**base, **columns} if "tags" in columns else columns)
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(BulkInputError) as e:
        run_bulk(tmp_path / "bad.parquet", tmp_path / "out", store_settings=settings, n_workers=0)
    assert e.value.code == "schema" and all(w in e.value.message_en for w in words) and "Parquet" in e.value.message_zh
    assert not (tmp_path / "out" / "manifest.jsonl").exists()

    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(BulkInputError) as e:
        run_bulk(tmp_path / "junk.parquet", tmp_path / "out", store_settings=settings, n_workers=0)
    assert e.value.code == "parquet"


def _reference_csv(path: Path) -> list[tuple[int, dict]]:
    """What csv.DictReader over the whole file says: (line_num, non-empty fields) per row."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        return [(reader.line_num, {k: v for k, v in row.items() if v}) for row in reader]


def test_csv_byte_ranges_keep_quoted_newlines_and_line_numbers(tmp_path, home):
    from signer.bulk_io import read_chunks

    _, issuer = home
    (tmp_path / "p.jpg").write_bytes(make_photo(shade=2))
    recs = []
    for i in range(7):
        rec = {k: (v.isoformat() if isinstance(v, dt.date) else v)
               for k, v in make_record(issuer.code, issuer.name, seq=640 + i).items()}
        rec["photo"] = "p.jpg"
        recs.append(rec)
    recs[2]["name"] = "张\n三,\r\n\"四\""  # quoted newlines, comma and quotes inside one field
    recs[5]["name"] = "\n\n"
    path = tmp_path / "in.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as f:  # with a BOM, as Excel writes it
        w = csv.DictWriter(f, fieldnames=list(recs[0]))
        w.writeheader()
        for i, rec in enumerate(recs):
            w.writerow(rec)
            if i == 3:
                f.write("\r\n")  # a blank line is no record
    want = _reference_csv(path)
    for size in (1, 2, 3, 10):
        got = [(line, rec) for c in read_chunks(path, size) for line, rec in c.records()]
        assert [line for line, _ in got] == [line for line, _ in want]
        assert [rec["name"] for _, rec in got] == [rec["name"] for _, rec in want]
        assert all(rec["photo"] == (tmp_path / "p.jpg").read_bytes() for _, rec in got)
        assert [len(list(c.records())) for c in read_chunks(path, size)][:-1] == [size] * ((len(recs) - 1) // size)


def test_jsonl_ranges_blank_lines_and_a_changed_input(tmp_path, home):
    from signer.bulk_io import BulkInputError, read_chunks

    _, issuer = home
    path = tmp_path / "in.jsonl"
    rec = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in make_record(issuer.code, issuer.name).items()}
    rec["photo"] = "p.jpg"
    path.write_text("\n" + json.dumps(rec) + "\n\n  \n" + json.dumps(rec) + "\n" + json.dumps(rec) + "\n\n",
                    encoding="utf-8")
    chunks = list(read_chunks(path, 2))
    assert [[line for line, _ in c.records()] for c in chunks] == [[2, 5], [6]]
    with path.open("a") as f:
        f.write("{}\n")
    with pytest.raises(BulkInputError) as e:  # a worker never signs a file that changed under the job
        list(chunks[1].records())
    assert e.value.code == "changed"
    path.unlink()
    with pytest.raises(BulkInputError) as e:
        list(chunks[0].records())
    assert e.value.code == "not_visible" and "shared filesystem" in e.value.message_en


def test_issuer_restriction_is_a_field_error(tmp_path, home):
    from signer.bulk import run_bulk
    from tests.test_bulk import write_jsonl

    settings, issuer = home
    src = write_jsonl(tmp_path / "in.jsonl", issuer, 2, start=650)
    r = run_bulk(src, tmp_path / "out", store_settings=settings, n_workers=0, issuer_code="91110000MA01ABCD1X")
    lines = manifest_lines(r.out_dir)
    assert (r.done, r.failed) == (0, 2)
    assert {(e["field"], e["code"]) for x in lines for e in x["errors"]} == {("issuer_code", "issuer_not_allowed")}
    assert not list(r.out_dir.glob("*.ofd"))


def test_csv_cell_above_the_csv_module_default_limit_is_a_record_not_a_crash(tmp_path, home):
    """A base64 photo inline in a CSV cell easily passes csv's 128 KiB field limit (it used to raise csv.Error)."""
    import base64

    from signer.bulk import run_bulk

    settings, issuer = home
    rec = {k: (v.isoformat() if isinstance(v, dt.date) else v)
           for k, v in make_record(issuer.code, issuer.name, seq=660).items()}
    rec["photo"] = base64.b64encode(make_photo(shade=1) + b"\0" * 120_000).decode()  # a JPEG with a 120 kB tail
    assert len(rec["photo"]) > 131072
    with (tmp_path / "in.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rec))
        w.writeheader()
        w.writerow(rec)
    r = run_bulk(tmp_path / "in.csv", tmp_path / "out", store_settings=settings, n_workers=0)
    assert r.done + r.failed == 1 and [x["line"] for x in manifest_lines(r.out_dir)] == [2]
