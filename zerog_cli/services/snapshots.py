"""Folder backups: one tar object plus an index object, restored whole or member by member.

`create` writes the folder's deterministic tar stream (`infra.archive`) to a
private temporary file, uploads its index (JSON) and then the archive as
ordinary uploads, and records the backup with its members in the transaction
that records the archive. Restores by backup id use the ledger's copy of the
index; the index object on 0G makes the snapshot readable with the network
alone (`download_tree`, `download_member`: ``zerog download ARCHIVE --index
INDEX``), for a host whose ledger never saw the backup or lost it.

Offsets: the index's ``offset`` is where a member's data starts in the
*plaintext* tar stream. An encrypted archive (0G encryption v1: a 17-byte
header, then AES-256-CTR over the plaintext) stores plaintext byte ``p`` at
``17 + p``, encrypted with the keystream at counter position ``p``, so
`restore_member` fetches only the segments covering ``[17 + offset, 17 +
offset + size)`` plus the first segment for the header's nonce, and
decrypts from ``p``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from zerog_cli.errors import IntegrityError, NotFound, UsageError
from zerog_cli.infra.archive import (
    INDEX_SCHEMA,
    Member,
    check_index,
    check_member,
    extract,
)
from zerog_cli.infra.files import atomic_output
from zerog_cli.infra.output import copied_fields
from zerog_cli.ledger import objects, snapshots
from zerog_cli.ledger.db import LedgerConnection
from zerog_cli.services import namespaces
from zerog_cli.services.backups import BackupCreated, BackupRecord, IndexObject
from zerog_cli.services.context import Context
from zerog_cli.services.download import NodeFetch
from zerog_cli.zerog.segments import Progress

if TYPE_CHECKING:
    from zerog_cli.services.download import Target
    from zerog_cli.services.spool import StreamInput
    from zerog_cli.zerog.segment_fetch import NodeStats

INDEX_SUFFIX = ".index.json"
DIRECTORY_FORMAT = "0g-dir"
"""The ledger's kind of a folder in the official directory format (`services.directories`)."""


@contextmanager
def spool_file(context: Context, prefix: str) -> Iterator[Path]:
    """A private (0600) file in the ``tmp_dir`` setting's folder, removed on every way out."""
    from zerog_cli.services.spool import spool_folder

    fd, name = tempfile.mkstemp(prefix=prefix, dir=spool_folder(context.settings.tmp_dir))
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def create(
    context: Context,
    folder: Path,
    *,
    namespace: str | None,
    label: str,
    encrypt: bool | None,
    progress: Progress | None,
    name: str,
) -> BackupCreated:
    """Snapshot ``folder`` as ``<label>/<time>-<folder>.tar`` plus its index; record both.

    The tar stream goes through the upload's spool (`services.spool`): a
    producer process (`infra.archive`'s main, on another core) writes it, and
    it is copied once to the private spool file while its SHA-256 and 0G root
    are computed; the producer's failure refuses the input (exit 10).
    """
    from zerog_cli.services.spool import StreamInput

    with spool_file(context, "zerog-index-") as index_file:
        producer = (
            sys.executable,
            "-m",
            "zerog_cli.infra.archive",
            str(folder.absolute()),
            str(index_file),
        )
        return upload_snapshot(
            context,
            StreamInput(command=producer, name=f"the tar stream of {folder}"),
            lambda: json.loads(index_file.read_text(encoding="utf-8")),
            source=folder,
            namespace=namespace,
            label=label,
            encrypt=encrypt,
            progress=progress,
            name=name,
        )


def upload_snapshot(
    context: Context,
    archive: Path | StreamInput,
    index: Callable[[], dict[str, Any]],
    *,
    source: Path,
    namespace: str | None,
    label: str,
    encrypt: bool | None,
    progress: Progress | None,
    name: str,
) -> BackupCreated:
    """Upload an archive, record a folder backup with ``index()``'s members, upload the index.

    ``index`` is called once the archive is spooled (a streamed tar's index is
    known only then). The index object follows the archive: a crash between
    them leaves a backup whose index is in the ledger only. Takes the archive
    and index as given: tests upload hostile ones through it, which restores
    must refuse.
    """
    from zerog_cli.services.upload import CatalogFacts, UploadRequest, upload

    moment = context.now()
    document: dict[str, Any] = {}

    def record_members(tx: LedgerConnection, backup_id: int) -> None:
        document.update(index())
        snapshots.record(
            tx, backup_id, document["members"], index_object_id=None, skipped=document["skipped"]
        )

    record = BackupRecord(
        label, str(source.resolve()), context.settings.profile, moment, more=record_members
    )

    report = upload(
        context,
        UploadRequest(
            path=archive if isinstance(archive, Path) else Path("-"),
            stream=None if isinstance(archive, Path) else archive,
            namespace=namespace,
            name=name,
            encrypt=encrypt,
            operation="backup",
            catalog=CatalogFacts(backup_label=label, backup_time=moment, folder=True),
            also_record=record,
        ),
        progress,
    )
    with spool_file(context, "zerog-index-") as index_file:
        index_file.write_text(json.dumps(document, sort_keys=True) + "\n", encoding="utf-8")
        index_report = upload(
            context,
            UploadRequest(
                path=index_file,
                namespace=report.namespace,
                name=name + INDEX_SUFFIX,
                encrypt=encrypt,
                operation="backup",
            ),
            progress,
        )
    with context.ledger.transaction() as conn:
        snapshots.set_index(conn, record.backup_id, int(index_report.object_id or 0))
    members = document["members"]
    created = record.created(report)
    created.kind = "folder"
    created.members = len(members)
    created.files = sum(1 for m in members if m["kind"] == "file")
    created.skipped = dict(document["skipped"])
    created.index = IndexObject(name=index_report.name, root=index_report.root)
    return created


def folder_members(context: Context, backup_id: int) -> list[Member]:
    """The snapshot's members from the ledger; UsageError when the backup is a single file."""
    kind, _, _ = snapshots.kind(context.ledger.conn, backup_id)
    if kind not in ("folder", DIRECTORY_FORMAT):
        raise UsageError(f"backup {backup_id} is a single file, not a folder snapshot")
    return [Member.from_json(row) for row in snapshots.members(context.ledger.conn, backup_id)]


@dataclass(frozen=True)
class FolderListing:
    """`backup show --files`: a folder snapshot's members, and what the snapshot skipped
    (counts by kind: sockets, devices…)."""

    backup_id: int
    members: list[Member]
    skipped: dict[str, int]


@dataclass(frozen=True)
class TreeRestored:
    """`backup restore --to`: a folder backup (``format``: snapshot or 0g-dir) restored
    into ``to``."""

    backup_id: int
    to: str
    format: str
    members: int
    files: int
    size: int
    sha256: str
    seconds: float


@dataclass(frozen=True)
class MemberRestored:
    """`backup restore --path`: one member of a folder backup, the bytes fetched for it and
    what each storage node served of them (``roots``: the member's own objects in a 0g-dir
    backup, else None)."""

    backup_id: int
    path: str
    output: str
    size: int
    sha256: str | None
    bytes_fetched: int
    node_stats: list[NodeFetch]
    seconds: float
    roots: list[str] | None = None


@dataclass(frozen=True)
class SnapshotDownloaded:
    """`download ARCHIVE --index INDEX --dir OUT`: a folder snapshot restored from the
    network alone into ``to``, every tar member held to the index."""

    ref: str
    index: str
    to: str
    members: int
    files: int
    sha256: str
    seconds: float


@dataclass(frozen=True)
class SnapshotMemberDownloaded:
    """`download ARCHIVE --index INDEX --path MEMBER`: one member, from the segments
    covering it."""

    ref: str
    index: str
    path: str
    output: str
    size: int
    sha256: str | None
    bytes_fetched: int
    node_stats: list[NodeFetch]
    seconds: float


def files(context: Context, backup_id: int) -> FolderListing:
    from zerog_cli.services.backups import get

    backup = get(context, backup_id)
    namespaces.require(context, backup.namespace, context.acting_user, "read")
    members = folder_members(context, backup_id)
    _, _, skipped = snapshots.kind(context.ledger.conn, backup_id)
    return FolderListing(backup_id=backup_id, members=members, skipped=dict(skipped))


def _record(context: Context, backup_id: int) -> objects.StoredObject:
    from zerog_cli.services.backups import get, stored_object

    backup = get(context, backup_id)
    namespaces.require(context, backup.namespace, context.acting_user, "read")
    return stored_object(context, backup)


def restore_tree(
    context: Context, backup_id: int, destination: Path, *, progress: Progress | None = None
) -> TreeRestored:
    """Restore a folder snapshot into ``destination`` (absent or empty), all or nothing.

    The index is checked before anything is downloaded, the archive (its proofs
    and SHA-256) before anything is extracted, and every tar member against
    the index. The tree is built in a hidden folder beside ``destination``
    and renamed into place at the end, so a refusal leaves nothing behind.
    """
    from zerog_cli.services.download import target_for

    started = time.monotonic()
    record = _record(context, backup_id)
    members = folder_members(context, backup_id)
    if _is_directory_format(context, backup_id):
        from zerog_cli.services import directories

        tree = directories.read_tree(
            context, target_for(context, record), destination, members=members, progress=progress
        )
        return copied_fields(TreeRestored, tree, backup_id=backup_id, sha256=record.sha256)
    check_index(members, record.size)
    written, _ = _extract_archive(
        context, target_for(context, record), members, destination, progress=progress
    )
    return TreeRestored(
        backup_id=backup_id,
        to=str(destination),
        format="snapshot",
        members=len(members),
        files=written,
        size=record.size,
        sha256=record.sha256,
        seconds=round(time.monotonic() - started, 3),
    )


def _extract_archive(
    context: Context,
    archive_target: Target,
    members: list[Member],
    destination: Path,
    *,
    progress: Progress | None = None,
    decrypt: bool = False,
) -> tuple[int, str]:
    """Fetch the archive (proofs, size, SHA-256) into a spool file, then extract it into
    a hidden folder renamed to ``destination`` at the end; (files written, SHA-256)."""
    from zerog_cli.services.download import fetch_verified

    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise UsageError(f"{destination} exists and is not an empty folder")
    parent = destination.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{destination.name}.zerog-", dir=parent))
    try:
        with spool_file(context, "zerog-restore-") as archive:
            with archive.open("wb") as sink:
                _, sha256, _ = fetch_verified(
                    context, archive_target, sink, progress=progress, decrypt=decrypt
                )
            written = extract(archive, building, members)
        if destination.exists():
            destination.rmdir()
        os.chmod(building, 0o755 & ~_umask())
        building.rename(destination)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return written, sha256


def _umask() -> int:
    from zerog_cli.infra.files import current_umask

    return current_umask()


MEMBER_BATCH_SEGMENTS = 32
"""Segments fetched per request batch by ``--path``: 8 MiB in memory at most."""


def find_member(context: Context, backup_id: int, path: str) -> tuple[objects.StoredObject, Member]:
    """The archive's record and the member ``path`` (a file), both checked."""
    record = _record(context, backup_id)
    wanted = path.strip("/")
    found = snapshots.member(context.ledger.conn, backup_id, wanted)
    if found is None:
        folder_members(context, backup_id)
        raise NotFound(f"backup {backup_id} has no member {wanted!r} (see backup show --files)")
    member = Member.from_json(found)
    if member.kind != "file":
        raise UsageError(f"{wanted!r} is a {member.kind}, not a file; restore the folder with --to")
    check_member(member, record.size)
    return record, member


@dataclass(frozen=True)
class StoredArchive:
    """Where an archive's stored stream lies on 0G: (root, offset, size) per Flow
    submission, in order (one, or its fragments), and whether it is encrypted."""

    pieces: list[tuple[str, int, int]]
    encrypted: bool

    @property
    def size(self) -> int:
        """The plaintext tar stream's size."""
        from zerog_cli.zerog.encryption import HEADER_SIZE_V1

        stored = sum(size for _, _, size in self.pieces)
        return stored - (HEADER_SIZE_V1 if self.encrypted else 0)


def _stored_archive(context: Context, record: objects.StoredObject) -> StoredArchive:
    from zerog_cli.zerog.encryption import HEADER_SIZE_V1

    fragments = objects.fragments_of(context.ledger.conn, record.id)
    stored_size = record.size + (HEADER_SIZE_V1 if record.encrypted else 0)
    pieces = [(f.root, f.offset, f.size) for f in fragments] or [(record.root, 0, stored_size)]
    return StoredArchive(pieces, record.encrypted)


@dataclass(frozen=True)
class MemberFetched:
    """The archive bytes fetched for a member, and each node's share summed over every
    range of segments read (one entry per node)."""

    bytes_fetched: int
    node_stats: list[NodeFetch]


def write_member(
    context: Context, archive: StoredArchive, member: Member, sink: IO[bytes]
) -> MemberFetched:
    """Write ``member`` into ``sink`` from the segments covering it only; what was fetched.

    Each segment is checked with its Merkle proof against the archive's root, or
    its fragment's root when the archive was split at ``fragment_size``,
    then the member's SHA-256 against the index (IntegrityError; the caller
    discards what was written). Segments come in batches, so memory stays flat; where
    each piece is held is looked up once, not once per batch.
    """
    from zerog_cli.services.download import node_fetches
    from zerog_cli.services.network import download_options, storage_network
    from zerog_cli.services.upload import encryption_key
    from zerog_cli.zerog.download import (
        Located,
        SegmentsRead,
        locate,
        merged_node_stats,
        read_segments,
    )
    from zerog_cli.zerog.encryption import HEADER_SIZE_V1, CtrStream, parse_header
    from zerog_cli.zerog.segments import SEGMENT_SIZE

    assert member.offset is not None
    encrypted = archive.encrypted
    header = HEADER_SIZE_V1 if encrypted else 0
    start = header + member.offset
    end = start + member.size
    digest = hashlib.sha256()
    fetched = written = 0
    cipher: CtrStream | None = None
    network = storage_network(context)
    options = download_options(context.settings)
    pieces = archive.pieces
    located: dict[str, Located] = {}
    node_runs: list[list[NodeStats]] = []
    fetch_seconds = 0.0

    def read(root: str, indices: list[int], size: int) -> SegmentsRead:
        nonlocal fetch_seconds
        where = located.get(root)
        if where is None:
            where = located[root] = locate(network, root, expected_size=size, options=options)
        got = read_segments(network, root, indices, options=options, located=where)
        node_runs.append(got.node_stats)
        fetch_seconds += got.fetch_seconds
        return got

    if encrypted and pieces[0][1] + pieces[0][2] <= start:
        # The header sits in the first fragment, which holds none of the member.
        read_header = read(pieces[0][0], [0], pieces[0][2])
        fetched += read_header.bytes_read
        nonce = parse_header(read_header.data[0][:header]).nonce
        cipher = CtrStream(encryption_key(context), nonce, member.offset)
    for root, piece_offset, piece_size in pieces:
        low, high = max(start, piece_offset), min(end, piece_offset + piece_size)
        if low >= high:
            continue
        local_start, local_end = low - piece_offset, high - piece_offset
        covering = list(range(local_start // SEGMENT_SIZE, (local_end - 1) // SEGMENT_SIZE + 1))
        for batch_start in range(0, len(covering), MEMBER_BATCH_SEGMENTS):
            batch = covering[batch_start : batch_start + MEMBER_BATCH_SEGMENTS]
            extra = [0] if encrypted and cipher is None else []
            got = read(root, batch + extra, piece_size)
            fetched += got.bytes_read
            if encrypted and cipher is None:
                nonce = parse_header(got.data[0][:header]).nonce
                cipher = CtrStream(encryption_key(context), nonce, member.offset)
            base = batch[0] * SEGMENT_SIZE
            joined = b"".join(got.data[index] for index in batch)
            piece = joined[
                max(local_start, base) - base : min(local_end, base + len(joined)) - base
            ]
            if cipher is not None:
                piece = cipher.update(piece)
            digest.update(piece)
            sink.write(piece)
            written += len(piece)
    if written != member.size or digest.hexdigest() != member.sha256:
        raise IntegrityError(
            f"member {member.path!r}: {written} bytes with SHA-256 {digest.hexdigest()}, the "
            f"index says {member.size} bytes with {member.sha256}"
        )
    return MemberFetched(fetched, node_fetches(merged_node_stats(node_runs), fetch_seconds))


def restore_member(
    context: Context, backup_id: int, path: str, output: str | None, *, force: bool = False
) -> MemberRestored:
    """Write one member to ``output`` (a file, a folder, ``-``; default its name here).

    For ``-`` the member is verified into a private spool file first: no
    unverified byte reaches stdout.
    """
    started = time.monotonic()
    if _is_directory_format(context, backup_id):
        return _restore_directory_member(context, backup_id, path, output, force)
    record, member = find_member(context, backup_id, path)
    written = _member_to(context, _stored_archive(context, record), member, output, force=force)
    seconds = round(time.monotonic() - started, 3)
    return copied_fields(MemberRestored, written, backup_id=backup_id, seconds=seconds)


@dataclass(frozen=True)
class _MemberWritten:
    """A member written to ``output`` (``-``: stdout), the archive bytes fetched for it and
    each node's share of them."""

    path: str
    output: str
    size: int
    sha256: str | None
    bytes_fetched: int
    node_stats: list[NodeFetch]


def _member_to(
    context: Context, archive: StoredArchive, member: Member, output: str | None, *, force: bool
) -> _MemberWritten:
    """Write ``member`` to ``output`` (default: its name here)."""
    if output == "-":
        with spool_file(context, "zerog-member-") as spooled:
            with spooled.open("wb") as handle:
                fetched = write_member(context, archive, member, handle)
            with spooled.open("rb") as handle:
                shutil.copyfileobj(handle, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
        return _MemberWritten(
            member.path, "-", member.size, member.sha256, fetched.bytes_fetched, fetched.node_stats
        )
    target = Path(output) if output else Path(Path(member.path).name)
    if target.is_dir():
        target = target / Path(member.path).name
    if target.exists() and not force:
        raise UsageError(f"{target} exists; pass --force to overwrite it")
    with atomic_output(target, mode=member.mode & 0o777) as handle:
        fetched = write_member(context, archive, member, handle)
    os.utime(target, (member.mtime, member.mtime))
    return _MemberWritten(
        member.path,
        str(target),
        member.size,
        member.sha256,
        fetched.bytes_fetched,
        fetched.node_stats,
    )


# -- from the network alone: the archive's root(s) and its index object's root ----------


def read_index(context: Context, index_ref: str, *, decrypt: bool = False) -> list[Member]:
    """The members listed by the index object ``index_ref`` (fetched with its proofs),
    each checked to stay inside the folder."""
    from zerog_cli.services.download import fetch_verified, resolve

    target = resolve(context, index_ref, context.acting_user)
    with spool_file(context, "zerog-index-") as spooled:
        with spooled.open("wb") as sink:
            fetch_verified(context, target, sink, decrypt=decrypt)
        try:
            document = json.loads(spooled.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise IntegrityError(
                f"{index_ref} is not a snapshot index ({error})",
                hint="an encrypted snapshot's index needs --decrypt",
            ) from None
    if not isinstance(document, dict) or document.get("schema") != INDEX_SCHEMA:
        raise IntegrityError(f"{index_ref} is not a snapshot index (no {INDEX_SCHEMA} schema)")
    members = document.get("members")
    if not isinstance(members, list):
        raise IntegrityError(f"{index_ref}: the snapshot index lists no members")
    parsed = [Member.from_json(entry) for entry in members]
    check_index(parsed)
    return parsed


def download_tree(
    context: Context,
    archive_ref: str,
    index_ref: str,
    destination: Path,
    *,
    decrypt: bool = False,
    progress: Progress | None = None,
) -> SnapshotDownloaded:
    """`download ARCHIVE --index INDEX --dir OUT`: a snapshot restored with no ledger
    record, as `restore_tree` restores one (every tar member held to the index)."""
    from zerog_cli.services.download import resolve

    started = time.monotonic()
    members = read_index(context, index_ref, decrypt=decrypt)
    archive = resolve(context, archive_ref, context.acting_user)
    written, sha256 = _extract_archive(
        context, archive, members, destination, progress=progress, decrypt=decrypt
    )
    return SnapshotDownloaded(
        ref=archive_ref,
        index=index_ref,
        to=str(destination),
        members=len(members),
        files=written,
        sha256=sha256,
        seconds=round(time.monotonic() - started, 3),
    )


def download_member(
    context: Context,
    archive_ref: str,
    index_ref: str,
    path: str,
    output: str | None,
    *,
    decrypt: bool = False,
    force: bool = False,
) -> SnapshotMemberDownloaded:
    """`download ARCHIVE --index INDEX --path MEMBER`: one member from the segments
    covering it, as `restore_member` reads it, with no ledger record."""
    from zerog_cli.services.download import resolve
    from zerog_cli.services.network import storage_network
    from zerog_cli.zerog.download import stored_size

    started = time.monotonic()
    members = read_index(context, index_ref, decrypt=decrypt)
    wanted = path.strip("/")
    member = next((m for m in members if m.path == wanted), None)
    if member is None:
        raise NotFound(f"the snapshot index has no member {wanted!r}")
    if member.kind != "file":
        raise UsageError(
            f"{wanted!r} is a {member.kind}, not a file; restore the folder with --dir"
        )
    target = resolve(context, archive_ref, context.acting_user)
    if target.record is not None:
        archive = _stored_archive(context, target.record)
    else:
        network = storage_network(context)
        roots = [fragment.root for fragment in target.fragments] or [target.root]
        pieces: list[tuple[str, int, int]] = []
        offset = 0
        for root in roots:
            size = stored_size(network, root)
            pieces.append((root, offset, size))
            offset += size
        archive = StoredArchive(pieces, decrypt)
    check_member(member, archive.size)
    written = _member_to(context, archive, member, output, force=force)
    seconds = round(time.monotonic() - started, 3)
    return copied_fields(
        SnapshotMemberDownloaded, written, ref=archive_ref, index=index_ref, seconds=seconds
    )


def _is_directory_format(context: Context, backup_id: int) -> bool:
    kind, _, _ = snapshots.kind(context.ledger.conn, backup_id)
    return kind == DIRECTORY_FORMAT


def _restore_directory_member(
    context: Context, backup_id: int, path: str, output: str | None, force: bool
) -> MemberRestored:
    """``--path`` of a 0g-dir backup: the metadata object, then that file's own objects."""
    from zerog_cli.services import directories
    from zerog_cli.services.download import target_for

    record = _record(context, backup_id)
    found = snapshots.member(context.ledger.conn, backup_id, path.strip("/"))
    if found is None:
        raise NotFound(f"backup {backup_id} has no member {path!r} (see backup show --files)")
    member = Member.from_json(found)
    report = directories.read_member(
        context, target_for(context, record), path, output, force=force, member=member
    )
    return copied_fields(MemberRestored, report, backup_id=backup_id)
