"""What the devnet's helper processes (anvil, the official indexer) share: where the
test tools' npm packages are cached, a free loopback port, waiting for a process to
be ready, and stopping one."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from zerog_cli.devnet.constants import LOOPBACK_HOST
from zerog_cli.errors import NetworkUnavailable

POLL_INTERVAL = 0.1


def npm_cache_folders() -> list[Path]:
    """``$ZEROG_NPM_CACHE``, then a checkout's ``.cache/npm-interop`` (`make test-tools`)."""
    folders = []
    configured = os.environ.get("ZEROG_NPM_CACHE")
    if configured:
        folders.append(Path(configured).expanduser())
    folders.append(Path(__file__).resolve().parents[2] / ".cache" / "npm-interop")
    return folders


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK_HOST, 0))
        return int(probe.getsockname()[1])


def wait_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    name: str,
    log_path: Path,
    timeout: float,
    late: str,
) -> None:
    """Ask ``ready`` until it says yes; NetworkUnavailable when ``name``'s process exits
    first, or saying ``late`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NetworkUnavailable(
                f"{name} exited at start-up (code {process.returncode}); see {log_path}"
            )
        if ready():
            return
        time.sleep(POLL_INTERVAL)
    raise NetworkUnavailable(late)


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL when it has not exited within ``timeout`` seconds; reaped."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
