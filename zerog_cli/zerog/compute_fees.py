"""Fees on the 0G compute network, in integer neuron (specs/0g-compute.md section 4).

The client's figure is an estimate: the provider meters usage itself and
settles on chain in batches. What matches the provider broker here: flat
per-token prices, cached prompt tokens at ``inputPrice / divisor``, tiered
multipliers picked by the prompt size (exact rounding in billing is not
confirmed; we floor, like every other integer division here), speech-to-text
per rounded second. Images follow the SDK's estimate, quirk included (see
`image_fee`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import QuotaExceeded, UsageError
from zerog_cli.infra.units import format_0g as _format_0g_plain

if TYPE_CHECKING:
    from zerog_cli.zerog.compute_abi import Service, SubAccount

NEURON_PER_0G = 10**18
MIN_ACCOUNT_BALANCE = 3 * NEURON_PER_0G
"""First deposit, and the least a refund may leave available in a ledger unless it empties it."""
MIN_TRANSFER_AMOUNT = NEURON_PER_0G
"""First transfer to a new provider's sub-account."""
MIN_LOCKED_BALANCE = NEURON_PER_0G
"""What the provider broker wants left in a sub-account above unsettled fees and the request."""
BYTES_PER_TOKEN = 4
"""The provider's own admission estimate when no tokenizer is known."""
MAX_REFUNDS_PER_ACCOUNT = 5
"""Live refund requests one sub-account may hold (InferenceAccount.sol, ``TooManyRefunds``)."""


def format_0g(neuron: int) -> str:
    """Neuron as decimal 0G the way the official SDK prints it: ``0.0``, ``0.00014``, ``1.0``."""
    text = _format_0g_plain(neuron)
    return text if "." in text else text + ".0"


def usage_count(value: object) -> int:
    """A usage number as the SDK reads it: int or numeric string; missing or junk is 0."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return max(value, 0)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return 0
    if not number.is_finite() or number < 0:
        return 0
    return int(number)


def _usage_seconds(value: object) -> Decimal:
    if isinstance(value, bool) or value is None:
        return Decimal(0)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return Decimal(0)
    return number if number.is_finite() and number > 0 else Decimal(0)


@dataclass(frozen=True)
class Fee:
    """Counted units and the fee in neuron."""

    input_count: int
    output_count: int
    fee: int
    cached_count: int = 0


@dataclass(frozen=True)
class PriceTier:
    """A tiered-pricing step: applies while the prompt has ≤ ``max_input_tokens`` (0 = no cap)."""

    max_input_tokens: int
    input_multiplier: Fraction
    output_multiplier: Fraction


def _fraction(value: object, denominator: object) -> Fraction:
    try:
        numerator = Fraction(str(value)) if value is not None else Fraction(1)
        divisor = Fraction(str(denominator)) if denominator not in (None, 0, "0") else Fraction(1)
    except (ValueError, ZeroDivisionError):
        return Fraction(1)
    return numerator / divisor


def _write_multiplier(numerator: object, denominator: object) -> Fraction | None:
    """A cache-write premium ``numerator / denominator``; None when not configured."""
    top = usage_count(numerator)
    bottom = usage_count(denominator)
    return Fraction(top, bottom) if top > 0 and bottom > 0 else None


def _price_tiers(
    raw: object, max_tokens: str, input_keys: tuple[str, str], output_keys: tuple[str, str]
) -> tuple[PriceTier, ...]:
    """Price tiers from a list of tier objects, under the key names of their source (the
    Router's models list and a service's additionalInfo spell them differently; each
    multiplier is a numerator and a denominator key); an entry that is not an object
    is passed over."""
    tiers = []
    for tier in raw if isinstance(raw, list) else []:
        if isinstance(tier, Mapping):
            tiers.append(
                PriceTier(
                    max_input_tokens=usage_count(tier.get(max_tokens)),
                    input_multiplier=_fraction(tier.get(input_keys[0]), tier.get(input_keys[1])),
                    output_multiplier=_fraction(tier.get(output_keys[0]), tier.get(output_keys[1])),
                )
            )
    return tuple(tiers)


@dataclass(frozen=True)
class Pricing:
    """Prices of one service or model, in neuron per unit.

    ``cache_divisor`` set means the broker bills cache tokens (cacheTokenBilling
    enabled): cache reads at ``input / divisor``, cache writes at ``input x
    cache_write`` (1-hour writes at ``cache_write_1h``, which falls back to
    ``cache_write``); without a premium a write bills at the full input price.
    """

    input_price: int
    output_price: int
    cache_divisor: int | None = None
    tiers: tuple[PriceTier, ...] = ()
    cache_write: Fraction | None = None
    cache_write_1h: Fraction | None = None
    source: str = "chain"
    """Where the prices come from: ``chain`` (the service) or ``models`` (``/v1/models``)."""

    @classmethod
    def from_model_entry(cls, entry: Mapping[str, Any]) -> Pricing | None:
        """A ``/v1/models`` entry's native ``pricing`` (handler/models.go ``ModelPricing``).

        None when it has no readable per-token prices.
        """
        pricing = entry.get("pricing")
        if not isinstance(pricing, Mapping):
            return None
        try:
            input_price = int(str(pricing.get("prompt")))
            output_price = int(str(pricing.get("completion")))
        except ValueError:
            return None
        if input_price < 0 or output_price < 0:
            return None
        tiers = _price_tiers(
            pricing.get("tiered_pricing"),
            "max_input_tokens",
            ("input_multiplier", "input_multiplier_denominator"),
            ("output_multiplier", "output_multiplier_denominator"),
        )
        cache = pricing.get("cache_token_billing")
        cache = cache if isinstance(cache, Mapping) else {}
        write = _write_multiplier(
            cache.get("write_multiplier_numerator"), cache.get("write_multiplier_denominator")
        )
        write_1h = _write_multiplier(
            cache.get("write_1h_multiplier_numerator"),
            cache.get("write_1h_multiplier_denominator"),
        )
        return cls(
            input_price=input_price,
            output_price=output_price,
            cache_divisor=usage_count(cache.get("divisor")) or None,
            tiers=tiers,
            cache_write=write,
            cache_write_1h=write_1h or write,
            source="models",
        )

    @property
    def highest_input_rate(self) -> Fraction:
        """The most one prompt token can cost, as a multiple of the input price."""
        rates = [Fraction(1)]
        if self.cache_divisor:
            rates += [rate for rate in (self.cache_write, self.cache_write_1h) if rate]
        return max(rates)

    @classmethod
    def from_service(cls, service: Service) -> Pricing:
        """On-chain prices plus the ``tieredPricing`` / ``cacheTokenBilling`` of additionalInfo."""
        info = service.info
        tiered = info.get("tieredPricing")
        tiers = _price_tiers(
            tiered.get("tiers") if isinstance(tiered, dict) else None,
            "maxInputTokens",
            ("inputMultiplier", "inputMultiplierDenominator"),
            ("outputMultiplier", "outputMultiplierDenominator"),
        )
        cache = info.get("cacheTokenBilling")
        divisor = usage_count(cache.get("divisor")) if isinstance(cache, dict) else 0
        return cls(
            input_price=service.input_price,
            output_price=service.output_price,
            cache_divisor=divisor or None,
            tiers=tiers,
        )

    def prices_for(self, input_tokens: int) -> tuple[int, int]:
        """Effective (input, output) prices for a prompt of ``input_tokens``.

        As the broker's ``getTierMultipliers``: the first tier, in the order
        given, whose ``max_input_tokens`` is 0 or at least the prompt; past
        every bounded tier, the last one.
        """
        if not self.tiers:
            return self.input_price, self.output_price
        chosen = self.tiers[-1]
        for tier in self.tiers:
            if tier.max_input_tokens == 0 or input_tokens <= tier.max_input_tokens:
                chosen = tier
                break
        return (
            math.floor(self.input_price * chosen.input_multiplier),
            math.floor(self.output_price * chosen.output_multiplier),
        )


def _premium_fee(input_price: int, tokens: int, rate: Fraction) -> int:
    return input_price * tokens * rate.numerator // rate.denominator


def chat_fee(usage: Mapping[str, Any], pricing: Pricing) -> Fee:
    """Cost of a chat completion from its ``usage`` object, as the broker bills it.

    chatbot.go ``updateAccountWithUsage`` / ``computeInputFee``: tier prices
    first; with cache billing, ``prompt_tokens_details.cached_tokens`` (read)
    at ``input / divisor``, then ``cache_write_tokens`` and
    ``cache_write_1h_tokens`` at their premium (each clamped to what is left of
    the prompt, and only carved out when a premium is set); the rest at the
    input price. Each part is floored, in integers.
    """
    prompt = usage_count(usage.get("prompt_tokens"))
    completion = usage_count(usage.get("completion_tokens"))
    cached = written = written_1h = 0
    if pricing.cache_divisor:
        details = usage.get("prompt_tokens_details")
        if isinstance(details, Mapping):
            cached = min(usage_count(details.get("cached_tokens")), prompt)
        left = prompt - cached
        if pricing.cache_write:
            written = min(usage_count(usage.get("cache_write_tokens")), left)
            left -= written
        if pricing.cache_write_1h:
            written_1h = min(usage_count(usage.get("cache_write_1h_tokens")), left)
    input_price, output_price = pricing.prices_for(prompt)
    input_fee = (prompt - cached - written - written_1h) * input_price
    if cached:
        input_fee += cached * input_price // (pricing.cache_divisor or 1)
    if written and pricing.cache_write:
        input_fee += _premium_fee(input_price, written, pricing.cache_write)
    if written_1h and pricing.cache_write_1h:
        input_fee += _premium_fee(input_price, written_1h, pricing.cache_write_1h)
    return Fee(prompt, completion, input_fee + completion * output_price, cached)


def speech_to_text_fee(usage: Mapping[str, Any], pricing: Pricing) -> Fee:
    """Per second of audio (rounded half up, at least 1), or per token when so reported."""
    if usage.get("type") == "tokens":
        input_tokens = usage_count(usage.get("input_tokens"))
        output_tokens = usage_count(usage.get("output_tokens"))
        fee = input_tokens * pricing.input_price + output_tokens * pricing.output_price
        return Fee(input_tokens, output_tokens, fee)
    seconds = _usage_seconds(usage.get("seconds"))
    if seconds == 0:
        return Fee(0, 0, 0)
    count = max(int(seconds.quantize(Decimal(1), rounding=ROUND_HALF_UP)), 1)
    return Fee(count, 0, count * pricing.input_price)


def image_fee(request: Mapping[str, Any], pricing: Pricing) -> Fee:
    """The SDK's estimate for image generation: ``n`` (default 1) times ``inputPrice``.

    Known SDK quirk kept for conformance: the provider bills per image against
    ``outputPrice``, and ``inputPrice`` is usually 0, so this is usually 0.
    """
    count = usage_count(request.get("n")) or 1
    return Fee(count, 0, count * pricing.input_price)


def fee_for(
    service_type: str,
    pricing: Pricing,
    *,
    usage: Mapping[str, Any] | None = None,
    request: Mapping[str, Any] | None = None,
) -> Fee:
    """Fee for a finished request of any supported service type."""
    if service_type == "chatbot":
        return chat_fee(usage or {}, pricing)
    if service_type == "speech-to-text":
        return speech_to_text_fee(usage or {}, pricing)
    if service_type in ("text-to-image", "image-editing"):
        return image_fee(request or {}, pricing)
    raise UsageError(f"fees for service type {service_type!r} are not supported")


def estimate_tokens(data: bytes | str) -> int:
    """Token estimate without a tokenizer: 4 bytes per token, rounded up."""
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    return -(-size // BYTES_PER_TOKEN)


def estimate_chat_fee(prompt_tokens: int, max_tokens: int, pricing: Pricing) -> Fee:
    """Upper bound before sending: prompt estimate plus ``max_tokens`` of output.

    Every prompt token is counted at the highest rate the broker may bill it
    (a cache-write premium above 1 included; a cache read only makes it
    cheaper).
    """
    input_price, output_price = pricing.prices_for(prompt_tokens)
    rate = pricing.highest_input_rate
    input_fee = input_price * prompt_tokens * rate.numerator // rate.denominator
    fee = input_fee + max_tokens * output_price
    return Fee(prompt_tokens, max_tokens, fee)


def spendable(account: SubAccount, unsettled: int = 0) -> int:
    """What the provider will still serve: balance - pending refund - unsettled - 1 0G."""
    return account.balance - account.pending_refund - unsettled - MIN_LOCKED_BALANCE


def require_funds(
    account: SubAccount | None, provider: str, *, fee: int, unsettled: int = 0
) -> None:
    """Refuse (QuotaExceeded, exit 4) what the provider would refuse, saying how to fix it."""
    if account is None:
        raise QuotaExceeded(
            f"no sub-account at provider {provider}",
            hint="transfer at least 1 0G to this provider first",
        )
    if not account.acknowledged:
        raise QuotaExceeded(
            f"provider {provider} is not acknowledged for this account",
            hint="acknowledge the provider (a transfer to it also does)",
        )
    left = spendable(account, unsettled)
    if left < fee:
        raise QuotaExceeded(
            f"sub-account at provider {provider} is short of funds: "
            f"balance {format_0g(account.balance)} 0G, "
            f"pending refund {format_0g(account.pending_refund)} 0G, "
            f"unsettled {format_0g(unsettled)} 0G, "
            f"reserve {format_0g(MIN_LOCKED_BALANCE)} 0G, "
            f"request up to {format_0g(fee)} 0G",
            hint=f"transfer at least {format_0g(fee - left)} 0G more to this provider",
        )
