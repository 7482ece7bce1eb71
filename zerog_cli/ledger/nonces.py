"""Replay protection: a (scope, nonce) pair is accepted once, atomically."""

from __future__ import annotations

from zerog_cli.errors import PermissionDenied
from zerog_cli.ledger.db import LedgerConnection, utc_now


def consume(conn: LedgerConnection, scope: str, nonce: str, address: str) -> str:
    """Inside the caller's transaction: record the nonce, or PermissionDenied if this scope
    has seen it before. Returns seen_at."""
    seen_at = utc_now()
    inserted = conn.execute(
        "INSERT INTO nonces (scope, nonce, address, seen_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (scope, nonce) DO NOTHING",
        (scope, nonce, address, seen_at),
    )
    if inserted.rowcount == 1:
        return seen_at
    previous = conn.execute(
        "SELECT seen_at FROM nonces WHERE scope = ? AND nonce = ?", (scope, nonce)
    ).fetchone()
    when = previous[0] if previous else "earlier"
    raise PermissionDenied(
        f"nonce {nonce!r} was already used in scope {scope!r} ({when}): replay refused"
    )
