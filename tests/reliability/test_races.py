"""Races: eight processes spend one user's quota at once (uploads and inferences).

The user's monthly storage limit fits exactly three of the four uploads, and
the token limit fits two inference reservations at a time. All eight start
together. Afterwards: usage equals the sum of recorded costs, successes fit
the limits (never an overspend), the refused commands spent nothing (no
devnet transaction), and no "database is locked" reached anyone. The eight
run against each ledger backend (``ledger_backend``: SQLite, PostgreSQL).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess
from tests.ledger_backends import LedgerBackend
from tests.reliability.conftest import (
    collect,
    exit_problems,
    ledger_problems,
    ledger_rows,
    random_file,
    scale,
    spawn,
)
from zerog_cli.ledger.breakers import BreakerTable
from zerog_cli.ledger.db import open_ledger

pytestmark = [pytest.mark.devnet(nodes=1), pytest.mark.timeout(scale(300, 3600))]

ROUNDS = scale(2, 10)
POSTGRES_ROUNDS = scale(1, 10)
"""`make test` runs one round on PostgreSQL (the second backend); `make soak` the full size."""
UPLOADS = 4
INFERS = 4
FILE_SIZE = 300_000
STORAGE_LIMIT = 1_000_000  # three uploads fit, the fourth does not
TOKEN_LIMIT = 2_500  # an inference reserves prompt + 1000 tokens: two fit at a time
MAX_TOKENS = 1000
MAX = str(MAX_TOKENS)
TIMEOUT = 180.0


def test_eight_processes_spend_one_quota(
    own_devnet: DevnetProcess,
    zerog: Callable[..., Result],
    tmp_path: Path,
    zerog_home: Path,
    figures: dict[str, Any],
    ledger_backend: LedgerBackend,
) -> None:
    net = own_devnet
    db = ledger_backend.db
    rounds = POSTGRES_ROUNDS if ledger_backend.is_postgres else ROUNDS
    rng = random.Random(int(os.environ.get("ZEROG_RACE_SEED") or 1))
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    locked_messages = 0
    overspends = 0
    max_concurrent_seconds = 0.0

    for round_index in range(rounds):
        user = f"racer{round_index}"
        assert zerog("config", "set", "user", user).exit_code == 0
        setup = zerog(
            "quota", "set", user, "--storage", str(STORAGE_LIMIT), "--tokens", str(TOKEN_LIMIT)
        )
        assert setup.exit_code == 0, setup
        namespace = f"race{round_index}"
        assert zerog("ns", "create", namespace).exit_code == 0
        files = [
            random_file(tmp_path / f"r{round_index}-{i}.bin", FILE_SIZE, rng)
            for i in range(UPLOADS)
        ]
        commands = [("upload", str(path), "--ns", namespace, "--json") for path in files]
        commands += [
            (
                "infer",
                "ask",
                f"race {round_index}.{i}",
                "--no-stream",
                "--max-tokens",
                MAX,
                "--json",
            )
            for i in range(INFERS)
        ]
        rng.shuffle(commands)
        txs_before = net.stats()["transactions"]
        started = time.monotonic()
        processes = [(args, spawn(*args)) for args in commands]
        runs = [collect(process, args, started, TIMEOUT) for args, process in processes]
        max_concurrent_seconds = max(max_concurrent_seconds, time.monotonic() - started)
        paid_txs = net.stats()["transactions"] - txs_before

        uploads_ok = infers_ok = 0
        reported_tokens = 0
        for run in runs:
            kind = run.args[0]
            outcomes[f"{kind}:{run.exit_code}"] += 1
            problems += exit_problems(run, frozenset({4}))
            if "database is locked" in run.stderr or "database is busy" in run.stderr:
                locked_messages += 1
            if run.exit_code == 4 and "quota exceeded" not in run.stderr:
                problems.append(f"exit 4 without a quota message: {run!r}")
            if run.exit_code == 0 and kind == "upload":
                uploads_ok += 1
            if run.exit_code == 0 and kind == "infer":
                infers_ok += 1
                reported_tokens += run.json["usage"]["total_tokens"]

        quota = ledger_rows(db, "SELECT * FROM user_quotas WHERE user = ?", (user,))[0]
        costs = ledger_rows(
            db,
            "SELECT service, COUNT(*) AS n, SUM(quantity) AS quantity, SUM(usd_micro) AS usd"
            " FROM cost_tracking WHERE user = ? GROUP BY service",
            (user,),
        )
        by_service = {row["service"]: row for row in costs}
        storage = by_service.get("storage", {"n": 0, "quantity": 0, "usd": 0})
        compute = by_service.get("compute", {"n": 0, "quantity": 0, "usd": 0})
        if quota["storage_used_bytes"] > STORAGE_LIMIT or quota["tokens_used"] > TOKEN_LIMIT:
            overspends += 1
        round_problems = [
            (quota["storage_used_bytes"], storage["quantity"] or 0, "storage used != recorded"),
            (quota["tokens_used"], compute["quantity"] or 0, "tokens used != recorded"),
            (quota["tokens_used"], reported_tokens, "tokens used != tokens reported to users"),
            (
                quota["monthly_usd_used_micro"],
                (storage["usd"] or 0) + (compute["usd"] or 0),
                "usd used != recorded",
            ),
            (storage["n"], uploads_ok, "storage cost rows != successful uploads"),
            (compute["n"], infers_ok, "compute cost rows != successful inferences"),
            (uploads_ok, STORAGE_LIMIT // FILE_SIZE, "uploads that fit != uploads that succeeded"),
            (paid_txs, uploads_ok, "devnet transactions != successful uploads"),
        ]
        problems += [
            f"round {round_index}: {what}: {a} vs {b}" for a, b, what in round_problems if a != b
        ]
        if infers_ok < 2:
            problems.append(f"round {round_index}: only {infers_ok} inferences fit: {runs}")
        problems += [f"round {round_index}: {p}" for p in ledger_problems(db)]

    figures["ledger"] = ledger_backend.name
    figures["rounds"] = rounds
    figures["processes per round"] = UPLOADS + INFERS
    figures["outcomes (command:exit)"] = dict(sorted(outcomes.items()))
    figures["overspends"] = overspends
    figures["'database is locked' seen by a user"] = locked_messages
    figures["accounting problems"] = len(problems)
    figures["slowest round (s)"] = round(max_concurrent_seconds, 1)

    assert not problems, "\n".join(problems[:15])
    assert overspends == 0
    assert locked_messages == 0


OTHER_PROCESS = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
print(conn.execute(sys.argv[2]).fetchone()[0])
conn.close()
"""


def _other_process(db: Path, sql: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, str(db), sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_a_second_connection_in_one_process_keeps_later_commits(
    tmp_path: Path, figures: dict[str, Any]
) -> None:
    """Regression: opening the breaker table's connection used to read the ledger's
    header with open()/close(), which dropped the process's POSIX locks on the file.
    Another process closing its connection then deleted the WAL under the open one,
    and the next commits vanished."""
    db = tmp_path / "ledger.db"
    ledger = open_ledger(db)
    table = BreakerTable(db)
    table.ensure("http://127.0.0.1:9")  # opens the second connection
    _other_process(db, "SELECT COUNT(*) FROM breaker_state")  # opens and closes one
    for index in range(3):
        with ledger.transaction() as conn:
            conn.execute(
                "INSERT INTO nonces (scope, nonce, seen_at) VALUES ('race', ?, 't')", (str(index),)
            )
    seen = _other_process(db, "SELECT COUNT(*) FROM nonces WHERE scope = 'race'")
    wal_present = Path(f"{db}-wal").exists()
    table.close()
    ledger.close()
    figures["commits seen by another process"] = f"{seen}/3"
    figures["WAL file still present while connections were open"] = wal_present
    assert seen == "3"
    assert wal_present
