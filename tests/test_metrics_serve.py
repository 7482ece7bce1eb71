"""`zerog metrics show|serve`: ledger-derived gauges, computed at scrape time."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Result
from tests.test_backups_ledger import ledger_at, record_check, seed_backup
from zerog_cli.ledger.breakers import BreakerTable
from zerog_cli.services.metrics_server import collector_metric_names, same_point_last_month

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr("zerog_cli.services.context._utc_now", lambda: NOW)
    return NOW


def samples(document: dict[str, Any], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    for family in document["families"]:
        for sample in family["samples"]:
            if sample["name"] == name:
                break
        else:
            continue
        return {
            tuple(sorted(s["labels"].items())): s["value"]
            for s in family["samples"]
            if s["name"] == name
        }
    return {}


def add_cost(
    home: Path, *, created_at: str, period: str, user: str, service: str, usd: float
) -> None:
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.execute(
            "INSERT INTO cost_tracking (created_at, period, user, namespace, service, operation,"
            " quantity, unit, usd_micro, neuron, reference, network)"
            " VALUES (?, ?, ?, NULL, ?, 'test', 0, 'bytes', ?, '0', NULL, 'devnet')",
            (created_at, period, user, service, round(usd * 1_000_000)),
        )


def test_gauges_from_the_ledger(
    zerog: Callable[..., Result], zerog_home: Path, frozen: datetime
) -> None:
    assert zerog("quota", "set", "alice", "--monthly-usd", "10", "--storage", "1000").exit_code == 0
    assert zerog("quota", "set", "bob", "--tier", "premium").exit_code == 0
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        conn.execute(
            "UPDATE user_quotas SET storage_used_bytes = 900, monthly_usd_used_micro = 2500000"
            " WHERE user = 'alice'"
        )
        conn.execute(
            "INSERT INTO alerts (created_at, level, kind, subject, message)"
            " VALUES ('2026-03-10T00:00:00Z', 'warning', 'quota', 'alice', 'alice at 90%')"
        )
    add_cost(
        zerog_home,
        created_at="2026-03-02T00:00:00Z",
        period="2026-03",
        user="alice",
        service="storage",
        usd=2.5,
    )
    add_cost(
        zerog_home,
        created_at="2026-03-14T00:00:00Z",
        period="2026-03",
        user="bob",
        service="compute",
        usd=4,
    )
    add_cost(
        zerog_home,
        created_at="2026-02-10T00:00:00Z",
        period="2026-02",
        user="alice",
        service="storage",
        usd=1,
    )
    add_cost(
        zerog_home,
        created_at="2026-02-20T00:00:00Z",
        period="2026-02",
        user="alice",
        service="storage",
        usd=7,
    )
    add_cost(
        zerog_home,
        created_at="2026-01-20T00:00:00Z",
        period="2026-01",
        user="bob",
        service="compute",
        usd=100,
    )

    table = BreakerTable(zerog_home / "ledger.db")
    table.storage("http://127.0.0.1:1/node/0").state = "open"
    table.storage("http://127.0.0.1:1/indexer")
    table.close()

    ledger = ledger_at(zerog_home)
    verified = seed_backup(ledger, created_at="2026-03-01T00:00:00Z")
    broken = seed_backup(ledger, created_at="2026-03-02T00:00:00Z")
    seed_backup(ledger, created_at="2026-03-14T00:00:00Z")
    record_check(ledger, verified, "ok", "2026-03-15T06:00:00Z")
    record_check(ledger, broken, "ok", "2026-03-05T00:00:00Z")
    record_check(ledger, broken, "mismatch", "2026-03-15T07:00:00Z")
    docs = seed_backup(ledger, created_at="2026-03-10T00:00:00Z", namespace="docs")
    record_check(ledger, docs, "error", "2026-03-15T07:00:00Z")
    retired = seed_backup(ledger, created_at="2026-01-01T00:00:00Z", namespace="docs")
    with ledger.transaction() as conn:
        conn.execute(
            "UPDATE storage_backups SET retired_at = '2026-02-01T00:00:00Z' WHERE id = ?",
            (retired,),
        )
    seed_backup(ledger, created_at="2026-01-01T00:00:00Z", namespace="elsewhere", network="testnet")
    ledger.close()

    result = zerog("metrics", "show", "--json")
    assert result.exit_code == 0, result
    document = result.json
    assert samples(document, "zerog_ledger_up") == {(): 1.0}
    ratio = samples(document, "zerog_quota_usage_ratio")
    assert ratio[(("limit", "storage"), ("user", "alice"))] == 0.9
    assert ratio[(("limit", "monthly_usd"), ("user", "alice"))] == 0.25
    assert samples(document, "zerog_quota_monthly_budget_usd")[(("user", "alice"),)] == 10.0
    assert samples(document, "zerog_user_tier_info")[(("tier", "premium"), ("user", "bob"))] == 1.0
    assert samples(document, "zerog_quota_alerts_total") == {(("user", "alice"),): 1.0}
    monthly = samples(document, "zerog_monthly_cost_usd")
    assert monthly == {
        (("month", "current"), ("service", "storage")): 2.5,
        (("month", "current"), ("service", "compute")): 4.0,
        (("month", "previous"), ("service", "storage")): 8.0,
    }
    assert samples(document, "zerog_cost_previous_month_to_date_usd") == {
        (("service", "compute"),): 0.0,
        (("service", "storage"),): 1.0,
    }
    assert samples(document, "zerog_user_monthly_cost_usd") == {
        (("user", "alice"),): 2.5,
        (("user", "bob"),): 4.0,
    }
    assert samples(document, "zerog_ledger_cost_usd_total") == {
        (("service", "compute"),): 104.0,
        (("service", "storage"),): 10.5,
    }
    assert samples(document, "zerog_circuit_breaker_state") == {
        (("endpoint", "http://127.0.0.1:1/indexer"),): 0.0,
        (("endpoint", "http://127.0.0.1:1/node/0"),): 2.0,
    }
    assert samples(document, "zerog_backups") == {
        (("namespace", "backups"),): 3.0,
        (("namespace", "docs"),): 1.0,
    }
    assert samples(document, "zerog_backups_never_verified") == {
        (("namespace", "backups"),): 1.0,
        (("namespace", "docs"),): 1.0,
    }
    assert samples(document, "zerog_backups_failed") == {
        (("namespace", "backups"),): 1.0,
        (("namespace", "docs"),): 0.0,
    }
    assert samples(document, "zerog_backup_verification_age_seconds") == {
        (("namespace", "backups"),): 6 * 3600.0
    }
    assert samples(document, "zerog_backup_oldest_verification_age_seconds") == {
        (("namespace", "backups"),): (10 * 24 + 12) * 3600.0,
        (("namespace", "docs"),): (5 * 24 + 12) * 3600.0,
    }

    text = zerog("metrics", "show")
    assert text.exit_code == 0
    assert 'zerog_circuit_breaker_state{endpoint="http://127.0.0.1:1/node/0"} 2.0' in text.stdout
    assert "# TYPE zerog_ledger_cost_usd_total counter" in text.stdout


def test_exposed_names_are_the_declared_names(zerog: Callable[..., Result]) -> None:
    exposed = {
        sample["name"]
        for family in zerog("metrics", "show", "--json").json["families"]
        for sample in family["samples"]
    }
    assert exposed <= collector_metric_names()
    assert {f["name"] for f in zerog("metrics", "show", "--json").json["families"]} == {
        name.removesuffix("_total") for name in collector_metric_names()
    }


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-03-15T12:00:00", "2026-02-15T12:00:00"),
        ("2026-03-31T23:00:00", "2026-02-28T23:00:00"),
        ("2026-01-10T08:00:00", "2025-12-10T08:00:00"),
    ],
)
def test_same_point_last_month(now: str, expected: str) -> None:
    from zoneinfo import ZoneInfo

    moment = datetime.fromisoformat(now).replace(tzinfo=UTC)
    got = same_point_last_month(moment, ZoneInfo("UTC"))
    assert got.strftime("%Y-%m-%dT%H:%M:%S") == expected


def test_an_unreadable_ledger_is_ledger_up_0(
    zerog: Callable[..., Result], zerog_home: Path
) -> None:
    zerog_home.mkdir(parents=True, exist_ok=True)
    (zerog_home / "ledger.db").write_bytes(b"not a database at all")
    result = zerog("metrics", "show")
    assert result.exit_code == 0
    assert "zerog_ledger_up 0.0" in result.stdout
    assert "cannot read the ledger" in result.stderr


def _serve(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "zerog_cli", "metrics", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_PROXY": "127.0.0.1"},
    )
    assert process.stderr is not None
    line = process.stderr.readline().decode()
    match = re.search(r"serving metrics on (http://127\.0\.0\.1:\d+/metrics)", line)
    assert match, line
    return process, match.group(1)


def test_serve_answers_scrapes_with_current_ledger_state(zerog_home: Path) -> None:
    process, url = _serve("--port", "0")
    try:
        first = requests.get(url, timeout=60, proxies={"http": ""})
        assert first.status_code == 200
        assert "zerog_ledger_up 1.0" in first.text
        assert "zerog_backups{" not in first.text
        ledger = ledger_at(zerog_home)
        seed_backup(ledger, created_at="2026-03-01T00:00:00Z")
        ledger.close()
        second = requests.get(url, timeout=60, proxies={"http": ""})
        assert 'zerog_backups{namespace="backups"} 1.0' in second.text
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


def test_serve_on_a_busy_port_is_a_usage_error(zerog_home: Path) -> None:
    process, url = _serve("--port", "0")
    port = url.split(":")[2].split("/")[0]
    try:
        busy = subprocess.run(
            [sys.executable, "-m", "zerog_cli", "metrics", "serve", "--port", port],
            capture_output=True,
            timeout=30,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert busy.returncode == 2
    assert b"cannot listen on 127.0.0.1:" in busy.stderr
    assert busy.stderr.count(b"\n") == 1
