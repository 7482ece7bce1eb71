"""Replay protection: a (scope, nonce) pair is accepted once, atomically."""

from __future__ import annotations

import sqlite3

from zerog_cli.errors import PermissionDenied
from zerog_cli.ledger.db import Ledger, utc_now


def consume(ledger: Ledger, scope: str, nonce: str, address: str) -> str:
    """Record the nonce; PermissionDenied if this scope has seen it before. Returns seen_at."""
    seen_at = utc_now()
    try:
        with ledger.transaction() as conn:
            conn.execute(
                "INSERT INTO nonces (scope, nonce, address, seen_at) VALUES (?, ?, ?, ?)",
                (scope, nonce, address, seen_at),
            )
    except sqlite3.IntegrityError:
        previous = ledger.query_one(
            "SELECT address, seen_at FROM nonces WHERE scope = ? AND nonce = ?", (scope, nonce)
        )
        when = previous["seen_at"] if previous else "earlier"
        raise PermissionDenied(
            f"nonce {nonce!r} was already used in scope {scope!r} ({when}): replay refused"
        ) from None
    return seen_at
