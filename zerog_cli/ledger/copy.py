"""`zerog ledger copy`: every row of one ledger into an empty one, on either backend.

The source is read inside one snapshot (`Ledger.snapshot`), so a copy taken
while other hosts write is one consistent state. The destination is filled in
one transaction: parents before the tables whose foreign keys point at them,
each row with its id. ``cost_rollup`` is not copied: the destination builds it
from ``cost_tracking`` (SQLite: its triggers, row by row; PostgreSQL: triggers
off during the load, then one INSERT … SELECT, see
`ledger.postgres.set_row_triggers`), and its totals are compared with the
source's. Before the destination commits, every table's row count and
the sum of every integer column are compared with what was read; any
difference rolls the whole copy back.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import IntegrityError, UsageError
from zerog_cli.ledger.db import Ledger, describe, open_ledger

if TYPE_CHECKING:
    from zerog_cli.ledger.postgres import PostgresTarget

BATCH_ROWS = 1000
NOT_COPIED = frozenset({"schema_migrations", "cost_rollup"})
"""Kept by the destination itself: its migrations, and the rollup its triggers maintain."""


@dataclass
class TableFigures:
    rows: int = 0
    sums: dict[str, int] = field(default_factory=dict)

    def add(self, columns: list[str], row: tuple[Any, ...]) -> None:
        self.rows += 1
        for column, value in zip(columns, row, strict=True):
            if isinstance(value, int) and not isinstance(value, bool):
                self.sums[column] = self.sums.get(column, 0) + value


@dataclass(frozen=True)
class LedgerCopied:
    """`ledger copy`: rows copied per table into ``destination`` (a URL without password),
    their counts and integer sums verified before the copy committed."""

    source: str
    destination: str
    schema_version: int
    tables: dict[str, int]
    rows: int
    verified: bool
    seconds: float


def fill_order(ledger: Ledger, tables: Iterable[str]) -> list[str]:
    """``tables`` with every table after those its foreign keys reference."""
    pending = sorted(tables)
    parents = {table: ledger.referenced_tables(table) & set(pending) for table in pending}
    ordered: list[str] = []
    while pending:
        ready = [table for table in pending if parents[table] <= set(ordered)]
        if not ready:
            raise IntegrityError(f"foreign keys form a cycle among {', '.join(pending)}")
        ordered += ready
        pending = [table for table in pending if table not in ready]
    return ordered


def _sums(ledger: Ledger, table: str, columns: Iterable[str]) -> TableFigures:
    chosen = list(columns)
    selected = "".join(f', SUM("{column}")' for column in chosen)
    row = ledger.conn.execute(f'SELECT COUNT(*){selected} FROM "{table}"').fetchone()
    assert row is not None
    return TableFigures(
        int(row[0]),
        {
            column: int(value)
            for column, value in zip(chosen, row[1:], strict=True)
            if value is not None
        },
    )


def _rollup(ledger: Ledger) -> TableFigures:
    columns = [
        "operations",
        "bytes",
        "tokens",
        "usd_micro",
        "neuron_units",
        "neuron_billions",
        "neuron_quintillions",
    ]
    return _sums(ledger, "cost_rollup", columns)


def _require_empty(destination: Ledger) -> None:
    for table in destination.table_names():
        if table in NOT_COPIED or table.startswith("sqlite_"):
            continue
        if destination.conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is not None:
            raise UsageError(
                f"ledger {destination.location} already holds rows ({table});"
                " copy into a new, empty database or file"
            )


def copy_ledger(
    source: Ledger, target: Path | PostgresTarget, *, replace: bool = False
) -> LedgerCopied:
    """Copy every row of ``source`` into the empty ledger ``target`` and verify it.

    With ``replace`` the rows ``target`` holds are deleted first, in the same
    transaction (`zerog ledger rebuild` into a PostgreSQL ledger, after its
    safety backup): a failed check leaves them as they were."""
    started = time.monotonic()
    if describe(target) == source.location:
        raise UsageError("the copy's destination is the ledger itself")
    destination = open_ledger(target)
    try:
        if destination.schema_version() != source.schema_version():
            raise UsageError(
                f"{destination.location} is at schema {destination.schema_version()},"
                f" {source.location} at {source.schema_version()}: run `zerog ledger migrate`"
                " on the older one first"
            )
        if not replace:
            _require_empty(destination)
        tables = [
            table
            for table in source.table_names()
            if table not in NOT_COPIED and not table.startswith("sqlite_")
        ]
        counts: dict[str, int] = {}
        postgres = None if isinstance(destination.conn, sqlite3.Connection) else destination.conn
        with source.snapshot() as reading, destination.transaction() as writing:
            with_ids: list[str] = []
            if postgres is not None:
                from zerog_cli.ledger.postgres import set_row_triggers

                set_row_triggers(postgres, "cost_tracking", enabled=False)
            order = fill_order(source, tables)
            if replace:
                for table in reversed(order):
                    writing.execute(f'DELETE FROM "{table}"')
                writing.execute("DELETE FROM cost_rollup")
            for table in order:
                cursor = reading.execute(f'SELECT * FROM "{table}"')
                columns = [str(column[0]) for column in cursor.description or ()]
                if "id" in columns:
                    with_ids.append(table)
                names = ", ".join(f'"{column}"' for column in columns)
                insert = (
                    f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" for _ in columns)})'
                )
                figures = TableFigures()
                batch: list[tuple[Any, ...]] = []
                for row in cursor:
                    figures.add(columns, row)
                    batch.append(row)
                    if len(batch) >= BATCH_ROWS:
                        writing.executemany(insert, batch)
                        batch = []
                if batch:
                    writing.executemany(insert, batch)
                copied = _sums(destination, table, figures.sums)
                if copied != figures:
                    raise IntegrityError(
                        f"copy of {table} does not match: {figures.rows} rows read,"
                        f" {copied.rows} written (sums {figures.sums} against {copied.sums})"
                    )
                counts[table] = figures.rows
            if postgres is not None:
                from zerog_cli.ledger.migrations import rollup_fill_sql
                from zerog_cli.ledger.postgres import reset_identities

                writing.execute(rollup_fill_sql(postgres=True))
                set_row_triggers(postgres, "cost_tracking", enabled=True)
                reset_identities(postgres, with_ids)
            if _rollup(destination) != _rollup(source):
                raise IntegrityError(
                    "cost totals (cost_rollup) differ after the copy: nothing was written"
                )
        report = LedgerCopied(
            source=source.location,
            destination=destination.location,
            schema_version=destination.schema_version(),
            tables=counts,
            rows=sum(counts.values()),
            verified=True,
            seconds=round(time.monotonic() - started, 3),
        )
    finally:
        destination.close()
    if isinstance(target, Path):
        _self_contained(target)
    return report


def _self_contained(path: Path) -> None:
    """A copied SQLite file leaves WAL mode, so the one file is the whole ledger."""
    from zerog_cli.ledger.db import sqlite_uri

    conn = sqlite3.connect(sqlite_uri(path), uri=True)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()
