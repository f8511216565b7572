"""`ecert log ...`: check and inspect the tamper-evident issuance log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from .cli_licences import fail, open_registry

app = typer.Typer(
    help="Issuance log: SM3 hash chain + Merkle tree (RFC 9162 with SM3) (签发日志).",
    no_args_is_help=True,
    add_completion=False,
)


def _load_pinned(path: Path | None):
    from signer.issuance_log import SignedTreeHead

    if path is None:
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        sth = SignedTreeHead(int(d["tree_size"]), str(d["root_hash"]), str(d["timestamp"]), str(d["kid"]),
                             str(d["signature"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"无法读取已签名树头 / cannot read the signed tree head {path}: {exc}", 2)
    return sth


@app.command()
def verify(
    pinned: Optional[Path] = typer.Option(None, "--pinned", help="A signed tree head (JSON from `ecert log head "
                                          "--sign`) the log must still contain."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Re-check every entry, the hash chain, the Merkle tree, the head and the licence rows. Exit 1 if not intact."""
    sth = _load_pinned(pinned)
    with open_registry() as reg:
        if sth is not None:
            from keys.store import UnknownKey
            from keys.x509 import Certificate

            try:
                key = Certificate.load(reg.store.get_key(sth.kid).cert_der).public_key
            except UnknownKey:
                fail(f"未知的树头签名密钥 / unknown tree-head key {sth.kid}")
            if not sth.verify(key):
                fail("已签名树头的签名无效 / the signed tree head's signature does not verify")
        check = reg.verify_log(pinned=sth)
    if as_json:
        typer.echo(json.dumps(check.to_dict(), ensure_ascii=False, indent=2))
    else:
        console = Console(highlight=False, soft_wrap=True)
        if check.ok:
            console.print(f"[green]✔[/] {escape(check.message)}")
        else:
            console.print(f"[bold red]✘ 日志被篡改 / log tampered[/] (first bad seq: {check.first_bad_seq})")
            for p in check.problems:
                console.print(f"  {escape(str(p))}")
    raise typer.Exit(code=0 if check.ok else 1)


@app.command()
def show(
    start: int = typer.Option(1, "--from", min=1, help="First sequence number."),
    limit: int = typer.Option(50, "--limit", min=1, max=100000, help="At most this many entries."),
    identifier: Optional[str] = typer.Option(None, "--identifier", help="Only entries of this licence."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Print the log head and entries (holder IDs appear only as keyed hashes)."""
    with open_registry() as reg:
        head = reg.log.head()
        entries = reg.log.entries(start, limit, identifier)
    if as_json:
        typer.echo(json.dumps({"size": head.size, "root": head.root.hex(), "chain_head": head.chain_head.hex(),
                               "entries": [e.to_dict() for e in entries]}, ensure_ascii=False, indent=2))
        return
    typer.echo(f"日志 log: {head.size} entries, Merkle root {head.root.hex()}, chain head {head.chain_head.hex()}")
    for e in entries:
        extra = e.payload.get("reason") or f"v{e.payload.get('version')} kid {e.payload.get('kid')}"
        typer.echo(f"#{e.seq:<6} {e.at} {e.kind:8} {e.identifier} {extra}  leaf {e.leaf_hash.hex()[:16]}…")


@app.command()
def proof(
    seq: int = typer.Argument(..., min=1, help="Entry sequence number."),
    tree_size: Optional[int] = typer.Option(None, "--tree-size", min=1, help="Prove against this tree size."),
) -> None:
    """Inclusion proof (RFC 9162 audit path, SM3) of one entry, as JSON."""
    from signer.registry import RegistryError

    with open_registry() as reg:
        try:
            p = reg.log.inclusion_proof(seq, tree_size)
        except RegistryError as exc:
            fail(str(exc))
    typer.echo(json.dumps(p.to_dict() | {"verifies": p.verify()}, indent=2))


@app.command()
def head(sign: bool = typer.Option(False, "--sign", help="Sign with the platform root key (SM2).")) -> None:
    """The current tree head as JSON; with --sign, a signed tree head to publish or pin."""
    from keys.config import KeyStoreError

    with open_registry() as reg:
        if sign:
            try:
                out = reg.sign_head().to_dict()
            except KeyStoreError as exc:
                fail(str(exc))
        else:
            h = reg.log.head()
            out = {"tree_size": h.size, "root_hash": h.root.hex(), "chain_head": h.chain_head.hex()}
    typer.echo(json.dumps(out, indent=2))
