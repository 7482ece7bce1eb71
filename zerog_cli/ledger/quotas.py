"""Per-user quota rows, monthly periods and reservations (all SQL for quotas).

Every function that changes a row takes the connection of an open
``Ledger.transaction()`` (``BEGIN IMMEDIATE``), so the check the service does
and the change it makes cannot interleave with another process. A
*reservation* holds quota while money is being spent on the network (an upload
or an inference); it is released, or turned into usage, in the transaction
that records the outcome. Reservations of processes that died are expired.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from zerog_cli.ledger.db import EVERYTHING, LedgerConnection, Page, utc_now

LIMIT_COLUMNS = {
    "storage": "storage_limit_bytes",
    "tokens": "token_limit",
    "monthly_usd": "monthly_usd_limit_micro",
}


@dataclass(frozen=True)
class QuotaRow:
    user: str
    tier: str
    storage_limit_bytes: int | None
    token_limit: int | None
    monthly_usd_limit_micro: int | None
    storage_used_bytes: int
    tokens_used: int
    monthly_usd_used_micro: int
    period: str


@dataclass(frozen=True)
class Reserved:
    storage_bytes: int = 0
    tokens: int = 0
    usd_micro: int = 0


_ROW_COLUMNS = (
    "user, tier, storage_limit_bytes, token_limit, monthly_usd_limit_micro,"
    " storage_used_bytes, tokens_used, monthly_usd_used_micro, period"
)


def _row(values: tuple[Any, ...] | None) -> QuotaRow | None:
    return None if values is None else QuotaRow(*values)


def get(conn: LedgerConnection, user: str) -> QuotaRow | None:
    return _row(
        conn.execute(f"SELECT {_ROW_COLUMNS} FROM user_quotas WHERE user = ?", (user,)).fetchone()
    )


def all_rows(conn: LedgerConnection, page: Page = EVERYTHING) -> Iterator[QuotaRow]:
    """Every user's row by name (``page`` of them), as SQLite yields them."""
    window, window_params = page.sql()
    rows = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM user_quotas ORDER BY user{window}", window_params
    )
    return (QuotaRow(*row) for row in rows)


def exists(conn: LedgerConnection, user: str) -> bool:
    return conn.execute("SELECT 1 FROM user_quotas WHERE user = ?", (user,)).fetchone() is not None


def ensure(conn: LedgerConnection, user: str, tier: str, period: str) -> QuotaRow:
    """The user's row, created with ``tier`` and the current period when missing."""
    now = utc_now()
    conn.execute(
        "INSERT OR IGNORE INTO user_quotas (user, tier, period, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (user, tier, period, now, now),
    )
    row = get(conn, user)
    assert row is not None
    return row


def roll_period(conn: LedgerConnection, row: QuotaRow, period: str) -> QuotaRow:
    """Start a new monthly period: usage back to zero. No-op within the same period."""
    if row.period == period:
        return row
    conn.execute(
        "UPDATE user_quotas SET storage_used_bytes = 0, tokens_used = 0,"
        " monthly_usd_used_micro = 0, period = ?, updated_at = ? WHERE user = ?",
        (period, utc_now(), row.user),
    )
    updated = get(conn, row.user)
    assert updated is not None
    return updated


def roll_all_periods(conn: LedgerConnection, period: str) -> int:
    """`roll_period` for every user whose row is of another period; returns rows changed."""
    return conn.execute(
        "UPDATE user_quotas SET storage_used_bytes = 0, tokens_used = 0,"
        " monthly_usd_used_micro = 0, period = ?, updated_at = ? WHERE period != ?",
        (period, utc_now(), period),
    ).rowcount


def set_limits(
    conn: LedgerConnection,
    user: str,
    *,
    tier: str | None,
    limits: dict[str, int | None],
) -> None:
    """Change the tier and/or explicit limits (None in ``limits`` = back to the tier's)."""
    assignments = ["updated_at = ?"]
    params: list[Any] = [utc_now()]
    if tier is not None:
        assignments.append("tier = ?")
        params.append(tier)
    for name, value in limits.items():
        assignments.append(f"{LIMIT_COLUMNS[name]} = ?")
        params.append(value)
    conn.execute(f"UPDATE user_quotas SET {', '.join(assignments)} WHERE user = ?", (*params, user))


def reset_usage(conn: LedgerConnection, user: str | None) -> int:
    """Zero the usage of one user (or everyone); returns rows changed."""
    sql = (
        "UPDATE user_quotas SET storage_used_bytes = 0, tokens_used = 0,"
        " monthly_usd_used_micro = 0, updated_at = ?"
    )
    if user is None:
        return conn.execute(sql, (utc_now(),)).rowcount
    return conn.execute(sql + " WHERE user = ?", (utc_now(), user)).rowcount


def add_usage(
    conn: LedgerConnection,
    user: str,
    *,
    storage_bytes: int = 0,
    tokens: int = 0,
    usd_micro: int = 0,
) -> None:
    conn.execute(
        "UPDATE user_quotas SET storage_used_bytes = storage_used_bytes + ?,"
        " tokens_used = tokens_used + ?, monthly_usd_used_micro = monthly_usd_used_micro + ?,"
        " updated_at = ? WHERE user = ?",
        (storage_bytes, tokens, usd_micro, utc_now(), user),
    )


def reserved_by_user(conn: LedgerConnection, user: str) -> Reserved:
    row = conn.execute(
        "SELECT COALESCE(SUM(storage_bytes), 0), COALESCE(SUM(tokens), 0),"
        " COALESCE(SUM(usd_micro), 0) FROM quota_reservations WHERE user = ?",
        (user,),
    ).fetchone()
    return Reserved(int(row[0]), int(row[1]), int(row[2]))


def reserved_by_users(conn: LedgerConnection) -> dict[str, Reserved]:
    """What running commands hold, per user that holds anything."""
    rows = conn.execute(
        "SELECT user, SUM(storage_bytes), SUM(tokens), SUM(usd_micro)"
        " FROM quota_reservations GROUP BY user"
    )
    return {
        str(user): Reserved(int(size), int(tokens), int(usd)) for user, size, tokens, usd in rows
    }


def reserved_in_namespace(conn: LedgerConnection, namespace: str) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(namespace_bytes), 0) FROM quota_reservations WHERE namespace = ?",
        (namespace,),
    ).fetchone()
    return int(row[0])


def insert_reservation(
    conn: LedgerConnection,
    user: str,
    namespace: str | None,
    amounts: Reserved,
    *,
    namespace_bytes: int,
    purpose: str,
    pid: int,
    host: str,
    object_name: tuple[str, str] | None = None,
) -> int:
    """Hold ``amounts``; ``object_name`` (network, name) also holds that name in ``namespace``."""
    network, name = object_name if object_name is not None else (None, None)
    cursor = conn.execute(
        "INSERT INTO quota_reservations (user, namespace, namespace_bytes, storage_bytes,"
        " tokens, usd_micro, purpose, pid, host, created_at, network, object_name)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            user,
            namespace,
            namespace_bytes,
            amounts.storage_bytes,
            amounts.tokens,
            amounts.usd_micro,
            purpose,
            pid,
            host,
            utc_now(),
            network,
            name,
        ),
    )
    return int(cursor.lastrowid or 0)


def name_holder(
    conn: LedgerConnection, network: str, namespace: str, name: str
) -> dict[str, Any] | None:
    """The reservation (user, pid, host, purpose) that holds an object name, if any."""
    row = conn.execute(
        "SELECT user, pid, host, purpose FROM quota_reservations"
        " WHERE network = ? AND namespace = ? AND object_name = ?",
        (network, namespace, name),
    ).fetchone()
    if row is None:
        return None
    return {"user": row[0], "pid": row[1], "host": row[2], "purpose": row[3]}


def delete_reservation(conn: LedgerConnection, reservation_id: int) -> None:
    conn.execute("DELETE FROM quota_reservations WHERE id = ?", (reservation_id,))


def reservation_owners(conn: LedgerConnection) -> list[tuple[int, int, str, str]]:
    """Every reservation's id, and the pid, host and time of the run that made it."""
    rows = conn.execute("SELECT id, pid, host, created_at FROM quota_reservations").fetchall()
    return [(int(rid), int(pid), str(host), str(created)) for rid, pid, host, created in rows]


def expire_reservations(conn: LedgerConnection, ids: list[int]) -> None:
    conn.executemany("DELETE FROM quota_reservations WHERE id = ?", [(i,) for i in ids])
