"""``pending_payments``: a journal of signed payments not yet recorded as costs.

A Flow payment is journaled (its transaction hash, what it paid for, who)
after it is signed and before it is broadcast. The transaction that records
the upload clears the journal entry. An entry left behind means the process
died or failed after the money may have moved; `services.payments` settles it
from the chain on a later run, so no payment goes unrecorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zerog_cli.ledger.db import LedgerConnection, dict_rows, utc_now


@dataclass(frozen=True)
class PendingPayment:
    intent: str
    operation: str
    user: str
    namespace: str | None
    root: str
    size: int
    fee_neuron: int
    usd_micro: int
    network: str


def add(
    conn: LedgerConnection, payment: PendingPayment, tx_hash: str, *, pid: int, host: str
) -> None:
    conn.execute(
        "INSERT INTO pending_payments (intent, tx_hash, operation, user, namespace, root, size,"
        " fee_neuron, usd_micro, network, pid, host, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            payment.intent,
            tx_hash,
            payment.operation,
            payment.user,
            payment.namespace,
            payment.root,
            payment.size,
            str(payment.fee_neuron),
            payment.usd_micro,
            payment.network,
            pid,
            host,
            utc_now(),
        ),
    )


def clear(conn: LedgerConnection, intent: str) -> None:
    conn.execute("DELETE FROM pending_payments WHERE intent = ?", (intent,))


def all_pending(conn: LedgerConnection, network: str) -> list[dict[str, Any]]:
    return dict_rows(
        conn, "SELECT * FROM pending_payments WHERE network = ? ORDER BY id", (network,)
    )
