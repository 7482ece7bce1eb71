"""`zerog secrets set|ls|rm|doctor`: names and sources only, never values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from zerog_cli.cli.common import (
    command,
    examples,
    new_app,
    printing_failed_report,
    results,
    state,
)
from zerog_cli.errors import UsageError
from zerog_cli.infra.choices import SecretStoreKind
from zerog_cli.infra.output import Column
from zerog_cli.infra.stdin import is_terminal, standard_input

if TYPE_CHECKING:
    from zerog_cli.services.secrets_report import DoctorReport

app = new_app(
    "Manage secrets: environment, NAME_FILE paths, the OS keyring or zerog's 0600 store.",
    "zerog secrets ls",
    "zerog secrets set ZEROG_STORAGE_PRIVATE_KEY",
)


def _read_value(name: str, from_stdin: bool) -> str:
    if from_stdin:
        value = standard_input("`zerog secrets set --stdin`").read().removesuffix("\n")
    elif is_terminal():
        value = typer.prompt(f"{name}", hide_input=True, confirmation_prompt=True)
    else:
        raise UsageError("stdin is not a terminal; pass --stdin to read the value from it")
    if not value:
        raise UsageError(f"no value given for {name}")
    return value


@command(
    app,
    "set",
    result=results("secrets_report.SecretStored"),
    epilog=examples(
        "zerog secrets set ZEROG_STORAGE_PRIVATE_KEY",
        "cat /run/secrets/key | zerog secrets set ZEROG_STORAGE_PRIVATE_KEY --stdin",
    ),
)
def set_secret(
    name: Annotated[str, typer.Argument(help="Secret name, e.g. ZEROG_STORAGE_PRIVATE_KEY.")],
    from_stdin: Annotated[bool, typer.Option("--stdin", help="Read the value from stdin.")] = False,
    store: Annotated[
        SecretStoreKind,
        typer.Option("--store", help="auto (keyring, else file), keyring or file."),
    ] = SecretStoreKind.AUTO,
) -> None:
    """Store a secret (hidden prompt, or --stdin). Never echoed."""
    from zerog_cli.infra.secrets import validate_name
    from zerog_cli.services.secrets_report import SecretStored, checked_value

    validate_name(name)
    current = state()
    value = checked_value(name, _read_value(name, from_stdin))
    where = current.context.secrets.set(name, value, store=store)
    current.output.result(SecretStored(name, where), f"{name} stored in {where}")


@command(
    app,
    "ls",
    result=results("secrets_report.SecretList"),
    epilog=examples("zerog secrets ls", "zerog secrets ls --json"),
)
def list_command() -> None:
    """List secret names, whether each is present and where it was found."""
    from zerog_cli.services.secrets_report import list_secrets

    current = state()
    listing = list_secrets(current.context.secrets)
    columns = [
        Column("name", "name"),
        Column("present", "present", lambda v: "yes" if v else "no"),
        Column("source", "source", lambda v: v or "-"),
        Column("purpose", "purpose"),
    ]
    current.output.result(listing, lambda: current.output.table(listing.secrets, columns))


@command(
    app,
    "rm",
    result=results("secrets_report.SecretRemoved"),
    epilog=examples("zerog secrets rm JWT_SECRET"),
)
def remove(name: Annotated[str, typer.Argument(help="Secret name.")]) -> None:
    """Remove a secret from the keyring and zerog's file store."""
    from zerog_cli.services.secrets_report import SecretRemoved

    current = state()
    removed = current.context.secrets.remove(name)
    if not removed:
        current.output.warn(
            f"{name} was not in the keyring or the file store (env and _FILE are yours to unset)"
        )
    current.output.result(
        SecretRemoved(name, list(removed)),
        f"{name} removed from {', '.join(removed) or 'nowhere'}",
    )


@command(
    app,
    "doctor",
    result=results("secrets_report.DoctorReport"),
    epilog=examples("zerog secrets doctor", "zerog secrets doctor --json"),
)
def doctor() -> None:
    """Check keys parse, secret files are 0600 and the keyring works. Exit 8 on problems.

    A ZEROG_ROUTER_API_KEY that is set is tried with one authenticated call to
    the 0G Router (its balance): a revoked or invalid key is a problem, a
    Router that cannot be reached only a warning.
    """
    from zerog_cli.services.secrets_report import doctor_with_router

    current = state()

    def render(report: DoctorReport) -> None:
        def human() -> None:
            out = current.output
            out.echo(f"keyring: {report.keyring}")
            out.table(
                report.secrets,
                [
                    Column("name", "name"),
                    Column("status", "status"),
                    Column("source", "source", lambda v: v or "-"),
                ],
            )
            already_logged = current.context.secrets.warnings
            for warning in report.warnings:
                if warning not in already_logged:
                    out.warn(warning)

        current.output.result(report, human)

    with printing_failed_report(render):
        report = doctor_with_router(current.context)
    render(report)
