"""The fixed sets of words the command line takes, as enums every layer can name.

An option with a choice is typed with one of these (Typer offers exactly its
values and refuses any other word: exit 2, one line); the service behind it
receives the member, never the raw text. A `StrEnum` member equals its value,
so it prints, compares and serialises as the word itself.
"""

from __future__ import annotations

from enum import StrEnum


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
