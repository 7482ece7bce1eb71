"""``cost_tracking`` rows and the sums behind `zerog quota report`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from zerog_cli.ledger.db import LedgerConnection, utc_now

GROUP_COLUMNS = {
    "user": "user",
    "ns": "namespace",
    "service": "service",
    "backend": "backend",
    "model": "model",
    "provider": "provider",
}
"""``--by`` name → column of ``cost_rollup`` (NULL is stored there as ``-``)."""


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


def record(conn: LedgerConnection, entry: CostEntry) -> int:
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


def report(conn: LedgerConnection, period: str, group_by: str) -> Iterator[CostGroup]:
    """Totals for one period grouped by ``group_by`` (a key of GROUP_COLUMNS), in key order.

    Read from ``cost_rollup``, which triggers on ``cost_tracking`` keep (migration 9),
    so rows inserted by any tool are counted and the report never reads the rows
    themselves. Neuron is summed in three nine-digit parts that SQLite's INTEGER
    holds; the parts are joined here into an exact Python int. Rows are yielded
    as SQLite produces them.
    """
    column = GROUP_COLUMNS[group_by]
    cursor = conn.execute(
        f"SELECT {column}, SUM(operations), SUM(bytes), SUM(tokens), SUM(usd_micro),"
        " SUM(neuron_units), SUM(neuron_billions), SUM(neuron_quintillions)"
        f" FROM cost_rollup WHERE period = ? GROUP BY {column} ORDER BY {column}",
        (period,),
    )
    for key, operations, size, tokens, usd, units, billions, quintillions in cursor:
        yield CostGroup(
            str(key),
            operations=int(operations),
            bytes=int(size),
            tokens=int(tokens),
            usd_micro=int(usd),
            neuron=int(units) + int(billions) * 10**9 + int(quintillions) * 10**18,
        )


def monthly_usd_by_service(conn: LedgerConnection, period: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT service, SUM(usd_micro) FROM cost_rollup WHERE period = ? GROUP BY service",
        (period,),
    )
    return {str(service): int(usd or 0) for service, usd in rows}
