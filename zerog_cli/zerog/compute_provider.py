"""Talking to a 0G compute provider broker over HTTP, minus the HTTP itself.

Specs/0g-compute.md sections 3.1, 3.6-3.8, 5.1 and 6.1: the URLs, the chat
request body, reading answers (plain and SSE streams), classifying error
answers so the caller knows whether to retry, and the per-response TEE
signature check. The transport (resilient session, retries, breaker) belongs
to the caller; everything here works on bytes, dicts and status codes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from zerog_cli.errors import (
    IntegrityError,
    NotFound,
    PermissionDenied,
    ProtocolError,
    QuotaExceeded,
    RemoteError,
    UsageError,
    ZerogError,
)

if TYPE_CHECKING:
    from zerog_cli.zerog.compute_abi import Service

RESPONSE_KEY_HEADER = "ZG-Res-Key"
"""Chat id header set by brokers that sign responses themselves."""


# --- URLs and request bodies -------------------------------------------------------------------


def _base(url: str) -> str:
    return url.rstrip("/")


def chat_completions_url(service_url: str) -> str:
    return _base(service_url) + "/v1/proxy/chat/completions"


def signature_url(service_url: str, chat_id: str, model: str) -> str:
    return (
        f"{_base(service_url)}/v1/proxy/signature/{quote(chat_id, safe='')}"
        f"?model={quote(model, safe='')}"
    )


def models_url(service_url: str) -> str:
    return _base(service_url) + "/v1/models"


def unsettled_fee_url(service_url: str, user: str) -> str:
    return f"{_base(service_url)}/v1/user/{user}/unsettledfee"


def chat_request_body(
    model: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    stream: bool = False,
    temperature: float | None = None,
) -> bytes:
    """The exact bytes to POST; keep them, the response signature covers their hash.

    Streams ask for ``include_usage`` so the final chunk carries the usage the
    provider bills from.
    """
    body: dict[str, Any] = {"model": model, "messages": messages}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def chat_id_from(headers: Mapping[str, str] | None, body: Mapping[str, Any] | None) -> str | None:
    """``ZG-Res-Key`` when the broker set it, else the completion's ``id``."""
    key = _header(headers, RESPONSE_KEY_HEADER)
    if key:
        return key
    value = body.get("id") if body else None
    return value if isinstance(value, str) and value else None


def chat_answer(body: Mapping[str, Any]) -> str:
    """``choices[0].message.content`` of a non-streamed completion."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ProtocolError("provider answer has no choices[0].message.content") from None
    if not isinstance(content, str):
        raise ProtocolError("provider answer content is not text")
    return content


def parse_unsettled_fee(body: Mapping[str, Any]) -> int:
    """``{"unsettledFee": "<neuron>"}`` as an integer."""
    value = body.get("unsettledFee")
    try:
        return int(str(value))
    except ValueError:
        raise ProtocolError(f"provider sent an unreadable unsettledFee: {value!r}") from None


def parse_models(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Entries of ``GET /v1/models``; a missing ``data`` array is an error, as in the SDK."""
    data = body.get("data")
    if not isinstance(data, list):
        raise ProtocolError("provider model list has no data array")
    return [entry for entry in data if isinstance(entry, dict)]


# --- provider errors ---------------------------------------------------------------------------

FailureKind = Literal["retryable", "funding", "auth", "usage", "fatal"]

_RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
_FUNDING_PHRASES = ("insufficient balance", "account not exist", "not acknowledge the provider")
_AUTH_PHRASES = (
    "session token",
    "authorization",
    "signature verification failed",
    "invalid signature",
    "failed to recover public key",
    "ephemeral token",
)
_USAGE_PHRASES = ("unknown model", "model not found", "endpoint not supported")


def provider_error_message(body: bytes | str | None) -> str:
    """The message of either error shape: ``{"error": "…"}`` or ``{"error": {"message": …}}``."""
    if body is None:
        return ""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed.get("message"))
        if isinstance(error, str):
            return error
        if isinstance(error, dict):
            message = error.get("message")
            if isinstance(message, str):
                return message
    return text.strip()[:500]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    import email.utils

    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


@dataclass(frozen=True)
class ProviderFailure:
    """A provider answer that is not a success, classified for the caller's retry loop.

    ``status`` None means no HTTP answer at all (connection refused, reset, timeout).
    """

    status: int | None
    message: str
    kind: FailureKind
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind == "retryable"

    def to_error(self, endpoint: str | None = None) -> ZerogError:
        """The project exception: funding exit 4, auth 5, usage 2, the rest network (6)."""
        where = f"provider {endpoint}" if endpoint else "provider"
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        text = f"{where} refused the request ({status}): {self.message}"
        if self.kind == "funding":
            return QuotaExceeded(text, hint="fund the provider sub-account")
        if self.kind == "auth":
            return PermissionDenied(text)
        if self.kind == "usage":
            if self.status == 410:
                return NotFound(text, hint="the model has expired; pick another")
            return UsageError(text)
        return RemoteError(text, code=self.status, kind=self.kind, endpoint=endpoint)


def classify_provider_error(
    status: int | None,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    now: float | None = None,
) -> ProviderFailure:
    """Retry connection failures, 429 (after Retry-After) and 502/503/504; never a 400."""
    message = provider_error_message(body) or (
        "connection failed" if status is None else f"HTTP {status}"
    )
    if status is None or status in _RETRYABLE_STATUS:
        retry_after = parse_retry_after(_header(headers, "Retry-After"), now)
        return ProviderFailure(status, message, "retryable", retry_after)
    lowered = message.lower()
    if "service not acknowledge" in lowered:
        return ProviderFailure(status, message, "fatal")
    if any(phrase in lowered for phrase in _FUNDING_PHRASES):
        return ProviderFailure(status, message, "funding")
    if status == 401 or any(phrase in lowered for phrase in _AUTH_PHRASES):
        return ProviderFailure(status, message, "auth")
    if status in (410, 413) or any(phrase in lowered for phrase in _USAGE_PHRASES):
        return ProviderFailure(status, message, "usage")
    return ProviderFailure(status, message, "fatal")


# --- streaming -----------------------------------------------------------------------------------


@dataclass
class ChatStream:
    """Incremental reader of an SSE chat stream: text deltas, the last usage, the chat id.

    Feed it raw chunks (`feed`) or whole lines (`feed_line`); both return the
    text deltas found. Lines that are not JSON are skipped, as the SDK does; an
    error object in the stream raises `RemoteError`.
    """

    parts: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    chat_id: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    done: bool = False
    _pending: bytes = b""

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        return [delta for line in lines if (delta := self.feed_line(line)) is not None]

    def close(self) -> list[str]:
        """Process a last line that had no newline."""
        rest, self._pending = self._pending, b""
        delta = self.feed_line(rest) if rest else None
        return [delta] if delta is not None else []

    def feed_line(self, line: bytes | str) -> str | None:
        text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
        text = text.strip()
        if text.startswith("data:"):
            text = text[5:].strip()
        if text == "[DONE]":
            self.done = True
            return None
        if not text.startswith("{"):
            return None
        try:
            chunk = json.loads(text)
        except ValueError:
            return None
        return self._chunk(chunk) if isinstance(chunk, dict) else None

    def _chunk(self, chunk: dict[str, Any]) -> str | None:
        if "error" in chunk:
            message = provider_error_message(json.dumps(chunk))
            raise RemoteError(f"provider stream failed: {message}", kind="fatal")
        if self.chat_id is None and isinstance(chunk.get("id"), str):
            self.chat_id = chunk["id"]
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if not isinstance(content, str) or not content:
            return None
        self.parts.append(content)
        return content


def iter_stream_deltas(lines: Iterable[bytes | str], stream: ChatStream) -> Iterator[str]:
    """Text deltas from SSE lines (e.g. ``response.iter_lines()``), filling ``stream``."""
    for line in lines:
        delta = stream.feed_line(line)
        if delta is not None:
            yield delta


# --- response signatures -----------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def response_signing_text(request_body: bytes, response_body: bytes) -> str:
    """What a broker signs for a chat response: ``sha256hex(req):sha256hex(resp)``."""
    return sha256_hex(request_body) + ":" + sha256_hex(response_body)


def sign_response_text(private_key: str | bytes, text: str) -> str:
    """EIP-191 personal signature over UTF-8 ``text``, ``0x`` hex (the TEE side)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    signed = Account.sign_message(encode_defunct(text=text), private_key)
    return "0x" + bytes(signed.signature).hex()


def recover_response_signer(text: str, signature: str) -> str | None:
    """The address that signed ``text``, or None when the signature is malformed."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        raw = bytes.fromhex(signature.removeprefix("0x").removeprefix("0X"))
        return str(Account.recover_message(encode_defunct(text=text), signature=raw))
    except Exception:  # malformed hex, wrong length, invalid point: all mean "no signer"
        return None


def expected_response_signer(service: Service) -> str | None:
    """Who must have signed responses; None when ``additionalInfo`` is not a JSON object.

    ``TargetTeeAddress`` replaces the broker's TEE signer when the model runs in a
    separate TEE of a decentralized provider.
    """
    try:
        info = json.loads(service.additional_info)
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    target = info.get("TargetTeeAddress")
    if (
        info.get("TargetSeparated") is True
        and info.get("ProviderType") != "centralized"
        and isinstance(target, str)
        and target
    ):
        return target
    return service.tee_signer_address


def verify_response_signature(text: str, signature: str, expected_signer: str) -> bool:
    """True iff ``signature`` over ``text`` recovers to ``expected_signer`` (any case)."""
    recovered = recover_response_signer(text, signature)
    return recovered is not None and recovered.lower() == expected_signer.lower()


@dataclass(frozen=True)
class SignatureCheck:
    """Outcome of checking one response signature.

    ``status``: "verified"; "mismatch" (wrong signer or the signed text is not
    this request/response: tampering); "unverifiable" (the service gives nothing
    to check against).
    """

    status: Literal["verified", "mismatch", "unverifiable"]
    reason: str
    expected_signer: str | None = None
    recovered_signer: str | None = None

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def require(self) -> None:
        """Raise `IntegrityError` (exit 3) unless verified."""
        if not self.verified:
            raise IntegrityError(f"response signature not verified: {self.reason}")


def check_response_signature(
    service: Service,
    signature_body: Mapping[str, Any],
    *,
    request_body: bytes | None = None,
    response_body: bytes | None = None,
) -> SignatureCheck:
    """Check a ``/v1/proxy/signature/{chatId}`` answer against the service's TEE signer.

    With the exact request and response bytes (non-streamed answers) the signed
    text must also be their hashes, which the SDK does not check.
    ``signing_address`` in the body is never trusted.
    """
    if not service.verifiable:
        return SignatureCheck("unverifiable", f"service verifiability is {service.verifiability!r}")
    if not service.tee_signer_acknowledged:
        return SignatureCheck("unverifiable", "the service's TEE signer is not acknowledged")
    expected = expected_response_signer(service)
    if expected is None:
        return SignatureCheck("unverifiable", "the service's additionalInfo is not JSON")
    text = signature_body.get("text")
    signature = signature_body.get("signature")
    if not isinstance(text, str) or not isinstance(signature, str):
        return SignatureCheck("mismatch", "signature answer lacks text or signature", expected)
    recovered = recover_response_signer(text, signature)
    if recovered is None or recovered.lower() != expected.lower():
        return SignatureCheck(
            "mismatch", f"signed by {recovered}, expected {expected}", expected, recovered
        )
    if (
        request_body is not None
        and response_body is not None
        and text != response_signing_text(request_body, response_body)
    ):
        return SignatureCheck(
            "mismatch",
            "signed text does not match the request and response bytes",
            expected,
            recovered,
        )
    return SignatureCheck("verified", "signature by the TEE signer", expected, recovered)
