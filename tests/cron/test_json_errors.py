"""With --json, a failure is one ``zerog.error/1`` document on stdout, so `| jq` sees it.

The one-line message stays on stderr. Commands whose answer is a failing
report (`status`, `ledger status` on a damaged ledger) print that report and
no second document.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TEST_PRIVATE_KEY, Result
from tests.cron.local_fs import add_objects, damage_page, table_root_page
from tests.devnet_harness import DevnetProcess
from zerog_cli.errors import ExitCode


def _error_document(result: Result) -> dict[str, object]:
    document = json.loads(result.stdout)  # exactly one document, nothing around it
    assert set(document) == {"schema", "error"}, document
    assert document["schema"] == "zerog.error/1"
    error = document["error"]
    assert set(error) == {"exit_code", "kind", "message", "hint"}, error
    assert error["exit_code"] == result.exit_code
    stderr_lines = result.stderr.splitlines()
    assert len(stderr_lines) == 1, result
    assert stderr_lines[0].startswith(f"error: {error['message']}"), result
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "args",
    [
        ("--json", "upload", "--replicas", "0", "x"),
        ("ledger", "migrate", "--to", "banana", "--json"),
        ("ledger", "status", "--no-such-flag", "--json"),
    ],
)
def test_usage_errors_are_a_json_document(
    cron: Callable[..., Result], tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = cron(*args, home=tmp_path / "home")
    assert result.exit_code == ExitCode.USAGE, result
    error = _error_document(result)
    assert error["kind"] == "usage"
    assert "--help" in str(error["hint"])


def test_not_found_config_and_environment_failures_are_json_documents(
    cron: Callable[..., Result], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    expected = [
        (("--json", "backup", "show", "999999"), ExitCode.NOT_FOUND, "not_found"),
        (("--profile", "mainnet", "auth", "address", "--json"), ExitCode.CONFIG, "config"),
        (("ledger", "backup", "/sys/zerog-copy.db", "--json"), ExitCode.ENVIRONMENT, "environment"),
    ]
    for args, code, kind in expected:
        result = cron(*args, home=home)
        assert result.exit_code == code, (args, result)
        assert _error_document(result)["kind"] == kind, args


def test_without_json_a_failure_prints_nothing_on_stdout(
    cron: Callable[..., Result], tmp_path: Path
) -> None:
    result = cron("backup", "show", "999999", home=tmp_path / "home")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stdout == ""
    assert result.stderr.startswith("error: no backup 999999")


def test_a_failing_report_is_the_report_alone(cron: Callable[..., Result], tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cron("ns", "create", "backups", home=home).exit_code == 0
    ledger = home / "ledger.db"
    add_objects(ledger, "backups", 2000)
    damage_page(ledger, table_root_page(ledger, "objects"))
    for args, schema in (
        (("ledger", "status", "--json"), "zerog.ledger.status/1"),
        (("--json", "status", "--no-probe"), "zerog.status/1"),
    ):
        result = cron(*args, home=home)
        assert result.exit_code == ExitCode.CONFIG, (args, result)
        report = json.loads(result.stdout)
        assert report["schema"] == schema, report
        assert "integrity" in json.dumps(report)


def test_the_error_document_is_scrubbed_of_secrets(
    zerog: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    from zerog_cli.ledger import admin

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"bug while holding {TEST_PRIVATE_KEY}")

    monkeypatch.setenv("ZEROG_STORAGE_PRIVATE_KEY", TEST_PRIVATE_KEY)
    assert zerog("auth", "address").exit_code == 0
    monkeypatch.setattr(admin, "status", broken)
    result = zerog("ledger", "status", "--json")
    assert result.exit_code == ExitCode.INTERNAL
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "internal"
    assert "internal error: RuntimeError" in error["message"]
    for text in (result.stdout, result.stderr):
        assert TEST_PRIVATE_KEY[2:] not in text.lower()


def test_verify_with_a_bad_backup_prints_its_report_only(
    net: DevnetProcess, cron: Callable[..., Result], tmp_path: Path
) -> None:
    net.clear_faults()
    home = tmp_path / "home"
    env = {"ZEROG_DEVNET_URL": net.base_url}
    data = tmp_path / "orders.db"
    data.write_bytes(os.urandom(5000))
    created = cron("backup", "create", str(data), home=home, env=env)
    assert created.exit_code == 0, created
    net.set_faults(corrupt_nodes=[0, 1])
    try:
        verified = cron("verify", "--all", "--json", home=home, env=env)
    finally:
        net.clear_faults()
    assert verified.exit_code == ExitCode.INTEGRITY, verified
    report = json.loads(verified.stdout)
    assert report.get("schema") != "zerog.error/1"
    assert report["exit_code"] == ExitCode.INTEGRITY
    assert "orders.db" in json.dumps(report)
