"""Crashes: ``kill -9`` of upload, backup, verify and restore at random points.

Each run starts a command as a child process and kills it with SIGKILL either
after a random delay or right after a chosen event seen by the devnet (the
Flow transaction was mined, the first segment went up, the first segment came
down), the windows where a crash is most likely to leave money spent and
nothing recorded. Then:

Both ledger backends (``ledger_backend``: SQLite, PostgreSQL) are crashed the same way.

- the ledger passes ``PRAGMA integrity_check`` and holds no half-recorded
  object or cost (every object has its cost row and the reverse; usage equals
  recorded costs);
- no partial file sits at a destination (only the final name counts: a file
  there is complete and correct);
- re-running the same command completes, does not pay twice (no new devnet
  transaction when the first run had paid), and cleans the dead process's
  quota reservation.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess
from tests.ledger_backends import LedgerBackend
from tests.reliability.conftest import (
    backup_objects_without_record,
    collect,
    exit_problems,
    ledger_problems,
    ledger_rows,
    part_files,
    pid_alive,
    random_file,
    scale,
    sha256_of,
    spawn,
    zerog_child,
)

pytestmark = [pytest.mark.devnet, pytest.mark.timeout(scale(300, 3600))]

RUNS = scale(6, 50)
POSTGRES_RUNS = scale(3, 50)
"""`make test` runs a few kills on PostgreSQL (the second backend); `make soak` the full size."""
KINDS = ("upload", "backup", "verify", "restore")
TRIGGERS = {
    "upload": ("random", "after-tx", "mid-transfer"),
    "backup": ("random", "after-tx", "mid-transfer"),
    "verify": ("random", "mid-transfer"),
    "restore": ("random", "mid-transfer"),
}
ESTIMATED_SECONDS = {"upload": 2.5, "backup": 2.5, "verify": 1.2, "restore": 1.2}
TIMEOUT = 120.0


@dataclass
class Tally:
    runs: Counter[str] = field(default_factory=Counter)
    killed: int = 0
    finished_first: int = 0
    first_paid: int = 0
    reruns_ok: int = 0
    rerun_already_recorded: int = 0
    double_payments: int = 0
    partial_files: int = 0
    stale_part_files: int = 0
    problems: list[str] = field(default_factory=list)
    dead_reservations_after_kill: int = 0
    unrecorded_payments: int = 0


def method_count(stats: dict[str, Any], suffix: str) -> int:
    return sum(n for name, n in stats["methods"].items() if name.endswith(suffix))


def wait_for_event(
    net: DevnetProcess, process: Any, trigger: str, kind: str, rng: random.Random
) -> None:
    """Return when it is time to kill ``process`` (or once it has exited)."""
    if trigger == "random":
        deadline = time.monotonic() + rng.uniform(0.05, 1.2 * ESTIMATED_SECONDS[kind])
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        return
    before = net.stats()
    if trigger == "after-tx":
        event = "transactions"
    elif kind in ("upload", "backup"):
        event = "zgs_uploadSegmentsByTxSeq"
    else:
        event = "zgs_downloadSegmentWithProofByTxSeq"

    def seen(now: dict[str, Any]) -> bool:
        if event == "transactions":
            return bool(now["transactions"] > before["transactions"])
        return method_count(now, event) > method_count(before, event)

    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if seen(net.stats()):
            time.sleep(rng.uniform(0, 0.2))
            return
        time.sleep(0.01)


def test_kill_9_at_random_points(
    own_devnet: DevnetProcess,
    zerog: Callable[..., Result],
    tmp_path: Path,
    zerog_home: Path,
    figures: dict[str, Any],
    ledger_backend: LedgerBackend,
) -> None:
    net = own_devnet
    seed = int(os.environ.get("ZEROG_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    figures["seed (ZEROG_CRASH_SEED)"] = seed
    rng = random.Random(seed)
    db = ledger_backend.db
    runs = POSTGRES_RUNS if ledger_backend.is_postgres else RUNS
    work = tmp_path / "work"
    sources: dict[str, Path] = {}

    def new_file(name: str) -> Path:
        path = random_file(work / name, rng.randint(300_000, 2_500_000), rng)
        sources[sha256_of(path)] = path
        return path

    # Backups to verify and restore (large enough to be killed halfway through).
    for index in range(2):
        made = zerog("backup", "create", str(new_file(f"seed-{index}.bin")), "--label", "seed")
        assert made.exit_code == 0, made

    tally = Tally()
    for run_index in range(runs):
        kind = KINDS[run_index % len(KINDS)]
        trigger = rng.choice(TRIGGERS[kind])
        tally.runs[f"{kind}/{trigger}"] += 1
        destination: Path | None = None
        expected_sha: str | None = None
        if kind in ("upload", "backup"):
            source = new_file(f"{kind}-{run_index}.bin")
            args: tuple[str, ...] = (
                ("upload", str(source), "--json")
                if kind == "upload"
                else ("backup", "create", str(source), "--label", "crash", "--json")
            )
        elif kind == "verify":
            args = ("verify", "--json")
        else:
            backups = ledger_rows(db, "SELECT id, sha256 FROM storage_backups")
            chosen = rng.choice(backups)
            expected_sha = chosen["sha256"]
            destination = work / f"restore-{run_index}" / "restored.bin"
            destination.parent.mkdir(parents=True)
            args = ("backup", "restore", str(chosen["id"]), "-o", str(destination), "--force")
            args += ("--json",)

        txs_start = net.stats()["transactions"]
        started = time.monotonic()
        process = spawn(*args)
        wait_for_event(net, process, trigger, kind, rng)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            tally.killed += 1
        first = collect(process, args, started, TIMEOUT)
        if not first.killed:
            tally.finished_first += 1
            tally.problems += exit_problems(first)
        txs_killed = net.stats()["transactions"]
        paid_first = txs_killed > txs_start
        tally.first_paid += paid_first

        # Right after the kill: consistent ledger; reservations of the dead pid may remain.
        tally.problems += [
            f"run {run_index} {kind}/{trigger} after kill: {p}"
            for p in ledger_problems(db, dead_reservations_allowed=True)
        ]
        tally.dead_reservations_after_kill += sum(
            not pid_alive(int(r["pid"]))
            for r in ledger_rows(db, "SELECT pid FROM quota_reservations")
        )
        if (
            destination is not None
            and destination.exists()
            and sha256_of(destination) != expected_sha
        ):
            tally.partial_files += 1
            tally.problems.append(f"run {run_index}: partial file at {destination}")

        # The operator runs the same command again.
        recorded_before = (
            ledger_rows(db, "SELECT id FROM objects WHERE name = ?", (Path(args[1]).name,))
            if kind == "upload"
            else []
        )
        rerun = zerog_child(*args, timeout=TIMEOUT)
        txs_rerun = net.stats()["transactions"] - txs_killed
        if kind == "upload" and recorded_before and rerun.exit_code == 2:
            # The killed run had recorded it: "already exists" is the right answer.
            assert "already exists" in rerun.stderr, rerun
            tally.rerun_already_recorded += 1
        elif rerun.exit_code == 0:
            tally.reruns_ok += 1
        else:
            tally.problems.append(f"run {run_index} {kind}/{trigger}: rerun failed: {rerun!r}")
        tally.problems += exit_problems(rerun)
        if paid_first and (txs_rerun or (rerun.exit_code == 0 and _fee(rerun) != 0)):
            tally.double_payments += 1
            tally.problems.append(f"run {run_index} {kind}: paid twice ({txs_rerun} new tx)")
        if not paid_first and txs_rerun > 1:
            tally.problems.append(f"run {run_index} {kind}: {txs_rerun} transactions for one file")
        if rerun.exit_code == 0 and kind in ("upload", "backup"):
            report = rerun.json
            paid_rows = ledger_rows(
                db,
                "SELECT COUNT(*) AS n FROM cost_tracking WHERE reference = ? AND neuron != '0'",
                (report["root"],),
            )[0]["n"]
            tally.unrecorded_payments += paid_first and not paid_rows
            if report["sha256"] != sha256_of(Path(args[2] if kind == "backup" else args[1])):
                tally.problems.append(f"run {run_index}: rerun recorded the wrong SHA-256")
        if destination is not None:
            if not destination.exists() or sha256_of(destination) != expected_sha:
                tally.problems.append(f"run {run_index}: restore rerun left no correct file")
            tally.stale_part_files += len(part_files(destination.parent))

        # After the next command: consistent, and no dead process still holds quota.
        tally.problems += [
            f"run {run_index} {kind}/{trigger} after rerun: {p}"
            for p in ledger_problems(db, dead_reservations_allowed=kind not in ("upload", "backup"))
        ]

    # Every object the ledger holds is really on the network, byte for byte.
    lost = 0
    for row in ledger_rows(db, "SELECT id, namespace, name, sha256 FROM objects"):
        target = work / "final" / f"{row['id']}.bin"
        got = zerog("download", f"{row['namespace']}/{row['name']}", "-o", str(target))
        lost += got.exit_code != 0 or target.read_bytes() != sources[row["sha256"]].read_bytes()
    verified = zerog("verify", "--json")
    leftover_reservations = ledger_rows(db, "SELECT COUNT(*) AS n FROM quota_reservations")[0]["n"]

    figures["ledger"] = ledger_backend.name
    figures["runs"] = runs
    figures["runs by command/trigger"] = dict(sorted(tally.runs.items()))
    figures["killed mid-run"] = tally.killed
    figures["finished before the kill"] = tally.finished_first
    figures["first runs that had paid"] = tally.first_paid
    figures["reruns completed"] = tally.reruns_ok
    figures["reruns answering 'already exists' (killed run had recorded it)"] = (
        tally.rerun_already_recorded
    )
    figures["double payments"] = tally.double_payments
    figures["payments by killed runs that no cost row records"] = tally.unrecorded_payments
    figures["dead reservations right after kills (cleaned by the next upload)"] = (
        tally.dead_reservations_after_kill
    )
    figures["reservations left at the end"] = leftover_reservations
    figures["integrity / half-recorded problems"] = len(tally.problems)
    figures["partial files at a destination"] = tally.partial_files
    figures["stale .NAME.*.part temp files left beside destinations"] = tally.stale_part_files
    figures["backup uploads without a backup row"] = backup_objects_without_record(db)
    figures["lost rows"] = lost
    if not ledger_backend.is_postgres:
        figures["ledger integrity"] = ledger_rows(db, "PRAGMA integrity_check")[0]

    assert not tally.problems, "\n".join(tally.problems[:15])
    assert tally.double_payments == 0
    assert tally.partial_files == 0
    assert lost == 0
    assert verified.exit_code == 0, verified
    assert leftover_reservations == 0
    assert tally.killed > 0


def _fee(run: Any) -> int:
    """The fee the run itself paid: a payment it recovered from the killed run is not one."""
    try:
        report = run.json
    except ValueError:
        return 0
    if report.get("recovered_payment"):
        return 0
    return int(report["cost"]["neuron"]) if "cost" in report else 0
