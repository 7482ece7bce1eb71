"""One chat exchange with a 0G compute provider, and the check of its TEE signature.

`send` POSTs the exact request bytes (the signature covers their hash) with
the cached auth token, plain or as a server-sent-event stream, and fills an
`Exchange` as the answer arrives, so a failure half-way still leaves what
was received for the log. Retries are only those the spec allows for a paid
request: connection failures that never reached the provider, 429 after its
``Retry-After``, 502/503/504; never a 400. A token the provider rejects is
re-signed once. `verify` fetches ``/v1/proxy/signature/{chatId}`` and checks
it against the service's TEE signer.

A provider is a peer, not a friend: its JSON is parsed with a nesting limit
and stream lines are bounded in length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import IntegrityError, NetworkUnavailable, ProtocolError, ZerogError
from zerog_cli.services.infer_chain import ComputeLink, route_endpoint
from zerog_cli.zerog.jsonrpc import loads_untrusted

if TYPE_CHECKING:
    from collections.abc import Mapping

    from zerog_cli.infra.http import RetryPolicy, StreamingResponse, Timeouts
    from zerog_cli.services.context import Context
    from zerog_cli.zerog.compute import ChatStream, ProviderFailure, Service

CHAT_ROUTE = "v1/proxy/chat/completions"
SIGNATURE_ROUTE = "v1/proxy/signature"
CHAT_RETRY_STATUSES = frozenset({429, 502, 503, 504})
MIN_CHAT_READ_TIMEOUT = 120.0
"""Seconds to wait for the first byte of an answer: models think before they speak."""
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

    @property
    def received_text(self) -> str:
        """The answer, or as much of a stream as arrived."""
        return self.stream.text if self.stream is not None else self.text


def _chat_policy(context: Context) -> tuple[RetryPolicy, Timeouts]:
    from zerog_cli.infra.http import RetryPolicy, Timeouts

    settings = context.settings
    policy = RetryPolicy(
        max_tries=int(settings.http_max_tries),
        retry_statuses=CHAT_RETRY_STATUSES,
        retry_after_send=False,
    )
    timeouts = Timeouts(
        connect=float(settings.http_connect_timeout),
        read=max(float(settings.http_read_timeout), MIN_CHAT_READ_TIMEOUT),
    )
    return policy, timeouts


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
    choices = document.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        exchange.finish_reason = reason if isinstance(reason, str) else None


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
    streamed: StreamingResponse, exchange: Exchange, on_delta: DeltaSink | None
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

    for chunk in streamed.iter_bytes():
        exchange.raw += chunk
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

    http = link.context.http
    url = chat_completions_url(service.url)
    endpoint = route_endpoint(service.url, CHAT_ROUTE)
    policy, timeouts = _chat_policy(link.context)
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
        "Authorization": authorization,
    }
    if not stream:
        response = http.request(
            "POST",
            url,
            endpoint=endpoint,
            data=exchange.request_body,
            headers=headers,
            timeout=timeouts,
            retry=policy,
        )
        if not response.ok:
            return classify_provider_error(response.status, response.content, response.headers)
        exchange.answered = True
        exchange.raw += response.content
        _read_plain(response.content, response.headers, exchange)
        return None
    with http.stream(
        "POST",
        url,
        endpoint=endpoint,
        data=exchange.request_body,
        headers=headers,
        timeout=timeouts,
        retry=policy,
    ) as streamed:
        if not streamed.ok:
            body = streamed.read(64 << 10)
            return classify_provider_error(streamed.status, body, streamed.headers)
        exchange.answered = True
        _read_stream(streamed, exchange, on_delta)
    return None


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


@dataclass(frozen=True)
class Verification:
    status: str
    """verified, mismatch or unavailable."""
    reason: str
    expected_signer: str | None = None
    recovered_signer: str | None = None
    bound_to_bytes: bool = False
    error: ZerogError | None = None
    """For "unavailable": what to raise (network: exit 6, refused: exit 3)."""

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "expected_signer": self.expected_signer,
            "recovered_signer": self.recovered_signer,
            "bound_to_bytes": self.bound_to_bytes,
        }


def verify(
    link: ComputeLink, service: Service, model: str, exchange: Exchange, *, stream: bool
) -> Verification:
    """Fetch the chat's signature and check it against the service's TEE signer.

    For a plain answer the signed text must also be the hashes of the exact
    request and response bytes. For a stream only the signer is required
    (which bytes a real broker hashes for streams is not confirmed); whether
    the text also matches the stream's bytes is reported as ``bound_to_bytes``.
    """
    from zerog_cli.zerog.compute import (
        check_response_signature,
        provider_error_message,
        response_signing_text,
        signature_url,
    )

    if not exchange.chat_id:
        return Verification("mismatch", "the provider gave no chat id to fetch a signature for")
    try:
        response = link.context.http.request(
            "GET",
            signature_url(service.url, exchange.chat_id, model),
            endpoint=route_endpoint(service.url, SIGNATURE_ROUTE),
            max_bytes=1 << 20,
        )
    except NetworkUnavailable as unreachable:
        return Verification("unavailable", str(unreachable), error=unreachable)
    if not response.ok:
        reason = (
            f"signature not available (HTTP {response.status}: "
            f"{provider_error_message(response.content)})"
        )
        return Verification("unavailable", reason, error=IntegrityError(reason))
    try:
        body = loads_untrusted(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Verification("mismatch", "the signature answer is not a JSON object")
    request_body = exchange.request_body
    response_body = bytes(exchange.raw)
    if stream:
        check = check_response_signature(service, body)
        bound = check.verified and body.get("text") == response_signing_text(
            request_body, response_body
        )
    else:
        check = check_response_signature(
            service, body, request_body=request_body, response_body=response_body
        )
        bound = check.verified
    return Verification(
        "verified" if check.verified else "mismatch",
        check.reason,
        check.expected_signer,
        check.recovered_signer,
        bound,
    )
