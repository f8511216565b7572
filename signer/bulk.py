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
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keys.config import Settings, load_settings
from keys.sm3 import sm3
from keys.store import KeyStore

from .bulk_io import (
    MANIFEST, BulkInputError, BulkProblem, Chunk, assemble_manifest, check_input, count_records, fingerprint, has_chunk_manifest,
    parts_dir, publish_once, read_chunks, write_chunk_manifest,
)
from .jobs import BulkJobError, JobProgress, JobTable, new_job_id

__all__ = ["run_bulk", "BulkResult", "BulkError", "BulkInputError", "BulkJobError", "sign_chunk", "job_progress",
           "new_job_id", "keystore_location"]

DEFAULT_CHUNK = 500


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

    @property
    def rate(self) -> float:
        return self.signed_now / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- worker side

_CONTEXTS: dict[tuple, object] = {}


def keystore_location(settings: Settings) -> tuple[str, str, str]:
    """Where the keystore is, without the KEK: the part of the settings that may travel in a task."""
    return str(settings.home), settings.database_url, str(settings.kek_file)


def _context(spec: tuple[str, str, str]):
    from .issuers import IssuerPool

    ctx = _CONTEXTS.get(spec)
    if ctx is None:
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


def _prepare(ctx, line: int, rec, out_dir: Path, redo: bool) -> _Pending | dict:
    """Validate, plan and sign one record (no database write); a dict is its manifest error line."""
    from ofd.licence.model import validate_record

    if isinstance(rec, str):
        return _record_error(line, "unreadable", "记录无法读取", rec)
    try:
        lic = validate_record(rec)
        plan = ctx.registry.plan(lic)
        if plan.existing is not None and redo:
            target = out_dir / f"{plan.existing.identifier}.ofd"
            if target.is_file():  # written by the attempt that died: keep it, sign nothing
                return _Pending(line, kept={"identifier": plan.existing.identifier,
                                            "sm3": sm3(target.read_bytes()).hex()})
        issued = ctx.issuer(lic.issuer_code).issue(plan.licence)
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


def sign_chunk(spec: tuple[str, str, str], out_dir: str, job_id: str, chunk: Chunk, redo: bool) -> tuple[int, int, int]:
    """Worker task: seal every record of ``chunk`` into ``out_dir``; returns (chunk no, ok, failed).

    Sign all, register all in one transaction, then write the files: a crash before the
    registration leaves nothing; after it, the redo finds the records registered."""
    ctx, out = _context(spec), Path(out_dir)
    prepared = [_prepare(ctx, line, rec, out, redo) for line, rec in chunk.items]
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
    """(client, owned): the given client, one connected to ``scheduler``, or an embedded LocalCluster."""
    if client is not None:
        return client, False
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), True
    env = {"ECERT_KEK": settings.kek} if settings.kek else {}  # a local process env, not a task payload
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           env=env)
    return Client(cluster), True


def _close_client(client) -> None:
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


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
) -> BulkResult:
    """Issue and seal every record of ``input_path`` (.jsonl / .csv) into ``out_dir``; resumable by ``job_id``.

    Bad records become manifest lines with field-named errors, not failures. Raises `BulkInputError`
    (unreadable input), `BulkJobError` (resuming with different input/output/chunk size) or `BulkError`
    (signing stopped; rerun with the same ``job_id`` to finish)."""
    input_path = check_input(Path(input_path)).absolute()
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    settings = store_settings or load_settings()
    job_id = job_id or new_job_id()
    if not job_id.replace("-", "").replace("_", "").isalnum() or len(job_id) > 64:
        raise BulkJobError("任务编号只能含字母、数字、- 和 _", f"job id {job_id!r}: use letters, digits, - and _",
                           "job_id")
    store = KeyStore(settings)
    jobs = JobTable(store)
    try:
        fp, total = fingerprint(input_path), count_records(input_path)
        if jobs.is_finished(job_id) and (out / MANIFEST).is_file():  # a finished job is not run twice
            jobs.open(job_id, str(input_path), fp, str(out), chunk_size, total)  # same-job check only
            jobs.finish(job_id)
            p = jobs.progress(job_id)
            return BulkResult(job_id, out, out / MANIFEST, p.done, p.failed, p.chunks_done, 0.0, 0)
        client_owned = _open_client(client, scheduler, n_workers, settings)
        try:
            done = {no for no in jobs.open(job_id, str(input_path), fp, str(out), chunk_size, total)
                    if has_chunk_manifest(out, job_id, no)}
        except BaseException:
            if client_owned[1]:
                _close_client(client_owned[0])
            raise
        return _run(jobs, job_id, input_path, out, settings, chunk_size, done, client_owned, on_progress)
    finally:
        jobs.close()
        store.close()


def _run(jobs: JobTable, job_id, input_path, out, settings, chunk_size, done, client_owned, on_progress) -> BulkResult:
    from distributed import as_completed

    client, owned = client_owned
    t0, processed = time.perf_counter(), 0
    spec = keystore_location(settings)
    try:
        limit = 2 * max(len(client.scheduler_info().get("workers", {})), 1)
        pending = as_completed()
        in_flight = n_chunks = 0

        def collect(fut) -> None:
            nonlocal processed
            no, ok, bad = fut.result()
            jobs.finish_chunk(job_id, no, ok, bad)
            processed += ok + bad
            if on_progress is not None:
                on_progress(jobs.progress(job_id))

        for chunk in read_chunks(input_path, chunk_size, skip=done):
            n_chunks = chunk.no + 1
            if in_flight >= limit:
                collect(next(pending))
                in_flight -= 1
            attempt = jobs.start_chunk(job_id, chunk.no)
            pending.add(client.submit(sign_chunk, spec, str(out), job_id, chunk, attempt > 1, pure=False,
                                      key=f"bulk-{job_id}-{chunk.no}-{attempt}"))
            in_flight += 1
        for fut in pending:
            collect(fut)
        n_chunks = max([n_chunks, *(no + 1 for no in done)])
    except (BulkError, BulkInputError, OSError) as exc:
        jobs.finish(job_id, error=str(exc))
        raise
    except Exception as exc:  # a worker bug or a lost cluster: the job stays resumable
        jobs.finish(job_id, error=f"{type(exc).__name__}: {exc}")
        raise BulkError("批量签章中断，可用同一任务编号续做", f"bulk job {job_id} stopped ({type(exc).__name__}: {exc}); "
                        "run it again with the same job id to finish", "stopped") from exc
    finally:
        if owned:
            _close_client(client)
    manifest = assemble_manifest(out, job_id, n_chunks)
    jobs.finish(job_id, n_chunks=n_chunks)
    shutil.rmtree(parts_dir(out, job_id), ignore_errors=True)  # the manifest holds them all now
    with contextlib.suppress(OSError):
        parts_dir(out, job_id).parent.rmdir()  # only if no other job is using it
    for stray in out.glob("*.ofd.*.part"):  # left by a worker killed mid-write; its record was redone
        stray.unlink(missing_ok=True)
    p = jobs.progress(job_id)
    return BulkResult(job_id, out, manifest, p.done, p.failed, n_chunks, time.perf_counter() - t0, processed)


def job_progress(job_id: str, store_settings: Settings | None = None) -> JobProgress:
    """Progress of a bulk job (done, failed, rate, ETA) from the keystore database; any process may ask."""
    with KeyStore(store_settings or load_settings()) as store:
        jobs = JobTable(store)
        try:
            return jobs.progress(job_id)
        finally:
            jobs.close()
