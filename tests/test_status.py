"""`zerog status` exits non-zero when something needs attention."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from zerog_cli.ledger.breakers import BreakerTable


def test_healthy_devnet_is_ok(cli) -> None:
    result = cli("status", "--json")
    assert result.exit_code == 0, result
    document = result.json
    assert document["ok"] is True
    assert {e["endpoint"] for e in document["endpoints"]} == {"evm", "indexer"}
    assert all(e["reachable"] for e in document["endpoints"])
    assert document["ledger"]["integrity"] == "ok"


def test_unreachable_endpoint_is_exit_6(zerog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROG_DEVNET_URL", "http://127.0.0.1:9")
    result = zerog("status", "--json")
    assert result.exit_code == 6
    assert any("unreachable" in p["problem"] for p in result.json["problems"])


def test_open_breaker_is_reported_and_exit_6(cli, zerog_home: Path) -> None:
    cli("ledger", "status")
    table = BreakerTable(zerog_home / "ledger.db")
    storage = table.storage("http://127.0.0.1:1/node/0")
    storage.state = "open"
    table.close()
    result = cli("status", "--json")
    assert result.exit_code == 6
    assert {"endpoint": "http://127.0.0.1:1/node/0", "state": "open"}.items() <= result.json[
        "breakers"
    ][0].items()


def test_missing_key_on_testnet_is_exit_8_and_values_never_shown(
    zerog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", "jwt-value-that-must-not-show")
    result = zerog("--profile", "testnet", "status", "--no-probe", "--json")
    assert result.exit_code == 8
    assert "jwt-value-that-must-not-show" not in result.stdout + result.stderr
    rows = {s["name"]: s for s in result.json["secrets"]}
    assert rows["JWT_SECRET"]["present"] is True


def test_stale_verification_is_exit_3(cli, zerog_home: Path) -> None:
    cli("ledger", "status")
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        conn.execute(
            "INSERT INTO storage_backups"
            " (namespace, source_path, root, size, sha256, network, created_at)"
            " VALUES ('backups', '/etc/x', '0xab', 1, 'aa', 'devnet', '2026-01-01T00:00:00Z')"
        )
    result = cli("status", "--json")
    assert result.exit_code == 3
    assert result.json["verifications"][0]["stale"] is True


def _checks(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "ledger.db") as conn:
        return conn.execute(
            "SELECT checked_at, result FROM integrity_checks ORDER BY id"
        ).fetchall()


def test_status_trusts_a_recent_passed_integrity_check(
    zerog, zerog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PRAGMA quick_check reads every page (~10 s at ten million rows): a cron `status`
    every few minutes runs it once per integrity_check_interval, `ledger status` always.
    (Checks quicker than RECORD_CHECKS_FROM_SECONDS are not recorded: every check here is.)"""
    from zerog_cli.ledger import admin

    monkeypatch.setattr(admin, "RECORD_CHECKS_FROM_SECONDS", 0)
    monkeypatch.setenv("ZEROG_DEVNET_URL", "http://127.0.0.1:9")
    first = zerog("status", "--json")
    assert first.json["ledger"]["integrity"] == "ok"
    assert len(_checks(zerog_home)) == 1
    second = zerog("status", "--json")
    assert len(_checks(zerog_home)) == 1, "a pass within the interval is trusted"
    assert second.json["ledger"]["integrity_checked_at"] == _checks(zerog_home)[0][0]

    assert zerog("ledger", "status", "--json").exit_code == 0
    assert len(_checks(zerog_home)) == 2, "ledger status always checks"

    monkeypatch.setattr(admin, "RECORD_CHECKS_FROM_SECONDS", 3600)
    assert zerog("ledger", "status", "--json").exit_code == 0
    assert len(_checks(zerog_home)) == 2, "a quick check is not worth a write"
    monkeypatch.setattr(admin, "RECORD_CHECKS_FROM_SECONDS", 0)

    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        conn.execute(
            "INSERT INTO integrity_checks (checked_at, result, seconds)"
            " VALUES ('2999-01-01T00:00:00Z', 'row 7 missing from index', 1)"
        )
    zerog("status", "--json")
    assert _checks(zerog_home)[-1][1] == "ok", "a failed check is never trusted"

    monkeypatch.setenv("ZEROG_INTEGRITY_CHECK_INTERVAL", "0")
    before = len(_checks(zerog_home))
    zerog("status", "--json")
    assert len(_checks(zerog_home)) == before + 1, "0: every status checks"
