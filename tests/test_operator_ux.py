"""Small things an operator trips on, each from a real command line.

`-q` keeps stderr to errors, a warning prints once, group help shows whole
summaries, a bare group prints its help and exits 0, `ledger backup -` streams
to stdout, `config get` reads one value, `verify` shows progress on a terminal
only, and `backup restore -o DIR` keeps the original file name.
"""

from __future__ import annotations

import os
import pty
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess

CLOSED_PORT_URL = "http://127.0.0.1:9"
ANY_ROOT = "0x" + "ab" * 32
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# -- -q and warnings -----------------------------------------------------------------------


def test_quiet_silences_logged_warnings_but_keeps_the_error(
    cli_process: Callable[..., Result], tmp_path: Path
) -> None:
    env = {
        "ZEROG_DEVNET_URL": CLOSED_PORT_URL,
        "ZEROG_BREAKER_FAIL_MAX": "1",
        "ZEROG_HTTP_MAX_TRIES": "1",
    }
    args = ("download", ANY_ROOT, "-o", str(tmp_path / "out.bin"))
    # Each run gets its own home: the breaker state is kept in the ledger, and
    # only the run that opens the breaker logs the warning.
    for home in ("loud", "quiet"):
        (tmp_path / home).mkdir()
    loud = cli_process(*args, env={**env, "ZEROG_HOME": str(tmp_path / "loud")})
    assert loud.exit_code == 6, loud
    assert "WARNING zerog.http: circuit breaker" in loud.stderr
    quiet = cli_process("-q", *args, env={**env, "ZEROG_HOME": str(tmp_path / "quiet")})
    assert quiet.exit_code == 6, quiet
    assert quiet.stderr.startswith("error: ")
    assert quiet.stderr.count("\n") == 1, quiet.stderr
    assert "WARNING" not in quiet.stderr


def test_a_secrets_warning_prints_once(zerog: Callable[..., Result]) -> None:
    result = zerog("secrets", "set", "JWT_SECRET", "--stdin", stdin="not-a-real-secret\n")
    assert result.exit_code == 0, result
    lines = [line for line in result.stderr.splitlines() if "no usable keyring" in line]
    assert len(lines) == 1, result.stderr
    quiet = zerog("secrets", "set", "JWT_SECRET", "--stdin", "-q", stdin="another-one\n")
    assert quiet.exit_code == 0, quiet
    assert quiet.stderr == ""


# -- help ----------------------------------------------------------------------------------


def _commands_section(help_text: str) -> str:
    return help_text.split("Commands:", 1)[1].split("Examples:", 1)[0]


@pytest.mark.parametrize(
    "group", [(), ("backup",), ("infer",), ("infer", "fund"), ("ns",), ("quota",), ("config",)]
)
def test_group_help_shows_whole_summaries(zerog: Callable[..., Result], group: tuple) -> None:
    result = zerog(*group, "--help")
    assert result.exit_code == 0, result
    section = _commands_section(result.stdout)
    assert "..." not in section
    assert "…" not in section


def test_group_help_wraps_a_long_summary_instead_of_cutting_it(
    zerog: Callable[..., Result],
) -> None:
    section = " ".join(_commands_section(zerog("backup", "--help").stdout).split())
    assert "check every proof, its size and SHA-256, then write it (exit 3 if not)." in section
    root = " ".join(_commands_section(zerog("--help").stdout).split())
    assert "Manage secrets: environment, NAME_FILE paths, the OS keyring or zerog's 0600" in root


@pytest.mark.parametrize("group", [(), ("backup",), ("infer",), ("ledger",)])
def test_a_bare_group_prints_its_help_and_exits_0(
    cli_process: Callable[..., Result], group: tuple
) -> None:
    result = cli_process(*group)
    assert result.exit_code == 0, result
    assert result.stdout.startswith(f"Usage: zerog {' '.join(group)}".rstrip() + " [OPTIONS]")
    assert "Commands:" in result.stdout
    assert result.stderr == ""


# -- ledger backup - ----------------------------------------------------------------------


def test_ledger_backup_dash_streams_a_consistent_copy_to_stdout(
    zerog: Callable[..., Result], tmp_path: Path, zerog_home: Path
) -> None:
    assert zerog("ns", "create", "reports").exit_code == 0
    work = tmp_path / "work"
    work.mkdir()
    with (work / "copy.db").open("wb") as sink:
        completed = subprocess.run(
            [sys.executable, "-m", "zerog_cli", "ledger", "backup", "-"],
            stdout=sink,
            stderr=subprocess.PIPE,
            cwd=work,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr
    assert sorted(p.name for p in work.iterdir()) == ["copy.db"]
    with sqlite3.connect(work / "copy.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT name FROM namespaces WHERE name = 'reports'").fetchone()
    assert b"ledger copied to stdout" in completed.stderr


def test_ledger_backup_dash_with_json_is_a_usage_error(
    zerog: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = zerog("ledger", "backup", "-", "--json")
    assert result.exit_code == 2, result
    assert "both want stdout" in result.stderr
    assert not (tmp_path / "-").exists()


# -- config get ---------------------------------------------------------------------------


def test_config_get_prints_the_value_in_force(
    zerog: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert zerog("config", "set", "http_max_tries", "6").exit_code == 0
    result = zerog("config", "get", "http_max_tries")
    assert (result.exit_code, result.stdout) == (0, "6\n")
    assert zerog("config", "get", "http_max_tries", "--json").json == {
        "schema": "zerog.config.get/1",
        "key": "http_max_tries",
        "value": 6,
        "source": "file",
    }
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "9")
    assert zerog("config", "get", "http_max_tries", "--json").json["source"] == "env"
    assert zerog("config", "get", "max_upload_size").stdout == "10000000\n"
    assert zerog("config", "get", "http_read_timeout").stdout == "30s\n"
    assert zerog("config", "get", "metrics_file").stdout == "\n"


def test_config_get_reads_tier_limits(zerog: Callable[..., Result]) -> None:
    assert zerog("config", "set", "tiers.free.storage", "2GB").exit_code == 0
    storage = zerog("config", "get", "tiers.free.storage", "--json").json
    assert (storage["value"], storage["source"]) == (2_000_000_000, "file")
    tokens = zerog("config", "get", "tiers.free.tokens", "--json").json
    assert (tokens["value"], tokens["source"]) == (100_000, "default")
    assert zerog("config", "get", "tiers.premium.monthly_usd").stdout == "$500.00\n"


@pytest.mark.parametrize("key", ["no_such_key", "tiers.gold.storage", "tiers.free.colour"])
def test_config_get_of_an_unknown_key_is_exit_2(zerog: Callable[..., Result], key: str) -> None:
    result = zerog("config", "get", key)
    assert result.exit_code == 2, result
    assert f"unknown config key {key!r}" in result.stderr
    assert result.stdout == ""


# -- against a devnet ---------------------------------------------------------------------


def _run_with_stderr_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``python -m zerog_cli ARGS`` with stderr on a pseudo-terminal; return code and text."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "zerog_cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    code = process.wait(timeout=120)
    return code, ANSI_ESCAPE.sub("", b"".join(chunks).decode("utf-8", "replace"))


@pytest.fixture
def two_backups(cli: Callable[..., Result], tmp_path: Path) -> list[dict]:
    made = []
    for name in ("orders.db", "users.db"):
        source = tmp_path / name
        source.write_bytes(os.urandom(50_000))
        result = cli("backup", "create", str(source), "--label", "ux", "--json")
        assert result.exit_code == 0, result
        made.append(result.json)
    return made


@pytest.mark.devnet
def test_verify_shows_progress_on_a_terminal_only(
    cli: Callable[..., Result],
    net: DevnetProcess,
    two_backups: list[dict],
    cli_process: Callable[..., Result],
) -> None:
    ids = [str(backup["backup_id"]) for backup in two_backups]
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "ZEROG_DEVNET_URL": net.base_url}
    code, terminal = _run_with_stderr_on_a_terminal(["verify", *ids], env)
    assert code == 0, terminal
    first = two_backups[0]
    assert f"verify {first['backup_id']} {first['namespace']}/{first['name']}" in terminal
    assert "0/2" in terminal

    for flag in ("-q", "--json"):
        code, terminal = _run_with_stderr_on_a_terminal(["verify", *ids, flag], env)
        assert code == 0, terminal
        assert terminal == "", (flag, terminal)

    piped = cli_process("verify", *ids, env={"ZEROG_DEVNET_URL": net.base_url})
    assert piped.exit_code == 0, piped
    assert piped.stderr == ""


@pytest.mark.devnet
def test_backup_restore_into_a_folder_keeps_the_original_name(
    cli: Callable[..., Result], two_backups: list[dict], tmp_path: Path
) -> None:
    folder = tmp_path / "restored"
    folder.mkdir()
    for backup in two_backups:
        result = cli("backup", "restore", str(backup["backup_id"]), "-o", str(folder), "--json")
        assert result.exit_code == 0, result
    assert sorted(p.name for p in folder.iterdir()) == ["orders.db", "users.db"]
    assert (folder / "orders.db").read_bytes() == (tmp_path / "orders.db").read_bytes()
