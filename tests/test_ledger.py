"""The ledger: migrations up and down, file modes, status, backup, read-only SQL.

Tests taking ``ledger_backend`` run twice: on the SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import jsonschema
import pytest

from tests.ledger_backends import LedgerBackend, ledger_rows
from tools.json_schema import REPO
from zerog_cli.errors import ConfigError
from zerog_cli.ledger.db import open_ledger
from zerog_cli.ledger.migrations import INITIAL_TABLES, LATEST_VERSION, migrate


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrations_from_empty_then_down_and_up_again(ledger_backend: LedgerBackend) -> None:
    ledger = ledger_backend.open()
    assert ledger.schema_version() == LATEST_VERSION
    assert set(INITIAL_TABLES) <= set(ledger.table_names())
    steps = migrate(ledger, 0)
    assert [s[0] for s in steps] == ["down"] * LATEST_VERSION
    assert set(ledger.table_names()) == {"schema_migrations"}
    migrate(ledger)
    assert ledger.schema_version() == LATEST_VERSION
    assert set(INITIAL_TABLES) <= set(ledger.table_names())
    ledger.close()


def test_each_migration_steps_from_the_previous_one(ledger_backend: LedgerBackend) -> None:
    ledger = open_ledger(ledger_backend.target, migrate=False)
    for version in range(1, LATEST_VERSION + 1):
        migrate(ledger, version)
        assert ledger.schema_version() == version
    for version in range(LATEST_VERSION - 1, -1, -1):
        migrate(ledger, version)
        assert ledger.schema_version() == version
    ledger.close()


def test_ledger_files_are_private_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.db"
    ledger = open_ledger(path)
    with ledger.transaction() as conn:
        conn.execute(
            "INSERT INTO alerts (created_at, level, kind, subject, message)"
            " VALUES ('t', 'info', 'k', 's', 'm')"
        )
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        assert stat.S_IMODE(candidate.stat().st_mode) == 0o600, candidate
    assert ledger.query_one("PRAGMA journal_mode")["journal_mode"] == "wal"
    ledger.close()


def test_transaction_rolls_back_on_error(ledger_backend: LedgerBackend) -> None:
    ledger = ledger_backend.open()
    with pytest.raises(RuntimeError), ledger.transaction() as conn:
        conn.execute("INSERT INTO nonces (scope, nonce, seen_at) VALUES ('s', 'n', 't')")
        raise RuntimeError("boom")
    assert ledger.query("SELECT * FROM nonces") == []
    ledger.close()


def test_not_a_sqlite_file_is_a_config_error_naming_the_path(
    tmp_path: Path, zerog, monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("these are not the tables you are looking for\n")
    with pytest.raises(ConfigError, match="not a SQLite database"):
        open_ledger(bogus)
    monkeypatch.setenv("ZEROG_LEDGER_PATH", str(bogus))
    result = zerog("ledger", "status")
    assert result.exit_code == 8
    assert str(bogus) in result.stderr


def test_newer_schema_is_refused(ledger_backend: LedgerBackend) -> None:
    ledger_backend.open().close()
    ledger_backend.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'later')")
    with pytest.raises(ConfigError, match="newer than this zerog"):
        ledger_backend.open()


def test_ledger_commands(zerog, tmp_path: Path, ledger_backend: LedgerBackend) -> None:
    path = zerog("ledger", "path").stdout.strip()
    assert (
        path.endswith("ledger.db")
        if not ledger_backend.is_postgres
        else path.startswith("postgresql://***@127.0.0.1:")
    )
    status = zerog("ledger", "status", "--json")
    assert status.exit_code == 0, status
    assert status.json["backend"] == ledger_backend.name
    assert status.json["integrity"] == "ok"
    assert status.json["schema_version"] == LATEST_VERSION
    assert status.json["mode"] == (None if ledger_backend.is_postgres else "0o600")
    down = zerog("ledger", "migrate", "--to", "0", "--yes", "--json")
    assert down.json["version"] == 0
    assert Path(down.json["backup"]).is_file()
    up = zerog("ledger", "migrate", "--json")
    assert up.json["version"] == LATEST_VERSION
    destination = tmp_path / "copy.db"
    backup = zerog("ledger", "backup", str(destination), "--json")
    assert backup.exit_code == 0, backup
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    assert set(INITIAL_TABLES) <= _tables(destination)
    again = zerog("ledger", "backup", str(destination))
    assert again.exit_code == 2
    assert zerog("ledger", "backup", str(destination), "--force").exit_code == 0


def test_ledger_sql_reads_and_refuses_writes(zerog, ledger_backend: LedgerBackend) -> None:
    zerog("ledger", "status")
    rows = zerog("ledger", "sql", "SELECT version, name FROM schema_migrations", "--json")
    assert rows.exit_code == 0, rows
    assert rows.json["rows"][0]["version"] == 1
    for statement in (
        "DELETE FROM schema_migrations",
        "  insert into nonces values ('a','b','c','d')",
        "/* sneaky */ DROP TABLE objects",
        "PRAGMA journal_mode = DELETE",
        "WITH x AS (SELECT 1) DELETE FROM nonces",
    ):
        result = zerog("ledger", "sql", statement)
        assert result.exit_code == 2, (statement, result)
        assert "read-only" in result.stderr
    assert zerog("ledger", "sql", "SELECT 1; SELECT 2").exit_code == 2
    assert zerog("ledger", "sql", "SELECT * FROM no_such_table").exit_code == 2


CELLS_ON_SQLITE = (
    "SELECT '2026-01-02T03:04:05' AS at, 1 AS yes, X'00ff' AS blob, 1.5 AS ratio,"
    " NULL AS missing, '{\"a\": 1}' AS doc"
)
CELLS_ON_POSTGRES = (
    "SELECT TIMESTAMP '2026-01-02 03:04:05' AS at, true AS yes, '\\x00ff'::bytea AS blob,"
    " 1.5::float8 AS ratio, NULL AS missing, '{\"a\": 1}'::json AS doc"
)


def test_ledger_sql_cells_are_what_its_schema_says_on_both_backends(
    zerog, ledger_backend: LedgerBackend
) -> None:
    """A time, a boolean and JSON from PostgreSQL come as SQLite would hold them, so the
    same query prints the same document on both (a time was exit 1 on PostgreSQL)."""
    zerog("ledger", "status")
    query = CELLS_ON_POSTGRES if ledger_backend.is_postgres else CELLS_ON_SQLITE
    result = zerog("ledger", "sql", query, "--json")
    assert result.exit_code == 0, result
    assert result.json["rows"] == [
        {
            "at": "2026-01-02T03:04:05",
            "yes": 1,
            "blob": "0x00ff",
            "ratio": 1.5,
            "missing": None,
            "doc": '{"a": 1}',
        }
    ]
    schema = json.loads((REPO / "docs/json/zerog.ledger.sql.v1.json").read_text())
    jsonschema.validate(result.json, schema)


OBJECT_BY_HAND = (
    "INSERT INTO objects (namespace, name, root, tx_seq, size, sha256, network, encrypted,"
    " uploader, fee_neuron, created_at)"
    " VALUES ('photos', ?, ?, 1, 10, 's', 'devnet', 0, 'alice', ?, '2026-11-02T00:00:00Z')"
)
COST_BY_HAND = (
    "INSERT INTO cost_tracking (created_at, period, user, namespace, service, operation,"
    " quantity, unit, usd_micro, neuron, reference, network)"
    " VALUES ('2026-11-02T00:00:00Z', '2026-11', 'alice', 'photos', ?, 'upload', 10, 'bytes',"
    " ?, ?, ?, 'devnet')"
)


def test_an_objects_fee_has_the_micro_usd_of_its_uploads_cost_row(
    zerog, tmp_path: Path, ledger_backend: LedgerBackend
) -> None:
    """`ns objects` gives each fee as every cost is given. Rows written before migration 15
    take the micro-USD of their upload's storage cost row (two paid uploads of the same
    bytes each their own); a row no cost row prices, or one written by plain SQL since,
    has null; `ledger copy` keeps what each row holds."""
    fee = 5 * 10**12
    assert zerog("ledger", "migrate", "--to", "14").exit_code == 0
    older = open_ledger(ledger_backend.target, migrate=False)
    with older.transaction() as conn:
        conn.execute(
            "INSERT INTO namespaces (name, owner, created_at) VALUES ('photos', 'alice', 't')"
        )
        for name, root in (("a.bin", "0xaa"), ("b.bin", "0xaa"), ("c.bin", "0xcc")):
            conn.execute(OBJECT_BY_HAND, (name, root, str(fee)))
        for service, usd_micro, root in (
            ("storage", 700, "0xaa"),
            ("storage", 900, "0xaa"),
            ("compute", 5, "0xcc"),
        ):
            conn.execute(COST_BY_HAND, (service, usd_micro, str(fee), root))
    older.close()
    assert zerog("ledger", "migrate").exit_code == 0
    ledger_backend.execute(OBJECT_BY_HAND, ("d.bin", "0xdd", "0"))

    listed = zerog("ns", "objects", "photos", "--as", "alice", "--json")
    assert listed.exit_code == 0, listed
    paid = {"neuron": str(fee), "0g": "0.000005"}
    assert {o["name"]: o["fee"] for o in listed.json["objects"]} == {
        "a.bin": {**paid, "usd_micro": 700},
        "b.bin": {**paid, "usd_micro": 900},
        "c.bin": {**paid, "usd_micro": None},
        "d.bin": {"neuron": "0", "0g": "0", "usd_micro": None},
    }
    copy = tmp_path / "copy.db"
    assert zerog("ledger", "copy", "--to", f"sqlite://{copy}").exit_code == 0
    assert ledger_rows(copy, "SELECT name, fee_usd_micro FROM objects ORDER BY name") == [
        {"name": "a.bin", "fee_usd_micro": 700},
        {"name": "b.bin", "fee_usd_micro": 900},
        {"name": "c.bin", "fee_usd_micro": None},
        {"name": "d.bin", "fee_usd_micro": None},
    ]


def test_alert_values_past_int64_and_float_are_stored(ledger_backend: LedgerBackend) -> None:
    from zerog_cli.ledger import alerts

    ledger = ledger_backend.open()
    with ledger.transaction() as conn:
        for claim in (2**300, 2**1100):
            alerts.record(
                conn, level="critical", kind="usage_claim", subject="p", message="m", value=claim
            )
    values = [row["value"] for row in alerts.recent(ledger.conn, kind="usage_claim")]
    assert values == [float("inf"), float(2**300)]
