"""What every command shares: the invocation state and the common options.

`command(app)` registers a function as a Typer command and gives it
``--json``, ``-v/--verbose`` and ``-q/--quiet`` (accepted before or after the
subcommand), so
no command writes its own ``if json:`` flag handling. Commands then call
`state()` for the `Output` and the services `Context`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import operator
import sys
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from zerog_cli.errors import ZerogError
from zerog_cli.infra.output import Output, schema_id, terminal_safe

if TYPE_CHECKING:
    from pathlib import Path

    from zerog_cli.services.context import Context
    from zerog_cli.services.download import NodeFetch

F = TypeVar("F", bound=Callable[..., Any])


def complete_namespace(ctx: typer.Context) -> list[str]:
    """Namespace names from the ledger, for shell completion (none when there is no ledger)."""
    from zerog_cli.services.completion import namespace_names

    return namespace_names(ctx.find_root().params.get("profile"))


def complete_backup_id(ctx: typer.Context) -> list[tuple[str, str]]:
    """Live backup ids from the ledger with what each holds, for shell completion."""
    from zerog_cli.services.completion import live_backups

    profile = ctx.find_root().params.get("profile")
    return [(str(backup_id), summary) for backup_id, summary in live_backups(profile)]


def namespace_option(help: str) -> Any:
    """``--ns NAME``, completed from the ledger's namespaces; ``help`` says what it picks."""
    return typer.Option("--ns", help=help, show_default=False, autocompletion=complete_namespace)


StoreNamespace = Annotated[str | None, namespace_option("Namespace (default: 'default').")]
"""``--ns`` of the commands that store an object (upload, backup create)."""

NamespaceFilter = Annotated[str | None, namespace_option("Only this namespace.")]
LabelFilter = Annotated[
    str | None, typer.Option("--label", help="Only backups with this label.", show_default=False)
]
"""``--ns`` and ``--label`` of the commands that pick backups (verify, backup ls, prune…)."""

AsUser = Annotated[
    str | None,
    typer.Option(
        "--as", help="Act as this user (default: config user, then login).", show_default=False
    ),
]
"""The ``--as USER`` option every command that acts for a user takes."""

Limit = Annotated[
    int | None,
    typer.Option("--limit", help="At most N rows (default: all).", show_default=False),
]
Offset = Annotated[
    int,
    typer.Option("--offset", help="Skip the first N rows: the next page is --offset + --limit."),
]
"""``--limit N --offset N``: how every listing pages (in SQL, over a stable order)."""

GasLimitOption = Annotated[
    int | None,
    typer.Option(
        "--gas-limit",
        help="Gas limit (default: gas_limit, else estimate + 20%).",
        show_default=False,
    ),
]

EncryptOption = Annotated[
    bool | None,
    typer.Option(
        "--encrypt/--no-encrypt",
        help="AES-256-CTR with ENCRYPTION_KEY (default: the namespace's setting).",
        show_default=False,
    ),
]


@dataclass
class State:
    """This invocation's output settings and (built on first use) its services context."""

    output: Output = field(default_factory=Output)
    flags: dict[str, Any] = field(default_factory=dict)
    _context: Context | None = None

    @property
    def context(self) -> Context:
        if self._context is None:
            from zerog_cli.services.context import Context

            self._context = Context(flags=dict(self.flags), notify=self.output.info)
        return self._context

    @property
    def ledger_path(self) -> Path | None:
        """The ledger file, once this run has opened it or loaded its settings."""
        return self._context.ledger_path if self._context is not None else None

    def finish(self, command: str, exit_code: int, seconds: float) -> list[str]:
        """Write the run's metrics if a context was used; returns problems to warn about."""
        if self._context is None:
            return []
        return self._context.finish(command, exit_code, seconds)

    def close(self) -> None:
        if self._context is not None:
            self._context.close()


_current = State()


def state() -> State:
    """The state of this invocation (set up by the root callback)."""
    return _current


def print_node_stats(nodes: Sequence[NodeFetch], prefix: str = "") -> None:
    """With -v: what each storage node served of a fetch, its speed and its faults."""
    from zerog_cli.infra.units import format_size

    out = state().output
    for node in nodes:
        out.detail(
            f"{prefix}node {node.url}: {node.segments} segments, {format_size(node.bytes)}, "
            f"{node.mb_per_s:.1f} MB/s ({node.corrupt} corrupt, {node.failed} failed, "
            f"{node.stalled} stalled)"
        )


def reset_state(new: State) -> None:
    global _current
    _current = new


@contextlib.contextmanager
def printing_failed_report(render: Callable[[Any], None]) -> Iterator[None]:
    """When the service inside raises an error carrying its report (a failing verify,
    status, doctor…), print that report with ``render``, as on success; the error
    then goes on to the root (`cli.app`), which alone turns it into the exit code."""
    try:
        yield
    except ZerogError as error:
        if error.report is not None:
            render(error.report)
        raise


def _common_parameters() -> list[inspect.Parameter]:
    json_option = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
    verbose_option = Annotated[
        bool, typer.Option("--verbose", "-v", help="More detail on stderr; tracebacks on bugs.")
    ]
    quiet_option = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]
    options = {"json_": json_option, "verbose_": verbose_option, "quiet_": quiet_option}
    return [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=annotation
        )
        for name, annotation in options.items()
    ]


RESULT_ATTRIBUTE = "zerog_result"
"""The attribute of a command's callback that holds its `Results`."""


@dataclass(frozen=True)
class Results:
    """The result type(s) of a command, by name: ``backups.BackupList`` is
    ``zerog_cli.services.backups.BackupList``. Imported when the command runs, so
    building a command group (``--help``) does not import its services."""

    names: tuple[str, ...]

    def _places(self) -> Iterator[tuple[str, str]]:
        """(module, attribute) of each declared type."""
        for name in self.names:
            module, _, attribute = name.rpartition(".")
            if not module.startswith("zerog_cli."):
                module = f"zerog_cli.services.{module}"
            yield module, attribute

    def resolve(self) -> Any:
        """The type, or the union of the types when a command has several."""
        import importlib

        found = [
            getattr(importlib.import_module(module), attribute)
            for module, attribute in self._places()
        ]
        return functools.reduce(operator.or_, found)

    def declares(self, value: object) -> bool:
        """Whether ``value`` is an instance of a declared type, importing nothing: no
        instance of a type whose module is not imported yet can exist, and importing
        every module of a union (download's five) cost each run's start-up."""
        for module, attribute in self._places():
            loaded = sys.modules.get(module)
            if loaded is not None and isinstance(value, getattr(loaded, attribute)):
                return True
        return False


def results(*names: str) -> Results:
    """``results("backups.BackupList", "backups.BackupView")``: see `Results`."""
    return Results(names)


def result_type(callback: Any) -> Any:
    """The result type (or union) a command's callback declares (`command(..., result=...)`)."""
    declared: Results | None = getattr(callback, RESULT_ATTRIBUTE, None)
    return None if declared is None else declared.resolve()


def current_click_context() -> Any:
    """The running command's Click context (Typer's vendored Click), or None."""
    from typer._click.globals import get_current_context

    return get_current_context(silent=True)


def command(
    app: typer.Typer, name: str | None = None, *, result: Results | None = None, **kwargs: Any
) -> Callable[[F], F]:
    """Register ``fn`` on ``app`` with the common ``--json``, ``-v`` and ``-q`` options.

    ``result`` is the dataclass (or union of dataclasses) the command passes to
    `Output.result`: its JSON document is derived from it, and its schema is
    published in ``docs/json/`` by ``tools/json_schema.py``.
    """

    def decorate(fn: F) -> F:
        # Resolve the (string) annotations in fn's own module now: Typer reads
        # them from the wrapper, whose globals are this module's.
        hints = typing.get_type_hints(fn, include_extras=True)
        signature = inspect.signature(fn)
        parameters = [
            parameter.replace(annotation=hints.get(name, parameter.annotation))
            for name, parameter in signature.parameters.items()
        ]

        @functools.wraps(fn)
        def wrapper(
            *args: Any, json_: bool = False, verbose_: bool = False, quiet_: bool = False, **kw: Any
        ) -> Any:
            output = state().output
            output.json_mode = output.json_mode or json_
            output.verbose = output.verbose or verbose_
            output.quiet = output.quiet or quiet_
            output.declares = None if result is None else result.declares
            click_context = current_click_context()
            if click_context is not None:
                output.schema = schema_id(click_context.command_path.split()[1:])
            from zerog_cli.infra import logs

            logs.configure(output.verbose, output.quiet)
            return fn(*args, **kw)

        all_parameters = [*parameters, *_common_parameters()]
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=all_parameters, return_annotation=None
        )
        wrapper.__annotations__ = {p.name: p.annotation for p in all_parameters}
        setattr(wrapper, RESULT_ATTRIBUTE, result)
        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate


_WHOLE_SUMMARY = sys.maxsize
"""A summary length limit no summary reaches: Click then cuts nothing."""


class ZerogGroup(TyperGroup):
    """The help behaviour every zerog command group shares.

    A bare group (`zerog`, `zerog backup`) prints its help on stdout and exits
    0, as restic and rclone do: asking what a group offers is not a usage
    error. The command list shows each command's whole summary (its first
    sentence), wrapped, never cut off with "...".
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            typer.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(_WHOLE_SUMMARY)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def new_app(
    help_text: str, *example_lines: str, group: type[ZerogGroup] = ZerogGroup
) -> typer.Typer:
    """A command group with zerog's defaults (no locals in tracebacks, no completion);
    ``group`` is a `ZerogGroup` that parses its arguments its own way (`infer`)."""
    return typer.Typer(
        cls=group,
        help=help_text,
        epilog=examples(*example_lines) if example_lines else None,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
        rich_markup_mode=None,
    )


def examples(*lines: str) -> str:
    """An epilog listing example invocations, kept verbatim by the help formatter."""
    body = "\n".join(f"  $ {line}" for line in lines)
    return f"\b\nExamples:\n{body}"


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal (and not --quiet); else None."""
    output = state().output
    if output.quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    description = escape(terminal_safe(description, one_line=True))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=output.console(sys.stderr),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(phase: str, done: int, total: int) -> None:
            if phase == "sync":
                # Seconds, not bytes: say it in the description, keep the bar empty.
                waiting = f"waiting for storage nodes to see the transaction: {done}/{total} s"
                bar.update(task, description=f"{description} ({waiting})", completed=0, total=None)
                return
            bar.update(task, description=f"{description} ({phase})", completed=done, total=total)

        yield update


def confirm_unless_yes(yes: bool, question: str, *, unattended: str, declined: str) -> None:
    """Go on with ``--yes``; ask ``question`` when someone is at a terminal; else exit 2.

    Cron and scripts have no terminal: they never hang on a prompt, and never
    go on without the flag. ``unattended`` is the refusal without a terminal (its
    hint: ``pass --yes``), ``declined`` the one when the answer is no.
    """
    from zerog_cli.errors import UsageError
    from zerog_cli.infra.stdin import is_terminal

    if yes:
        return
    if not is_terminal():
        raise UsageError(unattended, hint="pass --yes")
    if not typer.confirm(question, default=False, err=True):
        raise UsageError(declined)


def confirm_destructive(yes: bool, what: str) -> None:
    """`confirm_unless_yes` before destroying something; ``what`` says what would be lost."""
    confirm_unless_yes(
        yes,
        f"{what}. Go on?",
        unattended=f"{what}; nothing was changed",
        declined="not confirmed; nothing was changed",
    )


@contextlib.contextmanager
def steps_progress(description: str) -> Iterator[Callable[[int, int, str], None] | None]:
    """A "N/M done" bar on stderr for runs of many items, or None.

    Shown only when stderr is a terminal and neither --quiet nor --json was
    given: cron, pipes and scripts never see it. The updater takes the items
    done, the items in all, and what is being worked on now.
    """
    output = state().output
    if output.quiet or output.json_mode or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.console(sys.stderr),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int, current: str) -> None:
            # Drawn at once, not at the next 10 Hz tick: an item checked faster than that
            # was never shown at all.
            bar.update(
                task,
                description=f"{description} {current}",
                completed=done,
                total=total,
                refresh=True,
            )

        yield update
