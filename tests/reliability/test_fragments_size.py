"""A file one byte past the fragment size: 4 GiB + 1 byte under `make soak`.

`make test` runs it at 256 KiB + 1 byte with ``fragment_size = 256KiB``; `make
soak` (``ZEROG_SOAK=1``) with the default ``fragment_size`` (4 GiB, the official
clients' default) and a real 4 GiB + 1 byte file: two fragments, the second one
byte long, stored, verified and restored byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result
from tests.reliability.conftest import scale, sha256_of

pytestmark = [pytest.mark.devnet, pytest.mark.timeout(scale(300, 7200))]

FRAGMENT = scale(256 * 1024, 4 << 30)


def _write_pattern(path: Path, size: int) -> None:
    """``size`` bytes without building them in memory: a counter per 32-byte word."""
    block_words = 1 << 15
    with path.open("wb") as handle:
        word = 0
        written = 0
        while written < size:
            block = b"".join((word + i).to_bytes(32, "big") for i in range(block_words))[
                : size - written
            ]
            handle.write(block)
            written += len(block)
            word += block_words


def test_one_byte_past_the_fragment_size_makes_a_one_byte_fragment(
    cli: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: dict[str, Any],
) -> None:
    monkeypatch.setenv("ZEROG_MAX_UPLOAD_SIZE", str(FRAGMENT + 1))
    if FRAGMENT != 4 << 30:
        monkeypatch.setenv("ZEROG_FRAGMENT_SIZE", str(FRAGMENT))
    source = tmp_path / "big.bin"
    _write_pattern(source, FRAGMENT + 1)
    started = time.monotonic()

    made = cli("backup", "create", str(source), "--json")

    assert made.exit_code == 0, made
    assert [f["size"] for f in made.json["fragments"]] == [FRAGMENT, 1]
    figures["upload_seconds"] = round(time.monotonic() - started, 1)
    figures["file_bytes"] = FRAGMENT + 1
    checked = cli("verify", "--json")
    assert checked.exit_code == 0, checked
    restored = tmp_path / "restored.bin"
    started = time.monotonic()
    back = cli("backup", "restore", str(made.json["backup_id"]), "-o", str(restored))
    assert back.exit_code == 0, back
    figures["restore_seconds"] = round(time.monotonic() - started, 1)
    assert restored.stat().st_size == FRAGMENT + 1
    assert sha256_of(restored) == made.json["sha256"] == sha256_of(source)
