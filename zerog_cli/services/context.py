"""The use-case context: settings, ledger, secrets and clients, built lazily.

The CLI builds one `Context` per invocation from its global flags; tests build
their own. Nothing is opened until a use case asks for it, so commands that
only read the config never touch the ledger or import network libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from zerog_cli.infra.config import Settings, load_settings, require_home
from zerog_cli.infra.secrets import SecretStore

if TYPE_CHECKING:
    from zerog_cli.infra.http import HttpClient
    from zerog_cli.infra.locking import RunLock
    from zerog_cli.infra.metrics import Metrics
    from zerog_cli.ledger.breakers import BreakerTable
    from zerog_cli.ledger.db import Ledger
    from zerog_cli.ledger.locks import LedgerRunLock
    from zerog_cli.ledger.postgres import PostgresTarget


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    flags: dict[str, Any] = field(default_factory=dict)
    clock: Callable[[], datetime] | None = None
    notify: Callable[[str], None] = lambda message: None
    _settings: Settings | None = None
    _ledger: Ledger | None = None
    _secrets: SecretStore | None = None
    _http: HttpClient | None = None
    _metrics: Metrics | None = None
    _breakers: BreakerTable | None = None
    _network_announced: bool = False

    def now(self) -> datetime:
        """The current time: the injected clock, else the wall clock (tests freeze either)."""
        return (self.clock or _utc_now)()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.flags)
        return self._settings

    @property
    def home(self) -> Path:
        """ZEROG_HOME, where state lives; exit 8 (creating nothing) when it was never set up."""
        return require_home()

    @property
    def ledger_file(self) -> Path:
        """The ledger's path, once the home is known to be set up (see `home`)."""
        self.home  # noqa: B018 - raises when the home was never initialised
        return self.settings.ledger_file

    @property
    def ledger_target(self) -> Path | PostgresTarget:
        """What ``ledger_url`` names: the SQLite file, or a PostgreSQL database whose
        password (when it asks for one) is the ``DATABASE_PASSWORD`` secret."""
        from zerog_cli.ledger.db import resolve_target

        self.home  # noqa: B018 - raises when the home was never initialised
        return resolve_target(
            self.settings.ledger_location, lambda: self.secrets.get("DATABASE_PASSWORD")
        )

    def run_lock(self, name: str, command: str) -> RunLock | LedgerRunLock:
        """The lock that keeps two runs of ``command`` apart: a file in ZEROG_HOME beside a
        SQLite ledger, an advisory lock in a PostgreSQL ledger (shared by every host)."""
        target = self.ledger_target
        if isinstance(target, Path):
            from zerog_cli.infra.locking import RunLock, lock_path

            return RunLock(lock_path(self.home, name), command)
        from zerog_cli.ledger.locks import LedgerRunLock

        return LedgerRunLock(target, name, command)

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from zerog_cli.ledger.db import open_ledger

            self._ledger = open_ledger(self.ledger_target)
        return self._ledger

    @property
    def secrets(self) -> SecretStore:
        if self._secrets is None:
            settings = self.settings
            self._secrets = SecretStore(
                self.home,
                use_keyring=settings.keyring,
                ttl_seconds=settings.secret_cache_ttl,
            )
        return self._secrets

    @property
    def metrics(self) -> Metrics:
        """This run's metrics registry (created on first use; written out by `finish`).

        A run with no metrics file and no Pushgateway gets an `UnexportedMetrics`,
        which takes every update and keeps none, without importing prometheus_client.
        """
        if self._metrics is None:
            settings = self.settings
            if settings.metrics_file or settings.pushgateway:
                from zerog_cli.infra.metrics import Metrics

                self._metrics = Metrics()
            else:
                from zerog_cli.infra.unexported_metrics import UnexportedMetrics

                self._metrics = cast("Metrics", UnexportedMetrics())
        return self._metrics

    @property
    def breaker_table(self) -> BreakerTable:
        if self._breakers is None:
            from zerog_cli.ledger.breakers import BreakerTable

            ledger = self.ledger  # opening it creates and migrates the file first
            self._breakers = BreakerTable(ledger.target, read_only=ledger.read_only)
        return self._breakers

    @property
    def ledger_path(self) -> Path | None:
        """The ledger file if this run has opened it or loaded its settings (for messages)."""
        if self._ledger is not None:
            return self._ledger.path
        return self._settings.ledger_file if self._settings is not None else None

    @property
    def http(self) -> HttpClient:
        """The resilient HTTP client: timeouts, retries, breakers shared through the ledger."""
        if self._http is None:
            from zerog_cli.infra.http import BreakerSettings, HttpClient, RetryPolicy, Timeouts

            settings = self.settings
            observer = None
            if settings.metrics_file or settings.pushgateway:
                from zerog_cli.infra.metrics import MetricsObserver

                observer = MetricsObserver(self.metrics)
            self._http = HttpClient(
                timeouts=Timeouts(
                    connect=settings.http_connect_timeout,
                    read=settings.http_read_timeout,
                    deadline=settings.http_deadline,
                ),
                retry=RetryPolicy(max_tries=settings.http_max_tries),
                breaker=BreakerSettings(
                    fail_max=settings.breaker_fail_max,
                    reset_timeout=settings.breaker_reset_timeout,
                ),
                # A read-only home keeps this run's breakers in memory.
                breaker_storage=None if self.ledger.read_only else self.breaker_table.storage,
                observer=observer,
            )
        return self._http

    def finish(self, command: str, exit_code: int, seconds: float) -> list[str]:
        """Write this run's metrics where configured; returns problems (never raises)."""
        if self._metrics is None:
            return []
        self._metrics.finish_run(command, exit_code, seconds)
        problems: list[str] = []
        settings = self.settings
        if settings.metrics_file:
            try:
                self._metrics.write_textfile(Path(settings.metrics_file))
            except OSError as exc:
                problems.append(
                    f"cannot write metrics file {settings.metrics_file}: {exc.strerror}"
                )
        if settings.pushgateway:
            from zerog_cli.errors import ZerogError

            try:
                self._metrics.push(
                    settings.pushgateway, f"zerog_{command.replace(' ', '_')}", self.http
                )
            except ZerogError as exc:
                problems.append(f"metrics push failed: {exc}")
        return problems

    @property
    def acting_user(self) -> str:
        return self.settings.acting_user

    def override(self, **flags: Any) -> None:
        """Apply command-level flags (e.g. ``user`` from ``--as``) on top of the global ones."""
        given = {key: value for key, value in flags.items() if value is not None}
        exporting = "metrics_file" in given or "pushgateway" in given
        if exporting and (self._metrics is not None or self._http is not None):
            # The run's metrics (and the HTTP client's observer) were made for no export.
            raise RuntimeError("metrics destinations must be set before the metrics are used")
        if given:
            self.flags.update(given)
            self._settings = None

    def announce_network(self) -> None:
        """Say once, on stderr, which network the command is about to touch."""
        if not self._network_announced:
            self._network_announced = True
            self.notify(f"network: {self.settings.network_label()}")

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._breakers is not None:
            self._breakers.close()
            self._breakers = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
