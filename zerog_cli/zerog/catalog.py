"""The catalog record zerog puts in every Flow submission's ``tags``.

The Flow contract keeps ``tags`` in the ``Submit`` event and nothing reads them
(the storage nodes and the indexer ignore them), so they can carry what the
ledger knows about the submission: which object of which namespace it is. With
the wallet's logs and the key, the ledger can be rebuilt from the chain alone
(`services.rebuild`).

Wire form, all of it in ``tags``::

    "ZG" || format (1 byte, 1) || nonce (8) || AES-256-GCM(key, nonce, record, aad), tag 12

- ``aad`` is the magic and format byte, the submitter address (20 bytes) and
  the submission's ``identity`` (keccak of its node roots): a record copied
  into another submission, or one naming another submitter, fails to open.
- ``key`` = HKDF-SHA256(secret, salt empty, info ``zerog/catalog-record/v1``),
  32 bytes, where the secret is ``CATALOG_KEY`` or else ``ENCRYPTION_KEY``.
- ``record`` is compact binary, since every byte costs calldata and log gas:
  a flags varint, then the fields below (varints are LEB128, strings a varint
  length and UTF-8). A name of `zerog backup`'s form
  ``<label>/<YYYYmmddTHHMMSSZ>-<file>`` is stored as label, time and file (the
  time as seconds), and is then the backup's label and time as well.
- A snapshot pointer is the tx seq of the latest ledger snapshot's submission.

Tags that do not start with the magic are someone else's and are ignored; ours
that fail to open (tampered, another key) or to parse are refused.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from zerog_cli.errors import IntegrityError

MAGIC = b"ZG"
FORMAT = 1
HEADER = MAGIC + bytes([FORMAT])
NONCE_SIZE = 8
"""Random bytes sent; GCM's 96-bit nonce is them followed by four zero bytes. Two
records of one key share a nonce with odds n^2 / 2^65 after n records (10^-8 at a
million): every byte of ``tags`` costs about 28 gas (bench/catalog.py)."""
TAG_SIZE = 12
"""GCM's tag cut to 96 bits (NIST SP 800-38D allows 96 to 128)."""
KEY_INFO = b"zerog/catalog-record/v1"
SNAPSHOT_KEY_INFO = b"zerog/ledger-snapshot/v1"
"""HKDF info of the key that encrypts ledger snapshots on 0G (`zerog ledger backup --to-0g`)."""

_ENCRYPTED = 1 << 0
_BACKUP = 1 << 1
_FOLDER = 1 << 2
_FRAGMENT = 1 << 3
_POINTER = 1 << 4
_LEDGER_SNAPSHOT = 1 << 5
_STAMPED_NAME = 1 << 6
"""The name is ``<label>/<time>-<file>``, stored as its three parts."""
_DIR_FORMAT = 1 << 7
"""A folder backup in the official directory format: this is its metadata object."""
_KNOWN_FLAGS = (1 << 8) - 1

_STAMPED = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,63})/(\d{8}T\d{6}Z)-(.+)\Z", re.DOTALL)
_NAME_TIME = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class CatalogRecord:
    """What the ledger knows of one submission."""

    namespace: str
    name: str
    version: int
    sha256: str
    """Of the plaintext, hex."""
    size: int
    """Plaintext bytes of the whole object."""
    encrypted: bool
    backup_label: str | None = None
    backup_time: int | None = None
    """Unix seconds the backup was taken."""
    folder: bool = False
    """A folder backup's archive."""
    dir_format: bool = False
    """A folder backup in the official directory format (its metadata object)."""
    fragment_index: int = 0
    fragment_count: int = 1
    object_id: bytes = b""
    """8 random bytes naming the whole object its fragments belong to (fragments only)."""
    snapshot: int | None = None
    """The tx seq of the latest ledger snapshot's submission when this was submitted."""
    ledger_snapshot_height: int | None = None
    """Set on a ledger snapshot's own record: the chain height when it was taken."""

    @property
    def is_backup(self) -> bool:
        return self.backup_label is not None

    @property
    def is_ledger_snapshot(self) -> bool:
        return self.ledger_snapshot_height is not None


def derive_key(secret: bytes, info: bytes = KEY_INFO) -> bytes:
    """HKDF-SHA256 of ``secret``: 32 bytes for AES-256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def new_object_id() -> bytes:
    return os.urandom(8)


def is_ours(tags: bytes) -> bool:
    """Tags that start with zerog's magic (whatever their format version)."""
    return tags.startswith(MAGIC)


def _aad(submitter: str, identity: bytes) -> bytes:
    address = bytes.fromhex(submitter.removeprefix("0x").removeprefix("0X"))
    if len(address) != 20 or len(identity) != 32:
        raise ValueError("a catalog record binds a 20-byte submitter and a 32-byte identity")
    return HEADER + address + identity


def seal(record: CatalogRecord, key: bytes, *, submitter: str, identity: bytes) -> bytes:
    """The ``tags`` bytes carrying ``record`` for a submission by ``submitter`` of ``identity``."""

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    nonce = os.urandom(NONCE_SIZE)
    encryptor = Cipher(algorithms.AES(key), modes.GCM(_gcm_nonce(nonce))).encryptor()
    encryptor.authenticate_additional_data(_aad(submitter, identity))
    sealed = encryptor.update(encode(record)) + encryptor.finalize()
    return HEADER + nonce + sealed + encryptor.tag[:TAG_SIZE]


def _gcm_nonce(nonce: bytes) -> bytes:
    return nonce + bytes(12 - NONCE_SIZE)


def open_tags(tags: bytes, key: bytes, *, submitter: str, identity: bytes) -> CatalogRecord | None:
    """The record in ``tags``; None when the tags are not zerog's.

    Raises ``IntegrityError`` when they are zerog's but do not open with ``key``
    for this submitter and identity (tampered, copied, another key), are of an
    unknown format version, or do not parse.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if not is_ours(tags):
        return None
    if len(tags) < len(HEADER) or tags[len(MAGIC)] != FORMAT:
        raise IntegrityError("a zerog catalog record of an unknown format version")
    body = tags[len(HEADER) :]
    if len(body) < NONCE_SIZE + TAG_SIZE:
        raise IntegrityError("a truncated zerog catalog record")
    nonce, sealed, tag = body[:NONCE_SIZE], body[NONCE_SIZE:-TAG_SIZE], body[-TAG_SIZE:]
    mode = modes.GCM(_gcm_nonce(nonce), tag, min_tag_length=TAG_SIZE)
    decryptor = Cipher(algorithms.AES(key), mode).decryptor()
    decryptor.authenticate_additional_data(_aad(submitter, identity))
    try:
        plain = decryptor.update(sealed) + decryptor.finalize()
    except InvalidTag:
        raise IntegrityError(
            "a zerog catalog record that does not open with this key for this submission"
            " (tampered, copied from another submission, or another key)"
        ) from None
    return decode(plain)


# -- the record's bytes ----------------------------------------------------------


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _varint(len(raw)) + raw


def _stamped(name: str) -> tuple[str, int, str] | None:
    """(label, unix time, file) of a name `zerog backup` gave, when it reads back the same."""
    match = _STAMPED.match(name)
    if match is None:
        return None
    label, stamp, rest = match.groups()
    try:
        moment = datetime.strptime(stamp, _NAME_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None
    seconds = int(moment.timestamp())
    return (label, seconds, rest) if _stamp_name(label, seconds, rest) == name else None


def _stamp_name(label: str, seconds: int, rest: str) -> str:
    return f"{label}/{datetime.fromtimestamp(seconds, UTC).strftime(_NAME_TIME)}-{rest}"


def encode(record: CatalogRecord) -> bytes:
    """The record's plaintext bytes (before sealing)."""
    flags = _ENCRYPTED if record.encrypted else 0
    stamped = _stamped(record.name)
    backup = b""
    if record.backup_label is not None:
        flags |= _BACKUP
        if stamped is None or stamped[:2] != (record.backup_label, record.backup_time):
            backup = _text(record.backup_label) + _varint(record.backup_time or 0)
            stamped = None
    if stamped is not None and record.backup_label is not None:
        flags |= _STAMPED_NAME
        label, seconds, rest = stamped
        name = _text(label) + _varint(seconds) + _text(rest)
    else:
        name = _text(record.name)
    if record.folder:
        flags |= _FOLDER
    if record.dir_format:
        flags |= _DIR_FORMAT
    fragment = b""
    if record.fragment_count > 1:
        flags |= _FRAGMENT
        if len(record.object_id) != 8:
            raise ValueError("a fragment's record names its object with 8 bytes")
        fragment = (
            _varint(record.fragment_index) + _varint(record.fragment_count) + record.object_id
        )
    pointer = b""
    if record.snapshot is not None:
        flags |= _POINTER
        pointer = _varint(record.snapshot)
    height = b""
    if record.ledger_snapshot_height is not None:
        flags |= _LEDGER_SNAPSHOT
        height = _varint(record.ledger_snapshot_height)
    digest = bytes.fromhex(record.sha256)
    if len(digest) != 32:
        raise ValueError("a SHA-256 is 32 bytes")
    return b"".join(
        [
            _varint(flags),
            _text(record.namespace),
            name,
            _varint(record.version),
            _varint(record.size),
            digest,
            backup,
            fragment,
            pointer,
            height,
        ]
    )


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, count: int) -> bytes:
        end = self.position + count
        if end > len(self.data):
            raise IntegrityError("a zerog catalog record cut short")
        piece = self.data[self.position : end]
        self.position = end
        return piece

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise IntegrityError("a zerog catalog record with an oversized number")

    def text(self) -> str:
        try:
            return self.take(self.varint()).decode("utf-8")
        except UnicodeDecodeError:
            raise IntegrityError("a zerog catalog record with a name that is not UTF-8") from None


def decode(data: bytes) -> CatalogRecord:
    """Parse a record's plaintext; ``IntegrityError`` when it is malformed."""
    reader = _Reader(data)
    flags = reader.varint()
    if flags & ~_KNOWN_FLAGS:
        raise IntegrityError("a zerog catalog record with unknown flags")
    namespace = reader.text()
    label: str | None = None
    moment: int | None = None
    if flags & _STAMPED_NAME:
        if not flags & _BACKUP:
            raise IntegrityError("a zerog catalog record with a stamped name but no backup")
        label, moment = reader.text(), reader.varint()
        name = _stamp_name(label, moment, reader.text())
    else:
        name = reader.text()
    version = reader.varint()
    size = reader.varint()
    sha256 = reader.take(32).hex()
    if flags & _BACKUP and not flags & _STAMPED_NAME:
        label, moment = reader.text(), reader.varint()
    index, count, object_id = 0, 1, b""
    if flags & _FRAGMENT:
        index, count, object_id = reader.varint(), reader.varint(), reader.take(8)
        if not 0 <= index < count:
            raise IntegrityError("a zerog catalog record with a fragment index out of range")
    pointer = None
    if flags & _POINTER:
        pointer = reader.varint()
    height = reader.varint() if flags & _LEDGER_SNAPSHOT else None
    if reader.position != len(data):
        raise IntegrityError("a zerog catalog record with trailing bytes")
    return CatalogRecord(
        namespace=namespace,
        name=name,
        version=version,
        sha256=sha256,
        size=size,
        encrypted=bool(flags & _ENCRYPTED),
        backup_label=label,
        backup_time=moment,
        folder=bool(flags & _FOLDER),
        dir_format=bool(flags & _DIR_FORMAT),
        fragment_index=index,
        fragment_count=count,
        object_id=object_id,
        snapshot=pointer,
        ledger_snapshot_height=height,
    )
