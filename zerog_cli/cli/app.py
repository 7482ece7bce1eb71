"""The `zerog` root: global options, command groups, and the one error handler.

`main()` is the only place where exceptions become exit codes: a
`ZerogError` prints one line on stderr and exits with its class's code; a
usage error exits 2; anything else is a bug (exit 1) whose traceback is shown
only with ``--verbose``, scrubbed of secrets.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from zerog_cli import __version__
from zerog_cli.cli.common import State, complete_profile, examples, reset_state, state
from zerog_cli.cli.lazy import ENTRIES, LazyGroup
from zerog_cli.errors import EXIT_CODE_MEANINGS, ExitCode, ZerogError
from zerog_cli.infra import redaction
from zerog_cli.infra.output import Output

if TYPE_CHECKING:
    from typer._click import Command as ClickCommand

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
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="devnet, testnet or mainnet.",
            show_default=False,
            autocompletion=complete_profile,
        ),
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
    reset_state(State(output=output, flags={"profile": profile} if profile else {}))


def _print_error(message: str) -> None:
    sys.stderr.write(redaction.scrub(f"error: {message}") + "\n")
    sys.stderr.flush()


def _verbose_requested(argv: list[str]) -> bool:
    return state().output.verbose or any(arg in ("-v", "--verbose") for arg in argv)


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


def _dispatch(command: ClickCommand, args: list[str]) -> int:
    try:
        result = command.main(args=args, prog_name="zerog", standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except ZerogError as exc:
        _print_error(str(exc))
        return int(exc.exit_code)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _print_error("interrupted")
        return 130
    except typer.TyperException as exc:
        click_context = getattr(exc, "ctx", None)
        hint = f" (see `{click_context.command_path} --help`)" if click_context else ""
        _print_error(exc.format_message() + hint)
        return int(exc.exit_code)
    except BrokenPipeError:
        return 0
    except Exception as exc:
        _print_error(f"internal error: {type(exc).__name__}: {exc}")
        if _verbose_requested(args):
            import traceback

            sys.stderr.write(redaction.scrub("".join(traceback.format_exc())))
        else:
            sys.stderr.write(
                "(run with --verbose for the traceback; this is a bug, please report it)\n"
            )
        return int(ExitCode.INTERNAL)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (what `main` passes to sys.exit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    reset_state(State())
    command = typer.main.get_command(app)
    started = time.monotonic()
    code = _dispatch(command, args)
    current = state()
    try:
        seconds = time.monotonic() - started
        for problem in current.finish(_command_path(command, args), code, seconds):
            sys.stderr.write(redaction.scrub(f"warning: {problem}") + "\n")
    finally:
        current.close()
    return code


def main() -> None:
    sys.exit(run())
