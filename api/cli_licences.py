"""`ecert licences ...`: a registered licence's status, 撤销 (revoke) and 注销 (cancel)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    help="Licence registry: status, revocation (撤销) and cancellation (注销) (证照登记簿).",
    no_args_is_help=True,
    add_completion=False,
)


def fail(message: str, code: int = 1):
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]错误 / error:[/] {escape(message)}")
    raise typer.Exit(code=code)


@contextmanager
def open_registry() -> Iterator["Registry"]:  # noqa: F821
    """The registry in the configured keystore database; a clear error (exit 1) for every failure."""
    from keys.config import KeyStoreError, load_settings
    from keys.store import KeyStore
    from signer.registry import Registry, RegistryError

    settings = load_settings()
    if settings.sqlite_path is not None and not settings.sqlite_path.exists():
        fail(f"密钥库不存在 / no keystore at {settings.sqlite_path}: run `ecert keys init` first")
    try:
        with KeyStore(settings) as store, Registry(store) as reg:
            yield reg
    except (KeyStoreError, RegistryError) as exc:
        fail(str(exc))


def parse_when(s: str | None) -> datetime | date | None:
    """``YYYY-MM-DD`` (a decision date, recorded as that day) or an ISO 8601 time (UTC if no zone)."""
    if s is None:
        return None
    try:
        if len(s.strip()) == 10:
            return date.fromisoformat(s.strip())
        t = datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"日期时间格式无效 / not a date (YYYY-MM-DD) or ISO 8601 time: {s!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _print_entry(d: dict) -> None:
    console = Console(highlight=False, soft_wrap=True)
    colour = {"valid": "green", "revoked": "red", "cancelled": "red", "superseded": "yellow"}[d["status"]]
    console.print(f"证照标识 identifier: {d['identifier']}", markup=False)
    console.print(f"状态 status: [{colour}]{escape(d['status_zh'])} / {d['status_en']}[/]")
    if d.get("reason"):
        console.print(f"原因 reason: {d['reason_zh']} / {d['reason_en']} ({d['reason_article']}, {d['reason']})",
                      markup=False)
        console.print(f"日期 date: {d['status_at']}", markup=False)
    if d.get("note"):
        console.print(f"备注 note: {d['note']}", markup=False)
    if d.get("superseded_by"):
        console.print(f"新版本 superseded by: {d['superseded_by']}", markup=False)
    for label, key in (("版本 version", "version"), ("颁发时间 issued at", "issued_at"),
                       ("签名密钥 key id", "kid"), ("文件 SM3 file SM3", "file_sm3"), ("日志 log seq", "last_seq")):
        console.print(f"{label}: {d[key]}", markup=False)


@app.command()
def status(
    identifier: str = typer.Argument(..., help="证照标识 (GB/T 36904 identifier)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show a licence's status (有效 / 已撤销 / 已注销 / 已换发) and its log history."""
    from signer.registry import RegistryError

    with open_registry() as reg:
        try:
            st = reg.status(identifier.strip())
        except RegistryError as exc:
            fail(str(exc))
    d = st.entry.to_dict() | {"current": st.current, "history": [e.to_dict() for e in st.history]}
    if as_json:
        typer.echo(json.dumps(d, ensure_ascii=False, indent=2))
        return
    _print_entry(d)
    if st.current != st.entry.identifier:
        typer.echo(f"当前版本 current version: {st.current}")
    for e in st.history:
        typer.echo(f"  #{e.seq} {e.at} {e.kind} {e.payload.get('reason') or ''}".rstrip())


def _change(kind: str, identifier: str, reason: str, at: str | None, note: str | None, as_json: bool) -> None:
    from signer.registry import RegistryError

    with open_registry() as reg:
        try:
            entry = getattr(reg, kind)(identifier.strip(), reason, at=parse_when(at), note=note)
        except RegistryError as exc:
            fail(str(exc))
    d = entry.to_dict()
    if as_json:
        typer.echo(json.dumps(d, ensure_ascii=False, indent=2))
    else:
        _print_entry(d)


_AT_HELP = "Decision date YYYY-MM-DD or ISO time (default: now)."


@app.command()
def revoke(
    identifier: str = typer.Argument(..., help="证照标识."),
    reason: str = typer.Option(..., "--reason", help="撤销原因 code (Order 30 §30); see `ecert licences reasons`."),
    at: Optional[str] = typer.Option(None, "--at", help=_AT_HELP),
    note: Optional[str] = typer.Option(None, "--note", help="备注, e.g. the decision's document number."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """撤销 a licence (revoke), with the regulation's reason."""
    _change("revoke", identifier, reason, at, note, as_json)


@app.command()
def cancel(
    identifier: str = typer.Argument(..., help="证照标识."),
    reason: str = typer.Option(..., "--reason", help="注销原因 code (Order 30 §31); see `ecert licences reasons`."),
    at: Optional[str] = typer.Option(None, "--at", help=_AT_HELP),
    note: Optional[str] = typer.Option(None, "--note", help="备注."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """注销 a licence (cancel): death, the holder's request, or after revocation."""
    _change("cancel", identifier, reason, at, note, as_json)


@app.command()
def reasons() -> None:
    """List the reason codes for revoke and cancel."""
    from signer.licence_status import Reason

    for r in Reason:
        typer.echo(f"{r.action:7} {r.code:23} {r.article}  {r.zh} / {r.en}")
