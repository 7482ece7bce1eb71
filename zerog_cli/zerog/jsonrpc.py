"""JSON-RPC 2.0 over the resilient HTTP helper, and strict reading of answers.

Every answer from a peer is untrusted. Malformed JSON, an HTML error page, a
missing ``result``, wrong types or out-of-range numbers become a one-line
``ProtocolError`` naming the endpoint; an error object becomes a
``RemoteError`` classified the way the 0G clients do it (spec 0g-storage.md
3.5): by substring of its message or data.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import NetworkUnavailable, ProtocolError, RemoteError

if TYPE_CHECKING:
    from zerog_cli.infra.http import HttpClient, HttpResponse, RetryPolicy, Timeouts

U64_MAX = (1 << 64) - 1
U256_MAX = (1 << 256) - 1
DEFAULT_MAX_RESPONSE_BYTES = 16 << 20
MAX_JSON_DEPTH = 64
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_HASH_RE = re.compile(r"0x[0-9a-fA-F]{64}\Z")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}\Z")
_QUANTITY_RE = re.compile(r"0x[0-9a-fA-F]{1,64}\Z")

# Substrings of node and indexer errors, checked in this order (spec 3.5).
_KINDS: tuple[tuple[str, str], ...] = (
    ("too many data writing", "retryable"),
    ("already uploaded and finalized", "already-exists"),
    ("segment has already been uploaded or is being uploaded", "already-exists"),
    ("already pruned", "fatal"),
    ("not matched", "fatal"),
    ("data root and tx seq not match", "fatal"),
    ("transaction reverted", "fatal"),
    ("file info not found", "not-found"),
    ("file not found", "not-found"),
    ("not found", "not-found"),
    ("temporarily unavailable", "transient"),
    ("try again", "transient"),
    ("timed out", "transient"),
)
# A JSON-RPC "internal error" is the node's 5xx: worth another attempt on a read.
_INTERNAL_ERROR = -32603


def classify(message: str, data: object = None, code: int | None = None) -> str:
    """``retryable``, ``already-exists``, ``not-found``, ``transient`` or ``fatal``.

    ``retryable`` is the node's "busy" answer to a write (the uploader pauses
    and resends); ``transient`` is a server-side failure that an idempotent
    call retries at once with back-off, like an HTTP 5xx.
    """
    text = message
    if isinstance(data, str):
        text += " " + data
    elif isinstance(data, dict):
        inner = data.get("message")
        if isinstance(inner, str):
            text += " " + inner
    text = text.lower()
    for needle, kind in _KINDS:
        if needle in text:
            return kind
    return "transient" if code == _INTERNAL_ERROR else "fatal"


def loads_untrusted(content: bytes) -> Any:
    """``json.loads`` for a peer's bytes: only finite numbers, nesting at most 64 deep.

    The depth check runs first because a deeply nested document can exhaust
    the C stack inside the json module before any RecursionError is raised.
    Raises ``ValueError``.
    """
    brackets = content.translate(None, _NOT_BRACKETS)
    if len(brackets) > MAX_JSON_DEPTH:
        depth = 0
        for byte in brackets:
            depth += 1 if byte in b"[{" else -1
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(content, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def one_line(text: str, limit: int = 240) -> str:
    """Collapse whitespace and cut, so a peer's text fits one message line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class JsonRpcClient:
    """Calls one JSON-RPC URL through :class:`HttpClient` (positional params).

    ``direct`` lets the HTTP helper send without requests where nothing needs
    it (`HttpClient.request`): for the storage nodes and the indexer, whose
    calls a transfer makes by the hundred.
    """

    def __init__(
        self,
        http: HttpClient,
        url: str,
        *,
        endpoint: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        timeout: Timeouts | None = None,
        direct: bool = False,
    ) -> None:
        from zerog_cli.infra.http import endpoint_of

        self.http = http
        self.direct = direct
        self.url = url
        self.endpoint = endpoint or endpoint_of(url)
        self.max_response_bytes = max_response_bytes
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._id_lock = threading.Lock()

    def _next_id(self) -> int:
        with self._id_lock:
            return next(self._ids)

    def call(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeouts | None = None,
        max_bytes: int | None = None,
    ) -> Any:
        """The ``result`` of one call (None is a valid result).

        Raises ``RemoteError`` for an error object, ``ProtocolError`` for a
        malformed answer, ``NetworkUnavailable`` from the transport.
        """
        policy = retry or self.http.retry
        attempt = 0
        while True:
            attempt += 1
            request_id = self._next_id()
            body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
            response = self._post(body, retry, timeout, max_bytes)
            answer = self._decode(response, method)
            if isinstance(answer, list):
                raise self._bad(method, "answered a batch to a single call")
            try:
                return self._result(answer, method, request_id)
            except RemoteError as error:
                if error.kind != "transient" or not policy.retry_after_send:
                    raise
                if attempt >= policy.max_tries:
                    raise NetworkUnavailable(f"{error} (after {attempt} attempts)") from None
                time.sleep(random.uniform(0, min(policy.max_delay, policy.base_delay * 2**attempt)))

    def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeouts | None = None,
    ) -> list[Any]:
        """Results of a batch, in the order of ``calls``.

        A call that failed remotely has its ``RemoteError`` in its place
        (returned, not raised); a malformed batch raises ``ProtocolError``.
        """
        if not calls:
            return []
        ids = [self._next_id() for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
            for request_id, (method, params) in zip(ids, calls, strict=True)
        ]
        label = f"batch of {len(calls)}"
        answer = self._decode(self._post(body, retry, timeout, None), label)
        if isinstance(answer, dict) and "error" in answer:
            raise self._remote_error(answer["error"], label)
        if not isinstance(answer, list):
            raise self._bad(label, "answered a batch with a non-list")
        by_id: dict[int, Any] = {}
        for item in answer:
            if not isinstance(item, dict) or type(item.get("id")) is not int:
                raise self._bad(label, "sent a batch item without an integer id")
            by_id[item["id"]] = item
        results: list[Any] = []
        for request_id, (method, _) in zip(ids, calls, strict=True):
            item = by_id.get(request_id)
            if item is None:
                raise self._bad(method, f"left out the answer to batch id {request_id}")
            try:
                results.append(self._result(item, method, request_id))
            except RemoteError as error:
                results.append(error)
        return results

    # -- internals ------------------------------------------------------

    def _post(
        self,
        body: object,
        retry: RetryPolicy | None,
        timeout: Timeouts | None,
        max_bytes: int | None,
    ) -> HttpResponse:
        return self.http.request(
            "POST",
            self.url,
            endpoint=self.endpoint,
            json=body,
            headers={"Accept": "application/json"},
            retry=retry,
            timeout=timeout or self.timeout,
            max_bytes=max_bytes or self.max_response_bytes,
            direct=self.direct,
        )

    def _decode(self, response: HttpResponse, method: str) -> Any:
        content = response.content
        if not content.strip():
            raise self._bad(method, f"sent an empty answer (HTTP {response.status})")
        try:
            answer = loads_untrusted(content)
        except ValueError:
            head = content.lstrip()[:1]
            what = "an HTML page" if head == b"<" else "malformed or truncated JSON"
            raise self._bad(method, f"answered {what} (HTTP {response.status})") from None
        if not response.ok and not (isinstance(answer, dict) and "error" in answer):
            raise self._bad(method, f"answered HTTP {response.status} without a JSON-RPC error")
        return answer

    def _result(self, answer: Any, method: str, request_id: int) -> Any:
        if not isinstance(answer, dict):
            raise self._bad(method, "answered something other than a JSON-RPC object")
        version = answer.get("jsonrpc")
        if version is not None and version != "2.0":
            raise self._bad(method, f"answered JSON-RPC version {one_line(str(version), 20)!r}")
        if "id" in answer and answer["id"] is not None and answer["id"] != request_id:
            raise self._bad(method, "answered with a different request id")
        error = answer.get("error")
        if error is not None:
            raise self._remote_error(error, method)
        if "result" not in answer:
            raise self._bad(method, "answered without a result or an error")
        return answer["result"]

    def _remote_error(self, error: object, method: str) -> ProtocolError:
        if not isinstance(error, dict):
            return self._bad(method, "sent a malformed error object")
        code = error.get("code")
        message = error.get("message")
        if type(code) is not int or not isinstance(message, str):
            return self._bad(method, "sent an error object without an integer code and a message")
        data = error.get("data")
        text = one_line(message)
        if isinstance(data, str) and data and data not in message:
            text = f"{text}: {one_line(data)}"
        return RemoteError(
            f"{self.endpoint} {method}: {text}",
            code=code,
            data=data,
            kind=classify(message, data, code),
            endpoint=self.endpoint,
        )

    def _bad(self, method: str, what: str) -> ProtocolError:
        return ProtocolError(f"{self.endpoint} {method}: {what}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _finite_float(text: str) -> float:
    """A JSON number too large for a float (``1e999``) would otherwise parse as infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"JSON number {one_line(text, 40)} is out of range")
    return value


class Reader:
    """Strict field access for an untrusted answer; errors name the peer and field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, what: str) -> ProtocolError:
        return ProtocolError(f"{self.where}: {field} {what}")

    def obj(self, value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field, "is not a JSON object")
        return value

    def get(self, obj: dict[str, Any], key: str, field: str) -> Any:
        if key not in obj:
            raise self.fail(field, "is missing")
        return obj[key]

    def integer(self, value: Any, field: str, *, low: int = 0, high: int = U64_MAX) -> int:
        if type(value) is not int:
            raise self.fail(field, f"is not an integer ({_type_name(value)})")
        if not low <= value <= high:
            raise self.fail(field, f"is out of range ({one_line(str(value), 40)})")
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if type(value) is not bool:
            raise self.fail(field, f"is not a boolean ({_type_name(value)})")
        return value

    def string(self, value: Any, field: str, *, max_len: int = 4096) -> str:
        if not isinstance(value, str):
            raise self.fail(field, f"is not a string ({_type_name(value)})")
        if len(value) > max_len:
            raise self.fail(field, f"is longer than {max_len} characters")
        return value

    def array(self, value: Any, field: str, *, max_len: int = 100_000) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(field, f"is not a list ({_type_name(value)})")
        if len(value) > max_len:
            raise self.fail(field, f"has more than {max_len} entries")
        return value

    def hash(self, value: Any, field: str) -> str:
        """A 0x + 64 hex string, returned lowercase."""
        if not isinstance(value, str) or not _HASH_RE.match(value):
            raise self.fail(field, "is not a 0x-prefixed 32-byte hex string")
        return value.lower()

    def address(self, value: Any, field: str) -> str:
        """A 0x + 40 hex string, returned lowercase."""
        if not isinstance(value, str) or not _ADDRESS_RE.match(value):
            raise self.fail(field, "is not a 0x-prefixed 20-byte address")
        return value.lower()

    def quantity(self, value: Any, field: str, *, high: int = U256_MAX) -> int:
        """An Ethereum hex quantity ("0x1a")."""
        if not isinstance(value, str) or not _QUANTITY_RE.match(value):
            raise self.fail(field, "is not a 0x-prefixed hex quantity")
        number = int(value, 16)
        if number > high:
            raise self.fail(field, "is out of range")
        return number

    def hex_bytes(self, value: Any, field: str, *, max_bytes: int = 1 << 20) -> bytes:
        if not isinstance(value, str) or not value.startswith(("0x", "0X")):
            raise self.fail(field, "is not 0x-prefixed hex")
        if len(value) > 2 + 2 * max_bytes:
            raise self.fail(field, f"is longer than {max_bytes} bytes")
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            raise self.fail(field, "is not valid hex") from None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "boolean", int: "number", float: "number", str: "string"}
    names_any: dict[type, str] = {**names, list: "list", dict: "object"}
    return names_any.get(type(value), type(value).__name__)
