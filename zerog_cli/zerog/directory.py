"""The official 0G directory format: what `0g-storage-client upload-dir` stores.

Learned from the official Go client (transfer/dir/codec.go and fs.go,
transfer/upload_dir.go, download_dir.go); written here from that reading.
A directory on 0G is one *metadata object* plus one object per non-empty
regular file (or several, when a file was split at the fragment size). The
metadata object's bytes are::

    keccak256("0g-storage-client-dir-codec")   32 bytes of magic
    codec version                               2 bytes, big-endian (1 or 2)
    JSON of the root node                       the rest

A node is ``{"name", "type", "hash", "roots", "size", "link", "entries"}``
with the empty fields left out: ``type`` is ``file``, ``directory`` or
``symbolic``; a file has its size and its Merkle root (version 1: one root in
``hash``; version 2: the list ``roots``, one per fragment); a symbolic link
its ``link`` target; a directory its ``entries``, sorted by name. The root
node is a directory named ``/``. Version 1 writes a zero-byte file's ``hash``
as 32 zero bytes; nothing of it is stored.

Nothing here is trusted when read: names must be single path parts, roots
must be roots, and paths and links are checked again by whoever writes files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from zerog_cli.errors import IntegrityError
from zerog_cli.zerog.merkle import keccak256

MAGIC = keccak256(b"0g-storage-client-dir-codec")
CODEC_V1 = 1
"""One root per file (``hash``): what the official client wrote until it split large files."""
CODEC_V2 = 2
"""A list of roots per file (``roots``): a file split at the fragment size."""
ZERO_ROOT = "0x" + "00" * 32
MAX_DEPTH = 256
"""Folders nested deeper than this are refused (a hostile metadata object could nest millions)."""

_ROOT = re.compile(r"0x[0-9a-fA-F]{64}")
_TYPES = {"file": "file", "directory": "dir", "symbolic": "symlink"}
_NAMES = {kind: name for name, kind in _TYPES.items()}


@dataclass(frozen=True)
class Entry:
    """One node below the root, by its path relative to the directory ('/'-separated)."""

    path: str
    kind: str
    """``file``, ``dir`` or ``symlink`` (zerog's member kinds)."""
    size: int = 0
    roots: tuple[str, ...] = ()
    """A file's root, or its fragments' roots in order; empty for an empty file."""
    link: str | None = None


def codec_version(entries: list[Entry]) -> int:
    """The oldest version that holds ``entries``: 1 unless a file has several roots."""
    return CODEC_V2 if any(len(entry.roots) > 1 for entry in entries) else CODEC_V1


def encode(entries: list[Entry]) -> bytes:
    """The metadata object of a directory holding ``entries`` (parents before children).

    Encoded as the official client encodes it (field order, sorted entries, Go's
    escaping of ``<``, ``>`` and ``&``), so the same tree gives the same bytes.
    """
    version = codec_version(entries)
    root: dict[str, Any] = {"name": "/", "type": "directory", "entries": []}
    folders: dict[str, dict[str, Any]] = {"": root}
    for entry in entries:
        parent, _, name = entry.path.rpartition("/")
        node: dict[str, Any] = {"name": name, "type": _NAMES[entry.kind]}
        if entry.kind == "file":
            if version == CODEC_V1:
                node["hash"] = entry.roots[0] if entry.roots else ZERO_ROOT
            elif entry.roots:
                node["roots"] = list(entry.roots)
            if entry.size:
                node["size"] = entry.size
        elif entry.kind == "symlink":
            if entry.link:
                node["link"] = entry.link
        else:
            node["entries"] = []
            folders[entry.path] = node
        folders[parent]["entries"].append(node)
    for folder in folders.values():
        folder["entries"].sort(key=lambda child: child["name"].encode("utf-8"))
        if not folder["entries"]:
            del folder["entries"]
    text = json.dumps(root, ensure_ascii=False, separators=(",", ":"))
    for character, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(character, escaped)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return MAGIC + version.to_bytes(2, "big") + text.encode("utf-8")


def decode(data: bytes) -> list[Entry]:
    """The entries of a metadata object, parents before children; IntegrityError if malformed."""
    if len(data) < len(MAGIC) + 2 or data[: len(MAGIC)] != MAGIC:
        raise IntegrityError("not a 0G directory: the metadata object lacks the codec's magic")
    version = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 2], "big")
    if version not in (CODEC_V1, CODEC_V2):
        raise IntegrityError(f"0G directory codec version {version} is not 1 or 2")
    try:
        root = json.loads(data[len(MAGIC) + 2 :].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise IntegrityError(f"the 0G directory's metadata is not JSON ({error})") from None
    if not isinstance(root, dict) or root.get("type") != "directory":
        raise IntegrityError("the 0G directory's root node is not a directory")
    entries: list[Entry] = []
    pending: list[tuple[str, int, Any]] = [("", 0, root)]
    while pending:
        prefix, depth, folder = pending.pop()
        children = folder.get("entries") or []
        if not isinstance(children, list):
            raise IntegrityError(f"0G directory folder {prefix or '/'!r}: entries is not a list")
        if depth >= MAX_DEPTH and children:
            raise IntegrityError(f"0G directory nested deeper than {MAX_DEPTH} folders; refused")
        seen: set[str] = set()
        below: list[tuple[str, int, Any]] = []
        for child in children:
            entry = _entry(prefix, child, version)
            if entry.path in seen:
                raise IntegrityError(f"0G directory entry {entry.path!r} appears twice; refused")
            seen.add(entry.path)
            entries.append(entry)
            if entry.kind == "dir":
                below.append((entry.path + "/", depth + 1, child))
        pending.extend(reversed(below))
    return entries


def _entry(prefix: str, node: Any, version: int) -> Entry:
    if not isinstance(node, dict):
        raise IntegrityError(f"0G directory folder {prefix or '/'!r}: an entry is not an object")
    name = node.get("name")
    kind = _TYPES.get(node.get("type"))  # type: ignore[arg-type]
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise IntegrityError(f"0G directory entry {prefix}{name!r}: not a file name; refused")
    path = prefix + name
    if kind is None:
        raise IntegrityError(f"0G directory entry {path!r}: unknown type {node.get('type')!r}")
    size = node.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise IntegrityError(f"0G directory entry {path!r}: size {size!r} is not a byte count")
    if kind == "symlink":
        link = node.get("link")
        if not isinstance(link, str):
            raise IntegrityError(f"0G directory entry {path!r}: a link without a target")
        return Entry(path, kind, link=link)
    if kind == "dir":
        return Entry(path, kind)
    roots: Any = [node["hash"]] if version == CODEC_V1 and "hash" in node else node.get("roots")
    roots = roots or []
    if not isinstance(roots, list) or not all(
        isinstance(root, str) and _ROOT.fullmatch(root) for root in roots
    ):
        raise IntegrityError(f"0G directory entry {path!r}: its roots are not 0G roots")
    if size == 0:
        return Entry(path, kind)
    if not roots or ZERO_ROOT in roots:
        raise IntegrityError(f"0G directory entry {path!r}: {size} bytes without a root")
    return Entry(path, kind, size, tuple(root.lower() for root in roots))
