"""`zerog backup` against a devnet: create, restore, encryption, metrics, staleness."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Result

pytestmark = pytest.mark.devnet
ENC_KEY = "3c" * 32


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def test_create_records_and_restore_round_trips(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _file(tmp_path, "db.dump", 300_000)
    assert cli("ns", "create", "backups").exit_code == 0
    made = cli("backup", "create", str(source), "--ns", "backups", "--label", "db", "--json")
    assert made.exit_code == 0, made
    report = made.json
    assert report["name"].startswith("db/") and report["name"].endswith("Z-db.dump")
    assert report["label"] == "db"
    again = cli("backup", "create", str(source), "--ns", "backups", "--label", "db", "--json")
    assert again.json["name"] != report["name"]
    assert again.json["root"] == report["root"]

    shown = cli("backup", "show", str(report["backup_id"]), "--json").json
    assert shown["source_path"] == str(source.resolve())
    assert (shown["size"], shown["sha256"], shown["root"], shown["tx_seq"]) == (
        300_000,
        report["sha256"],
        report["root"],
        report["tx_seq"],
    )
    assert shown["verifications"] == []

    target = tmp_path / "out" / "restored.dump"
    target.parent.mkdir()
    restored = cli("backup", "restore", str(report["backup_id"]), "-o", str(target), "--json")
    assert restored.exit_code == 0, restored
    assert target.read_bytes() == source.read_bytes()
    assert restored.json["sha256"] == report["sha256"]
    exists = cli("backup", "restore", str(report["backup_id"]), "-o", str(target))
    assert exists.exit_code == 2
    assert "--force" in exists.stderr

    piped = subprocess.run(
        [
            sys.executable,
            "-m",
            "zerog_cli",
            "backup",
            "restore",
            str(report["backup_id"]),
            "-o",
            "-",
        ],
        capture_output=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == source.read_bytes()
    assert cli("backup", "restore", str(report["backup_id"]), "-o", "-", "--json").exit_code == 2

    monkeypatch.chdir(tmp_path / "out")
    default = cli("backup", "restore", str(report["backup_id"]))
    assert default.exit_code == 0, default
    assert (tmp_path / "out" / "db.dump").read_bytes() == source.read_bytes()
    assert cli("backup", "restore", "4242").exit_code == 7
    assert cli("backup", "create", str(tmp_path / "nope.bin")).exit_code == 2
    assert cli("backup", "create", str(source), "--label", "no spaces").exit_code == 2


def test_encrypted_backup_restores_and_verifies(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    source = _file(tmp_path, "secret.tar", 50_000)
    made = cli("backup", "create", str(source), "--encrypt", "--json")
    assert made.exit_code == 0, made
    assert made.json["encrypted"] is True
    target = tmp_path / "secret.out"
    assert cli("backup", "restore", str(made.json["backup_id"]), "-o", str(target)).exit_code == 0
    assert target.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert cli("verify", "-v").exit_code == 0
    monkeypatch.delenv("ENCRYPTION_KEY")
    keyless = cli("verify", "--json")
    assert keyless.exit_code == 8, keyless
    assert keyless.json["items"][0]["status"] == "error"
    assert "ENCRYPTION_KEY" in keyless.json["items"][0]["error"]


def test_backup_and_restore_count_in_the_metrics_textfile(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = tmp_path / "metrics" / "zerog.prom"
    monkeypatch.setenv("ZEROG_METRICS_FILE", str(metrics))
    source = _file(tmp_path, "notes.txt", 4000)
    made = cli("backup", "create", str(source), "--json")
    assert made.exit_code == 0
    text = metrics.read_text()
    assert 'zerog_storage_operations_total{operation="backup",result="ok"} 1.0' in text
    assert 'zerog_last_success_timestamp_seconds{command="backup create"}' in text
    out = tmp_path / "notes.out"
    assert cli("backup", "restore", str(made.json["backup_id"]), "-o", str(out)).exit_code == 0
    text = metrics.read_text()
    assert 'zerog_storage_operations_total{operation="restore",result="ok"} 1.0' in text
    assert 'zerog_storage_bytes_total{direction="download"} 4000.0' in text


def test_unverified_catches_a_stale_backup_with_a_frozen_clock(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)

    def at(hours: float) -> None:
        moment = start + timedelta(hours=hours)
        monkeypatch.setattr("zerog_cli.services.context._utc_now", lambda: moment)

    at(0)
    first = cli("backup", "create", str(_file(tmp_path, "a.bin", 9000)), "--json").json
    at(1)
    assert cli("verify").exit_code == 0
    at(20)
    second = cli("backup", "create", str(_file(tmp_path, "b.bin", 9000)), "--json").json
    at(23)
    fresh = cli("backup", "unverified", "--max-age", "24h")
    assert fresh.exit_code == 0, fresh
    at(26)
    stale = cli("backup", "unverified", "--max-age", "24h", "--json")
    assert stale.exit_code == 3
    assert [b["id"] for b in stale.json["unverified"]] == [first["backup_id"]]
    assert stale.json["unverified"][0]["age_seconds"] == 25 * 3600
    at(45)
    both = cli("backup", "unverified", "--max-age", "24h")
    assert both.exit_code == 3
    assert f"{second['backup_id']} default/" in both.stdout and "never verified" in both.stdout
    assert cli("verify", "--older-than", "24h").exit_code == 0
    assert cli("backup", "unverified", "--max-age", "24h").exit_code == 0
