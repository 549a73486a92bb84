"""`authority init`, `demo` and `serve`."""

from __future__ import annotations

import json

import click

from authority.bootstrap import initialise, redacted_url
from authority.cli.base import cli, command, emit, opened_instance, wants_json
from authority.config import Settings, load_settings
from authority.demo import seed_demo


@command(cli, "init")
def init_command() -> None:
    """Migrate the database and create what the service needs; safe to repeat."""
    with opened_instance() as instance:
        report = initialise(instance)
    lines = [
        f"database: {report.database} (schema {report.schema_to})",
        f"instance: {report.instance_id}",
    ]
    created = [f"created: {item}" for item in report.created]
    lines += created or ["nothing to do: already initialised"]
    emit(
        {
            "database": report.database,
            "schema": report.schema_to,
            "schema_before": report.schema_from,
            "instance_id": report.instance_id,
            "created": report.created,
        },
        "\n".join(lines),
    )


@command(cli, "demo")
def demo_command() -> None:
    """Seed the demonstration data set (idempotent) and print its credentials."""
    with opened_instance() as instance:
        data = seed_demo(instance)
    emit(data, "\n".join(f"{key}: {value}" for key, value in data.items()))


@command(cli, "serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes."
)
def serve_command(host: str, port: int, workers: int) -> None:
    """Serve HTTP until interrupted; finishes in-flight requests on SIGTERM."""
    import uvicorn

    settings: Settings = load_settings()  # fail here, once, on a bad setting
    if wants_json():
        click.echo(
            json.dumps(
                {
                    "url": f"http://{host}:{port}",
                    "workers": workers,
                    "issuer": settings.issuer,
                    "database": redacted_url(settings.database_url),
                }
            )
        )
    uvicorn.run(
        "authority.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=30,
    )
