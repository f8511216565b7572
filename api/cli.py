"""The `ecert` command line (Typer). Sub-commands live in their own modules and are added here."""

from __future__ import annotations

import os

import typer

app = typer.Typer(
    name="ecert",
    help="Issue, seal (SM2/SM3) and verify electronic Special Operation Certificates (特种作业操作证) as OFD.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """ecert: electronic Special Operation Certificates."""
    from signer import log_redact

    log_redact.install()  # ID numbers masked in whatever this command logs


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(int(os.environ.get("PORT", "8000")), help="Port (env PORT)."),
    workers: int = typer.Option(1, help="uvicorn worker processes."),
):
    """Start the HTTP service (what `make run` calls). Bootstraps development keys on first run."""
    from api import serving
    from keys.store import KeyStore

    with KeyStore() as store:
        init = store.init_dev()
        where = store.settings.home
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from api.metrics import prepare_multiprocess  # /metrics sums every worker

        prepare_multiprocess(where / "prometheus")
    if init.changed:
        typer.echo(f"development keys created in {where}: {', '.join(init.created)}")
    typer.echo(f"issuer {init.issuer.code} ({init.issuer.name}), signing key {init.signing.kid}")
    if "issuer" in init.created:  # first run: one development token, shown once, stored only as a hash
        from api.auth import TokenStore

        ts = TokenStore(store.settings.database_url)
        try:
            token, _info = ts.create("development (ecert serve first run)", ["issue", "admin"])
        finally:
            ts.close()
        typer.echo(f"development API token (scopes issue, admin; shown once, keep it): {token}")
    else:
        typer.echo("API tokens: `ecert tokens create --scope issue` (the first-run token was shown once)")
    base = f"http://{host}:{port}"
    typer.echo(f"ecert listening on {base}/  — portal {base}/, API docs {base}/docs, health {base}/healthz")
    serving.run("api.app:app", host=host, port=port, workers=workers)


def _register_subcommands() -> None:
    """Each feature module exposes a Typer sub-app; register those that exist."""
    import importlib

    for module, name in (("api.cli_keys", "keys"), ("api.cli_docs", None), ("api.cli_render", None), ("api.cli_trust", "trust"),
                         ("api.cli_tokens", "tokens"), ("api.cli_log", "log"), ("api.cli_licences", "licences"),
                         ("api.cli_qr", "qr"), ("api.cli_bulk", "bulk")):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        if name:
            app.add_typer(mod.app, name=name)
        else:  # top-level commands
            for cmd in mod.app.registered_commands:
                app.registered_commands.append(cmd)


_register_subcommands()

if __name__ == "__main__":
    app()
