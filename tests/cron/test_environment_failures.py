"""A machine that fails under zerog: read-only home, full disk, refused path, damaged ledger.

Each is an environment problem (exit 10) or a damaged ledger (exit 8), said
in one line with the next step, never "internal error … this is a bug"; and
nothing is lost: the ledger passes SQLite's integrity check and no partial
file is left behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.cron.conftest import cron_environment, run_as_cron, start_as_cron
from tests.cron.local_fs import (
    add_objects,
    checkpoint,
    damage_page,
    fill,
    index_root_pages,
    integrity,
    read_only,
    rows,
    small_disk,
    table_root_page,
)
from tests.devnet_harness import DevnetProcess
from zerog_cli.errors import ExitCode


def _one_error_line(result: Result, *fragments: str) -> str:
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result
    assert "Traceback" not in result.stderr, result
    assert "internal error" not in result.stderr, result
    for fragment in fragments:
        assert fragment in errors[0], result
    return errors[0]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a namespace and a user with a quota, its ledger checkpointed."""
    folder = tmp_path_factory.mktemp("seeded")
    home = folder / "home"
    for args in (("ns", "create", "backups"), ("quota", "set", "bob", "--storage", "1MB")):
        result = run_as_cron(*args, user_home=folder / "user", home=home)
        assert result.exit_code == 0, result
    checkpoint(home / "ledger.db")
    return home


def _copy(seeded: Path, home: Path) -> Path:
    shutil.copytree(seeded, home)
    return home


def _run(prefix: list[str], *args: str, home: Path, cwd: Path) -> Result:
    completed = subprocess.run(
        [*prefix, sys.executable, "-m", "zerog_cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=cron_environment(cwd, home),
        cwd=cwd,
        timeout=60,
        check=False,
    )
    return Result.of_process(completed)


def test_read_only_home_answers_reads_and_refuses_writes_with_exit_10(
    cron: Callable[..., Result], seeded: Path, tmp_path: Path
) -> None:
    home = _copy(seeded, tmp_path / "home")
    namespaces = rows(home / "ledger.db", "SELECT name FROM namespaces ORDER BY name")
    with read_only(home) as frozen:
        cwd = frozen.home.parent

        def zerog(*args: str) -> Result:
            return _run(frozen.prefix, *args, home=frozen.home, cwd=cwd)

        answers = {}
        for args in (
            ("status", "--no-probe"),
            ("backup", "ls"),
            ("ledger", "sql", "SELECT name FROM namespaces"),
            ("quota", "show", "bob"),
        ):
            answers[args[0]] = result = zerog(*args)
            assert result.exit_code == 0, (frozen.how, args, result)
        assert "backups" in answers["ledger"].stdout
        assert "1.00 MB" in answers["quota"].stdout
        refused = zerog("ns", "create", "more")
        assert refused.exit_code == ExitCode.ENVIRONMENT, (frozen.how, refused)
        _one_error_line(refused, "read-only", "remount ZEROG_HOME read-write")
        ledger = frozen.home / "ledger.db"
        assert integrity(ledger) == "ok"
        assert rows(ledger, "SELECT name FROM namespaces ORDER BY name") == namespaces


def test_full_home_is_exit_10_and_the_ledger_stays_whole(
    cron: Callable[..., Result], seeded: Path, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        home = _copy(seeded, disk / "home")
        before = rows(home / "ledger.db", "SELECT user FROM user_quotas ORDER BY user")
        filler = fill(disk)
        result = cron("quota", "set", "carol", "--storage", "1MB", home=home)
        assert result.exit_code == ExitCode.ENVIRONMENT, result
        _one_error_line(result, "no space left on device", "free space")
        filler.unlink()
        ledger = home / "ledger.db"
        assert integrity(ledger) == "ok"
        assert rows(ledger, "SELECT user FROM user_quotas ORDER BY user") == before
        again = cron("quota", "set", "carol", "--storage", "1MB", home=home)
        assert again.exit_code == 0, again


def test_full_destination_leaves_no_partial_file(
    cron: Callable[..., Result], seeded: Path, tmp_path: Path
) -> None:
    home = _copy(seeded, tmp_path / "home")
    with small_disk(tmp_path / "small", size="64k") as destination:
        result = cron("ledger", "backup", str(destination / "ledger-copy.db"), home=home)
        assert result.exit_code == ExitCode.ENVIRONMENT, result
        _one_error_line(result, f"no space left on device writing {destination}/ledger-copy.db")
        assert list(destination.iterdir()) == []


def test_stdout_on_a_full_device_is_exit_10(seeded: Path, tmp_path: Path) -> None:
    home = _copy(seeded, tmp_path / "home")
    with Path("/dev/full").open("wb") as full:
        completed = subprocess.run(
            [sys.executable, "-m", "zerog_cli", "ledger", "status"],
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            env=cron_environment(tmp_path, home),
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    result = Result(completed.returncode, "", completed.stderr.decode())
    assert result.exit_code == ExitCode.ENVIRONMENT, result
    _one_error_line(result, "no space left on device")


def test_permission_denied_on_a_destination_is_exit_10(
    cron: Callable[..., Result], seeded: Path, tmp_path: Path
) -> None:
    home = _copy(seeded, tmp_path / "home")
    # sysfs refuses new files even to root: a real EACCES on a local path.
    result = cron("ledger", "backup", "/sys/zerog-ledger-copy.db", home=home)
    assert result.exit_code == ExitCode.ENVIRONMENT, result
    _one_error_line(result, "permission denied: /sys/zerog-ledger-copy.db", "owner and mode")
    assert not Path("/sys/zerog-ledger-copy.db").exists()


def test_damaged_ledger_is_exit_8_naming_the_recovery_steps(
    cron: Callable[..., Result], seeded: Path, tmp_path: Path
) -> None:
    home = _copy(seeded, tmp_path / "home")
    ledger = home / "ledger.db"
    for table in ("user_quotas", "storage_backups", "verifications"):
        for page in (table_root_page(ledger, table), *index_root_pages(ledger, table)):
            damage_page(ledger, page)
    digest = hashlib.sha256(ledger.read_bytes()).hexdigest()
    for args in (("ledger", "status"), ("status", "--no-probe"), ("backup", "ls")):
        result = cron(*args, home=home)
        assert result.exit_code == ExitCode.CONFIG, (args, result)
        _one_error_line(
            result, f"ledger {ledger} is damaged", "zerog ledger backup", "Ledger damaged"
        )
    assert hashlib.sha256(ledger.read_bytes()).hexdigest() == digest


def test_ledger_status_exits_8_when_the_integrity_check_fails(
    cron: Callable[..., Result], seeded: Path, tmp_path: Path
) -> None:
    home = _copy(seeded, tmp_path / "home")
    ledger = home / "ledger.db"
    # Counting rows reads the name index, not the damaged table pages: the
    # report is printed, and only SQLite's integrity check finds the damage.
    add_objects(ledger, "backups", 2000)
    damage_page(ledger, table_root_page(ledger, "objects"))
    result = cron("ledger", "status", home=home)
    assert result.exit_code == ExitCode.CONFIG, result
    assert "integrity:" in result.stdout
    _one_error_line(result, "is damaged", "Ledger damaged")


def test_a_closed_standard_input_is_exit_10(cron: Callable[..., Result], tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args, reader in (
        (("hash", "-"), "`zerog hash -`"),
        (("secrets", "set", "JWT_SECRET", "--stdin"), "`zerog secrets set --stdin`"),
    ):
        result = cron(*args, home=home, stdin_closed=True)
        assert result.exit_code == ExitCode.ENVIRONMENT, (args, result)
        _one_error_line(result, "standard input is closed", reader)
    assert not (home / "secrets" / "JWT_SECRET").exists()


def test_a_read_only_ledger_that_needs_migrating_is_exit_10(
    cron: Callable[..., Result], seeded: Path, tmp_path: Path
) -> None:
    from zerog_cli.ledger.migrations import LATEST_VERSION

    home = _copy(seeded, tmp_path / "home")
    older = cron("ledger", "migrate", "--to", str(LATEST_VERSION - 1), "--yes", home=home)
    assert older.exit_code == 0, older
    with read_only(home) as frozen:
        result = _run(frozen.prefix, "backup", "ls", home=frozen.home, cwd=frozen.home.parent)
        assert result.exit_code == ExitCode.ENVIRONMENT, (frozen.how, result)
        _one_error_line(result, f"needs migrating to schema {LATEST_VERSION}", "writable")
    assert rows(home / "ledger.db", "SELECT MAX(version) FROM schema_migrations") == [
        (LATEST_VERSION - 1,)
    ]


def test_disk_full_after_payment_names_it_and_a_rerun_records_it_once(
    net: DevnetProcess, tmp_path: Path
) -> None:
    net.clear_faults()
    data = tmp_path / "orders.db"
    data.write_bytes(os.urandom(1_500_000))
    env = {"ZEROG_DEVNET_URL": net.base_url}
    with small_disk(tmp_path / "disk", size="2m") as disk:
        home = disk / "home"
        # Slow storage nodes: the payment goes through at once, the upload then waits.
        net.set_faults(latency_ms=1500, targets=["node"])
        process = start_as_cron(["upload", str(data), "-v"], home, tmp_path, **env)
        assert process.stderr is not None
        stderr = []
        try:
            for line in process.stderr:
                stderr.append(line)
                if "submitted" in line:
                    filler = fill(disk)
                    net.clear_faults()
                    break
            stderr += process.stderr.readlines()
            process.wait(timeout=120)
        finally:
            net.clear_faults()
        result = Result(process.returncode, "", "".join(stderr))
        assert result.exit_code == ExitCode.ENVIRONMENT, result
        line = _one_error_line(result, "no space left on device", "free space")
        match = re.search(r"payment (0x[0-9a-f]{64}) was sent and is not recorded yet", line)
        assert match, line
        assert "a rerun records it without paying again" in line
        filler.unlink()
        ledger = home / "ledger.db"
        assert integrity(ledger) == "ok"
        assert rows(ledger, "SELECT tx_hash FROM pending_payments") == [(match.group(1),)]
        again = run_as_cron("upload", str(data), "--json", user_home=tmp_path, home=home, env=env)
        assert again.exit_code == 0, again
        assert again.json["recovered_payment"] == match.group(1)
        assert rows(ledger, "SELECT COUNT(*) FROM cost_tracking") == [(1,)]
        assert rows(ledger, "SELECT COUNT(*) FROM pending_payments") == [(0,)]
