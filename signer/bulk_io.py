"""Streamed input and output of the bulk engine: records in, chunks out, files written atomically.

Input is read one line (JSONL) or row (CSV) at a time and cut into numbered chunks of N
records, so memory is one chunk however large the file. The numbering is a pure function
of (file, N): a resumed job sees the same chunk k it saw before the crash.

Output: each OFD is written to a ``.part`` file then linked into place under
``<identifier>.ofd`` (first writer wins, see `publish_once`), so a file under its final name
is always complete and never replaced. Each chunk's manifest lines go to their own part file
(also renamed into place) and the final ``manifest.jsonl`` is stitched from them in chunk
order: a chunk redone after a crash replaces its part instead of appending twice.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from keys.sm3 import sm3

SUFFIXES = (".jsonl", ".csv")
MANIFEST = "manifest.jsonl"


class BulkProblem(Exception):
    """Base of the bulk engine's errors: a bilingual message and a short code; pickles across workers."""

    def __init__(self, zh: str, en: str, code: str = "bulk"):
        super().__init__(f"{zh} / {en}")
        self.message_zh, self.message_en, self.code = zh, en, code

    def __reduce__(self):
        return type(self), (self.message_zh, self.message_en, self.code)


class BulkInputError(BulkProblem):
    """The input as a whole cannot be read (missing, unknown format); per-record problems are not this."""


@dataclass(frozen=True)
class Chunk:
    """Records ``start``.. of the input: items are (line number, record dict or an error text)."""

    no: int
    items: list[tuple[int, dict | str]]


def check_input(path: Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise BulkInputError(f"不支持的输入格式：{path.suffix or '(无扩展名)'}（支持 .jsonl、.csv）",
                             f"unsupported input format {path.suffix or '(none)'!r}: use .jsonl or .csv", "format")
    if not path.is_file():
        raise BulkInputError(f"输入文件不存在：{path}", f"input file not found: {path}", "not_found")
    return path


def _with_photo(rec: dict, base: Path) -> dict | str:
    """A photo given as a file path (relative to the input) is read in as base64."""
    photo = rec.get("photo")
    if isinstance(photo, str) and photo and not photo.startswith(("/9j/", "iVBOR")) and len(photo) < 4096:
        p = base / photo
        try:
            if p.is_file():
                rec["photo"] = base64.b64encode(p.read_bytes()).decode()
        except OSError as exc:
            return f"photo: cannot read {photo}: {exc.strerror}"
    return rec


def read_records(path: Path) -> Iterator[tuple[int, dict | str]]:
    """(line number, record) for every record of a .jsonl or .csv file; a bad line gives an error text."""
    path = check_input(path)
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            for row in reader:
                rec = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
                yield reader.line_num, _with_photo(rec, path.parent)
        return
    with path.open(encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                yield i, f"line {i}: not JSON ({exc.msg})"
                continue
            yield i, (_with_photo(rec, path.parent) if isinstance(rec, dict) else f"line {i}: not a JSON object")


def read_chunks(path: Path, size: int, *, skip: set[int] | frozenset = frozenset()) -> Iterator[Chunk]:
    """The input cut into chunks of ``size`` records; chunk numbers in ``skip`` are read past, not built."""
    if size < 1:
        raise BulkInputError("每块记录数必须为正整数", f"chunk size must be a positive integer, not {size}", "chunk_size")
    it = read_records(path)
    no = 0
    while True:
        items = list(islice(it, size))
        if not items:
            return
        if no not in skip:
            yield Chunk(no, items)
        no += 1


def count_records(path: Path) -> int | None:
    """Records in the file (for progress and ETA), counted without parsing; None if unreadable."""
    try:
        with Path(path).open("rb") as f:
            n = sum(1 for line in f if line.strip())
    except OSError:
        return None
    return max(n - 1, 0) if Path(path).suffix.lower() == ".csv" else n


def fingerprint(path: Path, head: int = 1 << 20) -> str:
    """Size, mtime and SM3 of the first MiB: cheap, and enough to refuse resuming on a different file."""
    st = Path(path).stat()
    with Path(path).open("rb") as f:
        return f"{st.st_size}:{st.st_mtime_ns}:{sm3(f.read(head)).hex()[:32]}"


def write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` under ``target`` so no reader (or crash) ever sees a half-written file."""
    tmp = target.with_name(target.name + ".part")
    with tmp.open("wb") as f:
        f.write(data)
    os.replace(tmp, target)


def publish_once(target: Path, data: bytes) -> bytes:
    """Put ``data`` under ``target`` unless a complete file is already there; returns what is there.

    First writer wins (a hard link never replaces): two attempts at the same licence -- a
    redone chunk racing a worker that outlived its coordinator -- leave one file, and both
    report that file's bytes, so the manifest's SM3 always matches the disk."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    tmp.write_bytes(data)
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
