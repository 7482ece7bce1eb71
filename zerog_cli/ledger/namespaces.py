"""``namespaces`` and ``namespace_acl``: records, roles and namespace usage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from zerog_cli.ledger.db import LedgerConnection, utc_now


@dataclass(frozen=True)
class Namespace:
    name: str
    owner: str
    quota_bytes: int | None
    used_bytes: int
    max_object_bytes: int | None
    encrypt_by_default: bool
    metadata: dict[str, str]
    created_at: str


_COLUMNS = (
    "name, owner, quota_bytes, used_bytes, max_object_bytes, encrypt_by_default,"
    " metadata, created_at"
)


def _namespace(row: tuple[Any, ...]) -> Namespace:
    name, owner, quota, used, max_object, encrypt, metadata, created = row
    return Namespace(
        name, owner, quota, used, max_object, bool(encrypt), json.loads(metadata), created
    )


def get(conn: LedgerConnection, name: str) -> Namespace | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM namespaces WHERE name = ?", (name,)).fetchone()
    return None if row is None else _namespace(row)


def insert(conn: LedgerConnection, namespace: Namespace) -> None:
    conn.execute(
        f"INSERT INTO namespaces ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            namespace.name,
            namespace.owner,
            namespace.quota_bytes,
            namespace.used_bytes,
            namespace.max_object_bytes,
            int(namespace.encrypt_by_default),
            json.dumps(namespace.metadata, sort_keys=True),
            namespace.created_at,
        ),
    )


def list_all(conn: LedgerConnection) -> list[tuple[Namespace, int]]:
    """Every namespace with its object count."""
    rows = conn.execute(
        f"SELECT {', '.join('n.' + c.strip() for c in _COLUMNS.split(','))},"
        " (SELECT COUNT(*) FROM objects o WHERE o.namespace = n.name)"
        " FROM namespaces n ORDER BY n.name"
    ).fetchall()
    return [(_namespace(row[:-1]), int(row[-1])) for row in rows]


def names(conn: LedgerConnection) -> list[str]:
    """Every namespace's name, sorted (for shell completion)."""
    return [str(row[0]) for row in conn.execute("SELECT name FROM namespaces ORDER BY name")]


def role_of(conn: LedgerConnection, namespace: Namespace, user: str) -> str | None:
    """'owner', the granted role ('admin', 'write', 'read'), or None."""
    if namespace.owner == user:
        return "owner"
    row = conn.execute(
        "SELECT role FROM namespace_acl WHERE namespace = ? AND user = ?", (namespace.name, user)
    ).fetchone()
    return None if row is None else str(row[0])


def acl(conn: LedgerConnection, name: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT user, role, granted_by, granted_at FROM namespace_acl"
        " WHERE namespace = ? ORDER BY user",
        (name,),
    ).fetchall()
    return [
        dict(zip(("user", "role", "granted_by", "granted_at"), row, strict=True)) for row in rows
    ]


def grant(conn: LedgerConnection, name: str, user: str, role: str, by: str) -> None:
    conn.execute(
        "INSERT INTO namespace_acl (namespace, user, role, granted_by, granted_at)"
        " VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (namespace, user) DO UPDATE SET role = excluded.role,"
        " granted_by = excluded.granted_by, granted_at = excluded.granted_at",
        (name, user, role, by, utc_now()),
    )


def revoke(conn: LedgerConnection, name: str, user: str) -> bool:
    cursor = conn.execute(
        "DELETE FROM namespace_acl WHERE namespace = ? AND user = ?", (name, user)
    )
    return cursor.rowcount > 0


def add_used_bytes(conn: LedgerConnection, name: str, delta: int) -> None:
    conn.execute("UPDATE namespaces SET used_bytes = used_bytes + ? WHERE name = ?", (delta, name))


def delete(conn: LedgerConnection, name: str) -> dict[str, int]:
    """Remove the namespace and every record in it; returns how many rows of each went."""
    backups = conn.execute("SELECT id FROM storage_backups WHERE namespace = ?", (name,)).fetchall()
    backup_ids = [(row[0],) for row in backups]
    verifications = 0
    for (backup_id,) in backup_ids:
        verifications += conn.execute(
            "DELETE FROM verifications WHERE backup_id = ?", (backup_id,)
        ).rowcount
        conn.execute("DELETE FROM backup_members WHERE backup_id = ?", (backup_id,))
    removed = {
        "verifications": verifications,
        "backups": conn.execute(
            "DELETE FROM storage_backups WHERE namespace = ?", (name,)
        ).rowcount,
        "fragments": conn.execute(
            "DELETE FROM object_fragments WHERE object_id IN"
            " (SELECT id FROM objects WHERE namespace = ?)",
            (name,),
        ).rowcount,
        "objects": conn.execute("DELETE FROM objects WHERE namespace = ?", (name,)).rowcount,
        "grants": conn.execute("DELETE FROM namespace_acl WHERE namespace = ?", (name,)).rowcount,
    }
    conn.execute("DELETE FROM namespaces WHERE name = ?", (name,))
    return removed
