"""Ledger and service code takes its connection as `ledger.db.LedgerConnection`, so mypy
checks every call made on it against what both backends answer (a ``sqlite3.Connection``
and a `PgConnection`). An annotation of ``sqlite3.Connection`` would let a SQLite-only
call through on PostgreSQL, and a ``cast`` to a connection type would hide the mismatch:
both are refused here, except where a module branches on the backend (``isinstance``)."""

from __future__ import annotations

import ast
from pathlib import Path

import zerog_cli

PACKAGE = Path(zerog_cli.__file__).parent
CONNECTION_TYPES = ("sqlite3.Connection", "PgConnection")
BACKEND_MODULES = {"ledger/db.py", "ledger/postgres.py"}
"""Where connections are made: they name each backend's own type."""


def connection_type_misuse(relative: str, source: str) -> list[str]:
    """Each annotation naming ``sqlite3.Connection`` outside the backend modules, and each
    ``cast`` to a connection type anywhere, as ``path:line: text``."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            text = ast.unparse(node.annotation)
            if "sqlite3.Connection" in text and relative not in BACKEND_MODULES:
                problems.append(f"{relative}:{node.lineno}: annotated {text}")
        elif isinstance(node, ast.FunctionDef) and node.returns is not None:
            text = ast.unparse(node.returns)
            if "sqlite3.Connection" in text and relative not in BACKEND_MODULES:
                problems.append(f"{relative}:{node.lineno}: returns {text}")
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) in ("cast", "typing.cast")
            and node.args
            and any(name in ast.unparse(node.args[0]) for name in CONNECTION_TYPES)
        ):
            problems.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
    return problems


def test_ledger_and_services_take_a_ledger_connection() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        problems += connection_type_misuse(relative, path.read_text(encoding="utf-8"))
    assert problems == [], "use ledger.db.LedgerConnection:\n" + "\n".join(problems)


def test_a_sqlite_annotation_and_a_cast_are_caught() -> None:
    source = (
        "import sqlite3\n"
        "from typing import cast\n"
        "def get(conn: sqlite3.Connection, user: str) -> None: ...\n"
        "def wrap(conn) -> sqlite3.Connection:\n"
        "    return cast(sqlite3.Connection, conn)\n"
        "def pg(writing):\n"
        "    return cast(PgConnection, writing)\n"
    )
    problems = connection_type_misuse("ledger/quotas.py", source)
    assert sorted(problem.split(": ", 1)[0] for problem in problems) == [
        "ledger/quotas.py:3",
        "ledger/quotas.py:4",
        "ledger/quotas.py:5",
        "ledger/quotas.py:7",
    ]


def test_the_backend_modules_name_their_own_connection() -> None:
    source = "import sqlite3\ndef _connect(path) -> sqlite3.Connection: ...\n"
    assert connection_type_misuse("ledger/db.py", source) == []
    assert connection_type_misuse("services/rebuild.py", source) != []
