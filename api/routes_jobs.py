"""Bulk jobs over HTTP: ``POST /v1/jobs`` uploads a records file, the server seals it on Dask in
the background, clients follow progress by polling or Server-Sent Events and download the result.

Design:

* **Upload.** The body *is* the records file (JSON Lines, CSV, and Parquet once the bulk engine
  reads it), typed by ``Content-Type`` or ``?format=``. It is streamed to ``<jobs dir>/.incoming``
  while its SM3 is computed (never whole in memory; ``ECERT_MAX_JOB_BYTES`` caps it, 413), then
  checked in a worker thread: at least one record, readable as its format, and every photo inline
  (base64): the bulk engine resolves short photo strings as file paths, which must never reach the
  server's file system from an upload. Answer: 202, the job, and the URLs to follow it.
* **Idempotency.** ``Idempotency-Key`` (per token) names the job: the same key returns the same job
  (409 with other input or options); without a key, the same input and options from the same token
  return the existing job. Repeating a *failed* job queues it again, and it resumes.
* **Running.** `signer.job_runner`: a row per job in the keystore's database, claimed under a
  lease by exactly one server process (serialised write transaction), at most
  ``ECERT_JOBS_MAX_RUNNING`` at once over all processes (default 1, so ``uvicorn --workers N``
  never starts N clusters on one machine); each process runs one job at a time in a thread, the
  others wait ``queued``. The job is ``signer.bulk.run_bulk`` -- the CLI's code path -- on an
  embedded LocalCluster (``ECERT_JOB_WORKERS``) or ``ECERT_DASK_SCHEDULER``; the event loop only
  reads the database. A server killed mid-job stops renewing its lease; when it expires
  (``ECERT_JOB_LEASE_SECONDS``), the restarted server (or any other) resumes the job by id.
* **Reading.** ``GET /v1/jobs/{id}`` (state, total, done, failed, rate, ETA, times, links),
  ``GET /v1/jobs``, ``.../events`` (SSE: a ``progress`` event on change, a comment as heartbeat,
  ``end`` on a terminal state; stops when the client goes), ``.../manifest`` (JSONL, ``?failed=1``
  for the field-named errors only) and ``.../result`` (ZIP of the OFDs and the manifest, streamed);
  both 409 until the job is done. ``output=dir`` keeps a folder (the ZIP is made as it streams
  out), ``output=zip`` has the engine write one ZIP. Jobs are visible to the token that created
  them and to ``admin`` tokens; to others they do not exist (404). A token bound to one issuer
  starts jobs that refuse (as a field error) records of any other issuer.
* **EventSource cannot send a bearer token**, so each job has a random *ticket* given to whoever
  may read the job (in its ``events`` link): it opens that job's event stream and nothing else --
  no records, no files -- which is why it is stored as is, not hashed.
* **The portal's job page** (``/portal/jobs.html``): same static, CSP-locked style as the
  verification portal.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import json
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Security
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from keys.config import KeyStoreError
from keys.sm3 import sm3_state
from signer.bulk import DEFAULT_CHUNK
from signer.bulk_io import SUFFIXES, is_photo_path
from signer.jobs import BulkJobError
from signer.job_runner import DONE, TERMINAL, JobQueueError, JobService, RunnerConfig, ServiceJob, open_manifest, \
    result_zip_parts

from .auth import TokenInfo
from .bodies import media_type
from .deps import bearer, require_scope
from .errors import ApiError, error_responses, field_problem
from .routes_licences import NDJSON_TYPES, _Chunks
from .routes_portal import SECURITY_HEADERS, STATIC
from .settings import ApiSettings
from .signing_pool import Unavailable

log = logging.getLogger("ecert.api")

SSE_POLL_S = 0.5
SSE_HEARTBEAT_S = 15.0
SSE_MAX_S = 30.0  # then the stream closes and EventSource reconnects: a server shutting down never waits longer
MiB = 1 << 20
_BLOCK = MiB
MAX_LINE = 16 * MiB  # one record with its photo is well under 1 MiB
FORMATS_BY_MEDIA = {**{m: "jsonl" for m in NDJSON_TYPES}, "application/x-jsonlines": "jsonl",
                    "text/csv": "csv", "application/csv": "csv",
                    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet",
                    "application/parquet": "parquet"}
_PORTAL_FILES = {"jobs.html": "text/html; charset=utf-8", "jobs.js": "text/javascript; charset=utf-8"}


def formats() -> tuple[str, ...]:
    """What the bulk engine reads (Parquet appears here once `signer.bulk_io` lists it)."""
    return tuple(s.lstrip(".") for s in SUFFIXES)


# ---------------------------------------------------------------- the per-process service


def runner_config(settings: ApiSettings) -> RunnerConfig:
    return RunnerConfig(jobs_dir=settings.jobs_dir or settings.keystore.home / "jobs",
                        scheduler=settings.dask_scheduler, workers=settings.job_workers,
                        lease_s=float(settings.job_lease_seconds), max_running=settings.jobs_max_running,
                        enabled=settings.job_runner)


_SERVICE_LOCK = threading.Lock()


def _open_service(app) -> JobService:
    with _SERVICE_LOCK:
        svc = getattr(app.state, "ecert_jobs", None)
        if svc is None:
            settings: ApiSettings = app.state.ecert.settings
            try:
                svc = JobService(settings.keystore, runner_config(settings))
            except (KeyStoreError, JobQueueError, BulkJobError) as exc:
                log.error("bulk jobs unavailable: %s", exc)
                raise Unavailable("批量任务暂不可用（密钥库）", "bulk jobs are unavailable (keystore)") from None
            svc.start()
            app.state.ecert_jobs = svc
        return svc


async def service(request: Request) -> JobService:
    svc = getattr(request.app.state, "ecert_jobs", None)
    return svc if svc is not None else await run_in_threadpool(_open_service, request.app)


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Open the job service at start-up, so jobs a dead server left behind resume without a request
    (only over an existing keystore: starting the server never creates one as a side effect)."""
    keystore = app.state.ecert.settings.keystore
    if keystore.sqlite_path is None or keystore.sqlite_path.exists():
        try:
            await run_in_threadpool(_open_service, app)
        except Unavailable:
            pass  # logged; the first jobs request tries again
    yield
    svc = getattr(app.state, "ecert_jobs", None)
    if svc is not None:
        await run_in_threadpool(svc.close)
        app.state.ecert_jobs = None


router = APIRouter(tags=["jobs"], lifespan=lifespan)


# ---------------------------------------------------------------- who may see a job

_need_issue, _need_admin = require_scope("issue"), require_scope("admin")


async def job_reader(request: Request, cred: HTTPAuthorizationCredentials | None = Security(bearer)) -> TokenInfo:
    """A token with ``issue`` (its own jobs) or ``admin`` (every job)."""
    try:
        return await _need_issue(request, cred)
    except ApiError as exc:
        if exc.status != 403:
            raise
    try:
        return await _need_admin(request, cred)
    except ApiError as exc:
        if exc.status != 403:
            raise
        raise ApiError(403, "insufficient_scope", "令牌没有“issue”或“admin”权限",
                       "the token has neither the 'issue' nor the 'admin' scope", headers=exc.headers) from None


def only_query(*names: str):
    """Dependency: refuse query parameters the route does not take (a typo must not pass silently)."""

    async def check(request: Request) -> None:
        extra = sorted(set(request.query_params) - set(names))
        if extra:
            bad = extra[0][:40]
            raise ApiError(422, "unknown_parameter", f"未知的查询参数 {bad!r}", f"unknown query parameter {bad!r}",
                           errors=[field_problem(bad, "unknown", f"{bad}：本接口没有该参数", f"{bad}: not a parameter here")])

    return check


async def db(fn, *args, **kwargs):
    """A job-table read or write off the event loop; the database being down is a 503, not a 500."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except (JobQueueError, BulkJobError) as exc:
        if exc.code != "database":
            raise
        log.error("bulk jobs database: %s", exc.message_en)
        raise Unavailable("批量任务暂不可用（数据库）", "bulk jobs are unavailable (database)") from None


def not_found(job_id: str) -> ApiError:
    return ApiError(404, "job_not_found", f"没有编号为 {job_id[:64]} 的批量任务", f"no bulk job {job_id[:64]!r}")


async def visible_job(svc: JobService, job_id: str, token: TokenInfo) -> ServiceJob:
    job = await db(svc.queue.get, job_id) if len(job_id) <= 64 else None
    if job is None or ("admin" not in token.scopes and job.owner != token.id):
        raise not_found(job_id)  # another tenant's job is not confirmed to exist
    return job


def links(job: ServiceJob, *, ticket: bool = True) -> dict:
    base = f"/v1/jobs/{job.job_id}"
    return {"self": base, "events": f"{base}/events" + (f"?ticket={job.ticket}" if ticket else ""),
            "manifest": f"{base}/manifest", "result": f"{base}/result"}


async def job_body(svc: JobService, job: ServiceJob, *, ticket: bool = True) -> dict:
    status = await db(svc.status, job)
    return {**status.to_dict(), "links": links(job, ticket=ticket)}


# ---------------------------------------------------------------- upload


class InputProblem(Exception):
    def __init__(self, code: str, zh: str, en: str, field: str = "body"):
        super().__init__(en)
        self.code, self.zh, self.en, self.field = code, zh, en, field

    def error(self) -> ApiError:
        return ApiError(422, self.code, self.zh, self.en, errors=[field_problem(self.field, self.code, self.zh, self.en)])


def choose_format(request: Request, fmt: str | None) -> str:
    known = formats()
    if fmt is not None:
        fmt = fmt.strip().lower().lstrip(".")
        if fmt not in known:
            raise ApiError(422, "unsupported_format", f"不支持的输入格式 {fmt[:20]!r}，应为 {', '.join(known)}",
                           f"unsupported input format {fmt[:20]!r}; use one of {', '.join(known)}",
                           errors=[field_problem("format", "unsupported", f"format：应为 {', '.join(known)}",
                                                 f"format: must be one of {', '.join(known)}")])
        return fmt
    media = media_type(request)
    fmt = FORMATS_BY_MEDIA.get(media)
    if fmt is None or fmt not in known:
        raise ApiError(415, "unsupported_media_type",
                       f"无法从内容类型 {media or '(无)'!r} 判断输入格式：请用 application/x-ndjson、text/csv，或 ?format=",
                       f"cannot tell the input format from content type {media or '(none)'!r}: send "
                       f"application/x-ndjson or text/csv, or add ?format= ({', '.join(known)})")
    return fmt


async def receive_upload(request: Request, incoming: Path, limit: int) -> tuple[Path, int, str]:
    """The body streamed to a new file under ``incoming``: (path, size, SM3 hex). Removed on failure."""
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / f"{uuid.uuid4().hex}.part"
    digest = sm3_state()
    size = 0
    buf = bytearray()

    def flush(f, data: bytes) -> None:
        digest.update(data)
        f.write(data)

    try:
        with path.open("wb") as f:
            async for block in request.stream():
                size += len(block)
                if size > limit:
                    raise ApiError(413, "too_large", f"记录文件超过 {limit} 字节的上限（ECERT_MAX_JOB_BYTES）",
                                   f"the records file exceeds the limit of {limit} bytes (ECERT_MAX_JOB_BYTES)")
                buf += block
                if len(buf) >= _BLOCK:
                    await run_in_threadpool(flush, f, bytes(buf))
                    buf.clear()
            await run_in_threadpool(flush, f, bytes(buf))
    except ClientDisconnect:
        path.unlink(missing_ok=True)
        raise ApiError(400, "upload_interrupted", "上传中断", "the upload was interrupted") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size, digest.finalize().hex()


def _photo_problem(where: str) -> InputProblem:
    return InputProblem("photo_not_inline", f"{where}：照片须以 base64 内嵌，上传的文件不能引用服务器上的路径",
                        f"{where}: the photo must be inline base64; an uploaded file cannot name a path on the server",
                        "photo")


def _scan_jsonl(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        for lineno, line in enumerate(iter(lambda: f.readline(MAX_LINE + 1), b""), 1):
            if len(line) > MAX_LINE:
                raise InputProblem("line_too_long", f"第 {lineno} 行超过 {MAX_LINE // MiB} MiB",
                                   f"line {lineno} is longer than {MAX_LINE // MiB} MiB")
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None  # after the first record, a bad line is that record's own manifest error
            if n == 0 and not isinstance(rec, dict):
                raise InputProblem("not_jsonl", f"第 {lineno} 行不是 JSON 对象：文件不是记录的 JSON Lines",
                                   f"line {lineno} is not a JSON object: the file is not JSON Lines of records")
            n += 1
            if isinstance(rec, dict) and is_photo_path(rec.get("photo")):
                raise _photo_problem(f"第 {lineno} 行 / line {lineno}")
    return n


def _scan_csv(path: Path) -> int:
    from ofd.licence.model import LicenceRecord

    n = 0
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="strict") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            if not set(header) & set(LicenceRecord.model_fields):
                raise InputProblem("csv_header", "CSV 第一行应为字段名（如 name、id_number），未找到任何证照字段",
                                   "the first CSV row must name the fields (e.g. name, id_number); none was found")
            for row in reader:
                n += 1
                if is_photo_path(row.get("photo")):
                    raise _photo_problem(f"第 {reader.line_num} 行 / line {reader.line_num}")
    except UnicodeDecodeError as exc:
        raise InputProblem("not_utf8", f"CSV 不是 UTF-8 文本（第 {exc.start} 字节）",
                           f"the CSV is not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise InputProblem("csv_invalid", "CSV 格式错误", f"malformed CSV: {exc}") from None
    return n


def _scan_parquet(path: Path) -> int:
    from signer.bulk_io import BulkInputError, _open_parquet

    try:
        pf = _open_parquet(path)  # the engine's own check: readable, columns = record fields
    except BulkInputError as exc:
        code = {"parquet": "not_parquet"}.get(exc.code, f"parquet_{exc.code}")
        raise InputProblem(code, exc.message_zh, exc.message_en) from None
    if "photo" in pf.schema_arrow.names:
        row = 0
        for batch in pf.iter_batches(columns=["photo"], batch_size=1024):
            for i, photo in enumerate(batch.column(0).to_pylist()):
                if is_photo_path(photo):
                    raise _photo_problem(f"第 {row + i + 1} 行 / row {row + i + 1}")
            row += batch.num_rows
    return pf.metadata.num_rows


def scan_input(path: Path, fmt: str) -> int:
    """Records in the uploaded file, after checking it can be read as ``fmt`` and names no server path."""
    scan = {"jsonl": _scan_jsonl, "csv": _scan_csv, "parquet": _scan_parquet}[fmt]
    n = scan(path)
    if n == 0:
        raise InputProblem("empty_input", "文件中没有记录", "the file holds no records")
    return n


_IDEM_CHARS = frozenset(map(chr, range(0x21, 0x7F)))


@router.post(
    "/v1/jobs",
    status_code=202,
    dependencies=[Depends(only_query("format", "chunk_size", "output"))],
    summary="Start a bulk job from a records file / 批量签发任务",
    responses={202: {"description": "The job (new, or the one this request repeats), with the URLs to follow it",
                     "headers": {"Location": {"schema": {"type": "string"}}}},
               **error_responses(401, 403, 409, 413, 415, 422, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/x-ndjson": {"schema": {"type": "string", "format": "binary",
                                            "description": "one record as JSON per line, photo base64"}},
        "text/csv": {"schema": {"type": "string", "format": "binary",
                                "description": "a header row of field names, one record per row"}},
    }}},
)
async def create_job(
    request: Request,
    fmt: str | None = Query(None, alias="format", description="jsonl | csv (| parquet); default: from Content-Type"),
    chunk_size: int = Query(DEFAULT_CHUNK, ge=1, le=10_000, description="records per Dask task"),
    output: Literal["dir", "zip"] = Query("dir", description="dir: keep the OFD files; zip: keep one archive"),
    idem_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
    token: TokenInfo = Depends(require_scope("issue")),
):
    """Upload, check and queue; 202 at once. A repeated request (same key, or same input) returns the same job."""
    if idem_key is not None and (not idem_key or not set(idem_key) <= _IDEM_CHARS):
        raise ApiError(422, "invalid_idempotency_key", "Idempotency-Key 须为 1-200 个可见 ASCII 字符",
                       "Idempotency-Key must be 1-200 visible ASCII characters")
    fmt = choose_format(request, fmt)
    svc = await service(request)
    limit = request.app.state.ecert.settings.max_job_bytes
    path, size, digest = await receive_upload(request, Path(svc.config.jobs_dir) / ".incoming", limit)
    try:
        if size == 0:
            raise InputProblem("empty_input", "请求体为空：请上传记录文件", "the body is empty: upload a records file")
        total = await run_in_threadpool(scan_input, path, fmt)
        job, created = await run_in_threadpool(lambda: svc.queue.submit(
            owner=token.id, only_issuer=token.issuer_code, idem_key=idem_key, input_sm3=digest, fmt=fmt, chunk_size=chunk_size, output=output,
            size=size, total=total, upload=path, jobs_dir=Path(svc.config.jobs_dir)))
    except InputProblem as exc:
        raise exc.error() from None
    except JobQueueError as exc:
        if exc.code == "idempotency_conflict":
            raise ApiError(409, exc.code, exc.message_zh, exc.message_en) from None
        raise Unavailable("批量任务暂不可用", exc.message_en) from None
    finally:
        path.unlink(missing_ok=True)  # moved into the job's folder, or not needed
    headers = {"Location": f"/v1/jobs/{job.job_id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(await job_body(svc, job), status_code=202, headers=headers)


# ---------------------------------------------------------------- reading


@router.get("/v1/jobs", summary="Recent bulk jobs / 最近的批量任务", responses=error_responses(401, 403, 422, 503),
            dependencies=[Depends(only_query("limit"))])
async def list_jobs(request: Request, limit: int = Query(20, ge=1, le=200), token: TokenInfo = Depends(job_reader)):
    """This token's jobs (every job for an ``admin`` token), newest first."""
    svc = await service(request)
    jobs = await db(svc.queue.recent, token.id, limit, any_owner="admin" in token.scopes)
    return {"jobs": [await job_body(svc, j, ticket=False) for j in jobs]}


@router.api_route("/v1/jobs", methods=["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"], include_in_schema=False)
async def jobs_other_methods():
    """The path has two methods on two routes; Starlette's own 405 would name only the first."""
    raise ApiError(405, "method_not_allowed", "不支持该请求方法", "Method Not Allowed", headers={"Allow": "GET, POST"})


@router.get("/v1/jobs/{job_id}", summary="Progress of a bulk job / 任务进度", dependencies=[Depends(only_query())],
            responses=error_responses(401, 403, 404, 422, 503))
async def get_job(request: Request, job_id: str, token: TokenInfo = Depends(job_reader)):
    """State, total, done, failed, rate (records/s), ETA (s), times and links."""
    svc = await service(request)
    return await job_body(svc, await visible_job(svc, job_id, token))


def _sse(event: str | None, data: str | None = None, *, comment: str | None = None) -> bytes:
    if comment is not None:
        return f": {comment}\n\n".encode()
    return (f"event: {event}\n" if event else "").encode() + f"data: {data}\n\n".encode()


@router.get("/v1/jobs/{job_id}/events", summary="Progress as Server-Sent Events / 进度推送",
            dependencies=[Depends(only_query("ticket"))],
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}, **error_responses(401, 403, 404, 422, 503)})
async def job_events(request: Request, job_id: str, ticket: str | None = Query(None, max_length=100),
                     cred: HTTPAuthorizationCredentials | None = Security(bearer)):
    """``progress`` events (the job as in GET) on every change, ``: keep-alive`` comments, then ``end``
    with the final state. Authorised by the job's ``ticket`` (EventSource sends no header) or a token."""
    svc = await service(request)
    if ticket is not None and cred is None:
        job = await db(svc.queue.get, job_id) if len(job_id) <= 64 else None
        if job is None:
            raise not_found(job_id)
        if not hmac.compare_digest(ticket.encode(), job.ticket.encode()):
            raise ApiError(403, "bad_ticket", "该任务的进度凭据不对", "the ticket does not match this job")
    else:
        await visible_job(svc, job_id, await job_reader(request, cred))

    async def stream():
        yield b"retry: 3000\n\n"
        last, quiet_since = None, time.monotonic()
        until = quiet_since + SSE_MAX_S
        while time.monotonic() < until:
            try:
                current = await db(svc.queue.get, job_id)
                body = json.dumps(await job_body(svc, current, ticket=False), ensure_ascii=False)
            except Unavailable:
                return  # the client reconnects (retry) and gets a 503 or the stream again
            if current.state in TERMINAL:
                yield _sse("end", body)
                return
            if body != last:
                yield _sse("progress", body)
                last, quiet_since = body, time.monotonic()
            elif time.monotonic() - quiet_since >= SSE_HEARTBEAT_S:
                yield _sse(None, comment="keep-alive")
                quiet_since = time.monotonic()
            await asyncio.sleep(SSE_POLL_S)
            if await request.is_disconnected():
                return

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _finished(job: ServiceJob) -> ServiceJob:
    if job.state != DONE:
        raise ApiError(409, "job_not_done", f"任务尚未完成（{job.state}），完成后才能下载",
                       f"the job is {job.state}, not done: download once it is done")
    return job


def _manifest_lines(job: ServiceJob, failed_only: bool):
    with open_manifest(job) as f:
        for line in f:
            if not failed_only or "errors" in json.loads(line):
                yield line


@router.get("/v1/jobs/{job_id}/manifest", summary="The job's manifest (JSON Lines) / 清单",
            dependencies=[Depends(only_query("failed"))],
            response_class=Response,
            responses={200: {"content": {"application/x-ndjson": {}}}, **error_responses(401, 403, 404, 409, 422)})
async def job_manifest(request: Request, job_id: str,
                       failed: bool = Query(False, description="only the records with errors (by field)"),
                       token: TokenInfo = Depends(job_reader)):
    """One line per input record, in input order: ``identifier`` and ``sm3``, or ``errors`` by field."""
    svc = await service(request)
    job = _finished(await visible_job(svc, job_id, token))
    name = f"{job_id}-{'failed' if failed else 'manifest'}.jsonl"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return StreamingResponse(_manifest_lines(job, failed), media_type="application/x-ndjson", headers=headers)


def _zip_stream(out_dir: Path):
    buf = _Chunks()
    for _ in result_zip_parts(out_dir, buf):
        data = buf.take()
        if data:
            yield data


@router.get("/v1/jobs/{job_id}/result", summary="The sealed OFDs and the manifest as a ZIP / 下载结果",
            dependencies=[Depends(only_query())],
            response_class=Response,
            responses={200: {"content": {"application/zip": {}}}, **error_responses(401, 403, 404, 409, 422)})
async def job_result(request: Request, job_id: str, token: TokenInfo = Depends(job_reader)):
    """``<identifier>.ofd`` per sealed record and ``manifest.jsonl``: the engine's ZIP (``output=zip``)
    as a file, or the folder (``output=dir``) zipped as it streams out; never built in memory."""
    svc = await service(request)
    job = _finished(await visible_job(svc, job_id, token))
    headers = {"Content-Disposition": f'attachment; filename="ecert-{job_id}.zip"', "Cache-Control": "no-store"}
    if job.output == "zip":
        return FileResponse(job.out_dir, media_type="application/zip", headers=headers)
    return StreamingResponse(_zip_stream(Path(job.out_dir)), media_type="application/zip", headers=headers)


# ---------------------------------------------------------------- the portal's job page


@router.get("/portal/jobs.html", include_in_schema=False)
@router.get("/portal/jobs.js", include_in_schema=False)
async def portal_jobs_page(request: Request) -> Response:
    name = request.url.path.rsplit("/", 1)[1]
    return Response((STATIC / name).read_bytes(), media_type=_PORTAL_FILES[name],
                    headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})
