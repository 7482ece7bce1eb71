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
import re
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
    provider bills from. The bytes are in Go's ``json.Marshal`` form
    (`go_json_bytes`; an integral temperature as an integer, as Go prints a
    float64 1.0), so a broker that only re-marshals the body forwards, and
    signs, the very same bytes.
    """
    body: dict[str, Any] = {"model": model, "messages": messages}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = int(temperature) if float(temperature).is_integer() else temperature
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return go_json_bytes(body)


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
_USAGE_PHRASES = (
    "unknown model",
    "model not found",
    "model not supported",
    "endpoint not supported",
)


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
    reasoning_parts: list[str] = field(default_factory=list)
    """``delta.reasoning_content`` of thinking models, kept apart from the answer."""
    trace: dict[str, Any] | None = None
    """The 0G Router's ``x_0g_trace`` object, on the chunk that carries it."""
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
        if isinstance(chunk.get("x_0g_trace"), dict):
            self.trace = chunk["x_0g_trace"]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        reasoning = delta.get("reasoning_content") if isinstance(delta, dict) else None
        if isinstance(reasoning, str) and reasoning:
            self.reasoning_parts.append(reasoning)
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
#
# What brokers sign (docs/protocol.md, "Response signatures", has the source lines):
#
# - format A, ``sha256hex(request):sha256hex(response)``: a decentralized broker whose
#   model runs in its own TEE (``signChatWithKey``);
# - format B, the centralized routing proof
#   ``sha256hex(request):sha256hex(response):providerType:providerIdentity:tlsFingerprint``
#   (``signCentralizedRoutingProof`` / ``FormatRoutingProofText``);
# - images, ``sha256hex(request):sha256hex(img0),sha256hex(img1),…`` (``signImageResponse``);
# - end-to-end encrypted exchanges, ``zg-sig-v1/<scheme>:<reqH>:<respH>`` over ciphertext.
#
# In A and B the request hash covers the body the broker forwarded upstream (after it
# rewrote it: stream options, LoRA, model enforcement, output cap), and the response
# hash covers the bytes the client received. The official SDK checks only the signer.

SignedFamily = Literal["A", "B", "image", "e2ee", "unknown"]
Binding = Literal["request_and_response", "response_only", "signer_only"]

BINDING_MEANING: dict[str, str] = {
    "request_and_response": "the signature binds our request and the response received",
    "response_only": "request rewritten by the provider; the response received is bound",
    "signer_only": "signer verified, content not bound",
}
"""What each binding means, as `infer log` and the summary line say it."""

E2EE_SCHEME_PREFIX = "zg-sig-v1/"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def go_json_bytes(value: Any) -> bytes:
    """``value`` encoded as Go's ``json.Marshal`` encodes a ``map[string]interface{}``.

    Keys sorted at every level, no whitespace, UTF-8 kept, and ``<``, ``>``,
    ``&``, U+2028, U+2029 escaped. A broker that rewrites a request body
    (proxy.go ``EnsureStreamOptions``, ``EnforceConfiguredModel``) re-marshals
    it this way, so a body already in this form comes out byte-identical and
    its hash still matches the one the broker signs.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


def response_signing_text(request_body: bytes, response_body: bytes) -> str:
    """Format A: ``sha256hex(req):sha256hex(resp)`` (broker ``signChatWithKey``)."""
    return sha256_hex(request_body) + ":" + sha256_hex(response_body)


def routing_proof_text(
    request_body: bytes,
    response_body: bytes,
    provider_type: str,
    provider_identity: str,
    tls_cert_fingerprint: str,
) -> str:
    """Format B, the centralized routing proof (broker ``FormatRoutingProofText``)."""
    return ":".join(
        (
            sha256_hex(request_body),
            sha256_hex(response_body),
            provider_type,
            provider_identity,
            tls_cert_fingerprint,
        )
    )


@dataclass(frozen=True)
class SignedText:
    """A signed text split into its family's fields (hashes lower-case hex)."""

    family: SignedFamily
    request_hash: str | None = None
    response_hash: str | None = None
    provider_type: str | None = None
    provider_identity: str | None = None
    tls_cert_fingerprint: str | None = None


def parse_signed_text(text: str) -> SignedText:
    """Which family ``text`` belongs to, and its fields.

    A one-image text has the shape of format A; for a chat service it is read
    as format A. Format B's identity may itself hold ``:`` (the broker escapes
    nothing), so it is everything between the type and the 64-hex fingerprint.
    """
    if text.startswith(E2EE_SCHEME_PREFIX):
        return SignedText("e2ee")
    parts = text.split(":")
    if len(parts) < 2 or not _HEX64.match(parts[0]):
        return SignedText("unknown")
    if len(parts) == 2:
        if _HEX64.match(parts[1]):
            return SignedText("A", parts[0], parts[1])
        images = parts[1].split(",")
        if all(_HEX64.match(image) for image in images):
            return SignedText("image", parts[0])
        return SignedText("unknown")
    if len(parts) >= 5 and _HEX64.match(parts[1]) and _HEX64.match(parts[-1]):
        return SignedText(
            "B",
            parts[0],
            parts[1],
            provider_type=parts[2],
            provider_identity=":".join(parts[3:-1]),
            tls_cert_fingerprint=parts[-1],
        )
    return SignedText("unknown")


def sign_response_text(private_key: str | bytes, text: str) -> str:
    """EIP-191 personal signature over UTF-8 ``text``, ``0x`` hex, v in {27, 28} (the TEE side)."""
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
    separate TEE of a decentralized provider (TS SDK ``ResponseProcessor.processResponse``).
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

    ``status``: "verified" (the TEE signer signed it, and whatever could be
    bound matched: see ``binding``); "mismatch" (a wrong signer, or a signed
    response hash that is not the bytes received: tampering); "unverifiable"
    (the service gives nothing to check against).
    """

    status: Literal["verified", "mismatch", "unverifiable"]
    reason: str
    expected_signer: str | None = None
    recovered_signer: str | None = None
    family: SignedFamily | None = None
    binding: Binding | None = None
    routing: dict[str, str] | None = None
    """Format B only: provider_type, provider_identity, tls_cert_fingerprint as signed."""

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def require(self) -> None:
        """Raise `IntegrityError` (exit 3) unless verified."""
        if not self.verified:
            raise IntegrityError(f"response signature not verified: {self.reason}")


def _binding(
    parsed: SignedText, request_body: bytes | None, response_body: bytes | None
) -> tuple[Binding | None, str]:
    """What the signed hashes bind; (None, why) when the response hash is not ours."""
    if parsed.family not in ("A", "B") or response_body is None:
        return "signer_only", BINDING_MEANING["signer_only"]
    if parsed.response_hash != sha256_hex(response_body):
        return None, "the signed response hash is not the hash of the bytes received"
    if request_body is not None and parsed.request_hash == sha256_hex(request_body):
        return "request_and_response", BINDING_MEANING["request_and_response"]
    return "response_only", BINDING_MEANING["response_only"]


def check_response_signature(
    service: Service,
    signature_body: Mapping[str, Any],
    *,
    request_body: bytes | None = None,
    response_body: bytes | None = None,
) -> SignatureCheck:
    """Check a ``/v1/proxy/signature/{chatId}`` answer, then bind what can be bound.

    The signer is checked as the official SDK does: the EIP-191 recovery over
    ``text`` must be the service's expected signer (``signing_address`` in the
    body is never trusted). Then, for formats A and B, the signed response
    hash must be that of ``response_body`` (else "mismatch"), and a request
    hash other than that of ``request_body`` means the broker rewrote the
    request before forwarding it ("response_only"), which is not tampering.
    Other families verify the signer only ("signer_only").
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
    parsed = parse_signed_text(text)
    routing = None
    if parsed.family == "B":
        routing = {
            "provider_type": parsed.provider_type or "",
            "provider_identity": parsed.provider_identity or "",
            "tls_cert_fingerprint": parsed.tls_cert_fingerprint or "",
        }
    binding, reason = _binding(parsed, request_body, response_body)
    if binding is None:
        return SignatureCheck(
            "mismatch", reason, expected, recovered, family=parsed.family, routing=routing
        )
    return SignatureCheck(
        "verified",
        f"signed by the TEE signer (format {parsed.family}); {reason}",
        expected,
        recovered,
        family=parsed.family,
        binding=binding,
        routing=routing,
    )


# --- signature retrieval -----------------------------------------------------------------------


def signature_not_ready(status: int, body: bytes | str | None) -> bool:
    """True for a signature answer that means "not signed (yet)": retry it.

    Current brokers answer a cache miss with 404; older ones with the default
    400 carrying ``chat_id_not_found`` (broker signature_race_test.go). Older
    brokers also sign only after the body was flushed, and streams after the
    last chunk, so a prompt fetch can miss.
    """
    if status == 404:
        return True
    return status == 400 and "chat_id_not_found" in provider_error_message(body)
