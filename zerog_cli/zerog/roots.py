"""Parsing 0G roots given by people (flags, arguments, config)."""

from __future__ import annotations

from zerog_cli.errors import UsageError

_HEX = frozenset("0123456789abcdef")


def parse_root(text: str) -> str:
    """A root as ``0x`` + 64 lowercase hex digits, or UsageError (exit 2) saying why."""
    candidate = text.strip().lower()
    if not candidate.startswith("0x"):
        raise UsageError(f"not a 0G root: {text!r} (expected 0x followed by 64 hex digits)")
    body = candidate[2:]
    if len(body) != 64 or not set(body) <= _HEX:
        raise UsageError(
            f"not a 0G root: {text!r} (expected 0x followed by 64 hex digits, got {len(body)})"
        )
    return candidate


def looks_like_root(text: str) -> bool:
    """True when ``text`` is shaped like a root (used to tell a root from NS/NAME)."""
    return text.strip().lower().startswith("0x")
