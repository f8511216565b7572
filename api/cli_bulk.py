"""`ecert bulk run|status`: seal a whole records file on Dask (embedded cluster or ``--scheduler``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.cli_licences import fail

app = typer.Typer(help="Bulk issuing on Dask, resumable by job id (批量签发).", no_args_is_help=True,
                  add_completion=False)
console = Console()


def _settings():
    from keys.config import load_settings

    settings = load_settings()
    if settings.sqlite_path is not None and not settings.sqlite_path.exists():
        fail(f"密钥库不存在 / no keystore at {settings.sqlite_path}: run `ecert keys init` first")
    return settings


@app.command("run")
def run(
    records: Path = typer.Argument(..., help="Records file: .jsonl or .csv (photo as base64 or a path beside it)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: <identifier>.ofd per record + manifest.jsonl."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", envvar="ECERT_DASK_SCHEDULER",
                                            help="Dask scheduler (tcp://host:8786); default: an embedded cluster."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes of the embedded cluster."),
    chunk_size: int = typer.Option(500, "--chunk-size", min=1, help="Records per task."),
    job_id: Optional[str] = typer.Option(None, "--job-id", help="Resume (or name) this job; printed at the start."),
):
    """Issue and seal every record; a bad record is a manifest line, not a stop. Exit 1 if any record failed."""
    from signer.bulk import BulkError, BulkInputError, BulkJobError, new_job_id, run_bulk

    settings = _settings()
    job_id = job_id or new_job_id()
    console.print(f"job {job_id}  (resume with --job-id {job_id})", highlight=False)
    progress = Progress(TextColumn("[bold]signing"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("ok {task.fields[ok]} / failed {task.fields[bad]}  {task.fields[rate]}"),
                        TimeRemainingColumn(), console=console, disable=not console.is_terminal)
    task = progress.add_task("bulk", total=None, ok=0, bad=0, rate="")

    def show(p) -> None:
        progress.update(task, total=p.total, completed=p.done + p.failed, ok=p.done, bad=p.failed,
                        rate=f"{p.rate:,.0f}/s")

    try:
        with progress:
            r = run_bulk(records, out, store_settings=settings, chunk_size=chunk_size, scheduler=scheduler,
                         n_workers=workers, job_id=job_id, on_progress=show)
    except (BulkInputError, BulkJobError, BulkError) as exc:
        fail(f"{exc.message_zh} / {exc.message_en}", 2 if isinstance(exc, BulkInputError) else 1)
    console.print(f"issued {r.done}, failed {r.failed} in {r.seconds:.1f} s ({r.rate:,.0f}/s) → {r.manifest}",
                  highlight=False)
    raise typer.Exit(0 if r.failed == 0 else 1)


@app.command("status")
def status(
    job_id: str = typer.Argument(..., help="The job id printed by `ecert bulk run`."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
):
    """Progress of a bulk job: done, failed, rate, ETA (from the keystore database)."""
    from signer.bulk import BulkJobError, job_progress

    try:
        p = job_progress(job_id, _settings())
    except BulkJobError as exc:
        fail(f"{exc.message_zh} / {exc.message_en}")
    if as_json:
        sys.stdout.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
        return
    total = "?" if p.total is None else f"{p.total:,}"
    eta = "" if p.eta_s is None else f", ETA {p.eta_s:,.0f} s"
    console.print(f"job {p.job_id}: {p.state}; {p.done:,} issued, {p.failed:,} failed of {total} "
                  f"({p.rate:,.0f}/s{eta}) → {p.out_dir}" + (f"\n{p.error}" if p.error else ""), highlight=False)
