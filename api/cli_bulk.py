"""`ecert bulk run|status`: seal a whole records file on Dask (embedded cluster or ``--scheduler``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
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


def run_with_progress(records: Path, out: Path, label: str, **kw):
    """`signer.bulk.run_bulk` under a Rich progress bar (done / total, ok / failed, rate, ETA) when
    stdout is a terminal. Exit 2 for an unreadable input, 1 when the job cannot run or stopped."""
    from signer.bulk import BulkInputError, BulkProblem, run_bulk

    progress = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("ok {task.fields[ok]} / failed {task.fields[bad]}  {task.fields[rate]}"),
                        TimeRemainingColumn(), console=console, disable=not console.is_terminal)
    task = progress.add_task(label, total=None, ok=0, bad=0, rate="")

    def show(p) -> None:
        progress.update(task, total=p.total, completed=p.done + p.failed, ok=p.done, bad=p.failed,
                        rate=f"{p.rate:,.0f}/s")

    try:
        with progress:
            return run_bulk(records, out, on_progress=show, **kw)
    except BulkProblem as exc:  # input unreadable, job refused or stopped, output unwritable: one zh/en line
        fail(f"{exc.message_zh} / {exc.message_en}", 2 if isinstance(exc, BulkInputError) else 1)


def print_outcome(r, show_errors: int = 0) -> None:
    """The summary line, and the first ``show_errors`` failed records (line: field message) from the manifest."""
    if show_errors and r.failed:
        from signer.bulk import manifest_errors

        for i, (line, message) in enumerate(manifest_errors(r)):
            if i == show_errors:
                console.print(f"[red]… and {r.failed - show_errors} more: see {r.manifest}[/red]", highlight=False)
                break
            console.print(f"[red]line {line}: {escape(message)}[/red]", highlight=False)
    console.print(f"issued {r.done}, failed {r.failed} in {r.seconds:.1f} s ({r.rate:,.0f}/s) → {r.manifest}",
                  highlight=False)


@app.command("run")
def run(
    records: Path = typer.Argument(..., help="Records file: .jsonl, .csv or .parquet (photo inline or a path beside it)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (<identifier>.ofd per record + manifest.jsonl), "
                                                      "or a .zip holding them."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", envvar="ECERT_DASK_SCHEDULER",
                                            help="Dask scheduler (tcp://host:8786); default: an embedded cluster."),
    workers: int = typer.Option(2, "--workers", min=0, help="Worker processes of the embedded cluster (0: this process)."),
    chunk_size: int = typer.Option(500, "--chunk-size", min=1, help="Records per task."),
    job_id: Optional[str] = typer.Option(None, "--job-id", help="Resume (or name) this job; printed at the start."),
    as_zip: bool = typer.Option(False, "--zip", help="Write one ZIP at --out even if it does not end in .zip."),
):
    """Issue and seal every record; a bad record is a manifest line, not a stop. Exit 1 if any record failed."""
    from signer.bulk import new_job_id

    settings = _settings()
    job_id = job_id or new_job_id()
    console.print(f"job {job_id}  (resume with --job-id {job_id})", highlight=False)
    r = run_with_progress(records, out, "signing", store_settings=settings, chunk_size=chunk_size, scheduler=scheduler,
                          n_workers=workers, job_id=job_id, zip_output=as_zip or None)
    print_outcome(r)
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
