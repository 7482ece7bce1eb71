"""`zerog verify` against a devnet: corruption, missing data, a dead network, the lock.

Corruption is real bit rot: the test flips a byte inside one file's stored
segments on every node's disk (the devnet reads segments from disk on every
request), so only that backup goes bad; the devnet's own fault switch
(``corrupt_nodes``) is used too, for a devnet-wide corruption.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess, paused, start_devnet
from zerog_cli.infra.locking import lock_path, read_holder

pytestmark = pytest.mark.devnet


def corrupt_on_disk(devnet: DevnetProcess, root: str) -> int:
    """Flip the first data byte of every stored segment of ``root`` on every node."""
    flipped = 0
    for segment in devnet.data_dir.glob(f"nodes/*/segments/{root.removeprefix('0x')}/*.seg"):
        header, _, data = segment.read_bytes().partition(b"\n")
        segment.write_bytes(header + b"\n" + bytes([data[0] ^ 0xFF]) + data[1:])
        flipped += 1
    return flipped


def make_backups(
    cli: Callable[..., Result], tmp_path: Path, count: int, size: int = 70_000
) -> list[dict]:
    made = []
    for index in range(count):
        source = tmp_path / f"part{index}.bin"
        source.write_bytes(os.urandom(size))
        result = cli("backup", "create", str(source), "--label", "parts", "--json")
        assert result.exit_code == 0, result
        made.append(result.json)
    return made


def verifications(home: Path) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(home / "ledger.db") as conn:
        return conn.execute(
            "SELECT backup_id, status, error FROM verifications ORDER BY id"
        ).fetchall()


def test_verify_reports_and_records_a_corrupted_backup(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path, zerog_home: Path
) -> None:
    made = make_backups(cli, tmp_path, 3)
    ids = [m["backup_id"] for m in made]
    silent = cli("verify")
    assert (silent.exit_code, silent.stdout, silent.stderr) == (0, "", ""), "cron: quiet on success"
    first = cli("verify", "-v")
    assert first.exit_code == 0, first
    assert [line.split()[0] for line in first.stdout.splitlines()] == ["=", "=", "="]

    assert corrupt_on_disk(net, made[1]["root"]) >= 1
    bad = cli("verify", "--json")
    assert bad.exit_code == 3, bad
    items = {item["backup_id"]: item for item in bad.json["items"]}
    assert items[ids[1]]["status"] == "mismatch"
    assert "segment 0" in items[ids[1]]["error"]
    assert {items[ids[0]]["status"], items[ids[2]]["status"]} == {"ok"}
    assert bad.json["counts"] == {"ok": 2, "mismatch": 1, "missing": 0, "error": 0}
    recorded = [row for row in verifications(zerog_home) if row[1] == "mismatch"]
    assert recorded and recorded[-1][0] == ids[1] and "segment 0" in recorded[-1][2]

    human = cli("verify", str(ids[1]))
    assert human.exit_code == 3
    assert human.stdout.startswith(f"! {ids[1]} default/parts/")
    assert "1 mismatch" in human.stderr
    listed = {b["id"]: b for b in cli("backup", "ls", "--json").json["backups"]}
    assert listed[ids[1]]["last_status"] == "mismatch"
    assert listed[ids[0]]["last_status"] == "ok"
    assert 'zerog_backups_failed{namespace="default"} 1.0' in cli("metrics", "show").stdout

    restored = tmp_path / "restored.bin"
    refused = cli("backup", "restore", str(ids[1]), "-o", str(restored))
    assert refused.exit_code == 3
    assert not restored.exists()
    assert not list(tmp_path.glob(".restored.bin.*"))

    net.set_faults(corrupt_nodes=[0, 1])
    everywhere = cli("verify", str(ids[0]), "--json")
    assert everywhere.exit_code == 3
    assert everywhere.json["items"][0]["status"] == "mismatch"
    net.clear_faults()
    assert cli("verify", str(ids[0]), str(ids[2])).exit_code == 0


def test_backups_unknown_to_the_network_are_missing(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_backups(cli, tmp_path, 1)
    with start_devnet(tmp_path / "fresh-devnet", nodes=1) as fresh:
        monkeypatch.setenv("ZEROG_DEVNET_URL", fresh.base_url)
        result = cli("verify", str(made[0]["backup_id"]))
    assert result.exit_code == 3
    assert result.stdout.startswith(f"- {made[0]['backup_id']} default/parts/")
    assert "no storage node" in result.stdout


def test_an_unreachable_network_is_exit_6_and_stops_early(
    cli: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    zerog_home: Path,
    refused_port: int,
) -> None:
    made = make_backups(cli, tmp_path, 4, size=3000)
    monkeypatch.setenv("ZEROG_DEVNET_URL", f"http://127.0.0.1:{refused_port}")
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "1")
    result = cli("verify", "--json")
    assert result.exit_code == 6, result
    document = result.json
    assert document["stopped"] == "network unavailable"
    assert document["counts"]["error"] == 3
    assert len(document["not_checked"]) == len(made) - 3
    assert all(status == "error" for _, status, _ in verifications(zerog_home)[-3:])


def _slow_verify(net: DevnetProcess, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ZEROG_DEVNET_URL": net.base_url}
    return subprocess.Popen(
        [sys.executable, "-m", "zerog_cli", "verify", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _wait_for_holder(home: Path, process: subprocess.Popen[bytes]) -> int:
    path = lock_path(home, "verify")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        holder = read_holder(path)
        if holder is not None and holder.pid == process.pid:
            return holder.pid
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("the verify run never took the lock")


def test_two_runs_started_together_one_runs_one_reports_the_lock(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path
) -> None:
    make_backups(cli, tmp_path, 3, size=5000)
    net.set_faults(latency_ms=400, targets=["indexer", "node"])
    started = time.monotonic()
    runs = [_slow_verify(net, "--json"), _slow_verify(net, "--json")]
    finished: dict[int, float] = {}
    try:
        while len(finished) < len(runs) and time.monotonic() - started < 120:
            for index, process in enumerate(runs):
                if index not in finished and process.poll() is not None:
                    finished[index] = time.monotonic() - started
                    # The first to end is the refused run: the other may now go fast.
                    net.clear_faults()
            time.sleep(0.02)
    finally:
        net.clear_faults()
    outcomes = []
    for index, process in enumerate(runs):
        out, err = process.communicate(timeout=30)
        outcomes.append((process.returncode, out.decode(), err.decode(), finished[index]))
    codes = sorted(code for code, *_ in outcomes)
    assert codes == [0, 9], outcomes
    winner = next(o for o in outcomes if o[0] == 0)
    loser = next(o for o in outcomes if o[0] == 9)
    assert json.loads(winner[1])["checked"] == 3
    assert loser[3] < winner[3], "the refused run exits at once, it does not wait"
    error = json.loads(loser[1])
    assert error["schema"] == "zerog.error/1"
    assert error["error"]["exit_code"] == 9
    assert error["error"]["kind"] == "locked"
    assert "another run holds the lock" in loser[2]
    assert "zerog verify (pid" in loser[2]
    assert "--wait-lock" in loser[2]
    assert loser[2].count("\n") == 1


def test_wait_lock_waits_for_the_running_verify(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path, zerog_home: Path
) -> None:
    make_backups(cli, tmp_path, 3, size=5000)
    net.set_faults(latency_ms=500, targets=["indexer", "node"])
    first = _slow_verify(net)
    try:
        pid = _wait_for_holder(zerog_home, first)
        # The first run is paused until the second says it waits, so it still holds the
        # lock however long the second takes to start; then both finish at normal speed.
        with paused(first):
            second = _slow_verify(net, "--wait-lock")
            assert second.stderr is not None
            waiting = second.stderr.readline()
    finally:
        net.clear_faults()
    _, rest = second.communicate(timeout=120)
    assert first.wait(timeout=60) == 0
    assert second.returncode == 0, waiting + rest
    assert f"waiting for the verify lock held by zerog verify (pid {pid}" in waiting.decode()


def test_the_lock_is_released_when_a_run_is_killed(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path, zerog_home: Path
) -> None:
    make_backups(cli, tmp_path, 2, size=5000)
    net.set_faults(latency_ms=500, targets=["indexer", "node"])
    victim = _slow_verify(net)
    try:
        _wait_for_holder(zerog_home, victim)
        os.kill(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=30)
    finally:
        net.clear_faults()
    assert victim.returncode == -signal.SIGKILL
    after = cli("verify", "-v")
    assert after.exit_code == 0, after
    assert "another run holds the lock" not in after.stderr


def test_max_duration_stops_between_backups_and_the_next_run_continues(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path
) -> None:
    made = make_backups(cli, tmp_path, 4, size=5000)
    cli("verify")  # everything verified once: the rotation starts from a clean slate
    ids = [m["backup_id"] for m in made]
    everyone = {b["id"] for b in cli("backup", "ls", "--json").json["backups"]}
    net.set_faults(latency_ms=150, targets=["indexer", "node"])
    runs = []
    try:
        while len(runs) < 20 and sum(len(r["items"]) for r in runs) < len(everyone):
            result = cli("verify", "--max-duration", "1s", "--json")
            assert result.exit_code == 0, result
            runs.append(result.json)
    finally:
        net.clear_faults()
    sequence = [item["backup_id"] for run in runs for item in run["items"]]
    assert len(runs) >= 2, "each backup takes long enough that 1s cannot cover them all"
    assert sorted(sequence[: len(everyone)]) == sorted(everyone), "no backup twice in a round"
    for previous, following in itertools.pairwise(runs):
        assert previous["stopped"] == "max-duration reached"
        assert previous["not_checked"][0] == following["items"][0]["backup_id"]
    assert set(ids) <= set(sequence)
