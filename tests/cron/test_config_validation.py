"""Configuration that used to break silently: tiers, ranges, and the encryption key.

Each case runs from a real command line: `config set` refuses an out-of-range
value (exit 2), and a value already in the config file or the environment
stops every command with exit 8 naming the key and where it came from, instead
of an unlimited tier, a client that never retries, or a ValueError deep in an
HTTP call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result

VALID_ENCRYPTION_KEY = "0x" + "ab" * 32


def _tier(result: Result, name: str) -> dict[str, object]:
    assert result.exit_code == 0, result
    return next(row for row in result.json["tiers"] if row["tier"] == name)


def test_setting_one_tier_field_keeps_the_others(cron: Callable[..., Result], tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    assert cron("config", "set", "tiers.free.storage", "2GB", home=home).exit_code == 0
    free = _tier(cron("quota", "tiers", "--json", home=home), "free")
    assert free["storage_bytes"] == 2_000_000_000
    assert free["tokens"] == 100_000
    assert free["monthly_usd_micro"] == 5_000_000


def test_a_new_tier_has_only_the_limits_it_names(cron: Callable[..., Result], tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    assert cron("config", "set", "tiers.gold.tokens", "50", home=home).exit_code == 0
    gold = _tier(cron("quota", "tiers", "--json", home=home), "gold")
    assert (gold["tokens"], gold["storage_bytes"], gold["monthly_usd_micro"]) == (50, None, None)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("http_max_tries", "-1", "at least 1"),
        ("http_max_tries", "0", "at least 1"),
        ("http_max_tries", "1000", "at most 100"),
        ("breaker_fail_max", "0", "at least 1"),
        ("http_read_timeout", "0s", "at least 1s"),
        ("http_connect_timeout", "0", "at least 1s"),
        ("breaker_reset_timeout", "-5s", "not a duration"),
        ("wait_timeout", "0s", "at least 1s"),
        ("replicas", "0", "at least 1"),
        ("upload_concurrency", "0", "at least 1"),
        ("max_upload_size", "0", "at least 1 B"),
        ("timezone", "Mars/Olympus", "not a timezone"),
        ("default_tier", "gold", "no tier 'gold'"),
        ("tiers.free.tokens", "-5", "must not be negative"),
    ],
)
def test_config_set_refuses_an_out_of_range_value(
    cron: Callable[..., Result], tmp_path: Path, key: str, value: str, says: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = cron("config", "set", "--", key, value, home=home)
    assert result.exit_code == 2, result
    assert result.stderr.startswith(f"error: {key}: ")
    assert says in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (home / "config.toml").exists()


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("ZEROG_HTTP_READ_TIMEOUT", "0s", "http_read_timeout"),
        ("ZEROG_HTTP_MAX_TRIES", "-1", "http_max_tries"),
        ("ZEROG_BREAKER_FAIL_MAX", "0", "breaker_fail_max"),
        ("ZEROG_TIMEZONE", "Mars/Olympus", "timezone"),
    ],
)
def test_a_bad_value_in_the_environment_is_exit_8_naming_the_variable(
    cron: Callable[..., Result], tmp_path: Path, variable: str, value: str, key: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for argv in (["status"], ["ledger", "status"], ["quota", "tiers"]):
        result = cron(*argv, home=home, env={variable: value})
        assert result.exit_code == 8, (argv, result)
        assert result.stderr.startswith(f"error: {key} from environment variable {variable}: ")
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr


def test_a_bad_value_in_the_config_file_is_exit_8_naming_the_file(
    cron: Callable[..., Result], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.toml"
    config.write_text("http_max_tries = -1\n")
    result = cron("ledger", "status", home=home)
    assert result.exit_code == 8, result
    assert f"error: http_max_tries from config file {config}: " in result.stderr
    assert "at least 1" in result.stderr
    config.write_text('[profiles.devnet]\nhttp_read_timeout = "0s"\n')
    result = cron("ledger", "status", home=home)
    assert result.exit_code == 8, result
    assert f"http_read_timeout from config file {config} [profiles.devnet]: " in result.stderr
    config.write_text('default_tier = "gold"\n')
    result = cron("quota", "tiers", home=home)
    assert result.exit_code == 8, result
    assert "default_tier from config file" in result.stderr
    assert "no tier 'gold'" in result.stderr


def test_the_environment_wins_over_a_broken_file_value(
    cron: Callable[..., Result], tmp_path: Path
) -> None:
    """A value the environment overrides is never used, but it is still wrong: say so."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("http_max_tries = 0\n")
    result = cron("ledger", "status", home=home, env={"ZEROG_HTTP_MAX_TRIES": "3"})
    assert result.exit_code == 8, result
    assert "http_max_tries from config file" in result.stderr


def test_secrets_set_refuses_a_malformed_encryption_key(
    cron: Callable[..., Result], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = cron("secrets", "set", "ENCRYPTION_KEY", "--stdin", home=home, stdin=b"hunter2\n")
    assert result.exit_code == 8, result
    assert "ENCRYPTION_KEY" in result.stderr and "64 hex digits" in result.stderr
    assert "hunter2" not in result.stderr
    assert not (home / "secrets" / "ENCRYPTION_KEY").exists()
    short = b"0x" + b"ab" * 16
    result = cron("secrets", "set", "ENCRYPTION_KEY", "--stdin", home=home, stdin=short)
    assert result.exit_code == 8, result


@pytest.mark.parametrize("value", [VALID_ENCRYPTION_KEY, "AB" * 32])
def test_secrets_set_accepts_64_hex_digits_with_or_without_0x(
    cron: Callable[..., Result], tmp_path: Path, value: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    stdin = value.encode() + b"\n"
    result = cron("secrets", "set", "ENCRYPTION_KEY", "--stdin", home=home, stdin=stdin)
    assert result.exit_code == 0, result
    assert cron("secrets", "doctor", home=home).exit_code == 0


def test_secrets_doctor_finds_a_malformed_encryption_key(
    cron: Callable[..., Result], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    key_file = tmp_path / "encryption.key"
    key_file.write_text("not-a-key\n")
    key_file.chmod(0o600)
    result = cron(
        "secrets", "doctor", "--json", home=home, env={"ENCRYPTION_KEY_FILE": str(key_file)}
    )
    assert result.exit_code == 8, result
    row = next(row for row in result.json["secrets"] if row["name"] == "ENCRYPTION_KEY")
    assert row["status"] == "invalid"
    assert any("ENCRYPTION_KEY" in problem for problem in result.json["problems"])
    assert "not-a-key" not in result.stdout + result.stderr
