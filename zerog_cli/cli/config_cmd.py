"""`zerog config show|get|set` and `zerog init`."""

from __future__ import annotations

from typing import Annotated

import typer

from zerog_cli.cli.common import command, examples, new_app, results, state
from zerog_cli.infra.choices import Profile
from zerog_cli.infra.output import Column

app = new_app(
    "Show and change configuration (flag > ZEROG_* env > config file > profile).",
    "zerog config show",
    "zerog config get http_max_tries",
    "zerog config set user alice",
)

INIT_EXAMPLES = examples("zerog init", "zerog init --profile testnet --user alice")


@command(
    app,
    "show",
    result=results("config.ConfigShown"),
    epilog=examples("zerog config show", "zerog --profile mainnet config show --json"),
)
def show() -> None:
    """Show every setting, its value and where the value came from."""
    from zerog_cli.infra.config import KEYS
    from zerog_cli.services import config

    current = state()
    shown = config.show(current.context.settings)

    def human() -> None:
        current.output.echo(f"profile {shown.profile} · config file {shown.config_file}")
        rows = [
            {"key": key, "value": KEYS[key].display(setting.value), "source": setting.source}
            for key, setting in shown.settings.items()
        ]
        current.output.table(
            rows,
            [Column("key", "key"), Column("value", "value"), Column("source", "source")],
        )

    current.output.result(shown, human)


@command(
    app,
    "get",
    result=results("config.ConfigValue"),
    epilog=examples(
        "zerog config get http_max_tries",
        "zerog config get tiers.free.storage",
        "zerog --profile testnet config get rpc_url --json",
    ),
)
def get_value(
    key: Annotated[
        str, typer.Argument(help="Setting name, or tiers.NAME.storage|tokens|monthly_usd.")
    ],
) -> None:
    """Print the value in force for one setting (--json: value and source). Exit 2 if unknown.

    The value is printed as `zerog config set` takes it (sizes in bytes,
    durations in seconds, money in dollars); an unset value or an unlimited
    tier limit prints an empty line.
    """
    from zerog_cli.infra.config import exact_text
    from zerog_cli.services import config

    found = config.get(state().context.settings, key)
    state().output.result(found, exact_text(found.key, found.value))


@command(
    app,
    "set",
    result=results("config.ConfigStored"),
    epilog=examples(
        "zerog config set user alice",
        "zerog config set max_upload_size 50MB",
        "zerog config set rpc_url https://evmrpc-testnet.0g.ai --profile testnet",
        "zerog config set tiers.premium.monthly_usd 750",
    ),
)
def set_value(
    key: Annotated[
        str, typer.Argument(help="Setting name, or tiers.NAME.storage|tokens|monthly_usd.")
    ],
    value: Annotated[str, typer.Argument(help="New value (sizes like 10MB, durations like 60s).")],
    profile: Annotated[
        Profile | None,
        typer.Option(
            "--profile",
            help="Store it for one profile only ([profiles.NAME]).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Store one setting in the config file (validated; the file stays 0600).

    A value outside the key's range (http_max_tries 1-100, timeouts at least
    1s, …) is exit 2 and nothing is written. Setting one limit of a tier keeps
    its other limits; an empty value makes a tier limit unlimited.
    """
    from zerog_cli.services import config

    stored = config.store(key, value, profile=profile)
    where = f" for profile {profile}" if profile else ""
    state().output.result(stored, f"{key} = {value}{where} ({stored.file})")


def register(app: typer.Typer) -> None:
    command(app, "init", result=results("setup.Initialised"), epilog=INIT_EXAMPLES)(init)


def init(
    profile: Annotated[
        Profile, typer.Option("--profile", "-p", help="Network profile to set up.")
    ] = Profile.DEVNET,
    user: Annotated[
        str | None, typer.Option("--user", help="Default acting user.", show_default=False)
    ] = None,
) -> None:
    """Create $ZEROG_HOME, the config file (0600) and the ledger for a profile."""
    from zerog_cli.services.setup import initialise

    current = state()
    current.context.override(profile=profile.value)
    report = initialise(current.context, profile=profile, user=user)

    def human() -> None:
        out = current.output
        out.fields(
            [
                ("profile", report.profile),
                ("config", report.config_file),
                ("ledger", report.ledger),
                ("user", report.user),
                ("wallet", report.wallet),
            ]
        )

    current.output.result(report, human)
    for step in report.next_steps:
        current.output.info(f"next: {step}")
