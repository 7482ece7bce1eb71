"""A 0G file as segments of 1,024 chunks of 256 bytes (spec 0g-storage.md 6 and 7).

What an upload reads from (:class:`SegmentSource`), the form a segment
travels in (:func:`wire_segment`), and the check a segment a node sent must
pass before it is accepted (:func:`check_segment`).

Transfers report progress to a callback ``progress(phase, done, total)``
called from the calling thread, so the CLI can draw a bar. Phases:
``"upload"`` (bytes of segment data accepted by nodes, all replicas counted),
``"sync"`` (seconds waited for nodes to see the payment) and ``"download"``
(bytes written to the sink).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from zerog_cli.errors import IntegrityError, UsageError
from zerog_cli.infra.files import pread_all

if TYPE_CHECKING:
    from zerog_cli.zerog.merkle import FileTree
    from zerog_cli.zerog.merkle_pool import RootPool
    from zerog_cli.zerog.storage_node import SegmentWithProof

CHUNK_SIZE = 256
SEGMENT_CHUNKS = 1024
SEGMENT_SIZE = CHUNK_SIZE * SEGMENT_CHUNKS
Progress = Callable[[str, int, int], None]


class SegmentSource(Protocol):
    """Random access to the bytes that are uploaded (what the tree was built over).

    ``read_at`` must be safe to call from several threads. ``FileSource`` and
    ``encryption.EncryptedReader`` both qualify.
    """

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, length: int) -> bytes: ...


class FileSource:
    """A plain file read with ``os.pread`` (thread-safe, no shared offset)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size

    def read_at(self, offset: int, length: int) -> bytes:
        return pread_all(self._fd, offset, length)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SourceWindow:
    """Bytes [offset, offset + size) of another source: one fragment of a split file."""

    def __init__(self, whole: SegmentSource, offset: int, size: int) -> None:
        if offset < 0 or size <= 0 or offset + size > whole.size:
            raise UsageError(f"no fragment of {size} bytes at {offset} in {whole.size} bytes")
        self._whole = whole
        self._offset = offset
        self.size = size

    def read_at(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        return self._whole.read_at(self._offset + offset, length) if length else b""


def wire_segment(source: SegmentSource, tree: FileTree, index: int) -> SegmentWithProof:
    """Segment ``index`` as it travels: whole chunks, last one zero-padded, with proof."""
    from zerog_cli.zerog.storage_node import SegmentWithProof

    offset = index * SEGMENT_SIZE
    length = max(0, min(SEGMENT_SIZE, tree.size - offset))
    data = source.read_at(offset, length)
    if len(data) != length:
        raise IntegrityError("the file changed size while it was being uploaded")
    if length % CHUNK_SIZE:
        data += bytes(CHUNK_SIZE - length % CHUNK_SIZE)
    return SegmentWithProof(
        root=tree.root_hex, data=data, index=index, proof=tree.proof(index), file_size=tree.size
    )


def _expected_data_length(size: int, index: int) -> int:
    chunks = -(-size // CHUNK_SIZE)
    return min(SEGMENT_CHUNKS, chunks - index * SEGMENT_CHUNKS) * CHUNK_SIZE


def check_segment(
    segment: SegmentWithProof,
    root: bytes,
    size: int,
    index: int,
    where: str,
    pool: RootPool | None = None,
) -> bytes:
    """The segment root; IntegrityError unless ``segment`` is segment ``index`` of the file.

    With ``pool``, a full segment's root (the costly part of the proof) is
    computed by the hashing pool's worker processes instead of this thread.
    """
    from zerog_cli.zerog.merkle import (
        num_padded_segments,
        segment_leaf_count,
        segment_root,
        verify_segment_proof,
    )

    if segment.index != index or segment.root != "0x" + root.hex() or segment.file_size != size:
        raise IntegrityError(f"{where}: sent another segment, root or size than asked")
    expected = _expected_data_length(size, index)
    if len(segment.data) != expected:
        raise IntegrityError(
            f"{where}: segment {index} holds {len(segment.data)} bytes, expected {expected}"
        )
    leaves = segment_leaf_count(size, index)
    if pool is not None and leaves == SEGMENT_CHUNKS and expected == SEGMENT_SIZE:
        seg_root = pool.segment_root(segment.data)
    else:
        seg_root = segment_root(segment.data, leaves)
    try:
        verify_segment_proof(root, seg_root, index, num_padded_segments(size), segment.proof)
    except IntegrityError as error:
        raise IntegrityError(f"{where}: {error}") from None
    return seg_root
