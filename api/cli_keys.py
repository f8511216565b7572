"""`ecert keys ...`: bootstrap, inspect, rotate and revoke keys. Never shows private material."""

from __future__ import annotations

import json
from datetime import datetime

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keys.config import Settings, load_settings
from keys import rotation
from keys.store import DEV_ISSUER_CODE, DEV_ISSUER_NAME, PLATFORM, KeyRecord, KeyStore, KeyStoreError

app = typer.Typer(
    help="Keystore: root CA, seal maker, issuers and their SM2 keys (密钥库).",
    no_args_is_help=True,
    add_completion=False,
)

_ROLE_LABEL = {"root": "root CA", "seal_maker": "seal maker", "signing": "signing"}


def _open(settings: Settings | None = None) -> KeyStore:
    try:
        return KeyStore(settings)
    except KeyStoreError as exc:
        _fail(exc)


def _console() -> Console:
    """Rich console; piped output (logs, CI) gets 120 columns instead of Rich's 80 so rows stay whole."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 120
    return console


def _fail(exc: Exception):
    Console(stderr=True).print(f"[bold red]错误 / error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(code=1)


def _kek_source(store: KeyStore) -> str:
    return "ECERT_KEK" if store.settings.kek else str(store.settings.kek_file)


@app.command()
def init(
    issuer_code: str = typer.Option(DEV_ISSUER_CODE, help="Issuer code (normally its 统一社会信用代码)."),
    issuer_name: str = typer.Option(DEV_ISSUER_NAME, help="Issuer name (发证机构名称)."),
) -> None:
    """Create a development root CA, seal maker, issuer and its active signing key (idempotent)."""
    with _open() as store:
        try:
            result = store.init_dev(issuer_code=issuer_code, issuer_name=issuer_name)
            records = store.list_keys()
            names = _issuer_names(store)
        except KeyStoreError as exc:
            _fail(exc)
        console = _console()
        if result.changed:
            console.print(f"密钥库已初始化 / keystore initialised: created {', '.join(result.created)}")
        else:
            console.print("密钥库已初始化，未做任何更改 / keystore already initialised: nothing changed")
        console.print(f"database: {store.url}\nKEK: {_kek_source(store)}", markup=False)
        console.print(_table(records, names, console.width))


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List keys: kid, issuer, role, status, validity (no private material)."""
    settings = load_settings()
    if settings.sqlite_path is not None and not settings.sqlite_path.exists():
        typer.echo(f"密钥库为空 / the keystore is empty ({settings.sqlite_path} does not exist): run `ecert keys init`")
        return
    with _open(settings) as store:
        try:
            records = store.list_keys()
            names = _issuer_names(store)
        except KeyStoreError as exc:
            _fail(exc)
    if as_json:
        typer.echo(json.dumps([_as_json(r, names) for r in records], ensure_ascii=False, indent=2))
        return
    if not records:
        typer.echo("密钥库为空 / the keystore is empty: run `ecert keys init`")
        return
    console = _console()
    console.print(_table(records, names, console.width))


def _issuer_names(store: KeyStore) -> dict[str, str]:
    return {i.code: i.name for i in store.issuers()}


def _as_json(r: KeyRecord, names: dict[str, str]) -> dict:
    return {
        "kid": r.kid, "issuer_code": r.issuer_code, "issuer_name": names.get(r.issuer_code), "role": r.role,
        "status": r.status, "not_before": r.not_before.isoformat(), "not_after": r.not_after.isoformat(),
        "parent_kid": r.parent_kid,
        **{k: (getattr(r, k).isoformat() if getattr(r, k) else None) for k in ("activated_at", "retired_at", "revoked_at")},
        "revocation_reason": r.revocation_reason,
    }


def _table(records: list[KeyRecord], names: dict[str, str], width: int) -> Table:
    """Fits 80 columns: validity goes on two lines below 100."""
    sep = " → " if width >= 100 else "\n→ "
    table = Table(title="ecert keys 密钥", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("kid", no_wrap=True, min_width=16)
    table.add_column("issuer 机构", overflow="fold", ratio=1)
    table.add_column("role", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("validity (UTC)", no_wrap=True)
    style = {"active": "green", "retired": "yellow", "revoked": "red", "pending": "cyan"}
    for r in records:
        if r.issuer_code == PLATFORM:
            issuer = "platform 平台"
        else:
            issuer = escape(f"{names.get(r.issuer_code, '')} ({r.issuer_code})")
        table.add_row(
            r.kid,
            issuer,
            _ROLE_LABEL.get(r.role, r.role),
            f"[{style.get(r.status, 'white')}]{r.status}[/]",
            f"{r.not_before:%Y-%m-%d}{sep}{r.not_after:%Y-%m-%d}",
        )
    return table


@app.command()
def rotate(
    issuer: str = typer.Option(None, "--issuer", help="Rotate this issuer's signing key now."),
    due: bool = typer.Option(False, "--due", help="Rotate every signing key older than ECERT_ROTATE_AFTER_DAYS."),
    after_days: int = typer.Option(None, "--after-days", min=1, help="With --due: the age in days (overrides the setting)."),
    validity_days: int = typer.Option(None, "--validity-days", min=1, help="Validity of the new certificate (default 3 years)."),
) -> None:
    """New key, certificate from the root and seal; switch atomically; the old key is retired (verifies, never signs)."""
    if (issuer is None) == (not due):
        _fail(ValueError("请指定 --issuer 或 --due 之一 / give exactly one of --issuer X or --due"))
    from signer.issue import make_seal

    with _open() as store:
        try:
            if due:
                done = rotation.rotate_due(store, after_days=after_days)
            else:
                done = [rotation.rotate(store, issuer, validity_days=validity_days)]
            for r in done:
                make_seal(store, r.issuer_code)
        except KeyStoreError as exc:
            _fail(exc)
    rotation.crash_point("sealed")
    if due and not done:
        typer.echo("没有到期的密钥 / no signing key is due for rotation")
    for r in done:
        was = f"{r.old.kid} ({r.old.status})" if r.old else "(no active key)"
        typer.echo(f"已轮换 / rotated {r.issuer_code}: {was} -> {r.new.kid} (active, until {r.new.not_after:%Y-%m-%d})"
                   + (" [resumed a staged key]" if r.resumed else ""))


def _parse_time(text: str | None) -> datetime | None:
    if text is None or text.strip().lower() == "now":
        return None
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        _fail(ValueError(f"时间格式错误 / --at {text!r}: give an ISO 8601 time with its zone, e.g. 2026-05-01T09:30:00+08:00 "
                         "or 2026-05-01T01:30:00Z"))
    return t


@app.command()
def revoke(
    kid: str = typer.Argument(..., help="Key id to revoke (see `ecert keys list`)."),
    at: str = typer.Option(None, "--at", help="Cut-off (ISO 8601 with zone; default now): later signatures are invalid."),
    reason: str = typer.Option(..., "--reason", help="Why, e.g. keyCompromise, superseded, cessationOfOperation."),
    replace: bool = typer.Option(True, "--rotate/--no-rotate", help="An active signing key is replaced in the same step."),
) -> None:
    """Revoke a key from a cut-off time: earlier signatures stay valid (with a warning), later ones are invalid."""
    from signer.issue import make_seal

    cutoff = _parse_time(at)
    with _open() as store:
        try:
            before = store.get_key(kid)
            was_active = before.role == "signing" and before.status == "active"
            rec, r = rotation.revoke_key(store, kid, reason=reason, at=cutoff, replace=replace)
            if r is not None:
                make_seal(store, r.issuer_code)
                typer.echo(f"已启用新密钥 / new active key for {r.issuer_code}: {r.new.kid}")
        except KeyStoreError as exc:
            _fail(exc)
    typer.echo(f"已吊销 / revoked {kid} ({_ROLE_LABEL.get(rec.role, rec.role)} of {rec.issuer_code}) "
               f"from {rec.revoked_at:%Y-%m-%d %H:%M:%S} UTC: {rec.revocation_reason}")
    if rec.role != "signing":
        typer.echo(f"警告 / warning: a revoked {_ROLE_LABEL[rec.role]} invalidates what it vouches for; "
                   "create a new one and re-issue")
    elif was_active and not replace:
        typer.echo(f"警告 / warning: {rec.issuer_code} has no active signing key until `ecert keys rotate --issuer "
                   f"{rec.issuer_code}`")
