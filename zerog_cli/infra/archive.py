"""Folder snapshots as one deterministic tar stream, with an index of its members.

The stream is POSIX pax (Python's ``tarfile`` with ``PAX_FORMAT``): names
sorted (depth first, entries of a folder by name), owner 0:0 with empty
names, whole-second mtimes, so the same tree always gives the same bytes and
the same 0G root. Regular files, folders and symlinks (as links, never
followed) are stored; devices, sockets and FIFOs are skipped and counted.

The index records, per member, its path relative to the snapshot's folder
(no leading ``./``), type, size, mode, mtime, SHA-256 and ``offset``: where
its data starts in the *plaintext* tar stream. That offset is what lets a
restore fetch only the 0G segments covering one member.

Restores trust neither the index nor the archive (both can come from the
network): `check_member` refuses absolute paths, ``..`` and links whose target
leaves the folder, `extract` checks every tar member against the index and
every file's SHA-256, and never writes through a symlink.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
import sys
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from zerog_cli.errors import IntegrityError, UsageError, ZerogError

INDEX_SCHEMA = "zerog.snapshot-index/1"
KINDS = ("file", "dir", "symlink")
_COPY_BUFFER = 1 << 20


@dataclass(frozen=True)
class Member:
    path: str
    kind: str
    size: int
    mode: int
    mtime: int
    sha256: str | None = None
    offset: int | None = None
    """Start of the file's data in the plaintext tar stream (files only)."""
    link: str | None = None
    """A symlink's target, as stored."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Member:
        try:
            return cls(
                path=str(data["path"]),
                kind=str(data["kind"]),
                size=int(data["size"]),
                mode=int(data["mode"]),
                mtime=int(data["mtime"]),
                sha256=None if data.get("sha256") is None else str(data["sha256"]),
                offset=None if data.get("offset") is None else int(data["offset"]),
                link=None if data.get("link") is None else str(data["link"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise IntegrityError(f"a snapshot index entry is malformed ({error})") from None


@dataclass
class Snapshot:
    members: list[Member] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    """Members left out, by kind: fifo, socket, block device, character device."""

    def index_document(self) -> dict[str, Any]:
        return {
            "schema": INDEX_SCHEMA,
            "members": [member.to_json() for member in self.members],
            "skipped": dict(sorted(self.skipped.items())),
        }


def skipped_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISCHR(mode):
        return "character device"
    return "other"


def walk_folder(root: Path, relative: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(path relative to ``root``, full path, lstat) depth first, each folder sorted by name.

    Plain strings and ``os.lstat``, not ``Path`` objects: on a folder of many
    small files building paths cost more than reading the files.
    """
    folder = os.path.join(root, relative) if relative else os.fspath(root)
    with os.scandir(folder) as scan:
        names = sorted(entry.name for entry in scan)
    for name in names:
        path = f"{relative}/{name}" if relative else name
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(
                f"{os.path.join(folder, name)!r}: the name is not UTF-8; "
                "rename it to back the folder up"
            ) from None
        full = os.path.join(folder, name)
        info = os.lstat(full)
        yield path, full, info
        if stat.S_ISDIR(info.st_mode):
            yield from walk_folder(root, path)


def _tar_info(path: str, info: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    member = tarfile.TarInfo(path)
    member.type = kind
    member.mode = stat.S_IMODE(info.st_mode)
    member.mtime = int(info.st_mtime)
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


_NUL = b"\0"
_OCTAL_LIMIT_12 = 8**11
"""Sizes and mtimes from here on do not fit a 12-byte octal field (tarfile writes a pax record)."""


def _header(path: str, info: os.stat_result, kind: bytes, size: int, link: str) -> bytes:
    """The header block(s) of one member: exactly what ``tarfile``'s PAX_FORMAT writes.

    A name or link target that is ASCII and fits its 100-byte field, with a size
    and mtime that fit theirs, needs no pax record: that plain ustar block is
    built here directly (``tarfile`` spends most of a small file's time on it:
    a TarInfo copy, a dict of fields, a pax check per field). Anything else is
    left to ``tarfile`` itself, so the bytes are the same either way.
    """
    name = path + "/" if kind == tarfile.DIRTYPE else path
    mtime = int(info.st_mtime)
    if (
        len(name) > tarfile.LENGTH_NAME
        or len(link) > tarfile.LENGTH_LINK
        or not name.isascii()
        or not link.isascii()
        or not 0 <= size < _OCTAL_LIMIT_12
        or not 0 <= mtime < _OCTAL_LIMIT_12
    ):
        member = _tar_info(path, info, kind)
        member.size = size
        member.linkname = link
        return member.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    block = b"".join(
        (
            name.encode("ascii").ljust(100, _NUL),
            b"%07o\0" % stat.S_IMODE(info.st_mode),
            b"0000000\0",  # uid 0
            b"0000000\0",  # gid 0
            b"%011o\0" % size,
            b"%011o\0" % mtime,
            b"        ",  # the checksum field counts as spaces while summing
            kind,
            link.encode("ascii").ljust(100, _NUL),
            tarfile.POSIX_MAGIC,
            _NUL * 64,  # uname and gname: empty
            _NUL * 16,  # devmajor and devminor: empty
            _NUL * 155,  # prefix: empty (pax names never use it)
        )
    ).ljust(tarfile.BLOCKSIZE, _NUL)
    checksum = b"%06o\0" % sum(block)
    return block[:148] + checksum + block[155:]


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def write_snapshot(source: Path, sink: IO[bytes]) -> Snapshot:
    """Write the tar stream of the folder ``source`` into ``sink``; return its index.

    The stream is what ``tarfile`` writes in PAX_FORMAT (headers from
    `_header`, data padded to 512-byte blocks, two zero blocks and zeros to a
    whole 10 KiB record at the end), written here directly: headers, the
    SHA-256 of each file and the copy all in one loop.
    """
    snapshot = Snapshot()
    position = 0
    buffer = bytearray(_COPY_BUFFER)
    view = memoryview(buffer)
    for path, full, info in walk_folder(source):
        mode, mtime = stat.S_IMODE(info.st_mode), int(info.st_mtime)
        if stat.S_ISDIR(info.st_mode):
            header = _header(path, info, tarfile.DIRTYPE, 0, "")
            sink.write(header)
            position += len(header)
            snapshot.members.append(Member(path, "dir", 0, mode, mtime))
        elif stat.S_ISLNK(info.st_mode):
            target = os.readlink(full)
            header = _header(path, info, tarfile.SYMTYPE, 0, target)
            sink.write(header)
            position += len(header)
            snapshot.members.append(Member(path, "symlink", 0, mode, mtime, link=target))
        elif stat.S_ISREG(info.st_mode):
            size = info.st_size
            header = _header(path, info, tarfile.REGTYPE, size, "")
            digest = hashlib.sha256()
            with open(full, "rb", buffering=0) as handle:
                sink.write(header)
                position += len(header)
                offset = position
                left = size
                while left:
                    count = handle.readinto(view[: min(left, _COPY_BUFFER)])
                    if not count:
                        raise OSError(f"{full}: unexpected end of data (the file shrank)")
                    digest.update(view[:count])
                    sink.write(view[:count])
                    left -= count
            padding = _padded(size) - size
            if padding:
                sink.write(_NUL * padding)
            position += _padded(size)
            snapshot.members.append(
                Member(path, "file", size, mode, mtime, digest.hexdigest(), offset)
            )
        else:
            snapshot.skipped[skipped_kind(info.st_mode)] += 1
    end = position + 2 * tarfile.BLOCKSIZE
    sink.write(_NUL * (2 * tarfile.BLOCKSIZE + (-end % tarfile.RECORDSIZE)))
    return snapshot


# -- restoring ---------------------------------------------------------------------------


def check_member(member: Member, archive_size: int | None = None) -> None:
    """IntegrityError unless ``member`` stays inside the folder it is restored into."""
    path = member.path
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise IntegrityError(f"snapshot member {path!r}: not a relative path; refused")
    if any(part in ("", ".", "..") for part in parts):
        raise IntegrityError(f"snapshot member {path!r}: '..', '.' or an empty part; refused")
    if member.kind not in KINDS:
        raise IntegrityError(f"snapshot member {path!r}: unknown kind {member.kind!r}; refused")
    if member.kind == "symlink":
        target = member.link or ""
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if (
            not target
            or target.startswith("/")
            or "\x00" in target
            or resolved == ".."
            or resolved.startswith("../")
        ):
            raise IntegrityError(
                f"snapshot member {path!r}: link to {target!r} leaves the folder; refused"
            )
    if member.kind == "file":
        if member.size < 0 or member.offset is None or member.offset < 0 or not member.sha256:
            raise IntegrityError(f"snapshot member {path!r}: no offset or SHA-256; refused")
        if archive_size is not None and member.offset + member.size > archive_size:
            raise IntegrityError(f"snapshot member {path!r}: runs past the end of the archive")


def check_index(members: list[Member], archive_size: int | None = None) -> None:
    seen: set[str] = set()
    for member in members:
        check_member(member, archive_size)
        if member.path in seen:
            raise IntegrityError(f"snapshot member {member.path!r} appears twice; refused")
        seen.add(member.path)


def _as_member(info: tarfile.TarInfo) -> Member:
    if info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.isreg():
        kind = "file"
    else:
        raise IntegrityError(f"archive member {info.name!r}: a hard link or special file; refused")
    return Member(
        info.name.rstrip("/") if kind == "dir" else info.name,
        kind,
        info.size if kind == "file" else 0,
        info.mode,
        int(info.mtime),
        offset=info.offset_data if kind == "file" else None,
        sha256="-" if kind == "file" else None,
        link=info.linkname if kind == "symlink" else None,
    )


def _inside(destination: Path, relative: str) -> Path:
    """``destination/relative`` when no folder on the way is a symlink; else IntegrityError."""
    target = destination / relative
    parent = target.parent
    while parent != destination:
        if parent.is_symlink():
            raise IntegrityError(f"archive member {relative!r} would be written through a link")
        parent = parent.parent
    return target


def extract(archive: Path, destination: Path, index: list[Member]) -> int:
    """Restore ``archive`` into the empty folder ``destination``; returns files written.

    Every tar member must be the index's member of the same path and kind, in
    the index's order, and pass `check_member`; every file's SHA-256 must
    match the index. Checked before anything is written, except the hashes
    (checked as each file is written; the caller removes the folder on error).
    """
    by_path = {member.path: member for member in index}
    with tarfile.open(archive, mode="r:") as tar:
        stored = tar.getmembers()
        members = [_as_member(info) for info in stored]
        for member in members:
            check_member(member)
            expected = by_path.get(member.path)
            if expected is None:
                raise IntegrityError(f"archive member {member.path!r} is not in the index")
            if (expected.kind, expected.size, expected.link, expected.offset) != (
                member.kind,
                member.size,
                member.link,
                member.offset,
            ):
                raise IntegrityError(f"archive member {member.path!r} differs from the index")
        if len(members) != len(index) or {m.path for m in members} != set(by_path):
            raise IntegrityError("the archive and its index list different members")
        written = 0
        folders: list[tuple[Path, Member]] = []
        for info, member in zip(stored, members, strict=True):
            target = _inside(destination, member.path)
            expected = by_path[member.path]
            if member.kind == "dir":
                target.mkdir(mode=0o700)
                folders.append((target, expected))
            elif member.kind == "symlink":
                os.symlink(member.link or "", target)
            else:
                source = tar.extractfile(info)
                if source is None:
                    raise IntegrityError(f"archive member {member.path!r} has no data")
                digest = hashlib.sha256()
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while block := source.read(_COPY_BUFFER):
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != expected.sha256:
                    raise IntegrityError(
                        f"archive member {member.path!r}: SHA-256 {digest.hexdigest()} differs "
                        f"from the index's {expected.sha256}"
                    )
                os.chmod(target, expected.mode & 0o777)
                os.utime(target, (expected.mtime, expected.mtime))
                written += 1
        for folder, member in reversed(folders):
            os.chmod(folder, member.mode & 0o777)
            os.utime(folder, (member.mtime, member.mtime))
    return written


def main(argv: list[str]) -> int:
    """``python -m zerog_cli.infra.archive FOLDER INDEX``: the tar on stdout, its index in INDEX.

    `backup create DIR` runs this as the producer of its upload stream, so the
    tar is written on another core than the one hashing it, as ``tar cf -``
    would be; a failure is one line on stderr and a non-zero exit, which the
    spool turns into a refused input (nothing stored).
    """
    folder, index = Path(argv[0]), Path(argv[1])
    try:
        snapshot = write_snapshot(folder, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        index.write_text(json.dumps(snapshot.index_document(), sort_keys=True), encoding="utf-8")
    except (OSError, ZerogError) as error:
        print(f"zerog: {folder}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
