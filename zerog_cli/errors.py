"""One exception hierarchy for every layer; each class carries its exit code.

The CLI root (`zerog_cli.cli.app`) is the only place that turns these into a
process exit: it prints ``str(error)`` as one line on stderr and exits with
``error.exit_code``. Messages must never contain secret values.

Failures of the machine rather than of zerog (a full disk, a read-only file
system, a damaged ledger file) reach the root as `OSError` or `sqlite3`
errors from wherever they happened; `environment_failure` turns them into
the class of this hierarchy that says what broke and what to do next.
"""

from __future__ import annotations

import errno
import os
import sys
from enum import IntEnum
from pathlib import Path


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
    ENVIRONMENT = 10
    INTERRUPTED = 130
    STDOUT_CLOSED = 141
    TERMINATED = 143


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "unexpected internal error (a bug; traceback only with --verbose)",
    ExitCode.USAGE: "usage error: bad flag, bad argument, bad input file",
    ExitCode.INTEGRITY: "integrity failure: checksum, Merkle proof or root mismatch",
    ExitCode.QUOTA: "quota or budget exceeded (or account short of funds)",
    ExitCode.PERMISSION: "permission denied (namespace ACL, replayed nonce)",
    ExitCode.NETWORK: "network unavailable: retries exhausted or circuit breaker open",
    ExitCode.NOT_FOUND: "not found (namespace, object, backup, root)",
    ExitCode.CONFIG: "configuration or secret missing or invalid; home never initialised",
    ExitCode.LOCKED: "another run holds the lock (cron overlap)",
    ExitCode.ENVIRONMENT: (
        "local input or environment failure: disk full, read-only file system,"
        " permission denied on a local path, a failed input stream"
    ),
    ExitCode.INTERRUPTED: "interrupted (SIGINT, Ctrl-C), after saying what was left",
    ExitCode.STDOUT_CLOSED: "stdout closed by its reader (| head): stopped quietly, as on SIGPIPE",
    ExitCode.TERMINATED: "terminated (SIGTERM, systemd stop), after saying what was left",
}


class ZerogError(Exception):
    """Base class: an expected failure with a one-line message and an exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL
    category = "internal"
    """The failure's name in the ``--json`` error document (``zerog.error/1``)."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        report: object = None,
        report_says_why: bool = False,
    ) -> None:
        super().__init__(message)
        self.hint = hint
        self.report = report
        """A failing report (verify, status, doctor…): the command prints it as it would
        on success (`cli.common.printing_failed_report`), then the root exits with this
        error's code."""
        self.report_says_why = report_says_why
        """The printed report already says what is wrong: the root adds no error line."""

    @property
    def message(self) -> str:
        """The message without the hint."""
        return super().__str__()

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(ZerogError):
    exit_code = ExitCode.USAGE
    category = "usage"


class IntegrityError(ZerogError):
    exit_code = ExitCode.INTEGRITY
    category = "integrity"


class QuotaExceeded(ZerogError):
    exit_code = ExitCode.QUOTA
    category = "quota"


class PermissionDenied(ZerogError):
    exit_code = ExitCode.PERMISSION
    category = "permission"


class NetworkUnavailable(ZerogError):
    exit_code = ExitCode.NETWORK
    category = "network"


class NotFound(ZerogError):
    exit_code = ExitCode.NOT_FOUND
    category = "not_found"


class ConfigError(ZerogError):
    exit_code = ExitCode.CONFIG
    category = "config"


class LockHeld(ZerogError):
    exit_code = ExitCode.LOCKED
    category = "locked"


class EnvironmentFailure(ZerogError):
    """The machine, not zerog or the network: disk full, read-only file system,
    permission denied on a local path, an input stream that failed."""

    exit_code = ExitCode.ENVIRONMENT
    category = "environment"


_BY_EXIT_CODE: dict[int, type[ZerogError]] = {
    int(cls.exit_code): cls
    for cls in (
        UsageError,
        IntegrityError,
        QuotaExceeded,
        PermissionDenied,
        NetworkUnavailable,
        NotFound,
        ConfigError,
        LockHeld,
        EnvironmentFailure,
    )
}


def error_class(exit_code: int) -> type[ZerogError]:
    """The class of this hierarchy that exits with ``exit_code`` (a report that gathered
    several failures, such as `zerog status`, raises the one it ranks first)."""
    return _BY_EXIT_CODE.get(exit_code, ZerogError)


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd stop), raised in the main thread by the CLI's signal handler.

    A KeyboardInterrupt, so everything that cleans up after Ctrl-C (temporary
    files, ledger transactions, quota reservations) cleans up after it too.
    """

    exit_code = ExitCode.TERMINATED


class ProtocolError(ZerogError):
    """A peer answered something the protocol does not allow (bad shape, bad value).

    Treated like an unreachable network: the operation could not be completed
    through that peer, and no local state is wrong.
    """

    exit_code = ExitCode.NETWORK
    category = "network"


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


def note_unrecorded_payment(error: BaseException, tx_hash: str) -> None:
    """Mark ``error`` as raised after payment ``tx_hash`` was sent but before it was recorded.

    The payment journal keeps the transaction, and the next run that pays
    settles it (records it, and adopts it when it uploads the same file), so
    the CLI root can tell the operator that a rerun records it without paying
    again.
    """
    error.unrecorded_payment = tx_hash  # type: ignore[attr-defined]


def unrecorded_payment(error: BaseException) -> str | None:
    """The transaction noted on ``error``, or on an error it was raised while handling."""
    seen: BaseException | None = error
    while seen is not None:
        value = getattr(seen, "unrecorded_payment", None)
        if isinstance(value, str):
            return value
        seen = seen.__context__
    return None


LEDGER_RECOVERY_HINT = (
    "stop the cron jobs and put the last good `zerog ledger backup` copy in its place,"
    ' as in runbooks/incident-response.md "Ledger damaged"'
)

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_READ_ONLY = frozenset({errno.EROFS})
_NO_PERMISSION = frozenset({errno.EACCES, errno.EPERM})


def _os_failure(exc: OSError) -> ZerogError | None:
    path = f" {exc.filename}" if exc.filename else ""
    if exc.errno in _DISK_FULL:
        return EnvironmentFailure(
            f"no space left on device{' writing' + path if path else ''}",
            hint="free space on that file system or pick another destination, then rerun",
        )
    if exc.errno in _READ_ONLY:
        return EnvironmentFailure(
            f"read-only file system{':' + path if path else ''}",
            hint="remount it read-write or point ZEROG_HOME or -o at a writable path, then rerun",
        )
    if exc.errno in _NO_PERMISSION:
        return EnvironmentFailure(
            f"permission denied{':' + path if path else ''}",
            hint="check its owner and mode, or run zerog as the user that owns it",
        )
    if exc.errno == errno.EIO:
        return EnvironmentFailure(
            f"I/O error{' on' + path if path else ''}", hint="check the disk (dmesg), then rerun"
        )
    return None


_NEARLY_FULL_BYTES = 1 << 20


def _nearly_full(folder: Path) -> bool:
    """Less than 1 MiB free: SQLite reports a full disk while growing its -shm
    file as a plain "disk I/O error" (SQLITE_IOERR_SHMSIZE)."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < _NEARLY_FULL_BYTES


def _sqlite_failure(exc: Exception, ledger: Path | None) -> ZerogError | None:
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is None or not isinstance(exc, sqlite3.DatabaseError):
        return None
    text = str(exc)
    name = f"ledger {ledger}" if ledger else "the ledger"
    if "disk is full" in text or (
        "disk I/O error" in text and ledger is not None and _nearly_full(ledger.parent)
    ):
        return EnvironmentFailure(
            f"{name}: no space left on device ({text})",
            hint="free space on the file system of ZEROG_HOME, then rerun",
        )
    if "readonly database" in text or "read-only" in text:
        return EnvironmentFailure(
            f"{name} is read-only ({text})",
            hint="remount ZEROG_HOME read-write; status, backup ls, ledger sql and quota show"
            " work on a read-only home",
        )
    if "unable to open database file" in text:
        return EnvironmentFailure(
            f"cannot open {name} ({text})",
            hint="check that ZEROG_HOME exists and that this user may read and write it",
        )
    if "disk I/O error" in text:
        return EnvironmentFailure(
            f"{name}: disk I/O error", hint="check the disk (dmesg), then rerun"
        )
    if isinstance(exc, sqlite3.OperationalError):
        return None
    return ConfigError(f"{name} is damaged ({text})", hint=LEDGER_RECOVERY_HINT)


def environment_failure(exc: BaseException, ledger: Path | None = None) -> ZerogError | None:
    """The hierarchy's error for a failure of the machine (``OSError``, ``sqlite3``), or None.

    ``ledger`` names the ledger file in messages about SQLite errors (zerog
    opens no other SQLite file while a command runs). An error that is not
    the machine's (a bug) gives None.
    """
    if isinstance(exc, OSError):
        return _os_failure(exc)
    if isinstance(exc, Exception):
        return _sqlite_failure(exc, ledger)
    return None
