"""One chat exchange with a 0G compute provider, and the check of its TEE signature.

`send` POSTs the exact request bytes (the signature covers their hash) with
the cached auth token, plain or as a server-sent-event stream, and fills an
`Exchange` as the answer arrives, so a failure half-way still leaves what
was received for the log. Retries are only those the spec allows for a paid
request: connection failures that never reached the provider, 429 after its
``Retry-After``, 502/503/504; never a 400. A token the provider rejects is
re-signed once. `verify` fetches ``/v1/proxy/signature/{chatId}`` (retrying
for ``signature_wait`` seconds while the broker has not signed yet), checks
it against the service's TEE signer and says what the signature binds.

A provider is a peer, not a friend: its JSON is parsed with a nesting limit
and stream lines are bounded in length.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from zerog_cli.errors import NetworkUnavailable, ProtocolError
from zerog_cli.services.infer_chain import ComputeLink, route_endpoint
from zerog_cli.services.infer_results import DirectVerification
from zerog_cli.zerog.jsonrpc import loads_untrusted

if TYPE_CHECKING:
    from collections.abc import Mapping

    from zerog_cli.infra.http import RetryPolicy, StreamingResponse, Timeouts
    from zerog_cli.services.context import Context
    from zerog_cli.zerog.compute import ChatStream, ProviderFailure, Service
    from zerog_cli.zerog.compute_provider import Binding, SignedFamily

CHAT_ROUTE = "v1/proxy/chat/completions"
SIGNATURE_ROUTE = "v1/proxy/signature"
CHAT_RETRY_STATUSES = frozenset({429, 502, 503, 504})
MIN_CHAT_READ_TIMEOUT = 120.0
"""Seconds to wait for the first byte of an answer: models think before they speak."""
CHAT_THINKING_ALLOWANCE = MIN_CHAT_READ_TIMEOUT
"""Seconds a chat call gets on top of ``http_deadline``, for that first byte."""
MAX_STREAM_LINE = 1 << 20

DeltaSink = Callable[[str], None]


@dataclass
class Exchange:
    """The request bytes and what came back so far."""

    request_body: bytes
    answered: bool = False
    """True once the provider accepted the request (2xx): from then on it bills."""
    raw: bytearray = field(default_factory=bytearray)
    stream: ChatStream | None = None
    text: str = ""
    usage: dict[str, Any] | None = None
    chat_id: str | None = None
    finish_reason: str | None = None
    trace: dict[str, Any] | None = None
    """The 0G Router's ``x_0g_trace`` (provider chosen, billing, TEE check)."""
    reasoning: str = ""
    """``reasoning_content`` of a thinking model, apart from the answer."""

    @property
    def received_text(self) -> str:
        """The answer, or as much of a stream as arrived."""
        return self.stream.text if self.stream is not None else self.text


def _chat_policy(context: Context) -> tuple[RetryPolicy, Timeouts]:
    from zerog_cli.infra.http import RetryPolicy, Timeouts

    settings = context.settings
    policy = RetryPolicy(
        max_tries=settings.http_max_tries,
        retry_statuses=CHAT_RETRY_STATUSES,
        retry_after_send=False,
    )
    timeouts = Timeouts(
        connect=settings.http_connect_timeout,
        read=max(settings.http_read_timeout, MIN_CHAT_READ_TIMEOUT),
        deadline=settings.http_deadline + CHAT_THINKING_ALLOWANCE,
    )
    return policy, timeouts


def _answer_cap(context: Context) -> int:
    return context.settings.infer_max_answer


def _too_big(cap: int) -> ProtocolError:
    return ProtocolError(
        f"the provider's answer passed the {cap} byte cap and was cut",
        hint="raise infer_max_answer if answers this large are expected",
    )


def _read_plain(answer: bytes, headers: Mapping[str, str], exchange: Exchange) -> None:
    from zerog_cli.zerog.compute import chat_answer, chat_id_from

    try:
        document = loads_untrusted(answer)
    except ValueError:
        raise ProtocolError("the provider's answer is not readable JSON") from None
    if not isinstance(document, dict):
        raise ProtocolError("the provider's answer is not a JSON object")
    exchange.text = chat_answer(document)
    usage = document.get("usage")
    exchange.usage = usage if isinstance(usage, dict) else None
    exchange.chat_id = chat_id_from(headers, document)
    trace = document.get("x_0g_trace")
    exchange.trace = trace if isinstance(trace, dict) else None
    choices = document.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        exchange.finish_reason = reason if isinstance(reason, str) else None
        message = choices[0].get("message")
        reasoning = message.get("reasoning_content") if isinstance(message, dict) else None
        exchange.reasoning = reasoning if isinstance(reasoning, str) else ""


def _safe_line(line: bytes) -> bool:
    """False for a JSON event too deeply nested to hand to the stream parser."""
    payload = line.strip()
    if payload.startswith(b"data:"):
        payload = payload[5:].strip()
    if not payload.startswith(b"{"):
        return True
    try:
        loads_untrusted(payload)
    except ValueError:
        return False
    return True


def _read_stream(
    context: Context, streamed: StreamingResponse, exchange: Exchange, on_delta: DeltaSink | None
) -> None:
    from zerog_cli.zerog.compute import ChatStream, chat_id_from

    parser = exchange.stream = ChatStream()
    pending = b""

    def feed(line: bytes) -> None:
        if not _safe_line(line):
            return
        delta = parser.feed_line(line)
        if delta is not None and on_delta is not None:
            on_delta(delta)

    cap = _answer_cap(context)
    for chunk in streamed.iter_bytes():
        exchange.raw += chunk
        if len(exchange.raw) > cap:
            exchange.text = parser.text
            exchange.usage = parser.usage
            raise _too_big(cap)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            feed(line)
        if len(pending) > MAX_STREAM_LINE:
            raise ProtocolError(f"the provider sent a stream line over {MAX_STREAM_LINE} bytes")
    if pending:
        feed(pending)
    exchange.text = parser.text
    exchange.usage = parser.usage
    exchange.chat_id = chat_id_from(
        streamed.headers, {"id": parser.chat_id} if parser.chat_id else None
    )
    exchange.finish_reason = parser.finish_reason
    exchange.trace = parser.trace
    exchange.reasoning = "".join(parser.reasoning_parts)


def _answer_headers(stream: bool) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }


@dataclass(frozen=True)
class _Refusal:
    """A non-2xx answer to a chat POST: its status, first 64 KiB and headers."""

    status: int
    body: bytes
    headers: Mapping[str, str]


def _post_and_read(
    context: Context,
    url: str,
    endpoint: str,
    headers: Mapping[str, str],
    exchange: Exchange,
    *,
    stream: bool,
    on_delta: DeltaSink | None,
) -> _Refusal | None:
    """POST ``exchange.request_body`` with the chat retries and read the answer into it.

    A refusal is returned, not raised: the caller makes it a provider's or the Router's error.
    """
    policy, timeouts = _chat_policy(context)
    with context.http.stream(
        "POST",
        url,
        endpoint=endpoint,
        data=exchange.request_body,
        headers=headers,
        timeout=timeouts,
        retry=policy,
    ) as streamed:
        if not streamed.ok:
            return _Refusal(streamed.status, streamed.read(64 << 10), streamed.headers)
        exchange.answered = True
        if stream:
            _read_stream(context, streamed, exchange, on_delta)
            return None
        cap = _answer_cap(context)
        try:
            answer = streamed.read(cap)
        except ProtocolError:
            raise _too_big(cap) from None
        exchange.raw += answer
        _read_plain(answer, streamed.headers, exchange)
    return None


def _send_once(
    link: ComputeLink,
    service: Service,
    exchange: Exchange,
    authorization: str,
    stream: bool,
    on_delta: DeltaSink | None,
) -> ProviderFailure | None:
    """One logical POST (the HTTP helper retries inside); a refusal is returned, not raised."""
    from zerog_cli.zerog.compute import chat_completions_url, classify_provider_error

    refusal = _post_and_read(
        link.context,
        chat_completions_url(service.url),
        route_endpoint(service.url, CHAT_ROUTE),
        {**_answer_headers(stream), "Authorization": authorization},
        exchange,
        stream=stream,
        on_delta=on_delta,
    )
    if refusal is None:
        return None
    return classify_provider_error(refusal.status, refusal.body, refusal.headers)


def send(
    link: ComputeLink,
    service: Service,
    exchange: Exchange,
    *,
    generation: int,
    stream: bool,
    on_delta: DeltaSink | None,
) -> None:
    """Send ``exchange.request_body``; raises the provider's refusal as a project error."""
    for attempt in (1, 2):
        authorization = link.authorization(service.provider, generation)
        failure = _send_once(link, service, exchange, authorization, stream, on_delta)
        if failure is None:
            return
        if failure.kind == "auth" and attempt == 1:
            link.forget_token(service.provider)
            continue
        raise failure.to_error(route_endpoint(service.url, CHAT_ROUTE))


def send_routed(
    context: Context,
    url: str,
    headers: Mapping[str, str],
    exchange: Exchange,
    *,
    stream: bool,
    on_delta: DeltaSink | None,
) -> None:
    """POST ``exchange.request_body`` to the 0G Router, read as from a provider.

    The same retries as a provider chat (429 after ``Retry-After``, 502/503/504,
    connection failures before sending); a refusal is raised as the project
    error `zerog_cli.zerog.router.router_error` names.
    """
    from zerog_cli.infra.http import endpoint_of
    from zerog_cli.zerog.router import router_error

    endpoint = endpoint_of(url)
    sent = {**headers, **_answer_headers(stream)}
    if not stream:
        policy, timeouts = _chat_policy(context)
        response = context.http.request(
            "POST",
            url,
            endpoint=endpoint,
            data=exchange.request_body,
            headers=sent,
            timeout=timeouts,
            retry=policy,
            max_bytes=_answer_cap(context),
        )
        if not response.ok:
            raise router_error(response.status, response.content, response.headers, endpoint)
        exchange.answered = True
        exchange.raw += response.content
        _read_plain(response.content, response.headers, exchange)
        return
    refusal = _post_and_read(context, url, endpoint, sent, exchange, stream=True, on_delta=on_delta)
    if refusal is not None:
        raise router_error(refusal.status, refusal.body, refusal.headers, endpoint)


SIGNATURE_FIRST_PAUSE = 0.25
SIGNATURE_MAX_PAUSE = 2.0
"""Backoff between signature fetches: doubling from the first pause, capped."""


@dataclass(frozen=True)
class Verification:
    status: Literal["verified", "mismatch", "unavailable"]
    reason: str
    expected_signer: str | None = None
    recovered_signer: str | None = None
    family: SignedFamily | None = None
    """The signed text's family: A, B, image, e2ee or unknown."""
    binding: Binding | None = None
    """request_and_response, response_only (request rewritten) or signer_only."""
    routing: dict[str, str] | None = None
    attempts: int = 0

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def view(self) -> DirectVerification:
        """The check as `infer --json` reports it."""
        return DirectVerification(
            by="direct",
            status=self.status,
            reason=self.reason,
            expected_signer=self.expected_signer,
            recovered_signer=self.recovered_signer,
            family=self.family,
            binding=self.binding,
            bound_to_bytes=self.binding == "request_and_response",
            routing=self.routing,
            attempts=self.attempts,
        )


@dataclass(frozen=True)
class _Fetched:
    body: dict[str, Any] | None
    failure: Literal["mismatch", "unavailable"] | None
    """None, or why there is no body: "mismatch" (junk answer) or "unavailable"."""
    reason: str
    attempts: int


def _fetch_signature(link: ComputeLink, service: Service, model: str, chat_id: str) -> _Fetched:
    """The signature answer, retried with backoff while the broker has not signed yet.

    "Not yet" is a 404, an older broker's 400 ``chat_id_not_found`` or no answer at
    all; it is retried for ``signature_wait`` seconds. Any other refusal is final at once.
    """
    from zerog_cli.zerog.compute import (
        provider_error_message,
        signature_not_ready,
        signature_url,
    )

    wait = link.context.settings.signature_wait
    deadline = time.monotonic() + wait
    pause = SIGNATURE_FIRST_PAUSE
    attempts = 0
    while True:
        attempts += 1
        try:
            response = link.context.http.request(
                "GET",
                signature_url(service.url, chat_id, model),
                endpoint=route_endpoint(service.url, SIGNATURE_ROUTE),
                max_bytes=1 << 20,
            )
        except NetworkUnavailable as unreachable:
            why, retry = f"the provider did not answer: {unreachable}", True
        else:
            if response.ok:
                try:
                    body = loads_untrusted(response.content)
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    return _Fetched(
                        None, "mismatch", "the signature answer is not a JSON object", attempts
                    )
                return _Fetched(body, None, "", attempts)
            why = f"HTTP {response.status}: {provider_error_message(response.content)}"
            retry = signature_not_ready(response.status, response.content)
        left = deadline - time.monotonic()
        if not retry or left <= 0:
            waited = f" after {attempts} tries in {wait:g}s" if retry else ""
            reason = f"signature unavailable{waited} ({why})"
            return _Fetched(None, "unavailable", reason, attempts)
        time.sleep(min(pause, left))
        pause = min(pause * 2, SIGNATURE_MAX_PAUSE)


def verify(link: ComputeLink, service: Service, model: str, exchange: Exchange) -> Verification:
    """Fetch the chat's signature and check it against the service's TEE signer.

    The signer must be the service's (exactly as the official SDK checks); then
    the signed response hash must be that of every byte received (plain or
    event stream), and the signed request hash is compared with our request:
    a different one means the broker rewrote the request before forwarding it.
    """
    from zerog_cli.zerog.compute import check_response_signature

    if not exchange.chat_id:
        return Verification("mismatch", "the provider gave no chat id to fetch a signature for")
    fetched = _fetch_signature(link, service, model, exchange.chat_id)
    attempts = fetched.attempts
    if fetched.body is None:
        return Verification(fetched.failure or "unavailable", fetched.reason, attempts=attempts)
    check = check_response_signature(
        service,
        fetched.body,
        request_body=exchange.request_body,
        response_body=bytes(exchange.raw),
    )
    return Verification(
        "verified" if check.verified else "mismatch",
        check.reason,
        check.expected_signer,
        check.recovered_signer,
        check.family,
        check.binding,
        check.routing,
        attempts,
    )
