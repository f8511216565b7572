"""`ecert trust export|verify`: the root-signed trust list for third parties and offline verifiers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from keys.store import KeyStoreError
from keys.trustlist import DEFAULT_MAX_AGE, TrustListError, build_trust_list, load_trust_list

from .cli_keys import _fail, _open

app = typer.Typer(
    help="Trust list: every certificate with key id, status and validity, signed by the root (信任列表).",
    no_args_is_help=True,
    add_completion=False,
)

SIG_SUFFIX = ".sig"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        _fail(ValueError(f"无法读取{what} / cannot read the {what} {path}: {exc.strerror or exc}"))


def _write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a web server never serves half a list."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        _fail(ValueError(f"无法写入 / cannot write {path}: {exc.strerror or exc}"))


@app.command()
def export(
    out: Path = typer.Option(Path("trustlist.json"), "--out", "-o", help="The list; its signature goes to <out>.sig (DER)."),
    max_age: int = typer.Option(DEFAULT_MAX_AGE, "--max-age", help="Cache lifetime in seconds (next_update = now + this)."),
    root_out: Path = typer.Option(None, "--root-out", help="Also write the root certificate (PEM) to pin out of band."),
) -> None:
    """Write the signed trust list (canonical JSON + detached SM2 signature by the root)."""
    with _open() as store:
        try:
            signed = build_trust_list(store, max_age=max_age)
            root_der = store.root().cert_der
        except (KeyStoreError, TrustListError) as exc:
            _fail(exc)
    sig_path = out.with_name(out.name + SIG_SUFFIX)
    _write(sig_path, signed.signature)  # a reader between the two renames gets a pair that fails: it retries
    _write(out, signed.json_bytes)
    if root_out is not None:
        from keys.x509 import Certificate

        _write(root_out, Certificate.load(root_der).to_pem())
    typer.echo(f"信任列表 / trust list: {out} ({len(signed.json_bytes)} bytes), signature: {sig_path}")
    typer.echo(f'ETag: "{signed.etag}"  Cache-Control: public, max-age={signed.max_age}')


@app.command()
def verify(
    trust_list: Path = typer.Argument(..., help="The trust list JSON."),
    root: Path = typer.Option(..., "--root", help="The pinned root certificate (PEM or DER)."),
    signature: Path = typer.Option(None, "--sig", help="Detached signature (default: <list>.sig)."),
    require_fresh: bool = typer.Option(False, "--require-fresh", help="Fail when next_update has passed."),
) -> None:
    """Check a saved trust list against the pinned root; exit 0 if trustworthy, 1 if not."""
    sig_path = signature or trust_list.with_name(trust_list.name + SIG_SUFFIX)
    data, sig, pinned = _read(trust_list, "信任列表 trust list"), _read(sig_path, "签名 signature"), _read(root, "根证书 root")
    try:
        tl = load_trust_list(data, sig, pinned, require_fresh=require_fresh)
    except TrustListError as exc:
        _fail(exc)
    counts = Counter(k.status for k in tl.keys.values())
    typer.echo(f"信任列表有效 / trust list verified: signed by root {tl.signed_by}, ETag \"{tl.etag}\"")
    typer.echo(f"issued {tl.issued_at:%Y-%m-%d %H:%M:%S} UTC, next update {tl.next_update:%Y-%m-%d %H:%M:%S} UTC"
               + ("" if tl.is_fresh() else " (stale: fetch a new copy)"))
    typer.echo(f"{len(tl.keys)} keys: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
