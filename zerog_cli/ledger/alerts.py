"""``alerts``: threshold crossings and failures worth an operator's attention."""

from __future__ import annotations

import math
from typing import Any

from zerog_cli.ledger.db import LedgerConnection, dict_rows, utc_now


def record(
    conn: LedgerConnection,
    *,
    level: str,
    kind: str,
    subject: str,
    message: str,
    value: float | None = None,
    threshold: float | None = None,
    period: str | None = None,
) -> int:
    """Insert one alert; ``value`` and ``threshold`` are stored as REAL.

    They are converted here because a caller may pass a peer's claim as a Python
    int larger than SQLite's 64-bit INTEGER (a provider reporting 2**300 tokens);
    past what a float holds, the value is infinity.
    """
    cursor = conn.execute(
        "INSERT INTO alerts (created_at, level, kind, subject, message, value, threshold, period)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (utc_now(), level, kind, subject, message, _real(value), _real(threshold), period),
    )
    return int(cursor.lastrowid or 0)


def _real(number: float | None) -> float | None:
    if number is None:
        return None
    try:
        return float(number)
    except OverflowError:
        return math.inf


def recent(
    conn: LedgerConnection, limit: int = 50, kind: str | None = None
) -> list[dict[str, Any]]:
    if kind is None:
        return dict_rows(conn, "SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (limit,))
    return dict_rows(
        conn, "SELECT * FROM alerts WHERE kind = ? ORDER BY id DESC LIMIT ?", (kind, limit)
    )


def count_by_subject(conn: LedgerConnection, kind: str) -> dict[str, int]:
    """How many alerts of ``kind`` each subject has, subjects lower-cased."""
    rows = dict_rows(
        conn,
        "SELECT lower(subject) AS subject, COUNT(*) AS alerts FROM alerts"
        " WHERE kind = ? GROUP BY lower(subject)",
        (kind,),
    )
    return {str(row["subject"]): int(row["alerts"]) for row in rows}
