"""One exception hierarchy for every layer; each class carries its exit code.

The CLI root (`zerog_cli.cli.app`) is the only place that turns these into a
process exit: it prints ``str(error)`` as one line on stderr and exits with
``error.exit_code``. Messages must never contain secret values.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in README.md and `zerog --help`."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    INTEGRITY = 3
    QUOTA = 4
    PERMISSION = 5
    NETWORK = 6
    NOT_FOUND = 7
    CONFIG = 8
    LOCKED = 9


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "unexpected internal error (a bug; traceback only with --verbose)",
    ExitCode.USAGE: "usage error: bad flag, bad argument, bad input file",
    ExitCode.INTEGRITY: "integrity failure: checksum, Merkle proof or root mismatch",
    ExitCode.QUOTA: "quota or budget exceeded (or account short of funds)",
    ExitCode.PERMISSION: "permission denied (namespace ACL, replayed nonce)",
    ExitCode.NETWORK: "network unavailable: retries exhausted or circuit breaker open",
    ExitCode.NOT_FOUND: "not found (namespace, object, backup, root)",
    ExitCode.CONFIG: "configuration or secret missing or invalid",
    ExitCode.LOCKED: "another run holds the lock (cron overlap)",
}


class ZerogError(Exception):
    """Base class: an expected failure with a one-line message and an exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} ({self.hint})" if self.hint else message


class UsageError(ZerogError):
    exit_code = ExitCode.USAGE


class IntegrityError(ZerogError):
    exit_code = ExitCode.INTEGRITY


class QuotaExceeded(ZerogError):
    exit_code = ExitCode.QUOTA


class PermissionDenied(ZerogError):
    exit_code = ExitCode.PERMISSION


class NetworkUnavailable(ZerogError):
    exit_code = ExitCode.NETWORK


class NotFound(ZerogError):
    exit_code = ExitCode.NOT_FOUND


class ConfigError(ZerogError):
    exit_code = ExitCode.CONFIG


class LockHeld(ZerogError):
    exit_code = ExitCode.LOCKED


class ProtocolError(ZerogError):
    """A peer answered something the protocol does not allow (bad shape, bad value).

    Treated like an unreachable network: the operation could not be completed
    through that peer, and no local state is wrong.
    """

    exit_code = ExitCode.NETWORK


class RemoteError(ProtocolError):
    """A JSON-RPC or HTTP peer returned an error object.

    ``kind`` classifies it from the peer's message, as the 0G clients do:
    "retryable", "already-exists", "not-found" or "fatal".
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        data: object = None,
        kind: str = "fatal",
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.data = data
        self.kind = kind
        self.endpoint = endpoint
