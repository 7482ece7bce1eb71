"""What the shell completes from the ledger: namespace names and live backup ids.

Read when the shell asks (a TAB press), never otherwise, and without
changing anything: the ledger is opened read-only (no file created, no
migration run). Any problem (no home or ledger yet, a config that does not
parse, a locked, damaged or older ledger) gives no values at all, because
completion must never print an error into the user's command line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from zerog_cli.errors import ZerogError

T = TypeVar("T")


def namespace_names(profile: str | None) -> list[str]:
    """Every namespace in the ledger that ``profile`` (or the configured one) uses."""
    from zerog_cli.ledger import namespaces

    return _read_ledger(profile, namespaces.names)


def live_backups(profile: str | None) -> list[tuple[int, str]]:
    """``(id, "namespace/name label")`` of every live backup, by id."""
    from zerog_cli.ledger import backups

    return _read_ledger(profile, backups.live_summaries)


def _read_ledger(profile: str | None, query: Callable[[sqlite3.Connection], list[T]]) -> list[T]:
    from zerog_cli.infra.config import load_settings
    from zerog_cli.ledger.db import connect

    try:
        path = load_settings({"profile": profile}).ledger_file
        if not path.is_file():
            return []
        conn = connect(path, read_only=True)
        try:
            return query(conn)
        finally:
            conn.close()
    except (ZerogError, sqlite3.Error, OSError):
        return []
