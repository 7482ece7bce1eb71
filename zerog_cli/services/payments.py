"""Settle payments a dead or failed process journaled but never recorded.

For each journal entry whose process is gone (on this host) the chain says
what happened: a mined, successful transaction is recorded as the cost it
was (cost row, the user's storage and monthly USD usage); a transaction the
chain does not know after `wait_timeout` was never broadcast or was dropped,
and its entry is discarded. Entries of live processes are left alone.
"""

from __future__ import annotations

import logging
import socket
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from zerog_cli.infra.processes import pid_alive
from zerog_cli.ledger import costs, payments, quotas
from zerog_cli.services.context import Context
from zerog_cli.services.quotas import current_period, ensure_user

if TYPE_CHECKING:
    from zerog_cli.zerog.evm import EvmClient

log = logging.getLogger("zerog.payments")


def _abandoned(rows: list[dict[str, Any]]) -> bool:
    host = socket.gethostname()
    return all(row["host"] != host or not pid_alive(int(row["pid"])) for row in rows)


def _age_seconds(row: dict[str, Any], now: datetime) -> float:
    created = datetime.fromisoformat(str(row["created_at"]).replace("Z", "+00:00"))
    return (now - created).total_seconds()


def settle_abandoned(context: Context, evm: EvmClient) -> list[dict[str, Any]]:
    """Record or discard journal entries left by processes that are gone; returns what it did."""
    network = context.settings.profile
    by_intent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in payments.all_pending(context.ledger, network):
        by_intent[row["intent"]].append(row)
    done = []
    for intent, rows in by_intent.items():
        if not _abandoned(rows):
            continue
        mined = next((row for row in rows if _paid(evm, row["tx_hash"])), None)
        if mined is None:
            if min(_age_seconds(row, context.now()) for row in rows) < float(
                context.settings.wait_timeout
            ):
                continue
            with context.ledger.transaction() as conn:
                payments.clear(conn, intent)
            done.append({"intent": intent, "outcome": "never mined", "root": rows[0]["root"]})
            continue
        _record(context, mined)
        done.append(
            {
                "intent": intent,
                "outcome": "recorded",
                "root": mined["root"],
                "tx_hash": mined["tx_hash"],
            }
        )
        log.warning(
            "recorded payment %s for %s (%s neuron), left unrecorded by a process that died",
            mined["tx_hash"],
            mined["root"],
            mined["fee_neuron"],
        )
    return done


def _paid(evm: EvmClient, tx_hash: str) -> bool:
    receipt = evm.receipt(tx_hash)
    return receipt is not None and receipt.status == 1


def _record(context: Context, row: dict[str, Any]) -> None:
    with context.ledger.transaction() as conn:
        ensure_user(conn, context, row["user"])
        quotas.add_usage(
            conn, row["user"], storage_bytes=int(row["size"]), usd_micro=int(row["usd_micro"])
        )
        costs.record(
            conn,
            costs.CostEntry(
                period=current_period(context),
                user=row["user"],
                namespace=row["namespace"],
                service="storage",
                operation=row["operation"],
                quantity=int(row["size"]),
                unit="bytes",
                usd_micro=int(row["usd_micro"]),
                neuron=int(row["fee_neuron"]),
                reference=row["root"],
                network=row["network"],
            ),
        )
        payments.clear(conn, row["intent"])
