"""Real Prometheus components for the monitoring tests: find them and run them.

`ensure_prometheus_tools()` returns the paths of ``promtool``, ``prometheus``,
node_exporter and the Pushgateway, after `tools.test_tools.ensure` has put
Debian's ``prometheus``, ``prometheus-node-exporter`` and
``prometheus-pushgateway`` in place: the same step `make test` runs before
pytest starts, so these tests never skip and never install halfway through a
run. The Debian packages' services are not started by the install in a
container (``policy-rc.d``); the tests start their own processes on 127.0.0.1
with a free port, and always stop them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from tools import test_tools

NO_PROXY = {"http": "", "https": ""}


@dataclass(frozen=True)
class PrometheusTools:
    promtool: Path
    prometheus: Path
    node_exporter: Path
    pushgateway: Path


def ensure_prometheus_tools() -> PrometheusTools:
    """The four binaries, installed by the test-tools step when any is missing."""
    test_tools.ensure(["prometheus"])
    return PrometheusTools(
        promtool=test_tools.command_path("promtool"),
        prometheus=test_tools.command_path("prometheus"),
        node_exporter=test_tools.command_path("prometheus-node-exporter"),
        pushgateway=test_tools.command_path("prometheus-pushgateway"),
    )


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports: all are held while they are picked, so the
    kernel cannot hand out a port just released by the previous pick."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(self.url + path, params=params, timeout=10, proxies=NO_PROXY)


@contextlib.contextmanager
def run_server(
    argv: Sequence[str], port: int, log_path: Path, ready_path: str = "/metrics"
) -> Iterator[Server]:
    """Start ``argv`` (which listens on 127.0.0.1:``port``), wait until it answers, stop it."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + 120  # a liveness bound: start-up at load 10+ is slow
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited early: {server.log()[-2000:]}")
            try:
                if server.get(ready_path).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not answer in time: {server.log()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def node_exporter_argv(binary: Path, port: int, textfile_dir: Path) -> list[str]:
    """node_exporter with only the textfile collector, on loopback."""
    return [
        str(binary),
        f"--web.listen-address=127.0.0.1:{port}",
        "--collector.disable-defaults",
        "--collector.textfile",
        f"--collector.textfile.directory={textfile_dir}",
    ]


def pushgateway_argv(binary: Path, port: int) -> list[str]:
    return [str(binary), f"--web.listen-address=127.0.0.1:{port}"]


def prometheus_argv(binary: Path, port: int, config: Path, data_dir: Path) -> list[str]:
    return [
        str(binary),
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--storage.tsdb.path={data_dir}",
    ]
