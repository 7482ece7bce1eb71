"""Ledger housekeeping: status, integrity, online backup and read-only SQL.

On PostgreSQL: `status` reads the catalog instead of PRAGMAs, `backup` writes
a SQLite ledger file exported from one consistent snapshot (the file `ledger
copy` loads back), and `ledger sql` runs in a READ ONLY transaction that is
rolled back, after the same one-reading-statement rule.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from zerog_cli.errors import LEDGER_RECOVERY_HINT, ConfigError, EnvironmentFailure, UsageError
from zerog_cli.infra.files import atomic_path, ensure_private_dir
from zerog_cli.ledger.db import Ledger, connect, sqlite_uri, utc_now
from zerog_cli.ledger.migrations import LATEST_VERSION

if TYPE_CHECKING:
    from zerog_cli.ledger.postgres import PostgresTarget

# SQLite authorizer action codes (sqlite3.h); every statement is checked against them.
_ACTIONS = {
    1: "CREATE INDEX",
    2: "CREATE TABLE",
    3: "CREATE TEMP INDEX",
    4: "CREATE TEMP TABLE",
    5: "CREATE TEMP TRIGGER",
    6: "CREATE TEMP VIEW",
    7: "CREATE TRIGGER",
    8: "CREATE VIEW",
    9: "DELETE",
    10: "DROP INDEX",
    11: "DROP TABLE",
    12: "DROP TEMP INDEX",
    13: "DROP TEMP TABLE",
    14: "DROP TEMP TRIGGER",
    15: "DROP TEMP VIEW",
    16: "DROP TRIGGER",
    17: "DROP VIEW",
    18: "INSERT",
    19: "PRAGMA",
    20: "READ",
    21: "SELECT",
    22: "TRANSACTION",
    23: "UPDATE",
    24: "ATTACH",
    25: "DETACH",
    26: "ALTER TABLE",
    27: "REINDEX",
    28: "ANALYZE",
    29: "CREATE VTABLE",
    30: "DROP VTABLE",
    31: "FUNCTION",
    32: "SAVEPOINT",
    33: "RECURSIVE",
}
_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
# Pragmas that only report, whatever their argument (``table_info(objects)``).
_REPORTING_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
        "collation_list",
        "function_list",
        "pragma_list",
        "module_list",
        "database_list",
        "compile_options",
    }
)
# Settings that may be read (no value given) but never set.
_READABLE_SETTINGS = frozenset(
    {
        "user_version",
        "schema_version",
        "application_id",
        "page_count",
        "page_size",
        "freelist_count",
        "journal_mode",
        "encoding",
        "foreign_keys",
        "auto_vacuum",
        "data_version",
    }
)


class _ReadOnlyAuthorizer:
    """SQLite's authorizer callback for `ledger sql`: reads pass, everything else is denied.

    A keyword filter cannot see what SQLite will do (``VACUUM/**/INTO``,
    ``ATTACH'x'AS x``, a leading ``;``); the authorizer is asked by SQLite
    itself for every action a statement would take while it is prepared, so
    an ATTACH (also the one inside ``VACUUM INTO``), a write, a schema change,
    a transaction or a pragma that sets something never runs. ``refused``
    names the first denied action, for the error message.
    """

    def __init__(self) -> None:
        self.refused: str | None = None

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
    ) -> int:
        if action in _READ_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name in _REPORTING_PRAGMAS or (arg2 is None and name in _READABLE_SETTINGS):
                return sqlite3.SQLITE_OK
            if self.refused is None:
                self.refused = f"PRAGMA {name}" + ("" if arg2 is None else " with a value")
            return sqlite3.SQLITE_DENY
        if self.refused is None:
            self.refused = _ACTIONS.get(action, f"action {action}")
        return sqlite3.SQLITE_DENY


@dataclass(frozen=True)
class LedgerStatus:
    """The ledger (``backend``: sqlite or postgresql; ``path``: its file, or its URL
    without password): schema version (and the latest this zerog knows), size, file
    mode (None on PostgreSQL), journal mode (the server's version on PostgreSQL), rows
    per table (None when not counted), and the integrity check (``ok`` or its first
    complaints) with when it ran."""

    backend: str
    path: str
    schema_version: int
    latest_version: int
    size_bytes: int
    mode: str | None
    journal_mode: str
    tables: dict[str, int] | None
    integrity: str | None
    integrity_checked_at: str | None


@dataclass(frozen=True)
class LedgerCopy:
    """A consistent copy of the ledger (``destination``: a file, or ``-`` for stdout)."""

    source: str
    destination: str
    size_bytes: int


def status(
    ledger: Ledger,
    *,
    integrity: bool = True,
    counts: bool = True,
    trust_passed_since: str | None = None,
) -> LedgerStatus:
    """Schema version, size, journal mode, integrity and row counts per table.

    ``trust_passed_since``: a recorded integrity check that passed at or after this
    time stands in for a new one (PRAGMA quick_check reads every page: ~10 s on a
    ledger of ten million rows). ``integrity_checked_at`` says when it ran.
    """
    row_counts = {
        table: int(ledger.query(f'SELECT COUNT(*) AS n FROM "{table}"')[0]["n"])
        for table in (ledger.table_names() if counts else ())
        if not table.startswith("sqlite_")
    }
    if ledger.path is None:
        return _postgres_status(ledger, row_counts, counts=counts, integrity=integrity)
    files = [ledger.path, Path(f"{ledger.path}-wal")]
    size = sum(p.stat().st_size for p in files if p.exists())
    checked: str | None = None
    checked_at: str | None = None
    if integrity:
        passed = None if trust_passed_since is None else last_passed_check(ledger)
        if passed is not None and passed >= str(trust_passed_since):
            checked, checked_at = "ok", passed
        else:
            checked = integrity_check(ledger)
            checked_at = utc_now()
    return LedgerStatus(
        backend="sqlite",
        path=str(ledger.path),
        schema_version=ledger.schema_version(),
        latest_version=LATEST_VERSION,
        size_bytes=size,
        mode=oct(ledger.path.stat().st_mode & 0o777),
        journal_mode=str(ledger.query("PRAGMA journal_mode")[0]["journal_mode"]),
        tables=row_counts if counts else None,
        integrity=checked,
        integrity_checked_at=checked_at,
    )


def intact_status(ledger: Ledger) -> LedgerStatus:
    """`status`; a `ConfigError` carrying it when SQLite's integrity check finds damage."""
    report = status(ledger)
    if report.integrity != "ok":
        raise ConfigError(
            f"ledger {report.path} is damaged", hint=LEDGER_RECOVERY_HINT, report=report
        )
    return report


def _postgres_status(
    ledger: Ledger, row_counts: dict[str, int], *, counts: bool, integrity: bool
) -> LedgerStatus:
    """The same report for a PostgreSQL ledger: its URL, the database's size on the
    server, the server's version in place of a journal mode, and no file mode."""
    server = ledger.query(
        "SELECT pg_database_size(current_database()) AS size, current_setting('server_version')"
        " AS version, current_setting('transaction_isolation') AS isolation"
    )[0]
    return LedgerStatus(
        backend="postgresql",
        path=ledger.location,
        schema_version=ledger.schema_version(),
        latest_version=LATEST_VERSION,
        size_bytes=int(server["size"]),
        mode=None,
        journal_mode=f"postgresql {server['version']}",
        tables=row_counts if counts else None,
        integrity=integrity_check(ledger) if integrity else None,
        integrity_checked_at=utc_now() if integrity else None,
    )


RECORD_CHECKS_FROM_SECONDS = 0.2
"""A check quicker than this is not recorded: rerunning it costs less than the write."""


def integrity_check(ledger: Ledger) -> str:
    """'ok' or SQLite's first complaint from PRAGMA quick_check, recorded when it took
    long enough to be worth trusting later, the ledger is writable and its schema has
    the table.

    PostgreSQL checks its own pages; there, 'ok' means every table the schema
    version names is present (nothing to record: it costs one catalog query).
    """
    if ledger.path is None:
        missing = sorted(set(_expected_tables()) - set(ledger.table_names()))
        return "ok" if not missing else "missing tables: " + ", ".join(missing)
    started = time.monotonic()
    rows = ledger.conn.execute("PRAGMA quick_check").fetchall()
    result = "ok" if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:5])
    if (
        time.monotonic() - started >= RECORD_CHECKS_FROM_SECONDS
        and not ledger.read_only
        and "integrity_checks" in ledger.table_names()
    ):
        with ledger.transaction() as conn:
            conn.execute(
                "INSERT INTO integrity_checks (checked_at, result, seconds) VALUES (?, ?, ?)",
                (utc_now(), result, round(time.monotonic() - started, 3)),
            )
    return result


def last_passed_check(ledger: Ledger) -> str | None:
    """When the last recorded integrity check ran, if it passed (None: never, or it failed)."""
    if "integrity_checks" not in ledger.table_names():
        return None
    row = ledger.conn.execute(
        "SELECT checked_at, result FROM integrity_checks ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return str(row[0]) if row is not None and row[1] == "ok" else None


def _expected_tables() -> list[str]:
    """The tables a fully migrated ledger holds, from a migrated in-memory SQLite ledger."""
    from zerog_cli.ledger.db import Ledger as _Ledger
    from zerog_cli.ledger.migrations import migrate_to_latest

    memory = _Ledger(Path(":memory:"), sqlite3.connect(":memory:", isolation_level=None))
    try:
        migrate_to_latest(memory)
        return memory.table_names()
    finally:
        memory.close()


def _file_name(ledger: Ledger) -> str:
    """The backup's file name: the ledger file's, or ``ledger-DATABASE.db`` on PostgreSQL."""
    if isinstance(ledger.target, Path):
        return ledger.target.name
    return f"ledger-{ledger.target.database}.db"


def backup(ledger: Ledger, destination: Path, *, overwrite: bool = False) -> LedgerCopy:
    """A consistent online copy (SQLite backup API) that appears atomically, mode 0600."""
    if destination.is_dir():
        destination = destination / _file_name(ledger)
    if destination.exists() and not overwrite:
        raise UsageError(f"{destination} exists; pass --force to replace it")
    if ledger.path is not None and destination.resolve() == ledger.path.resolve():
        raise UsageError("the backup destination is the ledger itself")
    with atomic_path(destination, mode=0o600) as temporary:
        _snapshot(ledger, temporary, destination)
    return LedgerCopy(
        source=ledger.location,
        destination=str(destination),
        size_bytes=destination.stat().st_size,
    )


SAFETY_BACKUP_FOLDER = "ledger-backups"


def safety_backup(ledger: Ledger, before: str) -> LedgerCopy:
    """A `ledger backup` taken before a command that drops rows, in ``ledger-backups/`` (0700)
    beside the ledger, named for the schema version, the time and what follows it."""
    from zerog_cli.infra.config import zerog_home

    beside = ledger.path.parent if ledger.path is not None else zerog_home()
    folder = ensure_private_dir(beside / SAFETY_BACKUP_FOLDER)
    stamp = utc_now().replace("-", "").replace(":", "")
    stem = Path(_file_name(ledger)).stem
    base = f"{stem}-v{ledger.schema_version()}-{stamp}-before-{before}"
    destination = folder / f"{base}.db"
    counter = 1
    while destination.exists():
        counter += 1
        destination = folder / f"{base}.{counter}.db"
    return backup(ledger, destination)


def backup_to_stream(ledger: Ledger, sink: BinaryIO) -> LedgerCopy:
    """The same consistent copy, written to ``sink`` (stdout for `zerog ledger backup -`).

    The copy is made in a private temporary folder first, so the stream only
    ever carries a complete snapshot, never a database caught mid-write.
    """
    with tempfile.TemporaryDirectory(prefix="zerog-ledger-") as folder:
        copy = Path(folder) / _file_name(ledger)
        _snapshot(ledger, copy, copy)
        with copy.open("rb") as source:
            shutil.copyfileobj(source, sink, 1 << 20)
        sink.flush()
        size = copy.stat().st_size
    return LedgerCopy(source=ledger.location, destination="-", size_bytes=size)


def _snapshot(ledger: Ledger, target_path: Path, destination: Path) -> None:
    """SQLite's online backup of the ledger into ``target_path``, as one self-contained file.

    A full disk is exit 10 naming ``destination`` (where the operator sees the copy go).
    A PostgreSQL ledger is exported into a new SQLite ledger from one snapshot.
    """
    if not isinstance(ledger.conn, sqlite3.Connection):
        from zerog_cli.ledger.copy import copy_ledger

        copy_ledger(ledger, target_path)
        return
    target = sqlite3.connect(sqlite_uri(target_path), uri=True)
    try:
        ledger.conn.backup(target)
        target.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.OperationalError as exc:
        if "full" not in str(exc):
            raise
        raise EnvironmentFailure(
            f"no space left on device writing {destination}",
            hint="free space there or pick another destination, then rerun",
        ) from None
    finally:
        target.close()


SqlCell = str | int | float | bytes | None
"""What a cell of `ledger sql` holds: SQLite's own value types (a BLOB as bytes).
PostgreSQL's other types come as the nearest of them (`postgres.run_readonly_sql`)."""


def run_readonly_sql(
    target: Path | PostgresTarget, sql: str, params: tuple[Any, ...] = ()
) -> list[dict[str, SqlCell]]:
    """Run one reading statement on a read-only connection; SQLite's authorizer refuses the rest."""
    if not sql.strip():
        raise UsageError("no SQL statement given")
    if not isinstance(target, Path):
        from zerog_cli.ledger.postgres import run_readonly_sql as run_on_postgres

        return run_on_postgres(target, sql, params)
    path = target
    conn = connect(path, read_only=True)
    authorizer = _ReadOnlyAuthorizer()
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.set_authorizer(authorizer)
        cursor = conn.execute(sql, params)
        columns = [c[0] for c in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    except (sqlite3.Warning, sqlite3.ProgrammingError) as exc:
        raise UsageError(f"ledger sql takes one statement: {exc}") from None
    except sqlite3.DatabaseError as exc:
        if authorizer.refused is not None:
            raise UsageError(f"ledger sql is read-only: {authorizer.refused} is refused") from None
        message = str(exc)
        if not isinstance(exc, sqlite3.OperationalError):
            raise ConfigError(f"ledger {path}: {exc}") from None
        if "readonly" in message or "read-only" in message:
            raise UsageError(f"ledger sql is read-only: {message}") from None
        raise UsageError(f"SQL error: {message}") from None
    finally:
        conn.close()


def last_good_verification_by_namespace(ledger: Ledger) -> list[dict[str, Any]]:
    """Per namespace with live backups: the last ok verification and the oldest backup.

    Each backup's last OK check is one seek in ``verifications_by_status``, however many
    checks verify has recorded for it (a join would read them all: one a day per backup).
    """
    return ledger.query(
        "SELECT b.namespace AS namespace, COUNT(*) AS backups,"
        " MIN(b.created_at) AS oldest_backup_at,"
        " MAX((SELECT MAX(v.checked_at) FROM verifications v"
        "  WHERE v.backup_id = b.id AND v.status = 'ok')) AS last_ok"
        " FROM storage_backups b WHERE b.retired_at IS NULL GROUP BY b.namespace"
        " ORDER BY b.namespace"
    )
