"""`ecert verify` and `ecert issue`: the document commands."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer()
console = Console()

EXIT_USAGE = 2


def _parse_time(s: str) -> datetime:
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {s!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _load_certs(paths: list[Path], what: str):
    from keys.x509 import Certificate, CertificateError

    out = []
    for p in paths:
        try:
            out.extend(Certificate.load_all(p.read_bytes()))
        except (OSError, CertificateError) as exc:
            console.print(f"[red]cannot read {what} {p}: {exc}[/red]")
            raise typer.Exit(EXIT_USAGE)
    return out


def _default_trust(**kw):
    """Our keystore's roots and revocation state if a keystore is there; else only what was given."""
    from keys.config import load_settings
    from verifier.trust import TrustConfig, trust_from_store

    settings = load_settings()
    if settings.is_sqlite and not (settings.home / "keystore.db").exists():
        return TrustConfig(**kw), None
    try:
        from keys.store import KeyStore

        store = KeyStore(settings)
    except Exception as exc:  # no usable keystore: verify without our roots, and say so
        return TrustConfig(**kw), f"keystore not used: {exc}"
    return trust_from_store(store, **kw), None


def _trust_list_config(path: Path, root: Path | None, kw: dict):
    """Fully offline: our roots and key statuses from a saved, root-signed trust list."""
    from keys.trustlist import TrustListError, load_trust_list
    from verifier.trust import TrustConfig

    if root is None:
        console.print("[red]--trust-list needs --root (the pinned root certificate)[/red]")
        raise typer.Exit(EXIT_USAGE)
    try:
        data, sig = path.read_bytes(), path.with_name(path.name + ".sig").read_bytes()
        tl = load_trust_list(data, sig, root.read_bytes())
    except OSError as exc:
        console.print(f"[red]cannot read the trust list: {exc}[/red]")
        raise typer.Exit(EXIT_USAGE)
    except TrustListError as exc:
        console.print(f"[red]trust list rejected: {exc}[/red]")
        raise typer.Exit(EXIT_USAGE)
    return TrustConfig(roots=list(tl.roots) + kw.pop("roots", []), revocation=tl.revocation, **kw)


def print_report(report, title: str) -> None:
    from verifier.report import VERDICT_WORDS

    zh, en = VERDICT_WORDS[report.verdict]
    colour = {"valid": "green", "invalid": "red", "indeterminate": "yellow"}[report.verdict]
    console.print(f"[bold {colour}]{zh} / {en}[/bold {colour}]  {title}")
    table = Table(show_header=True, header_style="bold")
    for col in ("", "check", "signature", "reason"):
        table.add_column(col)
    marks = {"pass": "[green]✓[/green]", "fail": "[red]✗[/red]", "warn": "[yellow]![/yellow]", "skip": "[dim]–[/dim]"}
    for c in report.checks:
        table.add_row(marks[c.status], c.name, c.signature or "", f"{c.reason_zh}\n[dim]{c.reason_en}[/dim]")
    console.print(table)
    for s in report.signatures:
        console.print(f"  signature {s.id}: {s.format or s.type}, signer {s.signer or '?'}, signed {s.signed_at or '?'}")


@app.command()
def verify(
    file: Path = typer.Argument(..., help="The signed .ofd file."),
    as_json: bool = typer.Option(False, "--json", help="Print the machine-readable report."),
    trust: list[Path] = typer.Option([], "--trust", help="Extra trusted root certificate (PEM/DER); repeatable."),
    signer_cert: list[Path] = typer.Option([], "--signer-cert", help="Signer certificate for a raw SM2 signature."),
    at: Optional[str] = typer.Option(None, "--at", help="Verify as of this time (ISO 8601)."),
    trust_list: Optional[Path] = typer.Option(None, "--trust-list",
                                              help="Verify offline from a saved trust list (signature in <file>.sig)."),
    root: Optional[Path] = typer.Option(None, "--root", help="The pinned root certificate the trust list must verify against."),
):
    """Verify every signature of an OFD. Exit 0 valid, 1 invalid, 3 indeterminate, 2 usage/unreadable."""
    from verifier.ofd_verify import verify_ofd

    try:
        data = file.read_bytes()
    except OSError as exc:
        console.print(f"[red]cannot read {file}: {exc.strerror}[/red]")
        raise typer.Exit(EXIT_USAGE)
    kw = {"roots": _load_certs(trust, "trusted root"), "signer_certs": _load_certs(signer_cert, "signer certificate")}
    if at:
        kw["at"] = _parse_time(at)
    if trust_list is not None:
        trust_cfg, note = _trust_list_config(trust_list, root, kw), None
    else:
        trust_cfg, note = _default_trust(**kw)
    report = verify_ofd(data, trust_cfg)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        if note:
            console.print(f"[dim]{note}[/dim]")
        print_report(report, str(file))
    raise typer.Exit(report.exit_code())


@app.command()
def issue(
    records: Path = typer.Argument(..., help="Records file: .jsonl, .csv or .parquet (photo inline or a file path)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (one <identifier>.ofd per record + manifest.jsonl), "
                                                      "or a .zip holding them."),
    issuer_code: Optional[str] = typer.Option(None, help="Only issue for this issuer; other records fail by field."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                          help="0: sign in this process; N: an embedded Dask cluster of N processes. "
                                               "Default: this process below 2,000 records, else one per CPU."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", envvar="ECERT_DASK_SCHEDULER",
                                            help="Sign on this Dask cluster (tcp://host:8786)."),
    as_zip: bool = typer.Option(False, "--zip", help="Write one ZIP at --out even if it does not end in .zip."),
):
    """Issue and seal licences from a records file. A bad record is reported and skipped; the rest go on.
    Exit 0 all issued, 1 some record failed (see manifest.jsonl), 2 unreadable input."""
    import os

    from api.cli_bulk import print_outcome, run_with_progress
    from api.cli_bulk import _settings as bulk_settings
    from signer.bulk import DEFAULT_CHUNK, INPROCESS_BELOW
    from signer.bulk_io import BulkInputError, check_input, count_records

    try:
        check_input(records)
    except BulkInputError as exc:
        console.print(f"[red]{exc.message_zh} / {exc.message_en}[/red]")
        raise typer.Exit(EXIT_USAGE)
    n = count_records(records) or 0
    if workers is None:
        workers = 0 if n < INPROCESS_BELOW else max(2, os.cpu_count() or 2)
    # in-process: chunks of 100 keep the progress bar lively; on Dask >= 8 chunks per worker, so the
    # last one running alone (the tail) is a small part of the job
    chunk = max(50, min(DEFAULT_CHUNK, n // (8 * max(workers, 2)))) if workers or scheduler else 100
    r = run_with_progress(records, out, "issuing", store_settings=bulk_settings(), chunk_size=chunk, scheduler=scheduler,
                          n_workers=workers, issuer_code=issuer_code, zip_output=as_zip or None)
    print_outcome(r, show_errors=20)
    raise typer.Exit(0 if r.failed == 0 else 1)
