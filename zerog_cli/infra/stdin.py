"""Standard input, which cron and systemd may hand a command closed.

A process started with file descriptor 0 closed has ``sys.stdin`` None;
reading it is then an environment failure (exit 10), not a bug.
"""

from __future__ import annotations

import sys
from typing import TextIO

from zerog_cli.errors import EnvironmentFailure


def standard_input(reader: str) -> TextIO:
    """``sys.stdin`` for ``reader`` (what reads it, for the message); exit 10 when closed."""
    if sys.stdin is None:
        raise EnvironmentFailure(
            f"standard input is closed, and {reader} reads from it",
            hint="pipe the data in, or redirect a file with < FILE",
        )
    return sys.stdin


def is_terminal() -> bool:
    """Whether standard input is open and a terminal (someone can answer a prompt)."""
    return sys.stdin is not None and sys.stdin.isatty()
