"""Every documented exit code is reachable, each from a real command line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.devnet_harness import DevnetProcess, paused
from zerog_cli.errors import ExitCode
from zerog_cli.infra.locking import lock_path, read_holder


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def test_0_success(cli, tmp_path: Path) -> None:
    assert cli("hash", str(_file(tmp_path, "a", 10))).exit_code == ExitCode.OK


def test_1_internal_error(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerog_cli.services import hashing

    monkeypatch.setattr(hashing, "describe", lambda *a, **k: 1 / 0)
    result = cli("hash", "whatever")
    assert result.exit_code == ExitCode.INTERNAL
    assert "internal error: ZeroDivisionError" in result.stderr


def test_2_usage(cli) -> None:
    assert cli("upload", "--replicas", "0", "x").exit_code == ExitCode.USAGE


def test_3_integrity(cli, net: DevnetProcess, tmp_path: Path) -> None:
    root = cli("upload", str(_file(tmp_path, "b", 5000)), "--json").json["root"]
    net.set_faults(corrupt_nodes=[0, 1])
    result = cli("download", root, "-o", str(tmp_path / "out"))
    assert result.exit_code == ExitCode.INTEGRITY
    assert not (tmp_path / "out").exists()


def test_4_quota(cli, tmp_path: Path) -> None:
    cli("quota", "set", "tiny", "--storage", "1KB")
    assert (
        cli("upload", str(_file(tmp_path, "c", 5000)), "--as", "tiny").exit_code == ExitCode.QUOTA
    )


def test_5_permission(cli) -> None:
    cli("ns", "create", "private", "--as", "alice")
    assert cli("ns", "objects", "private", "--as", "mallory").exit_code == ExitCode.PERMISSION


def test_6_network(zerog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZEROG_DEVNET_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "1")
    result = zerog("upload", str(_file(tmp_path, "d", 10)))
    assert result.exit_code == ExitCode.NETWORK


def test_7_not_found(cli) -> None:
    assert cli("download", "nowhere/x").exit_code == ExitCode.NOT_FOUND


def test_8_config(zerog) -> None:
    assert zerog("--profile", "mainnet", "auth", "address").exit_code == ExitCode.CONFIG


def test_9_lock_held(cli, net: DevnetProcess, tmp_path: Path, zerog_home: Path) -> None:
    """The first run is stopped (SIGSTOP) while it holds the lock, so the second one,
    however slowly it starts, finds the lock held; the slow network keeps the first
    from finishing between taking the lock and being stopped."""
    cli("backup", "create", str(_file(tmp_path, "e", 300_000)))
    net.set_faults(latency_ms=2000)
    env = {**os.environ, "ZEROG_HOME": str(zerog_home), "ZEROG_DEVNET_URL": net.base_url}
    first = subprocess.Popen([sys.executable, "-m", "zerog_cli", "verify", "--all"], env=env)
    try:
        lock = lock_path(zerog_home, "verify")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            holder = read_holder(lock)
            if holder is not None and holder.pid == first.pid:
                break
            assert first.poll() is None, "the first verify ended before it took the lock"
            time.sleep(0.02)
        with paused(first):
            assert first.poll() is None and read_holder(lock) == holder
            second = subprocess.run(
                [sys.executable, "-m", "zerog_cli", "verify", "--all"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        assert second.returncode == ExitCode.LOCKED, second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        net.clear_faults()
        first.wait(60)
    assert first.returncode == ExitCode.OK
