"""HTTP plumbing: request/response types, the routed handler, the server.

A route is a path prefix, a fault-injection service name and a handler
``handler(request: Request) -> Response``. The handler sees the path after
the prefix in ``request.path`` ("" or "/..."). A `Response` body is bytes, or
an iterable of byte chunks for streaming (sent with chunked transfer
encoding, e.g. server-sent events, unless ``length`` is given).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from zerog_cli.devnet.constants import MAX_REQUEST_BYTES
from zerog_cli.devnet.faults import NO_FAULT, FaultDecision, FaultInjector

logger = logging.getLogger(__name__)


@dataclass
class Request:
    """One HTTP request as a handler sees it."""

    method: str
    path: str
    full_path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    faults: FaultDecision = NO_FAULT

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.body)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    """An HTTP answer. ``body`` may be an iterable of chunks (streamed)."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        data = json.dumps(value, separators=(",", ":")).encode()
        return cls(status=status, body=data, headers={"Content-Type": "application/json"})


Handler = Callable[[Request], Response]


@dataclass
class Route:
    prefix: str
    service: str | None
    handler: Handler
    node: int | None = None

    def matches(self, path: str) -> bool:
        if self.prefix == "/":
            return path == "/"
        return path == self.prefix or path.startswith(self.prefix + "/")


class Router:
    """Longest-prefix routing over registered routes."""

    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults
        self._routes: list[Route] = []

    def add(
        self, prefix: str, handler: Handler, *, service: str | None, node: int | None = None
    ) -> None:
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else "/"
        if any(route.prefix == prefix for route in self._routes):
            raise ValueError(f"a devnet route is already registered at {prefix}")
        self._routes.append(Route(prefix, service, handler, node))
        self._routes.sort(key=lambda route: len(route.prefix), reverse=True)

    def find(self, path: str) -> Route | None:
        for route in self._routes:
            if route.matches(path):
                return route
        return None


def _read_chunked(stream: Any, limit: int) -> bytes:
    body = bytearray()
    while True:
        size_line = stream.readline(1024)
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        if len(body) + size > limit:
            raise OverflowError
        body += stream.read(size)
        stream.readline(1024)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle's algorithm and
    # delayed ACKs every answer would wait about 40 ms.
    disable_nagle_algorithm = True
    server_version = "zerog-devnet"
    sys_version = ""
    timeout = 300
    router: Router

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        path = split.path or "/"
        route = self.router.find(path)
        try:
            body = self._read_body()
        except OverflowError:
            self._send(Response.json({"error": "request body too large"}, status=413))
            self.close_connection = True
            return
        except (ValueError, OSError):
            self._send(Response.json({"error": "malformed request body"}, status=400))
            self.close_connection = True
            return
        if route is None:
            self._send(Response.json({"error": f"no devnet service at {path}"}, status=404))
            return
        decision = NO_FAULT
        faults = self.router.faults
        if route.service is not None:
            faults.count_request(route.service if route.node is None else f"node/{route.node}")
            decision = faults.decide(route.service, route.node)
        if decision.latency_s:
            time.sleep(decision.latency_s)
        if decision.fail_http or (
            decision.fail_rpc and route.service in ("provider", "router", None)
        ):
            self._send(
                Response.json({"error": "service unavailable (devnet fault injection)"}, 503)
            )
            return
        sub_path = path[len(route.prefix) :] if route.prefix != "/" else ""
        request = Request(
            method=self.command,
            path=sub_path,
            full_path=path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,  # type: ignore[arg-type]
            body=body,
            faults=decision,
        )
        try:
            response = route.handler(request)
        except Exception:
            logger.exception("devnet handler for %s failed", path)
            response = Response.json({"error": "internal devnet error"}, status=500)
        self._send(response, drop=decision.drop)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return _read_chunked(self.rfile, MAX_REQUEST_BYTES)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_REQUEST_BYTES:
            raise OverflowError
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response, *, drop: bool = False) -> None:
        body = response.body
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if isinstance(body, bytes | bytearray):
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                if drop:
                    self._drop(bytes(body[: len(body) // 2]))
                else:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            return
        chunked = response.length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(response.length))
        self.end_headers()
        try:
            self._stream(body, chunked=chunked, drop=drop)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def _stream(self, body: Iterable[bytes], *, chunked: bool, drop: bool) -> None:
        for index, chunk in enumerate(body):
            if drop and index > 0:
                self._drop(b"")
                return
            if not chunk:
                continue
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            self.wfile.flush()
        if drop:
            self._drop(b"")
        elif chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _drop(self, partial: bytes) -> None:
        """Send part of the answer, then cut the connection (fault injection)."""
        if partial:
            self.wfile.write(partial)
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class DevnetHTTPServer(ThreadingHTTPServer):
    """One thread per connection; a deep listen queue for SDK bursts (the TS SDK
    sends every segment upload at once)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


def make_server(host: str, port: int, router: Router) -> DevnetHTTPServer:
    handler = type("DevnetRequestHandler", (_Handler,), {"router": router})
    return DevnetHTTPServer((host, port), handler)
