"""`ecert tokens create|list|revoke`: API bearer tokens. The token is printed once, here, and never stored."""

from __future__ import annotations

import datetime as dt
import json
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keys.config import KeyStoreError, load_settings

from .auth import SCOPES, TokenError, TokenStore

app = typer.Typer(help="API tokens with scopes (issue, admin) / 接口令牌", no_args_is_help=True, add_completion=False)


def _open() -> TokenStore:
    try:
        return TokenStore(load_settings().database_url)
    except KeyStoreError as exc:
        _fail(exc)


def _fail(exc: Exception):
    Console(stderr=True).print(f"[bold red]错误 / error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(code=1)


@app.command()
def create(
    scope: list[str] = typer.Option(..., "--scope", help=f"Scope to grant ({', '.join(SCOPES)}); repeatable."),
    name: str = typer.Option("api", help="What the token is for (shown in `list`)."),
    issuer: Optional[str] = typer.Option(None, help="Only allow issuing for this issuer code."),
    days: Optional[int] = typer.Option(None, min=1, help="Expire after this many days (default: never)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
):
    """Create a token and print it once: store it in the client's secret store now."""
    expires = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=days) if days else None
    store = _open()
    try:
        token, info = store.create(name, scope, issuer_code=issuer, expires_at=expires)
    except TokenError as exc:
        _fail(exc)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"token": token, **info.to_dict()}, ensure_ascii=False))
        return
    typer.echo(token)
    err = Console(stderr=True, highlight=False)
    err.print(f"token {info.id} ({', '.join(info.scopes)}) created; it is shown only this once "
              "/ 令牌仅显示这一次，请立即妥善保存")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List tokens (ids, scopes, state; never the tokens themselves)."""
    store = _open()
    try:
        infos = store.list()
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in infos], ensure_ascii=False))
        return
    table = Table("id", "name", "scopes", "issuer", "created", "expires", "state")
    now = dt.datetime.now(dt.timezone.utc)
    for i in infos:
        d = i.to_dict()
        st = "revoked" if i.revoked_at else ("active" if i.active(now) else "expired")
        table.add_row(i.id, escape(i.name), " ".join(i.scopes), i.issuer_code or "*", d["created_at"],
                      d["expires_at"] or "-", st)
    Console(highlight=False, width=120).print(table)


@app.command()
def revoke(token_id: str = typer.Argument(..., help="The token id (from `list`, e.g. 1a2b3c4d).")):
    """Revoke a token at once; requests with it get 401 from then on."""
    store = _open()
    try:
        info = store.revoke(token_id)
    except TokenError as exc:
        _fail(exc)
    finally:
        store.close()
    typer.echo(f"token {info.id} revoked at {info.to_dict()['revoked_at']}")
