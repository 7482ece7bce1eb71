"""Shell completion (issue 12, item 8): `zerog completion bash|zsh|fish` and the answers.

Each test runs zerog as a shell's completion script does: a child process
with ``_ZEROG_COMPLETE`` and the shell's variables (``COMP_WORDS`` and
``COMP_CWORD`` for bash, ``_TYPER_COMPLETE_ARGS`` for zsh and fish), against
a ledger holding namespaces and backups, and against no ledger at all.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Result, run_cli_process
from tests.ledger_backends import LedgerBackend
from tests.test_backups_ledger import ledger_at, seed_backup
from zerog_cli.ledger import backups

VENV_BIN = Path(sys.executable).parent
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def complete(line: str, *, shell: str = "bash", env: dict[str, str] | None = None) -> Result:
    """What zerog answers when ``shell`` asks to complete ``line`` (cursor at its end)."""
    variables = {"_ZEROG_COMPLETE": f"complete_{shell}", **(env or {})}
    if shell == "bash":
        words = line.split(" ")
        variables |= {"COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    else:
        variables["_TYPER_COMPLETE_ARGS"] = line
    if shell == "fish":
        variables["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    return run_cli_process(env=variables)


def answers(line: str, *, shell: str = "bash") -> list[str]:
    result = complete(line, shell=shell)
    assert result.exit_code == 0, result
    assert result.stderr == "", result
    return result.stdout.splitlines()


@pytest.fixture
def ledger_home(zerog_home: Path) -> dict[str, int]:
    """A ledger with namespaces app-data and backups, two live backups and a retired one."""
    ledger = ledger_at(zerog_home)
    ids = {
        "db": seed_backup(ledger, created_at="2026-03-01T01:00:00Z", label="db"),
        "logs": seed_backup(
            ledger, created_at="2026-03-02T01:00:00Z", namespace="app-data", label="logs"
        ),
        "old": seed_backup(ledger, created_at="2026-02-01T01:00:00Z", label="old"),
    }
    with ledger.transaction() as conn:
        backups.retire(conn, ids["old"], when="2026-03-03T00:00:00Z", reason="test")
    ledger.close()
    return ids


def folder_state(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("shell", "hook"),
    [
        ("bash", "complete -o default -F _zerog_completion zerog"),
        ("zsh", "compdef _zerog_completion zerog"),
        ("fish", "complete --command zerog --no-files"),
    ],
)
def test_completion_prints_the_script_for_each_shell(shell: str, hook: str) -> None:
    result = run_cli_process("completion", shell)

    assert result.exit_code == 0, result
    assert hook in result.stdout
    assert f"_ZEROG_COMPLETE=complete_{shell}" in result.stdout
    assert "Traceback" not in result.stderr


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = run_cli_process("completion", "powershell")

    assert result.exit_code == 2
    assert "'powershell' is not one of 'bash', 'zsh', 'fish'" in result.stderr


def test_the_bash_script_completes_namespaces_in_a_real_bash(ledger_home: dict[str, int]) -> None:
    script = run_cli_process("completion", "bash").stdout
    probe = (
        f"{script}\n"
        'COMP_WORDS=(zerog backup ls --ns ""); COMP_CWORD=4\n'
        "_zerog_completion zerog\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    shown = subprocess.run(
        ["bash", "--norc", "-c", probe],
        env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["app-data", "backups"]


def test_commands_subcommands_and_options_complete(ledger_home: dict[str, int]) -> None:
    assert answers("zerog ba") == ["backup"]
    assert "completion" in answers("zerog ")
    assert {"create", "ls", "show", "restore", "prune"} <= set(answers("zerog backup "))
    assert {"--ns", "--label", "--json"} <= set(answers("zerog backup ls --"))


def test_namespace_names_complete_from_the_ledger(ledger_home: dict[str, int]) -> None:
    assert answers("zerog backup ls --ns ") == ["app-data", "backups"]
    assert answers("zerog verify --ns b") == ["backups"]
    assert answers("zerog upload file.bin --ns a") == ["app-data"]
    assert answers("zerog ns show ") == ["app-data", "backups"]
    assert answers("zerog ns grant ap") == ["app-data"]


def test_live_backup_ids_complete_from_the_ledger(ledger_home: dict[str, int]) -> None:
    live = [str(ledger_home["db"]), str(ledger_home["logs"])]

    assert answers("zerog backup show ") == live
    assert answers("zerog backup restore ") == live
    assert answers(f"zerog verify {ledger_home['db']} ") == live


def test_profile_names_complete(ledger_home: dict[str, int]) -> None:
    assert answers("zerog --profile ") == ["devnet", "testnet", "mainnet"]
    assert answers("zerog init --profile t") == ["testnet"]


def test_the_profile_on_the_line_picks_its_ledger(
    ledger_home: dict[str, int], zerog_home: Path
) -> None:
    (zerog_home / "config.toml").write_text(
        f'[profiles.testnet]\nledger_path = "{zerog_home / "testnet.db"}"\n'
    )

    assert answers("zerog ns show ") == ["app-data", "backups"]
    assert answers("zerog --profile testnet ns show ") == []


def test_zsh_and_fish_get_values_with_descriptions(ledger_home: dict[str, int]) -> None:
    zsh = complete("zerog backup show ", shell="zsh")
    fish = answers("zerog backup show ", shell="fish")

    assert zsh.exit_code == 0, zsh
    assert f'"{ledger_home["logs"]}":"app-data/logs/' in zsh.stdout
    assert zsh.stdout.startswith("_arguments")
    assert fish[1].startswith(f"{ledger_home['logs']}\tapp-data/logs/")
    assert answers("zerog ns show a", shell="fish") == ["app-data"]


def test_clicks_instruction_order_is_understood_too(ledger_home: dict[str, int]) -> None:
    result = run_cli_process(
        env={
            "_ZEROG_COMPLETE": "bash_complete",
            "COMP_WORDS": "zerog ns show ",
            "COMP_CWORD": "3",
        }
    )

    assert (result.exit_code, result.stdout) == (0, "app-data\nbackups\n")


def test_completion_reads_the_ledger_without_changing_it(
    ledger_home: dict[str, int], zerog_home: Path
) -> None:
    before = folder_state(zerog_home)

    answers("zerog backup show ")
    answers("zerog ns show ")

    after = folder_state(zerog_home)
    assert after["ledger.db"] == before["ledger.db"]
    # A read-only SQLite connection to a WAL ledger leaves only SQLite's own
    # sidecar files: an empty write-ahead log and its index, private like the ledger.
    assert set(after) - set(before) <= {"ledger.db-wal", "ledger.db-shm"}
    assert after.get("ledger.db-wal", EMPTY_SHA256) == EMPTY_SHA256
    for name in after:
        assert (zerog_home / name).stat().st_mode & 0o077 == 0, name


def test_no_ledger_completes_nothing_and_creates_nothing(zerog_home: Path) -> None:
    for line in ("zerog backup show ", "zerog ns show ", "zerog backup ls --ns "):
        result = complete(line)
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert not zerog_home.exists()


def test_no_home_at_all_completes_nothing_under_cron(tmp_path: Path) -> None:
    """As cron runs it: no ZEROG_HOME, a HOME with no ~/.config/zerog."""
    user_home = tmp_path / "user"
    user_home.mkdir()
    completed = subprocess.run(
        [sys.executable, "-m", "zerog_cli"],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(user_home),
            "_ZEROG_COMPLETE": "complete_bash",
            "COMP_WORDS": "zerog ns show ",
            "COMP_CWORD": "3",
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "", "")
    assert list(user_home.iterdir()) == []


def test_a_damaged_ledger_completes_nothing_silently(zerog_home: Path) -> None:
    zerog_home.mkdir(parents=True)
    (zerog_home / "ledger.db").write_bytes(b"this is not a database" * 100)

    result = complete("zerog ns show ")

    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_a_postgresql_ledger_completes_too(ledger_backend: LedgerBackend) -> None:
    """With ``ledger_url`` naming PostgreSQL, the values come from that database (the
    SQLite file in ZEROG_HOME does not exist), read with the DATABASE_PASSWORD secret."""
    ledger = ledger_backend.open()
    backup_id = seed_backup(ledger, created_at="2026-03-01T01:00:00Z", namespace="pg-data")
    ledger.close()
    assert answers("zerog ns show ") == ["pg-data"]
    assert answers("zerog backup restore ") == [str(backup_id)]
