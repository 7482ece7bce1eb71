"""Run locks held in a PostgreSQL ledger, so two hosts never run `verify` on it at once.

A SQLite ledger lives on one host, and a lock file beside it
(`infra.locking.RunLock`) is enough. Hosts that share a PostgreSQL ledger
share its lock instead: a session advisory lock (``pg_try_advisory_lock``) on
a connection of its own, keyed by the lock's name, so it has the scope of
today's ``$ZEROG_HOME/locks/<name>.lock`` with the database as the home. The
server frees it when the holder's connection ends, however the process died.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from zerog_cli.infra.locking import Holder, poll_lock
from zerog_cli.ledger.db import TIME_FORMAT
from zerog_cli.ledger.postgres import PgConnection, PostgresTarget, lock_key

_HOLDER = (
    "SELECT a.application_name, a.backend_start FROM pg_locks l"
    " JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = ?"
    " AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database"
    " WHERE datname = current_database())"
)


class LedgerRunLock:
    """`RunLock`'s interface (acquire with wait/on_wait, release) over an advisory lock."""

    def __init__(self, target: PostgresTarget, name: str, command: str) -> None:
        self.target = target
        self.name = name
        self.command = command
        self.key = lock_key(name)
        self._conn: PgConnection | None = None

    def acquire(
        self, *, wait: bool = False, on_wait: Callable[[Holder | None], None] | None = None
    ) -> None:
        if self._conn is not None:
            raise RuntimeError(f"the {self.name} lock is already held by this LedgerRunLock")
        conn = self.target.connect()
        try:
            poll_lock(
                lambda: self._try_lock(conn),
                lambda: self.holder(conn),
                self._held_message,
                wait=wait,
                on_wait=on_wait,
            )
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _try_lock(self, conn: PgConnection) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(?)", (self.key,)).fetchone()
        return bool(row and row[0])

    def holder(self, conn: PgConnection) -> Holder | None:
        row = conn.execute(_HOLDER, (self.key,)).fetchone()
        if row is None:
            return None
        return _holder(row, self.command)

    def _held_message(self, holder: Holder | None) -> str:
        who = (
            "another host (it has just let go, or is not zerog)"
            if holder is None
            else (holder.describe())
        )
        return f"another run holds the {self.name} lock of ledger {self.target.display}: {who}"

    def release(self) -> None:
        """Closing the connection ends the session and with it the lock."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _holder(row: tuple[Any, ...], command: str) -> Holder | None:
    """The holder from its connection's application name (``zerog pid N on HOST``)."""
    application, since = row
    words = str(application or "").split()
    if len(words) < 5 or words[:2] != ["zerog", "pid"] or not words[2].isdigit():
        return None
    return Holder(
        pid=int(words[2]),
        host=" ".join(words[4:]),
        command=command,
        since=since.astimezone(UTC).strftime(TIME_FORMAT),
    )
