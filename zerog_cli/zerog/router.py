"""The 0G Router's wire protocol: an OpenAI-compatible gateway in front of the providers.

What is published (docs/protocol.md, "0G Router", has the sources and the
details that are not): ``Authorization: Bearer sk-…``; ``GET /v1/models``
(no key; ``pricing.prompt`` / ``pricing.completion`` in neuron per token,
``context_length``); ``POST /v1/chat/completions`` (OpenAI body, plus the
Router's ``verify_tee`` extension); routing preferences as ``X-0G-Provider-*``
request headers (the body ``provider`` object is deprecated); every answer
carries an ``x_0g_trace`` object (``provider``, ``billing.total_cost``,
``tee_verified``); ``GET /v1/account/balance`` (Router ledger, neuron) and
``GET /v1/account/funds`` (ledger plus Payment Layer vault, may be negative:
owed to the Router). Errors are OpenAI-style ``{"error": {"message", "type",
"code"}}`` with 402 ``insufficient_balance``, 401 ``api_key_revoked`` /
``invalid_api_key``, 429 with ``Retry-After``.

This module only builds and reads those messages; it makes no calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zerog_cli.errors import (
    ConfigError,
    NetworkUnavailable,
    NotFound,
    ProtocolError,
    QuotaExceeded,
    UsageError,
    ZerogError,
)

SORT_HEADER = "X-0G-Provider-Sort"
ADDRESS_HEADER = "X-0G-Provider-Address"
FALLBACKS_HEADER = "X-0G-Provider-Allow-Fallbacks"
SORTS = ("latency", "price")
API_KEY_SECRET = "ZEROG_ROUTER_API_KEY"
DEPOSIT_HINT = (
    "deposit 0G into the Payment Layer at pc.0g.ai (Dashboard, Deposit) from the wallet "
    "that owns the key; `zerog infer account` shows the balance and the contract"
)


@dataclass(frozen=True)
class Routing:
    """Provider routing preferences, sent as ``X-0G-Provider-*`` headers."""

    sort: str | None = None
    address: str | None = None
    allow_fallbacks: bool | None = None

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.sort is not None:
            if self.sort not in SORTS:
                raise UsageError(f"--sort must be one of {', '.join(SORTS)}, not {self.sort!r}")
            headers[SORT_HEADER] = self.sort
        if self.address is not None:
            headers[ADDRESS_HEADER] = self.address
        if self.allow_fallbacks is not None:
            headers[FALLBACKS_HEADER] = "true" if self.allow_fallbacks else "false"
        return headers


@dataclass(frozen=True)
class RouterModel:
    id: str
    prompt_price: int
    """Neuron per input token."""
    completion_price: int
    """Neuron per output token."""
    context_length: int | None
    provider_count: int | None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> int:
        return prompt_tokens * self.prompt_price + completion_tokens * self.completion_price

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt_price": str(self.prompt_price),
            "completion_price": str(self.completion_price),
            "context_length": self.context_length,
            "provider_count": self.provider_count,
        }


def _neuron(value: Any, what: str) -> int:
    try:
        amount = int(str(value))
    except ValueError:
        raise ProtocolError(f"the Router sent an unreadable {what}: {value!r}") from None
    return amount


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_models(document: Any) -> list[RouterModel]:
    """``GET /v1/models``: OpenAI's list format with ``pricing`` in neuron per token."""
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        raise ProtocolError("the Router's model list has no data array")
    models = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        pricing = entry.get("pricing")
        if not isinstance(pricing, dict):
            continue
        models.append(
            RouterModel(
                id=entry["id"],
                prompt_price=_neuron(pricing.get("prompt"), "prompt price"),
                completion_price=_neuron(pricing.get("completion"), "completion price"),
                context_length=_optional_int(entry.get("context_length")),
                provider_count=_optional_int(entry.get("provider_count")),
            )
        )
    return models


@dataclass(frozen=True)
class Trace:
    """``x_0g_trace``: which provider served, what it cost, and the TEE check."""

    request_id: str | None = None
    provider: str | None = None
    total_cost: int | None = None
    tee_verified: bool | None = None


def parse_trace(value: Any) -> Trace:
    if not isinstance(value, dict):
        return Trace()
    billing = value.get("billing")
    total = billing.get("total_cost") if isinstance(billing, dict) else None
    verified = value.get("tee_verified")
    return Trace(
        request_id=value.get("request_id") if isinstance(value.get("request_id"), str) else None,
        provider=value.get("provider") if isinstance(value.get("provider"), str) else None,
        total_cost=None if total is None else _neuron(total, "billing total_cost"),
        tee_verified=verified if isinstance(verified, bool) else None,
    )


@dataclass(frozen=True)
class Balance:
    """``/v1/account/balance`` (Router ledger, >= 0) and ``/v1/account/funds`` (with vault)."""

    address: str | None
    deposit: int
    credit: int
    ledger_total: int
    pending_charge: int | None = None
    vault: int | None = None
    funds_total: int | None = None
    """Ledger + vault - pending; negative means owed to the Router."""


def parse_balance(balance: Any, funds: Any) -> Balance:
    if not isinstance(balance, dict):
        raise ProtocolError("the Router's balance answer is not a JSON object")
    deposit = _neuron(balance.get("deposit_balance", 0), "deposit_balance")
    credit = _neuron(balance.get("credit_balance", 0), "credit_balance")
    total = _neuron(balance.get("total_balance", deposit + credit), "total_balance")
    funds = funds if isinstance(funds, dict) else {}
    return Balance(
        address=balance.get("address") if isinstance(balance.get("address"), str) else None,
        deposit=deposit,
        credit=credit,
        ledger_total=total,
        pending_charge=None
        if "pending_charge" not in funds
        else _neuron(funds["pending_charge"], "pending_charge"),
        vault=None
        if "vault_balance" not in funds
        else _neuron(funds["vault_balance"], "vault_balance"),
        funds_total=None if "total" not in funds else _neuron(funds["total"], "funds total"),
    )


def _error_fields(body: bytes) -> tuple[str, str]:
    """(code or type, message) of an OpenAI-style error body; best effort."""
    try:
        document = json.loads(body[: 64 << 10])
    except ValueError:
        return "", body[:200].decode("utf-8", errors="replace").strip()
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type") or ""
        return str(code), str(error.get("message") or code)
    if isinstance(error, str):
        return "", error
    return "", ""


def router_error(
    status: int, body: bytes, headers: Mapping[str, str] | None, endpoint: str
) -> ZerogError:
    """The project exception for a Router refusal, naming what fixes it."""
    code, message = _error_fields(body)
    said = f"the Router refused the request (HTTP {status}{', ' + code if code else ''})"
    if message:
        said += f": {message}"
    if status == 402 or code == "insufficient_balance":
        return QuotaExceeded(said, hint=DEPOSIT_HINT)
    if status in (401, 403):
        return ConfigError(
            said,
            hint=f"the key in {API_KEY_SECRET} is revoked or invalid: create a new one at "
            f"pc.0g.ai and store it with `zerog secrets set {API_KEY_SECRET}`",
        )
    if status == 404:
        return NotFound(said, hint="see `zerog infer models`")
    if status in (400, 413, 422):
        return UsageError(said)
    retry_after = (headers or {}).get("Retry-After")
    if status == 429 and retry_after:
        said += f" (Retry-After {retry_after}s, retries exhausted)"
    return NetworkUnavailable(said)
