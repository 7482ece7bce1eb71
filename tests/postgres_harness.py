"""A throwaway PostgreSQL cluster for the ledger tests: initdb in a temp folder, 127.0.0.1 only.

`Cluster.start()` runs ``initdb`` and ``pg_ctl start`` from Debian's
``postgresql`` package (found by `tools.test_tools.postgres_bindir`, installed
by `test_tools.ensure(["postgresql"])` when missing). PostgreSQL refuses to
run as root, so under root the cluster belongs to the unprivileged ``nobody``
and every server command runs through ``setpriv``. The superuser is
``zerog`` with a password (scram-sha-256 over TCP), so tests go through the
``DATABASE_PASSWORD`` secret as a team would; each test gets a database of
its own (`Cluster.create_database`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tools import test_tools

SUPERUSER = "zerog"
PASSWORD = "test-" + uuid.uuid4().hex
"""A fresh password per test run: the secret scans can look for it in every output."""
UNPRIVILEGED = 65534
"""``nobody``/``nogroup``: who owns and runs the cluster when the tests run as root."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    folder: Path
    port: int = field(default_factory=free_port)
    bindir: Path = field(default_factory=lambda: _bindir())

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = [
                "setpriv",
                f"--reuid={UNPRIVILEGED}",
                f"--regid={UNPRIVILEGED}",
                "--clear-groups",
                *command,
            ]
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            cwd=self.folder,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {completed.stderr.strip()[-2000:]}")
        return completed

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / "password"
        password_file.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            for path in (self.folder, password_file):
                os.chown(path, UNPRIVILEGED, UNPRIVILEGED)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )
        password_file.unlink()
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.folder} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self._pg_ctl_start()

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser over the cluster's private socket; its output."""
        return self._run(
            "psql",
            "-h",
            str(self.folder),
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-c",
            sql,
        ).stdout

    def create_database(self) -> str:
        """A new empty database; its ``ledger_url``."""
        name = "ledger_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def _bindir() -> Path:
    test_tools.ensure(["postgresql"])
    found = test_tools.postgres_bindir()
    assert found is not None
    return found


def start_cluster() -> Cluster:
    folder = Path(tempfile.mkdtemp(prefix="zerog-pg-"))
    os.chmod(folder, 0o755)
    cluster = Cluster(folder / "cluster")
    cluster.start()
    return cluster


def remove_cluster(cluster: Cluster) -> None:
    with contextlib.suppress(RuntimeError):
        cluster.stop("immediate")
    shutil.rmtree(cluster.folder.parent, ignore_errors=True)
