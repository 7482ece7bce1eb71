"""Broken local file systems for the cron tests: read-only, full, and a damaged ledger.

We run as root, and root ignores mode bits, so "read-only" must come from the
kernel: a read-only bind mount when this machine lets us mount, else an
unprivileged user (``setpriv --reuid nobody``) running zerog against a home
it owns but may not write. "Full" is a small tmpfs mounted by the test.
Whichever way is used, the test runs: nothing here skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def _mount(*args: str) -> bool:
    completed = subprocess.run(["mount", *args], capture_output=True, check=False)
    return completed.returncode == 0


def _umount(target: Path) -> None:
    subprocess.run(["umount", "--lazy", str(target)], capture_output=True, check=True)


def can_mount() -> bool:
    """Whether this process may mount file systems (root with CAP_SYS_ADMIN)."""
    probe = Path(tempfile.mkdtemp(prefix="zerog-mount-probe-"))
    try:
        if not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)):
            return False
        _umount(probe)
        return True
    finally:
        probe.rmdir()


@dataclass
class ReadOnlyHome:
    """A ZEROG_HOME that zerog may read and not write, and how to run zerog there.

    ``prefix`` goes before the Python command line: empty with a read-only
    mount, ``setpriv`` to an unprivileged user otherwise.
    """

    home: Path
    prefix: list[str] = field(default_factory=list)
    how: str = "mount"


@contextlib.contextmanager
def read_only(home: Path) -> Iterator[ReadOnlyHome]:
    """Make the existing ``home`` read-only for zerog while the block runs."""
    if can_mount():
        if not _mount("--bind", str(home), str(home)):
            raise RuntimeError(f"cannot bind-mount {home}")
        try:
            if not _mount("-o", "remount,bind,ro", str(home)):
                raise RuntimeError(f"cannot remount {home} read-only")
            yield ReadOnlyHome(home)
        finally:
            _umount(home)
        return
    # No mounting here: a copy owned by nobody, in a folder nobody may enter,
    # and its folder and files made read-only for their owner.
    holder = Path(tempfile.mkdtemp(prefix="zerog-ro-"))
    try:
        holder.chmod(0o755)
        copy = holder / "home"
        shutil.copytree(home, copy)
        for path in [copy, *copy.iterdir()]:
            shutil.chown(path, "nobody", "nogroup")
            path.chmod(0o500 if path.is_dir() else 0o400)
        prefix = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
        yield ReadOnlyHome(copy, prefix, how="setpriv")
    finally:
        shutil.rmtree(holder, ignore_errors=True)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (created) while the block runs."""
    folder.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)):
        raise RuntimeError("cannot mount a tmpfs: the full-disk tests need root with CAP_SYS_ADMIN")
    try:
        yield folder
    finally:
        _umount(folder)


def fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until its file system is full; returns the filler."""
    filler = folder / "filler"
    block = b"\0" * 4096
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError:
            pass
    return filler


def checkpoint(ledger: Path) -> None:
    """Move the WAL into the main file, so the file alone holds every page."""
    conn = sqlite3.connect(ledger)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def table_root_page(ledger: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


def index_root_pages(ledger: Path, table: str) -> list[int]:
    """Root pages of every index on ``table`` (a query may read an index, never the table)."""
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
        ).fetchall()
    finally:
        conn.close()
    return [int(page) for (page,) in rows]


def damage_page(ledger: Path, page: int) -> None:
    """Overwrite one page of the (checkpointed) ledger with garbage, as a bad disk would."""
    page_size = 4096
    with ledger.open("r+b") as handle:
        handle.seek((page - 1) * page_size)
        handle.write(b"\xa5" * page_size)
        handle.flush()
        os.fsync(handle.fileno())


def integrity(ledger: Path) -> str:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def rows(ledger: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def add_objects(ledger: Path, namespace: str, count: int) -> None:
    """``count`` object rows in ``namespace`` (for listings long enough to page)."""
    conn = sqlite3.connect(ledger)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO objects (namespace, name, root, tx_seq, size, sha256, network,"
                " encrypted, uploader, fee_neuron, created_at)"
                " VALUES (?, ?, ?, ?, 10, ?, 'devnet', 0, 'root', '0', '2026-11-29T00:00:00Z')",
                [(namespace, f"object-{i}", f"0x{i:064x}", i, f"{i:064x}") for i in range(count)],
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
