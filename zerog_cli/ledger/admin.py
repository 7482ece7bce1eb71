"""Ledger housekeeping: status, integrity, online backup and read-only SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from zerog_cli.errors import ConfigError, UsageError
from zerog_cli.infra.files import atomic_path
from zerog_cli.ledger.db import Ledger, connect
from zerog_cli.ledger.migrations import LATEST_VERSION

_WRITE_KEYWORDS = {
    "insert",
    "update",
    "delete",
    "replace",
    "create",
    "drop",
    "alter",
    "attach",
    "detach",
    "vacuum",
    "reindex",
    "pragma",
    "begin",
    "commit",
    "rollback",
    "savepoint",
    "release",
    "analyze",
}


def status(ledger: Ledger, *, integrity: bool = True) -> dict[str, Any]:
    """Schema version, size, journal mode, integrity and row counts per table."""
    row_counts = {
        table: int(ledger.query(f'SELECT COUNT(*) AS n FROM "{table}"')[0]["n"])
        for table in ledger.table_names()
        if not table.startswith("sqlite_")
    }
    files = [ledger.path, Path(f"{ledger.path}-wal")]
    size = sum(p.stat().st_size for p in files if p.exists())
    result: dict[str, Any] = {
        "path": str(ledger.path),
        "schema_version": ledger.schema_version(),
        "latest_version": LATEST_VERSION,
        "size_bytes": size,
        "mode": oct(ledger.path.stat().st_mode & 0o777),
        "journal_mode": ledger.query("PRAGMA journal_mode")[0]["journal_mode"],
        "tables": row_counts,
    }
    if integrity:
        result["integrity"] = integrity_check(ledger)
    return result


def integrity_check(ledger: Ledger) -> str:
    """'ok' or SQLite's first complaint from PRAGMA quick_check."""
    rows = ledger.conn.execute("PRAGMA quick_check").fetchall()
    return "ok" if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:5])


def backup(ledger: Ledger, destination: Path, *, overwrite: bool = False) -> dict[str, Any]:
    """A consistent online copy (SQLite backup API) that appears atomically, mode 0600."""
    if destination.is_dir():
        destination = destination / ledger.path.name
    if destination.exists() and not overwrite:
        raise UsageError(f"{destination} exists; pass --force to replace it")
    if destination.resolve() == ledger.path.resolve():
        raise UsageError("the backup destination is the ledger itself")
    with atomic_path(destination, mode=0o600) as temporary:
        target = sqlite3.connect(temporary)
        try:
            ledger.conn.backup(target)
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
    return {
        "source": str(ledger.path),
        "destination": str(destination),
        "size_bytes": destination.stat().st_size,
    }


def _first_keyword(sql: str) -> str:
    text = sql.strip()
    while text.startswith("--") or text.startswith("/*"):
        if text.startswith("--"):
            text = text.split("\n", 1)[1].lstrip() if "\n" in text else ""
        else:
            text = text.split("*/", 1)[1].lstrip() if "*/" in text else ""
    return text.split(None, 1)[0].lower() if text else ""


def run_readonly_sql(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Run one SELECT (or WITH … SELECT) on a read-only connection; writes are refused."""
    keyword = _first_keyword(sql)
    if not keyword:
        raise UsageError("no SQL statement given")
    if keyword in _WRITE_KEYWORDS:
        raise UsageError(f"ledger sql is read-only: {keyword.upper()} statements are refused")
    conn = connect(path, read_only=True)
    try:
        conn.execute("PRAGMA query_only = ON")
        cursor = conn.execute(sql, params)
        columns = [c[0] for c in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    except (sqlite3.Warning, sqlite3.ProgrammingError) as exc:
        raise UsageError(f"ledger sql takes one statement: {exc}") from None
    except sqlite3.OperationalError as exc:
        message = str(exc)
        if "readonly" in message or "read-only" in message:
            raise UsageError(f"ledger sql is read-only: {message}") from None
        raise UsageError(f"SQL error: {message}") from None
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"ledger {path}: {exc}") from None
    finally:
        conn.close()


def last_good_verification_by_namespace(ledger: Ledger) -> list[dict[str, Any]]:
    """Per namespace with live backups: the last ok verification and the oldest backup."""
    return ledger.query(
        "SELECT b.namespace AS namespace, COUNT(DISTINCT b.id) AS backups,"
        " MIN(b.created_at) AS oldest_backup_at,"
        " MAX(CASE WHEN v.status = 'ok' THEN v.checked_at END) AS last_ok"
        " FROM storage_backups b LEFT JOIN verifications v ON v.backup_id = b.id"
        " WHERE b.retired_at IS NULL GROUP BY b.namespace ORDER BY b.namespace"
    )
