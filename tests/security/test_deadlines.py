"""Item 11: a server cannot hold a command by dripping bytes, nor flood it with an answer.

A read timeout is per ``recv``: a server on 127.0.0.1 that sends one byte
every half second never trips a 2 s read timeout, and held `zerog status` for
as long as it dripped. Every call now has an overall deadline
(``http_deadline``); the server must see its connection cut before it has
sent its whole answer. An inference answer past ``infer_max_answer``, streamed
or not, is cut with a clear error, and the request is still logged and charged.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess
from tests.security.conftest import AttackContext

DRIP_PAUSE = 0.5
CHAIN_ID_ANSWER = b'{"jsonrpc":"2.0","id":1,"result":"0x7a69","padding":"' + b"x" * 40 + b'"}'


@dataclass
class Drip:
    """A 127.0.0.1 server that answers every request one byte at a time."""

    headers_too: bool
    port: int = 0
    connections: int = 0
    cut_short: int = 0
    """Connections the client closed before the whole answer was sent."""
    stop: threading.Event = field(default_factory=threading.Event)

    def answer(self) -> bytes:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(CHAIN_ID_ANSWER)}\r\n\r\n"
        ).encode()
        return head + CHAIN_ID_ANSWER

    def serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self.drip, args=(conn,), daemon=True).start()

    def drip(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                answer = self.answer()
                split = 0 if self.headers_too else answer.index(b"\r\n\r\n") + 4
                conn.sendall(answer[:split])
                for index in range(split, len(answer)):
                    if self.stop.is_set():
                        return
                    conn.sendall(answer[index : index + 1])
                    time.sleep(DRIP_PAUSE)
            except OSError:
                self.cut_short += 1


@pytest.fixture
def drips() -> Iterator[tuple[Drip, Drip]]:
    """Two drip servers: one sends its headers at once, one drips them too."""
    servers = [Drip(headers_too=False), Drip(headers_too=True)]
    listeners = []
    threads = []
    for server in servers:
        listener = socket.create_server(("127.0.0.1", 0))
        server.port = int(listener.getsockname()[1])
        listeners.append(listener)
        thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop.set()
        for thread in threads:
            thread.join()
        for listener in listeners:
            listener.close()


def test_a_dripping_server_cannot_hold_status_past_the_deadline(
    zerog: Callable[..., Result], drips: tuple[Drip, Drip], attack: AttackContext
) -> None:
    body_drip, header_drip = drips
    for key, value in (
        ("rpc_url", f"http://127.0.0.1:{body_drip.port}"),
        ("indexer_url", f"http://127.0.0.1:{header_drip.port}"),
        ("http_read_timeout", "2s"),
        ("http_deadline", "3s"),
    ):
        assert zerog("config", "set", key, value).exit_code == 0
    with attack("deadlines", "an RPC server dripping one byte at a time into `status`"):
        result = zerog("status", "--json")
        assert result.exit_code == 6, result
        endpoints = {entry["endpoint"]: entry for entry in result.json["endpoints"]}
        for name in ("evm", "indexer"):
            assert endpoints[name]["reachable"] is False
            assert "within the 3 s deadline" in endpoints[name]["error"]
        deadline = time.monotonic() + 10
        while body_drip.cut_short + header_drip.cut_short < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (body_drip.cut_short, header_drip.cut_short) == (1, 1)
        assert (body_drip.connections, header_drip.connections) == (1, 1)


@pytest.mark.parametrize("value", ["0", "2h", "soon"])
def test_http_deadline_is_validated(
    zerog: Callable[..., Result], attack: AttackContext, value: str
) -> None:
    with attack("deadlines", f"http_deadline set to {value!r}"):
        result = zerog("config", "set", "http_deadline", value)
        assert result.exit_code == 2, result
        shown = zerog("config", "show", "--json").json["settings"]["http_deadline"]
        assert shown == {"value": 120, "source": "default"}


@pytest.mark.devnet
@pytest.mark.parametrize("mode", ["--stream", "--no-stream"])
def test_an_answer_past_the_cap_is_cut_logged_and_charged(
    zerog: Callable[..., Result],
    net: DevnetProcess,
    zerog_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    attack: AttackContext,
    mode: str,
) -> None:
    monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
    assert zerog("config", "set", "infer_max_answer", "1KB").exit_code == 0
    prompt = "flood " * 400
    with attack("deadlines", f"a provider sending an answer past infer_max_answer ({mode})"):
        result = zerog("infer", prompt, mode, "--max-tokens", "1000", "--as", "tenant")
        assert result.exit_code == 6, result
        assert "passed the 1000 byte cap and was cut" in result.stderr
        assert len(result.stdout) < 1000
        with sqlite3.connect(zerog_home / "ledger.db") as conn:
            logged = conn.execute("SELECT status, error FROM inference_log").fetchall()
            reserved = conn.execute("SELECT COUNT(*) FROM quota_reservations").fetchone()
            charged = conn.execute(
                "SELECT tokens_used FROM user_quotas WHERE user = 'tenant'"
            ).fetchone()
        assert logged == [("error", logged[0][1])]
        assert "1000 byte cap" in logged[0][1]
        assert reserved == (0,)
        assert charged[0] > 1000
