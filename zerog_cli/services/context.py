"""The use-case context: settings, ledger, secrets and clients, built lazily.

The CLI builds one `Context` per invocation from its global flags; tests build
their own. Nothing is opened until a use case asks for it, so commands that
only read the config never touch the ledger or import network libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zerog_cli.infra.config import Settings, load_settings
from zerog_cli.infra.secrets import SecretStore

if TYPE_CHECKING:
    from zerog_cli.ledger.db import Ledger


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    flags: dict[str, Any] = field(default_factory=dict)
    clock: Callable[[], datetime] = _utc_now
    notify: Callable[[str], None] = lambda message: None
    _settings: Settings | None = None
    _ledger: Ledger | None = None
    _secrets: SecretStore | None = None
    _network_announced: bool = False

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.flags)
        return self._settings

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from zerog_cli.ledger.db import open_ledger

            self._ledger = open_ledger(self.settings.ledger_file)
        return self._ledger

    @property
    def secrets(self) -> SecretStore:
        if self._secrets is None:
            settings = self.settings
            self._secrets = SecretStore(
                settings.home,
                use_keyring=bool(settings.keyring),
                ttl_seconds=float(settings.secret_cache_ttl),
            )
        return self._secrets

    @property
    def acting_user(self) -> str:
        return self.settings.acting_user

    def override(self, **flags: Any) -> None:
        """Apply command-level flags (e.g. ``user`` from ``--as``) on top of the global ones."""
        given = {key: value for key, value in flags.items() if value is not None}
        if given:
            self.flags.update(given)
            self._settings = None

    def announce_network(self) -> None:
        """Say once, on stderr, which network the command is about to touch."""
        if not self._network_announced:
            self._network_announced = True
            self.notify(f"network: {self.settings.network_label()}")

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
