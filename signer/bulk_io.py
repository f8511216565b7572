"""Streamed input and output of the bulk engine: records in, chunks out, files written atomically.

Input (.jsonl, .csv, .parquet) is cut into numbered chunks of N records; the numbering is a
pure function of (file, N), so a resumed job sees the same chunk k it saw before the crash.
For JSONL and CSV the coordinator only finds where each chunk starts and ends (a scan of
line ends; CSV rows through the csv parser, so quoted newlines stay inside a record) and a
chunk is a *byte range*: the worker reads, parses and loads the photos itself. The
coordinator then costs ~1 us per record instead of parsing and shipping every record with
its photo, which on a 2-core machine took CPU from the workers. Parquet cannot be split
into row ranges without decoding, so the coordinator streams it (``iter_batches``, one
chunk in memory) and ships the rows; photos given as paths are still read by the worker.
Workers must see the input, its photos and the output at the same paths (one machine, or
a shared filesystem on a cluster).

Output: each OFD is written to a ``.part`` file then linked into place under
``<identifier>.ofd`` (first writer wins, see `publish_once`), so a file under its final name
is always complete and never replaced. Each chunk's manifest lines go to their own part file
(also renamed into place) and the final ``manifest.jsonl`` is stitched from them in chunk
order: a chunk redone after a crash replaces its part instead of appending twice.
"""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keys.sm3 import sm3

SUFFIXES = (".jsonl", ".csv", ".parquet")
MANIFEST = "manifest.jsonl"
csv.field_size_limit(64 << 20)  # a base64 photo inline in a CSV cell is far above the 128 KiB default


class BulkProblem(Exception):
    """Base of the bulk engine's errors: a bilingual message and a short code; pickles across workers."""

    def __init__(self, zh: str, en: str, code: str = "bulk"):
        super().__init__(f"{zh} / {en}")
        self.message_zh, self.message_en, self.code = zh, en, code

    def __reduce__(self):
        return type(self), (self.message_zh, self.message_en, self.code)


class BulkInputError(BulkProblem):
    """The input as a whole cannot be read (missing, unknown format, wrong Parquet schema); per-record
    problems are not this."""


@dataclass(frozen=True)
class Chunk:
    """Chunk ``no`` of the input, in one of three forms: ``items`` -- (line, record or error text)
    pairs already in memory; ``rows`` -- Parquet rows (numbered from ``first_line``, photos maybe
    paths relative to ``path``); or neither -- bytes ``start:end`` of the JSONL/CSV file ``path``,
    whose first line is ``first_line`` (``fields``: the CSV header). `records` reads any of them."""

    no: int
    items: list[tuple[int, dict | str]] | None = None
    path: str | None = None
    start: int = 0
    end: int = 0
    first_line: int = 1
    fields: tuple[str, ...] | None = None
    size: int | None = None  # the input's size when the job scanned it: a changed file is refused
    rows: list[dict] | None = None

    def records(self) -> Iterator[tuple[int, dict | str]]:
        if self.items is not None:
            yield from self.items
        elif self.rows is not None:
            base = Path(self.path).parent
            for i, row in enumerate(self.rows):
                yield self.first_line + i, _with_photo(row, base)
        else:
            yield from _range_records(self)


def check_input(path: Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise BulkInputError(f"不支持的输入格式：{path.suffix or '(无扩展名)'}（支持 .jsonl、.csv、.parquet）",
                             f"unsupported input format {path.suffix or '(none)'!r}: use .jsonl, .csv or .parquet",
                             "format")
    if not path.is_file():
        raise BulkInputError(f"输入文件不存在：{path}", f"input file not found: {path}", "not_found")
    return path


def is_photo_path(photo: Any) -> bool:
    """Whether the engine reads ``photo`` as a file beside the input rather than as base64 data
    (also what `POST /v1/jobs` refuses in an upload, which must never name a server path)."""
    return isinstance(photo, str) and bool(photo) and not photo.startswith(("/9j/", "iVBOR")) and len(photo) < 4096


def _with_photo(rec: dict, base: Path) -> dict | str:
    """A photo given as a file path (relative to the input) is read in (raw bytes: no base64 round trip)."""
    photo = rec.get("photo")
    if is_photo_path(photo):
        p = base / photo
        try:
            if p.is_file():
                rec["photo"] = p.read_bytes()
        except OSError as exc:
            return f"photo: cannot read {photo}: {exc.strerror}"
    return rec


# ---------------------------------------------------------------- worker side: one chunk's records


def _range_bytes(chunk: Chunk) -> bytes:
    try:
        with open(chunk.path, "rb") as f:
            if chunk.size is not None and os.fstat(f.fileno()).st_size != chunk.size:
                raise BulkInputError("输入文件在任务进行中被修改", f"the input {chunk.path} changed while the job ran",
                                     "changed")
            f.seek(chunk.start)
            return f.read(chunk.end - chunk.start)
    except FileNotFoundError:
        raise BulkInputError(f"工作进程看不到输入文件 {chunk.path}（集群须共享文件系统）",
                             f"a worker cannot see the input {chunk.path}: workers need the input and output "
                             "at the same paths (a shared filesystem)", "not_visible") from None


def _range_records(chunk: Chunk) -> Iterator[tuple[int, dict | str]]:
    base = Path(chunk.path).parent
    lines = io.BytesIO(_range_bytes(chunk))
    if chunk.fields is not None:
        reader = csv.reader(raw.decode("utf-8", "replace") for raw in lines)
        for row in reader:
            if row:
                rec = {k: v for k, v in zip(chunk.fields, row) if v != ""}
                yield chunk.first_line - 1 + reader.line_num, _with_photo(rec, base)
        return
    for i, raw in enumerate(lines, chunk.first_line):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8", "replace"))
        except json.JSONDecodeError as exc:
            yield i, f"line {i}: not JSON ({exc.msg})"
            continue
        yield i, (_with_photo(rec, base) if isinstance(rec, dict) else f"line {i}: not a JSON object")


# ---------------------------------------------------------------- coordinator side: cutting the input


def read_records(path: Path) -> Iterator[tuple[int, dict | str]]:
    """(line number, record) for every record of the input; a bad line gives an error text."""
    for chunk in read_chunks(path, 1000):
        yield from chunk.records()


def read_chunks(path: Path, size: int, *, skip: set[int] | frozenset = frozenset()) -> Iterator[Chunk]:
    """The input cut into chunks of ``size`` records; chunk numbers in ``skip`` are scanned past, not built."""
    if size < 1:
        raise BulkInputError("每块记录数必须为正整数", f"chunk size must be a positive integer, not {size}", "chunk_size")
    path = check_input(Path(path))
    kind = path.suffix.lower()
    if kind == ".parquet":
        yield from _parquet_chunks(path, size, skip)
        return
    with path.open("rb") as f:
        yield from _range_chunks(path, f, size, skip, kind == ".csv")


def _range_chunks(path: Path, f, size: int, skip, is_csv: bool) -> Iterator[Chunk]:
    total = os.fstat(f.fileno()).st_size
    pos = line = 0

    def lines() -> Iterator[bytes]:
        nonlocal pos, line
        for raw in f:
            pos += len(raw)
            line += 1
            yield raw

    fields = None
    if is_csv:
        head = f.read(3)
        if head != b"\xef\xbb\xbf":
            f.seek(0)
        pos = f.tell()
        reader = csv.reader(raw.decode("utf-8", "replace") for raw in lines())
        rows: Iterable = reader
        try:
            fields = tuple(next((r for r in reader if r), ()))
        except csv.Error as exc:
            raise _csv_error(line, exc) from None
    else:
        rows = (raw for raw in lines() if raw.strip())
    no, n, start, first = 0, 0, pos, line + 1
    try:
        for row in rows:
            if not row:  # a blank CSV line is no record (as csv.DictReader skips it)
                continue
            n += 1
            if n == size:
                if no not in skip:
                    yield Chunk(no, path=str(path), start=start, end=pos, first_line=first, fields=fields, size=total)
                no, n, start, first = no + 1, 0, pos, line + 1
    except csv.Error as exc:
        raise _csv_error(line, exc) from None
    if n and no not in skip:
        yield Chunk(no, path=str(path), start=start, end=pos, first_line=first, fields=fields, size=total)


def _csv_error(line: int, exc: Exception) -> BulkInputError:
    return BulkInputError(f"CSV 第 {line} 行无法解析：{exc}", f"CSV line {line} cannot be parsed: {exc}", "csv")


def _record_fields() -> dict[str, bool]:
    """Record field -> required?, from the record model itself."""
    from ofd.licence.model import LicenceRecord

    return {k: f.is_required() for k, f in LicenceRecord.model_fields.items()}


def _open_parquet(path: Path):
    """The file and the columns to read, or a clear `BulkInputError` when its schema cannot be records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)  # page by page: flat memory
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BulkInputError(f"不是可读的 Parquet 文件：{path.name}", f"{path.name} is not readable Parquet ({exc})",
                             "parquet") from None
    known = _record_fields()
    names = list(schema.names)
    unknown = [n for n in names if n not in known]
    missing = [n for n, required in known.items() if required and n not in names]
    nested = [f.name for f in schema if f.name in known and pa.types.is_nested(f.type)]
    problems_zh, problems_en = [], []
    if unknown:
        problems_zh.append(f"未知列 {', '.join(unknown)}")
        problems_en.append(f"unknown columns {', '.join(unknown)}")
    if missing:
        problems_zh.append(f"缺少必需列 {', '.join(missing)}")
        problems_en.append(f"missing required columns {', '.join(missing)}")
    if nested:
        problems_zh.append(f"列 {', '.join(nested)} 不是单值类型")
        problems_en.append(f"columns {', '.join(nested)} are lists/structs, not single values")
    if problems_en:
        raise BulkInputError(f"Parquet 列与记录字段不符：{'；'.join(problems_zh)}",
                             f"the Parquet columns are not the record fields: {'; '.join(problems_en)} "
                             f"(expected: {', '.join(known)})", "schema")
    return pf


def _parquet_chunks(path: Path, size: int, skip) -> Iterator[Chunk]:
    import pyarrow as pa

    pf = _open_parquet(path)
    no, first, rows = 0, 1, []
    try:
        for batch in pf.iter_batches(batch_size=size, use_threads=False):
            if no in skip and not rows and batch.num_rows == size:  # read past a done chunk without converting it
                no, first = no + 1, first + size
                continue
            rows.extend({k: v for k, v in r.items() if v is not None} for r in batch.to_pylist())
            while len(rows) >= size:
                if no not in skip:
                    yield Chunk(no, path=str(path), first_line=first, rows=rows[:size])
                no, first, rows = no + 1, first + size, rows[size:]
    except pa.ArrowException as exc:
        raise BulkInputError(f"Parquet 文件无法读取：{exc}", f"the Parquet file cannot be read: {exc}", "parquet") from None
    if rows and no not in skip:
        yield Chunk(no, path=str(path), first_line=first, rows=rows)


def count_records(path: Path) -> int | None:
    """Records in the file (for progress and ETA), counted without parsing; None if unreadable.
    (A CSV with quoted newlines counts a few too many: it is an estimate.)"""
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            return _open_parquet(path).metadata.num_rows
        with path.open("rb") as f:
            n = sum(1 for line in f if line.strip())
    except (OSError, BulkInputError):
        return None
    return max(n - 1, 0) if path.suffix.lower() == ".csv" else n


def fingerprint(path: Path, head: int = 1 << 20) -> str:
    """Size, mtime and SM3 of the first MiB: cheap, and enough to refuse resuming on a different file."""
    st = Path(path).stat()
    with Path(path).open("rb") as f:
        return f"{st.st_size}:{st.st_mtime_ns}:{sm3(f.read(head)).hex()[:32]}"


class BulkOutputError(BulkProblem):
    """The output cannot be written (disk full, file too large, read-only, quota): the job stops,
    nothing half-written is left under a final name, and it resumes once there is room."""

    def __init__(self, zh: str, en: str, code: str = "output_write"):
        super().__init__(zh, en, code)


def _output_error(exc: OSError, target: Path, tmp: Path) -> BulkOutputError:
    tmp.unlink(missing_ok=True)  # a torn temporary file would only take more of a full disk
    why = exc.strerror or type(exc).__name__
    return BulkOutputError(f"无法写入输出文件 {target}：{why}", f"cannot write the output file {target}: {why}")


def write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` under ``target`` so no reader (or crash) ever sees a half-written file."""
    tmp = target.with_name(target.name + ".part")
    try:
        with tmp.open("wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except OSError as exc:
        raise _output_error(exc, target, tmp) from None


def publish_once(target: Path, data: bytes) -> bytes:
    """Put ``data`` under ``target`` unless a complete file is already there; returns what is there.

    First writer wins (a hard link never replaces): two attempts at the same licence -- a
    redone chunk racing a worker that outlived its coordinator -- leave one file, and both
    report that file's bytes, so the manifest's SM3 always matches the disk."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    try:
        tmp.write_bytes(data)
    except OSError as exc:
        raise _output_error(exc, target, tmp) from None
    try:
        os.link(tmp, target)
    except FileExistsError:
        data = target.read_bytes()
    except OSError:  # a file system without hard links: last writer wins, still never half a file
        os.replace(tmp, target)
        return data
    tmp.unlink(missing_ok=True)
    return data


def parts_dir(out_dir: Path, job_id: str) -> Path:
    return Path(out_dir) / ".bulk" / job_id


def write_chunk_manifest(out_dir: Path, job_id: str, no: int, lines: list[dict]) -> None:
    d = parts_dir(out_dir, job_id)
    d.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
    write_atomic(d / f"chunk-{no:08d}.jsonl", body)


def has_chunk_manifest(out_dir: Path, job_id: str, no: int) -> bool:
    return (parts_dir(out_dir, job_id) / f"chunk-{no:08d}.jsonl").is_file()


def assemble_manifest(out_dir: Path, job_id: str, n_chunks: int) -> Path:
    """Stitch the chunk manifests, in input order, into ``manifest.jsonl`` (streamed, renamed into place)."""
    d, target = parts_dir(out_dir, job_id), Path(out_dir) / MANIFEST
    tmp = target.with_name(target.name + ".part")
    with tmp.open("wb") as out:
        for no in range(n_chunks):
            with (d / f"chunk-{no:08d}.jsonl").open("rb") as f:
                while block := f.read(1 << 16):
                    out.write(block)
    os.replace(tmp, target)
    return target
