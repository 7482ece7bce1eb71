"""The fixed sets of words the command line takes, as enums every layer can name.

An option with a choice is typed with one of these (Typer offers exactly its
values and refuses any other word: exit 2, one line); the service behind it
receives the member, never the raw text. A `StrEnum` member equals its value,
so it prints, compares and serialises as the word itself.
"""

from __future__ import annotations

from enum import StrEnum


class Profile(StrEnum):
    """Which network `--profile` names (`zerog init`, `config set`, the global option)."""

    DEVNET = "devnet"
    TESTNET = "testnet"
    MAINNET = "mainnet"


class KeyPurpose(StrEnum):
    """Which wallet key signs (`zerog auth --key`): storage's, compute's, or the key kept for
    signing documents (each falls back as `infra.signing.KEY_CHAINS` says)."""

    STORAGE = "storage"
    COMPUTE = "compute"
    SIGNING = "signing"


class UploadWait(StrEnum):
    """How long `zerog upload --wait` waits."""

    FINALIZED = "finalized"
    UPLOADED = "uploaded"
    NONE = "none"


class SecretStoreKind(StrEnum):
    """Where `zerog secrets set --store` keeps a secret."""

    AUTO = "auto"
    KEYRING = "keyring"
    FILE = "file"


class InferBackend(StrEnum):
    """How `zerog infer --via` reaches 0G compute."""

    ROUTER = "router"
    DIRECT = "direct"


class RouterSort(StrEnum):
    """How the 0G Router picks a provider (`zerog infer --sort`)."""

    LATENCY = "latency"
    PRICE = "price"


class CostGrouping(StrEnum):
    """What `zerog quota report --by` groups costs by."""

    USER = "user"
    NS = "ns"
    SERVICE = "service"
    BACKEND = "backend"
    MODEL = "model"
    PROVIDER = "provider"


class Role(StrEnum):
    """A role in a namespace's ACL (`zerog ns grant`)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class DevnetIndexer(StrEnum):
    """Which indexer `zerog devnet up --indexer` runs: the devnet's own, or 0g-storage-client's."""

    BUILTIN = "builtin"
    OFFICIAL = "official"


class DevnetChainKind(StrEnum):
    """Which chain `zerog devnet up --chain` runs: the in-process one, or anvil with the
    official contracts' bytecode."""

    BUILTIN = "builtin"
    ANVIL = "anvil"


class FolderFormat(StrEnum):
    """How `zerog backup create DIR --format` stores a folder: one tar object, or the
    official directory format."""

    SNAPSHOT = "snapshot"
    DIRECTORY = "0g-dir"
