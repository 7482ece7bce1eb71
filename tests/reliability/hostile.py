"""A hostile node: a 127.0.0.1 proxy in front of a devnet that lies in chosen answers.

Every request is forwarded to the real devnet, so a command gets as far as it
would against an honest network; the answers to one chosen call (a JSON-RPC
method of the EVM, the indexer or a storage node, or a provider HTTP route)
are then replaced by something hostile: a value of the wrong type, huge or
negative numbers, truncated or non-JSON bodies, proofs with too few or too
many siblings, deep nesting, error objects, odd HTTP statuses or a stall
longer than the client's read timeout.

URLs in answers (the indexer's node list, the provider's URL stored on chain
as an ABI string) are rewritten to point back at the proxy, so every later
call passes through it too. The proxy port is chosen with as many digits as
the devnet's, so the ABI-encoded URL keeps its length.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

MUTATIONS = (
    "wrong-type",
    "huge-numbers",
    "negative-numbers",
    "truncated",
    "not-json",
    "empty",
    "error-object",
    "wrong-id",
    "proof-length",
    "deep-nesting",
    "replace-leaf",
    "drop-key",
    "http-status",
    "stall",
)
NO_PROXY = {"http": "", "https": ""}


@dataclass
class Attack:
    """Which calls to spoil and how; ``values`` feeds the random choices (from hypothesis)."""

    target: str = ""
    mutation: str = ""
    every: bool = True
    seed: int = 0
    stall_seconds: float = 0.0
    payload: Any = None
    """A hypothesis-drawn JSON value used by wrong-type / replace-leaf / error-object."""


@dataclass
class Hostile:
    devnet_url: str
    url: str = ""
    attack: Attack = field(default_factory=Attack)
    seen: Counter[str] = field(default_factory=Counter)
    spoiled: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    rewrite: Callable[[str, Any], Any] | None = None
    """Applied to every JSON answer, ``rewrite(call key, answer) -> answer``, whatever the
    attack: a node that lies the same way every time (the security suite's size liar)."""

    def arm(self, attack: Attack) -> None:
        with self.lock:
            self.attack = attack
            self.seen.clear()

    def disarm(self) -> None:
        self.arm(Attack())

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def call_keys(path: str, method: str, body: bytes) -> list[str]:
    """``service:method`` for each JSON-RPC call in ``body``, else ``service:VERB /route``."""
    parts = path.strip("/").split("/")
    service = parts[0] if parts and parts[0] in ("indexer", "node", "provider") else "rpc"
    if service == "node" and len(parts) > 1:
        service = f"node/{parts[1]}"
    try:
        decoded = json.loads(body) if body else None
    except ValueError:
        decoded = None
    calls = decoded if isinstance(decoded, list) else [decoded]
    names = [c["method"] for c in calls if isinstance(c, dict) and isinstance(c.get("method"), str)]
    if names:
        return [f"{service}:{name}" for name in names]
    route = "/".join(p for p in parts[1:] if not p.startswith("0x"))[:60]
    return [f"{service}:{method} /{route}"]


def _nest(depth: int) -> str:
    return "[" * depth + "]" * depth


def _walk_replace(value: Any, fn: Any) -> Any:
    if isinstance(value, dict):
        return {k: _walk_replace(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk_replace(v, fn) for v in value]
    return fn(value)


def _huge(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return 2**300 + value
    if isinstance(value, str) and value.startswith("0x"):
        return "0x" + "f" * 90
    return value


def _negative(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return -1 - value
    if isinstance(value, str) and value.startswith("0x"):
        return "-" + value
    return value


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list) and value:
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    return [path]


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _set(value[head], rest, new)}
    copy = list(value)
    copy[head] = _set(copy[head], rest, new)
    return copy


def _drop(value: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != path[0]}
        return [v for i, v in enumerate(value) if i != path[0]]
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _drop(value[head], rest)}
    copy = list(value)
    copy[head] = _drop(copy[head], rest)
    return copy


def _proofs(value: Any, rng: random.Random) -> Any:
    """Every ``lemma``/``path`` list one element shorter or longer; segment data cut."""

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, item in node.items():
                if key in ("lemma", "path") and isinstance(item, list):
                    if item and rng.random() < 0.5:
                        item = item[:-1]
                    else:
                        item = [*item, item[-1] if item else "0x" + "00" * 32]
                elif key == "data" and isinstance(item, str) and rng.random() < 0.3:
                    item = item[: len(item) // 2]
                out[key] = fix(item)
            return out
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    return fix(value)


def spoil(answer: Any, attack: Attack, rng: random.Random) -> tuple[int, bytes]:
    """The hostile (status, body) replacing the honest JSON ``answer``."""
    mutation = attack.mutation
    rpc = isinstance(answer, dict) and ("result" in answer or "error" in answer)
    body = answer.get("result") if rpc else answer

    def wrap(result: Any) -> bytes:
        if rpc:
            return json.dumps({**answer, "result": result}).encode()
        return json.dumps(result).encode()

    honest = json.dumps(answer).encode()
    if mutation == "wrong-type":
        return 200, wrap(attack.payload)
    if mutation == "huge-numbers":
        return 200, wrap(_walk_replace(body, _huge))
    if mutation == "negative-numbers":
        return 200, wrap(_walk_replace(body, _negative))
    if mutation == "truncated":
        return 200, honest[: rng.randrange(max(1, len(honest)))]
    if mutation == "not-json":
        return 200, rng.choice(
            [b"<html><body>502 Bad Gateway</body></html>", b"\xff\xfe\x00", b"null"]
        )
    if mutation == "empty":
        return 200, b""
    if mutation == "error-object":
        error = {"code": rng.choice([-32000, -32603, 3, 2**70]), "message": attack.payload}
        if rng.random() < 0.5:
            error = attack.payload
        out = {"jsonrpc": "2.0", "id": answer.get("id") if rpc else 1, "error": error}
        return 200, json.dumps(out).encode()
    if mutation == "wrong-id":
        if rpc:
            return 200, json.dumps({**answer, "id": rng.choice([None, "x", 10**9, [1]])}).encode()
        return 200, json.dumps([answer]).encode()
    if mutation == "proof-length":
        return 200, wrap(_proofs(body, rng))
    if mutation == "deep-nesting":
        return 200, (
            b'{"jsonrpc":"2.0","id":1,"result":' + _nest(100_000).encode() + b"}"
            if rpc
            else _nest(100_000).encode()
        )
    if mutation == "replace-leaf":
        leaves = _leaves(body)
        return 200, wrap(_set(body, rng.choice(leaves), attack.payload))
    if mutation == "drop-key":
        leaves = [leaf for leaf in _leaves(body) if leaf]
        return 200, wrap(_drop(body, rng.choice(leaves)) if leaves else None)
    if mutation == "http-status":
        return rng.choice([400, 401, 404, 409, 418, 500, 502, 503, 600]), honest[:64]
    return 200, honest


def start_hostile(devnet_url: str) -> Hostile:
    """A proxy for ``devnet_url`` on 127.0.0.1 with a port of the same number of digits."""
    devnet_port = devnet_url.rsplit(":", 1)[1]
    hostile = Hostile(devnet_url)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._relay()

        def do_POST(self) -> None:
            self._relay()

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            keys = call_keys(self.path, self.command, body)
            with hostile.lock:
                attack = hostile.attack
                for key in keys:
                    hostile.seen[key] += 1
                hit = bool(attack.target) and attack.target in keys
                first = hostile.seen[attack.target] == 1
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
            upstream = requests.request(
                self.command,
                hostile.devnet_url + self.path,
                data=body,
                headers=headers,
                timeout=60,
                proxies=NO_PROXY,
            )
            content = upstream.content.replace(
                hostile.devnet_url.encode(), hostile.url.encode()
            ).replace(
                hostile.devnet_url.encode().hex().encode(), hostile.url.encode().hex().encode()
            )
            if hostile.rewrite is not None:
                with contextlib.suppress(ValueError):
                    content = json.dumps(hostile.rewrite(keys[0], json.loads(content))).encode()
            status = upstream.status_code
            content_type = upstream.headers.get("Content-Type", "application/json")
            if hit and (attack.every or first):
                rng = random.Random(attack.seed + hostile.seen[attack.target])
                with hostile.lock:
                    hostile.spoiled[f"{attack.mutation}"] += 1
                if attack.mutation == "stall":
                    time.sleep(attack.stall_seconds)
                else:
                    try:
                        honest = json.loads(content)
                    except ValueError:
                        honest = {"raw": content.decode("utf-8", "replace")}
                    status, content = spoil(honest, attack, rng)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(content)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            """Clients hang up on the proxy all the time (timeouts, stalls): stay quiet,
            since in-process tests capture stderr and look for tracebacks there."""

    for _ in range(200):
        server = Server(("127.0.0.1", 0), Handler)
        if len(str(server.server_address[1])) == len(devnet_port):
            break
        server.server_close()
    hostile.server = server
    hostile.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hostile
