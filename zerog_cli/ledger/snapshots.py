"""``backup_members`` and the snapshot columns of ``storage_backups``.

A folder backup (``kind = 'folder'``) is one tar object; its members (path,
kind, size, mode, mtime, SHA-256, offset of the data in the plaintext tar
stream, link target) are kept here, in the order of the archive, and in an
index object on 0G (``index_object_id``) for when only the network is left.
A backup in the official directory format (``kind = '0g-dir'``) is a metadata
object plus one object per file; its members are kept the same way, without
offsets (each file's roots are in the metadata object).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from zerog_cli.ledger.db import LedgerConnection

COLUMNS = ("path", "kind", "size", "mode", "mtime", "sha256", "offset", "link")


def record(
    conn: LedgerConnection,
    backup_id: int,
    members: Sequence[dict[str, Any]],
    *,
    index_object_id: int | None,
    skipped: dict[str, int],
    kind: str = "folder",
) -> None:
    """Mark ``backup_id`` a folder backup of ``kind`` (``folder``: a tar snapshot;
    ``0g-dir``: the official directory format) and store its members, in order."""
    conn.execute(
        "UPDATE storage_backups SET kind = ?, index_object_id = ?, skipped = ? WHERE id = ?",
        (kind, index_object_id, json.dumps(skipped, sort_keys=True), backup_id),
    )
    conn.executemany(
        "INSERT INTO backup_members (backup_id, position, path, kind, size, mode, mtime, sha256,"
        ' "offset", link) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
            (backup_id, position, *(member[column] for column in COLUMNS))
            for position, member in enumerate(members)
        ],
    )


def set_index(conn: LedgerConnection, backup_id: int, index_object_id: int) -> None:
    conn.execute(
        "UPDATE storage_backups SET index_object_id = ? WHERE id = ?", (index_object_id, backup_id)
    )


def kind(conn: LedgerConnection, backup_id: int) -> tuple[str, int | None, dict[str, int]]:
    """(kind, index object id, skipped counts by kind) of one backup."""
    row = conn.execute(
        "SELECT kind, index_object_id, skipped FROM storage_backups WHERE id = ?", (backup_id,)
    ).fetchone()
    if row is None:
        return "file", None, {}
    return str(row[0]), row[1], json.loads(row[2] or "{}")


def members(conn: LedgerConnection, backup_id: int) -> list[dict[str, Any]]:
    cursor = conn.execute(
        'SELECT path, kind, size, mode, mtime, sha256, "offset", link FROM backup_members'
        " WHERE backup_id = ? ORDER BY position",
        (backup_id,),
    )
    return [dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def member(conn: LedgerConnection, backup_id: int, path: str) -> dict[str, Any] | None:
    row = conn.execute(
        'SELECT path, kind, size, mode, mtime, sha256, "offset", link FROM backup_members'
        " WHERE backup_id = ? AND path = ?",
        (backup_id, path),
    ).fetchone()
    return None if row is None else dict(zip(COLUMNS, row, strict=True))
