"""A payment made by a process that then dies is recorded by the next run, once.

Each test runs on both ledger backends (``ledger_backend``: SQLite, PostgreSQL).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.devnet_harness import DevnetProcess, upload_killed_after_paying
from tests.ledger_backends import LedgerBackend


def _rows(ledger: LedgerBackend, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in ledger.rows(sql)]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_killed_after_paying_then_rerun_records_the_payment_once(
    cli, net: DevnetProcess, tmp_path: Path, zerog_home: Path, ledger_backend: LedgerBackend
) -> None:
    source = tmp_path / "paid.bin"
    source.write_bytes(os.urandom(3 * 262_144))
    ledger = ledger_backend
    cli("ledger", "status")
    transactions = net.stats()["transactions"]
    journaled = upload_killed_after_paying(net, zerog_home, source, lambda sql: _rows(ledger, sql))
    assert _rows(ledger, "SELECT COUNT(*) FROM objects") == [(0,)]
    assert _rows(ledger, "SELECT COUNT(*) FROM cost_tracking") == [(0,)]

    rerun = cli("upload", str(source), "--json")
    assert rerun.exit_code == 0, rerun
    assert net.stats()["transactions"] == transactions + 1, "the rerun must not pay again"
    fee = journaled[0][1]
    assert rerun.json["cost"]["neuron"] == fee
    assert rerun.json["recovered_payment"].startswith("0x")
    costs = _rows(ledger, "SELECT neuron, reference FROM cost_tracking ORDER BY id")
    assert costs == [(fee, rerun.json["root"])]
    assert _rows(ledger, "SELECT fee_neuron FROM objects") == [(fee,)]
    assert _rows(ledger, "SELECT COUNT(*) FROM pending_payments") == [(0,)]
    used = _rows(ledger, "SELECT storage_used_bytes FROM user_quotas")
    assert used == [(3 * 262_144,)]
    assert "left unrecorded by a process that died" in rerun.stderr


def test_a_dead_process_payment_for_another_file_is_recorded_on_its_own(
    cli, net: DevnetProcess, tmp_path: Path, ledger_backend: LedgerBackend
) -> None:
    cli("ledger", "status")
    ledger = ledger_backend
    first = tmp_path / "first.bin"
    first.write_bytes(os.urandom(4000))
    paid = cli("upload", str(first), "--json").json
    ledger.execute(
        "INSERT INTO pending_payments (intent, tx_hash, operation, user, namespace, root,"
        " size, fee_neuron, usd_micro, network, pid, host, created_at)"
        " VALUES ('orphan', ?, 'upload', 'someone', 'default', ?, 4000, ?, 1, 'devnet', ?, ?,"
        " '2026-01-01T00:00:00Z')",
        (paid["tx_hash"], paid["root"], paid["cost"]["neuron"], _dead_pid(), os.uname().nodename),
    )
    second = tmp_path / "second.bin"
    second.write_bytes(os.urandom(4000))
    assert cli("upload", str(second)).exit_code == 0
    recorded = _rows(ledger, "SELECT user, neuron FROM cost_tracking WHERE user = 'someone'")
    assert recorded == [("someone", paid["cost"]["neuron"])]
    assert _rows(ledger, "SELECT COUNT(*) FROM pending_payments") == [(0,)]


def test_a_payment_the_chain_never_saw_is_discarded_after_the_wait(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_backend: LedgerBackend
) -> None:
    cli("ledger", "status")
    ledger = ledger_backend
    ledger.execute(
        "INSERT INTO pending_payments (intent, tx_hash, operation, user, root, size,"
        " fee_neuron, usd_micro, network, pid, host, created_at)"
        " VALUES ('lost', ?, 'upload', 'u', '0xab', 1, '5', 1, 'devnet', ?, ?,"
        " '2026-01-01T00:00:00Z')",
        ("0x" + "77" * 32, _dead_pid(), os.uname().nodename),
    )
    monkeypatch.setenv("ZEROG_WAIT_TIMEOUT", "1")
    source = tmp_path / "other.bin"
    source.write_bytes(os.urandom(1000))
    assert cli("upload", str(source)).exit_code == 0
    assert _rows(ledger, "SELECT COUNT(*) FROM pending_payments") == [(0,)]
    assert _rows(ledger, "SELECT COUNT(*) FROM cost_tracking WHERE neuron = '5'") == [(0,)]
