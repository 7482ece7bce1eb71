"""`zerog completion bash|zsh|fish`: the shell script, and the answers it asks for.

The script (Typer's, for each shell) calls ``zerog`` back with
``_ZEROG_COMPLETE=complete_<shell>`` on every TAB press; `LazyGroup` hands
that request to `answer`, which lets Click's completion machinery walk the
commands and options and call the parameters' completers (namespace names and
backup ids from the ledger, profile names; see cli/common.py). Nothing of
this is imported for any other command, so `zerog --help` does not pay for it.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zerog_cli.cli.common import command, examples, results, state
from zerog_cli.services.completion import SETUP, CompletionScript

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from typer._click import Command as ClickCommand

PROG_NAME = "zerog"
COMPLETE_VAR = "_ZEROG_COMPLETE"


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def register(app: typer.Typer) -> None:
    command(
        app,
        "completion",
        result=results("completion.CompletionScript"),
        epilog=examples(*SETUP.values(), "zerog completion bash > /etc/bash_completion.d/zerog"),
    )(completion)


def completion(
    shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.", metavar="SHELL")],
) -> None:
    """Print the shell completion script for bash, zsh or fish.

    It completes commands, options, namespace names and backup ids (read from
    the ledger, read-only) and profile names. Load it from your shell's start-up
    file, as the examples show.
    """
    from typer._completion_shared import get_completion_script

    script = get_completion_script(
        prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell.value
    )
    state().output.result(CompletionScript.of(shell.value, script), script)


def answer(root: ClickCommand, ctx_args: MutableMapping[str, Any], instruction: str) -> None:
    """Print the completions a shell asked for with ``_ZEROG_COMPLETE``.

    The scripts ask ``complete_bash`` (Typer's order); Click's ``bash_complete``
    is understood too. No completions print nothing at all. Any other
    instruction is a `UsageError`.
    """
    from typer._click.shell_completion import ShellComplete
    from typer._completion_classes import BashComplete, FishComplete, ZshComplete

    from zerog_cli.errors import UsageError

    classes: dict[str, type[ShellComplete]] = {
        "bash": BashComplete,
        "zsh": ZshComplete,
        "fish": FishComplete,
    }
    first, _, second = instruction.partition("_")
    shell = second if first == "complete" else first
    if "complete" not in (first, second) or shell not in classes:
        raise UsageError(
            f"{COMPLETE_VAR}={instruction!r} is not a completion request"
            " (expected complete_bash, complete_zsh or complete_fish)"
        )
    completions = classes[shell](root, ctx_args, PROG_NAME, COMPLETE_VAR).complete()
    if completions:
        sys.stdout.write(completions + "\n")
