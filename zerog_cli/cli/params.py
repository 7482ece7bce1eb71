"""Click parameter types: the one place where command-line text becomes typed values.

An option or argument that takes a size, a duration, a percentage, a subset, an
amount, a file mode, a moment or metadata names one of these types
(``click_type=``). Its `convert` validates the text and returns the typed value,
so commands and services never see the string; a bad value fails through
``self.fail``: exit 2 and one line naming the option (restic's
``ForgetPolicyCount.Set`` is the model). The unit grammars themselves (sizes,
durations, money, 0G) live in `infra.units`, which the config file shares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

import typer
from typer._click.types import ParamType

from zerog_cli.errors import UsageError
from zerog_cli.infra import units
from zerog_cli.infra.units import Duration

if TYPE_CHECKING:
    from typer._click import Context, Parameter

    from zerog_cli.services.sampling import DataSubset

T = TypeVar("T")

_SUBSET = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class _TextType(ParamType, Generic[T]):
    """A type whose `parse` turns the text into ``T`` or raises `UsageError`."""

    def parse(self, text: str) -> T:
        raise NotImplementedError

    def convert(self, value: Any, param: Parameter | None, ctx: Context | None) -> T:
        if not isinstance(value, str):
            return value  # a default, or a value converted already
        try:
            return self.parse(value)
        except UsageError as exc:
            self.fail(exc.message, param, ctx)


class BackupIdType(_TextType[int]):
    """A backup id: a whole number from `zerog backup ls`."""

    name = "id"

    def parse(self, text: str) -> int:
        if not text.isdigit() or int(text) > units.INT64_MAX:
            raise UsageError(f"not a backup id: {text!r}")
        return int(text)


class SizeType(_TextType[int]):
    """Bytes: ``4096``, ``10MB``, ``1.5GiB`` (SI units are powers of 1000)."""

    name = "size"

    def parse(self, text: str) -> int:
        return units.parse_size(text)


class DurationType(_TextType[Duration]):
    """``90s``, ``15m``, ``24h``, ``7d``, ``1h30m`` or a bare number of seconds."""

    name = "duration"

    def parse(self, text: str) -> Duration:
        return Duration(units.parse_duration(text), text)


class PercentType(_TextType[float]):
    """A share more than 0 and at most 100: ``10``, ``2.5%``."""

    name = "percent"

    def parse(self, text: str) -> float:
        try:
            value = float(text.strip().removesuffix("%"))
        except ValueError:
            raise UsageError(f"not a percentage such as 10 or 2.5%: {text!r}") from None
        if not 0 < value <= 100:
            raise UsageError(f"a percentage must be more than 0 and at most 100, not {text!r}")
        return value


def _parse_subset(text: str) -> tuple[int, int]:
    match = _SUBSET.match(text)
    if match is None:
        raise UsageError(f"must look like n/t (e.g. 2/7), not {text!r}")
    n, t = int(match.group(1)), int(match.group(2))
    if not 1 <= n <= t:
        raise UsageError(f"{text}: n must be between 1 and t")
    return n, t


@dataclass(frozen=True)
class Part:
    """Part ``n`` of ``t`` (1 <= n <= t)."""

    n: int
    t: int


class SubsetType(_TextType[Part]):
    """``n/t`` with 1 <= n <= t: part n of t (restic's ``--read-data-subset n/t``)."""

    name = "n/t"

    def parse(self, text: str) -> Part:
        return Part(*_parse_subset(text))


class DataSubsetType(_TextType["DataSubset"]):
    """``5%`` (a share of each backup's segments) or ``n/t``."""

    name = "subset"

    def parse(self, text: str) -> DataSubset:
        from zerog_cli.services.sampling import DataSubset

        if "/" in text:
            return DataSubset(part=_parse_subset(text))
        if not text.strip().endswith("%"):
            raise UsageError(f"must be a percentage such as 5% or n/t such as 2/7, not {text!r}")
        try:
            value = float(text.strip().removesuffix("%"))
        except ValueError:
            raise UsageError(f"not a percentage: {text!r}") from None
        if not 0 < value <= 100:
            raise UsageError(f"must be more than 0% and at most 100%, not {text!r}")
        return DataSubset(percent=value)


@dataclass(frozen=True)
class Moment:
    """A point in time given as a time, or as an age: that long before now."""

    at: datetime | None = None
    age: timedelta | None = None

    def resolve(self, now: datetime) -> datetime:
        """The time itself; for an age, ``now`` less the age."""
        if self.at is not None:
            return self.at
        return now - (self.age or timedelta())


class MomentType(_TextType[Moment]):
    """A date (midnight UTC), an ISO time (UTC unless it has an offset), or an age such
    as 24h or 7d."""

    name = "when"

    def parse(self, text: str) -> Moment:
        cleaned = text.strip()
        try:
            moment = datetime.fromisoformat(cleaned)
        except ValueError:
            try:
                return Moment(age=timedelta(seconds=units.parse_duration(cleaned)))
            except UsageError:
                raise UsageError(
                    f"not a date, time or age: {text!r} "
                    "(examples: 2026-11-28, 2026-11-28T03:00:00Z, 24h, 7d)"
                ) from None
        return Moment(at=moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


class FileModeType(_TextType[int]):
    """Octal permission bits: ``640``, ``0640`` or ``0o640``."""

    name = "octal"

    def parse(self, text: str) -> int:
        digits = text.removeprefix("0o")
        if not digits or len(digits) > 4 or any(c not in "01234567" for c in digits):
            raise UsageError(f"takes an octal file mode such as 640 or 0600, not {text!r}")
        mode = int(digits, 8)
        if mode > 0o777:
            raise UsageError(f"takes permission bits up to 777, not {text!r}")
        return mode


class UsdType(_TextType[int]):
    """Micro-USD: ``5``, ``0.10``, ``$12.50``."""

    name = "usd"

    def parse(self, text: str) -> int:
        return units.parse_usd(text)


class CountType(_TextType[int]):
    """A whole number of at least 0 (``1_000`` allowed) of ``what``: tokens, say."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.name = what

    def parse(self, text: str) -> int:
        return units.parse_positive_int(text, self.what)


class AmountType(_TextType[int]):
    """More than 0 0G, in neuron: ``3``, ``0.5``."""

    name = "0g"

    def parse(self, text: str) -> int:
        neuron = units.parse_0g(text)
        if neuron <= 0:
            raise UsageError(f"the amount must be more than 0 0G, got {text!r}")
        return neuron


@dataclass(frozen=True)
class AmountOrAll:
    """An amount in neuron, or None for ``all``: everything there is."""

    neuron: int | None


class AmountOrAllType(_TextType[AmountOrAll]):
    """An amount (`AmountType`), or ``all``."""

    name = "0g|all"

    def parse(self, text: str) -> AmountOrAll:
        if text.strip().lower() == "all":
            return AmountOrAll(None)
        return AmountOrAll(AMOUNT.parse(text))


class GasPriceType(_TextType[int]):
    """Neuron per gas: ``4000000000`` or ``4gwei``."""

    name = "gas-price"

    def parse(self, text: str) -> int:
        return units.parse_gas_price(text)


@dataclass(frozen=True)
class LimitChange:
    """A new limit, or None: back to the tier's (``tier`` on the command line)."""

    limit: int | None


class LimitOrTierType(_TextType[LimitChange]):
    """A limit in ``inner``'s units, or ``tier`` to clear it."""

    def __init__(self, inner: _TextType[int]) -> None:
        self.inner = inner
        self.name = f"{inner.name}|tier"

    def parse(self, text: str) -> LimitChange:
        if text.strip().lower() == "tier":
            return LimitChange(None)
        return LimitChange(self.inner.parse(text))


class MonthType(_TextType[str]):
    """A calendar month, ``YYYY-MM`` (a quota period)."""

    name = "yyyy-mm"

    def parse(self, text: str) -> str:
        cleaned = text.strip()
        try:
            datetime.strptime(cleaned, "%Y-%m")
        except ValueError:
            raise UsageError(f"must look like 2026-11, not {text!r}") from None
        return cleaned


@dataclass(frozen=True)
class MetadataPair:
    key: str
    value: str


class MetadataType(_TextType[MetadataPair]):
    """``key=value``: one metadata pair (the option repeats)."""

    name = "key=value"

    def parse(self, text: str) -> MetadataPair:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"metadata must be key=value, not {text!r}")
        return MetadataPair(key, value)


BACKUP_ID = BackupIdType()
SIZE = SizeType()
DURATION = DurationType()
PERCENT = PercentType()
SUBSET = SubsetType()
DATA_SUBSET = DataSubsetType()
MOMENT = MomentType()
FILE_MODE = FileModeType()
USD = UsdType()
TOKENS = CountType("tokens")
AMOUNT = AmountType()
AMOUNT_OR_ALL = AmountOrAllType()
GAS_PRICE = GasPriceType()
METADATA = MetadataType()
MONTH = MonthType()

GasPriceOption = Annotated[
    int | None,
    typer.Option(
        "--gas-price",
        click_type=GAS_PRICE,
        help="Neuron per gas, or e.g. 4gwei (default: gas_price, else eth_gasPrice).",
        show_default=False,
    ),
]
"""``--gas-price``: neuron per gas, or gwei."""

FileModeOption = Annotated[
    int | None,
    typer.Option(
        "--mode",
        click_type=FILE_MODE,
        help="Mode of the written file, octal like 640 (default: 600 for decrypted data, "
        "else 666 less the umask).",
        show_default=False,
    ),
]
"""The ``--mode OCTAL`` option of commands that write a file the user asked for."""
