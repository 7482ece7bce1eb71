"""`zerog ledger backup --to-0g`: an encrypted snapshot of the ledger, as a backup on 0G.

The snapshot is a consistent copy of the ledger (SQLite's backup API),
uploaded as a backup labelled ``ledger`` in the reserved namespace
``zerog.ledger``, encrypted (0G encryption v1) with a key derived from
``CATALOG_KEY`` or ``ENCRYPTION_KEY`` (`services.catalog.CatalogSecret.snapshot_key`).
Its catalog record carries the chain height the copy was taken at; the
snapshot is listed in ``catalog_snapshots``, and every later submission's record
points at it. `zerog ledger rebuild --from-chain` restores the newest snapshot
(quotas, ACLs, verifications, nonces) and replays only what came after it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from zerog_cli.errors import ConfigError
from zerog_cli.infra.output import copied_fields
from zerog_cli.ledger import admin, objects
from zerog_cli.ledger import catalog as catalog_rows
from zerog_cli.services import namespaces
from zerog_cli.services.backups import BackupCreated
from zerog_cli.services.catalog import LEDGER_NAMESPACE, catalog_secret
from zerog_cli.services.context import Context
from zerog_cli.services.upload import UploadReport

LABEL = "ledger"


@dataclass
class LedgerSnapshot(BackupCreated):
    """`ledger backup --to-0g`: the snapshot's backup, the block height it was taken at,
    and whether later submissions' catalog records now point at it."""

    taken_at_height: int = 0
    pointer: bool = False


def upload_snapshot(context: Context) -> LedgerSnapshot:
    """Copy the ledger, upload the copy encrypted, record it; returns the backup's report."""
    from zerog_cli.services.backups import BackupRecord, object_name
    from zerog_cli.services.network import storage_network
    from zerog_cli.services.upload import CatalogFacts, UploadRequest, upload

    secret = catalog_secret(context)
    if secret is None:
        raise ConfigError(
            "a ledger snapshot on 0G is encrypted with a key derived from CATALOG_KEY or"
            " ENCRYPTION_KEY, and neither is set",
            hint="export CATALOG_KEY_FILE=/path/to/key (32 bytes, hex), and keep that key off"
            " this host",
        )
    if namespaces.find(context, LEDGER_NAMESPACE) is None:
        namespaces.create(context, LEDGER_NAMESPACE, owner=context.acting_user, reserved=True)
    height = storage_network(context).evm.block_number()
    moment = context.now()
    network = context.settings.profile
    conn = context.ledger.conn
    name = object_name(
        LABEL,
        "ledger.db",
        moment,
        lambda candidate: objects.by_name(conn, network, LEDGER_NAMESPACE, candidate) is not None,
    )

    record = BackupRecord(LABEL, str(context.ledger.path), network, moment)

    with tempfile.TemporaryDirectory(prefix="zerog-ledger-snapshot-") as folder:
        copy = Path(folder) / "ledger.db"
        admin.backup(context.ledger, copy)
        os.chmod(copy, 0o600)
        report = upload(
            context,
            UploadRequest(
                path=copy,
                namespace=LEDGER_NAMESPACE,
                name=name,
                encrypt=True,
                key=secret.snapshot_key(),
                operation="backup",
                catalog=CatalogFacts(
                    backup_label=LABEL, backup_time=moment, ledger_snapshot_height=height
                ),
                also_record=record,
            ),
        )
    pointer = _record_pointer(context, report, height)
    return copied_fields(
        LedgerSnapshot,
        record.created(report),
        taken_at_height=height,
        pointer=pointer,
    )


def _record_pointer(context: Context, report: UploadReport, height: int) -> bool:
    """List the snapshot in ``catalog_snapshots`` so later submissions point at it.

    A snapshot found already on the network (same bytes, no new submission) has
    no transaction of its own to point at: the earlier pointer stays."""
    from zerog_cli.services.network import storage_network

    tx_hash = report.tx_hash
    if not tx_hash or report.deduped:
        return False
    receipt = storage_network(context).evm.receipt(str(tx_hash))
    if receipt is None:
        return False
    with context.ledger.transaction() as conn:
        catalog_rows.add_snapshot(
            conn,
            tx_seq=int(report.tx_seq or 0),
            network=context.settings.profile,
            root=report.root,
            block=receipt.block_number,
            taken_at_height=height,
        )
    return True
