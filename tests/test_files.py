"""Files appear atomically, and a killed writer's leftovers are swept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zerog_cli.infra.files import atomic_output, atomic_write_bytes


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_output(target) as handle:
        handle.write(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_replaced_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as handle:
        handle.write(b"new")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"


def test_leftovers_of_dead_writers_are_swept_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "out[1].bin"
    orphan = tmp_path / f".out[1].bin.{_dead_pid()}.k9x2.part"
    orphan.write_bytes(b"partial")
    live = tmp_path / f".out[1].bin.{os.getpid()}.a1b2.part"
    live.write_bytes(b"still being written")
    unrelated = tmp_path / ".other.bin.1.part"
    unrelated.write_bytes(b"x")
    atomic_write_bytes(target, b"done")
    assert target.read_bytes() == b"done"
    assert not orphan.exists()
    assert live.exists() and unrelated.exists()
