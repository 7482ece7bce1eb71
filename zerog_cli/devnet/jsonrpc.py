"""A small JSON-RPC 2.0 server core: parsing, batches, errors, fault hooks.

Wire rules the 0G clients rely on (specs/0g-interop.md 1.1, 1.2, 10):

- a request without ``params`` means ``[]``; named (object) params are refused
  with -32602, as every 0G endpoint takes positional params only;
- ids are echoed exactly as sent (huge integers included);
- batches (JSON arrays) are answered with an array (ethers needs this);
- errors are always HTTP 200 with an ``error`` object; malformed input gets
  -32700 / -32600 / -32601 / -32602 and never a Python traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from zerog_cli.devnet.faults import FaultDecision, FaultInjector

logger = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000

INJECTED_FAULT_MESSAGE = "devnet injected fault: service temporarily unavailable"

Method = Callable[[list[Any]], Any]


class RawJson:
    """A method's result already encoded as JSON text, spliced into the answer as is.

    For the storage nodes' segment answers: their base64 text needs no escaping, and
    having ``json.dumps`` scan a third of a megabyte for it again was the largest CPU
    cost of serving a segment."""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


class RpcError(Exception):
    """Raised by a method to answer with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_params(detail: str, name: str | None = None) -> RpcError:
    """-32602 as the storage node words it: ``Invalid params: <name>`` + data."""
    message = f"Invalid params: {name}" if name else "Invalid params"
    return RpcError(INVALID_PARAMS, message, detail)


def param(params: list[Any], index: int, name: str, *, optional: bool = False) -> Any:
    """Positional parameter ``index``; a missing required one is -32602."""
    if index < len(params):
        return params[index]
    if optional:
        return None
    raise invalid_params(f"missing value for required argument {index} ({name})")


def int_param(params: list[Any], index: int, name: str) -> int:
    """A non-negative JSON integer parameter (0G sends numbers, not hex strings)."""
    value = param(params, index, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid_params(f"invalid type: expected a non-negative integer for {name}")
    return value


def hash_param(value: Any, name: str) -> bytes:
    """A ``0x`` + 64 hex digits value (case-insensitive)."""
    if not isinstance(value, str) or len(value) != 66 or value[:2] not in ("0x", "0X"):
        raise invalid_params(f"invalid type: expected a 0x-prefixed 32-byte hex string for {name}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise invalid_params(f"invalid hex string for {name}") from None


class JsonRpcService:
    """A named set of methods served over HTTP POST.

    ``name`` is the fault-injection service (``rpc``, ``indexer``, ``node``);
    ``counter_name`` labels the per-method counters (e.g. ``node/1``).
    """

    def __init__(
        self,
        name: str,
        methods: Mapping[str, Method],
        faults: FaultInjector,
        *,
        counter_name: str | None = None,
        method_not_found: Callable[[str], str] = lambda method: "Method not found",
    ) -> None:
        self.name = name
        self.methods = dict(methods)
        self.faults = faults
        self.counter_name = counter_name or name
        self._method_not_found = method_not_found

    def handle(self, body: bytes, decision: FaultDecision) -> bytes | None:
        """Answer an HTTP body; None when there is nothing to send (notifications)."""
        try:
            message = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _dump(_error_response(None, RpcError(PARSE_ERROR, "Parse error")))
        if isinstance(message, list):
            if not message:
                return _dump(_error_response(None, RpcError(INVALID_REQUEST, "Invalid request")))
            answers = [self._one(item, decision) for item in message]
            kept = [answer for answer in answers if answer is not None]
            return _dump(kept) if kept else None
        answer = self._one(message, decision)
        return _dump(answer) if answer is not None else None

    def _one(self, request: Any, decision: FaultDecision) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return _error_response(None, RpcError(INVALID_REQUEST, "Invalid request"))
        request_id = request.get("id")
        if isinstance(request_id, dict | list):
            return _error_response(None, RpcError(INVALID_REQUEST, "Invalid request"))
        method = request.get("method")
        if not isinstance(method, str):
            return _error_response(request_id, RpcError(INVALID_REQUEST, "Invalid request"))
        version = request.get("jsonrpc", "2.0")
        if version != "2.0":
            return _error_response(request_id, RpcError(INVALID_REQUEST, "Invalid request"))
        self.faults.count_method(self.counter_name, method)
        answer = self._call(request_id, method, request.get("params", []), decision)
        return None if "id" not in request else answer

    def _call(
        self, request_id: Any, method: str, params: Any, decision: FaultDecision
    ) -> dict[str, Any]:
        if decision.fail_rpc:
            return _error_response(request_id, RpcError(SERVER_ERROR, INJECTED_FAULT_MESSAGE))
        handler = self.methods.get(method)
        if handler is None:
            return _error_response(
                request_id, RpcError(METHOD_NOT_FOUND, self._method_not_found(method))
            )
        if params is None:
            params = []
        if not isinstance(params, list):
            return _error_response(
                request_id,
                invalid_params("positional parameters (a JSON array) are required"),
            )
        try:
            result = handler(params)
        except RpcError as error:
            return _error_response(request_id, error)
        except Exception:
            logger.exception("JSON-RPC method %s failed", method)
            return _error_response(request_id, RpcError(INTERNAL_ERROR, "Internal error"))
        return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _error_response(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


def _dump(value: Any) -> bytes:
    """An answer (or a batch of answers) as compact JSON, with `RawJson` results spliced in."""
    if isinstance(value, list):
        return b"[" + b",".join(_dump(item) for item in value) + b"]"
    result = value.get("result") if isinstance(value, dict) else None
    if isinstance(result, RawJson):
        head = {key: item for key, item in value.items() if key != "result"}
        encoded = json.dumps(head, separators=(",", ":")).encode()
        return encoded[:-1] + b',"result":' + result.text + b"}"
    return json.dumps(value, separators=(",", ":")).encode()
