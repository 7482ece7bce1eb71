"""Real Prometheus components for the monitoring tests: find them, install them, run them.

`ensure_prometheus_tools()` returns the paths of ``promtool``, ``prometheus``,
node_exporter and the Pushgateway. When any is missing it installs Debian's
``prometheus``, ``prometheus-node-exporter`` and ``prometheus-pushgateway``
with ``apt-get`` (as `make test` promises), so these tests never skip. The
Debian packages' services are not started by the install in a container
(``policy-rc.d``); the tests start their own processes on 127.0.0.1 with a free
port, and always stop them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

DEBIAN_PACKAGES = ("prometheus", "prometheus-node-exporter", "prometheus-pushgateway")
BINARIES = {
    "promtool": ("promtool",),
    "prometheus": ("prometheus",),
    "node_exporter": ("prometheus-node-exporter", "node_exporter"),
    "pushgateway": ("prometheus-pushgateway", "pushgateway"),
}
NO_PROXY = {"http": "", "https": ""}
APT_TIMEOUT = 900


class ToolsUnavailable(RuntimeError):
    """The binaries are missing and could not be installed."""


@dataclass(frozen=True)
class PrometheusTools:
    promtool: Path
    prometheus: Path
    node_exporter: Path
    pushgateway: Path


def _find() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for key, names in BINARIES.items():
        for name in names:
            path = shutil.which(name) or shutil.which(
                name, path="/usr/bin:/usr/sbin:/usr/local/bin"
            )
            if path:
                found[key] = Path(path)
                break
    return found


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args]
    if os.geteuid() != 0 and shutil.which("sudo"):
        command = ["sudo", "-n", *command]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT, check=False
    )


def install_debian_packages() -> None:
    """``apt-get install -y`` the three packages (refreshing the lists once if needed)."""
    if shutil.which("apt-get") is None:
        raise ToolsUnavailable("promtool and friends are missing and apt-get is not available")
    args = ("install", "-y", "--no-install-recommends", *DEBIAN_PACKAGES)
    result = _apt_get(*args)
    if result.returncode != 0:
        _apt_get("update")
        result = _apt_get(*args)
    if result.returncode != 0:
        raise ToolsUnavailable(f"apt-get install failed: {result.stderr[-1500:]}")


def ensure_prometheus_tools() -> PrometheusTools:
    """The four binaries, installed from Debian first when any is missing."""
    found = _find()
    if set(found) != set(BINARIES):
        install_debian_packages()
        found = _find()
    missing = sorted(set(BINARIES) - set(found))
    if missing:
        raise ToolsUnavailable(f"still missing after apt-get install: {', '.join(missing)}")
    return PrometheusTools(**found)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        deadline = time.monotonic() + 30
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
