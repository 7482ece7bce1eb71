"""Devnet process control: detached start, status, stop, foreground run, refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.devnet_harness import rpc
from zerog_cli.devnet import control
from zerog_cli.devnet.network import Devnet, DevnetConfig, parse_shards
from zerog_cli.errors import UsageError

pytestmark = pytest.mark.devnet


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_detached_start_status_and_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "devnet"
    info = control.start_detached(DevnetConfig(port=0, data_dir=data_dir, nodes=1))
    try:
        assert info.url.startswith("http://127.0.0.1:")
        assert rpc(info.rpc_url, "eth_chainId") == "0x7a69"
        assert len(info.node_urls) == 1
        assert "dev_account_key" not in info.to_json()
        state = control.status(data_dir)
        assert state.running and state.health is not None
        assert state.health["pid"] == info.pid
        with pytest.raises(UsageError, match="already running"):
            control.start_detached(DevnetConfig(port=0, data_dir=data_dir))
    finally:
        result = control.stop(data_dir)
    assert result.stopped and result.pid == info.pid
    assert not _alive(info.pid)
    assert not control.status(data_dir).running
    assert not (data_dir / control.PID_FILE).exists()
    assert "listening" in (data_dir / control.LOG_FILE).read_text()
    assert not control.stop(data_dir).stopped


def test_stop_refuses_a_pid_that_is_not_a_devnet(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / control.PID_FILE).write_text(f"{sleeper.pid}\n")
        with pytest.raises(UsageError, match="not a devnet"):
            control.stop(tmp_path)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_pid_file_is_reported_and_cleaned(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    (tmp_path / control.PID_FILE).write_text(finished.stdout.decode())
    assert control.status(tmp_path).problem == "stale pid file"
    assert not control.stop(tmp_path).stopped
    assert not (tmp_path / control.PID_FILE).exists()


def test_foreground_run_until_stopped(tmp_path: Path) -> None:
    ready: list[control.DevnetInfo] = []
    stop = threading.Event()
    config = DevnetConfig(port=0, data_dir=tmp_path / "fg")
    runner = threading.Thread(
        target=control.run_foreground,
        args=(config,),
        kwargs={"on_ready": ready.append, "stop_event": stop},
    )
    runner.start()
    try:
        deadline = time.monotonic() + 60  # a liveness bound: ready in about 1 s when idle
        while not ready and time.monotonic() < deadline:
            stop.wait(0.05)
        assert ready, "the devnet did not become ready"
        assert rpc(ready[0].rpc_url, "net_version") == "31337"
        assert (tmp_path / "fg" / control.STATE_FILE).exists()
        with pytest.raises(UsageError, match="another devnet"):
            control.run_foreground(DevnetConfig(port=0, data_dir=tmp_path / "fg"))
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert not (tmp_path / "fg" / control.STATE_FILE).exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com", ""])
def test_non_loopback_hosts_are_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(UsageError, match="loopback"):
        Devnet(DevnetConfig(host=host, port=0, data_dir=tmp_path))
    with pytest.raises(UsageError, match="loopback"):
        control.start_detached(DevnetConfig(host=host, port=0, data_dir=tmp_path))


def test_localhost_binds_loopback(tmp_path: Path) -> None:
    with Devnet(DevnetConfig(host="localhost", port=0, data_dir=tmp_path)) as devnet:
        assert devnet.base_url.startswith("http://127.0.0.1:")
        assert rpc(devnet.rpc_url, "eth_chainId") == "0x7a69"


def test_busy_port_and_other_chain_id_are_usage_errors(tmp_path: Path) -> None:
    first = Devnet(DevnetConfig(port=0, data_dir=tmp_path / "a"))
    try:
        with pytest.raises(UsageError, match="cannot listen"):
            Devnet(DevnetConfig(port=first.port, data_dir=tmp_path / "b"))
    finally:
        first.stop()
    with pytest.raises(UsageError, match="chain id 31337"):
        Devnet(DevnetConfig(port=0, data_dir=tmp_path / "a", chain_id=16602))


def test_shard_specs() -> None:
    assert parse_shards("0/2,1/2") == [(0, 2), (1, 2)]
    for bad in ("0/3", "2/2", "x", "1"):
        with pytest.raises(UsageError):
            parse_shards(bad)


def test_module_entry_point_refuses_bad_input(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "zerog_cli.devnet"]
    refused = subprocess.run(
        [*base, "up", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and b"loopback" in refused.stderr
    assert b"Traceback" not in refused.stderr
    bad_rate = subprocess.run(
        [*base, "up", "--fail-rate", "3", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert bad_rate.returncode == 2 and b"fail_rate" in bad_rate.stderr
    status = subprocess.run(
        [*base, "status", "--data-dir", str(tmp_path), "--json"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 1 and b'"running": false' in status.stdout
