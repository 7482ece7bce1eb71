"""Prometheus metrics: one registry per process, a textfile for node_exporter, a push.

Names follow Prometheus conventions: ``zerog_`` prefix, base units (seconds,
bytes, dollars), ``_total`` for counters, ``_timestamp_seconds`` for times.
Batch commands (cron) write the registry atomically as a textfile for
node_exporter's textfile collector and, when asked, push it to a Pushgateway
through the resilient HTTP helper.

Import this module only on code paths that do network work:
prometheus_client is not free to import.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from zerog_cli.infra import redaction
from zerog_cli.infra.files import atomic_write_bytes

if TYPE_CHECKING:
    from zerog_cli.infra.http import HttpClient

BREAKER_STATE_VALUES = {"closed": 0, "half-open": 1, "open": 2}

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OPERATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


class Metrics:
    """Every metric zerog exports from a command run, on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "zerog_http_requests_total",
            "HTTP attempts by endpoint, method and status code (code 'none': no answer).",
            ["endpoint", "method", "code"],
            registry=r,
        )
        self.http_duration = Histogram(
            "zerog_http_request_duration_seconds",
            "Duration of HTTP attempts.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.http_retries = Counter(
            "zerog_http_retries_total", "Retried HTTP attempts.", ["endpoint"], registry=r
        )
        self.breaker_state = Gauge(
            "zerog_circuit_breaker_state",
            "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.",
            ["endpoint"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            "zerog_circuit_breaker_transitions_total",
            "Circuit breaker state changes, by the state entered.",
            ["endpoint", "state"],
            registry=r,
        )
        self.breaker_rejections = Counter(
            "zerog_circuit_breaker_rejections_total",
            "Calls refused without a request because the breaker was open.",
            ["endpoint"],
            registry=r,
        )
        self.storage_operations = Counter(
            "zerog_storage_operations_total",
            "Storage operations (upload, download, backup, restore) by result.",
            ["operation", "result"],
            registry=r,
        )
        self.storage_bytes = Counter(
            "zerog_storage_bytes_total",
            "Payload bytes moved to or from 0G storage.",
            ["direction"],
            registry=r,
        )
        self.storage_duration = Histogram(
            "zerog_storage_operation_duration_seconds",
            "Duration of storage operations.",
            ["operation"],
            buckets=_OPERATION_BUCKETS,
            registry=r,
        )
        self.compute_requests = Counter(
            "zerog_compute_requests_total",
            "Inference requests by model and result.",
            ["model", "result"],
            registry=r,
        )
        self.compute_tokens = Counter(
            "zerog_compute_tokens_total",
            "Tokens used by inference, by kind (prompt, completion).",
            ["kind"],
            registry=r,
        )
        self.compute_duration = Histogram(
            "zerog_compute_request_duration_seconds",
            "Duration of inference requests.",
            ["model"],
            buckets=_OPERATION_BUCKETS,
            registry=r,
        )
        self.compute_verifications = Counter(
            "zerog_compute_verifications_total",
            "Inference response signature checks by result "
            "(verified, mismatch, unavailable, skipped).",
            ["result"],
            registry=r,
        )
        self.cost_usd = Counter(
            "zerog_cost_usd_total",
            "Cost recorded in the ledger, in dollars.",
            ["service"],
            registry=r,
        )
        self.quota_usage = Gauge(
            "zerog_quota_usage_ratio",
            "Used fraction of a user's limit (storage, tokens, monthly_usd).",
            ["user", "limit"],
            registry=r,
        )
        self.verify_results = Counter(
            "zerog_verify_backups_total",
            "Backups verified, by status (ok, mismatch, missing, error).",
            ["status"],
            registry=r,
        )
        self.verify_kinds = Counter(
            "zerog_verify_kind_backups_total",
            "Backups verified, by kind: full (every byte, root and SHA-256) or sampled "
            "(--read-data-subset: some segments, each with its Merkle proof).",
            ["kind"],
            registry=r,
        )
        self.verify_bytes = Counter(
            "zerog_verify_bytes_total", "Bytes read back and checked by verify.", registry=r
        )
        self.verify_duration = Histogram(
            "zerog_verify_backup_duration_seconds",
            "Time to read back and check one backup.",
            buckets=_OPERATION_BUCKETS,
            registry=r,
        )
        self.verify_pending = Gauge(
            "zerog_verify_pending_backups",
            "Backups selected by the last verify run but not checked (stopped by "
            "--max-duration or a network failure); the next run starts with them.",
            registry=r,
        )
        self.last_run = Gauge(
            "zerog_last_run_timestamp_seconds",
            "When a zerog command last finished.",
            ["command"],
            registry=r,
        )
        self.last_success = Gauge(
            "zerog_last_success_timestamp_seconds",
            "When a zerog command last finished with exit code 0.",
            ["command"],
            registry=r,
        )
        self.last_exit_code = Gauge(
            "zerog_last_exit_code",
            "Exit code of the last run of a command.",
            ["command"],
            registry=r,
        )
        self.run_duration = Gauge(
            "zerog_last_run_duration_seconds",
            "How long the last run of a command took.",
            ["command"],
            registry=r,
        )

    def finish_run(self, command: str, exit_code: int, seconds: float) -> None:
        now = time.time()
        self.last_run.labels(command).set(now)
        self.last_exit_code.labels(command).set(exit_code)
        self.run_duration.labels(command).set(seconds)
        if exit_code == 0:
            self.last_success.labels(command).set(now)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def write_textfile(self, path: Path) -> None:
        """Atomic write (temp file + rename) so node_exporter never reads half a file."""
        atomic_write_bytes(path, self.exposition(), mode=0o644)

    def push(self, gateway_url: str, job: str, http: HttpClient) -> None:
        """PUT the registry to a Pushgateway under ``job`` and this host, via the resilient helper.

        Grouping by host keeps two machines running the same job from
        overwriting each other's series.
        """
        from prometheus_client import push_to_gateway

        push_to_gateway(
            gateway_url,
            job=job,
            registry=self.registry,
            grouping_key={"instance": socket.gethostname()},
            handler=_handler(http),
        )


def _handler(http: HttpClient) -> Callable[..., Callable[[], None]]:
    from zerog_cli.errors import NetworkUnavailable

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        def send() -> None:
            response = http.request(method, url, data=data, headers=dict(headers))
            if not response.ok:
                raise NetworkUnavailable(
                    f"Pushgateway {redaction.redact_url(url)} answered HTTP {response.status}: "
                    f"{response.text[:200]}"
                )

        return send

    return handler


class MetricsObserver:
    """The resilient HTTP helper's observer, feeding `Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def request_done(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        code = "none" if status is None else str(status)
        self.metrics.http_requests.labels(endpoint, method, code).inc()
        self.metrics.http_duration.labels(endpoint).observe(seconds)

    def retry(self, endpoint: str, reason: str) -> None:
        self.metrics.http_retries.labels(endpoint).inc()

    def breaker_state_change(self, endpoint: str, old: str | None, new: str) -> None:
        self.metrics.breaker_state.labels(endpoint).set(BREAKER_STATE_VALUES.get(new, 0))
        self.metrics.breaker_transitions.labels(endpoint, new).inc()

    def breaker_rejected(self, endpoint: str) -> None:
        self.metrics.breaker_rejections.labels(endpoint).inc()
        self.metrics.breaker_state.labels(endpoint).set(BREAKER_STATE_VALUES["open"])


def metric_names(metrics: Metrics | None = None) -> set[str]:
    """Every series name the registry can expose (with histogram/counter suffixes)."""
    registry = (metrics or Metrics()).registry
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
            names.add(family.name + "_created")
        if family.type == "histogram":
            names.update(
                family.name + suffix for suffix in ("_bucket", "_sum", "_count", "_created")
            )
    return names
