"""`zerog metrics serve|show`: ledger-derived gauges for Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zerog_cli.cli.common import command, examples, new_app, results, state

app = new_app(
    "Prometheus metrics read from the ledger: quotas, costs, breakers, backup verification.",
    "zerog metrics serve --port 9791",
    "zerog metrics show",
)


@command(
    app,
    "serve",
    result=results("metrics_server.MetricsServing"),
    epilog=examples(
        "zerog metrics serve",
        "zerog metrics serve --port 9791 --host 127.0.0.1",
        "zerog metrics serve --host 0.0.0.0 --basic-auth-file /etc/zerog/metrics-web.yml",
    ),
)
def serve(
    port: Annotated[
        int, typer.Option("--port", help="TCP port (0 picks a free one).", min=0, max=65535)
    ] = 9791,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    basic_auth_file: Annotated[
        Path | None,
        typer.Option(
            "--basic-auth-file",
            help="Require HTTP basic auth: a basic_auth_users: file (bcrypt or sha256:HEX hashes), "
            "as in Prometheus' web config.",
            show_default=False,
        ),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Serve a non-loopback --host without authentication (warned)."
        ),
    ] = False,
    connection_timeout: Annotated[
        float,
        typer.Option(
            "--connection-timeout",
            help="Seconds an idle or slow client may hold its connection.",
            min=0.1,
        ),
    ] = 10.0,
) -> None:
    """Serve /metrics for Prometheus; every scrape reads the ledger. Stops on Ctrl-C or SIGTERM.

    Connections are served concurrently, each with a timeout. A --host other than
    loopback needs --basic-auth-file, or --no-auth: the labels name users and costs.
    With --json, the URL is printed as one document on stdout once it listens.
    """
    from zerog_cli.services import metrics_server

    out = state().output

    def ready(url: str) -> None:
        out.result(metrics_server.MetricsServing(url), None)
        out.info(f"serving metrics on {url}")

    users, warning = metrics_server.exposure(host, basic_auth_file, no_auth)
    if warning:
        out.warn(warning)
    metrics_server.serve(
        state().context,
        host,
        port,
        on_ready=ready,
        users=users,
        connection_timeout=connection_timeout,
    )


@command(
    app,
    "show",
    result=results("metrics_server.MetricsSnapshot"),
    epilog=examples("zerog metrics show", "zerog metrics show --json"),
)
def show() -> None:
    """Print what `zerog metrics serve` would answer now (text exposition, or --json)."""
    from zerog_cli.services import metrics_server

    context = state().context
    out = state().output
    if out.json_mode:
        out.result(metrics_server.as_json(context))
        return
    out.echo(metrics_server.exposition(context).decode("utf-8").rstrip("\n"))
