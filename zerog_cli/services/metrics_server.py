"""`zerog metrics serve|show`: gauges derived from the ledger, computed at scrape time.

A command's own registry (`infra.metrics.Metrics`) describes one run and is
written as a textfile or pushed. This collector is the other half: state that
lives in the ledger and must be current whenever Prometheus asks, so it is
read on every scrape rather than updated by commands. Backup figures cover the
active profile's network; quotas and costs are global (money is money).
"""

from __future__ import annotations

import calendar
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from zerog_cli.errors import UsageError, ZerogError
from zerog_cli.ledger import backups as backup_rows
from zerog_cli.ledger import costs, metrics_views
from zerog_cli.ledger import quotas as quota_rows
from zerog_cli.ledger.db import format_time, parse_time
from zerog_cli.services import quotas
from zerog_cli.services.context import Context

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

log = logging.getLogger("zerog.metrics")

MICRO = 1_000_000


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()

    def family(self) -> Metric:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if self.kind == "counter":
            return CounterMetricFamily(
                self.name.removesuffix("_total"), self.help, labels=self.labels
            )
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


SPECS = {
    spec.name: spec
    for spec in (
        Spec("zerog_ledger_up", "gauge", "1 when the last scrape could read the ledger, else 0."),
        Spec(
            "zerog_quota_usage_ratio",
            "gauge",
            "Used fraction of a user's limit this month (storage, tokens, monthly_usd).",
            ("user", "limit"),
        ),
        Spec(
            "zerog_quota_monthly_budget_usd",
            "gauge",
            "A user's monthly spending limit, in dollars (absent when unlimited).",
            ("user",),
        ),
        Spec(
            "zerog_user_tier_info",
            "gauge",
            "Always 1; the tier label says which quota tier a user is on.",
            ("user", "tier"),
        ),
        Spec(
            "zerog_quota_alerts_total",
            "counter",
            "Quota threshold (80 %) alerts recorded in the ledger, per user.",
            ("user",),
        ),
        Spec(
            "zerog_monthly_cost_usd",
            "gauge",
            "Cost per service in dollars: month='current' is month to date, 'previous' the "
            "whole previous month (months in the configured timezone).",
            ("service", "month"),
        ),
        Spec(
            "zerog_cost_previous_month_to_date_usd",
            "gauge",
            "Cost per service in the previous month up to the same point of the month as now, "
            "in dollars: what the current month to date compares with.",
            ("service",),
        ),
        Spec(
            "zerog_user_monthly_cost_usd",
            "gauge",
            "Cost per user this month to date, in dollars.",
            ("user",),
        ),
        Spec(
            "zerog_ledger_cost_usd_total",
            "counter",
            "All cost ever recorded in the ledger, per service, in dollars.",
            ("service",),
        ),
        Spec(
            "zerog_circuit_breaker_state",
            "gauge",
            "Circuit breaker state per endpoint as stored in the ledger: "
            "0 closed, 1 half-open, 2 open.",
            ("endpoint",),
        ),
        Spec("zerog_backups", "gauge", "Live (not retired) backups.", ("namespace",)),
        Spec(
            "zerog_backups_never_verified",
            "gauge",
            "Live backups that never had an OK verification.",
            ("namespace",),
        ),
        Spec(
            "zerog_backups_failed",
            "gauge",
            "Live backups whose latest conclusive verification was mismatch or missing.",
            ("namespace",),
        ),
        Spec(
            "zerog_backup_verification_age_seconds",
            "gauge",
            "Seconds since the last OK verification of any backup in the namespace.",
            ("namespace",),
        ),
        Spec(
            "zerog_backup_oldest_verification_age_seconds",
            "gauge",
            "Worst backup of the namespace: seconds since its last OK verification "
            "(since its creation when it never had one).",
            ("namespace",),
        ),
        Spec(
            "zerog_backup_oldest_full_verification_age_seconds",
            "gauge",
            "Worst backup of the namespace: seconds since its last OK verification that read "
            "the whole file, not a sample of segments (since its creation when it never had one).",
            ("namespace",),
        ),
    )
}


def collector_metric_names() -> set[str]:
    """Every series name the collector can expose."""
    return set(SPECS)


def _previous_period(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def same_point_last_month(moment: datetime, zone: ZoneInfo) -> datetime:
    """The same day and time one calendar month earlier (clamped to that month's last day)."""
    local = moment.astimezone(zone)
    year, month = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


class LedgerCollector:
    """A prometheus_client collector reading the ledger on every ``collect()``."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def describe(self) -> list[Metric]:
        return [spec.family() for spec in SPECS.values()]

    def collect(self) -> Iterator[Metric]:
        families = {name: spec.family() for name, spec in SPECS.items()}

        def add(name: str, labels: list[str], value: float) -> None:
            families[name].add_metric(labels, value)  # type: ignore[attr-defined]

        try:
            self._quotas(add)
            self._costs(add)
            self._breakers(add)
            self._backups(add)
            add("zerog_ledger_up", [], 1)
        except (ZerogError, sqlite3.Error) as exc:
            log.warning("cannot read the ledger for metrics: %s", exc)
            families = {name: spec.family() for name, spec in SPECS.items()}
            families["zerog_ledger_up"].add_metric([], 0)  # type: ignore[attr-defined]
        yield from families.values()

    def _quotas(self, add: Callable[[str, list[str], float], None]) -> None:
        context = self.context
        for row in quota_rows.all_rows(context.ledger.conn):
            add("zerog_user_tier_info", [row.user, row.tier], 1)
            status = quotas.preview(context, row.user)
            for limit_name, entry in status.limits.items():
                if entry.ratio is not None:
                    add("zerog_quota_usage_ratio", [row.user, limit_name], entry.ratio)
            budget = status.limits["monthly_usd"].limit
            if budget is not None:
                add("zerog_quota_monthly_budget_usd", [row.user], budget / MICRO)
        for user, count in metrics_views.quota_alert_counts(context.ledger.conn).items():
            add("zerog_quota_alerts_total", [user], count)

    def _costs(self, add: Callable[[str, list[str], float], None]) -> None:
        context = self.context
        conn = context.ledger.conn
        zone = ZoneInfo(context.settings.timezone)
        now = context.now()
        period = quotas.period_of(now, context.settings.timezone)
        previous = _previous_period(period)
        current = costs.monthly_usd_by_service(context.ledger.conn, period)
        for service, micro in current.items():
            add("zerog_monthly_cost_usd", [service, "current"], micro / MICRO)
        for service, micro in costs.monthly_usd_by_service(context.ledger.conn, previous).items():
            add("zerog_monthly_cost_usd", [service, "previous"], micro / MICRO)
        until = format_time(same_point_last_month(now, zone))
        to_date = metrics_views.cost_by_service_until(conn, previous, until)
        for service in sorted(set(to_date) | set(current)):
            add("zerog_cost_previous_month_to_date_usd", [service], to_date.get(service, 0) / MICRO)
        for group in costs.report(context.ledger.conn, period, "user"):
            add("zerog_user_monthly_cost_usd", [group.key], group.usd_micro / MICRO)
        for service, micro in metrics_views.cost_totals_by_service(conn).items():
            add("zerog_ledger_cost_usd_total", [service], micro / MICRO)

    def _breakers(self, add: Callable[[str, list[str], float], None]) -> None:
        from zerog_cli.infra.metrics import BREAKER_STATE_VALUES
        from zerog_cli.ledger.breakers import breaker_rows

        for row in breaker_rows(self.context.breaker_table):
            add(
                "zerog_circuit_breaker_state",
                [row["endpoint"]],
                BREAKER_STATE_VALUES.get(row["state"], 0),
            )

    def _backups(self, add: Callable[[str, list[str], float], None]) -> None:
        context = self.context
        now = context.now()
        live = backup_rows.select(
            context.ledger.conn, backup_rows.BackupFilter(context.settings.profile)
        )
        by_namespace: dict[str, list[backup_rows.Backup]] = {}
        for backup in live:
            by_namespace.setdefault(backup.namespace, []).append(backup)
        for namespace, members in sorted(by_namespace.items()):
            add("zerog_backups", [namespace], len(members))
            never = [b for b in members if b.last_ok_at is None]
            add("zerog_backups_never_verified", [namespace], len(never))
            add("zerog_backups_failed", [namespace], sum(1 for b in members if b.failed))
            ok_times = [b.last_ok_at for b in members if b.last_ok_at is not None]
            if ok_times:
                age = (now - parse_time(max(ok_times))).total_seconds()
                add("zerog_backup_verification_age_seconds", [namespace], max(0.0, age))
            oldest = min(b.last_ok_at or b.created_at for b in members)
            age = (now - parse_time(oldest)).total_seconds()
            add("zerog_backup_oldest_verification_age_seconds", [namespace], max(0.0, age))
            oldest_full = min(b.last_full_ok_at or b.created_at for b in members)
            age = (now - parse_time(oldest_full)).total_seconds()
            add("zerog_backup_oldest_full_verification_age_seconds", [namespace], max(0.0, age))


def registry(context: Context) -> CollectorRegistry:
    """A registry with the ledger collector; exit 8 at once when the home was never set up.

    Once running, an unreadable ledger is ``zerog_ledger_up 0`` rather than an error.
    """
    from prometheus_client import CollectorRegistry

    context.home  # noqa: B018 - raises when the home was never initialised

    result = CollectorRegistry(auto_describe=True)
    result.register(LedgerCollector(context))
    return result


def exposition(context: Context) -> bytes:
    """The text exposition, once (what `zerog metrics show` prints)."""
    from prometheus_client.exposition import generate_latest

    return generate_latest(registry(context))


@dataclass(frozen=True)
class Sample:
    """One sample of a metric family: its name, labels and value."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class MetricFamily:
    """A metric family as Prometheus would scrape it: name, type, help and samples."""

    name: str
    type: str
    help: str
    samples: list[Sample]


@dataclass(frozen=True)
class MetricsSnapshot:
    """`metrics show`: every family `metrics serve` would answer now."""

    families: list[MetricFamily]


@dataclass(frozen=True)
class MetricsServing:
    """`metrics serve`: the URL it answers on, printed once it listens."""

    url: str


def as_json(context: Context) -> MetricsSnapshot:
    """The same families as JSON: name, type, help and samples."""
    families = []
    for family in registry(context).collect():
        families.append(
            MetricFamily(
                name=family.name,
                type=family.type,
                help=family.documentation,
                samples=[
                    Sample(name=s.name, labels=dict(s.labels), value=float(s.value))
                    for s in family.samples
                ],
            )
        )
    return MetricsSnapshot(families)


# An idle or slow client is dropped after this many seconds; other scrapes never wait for it.
CONNECTION_TIMEOUT_SECONDS = 10.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure(
    host: str, basic_auth_file: Path | None, no_auth: bool
) -> tuple[dict[str, str] | None, str | None]:
    """Who may scrape: (basic auth users or None, a warning to print or None).

    Per-user cost and quota labels are not for the whole network: off
    loopback, serving needs a basic auth file, or an explicit ``--no-auth``
    that is warned about. Decided before anything is bound.
    """
    from zerog_cli.infra import basic_auth

    if basic_auth_file is not None and no_auth:
        raise UsageError("--basic-auth-file and --no-auth contradict each other")
    if basic_auth_file is not None:
        return basic_auth.load_users(basic_auth_file), None
    if is_loopback(host):
        return None, None
    if no_auth:
        return None, (
            f"serving metrics on {host} without authentication: anyone who can reach it reads "
            "per-user cost and quota labels"
        )
    raise UsageError(
        f"--host {host} serves per-user cost and quota labels beyond this machine",
        hint="pass --basic-auth-file FILE (bcrypt or sha256 hashes), or --no-auth to accept that",
    )


def serve(
    context: Context,
    host: str,
    port: int,
    on_ready: Callable[[str], None] | None = None,
    *,
    users: dict[str, str] | None = None,
    connection_timeout: float = CONNECTION_TIMEOUT_SECONDS,
) -> None:
    """Serve ``/metrics`` on ``host:port`` until interrupted (Ctrl-C or SIGTERM).

    Each connection has its own thread and a socket timeout, so an idle or
    slow client never holds up another scrape; the ledger is read by one
    scrape at a time (the context's connection is shared). With ``users``,
    every request needs HTTP basic authentication.
    """
    import signal
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import make_wsgi_app

    from zerog_cli.infra import basic_auth

    class QuietHandler(WSGIRequestHandler):
        timeout = connection_timeout

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("scrape from %s: " + format, self.client_address[0], *args)

    class ThreadingServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            import sys

            failure = sys.exc_info()[1]
            if isinstance(failure, OSError):  # timeouts, resets: the client's doing
                log.debug("connection from %s dropped: %s", client_address[0], failure)
            else:
                log.warning("scrape from %s failed: %r", client_address[0], failure)

    metrics_app = make_wsgi_app(registry(context))
    reading = threading.Lock()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if users is not None and not basic_auth.authorised(
            users, environ.get("HTTP_AUTHORIZATION")
        ):
            start_response(
                "401 Unauthorized",
                [
                    ("WWW-Authenticate", 'Basic realm="zerog metrics"'),
                    ("Content-Type", "text/plain; charset=utf-8"),
                ],
            )
            return [b"authentication required\n"]
        with reading:
            return list(metrics_app(environ, start_response))

    try:
        server: WSGIServer = make_server(
            host, port, app, server_class=ThreadingServer, handler_class=QuietHandler
        )
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror}", hint="pick another --port"
        ) from None

    # The server runs in a thread and the main thread only waits for a stop
    # request: wsgiref's request handler catches every exception, so a
    # KeyboardInterrupt raised by a signal in the middle of a scrape would be
    # swallowed and the server would keep running.
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    previous = signal.signal(signal.SIGTERM, stop)
    worker = threading.Thread(target=server.serve_forever, name="zerog-metrics", daemon=True)
    worker.start()
    try:
        if on_ready is not None:
            on_ready(f"http://{host}:{server.server_port}/metrics")
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()
        server.server_close()
