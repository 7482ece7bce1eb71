"""Item 10: two uploads of one name cannot both pay.

The first run reserves the name with its quota, in one ledger transaction,
before it pays; a second run of the same name, started while the first is
still uploading, is refused (exit 2) before it sends any transaction.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess, slow_upload
from tests.security.conftest import AttackContext

pytestmark = pytest.mark.devnet(nodes=1)

POLL_SECONDS = 0.02
WAIT_SECONDS = 120.0


def held_names(home: Path) -> list[str]:
    database = home / "ledger.db"
    if not database.exists():
        return []
    try:
        with sqlite3.connect(database) as conn:
            found = conn.execute(
                "SELECT object_name FROM quota_reservations WHERE object_name IS NOT NULL"
            ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [str(row[0]) for row in found]


def test_a_second_upload_of_a_name_in_flight_is_refused_before_paying(
    devnet: DevnetProcess,
    zerog: Callable[..., Result],
    zerog_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attack: AttackContext,
) -> None:
    monkeypatch.setenv("ZEROG_DEVNET_URL", devnet.base_url)
    first_file = tmp_path / "first.bin"
    second_file = tmp_path / "second.bin"
    first_file.write_bytes(os.urandom(5000))
    second_file.write_bytes(os.urandom(5000))
    assert zerog("ledger", "migrate").exit_code == 0
    transactions_before = devnet.stats()["transactions"]
    with slow_upload(devnet, str(first_file), "--name", "report.bin") as first:
        deadline = time.monotonic() + WAIT_SECONDS
        while "report.bin" not in held_names(zerog_home):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first upload never reserved its name"
            time.sleep(POLL_SECONDS)
        with attack("usage bounds", "a second upload of a name another run is uploading"):
            second = zerog("upload", str(second_file), "--name", "report.bin")
            assert second.exit_code == 2, second
            assert "name default/report.bin is being uploaded by another run" in second.stderr
            assert "Traceback" not in second.stderr
        devnet.clear_faults()  # refused: the first upload may now finish at full speed
        _, err = first.communicate(timeout=WAIT_SECONDS)
    assert first.returncode == 0, err.decode()
    with attack("usage bounds", "the refused run paid nothing; the winner paid once"):
        assert devnet.stats()["transactions"] - transactions_before == 1
        with sqlite3.connect(zerog_home / "ledger.db") as conn:
            stored = conn.execute("SELECT name, sha256 FROM objects").fetchall()
        assert [name for name, _ in stored] == ["report.bin"]
        assert held_names(zerog_home) == []
    with attack("usage bounds", "an upload of a name already stored"):
        again = zerog("upload", str(second_file), "--name", "report.bin")
        assert again.exit_code == 2, again
        assert "default/report.bin already exists" in again.stderr
        assert devnet.stats()["transactions"] - transactions_before == 1
