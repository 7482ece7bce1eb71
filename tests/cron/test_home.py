"""Cron with no home: exit 8 and create nothing; verify is never a false green.

A cron job with another HOME (or none of the operator's variables) used to
create an empty ``~/.config/zerog`` (0755) and report "0 of 0" with exit 0.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess


def _all_paths(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    """The HOME the `cron` fixture gives its jobs."""
    return tmp_path / "cron-user"


@pytest.mark.parametrize(
    "args",
    [
        ("verify", "--all"),
        ("verify",),
        ("status",),
        ("backup", "ls"),
        ("backup", "unverified"),
        ("ns", "ls"),
        ("quota", "show"),
        ("ledger", "status"),
        ("ledger", "migrate"),
        ("ledger", "sql", "SELECT 1"),
        ("metrics", "show"),
        ("secrets", "ls"),
        ("config", "set", "user", "ops"),
        ("download", "backups/nightly.db"),
    ],
    ids=" ".join,
)
def test_an_uninitialised_default_home_is_exit_8_and_nothing_is_created(
    cron: Callable[..., Result], user_home: Path, args: tuple[str, ...]
) -> None:
    result = cron(*args)
    assert result.exit_code == 8, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result
    assert "zerog init" in lines[0] and "ZEROG_HOME" in lines[0]
    assert str(user_home / ".config" / "zerog") in lines[0]
    assert _all_paths(user_home) == [], "a refused command must create nothing"


def test_commands_that_keep_no_state_run_without_a_home(
    cron: Callable[..., Result], user_home: Path
) -> None:
    data = user_home / "data.bin"
    user_home.mkdir(parents=True)
    data.write_bytes(b"zerog" * 100)
    assert cron("--help").exit_code == 0
    assert cron("verify", "--help").exit_code == 0
    hashed = cron("hash", str(data), "--json")
    assert hashed.exit_code == 0, hashed
    assert hashed.json["root"].startswith("0x")
    shown = cron("config", "show", "--json")
    assert shown.exit_code == 0, shown
    completion = cron("completion", "bash")
    assert completion.exit_code == 0, completion
    assert "zerog" in completion.stdout
    assert _all_paths(user_home) == [data]


def test_init_creates_the_default_home_0700_then_commands_work(
    cron: Callable[..., Result], user_home: Path
) -> None:
    made = cron("init", "--user", "ops")
    assert made.exit_code == 0, made
    home = user_home / ".config" / "zerog"
    assert _mode(user_home / ".config") == 0o700, "a parent zerog creates is private too"
    assert _mode(home) == 0o700
    assert _mode(home / "ledger.db") == 0o600
    assert cron("ledger", "status").exit_code == 0
    assert cron("config", "set", "user", "ops2").exit_code == 0


def test_an_explicit_zerog_home_is_created_on_first_use_with_private_parents(
    cron: Callable[..., Result], tmp_path: Path
) -> None:
    home = tmp_path / "srv" / "zerog" / "home"
    result = cron("ledger", "status", "--json", home=home)
    assert result.exit_code == 0, result
    assert result.json["path"] == str(home / "ledger.db")
    for folder in (tmp_path / "srv", tmp_path / "srv" / "zerog", home):
        assert _mode(folder) == 0o700, folder


def test_state_folders_inside_the_home_are_0700(
    cron: Callable[..., Result], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    stored = cron(
        "secrets",
        "set",
        "JWT_SECRET",
        "--stdin",
        "--store",
        "file",
        home=home,
        stdin=b"not-a-real-jwt\n",
    )
    assert stored.exit_code == 0, stored
    assert cron("ns", "create", "backups", home=home).exit_code == 0
    assert cron("verify", "--all", home=home).exit_code == 7
    folders = [home, *(path for path in _all_paths(home) if path.is_dir())]
    assert {path.name for path in folders} >= {"home", "secrets", "locks"}
    assert {path: _mode(path) for path in folders} == dict.fromkeys(folders, 0o700)


def test_verify_with_no_live_backup_in_scope_is_exit_7(
    cron: Callable[..., Result], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    for args in (("verify",), ("verify", "--all"), ("verify", "--label", "nightly")):
        result = cron(*args, home=home)
        assert result.exit_code == 7, (args, result)
        assert "no live backup" in result.stderr
        assert "0 of 0" not in result.stderr + result.stdout
    assert cron("ns", "create", "backups", home=home).exit_code == 0
    in_namespace = cron("verify", "--ns", "backups", home=home)
    assert in_namespace.exit_code == 7, in_namespace
    assert "no live backup in namespace backups on devnet" in in_namespace.stderr
    assert cron("verify", "--ns", "nosuch", home=home).exit_code == 7
    assert cron("verify", "12", home=home).exit_code == 7


def test_verify_with_backups_but_none_due_is_a_success_that_says_so(
    cron: Callable[..., Result], net: DevnetProcess, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    devnet = {"ZEROG_DEVNET_URL": net.base_url}
    source = tmp_path / "nightly.db"
    source.write_bytes(b"nightly dump " * 4000)
    made = cron("backup", "create", str(source), "--json", home=home, env=devnet)
    assert made.exit_code == 0, made
    backup_id = made.json["backup_id"]

    first = cron("verify", "--older-than", "24h", "--json", home=home, env=devnet)
    assert first.exit_code == 0, first
    assert first.json["checked"] == 1

    again = cron("verify", "--older-than", "24h", "--json", home=home, env=devnet)
    assert again.exit_code == 0, again
    assert (again.json["in_scope"], again.json["selected"]) == (1, 0)
    assert "nothing due: 1 live backup(s) in scope" in again.stderr

    empty_slice = f"{(backup_id + 1) % 2 + 1}/2"  # --subset n/t takes ids with id % t == n - 1
    other = cron("verify", "--subset", empty_slice, home=home, env=devnet)
    assert other.exit_code == 0, other
    assert other.stdout == ""
    assert "nothing due" in other.stderr
    assert cron("verify", "--subset", empty_slice, "-q", home=home, env=devnet).stderr == ""

    labelled = cron("verify", "--label", "weekly", home=home, env=devnet)
    assert labelled.exit_code == 7, labelled
    assert "no live backup labelled weekly on devnet" in labelled.stderr
