"""``objects``: every item zerog stored, by namespace, name and 0G root."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from zerog_cli.ledger.db import EVERYTHING, LedgerConnection, Page, utc_now


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
    version: int = 1
    """1 for the first upload of a name; each `upload --replace` adds the next one."""
    fee_usd_micro: int | None = None
    """The micro-USD its upload paid (its cost row's); None when the ledger holds no price
    for it (a row written without one, by plain SQL or another tool)."""

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "fee_neuron": str(self.fee_neuron)}


_COLUMNS = (
    "id, namespace, name, root, tx_seq, size, sha256, network, encrypted, uploader,"
    " fee_neuron, created_at, version, fee_usd_micro"
)
_NEWEST = (
    "version = (SELECT MAX(newer.version) FROM objects AS newer"
    " WHERE newer.network = objects.network AND newer.namespace = objects.namespace"
    " AND newer.name = objects.name)"
)
"""The condition that keeps only the current (newest) version of each name."""


def _object(row: tuple[Any, ...]) -> StoredObject:
    values = list(row)
    values[8] = bool(values[8])
    values[10] = int(values[10] or 0)
    return StoredObject(*values)


def insert(
    conn: LedgerConnection,
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
    fee_usd_micro: int,
    version: int | None = None,
    created_at: str | None = None,
    rebuilt: bool = False,
) -> int:
    """Record an object as ``version`` of its name (default: the next one, 1 for a new
    name), created now unless ``created_at`` says when; ``fee_usd_micro``: the micro-USD of
    the cost row its upload records; ``rebuilt``: read back from the chain's catalog, not
    uploaded from here. Returns its id."""
    if version is None:
        version = 1 + int(
            conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM objects"
                " WHERE network = ? AND namespace = ? AND name = ?",
                (network, namespace, name),
            ).fetchone()[0]
        )
    cursor = conn.execute(
        "INSERT INTO objects (namespace, name, root, tx_seq, size, sha256, network, encrypted,"
        " uploader, fee_neuron, fee_usd_micro, created_at, version, rebuilt)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            fee_usd_micro,
            created_at or utc_now(),
            version,
            int(rebuilt),
        ),
    )
    return int(cursor.lastrowid or 0)


@dataclass(frozen=True)
class Fragment:
    """One Flow submission of a file split at ``fragment_size``: bytes [offset, offset+size)
    of the stored stream (ciphertext with its header when encrypted)."""

    position: int
    root: str
    tx_seq: int | None
    offset: int
    size: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def add_fragments(conn: LedgerConnection, object_id: int, fragments: list[Fragment]) -> None:
    conn.executemany(
        'INSERT INTO object_fragments (object_id, position, root, tx_seq, "offset", size)'
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(object_id, f.position, f.root, f.tx_seq, f.offset, f.size) for f in fragments],
    )


def fragments_of(conn: LedgerConnection, object_id: int) -> list[Fragment]:
    """The object's fragments in order; empty for an object stored as one submission."""
    rows = conn.execute(
        'SELECT position, root, tx_seq, "offset", size FROM object_fragments'
        " WHERE object_id = ? ORDER BY position",
        (object_id,),
    ).fetchall()
    return [Fragment(*row) for row in rows]


def by_name(
    conn: LedgerConnection, network: str, namespace: str, name: str, version: int | None = None
) -> StoredObject | None:
    """The current (newest) version of a name, or ``version`` of it."""
    if version is None:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM objects WHERE network = ? AND namespace = ? AND name = ?"
            " ORDER BY version DESC LIMIT 1",
            (network, namespace, name),
        ).fetchone()
    else:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM objects WHERE network = ? AND namespace = ? AND name = ?"
            " AND version = ?",
            (network, namespace, name, version),
        ).fetchone()
    return None if row is None else _object(row)


def by_id(conn: LedgerConnection, object_id: int) -> StoredObject | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM objects WHERE id = ?", (object_id,)).fetchone()
    return None if row is None else _object(row)


def by_root(conn: LedgerConnection, network: str, root: str) -> list[StoredObject]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM objects WHERE network = ? AND root = ? ORDER BY id",
        (network, root),
    ).fetchall()
    return [_object(row) for row in rows]


def in_namespace(
    conn: LedgerConnection, namespace: str, *, versions: bool = False, page: Page = EVERYTHING
) -> Iterator[StoredObject]:
    """The current version of each name by name; every version (oldest first) with
    ``versions``; ``page`` of them, as SQLite yields them."""
    newest = "" if versions else f" AND {_NEWEST}"
    window, window_params = page.sql()
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM objects WHERE namespace = ?{newest}"
        f" ORDER BY name, version, id{window}",
        (namespace, *window_params),
    )
    return (_object(row) for row in rows)


def count_in_namespace(conn: LedgerConnection, namespace: str, *, newest_only: bool = False) -> int:
    """Objects recorded in ``namespace``: every version, or one per name with ``newest_only``."""
    newest = f" AND {_NEWEST}" if newest_only else ""
    sql = f"SELECT COUNT(*) FROM objects WHERE namespace = ?{newest}"
    return int(conn.execute(sql, (namespace,)).fetchone()[0])
