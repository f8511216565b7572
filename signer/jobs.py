"""Bulk job state in the keystore's database: one row per job, one per chunk.

The coordinator (never a worker) writes here: a chunk is ``running`` when it was handed to
a worker and ``done`` once its files and its manifest part are in place. A resumed job
skips ``done`` chunks and redoes the rest; that is safe because issuing is idempotent in
the registry and files are renamed into place (see `signer.bulk`). Progress (done, failed,
rate, ETA) is read from these rows, so any process -- CLI, API server -- can show it.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, and_, inspect, select
from sqlalchemy.engine import Connection

from keys.store import KeyStore

from .bulk_io import BulkProblem
from .registry_db import RegistryDB, RegistryError

metadata = MetaData()
jobs_t = Table(
    "bulk_jobs", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("input_path", Text, nullable=False),
    Column("fingerprint", String(200), nullable=False),
    Column("out_dir", Text, nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # running | done | failed
    Column("total", Integer),
    Column("n_chunks", Integer),  # known once the whole input has been read
    Column("created_at", String(20), nullable=False),
    Column("run_started", Float, nullable=False),  # epoch seconds of the current run (rate, ETA)
    Column("run_base", Integer, nullable=False),  # records already processed when this run began
    Column("error", Text),
)
chunks_t = Table(
    "bulk_chunks", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("chunk_no", Integer, primary_key=True),
    Column("state", String(16), nullable=False),  # running | done
    Column("attempts", Integer, nullable=False),
    Column("ok", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
)

RUNNING, DONE, FAILED = "running", "done", "failed"


class BulkJobError(BulkProblem):
    """A job cannot be started, resumed or found; the message says which and why (zh / en)."""


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    state: str
    total: int | None
    done: int  # records signed (or already present) and listed in the manifest
    failed: int  # records with field-named errors in the manifest
    chunks_done: int
    rate: float  # records per second in the current run
    eta_s: float | None
    out_dir: str
    error: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


class JobTable:
    """The ``bulk_jobs`` / ``bulk_chunks`` tables next to the keystore's (created on first use)."""

    def __init__(self, store: KeyStore):
        self.db = RegistryDB(store)  # its engine and write-serialised transactions
        try:
            with self._tx() as c:
                missing = not all(inspect(c).has_table(t.name) for t in metadata.sorted_tables)
            if missing:
                with self._tx(write=True) as c:
                    metadata.create_all(c)
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        try:
            with self.db.tx(write) as c:
                yield c
        except RegistryError as exc:
            raise BulkJobError("任务表数据库错误", exc.message_en, "database") from exc

    # ---- the coordinator's writes

    def open(self, job_id: str, input_path: str, fingerprint: str, out_dir: str, chunk_size: int,
             total: int | None) -> set[int]:
        """Start job ``job_id`` or resume it; returns the chunk numbers already done."""
        now = time.time()
        with self._tx(write=True) as c:
            row = c.execute(select(jobs_t).where(jobs_t.c.job_id == job_id)).mappings().first()
            if row is None:
                c.execute(jobs_t.insert().values(
                    job_id=job_id, input_path=input_path, fingerprint=fingerprint, out_dir=out_dir,
                    chunk_size=chunk_size, state=RUNNING, total=total, created_at=_iso_now(), run_started=now,
                    run_base=0))
                return set()
            for col, want in (("fingerprint", fingerprint), ("out_dir", out_dir), ("chunk_size", chunk_size)):
                if row[col] != want:
                    raise BulkJobError(f"任务 {job_id} 的 {col} 与原任务不同，不能续做",
                                       f"job {job_id} was started with another {col} ({row[col]!r}); "
                                       "resume it with the same input, output and chunk size", "mismatch")
            done = {r.chunk_no for r in c.execute(select(chunks_t.c.chunk_no).where(
                and_(chunks_t.c.job_id == job_id, chunks_t.c.state == DONE)))}
            base = self._counts(c, job_id)
            c.execute(jobs_t.update().where(jobs_t.c.job_id == job_id).values(
                state=RUNNING, run_started=now, run_base=base[0] + base[1], error=None, total=total))
        return done

    def start_chunk(self, job_id: str, no: int) -> int:
        """Mark chunk ``no`` handed out; returns its attempt number (1 = first time)."""
        with self._tx(write=True) as c:
            att = c.execute(select(chunks_t.c.attempts).where(
                and_(chunks_t.c.job_id == job_id, chunks_t.c.chunk_no == no))).scalar()
            if att is None:
                c.execute(chunks_t.insert().values(job_id=job_id, chunk_no=no, state=RUNNING, attempts=1, ok=0,
                                                   failed=0))
                return 1
            c.execute(chunks_t.update().where(and_(chunks_t.c.job_id == job_id, chunks_t.c.chunk_no == no))
                      .values(state=RUNNING, attempts=att + 1))
            return att + 1

    def finish_chunk(self, job_id: str, no: int, ok: int, failed: int) -> None:
        with self._tx(write=True) as c:
            c.execute(chunks_t.update().where(and_(chunks_t.c.job_id == job_id, chunks_t.c.chunk_no == no))
                      .values(state=DONE, ok=ok, failed=failed))

    def finish(self, job_id: str, *, n_chunks: int | None = None, error: str | None = None) -> None:
        vals = {"state": FAILED if error else DONE, "error": error}
        if n_chunks is not None:
            vals["n_chunks"] = n_chunks
        with self._tx(write=True) as c:
            c.execute(jobs_t.update().where(jobs_t.c.job_id == job_id).values(**vals))

    # ---- anyone's reads

    def is_finished(self, job_id: str) -> bool:
        with self._tx() as c:
            return c.execute(select(jobs_t.c.state).where(jobs_t.c.job_id == job_id)).scalar() == DONE

    @staticmethod
    def _counts(c: Connection, job_id: str) -> tuple[int, int, int]:
        rows = c.execute(select(chunks_t.c.ok, chunks_t.c.failed).where(
            and_(chunks_t.c.job_id == job_id, chunks_t.c.state == DONE))).all()
        return sum(r.ok for r in rows), sum(r.failed for r in rows), len(rows)

    def progress(self, job_id: str) -> JobProgress:
        with self._tx() as c:
            row = c.execute(select(jobs_t).where(jobs_t.c.job_id == job_id)).mappings().first()
            if row is None:
                raise BulkJobError(f"没有编号为 {job_id} 的批量任务", f"no bulk job {job_id!r}", "not_found")
            ok, failed, n = self._counts(c, job_id)
        elapsed = max(time.time() - row["run_started"], 1e-6)
        rate = (ok + failed - row["run_base"]) / elapsed if row["state"] == RUNNING else 0.0
        left = None if row["total"] is None else max(row["total"] - ok - failed, 0)
        eta = 0.0 if row["state"] == DONE else (left / rate if left is not None and rate > 0 else None)
        return JobProgress(job_id, row["state"], row["total"], ok, failed, n, rate, eta, row["out_dir"], row["error"])


def _iso_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
