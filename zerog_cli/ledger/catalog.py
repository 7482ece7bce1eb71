"""``catalog_snapshots``: the ledger snapshots uploaded to 0G, newest pointed at by every
later submission's catalog record; and the ``rebuilt`` marks of `zerog ledger rebuild`."""

from __future__ import annotations

from dataclasses import dataclass

from zerog_cli.ledger.db import LedgerConnection, utc_now


@dataclass(frozen=True)
class LedgerSnapshot:
    tx_seq: int
    network: str
    root: str
    block: int
    taken_at_height: int
    created_at: str


def add_snapshot(
    conn: LedgerConnection,
    *,
    tx_seq: int,
    network: str,
    root: str,
    block: int,
    taken_at_height: int,
    created_at: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO catalog_snapshots (tx_seq, network, root, block, taken_at_height,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (network, tx_seq) DO NOTHING",
        (tx_seq, network, root, block, taken_at_height, created_at or utc_now()),
    )


def latest_snapshot(conn: LedgerConnection, network: str) -> LedgerSnapshot | None:
    row = conn.execute(
        "SELECT tx_seq, network, root, block, taken_at_height, created_at"
        " FROM catalog_snapshots WHERE network = ? ORDER BY tx_seq DESC LIMIT 1",
        (network,),
    ).fetchone()
    return None if row is None else LedgerSnapshot(*row)


def known_tx_seqs(conn: LedgerConnection, network: str) -> set[int]:
    """Tx seqs the ledger already records (objects and their fragments) on ``network``."""
    rows = conn.execute(
        "SELECT tx_seq FROM objects WHERE network = ? AND tx_seq IS NOT NULL"
        " UNION SELECT f.tx_seq FROM object_fragments f JOIN objects o ON o.id = f.object_id"
        " WHERE o.network = ? AND f.tx_seq IS NOT NULL",
        (network, network),
    ).fetchall()
    return {int(row[0]) for row in rows}


_REBUILT_KEYS = {
    "namespaces": "name",
    "objects": "id",
    "storage_backups": "id",
    "cost_tracking": "id",
}


def mark_rebuilt(conn: LedgerConnection, table: str, key: int | str) -> None:
    """Say the row was written by `zerog ledger rebuild` from the chain, not by its command."""
    column = _REBUILT_KEYS[table]
    conn.execute(f"UPDATE {table} SET rebuilt = 1 WHERE {column} = ?", (key,))


def has_records(conn: LedgerConnection) -> bool:
    """Whether the ledger holds anything a rebuild would replace (namespaces, objects, costs)."""
    for table in ("namespaces", "objects", "cost_tracking"):
        if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
            return True
    return False


def set_backup_kind_folder(conn: LedgerConnection, backup_id: int) -> None:
    """A rebuilt folder backup whose index was not found: a folder, members unknown."""
    conn.execute("UPDATE storage_backups SET kind = 'folder' WHERE id = ?", (backup_id,))


def backup_by_object_name(
    conn: LedgerConnection, network: str, namespace: str, name: str
) -> int | None:
    """The backup whose object is ``namespace/name`` (newest version), if any."""
    row = conn.execute(
        "SELECT b.id FROM storage_backups b JOIN objects o ON o.id = b.object_id"
        " WHERE o.network = ? AND o.namespace = ? AND o.name = ? ORDER BY o.version DESC LIMIT 1",
        (network, namespace, name),
    ).fetchone()
    return None if row is None else int(row[0])
