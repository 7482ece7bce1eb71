"""`zerog completion`: the script a shell loads, and what it completes from the ledger
(namespace names and live backup ids).

Read when the shell asks (a TAB press), never otherwise, and without
changing anything: the ledger ``ledger_url`` names (the SQLite file or a
PostgreSQL database) is opened read-only (no file created, no migration
run). Any problem (no home or ledger yet, a config that does not parse, an
unreachable server, a locked, damaged or older ledger) gives no values at
all, because completion must never print an error into the user's command
line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from zerog_cli.errors import ZerogError

if TYPE_CHECKING:
    from zerog_cli.ledger.db import LedgerConnection

T = TypeVar("T")

SETUP = {
    "bash": "echo 'eval \"$(zerog completion bash)\"' >> ~/.bashrc",
    "zsh": "echo 'eval \"$(zerog completion zsh)\"' >> ~/.zshrc",
    "fish": "zerog completion fish > ~/.config/fish/completions/zerog.fish",
}
"""How each shell loads the script: the line for its start-up file."""


@dataclass(frozen=True)
class CompletionScript:
    """`zerog completion`: the script for ``shell`` and the line that loads it."""

    shell: str
    setup: str
    script: str

    @classmethod
    def of(cls, shell: str, script: str) -> CompletionScript:
        return cls(shell, SETUP[shell], script)


def namespace_names(profile: str | None) -> list[str]:
    """Every namespace in the ledger that ``profile`` (or the configured one) uses."""
    from zerog_cli.ledger import namespaces

    return _read_ledger(profile, namespaces.names)


def live_backups(profile: str | None) -> list[tuple[int, str]]:
    """``(id, "namespace/name label")`` of every live backup, by id."""
    from zerog_cli.ledger import backups

    return _read_ledger(profile, backups.live_summaries)


def _read_ledger(profile: str | None, query: Callable[[LedgerConnection], list[T]]) -> list[T]:
    """``query``'s rows from the ledger ``ledger_url`` names (SQLite or PostgreSQL), read-only."""
    from zerog_cli.ledger.db import connect
    from zerog_cli.services.context import Context

    try:
        target = Context({"profile": profile}).ledger_target
        if isinstance(target, Path) and not target.is_file():
            return []
        conn = connect(target, read_only=True)
        try:
            return query(conn)
        finally:
            conn.close()
    except (ZerogError, sqlite3.Error, OSError):
        return []
