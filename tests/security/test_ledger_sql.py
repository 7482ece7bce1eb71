"""Item 12: `ledger sql` is read-only by SQLite's authorizer, and opens only the ledger.

Each attack is a statement that got past the old keyword filter (or would get
past any keyword filter); it must exit 2 with one ``error:`` line, create no
file anywhere under the test's folder, and leave the ledger as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.security.conftest import AttackContext


def files_under(folder: Path) -> set[Path]:
    """Every path under ``folder`` but the ledger's WAL and shared-memory files, which
    SQLite creates and removes as connections come and go."""
    return {p for p in folder.rglob("*") if not p.name.endswith(("-wal", "-shm"))}


def ledger_fingerprint(home: Path) -> tuple[object, ...]:
    conn = sqlite3.connect(f"file:{home / 'ledger.db'}?mode=ro", uri=True)
    try:
        return (
            conn.execute("PRAGMA user_version").fetchone(),
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone(),
            conn.execute("SELECT * FROM nonces ORDER BY scope, nonce").fetchall(),
            conn.execute("SELECT * FROM namespaces ORDER BY name").fetchall(),
        )
    finally:
        conn.close()


ESCAPES = [
    ("ATTACH with no spaces", "ATTACH'{target}'AS x"),
    ("ATTACH after an empty statement", "; ATTACH '{target}' AS x"),
    ("ATTACH after a comment", "/* read */ ATTACH DATABASE '{target}' AS x"),
    ("VACUUM INTO through a comment", "VACUUM/**/INTO '{target}'"),
    ("VACUUM INTO a file: URI", "VACUUM INTO 'file:{target}?mode=rwc'"),
    ("DELETE inside a CTE", "WITH gone AS (SELECT 1) DELETE FROM nonces"),
    ("INSERT after a comment", "-- just a look\nINSERT INTO nonces VALUES ('s', 'n', 'a', 't')"),
    ("REPLACE INTO", "REPLACE INTO namespaces (name, owner) VALUES ('x', 'y')"),
    ("PRAGMA that sets", "PRAGMA user_version = 99"),
    ("PRAGMA journal_mode change", "PRAGMA journal_mode = DELETE"),
    ("PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint(TRUNCATE)"),
    ("CREATE TEMP TABLE", "CREATE TEMP TABLE t AS SELECT * FROM nonces"),
    ("CREATE TEMP TRIGGER", "CREATE TEMP TRIGGER t AFTER INSERT ON nonces BEGIN SELECT 1; END"),
    ("BEGIN IMMEDIATE", "BEGIN IMMEDIATE"),
    ("ANALYZE", "ANALYZE"),
]


@pytest.mark.parametrize(("name", "statement"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_ledger_sql_refuses_everything_but_reads(
    zerog: Callable[..., Result],
    zerog_home: Path,
    tmp_path: Path,
    attack: AttackContext,
    name: str,
    statement: str,
) -> None:
    assert zerog("ns", "create", "kept").exit_code == 0
    target = tmp_path / "escape" / "x.db"
    target.parent.mkdir()
    before_files = files_under(tmp_path)
    before_ledger = ledger_fingerprint(zerog_home)
    with attack("ledger sql", name):
        result = zerog("ledger", "sql", statement.format(target=target))
        assert result.exit_code == 2, result
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result
        assert "Traceback" not in result.stderr
        assert not target.exists()
        assert files_under(tmp_path) - before_files == set()
        assert ledger_fingerprint(zerog_home) == before_ledger


def test_the_refusal_names_what_was_refused(zerog: Callable[..., Result], tmp_path: Path) -> None:
    result = zerog("ledger", "sql", f"VACUUM/**/INTO '{tmp_path / 'v.db'}'")
    assert "error: ledger sql is read-only: ATTACH is refused" in result.stderr
    result = zerog("ledger", "sql", "PRAGMA user_version = 3")
    assert "PRAGMA user_version with a value is refused" in result.stderr


READS = [
    "SELECT name FROM namespaces",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT i FROM n",
    "PRAGMA table_info(objects)",
    "PRAGMA user_version",
    "SELECT COUNT(*), MAX(seen_at) FROM nonces",
    "/* a comment first */ SELECT name FROM sqlite_master WHERE type = 'table'",
]


@pytest.mark.parametrize("statement", READS)
def test_reads_still_work(zerog: Callable[..., Result], statement: str) -> None:
    assert zerog("ns", "create", "kept").exit_code == 0
    result = zerog("ledger", "sql", statement, "--json")
    assert result.exit_code == 0, result
    assert result.json["rows"], result


@pytest.mark.parametrize("character", ["?", "#", "%3F"])
def test_a_home_with_uri_characters_opens_its_own_ledger(
    zerog: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attack: AttackContext,
    character: str,
) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE someone_elses_secrets (value TEXT)")
    conn.execute("INSERT INTO someone_elses_secrets VALUES ('do not read')")
    conn.commit()
    conn.close()
    home = tmp_path / f"other.db{character}x"
    monkeypatch.setenv("ZEROG_HOME", str(home))
    with attack("ledger sql", f"ZEROG_HOME containing {character!r}"):
        assert zerog("ns", "create", "mine").exit_code == 0
        result = zerog("ledger", "sql", "SELECT name FROM sqlite_master WHERE type = 'table'")
        assert result.exit_code == 0, result
        assert "someone_elses_secrets" not in result.stdout
        assert "namespaces" in result.stdout
        mine = zerog("ledger", "sql", "SELECT name FROM namespaces", "--json")
        assert {"name": "mine"} in mine.json["rows"]
        assert (home / "ledger.db").is_file()
        status = zerog("ledger", "status", "--json")
        assert status.json["path"] == str(home / "ledger.db")
