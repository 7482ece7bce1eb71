"""The `zerog` root: global options, command groups, and the one error handler.

`run()` is the only place where exceptions become exit codes: a `ZerogError`
prints one line on stderr and exits with its class's code (a failing report,
such as `zerog status`'s, was printed by its command and may say it all); a failure of the
machine (disk full, read-only file system, damaged ledger) becomes one first
(`errors.environment_failure`); a usage error exits 2; Ctrl-C and SIGTERM say
what was interrupted and what is left, then exit 130 and 143; a reader that
closes stdout early (`| head`) ends the run quietly with 141; anything else
is a bug (exit 1) whose traceback is shown only with ``--verbose``. With
``--json``, a failure before any result also prints one ``zerog.error/1``
document on stdout. Everything printed is scrubbed of secrets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from zerog_cli import __version__
from zerog_cli.cli.common import State, examples, reset_state, state
from zerog_cli.cli.lazy import ENTRIES, LazyGroup
from zerog_cli.errors import (
    EXIT_CODE_MEANINGS,
    ExitCode,
    Terminated,
    ZerogError,
    environment_failure,
    unrecorded_payment,
)
from zerog_cli.infra import redaction
from zerog_cli.infra.choices import Profile
from zerog_cli.infra.output import Output, terminal_safe

if TYPE_CHECKING:
    from types import FrameType

    from typer._click import Command as ClickCommand

ERROR_SCHEMA = "zerog.error/1"


@dataclass(frozen=True)
class ErrorDetail:
    """What failed: the exit code, its kind (``usage``, ``not_found``…), the message and a hint."""

    exit_code: int
    kind: str
    message: str
    hint: str | None


@dataclass(frozen=True)
class ErrorDocument:
    """A failure before any result, with --json: ``zerog.error/1``."""

    error: ErrorDetail


COMPLETE_VARIABLE = "_ZEROG_COMPLETE"

_EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {int(code)}  {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items()
)

app = typer.Typer(
    cls=LazyGroup,
    name="zerog",
    help="Operate a service on 0G Storage and 0G Compute: store, verify, back up, infer.",
    epilog=examples(
        "zerog init --profile devnet",
        "zerog --profile testnet config show",
        "zerog ledger status --json",
    )
    + "\n\n"
    + _EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zerog {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    profile: Annotated[
        Profile | None,
        typer.Option("--profile", "-p", help="Network profile for this run.", show_default=False),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON document on stdout.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="More detail on stderr.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Operate a service on 0G Storage and 0G Compute: store, verify, back up, infer."""
    output = Output(json_mode=json_output, verbose=verbose, quiet=quiet)
    reset_state(State(output=output, flags={"profile": profile.value} if profile else {}))


def _print_error(message: str) -> None:
    sys.stderr.write(terminal_safe(redaction.scrub(f"error: {message}"), one_line=True) + "\n")
    sys.stderr.flush()


def _verbose_requested(argv: list[str]) -> bool:
    return state().output.verbose or any(arg in ("-v", "--verbose") for arg in argv)


def _json_requested(argv: list[str]) -> bool:
    options = argv[: argv.index("--")] if "--" in argv else argv
    return state().output.json_mode or "--json" in options


def _command_path(root: ClickCommand, args: list[str]) -> str:
    """The subcommand names in ``args`` ("backup create"), for metrics labels."""
    names: list[str] = []
    current: object = None
    for arg in args:
        if current is None:
            if arg in ENTRIES:
                names.append(arg)
                current = root.get_command(None, arg)  # type: ignore[attr-defined]
            continue
        commands = getattr(current, "commands", None)
        if commands is None:
            break
        if arg in commands:
            names.append(arg)
            current = commands[arg]
    return " ".join(names) or "zerog"


def _fail(
    args: list[str],
    exit_code: int,
    kind: str,
    message: str,
    hint: str | None,
    payment: str | None = None,
) -> int:
    """One line on stderr and, with --json, the error document on stdout; returns the code."""
    if payment is not None:
        message += (
            f"; payment {payment} was sent and is not recorded yet:"
            " a rerun records it without paying again"
        )
    _print_error(f"{message} ({hint})" if hint else message)
    _error_document(args, exit_code, kind, message, hint)
    return exit_code


def _error_document(
    args: list[str], exit_code: int, kind: str, message: str, hint: str | None
) -> None:
    """With --json, the ``zerog.error/1`` document on stdout (unless a result was printed)."""
    if not _json_requested(args):
        return
    output = state().output
    output.json_mode = True
    document = ErrorDocument(ErrorDetail(exit_code, kind, message, hint))
    try:
        output.failure(ERROR_SCHEMA, document)
    except BrokenPipeError:
        _silence_stdout()


def _interrupted(args: list[str], what: str, error: BaseException) -> int:
    """Say what Ctrl-C or SIGTERM stopped and what is left to do."""
    terminated = isinstance(error, Terminated)
    code = ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED
    stopped = f"`zerog {what}` stopped by {'SIGTERM' if terminated else 'Ctrl-C (SIGINT)'}"
    payment = unrecorded_payment(error)
    if payment is not None:
        message = f"{stopped}: payment {payment} sent, not yet recorded"
        hint = "rerun it to record the payment without paying again"
    else:
        message = f"{stopped} before it finished; nothing half-done was kept"
        hint = "rerun it to finish"
    return _fail(args, int(code), "interrupted", f"interrupted: {message}", hint)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again.

    What Python's documentation recommends for a closed pipe (signal module,
    "Note on SIGPIPE").
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _stdout_closed() -> int:
    """The reader closed stdout (`| head -1`): stop quietly, as a process killed by
    SIGPIPE does (exit 141), so a pipeline under ``set -o pipefail`` still sees
    that zerog did not finish."""
    _silence_stdout()
    return int(ExitCode.STDOUT_CLOSED)


def _flush_stdout(args: list[str], code: int) -> int:
    """Flush what the command printed now, not at interpreter exit where a failure
    (closed pipe, full disk) would print a traceback and exit 120."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_closed()
    except OSError as exc:
        _silence_stdout()
        if code != 0:
            return code
        failure = environment_failure(exc)
        if failure is None:
            return _internal(args, exc)
        return _fail(args, int(failure.exit_code), failure.category, failure.message, None)
    return code


def _internal(args: list[str], exc: Exception) -> int:
    """A bug: the message, and the traceback only with --verbose."""
    message = f"internal error: {type(exc).__name__}: {exc}"
    hint = "run with --verbose for the traceback; this is a bug, please report it"
    _print_error(message)
    if _verbose_requested(args):
        import traceback

        sys.stderr.write(redaction.scrub("".join(traceback.format_exc())))
    else:
        sys.stderr.write(f"({hint})\n")
    _error_document(args, int(ExitCode.INTERNAL), "internal", message, hint)
    return int(ExitCode.INTERNAL)


def _invoke(command: ClickCommand, args: list[str]) -> int:
    """Parse and run the command, letting every exception through to `_dispatch`.

    Not Click's ``main()``: it turns Ctrl-C into a silent exit 130 and a
    closed stdout into exit 1 before the root can see either. Shell
    completion requests (``_ZEROG_COMPLETE`` set) still go through it.
    """
    if COMPLETE_VARIABLE in os.environ:
        result = command.main(args=args, prog_name="zerog", standalone_mode=False)
    else:
        with command.make_context("zerog", args) as context:
            result = command.invoke(context)
    return int(result) if isinstance(result, int) else 0


def _dispatch(command: ClickCommand, args: list[str], what: str) -> int:
    try:
        return _invoke(command, args)
    except ZerogError as exc:
        if exc.report_says_why:
            _error_document(args, int(exc.exit_code), exc.category, exc.message, exc.hint)
            return int(exc.exit_code)
        return _fail(
            args, int(exc.exit_code), exc.category, exc.message, exc.hint, unrecorded_payment(exc)
        )
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort) as exc:
        return _interrupted(args, what, exc)
    except typer.TyperException as exc:
        click_context = getattr(exc, "ctx", None)
        hint = f"see `{click_context.command_path} --help`" if click_context else None
        return _fail(args, int(exc.exit_code), "usage", exc.format_message(), hint)
    except BrokenPipeError:
        return _stdout_closed()
    except Exception as exc:
        failure = environment_failure(exc, state().ledger_path)
        if failure is None:
            return _internal(args, exc)
        return _fail(
            args,
            int(failure.exit_code),
            failure.category,
            failure.message,
            failure.hint,
            unrecorded_payment(exc),
        )


def _raise_terminated(signal_number: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While a command runs, SIGTERM (systemd stop) unwinds it as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        # None: a handler installed outside Python, which Python cannot reinstall.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (what `main` passes to sys.exit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    reset_state(State())
    command = typer.main.get_command(app)
    what = _command_path(command, args)
    started = time.monotonic()
    with _sigterm_interrupts():
        code = _dispatch(command, args, what)
        code = _flush_stdout(args, code)
    current = state()
    try:
        seconds = time.monotonic() - started
        for problem in current.finish(what, code, seconds):
            sys.stderr.write(
                terminal_safe(redaction.scrub(f"warning: {problem}"), one_line=True) + "\n"
            )
    finally:
        current.close()
    return code


def main() -> None:
    sys.exit(run())
