"""The resilient HTTP helper against small local servers on 127.0.0.1."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pybreaker
import pytest

from zerog_cli.errors import ConfigError, NetworkUnavailable, ProtocolError
from zerog_cli.infra.http import (
    NO_RETRY,
    UNSENT_ONLY,
    BreakerSettings,
    HttpClient,
    RetryPolicy,
    Timeouts,
    _proxy_may_apply,
    endpoint_of,
)

FAST = RetryPolicy(max_tries=4, max_time=10, base_delay=0.01, max_delay=0.02)


class Script:
    """What the server answers: a queue of (status, headers, body), then 200."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, dict[str, str], bytes]] = []
        self.hits = 0
        self.delay = 0.0
        self.seen: list[tuple[str, str | None]] = []
        """Request target (absolute through a proxy) and Authorization of each request."""
        self.clients: list[tuple[str, int]] = []
        """The (address, port) each request came from: one port per connection."""
        self.close_after_answer = False
        """Close the connection after the next answer, without a ``Connection: close``."""
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.hold: Callable[[], object] | None = None
        """Called before each answer (after ``next``): a test's rendezvous point."""

    def next(self) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.hits += 1
            if self.queue:
                return self.queue.pop(0)
        return 200, {"Content-Type": "application/json"}, b'{"ok": true}'


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a storage node answers

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            script.seen.append((self.path, self.headers.get("Authorization")))
            script.clients.append(self.client_address)
            # Read before answering: once the answer is out, the test may set it for the next.
            close_after = script.close_after_answer
            script.close_after_answer = False
            status, headers, body = script.next()
            if script.hold is not None:
                script.hold()
            if script.delay:
                time.sleep(script.delay)
            if status == 0:  # drop the connection without an answer
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if close_after:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.close_connection = True
                script.closed.set()

        do_GET = _answer
        do_POST = _answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


class Recorder:
    def __init__(self) -> None:
        self.done: list[tuple[str, str, int | None]] = []
        self.retries: list[str] = []
        self.changes: list[tuple[str | None, str]] = []
        self.rejected = 0

    def request_done(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        self.done.append((endpoint, method, status))

    def retry(self, endpoint: str, reason: str) -> None:
        self.retries.append(reason)

    def breaker_state_change(self, endpoint: str, old: str | None, new: str) -> None:
        self.changes.append((old, new))

    def breaker_rejected(self, endpoint: str) -> None:
        self.rejected += 1


@pytest.mark.parametrize("direct", [False, True], ids=["requests", "direct"])
def test_fails_then_succeeds(server: tuple[str, Script], direct: bool) -> None:
    url, script = server
    script.queue = [(503, {}, b"busy"), (502, {}, b""), (500, {}, b"")]
    observer = Recorder()
    client = HttpClient(retry=FAST, observer=observer)
    response = client.request("GET", url + "/x", direct=direct)
    assert response.status == 200 and response.content == b'{"ok": true}'
    assert script.hits == 4
    assert len(observer.retries) == 3
    assert [d[2] for d in observer.done] == [503, 502, 500, 200]


@pytest.mark.parametrize("direct", [False, True], ids=["requests", "direct"])
def test_400_is_not_retried_and_returned(server: tuple[str, Script], direct: bool) -> None:
    url, script = server
    script.queue = [(400, {}, b"bad request")]
    client = HttpClient(retry=FAST)
    response = client.request("POST", url, json={"a": 1}, direct=direct)
    assert response.status == 400 and response.text == "bad request"
    assert script.hits == 1


@pytest.mark.parametrize("direct", [False, True], ids=["requests", "direct"])
def test_retries_exhausted_names_endpoint_and_error(
    server: tuple[str, Script], direct: bool
) -> None:
    url, script = server
    script.queue = [(503, {}, b"")] * 4
    client = HttpClient(retry=FAST)
    with pytest.raises(NetworkUnavailable) as info:
        client.request("GET", url, direct=direct)
    message = str(info.value)
    assert endpoint_of(url) in message and "4 attempts" in message and "503" in message
    assert script.hits == 4


@pytest.mark.parametrize("direct", [False, True], ids=["requests", "direct"])
def test_connection_refused_is_retried_then_network_unavailable(
    direct: bool, refused_port: int
) -> None:
    client = HttpClient(retry=FAST)
    with pytest.raises(NetworkUnavailable) as info:
        client.request("GET", f"http://127.0.0.1:{refused_port}/", direct=direct)
    assert "refused" in str(info.value).lower()


@pytest.mark.parametrize("direct", [False, True], ids=["requests", "direct"])
def test_retry_after_seconds_is_honoured(server: tuple[str, Script], direct: bool) -> None:
    url, script = server
    script.queue = [(429, {"Retry-After": "1"}, b"")]
    client = HttpClient(retry=FAST)
    started = time.monotonic()
    assert client.request("GET", url, direct=direct).status == 200
    assert time.monotonic() - started >= 0.95


def test_retry_after_http_date_is_capped(server: tuple[str, Script]) -> None:
    url, script = server
    far = "Wed, 21 Oct 2099 07:28:00 GMT"
    script.queue = [(503, {"Retry-After": far}, b"")]
    client = HttpClient(retry=RetryPolicy(base_delay=0.01, retry_after_cap=0.3))
    started = time.monotonic()
    assert client.request("GET", url).status == 200
    assert 0.25 <= time.monotonic() - started < 20  # the 0.3 s cap, not the default 30 s


@pytest.mark.parametrize("direct", [False, True], ids=["requests", "direct"])
def test_unsent_only_does_not_retry_a_500_or_a_dropped_answer(
    server: tuple[str, Script], direct: bool
) -> None:
    url, script = server
    script.queue = [(500, {}, b"")]
    client = HttpClient(retry=UNSENT_ONLY)
    with pytest.raises(NetworkUnavailable):
        client.request("POST", url, json={}, direct=direct)
    assert script.hits == 1
    script.queue = [(0, {}, b"")]
    with pytest.raises(NetworkUnavailable):
        client.request("POST", url, json={}, direct=direct)
    assert script.hits == 2


@pytest.mark.parametrize("direct", [False, True], ids=["requests", "direct"])
def test_read_timeout_is_retried_for_idempotent_calls(
    server: tuple[str, Script], direct: bool
) -> None:
    url, script = server
    script.delay = 2.0  # 20 read timeouts: a client that runs late still times out
    client = HttpClient(retry=FAST, timeouts=Timeouts(connect=1, read=0.1))
    with pytest.raises(NetworkUnavailable) as info:
        client.request("GET", url, direct=direct)
    assert "read timeout" in str(info.value)
    assert script.hits == 4


@pytest.mark.parametrize("direct", [False, True], ids=["requests", "direct"])
def test_response_size_limit(server: tuple[str, Script], direct: bool) -> None:
    url, script = server
    script.queue = [(200, {}, b"x" * 5000)]
    client = HttpClient(retry=FAST)
    with pytest.raises(ProtocolError):
        client.request("GET", url, max_bytes=1000, direct=direct)


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        HttpClient().request("GET", "ftp://127.0.0.1/")


def test_endpoint_drops_credentials_path_and_query() -> None:
    assert endpoint_of("https://user:pw@RPC.example:8545/v3/KEY?x=1") == "https://rpc.example:8545"
    assert endpoint_of("http://127.0.0.1/", "/v1/proxy/") == "http://127.0.0.1:80/v1/proxy"


BREAKER_RESET = 2.0
"""Long enough that the call right after the breaker opens still finds it open on a
loaded machine; the test sleeps it out once."""


@pytest.mark.parametrize("direct", [False, True], ids=["requests", "direct"])
def test_breaker_opens_fails_fast_and_half_opens(server: tuple[str, Script], direct: bool) -> None:
    url, script = server
    observer = Recorder()
    client = HttpClient(
        retry=NO_RETRY,
        breaker=BreakerSettings(fail_max=3, reset_timeout=BREAKER_RESET),
        observer=observer,
    )
    script.queue = [(503, {}, b"")] * 3
    for _ in range(3):
        with pytest.raises(NetworkUnavailable):
            client.request("GET", url, direct=direct)
    assert script.hits == 3
    assert observer.changes == [("closed", "open")]
    with pytest.raises(NetworkUnavailable) as info:
        client.request("GET", url, direct=direct)
    assert script.hits == 3, "an open breaker must not reach the server"
    assert "circuit breaker open" in str(info.value) and "half-opens at" in str(info.value)
    assert endpoint_of(url) in str(info.value)
    assert observer.rejected == 1
    time.sleep(BREAKER_RESET + 0.1)
    assert client.request("GET", url, direct=direct).status == 200
    assert observer.changes[-2:] == [("open", "half-open"), ("half-open", "closed")]
    assert client.breaker_status(endpoint_of(url)).state == "closed"


def test_one_logical_call_is_one_breaker_failure(server: tuple[str, Script]) -> None:
    url, script = server
    client = HttpClient(retry=FAST, breaker=BreakerSettings(fail_max=2))
    script.queue = [(503, {}, b"")] * 4
    with pytest.raises(NetworkUnavailable):
        client.request("GET", url)
    assert client.breaker_status(endpoint_of(url)).failures == 1
    assert client.breaker_status(endpoint_of(url)).state == "closed"


def test_4xx_does_not_count_against_the_breaker(server: tuple[str, Script]) -> None:
    url, script = server
    client = HttpClient(retry=NO_RETRY, breaker=BreakerSettings(fail_max=1))
    script.queue = [(404, {}, b"")] * 3
    for _ in range(3):
        assert client.request("GET", url).status == 404
    assert client.breaker_status(endpoint_of(url)).state == "closed"


def test_parallel_calls_to_one_endpoint_are_not_serialised(server: tuple[str, Script]) -> None:
    """Six calls from six threads are all at the server at once: the server holds each
    answer until the sixth request has arrived (a client that serialised calls would
    leave it waiting out the 60 s liveness bound, and its calls would time out)."""
    url, script = server
    calls = 6
    all_arrived = threading.Barrier(calls)
    script.hold = lambda: all_arrived.wait(60)
    client = HttpClient(retry=NO_RETRY, timeouts=Timeouts(connect=5, read=90))
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(client.request("GET", url).status))
        for _ in range(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * calls
    assert not all_arrived.broken


ENVIRONMENT_NAMES = (
    *(f"{scheme}_proxy" for scheme in ("http", "https", "all", "no")),
    *(f"{scheme}_PROXY" for scheme in ("HTTP", "HTTPS", "ALL", "NO")),
    "NETRC",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


def only_environment(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Clear what requests reads from the environment, then set ``values``."""
    for name in ENVIRONMENT_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_environment_proxy_is_used_unless_no_proxy_names_the_host(
    server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment is read once per session, with the same outcome as on every request."""
    url, script = server
    target = f"{url}/status"
    only_environment(monkeypatch, http_proxy=url)
    through_proxy = HttpClient(retry=NO_RETRY)
    assert through_proxy.request("GET", target).ok
    assert through_proxy.request("GET", target).ok
    only_environment(monkeypatch, http_proxy=url, NO_PROXY="127.0.0.1")
    assert HttpClient(retry=NO_RETRY).request("GET", target).ok
    assert [path for path, _ in script.seen] == [target, target, "/status"]


def test_netrc_credentials_are_sent(
    server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, script = server
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    only_environment(monkeypatch, NETRC=str(netrc), NO_PROXY="127.0.0.1")
    client = HttpClient(retry=NO_RETRY)
    assert client.request("GET", url).ok
    assert client.request("GET", url).ok
    basic = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert [authorization for _, authorization in script.seen] == [basic, basic]


def test_direct_calls_still_go_through_a_proxy_the_environment_names(
    server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``direct`` skips requests only where requests would add nothing: a proxy still applies."""
    url, script = server
    target = f"{url}/status"
    only_environment(monkeypatch, http_proxy=url)
    assert HttpClient(retry=NO_RETRY).request("GET", target, direct=True).ok
    only_environment(monkeypatch, http_proxy=url, NO_PROXY="127.0.0.1")
    assert HttpClient(retry=NO_RETRY).request("GET", target, direct=True).ok
    assert [path for path, _ in script.seen] == [target, "/status"]


@pytest.mark.parametrize(
    ("environment", "proxied"),
    [
        ({}, False),
        ({"http_proxy": "http://127.0.0.1:9"}, True),
        ({"ALL_PROXY": "http://127.0.0.1:9"}, True),
        ({"HTTPS_PROXY": "http://127.0.0.1:9"}, False),
        ({"http_proxy": "http://127.0.0.1:9", "no_proxy": "*"}, False),
        ({"http_proxy": "http://127.0.0.1:9", "NO_PROXY": "localhost, 127.0.0.1"}, False),
        ({"http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1:8080"}, False),
        ({"http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1:8081"}, True),
        ({"http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.10"}, True),
        ({"http_proxy": "http://127.0.0.1:9", "no_proxy": "10.0.0.0/8"}, True),
    ],
)
def test_direct_calls_are_made_only_where_no_proxy_can_apply(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], proxied: bool
) -> None:
    """What the environment says for http://127.0.0.1:8080: when in doubt (a CIDR range,
    another port, another host), a proxy is assumed and requests decides."""
    only_environment(monkeypatch, **environment)
    assert _proxy_may_apply("127.0.0.1", 8080) is proxied


def test_direct_calls_still_send_netrc_credentials(
    server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, script = server
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    only_environment(monkeypatch, NETRC=str(netrc), NO_PROXY="127.0.0.1")
    assert HttpClient(retry=NO_RETRY).request("GET", url, direct=True).ok
    basic = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert [authorization for _, authorization in script.seen] == [basic]


def test_direct_calls_keep_one_connection_alive_and_replace_a_closed_one(
    server: tuple[str, Script],
) -> None:
    """Consecutive calls of a thread share one connection; after the server closed it
    while idle, the next call opens a new one instead of failing on the dead socket."""
    url, script = server
    client = HttpClient(retry=NO_RETRY)
    for _ in range(5):
        assert client.request("POST", url, json={"n": 1}, direct=True).ok
    assert len(set(script.clients)) == 1
    script.queue = [(200, {"Connection": "close"}, b"{}")]
    assert client.request("GET", url, direct=True).ok
    assert client.request("GET", url, direct=True).ok
    assert len(set(script.clients)) == 2
    script.close_after_answer = True
    assert client.request("GET", url, direct=True).ok
    assert script.closed.wait(60)
    assert client.request("GET", url, direct=True).ok
    assert len(set(script.clients)) == 3
    assert script.hits == 9


def test_direct_call_is_cut_at_its_deadline(server: tuple[str, Script]) -> None:
    url, script = server
    script.delay = 10  # the answer comes long after the deadline, however late the client runs
    client = HttpClient(retry=NO_RETRY)
    short = Timeouts(connect=5, read=30, deadline=0.5)
    with pytest.raises(NetworkUnavailable, match=r"within the 0\.5 s deadline"):
        client.request("GET", url, timeout=short, direct=True)


def test_calls_start_no_thread_of_their_own(
    server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call has a deadline; one shared watcher serves them all."""
    url, _ = server
    client = HttpClient(retry=NO_RETRY)
    assert client.request("GET", url).ok
    caller = threading.current_thread()
    started: list[str] = []
    start = threading.Thread.start

    def counted_start(thread: threading.Thread) -> None:
        if threading.current_thread() is caller:
            started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counted_start)
    for _ in range(20):
        assert client.request("GET", url).ok
    with client.stream("GET", url) as response:
        assert response.read() == b'{"ok": true}'
    assert started == []


def test_a_short_deadline_is_kept_while_a_longer_one_runs(server: tuple[str, Script]) -> None:
    url, script = server
    client = HttpClient(retry=NO_RETRY)
    with client.stream("GET", url, timeout=Timeouts(deadline=60)) as held:
        script.delay = 10  # long after the short deadline, however late the client runs
        short = Timeouts(connect=5, read=30, deadline=0.5)
        with pytest.raises(NetworkUnavailable, match=r"within the 0\.5 s deadline"):
            client.request("GET", url, timeout=short)
        assert held.read() == b'{"ok": true}'


def test_streaming_lines(server: tuple[str, Script]) -> None:
    url, script = server
    script.queue = [(200, {"Content-Type": "text/event-stream"}, b"data: 1\r\n\ndata: 2\n")]
    client = HttpClient(retry=UNSENT_ONLY)
    with client.stream("POST", url, json={}) as response:
        assert response.ok
        assert list(response.iter_lines()) == ["data: 1", "", "data: 2"]


class FileStorage(pybreaker.CircuitBreakerStorage):
    """A breaker store in a JSON file, locked with flock: shared by processes."""

    def __init__(self, path: Path, name: str) -> None:
        super().__init__(name)
        self.path = path

    def _update(self, change: object = None) -> dict[str, object]:
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read()
            data: dict[str, object] = json.loads(text) if text else {}
            data.setdefault("state", "closed")
            data.setdefault("counter", 0)
            data.setdefault("success", 0)
            data.setdefault("opened_at", None)
            if callable(change):
                change(data)
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(data))
                handle.flush()
                os.fsync(handle.fileno())
            return data

    @property
    def state(self) -> str:
        return str(self._update()["state"])

    @state.setter
    def state(self, state: str) -> None:
        self._update(lambda d: d.__setitem__("state", state))

    def increment_counter(self) -> None:
        self._update(lambda d: d.__setitem__("counter", d["counter"] + 1))

    def reset_counter(self) -> None:
        self._update(lambda d: d.__setitem__("counter", 0))

    def increment_success_counter(self) -> None:
        self._update(lambda d: d.__setitem__("success", d["success"] + 1))

    def reset_success_counter(self) -> None:
        self._update(lambda d: d.__setitem__("success", 0))

    @property
    def counter(self) -> int:
        return int(self._update()["counter"])  # type: ignore[call-overload]

    @property
    def success_counter(self) -> int:
        return int(self._update()["success"])  # type: ignore[call-overload]

    @property
    def opened_at(self) -> datetime | None:
        value = self._update()["opened_at"]
        return None if value is None else datetime.fromtimestamp(float(value), UTC)  # type: ignore[arg-type]

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        self._update(lambda d: d.__setitem__("opened_at", when.timestamp()))


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.test_http import FileStorage
from zerog_cli.errors import NetworkUnavailable
from zerog_cli.infra.http import HttpClient, NO_RETRY
client = HttpClient(retry=NO_RETRY,
                    breaker_storage=lambda name: FileStorage(Path({path!r}), name))
try:
    client.request("GET", {url!r})
except NetworkUnavailable as exc:
    print("refused:", exc)
else:
    print("passed")
"""


def test_second_process_sees_the_breaker_open(server: tuple[str, Script], tmp_path: Path) -> None:
    url, script = server
    path = tmp_path / "breakers.json"
    client = HttpClient(
        retry=NO_RETRY,
        breaker=BreakerSettings(fail_max=2, reset_timeout=60),
        breaker_storage=lambda name: FileStorage(path, name),
    )
    script.queue = [(500, {}, b"")] * 2
    for _ in range(2):
        with pytest.raises(NetworkUnavailable):
            client.request("GET", url)
    assert script.hits == 2
    root = str(Path(__file__).resolve().parent.parent)
    code = CHILD.format(root=root, path=str(path), url=url)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith("refused: circuit breaker open"), result.stdout + result.stderr
    assert script.hits == 2, "the second process must not reach the server"
