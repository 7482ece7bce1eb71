"""Configuration: profiles, the config file and the precedence rules.

Precedence, highest first: command-line flag > ``ZEROG_<KEY>`` environment
variable > config file (the active profile's ``[profiles.NAME]`` table, then
the top level) > profile defaults > global defaults. Every resolved value
remembers where it came from, so `zerog config show` can say.
"""

from __future__ import annotations

import getpass
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from zerog_cli.errors import ConfigError, NetworkUnavailable, UsageError, ZerogError
from zerog_cli.infra import redaction
from zerog_cli.infra.choices import Profile
from zerog_cli.infra.files import atomic_write_text, ensure_private_dir
from zerog_cli.infra.processes import pid_alive
from zerog_cli.infra.units import (
    format_size,
    format_usd,
    parse_duration,
    parse_gas_price,
    parse_positive_int,
    parse_size,
    parse_usd,
)

PROFILES = tuple(profile.value for profile in Profile)
DEFAULT_PROFILE = Profile.DEVNET.value
DEVNET_STATE_FILE = "devnet.json"
DEVNET_POINTER = "devnet.current"
"""In ZEROG_HOME: the data folder of the devnet `zerog devnet up` started last."""
NO_DEVNET_SOURCE = "no devnet running"
"""The source `config show` gives the devnet URLs when no devnet runs (their value is None)."""


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise UsageError(f"expected a whole number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"expected a whole number, got {value!r}") from None


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise UsageError(f"expected true or false, got {value!r}")


def _as_address(value: Any) -> str:
    text = str(value).strip()
    if len(text) != 42 or not text.startswith("0x"):
        raise UsageError(f"expected a 0x address of 40 hex digits, got {value!r}")
    try:
        int(text[2:], 16)
    except ValueError:
        raise UsageError(f"expected a 0x address of 40 hex digits, got {value!r}") from None
    return text


def _as_url(value: Any) -> str:
    text = str(value).strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise UsageError(f"expected an http(s) URL, got {value!r}")
    return text


def _as_ledger_url(value: Any) -> str:
    """``sqlite:///PATH`` or ``postgresql://USER@HOST:PORT/DB`` (the password is a secret)."""
    text = str(value).strip()
    if not text.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise UsageError(
            "expected sqlite:///PATH or postgresql://USER@HOST/DB,"
            f" got {redaction.redact_url(text)!r}"
        )
    if not text.startswith("sqlite://") and urlsplit(text).password is not None:
        raise UsageError(
            "ledger_url must not hold a password: store it as the DATABASE_PASSWORD secret"
        )
    return text


def _as_str(value: Any) -> str:
    return str(value)


def _as_choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = str(value).strip()
        if text not in choices:
            raise UsageError(f"expected one of {', '.join(choices)}, got {value!r}")
        return text

    return convert


def _as_size(value: Any) -> int:
    return parse_size(value if isinstance(value, int) else str(value))


def _as_folder(value: Any) -> str:
    """An existing folder, given as an absolute path (``~`` expanded)."""
    path = Path(str(value).strip()).expanduser()
    if not path.is_absolute():
        raise UsageError(f"expected an absolute path to a folder, got {value!r}")
    if not path.is_dir():
        raise UsageError(f"{path} is not an existing folder")
    return str(path)


MIN_FRAGMENT_SIZE = 256
"""One 0G chunk: the official clients never cut a file finer than that."""


def _as_fragment_size(value: Any) -> int:
    """A power of two of at least one chunk: the official clients round any other value
    up to the next power of two, so zerog refuses it rather than cut somewhere unexpected."""
    size = _as_size(value)
    if size < MIN_FRAGMENT_SIZE or size & (size - 1):
        raise UsageError(
            f"fragment_size must be a power of two of at least {MIN_FRAGMENT_SIZE} bytes"
            f" (as the official clients cut), got {value!r}"
        )
    return size


def _as_duration(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else parse_duration(str(value))


MAX_SIGNATURE_WAIT = 600
"""Seconds: past ten minutes a broker's signature cache (about 20 minutes) is the wrong wait."""


def _as_signature_wait(value: Any) -> int:
    seconds = _as_duration(value)
    if seconds > MAX_SIGNATURE_WAIT:
        raise UsageError(f"signature_wait must be at most {MAX_SIGNATURE_WAIT}s, got {value!r}")
    return seconds


def _as_usd(value: Any) -> int:
    return parse_usd(value)


def _as_gas_price(value: Any) -> int:
    return parse_gas_price(value)


MAX_GAS_LIMIT = 30_000_000
MAX_BOUNDED_WAIT = 86_400


def _as_gas_limit(value: Any) -> int:
    limit = _as_int(value)
    if not 21_000 <= limit <= MAX_GAS_LIMIT:
        raise UsageError(f"a gas limit is between 21000 and {MAX_GAS_LIMIT}, got {value!r}")
    return limit


def _as_bounded_wait(value: Any) -> int:
    seconds = _as_duration(value)
    if not 1 <= seconds <= MAX_BOUNDED_WAIT:
        raise UsageError(f"expected between 1s and 24h, got {value!r}")
    return seconds


def _as_timezone(value: Any) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = str(value).strip()
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"not a timezone: {value!r} (examples: UTC, Europe/Berlin)") from None
    return text


@dataclass(frozen=True)
class Key:
    """One configuration key: its converter, global default, help text and allowed range."""

    name: str
    convert: Callable[[Any], Any]
    default: Any
    help: str
    minimum: int | None = None
    maximum: int | None = None

    def parse(self, raw: Any) -> Any:
        """Convert ``raw`` and check its range; a `UsageError` says what is allowed."""
        value = self.convert(raw)
        if self.minimum is not None and value < self.minimum:
            raise UsageError(f"must be at least {self.display(self.minimum)}, got {raw!r}")
        if self.maximum is not None and value > self.maximum:
            raise UsageError(f"must be at most {self.display(self.maximum)}, got {raw!r}")
        return value

    def public(self, value: Any) -> Any:
        """The value as it may be printed: URLs with their credentials masked."""
        if self.convert is _as_url and value is not None:
            return redaction.redact_url(str(value))
        return value

    def display(self, value: Any) -> str:
        """The value as an operator writes it: sizes and money in units, not raw integers;
        URLs without credentials."""
        if value is None:
            return ""
        if self.convert is _as_url:
            return str(self.public(value))
        if self.convert is _as_size:
            return format_size(int(value))
        if self.convert is _as_usd:
            return format_usd(int(value))
        if self.convert in (_as_duration, _as_signature_wait, _as_bounded_wait):
            return f"{value}s"
        return str(value)

    def exact(self, value: Any) -> str:
        """The value in a form `zerog config set` takes back unchanged (sizes in bytes)."""
        if self.convert is _as_size and value is not None:
            return str(value)
        return self.display(value)


def _setting(
    convert: Callable[[Any], Any],
    default: Any,
    help: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> Any:
    """Declare one configuration key as a field of `Settings`: its global default, and
    (in the field's metadata) its converter, help text and allowed range."""
    return field(
        default=default,
        metadata={
            "key": {"convert": convert, "help": help, "minimum": minimum, "maximum": maximum}
        },
    )


@dataclass(frozen=True)
class Tier:
    name: str
    storage_bytes: int | None
    tokens: int | None
    monthly_usd_micro: int | None


@dataclass(frozen=True)
class Settings:
    """Resolved configuration: one typed field per key, and where each value came from.

    Every field declared with `_setting` is a configuration key (`KEYS` is built
    from them, in this order, which is the order of `zerog config show`); a new
    key is one field here. ``sources[key]`` says which layer gave the value
    (flag, env, file, profile, default, devnet…).
    """

    profile: str = _setting(_as_choice(*PROFILES), DEFAULT_PROFILE, "network profile in use")
    user: str | None = _setting(_as_str, None, "acting user (default: the login name)")
    rpc_url: str | None = _setting(_as_url, None, "EVM JSON-RPC endpoint")
    indexer_url: str | None = _setting(_as_url, None, "0G storage indexer endpoint")
    chain_id: int | None = _setting(_as_int, None, "expected EVM chain id", minimum=1)
    flow_address: str | None = _setting(
        _as_address, None, "Flow contract (default: read from the nodes)"
    )
    ledger_manager_address: str | None = _setting(
        _as_address, None, "compute LedgerManager contract"
    )
    inference_serving_address: str | None = _setting(
        _as_address, None, "compute InferenceServing contract"
    )
    compute_provider: str | None = _setting(_as_address, None, "default inference provider address")
    compute_model: str | None = _setting(_as_str, None, "default inference model")
    compute_backend: str = _setting(
        _as_choice("auto", "router", "direct"),
        "auto",
        "infer through the 0G Router or Direct (auto: router when a Router key is set "
        "and no compute_provider)",
    )
    router_url: str | None = _setting(_as_url, None, "0G Router API base, ending in /v1")
    payment_layer_address: str | None = _setting(
        _as_address, None, "0G Payment Layer contract (Router funds)"
    )
    verify_response: str = _setting(
        _as_choice("auto", "always", "never"), "auto", "check TEE signatures"
    )
    signature_wait: int = _setting(
        _as_signature_wait, 15, "seconds to keep asking a provider for a response signature"
    )
    infer_max_answer: int = _setting(
        _as_size,
        8_000_000,
        "largest inference answer accepted, streamed or not (1KB to 1GB)",
        minimum=1_000,
        maximum=1_000_000_000,
    )
    replicas: int = _setting(_as_int, 1, "copies of every segment an upload asks for", minimum=1)
    max_upload_size: int = _setting(
        _as_size, 10_000_000, "largest file upload accepts (policy)", minimum=1
    )
    max_backup_size: int | None = _setting(
        _as_size,
        None,
        "largest backup accepted, file or stream (default: no limit)",
        minimum=1,
    )
    tmp_dir: str | None = _setting(
        _as_folder,
        None,
        "folder for spool files of streamed uploads (default: the system temp folder)",
    )
    fragment_size: int = _setting(
        _as_fragment_size,
        4 << 30,
        "a stored file past this is split into fragments, one Flow submission each"
        " (a power of two; the official clients' default is 4 GiB)",
    )
    catalog_tags: bool = _setting(
        _as_bool,
        True,
        "put an encrypted catalog record in every Flow submission's tags, so"
        " `zerog ledger rebuild --from-chain` can rebuild the ledger (needs CATALOG_KEY"
        " or ENCRYPTION_KEY)",
    )
    logs_block_range: int = _setting(
        _as_int,
        5000,
        "blocks per eth_getLogs query of `ledger rebuild` (halved when the RPC refuses)",
        minimum=1,
    )
    upload_concurrency: int = _setting(
        _as_int, 4, "segment requests in flight per transfer", minimum=1, maximum=256
    )
    download_node_concurrency: int = _setting(
        _as_int,
        4,
        "segment requests in flight to each node while downloading",
        minimum=1,
        maximum=64,
    )
    download_stall_timeout: int = _setting(
        _as_duration,
        10,
        "seconds a segment request may take before another node is asked for it",
        minimum=1,
    )
    timezone: str = _setting(_as_timezone, "UTC", "timezone of monthly quota periods")
    storage_usd_per_gb: int = _setting(_as_usd, 100_000, "storage price, micro-USD per GB")
    compute_usd_per_1k_tokens: int = _setting(
        _as_usd, 20_000, "compute price, micro-USD per 1K tokens"
    )
    default_tier: str = _setting(_as_str, "free", "tier given to users seen for the first time")
    breaker_fail_max: int = _setting(
        _as_int, 5, "failures that open an endpoint's circuit breaker", minimum=1
    )
    breaker_reset_timeout: int = _setting(
        _as_duration, 60, "seconds before an open breaker half-opens", minimum=1
    )
    http_connect_timeout: int = _setting(_as_duration, 5, "seconds to connect", minimum=1)
    http_read_timeout: int = _setting(_as_duration, 30, "seconds to wait for an answer", minimum=1)
    http_deadline: int = _setting(
        _as_duration,
        120,
        "seconds one network call may take in all, retries included (1s to 1h)",
        minimum=1,
        maximum=3600,
    )
    http_max_tries: int = _setting(
        _as_int, 4, "attempts per call on retryable errors", minimum=1, maximum=100
    )
    wait_timeout: int = _setting(
        _as_duration, 300, "seconds to wait for a tx or finality", minimum=1
    )
    node_sync_timeout: int = _setting(
        _as_bounded_wait,
        600,
        "seconds storage nodes get to see a paid transaction (1s to 24h)",
    )
    tx_type: str = _setting(
        _as_choice("legacy", "eip1559"),
        "legacy",
        "transaction type: legacy (as the official clients) or eip1559",
    )
    gas_price: int | None = _setting(
        _as_gas_price, None, "neuron per gas, or '4gwei' (default: eth_gasPrice)"
    )
    gas_limit: int | None = _setting(
        _as_gas_limit, None, "gas limit (default: the estimate plus 20%)"
    )
    max_gas_price: int | None = _setting(_as_gas_price, None, "highest price a gas raise may reach")
    tx_resend_after: int = _setting(
        _as_bounded_wait,
        30,
        "seconds a transaction may stay unmined before it is re-sent at 1.5x, same nonce",
    )
    metrics_file: str | None = _setting(_as_str, None, "textfile for node_exporter (atomic write)")
    pushgateway: str | None = _setting(_as_url, None, "Pushgateway URL for batch metrics")
    ledger_path: str | None = _setting(
        _as_str, None, "SQLite ledger (default: $ZEROG_HOME/ledger.db)"
    )
    integrity_check_interval: int = _setting(
        _as_duration,
        86400,
        "how long `status` trusts the last passed ledger integrity check before running"
        " it again (0: every time); `ledger status` always runs it",
    )
    ledger_url: str | None = _setting(
        _as_ledger_url,
        None,
        "sqlite:///PATH or postgresql://USER@HOST:PORT/DB (default: sqlite:// + ledger_path)",
    )
    secret_cache_ttl: int = _setting(_as_duration, 300, "seconds a looked-up secret stays cached")
    keyring: bool = _setting(_as_bool, True, "look secrets up in the OS keyring")

    sources: Mapping[str, str] = field(default_factory=dict)
    tiers: Mapping[str, Tier] = field(default_factory=dict)
    tier_sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """``tier_sources[tier][field]``: "file" or "default" for each limit a tier names."""

    def value(self, key: str) -> Any:
        """The value of the configuration key named ``key`` (for `config show`/`get`,
        which walk the keys by name; code that knows the key reads the field)."""
        if key not in KEYS:
            raise KeyError(key)
        return getattr(self, key)

    @property
    def ledger_file(self) -> Path:
        return (
            Path(self.ledger_path).expanduser() if self.ledger_path else zerog_home() / "ledger.db"
        )

    @property
    def ledger_location(self) -> str:
        """``ledger_url``, else ``sqlite://`` and the ledger file (``ledger_path``'s shorthand)."""
        return self.ledger_url or f"sqlite://{self.ledger_file}"

    @property
    def acting_user(self) -> str:
        return self.user or _login_name()

    @property
    def is_devnet(self) -> bool:
        return self.profile == "devnet"

    def endpoint(self, key: Literal["rpc_url", "indexer_url", "router_url"]) -> str:
        """``rpc_url``, ``indexer_url`` or ``router_url``, for a command about to use the network.

        Exit 6 when the devnet profile has no devnet running (say where it
        looked), exit 8 when another profile has no such URL configured.
        """
        value = {
            "rpc_url": self.rpc_url,
            "indexer_url": self.indexer_url,
            "router_url": self.router_url,
        }[key]
        if value:
            return value
        if self.is_devnet and self.sources.get(key) == NO_DEVNET_SOURCE:
            raise NetworkUnavailable(
                f"no devnet running in {devnet_data_dir()}; start one with `zerog devnet up`"
            )
        raise ConfigError(f"no {key} configured for profile {self.profile}")

    def network_label(self) -> str:
        """What stderr says before network work: profile, chain id and endpoint."""
        shown = None if self.rpc_url is None else redaction.redact_url(self.rpc_url)
        return f"{self.profile} (chain {self.chain_id}, {shown})"

    def tier(self, name: str) -> Tier:
        try:
            return self.tiers[name]
        except KeyError:
            known = ", ".join(sorted(self.tiers))
            raise UsageError(f"unknown tier {name!r} (known: {known})") from None


KEYS: dict[str, Key] = {
    setting.name: Key(name=setting.name, default=setting.default, **setting.metadata["key"])
    for setting in fields(Settings)
    if "key" in setting.metadata
}
"""Every configuration key, in the order `Settings` declares them."""

PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "devnet": {
        "chain_id": 31337,
        "ledger_manager_address": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
        "inference_serving_address": "0x0165878A594ca255338adfa4d48449f69242Eb8F",
        "breaker_reset_timeout": 5,
    },
    "testnet": {
        "rpc_url": "https://evmrpc-testnet.0g.ai",
        "indexer_url": "https://indexer-storage-testnet-turbo.0g.ai",
        "chain_id": 16602,
        "ledger_manager_address": "0xE70830508dAc0A97e6c087c75f402f9Be669E406",
        "inference_serving_address": "0xa79F4c8311FF93C06b8CfB403690cc987c93F91E",
        "router_url": "https://router-api-testnet.integratenetwork.work/v1",
        "payment_layer_address": "0x0AD9690e0b34aB2d493DE02cDF149ee34f6C9939",
    },
    "mainnet": {
        "rpc_url": "https://evmrpc.0g.ai",
        "indexer_url": "https://indexer-storage-turbo.0g.ai",
        "chain_id": 16661,
        "ledger_manager_address": "0x2dE54c845Cd948B72D2e32e39586fe89607074E3",
        "inference_serving_address": "0x47340d900bdFec2BD393c626E12ea0656F938d84",
        "router_url": "https://router-api.0g.ai/v1",
        "payment_layer_address": "0xA3b15Bd2aD18BFB6b5f92D8AA9F444Dd59d1cE32",
    },
}

DEFAULT_TIERS: dict[str, dict[str, Any]] = {
    "free": {"storage": "1GB", "tokens": 100_000, "monthly_usd": "5"},
    "premium": {"storage": "100GB", "tokens": 10_000_000, "monthly_usd": "500"},
}


def zerog_home() -> Path:
    """``$ZEROG_HOME``, default ``~/.config/zerog``."""
    home = os.environ.get("ZEROG_HOME")
    return Path(home).expanduser() if home else Path.home() / ".config" / "zerog"


def require_home() -> Path:
    """The home to keep state in (ledger, locks, secrets); exit 8 if it was never initialised.

    Without ``ZEROG_HOME``, a missing ``~/.config/zerog`` means this account
    never ran `zerog init`, or a cron job runs with another HOME than the
    operator's: creating an empty ledger there would answer "0 of 0 backups
    checked", a false green. An explicit ``ZEROG_HOME`` is the operator's
    choice and is created on first use.
    """
    home = zerog_home()
    if not os.environ.get("ZEROG_HOME") and not home.is_dir():
        raise ConfigError(
            f"zerog is not initialised here: {home} does not exist",
            hint="run `zerog init`, or set ZEROG_HOME to the folder that holds the ledger",
        )
    return home


def devnet_data_dir() -> Path:
    """Where this home's devnet keeps its files: the folder `zerog devnet up` recorded
    in ``$ZEROG_HOME/devnet.current`` (``--data-dir``), else ``$ZEROG_HOME/devnet``."""
    home = zerog_home()
    try:
        recorded = (home / DEVNET_POINTER).read_text(encoding="utf-8").strip()
    except OSError:
        recorded = ""
    return Path(recorded) if recorded else home / "devnet"


def config_path() -> Path:
    return zerog_home() / "config.toml"


def env_name(key: str) -> str:
    return "ZEROG_" + key.upper()


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def read_config_file(path: Path | None = None) -> dict[str, Any]:
    """The parsed config file, or {} when absent. A broken file is exit 8."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def running_devnet_url() -> str | None:
    """``ZEROG_DEVNET_URL``, else the URL of the devnet running in `devnet_data_dir`.

    None when no devnet runs there: never a guessed port, which on a shared
    host may be someone else's devnet.
    """
    explicit = os.environ.get("ZEROG_DEVNET_URL")
    if explicit:
        return explicit.rstrip("/")
    state_file = devnet_data_dir() / DEVNET_STATE_FILE
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        url, pid = str(state["url"]).rstrip("/"), int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if pid_alive(pid) else None


def _devnet_indexer_url(base: str) -> str:
    """The running devnet's indexer: the official one when `zerog devnet up --indexer
    official` started it (``devnet.json`` names it), else the built-in one under
    ``/indexer`` (always with ``ZEROG_DEVNET_URL``)."""
    if not os.environ.get("ZEROG_DEVNET_URL"):
        try:
            state = json.loads((devnet_data_dir() / DEVNET_STATE_FILE).read_text("utf-8"))
            if str(state["url"]).rstrip("/") == base and state.get("indexer_url"):
                return str(state["indexer_url"]).rstrip("/")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    return base + "/indexer"


def _profile_defaults(profile: str) -> dict[str, tuple[Any, str]]:
    defaults = {key: (value, "profile") for key, value in PROFILE_DEFAULTS[profile].items()}
    if profile == "devnet":
        base = running_devnet_url()
        if base is None:
            source = NO_DEVNET_SOURCE
        else:
            source = "env" if os.environ.get("ZEROG_DEVNET_URL") else "devnet"
        defaults["rpc_url"] = (base, source)
        defaults["indexer_url"] = (None if base is None else _devnet_indexer_url(base), source)
        defaults["router_url"] = (None if base is None else base + "/router/v1", source)
    return defaults


@dataclass(frozen=True)
class TierField:
    """One limit of a tier: its name in the config file and on `Tier`, and its parser."""

    name: str
    attribute: str
    convert: Callable[[Any], int]
    display: Callable[[int], str]


TIER_FIELDS: dict[str, TierField] = {
    tier_field.name: tier_field
    for tier_field in (
        TierField("storage", "storage_bytes", _as_size, str),
        TierField("tokens", "tokens", lambda value: parse_positive_int(value, "tokens"), str),
        TierField("monthly_usd", "monthly_usd_micro", _as_usd, format_usd),
    )
}
UNKNOWN_KEY_HINT = "see `zerog config show`; tiers are tiers.NAME.storage|tokens|monthly_usd"


def _tier_limit(tier_field: TierField, value: Any) -> int | None:
    """A tier limit; an empty value means unlimited."""
    return None if value is None or value == "" else tier_field.convert(value)


def _merge_tiers(
    file_tiers: Mapping[str, Any], where: str
) -> tuple[dict[str, Tier], dict[str, dict[str, str]]]:
    """The default tiers with the file's limits laid over them, limit by limit.

    A tier the file only partly names keeps the other default limits: setting
    ``tiers.free.storage`` must not make the free tier's tokens unlimited.
    """
    specs = {name: dict(spec) for name, spec in DEFAULT_TIERS.items()}
    sources = {name: dict.fromkeys(spec, "default") for name, spec in DEFAULT_TIERS.items()}
    for name, spec in file_tiers.items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"tier {name!r} in {where} must be a table")
        unknown = set(spec) - set(TIER_FIELDS)
        if unknown:
            raise ConfigError(
                f"tier {name!r} in {where} has unknown keys: {', '.join(sorted(unknown))}",
                hint="a tier has storage, tokens and monthly_usd",
            )
        specs.setdefault(name, {}).update(spec)
        sources.setdefault(name, {}).update(dict.fromkeys(spec, "file"))
    tiers: dict[str, Tier] = {}
    for name, spec in specs.items():
        limits: dict[str, int | None] = {}
        for tier_field in TIER_FIELDS.values():
            try:
                limits[tier_field.attribute] = _tier_limit(tier_field, spec.get(tier_field.name))
            except UsageError as exc:
                raise ConfigError(
                    f"tiers.{name}.{tier_field.name} from {where}: {exc}",
                    hint=f"fix it with `zerog config set tiers.{name}.{tier_field.name} VALUE`",
                ) from None
        tiers[name] = Tier(name=name, **limits)
    return tiers, sources


def _parse_layer(
    table: Mapping[str, Any],
    where: str,
    fix_hint: Callable[[str], str],
    error: type[ZerogError] = ConfigError,
) -> dict[str, Any]:
    """Convert and range-check every known key of one layer.

    A bad value names the key and the layer: exit 8 for the config file and the
    environment, exit 2 (``error=UsageError``) for a flag.
    """
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in KEYS:
            continue
        try:
            values[key] = KEYS[key].parse(raw)
        except UsageError as exc:
            raise error(f"{key} from {where}: {exc}", hint=fix_hint(key)) from None
    return values


def _file_hint(profile: str | None) -> Callable[[str], str]:
    suffix = f" --profile {profile}" if profile else ""
    return lambda key: f"fix it with `zerog config set {key} VALUE{suffix}`"


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    file_data: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve every key by the precedence rules. ``flags`` holds only flags given.

    Every value present in a layer is checked, even one a higher layer hides:
    a wrong value waiting in the config file is reported now, naming the key
    and where it came from (exit 8), not when someone unsets the variable.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None and k in KEYS}
    environ = os.environ if environ is None else environ
    path = config_path()
    data = read_config_file(path) if file_data is None else file_data
    in_file = f"config file {path}"
    unknown = set(data) - set(KEYS) - {"profiles", "tiers"}
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {path}: {', '.join(sorted(unknown))}",
            hint="see `zerog config show` for the known keys",
        )
    profiles_table = data.get("profiles", {})
    if not isinstance(profiles_table, Mapping):
        raise ConfigError(f"[profiles] in {in_file} must be a table")
    profile_layers: dict[str, dict[str, Any]] = {}
    for name, table in profiles_table.items():
        if name not in PROFILES:
            raise ConfigError(f"unknown profile [profiles.{name}] in {in_file}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"[profiles.{name}] in {in_file} must be a table")
        unknown_in_profile = set(table) - set(KEYS)
        if unknown_in_profile:
            raise ConfigError(
                f"unknown key(s) in [profiles.{name}] of {in_file}: "
                f"{', '.join(sorted(unknown_in_profile))}"
            )
        profile_layers[name] = _parse_layer(table, f"{in_file} [profiles.{name}]", _file_hint(name))
    file_values = _parse_layer(data, in_file, _file_hint(None))
    env_values: dict[str, Any] = {}
    for key in KEYS:
        if env_name(key) in environ:
            env_values.update(
                _parse_layer(
                    {key: environ[env_name(key)]},
                    f"environment variable {env_name(key)}",
                    lambda key: f"change or unset {env_name(key)}",
                )
            )
    flag_values = _parse_layer(
        flags, "the command line", lambda key: "see `zerog --help`", error=UsageError
    )
    where: dict[str, str] = {}

    def lookup(key: str, profile_name: str | None) -> tuple[Any, str]:
        profile_layer = profile_layers.get(profile_name or "", {})
        if key in flag_values:
            where[key] = "the command line"
            return flag_values[key], "flag"
        if key in env_values:
            where[key] = f"environment variable {env_name(key)}"
            return env_values[key], "env"
        if key in profile_layer:
            where[key] = f"{in_file} [profiles.{profile_name}]"
            return profile_layer[key], "file"
        if key in file_values:
            where[key] = in_file
            return file_values[key], "file"
        where[key] = "the defaults"
        if key in defaults:
            return defaults[key]
        return KEYS[key].default, "default"

    defaults: dict[str, tuple[Any, str]] = {}
    profile, profile_source = lookup("profile", None)
    defaults = _profile_defaults(profile)

    values: dict[str, Any] = {"profile": profile}
    sources: dict[str, str] = {"profile": profile_source}
    for key in KEYS:
        if key != "profile":
            values[key], sources[key] = lookup(key, profile)

    file_tiers = data.get("tiers", {})
    if not isinstance(file_tiers, Mapping):
        raise ConfigError(f"[tiers] in {in_file} must be a table")
    tiers, tier_sources = _merge_tiers(file_tiers, in_file)
    if values["default_tier"] not in tiers:
        raise ConfigError(
            f"default_tier from {where['default_tier']}: "
            f"{_unknown_tier(values['default_tier'], tiers)}",
            hint="define the tier under [tiers] or name another one",
        )
    return Settings(**values, sources=sources, tiers=tiers, tier_sources=tier_sources)


def _unknown_tier(name: str, tiers: Mapping[str, Any]) -> str:
    return f"no tier {name!r} (known: {', '.join(sorted(tiers))})"


def effective_value(settings: Settings, dotted_key: str) -> tuple[Any, str]:
    """The value of a key or tier limit in force, and its source (flag, env, file…)."""
    parts = dotted_key.split(".")
    if len(parts) == 1 and dotted_key in KEYS:
        return settings.value(dotted_key), settings.sources[dotted_key]
    if (
        len(parts) == 3
        and parts[0] == "tiers"
        and parts[1] in settings.tiers
        and parts[2] in TIER_FIELDS
    ):
        tier_field = TIER_FIELDS[parts[2]]
        value = getattr(settings.tiers[parts[1]], tier_field.attribute)
        return value, settings.tier_sources[parts[1]].get(parts[2], "default")
    raise UsageError(f"unknown config key {dotted_key!r}", hint=UNKNOWN_KEY_HINT)


def public_value(dotted_key: str, value: Any) -> Any:
    """``value`` as it may be printed: a URL's credentials masked, as `config show` does."""
    return KEYS[dotted_key].public(value) if dotted_key in KEYS else value


def exact_text(dotted_key: str, value: Any) -> str:
    """``value`` as `zerog config set` takes it back: sizes in bytes, money in dollars."""
    if value is None:
        return ""
    if dotted_key in KEYS:
        return KEYS[dotted_key].exact(value)
    return TIER_FIELDS[dotted_key.rsplit(".", 1)[1]].display(value)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write the small TOML subset zerog's config uses: scalars and nested tables."""
    lines: list[str] = []

    def emit_table(prefix: str, table: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
        tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
        if prefix and scalars:
            lines.append(f"\n[{prefix}]")
        for key in sorted(scalars):
            lines.append(f"{key} = {_toml_value(scalars[key])}")
        for key in sorted(tables):
            emit_table(f"{prefix}.{key}" if prefix else key, tables[key])

    emit_table("", data)
    return "\n".join(lines).lstrip("\n") + "\n"


def set_config_value(dotted_key: str, raw_value: str, profile: str | None = None) -> Any:
    """Validate and store one value in the config file (0600, atomic). Returns it.

    A value out of its key's range is a usage error (exit 2) naming the key;
    nothing is written.
    """
    data = read_config_file()
    parts = dotted_key.split(".")
    if profile and profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
    is_tier_limit = len(parts) == 3 and parts[0] == "tiers" and parts[2] in TIER_FIELDS
    if not is_tier_limit and dotted_key not in KEYS:
        raise UsageError(f"unknown config key {dotted_key!r}", hint=UNKNOWN_KEY_HINT)
    try:
        if is_tier_limit:
            tier_field = TIER_FIELDS[parts[2]]
            value: Any = _tier_limit(tier_field, raw_value)
            stored: Any = value if tier_field.name == "tokens" and value is not None else raw_value
            data.setdefault("tiers", {}).setdefault(parts[1], {})[parts[2]] = stored
        else:
            key = KEYS[dotted_key]
            value = key.parse(raw_value)
            if dotted_key == "default_tier":
                known = {**DEFAULT_TIERS, **data.get("tiers", {})}
                if value not in known:
                    raise UsageError(_unknown_tier(value, known))
            stored = value if key.convert in (_as_int, _as_bool) else raw_value
            if profile:
                data.setdefault("profiles", {}).setdefault(profile, {})[dotted_key] = stored
            else:
                data[dotted_key] = stored
    except UsageError as exc:
        raise UsageError(f"{dotted_key}: {exc}") from None
    write_config_file(data)
    return value


def write_config_file(data: Mapping[str, Any]) -> Path:
    path = config_path()
    ensure_private_dir(require_home())
    atomic_write_text(path, dump_toml(data), mode=0o600)
    return path
