"""Run `zerog` the way cron and systemd timers do.

A cron job gets a nearly empty environment (``env -i PATH=/usr/bin:/bin``), no
TTY, often a different ``HOME``, and standard input at EOF or closed. The
`cron` fixture runs ``python -m zerog_cli`` in exactly that situation, from a
scratch working directory, so each test asserts what an operator's crontab
would see: the exit code, the one-line message and what was left on disk.

``HOME`` always points into the test's ``tmp_path`` (never the real one);
``ZEROG_HOME`` is set only when a test passes ``home=``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result

CRON_PATH = f"{Path(sys.executable).parent}:/usr/bin:/bin"


def cron_environment(
    user_home: Path, zerog_home: Path | None = None, **extra: str
) -> dict[str, str]:
    """The variables cron gives a job, plus ``ZEROG_HOME`` when the job sets it."""
    environment = {
        "PATH": CRON_PATH,
        "HOME": str(user_home),
        "LANG": "C.UTF-8",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }
    if zerog_home is not None:
        environment["ZEROG_HOME"] = str(zerog_home)
    for name in ("ZEROG_CONFORMANCE_DIR",):
        if name in os.environ:
            environment[name] = os.environ[name]
    environment.update(extra)
    return environment


def _close_stdin() -> None:
    os.close(0)


def run_as_cron(
    *args: str,
    user_home: Path,
    home: Path | None = None,
    env: dict[str, str] | None = None,
    stdin_closed: bool = False,
    stdin: bytes | None = None,
    timeout: float = 120,
) -> Result:
    """``env -i … python -m zerog_cli ARGS`` with no TTY; stdin at EOF, closed, or ``stdin``."""
    user_home.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        [sys.executable, "-m", "zerog_cli", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        env=cron_environment(user_home, home, **(env or {})),
        cwd=user_home,
        timeout=timeout,
        preexec_fn=_close_stdin if stdin_closed else None,
        check=False,
    )
    return Result.of_process(completed)


def start_as_cron(args: list[str], home: Path, cwd: Path, **env: str) -> subprocess.Popen[str]:
    """Start ``python -m zerog_cli ARGS`` as `run_as_cron` runs it, its output piped as text.

    SIGINT is reset to its default in the child: a test run started in the background
    by a shell (`make test &`) inherits SIGINT ignored, and Python then never turns a
    Ctrl-C into KeyboardInterrupt, so the signal tests would see a command that cannot
    be interrupted.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "zerog_cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cron_environment(cwd, home, **env),
        cwd=cwd,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def cron(tmp_path: Path) -> Callable[..., Result]:
    """``cron("verify", "--all", home=path)``: run a command as a cron job would."""
    user_home = tmp_path / "cron-user"

    def invoke(*args: str, **kwargs: object) -> Result:
        return run_as_cron(*args, user_home=user_home, **kwargs)  # type: ignore[arg-type]

    return invoke
