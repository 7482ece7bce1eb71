"""Fault injection and request counters for the devnet.

Settings (all changeable at run time through ``POST /admin/faults``):

- ``fail_rate``: fraction of requests answered with a failure instead of
  being served: HTTP 503, or a JSON-RPC ``-32000`` error on JSON-RPC endpoints
  (``fail_mode``: ``"mixed"`` picks either at random, ``"http"``, ``"rpc"``);
- ``latency_ms``: delay added before every answer;
- ``corrupt_rate``: fraction of segment downloads (``zgs_downloadSegment*``)
  whose data has a byte flipped; proofs are left intact;
- ``drop_rate``: fraction of requests whose connection is closed halfway
  through the answer;
- ``corrupt_nodes``: node indexes that corrupt **every** segment download;
- ``fail_nodes``: node indexes that answer every request with HTTP 503 (down);
- ``min_gas_price``: ``eth_sendRawTransaction`` refuses a transaction whose
  gas tip cap (legacy: ``gasPrice``) is below it, with geth's
  "transaction underpriced" (0: off);
- ``underpriced_next``: the next that many transactions are refused with
  geth's "replacement transaction underpriced" (what a node answers while an
  earlier version of the same nonce sits in its pool); counts down;
- ``hold_next``: the next that many valid transactions are held pending
  (never mined) until a version with the same nonce paying 10 % more
  replaces them: a transaction stuck in the pool; counts down;
- ``lag_nodes`` and ``lag_ms``: those nodes see each Flow transaction only
  ``lag_ms`` after it was mined (a node behind the chain);
- ``logs_max_range`` and ``logs_max_results``: the limits public RPC nodes put
  on ``eth_getLogs`` (0: none). A query spanning more blocks is refused with
  code -32005 "block range too large: ..."; one matching more logs with
  -32005 "query returned more than N results" (Infura's documented answer);
- ``stall_nodes`` and ``stall_ms``: those nodes hold every segment download
  (``zgs_downloadSegment*``) ``stall_ms`` before answering (a node that stalls);
- ``targets``: services the rates apply to, any of ``rpc``, ``indexer``,
  ``node``, ``provider``, ``router`` (default all);
- ``seed``: seed of the random generator, for reproducible runs.

Faults never apply to ``/admin``. Counters: every request is counted per
service (``requests``), every JSON-RPC call per ``service:method``
(``methods``) and every injected fault per kind (``faults``: ``http_error``,
``rpc_error``, ``drop``, ``node_down``, ``corrupt``, ``underpriced``,
``held``); ``GET /admin/stats`` reads them, ``POST /admin/stats/reset``
clears them.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

SERVICES = ("rpc", "indexer", "node", "provider", "router")
FAIL_MODES = ("mixed", "http", "rpc")


class FaultConfigError(ValueError):
    """A fault setting that is out of range or unknown."""


@dataclass
class FaultSettings:
    fail_rate: float = 0.0
    latency_ms: int = 0
    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    fail_mode: str = "mixed"
    corrupt_nodes: list[int] = field(default_factory=list)
    fail_nodes: list[int] = field(default_factory=list)
    min_gas_price: int = 0
    underpriced_next: int = 0
    hold_next: int = 0
    lag_nodes: list[int] = field(default_factory=list)
    lag_ms: int = 0
    logs_max_range: int = 0
    logs_max_results: int = 0
    stall_nodes: list[int] = field(default_factory=list)
    stall_ms: int = 0
    targets: list[str] = field(default_factory=lambda: list(SERVICES))
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> FaultSettings:
        """A copy with ``changes`` applied and checked. Raises `FaultConfigError`."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise FaultConfigError(f"unknown fault setting(s): {', '.join(unknown)}")
        merged = {**self.to_json(), **changes}
        try:
            settings = FaultSettings(
                fail_rate=_rate(merged["fail_rate"], "fail_rate"),
                latency_ms=_non_negative_int(merged["latency_ms"], "latency_ms"),
                corrupt_rate=_rate(merged["corrupt_rate"], "corrupt_rate"),
                drop_rate=_rate(merged["drop_rate"], "drop_rate"),
                fail_mode=str(merged["fail_mode"]),
                corrupt_nodes=[
                    _non_negative_int(i, "corrupt_nodes") for i in merged["corrupt_nodes"]
                ],
                fail_nodes=[_non_negative_int(i, "fail_nodes") for i in merged["fail_nodes"]],
                min_gas_price=_non_negative_int(merged["min_gas_price"], "min_gas_price"),
                underpriced_next=_non_negative_int(merged["underpriced_next"], "underpriced_next"),
                hold_next=_non_negative_int(merged["hold_next"], "hold_next"),
                lag_nodes=[_non_negative_int(i, "lag_nodes") for i in merged["lag_nodes"]],
                lag_ms=_non_negative_int(merged["lag_ms"], "lag_ms"),
                logs_max_range=_non_negative_int(merged["logs_max_range"], "logs_max_range"),
                logs_max_results=_non_negative_int(merged["logs_max_results"], "logs_max_results"),
                stall_nodes=[_non_negative_int(i, "stall_nodes") for i in merged["stall_nodes"]],
                stall_ms=_non_negative_int(merged["stall_ms"], "stall_ms"),
                targets=[str(t) for t in merged["targets"]],
                seed=None if merged["seed"] is None else int(merged["seed"]),
            )
        except (TypeError, ValueError) as error:
            raise FaultConfigError(str(error)) from error
        if settings.fail_mode not in FAIL_MODES:
            raise FaultConfigError(f"fail_mode must be one of {', '.join(FAIL_MODES)}")
        bad_targets = sorted(set(settings.targets) - set(SERVICES))
        if bad_targets:
            raise FaultConfigError(f"unknown fault target(s): {', '.join(bad_targets)}")
        return settings


def _rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FaultConfigError(f"{name} must be a number between 0 and 1")
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise FaultConfigError(f"{name} must be between 0 and 1, not {value}")
    return rate


def _non_negative_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise FaultConfigError(f"{name} must be a non-negative integer")
    number = int(value)
    if number < 0 or number != float(value):
        raise FaultConfigError(f"{name} must be a non-negative integer, not {value}")
    return number


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request."""

    latency_s: float = 0.0
    fail_http: bool = False
    fail_rpc: bool = False
    drop: bool = False


NO_FAULT = FaultDecision()


class FaultInjector:
    """Thread-safe holder of the settings, the random generator and the counters."""

    def __init__(self, settings: FaultSettings | None = None) -> None:
        self._lock = threading.Lock()
        self._settings = settings or FaultSettings()
        self._random = random.Random(self._settings.seed)
        self._requests: Counter[str] = Counter()
        self._methods: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()

    @property
    def settings(self) -> FaultSettings:
        with self._lock:
            return self._settings

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Apply ``changes`` (a partial settings object). Raises `FaultConfigError`."""
        with self._lock:
            settings = self._settings.updated(changes)
            if "seed" in changes:
                self._random = random.Random(settings.seed)
            self._settings = settings
            return settings

    def decide(self, service: str, node: int | None = None) -> FaultDecision:
        """Draw the faults for one request to ``service`` (node index for ``node``)."""
        with self._lock:
            settings = self._settings
            if node is not None and node in settings.fail_nodes:
                self._injected["node_down"] += 1
                return FaultDecision(fail_http=True)
            if service not in settings.targets:
                return NO_FAULT
            latency = settings.latency_ms / 1000.0
            if settings.fail_rate and self._random.random() < settings.fail_rate:
                mode = settings.fail_mode
                if mode == "mixed":
                    mode = self._random.choice(("http", "rpc"))
                self._injected[f"{mode}_error"] += 1
                return FaultDecision(
                    latency_s=latency, fail_http=mode == "http", fail_rpc=mode == "rpc"
                )
            drop = bool(settings.drop_rate) and self._random.random() < settings.drop_rate
            if drop:
                self._injected["drop"] += 1
            return FaultDecision(latency_s=latency, drop=drop)

    def corrupt(self, node: int, data: bytes) -> bytes:
        """``data`` with one byte flipped when this download is to be corrupted."""
        with self._lock:
            settings = self._settings
            hit = node in settings.corrupt_nodes
            if not hit and "node" in settings.targets and settings.corrupt_rate:
                hit = self._random.random() < settings.corrupt_rate
            if not hit or not data:
                return data
            self._injected["corrupt"] += 1
            position = self._random.randrange(len(data))
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        return bytes(flipped)

    def underpriced(self, tip_cap: int) -> str | None:
        """geth's refusal of a transaction with this tip cap, or None to accept it."""
        with self._lock:
            settings = self._settings
            if settings.underpriced_next > 0:
                self._settings = replace(settings, underpriced_next=settings.underpriced_next - 1)
                self._injected["underpriced"] += 1
                return "replacement transaction underpriced"
            if tip_cap < settings.min_gas_price:
                self._injected["underpriced"] += 1
                return (
                    f"transaction underpriced: gas tip cap {tip_cap}, "
                    f"minimum needed {settings.min_gas_price}"
                )
            return None

    def hold(self) -> bool:
        """Whether to hold the transaction being accepted (``hold_next``)."""
        with self._lock:
            settings = self._settings
            if settings.hold_next <= 0:
                return False
            self._settings = replace(settings, hold_next=settings.hold_next - 1)
            self._injected["held"] += 1
            return True

    def node_lag(self, node: int) -> float:
        """Seconds node ``node`` lags behind the chain."""
        with self._lock:
            settings = self._settings
            return settings.lag_ms / 1000.0 if node in settings.lag_nodes else 0.0

    def node_stall(self, node: int) -> float:
        """Seconds node ``node`` holds a segment download before answering."""
        with self._lock:
            settings = self._settings
            return settings.stall_ms / 1000.0 if node in settings.stall_nodes else 0.0

    def count_request(self, service: str) -> None:
        with self._lock:
            self._requests[service] += 1

    def count_method(self, service: str, method: str) -> None:
        with self._lock:
            self._methods[f"{service}:{method}"] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "methods": dict(self._methods),
                "faults": dict(self._injected),
                "total": sum(self._requests.values()),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._requests.clear()
            self._methods.clear()
            self._injected.clear()
