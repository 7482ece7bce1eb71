"""`zerog ledger path|status|migrate|backup|rebuild|sql|copy`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zerog_cli.cli.common import (
    command,
    confirm_destructive,
    examples,
    new_app,
    printing_failed_report,
    progress_bar,
    results,
    state,
)
from zerog_cli.errors import UsageError
from zerog_cli.infra.output import Column
from zerog_cli.infra.units import format_size

if TYPE_CHECKING:
    from zerog_cli.ledger.admin import LedgerStatus

app = new_app(
    "Inspect and maintain the ledger (a SQLite file, or PostgreSQL through ledger_url).",
    "zerog ledger status",
    "zerog ledger backup /var/backups/ledger.db",
)


@command(
    app,
    "path",
    result=results("ledger_admin.LedgerPath"),
    epilog=examples("zerog ledger path", 'sqlite3 "$(zerog ledger path)" .tables'),
)
def path() -> None:
    """Print the ledger's file path (its URL, without password, on PostgreSQL)."""
    from zerog_cli.services.ledger_admin import ledger_path

    location = ledger_path(state().context)
    state().output.result(location, location.path)


@command(
    app,
    "status",
    result=results("zerog_cli.ledger.admin.LedgerStatus"),
    epilog=examples("zerog ledger status", "zerog ledger status --json"),
)
def status() -> None:
    """Schema version, size, integrity and row counts.

    Exits 8 when SQLite's integrity check finds damage (see runbooks/incident-response.md).
    """
    from zerog_cli.ledger import admin

    current = state()

    def render(report: LedgerStatus) -> None:
        def human() -> None:
            out = current.output
            out.fields(
                [
                    ("backend", report.backend),
                    ("path", report.path),
                    ("schema", f"{report.schema_version} (latest {report.latest_version})"),
                    ("size", format_size(report.size_bytes)),
                    ("mode", report.mode or "-"),
                    ("journal", report.journal_mode),
                    ("integrity", report.integrity),
                ]
            )
            rows = [{"table": t, "rows": n} for t, n in (report.tables or {}).items()]
            out.table(rows, [Column("table", "table"), Column("rows", "rows", justify="right")])

        current.output.result(report, human)

    with printing_failed_report(render):
        report = admin.intact_status(current.context.ledger)
    render(report)


@command(
    app,
    "migrate",
    result=results("ledger_admin.Migrated"),
    epilog=examples("zerog ledger migrate", "zerog ledger migrate --to 4 --yes"),
)
def migrate(
    to: Annotated[
        int | None,
        typer.Option("--to", help="Target version (default: latest).", show_default=False),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Step down without asking (a backup is written first)."),
    ] = False,
) -> None:
    """Apply migrations up (or down with --to) to a version.

    A step down drops what the later versions added (costs, nonces, payments,
    the inference log, with their rows): it needs --yes (or a yes at a terminal)
    and first writes a `ledger backup` into ledger-backups/ beside the ledger.
    """
    from zerog_cli.services import ledger_admin

    current = state()
    report = ledger_admin.migrate(
        current.context, to, confirm=lambda what: confirm_destructive(yes, what)
    )
    lines = [f"{step.direction} {step.version}: {step.name}" for step in report.steps]
    if not lines:
        lines = [f"already at version {report.version}"]
    if report.backup is not None:
        lines.insert(0, f"backup: {report.backup}")
    current.output.result(report, "\n".join(lines))


@command(
    app,
    "backup",
    result=results("zerog_cli.ledger.admin.LedgerCopy", "ledger_snapshot.LedgerSnapshot"),
    epilog=examples(
        "zerog ledger backup /var/backups/zerog-ledger.db",
        "zerog ledger backup ./ --force",
        "zerog ledger backup - | gzip > ledger-$(date +%F).db.gz",
        "zerog ledger backup --to-0g",
    ),
)
def backup(
    destination: Annotated[
        Path | None,
        typer.Argument(help="File or folder for the copy, or - for stdout.", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    to_0g: Annotated[
        bool,
        typer.Option(
            "--to-0g",
            help="Upload an encrypted snapshot to 0G instead (namespace zerog.ledger);"
            " `ledger rebuild --from-chain` restores it.",
        ),
    ] = False,
) -> None:
    """Copy the ledger consistently while it is in use (appears atomically, 0600).

    With --to-0g the copy is uploaded as a backup labelled `ledger` in the
    reserved namespace zerog.ledger, encrypted with a key derived from
    CATALOG_KEY (else ENCRYPTION_KEY); every later upload's catalog record
    points at it, so a rebuild from the chain restores it (quotas, ACLs,
    verifications, nonces) and replays only what came after.
    """
    from zerog_cli.ledger import admin

    current = state()
    if to_0g:
        if destination is not None:
            raise UsageError("--to-0g uploads the copy: drop the destination")
        from zerog_cli.services.ledger_snapshot import upload_snapshot

        report = upload_snapshot(current.context)
        current.output.result(
            report,
            f"ledger snapshot uploaded as backup {report.backup_id}: {report.root}"
            f" (taken at block {report.taken_at_height})",
        )
        return
    if destination is None:
        raise UsageError("say where the copy goes: a file, a folder, - (stdout) or --to-0g")
    if str(destination) == "-":
        if current.output.json_mode:
            raise UsageError("--json and - both want stdout; pick one")
        streamed = admin.backup_to_stream(current.context.ledger, sys.stdout.buffer)
        current.output.info(f"ledger copied to stdout ({format_size(streamed.size_bytes)})")
        return
    copy = admin.backup(current.context.ledger, destination, overwrite=force)
    current.output.result(copy, f"ledger copied to {copy.destination}")


@command(
    app,
    "rebuild",
    result=results("rebuild.RebuildReport"),
    epilog=examples(
        "zerog ledger rebuild --from-chain",
        "zerog ledger rebuild --from-chain --dry-run",
        "zerog ledger rebuild --from-chain --from-block 1200000 --to /tmp/rebuilt.db",
        "zerog ledger rebuild --from-chain --yes",
    ),
)
def rebuild(
    from_chain: Annotated[
        bool,
        typer.Option(
            "--from-chain",
            help="Rebuild from the wallet's Flow submissions and their catalog records.",
        ),
    ] = False,
    from_block: Annotated[
        int,
        typer.Option("--from-block", help="Scan no lower than this block.", min=0),
    ] = 0,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="Write this ledger file (default: the profile's ledger).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Scan and say what would be restored; write nothing.")
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Replace a ledger that holds records (a copy is kept)."),
    ] = False,
) -> None:
    """Rebuild the ledger from the chain after losing the host (and every ledger copy).

    Scans the Submit logs of the profile's Flow contract naming the wallet as
    submitter, newest first, in bounded block ranges (halved when the RPC
    refuses one; the logs_block_range setting). Keeps only submissions the
    wallet itself sent whose catalog record opens with CATALOG_KEY (else
    ENCRYPTION_KEY), and writes namespaces, objects, fragments, backups and
    costs, marked rebuilt. The newest ledger snapshot (`ledger backup --to-0g`)
    is restored first (quotas, ACLs, verifications) and only later submissions
    are replayed. Interrupted, a rerun resumes where the scan stopped. Works in
    an empty ZEROG_HOME; never replaces a ledger with records without --yes.
    A PostgreSQL ledger (ledger_url) is loaded from a private temporary file
    the way `ledger copy` loads one, in one verified transaction.
    """
    from zerog_cli.services import rebuild as service

    if not from_chain:
        raise UsageError("say where to rebuild from: --from-chain (the only source today)")
    service.prepare_home()
    current = state()

    def ask(what: str) -> None:
        confirm_destructive(False, what)

    with progress_bar("scanning the chain") as progress:
        report = service.rebuild(
            current.context,
            service.RebuildRequest(from_block=from_block, to=to, dry_run=dry_run, yes=yes),
            progress=progress,
            confirm=ask,
        )

    def human() -> None:
        out = current.output
        blocks = report.scanned_blocks
        out.echo(
            f"scanned blocks {blocks['from']}..{blocks['to']} in {report.ranges} queries:"
            f" {report.submissions} submissions of the wallet to replay"
        )
        snapshot = report.snapshot
        if snapshot is not None:
            out.echo(
                f"ledger snapshot: tx {snapshot.tx_seq} ({snapshot.root}), taken at block"
                f" {snapshot.taken_at_height}"
            )
        for why, count in sorted(report.skipped.items()):
            out.echo(f"skipped {count}: {why}")
        if report.dry_run:
            out.echo(
                f"dry run: would write {report.target} (namespaces:"
                f" {', '.join(report.namespaces) or 'none'})"
            )
        else:
            out.echo(
                f"{report.target}: {report.objects} objects, {report.backups} backups,"
                f" {report.fragments} fragments, {report.costs} costs rebuilt"
            )
            if report.copied is not None:
                out.echo(
                    f"loaded {report.copied.rows} rows into {report.target};"
                    " row counts and sums verified"
                )
            if report.replaced:
                out.echo(f"the previous ledger was saved to {report.replaced}")
            if report.acl_note:
                out.warn(report.acl_note)
        for warning in report.warnings:
            out.warn(warning)

    current.output.result(report, human)


@command(
    app,
    "sql",
    result=results("ledger_admin.QueryRows"),
    epilog=examples(
        'zerog ledger sql "SELECT name, owner FROM namespaces"',
        'zerog ledger sql "SELECT service, SUM(usd_micro) FROM cost_tracking GROUP BY 1" --json',
    ),
)
def sql(statement: Annotated[str, typer.Argument(help="One read-only SQL statement.")]) -> None:
    """Run a read-only query against the ledger (writes are refused)."""
    from zerog_cli.services.ledger_admin import query

    current = state()
    report = query(current.context, statement)
    columns = [Column(key, key) for key in (report.rows[0] if report.rows else {})]
    current.output.result(
        report, lambda: current.output.table(report.rows, columns, empty="(no rows)")
    )


@command(
    app,
    "copy",
    result=results("zerog_cli.ledger.copy.LedgerCopied"),
    epilog=examples(
        "zerog ledger copy --to postgresql://zerog_app@db.internal:5432/zerog?sslmode=verify-full",
        "zerog ledger copy --to sqlite:///var/lib/zerog/ledger.db --json",
    ),
)
def copy(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="An empty ledger: postgresql://USER@HOST:PORT/DB or sqlite:///PATH"
            " (password: the DATABASE_PASSWORD secret).",
            show_default=False,
        ),
    ],
) -> None:
    """Copy every row of this ledger into an empty one, and verify counts and sums.

    Moves a SQLite ledger into PostgreSQL when a team outgrows one host, or
    back. The source is read from one consistent snapshot, so it may stay in
    use; the destination is written in one transaction that commits only when
    every table's row count and integer sums match. Then point ledger_url at it.
    """
    from zerog_cli.services import ledger_admin

    if not to.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise UsageError("--to takes postgresql://USER@HOST:PORT/DB or sqlite:///PATH")
    report = ledger_admin.copy(state().context, to)
    state().output.result(
        report,
        f"copied {report.rows} rows in {len(report.tables)} tables to {report.destination};"
        " row counts and sums verified",
    )
