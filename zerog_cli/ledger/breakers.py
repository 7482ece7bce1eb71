"""Circuit-breaker state in the ledger, shared by every zerog process.

`LedgerBreakerStorage` is a ``pybreaker.CircuitBreakerStorage``: each read
goes to the ``breaker_state`` table and each change is one atomic SQL
statement (counters are incremented in SQL, never read-modify-written), so a
cron run sees the breaker a previous run opened and two concurrent processes
count failures without losing any.

The storage uses its own autocommit connection, separate from the one that
runs the command's ``BEGIN IMMEDIATE`` transactions, so a breaker update from
a worker thread can never join or commit someone else's transaction.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pybreaker

from zerog_cli.ledger.db import LedgerConnection, connect, format_time, utc_now

if TYPE_CHECKING:
    from zerog_cli.ledger.postgres import PostgresTarget

_STATES = ("closed", "open", "half-open")


class BreakerTable:
    """One connection to ``breaker_state`` for all the breakers of a process."""

    def __init__(self, target: Path | PostgresTarget, *, read_only: bool = False) -> None:
        self.target = target
        self.read_only = read_only
        self._lock = threading.Lock()
        self._conn: LedgerConnection | None = None

    def _connection(self) -> LedgerConnection:
        if self._conn is None:
            self._conn = connect(self.target, read_only=self.read_only)
        return self._conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def ensure(self, name: str) -> None:
        self.execute(
            "INSERT OR IGNORE INTO breaker_state"
            " (name, state, fail_counter, success_counter, opened_at, updated_at)"
            " VALUES (?, 'closed', 0, 0, NULL, ?)",
            (name, utc_now()),
        )

    def storage(self, name: str) -> LedgerBreakerStorage:
        return LedgerBreakerStorage(self, name)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class LedgerBreakerStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker storage for one endpoint, backed by a ``breaker_state`` row."""

    def __init__(self, table: BreakerTable, name: str) -> None:
        super().__init__(name)
        self._table = table
        self._row_name = name
        table.ensure(name)

    def _get(self, column: str) -> Any:
        rows = self._table.execute(
            f"SELECT {column} FROM breaker_state WHERE name = ?", (self._row_name,)
        )
        return rows[0][0] if rows else None

    def _update(self, assignment: str, params: tuple[Any, ...] = ()) -> None:
        self._table.execute(
            f"UPDATE breaker_state SET {assignment}, updated_at = ? WHERE name = ?",
            (*params, utc_now(), self._row_name),
        )

    @property
    def state(self) -> str:
        value = self._get("state")
        return value if value in _STATES else "closed"

    @state.setter
    def state(self, state: str) -> None:
        self._update("state = ?", (state,))

    def increment_counter(self) -> None:
        self._update("fail_counter = fail_counter + 1")

    def reset_counter(self) -> None:
        self._update("fail_counter = 0")

    def increment_success_counter(self) -> None:
        self._update("success_counter = success_counter + 1")

    def reset_success_counter(self) -> None:
        self._update("success_counter = 0")

    @property
    def counter(self) -> int:
        return int(self._get("fail_counter") or 0)

    @property
    def success_counter(self) -> int:
        return int(self._get("success_counter") or 0)

    @property
    def opened_at(self) -> datetime | None:
        value = self._get("opened_at")
        return None if value is None else datetime.fromtimestamp(float(value), UTC)

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        self._update("opened_at = ?", (when.timestamp(),))


def breaker_rows(table: BreakerTable) -> list[dict[str, Any]]:
    """Every endpoint's breaker as stored, for `zerog status` and metrics."""
    rows = table.execute(
        "SELECT name, state, fail_counter, opened_at, updated_at FROM breaker_state ORDER BY name"
    )
    return [
        {
            "endpoint": name,
            "state": state,
            "failures": failures,
            "opened_at": (
                None
                if opened_at is None
                else format_time(datetime.fromtimestamp(float(opened_at), UTC))
            ),
            "updated_at": updated_at,
        }
        for name, state, failures, opened_at, updated_at in rows
    ]
