"""`ecert verify` and `ecert issue`: the document commands."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
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
    records: Path = typer.Argument(..., help="Records file: .jsonl or .csv (photo as base64 or a file path)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder; one <identifier>.ofd per record."),
    issuer_code: Optional[str] = typer.Option(None, help="Issuer (default: the records' issuer_code)."),
):
    """Issue and seal licences from a records file. A bad record is reported and skipped; the rest go on."""
    from keys.store import KeyStore
    from ofd.licence.errors import LicenceError
    from signer.bulk_io import BulkInputError, check_input, count_records, read_records, write_atomic
    from signer.issue import LicenceIssuer
    from signer.registry import Registry, RegistryError

    try:
        check_input(records)
    except BulkInputError as exc:
        console.print(f"[red]{exc.message_zh} / {exc.message_en}[/red]")
        raise typer.Exit(EXIT_USAGE)
    store = KeyStore()
    registry = Registry(store)
    out.mkdir(parents=True, exist_ok=True)
    issuers: dict[str, LicenceIssuer] = {}
    ok = bad = 0
    manifest = (out / "manifest.jsonl").open("a", encoding="utf-8")
    progress = Progress(TextColumn("[bold]issuing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                        TimeRemainingColumn(), console=console, transient=False, disable=not console.is_terminal)
    task = progress.add_task("issue", total=count_records(records), rate="")
    progress.start()
    for line, rec in read_records(records):
        progress.update(task, advance=1, rate=f"ok {ok} / failed {bad}")
        try:
            if isinstance(rec, str):  # an unreadable line
                raise ValueError(rec)
            code = issuer_code or rec.get("issuer_code", "")
            iss = issuers.get(code) or issuers.setdefault(code, LicenceIssuer(store, code))
            outcome = registry.issue_file(iss, rec)
            result = outcome.issued
            write_atomic(out / f"{result.identifier}.ofd", result.data)  # never half-written under its name
            manifest.write(json.dumps({"line": line, "identifier": result.identifier, "sm3": result.sm3_hex,
                                       "registered": outcome.created}) + "\n")
            ok += 1
        except RegistryError as exc:
            bad += 1
            manifest.write(json.dumps({"line": line, "error": exc.code, "message_zh": exc.message_zh,
                                       "message_en": exc.message_en}, ensure_ascii=False) + "\n")
            console.print(f"[red]line {line}: {exc.message_en}[/red]")
        except LicenceError as exc:
            bad += 1
            manifest.write(json.dumps({"line": line, "errors": exc.as_dicts()}, ensure_ascii=False) + "\n")
            console.print(f"[red]line {line}: {exc}[/red]")
        except Exception as exc:  # keystore/issuer problems are per record too; keep going
            bad += 1
            manifest.write(json.dumps({"line": line, "error": str(exc)}, ensure_ascii=False) + "\n")
            console.print(f"[red]line {line}: {exc}[/red]")
    progress.stop()
    manifest.close()
    console.print(f"issued {ok}, failed {bad} → {out}")
    raise typer.Exit(0 if bad == 0 else 1)
