"""`zerog ledger path|migrate|sql|copy`: where the ledger is, its schema version, read-only
queries, and a verified copy into another ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zerog_cli.services.context import Context

if TYPE_CHECKING:
    from zerog_cli.ledger.admin import LedgerCopy
    from zerog_cli.ledger.copy import LedgerCopied


@dataclass(frozen=True)
class LedgerPath:
    """`ledger path`: where the ledger file is (it may not exist yet), or its URL
    without password on PostgreSQL."""

    path: str


@dataclass(frozen=True)
class MigrationStep:
    """One migration applied (``direction``: up or down)."""

    direction: str
    version: int
    name: str


@dataclass(frozen=True)
class Migrated:
    """`ledger migrate`: the version reached, the steps taken, and the ledger backup
    written before a step down (None: none was needed)."""

    version: int
    steps: list[MigrationStep]
    backup: str | None


@dataclass(frozen=True)
class QueryRows:
    """`ledger sql`: the rows the query returned, each a column → value object (a cell is
    text, a number, null, or a BLOB as 0x and hex: `ledger.admin.SqlCell`)."""

    rows: list[dict[str, str | int | float | bytes | None]]


def ledger_path(context: Context) -> LedgerPath:
    """The ledger's file, or its URL without password (the ledger is not opened)."""
    from zerog_cli.ledger.db import describe

    return LedgerPath(describe(context.ledger_target))


def migrate(context: Context, to: int | None, *, confirm: Callable[[str], None]) -> Migrated:
    """Migrate the ledger up or down to ``to`` (None: the latest version).

    A step down drops tables and rows, so ``confirm`` is asked first (it raises to
    refuse) and a `ledger backup` is written into ledger-backups/ before any step.
    """
    from zerog_cli.ledger import admin
    from zerog_cli.ledger.db import open_ledger
    from zerog_cli.ledger.migrations import current_version, validate_target
    from zerog_cli.ledger.migrations import migrate as run_migrations

    ledger = open_ledger(context.ledger_target, migrate=False)
    saved: LedgerCopy | None = None
    try:
        target = validate_target(to)
        version = current_version(ledger)
        if target < version:
            confirm(
                f"migrating the ledger down from version {version} to {target} drops the "
                "tables and rows later versions added"
            )
            saved = admin.safety_backup(ledger, f"migrate-to-{target}")
            context.notify(f"ledger backed up to {saved.destination}")
        steps = run_migrations(ledger, target)
        version = ledger.schema_version()
    finally:
        ledger.close()
    return Migrated(
        version=version,
        steps=[MigrationStep(direction, number, name) for direction, number, name in steps],
        backup=None if saved is None else saved.destination,
    )


def query(context: Context, statement: str) -> QueryRows:
    """Run one read-only statement; a write is refused (`UsageError`)."""
    from zerog_cli.ledger import admin

    return QueryRows(admin.run_readonly_sql(context.ledger.target, statement))


def copy(context: Context, url: str) -> LedgerCopied:
    """Copy every row into the empty ledger at ``url`` (sqlite:///PATH or postgresql://…,
    whose password is the DATABASE_PASSWORD secret); counts and sums verified."""
    from zerog_cli.ledger.copy import copy_ledger
    from zerog_cli.ledger.db import resolve_target

    target = resolve_target(url, lambda: context.secrets.get("DATABASE_PASSWORD"))
    return copy_ledger(context.ledger, target)
