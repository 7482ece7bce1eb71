"""``storage_backups``: one row per backup, with its verification state joined in.

A backup row points at the ``objects`` row its upload recorded and repeats the
facts a restore or a verify checks against (root, size, SHA-256). Data on 0G
is immutable, so a pruned backup is *retired* (``retired_at``,
``retired_reason``), never deleted. Timestamps are ISO 8601 UTC text, so they
sort and compare as text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from zerog_cli.ledger.db import EVERYTHING, LedgerConnection, Page

CONCLUSIVE = ("ok", "mismatch", "missing")
"""Verification statuses that say something about the backup; ``error`` says the
check itself could not finish (network, configuration)."""


@dataclass(frozen=True)
class Backup:
    id: int
    namespace: str
    name: str | None
    label: str | None
    source_path: str
    object_id: int | None
    root: str
    tx_seq: int | None
    size: int
    sha256: str
    encrypted: bool
    network: str
    created_at: str
    retired_at: str | None
    retired_reason: str | None
    last_status: str | None
    last_checked_at: str | None
    last_ok_at: str | None
    last_conclusive_status: str | None
    last_conclusive_at: str | None
    last_conclusive_id: int | None
    """Row id of that verification: orders checks made within the same second."""
    last_full_ok_at: str | None
    """The last OK verification that read the whole file (not a sample of segments)."""
    kind: str
    """``file``, or ``folder`` for a snapshot (a tar of a folder; members in ``backup_members``)."""

    @property
    def failed(self) -> bool:
        """Its latest conclusive verification found it bad (mismatch or missing)."""
        return self.last_conclusive_status in ("mismatch", "missing")

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


_LATEST_ID = (
    "(SELECT v.id FROM verifications v WHERE v.backup_id = b.id{where}"
    " ORDER BY v.checked_at DESC, v.id DESC LIMIT 1)"
)
_CONCLUSIVE_WHERE = f" AND v.status IN ({', '.join(repr(status) for status in CONCLUSIVE)})"

# The latest check and the latest conclusive one are found once each (by id) and
# joined, rather than a subquery per column: a listing of every backup reads
# verifications four times per row instead of seven.
_SELECT = (
    "SELECT b.id, b.namespace, o.name, b.label, b.source_path, b.object_id, b.root, b.tx_seq,"
    " b.size, b.sha256, b.encrypted, b.network, b.created_at, b.retired_at, b.retired_reason,"
    " latest.status AS last_status, latest.checked_at AS last_checked_at,"
    " (SELECT MAX(v.checked_at) FROM verifications v"
    "  WHERE v.backup_id = b.id AND v.status = 'ok') AS last_ok_at,"
    " conclusive.status AS last_conclusive_status,"
    " conclusive.checked_at AS last_conclusive_at, conclusive.id AS last_conclusive_id,"
    " (SELECT MAX(v.checked_at) FROM verifications v"
    "  WHERE v.backup_id = b.id AND v.status = 'ok' AND v.kind = 'full') AS last_full_ok_at,"
    " b.kind"
    " FROM storage_backups b LEFT JOIN objects o ON o.id = b.object_id"
    f" LEFT JOIN verifications latest ON latest.id = {_LATEST_ID.format(where='')}"
    " LEFT JOIN verifications conclusive"
    f" ON conclusive.id = {_LATEST_ID.format(where=_CONCLUSIVE_WHERE)}"
)


def _backup(row: tuple[Any, ...]) -> Backup:
    values = list(row)
    values[10] = bool(values[10])
    return Backup(*values)


def insert(
    conn: LedgerConnection,
    *,
    namespace: str,
    label: str | None,
    source_path: str,
    object_id: int,
    root: str,
    tx_seq: int | None,
    size: int,
    sha256: str,
    encrypted: bool,
    network: str,
    created_at: str,
) -> int:
    cursor = conn.execute(
        "INSERT INTO storage_backups (namespace, label, source_path, object_id, root, tx_seq,"
        " size, sha256, encrypted, network, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            namespace,
            label,
            source_path,
            object_id,
            root,
            tx_seq,
            size,
            sha256,
            int(encrypted),
            network,
            created_at,
        ),
    )
    return int(cursor.lastrowid or 0)


def get(conn: LedgerConnection, backup_id: int) -> Backup | None:
    row = conn.execute(f"{_SELECT} WHERE b.id = ?", (backup_id,)).fetchone()
    return None if row is None else _backup(row)


def live_summaries(conn: LedgerConnection) -> list[tuple[int, str]]:
    """``(id, "namespace/name label")`` of every live backup, by id (for shell completion)."""
    rows = conn.execute(
        "SELECT b.id, b.namespace, o.name, b.label"
        " FROM storage_backups b LEFT JOIN objects o ON o.id = b.object_id"
        " WHERE b.retired_at IS NULL ORDER BY b.id"
    ).fetchall()
    return [
        (int(backup_id), f"{namespace}/{name or '?'} {label or ''}".rstrip())
        for backup_id, namespace, name, label in rows
    ]


@dataclass(frozen=True)
class BackupFilter:
    """Which backups on ``network`` `select`, `select_ids` and `count` read: those
    matching every filter given.

    ``never_ok``: only backups with no OK verification. ``ok_before`` /
    ``full_ok_before``: only those whose last OK verification (full one), or their
    creation if there is none, is older than either time given. ``last_ok_before``:
    only those never verified OK or last verified OK before that time (verify's
    ``--older-than``). ``id_modulo=(t, r)``: only ids that leave remainder ``r``
    divided by ``t`` (verify's ``--subset``).
    """

    network: str
    namespaces: Sequence[str] | None = None
    label: str | None = None
    ids: Sequence[int] | None = None
    include_retired: bool = False
    never_ok: bool = False
    created_before: str | None = None
    ok_before: str | None = None
    full_ok_before: str | None = None
    last_ok_before: str | None = None
    id_modulo: tuple[int, int] | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause over ``storage_backups b``, with its parameters."""
        where = ["b.network = ?"]
        params: list[Any] = [self.network]
        if self.namespaces is not None:
            where.append(f"b.namespace IN ({', '.join('?' for _ in self.namespaces)})")
            params.extend(self.namespaces)
        if self.label is not None:
            where.append("b.label = ?")
            params.append(self.label)
        if self.ids is not None:
            # One JSON parameter, not one per id: a sample of a large ledger can hold more
            # ids than SQLite binds in one statement.
            where.append("b.id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps([int(i) for i in self.ids]))
        if not self.include_retired:
            where.append("b.retired_at IS NULL")
        if self.never_ok:
            where.append(
                "NOT EXISTS (SELECT 1 FROM verifications v"
                " WHERE v.backup_id = b.id AND v.status = 'ok')"
            )
        if self.created_before is not None:
            where.append("b.created_at < ?")
            params.append(self.created_before)
        stale = []
        for before, kind in ((self.ok_before, ""), (self.full_ok_before, " AND v.kind = 'full'")):
            if before is not None:
                stale.append(
                    "COALESCE((SELECT MAX(v.checked_at) FROM verifications v"
                    f" WHERE v.backup_id = b.id AND v.status = 'ok'{kind}), b.created_at) < ?"
                )
                params.append(before)
        if stale:
            where.append(f"({' OR '.join(stale)})")
        if self.last_ok_before is not None:
            where.append(
                "COALESCE((SELECT MAX(v.checked_at) FROM verifications v"
                " WHERE v.backup_id = b.id AND v.status = 'ok'), '') < ?"
            )
            params.append(self.last_ok_before)
        if self.id_modulo is not None:
            where.append("b.id % ? = ?")
            params.extend(self.id_modulo)
        return " AND ".join(where), params


def select(
    conn: LedgerConnection,
    match: BackupFilter,
    *,
    rotation: bool = False,
    page: Page = EVERYTHING,
) -> Iterator[Backup]:
    """Backups that ``match``, oldest first (by time, then id), read from the cursor as
    they are consumed (a listing streams to its output).

    ``rotation``: in verify's order instead, never conclusively checked first, then
    the longest ago (in the order the checks were recorded, as timestamps have
    one-second resolution), then by id.
    """
    where, params = match.where()
    order = _ROTATION if rotation else "b.created_at, b.id"
    window, window_params = page.sql()
    # Ordered outside: PostgreSQL sorts by an output column only when named bare, and the
    # rotation order is made of expressions over them (SQLite flattens this to one query).
    sql = f"SELECT * FROM ({_SELECT} WHERE {where}) AS b ORDER BY {order}{window}"
    return (_backup(row) for row in conn.execute(sql, (*params, *window_params)))


def count(conn: LedgerConnection, match: BackupFilter) -> int:
    """How many backups `select` would return for ``match``."""
    where, params = match.where()
    sql = f"SELECT COUNT(*) FROM storage_backups b WHERE {where}"
    return int(conn.execute(sql, params).fetchone()[0])


def namespaces_with_backups(conn: LedgerConnection, *, network: str) -> list[str]:
    """The namespaces holding a backup on ``network`` (retired ones included), by name."""
    rows = conn.execute(
        "SELECT DISTINCT namespace FROM storage_backups WHERE network = ? ORDER BY namespace",
        (network,),
    )
    return [str(row[0]) for row in rows]


def select_ids(conn: LedgerConnection, match: BackupFilter) -> list[int]:
    """The ids `select` would return for ``match``, by id: a sample is drawn from
    these, so only the rows sampled are read in full."""
    where, params = match.where()
    sql = f"SELECT b.id FROM storage_backups b WHERE {where} ORDER BY b.id"
    return [int(row[0]) for row in conn.execute(sql, params)]


_ROTATION = (
    "last_conclusive_at IS NOT NULL, COALESCE(last_conclusive_at, ''),"
    " COALESCE(last_conclusive_id, 0), b.id"
)


def retire(conn: LedgerConnection, backup_id: int, *, when: str, reason: str) -> bool:
    """Mark a live backup retired; False when it was retired already."""
    cursor = conn.execute(
        "UPDATE storage_backups SET retired_at = ?, retired_reason = ?"
        " WHERE id = ? AND retired_at IS NULL",
        (when, reason, backup_id),
    )
    return cursor.rowcount == 1
