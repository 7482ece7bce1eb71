"""Run locks for cron jobs: ``fcntl.flock`` on a file under ``$ZEROG_HOME/locks``.

A flock belongs to the open file, so the kernel releases it when the process
exits for any reason (crash, SIGKILL, OOM): a lock is never left behind by a
dead run. While held, the file carries the holder's pid, host, command and
start time, so a run refused with `LockHeld` (exit 9) can say who has it. The
holder empties the file before it unlocks; content left by a crashed holder
is recognisable because its pid is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from zerog_cli.errors import LockHeld
from zerog_cli.infra.files import ensure_private_dir
from zerog_cli.infra.processes import pid_alive

POLL_SECONDS = 0.2


def lock_path(home: Path, name: str) -> Path:
    """Where the lock called ``name`` lives: ``$ZEROG_HOME/locks/<name>.lock``."""
    return home / "locks" / f"{name}.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as written in the lock file."""

    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        return f"{self.command} (pid {self.pid} on {self.host}, since {self.since})"


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in ``path``, or None when empty, unreadable or half-written."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(
            pid=int(data["pid"]),
            host=str(data["host"]),
            command=str(data["command"]),
            since=str(data["since"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def poll_lock(
    try_lock: Callable[[], bool],
    holder: Callable[[], Holder | None],
    held_message: Callable[[Holder | None], str],
    *,
    wait: bool,
    on_wait: Callable[[Holder | None], None] | None,
) -> None:
    """Take a lock with ``try_lock``: when it is held, `LockHeld` at once unless ``wait``;
    else try again every `POLL_SECONDS`, telling ``on_wait`` the holder the first time."""
    announced = False
    while not try_lock():
        found = holder()
        if not wait:
            raise LockHeld(held_message(found), hint="or pass --wait-lock")
        if not announced and on_wait is not None:
            on_wait(found)
            announced = True
        time.sleep(POLL_SECONDS)


class RunLock:
    """An exclusive, non-reentrant lock on ``path`` for the duration of a run.

    ``acquire(wait=False)`` raises `LockHeld` at once when another process (or
    another `RunLock` on the same file in this process) holds it;
    ``wait=True`` polls until it is free, calling ``on_wait`` once with the
    holder so the caller can say what it is waiting for.
    """

    def __init__(self, path: Path, command: str) -> None:
        self.path = path
        self.command = command
        self._fd: int | None = None

    def _try_lock(self, fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def acquire(
        self,
        *,
        wait: bool = False,
        on_wait: Callable[[Holder | None], None] | None = None,
    ) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            poll_lock(
                lambda: self._try_lock(fd),
                self.holder,
                self._held_message,
                wait=wait,
                on_wait=on_wait,
            )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._write_holder(fd)

    def _held_message(self, holder: Holder | None) -> str:
        if holder is None:
            who = "another process (it has not written its details yet)"
        else:
            who = holder.describe()
        return f"another run holds the lock {self.path}: {who}"

    def holder(self) -> Holder | None:
        holder = read_holder(self.path)
        if holder is None:
            return None
        if holder.host == socket.gethostname() and not pid_alive(holder.pid):
            return None
        return holder

    def _write_holder(self, fd: int) -> None:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode("utf-8") + b"\n", 0)

    def release(self) -> None:
        """Empty the holder record, then unlock (closing the file also unlocks)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
