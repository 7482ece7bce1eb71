"""Sizes, durations, money and chain amounts are parsed exactly or refused."""

from __future__ import annotations

import pytest

from zerog_cli.errors import UsageError
from zerog_cli.infra.units import (
    format_0g,
    format_size,
    format_usd,
    parse_0g,
    parse_duration,
    parse_size,
    parse_usd,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096), ("10MB", 10_000_000), ("1.5GiB", 1_610_612_736), ("2 kb", 2000), ("0", 0)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["-1", "10XB", "", "1.0000001KB", "MB", "nan"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", 90), ("15m", 900), ("24h", 86400), ("1h30m", 5400), ("7d", 604800), ("30", 30)],
)
def test_parse_duration(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "1x", "1h 30", "-5m", "²", "1²h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_money_is_integer_micro_usd() -> None:
    assert parse_usd("0.10") == 100_000
    assert parse_usd("$12.5") == 12_500_000
    assert format_usd(100_000) == "$0.10"
    assert format_usd(1_234_567) == "$1.234567"
    with pytest.raises(UsageError):
        parse_usd("0.0000001")
    with pytest.raises(UsageError):
        parse_usd("-1")
    with pytest.raises(UsageError):
        parse_usd("Infinity")


def test_0g_amounts_are_exact_neuron() -> None:
    assert parse_0g("1.5") == 1_500_000_000_000_000_000
    assert parse_0g("0.000000000000000001") == 1
    assert format_0g(1_500_000_000_000_000_000) == "1.5"
    assert format_0g(3 * 10**18) == "3"
    with pytest.raises(UsageError):
        parse_0g("0.0000000000000000001")


def test_format_size() -> None:
    assert format_size(999) == "999 B"
    assert format_size(10_000_000) == "10.00 MB"
