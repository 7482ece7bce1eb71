"""Click parameter types (zerog_cli/cli/params.py) and choice enums
(zerog_cli/infra/choices.py): bad text on a real command line is exit 2 with one
line naming the option, before the command does anything; good text reaches the
command as a typed value."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerog_cli.cli import params
from zerog_cli.errors import UsageError

BAD_VALUES = [
    (("upload", "/etc/hostname", "--max-size", "ten"), "--max-size", "not a size"),
    (("upload", "/etc/hostname", "--gas-price", "4xx"), "--gas-price", "not a gas price"),
    (("download", "0x" + "ab" * 32, "--mode", "999"), "--mode", "octal file mode"),
    (("verify", "12", "x1"), "ids", "not a backup id"),
    (("verify", "--older-than", "3x"), "--older-than", "not a duration"),
    (("verify", "--max-duration", "soon"), "--max-duration", "not a duration"),
    (("verify", "--subset", "0/7"), "--subset", "n must be between 1 and t"),
    (("verify", "--subset", "1-7"), "--subset", "must look like n/t"),
    (("verify", "--sample", "101"), "--sample", "at most 100"),
    (("verify", "--read-data-subset", "5"), "--read-data-subset", "a percentage such as 5%"),
    (("backup", "ls", "--before", "yesterday"), "--before", "not a date, time or age"),
    (("backup", "unverified", "--max-age", "1y"), "--max-age", "not a duration"),
    (("backup", "unverified", "--max-age-full", "x"), "--max-age-full", "not a duration"),
    (("ns", "create", "q", "--quota", "lots"), "--quota", "not a size"),
    (("ns", "create", "q", "--max-object-size", "1x"), "--max-object-size", "not a size"),
    (("ns", "create", "q", "--meta", "team"), "--meta", "metadata must be key=value"),
    (("quota", "set", "bob", "--storage", "lots"), "--storage", "not a size"),
    (("quota", "set", "bob", "--tokens", "1.5"), "--tokens", "not a whole number"),
    (("quota", "set", "bob", "--tokens", "-5"), "--tokens", "must not be negative"),
    (("quota", "set", "bob", "--monthly-usd", "x"), "--monthly-usd", "not a USD amount"),
    (("infer", "fund", "deposit", "0"), "amount", "more than 0 0G"),
    (("infer", "fund", "deposit", "1.5.2"), "amount", "not a 0G amount"),
    (("infer", "fund", "refund", "most"), "amount", "not a 0G amount"),
    (("upload", "/etc/hostname", "--wait", "never"), "--wait", "is not one of"),
    (("secrets", "set", "X", "--store", "vault"), "--store", "is not one of"),
    (("ns", "grant", "team", "bob", "writer"), "role", "is not one of"),
    (("quota", "report", "--by", "nope"), "--by", "is not one of"),
    (("quota", "report", "--month", "2026-13"), "--month", "must look like 2026-11"),
    (("infer", "ask", "hi", "--via", "x"), "--via", "is not one of"),
    (("infer", "ask", "hi", "--sort", "fast"), "--sort", "is not one of"),
    (("devnet", "up", "--indexer", "mine"), "--indexer", "is not one of"),
    (("devnet", "up", "--chain", "geth"), "--chain", "is not one of"),
    (("backup", "create", "/etc", "--format", "zip"), "--format", "is not one of"),
    (("init", "--profile", "nope"), "--profile", "is not one of"),
    (("auth", "address", "--key", "bogus"), "--key", "is not one of"),
    (("--profile", "nope", "config", "show"), "--profile", "is not one of"),
    (("config", "set", "user", "bob", "--profile", "nope"), "--profile", "is not one of"),
]


@pytest.mark.parametrize(("argv", "option", "why"), BAD_VALUES)
def test_a_bad_value_is_exit_2_with_one_line_naming_the_option(
    cli_process, argv: tuple[str, ...], option: str, why: str
) -> None:
    result = cli_process(*argv)
    assert result.exit_code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith(f"error: Invalid value for '{option}'"), result
    assert why in lines[0], result
    assert "Traceback" not in result.stderr


def test_a_bad_value_with_json_is_the_usage_error_document(zerog) -> None:
    result = zerog("--json", "verify", "--sample", "0")
    assert result.exit_code == 2, result
    error = result.json["error"]
    assert (error["exit_code"], error["kind"]) == (2, "usage")
    assert "'--sample'" in error["message"]


def test_a_refused_value_changes_nothing(zerog) -> None:
    result = zerog("quota", "set", "bob", "--storage", "lots")
    assert result.exit_code == 2, result
    assert zerog("quota", "show", "bob").exit_code == 7, "the refused command created bob"


def test_init_with_an_unknown_profile_writes_no_config(zerog, zerog_home: Path) -> None:
    """It wrote ``profile = "nope"`` and exited 8, and every later command failed on it."""
    result = zerog("init", "--profile", "nope")
    assert result.exit_code == 2, result
    assert not (zerog_home / "config.toml").exists()
    assert zerog("init", "--profile", "testnet").exit_code == 0
    assert zerog("config", "get", "profile").stdout.strip() == "testnet"


def test_typed_values_reach_the_command(zerog) -> None:
    created = zerog(
        "ns", "create", "team", "--quota", "1.5GB", "--meta", "a=b", "--meta", "c=d=e", "--json"
    )
    assert created.exit_code == 0, created
    assert created.json["quota_bytes"] == 1_500_000_000
    assert created.json["metadata"] == {"a": "b", "c": "d=e"}
    limits = zerog(
        "quota", "set", "bob", "--tokens", "1_000", "--monthly-usd", "2.5", "--json"
    ).json["limits"]
    assert (limits["tokens"]["limit"], limits["monthly_usd"]["limit"]) == (1000, 2_500_000)
    cleared = zerog("quota", "set", "bob", "--tokens", "tier", "--json").json["limits"]
    assert cleared["tokens"]["overridden"] is False


@pytest.mark.parametrize(
    ("text", "ok"),
    [("1/7", (1, 7)), (" 7 / 7 ", (7, 7)), ("0/7", None), ("8/7", None), ("1-7", None)],
)
def test_subset(text: str, ok: tuple[int, int] | None) -> None:
    if ok is None:
        with pytest.raises(UsageError):
            params.SUBSET.parse(text)
    else:
        assert params.SUBSET.parse(text) == params.Part(*ok)


@pytest.mark.parametrize(
    ("text", "ok"), [("10", 10.0), ("2.5%", 2.5), ("0", None), ("101", None), ("x", None)]
)
def test_percent(text: str, ok: float | None) -> None:
    if ok is None:
        with pytest.raises(UsageError):
            params.PERCENT.parse(text)
    else:
        assert params.PERCENT.parse(text) == ok


def test_data_subset_and_moment() -> None:
    from datetime import UTC, datetime, timedelta

    assert params.DATA_SUBSET.parse("5%").describe() == "5%"
    assert params.DATA_SUBSET.parse("2/7").part == (2, 7)
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert params.MOMENT.parse("24h").resolve(now) == now - timedelta(hours=24)
    assert params.MOMENT.parse("2026-11-28").resolve(now) == datetime(2026, 11, 28, tzinfo=UTC)
    with_offset = params.MOMENT.parse("2026-11-28T03:00:00+02:00").resolve(now)
    assert with_offset == datetime(2026, 11, 28, 1, tzinfo=UTC)
    assert params.FILE_MODE.parse("0o640") == 0o640
    assert params.AMOUNT_OR_ALL.parse("ALL") == params.AmountOrAll(None)
    assert params.AMOUNT_OR_ALL.parse("1.5") == params.AmountOrAll(15 * 10**17)
