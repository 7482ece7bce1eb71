"""The security suite's attack log: every test records what it tried and whether it held.

A test wraps each attack in ``with attack("kind", "what was tried"):``. The
block runs the attack from a real command line and asserts the refusal and
that nothing was lost or created; if the block finishes, the attack held, and
if an assertion (or anything else) escapes it, the attack did not hold and the
test fails. The terminal summary prints a "security figures" table: attacks
tried and held, per kind, and the name of every attack that did not hold.

Adding an attack is one ``with`` block in any test under ``tests/security/``:

    def test_something(zerog, attack):
        with attack("ledger sql", "ATTACH through a comment"):
            result = zerog("ledger", "sql", "ATTACH/**/'x.db' AS x")
            assert result.exit_code == 2
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pytest


@dataclass
class Attack:
    kind: str
    name: str
    test: str
    held: bool | None = None


ATTACKS: list[Attack] = []

AttackContext = Callable[[str, str], AbstractContextManager[Attack]]


@pytest.fixture
def attack(request: pytest.FixtureRequest) -> AttackContext:
    """``with attack(kind, name):`` records one attack; it held when the block completes."""

    @contextlib.contextmanager
    def record(kind: str, name: str) -> Iterator[Attack]:
        entry = Attack(kind, name, request.node.nodeid)
        ATTACKS.append(entry)
        try:
            yield entry
        except BaseException:
            entry.held = False
            raise
        entry.held = True

    return record


def figure_rows(attacks: list[Attack]) -> list[tuple[str, int, int]]:
    """(kind, tried, held) per kind in order of first appearance, then the total."""
    kinds: dict[str, list[Attack]] = {}
    for entry in attacks:
        kinds.setdefault(entry.kind, []).append(entry)
    rows = [(kind, len(group), sum(e.held is True for e in group)) for kind, group in kinds.items()]
    rows.append(("all", len(attacks), sum(e.held is True for e in attacks)))
    return rows


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ATTACKS:
        return
    terminalreporter.section("security figures")
    rows = figure_rows(ATTACKS)
    width = max(len("kind"), *(len(kind) for kind, _, _ in rows))
    terminalreporter.write_line(f"{'kind':<{width}}  {'tried':>5}  {'held':>5}")
    for kind, tried, held in rows:
        terminalreporter.write_line(f"{kind:<{width}}  {tried:>5}  {held:>5}")
    for entry in ATTACKS:
        if entry.held is not True:
            terminalreporter.write_line(f"NOT HELD: {entry.kind}: {entry.name} ({entry.test})")
