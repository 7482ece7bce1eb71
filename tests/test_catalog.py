"""The catalog record in Flow tags: round trip, compactness, and refusal of foreign or
tampered tags."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from zerog_cli.errors import IntegrityError
from zerog_cli.zerog import catalog

SUBMITTER = "0x" + "11" * 20
IDENTITY = bytes(range(32))
KEY = catalog.derive_key(b"k" * 32)
BACKUP = catalog.CatalogRecord(
    namespace="backups",
    name="orders/20261129T031500Z-orders.db",
    version=3,
    sha256="ab" * 32,
    size=3_000_000,
    encrypted=True,
    backup_label="orders",
    backup_time=1795922100,
    snapshot=123_456,
)


def seal(record: catalog.CatalogRecord) -> bytes:
    return catalog.seal(record, KEY, submitter=SUBMITTER, identity=IDENTITY)


def opened(tags: bytes, **changes: object) -> catalog.CatalogRecord | None:
    args: dict[str, object] = {"submitter": SUBMITTER, "identity": IDENTITY, **changes}
    return catalog.open_tags(tags, KEY, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "record",
    [
        BACKUP,
        replace(BACKUP, name="plain.bin", backup_label=None, backup_time=None, snapshot=None),
        replace(BACKUP, name="db/renamed.bin"),
        replace(BACKUP, folder=True, name="site/20261129T031500Z-www.tar"),
        replace(BACKUP, dir_format=True, name="site/20261129T031500Z-www"),
        replace(BACKUP, fragment_index=2, fragment_count=5, object_id=os.urandom(8)),
        replace(BACKUP, namespace="zerog.ledger", ledger_snapshot_height=987_654),
        replace(BACKUP, name="é/ünïcode", backup_label=None, backup_time=None),
    ],
)
def test_records_round_trip(record: catalog.CatalogRecord) -> None:
    tags = seal(record)
    assert tags.startswith(catalog.HEADER)
    assert opened(tags) == record


def test_a_backup_record_fits_three_abi_words() -> None:
    """Every byte costs ~28 gas on the official Flow; 96 bytes keeps a record under 2 %
    of a submission's gas (bench/catalog.py measures it)."""
    assert len(seal(BACKUP)) <= 96
    assert seal(BACKUP) != seal(BACKUP)  # a fresh nonce each time


def test_foreign_tags_are_not_ours() -> None:
    kv_stream_tags = bytes(32) + os.urandom(64)
    for tags in (b"", b"hello", kv_stream_tags):
        assert opened(tags) is None


def test_tampered_copied_or_foreign_key_records_are_refused() -> None:
    tags = seal(BACKUP)
    flipped = bytearray(tags)
    flipped[20] ^= 1
    with pytest.raises(IntegrityError, match="does not open"):
        opened(bytes(flipped))
    with pytest.raises(IntegrityError, match="does not open"):
        opened(tags, submitter="0x" + "22" * 20)
    with pytest.raises(IntegrityError, match="does not open"):
        opened(tags, identity=bytes(32))
    with pytest.raises(IntegrityError, match="does not open"):
        catalog.open_tags(
            tags, catalog.derive_key(b"x" * 32), submitter=SUBMITTER, identity=IDENTITY
        )
    with pytest.raises(IntegrityError, match="unknown format"):
        opened(catalog.MAGIC + b"\x09" + tags[3:])
    with pytest.raises(IntegrityError, match="truncated"):
        opened(tags[:10])


def test_malformed_plaintext_is_refused() -> None:
    with pytest.raises(IntegrityError):
        catalog.decode(catalog.encode(BACKUP) + b"\x00")
    with pytest.raises(IntegrityError):
        catalog.decode(catalog.encode(BACKUP)[:20])
    with pytest.raises(IntegrityError, match="unknown flags"):
        catalog.decode(b"\x80\x02")


def test_the_ledger_snapshot_namespace_is_reserved(zerog) -> None:
    refused = zerog("ns", "create", "zerog.ledger")
    assert refused.exit_code == 2 and "reserved for ledger snapshots" in refused.stderr
    assert zerog("ns", "ls", "--json").json["namespaces"] == []
