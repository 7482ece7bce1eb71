"""Hosts that share one ledger: two ZEROG_HOMEs spend one tenant's quota at once, and a
PostgreSQL restart mid-upload.

Two homes stand for two hosts (each its own config, locks and secrets; one
ledger: the same PostgreSQL database, or on SQLite the same file through
``ledger_path``). Eight uploads from each, all started together, spend one
tenant's storage quota, which fits five: exactly five succeed and pay, the
rest are refused with exit 4 before paying, and the ledger records every
payment once (0 overspends, 0 lost rows).

A PostgreSQL restart while an upload is between its payment and its record
ends that upload with exit 6 (the ledger is a network service like any
other), and rerunning the same command records the payment it had made,
without paying again.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import postgres_harness
from tests.conftest import Result
from tests.devnet_harness import DevnetProcess, paused
from tests.ledger_backends import LedgerBackend, use_postgres
from tests.reliability.conftest import (
    collect,
    exit_problems,
    ledger_problems,
    ledger_rows,
    random_file,
    scale,
    spawn,
    zerog_child,
)

pytestmark = [pytest.mark.devnet(nodes=1), pytest.mark.timeout(scale(400, 3600))]

PER_HOST = 8
FILE_SIZE = 100_000
FITS = 5
STORAGE_LIMIT = FITS * FILE_SIZE + FILE_SIZE // 2
TENANT = "tenant"
TIMEOUT = 240.0


def test_two_hosts_spend_one_tenant_quota(
    own_devnet: DevnetProcess,
    zerog: Callable[..., Result],
    tmp_path: Path,
    zerog_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: dict[str, Any],
    ledger_backend: LedgerBackend,
) -> None:
    net = own_devnet
    monkeypatch.setenv("ZEROG_USER", TENANT)
    assert zerog("quota", "set", TENANT, "--storage", str(STORAGE_LIMIT)).exit_code == 0
    assert zerog("ns", "create", "shared").exit_code == 0
    host_b = {"ZEROG_HOME": str(tmp_path / "host-b"), **ledger_backend.env()}
    rng = random.Random(7)
    files = [
        random_file(tmp_path / f"f{index}.bin", FILE_SIZE, rng) for index in range(2 * PER_HOST)
    ]

    txs_before = net.stats()["transactions"]
    started = time.monotonic()
    processes = []
    for index, path in enumerate(files):
        args = ("upload", str(path), "--ns", "shared", "--json")
        env = host_b if index % 2 else None
        processes.append((args, spawn(*args, env=env)))
    runs = [collect(process, args, started, TIMEOUT) for args, process in processes]
    paid = net.stats()["transactions"] - txs_before

    exits = Counter(run.exit_code for run in runs)
    problems = [p for run in runs for p in exit_problems(run, frozenset({4}))]
    db = ledger_backend.db
    quota = ledger_rows(db, "SELECT * FROM user_quotas WHERE user = ?", (TENANT,))[0]
    cost_rows = ledger_rows(
        db, "SELECT COUNT(*) AS n, COALESCE(SUM(quantity), 0) AS bytes FROM cost_tracking"
    )[0]
    objects = ledger_rows(db, "SELECT COUNT(*) AS n FROM objects")[0]["n"]
    succeeded = exits[0]
    overspends = int(quota["storage_used_bytes"] > STORAGE_LIMIT)
    lost_rows = abs(paid - cost_rows["n"]) + abs(paid - objects)
    problems += ledger_problems(db)

    figures["ledger"] = ledger_backend.name
    figures["processes"] = f"{PER_HOST} per host x 2 hosts"
    figures["exits"] = dict(sorted(exits.items(), key=lambda item: str(item[0])))
    figures["overspends"] = overspends
    figures["lost rows (payments without a cost row or object)"] = lost_rows
    figures["storage used / limit"] = f"{quota['storage_used_bytes']} / {STORAGE_LIMIT}"
    figures["seconds"] = round(time.monotonic() - started, 1)

    assert not problems, "\n".join(problems[:10])
    assert overspends == 0
    assert lost_rows == 0
    assert succeeded == FITS, exits
    assert exits[4] == 2 * PER_HOST - FITS, exits
    assert quota["storage_used_bytes"] == cost_rows["bytes"] == FITS * FILE_SIZE


def test_a_postgres_restart_mid_upload_is_exit_6_and_the_rerun_records_it_once(
    own_devnet: DevnetProcess,
    zerog: Callable[..., Result],
    tmp_path: Path,
    zerog_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_cluster: postgres_harness.Cluster,
    figures: dict[str, Any],
) -> None:
    net = own_devnet
    backend = use_postgres(postgres_cluster, zerog_home, monkeypatch)
    source = random_file(tmp_path / "paid.bin", 3 * 262_144, random.Random(3))
    assert zerog("ledger", "status").exit_code == 0
    transactions = net.stats()["transactions"]
    net.set_faults(latency_ms=1000, targets=["node"])
    args = ("upload", str(source), "--json")
    started = time.monotonic()
    upload = spawn(*args)
    deadline = time.monotonic() + 60
    journaled: list[dict[str, Any]] = []
    while time.monotonic() < deadline and upload.poll() is None and not journaled:
        journaled = backend.rows("SELECT fee_neuron FROM pending_payments")
        time.sleep(0.05)
    assert journaled, "the payment was never journaled"
    # Paused while the server restarts, so the restart is certainly mid-upload: a run
    # left going could record everything first on a loaded machine.
    with paused(upload):
        postgres_cluster.restart()
    net.clear_faults()
    first = collect(upload, args, started, TIMEOUT)

    figures["first run exit"] = first.exit_code
    assert first.exit_code == 6, first
    assert not exit_problems(first, frozenset({6})), first
    assert "ledger database" in first.stderr
    assert postgres_harness.PASSWORD not in first.stdout + first.stderr

    rerun = zerog_child(*args, timeout=TIMEOUT)
    figures["rerun exit"] = rerun.exit_code
    assert rerun.exit_code == 0, rerun
    assert net.stats()["transactions"] == transactions + 1, "the rerun must not pay again"
    assert rerun.json["cost"]["neuron"] == journaled[0]["fee_neuron"]
    assert backend.rows("SELECT COUNT(*) AS n FROM pending_payments") == [{"n": 0}]
    assert backend.rows("SELECT COUNT(*) AS n FROM cost_tracking") == [{"n": 1}]
    problems = ledger_problems(backend.db)
    assert not problems, problems
