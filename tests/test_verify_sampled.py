"""`zerog verify --read-data-subset`: a sample of each backup's segments, each with its proof.

The devnet counts every `zgs_downloadSegmentWithProofByTxSeq` call, so the
tests see how many segments a run fetched, not only what it reports.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess
from tests.test_verify_e2e import corrupt_on_disk

pytestmark = pytest.mark.devnet

SEGMENT = 256 * 1024
SEGMENT_CALL = ":zgs_downloadSegmentWithProofByTxSeq"


def segment_requests(net: DevnetProcess) -> int:
    """Segment downloads served by every storage node (counted as ``node/N:method``)."""
    methods = net.stats()["methods"]
    return sum(int(n) for name, n in methods.items() if name.endswith(SEGMENT_CALL))


def make_backup(cli: Callable[..., Result], tmp_path: Path, segments: int, label: str) -> dict:
    source = tmp_path / f"{label}.bin"
    source.write_bytes(os.urandom(segments * SEGMENT - 1000))
    created = cli("backup", "create", str(source), "--label", label, "--json")
    assert created.exit_code == 0, created
    return dict(created.json)


def coverage(home: Path, backup_id: int) -> list[tuple[str, str, int, int, int]]:
    with sqlite3.connect(home / "ledger.db") as conn:
        return conn.execute(
            "SELECT status, kind, segments_checked, segments_total, bytes_checked"
            " FROM verifications WHERE backup_id = ? ORDER BY id",
            (backup_id,),
        ).fetchall()


def test_sampled_verify_reads_only_the_sample_and_records_its_coverage(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path, zerog_home: Path
) -> None:
    backup = make_backup(cli, tmp_path, 20, "sampled")
    net.reset_stats()
    sampled = cli("verify", str(backup["backup_id"]), "--read-data-subset", "10%", "--json")
    assert sampled.exit_code == 0, sampled
    (item,) = sampled.json["items"]
    assert (item["status"], item["kind"]) == ("ok", "sampled")
    assert (item["segments_checked"], item["segments_total"]) == (2, 20)
    assert segment_requests(net) == 2, "first and last only: 10% of 20 is 2"
    assert item["bytes_checked"] == 2 * SEGMENT - 1000

    shown = cli("verify", str(backup["backup_id"]), "--read-data-subset", "10%", "-v")
    assert shown.exit_code == 0, shown
    assert "(sampled 2 of 20 segments)" in shown.stdout
    net.reset_stats()
    quarter = cli("verify", str(backup["backup_id"]), "--read-data-subset", "25%", "--json")
    assert quarter.exit_code == 0, quarter
    assert quarter.json["items"][0]["segments_checked"] == 5
    assert segment_requests(net) == 5

    net.reset_stats()
    part = cli("verify", str(backup["backup_id"]), "--read-data-subset", "2/7", "--json")
    assert part.exit_code == 0, part
    # Indices 1, 8, 15 (index % 7 == 1), plus the first and the last.
    assert part.json["items"][0]["segments_checked"] == 5
    assert segment_requests(net) == 5

    net.reset_stats()
    full = cli("verify", str(backup["backup_id"]), "--json")
    assert full.exit_code == 0, full
    assert (full.json["items"][0]["kind"], full.json["items"][0]["segments_checked"]) == (
        "full",
        20,
    )
    assert segment_requests(net) >= 20
    assert coverage(zerog_home, backup["backup_id"]) == [
        ("ok", "sampled", 2, 20, 2 * SEGMENT - 1000),
        ("ok", "sampled", 2, 20, 2 * SEGMENT - 1000),
        ("ok", "sampled", 5, 20, quarter.json["items"][0]["bytes_checked"]),
        ("ok", "sampled", 5, 20, part.json["items"][0]["bytes_checked"]),
        ("ok", "full", 20, 20, backup["size"]),
    ]
    shown = cli("backup", "show", str(backup["backup_id"]), "--json")
    assert shown.json["verifications"][0]["kind"] == "full"
    assert shown.json["last_full_ok_at"] is not None


def test_a_corrupted_sampled_segment_is_exit_3(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path
) -> None:
    backup = make_backup(cli, tmp_path, 6, "rotten")
    assert corrupt_on_disk(net, backup["root"]) >= 1
    bad = cli("verify", str(backup["backup_id"]), "--read-data-subset", "5%", "--json")
    assert bad.exit_code == 3, bad
    (item,) = bad.json["items"]
    assert (item["status"], item["kind"]) == ("mismatch", "sampled")
    assert "segment 0" in item["error"]


def test_unverified_max_age_full_wants_a_full_read(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path, zerog_home: Path
) -> None:
    backup = make_backup(cli, tmp_path, 3, "aging")
    backup_id = str(backup["backup_id"])
    assert cli("verify", backup_id, "--read-data-subset", "5%").exit_code == 0
    # Age the backup and its sampled check by two days.
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        conn.execute(
            "UPDATE storage_backups SET created_at = '2000-01-01T00:00:00Z' WHERE id = ?",
            (backup["backup_id"],),
        )
    any_check = cli("backup", "unverified", "--max-age", "1h", "--ns", "default", "--json")
    assert any_check.exit_code == 0, "a fresh sampled check satisfies --max-age"
    wants_full = cli(
        "backup", "unverified", "--max-age", "1h", "--max-age-full", "1d", "--ns", "default"
    )
    assert wants_full.exit_code == 3, wants_full
    assert f"{backup_id} default/" in wants_full.stdout
    assert "never fully read" in wants_full.stdout

    assert cli("verify", backup_id).exit_code == 0
    satisfied = cli(
        "backup", "unverified", "--max-age", "1h", "--max-age-full", "1d", "--ns", "default"
    )
    assert satisfied.exit_code == 0, satisfied


def test_read_data_subset_refuses_nonsense(cli: Callable[..., Result]) -> None:
    for bad in ("0%", "150%", "five", "3/2", "5"):
        result = cli("verify", "--read-data-subset", bad)
        assert result.exit_code == 2, (bad, result)
        assert "--read-data-subset" in result.stderr or "--subset" in result.stderr
