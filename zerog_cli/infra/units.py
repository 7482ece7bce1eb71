"""Parsing and formatting of sizes, durations, money and chain amounts.

Everything is integer arithmetic: sizes in bytes, durations in seconds, money
in micro-USD, chain amounts in neuron (1 0G = 10**18 neuron). Decimal input is
parsed exactly with `decimal.Decimal`; a value that does not land on a whole
unit is refused rather than rounded silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from zerog_cli.errors import UsageError

MICRO_PER_USD = 1_000_000
NEURON_PER_0G = 10**18
INT64_MAX = 2**63 - 1
"""Largest integer the ledger (SQLite INTEGER) stores: sizes, counts and micro-USD above it
are refused as input instead of failing later with an OverflowError."""
MAX_DURATION = 100 * 365 * 86400
"""Longest duration accepted (100 years): enough for any age or timeout, small enough for
datetime arithmetic."""

_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 1000**2,
    "MB": 1000**2,
    "G": 1000**3,
    "GB": 1000**3,
    "T": 1000**4,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"([0-9]+)([smhdw])")


def parse_size(text: str | int) -> int:
    """Parse '10MB', '1.5GiB', '4096' into bytes (SI units are powers of 1000)."""
    if isinstance(text, int):
        if text < 0:
            raise UsageError(f"size must not be negative: {text}")
        if text > INT64_MAX:
            raise UsageError(f"size {text} is too large (at most {INT64_MAX} bytes)")
        return text
    match = _SIZE_RE.match(text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise UsageError(f"not a size: {text!r} (examples: 4096, 10MB, 1.5GiB)")
    value = Decimal(match.group(1)) * _SIZE_UNITS[unit]
    if value != value.to_integral_value():
        raise UsageError(f"size {text!r} is not a whole number of bytes")
    if value > INT64_MAX:
        raise UsageError(f"size {text!r} is too large (at most {INT64_MAX} bytes)")
    return int(value)


def format_size(size: int) -> str:
    """Human size with SI units, exact for small values: 999 B, 10.0 MB, 1.50 GB."""
    if size < 1000:
        return f"{size} B"
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size >= factor:
            return f"{size / factor:.2f} {unit}"
    raise AssertionError("unreachable")


def parse_duration(text: str) -> int:
    """Parse '90s', '15m', '24h', '7d', '1h30m' or a bare number of seconds."""
    cleaned = text.strip().lower()
    if cleaned.isascii() and cleaned.isdigit():
        seconds = int(cleaned)
    else:
        parts = _DURATION_RE.findall(cleaned)
        if not parts or "".join(n + u for n, u in parts) != cleaned:
            raise UsageError(f"not a duration: {text!r} (examples: 90s, 15m, 24h, 7d, 1h30m)")
        seconds = sum(int(number) * _DURATION_UNITS[unit] for number, unit in parts)
    if seconds > MAX_DURATION:
        raise UsageError(f"duration {text!r} is too long (at most 100 years)")
    return seconds


@dataclass(frozen=True)
class Duration:
    """A duration in whole seconds, and the text it was given as (what messages repeat)."""

    seconds: int
    text: str

    def __str__(self) -> str:
        return self.text


def format_duration(seconds: float) -> str:
    """Short human duration: 45s, 12m, 3h05m, 2d04h."""
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60:02d}m"
    return f"{total // 86400}d{total % 86400 // 3600:02d}h"


def _parse_decimal(text: str | int | float, what: str) -> Decimal:
    try:
        value = Decimal(str(text).strip().lstrip("$"))
    except InvalidOperation:
        raise UsageError(f"not a {what}: {text!r}") from None
    if not value.is_finite():
        raise UsageError(f"not a {what}: {text!r}")
    if value < 0:
        raise UsageError(f"{what} must not be negative: {text!r}")
    return value


def parse_usd(text: str | int | float) -> int:
    """Parse a dollar amount ('5', '0.10', '$12.50') into integer micro-USD."""
    micro = _parse_decimal(text, "USD amount") * MICRO_PER_USD
    if micro != micro.to_integral_value():
        raise UsageError(f"USD amount {text!r} has more than 6 decimal places")
    if micro > INT64_MAX:
        raise UsageError(f"USD amount {text!r} is too large")
    return int(micro)


def format_usd(micro: int) -> str:
    """Micro-USD as dollars: 1234567 -> '$1.234567', 100000 -> '$0.10'."""
    sign = "-" if micro < 0 else ""
    dollars, rest = divmod(abs(micro), MICRO_PER_USD)
    cents_and_more = f"{rest:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}${dollars}.{cents_and_more}"


def parse_0g(text: str | int) -> int:
    """Parse a decimal 0G amount ('1.5') into integer neuron, exactly."""
    neuron = _parse_decimal(text, "0G amount") * NEURON_PER_0G
    if neuron != neuron.to_integral_value():
        raise UsageError(f"0G amount {text!r} has more than 18 decimal places")
    return int(neuron)


def format_0g(neuron: int) -> str:
    """Neuron as a decimal 0G string without trailing zeros: 1500000000000000000 -> '1.5'."""
    sign = "-" if neuron < 0 else ""
    whole, rest = divmod(abs(neuron), NEURON_PER_0G)
    fraction = f"{rest:018d}".rstrip("0")
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


@dataclass(frozen=True)
class Amount:
    """A chain amount as every report gives it: neuron as decimal text (it may pass
    64 bits) and the same in 0G (JSON key ``0g``)."""

    neuron: str
    og: str = field(metadata={"json_key": "0g"})

    @classmethod
    def of(cls, neuron: int) -> Amount:
        return cls(str(neuron), format_0g(neuron))


@dataclass(frozen=True)
class Cost(Amount):
    """What something cost or may cost: neuron, 0G, and micro-USD."""

    usd_micro: int = 0

    @classmethod
    def of_both(cls, neuron: int, usd_micro: int) -> Cost:
        return cls(str(neuron), format_0g(neuron), usd_micro)


@dataclass(frozen=True)
class RecordedCost(Amount):
    """What the ledger recorded something cost, with the keys of every cost: neuron, 0G and
    micro-USD. ``usd_micro`` is null when the ledger holds no price for it (a row written
    without one, by plain SQL or another tool)."""

    usd_micro: int | None = None

    @classmethod
    def of_both(cls, neuron: int, usd_micro: int | None) -> RecordedCost:
        return cls(str(neuron), format_0g(neuron), usd_micro)


GWEI = 10**9
MAX_GAS_PRICE = 10**6 * GWEI
"""A million gwei per gas: far above any real price; a typo guard."""


def parse_gas_price(text: str | int) -> int:
    """A gas price: neuron per gas ('4000000000') or gwei ('4gwei', '1.5 gwei')."""
    cleaned = str(text).strip().lower().replace("_", "")
    scale = 1
    if cleaned.endswith("gwei"):
        cleaned, scale = cleaned[: -len("gwei")].strip(), GWEI
    try:
        value = Decimal(cleaned) * scale
    except InvalidOperation:
        raise UsageError(f"not a gas price: {text!r} (examples: 4000000000, 4gwei)") from None
    if value != value.to_integral_value() or value <= 0:
        raise UsageError(f"a gas price is a positive whole number of neuron per gas: {text!r}")
    if value > MAX_GAS_PRICE:
        raise UsageError(f"gas price {text!r} is above {MAX_GAS_PRICE // GWEI} gwei: a typo?")
    return int(value)


def parse_positive_int(text: str | int, what: str) -> int:
    """Parse a non-negative integer such as a token count, refusing junk."""
    try:
        value = int(str(text).strip().replace("_", ""))
    except ValueError:
        raise UsageError(f"not a whole number for {what}: {text!r}") from None
    if value < 0:
        raise UsageError(f"{what} must not be negative: {text!r}")
    if value > INT64_MAX:
        raise UsageError(f"{what} is too large: {text!r} (at most {INT64_MAX})")
    return value
