"""The catalog record each upload puts in its Flow submission's tags (`zerog.catalog`).

The key is derived from ``CATALOG_KEY``, else ``ENCRYPTION_KEY``. With neither (or
``catalog_tags = off``) uploads carry no record and `zerog status` says so; an
upload is never refused for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zerog_cli.errors import ZerogError
from zerog_cli.infra.secrets import CATALOG_KEY, ENCRYPTION_KEY
from zerog_cli.ledger import catalog as rows
from zerog_cli.services.context import Context

if TYPE_CHECKING:
    from zerog_cli.zerog.catalog import CatalogRecord
    from zerog_cli.zerog.merkle import FileTree

log = logging.getLogger("zerog.catalog")
KEY_SECRETS = (CATALOG_KEY, ENCRYPTION_KEY)
LEDGER_NAMESPACE = "zerog.ledger"
"""The reserved namespace of ledger snapshots on 0G (`zerog ledger backup --to-0g`): its
objects are encrypted with the snapshot key, not ENCRYPTION_KEY."""


@dataclass(frozen=True)
class CatalogSecret:
    name: str
    """The secret it came from."""
    value: bytes
    """Its 32 bytes; never printed."""

    def record_key(self) -> bytes:
        from zerog_cli.zerog.catalog import derive_key

        return derive_key(self.value)

    def snapshot_key(self) -> bytes:
        """The key ledger snapshots on 0G are encrypted with (0G encryption v1)."""
        from zerog_cli.zerog.catalog import SNAPSHOT_KEY_INFO, derive_key

        return derive_key(self.value, SNAPSHOT_KEY_INFO)


def catalog_secret(context: Context) -> CatalogSecret | None:
    """``CATALOG_KEY``, else ``ENCRYPTION_KEY``, parsed; None when neither is set.

    A malformed value raises ``ConfigError`` (exit 8)."""
    from zerog_cli.zerog.encryption import parse_symmetric_key

    for name in KEY_SECRETS:
        value = context.secrets.get(name)
        if value is not None:
            return CatalogSecret(name, parse_symmetric_key(value, name=name))
    return None


def object_key(context: Context, namespace: str) -> bytes:
    """The key an encrypted object of ``namespace`` decrypts with: the snapshot key in the
    ledger's reserved namespace, else ENCRYPTION_KEY (ConfigError when it is missing)."""
    from zerog_cli.errors import ConfigError
    from zerog_cli.zerog.encryption import parse_symmetric_key

    if namespace == LEDGER_NAMESPACE:
        secret = catalog_secret(context)
        if secret is None:
            raise ConfigError(
                "ledger snapshots decrypt with a key derived from CATALOG_KEY or ENCRYPTION_KEY;"
                " neither is set"
            )
        return secret.snapshot_key()
    value = context.secrets.require(ENCRYPTION_KEY, "client-side encryption")
    return parse_symmetric_key(value, name=ENCRYPTION_KEY)


@dataclass(frozen=True)
class CatalogState:
    """Whether uploads carry a sealed catalog record (``tags``: on or off), under which
    secret's key, and why not when off."""

    tags: str
    key: str | None
    note: str | None


def describe(context: Context) -> CatalogState:
    """What `zerog status` says of the catalog: on, off, or on without a key."""
    if not context.settings.catalog_tags:
        return CatalogState("off", None, "catalog_tags is off: uploads carry no record")
    try:
        secret = catalog_secret(context)
    except ZerogError as error:
        return CatalogState("off", None, f"no catalog record: {error}")
    if secret is None:
        return CatalogState(
            "off",
            None,
            "neither CATALOG_KEY nor ENCRYPTION_KEY is set: uploads carry no catalog"
            " record, so `zerog ledger rebuild --from-chain` cannot find them",
        )
    return CatalogState("on", secret.name, None)


class Tagger:
    """Seals catalog records for one upload's submissions."""

    def __init__(self, key: bytes, submitter: str, snapshot: int | None) -> None:
        self.key = key
        self.submitter = submitter
        self.snapshot = snapshot

    @classmethod
    def for_upload(cls, context: Context, submitter: str) -> Tagger | None:
        """None when uploads carry no record (setting off, or no key: logged, never refused)."""
        if not context.settings.catalog_tags:
            return None
        try:
            secret = catalog_secret(context)
        except ZerogError as error:
            log.warning("uploading without a catalog record: %s", error)
            return None
        if secret is None:
            return None
        latest = rows.latest_snapshot(context.ledger.conn, context.settings.profile)
        return cls(secret.record_key(), submitter, None if latest is None else latest.tx_seq)

    def tags(self, record: CatalogRecord, tree: FileTree) -> bytes:
        from dataclasses import replace

        from zerog_cli.zerog.catalog import seal
        from zerog_cli.zerog.flow_abi import SubmissionData

        identity = SubmissionData(tree.size, b"", tuple(tree.submission_nodes)).identity
        pointed = replace(record, snapshot=self.snapshot)
        return seal(pointed, self.key, submitter=self.submitter, identity=identity)
