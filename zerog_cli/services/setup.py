"""`zerog init`: make a machine ready for a profile."""

from __future__ import annotations

from dataclasses import dataclass

from zerog_cli.errors import ConfigError
from zerog_cli.infra.choices import Profile
from zerog_cli.infra.config import config_path, read_config_file, write_config_file, zerog_home
from zerog_cli.infra.files import ensure_private_dir
from zerog_cli.infra.signing import wallet_key
from zerog_cli.services.context import Context


@dataclass(frozen=True)
class Initialised:
    """`zerog init`: the profile, the files made, the acting user, the wallet found (or why
    it is missing) and what to do next."""

    profile: str
    home: str
    config_file: str
    ledger: str
    schema_version: int
    user: str
    wallet: str
    next_steps: list[str]


def initialise(context: Context, *, profile: Profile, user: str | None) -> Initialised:
    """Write the profile (and user) to the config file, create the ledger, check the wallet."""
    ensure_private_dir(zerog_home())
    data = read_config_file()
    data["profile"] = profile.value
    if user:
        data["user"] = user
    write_config_file(data)
    context.override(profile=profile.value)
    settings = context.settings
    ledger = context.ledger
    try:
        key = wallet_key(context.secrets, devnet=settings.is_devnet)
        wallet = f"{key.address} ({key.secret_name} from {key.source})"
    except ConfigError as exc:
        wallet = f"missing: {exc}"
    next_steps = (
        ["zerog devnet up --detach", "zerog upload FILE"]
        if settings.is_devnet
        else [
            "zerog secrets set ZEROG_STORAGE_PRIVATE_KEY",
            "zerog status",
        ]
    )
    return Initialised(
        profile=profile.value,
        home=str(zerog_home()),
        config_file=str(config_path()),
        ledger=str(ledger.path),
        schema_version=ledger.schema_version(),
        user=settings.acting_user,
        wallet=wallet,
        next_steps=next_steps,
    )
