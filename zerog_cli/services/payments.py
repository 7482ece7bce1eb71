"""Settle payments a dead or failed process journaled but never recorded.

For each journal entry whose process is gone (on this host) the chain says
what happened. A mined, successful payment for the file the caller is
uploading right now is handed back (adopted): the caller records it with the
object it paid for, in one transaction, so object and cost pair up. Any other
mined payment is recorded as the cost it was (cost row, the user's storage
and monthly USD usage). A transaction the chain does not know after
`wait_timeout` was never broadcast or was dropped; its entry is discarded.
Entries of live processes are left alone.
"""

from __future__ import annotations

import logging
import socket
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from zerog_cli.infra.processes import pid_alive
from zerog_cli.ledger import costs, payments, quotas
from zerog_cli.ledger.db import parse_time
from zerog_cli.services.context import Context
from zerog_cli.services.quotas import current_period, ensure_user

if TYPE_CHECKING:
    from zerog_cli.zerog.evm import EvmClient

log = logging.getLogger("zerog.payments")


def _abandoned(rows: list[dict[str, Any]]) -> bool:
    host = socket.gethostname()
    return all(row["host"] != host or not pid_alive(int(row["pid"])) for row in rows)


def _age_seconds(row: dict[str, Any], now: datetime) -> float:
    return (now - parse_time(str(row["created_at"]))).total_seconds()


def settle_abandoned_for(
    context: Context, evm: EvmClient, *, adopt_roots: Collection[str], user: str
) -> dict[str, dict[str, Any]]:
    """Record or discard what dead processes journaled; return the payments to adopt.

    Returns, by root, the mined payment by ``user`` for each of ``adopt_roots``
    that a dead process left unrecorded: one per root at most.
    """
    network = context.settings.profile
    wanted = set(adopt_roots)
    by_intent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in payments.all_pending(context.ledger.conn, network):
        by_intent[row["intent"]].append(row)
    adopted: dict[str, dict[str, Any]] = {}
    for intent, rows in by_intent.items():
        if not _abandoned(rows):
            continue
        mined = next((row for row in rows if _paid(evm, row["tx_hash"])), None)
        if mined is None:
            youngest = min(_age_seconds(row, context.now()) for row in rows)
            if youngest >= context.settings.wait_timeout:
                with context.ledger.transaction() as conn:
                    payments.clear(conn, intent)
            continue
        log.warning(
            "payment %s for %s (%s neuron) was left unrecorded by a process that died;"
            " recording it now",
            mined["tx_hash"],
            mined["root"],
            mined["fee_neuron"],
        )
        if mined["root"] in wanted and mined["root"] not in adopted and mined["user"] == user:
            adopted[mined["root"]] = mined
        else:
            _record(context, mined)
    return adopted


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
