"""`zerog status`: readiness for monitoring and for humans."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from zerog_cli.cli.common import command, examples, printing_failed_report, results, state
from zerog_cli.infra.output import Column
from zerog_cli.infra.units import format_duration, format_size

if TYPE_CHECKING:
    from zerog_cli.services.status import StatusReport


def register(app: typer.Typer) -> None:
    command(
        app,
        "status",
        result=results("status.StatusReport"),
        epilog=examples("zerog status", "zerog status --json", "zerog status --no-probe"),
    )(status)


def _print(document: StatusReport) -> None:
    out = state().output
    ledger = document.ledger
    out.echo(f"profile {document.profile} (chain {document.chain_id})")
    out.table(
        document.endpoints,
        [
            Column("endpoint", "endpoint"),
            Column("url", "url"),
            Column("reachable", "reachable", lambda v: "yes" if v else "NO"),
            Column("latency_ms", "ms", lambda v: "" if v is None else str(v), justify="right"),
        ],
        empty="(not probed)",
    )
    out.table(
        document.breakers,
        [
            Column("endpoint", "breaker"),
            Column("state", "state"),
            Column("failures", "failures", justify="right"),
        ],
        empty="(no breaker has tripped or counted yet)",
    )
    out.echo(
        f"ledger {ledger.path}: schema {ledger.schema_version}, "
        f"{format_size(ledger.size_bytes)}, integrity {ledger.integrity}"
        f" (checked {ledger.integrity_checked_at})"
    )
    present = [s.name for s in document.secrets if s.present]
    out.echo(f"secrets present: {', '.join(present) or 'none'}")
    catalog = document.catalog
    if catalog.tags == "on":
        out.echo(f"catalog records in Flow tags: on (key from {catalog.key})")
    else:
        out.echo(f"catalog records in Flow tags: off ({catalog.note})")
    out.table(
        document.verifications,
        [
            Column("namespace", "namespace"),
            Column("backups", "backups", justify="right"),
            Column(
                "age_seconds",
                "last good verify",
                lambda v: "never" if v is None else format_duration(v) + " ago",
            ),
        ],
        empty="(no backups)",
    )
    for problem in document.problems:
        out.warn(problem.problem)
    out.echo(
        "status: ok"
        if document.ok
        else f"status: {len(document.problems)} problem(s) need attention"
    )


def status(
    probe: Annotated[
        bool, typer.Option("--probe/--no-probe", help="Contact the endpoints.")
    ] = True,
) -> None:
    """Network, endpoints, breakers, ledger, secrets, verification freshness.

    Exits non-zero when something needs attention: 8 config/ledger, 3 stale
    verification, 6 unreachable endpoint or open breaker.
    """
    from zerog_cli.services.status import gather

    def render(document: StatusReport) -> None:
        state().output.result(document, lambda: _print(document))

    with printing_failed_report(render):
        document = gather(state().context, probe=probe)
    render(document)
