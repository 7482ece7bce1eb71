"""What `zerog secrets ls|doctor` report: names, sources and problems, never values."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from zerog_cli.errors import ConfigError
from zerog_cli.infra.secrets import ENCRYPTION_KEY, KNOWN_SECRETS, SecretStore
from zerog_cli.infra.signing import COMPUTE_KEY, SIGNING_KEY, STORAGE_KEY, normalise_private_key
from zerog_cli.zerog.encryption import parse_symmetric_key

if TYPE_CHECKING:
    from zerog_cli.services.context import Context

PRIVATE_KEY_SECRETS = (STORAGE_KEY, COMPUTE_KEY, SIGNING_KEY)


@dataclass(frozen=True)
class SecretInfo:
    """A secret as every command shows it: whether it is set, where it was found (env,
    file:PATH, keyring…; never its value) and what it is for."""

    name: str
    present: bool
    source: str | None
    purpose: str


@dataclass(frozen=True)
class SecretList:
    """`secrets ls`: every secret zerog knows of or holds."""

    secrets: list[SecretInfo]


@dataclass(frozen=True)
class SecretCheck(SecretInfo):
    """A secret checked by `secrets doctor` (``status``: ok, missing, invalid, unsafe)."""

    status: str = "ok"


@dataclass
class DoctorReport:
    """`secrets doctor`: the keyring's state, each secret's check, problems (exit 8) and
    warnings."""

    keyring: str
    secrets: list[SecretCheck]
    problems: list[str]
    warnings: list[str]
    ok: bool


@dataclass(frozen=True)
class SecretStored:
    """`secrets set`: where the value went (keyring or file)."""

    name: str
    stored_in: str


@dataclass(frozen=True)
class SecretRemoved:
    """`secrets rm`: the stores it was removed from (none: it was in neither)."""

    name: str
    removed_from: list[str]


def checked_value(name: str, value: str) -> str:
    """``value`` as zerog will use it, or ConfigError (exit 8) naming the secret, not the value.

    Keys are checked when they are stored and by `secrets doctor`, so a bad one
    is found then, not by the upload that needs it.
    """
    if name in PRIVATE_KEY_SECRETS:
        return normalise_private_key(value, name)
    if name == ENCRYPTION_KEY:
        parse_symmetric_key(value, name=f"secret {name}")
        return value.strip()
    return value


def list_secrets(store: SecretStore) -> SecretList:
    rows = []
    for name in store.names():
        found = store.lookup(name)
        rows.append(
            SecretInfo(
                name=name,
                present=found.present,
                source=found.source,
                purpose=KNOWN_SECRETS.get(name, "custom"),
            )
        )
    return SecretList(rows)


def _file_problem(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path} is readable by group or others (mode {oct(mode & 0o777)}); chmod 600 it"
    return None


def doctor(store: SecretStore) -> DoctorReport:
    """Checks that never reveal a value: formats of keys, file modes, keyring health."""
    problems: list[str] = []
    checks: list[SecretCheck] = []
    for row in list_secrets(store).secrets:
        name = row.name
        status = "missing" if not row.present else "ok"
        if row.present:
            try:
                checked_value(name, store.get(name) or "")
            except ConfigError as exc:
                status = "invalid"
                problems.append(str(exc))
        source = row.source or ""
        if source.startswith(("file:", "store:")):
            problem = _file_problem(Path(source.split(":", 1)[1]))
            if problem:
                status = "unsafe"
                problems.append(problem)
        checks.append(SecretCheck(**row.__dict__, status=status))
    if store.file_dir.exists() and store.file_dir.stat().st_mode & 0o077:
        problems.append(f"{store.file_dir} is accessible by group or others; chmod 700 it")
    env_exposed = [n for n in PRIVATE_KEY_SECRETS if os.environ.get(n)]
    warnings = [
        f"{name} is set directly in the environment; prefer {name}_FILE or the keyring"
        for name in env_exposed
    ]
    return DoctorReport(
        keyring=store.keyring_status(),
        secrets=checks,
        problems=problems,
        warnings=warnings + store.warnings,
        ok=not problems,
    )


def doctor_with_router(context: Context) -> DoctorReport:
    """`doctor`, plus one cheap authenticated Router call when a Router key is set.

    Any problem is a `ConfigError` carrying the report.
    """
    from zerog_cli.services.infer_router import check_key
    from zerog_cli.zerog.router import API_KEY_SECRET

    report = doctor(context.secrets)
    if context.secrets.get(API_KEY_SECRET) is not None:
        checked = check_key(context)
        report.secrets = [
            replace(row, status=checked["status"])
            if row.name == API_KEY_SECRET and row.status == "ok"
            else row
            for row in report.secrets
        ]
        if checked["status"] == "invalid":
            report.problems.append(f"{API_KEY_SECRET}: {checked['problem']}")
            report.ok = False
        elif not checked["ok"]:
            report.warnings.append(f"{API_KEY_SECRET} not checked: {checked['problem']}")
    if report.problems:
        raise ConfigError("; ".join(report.problems), report=report)
    return report
