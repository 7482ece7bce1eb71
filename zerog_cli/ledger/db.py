"""The ledger connection: one SQLite file (WAL, busy timeout, 0600) or a PostgreSQL
database (`ledger.postgres`), migrated on open.

`ledger_url` picks the backend: ``sqlite:///PATH`` (the default, from
``ledger_path``) or ``postgresql://USER@HOST:PORT/DB``. Everything above
`ledger/` sees one `Ledger` whatever runs underneath.

Writes that belong together run in `Ledger.transaction()`, which is
``BEGIN IMMEDIATE``: the write lock is taken before anything is read, so a
quota check and the spend it guards can never interleave with another
process's. The busy timeout makes concurrent writers queue instead of
failing with "database is locked".

A ledger whose folder this process cannot write (a read-only mount, a home
owned by another user) is opened read-only, so commands that only read
(`status`, `backup ls`, `ledger sql`, `quota show`) still work there; a
command that writes fails at its first write with exit 10.

On PostgreSQL, `Ledger.transaction()` takes one transaction-level advisory
lock right after ``BEGIN``: the same single-writer guarantee as ``BEGIN
IMMEDIATE``, for every host that shares the database.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload
from urllib.parse import quote

from zerog_cli.errors import (
    LEDGER_RECOVERY_HINT,
    ConfigError,
    EnvironmentFailure,
    UsageError,
    environment_failure,
)
from zerog_cli.infra.files import create_private_file, ensure_private_dir
from zerog_cli.infra.units import INT64_MAX

if TYPE_CHECKING:
    from collections.abc import Callable

    import sqlite_utils

    from zerog_cli.ledger.postgres import PgConnection, PgDatabase, PostgresTarget

BUSY_TIMEOUT_MS = 30_000


class LedgerCursor(Protocol):
    """What the ledger reads from the result of a statement: a ``sqlite3.Cursor`` or a
    `PgCursor`. Rows are tuples (no row factory is ever set); ``fetchone`` is None past
    the last row."""

    @property
    def description(self) -> Sequence[tuple[Any, ...]] | None: ...

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class LedgerConnection(Protocol):
    """What every ledger function may call on its connection, whichever backend runs it:
    a ``sqlite3.Connection`` or a `PgConnection` (which raises the ``sqlite3`` error
    classes). Transactions are statements (``BEGIN`` … ``COMMIT``) on both, so there is no
    ``commit``; anything SQLite-only (the backup API, pragmas through sqlite-utils) needs
    the ``sqlite3.Connection`` itself, from `Ledger.conn` after an ``isinstance`` check."""

    def execute(
        self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ..., /
    ) -> LedgerCursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> LedgerCursor: ...

    def close(self) -> None: ...


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""Ledger timestamps: ISO 8601 UTC with seconds, sortable as text."""


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A ledger timestamp; ``fromisoformat`` for the exact form (strptime is ~20x slower
    and listings parse one per row), strptime's strict check for anything else."""
    if len(text) == 20 and text[10] == "T" and text[19] == "Z":
        return datetime.fromisoformat(text)
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Page:
    """One window of a listing: at most ``limit`` rows (None: all) after the first ``offset``.

    Every paginated listing (`backup ls`, `ns objects`, `quota show --all`,
    `infer log`) takes ``--limit N --offset N`` and pages in SQL, over a stable
    order, so the next page is ``--offset`` + ``--limit``.
    """

    limit: int | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and not 1 <= self.limit <= INT64_MAX:
            raise UsageError(f"--limit must be between 1 and {INT64_MAX}, got {self.limit}")
        if not 0 <= self.offset <= INT64_MAX:
            raise UsageError(f"--offset must be between 0 and {INT64_MAX}, got {self.offset}")

    def sql(self) -> tuple[str, tuple[int, ...]]:
        """The ``LIMIT … OFFSET …`` clause and its parameters (none for the whole listing)."""
        if self.limit is None and not self.offset:
            return "", ()
        return " LIMIT ? OFFSET ?", (INT64_MAX if self.limit is None else self.limit, self.offset)


EVERYTHING = Page()


def dict_rows(
    conn: LedgerConnection, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
) -> list[dict[str, Any]]:
    """The rows ``sql`` returns, each a dict by column name."""
    cursor = conn.execute(sql, params)
    columns = [c[0] for c in cursor.description or ()]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def utc_now() -> str:
    return format_time(datetime.now(UTC))


def resolve_target(
    url: str, password: Callable[[], str | None] | None = None
) -> Path | PostgresTarget:
    """The ledger ``url`` names: a SQLite file (``sqlite:///PATH``) or a `PostgresTarget`."""
    if url.startswith("sqlite://"):
        location = url.removeprefix("sqlite://")
        if not location:
            raise ConfigError(f"ledger_url {url!r} names no file (sqlite:///PATH)")
        return Path(location).expanduser()
    from zerog_cli.ledger.postgres import parse_url

    return parse_url(url, password)


class Ledger:
    """A migrated ledger: ``conn`` is the raw connection every query uses (its type says
    which backend runs: code that needs one backend's own calls branches on it).

    ``db`` wraps the same connection in a sqlite-utils Database for schema work
    (migrations create and drop tables through it). It is built on first use:
    importing sqlite-utils costs about 0.1 s, which commands that only read
    and write rows should not pay. On PostgreSQL it is a `PgDatabase`.

    ``path`` is the SQLite file, None on PostgreSQL; ``location`` names either
    for messages (a URL never holds a password).
    """

    def __init__(
        self,
        target: Path | PostgresTarget,
        conn: sqlite3.Connection | PgConnection,
        *,
        read_only: bool = False,
    ) -> None:
        self.target = target
        self.path: Path | None = target if isinstance(target, Path) else None
        self.dialect = "sqlite" if self.path is not None else "postgresql"
        self.conn = conn
        self.read_only = read_only
        self._db: sqlite_utils.Database | PgDatabase | None = None

    @property
    def location(self) -> str:
        return describe(self.target)

    @property
    def db(self) -> sqlite_utils.Database | PgDatabase:
        if self._db is None:
            if isinstance(self.conn, sqlite3.Connection):
                import sqlite_utils

                self._db = sqlite_utils.Database(self.conn)
            else:
                from zerog_cli.ledger.postgres import PgDatabase

                self._db = PgDatabase(self.conn)
        return self._db

    def table_names(self) -> list[str]:
        if not isinstance(self.conn, sqlite3.Connection):
            from zerog_cli.ledger.postgres import table_names

            return table_names(self.conn)
        rows = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        return [str(row[0]) for row in rows]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LedgerConnection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back on any exception.

        On PostgreSQL: ``BEGIN`` and the ledger's advisory write lock, held to
        the end of the transaction. The body of a transaction is any Python (a
        quota check, then the spend), which cannot be replayed the way a
        serialization failure would need; one writer at a time, as on SQLite,
        needs no replay and still lets every reader run.
        """
        if self.dialect == "postgresql":
            from zerog_cli.ledger.postgres import WRITE_LOCK_KEY

            self.conn.execute("BEGIN")
            try:
                self.conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK_KEY,))
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        else:
            self._begin_immediate()
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[LedgerConnection]:
        """A read-only transaction that sees one consistent state of the whole ledger
        (SQLite: a deferred read transaction on WAL; PostgreSQL: REPEATABLE READ)."""
        if self.dialect == "postgresql":
            self.conn.execute("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        else:
            self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("ROLLBACK")

    def referenced_tables(self, table: str) -> set[str]:
        """The tables ``table``'s foreign keys point at (they must be filled first)."""
        if self.dialect == "postgresql":
            sql = (
                "SELECT DISTINCT ccu.table_name FROM information_schema.table_constraints tc"
                " JOIN information_schema.constraint_column_usage ccu"
                " USING (constraint_schema, constraint_name)"
                " WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_name = ?"
                " AND tc.table_schema = current_schema()"
            )
        else:
            sql = 'SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)'
        return {str(row[0]) for row in self.conn.execute(sql, (table,)).fetchall()} - {table}

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
        return dict_rows(self.conn, sql, params)

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


def describe(target: Path | PostgresTarget) -> str:
    """The ledger's file, or its URL (never with a password), for output and messages."""
    return str(target) if isinstance(target, Path) else target.display


def sqlite_uri(path: Path, *, read_only: bool = False) -> str:
    """A ``file:`` URI naming exactly ``path``, whatever characters it holds.

    Passed with ``uri=True``, so that a ``?`` or ``#`` in the path (say, in
    ``ZEROG_HOME``) is part of the file name, percent-escaped, instead of
    starting a query that would open another file or an in-memory database.
    """
    uri = "file:" + quote(str(path.absolute()), safe="/")
    return uri + "?mode=ro" if read_only else uri


def writable(path: Path) -> bool:
    """Whether this process may write the ledger file and create its -wal/-shm files."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _unflushed_wal(path: Path) -> bool:
    try:
        return Path(f"{path}-wal").stat().st_size > 0
    except FileNotFoundError:
        return False


@overload
def connect(target: Path, *, read_only: bool = False) -> sqlite3.Connection: ...


@overload
def connect(target: PostgresTarget, *, read_only: bool = False) -> PgConnection: ...


@overload
def connect(
    target: Path | PostgresTarget, *, read_only: bool = False
) -> sqlite3.Connection | PgConnection: ...


def connect(
    target: Path | PostgresTarget, *, read_only: bool = False
) -> sqlite3.Connection | PgConnection:
    """A raw connection with zerog's pragmas; creates the file 0600 when missing.

    On PostgreSQL, a `PgConnection`: a `LedgerConnection` as the SQLite one is
    (see `ledger.postgres`).

    The file is only ever opened through SQLite. Opening and closing it any
    other way (say, to read its header) would drop every POSIX lock this
    process holds on it, including those of the ledger connection a command
    already has open: another process could then take the file for its last
    connection, checkpoint and delete the WAL under us, and our next commits
    would be lost (or leave the file "malformed").

    Read-only, a WAL ledger needs its -shm file, which SQLite cannot create
    in a folder this process may not write. Such a ledger with no unflushed
    WAL is opened as immutable: nothing can change it through this folder.
    """
    if not isinstance(target, Path):
        return target.connect(read_only=read_only)
    path = target
    if not path.exists() and read_only:
        raise ConfigError(
            f"ledger {path} does not exist", hint="run any zerog command to create it"
        )
    elif not path.exists():
        ensure_private_dir(path.parent)
        create_private_file(path)
    try:
        return _connect(path, read_only=read_only, immutable=False)
    except sqlite3.DatabaseError as exc:
        if not (read_only and "unable to open" in str(exc)):
            raise _open_failure(path, exc) from None
        if _unflushed_wal(path):
            raise EnvironmentFailure(
                f"ledger {path} has writes not yet moved out of its -wal file,"
                " and its folder is not writable",
                hint="make ZEROG_HOME writable for one run of `zerog ledger status`",
            ) from None
    try:
        return _connect(path, read_only=True, immutable=True)
    except sqlite3.DatabaseError as exc:
        raise _open_failure(path, exc) from None


def _open_failure(path: Path, exc: sqlite3.DatabaseError) -> Exception:
    if "not a database" in str(exc):
        return ConfigError(f"ledger {path} is not a SQLite database", hint=LEDGER_RECOVERY_HINT)
    failure = environment_failure(exc, path)
    if failure is not None:
        return failure
    return ConfigError(f"ledger {path} cannot be opened as SQLite: {exc}")


def _connect(path: Path, *, read_only: bool, immutable: bool) -> sqlite3.Connection:
    uri = sqlite_uri(path, read_only=read_only)
    conn = sqlite3.connect(
        uri + "&immutable=1" if immutable else uri,
        uri=True,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA schema_version").fetchone()  # reads the header: not a database?
        if not read_only:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def open_ledger(target: Path | PostgresTarget, *, migrate: bool = True) -> Ledger:
    """Open (creating if needed) and bring the schema up to date.

    Read-only when the ledger exists and this process may not write it (see
    the module docstring); a schema that needs migrating is then exit 10.
    """
    from zerog_cli.ledger.migrations import LATEST_VERSION, migrate_to_latest

    path = target if isinstance(target, Path) else None
    read_only = path is not None and path.exists() and not writable(path)
    conn = connect(target, read_only=read_only)
    ledger = Ledger(target, conn, read_only=read_only)
    try:
        if migrate and read_only and ledger.schema_version() < LATEST_VERSION:
            conn.close()
            raise EnvironmentFailure(
                f"ledger {ledger.location} needs migrating to schema {LATEST_VERSION}, and this"
                " process may not write it",
                hint="run one zerog command with ZEROG_HOME writable",
            )
        if migrate:
            migrate_to_latest(ledger)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError):
            failure = environment_failure(exc, path)
            if failure is not None:
                raise failure from None
        raise ConfigError(
            f"ledger {ledger.location} is damaged or not a zerog ledger: {exc}",
            hint=LEDGER_RECOVERY_HINT,
        ) from None
    return ledger
