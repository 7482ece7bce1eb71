"""No silent fallbacks: the devnet profile never guesses 127.0.0.1:8545, and usage,
configuration and not-found answers never wait for a network.

`zerog devnet up --data-dir D` records D in ZEROG_HOME, so `devnet status`,
`devnet faults`, `devnet down` and the devnet profile all find that devnet.
"""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.cron.conftest import cron_environment

NO_DEVNET = "no devnet running in {folder}; start one with `zerog devnet up`"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "zerog-home"


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders.db"
    path.write_bytes(b"orders " * 3000)
    return path


def test_network_commands_without_a_devnet_are_exit_6_and_say_where_they_looked(
    cron: Callable[..., Result], home: Path, data_file: Path
) -> None:
    message = NO_DEVNET.format(folder=home / "devnet")
    for args in (
        ("upload", str(data_file)),
        ("backup", "create", str(data_file)),
        ("download", "0x" + "ab" * 32, "-o", "-"),
        ("infer", "providers"),
    ):
        result = cron(*args, home=home)
        assert result.exit_code == 6, (args, result)
        assert result.stderr.strip().splitlines()[-1] == f"error: {message}", (args, result)

    status = cron("status", "--json", home=home)
    assert status.exit_code == 6, status
    assert message in [problem["problem"] for problem in status.json["problems"]]


def test_a_devnet_that_died_is_not_running(
    cron: Callable[..., Result], home: Path, data_file: Path
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = home / "devnet"
    folder.mkdir(parents=True)
    state = {"url": f"http://127.0.0.1:{_closed_port()}", "pid": dead.pid}
    (folder / "devnet.json").write_text(json.dumps(state), encoding="utf-8")
    result = cron("upload", str(data_file), home=home)
    assert result.exit_code == 6, result
    assert NO_DEVNET.format(folder=folder) in result.stderr


def test_usage_config_and_not_found_answers_never_need_the_network(
    cron: Callable[..., Result], home: Path, data_file: Path, tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{_closed_port()}"
    testnet = {"ZEROG_RPC_URL": nowhere, "ZEROG_INDEXER_URL": nowhere}
    answers = {
        ("upload", str(tmp_path / "absent.db")): 2,
        ("verify", "--subset", "9/2"): 2,
        ("verify", "--all"): 7,
        ("verify", "42"): 7,
        ("backup", "restore", "42", "-o", str(tmp_path / "out")): 7,
        ("download", "nowhere/x"): 7,
    }
    for args, code in answers.items():
        result = cron(*args, home=home)
        assert result.exit_code == code, (args, result)
        assert "no devnet running" not in result.stderr, (args, result)
    keyless = cron("--profile", "testnet", "upload", str(data_file), home=home, env=testnet)
    assert keyless.exit_code == 8, keyless
    assert "ZEROG_STORAGE_PRIVATE_KEY" in keyless.stderr
    assert "network:" not in keyless.stderr, "the key is looked up before any network call"


def test_devnet_up_with_a_data_dir_is_what_status_faults_the_profile_and_down_use(
    cron: Callable[..., Result], home: Path, data_file: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "elsewhere" / "devnet-data"
    up = cron("devnet", "up", "--detach", "--port", "0", "--data-dir", str(data_dir), home=home)
    assert up.exit_code == 0, up
    try:
        assert "the devnet profile now uses it" in up.stderr
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "elsewhere").stat().st_mode) == 0o700

        status = cron("devnet", "status", "--json", home=home)
        assert status.exit_code == 0, status
        assert status.json["data_dir"] == str(data_dir)
        assert status.json["running"] is True

        faults = cron("devnet", "faults", "--latency-ms", "1", "--json", home=home)
        assert faults.exit_code == 0, faults
        assert faults.json["latency_ms"] == 1
        assert cron("devnet", "faults", "--clear", home=home).exit_code == 0

        uploaded = cron("upload", str(data_file), "--json", home=home)
        assert uploaded.exit_code == 0, uploaded
        assert cron("ledger", "status", home=home).exit_code == 0
    finally:
        down = cron("devnet", "down", "--json", home=home)
    assert down.exit_code == 0, down
    assert down.json["stopped"] is True
    assert not (home / "devnet.current").exists()
    after = cron("devnet", "status", home=home)
    assert after.exit_code == 6
    gone = cron("upload", str(data_file), "--name", "again.db", home=home)
    assert gone.exit_code == 6, gone
    assert NO_DEVNET.format(folder=home / "devnet") in gone.stderr


def test_a_foreground_devnet_is_recorded_while_it_runs(
    cron: Callable[..., Result], home: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "fg-devnet"
    user_home = tmp_path / "cron-user"
    user_home.mkdir()
    command = ["devnet", "up", "--port", "0", "--data-dir", str(data_dir), "--json"]
    process = subprocess.Popen(
        [sys.executable, "-m", "zerog_cli", *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=cron_environment(user_home, home),
        cwd=user_home,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline()]
        while lines[-1] not in ("}\n", ""):  # the JSON document, printed once it listens
            lines.append(process.stdout.readline())
        started = json.loads("".join(lines))
        assert started["devnet"]["data_dir"] == str(data_dir)
        status = cron("devnet", "status", "--json", home=home)
        assert status.exit_code == 0, status
        assert status.json["devnet"]["url"] == started["devnet"]["url"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert not (home / "devnet.current").exists()
    assert cron("devnet", "status", home=home).exit_code == 6


def test_devnet_up_may_run_in_an_uninitialised_home_and_makes_it_private(
    cron: Callable[..., Result], tmp_path: Path
) -> None:
    default_home = tmp_path / "cron-user" / ".config" / "zerog"
    up = cron("devnet", "up", "--detach", "--port", "0", "--quiet")
    assert up.exit_code == 0, up
    try:
        for folder in (default_home.parent, default_home, default_home / "devnet"):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        status = cron("devnet", "status", "--json")
        assert status.exit_code == 0, status
        assert status.json["data_dir"] == str(default_home / "devnet")
    finally:
        down = cron("devnet", "down")
    assert down.exit_code == 0, down
