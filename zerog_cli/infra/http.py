"""The one HTTP helper every outbound call goes through.

Layers, outermost first, for one logical call:

1. a ``pybreaker.CircuitBreaker`` per endpoint. An open breaker fails fast
   with :class:`~zerog_cli.errors.NetworkUnavailable` and no network call;
2. ``backoff`` retries (exponential, full jitter) on connection errors,
   timeouts, HTTP 429 and 5xx only, honouring ``Retry-After``;
3. one ``requests.Session`` (connection pooling) with connect/read timeouts;
   or, for a call marked ``direct`` (storage nodes, the indexer) to a plain
   ``http://`` URL that no proxy, URL credentials or ``.netrc`` entry applies
   to, a keep-alive ``http.client`` connection of the calling thread: the same
   timeouts, without requests' per-call work (and without importing it);
4. an overall deadline (``Timeouts.deadline``, the ``http_deadline`` setting)
   over the whole call, retries included. A read timeout is per ``recv``, so a
   server that sends one byte a second never trips it; when the deadline
   passes, the call's sockets are shut down and the call fails with
   ``NetworkUnavailable``, never retried. For a stream the deadline runs until
   the caller closes it. One watcher thread serves every deadline of the
   process (`_Watcher`), so a call starts no thread of its own.

A breaker failure is one logical call that ended in ``NetworkUnavailable``
after its retries, not each attempt. Answers the server did give (2xx, other
4xx, the indexer gateway's 600) are returned to the caller and count as
successes for the breaker: the endpoint is up.

Breaker state lives in a ``pybreaker.CircuitBreakerStorage`` made by a factory
``breaker_storage(name)``, where ``name`` is the endpoint string. The default
keeps it in memory; the ledger provides one shared across processes. What the
breaker calls on it (pybreaker 1.4), and so what such a storage must implement:

- ``state`` (get/set): ``"closed"``, ``"open"`` or ``"half-open"``; read on
  every call, so another process's change is seen at once;
- ``counter`` (get), ``increment_counter()``, ``reset_counter()``: consecutive
  failures; the increment must be atomic across processes;
- ``success_counter`` (get), ``increment_success_counter()``,
  ``reset_success_counter()``: successes while half-open;
- ``opened_at`` (get/set): timezone-aware UTC ``datetime`` of the last trip,
  or None; keep sub-second precision (reset timeouts in tests are short).

Retry policy per call (:class:`RetryPolicy`): the default retries anything
retryable and is right for idempotent reads (JSON-RPC reads, GETs) and for
``eth_sendRawTransaction`` (resending the same signed bytes names the same
transaction hash, so a duplicate is "already known", never a second
payment). :data:`UNSENT_ONLY` retries only failures where the request can
not have reached the server (connection refused, connect timeout, 429): use
it for a POST that must not run twice, such as paid inference.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from zerog_cli.errors import ConfigError, NetworkUnavailable, ProtocolError
from zerog_cli.infra import redaction

if TYPE_CHECKING:
    import pybreaker
    import requests

log = logging.getLogger("zerog.http")

RETRYABLE_STATUSES: frozenset[int] = frozenset({429, *range(500, 600)})

BreakerStorageFactory = Callable[[str], "pybreaker.CircuitBreakerStorage"]


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a TCP connection and between bytes of the answer, and
    for the whole call (``deadline``: every attempt, every byte)."""

    connect: float = 5.0
    read: float = 30.0
    deadline: float = 120.0


class _Deadline:
    """One logical call's time limit: when it passes, the call's sockets are shut down.

    A socket blocked in ``recv`` wakes up on ``shutdown`` (not on ``close``),
    so the request fails at once; the caller sees ``expired`` and says why.
    Sockets are registered by the connection classes of `_watched_adapter`,
    for the deadline the current thread runs under (`_Deadline.running`); the
    first one puts the deadline in the shared `_Watcher`.
    """

    _current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._watched = False

    @classmethod
    def current(cls) -> _Deadline | None:
        found: _Deadline | None = getattr(cls._current, "deadline", None)
        return found

    @contextlib.contextmanager
    def running(self) -> Iterator[_Deadline]:
        """Make this the deadline of the sockets the current thread opens or reuses."""
        previous = _Deadline.current()
        _Deadline._current.deadline = self
        try:
            yield self
        finally:
            _Deadline._current.deadline = previous

    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self.ends

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if not self.expired:
                self._sockets.append(sock)
                if not self._watched:
                    self._watched = True
                    _WATCHER.add(self)
                return
        _shut(sock)

    def expire(self) -> None:
        """Called by the watcher once ``ends`` has passed; a cancelled deadline stays quiet."""
        with self._lock:
            if not self._watched:
                return
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def cancel(self) -> None:
        with self._lock:
            self._watched = False
            self._sockets = []

    def error(self, endpoint: str) -> NetworkUnavailable:
        return NetworkUnavailable(
            f"{endpoint}: no complete answer within the {self.seconds:g} s deadline",
            hint="a slow or stalling server; raise http_deadline if the network is just slow",
        )


class _Watcher:
    """One daemon thread that expires the process's deadlines, earliest first.

    A thread per call (``threading.Timer``) cost a thread start and GIL
    hand-offs on every request of a parallel download. A cancelled deadline
    is not taken out of the queue: it is dropped, without effect, when its
    time comes, so the queue holds at most the calls of one deadline span.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._queue: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: _Deadline) -> None:
        with self._changed:
            heapq.heappush(self._queue, (deadline.ends, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="zerog-http-deadlines", daemon=True
                )
                self._thread.start()
            elif self._queue[0][2] is deadline:
                self._changed.notify()

    def _run(self) -> None:
        while True:
            due: list[_Deadline] = []
            with self._changed:
                while not due:
                    now = time.monotonic()
                    while self._queue and self._queue[0][0] <= now:
                        due.append(heapq.heappop(self._queue)[2])
                    if not due:
                        self._changed.wait(self._queue[0][0] - now if self._queue else None)
            # Outside the queue's lock: expire() takes the deadline's lock, and
            # watch() holds that one while it calls add().
            for deadline in due:
                deadline.expire()


_WATCHER = _Watcher()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watched_adapter(pool_size: int) -> Any:
    """A requests adapter whose connections put their socket under the thread's deadline."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class WatchedHTTPConnection(HTTPConnection):
        def getresponse(self) -> Any:
            deadline = _Deadline.current()
            if deadline is not None:
                deadline.watch(self.sock)
            return super().getresponse()

    class WatchedHTTPSConnection(HTTPSConnection):
        def getresponse(self) -> Any:
            deadline = _Deadline.current()
            if deadline is not None:
                deadline.watch(self.sock)
            return super().getresponse()

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    pools = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}

    class WatchedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(*args, **kwargs)
            manager.pool_classes_by_scheme = pools
            return manager

    return WatchedAdapter(pool_connections=pool_size, pool_maxsize=pool_size)


def _environment_once_session() -> requests.Session:
    """A requests session that consults the environment once per URL, not per request.

    With ``trust_env`` requests looks for a ``.netrc`` file and scans every
    environment variable for proxies on each request: about a third of the
    HTTP overhead of a parallel download. This session turns ``trust_env``
    off and does the same lookups with requests' own helpers, remembered per
    URL for the session's life: ``.netrc`` credentials, the proxies (NO_PROXY
    honoured per host), and the CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE).
    """
    import requests
    from requests.utils import get_environ_proxies, get_netrc_auth

    class EnvironmentOnceSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.trust_env = False
            self.ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get(
                "CURL_CA_BUNDLE"
            )
            self.netrc_auth = _PerUrl(get_netrc_auth)
            self.environ_proxies = _PerUrl(get_environ_proxies)

        def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
            if not request.auth and not self.auth:
                request.auth = self.netrc_auth(request.url)
            return super().prepare_request(request)

        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> Any:
            if proxies is not None:
                for scheme, proxy in self.environ_proxies(url).items():
                    proxies.setdefault(scheme, proxy)
            if verify is True or verify is None:
                verify = self.ca_bundle or verify
            return super().merge_environment_settings(url, proxies, stream, verify, cert)

    return EnvironmentOnceSession()


class _PerUrl:
    """``lookup(url)`` remembered per URL string (at most ``limit`` URLs at a time)."""

    def __init__(self, lookup: Callable[[Any], Any], limit: int = 256) -> None:
        self._lookup = lookup
        self._limit = limit
        self._found: dict[Any, Any] = {}

    def __call__(self, url: Any) -> Any:
        try:
            return self._found[url]
        except KeyError:
            pass
        found = self._lookup(url)
        if len(self._found) >= self._limit:
            self._found.clear()
        self._found[url] = found
        return found


@dataclass(frozen=True)
class RetryPolicy:
    """How one call is retried.

    Waits are full jitter: uniform in ``[0, min(max_delay, base_delay * 2**n)]``
    before retry ``n + 1``. A ``Retry-After`` header replaces that wait, capped
    at ``retry_after_cap``. ``max_time`` bounds the whole retry loop.
    """

    max_tries: int = 4
    max_time: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 8.0
    retry_after_cap: float = 30.0
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES
    retry_after_send: bool = True
    """Retry failures that may have happened after the server got the request
    (read timeouts, dropped connections). False for non-idempotent calls."""


IDEMPOTENT = RetryPolicy()
UNSENT_ONLY = RetryPolicy(retry_statuses=frozenset({429}), retry_after_send=False)
NO_RETRY = RetryPolicy(max_tries=1)


@dataclass(frozen=True)
class BreakerSettings:
    fail_max: int = 5
    reset_timeout: float = 60.0


class HttpObserver(Protocol):
    """Receives events for metrics; every method must be cheap and not raise."""

    def request_done(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        """One attempt finished; ``status`` is None when no HTTP answer came."""

    def retry(self, endpoint: str, reason: str) -> None:
        """An attempt failed with a retryable error and will be retried."""

    def breaker_state_change(self, endpoint: str, old: str | None, new: str) -> None:
        """The endpoint's breaker moved (``closed``, ``open``, ``half-open``)."""

    def breaker_rejected(self, endpoint: str) -> None:
        """A call failed fast because the breaker is open."""


@dataclass
class HttpResponse:
    """A complete answer with a non-retryable status (the body is read)."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    endpoint: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class StreamingResponse:
    """An answer whose body is read incrementally (server-sent events).

    Transport errors while reading become ``NetworkUnavailable``; they are
    never retried, since part of the answer was already consumed.
    """

    def __init__(
        self, response: requests.Response, endpoint: str, deadline: _Deadline | None = None
    ) -> None:
        self._response = response
        self.endpoint = endpoint
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self._deadline = deadline

    def _broke(self, exc: BaseException) -> NetworkUnavailable:
        if self._deadline is not None and self._deadline.expired:
            return self._deadline.error(self.endpoint)
        return NetworkUnavailable(f"{self.endpoint}: stream broke: {_describe(exc)}")

    def _check_deadline(self) -> None:
        """A deadline that cut the stream may look like its end: say so instead."""
        if self._deadline is not None and self._deadline.expired:
            raise self._deadline.error(self.endpoint)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def iter_lines(self, max_line_bytes: int = 1 << 20) -> Iterator[str]:
        """Yield decoded lines without their line ending."""
        import requests

        buffer = b""
        try:
            for piece in self._response.iter_content(chunk_size=8192):
                buffer += piece
                while True:
                    cut = buffer.find(b"\n")
                    if cut < 0:
                        break
                    line, buffer = buffer[:cut], buffer[cut + 1 :]
                    yield line.rstrip(b"\r").decode("utf-8", errors="replace")
                if len(buffer) > max_line_bytes:
                    raise ProtocolError(
                        f"{self.endpoint} sent a line longer than {max_line_bytes} bytes"
                    )
        except requests.RequestException as exc:
            raise self._broke(exc) from None
        self._check_deadline()
        if buffer:
            yield buffer.rstrip(b"\r").decode("utf-8", errors="replace")

    def iter_bytes(self, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """Yield the raw body in pieces of at most ``chunk_size`` bytes."""
        import requests

        try:
            yield from self._response.iter_content(chunk_size=chunk_size)
        except requests.RequestException as exc:
            raise self._broke(exc) from None
        self._check_deadline()

    def read(self, max_bytes: int = 1 << 20) -> bytes:
        """The rest of the body, at most ``max_bytes`` (for error answers)."""
        import requests

        try:
            body = _read_limited(self._response, max_bytes, self.endpoint)
        except requests.RequestException as exc:
            raise self._broke(exc) from None
        self._check_deadline()
        return body

    def close(self) -> None:
        self._response.close()
        if self._deadline is not None:
            self._deadline.cancel()

    def __enter__(self) -> StreamingResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class BreakerStatus:
    endpoint: str
    state: str
    failures: int
    opened_at: datetime | None
    half_opens_at: datetime | None


def endpoint_of(url: str, path_prefix: str = "") -> str:
    """``scheme://host:port`` of ``url`` plus an optional path prefix.

    User info, the path and the query are dropped by default because RPC URLs
    often carry API keys there; the endpoint name appears in messages, logs
    and the ledger.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an http(s) URL: {redaction.redact_url(url)}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"bad port in URL: {redaction.redact_url(url)}") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    prefix = ""
    if path_prefix:
        prefix = "/" + path_prefix.strip("/")
    return f"{parts.scheme}://{host}:{port}{prefix}"


def endpoint_with_path(url: str) -> str:
    """``scheme://host:port/path`` of ``url``: for services told apart by path
    (storage nodes and the indexer behind one gateway, or the devnet's single
    port), whose URLs carry no secrets."""
    return endpoint_of(url, urlsplit(url).path)


class _Retryable(Exception):
    """One attempt failed in a way the policy retries."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class HttpClient:
    """Pooled, retried, breaker-guarded HTTP. Safe to share between threads.

    ``breaker_storage`` makes the state store of one endpoint's breaker (see
    the module docstring). ``observer`` receives metrics events.
    """

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerSettings | None = None,
        breaker_storage: BreakerStorageFactory | None = None,
        observer: HttpObserver | None = None,
        user_agent: str = "zerog-cli",
        pool_size: int = 32,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or IDEMPOTENT
        self.breaker_settings = breaker or BreakerSettings()
        self._storage_factory = breaker_storage
        self.observer = observer
        self._user_agent = user_agent
        self._pool_size = pool_size
        self._session: requests.Session | None = None
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._lock = threading.Lock()
        self._direct_routes = _DirectRoutes()
        self._direct = _DirectConnections()

    # -- public API -----------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        endpoint: str | None = None,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_bytes: int = 64 << 20,
        direct: bool = False,
    ) -> HttpResponse:
        """Send one logical request and return the read answer.

        ``direct`` sends it over this thread's keep-alive ``http.client``
        connection when the URL is plain HTTP and no proxy, URL credentials or
        ``.netrc`` entry applies to it (`_DirectRoutes`): the same breaker,
        retries, timeouts and deadline, a fraction of requests' work per call.
        For hot paths such as segment downloads; anything else goes through
        requests.

        Raises ``NetworkUnavailable`` (breaker open, retries exhausted, or a
        non-retried transport failure) and ``ProtocolError`` (answer larger
        than ``max_bytes``).
        """
        name = endpoint or endpoint_of(url)
        limits = timeout or self.timeouts
        deadline = _Deadline(limits.deadline)

        def direct_attempt() -> HttpResponse:
            return self._send_direct(
                method, url, name, json, data, params, headers, limits, max_bytes
            )

        def attempt() -> HttpResponse:
            response = self._send(method, url, name, json, data, params, headers, timeout)
            import requests

            try:
                body = _read_limited(response, max_bytes, name)
            except requests.RequestException as exc:
                if deadline.expired:
                    raise deadline.error(name) from None
                raise _AttemptFailed(_describe(exc), unsent=False) from None
            finally:
                response.close()
            if deadline.expired:
                raise deadline.error(name)
            return HttpResponse(response.status_code, response.headers, body, name)

        send = direct_attempt if direct and self._direct_routes.applies(url) else attempt
        try:
            with deadline.running():
                return self._guarded(name, method, retry or self.retry, send)
        finally:
            deadline.cancel()

    def stream(
        self,
        method: str,
        url: str,
        *,
        endpoint: str | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> StreamingResponse:
        """Send a request and return once the status line and headers arrive.

        Retries and the breaker cover the call up to the headers. Use as a
        context manager so the connection goes back to the pool.
        """
        name = endpoint or endpoint_of(url)
        deadline = _Deadline((timeout or self.timeouts).deadline)

        def attempt() -> StreamingResponse:
            response = self._send(method, url, name, json, data, None, headers, timeout)
            return StreamingResponse(response, name, deadline)

        try:
            with deadline.running():
                return self._guarded(name, method, retry or self.retry, attempt)
        except BaseException:
            deadline.cancel()
            raise

    def breaker(self, endpoint: str) -> pybreaker.CircuitBreaker:
        """The breaker of ``endpoint``, created on first use."""
        with self._lock:
            found = self._breakers.get(endpoint)
            if found is None:
                found = self._make_breaker(endpoint)
                self._breakers[endpoint] = found
            return found

    def breaker_status(self, endpoint: str) -> BreakerStatus:
        """What the breaker's storage says now (for `zerog status`)."""
        storage = self.breaker(endpoint)._state_storage
        opened_at = storage.opened_at
        half_opens_at = None
        state = storage.state
        if state == "open" and opened_at is not None:
            half_opens_at = opened_at + timedelta(seconds=self.breaker_settings.reset_timeout)
        return BreakerStatus(endpoint, state, storage.counter, opened_at, half_opens_at)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        self._direct.close()

    # -- internals ------------------------------------------------------

    def _session_for_use(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                session = _environment_once_session()
                session.headers["User-Agent"] = self._user_agent
                adapter = _watched_adapter(self._pool_size)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._session = session
            return self._session

    def _make_breaker(self, endpoint: str) -> pybreaker.CircuitBreaker:
        import pybreaker

        if self._storage_factory is not None:
            storage = self._storage_factory(endpoint)
        else:
            storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        return pybreaker.CircuitBreaker(
            fail_max=self.breaker_settings.fail_max,
            reset_timeout=self.breaker_settings.reset_timeout,
            exclude=[lambda exc: not isinstance(exc, NetworkUnavailable)],
            listeners=[_breaker_listener(endpoint, self)],
            state_storage=storage,
            name=endpoint,
            throw_new_error_on_trip=False,
        )

    def _guarded(
        self, endpoint: str, method: str, policy: RetryPolicy, attempt: Callable[[], Any]
    ) -> Any:
        import pybreaker

        breaker = self.breaker(endpoint)
        try:
            # calling() holds pybreaker's lock only while deciding, not during
            # the request, so parallel calls to one endpoint stay parallel.
            with breaker.calling():
                return self._with_retries(endpoint, policy, attempt)
        except pybreaker.CircuitBreakerError:
            if self.observer is not None:
                self.observer.breaker_rejected(endpoint)
            raise NetworkUnavailable(self._open_message(endpoint, breaker)) from None

    def _open_message(self, endpoint: str, breaker: pybreaker.CircuitBreaker) -> str:
        opened_at = breaker._state_storage.opened_at
        if opened_at is None:
            return f"circuit breaker open for {endpoint}"
        half_open = opened_at + timedelta(seconds=breaker.reset_timeout)
        wait = max(0.0, (half_open - datetime.now(UTC)).total_seconds())
        return (
            f"circuit breaker open for {endpoint} after repeated failures; "
            f"it half-opens at {half_open.strftime('%Y-%m-%dT%H:%M:%SZ')} (in {wait:.0f} s)"
        )

    def _with_retries(self, endpoint: str, policy: RetryPolicy, attempt: Callable[[], Any]) -> Any:
        import backoff

        gave_up: dict[str, Any] = {}

        def on_backoff(details: Any) -> None:
            reason = str(details["exception"])
            log.info(
                "%s: attempt %d failed (%s); retrying in %.2f s",
                endpoint,
                details["tries"],
                reason,
                details["wait"],
            )
            if self.observer is not None:
                self.observer.retry(endpoint, reason)

        def on_giveup(details: Any) -> None:
            gave_up.update(details)

        def giveup(exc: Exception) -> bool:
            if isinstance(exc, _AttemptFailed):
                return not (exc.unsent or policy.retry_after_send)
            if isinstance(exc, _StatusFailed):
                return exc.status not in policy.retry_statuses
            return False

        retried = backoff.on_exception(
            _wait_gen,
            _Retryable,
            max_tries=max(1, policy.max_tries),
            max_time=policy.max_time,
            jitter=None,
            giveup=giveup,
            on_backoff=on_backoff,
            on_giveup=on_giveup,
            logger=None,
            policy=policy,
        )(attempt)
        try:
            return retried()
        except _Retryable as exc:
            tries = gave_up.get("tries", 1)
            noun = "attempt" if tries == 1 else "attempts"
            raise NetworkUnavailable(
                f"{endpoint} unavailable after {tries} {noun}: {exc.reason}"
            ) from None

    def _send(
        self,
        method: str,
        url: str,
        endpoint: str,
        json: Any,
        data: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        timeout: Timeouts | None,
    ) -> requests.Response:
        """One attempt: a response with a non-retryable status, or an exception."""
        import requests

        limits = timeout or self.timeouts
        deadline = _Deadline.current()
        if deadline is not None and deadline.passed():
            raise deadline.error(endpoint)
        started = time.monotonic()
        try:
            response = self._session_for_use().request(
                method,
                url,
                json=json,
                data=data,
                params=params,
                headers=dict(headers) if headers else None,
                timeout=(limits.connect, limits.read),
                stream=True,
                allow_redirects=False,
            )
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
            raise ConfigError(f"bad URL for {endpoint}: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise self._failed(
                endpoint, method, started, deadline, _describe(exc), _never_reached_server(exc)
            ) from None
        self._report(endpoint, method, response.status_code, started)
        if response.status_code in RETRYABLE_STATUSES:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            snippet = _status_text(response)
            response.close()
            raise _StatusFailed(
                f"HTTP {response.status_code}{snippet}",
                status=response.status_code,
                retry_after=retry_after,
            )
        return response

    def _report(self, endpoint: str, method: str, status: int | None, started: float) -> None:
        if self.observer is not None:
            self.observer.request_done(endpoint, method, status, time.monotonic() - started)

    def _failed(
        self,
        endpoint: str,
        method: str,
        started: float,
        deadline: _Deadline | None,
        reason: str,
        unsent: bool,
    ) -> Exception:
        """What an attempt that got no answer raises, reported first: the deadline's
        error when the deadline cut it, else a failed attempt (resent only if ``unsent``)."""
        self._report(endpoint, method, None, started)
        if deadline is not None and deadline.expired:
            return deadline.error(endpoint)
        return _AttemptFailed(reason, unsent=unsent)

    def _send_direct(
        self,
        method: str,
        url: str,
        endpoint: str,
        json: Any,
        data: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        limits: Timeouts,
        max_bytes: int,
    ) -> HttpResponse:
        """One attempt over this thread's keep-alive connection to the URL's host.

        Failures are told apart as `_send` does: a connection that could not be
        made is ``unsent`` (safe to resend), one that broke after the request
        went out is not; a retryable status raises ``_StatusFailed``.
        """
        import http.client
        import json as json_module
        from urllib.parse import urlencode

        deadline = _Deadline.current()
        if deadline is not None and deadline.passed():
            raise deadline.error(endpoint)
        parts = urlsplit(url)
        target = parts.path or "/"
        query = "&".join(part for part in (parts.query, urlencode(params or {})) if part)
        if query:
            target = f"{target}?{query}"
        sent_headers = {"User-Agent": self._user_agent, "Accept-Encoding": "identity"}
        body = data
        if json is not None:
            body = json_module.dumps(json, allow_nan=False).encode()
            sent_headers["Content-Type"] = "application/json"
        sent_headers.update(headers or {})
        started = time.monotonic()
        try:
            connection = self._direct.get(parts.hostname or "", parts.port or 80, limits)
        except OSError as error:
            kind = "connect timeout" if isinstance(error, TimeoutError) else "connection failed"
            raise self._failed(
                endpoint, method, started, deadline, _os_reason(kind, error), unsent=True
            ) from None
        try:
            if deadline is not None:
                deadline.watch(connection.sock)
            connection.request(method, target, body, sent_headers)
            response = connection.getresponse()
            status = response.status
            if status in RETRYABLE_STATUSES:
                retry_after = _parse_retry_after(response.getheader("Retry-After"))
                reason = (response.reason or "").strip()
                response.read(1 << 16)
                self._direct.drop(connection)
                self._report(endpoint, method, status, started)
                raise _StatusFailed(
                    f"HTTP {status}{' ' + reason if reason else ''}",
                    status=status,
                    retry_after=retry_after,
                )
            content = _read_direct(response, max_bytes, endpoint)
        except (OSError, http.client.HTTPException) as error:
            self._direct.drop(connection)
            if isinstance(error, TimeoutError):
                reason = _os_reason("read timeout", error)
            elif isinstance(error, http.client.IncompleteRead):
                reason = "connection broken mid-answer"
            else:
                reason = _os_reason("connection failed", error)
            raise self._failed(endpoint, method, started, deadline, reason, unsent=False) from None
        except ProtocolError:
            self._direct.drop(connection)
            raise
        if response.will_close:
            self._direct.drop(connection)
        self._report(endpoint, method, status, started)
        if deadline is not None and deadline.expired:
            raise deadline.error(endpoint)
        return HttpResponse(status, response.headers, content, endpoint)


class _DirectRoutes:
    """Which URLs `HttpClient.request(direct=True)` may send without requests.

    Plain ``http://`` URLs with no user info, no proxy from the environment
    (``http_proxy``/``all_proxy``, unless ``no_proxy`` bypasses the host) and no
    ``.netrc`` entry for the host: exactly the requests requests would send
    straight to the host with nothing added. Everything else keeps the requests
    path, which applies proxies and credentials. Remembered per URL.
    """

    def __init__(self) -> None:
        self._known = _PerUrl(_direct_route_applies)

    def applies(self, url: str) -> bool:
        return bool(self._known(url))


def _direct_route_applies(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return False
    if _proxy_may_apply(parts.hostname, parts.port or 80):
        return False
    return not _netrc_names(parts.hostname)


def _proxy_may_apply(host: str, port: int) -> bool:
    """Whether the environment names an HTTP proxy that may be used for ``host``.

    Read conservatively (urllib.request, which would do it exactly, costs more to
    import than the rest of a download's HTTP): a proxy is assumed unless none is
    set or ``no_proxy`` plainly bypasses the host (``*``, the host, ``host:port`` or
    a domain it is in), cases where requests bypasses it too. When in doubt, the
    call goes through requests, which applies its own rules.
    """
    names = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
    if not any(os.environ.get(name) for name in names):
        return False
    bypass = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    host = host.lower()
    for entry in bypass.replace(" ", "").lower().split(","):
        domain = entry.lstrip(".")
        if entry == "*" or entry == f"{host}:{port}":
            return False
        if domain and (host == domain or host.endswith("." + domain)):
            return False
    return True


def _netrc_names(host: str) -> bool:
    """Whether a ``.netrc`` file (``$NETRC``, ``~/.netrc``, ``~/_netrc``) may hold
    credentials for ``host`` (an unreadable or malformed file counts as yes)."""
    import netrc

    chosen = os.environ.get("NETRC")
    candidates = [chosen] if chosen else ["~/.netrc", "~/_netrc"]
    for candidate in candidates:
        path = os.path.expanduser(candidate)
        if not os.path.exists(path):
            continue
        try:
            return netrc.netrc(path).authenticators(host) is not None
        except (OSError, netrc.NetrcParseError):
            return True
    return False


class _DirectConnections:
    """Keep-alive ``http.client`` connections, one per host and port per thread.

    A connection the server closed while idle (readable before a request: its
    end of file) is replaced before use, as urllib3 does, so a request never
    goes out on a dead socket.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def _table(self) -> dict[tuple[str, int], Any]:
        table: dict[tuple[str, int], Any] | None = getattr(self._local, "table", None)
        if table is None:
            table = self._local.table = {}
        return table

    def get(self, host: str, port: int, limits: Timeouts) -> Any:
        """An open connection to ``host:port`` with the read timeout set; OSError when none
        can be made within the connect timeout."""
        import http.client
        import select

        table = self._table()
        connection = table.get((host, port))
        if connection is not None and connection.sock is not None:
            readable, _, _ = select.select([connection.sock], [], [], 0)
            if readable:
                self.drop(connection)
                connection = None
        if connection is None or connection.sock is None:
            connection = http.client.HTTPConnection(host, port, timeout=limits.connect)
            connection.connect()
            table[(host, port)] = connection
        connection.sock.settimeout(limits.read)
        return connection

    def drop(self, connection: Any) -> None:
        table = self._table()
        for key, known in list(table.items()):
            if known is connection:
                del table[key]
        connection.close()

    def close(self) -> None:
        """Close the calling thread's connections (other threads' close when they end)."""
        table = self._table()
        for connection in table.values():
            connection.close()
        table.clear()


def _read_direct(response: Any, max_bytes: int, endpoint: str) -> bytes:
    declared = response.length
    if declared is not None and declared > max_bytes:
        raise ProtocolError(f"{endpoint} answered {declared} bytes, more than {max_bytes} allowed")
    if declared is not None:
        return bytes(response.read())
    content = response.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise ProtocolError(f"{endpoint} answered more than {max_bytes} bytes")
    return bytes(content)


def _os_reason(kind: str, error: BaseException) -> str:
    """``kind (reason)`` for a socket-level failure, as `_describe` words requests' ones."""
    detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    detail = detail.split(": ", 1)[-1][:120]
    return f"{kind} ({detail})" if detail else kind


class _AttemptFailed(_Retryable):
    """A transport failure; ``unsent`` when the server cannot have seen it."""

    def __init__(self, reason: str, *, unsent: bool) -> None:
        super().__init__(reason)
        self.unsent = unsent


class _StatusFailed(_Retryable):
    def __init__(self, reason: str, *, status: int, retry_after: float | None) -> None:
        super().__init__(reason, retry_after)
        self.status = status


def _wait_gen(policy: RetryPolicy) -> Any:
    """backoff wait generator: full-jitter exponential, or Retry-After.

    backoff sends each caught exception in, so the server's Retry-After can
    replace the computed wait (jitter is applied here, not by backoff, so a
    server-given wait is not shortened).
    """
    import backoff

    attempt = 0
    exc = yield
    while True:
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            delay = max(0.0, min(exc.retry_after, policy.retry_after_cap))
        else:
            ceiling = min(policy.max_delay, policy.base_delay * (2**attempt))
            delay = backoff.full_jitter(ceiling)
        attempt += 1
        exc = yield delay


def _breaker_listener(endpoint: str, client: HttpClient) -> pybreaker.CircuitBreakerListener:
    """A listener that logs state changes and forwards them to the observer."""
    import pybreaker

    class Listener(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            old = old_state.name if old_state is not None else None
            new = new_state.name
            level = logging.WARNING if new == "open" else logging.INFO
            log.log(level, "circuit breaker for %s: %s -> %s", endpoint, old, new)
            if client.observer is not None:
                client.observer.breaker_state_change(endpoint, old, new)

    return Listener()


def _read_limited(response: requests.Response, max_bytes: int, endpoint: str) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ProtocolError(f"{endpoint} answered {declared} bytes, more than {max_bytes} allowed")
    pieces: list[bytes] = []
    total = 0
    for piece in response.iter_content(chunk_size=1 << 16):
        total += len(piece)
        if total > max_bytes:
            raise ProtocolError(f"{endpoint} answered more than {max_bytes} bytes")
        pieces.append(piece)
    return b"".join(pieces)


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _status_text(response: requests.Response) -> str:
    reason = (response.reason or "").strip()
    return f" {reason}" if reason else ""


def _describe(exc: BaseException) -> str:
    """A one-line description of a requests failure, without the URL."""
    import requests

    kinds: list[tuple[type[BaseException], str]] = [
        (requests.exceptions.ConnectTimeout, "connect timeout"),
        (requests.exceptions.ReadTimeout, "read timeout"),
        (requests.exceptions.SSLError, "TLS error"),
        (requests.exceptions.ProxyError, "proxy error"),
        (requests.exceptions.ChunkedEncodingError, "connection broken mid-answer"),
        (requests.exceptions.ConnectionError, "connection failed"),
    ]
    for kind, text in kinds:
        if isinstance(exc, kind):
            detail = _root_cause(exc)
            return f"{text} ({detail})" if detail else text
    return type(exc).__name__


def _root_cause(exc: BaseException) -> str:
    """The innermost OS-level reason, e.g. 'Connection refused'."""
    seen: BaseException | None = exc
    text = ""
    for _ in range(8):
        if seen is None:
            break
        reason = getattr(seen, "reason", None)
        if isinstance(reason, BaseException):
            seen = reason
            continue
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        args = getattr(seen, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        if nested is None:
            break
        seen = nested
    if seen is not None and seen is not exc:
        text = str(seen).split(": ", 1)[-1]
    return text[:120]


def _never_reached_server(exc: BaseException) -> bool:
    """True when the request cannot have been delivered (safe to resend)."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, NewConnectionError | ConnectTimeoutError | ConnectionRefusedError):
            return True
        reason = getattr(seen, "reason", None)
        if isinstance(reason, BaseException):
            seen = reason
            continue
        seen = next((a for a in getattr(seen, "args", ()) if isinstance(a, BaseException)), None)
    return False
