"""The devnet's 0G Router: one API key and one balance in front of the devnet providers.

Served under ``/router/v1`` (docs/protocol.md, "0G Router", says what is
published and what the devnet chose where it is not):

- ``GET /v1/models`` (no key): OpenAI's list with ``pricing.prompt`` /
  ``pricing.completion`` in neuron per token (the highest price among the
  model's providers: a client's upper bound), ``context_length``,
  ``provider_count``;
- ``POST /v1/chat/completions``: ``Authorization: Bearer sk-…``; the
  Router's ``verify_tee`` field; routing from ``X-0G-Provider-Sort``
  (``latency`` / ``price``), ``X-0G-Provider-Address`` (pin; fallbacks off
  unless ``X-0G-Provider-Allow-Fallbacks: true``) and
  ``X-0G-Provider-Allow-Fallbacks``, or the deprecated body ``provider``
  object (headers win field by field); default: round robin over the
  model's providers, failing over to the next on an error. Every answer
  carries ``x_0g_trace`` (``request_id``, ``provider``, ``billing``,
  ``tee_verified`` when asked); a stream carries it on its usage chunk;
- ``GET /v1/account/balance`` (Router ledger) and ``GET /v1/account/funds``
  (ledger + Payment Layer vault - pending charge: may be negative).

Admission (as published): the Router ledger covers ``min_cost`` or
``vault x vault_ratio - pending_charge >= min_cost``, else 402
``insufficient_balance``; ``min_cost`` is the prompt (4 bytes per token, as
the devnet model counts) at the model's prompt price. A charge takes the
ledger first; any shortfall becomes ``pending_charge`` and the Router pulls
it, plus a top-up, from the vault at once (the real Router does so in the
background). Charges are the chosen provider's prices times the answer's
usage. Keys are stored as SHA-256 hashes in ``router.json`` in the data
folder, with the balances; the dev account's vault is funded at first start.

Providers are the devnet's brokers (`zerog_cli.devnet.provider`), reached in
process (`DevnetProvider.routed_chat`): their ``fail_status`` switch makes
them fail (so the Router fails over), ``tamper_signatures`` makes the
Router's TEE check report ``tee_verified: false``.

Devnet controls, never subject to faults, under ``/router/devnet``: ``POST
keys`` (a new key for the dev account: ``{"id", "key", "address"}``, the key
is shown only here), ``POST keys/revoke`` (``{"id"}``), ``POST settings``
(``rate_limit_next``: the next N chats get 429 with ``Retry-After:
retry_after``), ``POST account`` (set ``vault``, ``deposit``, ``pending`` in
neuron), ``GET stats`` (chat requests and every charge).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zerog_cli.devnet.constants import DEV_ACCOUNT_ADDRESS, ROUTER_PREFIX
from zerog_cli.devnet.provider import Completion, count_tokens
from zerog_cli.devnet.provider_kinds import DELAYED, FORMAT_A, FORMAT_B, ProviderKind
from zerog_cli.devnet.web import Request, Response
from zerog_cli.infra.files import atomic_write_text

if TYPE_CHECKING:
    from zerog_cli.devnet.network import Devnet
    from zerog_cli.devnet.provider import DevnetProvider

NEURON_PER_0G = 10**18
VAULT_FUNDING = 100 * NEURON_PER_0G
"""What the dev account's Payment Layer vault holds at the devnet's first start."""
VAULT_RATIO_PERCENT = 50
"""The share of the vault that admits a deferred request (not published; the devnet's choice)."""
PULL_TOP_UP = NEURON_PER_0G
"""What a pull from the vault adds on top of the pending charge."""
STATE_FILE = "router.json"
DEFAULT_MAX_TOKENS = 1024
REASONING_PREFIX = "Thinking about: "


@dataclass(frozen=True)
class RouterModelEntry:
    id: str
    kinds: tuple[ProviderKind, ...]
    reasoning: bool = False
    """A thinking model: streams send ``reasoning_content`` deltas before the answer."""

    @property
    def prompt_price(self) -> int:
        return max(kind.input_price for kind in self.kinds)

    @property
    def completion_price(self) -> int:
        return max(kind.output_price for kind in self.kinds)

    @property
    def context_length(self) -> int:
        return min(kind.context_length for kind in self.kinds)


CATALOG: tuple[RouterModelEntry, ...] = (
    RouterModelEntry("devnet-echo-1", (FORMAT_A, DELAYED)),
    RouterModelEntry("devnet-reasoner-1", (FORMAT_B,), reasoning=True),
)


def _error(status: int, code: str, message: str) -> Response:
    return Response.json({"error": {"message": message, "type": code, "code": code}}, status=status)


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class _Account:
    deposit: int = 0
    credit: int = 0
    pending: int = 0
    vault: int = 0

    def to_json(self) -> dict[str, str]:
        return {
            "deposit": str(self.deposit),
            "credit": str(self.credit),
            "pending": str(self.pending),
            "vault": str(self.vault),
        }


@dataclass
class _Stats:
    chat_requests: int = 0
    charges: list[dict[str, Any]] = field(default_factory=list)


class DevnetRouter:
    def __init__(self, devnet: Devnet) -> None:
        self.devnet = devnet
        self.state_path = devnet.data_dir / STATE_FILE
        self._lock = threading.Lock()
        self.keys: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, _Account] = {}
        self.rate_limit_next = 0
        self.retry_after = 1
        self.stats = _Stats()
        self._turn: dict[str, int] = {}
        self._latency: dict[str, float] = {}
        self._load()

    # -- state ------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            saved = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if not isinstance(saved, dict):
            self.accounts[DEV_ACCOUNT_ADDRESS.lower()] = _Account(vault=VAULT_FUNDING)
            self._save()
            return
        self.keys = dict(saved.get("keys", {}))
        for address, values in saved.get("accounts", {}).items():
            self.accounts[address] = _Account(
                **{
                    name: int(values.get(name, "0"))
                    for name in ("deposit", "credit", "pending", "vault")
                }
            )

    def _save(self) -> None:
        document = {
            "keys": self.keys,
            "accounts": {address: account.to_json() for address, account in self.accounts.items()},
        }
        atomic_write_text(self.state_path, json.dumps(document, indent=1), mode=0o600)

    # -- HTTP -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/v1/models" and method == "GET":
            return self._models()
        if path == "/v1/chat/completions" and method == "POST":
            return self._chat(request)
        if path in ("/v1/account/balance", "/v1/account/funds") and method == "GET":
            address = self._authorized(request)
            if isinstance(address, Response):
                return address
            return self._balance(address, funds=path.endswith("funds"))
        return _error(404, "not_found", f"no Router endpoint {method} {path or '/'}")

    def control(self, request: Request) -> Response:
        path, method = request.path, request.method
        try:
            body = request.json() if request.body else {}
        except ValueError:
            return _error(400, "invalid_request", "not JSON")
        if not isinstance(body, dict):
            return _error(400, "invalid_request", "expected a JSON object")
        with self._lock:
            if path == "/keys" and method == "POST":
                key = "sk-" + secrets.token_hex(24)
                key_id = "rk-" + secrets.token_hex(4)
                self.keys[_key_hash(key)] = {
                    "id": key_id,
                    "address": DEV_ACCOUNT_ADDRESS,
                    "revoked": False,
                }
                self._save()
                return Response.json({"id": key_id, "key": key, "address": DEV_ACCOUNT_ADDRESS})
            if path == "/keys/revoke" and method == "POST":
                for entry in self.keys.values():
                    if entry["id"] == body.get("id"):
                        entry["revoked"] = True
                        self._save()
                        return Response.json({"id": entry["id"], "revoked": True})
                return _error(404, "not_found", f"no key {body.get('id')!r}")
            if path == "/settings" and method == "POST":
                self.rate_limit_next = int(body.get("rate_limit_next", self.rate_limit_next))
                self.retry_after = int(body.get("retry_after", self.retry_after))
                return Response.json(
                    {"rate_limit_next": self.rate_limit_next, "retry_after": self.retry_after}
                )
            if path == "/account" and method == "POST":
                account = self.accounts.setdefault(DEV_ACCOUNT_ADDRESS.lower(), _Account())
                for name in ("deposit", "credit", "pending", "vault"):
                    if name in body:
                        setattr(account, name, int(str(body[name])))
                self._save()
                return Response.json(account.to_json())
            if path == "/stats" and method == "GET":
                return Response.json(
                    {"chat_requests": self.stats.chat_requests, "charges": self.stats.charges}
                )
        return _error(404, "not_found", f"no Router control {method} {path or '/'}")

    # -- pieces -----------------------------------------------------------------------

    def _authorized(self, request: Request) -> str | Response:
        header = request.headers.get("Authorization") or ""
        if not header.startswith("Bearer sk-"):
            return _error(401, "invalid_api_key", "missing or malformed API key")
        with self._lock:
            entry = self.keys.get(_key_hash(header[len("Bearer ") :].strip()))
        if entry is None:
            return _error(401, "invalid_api_key", "invalid API key")
        if entry["revoked"]:
            return _error(401, "api_key_revoked", "this API key has been revoked")
        return str(entry["address"]).lower()

    def _models(self) -> Response:
        data = [
            {
                "id": entry.id,
                "object": "model",
                "owned_by": "zerog devnet",
                "name": entry.id,
                "context_length": entry.context_length,
                "pricing": {
                    "prompt": str(entry.prompt_price),
                    "completion": str(entry.completion_price),
                },
                "provider_count": len(entry.kinds),
            }
            for entry in CATALOG
        ]
        return Response.json({"object": "list", "data": data})

    def _balance(self, address: str, *, funds: bool) -> Response:
        with self._lock:
            account = self.accounts.setdefault(address, _Account())
            ledger = account.deposit + account.credit
            answer: dict[str, Any] = {
                "address": address,
                "deposit_balance": str(account.deposit),
                "credit_balance": str(account.credit),
            }
            if funds:
                answer["pending_charge"] = str(account.pending)
                answer["vault_balance"] = str(account.vault)
                answer["total"] = str(ledger - account.pending + account.vault)
            else:
                answer["total_balance"] = str(ledger)
        return Response.json(answer)

    def _provider(self, kind: ProviderKind) -> DevnetProvider:
        provider: DevnetProvider = self.devnet.providers[kind.name]
        return provider

    def _routing(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        """Body ``provider`` (deprecated) merged with ``X-0G-Provider-*`` headers; headers win."""
        merged: dict[str, Any] = {}
        legacy = body.get("provider")
        if isinstance(legacy, dict):
            merged.update(legacy)
        headers = request.headers
        if headers.get("X-0G-Provider-Sort"):
            merged["sort"] = headers["X-0G-Provider-Sort"]
        if headers.get("X-0G-Provider-Address"):
            merged["address"] = headers["X-0G-Provider-Address"]
        if headers.get("X-0G-Provider-Allow-Fallbacks"):
            merged["allow_fallbacks"] = headers["X-0G-Provider-Allow-Fallbacks"].lower() == "true"
        return merged

    def _candidates(
        self, entry: RouterModelEntry, routing: dict[str, Any]
    ) -> list[ProviderKind] | Response:
        kinds = list(entry.kinds)
        address = routing.get("address")
        if isinstance(address, str):
            pinned = [kind for kind in kinds if kind.address.lower() == address.lower()]
            if not pinned:
                return _error(
                    400, "invalid_provider", f"provider {address} does not serve {entry.id}"
                )
            others = [kind for kind in kinds if kind not in pinned]
            return pinned + others if routing.get("allow_fallbacks") is True else pinned
        sort = routing.get("sort")
        if sort == "price":
            kinds.sort(key=lambda kind: (kind.input_price, kind.output_price))
        elif sort == "latency":
            kinds.sort(key=lambda kind: self._latency.get(kind.address, 0.0))
        elif sort is not None:
            return _error(400, "invalid_request", f"unknown sort {sort!r}: latency or price")
        else:
            with self._lock:
                turn = self._turn.get(entry.id, 0)
                self._turn[entry.id] = turn + 1
            start = turn % len(kinds)
            kinds = kinds[start:] + kinds[:start]
        if routing.get("allow_fallbacks") is False:
            return kinds[:1]
        return kinds

    def _admit(self, address: str, min_cost: int) -> bool:
        account = self.accounts.setdefault(address, _Account())
        if account.deposit + account.credit >= min_cost:
            return True
        return account.vault * VAULT_RATIO_PERCENT // 100 - account.pending >= min_cost

    def _charge(self, address: str, cost: int) -> None:
        account = self.accounts.setdefault(address, _Account())
        from_credit = min(account.credit, cost)
        account.credit -= from_credit
        rest = cost - from_credit
        from_deposit = min(account.deposit, rest)
        account.deposit -= from_deposit
        account.pending += rest - from_deposit
        if account.pending and account.vault:
            pulled = min(account.vault, account.pending + PULL_TOP_UP)
            account.vault -= pulled
            cleared = min(pulled, account.pending)
            account.pending -= cleared
            account.deposit += pulled - cleared
        self._save()

    def _chat(self, request: Request) -> Response:
        with self._lock:
            self.stats.chat_requests += 1
        address = self._authorized(request)
        if isinstance(address, Response):
            return address
        with self._lock:
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                limited = _error(429, "rate_limit_exceeded", "too many requests for this key")
                limited.headers["Retry-After"] = str(self.retry_after)
                return limited
        try:
            body = request.json()
        except ValueError:
            return _error(400, "invalid_request", "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "invalid_request", "messages must be a list")
        entry = next((e for e in CATALOG if e.id == body.get("model")), None)
        if entry is None:
            return _error(404, "model_not_found", f"no model {body.get('model')!r}")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens", DEFAULT_MAX_TOKENS))
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            return _error(400, "invalid_request", "max_tokens must be a positive integer")
        candidates = self._candidates(entry, self._routing(request, body))
        if isinstance(candidates, Response):
            return candidates
        prompt_tokens = sum(
            count_tokens(str(m.get("content", ""))) for m in body["messages"] if isinstance(m, dict)
        )
        with self._lock:
            if not self._admit(address, prompt_tokens * entry.prompt_price):
                return _error(
                    402,
                    "insufficient_balance",
                    "insufficient balance: deposit 0G into the Payment Layer",
                )
        failures = []
        for kind in candidates:
            provider = self._provider(kind)
            started = time.monotonic()
            served = provider.routed_chat(body["messages"], max_tokens)
            with self._lock:
                seconds = time.monotonic() - started
                previous = self._latency.get(kind.address, seconds)
                self._latency[kind.address] = 0.8 * previous + 0.2 * seconds
            if isinstance(served, Response):
                failures.append(f"{kind.address}: HTTP {served.status}")
                continue
            return self._answer(address, entry, kind, provider, served, body)
        pinned_only = len(candidates) == 1 and len(entry.kinds) > 1
        return _error(
            502 if pinned_only else 503,
            "provider_failed" if pinned_only else "no_healthy_provider",
            "every provider failed: " + "; ".join(failures),
        )

    def _answer(
        self,
        address: str,
        entry: RouterModelEntry,
        kind: ProviderKind,
        provider: DevnetProvider,
        completion: Completion,
        body: dict[str, Any],
    ) -> Response:
        input_cost = completion.prompt_tokens * kind.input_price
        output_cost = completion.completion_tokens * kind.output_price
        request_id = str(uuid.uuid4())
        chat_id = f"chatcmpl-{uuid.uuid4().hex}"
        trace: dict[str, Any] = {
            "request_id": request_id,
            "provider": kind.address,
            "billing": {
                "input_cost": str(input_cost),
                "output_cost": str(output_cost),
                "total_cost": str(input_cost + output_cost),
            },
        }
        if body.get("verify_tee") is True:
            trace["tee_verified"] = not provider.tampering
        with self._lock:
            self._charge(address, input_cost + output_cost)
            self.stats.charges.append(
                {
                    "request_id": request_id,
                    "chat_id": chat_id,
                    "provider": kind.address,
                    "model": entry.id,
                    "total_cost": str(input_cost + output_cost),
                }
            )
        reasoning = REASONING_PREFIX + completion.answer if entry.reasoning else None
        if body.get("stream") is True:
            return Response(
                body=self._stream(chat_id, entry.id, completion, trace, reasoning),
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
            )
        message: dict[str, Any] = {"role": "assistant", "content": completion.answer}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        return Response.json(
            {
                "id": chat_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": entry.id,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": completion.finish_reason}
                ],
                "usage": completion.usage(),
                "x_0g_trace": trace,
            }
        )

    @staticmethod
    def _stream(
        chat_id: str,
        model: str,
        completion: Completion,
        trace: dict[str, Any],
        reasoning: str | None,
    ) -> list[bytes]:
        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {
                "id": chat_id,
                "object": "chat.completion.chunk",
                "model": model,
                "choices": choices,
                **extra,
            }
            return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

        chunks = [event([{"index": 0, "delta": {"role": "assistant"}}])]
        if reasoning is not None:
            chunks.append(event([{"index": 0, "delta": {"reasoning_content": reasoning}}]))
        for word in completion.answer.split(" "):
            piece = word if len(chunks) == 1 + (reasoning is not None) else " " + word
            chunks.append(event([{"index": 0, "delta": {"content": piece}}]))
        chunks.append(event([{"index": 0, "delta": {}, "finish_reason": completion.finish_reason}]))
        chunks.append(event([], usage=completion.usage(), x_0g_trace=trace))
        chunks.append(b"data: [DONE]\n\n")
        return chunks


def register_routes(devnet: Devnet) -> None:
    """The devnet hook: the Router at ``/router`` (faults: ``router``), controls beside it."""
    router = DevnetRouter(devnet)
    devnet.add_route(ROUTER_PREFIX, router.handle, service="router")
    devnet.router.add(ROUTER_PREFIX + "/devnet", router.control, service=None)
