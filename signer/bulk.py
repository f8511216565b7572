"""The bulk signing engine: a records file in, a folder of sealed OFDs plus a manifest out, on Dask.

One code path for a laptop and a cluster: by default an embedded ``LocalCluster`` of worker
*processes* (SM2 and OFD writing hold the GIL), or any running scheduler
(``scheduler="tcp://host:8786"``). The coordinator streams the input in numbered chunks and
keeps at most ``2 x workers`` of them in flight, so its memory is flat however large the
input; workers sign and write the files themselves and send back only counts.

Secrets stay where they are: a task carries the keystore's *location* (home, database URL,
KEK file), never a key and never the KEK -- each worker opens its own keystore (the KEK from
its own ``ECERT_KEK`` or KEK file), registry and per-issuer signer once, on first use
(`signer.issuers.IssuerPool`, cached per process).

Resumable and idempotent (`signer.jobs`): a worker signs a chunk, registers it in one
registry transaction, then links each file into place (first writer wins, `publish_once`)
and renames the chunk's manifest part into place; only then is the chunk marked done.
After a crash (kill -9 of the coordinator or a worker) the same job id redoes only the
unfinished chunks; a redone record is found in the registry by its data (same identifier,
no new log entry) and an existing file is kept rather than signed again. So the output
holds one file per identifier, the manifest one line per record whose SM3 matches the
disk, and the issuance log verifies.

``n_workers=0`` (and no client or scheduler) runs the same chunks in this process, without
Dask: what `ecert issue` uses for small inputs, where starting a cluster (~5 s) costs more
than it saves. An output path ending in ``.zip`` gives one ZIP (the OFDs in input order,
then ``manifest.jsonl``), assembled from a staging folder ``<name>.zip.staging`` streamed
and renamed into place once the job is complete (`signer.bulk_zip`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from keys.config import Settings, load_settings
from keys.sm3 import sm3
from keys.store import KeyStore

from .bulk_io import (
    MANIFEST, BulkInputError, BulkProblem, Chunk, assemble_manifest, check_input, count_records, fingerprint, has_chunk_manifest,
    parts_dir, publish_once, read_chunks, write_chunk_manifest,
)
from .jobs import RUNNING, BulkJobError, JobProgress, JobTable, new_job_id

__all__ = ["run_bulk", "BulkResult", "BulkError", "BulkInputError", "BulkJobError", "sign_chunk", "job_progress",
           "new_job_id", "keystore_location", "local_cluster", "LEAN_DASK", "manifest_lines", "manifest_errors",
           "INPROCESS_BELOW"]

DEFAULT_CHUNK = 500
# Below this many records `ecert issue` signs in its own process: an embedded 2-worker cluster
# takes ~5 s to start, import and stop (measured here), which the second core only wins back
# after ~1,500-2,000 records at ~120 licences/s per core.
INPROCESS_BELOW = 2000


class BulkError(BulkProblem):
    """The job stopped (signing unavailable, a worker bug); it is resumable with the same job id."""


@dataclass(frozen=True)
class BulkResult:
    job_id: str
    out_dir: Path
    manifest: Path
    done: int  # records with a sealed file
    failed: int  # records with field-named errors
    chunks: int
    seconds: float  # this run only (a resumed job counts the chunks it did now)
    signed_now: int  # records processed in this run
    archive: Path | None = None  # the ZIP, when the output was ``*.zip`` (then out_dir and manifest name it too)

    @property
    def rate(self) -> float:
        return self.signed_now / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- worker side

_CONTEXTS: dict[tuple, object] = {}


def keystore_location(settings: Settings) -> tuple[str, str, str]:
    """Where the keystore is, without the KEK: the part of the settings that may travel in a task."""
    return str(settings.home), settings.database_url, str(settings.kek_file)


def _context(spec: tuple[str, str, str], settings: Settings | None = None):
    """This process's `IssuerPool` for the keystore at ``spec``, opened once (``settings``: in-process runs)."""
    from . import log_redact
    from .issuers import IssuerPool

    ctx = _CONTEXTS.get(spec)
    if ctx is None:
        log_redact.install()  # a Dask worker process logs identifiers too
        if settings is None:
            home, url, kek_file = spec
            settings = Settings(Path(home), url, Path(kek_file), kek=os.environ.get("ECERT_KEK") or None)
        ctx = _CONTEXTS[spec] = IssuerPool(settings)
    return ctx


def _record_error(line: int, code: str, zh: str, en: str, field: str = "record") -> dict:
    return {"line": line, "errors": [{"field": field, "code": code, "message_zh": zh, "message_en": en}]}


def _as_record_error(line: int, exc: Exception) -> dict:
    """A record's own problem as a manifest line; the keystore or database being down stops the chunk."""
    from keys.store import KeyStoreError, UnknownIssuer
    from ofd.licence.errors import ConfigError, LicenceError
    from signer.registry import RegistryError, TransitionError

    if isinstance(exc, LicenceError):
        return {"line": line, "errors": exc.as_dicts()}
    if isinstance(exc, UnknownIssuer):
        return _record_error(line, "unknown_issuer", "发证机关代码：本服务没有该发证机关的签章密钥",
                             "issuer_code: this service holds no signing key for that issuer", "issuer_code")
    if isinstance(exc, TransitionError) or (isinstance(exc, RegistryError) and exc.code != "database"):
        return _record_error(line, exc.code, exc.message_zh, exc.message_en)
    if isinstance(exc, (KeyStoreError, ConfigError, RegistryError)):
        raise BulkError("签章服务暂不可用（密钥库或登记簿）", f"signing is unavailable: {exc}", "unavailable") from None
    raise exc


@dataclass
class _Pending:
    line: int
    issued: object | None = None  # IssuedLicence signed now
    kept: dict | None = None  # redo: the file an earlier attempt registered and wrote
    registered: bool = False


def _not_allowed(line: int, only: str) -> dict:
    return _record_error(line, "issuer_not_allowed", f"发证机关统一社会信用代码：本任务只能为 {only} 签发",
                         f"issuer_code: this job may only issue for {only}", "issuer_code")


class _Issuers:
    """The chunk's signers, one lookup per issuer code per chunk (not per record: the active-key
    check is a database read); ``only`` restricts the job to one issuer."""

    def __init__(self, ctx, only: str | None):
        self.ctx, self.only, self._cache = ctx, only, {}

    def __call__(self, code: str):
        if code not in self._cache:
            self._cache[code] = self.ctx.issuer(code)
        return self._cache[code]


def _prepare(ctx, issuers: _Issuers, line: int, rec, out_dir: Path, redo: bool) -> _Pending | dict:
    """Validate, plan and sign one record (no database write); a dict is its manifest error line."""
    from ofd.licence.model import validate_record

    if isinstance(rec, str):
        return _record_error(line, "unreadable", "记录无法读取", rec)
    try:
        lic = validate_record(rec)
        if issuers.only is not None and lic.issuer_code != issuers.only:
            return _not_allowed(line, issuers.only)
        plan = ctx.registry.plan(lic)
        if plan.existing is not None and redo:
            target = out_dir / f"{plan.existing.identifier}.ofd"
            if target.is_file():  # written by the attempt that died: keep it, sign nothing
                return _Pending(line, kept={"identifier": plan.existing.identifier,
                                            "sm3": sm3(target.read_bytes()).hex()})
        issued = issuers(lic.issuer_code).issue(plan.licence)
    except Exception as exc:
        return _as_record_error(line, exc)
    return _Pending(line, issued=issued, registered=plan.existing is None)


def _register(ctx, todo: list[_Pending]) -> dict[int, dict]:
    """One registry transaction for the chunk's new licences; per record only if the batch is refused
    (e.g. two rows of the same licence with different data). Returns error lines by input line."""
    from signer.registry import TransitionError

    new = [p for p in todo if p.registered]
    try:
        entries = ctx.registry.record_issued_many([p.issued for p in new])
        failed: dict[int, dict] = {}
    except TransitionError:
        entries, failed = [], {}
        for p in new:
            try:
                entries.append(ctx.registry.record_issued(p.issued))
            except Exception as exc:
                failed[p.line] = _as_record_error(p.line, exc)
                entries.append(None)
    for p, entry in zip(new, entries):
        if entry is not None and entry.file_sm3 != p.issued.sm3_hex:
            p.registered = False  # registered first by another process (or an earlier row): our file is a re-signature
    return failed


def sign_chunk(spec: tuple[str, str, str], out_dir: str, job_id: str, chunk: Chunk, redo: bool,
               only_issuer: str | None = None, settings: Settings | None = None) -> tuple[int, int, int]:
    """Worker task: read and seal every record of ``chunk`` into ``out_dir``; returns (chunk no, ok, failed).

    Sign all, register all in one transaction, then write the files: a crash before the
    registration leaves nothing; after it, the redo finds the records registered."""
    ctx, out = _context(spec, settings), Path(out_dir)
    issuers = _Issuers(ctx, only_issuer)
    prepared = [_prepare(ctx, issuers, line, rec, out, redo) for line, rec in chunk.records()]
    failed = _register(ctx, [p for p in prepared if isinstance(p, _Pending) and p.issued is not None])
    lines = []
    for p in prepared:
        if isinstance(p, dict) or p.line in failed:
            lines.append(p if isinstance(p, dict) else failed[p.line])
            continue
        if p.kept is not None:
            lines.append({"line": p.line, **p.kept, "registered": False})
            continue
        data = p.issued.data
        kept = publish_once(out / f"{p.issued.identifier}.ofd", data)
        digest = p.issued.sm3_hex if kept is data else sm3(kept).hex()
        lines.append({"line": p.line, "identifier": p.issued.identifier, "sm3": digest, "registered": p.registered})
    write_chunk_manifest(out, job_id, chunk.no, lines)
    bad = sum(1 for x in lines if "errors" in x)
    return chunk.no, len(lines) - bad, bad


# ---------------------------------------------------------------- coordinator side


def _open_client(client, scheduler: str | None, n_workers: int, settings: Settings):
    """(client, owned): the given client, one connected to ``scheduler``, an embedded LocalCluster,
    or (None, False) for ``n_workers=0``: the chunks then run in this process."""
    if client is not None:
        return client, False
    if scheduler:
        from distributed import Client

        return Client(scheduler), True
    if n_workers < 1:
        return None, False
    from distributed import Client

    return Client(local_cluster(n_workers, settings)), True


# Dask's housekeeping, tuned for a few long CPU-bound tasks. Measured on 1,000 records with 2
# workers: the scheduler's event loop fell from 0.79 to 0.19 CPU-s and the workers from 8.7 to
# 7.8 CPU-ms per record -- mostly the worker's 10 ms stack-sampling profiler, the 20 ms loop
# tick and the 100 ms memory monitor, none of which a signing task needs.
LEAN_DASK = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "2s",
    "distributed.scheduler.work-stealing": False,  # at most two chunks per worker are queued anyway
}


def local_cluster(n_workers: int = 2, settings: Settings | None = None):
    """The embedded cluster: ``n_workers`` single-threaded worker processes (SM2 and OFD writing hold
    the GIL) with `LEAN_DASK`; the KEK, if set, reaches them as process environment, never in a task."""
    import dask
    from distributed import LocalCluster

    kek = settings.kek if settings is not None else None
    with dask.config.set(LEAN_DASK):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                            env={"ECERT_KEK": kek} if kek else {})


def _close_client(client) -> None:
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _layout(out: Path, zip_output: bool | None) -> tuple[Path, Path | None]:
    """(the folder chunks write into, the ZIP to assemble or None)."""
    if zip_output or (zip_output is None and out.suffix.lower() == ".zip"):
        return out.with_name(out.name + ".staging"), out
    return out, None


def run_bulk(
    input_path: Path | str,
    out_dir: Path | str,
    *,
    store_settings: Settings | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    client=None,
    scheduler: str | None = None,
    n_workers: int = 2,
    job_id: str | None = None,
    on_progress: Callable[[JobProgress], None] | None = None,
    issuer_code: str | None = None,
    zip_output: bool | None = None,
) -> BulkResult:
    """Issue and seal every record of ``input_path`` (.jsonl / .csv / .parquet) into ``out_dir``; resumable
    by ``job_id``.

    ``out_dir`` ending in ``.zip`` (or ``zip_output=True``) gives one ZIP instead of a folder;
    ``n_workers=0`` without ``client``/``scheduler`` runs in this process; ``issuer_code``
    refuses (as a field error) records of any other issuer. Bad records become manifest lines
    with field-named errors, not failures. Raises `BulkInputError` (unreadable input),
    `BulkJobError` (resuming with different input/output/chunk size) or `BulkError` (signing
    stopped; rerun with the same ``job_id`` to finish)."""
    input_path = check_input(Path(input_path)).absolute()
    out = Path(out_dir).absolute()
    work, archive = _layout(out, zip_output)
    work.mkdir(parents=True, exist_ok=True)
    settings = store_settings or load_settings()
    job_id = job_id or new_job_id()
    if not job_id.replace("-", "").replace("_", "").isalnum() or len(job_id) > 64:
        raise BulkJobError("任务编号只能含字母、数字、- 和 _", f"job id {job_id!r}: use letters, digits, - and _",
                           "job_id")
    store = KeyStore(settings)
    jobs = JobTable(store)
    try:
        fp, total = fingerprint(input_path), count_records(input_path)
        final = archive if archive is not None else out / MANIFEST
        if jobs.is_finished(job_id) and final.is_file():  # a finished job is not run twice
            jobs.open(job_id, str(input_path), fp, str(out), chunk_size, total)  # same-job check only
            jobs.finish(job_id)
            if archive is not None:
                shutil.rmtree(work, ignore_errors=True)
            p = jobs.progress(job_id)
            return BulkResult(job_id, out, archive or final, p.done, p.failed, p.chunks_done, 0.0, 0, archive)
        client_owned = _open_client(client, scheduler, n_workers, settings)
        try:
            done = {no for no in jobs.open(job_id, str(input_path), fp, str(out), chunk_size, total)
                    if has_chunk_manifest(work, job_id, no)}
        except BaseException:
            if client_owned[1]:
                _close_client(client_owned[0])
            raise
        job = _Job(jobs, job_id, input_path, work, out, settings, chunk_size, issuer_code, on_progress)
        return job.run(done, client_owned, archive)
    finally:
        jobs.close()
        store.close()


class _Job:
    """One run of a job: hands out the chunks, counts what comes back, assembles the output."""

    def __init__(self, jobs: JobTable, job_id: str, input_path: Path, work: Path, out: Path, settings: Settings,
                 chunk_size: int, issuer_code: str | None, on_progress):
        self.jobs, self.job_id, self.input_path, self.work, self.out = jobs, job_id, input_path, work, out
        self.settings, self.chunk_size, self.issuer_code, self.on_progress = settings, chunk_size, issuer_code, on_progress
        self.spec = keystore_location(settings)
        base = jobs.progress(job_id)
        self.total, self.ok, self.bad, self.chunks_done = base.total, base.done, base.failed, base.chunks_done
        self.processed, self.t0 = 0, time.perf_counter()

    def collect(self, no: int, ok: int, bad: int) -> None:
        """A chunk is done: its files and manifest part are in place. Progress is counted here, in
        memory (no query over all chunks per chunk); other processes read it from the job table."""
        self.jobs.finish_chunk(self.job_id, no, ok, bad)
        self.ok, self.bad, self.chunks_done, self.processed = self.ok + ok, self.bad + bad, self.chunks_done + 1, \
            self.processed + ok + bad
        self.report()

    def report(self) -> None:
        if self.on_progress is not None:
            rate = self.processed / max(time.perf_counter() - self.t0, 1e-6)
            left = None if self.total is None else max(self.total - self.ok - self.bad, 0)
            eta = left / rate if left is not None and rate > 0 else None
            self.on_progress(JobProgress(self.job_id, RUNNING, self.total, self.ok, self.bad, self.chunks_done, rate, eta,
                                         str(self.out), None))

    def run(self, done: set[int], client_owned, archive: Path | None) -> BulkResult:
        client, owned = client_owned
        n_chunks = 0
        self.report()  # the total, before the first chunk comes back
        try:
            chunks = read_chunks(self.input_path, self.chunk_size, skip=done)
            n_chunks = self._in_process(chunks) if client is None else self._on_dask(client, chunks)
            n_chunks = max([n_chunks, *(no + 1 for no in done)])
        except (BulkError, BulkInputError, OSError) as exc:
            self.jobs.finish(self.job_id, error=str(exc))
            raise
        except Exception as exc:  # a worker bug or a lost cluster: the job stays resumable
            self.jobs.finish(self.job_id, error=f"{type(exc).__name__}: {exc}")
            raise BulkError("批量签章中断，可用同一任务编号续做", f"bulk job {self.job_id} stopped ({type(exc).__name__}: "
                            f"{exc}); run it again with the same job id to finish", "stopped") from exc
        finally:
            if owned:
                _close_client(client)
        return self._finish(n_chunks, archive)

    def _in_process(self, chunks) -> int:
        n = 0
        for chunk in chunks:
            n = chunk.no + 1
            attempt = self.jobs.start_chunk(self.job_id, chunk.no)
            self.collect(*sign_chunk(self.spec, str(self.work), self.job_id, chunk, attempt > 1, self.issuer_code,
                                     self.settings))
        return n

    def _on_dask(self, client, chunks) -> int:
        from distributed import as_completed

        limit = 2 * max(len(client.scheduler_info().get("workers", {})), 1)
        pending, in_flight, n = as_completed(), 0, 0
        for chunk in chunks:
            n = chunk.no + 1
            if in_flight >= limit:
                self.collect(*next(pending).result())
                in_flight -= 1
            attempt = self.jobs.start_chunk(self.job_id, chunk.no)
            pending.add(client.submit(sign_chunk, self.spec, str(self.work), self.job_id, chunk, attempt > 1,
                                      self.issuer_code, pure=False, key=f"bulk-{self.job_id}-{chunk.no}-{attempt}"))
            in_flight += 1
        for fut in pending:
            self.collect(*fut.result())
        return n

    def _finish(self, n_chunks: int, archive: Path | None) -> BulkResult:
        work, job_id = self.work, self.job_id
        manifest = assemble_manifest(work, job_id, n_chunks)
        if archive is not None:
            _pack(work, archive)
        self.jobs.finish(job_id, n_chunks=n_chunks)
        if archive is not None:
            shutil.rmtree(work, ignore_errors=True)  # the ZIP holds it all now
        else:
            shutil.rmtree(parts_dir(work, job_id), ignore_errors=True)  # the manifest holds them all now
            with contextlib.suppress(OSError):
                parts_dir(work, job_id).parent.rmdir()  # only if no other job is using it
            for stray in work.glob("*.ofd.*.part"):  # left by a worker killed mid-write; its record was redone
                stray.unlink(missing_ok=True)
        p = self.jobs.progress(job_id)
        return BulkResult(job_id, self.out, archive or manifest, p.done, p.failed, n_chunks,
                          time.perf_counter() - self.t0, self.processed, archive)


def _pack(work: Path, archive: Path) -> Path:
    """The ZIP: each identifier's OFD once, in input order, then the manifest; streamed, renamed into place."""
    from .bulk_zip import ZipStream

    z = ZipStream(archive)
    try:
        seen: set[str] = set()  # ~100 bytes per licence: the one thing here that grows with the job
        with (work / MANIFEST).open("rb") as f:
            for raw in f:
                ident = json.loads(raw).get("identifier")
                if ident and ident not in seen:
                    seen.add(ident)
                    z.add_file(f"{ident}.ofd", work / f"{ident}.ofd")
        z.add_file(MANIFEST, work / MANIFEST)
        return z.close()
    except BaseException:
        z.abort()
        raise


def manifest_lines(result: BulkResult) -> Iterator[dict]:
    """The manifest of a finished run, line by line (from the folder or from inside the ZIP)."""
    if result.archive is not None:
        import zipfile

        with zipfile.ZipFile(result.archive) as zf, zf.open(MANIFEST) as f:
            for raw in f:
                yield json.loads(raw)
        return
    with result.manifest.open("rb") as f:
        for raw in f:
            yield json.loads(raw)


def manifest_errors(result: BulkResult) -> Iterator[tuple[int, str]]:
    """(line, "message / 消息; ...") of every failed record, in input order."""
    for x in manifest_lines(result):
        if "errors" in x:
            yield x["line"], "; ".join(f"{e['message_en']} / {e['message_zh']}" for e in x["errors"])


def job_progress(job_id: str, store_settings: Settings | None = None) -> JobProgress:
    """Progress of a bulk job (done, failed, rate, ETA) from the keystore database; any process may ask."""
    with KeyStore(store_settings or load_settings()) as store:
        jobs = JobTable(store)
        try:
            return jobs.progress(job_id)
        finally:
            jobs.close()
