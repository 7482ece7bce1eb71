"""What the benches share: random input files, a child's wall time and peak RSS, and a
devnet on 127.0.0.1 with the environment a zerog child needs to use it.

The bench scripts run as ``python bench/NAME.py`` from the repository; importing this
module puts the repository on ``sys.path`` first, so they can import ``zerog_cli``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    from zerog_cli.devnet.control import DevnetInfo

MB = 1_000_000
BENCH_USER = "bench"


def write_random(path: Path, size: int) -> Path:
    """``size`` fresh random bytes at ``path`` (its folder made), written 8 MiB at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        left = size
        while left:
            block = os.urandom(min(left, 8 << 20))
            handle.write(block)
            left -= len(block)
    return path


# The measured command runs under a tiny Python parent: a child's peak RSS as the
# kernel reports it (RUSAGE_CHILDREN: the largest of the waited-for descendants)
# includes the memory of the process that spawned it, so the bench's own buffers
# must not be that parent.
_MEASURE = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True)\n"
    "sys.stdout.buffer.write(done.stdout)\n"
    "sys.stderr.buffer.write(done.stderr)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(done.returncode)\n"
)


def measured(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and stdout of one child process; exits the bench
    with the child's stderr when it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-S", "-c", _MEASURE, *argv], env=env, capture_output=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)[:200]} failed: {done.stderr.decode()[-800:]}")
    *output, peak = done.stdout.decode().splitlines()
    return elapsed, int(peak), "\n".join(output)


@contextlib.contextmanager
def bench_devnet(work: Path, name: str = "devnet") -> Iterator[tuple[DevnetInfo, dict[str, str]]]:
    """A devnet with data in ``work/name``, and the environment of a zerog child that uses
    it: a home of its own (``work/home-name``), no keyring, no proxy for 127.0.0.1, acting
    as the ``bench`` user on the premium tier, bytecode cached. The devnet stops on exit."""
    from zerog_cli.devnet import control
    from zerog_cli.devnet.network import DevnetConfig

    data_dir = work / name
    info = control.start_detached(DevnetConfig(port=0, data_dir=data_dir))
    try:
        env = {
            **os.environ,
            "ZEROG_HOME": str(work / f"home-{name}"),
            "ZEROG_DEVNET_URL": info.url,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "NO_PROXY": "127.0.0.1,localhost",
            "ZEROG_USER": BENCH_USER,
        }
        # zerog runs as an installed package does, with its bytecode cached (pip compiles
        # it at install): under PYTHONDONTWRITEBYTECODE an editable checkout would compile
        # its modules from source in every child (bench/startup.py does the same). The
        # quota command below writes the cache.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        tier = [sys.executable, "-m", "zerog_cli", "quota", "set", BENCH_USER, "--tier", "premium"]
        subprocess.run([*tier, "-q"], env=env, check=True, capture_output=True)
        yield info, env
    finally:
        control.stop(data_dir)
