"""The service's bulk jobs: a queue in the keystore's database, a lease per job, a runner thread.

`signer.bulk.run_bulk` does the signing (the same code path as ``ecert bulk run``); this module
decides *which process* runs *which job* and *when*:

* ``service_jobs`` holds one row per uploaded job: who asked (token id), the idempotency key
  and the SM3 of the input, options, state (``queued`` -> ``running`` -> ``done`` | ``failed``),
  times, and a lease (owner, expiry).
* A process claims a job in one serialised write transaction (SQLite ``BEGIN IMMEDIATE``, a
  PostgreSQL advisory lock): the oldest ``queued`` job, or a ``running`` one whose lease expired
  (its server died). At most ``max_running`` jobs hold a live lease across *all* processes
  sharing the database, so ``uvicorn --workers N`` never starts N Dask clusters at once.
* While it runs a job, a heartbeat renews the lease every third of its length; a process that
  was killed stops renewing, and once the lease expires any process -- the restarted server --
  claims the job and calls ``run_bulk`` again with the same job id, which redoes only the
  unfinished chunks (no record lost, none signed twice, the issuance log consistent).
* Progress counts are not copied here: they are read from ``bulk_jobs`` / ``bulk_chunks``
  (`signer.jobs.JobTable`), written by the coordinator as chunks finish.

Each runner runs one job at a time; further jobs wait in ``queued``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text, and_, func, inspect, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from keys.config import Settings
from keys.store import KeyStore, serialised_tx

from .bulk_io import MANIFEST, BulkProblem
from .jobs import BulkJobError, JobProgress, JobTable

log = logging.getLogger("ecert.jobs")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
TERMINAL = (DONE, FAILED)
OUTPUTS = ("dir", "zip")  # a folder of OFDs + manifest.jsonl, or the engine's one ZIP (``out_dir`` is then the file)
RESULT_ZIP = "result.zip"
_PG_JOBS_LOCK = 0x6563657274_07  # its own advisory lock: claims never wait on registry appends

metadata = MetaData()
service_jobs_t = Table(
    "service_jobs", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("owner", String(16)),  # API token id that created the job
    Column("only_issuer", String(64)),  # the token's issuer binding: records of others are refused
    Column("idem_key", String(200)),
    Column("input_sm3", String(64), nullable=False),
    Column("fmt", String(16), nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("output", String(8), nullable=False),
    Column("size", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("total", Integer),
    Column("input_path", Text, nullable=False),
    Column("out_dir", Text, nullable=False),
    Column("ticket", String(64), nullable=False),  # read-progress capability for EventSource (see routes_jobs)
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("lease_owner", String(100)),
    Column("lease_until", Float),
    Column("runs", Integer, nullable=False),
    Column("error", Text),  # JSON {code, message_zh, message_en}
)
Index("uq_service_jobs_idem", service_jobs_t.c.owner, service_jobs_t.c.idem_key, unique=True)
Index("ix_service_jobs_input", service_jobs_t.c.owner, service_jobs_t.c.input_sm3)
Index("ix_service_jobs_state", service_jobs_t.c.state, service_jobs_t.c.created_at)


class JobQueueError(BulkProblem):
    """The job table cannot be used (database down) or a request conflicts with an existing job."""


@dataclass(frozen=True)
class ServiceJob:
    job_id: str
    owner: str | None
    only_issuer: str | None
    idem_key: str | None
    input_sm3: str
    fmt: str
    chunk_size: int
    output: str
    size: int
    total: int | None
    input_path: str
    out_dir: str
    ticket: str
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    lease_owner: str | None
    lease_until: float | None
    runs: int
    error: str | None

    @property
    def error_dict(self) -> dict | None:
        return json.loads(self.error) if self.error else None


@dataclass(frozen=True)
class RunnerConfig:
    """How this process runs jobs; built from the service settings (`api.settings`)."""

    jobs_dir: Path
    scheduler: str | None = None  # a Dask scheduler address; None: an embedded LocalCluster per job
    workers: int = 2  # worker processes of the embedded LocalCluster
    lease_s: float = 30.0
    max_running: int = 1  # jobs running at once across every process sharing the database
    poll_s: float = 1.0
    enabled: bool = True  # False: this process only accepts and reports jobs


def _row(r) -> ServiceJob:
    return ServiceJob(**{c.name: r[c.name] for c in service_jobs_t.c})


class JobQueue:
    """The ``service_jobs`` table (created on first use) in the keystore's database."""

    def __init__(self, store: KeyStore):
        self.engine = store.engine
        with self._tx() as c:
            missing = not inspect(c).has_table(service_jobs_t.name)
        if missing:
            with self._tx(write=True) as c:
                metadata.create_all(c)

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        try:
            with serialised_tx(self.engine, write, _PG_JOBS_LOCK) as c:
                yield c
        except SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise JobQueueError("任务表数据库错误", f"job table database error: {type(detail).__name__}",
                                "database") from exc

    def submit(self, *, owner: str | None, only_issuer: str | None = None, idem_key: str | None, input_sm3: str, fmt: str, chunk_size: int,
               output: str, size: int, total: int | None, upload: Path, jobs_dir: Path) -> tuple[ServiceJob, bool]:
        """Queue the uploaded file as a new job, or return the job this request repeats: (job, created).

        A repeat is the same ``idem_key`` from the same owner (with other input or options: a
        `JobQueueError` ``idempotency_conflict``), or, without a key, the same input and options
        from the same owner. Repeating a *failed* job queues it again: it resumes where it stopped."""
        t = service_jobs_t
        with self._tx(write=True) as c:
            same_owner = t.c.owner.is_(None) if owner is None else t.c.owner == owner
            if idem_key is not None:
                found = c.execute(select(t).where(and_(same_owner, t.c.idem_key == idem_key))).mappings().first()
                if found is not None and (found["input_sm3"], found["fmt"], found["chunk_size"], found["output"]) != (
                        input_sm3, fmt, chunk_size, output):
                    raise JobQueueError("该 Idempotency-Key 已用于另一份输入或另一组选项",
                                        "this Idempotency-Key was used with another input or other options",
                                        "idempotency_conflict")
            else:
                found = c.execute(select(t).where(and_(
                    same_owner, t.c.input_sm3 == input_sm3, t.c.fmt == fmt, t.c.chunk_size == chunk_size,
                    t.c.output == output)).order_by(t.c.created_at.desc())).mappings().first()
            if found is not None:
                if found["state"] == FAILED:
                    c.execute(t.update().where(t.c.job_id == found["job_id"]).values(
                        state=QUEUED, error=None, finished_at=None, lease_owner=None, lease_until=None))
                    found = c.execute(select(t).where(t.c.job_id == found["job_id"])).mappings().first()
                return _row(found), False
            job_id = uuid.uuid4().hex[:16]
            folder = Path(jobs_dir) / job_id
            folder.mkdir(parents=True)
            target = folder / f"input.{fmt}"
            c.execute(t.insert().values(
                job_id=job_id, owner=owner, only_issuer=only_issuer, idem_key=idem_key, input_sm3=input_sm3, fmt=fmt, chunk_size=chunk_size,
                output=output, size=size, total=total, input_path=str(target),
                out_dir=str(folder / (RESULT_ZIP if output == "zip" else "out")),
                ticket=secrets.token_urlsafe(24), state=QUEUED, created_at=time.time(), runs=0))
            os.replace(upload, target)  # inside the transaction: a failed move leaves no row
            row = c.execute(select(t).where(t.c.job_id == job_id)).mappings().first()
        return _row(row), True

    def get(self, job_id: str) -> ServiceJob | None:
        with self._tx() as c:
            r = c.execute(select(service_jobs_t).where(service_jobs_t.c.job_id == job_id)).mappings().first()
        return _row(r) if r is not None else None

    def recent(self, owner: str | None, limit: int, *, any_owner: bool = False) -> list[ServiceJob]:
        t = service_jobs_t
        q = select(t).order_by(t.c.created_at.desc()).limit(limit)
        if not any_owner:
            q = q.where(t.c.owner == owner)
        with self._tx() as c:
            return [_row(r) for r in c.execute(q).mappings()]

    def claim(self, worker: str, lease_s: float, max_running: int, now: float | None = None) -> ServiceJob | None:
        """Take the oldest queued job, or a running one whose lease expired; None if there is none
        or ``max_running`` jobs already hold a live lease."""
        t = service_jobs_t
        now = time.time() if now is None else now
        free = or_(t.c.state == QUEUED, and_(t.c.state == RUNNING, or_(t.c.lease_until.is_(None),
                                                                         t.c.lease_until < now)))
        with self._tx() as c:  # the common case, nothing to do, takes no write lock
            if c.scalar(select(t.c.job_id).where(free).limit(1)) is None:
                return None
        with self._tx(write=True) as c:
            live = c.scalar(select(func.count()).select_from(t).where(and_(t.c.state == RUNNING,
                                                                          t.c.lease_until >= now)))
            if live >= max_running:
                return None
            job_id = c.scalar(select(t.c.job_id).where(free).order_by(t.c.created_at).limit(1))
            if job_id is None:
                return None
            c.execute(t.update().where(t.c.job_id == job_id).values(
                state=RUNNING, lease_owner=worker, lease_until=now + lease_s, runs=t.c.runs + 1,
                started_at=func.coalesce(t.c.started_at, now)))
            return _row(c.execute(select(t).where(t.c.job_id == job_id)).mappings().first())

    def _mine(self, job_id: str, worker: str):
        t = service_jobs_t
        return and_(t.c.job_id == job_id, t.c.lease_owner == worker, t.c.state == RUNNING)

    def renew(self, job_id: str, worker: str, lease_s: float) -> bool:
        """Extend our lease; False when another process has taken the job over."""
        with self._tx(write=True) as c:
            return c.execute(service_jobs_t.update().where(self._mine(job_id, worker))
                             .values(lease_until=time.time() + lease_s)).rowcount == 1

    def release(self, job_id: str, worker: str) -> None:
        """Give the job up at once (shutting down): the next claim, here or elsewhere, resumes it."""
        with self._tx(write=True) as c:
            c.execute(service_jobs_t.update().where(self._mine(job_id, worker)).values(lease_until=0.0))

    def finish(self, job_id: str, worker: str, state: str, error: dict | None = None) -> bool:
        """Record the outcome if we still hold the lease (a job taken over is the new owner's to finish)."""
        with self._tx(write=True) as c:
            return c.execute(service_jobs_t.update().where(self._mine(job_id, worker)).values(
                state=state, finished_at=time.time(), lease_until=None,
                error=json.dumps(error, ensure_ascii=False) if error else None)).rowcount == 1


# ---------------------------------------------------------------- results


def output_ready(job: ServiceJob) -> bool:
    """The engine's final output is in place: the ZIP, or the folder's manifest."""
    out = Path(job.out_dir)
    return out.is_file() if job.output == "zip" else (out / MANIFEST).is_file()


@contextmanager
def open_manifest(job: ServiceJob) -> Iterator:
    """The finished job's manifest as a binary file, from its folder or from inside its ZIP."""
    if job.output == "zip":
        with zipfile.ZipFile(job.out_dir) as zf, zf.open(MANIFEST) as f:
            yield f
    else:
        with (Path(job.out_dir) / MANIFEST).open("rb") as f:
            yield f


def result_members(out_dir: Path) -> Iterator[tuple[str, Path]]:
    """(name in the archive, file) for every sealed OFD the manifest lists, once each, then the manifest."""
    out = Path(out_dir)
    seen: set[str] = set()
    with (out / MANIFEST).open(encoding="utf-8") as f:
        for line in f:
            ident = json.loads(line).get("identifier")
            if ident and ident not in seen:
                seen.add(ident)
                yield f"{ident}.ofd", out / f"{ident}.ofd"
    yield MANIFEST, out / MANIFEST


def result_zip_parts(out_dir: Path, sink) -> Iterator[None]:
    """A ``dir`` job's folder as a ZIP into ``sink`` (a write-only stream), yielding after each member
    so the caller can pass the bytes on: OFDs stored (already deflated), the manifest deflated,
    one file's block in memory at a time."""
    with zipfile.ZipFile(sink, "w", allowZip64=True) as zf:
        for name, path in result_members(out_dir):
            info = zipfile.ZipInfo(name, date_time=time.gmtime(path.stat().st_mtime)[:6])
            info.compress_type = zipfile.ZIP_DEFLATED if name == MANIFEST else zipfile.ZIP_STORED
            with path.open("rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 1 << 16)
            yield
    yield  # the central directory


# ---------------------------------------------------------------- the service side


@dataclass(frozen=True)
class JobStatus:
    """What the API shows of a job: the queue row and the engine's progress, merged."""

    job: ServiceJob
    progress: JobProgress | None

    def to_dict(self) -> dict:
        j, p = self.job, self.progress
        iso = lambda t: None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        total = p.total if p is not None and p.total is not None else j.total
        done, failed = (p.done, p.failed) if p is not None else (0, 0)
        running = j.state == RUNNING
        return {
            "job_id": j.job_id, "state": j.state, "format": j.fmt, "output": j.output, "chunk_size": j.chunk_size,
            "size": j.size, "total": total, "done": done, "failed": failed, "processed": done + failed,
            "percent": round(100.0 * (done + failed) / total, 1) if total else (100.0 if j.state == DONE else 0.0),
            "rate": round(p.rate, 1) if p is not None and running else 0.0,
            "eta_s": (round(p.eta_s, 1) if p.eta_s is not None else None) if p is not None and running else
            (0.0 if j.state == DONE else None),
            "created_at": iso(j.created_at), "started_at": iso(j.started_at), "finished_at": iso(j.finished_at),
            "runs": j.runs, "error": j.error_dict,
        }


class JobService:
    """One per server process: the queue, the engine's progress table, and (if enabled) the runner thread."""

    def __init__(self, settings: Settings, config: RunnerConfig):
        self.settings, self.config = settings, config
        self.store = KeyStore(settings)
        try:
            self.queue = JobQueue(self.store)
            self.progress_table = JobTable(self.store)
        except BaseException:
            self.store.close()
            raise
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._current: str | None = None
        self._client = None  # the Dask client of the job in flight
        self._thread: threading.Thread | None = None

    # ---- reads for the API

    def status(self, job: ServiceJob) -> JobStatus:
        try:
            p = self.progress_table.progress(job.job_id)
        except BulkJobError as exc:
            if exc.code != "not_found":
                raise
            p = None  # queued: the engine has not opened it yet
        return JobStatus(job, p)

    # ---- the runner

    def start(self) -> None:
        incoming = Path(self.config.jobs_dir) / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        for stale in incoming.glob("*.part"):  # uploads cut off by a crash (an hour: none is still arriving)
            try:
                if stale.stat().st_mtime < time.time() - 3600:
                    stale.unlink()
            except OSError:
                pass
        if self.config.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ecert-job-runner", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop claiming; a job in flight gives its lease up so a restarted server resumes it at once,
        and its cluster is closed (stopping halfway is safe: that is what resuming is for)."""
        self._stop.set()
        current = self._current
        if current is not None:
            try:
                self.queue.release(current, self.worker)
            except JobQueueError:
                pass
            self._close_client()  # run_bulk stops; the redo of its unfinished chunks is the next owner's
        elif self._thread is not None:
            self._thread.join(timeout=5)  # between claims: let it see the stop before the store closes
        self.progress_table.close()
        self.store.close()

    def _close_client(self) -> None:
        from .bulk import _close_client

        client, self._client = self._client, None
        if client is not None:
            try:
                _close_client(client)
            except Exception:  # already closing (shutdown and the job's end race)
                pass

    def _loop(self) -> None:
        idle = False
        while not self._stop.wait(self.config.poll_s if idle else 0):
            try:
                job = self.queue.claim(self.worker, self.config.lease_s, self.config.max_running)
            except JobQueueError as exc:
                log.warning("cannot claim jobs: %s", exc.message_en)
                job = None
            idle = job is None
            if job is not None:
                self._run(job)

    def _heartbeat(self, job_id: str, finished: threading.Event) -> None:
        every = max(self.config.lease_s / 3, 0.2)
        while not finished.wait(every) and not self._stop.is_set():
            try:
                if not self.queue.renew(job_id, self.worker, self.config.lease_s):
                    log.warning("job %s: lease lost to another process", job_id)
                    return
            except JobQueueError as exc:
                log.warning("job %s: lease not renewed: %s", job_id, exc.message_en)

    def _run(self, job: ServiceJob) -> None:
        self._current = job.job_id
        finished = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.job_id, finished), daemon=True)
        beat.start()
        log.info("job %s: run %d starts", job.job_id, job.runs)
        try:
            state, error = self._execute(job)
            if not self._stop.is_set():  # shutting down: the lease was released for whoever comes next
                # recorded under the lease, before the cluster closes (slow): else the lease could
                # lapse and another process take the finished job up again
                self.queue.finish(job.job_id, self.worker, state, error)
                log.info("job %s: %s", job.job_id, state)
        except JobQueueError as exc:  # the lease expires and the job is resumed (and found finished)
            log.warning("job %s: outcome not recorded: %s", job.job_id, exc.message_en)
        finally:
            finished.set()
            self._close_client()
            self._current = None

    def _execute(self, job: ServiceJob) -> tuple[str, dict | None]:
        """Run (or resume) the job through the bulk engine: (state, error)."""
        from .bulk import _open_client, run_bulk

        try:
            if not (self.progress_table.is_finished(job.job_id) and output_ready(job)):
                # the engine's own client (embedded LocalCluster or the scheduler), held here so that
                # shutting down can close it: the cluster's worker processes must not outlive the server
                self._client = _open_client(None, self.config.scheduler, self.config.workers, self.settings)[0]
                run_bulk(job.input_path, job.out_dir, store_settings=self.settings, chunk_size=job.chunk_size,
                         job_id=job.job_id, client=self._client, issuer_code=job.only_issuer,
                         zip_output=job.output == "zip")
        except BulkProblem as exc:
            return FAILED, {"code": exc.code, "message_zh": exc.message_zh, "message_en": exc.message_en}
        except Exception as exc:  # a bug or a lost cluster: recorded; re-posting the job resumes it
            log.exception("job %s failed", job.job_id)
            return FAILED, {"code": "internal", "message_zh": "任务意外中断，可重新提交同一文件续做",
                            "message_en": f"the job stopped unexpectedly ({type(exc).__name__}); "
                                          "post the same file again to resume it"}
        return DONE, None
