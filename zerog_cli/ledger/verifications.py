"""``verifications``: one row per backup checked by `zerog verify`."""

from __future__ import annotations

from typing import Any

from zerog_cli.ledger.db import LedgerConnection

STATUSES = ("ok", "mismatch", "missing", "error")
KINDS = ("full", "sampled")
"""``full``: every byte read, the root rebuilt and the SHA-256 compared; ``sampled``:
some segments read, each checked against the root with its Merkle proof."""


def record(
    conn: LedgerConnection,
    *,
    backup_id: int,
    run_id: str,
    status: str,
    duration_ms: int,
    bytes_checked: int,
    error: str | None,
    checked_at: str,
    kind: str = "full",
    segments_checked: int | None = None,
    segments_total: int | None = None,
) -> int:
    if status not in STATUSES:
        raise ValueError(f"unknown verification status {status!r}")
    if kind not in KINDS:
        raise ValueError(f"unknown verification kind {kind!r}")
    cursor = conn.execute(
        "INSERT INTO verifications (backup_id, run_id, status, duration_ms, bytes_checked, error,"
        " checked_at, kind, segments_checked, segments_total)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            backup_id,
            run_id,
            status,
            duration_ms,
            bytes_checked,
            error,
            checked_at,
            kind,
            segments_checked,
            segments_total,
        ),
    )
    return int(cursor.lastrowid or 0)


def history(conn: LedgerConnection, backup_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent checks of one backup, newest first."""
    cursor = conn.execute(
        "SELECT id, run_id, status, kind, segments_checked, segments_total, duration_ms,"
        " bytes_checked, error, checked_at"
        " FROM verifications WHERE backup_id = ? ORDER BY checked_at DESC, id DESC LIMIT ?",
        (backup_id, limit),
    )
    columns = [c[0] for c in cursor.description or ()]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
