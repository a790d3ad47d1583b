"""``loraforge serve | db | keys | blobs``. Settings come from ``LORAFORGE_*`` and flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from loraforge.bootstrap import (
    Container,
    build,
    build_worker,
    check_extras,
    migrate,
    runs_ml,
)
from loraforge.cli.supervisor import WorkerSupervisor
from loraforge.domain.errors import NotFound, Unavailable
from loraforge.extras import MissingExtra, missing_line
from loraforge.services.dev_key import ensure_dev_key
from loraforge.settings import Settings

err = Console(stderr=True, soft_wrap=True)


class _Commands(TyperGroup):
    """Runs every command: a database or blob store that is down or unreachable, or a
    configured part whose extra is not installed, is one line on stderr and exit code 2 (as an
    invalid setting is), never a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except Unavailable as exc:
            err.print(f"[red]error:[/red] {escape(exc.message)}")
            raise typer.Exit(2) from None
        except MissingExtra as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Commands, help="loraforge: custom image models, self-hosted.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
blobs_app = typer.Typer(help="Stored image bytes.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(blobs_app, name="blobs")
webhooks_app = typer.Typer(help="Webhook signing.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
basemodels_app = typer.Typer(help="Base models to train on.", no_args_is_help=True)
app.add_typer(basemodels_app, name="basemodels")


DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data folder (LORAFORGE_DATA_DIR).")
]


def _settings(data_dir: Path | None = None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        settings = Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        # An operator's typo deserves one line per setting, not a pydantic traceback.
        for problem in exc.errors(include_url=False):
            # loc names the field; a check across fields (model validator) has none.
            field = f"LORAFORGE_{str(problem['loc'][0]).upper()}: " if problem["loc"] else ""
            message = str(problem["msg"]).removeprefix("Value error, ")
            err.print(f"[red]invalid setting[/red] {escape(field + message)}")
        raise typer.Exit(2) from None
    check_extras(settings)  # before the migrations: a refused command touches nothing
    return settings


def _container(data_dir: Path | None) -> Container:
    settings = _settings(data_dir)
    migrate(settings)
    return build(settings)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (LORAFORGE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (LORAFORGE_PORT).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Apply migrations, make sure a development key exists, and serve the API."""
    import uvicorn

    from loraforge.app import create_app
    from loraforge.cli.http_protocol import with_header_timeout

    settings = _settings(data_dir, host=host, port=port)
    migrate(settings)
    container = build(settings)
    key, path, created = ensure_dev_key(container.keys, settings.data_dir)
    err.print(f"[bold]Development API key[/bold] ({'new' if created else 'existing'}): {key}")
    err.print(f"  stored in {path.resolve()} (mode 0600)")
    err.print(
        f"  try: curl -H 'Authorization: Bearer {key}' http://{settings.host}:{settings.port}/v1/models"
    )
    container.close()
    workers = settings.workers
    if not runs_ml(settings):
        line = missing_line("ml", by="Running trainings and predictions")
        err.print(f"[yellow]no workers:[/yellow] {escape(line)} (until then: 501 ml_unavailable)")
        workers = 0  # a worker without it could only exit, again and again
    # The supervisor lives in the app's lifespan: uvicorn re-raises SIGTERM after its
    # shutdown, so a try/finally here would never see the workers stopped.
    supervisor = WorkerSupervisor(count=workers, data_dir=settings.data_dir)
    uvicorn.run(
        create_app(settings, background=[supervisor]),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Client addresses behind a proxy: LORAFORGE_TRUSTED_PROXIES decides (http.deps),
        # never uvicorn's own X-Forwarded-For handling.
        proxy_headers=False,
        http=with_header_timeout(settings.header_timeout_s),
        timeout_keep_alive=settings.keepalive_timeout_s,
        # Runware sends images base64-encoded inside WebSocket frames: allow a full request.
        ws_max_size=settings.max_request_bytes * 4 // 3 + 1024 * 1024,
    )


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run a worker: trainings, predictions and webhook deliveries (until SIGTERM/SIGINT)."""
    import logging
    import signal
    import threading

    settings = _settings(data_dir)
    check_extras(settings, worker=True)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    migrate(settings)
    container = build(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        container.queue.run_worker(build_worker(container), stop)
    finally:
        container.close()


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Apply every pending migration."""
    settings = _settings(data_dir)
    migrate(settings)
    err.print("database is up to date")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")],
    account: Annotated[
        str | None, typer.Option(help="Add the key to this account (default: a new account).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Issue a key. It is printed once, on the last line; only its hash is stored."""
    container = _container(data_dir)
    try:
        issued = container.keys.create(name=name, account_id=account)
    except NotFound as exc:
        err.print(f"[red]{escape(exc.message)}[/red]")
        raise typer.Exit(1) from exc
    finally:
        container.close()
    err.print(f"key {issued.key.id} for account {issued.key.account_id}")
    typer.echo(issued.plaintext)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (never their secret part): a table, or tab-separated lines when piped."""
    container = _container(data_dir)
    try:
        keys = container.keys.list()
    finally:
        container.close()
    header = ("id", "name", "account", "prefix", "created", "revoked")
    rows = [
        (
            key.id,
            key.name,
            key.account_id,
            key.prefix,
            key.created_at.isoformat(timespec="seconds"),
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
        for key in keys
    ]
    out = Console()
    if not out.is_terminal:
        # Scripts need whole ids (a table narrower than them would cut them short).
        for row in (header, *rows):
            typer.echo("\t".join(row))
        return
    table = Table(*header)
    for column in table.columns:
        column.overflow = "fold"  # wrap long ids inside the cell, never truncate them
    for row in rows:
        table.add_row(*(escape(value) for value in row))
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key: it stops working at once."""
    container = _container(data_dir)
    try:
        container.keys.revoke(key_id)
    except NotFound as exc:
        err.print(f"[red]{escape(exc.message)}[/red]")
        raise typer.Exit(1) from exc
    finally:
        container.close()
    err.print(f"revoked {escape(key_id)}")


@blobs_app.command("sweep")
def blobs_sweep(data_dir: DataDir = None) -> None:
    """Remove stored bytes that no image references (older than the grace period)."""
    container = _container(data_dir)
    try:
        report = container.sweeper.sweep()
    finally:
        container.close()
    err.print(
        f"examined {report.examined} blobs, removed {report.removed}, "
        f"removed {report.temp_files_removed} stale temp files"
    )


@webhooks_app.command("secret")
def webhooks_secret(
    account: Annotated[str, typer.Option(help="The account whose webhooks to sign.")],
    data_dir: DataDir = None,
) -> None:
    """Issue a new webhook signing secret (printed once, last line); the old one stops."""
    container = _container(data_dir)
    try:
        secret = container.webhooks.rotate_secret(account)
    finally:
        container.close()
    typer.echo(secret)


@basemodels_app.command("list")
def basemodels_list(data_dir: DataDir = None) -> None:
    """The base models this installation trains on (built-in tiny plus the config file's)."""
    container = _container(data_dir)
    try:
        models = container.catalog.list()
        default = container.catalog.default
    finally:
        container.close()
    for model in models:
        mark = " (default)" if model.name == default else ""
        where = str(model.path) if model.path else "built in"
        typer.echo(f"{model.name}\t{model.family.value}\t{model.resolution}\t{where}{mark}")
