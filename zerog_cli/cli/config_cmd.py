"""`zerog config show|get|set` and `zerog init`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from zerog_cli.cli.common import command, complete_profile, examples, new_app, results, state
from zerog_cli.infra.output import Column

app = new_app(
    "Show and change configuration (flag > ZEROG_* env > config file > profile).",
    "zerog config show",
    "zerog config get http_max_tries",
    "zerog config set user alice",
)

INIT_EXAMPLES = examples("zerog init", "zerog init --profile testnet --user alice")


@dataclass(frozen=True)
class SettingValue:
    """A setting's value in force (secrets never: they are not settings) and where it
    came from: flag, env, file, profile or default."""

    value: Any
    source: str


@dataclass(frozen=True)
class TierLimits:
    """A tier's monthly limits (None: unlimited)."""

    storage_bytes: int | None
    tokens: int | None
    monthly_usd_micro: int | None


@dataclass(frozen=True)
class ConfigShown:
    """`config show`: every setting of the profile in force, and the tiers."""

    profile: str
    config_file: str
    settings: dict[str, SettingValue]
    tiers: dict[str, TierLimits]


@dataclass(frozen=True)
class ConfigValue:
    """`config get`: one setting's value in force and its source."""

    key: str
    value: Any
    source: str


@dataclass(frozen=True)
class ConfigStored:
    """`config set`: the value stored, for which profile (None: every one), in which file."""

    key: str
    value: Any
    profile: str | None
    file: str


@command(
    app,
    "show",
    result=results("zerog_cli.cli.config_cmd.ConfigShown"),
    epilog=examples("zerog config show", "zerog --profile mainnet config show --json"),
)
def show() -> None:
    """Show every setting, its value and where the value came from."""
    from zerog_cli.infra.config import KEYS, config_path

    current = state()
    settings = current.context.settings
    rows = [
        {
            "key": key,
            "value": KEYS[key].public(settings.value(key)),
            "shown": KEYS[key].display(settings.value(key)),
            "source": settings.sources[key],
            "help": KEYS[key].help,
        }
        for key in KEYS
    ]
    tiers = {
        name: TierLimits(tier.storage_bytes, tier.tokens, tier.monthly_usd_micro)
        for name, tier in settings.tiers.items()
    }
    document = ConfigShown(
        profile=settings.profile,
        config_file=str(config_path()),
        settings={row["key"]: SettingValue(row["value"], row["source"]) for row in rows},
        tiers=tiers,
    )

    def human() -> None:
        current.output.echo(f"profile {settings.profile} · config file {config_path()}")
        current.output.table(
            rows,
            [Column("key", "key"), Column("shown", "value"), Column("source", "source")],
        )

    current.output.result(document, human)


@command(
    app,
    "get",
    result=results("zerog_cli.cli.config_cmd.ConfigValue"),
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
    from zerog_cli.infra.config import effective_value, exact_text, public_value

    settings = state().context.settings
    value, source = effective_value(settings, key)
    document = ConfigValue(key=key, value=public_value(key, value), source=source)
    state().output.result(document, exact_text(key, value))


@command(
    app,
    "set",
    result=results("zerog_cli.cli.config_cmd.ConfigStored"),
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
        str | None,
        typer.Option(
            "--profile",
            help="Store it for one profile only ([profiles.NAME]).",
            show_default=False,
            autocompletion=complete_profile,
        ),
    ] = None,
) -> None:
    """Store one setting in the config file (validated; the file stays 0600).

    A value outside the key's range (http_max_tries 1-100, timeouts at least
    1s, …) is exit 2 and nothing is written. Setting one limit of a tier keeps
    its other limits; an empty value makes a tier limit unlimited.
    """
    from zerog_cli.infra.config import config_path, set_config_value

    stored = set_config_value(key, value, profile=profile)
    document = ConfigStored(key=key, value=stored, profile=profile, file=str(config_path()))
    where = f" for profile {profile}" if profile else ""
    state().output.result(document, f"{key} = {value}{where} ({config_path()})")


def register(app: typer.Typer) -> None:
    command(app, "init", result=results("setup.Initialised"), epilog=INIT_EXAMPLES)(init)


def init(
    profile: Annotated[
        str,
        typer.Option(
            "--profile", "-p", help="devnet, testnet or mainnet.", autocompletion=complete_profile
        ),
    ] = "devnet",
    user: Annotated[
        str | None, typer.Option("--user", help="Default acting user.", show_default=False)
    ] = None,
) -> None:
    """Create $ZEROG_HOME, the config file (0600) and the ledger for a profile."""
    from zerog_cli.services.setup import initialise

    current = state()
    current.context.override(profile=profile)
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
