"""The devnet's compute provider brokers: the seeded one under ``/provider``, others beside it.

An OpenAI-compatible provider for each InferenceServing service the devnet
registers (`zerog_cli.devnet.compute`), one per kind of real broker
(`zerog_cli.devnet.provider_kinds`: format A, format B, rewriting, delayed
signature, multi-model), checking requests as the 0G provider broker does
(specs/0g-compute.md 3.2, 6.1, 9; docs/protocol.md where that spec is wrong):

Routes (below each kind's prefix, e.g. ``/provider``):

- ``POST /v1/proxy/chat/completions`` (also ``/v1/proxy/v1/chat/completions``):
  chat, plain or SSE (``"stream": true``), ``usage`` in every answer,
  ``ZG-Res-Key`` header;
- ``GET /v1/proxy/signature/{chatId}?model=``: ``{text, signature,
  signing_address, signing_algo}`` (plus ``provider_type``,
  ``provider_identity``, ``tls_cert_fingerprint`` for format B), kept 20
  minutes, else 404 ``chat_id_not_found`` (a delayed broker answers 400
  ``chat_id_not_found`` until it has signed, as older brokers did);
- ``GET /v1/models``: the catalog (the service's model with its prices from the
  chain, or each model of a multi-model service with its own prices);
- ``GET /v1/user/{address}/unsettledfee``: ``{"unsettledFee": "<neuron>"}``,
  needs the Bearer token;
- devnet only: ``POST /devnet/settings`` (``tamper_signatures``,
  ``fail_status``, ``fail_count``, ``retry_after``), ``GET /devnet/stats``
  (chat requests received and served, unsettled fees), ``POST
  /devnet/services`` (``{"count": N}`` registers N synthetic services on chain).

Request checks, in order, each failure a 400 ``{"error": "<message>"}`` with
the broker's wording: the ``Authorization: Bearer app-sk-…`` token (checks 1-6,
`zerog_cli.zerog.compute_auth`, against the sub-account read from the chain
at every request: no cache, so revocations apply at once; "now" is the wall
clock, as for a real broker, so ``evm_increaseTime`` on the chain does not
expire tokens); then the body and
model; then the billing gate: sub-account exists, acknowledged, service's TEE
signer acknowledged, and ``balance - pendingRefund >= fee + unsettled + 1 0G``
where ``fee`` is the prompt's input fee (the broker's pre-answer estimate).

Before the model sees it, the body is rewritten as the real broker rewrites
the body it forwards (`DevnetProvider._forward`): ``include_usage`` added to a
stream that lacks it, the model enforced by centralized brokers, ``max_tokens``
capped by the rewriting one; each rewrite re-marshals the body as Go does.

Every model (``devnet-echo-1`` and the other kinds' models) is deterministic:

- answer = ``"You said: "`` + the text of the last ``user`` message (string
  content, or the ``text`` parts of list content joined), truncated to
  ``max_tokens`` tokens (``max_completion_tokens`` or ``max_tokens``, default
  1024), i.e. to its first ``4 x max_tokens`` UTF-8 bytes on a character
  boundary; ``finish_reason`` is ``length`` when truncated, else ``stop``;
- tokens = ceil(UTF-8 bytes / 4) of a text; ``prompt_tokens`` = the sum over
  all messages of their text's tokens, ``completion_tokens`` = the answer's;
- fee = prompt_tokens x inputPrice + completion_tokens x outputPrice (the
  model's prices), added to the user's unsettled fees once the answer is
  produced; a model with cache billing reports half of the prompt as
  ``prompt_tokens_details.cached_tokens``, billed at inputPrice / divisor. Fees are never
  settled on chain and are kept in memory (a restart forgets them).

Streams send a role chunk, one chunk per word of the answer, a chunk with the
``finish_reason``, a chunk with ``usage`` and ``data: [DONE]``. The chat id is
``chatcmpl-<uuid>``, used both as the body ``id`` and as ``ZG-Res-Key``. The
response signature is the kind's TEE key's EIP-191 signature over format A,
``sha256hex(forwarded request body) + ":" + sha256hex(response body)``, or
for a centralized kind format B, the routing proof that appends
``:centralized:devnet-upstream:<fingerprint>``; for streams the response
body is every byte of the event stream.

Fault switches (``POST /devnet/settings``): ``tamper_signatures`` makes the
signature endpoint return a text whose last character is changed, so a client
check fails; ``claimed_prompt_tokens`` / ``claimed_completion_tokens`` (null:
honest) make a hostile broker that reports, and bills into the unsettled fees,
that many tokens whatever it served; ``fail_status`` (e.g. 500, 503, 429) answers the next
``fail_count`` chat requests (-1: all, until reset with ``fail_status: null``)
with that status and an error body, with ``Retry-After: retry_after`` if set.
Random 503s and dropped connections come from the devnet's own fault
injector (``/admin/faults`` with target ``provider``).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from zerog_cli.devnet.compute import (
    DEVNET_REGISTER_SERVICES,
    InferenceServingContract,
)
from zerog_cli.devnet.constants import (
    DEV_ACCOUNT_ADDRESS,
    DEV_ACCOUNT_KEY,
    INFERENCE_SERVING_ADDRESS,
)
from zerog_cli.devnet.contracts import Revert
from zerog_cli.devnet.provider_kinds import (
    FORMAT_A,
    KINDS,
    UPSTREAM_CERT_FINGERPRINT,
    UPSTREAM_IDENTITY,
    ModelPrice,
    ProviderKind,
)
from zerog_cli.devnet.web import Request, Response
from zerog_cli.errors import PermissionDenied
from zerog_cli.zerog.compute_abi import (
    INFERENCE_SERVING,
    Service,
    SubAccount,
    decode_get_account,
    decode_get_service,
    encode_get_account,
    encode_get_service,
)
from zerog_cli.zerog.compute_auth import SessionToken, check_authorization
from zerog_cli.zerog.compute_fees import MIN_LOCKED_BALANCE, NEURON_PER_0G
from zerog_cli.zerog.compute_provider import (
    RESPONSE_KEY_HEADER,
    go_json_bytes,
    response_signing_text,
    routing_proof_text,
    sign_response_text,
)

if TYPE_CHECKING:
    from zerog_cli.devnet.chain import Chain
    from zerog_cli.devnet.chains import DevnetChain, ServiceRegistry
    from zerog_cli.devnet.network import Devnet

DEFAULT_MAX_TOKENS = 1024
SIGNATURE_TTL_S = 20 * 60
ANSWER_PREFIX = "You said: "
CHAT_PATHS = ("/v1/proxy/chat/completions", "/v1/proxy/v1/chat/completions")
SIGNATURE_PREFIX = "/v1/proxy/signature/"
_UNSETTLED_RE = re.compile(r"^/v1/user/([^/]+)/unsettledfee$")
_WORD_RE = re.compile(r"\S+\s*|\s+")


def count_tokens(text: str) -> int:
    """The devnet's tokenizer: one token per started 4 bytes of UTF-8."""
    return -(-len(text.encode("utf-8")) // 4)


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class Completion:
    """The model's answer to one request, and its token counts."""

    answer: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return usage

    def fee(self, price: ModelPrice) -> int:
        """What the broker bills (chatbot.go ``computeInputFee``): cached tokens at a discount."""
        full = self.prompt_tokens - self.cached_tokens
        cached_fee = 0
        if self.cached_tokens and price.cache_divisor:
            cached_fee = self.cached_tokens * price.input_price // price.cache_divisor
        return full * price.input_price + cached_fee + self.completion_tokens * price.output_price


def complete(messages: list[Any], max_tokens: int) -> Completion:
    """The deterministic model (rules in the module docstring)."""
    user_texts = [
        _message_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"
    ]
    full = ANSWER_PREFIX + (user_texts[-1] if user_texts else "")
    answer = _truncate_utf8(full, 4 * max_tokens)
    return Completion(
        answer=answer,
        finish_reason="length" if answer != full else "stop",
        prompt_tokens=sum(count_tokens(_message_text(m)) for m in messages),
        completion_tokens=count_tokens(answer),
    )


def _zg(neuron: int) -> str:
    """Neuron as 0G with 6 decimals, as the broker's messages show amounts."""
    value = Decimal(neuron) / NEURON_PER_0G
    return str(value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN))


def _now() -> int:
    """The provider's clock: wall-clock seconds, independent of the devnet chain's."""
    return int(time.time())


def _error(message: str, status: int = 400) -> Response:
    return Response.json({"error": message}, status=status)


@dataclass
class ProviderSettings:
    """Devnet-only switches (see the module docstring)."""

    tamper_signatures: bool = False
    fail_status: int | None = None
    fail_count: int = -1
    retry_after: int | None = None
    claimed_prompt_tokens: int | None = None
    claimed_completion_tokens: int | None = None

    def updated(self, changes: Mapping[str, Any]) -> ProviderSettings:
        unknown = sorted(set(changes) - set(asdict(self)))
        if unknown:
            raise ValueError(f"unknown provider setting(s): {', '.join(unknown)}")
        merged = {**asdict(self), **changes}
        status = merged["fail_status"]
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError("fail_status must be an HTTP error status (400-599) or null")
        if not isinstance(merged["fail_count"], int) or merged["fail_count"] < -1:
            raise ValueError("fail_count must be -1 (always) or a count")
        retry_after = merged["retry_after"]
        if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
            raise ValueError("retry_after must be a number of seconds or null")
        for claim in ("claimed_prompt_tokens", "claimed_completion_tokens"):
            value = merged[claim]
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{claim} must be a token count or null")
        return ProviderSettings(
            tamper_signatures=bool(merged["tamper_signatures"]),
            fail_status=status,
            fail_count=merged["fail_count"],
            retry_after=retry_after,
            claimed_prompt_tokens=merged["claimed_prompt_tokens"],
            claimed_completion_tokens=merged["claimed_completion_tokens"],
        )

    def claimed(self, served: Completion) -> Completion:
        """What a hostile broker reports for ``served``: its token claims, when set."""
        prompt = self.claimed_prompt_tokens
        completion = self.claimed_completion_tokens
        return replace(
            served,
            prompt_tokens=served.prompt_tokens if prompt is None else prompt,
            completion_tokens=served.completion_tokens if completion is None else completion,
        )


@dataclass(frozen=True)
class _Signed:
    text: str
    signature: str
    created: int
    misses: int
    """Requests still to answer "not signed yet" before the signature is served."""
    routing: dict[str, str] | None = None


def cap_output_tokens(
    body: dict[str, Any], limit: int, context_length: int, body_size: int
) -> bool:
    """The broker's ``CapMaxOutputTokens`` on a parsed body; True when it changed it.

    Per key (``max_tokens``, ``max_completion_tokens``): null or <= 0 is
    dropped, a value that is not a number becomes ``limit``, a larger one is
    lowered to it. With no usable cap left, ``max_tokens`` is injected: the
    limit, or less when the context window (prompt at 3 bytes per token) has
    less room. Never raised.
    """
    changed = False
    has_cap = False
    for key in ("max_tokens", "max_completion_tokens"):
        if key not in body:
            continue
        raw = body[key]
        value: float | None
        if isinstance(raw, bool) or raw is None:
            value = None if raw is None else float("nan")
        elif isinstance(raw, (int, float)):
            value = float(raw)
        elif isinstance(raw, str):
            try:
                value = float(raw.strip())
            except ValueError:
                value = float("nan")
        else:
            value = float("nan")
        if value is None or (value == value and value <= 0):
            del body[key]
            changed = True
            continue
        has_cap = True
        if value != value or value > limit:
            body[key] = limit
            changed = True
    if not has_cap:
        room = context_length - body_size // 3
        injected = min(limit, room)
        if injected > 0:
            body["max_tokens"] = injected
            changed = True
    return changed


class DevnetProvider:
    """The broker for one provider address, reading state from the devnet chain."""

    def __init__(
        self, chain: DevnetChain, registry: ServiceRegistry, *, kind: ProviderKind = FORMAT_A
    ) -> None:
        self.chain = chain
        self.registry = registry
        self.kind = kind
        self.address = kind.address
        self.settings = ProviderSettings()
        self._lock = threading.Lock()
        self._unsettled: dict[str, int] = {}
        self._signatures: dict[str, _Signed] = {}
        self._chat_requests = 0
        self._served = 0

    # -- chain reads --------------------------------------------------------------

    def _sub_account(self, user: str) -> SubAccount | None:
        try:
            data = self.chain.call(
                None, INFERENCE_SERVING_ADDRESS, encode_get_account(user, self.address), 0
            )
        except Revert as revert:
            if revert.data[:4] == INFERENCE_SERVING.error("AccountNotExists").selector:
                return None
            raise
        return decode_get_account(data)

    def _service(self) -> Service:
        data = self.chain.call(None, INFERENCE_SERVING_ADDRESS, encode_get_service(self.address), 0)
        return decode_get_service(data)

    def unsettled(self, user: str) -> int:
        with self._lock:
            return self._unsettled.get(user.lower(), 0)

    # -- routing ------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path in CHAT_PATHS and method == "POST":
            return self._chat(request)
        if path.startswith(SIGNATURE_PREFIX) and method == "GET":
            return self._signature(path[len(SIGNATURE_PREFIX) :])
        if path == "/v1/models" and method == "GET":
            return self._models()
        match = _UNSETTLED_RE.match(path)
        if match and method == "GET":
            return self._unsettled_fee(request, match.group(1))
        if path == "/devnet/settings" and method in ("GET", "POST"):
            return self._settings(request)
        if path == "/devnet/stats" and method == "GET":
            return self._stats()
        if path == "/devnet/services" and method == "POST":
            return self._register_services(request)
        return _error(f"endpoint not supported: {method} {path or '/'}", 404)

    # -- chat -----------------------------------------------------------------------

    def _injected_failure(self) -> Response | None:
        with self._lock:
            settings = self.settings
            if settings.fail_status is None or settings.fail_count == 0:
                return None
            if settings.fail_count > 0:
                self.settings = ProviderSettings(
                    **{**asdict(settings), "fail_count": settings.fail_count - 1}
                )
        message = f"devnet provider failure (injected HTTP {settings.fail_status})"
        if settings.fail_status == 429:
            response = Response.json(
                {"error": {"type": "rate_limit_exceeded", "message": message}}, status=429
            )
        else:
            response = _error(message, settings.fail_status)
        if settings.retry_after is not None:
            response.headers["Retry-After"] = str(settings.retry_after)
        return response

    def _chat(self, request: Request) -> Response:
        with self._lock:
            self._chat_requests += 1
        failure = self._injected_failure()
        if failure is not None:
            return failure
        token = self._session(request)
        if isinstance(token, Response):
            return token
        try:
            body = request.json()
        except ValueError:
            return _error("invalid request body: not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error("invalid request body: messages must be a list")
        forwarded = self._forward(request.body, body)
        if isinstance(forwarded, Response):
            return forwarded
        body = json.loads(forwarded)
        model = body.get("model", self.kind.model)
        price = self.kind.price_of(model) if isinstance(model, str) else None
        if price is None:
            served = ", ".join(m.model for m in self.kind.models) or self.kind.model
            return _error(f"unknown model {model!r}: this provider serves {served}")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens", DEFAULT_MAX_TOKENS))
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            return _error("invalid request body: max_tokens must be a positive integer")
        completion = complete(body["messages"], max_tokens)
        if price.cache_divisor:
            completion = replace(completion, cached_tokens=completion.prompt_tokens // 2)
        service = self._service()
        with self._lock:
            refusal = self._billing_gate(token.address, service, completion.prompt_tokens, price)
            if refusal is not None:
                return refusal
            completion = self.settings.claimed(completion)
            user = token.address.lower()
            self._unsettled[user] = self._unsettled.get(user, 0) + completion.fee(price)
            self._served += 1
        chat_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.get("stream") is True:
            chunks = self._stream_chunks(chat_id, model, completion)
            self._remember(chat_id, forwarded, b"".join(chunks))
            return Response(
                body=chunks,
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    RESPONSE_KEY_HEADER: chat_id,
                },
            )
        answer = {
            "id": chat_id,
            "object": "chat.completion",
            "created": _now(),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": completion.answer},
                    "finish_reason": completion.finish_reason,
                }
            ],
            "usage": completion.usage(),
        }
        response = Response.json(answer)
        response.headers[RESPONSE_KEY_HEADER] = chat_id
        assert isinstance(response.body, bytes)
        self._remember(chat_id, forwarded, response.body)
        return response

    def routed_chat(self, messages: list[Any], max_tokens: int) -> Completion | Response:
        """A chat the devnet Router forwards (`zerog_cli.devnet.router`), in process.

        The Router pays providers from its own account, which the devnet does
        not model: no token or billing gate here, but the same counters, the
        same injected failures (``fail_status``) and the same model.
        """
        with self._lock:
            self._chat_requests += 1
        failure = self._injected_failure()
        if failure is not None:
            return failure
        completion = complete(messages, max_tokens)
        with self._lock:
            self._served += 1
        return completion

    @property
    def tampering(self) -> bool:
        """``tamper_signatures`` is on: a TEE signature check of this provider fails."""
        with self._lock:
            return bool(self.settings.tamper_signatures)

    def _forward(self, raw: bytes, body: dict[str, Any]) -> bytes | Response:
        """The body this broker would forward upstream, rewritten as the real broker does.

        proxy.go ``PrepareHTTPRequest``: a stream without ``include_usage`` gets it
        (``EnsureStreamOptions``); a broker with a separate target (centralized)
        puts in its model or refuses another (``EnforceConfiguredModel``, which
        re-marshals even an unchanged body); ``enforceMaxCompletionTokens`` caps
        the output (max_output_cap.go). Each rewrite re-marshals the body the
        way Go does (`go_json_bytes`); an untouched body is forwarded as received.
        """
        rewritten = False
        if body.get("stream") is True:
            options = body.get("stream_options")
            if not isinstance(options, dict):
                body["stream_options"] = {"include_usage": True}
                rewritten = True
            elif "include_usage" not in options:
                options["include_usage"] = True
                rewritten = True
        if self.kind.centralized:
            model = body.get("model")
            if model is None:
                body["model"] = self.kind.model
            elif not isinstance(model, str):
                return _error(
                    "invalid model type in request (expected string), configured model is: "
                    f"{self.kind.model}"
                )
            elif model != self.kind.model:
                return _error(
                    f"model not supported: requested '{model}', only '{self.kind.model}' "
                    "is available for this service"
                )
            rewritten = True
        limit = self.kind.max_completion_tokens
        if limit is not None and cap_output_tokens(body, limit, self.kind.context_length, len(raw)):
            rewritten = True
        return go_json_bytes(body) if rewritten else raw

    def _billing_gate(
        self, user: str, service: Service, prompt_tokens: int, price: ModelPrice
    ) -> Response | None:
        """Check 7 of the broker (caller holds the lock); a 400 answer when refused."""
        account = self._sub_account(user)
        if account is None:
            return _error(
                "get account from contract, account not exist: "
                f"AccountNotExists({user}, {self.address})"
            )
        if not account.acknowledged:
            return _error(
                "user not acknowledge the provider, please use acknowledgeProviderSigner "
                "function in sdk first, it will take effect in 2 minutes"
            )
        if not service.tee_signer_acknowledged:
            return _error("service not acknowledge the tee signer")
        fee = prompt_tokens * price.input_price
        unsettled = self._unsettled.get(user.lower(), 0)
        locked = account.balance - account.pending_refund
        required = fee + unsettled + MIN_LOCKED_BALANCE
        if locked >= required:
            return None
        return _error(
            f"insufficient balance: your locked balance is {_zg(locked)} 0G, but the required "
            f"minimum is {_zg(required)} 0G (breakdown: minimum reserve "
            f"{_zg(MIN_LOCKED_BALANCE)} 0G + unsettled fees {_zg(unsettled)} 0G + current "
            f"request fee {_zg(fee)} 0G). Please add more funds with: 0g-compute-cli "
            f"transfer-fund --provider {self.address} --amount <amount>"
        )

    def _stream_chunks(self, chat_id: str, model: str, completion: Completion) -> list[bytes]:
        created = _now()

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {
                "id": chat_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
            return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

        chunks = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
        for word in _WORD_RE.findall(completion.answer):
            chunks.append(event([{"index": 0, "delta": {"content": word}}]))
        chunks.append(event([{"index": 0, "delta": {}, "finish_reason": completion.finish_reason}]))
        chunks.append(event([], usage=completion.usage()))
        chunks.append(b"data: [DONE]\n\n")
        return chunks

    # -- signatures -------------------------------------------------------------------

    def _remember(self, chat_id: str, request_body: bytes, response_body: bytes) -> None:
        """Sign as the broker does (signing.go): format A, or B for a centralized broker.

        ``request_body`` is the body as forwarded upstream, ``response_body``
        every byte the client receives.
        """
        routing = None
        if self.kind.centralized:
            text = routing_proof_text(
                request_body,
                response_body,
                "centralized",
                UPSTREAM_IDENTITY,
                UPSTREAM_CERT_FINGERPRINT,
            )
            routing = {
                "provider_type": "centralized",
                "provider_identity": UPSTREAM_IDENTITY,
                "tls_cert_fingerprint": UPSTREAM_CERT_FINGERPRINT,
            }
        else:
            text = response_signing_text(request_body, response_body)
        signed = _Signed(
            text,
            sign_response_text(self.kind.tee_key, text),
            _now(),
            self.kind.signature_misses,
            routing,
        )
        with self._lock:
            horizon = signed.created - SIGNATURE_TTL_S
            for key in [k for k, v in self._signatures.items() if v.created < horizon]:
                del self._signatures[key]
            self._signatures[chat_id] = signed

    def _signature(self, chat_id: str) -> Response:
        with self._lock:
            signed = self._signatures.get(chat_id)
            tamper = self.settings.tamper_signatures
            if signed is not None and signed.misses:
                self._signatures[chat_id] = replace(signed, misses=signed.misses - 1)
        if signed is None or signed.created < _now() - SIGNATURE_TTL_S:
            return _error("Chat id not found or expired, chat_id_not_found", 404)
        if signed.misses:
            # Not signed yet: older brokers signed after flushing the body and
            # answered a miss with their default 400 (signature_race_test.go).
            return _error(
                "Provider proxy: prepare HTTP request: "
                "Chat id not found or expired, chat_id_not_found",
                400,
            )
        text = signed.text
        if tamper:
            text = text[:-1] + ("0" if text[-1] != "0" else "1")
        answer: dict[str, Any] = {
            "text": text,
            "signature": signed.signature,
            "signing_address": self.kind.tee_address,
            "signing_algo": "ecdsa",
        }
        if signed.routing is not None:
            answer.update(signed.routing)
        return Response.json(answer)

    # -- other provider endpoints ---------------------------------------------------

    def _models(self) -> Response:
        """``GET /v1/models``: one entry per model served, its native prices (handler/models.go)."""
        service = self._service()
        prices = self.kind.models or (
            ModelPrice(self.kind.model, service.input_price, service.output_price),
        )
        entries = []
        for price in prices:
            pricing: dict[str, Any] = {
                "prompt": str(price.input_price),
                "completion": str(price.output_price),
            }
            if price.cache_divisor:
                pricing["cache_token_billing"] = {"divisor": price.cache_divisor}
            entries.append(
                {
                    "id": price.model,
                    "object": "model",
                    "type": service.service_type,
                    "context_length": self.kind.context_length,
                    "max_completion_tokens": self.kind.max_completion_tokens or DEFAULT_MAX_TOKENS,
                    "pricing": pricing,
                    "verifiability": service.verifiability,
                    "tee_attested": service.tee_signer_acknowledged,
                    "tee_verifier": "dstack",
                }
            )
        return Response.json({"object": "list", "data": entries})

    def _unsettled_fee(self, request: Request, user: str) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        return Response.json({"unsettledFee": str(self.unsettled(user))})

    def _session(self, request: Request) -> SessionToken | Response:
        """The request's session token, as a provider broker checks it; else the refusal."""
        try:
            return check_authorization(
                request.headers.get("Authorization"),
                provider=self.address,
                now_s=_now(),
                account_for=self._sub_account,
            )
        except PermissionDenied as denied:
            return _error(str(denied))

    # -- devnet control ----------------------------------------------------------------

    def _settings(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = request.json()
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object of provider settings")
                with self._lock:
                    self.settings = self.settings.updated(changes)
            except ValueError as error:
                return _error(str(error))
        with self._lock:
            return Response.json(asdict(self.settings))

    def _stats(self) -> Response:
        with self._lock:
            return Response.json(
                {
                    "chat_requests": self._chat_requests,
                    "served": self._served,
                    "unsettled": {user: str(fee) for user, fee in self._unsettled.items()},
                }
            )

    def _register_services(self, request: Request) -> Response:
        try:
            count = request.json().get("count")
        except (ValueError, AttributeError):
            count = None
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            return _error('expected {"count": N} with N >= 1')
        try:
            return Response.json(self.registry.register_synthetic(count))
        except Revert:
            return _error("registering synthetic services reverted", 400)


class InProcessServices:
    """The `chains.ServiceRegistry` of the in-process chain: URLs are set on its
    InferenceServing at each start; synthetic services come from the devnet-only
    ``devnetRegisterServices``, sent by the dev account (the contracts' owner)."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        inference = chain.contract(INFERENCE_SERVING_ADDRESS)
        assert isinstance(inference, InferenceServingContract)
        self.inference = inference
        self._lock = threading.Lock()

    def publish(self, urls: Mapping[str, str]) -> None:
        for provider, url in urls.items():
            self.inference.set_service_url(provider, url)

    def register_synthetic(self, count: int) -> dict[str, Any]:
        from eth_account import Account

        with self._lock:
            transaction = {
                "chainId": self.chain.chain_id,
                "nonce": self.chain.nonce(DEV_ACCOUNT_ADDRESS),
                "gas": 1_000_000,
                "gasPrice": self.chain.gas_price(),
                "to": INFERENCE_SERVING_ADDRESS,
                "value": 0,
                "data": DEVNET_REGISTER_SERVICES.encode(count),
            }
            raw = Account.sign_transaction(transaction, DEV_ACCOUNT_KEY).raw_transaction
            tx_hash = self.chain.send_raw_transaction(bytes(raw))
        receipt = self.chain.receipt(tx_hash)
        if receipt is None or receipt["status"] != "0x1":
            raise Revert(b"", "devnetRegisterServices reverted")
        return {"transactionHash": tx_hash, "services": len(self.inference.services)}


def register_routes(devnet: Devnet) -> None:
    """The devnet hook: serve each kind of broker at its prefix and point its service there."""
    devnet.services.publish({kind.address: devnet.base_url + kind.prefix for kind in KINDS})
    for kind in KINDS:
        provider = DevnetProvider(devnet.chain, devnet.services, kind=kind)
        devnet.providers[kind.name] = provider
        devnet.add_route(kind.prefix, provider.handle, service="provider")
