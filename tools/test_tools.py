"""Every external tool the test suite drives, installed in one step before any test runs.

`make test` (tests/run_suite.py, before pytest), `make test-tools` and each
test that needs a tool call `ensure()`, so a fresh machine gets its tools the
same way whichever of them runs first, and no test installs anything halfway
through the suite.

A tool is one entry in `TOOLS`: the commands it must find on PATH, the Debian
packages that provide them, and, for what Debian does not ship, its own
installer (say, ``npm ci`` of a pinned lock file) with a check that it is in
place. The missing Debian packages of every tool go into one ``apt-get
update`` and one ``apt-get install`` (as root, never interactive); when
everything is present, `ensure()` only looks commands up and checks stamps.

    python tools/test_tools.py ensure [NAME ...]   # install what is missing
    python tools/test_tools.py list                # what is needed and what is present
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools import go_client, ts_sdk  # noqa: E402

APT_TIMEOUT = 900
INSTALL_LOCK = Path(tempfile.gettempdir()) / "zerog-test-tools.lock"
"""Serialises installs by concurrent test runs (several worktrees share one machine)."""


class ToolsUnavailable(RuntimeError):
    """A tool is missing and could not be installed."""


@dataclass(frozen=True)
class Tool:
    """One external tool: what must be on PATH, where Debian has it, what else installs it.

    ``installer`` runs after the Debian packages are in place, whenever
    ``installed()`` says its part is missing. ``installed`` without an
    ``installer`` checks what the Debian packages put off PATH (PostgreSQL's
    server binaries live in /usr/lib/postgresql/<version>/bin).
    """

    name: str
    purpose: str
    commands: tuple[str, ...] = ()
    debian_packages: tuple[str, ...] = ()
    installed: Callable[[], bool] | None = None
    installer: Callable[[], object] | None = None

    def missing_commands(self) -> list[str]:
        return [command for command in self.commands if shutil.which(command) is None]

    def needs_debian_packages(self) -> bool:
        if self.missing_commands():
            return True
        return self.installer is None and self.installed is not None and not self.installed()

    def ready(self) -> bool:
        if self.missing_commands():
            return False
        return self.installed is None or self.installed()


POSTGRES_SERVER_COMMANDS = ("initdb", "pg_ctl", "postgres", "psql")
DEBIAN_POSTGRES_ROOT = Path("/usr/lib/postgresql")


def postgres_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl, postgres and psql: on PATH, else Debian's newest."""
    candidates = [Path(found).parent for found in [shutil.which("initdb")] if found]
    if DEBIAN_POSTGRES_ROOT.is_dir():
        versions = [path / "bin" for path in DEBIAN_POSTGRES_ROOT.iterdir()]
        candidates += sorted(versions, key=lambda path: path.parent.name, reverse=True)
    for folder in candidates:
        if all((folder / command).is_file() for command in POSTGRES_SERVER_COMMANDS):
            return folder
    return None


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "prometheus",
            "promtool checks the alert rules; Prometheus, node_exporter and the"
            " Pushgateway scrape what zerog writes (tests/test_monitoring.py, runbooks)",
            commands=(
                "promtool",
                "prometheus",
                "prometheus-node-exporter",
                "prometheus-pushgateway",
            ),
            debian_packages=("prometheus", "prometheus-node-exporter", "prometheus-pushgateway"),
        ),
        Tool(
            "ts-sdk",
            "the official 0G TypeScript storage and compute SDKs, pinned by"
            " tests/interop/package-lock.json (tools/ts_sdk.py)",
            commands=("node", "npm"),
            installed=ts_sdk.is_installed,
            installer=ts_sdk.ensure_installed,
        ),
        Tool(
            "anvil",
            "anvil (npm @foundry-rs/anvil, its Linux binary inside"
            " @foundry-rs/anvil-linux-amd64) runs the official contracts' bytecode"
            " from the SDK packages (tests/test_contracts_differential.py, `zerog devnet up"
            " --chain anvil`); pinned by the same lock file as ts-sdk",
            commands=("node", "npm"),
            installed=ts_sdk.is_installed,
            installer=ts_sdk.ensure_installed,
        ),
        Tool(
            "go-client",
            "the official 0G Go storage client and indexer, 0g-storage-client, shipped in the"
            " pinned compute SDK package and checked against its committed SHA-256"
            " (tools/go_client.py)",
            commands=("node", "npm"),
            installed=go_client.is_installed,
            installer=go_client.ensure_installed,
        ),
        Tool(
            "postgresql",
            "a throwaway PostgreSQL cluster (initdb, pg_ctl) for the ledger tests on the"
            " second backend (tests/postgres_harness.py)",
            debian_packages=("postgresql",),
            installed=lambda: postgres_bindir() is not None,
        ),
    )
}


def command_path(command: str) -> Path:
    """Where ``command`` is on PATH; `ensure()` the tool that provides it first."""
    found = shutil.which(command)
    if found is None:
        raise ToolsUnavailable(f"{command} is not on PATH (run `make test-tools`)")
    return Path(found)


def select(names: Iterable[str] | None) -> list[Tool]:
    if names is None:
        return list(TOOLS.values())
    chosen = list(names)
    unknown = [name for name in chosen if name not in TOOLS]
    if unknown:
        raise ToolsUnavailable(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    return [TOOLS[name] for name in chosen]


def ensure(names: Iterable[str] | None = None) -> None:
    """Install every selected tool (default: all) that is missing; quick when none is."""
    pending = [tool for tool in select(names) if not tool.ready()]
    if not pending:
        return
    with _install_lock():
        pending = [tool for tool in pending if not tool.ready()]
        packages = sorted(
            {
                package
                for tool in pending
                if tool.needs_debian_packages()
                for package in tool.debian_packages
            }
        )
        if packages:
            _log(f"installing Debian packages: {' '.join(packages)}")
            apt_get_install(packages)
        for tool in pending:
            if tool.installer is not None and not tool.missing_commands() and not tool.ready():
                _log(f"installing {tool.name}: {tool.purpose}")
                try:
                    tool.installer()
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    raise ToolsUnavailable(f"{tool.name}: {exc}") from None
        problems = [_problem(tool) for tool in pending if not tool.ready()]
        if problems:
            raise ToolsUnavailable("still missing after the install: " + "; ".join(problems))


def _problem(tool: Tool) -> str:
    missing = tool.missing_commands()
    if missing and not tool.debian_packages:
        return f"{tool.name} needs {', '.join(missing)} on PATH (not installed by this step)"
    if missing:
        return f"{tool.name}: {', '.join(missing)} not on PATH"
    if tool.installer is None:
        return f"{tool.name}: the Debian packages are installed but the tool is not in place"
    return f"{tool.name}: its installer finished but the tool is not in place"


def apt_get_install(packages: list[str]) -> None:
    """``apt-get update`` once, then ``apt-get install`` ``packages``: as root, never prompting."""
    if shutil.which("apt-get") is None:
        raise ToolsUnavailable(
            f"apt-get is not available: install the Debian packages {' '.join(packages)}"
            " (or the same tools) by hand"
        )
    for args in (
        ("update",),
        ("install", "-y", "--no-install-recommends", *packages),
    ):
        completed = _apt_get(*args)
        if completed.returncode != 0:
            tail = (completed.stderr or completed.stdout).strip()[-1500:]
            raise ToolsUnavailable(
                f"apt-get {args[0]} failed (exit {completed.returncode}): {tail}"
            )


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    command = [
        "apt-get",
        "-o",
        "DPkg::Lock::Timeout=600",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        *args,
    ]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise ToolsUnavailable(
                "installing Debian packages needs root: run `make test-tools` as root"
            )
        # sudo resets the environment, so the frontend setting goes on its command line.
        command = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive", *command]
    return subprocess.run(
        command,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT,
        check=False,
    )


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    with INSTALL_LOCK.open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield


def _log(message: str) -> None:
    print(f"test tools: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("action", choices=("ensure", "list"))
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of: {', '.join(TOOLS)}")
    args = parser.parse_args(argv)
    try:
        tools = select(args.names or None)
        if args.action == "ensure":
            ensure(tool.name for tool in tools)
    except ToolsUnavailable as exc:
        print(f"test tools: error: {exc}", file=sys.stderr)
        return 1
    for tool in tools:
        print(f"{tool.name:12s} {'present' if tool.ready() else 'missing'}  {tool.purpose}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
