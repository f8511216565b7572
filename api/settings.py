"""HTTP service settings, read from the environment in one place.

* ``ECERT_MAX_UPLOAD_BYTES``   -- largest request body for one record or one document (default 20 MiB);
* ``ECERT_MAX_BATCH_BYTES``    -- largest body of ``POST /v1/licences:batch`` (default 200 MiB);
* ``ECERT_MAX_BATCH_RECORDS``  -- most records in one batch (default 10000);
* ``ECERT_SIGN_WORKERS``       -- processes that sign and verify (default: the CPU count);
                                  0 runs that work in the server's thread pool (tests, tiny setups);
* ``ECERT_METRICS_PUBLIC``     -- ``0`` makes ``GET /metrics`` need an ``admin`` token (default public);
* bulk jobs (``POST /v1/jobs``, see `api.routes_jobs`):
  ``ECERT_MAX_JOB_BYTES`` largest uploaded records file (default 2 GiB); ``ECERT_JOBS_DIR`` where
  inputs and outputs live (default ``$ECERT_HOME/jobs``); ``ECERT_DASK_SCHEDULER`` a Dask scheduler
  address (default: an embedded LocalCluster of ``ECERT_JOB_WORKERS`` processes, default 2);
  ``ECERT_JOBS_MAX_RUNNING`` jobs running at once over all server processes (default 1);
  ``ECERT_JOB_LEASE_SECONDS`` how long a dead server's job waits before another takes it (default 30);
  ``ECERT_JOB_RUNNER=0`` makes this process accept and report jobs but never run them;
* the keystore's own variables (``ECERT_HOME``, ``ECERT_DATABASE_URL``, ...), see `keys.config`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from keys.config import Settings, load_settings

MiB = 1024 * 1024


class SettingsError(ValueError):
    """A service setting in the environment is not usable."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} 不是整数 / is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} 小于 {minimum} / must be at least {minimum}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "1").strip().lower() not in ("0", "false", "no")


@dataclass(frozen=True)
class ApiSettings:
    keystore: Settings = field(repr=False)
    max_upload_bytes: int = 20 * MiB
    max_batch_bytes: int = 200 * MiB
    max_batch_records: int = 10_000
    sign_workers: int = 0
    metrics_public: bool = True
    max_job_bytes: int = 2048 * MiB
    jobs_dir: Path | None = None  # None: <home>/jobs
    dask_scheduler: str | None = None
    job_workers: int = 2
    jobs_max_running: int = 1
    job_lease_seconds: int = 30
    job_runner: bool = True


def load_api_settings(env: Mapping[str, str] = os.environ, **overrides) -> ApiSettings:
    """Settings from ``env`` (default: the process environment); keyword arguments win."""
    values = dict(
        keystore=load_settings(env),
        max_upload_bytes=_int(env, "ECERT_MAX_UPLOAD_BYTES", 20 * MiB, 1024),
        max_batch_bytes=_int(env, "ECERT_MAX_BATCH_BYTES", 200 * MiB, 1024),
        max_batch_records=_int(env, "ECERT_MAX_BATCH_RECORDS", 10_000, 1),
        sign_workers=_int(env, "ECERT_SIGN_WORKERS", os.cpu_count() or 1, 0),
        metrics_public=_flag(env, "ECERT_METRICS_PUBLIC"),
        max_job_bytes=_int(env, "ECERT_MAX_JOB_BYTES", 2048 * MiB, 1024),
        jobs_dir=Path(env["ECERT_JOBS_DIR"]).absolute() if env.get("ECERT_JOBS_DIR", "").strip() else None,
        dask_scheduler=env.get("ECERT_DASK_SCHEDULER", "").strip() or None,
        job_workers=_int(env, "ECERT_JOB_WORKERS", 2, 1),
        jobs_max_running=_int(env, "ECERT_JOBS_MAX_RUNNING", 1, 1),
        job_lease_seconds=_int(env, "ECERT_JOB_LEASE_SECONDS", 30, 1),
        job_runner=_flag(env, "ECERT_JOB_RUNNER"),
    )
    values.update(overrides)
    return ApiSettings(**values)
