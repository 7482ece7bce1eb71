"""Scrub secret values from any text before it leaves the process.

Every secret the process reads is registered here (by `infra.secrets`), the
known secrets set in the environment are masked whether read or not, and the
CLI's error printer, log handler and ``--verbose`` traceback pass their text
through `scrub`. Hex keys are registered in the spellings they are
likely to be printed in (with and without ``0x``, either case).
"""

from __future__ import annotations

import os

_MIN_LENGTH = 6
_registered: set[str] = set()

MASK = "***"


def _variants(value: str) -> set[str]:
    variants = {value}
    stripped = value.strip()
    body = stripped[2:] if stripped.lower().startswith("0x") else stripped
    if body and all(c in "0123456789abcdefABCDEF" for c in body):
        for text in (body.lower(), body.upper()):
            variants.update({text, "0x" + text})
    variants.add(stripped)
    return {v for v in variants if len(v) >= _MIN_LENGTH}


def register(value: str) -> None:
    """Remember ``value`` (and its hex spellings) as something never to print."""
    _registered.update(_variants(value))


def _in_environment() -> set[str]:
    """Spellings of the known secrets set in the environment, looked up or not.

    A traceback or a library's message can quote anything the process can
    see, so a secret is masked even in a run that never asked for it.
    """
    from zerog_cli.infra.secrets import KNOWN_SECRETS

    found: set[str] = set()
    for name in KNOWN_SECRETS:
        value = os.environ.get(name)
        if value:
            found |= _variants(value)
    return found


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in sorted(_registered | _in_environment(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text
