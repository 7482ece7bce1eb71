"""Item 7: `metrics serve` under load and off loopback.

One idle TCP connection used to block every scrape (one request at a time, no
timeout), and ``--host 0.0.0.0`` served per-user cost labels to anyone on the
network. Now connections are served concurrently, each with a timeout; a
non-loopback host needs ``--basic-auth-file`` or an explicit ``--no-auth``
(warned); with a basic auth file, nothing is served without the password.

Every server here binds 127.0.0.1. The non-loopback refusal is tested without
binding anything: socket binding is guarded in-process, and the command must
refuse before it binds.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests

from tests.conftest import Result
from tests.security.conftest import AttackContext
from zerog_cli.errors import UsageError
from zerog_cli.services import metrics_server

NO_PROXY = {"http": "", "https": ""}


class Served:
    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url
        self.port = int(url.split(":")[2].split("/")[0])

    def get(self, **kwargs: Any) -> requests.Response:
        return requests.get(self.url, timeout=30, proxies=NO_PROXY, **kwargs)


@pytest.fixture
def serve(zerog_home: Path) -> Iterator[Callable[..., Served]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> Served:
        process = subprocess.Popen(
            [sys.executable, "-m", "zerog_cli", "metrics", "serve", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "NO_PROXY": "127.0.0.1"},
        )
        started.append(process)
        assert process.stderr is not None
        line = process.stderr.readline().decode()
        match = re.search(r"serving metrics on (http://127\.0\.0\.1:\d+/metrics)", line)
        assert match, line
        return Served(process, match.group(1))

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert process.returncode == 0


def idle_connection(port: int, first_bytes: bytes = b"") -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=60)
    if first_bytes:
        client.sendall(first_bytes)
    return client


def test_idle_and_slow_clients_do_not_block_scrapes(
    serve: Callable[..., Served], attack: AttackContext
) -> None:
    served = serve()
    with attack("metrics serve", "one idle TCP connection, then a scrape"):
        idle = idle_connection(served.port)
        try:
            response = served.get()
            assert response.status_code == 200
            assert "zerog_ledger_up 1.0" in response.text
        finally:
            idle.close()
    with attack("metrics serve", "twenty idle connections and a half-sent request, then scrapes"):
        clients = [idle_connection(served.port) for _ in range(20)]
        clients.append(idle_connection(served.port, b"GET /metrics HTTP/1.1\r\nHost: x"))
        try:
            for _ in range(3):
                assert served.get().status_code == 200
        finally:
            for client in clients:
                client.close()


def test_an_idle_connection_is_dropped(serve: Callable[..., Served], attack: AttackContext) -> None:
    served = serve("--connection-timeout", "1")
    with attack("metrics serve", "an idle connection held open forever"):
        idle = idle_connection(served.port)
        try:
            assert idle.recv(1) == b""  # the server closed it (recv would raise after 60 s)
        finally:
            idle.close()
        assert served.get().status_code == 200


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    bcrypt_hash = bcrypt.hashpw(b"scrape-pw", bcrypt.gensalt(rounds=4)).decode()
    sha256_hash = hashlib.sha256(b"grafana-pw").hexdigest()
    path = tmp_path / "metrics-web.yml"
    path.write_text(
        "# as Prometheus' web.config.file\n"
        "basic_auth_users:\n"
        f"  prometheus: {bcrypt_hash.replace('$2b$', '$2y$')}\n"
        f'  grafana: "sha256:{sha256_hash}"\n'
    )
    return path


def test_basic_auth_guards_every_scrape(
    serve: Callable[..., Served], auth_file: Path, attack: AttackContext
) -> None:
    served = serve("--basic-auth-file", str(auth_file))
    for name, headers in [
        ("no credentials", {}),
        ("a wrong password", basic("prometheus", "guess")),
        ("an unknown user", basic("admin", "scrape-pw")),
        ("another user's password", basic("grafana", "scrape-pw")),
        ("the sha256 hash itself as password", basic("grafana", "sha256:" + "0" * 64)),
        ("a malformed header", {"Authorization": "Basic !!notbase64"}),
        ("a bearer token", {"Authorization": "Bearer scrape-pw"}),
    ]:
        with attack("metrics serve", f"scrape with {name}"):
            response = served.get(headers=headers)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith("Basic")
            assert "zerog_" not in response.text
    assert served.get(headers=basic("prometheus", "scrape-pw")).status_code == 200
    granted = served.get(headers=basic("grafana", "grafana-pw"))
    assert granted.status_code == 200
    assert "zerog_ledger_up 1.0" in granted.text


@pytest.fixture
def no_binding(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail any attempt to bind a socket in this process, and record it."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"the test tried to bind {address!r}")

    monkeypatch.setattr(socket.socket, "bind", refuse)
    return attempts


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "metrics.example"])
def test_a_non_loopback_host_without_auth_is_refused_before_binding(
    zerog: Callable[..., Result], no_binding: list[Any], attack: AttackContext, host: str
) -> None:
    with attack("metrics serve", f"--host {host} without authentication"):
        result = zerog("metrics", "serve", "--host", host)
        assert result.exit_code == 2, result
        assert f"--host {host} serves per-user cost and quota labels" in result.stderr
        assert "--basic-auth-file" in result.stderr
        assert no_binding == []


def test_no_auth_off_loopback_is_served_with_a_warning(
    zerog: Callable[..., Result],
    no_binding: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    auth_file: Path,
) -> None:
    calls: list[dict[str, Any]] = []

    def recorded(context: Any, host: str, port: int, on_ready: Any = None, **kwargs: Any) -> None:
        calls.append({"host": host, **kwargs})

    monkeypatch.setattr(metrics_server, "serve", recorded)
    result = zerog("metrics", "serve", "--host", "0.0.0.0", "--no-auth")
    assert result.exit_code == 0, result
    assert "warning: serving metrics on 0.0.0.0 without authentication" in result.stderr
    assert calls[-1]["users"] is None
    result = zerog("metrics", "serve", "--host", "0.0.0.0", "--basic-auth-file", str(auth_file))
    assert result.exit_code == 0, result
    assert "warning" not in result.stderr
    assert set(calls[-1]["users"]) == {"prometheus", "grafana"}
    both = zerog("metrics", "serve", "--no-auth", "--basic-auth-file", str(auth_file))
    assert both.exit_code == 2
    assert no_binding == []


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("basic_auth_users:\n  alice: plaintext-password\n", "neither bcrypt"),
        ("basic_auth_users:\n", "names no user"),
        ("tls_server_config:\n  cert_file: x\n", "only a basic_auth_users: section"),
        ("basic_auth_users:\n  alice: sha256:abc\n", "neither bcrypt"),
    ],
)
def test_a_bad_basic_auth_file_is_refused(
    zerog: Callable[..., Result],
    no_binding: list[Any],
    tmp_path: Path,
    attack: AttackContext,
    content: str,
    complaint: str,
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(content)
    with attack("metrics serve", f"basic auth file: {complaint}"):
        result = zerog("metrics", "serve", "--basic-auth-file", str(path))
        assert result.exit_code == 2, result
        assert complaint in result.stderr
        assert "plaintext-password" not in result.stderr
        assert no_binding == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("metrics.internal", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert metrics_server.is_loopback(host) is loopback


def test_exposure_policy() -> None:
    assert metrics_server.exposure("127.0.0.1", None, False) == (None, None)
    users, warning = metrics_server.exposure("0.0.0.0", None, True)
    assert users is None and warning and "without authentication" in warning
    with pytest.raises(UsageError):
        metrics_server.exposure("0.0.0.0", None, False)
