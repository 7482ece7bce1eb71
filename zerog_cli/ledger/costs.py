"""``cost_tracking`` rows and the sums behind `zerog quota report`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from zerog_cli.ledger.db import Ledger, utc_now

GROUP_COLUMNS = {
    "user": "user",
    "ns": "namespace",
    "service": "service",
    "backend": "backend",
    "model": "model",
    "provider": "provider",
}


@dataclass(frozen=True)
class CostEntry:
    period: str
    user: str
    namespace: str | None
    service: str
    operation: str
    quantity: int
    unit: str
    usd_micro: int
    neuron: int
    reference: str | None
    network: str
    backend: str | None = None
    """Compute only: ``router`` or ``direct``; with the model and the provider that served."""
    model: str | None = None
    provider: str | None = None


def record(conn: sqlite3.Connection, entry: CostEntry) -> int:
    """Insert one cost row; neuron is stored as decimal text (it can exceed 64 bits)."""
    cursor = conn.execute(
        "INSERT INTO cost_tracking (created_at, period, user, namespace, service, operation,"
        " quantity, unit, usd_micro, neuron, reference, network, backend, model, provider)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            utc_now(),
            entry.period,
            entry.user,
            entry.namespace,
            entry.service,
            entry.operation,
            entry.quantity,
            entry.unit,
            entry.usd_micro,
            str(entry.neuron),
            entry.reference,
            entry.network,
            entry.backend,
            entry.model,
            entry.provider,
        ),
    )
    return int(cursor.lastrowid or 0)


@dataclass
class CostGroup:
    key: str
    operations: int = 0
    bytes: int = 0
    tokens: int = 0
    usd_micro: int = 0
    neuron: int = 0


def report(ledger: Ledger, period: str, group_by: str) -> list[CostGroup]:
    """Totals for one period grouped by user, namespace or service.

    USD sums are exact integers; neuron is summed in Python because its text
    values may not fit SQLite's INTEGER.
    """
    column = GROUP_COLUMNS[group_by]
    rows = ledger.query(
        f"SELECT COALESCE({column}, '-') AS key, quantity, unit, usd_micro, neuron"
        " FROM cost_tracking WHERE period = ? ORDER BY id",
        (period,),
    )
    groups: dict[str, CostGroup] = {}
    for row in rows:
        group = groups.setdefault(str(row["key"]), CostGroup(str(row["key"])))
        group.operations += 1
        if row["unit"] == "bytes":
            group.bytes += int(row["quantity"] or 0)
        elif row["unit"] == "tokens":
            group.tokens += int(row["quantity"] or 0)
        group.usd_micro += int(row["usd_micro"])
        group.neuron += int(row["neuron"])
    return sorted(groups.values(), key=lambda g: g.key)


def monthly_usd_by_service(ledger: Ledger, period: str) -> dict[str, int]:
    rows = ledger.query(
        "SELECT service, SUM(usd_micro) AS usd FROM cost_tracking"
        " WHERE period = ? GROUP BY service",
        (period,),
    )
    return {str(r["service"]): int(r["usd"] or 0) for r in rows}
