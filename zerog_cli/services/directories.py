"""Folders in the official 0G directory format (`zerog_cli.zerog.directory`).

`create` stores a folder as the official ``upload-dir`` does: every non-empty
regular file is an upload of its own (one Flow submission each, or one per
fragment past ``fragment_size``), then the metadata object naming their roots
is the backup's object. The official ``download-dir`` and ``diff-dir`` read
it. The price is one transaction per file: the default snapshot format sends
one for the whole folder.

`read_tree` and `read_member` read any such directory, the official client's
or zerog's: the metadata object and every file are fetched with their Merkle
proofs checked; a file whose root the ledger records is also held to its
size and SHA-256 there, and a backup's restore to its recorded members.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import IntegrityError, NotFound, UsageError
from zerog_cli.infra.archive import Member, check_member, skipped_kind, walk_folder
from zerog_cli.infra.files import created_file_mode, current_umask
from zerog_cli.ledger import snapshots
from zerog_cli.ledger.db import LedgerConnection
from zerog_cli.services import namespaces
from zerog_cli.services.context import Context
from zerog_cli.services.download import (
    DiscardingSink,
    NodeFetch,
    Target,
    fetch_verified,
    node_fetches,
    resolve,
)
from zerog_cli.zerog.directory import Entry, decode, encode
from zerog_cli.zerog.segments import Progress

if TYPE_CHECKING:
    import random

    from zerog_cli.ledger.objects import StoredObject
    from zerog_cli.services.sampling import DataSubset

if TYPE_CHECKING:
    from zerog_cli.services.backups import BackupCreated
FORMAT = "0g-dir"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_METADATA_BYTES = 256 * 1024 * 1024
"""A metadata object larger than this is refused before it is read into memory."""


def _refuse_encryption(context: Context, namespace: str | None, encrypt: bool | None) -> None:
    """The official download-dir reads no zerog encryption: 0g-dir is stored in the clear."""
    if encrypt:
        raise UsageError(
            "--format 0g-dir stores files as the official upload-dir does, unencrypted "
            "(its download-dir cannot decrypt them)",
            hint="drop --encrypt, or keep the default snapshot format, which encrypts",
        )
    if encrypt is None:
        found = namespaces.find(context, namespace or namespaces.DEFAULT_NAMESPACE)
        if found is not None and found.encrypt_by_default:
            raise UsageError(
                f"namespace {found.name} encrypts by default, and --format 0g-dir cannot",
                hint="pass --no-encrypt to store this folder in the clear",
            )


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
    """Upload every file of ``folder`` as ``<name>/<path>``, then its metadata as ``name``."""
    from zerog_cli.services.backups import BackupRecord
    from zerog_cli.services.snapshots import spool_file
    from zerog_cli.services.upload import CatalogFacts, UploadRequest, upload

    _refuse_encryption(context, namespace, encrypt)
    moment = context.now()
    walked = list(walk_folder(folder))
    for path, _, info in walked:
        if stat.S_ISREG(info.st_mode) and info.st_size:
            namespaces.validate_object_name(f"{name}/{path}", "file name in the folder")
    entries: list[Entry] = []
    members: list[Member] = []
    skipped: dict[str, int] = {}
    uploads = 0
    ns_name = namespace
    for path, full, info in walked:
        mode, mtime = stat.S_IMODE(info.st_mode), int(info.st_mtime)
        if stat.S_ISDIR(info.st_mode):
            entries.append(Entry(path, "dir"))
            members.append(Member(path, "dir", 0, mode, mtime))
        elif stat.S_ISLNK(info.st_mode):
            target = os.readlink(full)
            entries.append(Entry(path, "symlink", link=target))
            members.append(Member(path, "symlink", 0, mode, mtime, link=target))
        elif stat.S_ISREG(info.st_mode) and info.st_size == 0:
            entries.append(Entry(path, "file"))
            members.append(Member(path, "file", 0, mode, mtime, EMPTY_SHA256))
        elif stat.S_ISREG(info.st_mode):
            stored = upload(
                context,
                UploadRequest(
                    path=Path(full),
                    namespace=ns_name,
                    name=f"{name}/{path}",
                    encrypt=False,
                    operation="backup",
                ),
                progress,
            )
            uploads += 1
            ns_name = stored.namespace
            roots = tuple(stored.roots or [stored.root])
            entries.append(Entry(path, "file", stored.size, roots))
            members.append(Member(path, "file", stored.size, mode, mtime, stored.sha256))
        else:
            kind = skipped_kind(info.st_mode)
            skipped[kind] = skipped.get(kind, 0) + 1

    def record_members(tx: LedgerConnection, backup_id: int) -> None:
        snapshots.record(
            tx,
            backup_id,
            [member.to_json() for member in members],
            index_object_id=None,
            skipped=skipped,
            kind=FORMAT,
        )

    record = BackupRecord(
        label, str(folder.resolve()), context.settings.profile, moment, more=record_members
    )

    with spool_file(context, "zerog-dir-") as metadata:
        metadata.write_bytes(encode(entries))
        report = upload(
            context,
            UploadRequest(
                path=metadata,
                namespace=ns_name,
                name=name,
                encrypt=False,
                operation="backup",
                catalog=CatalogFacts(backup_label=label, backup_time=moment, dir_format=True),
                also_record=record,
            ),
            progress,
        )
    created = record.created(report)
    created.kind = FORMAT
    created.members = len(members)
    created.files = sum(1 for member in members if member.kind == "file")
    created.files_uploaded = uploads
    created.skipped = dict(sorted(skipped.items()))
    return created


def read_entries(context: Context, target: Target) -> list[Entry]:
    """The checked entries of the directory whose metadata object is ``target``."""
    from zerog_cli.services.snapshots import spool_file

    if target.expected_size is not None and target.expected_size > MAX_METADATA_BYTES:
        raise IntegrityError(f"{target.label}: {target.expected_size} bytes is no directory")
    with spool_file(context, "zerog-dir-") as spooled:
        with spooled.open("wb") as sink:
            fetch_verified(context, target, sink)
        if spooled.stat().st_size > MAX_METADATA_BYTES:
            raise IntegrityError(f"{target.label}: too large for a directory's metadata")
        entries = decode(spooled.read_bytes())
    for entry in entries:
        if entry.kind != "file":
            check_member(Member(entry.path, entry.kind, 0, 0, 0, link=entry.link))
    return entries


def _file_target(context: Context, entry: Entry) -> Target:
    """The file's root(s), as ``download`` resolves them: the ledger's record and its
    namespace's ACL when it knows them, else public data of the size the metadata says."""
    return resolve(context, ",".join(entry.roots), context.acting_user, size=entry.size)


def _held_to(entries: list[Entry], members: list[Member]) -> dict[str, Member]:
    """The ledger's members by path, after checking the metadata lists exactly them."""
    recorded = {m.path: (m.kind, m.size, m.link) for m in members}
    stored = {e.path: (e.kind, e.size, e.link) for e in entries}
    if recorded != stored:
        differing = sorted(set(recorded.items()) ^ set(stored.items()))
        raise IntegrityError(
            f"the directory's metadata and the ledger's members differ (first: {differing[0][0]!r})"
        )
    return {member.path: member for member in members}


@dataclass(frozen=True)
class DirectoryTree:
    """A directory in the official format written into ``to``: its metadata object's
    root, its entries and files, and their bytes."""

    root: str
    to: str
    format: str
    members: int
    files: int
    size: int
    seconds: float


@dataclass(frozen=True)
class DirectoryFile:
    """One file of a directory in the official format, written to ``output`` (``-``:
    stdout), with the objects (``roots``) it was read from and what each storage node
    served of them."""

    root: str
    path: str
    output: str
    size: int
    sha256: str
    bytes_fetched: int
    roots: list[str]
    node_stats: list[NodeFetch]
    seconds: float


@dataclass(frozen=True)
class TreeDownloaded(DirectoryTree):
    """`download REF --dir OUT`: the directory ``ref`` names, written into ``to``."""

    ref: str = ""


@dataclass(frozen=True)
class FileDownloaded(DirectoryFile):
    """`download REF --path MEMBER`: one file of the directory ``ref`` names."""

    ref: str = ""


def read_tree(
    context: Context,
    target: Target,
    destination: Path,
    *,
    members: list[Member] | None = None,
    progress: Progress | None = None,
) -> DirectoryTree:
    """Write the directory ``target`` names into ``destination`` (absent or empty), all or nothing.

    With ``members`` (a backup's, from the ledger) the metadata must list exactly
    them, and files get their recorded SHA-256, mode and mtime checked and set.
    The tree is built in a hidden folder beside ``destination`` and renamed into
    place at the end, so a refusal leaves nothing behind.
    """
    started = time.monotonic()
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise UsageError(f"{destination} exists and is not an empty folder")
    entries = read_entries(context, target)
    recorded = _held_to(entries, members) if members is not None else {}
    parent = destination.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{destination.name}.zerog-", dir=parent))
    written = size = 0
    folders: list[tuple[Path, Member]] = []
    try:
        for entry in entries:
            path = building / entry.path
            member = recorded.get(entry.path)
            if entry.kind == "dir":
                path.mkdir(mode=0o700)
                if member is not None:
                    folders.append((path, member))
                else:
                    os.chmod(path, 0o777 & ~current_umask())
            elif entry.kind == "symlink":
                os.symlink(entry.link or "", path)
            else:
                sha256 = _write_file(context, entry, path, progress)
                if member is not None and sha256 != member.sha256:
                    raise IntegrityError(
                        f"{entry.path!r}: SHA-256 {sha256} differs from the ledger's "
                        f"{member.sha256}"
                    )
                os.chmod(path, member.mode & 0o777 if member else created_file_mode())
                if member is not None:
                    os.utime(path, (member.mtime, member.mtime))
                written += 1
                size += entry.size
        for folder, member in reversed(folders):
            os.chmod(folder, member.mode & 0o777)
            os.utime(folder, (member.mtime, member.mtime))
        if destination.exists():
            destination.rmdir()
        os.chmod(building, 0o777 & ~current_umask())
        building.rename(destination)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return DirectoryTree(
        root=target.root,
        to=str(destination),
        format=FORMAT,
        members=len(entries),
        files=written,
        size=size,
        seconds=round(time.monotonic() - started, 3),
    )


def _write_file(context: Context, entry: Entry, path: Path, progress: Progress | None) -> str:
    """Create ``path`` (never through a link) with the entry's bytes, proven; their SHA-256."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        if not entry.size:
            return EMPTY_SHA256
        _, sha256, _ = fetch_verified(
            context, _file_target(context, entry), handle, progress=progress
        )
    return sha256


def find_entry(entries: list[Entry], path: str) -> Entry:
    wanted = path.strip("/")
    for entry in entries:
        if entry.path == wanted:
            if entry.kind != "file":
                raise UsageError(f"{wanted!r} is a {entry.kind}, not a file; restore the folder")
            return entry
    raise NotFound(f"the directory has no member {wanted!r}")


def read_member(
    context: Context,
    target: Target,
    path: str,
    output: str | None,
    *,
    force: bool = False,
    member: Member | None = None,
) -> DirectoryFile:
    """Write one file of the directory ``target`` to ``output`` (a file, a folder, ``-``).

    Only the metadata object and that file's own objects are fetched. For ``-``
    the file is verified into a private spool file first: no unverified byte
    reaches stdout.
    """
    from zerog_cli.infra.files import atomic_output
    from zerog_cli.services.snapshots import spool_file

    started = time.monotonic()
    entry = find_entry(read_entries(context, target), path)
    if member is not None and (member.kind, member.size) != (entry.kind, entry.size):
        raise IntegrityError(f"{entry.path!r}: the metadata and the ledger's member differ")

    def fetch(handle: Any) -> tuple[str, list[NodeFetch]]:
        if not entry.size:
            return EMPTY_SHA256, []
        result, sha256, _ = fetch_verified(context, _file_target(context, entry), handle)
        if member is not None and sha256 != member.sha256:
            raise IntegrityError(
                f"{entry.path!r}: SHA-256 {sha256} differs from the ledger's {member.sha256}"
            )
        return sha256, node_fetches(result.node_stats, result.fetch_seconds)

    file_name = entry.path.rsplit("/", 1)[-1]
    if output == "-":
        with spool_file(context, "zerog-member-") as spooled:
            with spooled.open("wb") as sink:
                sha256, nodes = fetch(sink)
            with spooled.open("rb") as source:
                shutil.copyfileobj(source, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
        destination = "-"
    else:
        chosen = Path(output) if output else Path(file_name)
        if chosen.is_dir():
            chosen = chosen / file_name
        if chosen.exists() and not force:
            raise UsageError(f"{chosen} exists; pass --force to overwrite it")
        mode = member.mode & 0o777 if member is not None else created_file_mode()
        with atomic_output(chosen, mode=mode) as out:
            sha256, nodes = fetch(out)
        if member is not None:
            os.utime(chosen, (member.mtime, member.mtime))
        destination = str(chosen)
    return DirectoryFile(
        root=target.root,
        path=entry.path,
        output=destination,
        size=entry.size,
        sha256=sha256,
        bytes_fetched=entry.size,
        roots=list(entry.roots),
        node_stats=nodes,
        seconds=round(time.monotonic() - started, 3),
    )


def download_tree(
    context: Context, ref: str, destination: Path, *, progress: Progress | None = None
) -> TreeDownloaded:
    """`download REF --dir OUT`: the directory whose metadata object ``ref`` names."""
    target = resolve(context, ref, context.acting_user)
    tree = read_tree(context, target, destination, progress=progress)
    return TreeDownloaded(**tree.__dict__, ref=ref)


def download_member(
    context: Context, ref: str, path: str, output: str | None, *, force: bool = False
) -> FileDownloaded:
    """`download REF --path MEMBER`: one file of the directory ``ref`` names."""
    target = resolve(context, ref, context.acting_user)
    one = read_member(context, target, path, output, force=force)
    return FileDownloaded(**one.__dict__, ref=ref)


def check_files(
    context: Context,
    backup_id: int,
    record: StoredObject,
    subset: DataSubset | None,
    rng: random.Random,
) -> tuple[int, int, int]:
    """`verify` of a 0g-dir backup past its metadata object: every file it names.

    Read whole, each file is proven against its root(s) and held to the ledger's
    SHA-256 of that member; sampled, ``subset`` of each file's segments (its first
    and last always) is proven. Returns (bytes read, segments checked, segments).
    """
    from zerog_cli.services.download import target_for
    from zerog_cli.services.network import download_options, storage_network
    from zerog_cli.services.sampling import read_sample

    members = [Member.from_json(row) for row in snapshots.members(context.ledger.conn, backup_id)]
    entries = read_entries(context, target_for(context, record))
    recorded = _held_to(entries, members)
    network = storage_network(context)
    options = download_options(context.settings)
    bytes_read = checked = total = 0
    for entry in entries:
        if entry.kind != "file" or not entry.size:
            continue
        target = _file_target(context, entry)
        if subset is None:
            sink = DiscardingSink()
            result, sha256, _ = fetch_verified(context, target, sink)  # type: ignore[arg-type]
            if sha256 != recorded[entry.path].sha256:
                raise IntegrityError(
                    f"{entry.path!r}: SHA-256 {sha256} differs from the ledger's "
                    f"{recorded[entry.path].sha256}"
                )
            bytes_read += sink.size
            checked += result.segments
            total += result.segments
            continue
        # A fragment of public data has size 0: unknown until the network is asked.
        pieces = [(f.root, f.size or None) for f in target.fragments]
        sample = read_sample(network, options, pieces or [(target.root, entry.size)], subset, rng)
        bytes_read += sample.bytes_read
        checked += sample.checked
        total += sample.total
    return bytes_read, checked, total
