"""PostgreSQL as the ledger: ledger_url, its password secret, `ledger copy`, shared locks.

The tests that hold on both backends take ``ledger_backend`` (tests/ledger_backends.py);
these are about what only a server brings: a URL and a password, two hosts (two
ZEROG_HOMEs) on one database, moving a ledger in and out.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import postgres_harness
from tests.conftest import Result, run_cli_process
from tests.ledger_backends import LedgerBackend, use_postgres
from zerog_cli.errors import PermissionDenied
from zerog_cli.ledger import nonces
from zerog_cli.ledger.breakers import BreakerTable
from zerog_cli.ledger.locks import LedgerRunLock
from zerog_cli.services.verify import LOCK_NAME

PERIOD = "2026-11"
BIG = 2**64 * 3 + 12345
COSTS = (
    ("alice", "photos", "storage", 1000, "bytes", 7, "5"),
    ("alice", "photos", "storage", 24, "bytes", 1, str(BIG)),
    ("alice", None, "compute", 300, "tokens", 20, "999999999"),
    ("bob", "docs", "storage", 10, "bytes", 2, "-7"),
)


@pytest.fixture
def postgres(
    postgres_cluster: postgres_harness.Cluster, zerog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> LedgerBackend:
    return use_postgres(postgres_cluster, zerog_home, monkeypatch)


def _fill(zerog: Callable[..., Result], backend: LedgerBackend) -> None:
    """Quotas, namespaces and cost rows (one past 64 bits), through commands and plain SQL."""
    assert zerog("quota", "set", "alice", "--tier", "premium").exit_code == 0
    assert zerog("ns", "create", "photos", "--quota", "1GB").exit_code == 0
    ledger = backend.open()
    with ledger.transaction() as conn:
        conn.executemany(
            "INSERT INTO cost_tracking (created_at, period, user, namespace, service, operation,"
            " quantity, unit, usd_micro, neuron, network)"
            " VALUES ('2026-11-02T00:00:00Z', ?, ?, ?, ?, 'op', ?, ?, ?, ?, 'devnet')",
            [(PERIOD, *row) for row in COSTS],
        )
    ledger.close()


def _report(zerog: Callable[..., Result]) -> object:
    result = zerog("quota", "report", "--by", "user", "--month", PERIOD, "--json")
    assert result.exit_code == 0, result
    return result.json["groups"]


def test_ledger_copy_moves_sqlite_into_postgres_and_back(
    zerog: Callable[..., Result],
    zerog_home: Path,
    tmp_path: Path,
    postgres_cluster: postgres_harness.Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_ledger = LedgerBackend("sqlite", zerog_home)
    _fill(zerog, sqlite_ledger)
    before = _report(zerog)
    # `ledger status` records its integrity check as it runs: that table is not compared.
    counts = zerog("ledger", "status", "--json").json["tables"]
    counts.pop("integrity_checks", None)
    url = postgres_cluster.create_database()
    monkeypatch.setenv("DATABASE_PASSWORD", postgres_harness.PASSWORD)

    copied = zerog("ledger", "copy", "--to", url, "--json")
    assert copied.exit_code == 0, copied
    assert copied.json["verified"] is True
    assert copied.json["tables"]["cost_tracking"] == len(COSTS)
    for table, rows in copied.json["tables"].items():
        assert counts.get(table, rows) == rows, table
    assert postgres_harness.PASSWORD not in copied.stdout + copied.stderr

    again = zerog("ledger", "copy", "--to", url)
    assert again.exit_code == 2
    assert "already holds rows" in again.stderr

    monkeypatch.setenv("ZEROG_LEDGER_URL", url)
    assert _report(zerog) == before
    status = zerog("ledger", "status", "--json").json
    assert status["backend"] == "postgresql"
    status["tables"].pop("integrity_checks", None)
    assert status["tables"] == counts
    assert zerog("quota", "set", "bob", "--tier", "free").exit_code == 0  # ids go on

    back = tmp_path / "back.db"
    returned = zerog("ledger", "copy", "--to", f"sqlite://{back}", "--json")
    assert returned.exit_code == 0, returned
    assert returned.json["tables"]["user_quotas"] == counts["user_quotas"] + 1
    monkeypatch.setenv("ZEROG_LEDGER_URL", f"sqlite://{back}")
    assert _report(zerog) == before
    assert not Path(f"{back}-wal").exists()


def test_ledger_backup_of_postgres_is_a_file_ledger_copy_loads(
    zerog: Callable[..., Result],
    tmp_path: Path,
    postgres: LedgerBackend,
    postgres_cluster: postgres_harness.Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fill(zerog, postgres)
    before = _report(zerog)
    saved = zerog("ledger", "backup", str(tmp_path), "--json")
    assert saved.exit_code == 0, saved
    exported = Path(saved.json["destination"])
    assert exported.name.startswith("ledger-ledger_") and exported.suffix == ".db"
    assert oct(exported.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(exported) as conn:
        assert conn.execute("SELECT COUNT(*) FROM cost_tracking").fetchone() == (len(COSTS),)

    restored = postgres_cluster.create_database()
    monkeypatch.setenv("ZEROG_LEDGER_URL", f"sqlite://{exported}")
    assert _report(zerog) == before
    assert zerog("ledger", "copy", "--to", restored).exit_code == 0
    monkeypatch.setenv("ZEROG_LEDGER_URL", restored)
    assert _report(zerog) == before


def test_ledger_sql_on_postgres_is_read_only(
    zerog: Callable[..., Result], postgres: LedgerBackend
) -> None:
    _fill(zerog, postgres)
    rows = zerog(
        "ledger", "sql", "SELECT user, tier FROM user_quotas WHERE user = 'alice'", "--json"
    )
    assert rows.exit_code == 0, rows
    assert rows.json["rows"] == [{"user": "alice", "tier": "premium"}]
    for statement in (
        "WITH gone AS (DELETE FROM user_quotas RETURNING *) SELECT * FROM gone",
        "SELECT nextval(pg_get_serial_sequence('cost_tracking', 'id'))",
        "SET default_transaction_read_only = off",
        "CREATE TEMP TABLE t AS SELECT 1",
    ):
        result = zerog("ledger", "sql", statement)
        assert result.exit_code == 2, (statement, result)
        assert "read-only" in result.stderr
    assert zerog("ledger", "sql", "SELECT 1; DELETE FROM user_quotas").exit_code == 2
    assert postgres.rows("SELECT COUNT(*) AS n FROM user_quotas WHERE user = 'alice'") == [{"n": 1}]


def test_a_password_in_the_url_is_refused_and_secrets_are_never_printed(
    zerog: Callable[..., Result],
    postgres_cluster: postgres_harness.Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = postgres_cluster.create_database()
    with_password = url.replace("zerog@", f"zerog:{postgres_harness.PASSWORD}@")
    monkeypatch.setenv("ZEROG_LEDGER_URL", with_password)
    refused = zerog("ledger", "status")
    assert refused.exit_code == 8
    assert "DATABASE_PASSWORD" in refused.stderr
    assert postgres_harness.PASSWORD not in refused.stdout + refused.stderr

    monkeypatch.setenv("ZEROG_LEDGER_URL", url)
    missing = zerog("ledger", "status")
    assert missing.exit_code == 8, missing
    assert "asks for a password" in missing.stderr

    monkeypatch.setenv("DATABASE_PASSWORD", "not-the-password")
    wrong = zerog("ledger", "status")
    assert wrong.exit_code == 8, wrong
    assert "refused the DATABASE_PASSWORD secret" in wrong.stderr
    assert "not-the-password" not in wrong.stdout + wrong.stderr


def test_an_unreachable_database_is_exit_6(
    zerog: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, refused_port: int
) -> None:
    monkeypatch.setenv("ZEROG_LEDGER_URL", f"postgresql://zerog@127.0.0.1:{refused_port}/ledger")
    result = zerog("quota", "show", "alice")
    assert result.exit_code == 6, result
    assert result.stderr.count("error:") == 1
    assert "Traceback" not in result.stderr


def test_two_hosts_share_nonces_breakers_and_the_verify_lock(
    zerog: Callable[..., Result], tmp_path: Path, postgres: LedgerBackend
) -> None:
    """Host B (another ZEROG_HOME) sees what host A wrote: a replayed nonce is refused,
    an open breaker is open, and verify waits for A's run lock (exit 9, naming A)."""
    ledger = postgres.open()
    with ledger.transaction() as conn:
        nonces.consume(conn, "auth", "n-1", "0xabc")
    with pytest.raises(PermissionDenied, match="replay refused"), ledger.transaction() as conn:
        nonces.consume(conn, "auth", "n-1", "0xabc")
    ledger.close()

    endpoint = "http://127.0.0.1:9/rpc"
    table = BreakerTable(postgres.target)
    table.storage(endpoint).state = "open"
    table.close()

    target = postgres.target
    assert not isinstance(target, Path)
    lock = LedgerRunLock(target, LOCK_NAME, "zerog verify")
    lock.acquire()
    try:
        host_b = {
            "ZEROG_HOME": str(tmp_path / "host-b"),
            **postgres.env(),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
        status = run_cli_process("status", "--json", "--no-probe", env=host_b)
        breakers = {row["endpoint"]: row["state"] for row in status.json["breakers"]}
        assert breakers.get(endpoint) == "open", status
        verify = run_cli_process("verify", env=host_b)
        assert verify.exit_code == 9, verify
        assert f"pid {os.getpid()}" in verify.stderr
    finally:
        lock.release()
    free = run_cli_process("verify", env=host_b)
    assert free.exit_code == 7, free  # the lock was free: nothing to verify yet
    assert "no live backup" in free.stderr
