"""Shared fixtures: every test gets its own ZEROG_HOME, and a way to run the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.devnet_harness", "tests.ledger_backends"]

REPO = Path(__file__).resolve().parent.parent

# A throwaway test wallet: never the devnet's published key, so the secret scan
# in tests/reliability can prove that this value is never written anywhere.
TEST_PRIVATE_KEY = "0xa0ac914a2b37a6a6c604ac4362218d5692109c13aea88ac6cece7e8f175520a5"
TEST_ADDRESS = "0x9C6b7c376CC2204EeDAB4480Ccf280a7d76154ac"

settings.register_profile(
    "zerog",
    # The same examples on every `make test` run, so a property test passes or fails the
    # same way each time; `make soak` (ZEROG_SOAK=1) draws fresh ones. No timing checks:
    # a loaded machine generates examples slowly, which is no finding.
    derandomize=os.environ.get("ZEROG_SOAK", "") in ("", "0"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("zerog")

ISOLATED_ENV_PREFIXES = ("ZEROG_",)
# Test-harness settings, not zerog configuration: kept when the environment is cleared (the
# chain and indexer switches are read when a test's own devnet starts, after the clearing).
HARNESS_ENV_NAMES = (
    "ZEROG_CONFORMANCE_DIR",
    "ZEROG_NPM_CACHE",
    "ZEROG_SOAK",
    "ZEROG_CHAOS_SEED",
    "ZEROG_CRASH_SEED",
    "ZEROG_TEST_CHAIN",
    "ZEROG_TEST_INDEXER",
)
ISOLATED_ENV_NAMES = (
    "CIRCLE_API_KEY",
    "DATABASE_PASSWORD",
    "JWT_SECRET",
    "ENCRYPTION_KEY",
    "CATALOG_KEY",
    "NO_COLOR",
)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @classmethod
    def of_process(cls, completed: subprocess.CompletedProcess[bytes]) -> Result:
        """A finished child's exit code and output, decoded as UTF-8 (bad bytes replaced)."""
        return cls(
            completed.returncode,
            completed.stdout.decode("utf-8", "replace"),
            completed.stderr.decode("utf-8", "replace"),
        )

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        tail_out, tail_err = self.stdout[-500:], self.stderr[-800:]
        return f"Result(exit={self.exit_code}, stdout={tail_out!r}, stderr={tail_err!r})"


def clear_zerog_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every zerog variable and secret from the environment, harness switches aside."""
    for name in list(os.environ):
        if name.startswith(ISOLATED_ENV_PREFIXES) and name not in HARNESS_ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
    for name in ISOLATED_ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)


@pytest.fixture(autouse=True)
def zerog_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ZEROG_HOME at a temp folder and clear every zerog variable and secret."""
    clear_zerog_environment(monkeypatch)
    home = tmp_path / "zerog-home"
    monkeypatch.setenv("ZEROG_HOME", str(home))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return home


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses every connection while the test runs: bound and never
    listening, so no other process can take it (as it could a port picked and released)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


@pytest.fixture
def zerog(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run the CLI in-process: ``zerog("ledger", "status", "--json")``."""
    from zerog_cli.cli.app import run

    def invoke(*args: str, stdin: str | None = None) -> Result:
        capsys.readouterr()
        if stdin is not None:
            import io

            old_stdin = sys.stdin
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8")), encoding="utf-8")
            try:
                code = run(list(args))
            finally:
                sys.stdin = old_stdin
        else:
            code = run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def run_cli_process(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> Result:
    """Run ``python -m zerog_cli ARGS`` in a child process (for races, crashes, locks)."""
    full_env = {**os.environ, **(env or {})}
    completed = subprocess.run(
        [sys.executable, "-m", "zerog_cli", *args],
        input=stdin,
        capture_output=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    return Result.of_process(completed)


@pytest.fixture
def cli_process() -> Callable[..., Result]:
    return run_cli_process


@pytest.fixture
def test_key_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Set the storage key secret to the throwaway test key."""
    monkeypatch.setenv("ZEROG_STORAGE_PRIVATE_KEY", TEST_PRIVATE_KEY)
    yield TEST_PRIVATE_KEY
