"""``objects``: every item zerog stored, by namespace, name and 0G root."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from zerog_cli.ledger.db import Ledger, utc_now


@dataclass(frozen=True)
class StoredObject:
    id: int
    namespace: str
    name: str
    root: str
    tx_seq: int | None
    size: int
    sha256: str
    network: str
    encrypted: bool
    uploader: str | None
    fee_neuron: int
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "fee_neuron": str(self.fee_neuron)}


_COLUMNS = (
    "id, namespace, name, root, tx_seq, size, sha256, network, encrypted, uploader,"
    " fee_neuron, created_at"
)


def _object(row: tuple[Any, ...]) -> StoredObject:
    values = list(row)
    values[8] = bool(values[8])
    values[10] = int(values[10] or 0)
    return StoredObject(*values)


def insert(
    conn: sqlite3.Connection,
    *,
    namespace: str,
    name: str,
    root: str,
    tx_seq: int | None,
    size: int,
    sha256: str,
    network: str,
    encrypted: bool,
    uploader: str,
    fee_neuron: int,
) -> int:
    cursor = conn.execute(
        "INSERT INTO objects (namespace, name, root, tx_seq, size, sha256, network, encrypted,"
        " uploader, fee_neuron, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            namespace,
            name,
            root,
            tx_seq,
            size,
            sha256,
            network,
            int(encrypted),
            uploader,
            str(fee_neuron),
            utc_now(),
        ),
    )
    return int(cursor.lastrowid or 0)


def by_name(
    conn: sqlite3.Connection, network: str, namespace: str, name: str
) -> StoredObject | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM objects WHERE network = ? AND namespace = ? AND name = ?",
        (network, namespace, name),
    ).fetchone()
    return None if row is None else _object(row)


def by_id(conn: sqlite3.Connection, object_id: int) -> StoredObject | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM objects WHERE id = ?", (object_id,)).fetchone()
    return None if row is None else _object(row)


def by_root(conn: sqlite3.Connection, network: str, root: str) -> list[StoredObject]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM objects WHERE network = ? AND root = ? ORDER BY id",
        (network, root),
    ).fetchall()
    return [_object(row) for row in rows]


def in_namespace(ledger: Ledger, namespace: str) -> list[StoredObject]:
    rows = ledger.conn.execute(
        f"SELECT {_COLUMNS} FROM objects WHERE namespace = ? ORDER BY name", (namespace,)
    ).fetchall()
    return [_object(row) for row in rows]


def count_in_namespace(conn: sqlite3.Connection, namespace: str) -> int:
    return int(
        conn.execute("SELECT COUNT(*) FROM objects WHERE namespace = ?", (namespace,)).fetchone()[0]
    )


def all_objects(ledger: Ledger, network: str | None = None) -> list[StoredObject]:
    if network is None:
        rows = ledger.conn.execute(f"SELECT {_COLUMNS} FROM objects ORDER BY id").fetchall()
    else:
        rows = ledger.conn.execute(
            f"SELECT {_COLUMNS} FROM objects WHERE network = ? ORDER BY id", (network,)
        ).fetchall()
    return [_object(row) for row in rows]
