"""Secrets: a chain of providers behind a TTL cache; values are never shown.

Lookup order for a secret NAME:

1. the environment variable ``NAME``;
2. ``NAME_FILE``: a path to a file holding the value (as written by Vault
   Agent, Kubernetes secrets or systemd credentials); one trailing newline is
   stripped;
3. the OS keyring (service ``zerog``), when a usable backend exists;
4. zerog's own store, ``$ZEROG_HOME/secrets/NAME`` (0600), which `zerog secrets
   set` uses when the machine has no keyring (headless boxes, cron).

Every value read is registered with `redaction`, so error messages, logs and
``--verbose`` tracebacks can scrub it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from zerog_cli.errors import ConfigError, UsageError
from zerog_cli.infra import redaction
from zerog_cli.infra.choices import SecretStoreKind
from zerog_cli.infra.files import atomic_write_text, ensure_private_dir

log = logging.getLogger("zerog.secrets")

KEYRING_SERVICE = "zerog"
ENCRYPTION_KEY = "ENCRYPTION_KEY"
CATALOG_KEY = "CATALOG_KEY"

KNOWN_SECRETS: dict[str, str] = {
    "ZEROG_STORAGE_PRIVATE_KEY": "wallet key that pays for storage submissions",
    "ZEROG_COMPUTE_PRIVATE_KEY": "wallet key for inference (falls back to the storage key)",
    "ZEROG_SIGNING_PRIVATE_KEY": "wallet key for typed data (sign-typed; else storage key, warned)",
    "ZEROG_ROUTER_API_KEY": "0G Router API key (sk-...) for `zerog infer` via the Router",
    ENCRYPTION_KEY: "32-byte hex key for client-side encryption (--encrypt)",
    CATALOG_KEY: "32-byte hex key of the catalog records in Flow tags (else ENCRYPTION_KEY)",
    "CIRCLE_API_KEY": "Circle API key (payments)",
    "DATABASE_PASSWORD": "database password of the service",
    "JWT_SECRET": "JWT signing secret of the service",
}


@dataclass(frozen=True)
class SecretLookup:
    """Where a secret was found; ``value`` is None when it was not found."""

    name: str
    source: str | None
    value: str | None = None

    @property
    def present(self) -> bool:
        return self.value is not None


def _keyring_usable() -> bool:
    try:
        import keyring
        from keyring.backends import fail
    except Exception:
        return False
    try:
        backend = keyring.get_keyring()
    except Exception:
        return False
    return not isinstance(backend, fail.Keyring) and getattr(backend, "priority", 1) > 0


class SecretStore:
    """The provider chain with a per-process TTL cache."""

    def __init__(
        self,
        home: Path,
        *,
        environ: Mapping[str, str] | None = None,
        use_keyring: bool = True,
        ttl_seconds: float = 300.0,
    ) -> None:
        self.home = home
        self.environ = os.environ if environ is None else environ
        self.use_keyring = use_keyring
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, tuple[float, SecretLookup]] = {}
        self.warnings: list[str] = []
        """Warnings so far, each logged once on ``zerog.secrets``; reports may list them,
        but nothing prints them a second time."""

    @property
    def file_dir(self) -> Path:
        return self.home / "secrets"

    def lookup(self, name: str) -> SecretLookup:
        cached = self._cache.get(name)
        now = time.monotonic()
        if cached and now - cached[0] < self.ttl_seconds:
            return cached[1]
        found = self._lookup_uncached(name)
        if found.value is not None:
            redaction.register(found.value)
        self._cache[name] = (now, found)
        return found

    def get(self, name: str) -> str | None:
        return self.lookup(name).value

    def require(self, name: str, purpose: str) -> str:
        value = self.get(name)
        if value is None:
            raise ConfigError(
                f"secret {name} is not set ({purpose})",
                hint=f"export {name}_FILE=/path/to/file or run `zerog secrets set {name}`",
            )
        return value

    def _lookup_uncached(self, name: str) -> SecretLookup:
        if name in self.environ and self.environ[name] != "":
            return SecretLookup(name, "env", self.environ[name])
        file_var = f"{name}_FILE"
        if self.environ.get(file_var):
            path = Path(self.environ[file_var]).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"{file_var} points at {path}, which cannot be read: {exc.strerror}"
                ) from None
            return SecretLookup(name, f"file:{path}", text.removesuffix("\n"))
        value = self._keyring_get(name)
        if value is not None:
            return SecretLookup(name, "keyring", value)
        stored = self.file_dir / name
        if stored.is_file():
            return SecretLookup(name, f"store:{stored}", stored.read_text(encoding="utf-8"))
        return SecretLookup(name, None)

    def _keyring_get(self, name: str) -> str | None:
        if not self.use_keyring or not _keyring_usable():
            return None
        import keyring

        try:
            return keyring.get_password(KEYRING_SERVICE, name)
        except Exception as exc:
            self._warn(
                f"keyring lookup of {name} failed ({type(exc).__name__}); skipping the keyring"
            )
            return None

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning(message)

    def set(self, name: str, value: str, *, store: SecretStoreKind = SecretStoreKind.AUTO) -> str:
        """Store ``value``; returns where ("keyring" or the 0600 file). Never logs it."""
        validate_name(name)
        if value == "":
            raise UsageError(f"refusing to store an empty value for {name}")
        redaction.register(value)
        self._cache.pop(name, None)
        if store in ("auto", "keyring") and self.use_keyring and _keyring_usable():
            import keyring

            try:
                keyring.set_password(KEYRING_SERVICE, name, value)
                return "keyring"
            except Exception as exc:
                if store == "keyring":
                    raise ConfigError(f"the keyring refused {name}: {type(exc).__name__}") from None
                self._warn(f"keyring refused {name} ({type(exc).__name__}); using the file store")
        elif store == "keyring":
            raise ConfigError("no usable keyring backend on this machine", hint="use --store file")
        elif store == "auto":
            self._warn("no usable keyring backend; storing in zerog's 0600 file store")
        ensure_private_dir(self.file_dir)
        path = self.file_dir / name
        atomic_write_text(path, value, mode=0o600)
        return f"store:{path}"

    def remove(self, name: str) -> list[str]:
        """Remove ``name`` from the keyring and the file store; returns what was removed."""
        validate_name(name)
        removed: list[str] = []
        self._cache.pop(name, None)
        if self.use_keyring and _keyring_usable():
            import keyring

            try:
                keyring.delete_password(KEYRING_SERVICE, name)
                removed.append("keyring")
            except Exception as exc:
                log.debug("keyring delete of %s: %s", name, type(exc).__name__)
        path = self.file_dir / name
        if path.exists():
            path.unlink()
            removed.append(f"store:{path}")
        return removed

    def names(self) -> list[str]:
        """Known secret names plus any held in the file store."""
        names = set(KNOWN_SECRETS)
        if self.file_dir.is_dir():
            names.update(p.name for p in self.file_dir.iterdir() if p.is_file())
        return sorted(names)

    def keyring_status(self) -> str:
        if not self.use_keyring:
            return "disabled by config"
        if not _keyring_usable():
            return "no usable backend (secrets set uses the 0600 file store)"
        import keyring

        return type(keyring.get_keyring()).__name__


def validate_name(name: str) -> None:
    if not name or not all(c.isalnum() or c == "_" for c in name) or not name[0].isalpha():
        raise UsageError(f"not a secret name: {name!r} (letters, digits and _; e.g. JWT_SECRET)")
