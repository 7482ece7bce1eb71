"""Read-only aggregates behind `zerog metrics serve` that no other ledger module needs."""

from __future__ import annotations

from zerog_cli.ledger.db import LedgerConnection


def cost_by_service_until(conn: LedgerConnection, period: str, until: str) -> dict[str, int]:
    """Micro-USD per service recorded in ``period`` up to ``until`` (ISO UTC, inclusive)."""
    rows = conn.execute(
        "SELECT service, SUM(usd_micro) FROM cost_tracking"
        " WHERE period = ? AND created_at <= ? GROUP BY service",
        (period, until),
    ).fetchall()
    return {str(service): int(total or 0) for service, total in rows}


def cost_totals_by_service(conn: LedgerConnection) -> dict[str, int]:
    """Micro-USD per service over the whole ledger (only ever grows: rows are appended)."""
    rows = conn.execute(
        "SELECT service, SUM(usd_micro) FROM cost_rollup GROUP BY service"
    ).fetchall()
    return {str(service): int(total or 0) for service, total in rows}


def quota_alert_counts(conn: LedgerConnection) -> dict[str, int]:
    """Quota threshold alerts recorded per user, ever."""
    rows = conn.execute(
        "SELECT subject, COUNT(*) FROM alerts WHERE kind = 'quota' GROUP BY subject"
    ).fetchall()
    return {str(subject): int(count) for subject, count in rows}
