"""`zerog config show|get|set`: the settings in force, where each came from, and storing one."""

from __future__ import annotations

from dataclasses import dataclass

from zerog_cli.infra.choices import Profile
from zerog_cli.infra.config import (
    KEYS,
    Settings,
    config_path,
    effective_value,
    public_value,
    set_config_value,
)


@dataclass(frozen=True)
class SettingValue:
    """A setting's value in force (secrets never: they are not settings; a setting holds
    text, a whole number or a boolean, or null when unset) and where it came from: flag,
    env, file, profile or default."""

    value: str | int | bool | None
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
    """`config get`: one setting's value in force (null: unset, or an unlimited tier
    limit) and its source."""

    key: str
    value: str | int | bool | None
    source: str


@dataclass(frozen=True)
class ConfigStored:
    """`config set`: the value stored, for which profile (None: every one), in which file."""

    key: str
    value: str | int | bool | None
    profile: str | None
    file: str


def show(settings: Settings) -> ConfigShown:
    """Every setting in `KEYS` order, URLs with their credentials masked, and the tiers."""
    return ConfigShown(
        profile=settings.profile,
        config_file=str(config_path()),
        settings={
            key: SettingValue(KEYS[key].public(settings.value(key)), settings.sources[key])
            for key in KEYS
        },
        tiers={
            name: TierLimits(tier.storage_bytes, tier.tokens, tier.monthly_usd_micro)
            for name, tier in settings.tiers.items()
        },
    )


def get(settings: Settings, key: str) -> ConfigValue:
    """The value in force for ``key`` (a setting or ``tiers.NAME.LIMIT``); exit 2 if unknown."""
    value, source = effective_value(settings, key)
    return ConfigValue(key=key, value=public_value(key, value), source=source)


def store(key: str, value: str, *, profile: Profile | None) -> ConfigStored:
    """Validate ``value`` and write it to the config file, for ``profile`` only when given."""
    name = None if profile is None else profile.value
    stored = set_config_value(key, value, profile=name)
    return ConfigStored(key=key, value=stored, profile=name, file=str(config_path()))
