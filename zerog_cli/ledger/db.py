"""The ledger connection: one SQLite file, WAL, busy timeout, 0600, migrated on open.

Writes that belong together run in `Ledger.transaction()`, which is
``BEGIN IMMEDIATE``: the write lock is taken before anything is read, so a
quota check and the spend it guards can never interleave with another
process's. The busy timeout makes concurrent writers queue instead of
failing with "database is locked".
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from zerog_cli.errors import ConfigError
from zerog_cli.infra.files import create_private_file, ensure_private_dir

if TYPE_CHECKING:
    import sqlite_utils

BUSY_TIMEOUT_MS = 30_000


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""Ledger timestamps: ISO 8601 UTC with seconds, sortable as text."""


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def utc_now() -> str:
    return format_time(datetime.now(UTC))


class Ledger:
    """A migrated ledger: ``conn`` is the raw connection every query uses.

    ``db`` wraps the same connection in a sqlite-utils Database for schema work
    (migrations create and drop tables through it). It is built on first use:
    importing sqlite-utils costs about 0.1 s, which commands that only read
    and write rows should not pay.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self._db: sqlite_utils.Database | None = None

    @property
    def db(self) -> sqlite_utils.Database:
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def table_names(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        return [str(row[0]) for row in rows]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back on any exception."""
        self._begin_immediate()
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _begin_immediate(self) -> None:
        # sqlite3's busy handler covers most waits; this loop covers the
        # WAL-recovery window in which SQLite returns BUSY without waiting.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def query(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        columns = [c[0] for c in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def query_one(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def schema_version(self) -> int:
        row = self.query_one("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(row["v"]) if row else 0

    def close(self) -> None:
        self.conn.close()


def sqlite_uri(path: Path, *, read_only: bool = False) -> str:
    """A ``file:`` URI naming exactly ``path``, whatever characters it holds.

    Passed with ``uri=True``, so that a ``?`` or ``#`` in the path (say, in
    ``ZEROG_HOME``) is part of the file name, percent-escaped, instead of
    starting a query that would open another file or an in-memory database.
    """
    uri = "file:" + quote(str(path.absolute()), safe="/")
    return uri + "?mode=ro" if read_only else uri


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A raw connection with zerog's pragmas; creates the file 0600 when missing.

    The file is only ever opened through SQLite. Opening and closing it any
    other way (say, to read its header) would drop every POSIX lock this
    process holds on it, including those of the ledger connection a command
    already has open: another process could then take the file for its last
    connection, checkpoint and delete the WAL under us, and our next commits
    would be lost (or leave the file "malformed").
    """
    if not path.exists() and read_only:
        raise ConfigError(
            f"ledger {path} does not exist", hint="run any zerog command to create it"
        )
    elif not path.exists():
        ensure_private_dir(path.parent)
        create_private_file(path)
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(
            sqlite_uri(path, read_only=read_only),
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA schema_version").fetchone()  # reads the header: not a database?
        if not read_only:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        if "not a database" in str(exc):
            raise ConfigError(f"ledger {path} is not a SQLite database") from None
        raise ConfigError(f"ledger {path} cannot be opened as SQLite: {exc}") from None
    return conn


def open_ledger(path: Path, *, migrate: bool = True) -> Ledger:
    """Open (creating if needed) and bring the schema up to date."""
    from zerog_cli.ledger.migrations import migrate_to_latest

    conn = connect(path)
    ledger = Ledger(path, conn)
    try:
        if migrate:
            migrate_to_latest(ledger)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(f"ledger {path} is damaged or not a zerog ledger: {exc}") from None
    return ledger
