"""Ctrl-C, SIGTERM (systemd stop) and a reader that closes stdout, as cron and systemd do them.

A signal mid-upload says in one line what was interrupted and what is left,
exits 130 (SIGINT) or 143 (SIGTERM), keeps the payment journal and the
ledger whole, and a rerun records the payment without paying again. A
reader that stops early (`| head -1`) ends zerog quietly with exit 141.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.cron.conftest import run_as_cron, start_as_cron
from tests.cron.local_fs import add_objects, integrity, rows
from tests.devnet_harness import DevnetProcess
from zerog_cli.errors import ExitCode


def _signal_when(process: subprocess.Popen[str], marker: str, signal_number: int) -> list[str]:
    """Read stderr until a line contains ``marker``, then send the signal; all stderr lines."""
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if marker in line:
            process.send_signal(signal_number)
            break
    lines += process.stderr.readlines()
    process.wait(timeout=120)
    return lines


def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = run_as_cron("ns", "create", "backups", user_home=tmp_path, home=home)
    assert created.exit_code == 0, created
    add_objects(home / "ledger.db", "backups", 3000)  # far more than a pipe buffer holds
    for args in (["ns", "objects", "backups"],) * 4 + (["ns", "objects", "backups", "--json"],):
        process = start_as_cron(args, home, tmp_path)
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # `| head -1`
        stderr = process.stderr.read()
        process.wait(timeout=60)
        assert first.strip(), args
        assert process.returncode == ExitCode.STDOUT_CLOSED, (args, stderr)
        assert stderr == "", (args, stderr)


def _ledger_rows(home: Path, sql: str) -> list[tuple[object, ...]]:
    return rows(home / "ledger.db", sql)


@pytest.mark.parametrize(
    ("signal_number", "exit_code", "name"),
    [
        (signal.SIGINT, ExitCode.INTERRUPTED, "Ctrl-C (SIGINT)"),
        (signal.SIGTERM, ExitCode.TERMINATED, "SIGTERM"),
    ],
)
def test_a_signal_after_payment_says_so_and_a_rerun_records_it_once(
    net: DevnetProcess,
    tmp_path: Path,
    signal_number: int,
    exit_code: int,
    name: str,
) -> None:
    net.clear_faults()
    home = tmp_path / "home"
    data = tmp_path / "orders.db"
    data.write_bytes(os.urandom(1_500_000))
    # Slow storage nodes: the payment goes through at once, the upload then waits.
    net.set_faults(latency_ms=1500, targets=["node"])
    process = start_as_cron(
        ["upload", str(data), "-v", "--json"], home, tmp_path, ZEROG_DEVNET_URL=net.base_url
    )
    try:
        stderr = _signal_when(process, "submitted", signal_number)
    finally:
        net.clear_faults()
    assert process.stdout is not None
    stdout = process.stdout.read()
    assert process.returncode == exit_code, (stdout, stderr)
    errors = [line for line in stderr if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in "".join(stderr)
    match = re.search(r"payment (0x[0-9a-f]{64}) sent, not yet recorded", errors[0])
    assert match, errors
    assert f"stopped by {name}" in errors[0]
    assert "rerun it to record the payment without paying again" in errors[0]
    tx_hash = match.group(1)
    document = json.loads(stdout)
    assert document["schema"] == "zerog.error/1"
    assert document["error"]["kind"] == "interrupted"
    assert document["error"]["exit_code"] == exit_code
    # Nothing lost: the journal holds the payment, nothing half-recorded.
    assert integrity(home / "ledger.db") == "ok"
    assert _ledger_rows(home, "SELECT tx_hash FROM pending_payments") == [(tx_hash,)]
    assert _ledger_rows(home, "SELECT COUNT(*) FROM objects") == [(0,)]
    assert _ledger_rows(home, "SELECT COUNT(*) FROM quota_reservations") == [(0,)]

    again = run_as_cron(
        "upload",
        str(data),
        "--json",
        user_home=tmp_path,
        home=home,
        env={"ZEROG_DEVNET_URL": net.base_url},
    )
    assert again.exit_code == 0, again
    assert again.json["recovered_payment"] == tx_hash
    assert _ledger_rows(home, "SELECT COUNT(*) FROM pending_payments") == [(0,)]
    assert _ledger_rows(home, "SELECT COUNT(*) FROM cost_tracking") == [(1,)]
    assert integrity(home / "ledger.db") == "ok"


def test_sigterm_mid_download_leaves_no_partial_file(
    net: DevnetProcess, tmp_path: Path, cron: Callable[..., Result]
) -> None:
    net.clear_faults()
    home = tmp_path / "home"
    data = tmp_path / "users.db"
    data.write_bytes(os.urandom(600_000))
    env = {"ZEROG_DEVNET_URL": net.base_url}
    uploaded = cron("upload", str(data), "--json", home=home, env=env)
    assert uploaded.exit_code == 0, uploaded
    target = tmp_path / "restore"
    target.mkdir()
    net.set_faults(latency_ms=1500, targets=["node"])
    process = start_as_cron(
        ["download", uploaded.json["root"], "-o", str(target / "users.db"), "-v"],
        home,
        tmp_path,
        **env,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(target.glob(".users.db.*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(target.glob(".users.db.*.part")), "the download never started writing"
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        stderr = process.stderr.readlines()
        process.wait(timeout=120)
    finally:
        net.clear_faults()
    assert process.returncode == ExitCode.TERMINATED, stderr
    errors = [line for line in stderr if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "`zerog download` stopped by SIGTERM before it finished" in errors[0]
    assert "rerun it to finish" in errors[0]
    assert list(target.iterdir()) == []
    assert integrity(home / "ledger.db") == "ok"
