"""The 0G file Merkle tree: file roots, segment roots, submission nodes, segment proofs.

Written from specs/0g-storage.md section 2 and checked against the official SDK's
vectors (shared/conformance/storage-roots.json). In short: a file is cut into
256-byte chunks (the last one zero-padded), the chunk count is rounded up by the
flow padding rule, every chunk is a Keccak-256 leaf, and nodes are paired left to
right with an odd last node carried up unchanged. Segments are aligned blocks of
1024 leaves; the file root is the same tree taken over the segment roots, which
lets the root be computed in one pass with constant memory.

Large inputs are hashed by worker processes (`merkle_pool`) while this process
reads the file and computes its SHA-256, so `zerog hash` and uploads read each
file once and use every core.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from tiny_keccak import keccak256 as _keccak

from zerog_cli.errors import IntegrityError, ProtocolError, UsageError
from zerog_cli.zerog.abi import keccak256
from zerog_cli.zerog.segment_hash import (
    CHUNK_SIZE,
    SEGMENT_CHUNKS,
    SEGMENT_HEIGHT,
    SEGMENT_SIZE,
    hash_full_segments,
)

DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024
"""Bytes read per call when hashing a stream (a whole number of segments)."""

POOL_MIN_BYTES = 16 * 1024 * 1024
"""Inputs smaller than this are hashed in-process: starting workers costs more
than it saves (measured with bench/merkle.py on 2 cores: about 45 ms to start two
workers, against about 4.5 ms saved per MiB)."""

MAX_PROOF_DEPTH = 64
"""More proof levels than any file the flow can hold; longer proofs are refused."""

ByteStream = BinaryIO | io.RawIOBase
"""What `tree_from_stream` reads: any binary file object, buffered or raw."""

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}\Z")


EMPTY_CHUNK_HASH = keccak256(bytes(CHUNK_SIZE))

_ZERO_HASHES = [EMPTY_CHUNK_HASH]


def zero_subtree_hash(level: int) -> bytes:
    """Root of a complete subtree of 2**level all-zero chunks.

    Z[0] is the empty-chunk hash and Z[i] = K(Z[i-1] || Z[i-1]); Z[10] is the root
    of an all-zero segment. The storage node checks proof siblings that cover only
    flow padding against these values.
    """
    if not 0 <= level <= MAX_PROOF_DEPTH + SEGMENT_HEIGHT:
        raise UsageError(f"zero subtree level {level} is out of range")
    while len(_ZERO_HASHES) <= level:
        below = _ZERO_HASHES[-1]
        _ZERO_HASHES.append(_keccak(below + below))
    return _ZERO_HASHES[level]


def _check_size(size: int) -> None:
    if size < 0:
        raise UsageError(f"a file size cannot be negative ({size})")
    if size == 0:
        raise UsageError("file is empty: 0G cannot store an empty file")


def num_chunks(size: int) -> int:
    """C: 256-byte chunks in a file of `size` bytes (the last one may be short)."""
    _check_size(size)
    return -(-size // CHUNK_SIZE)


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def padded_chunks(chunks: int) -> int:
    """C': the chunk count after flow padding (spec 2.2)."""
    if chunks < 1:
        raise UsageError(f"a file has at least one chunk, not {chunks}")
    power = _next_pow2(chunks)
    if power == chunks:
        return chunks
    multiple = max(1, power // 16)
    return -(-chunks // multiple) * multiple


def num_data_segments(size: int) -> int:
    """Segments that hold file data (ceil(C / 1024)); only these travel on the wire."""
    return -(-num_chunks(size) // SEGMENT_CHUNKS)


def num_padded_segments(size: int) -> int:
    """Segments in the tree (ceil(C' / 1024)), pure flow-padding segments included."""
    return -(-padded_chunks(num_chunks(size)) // SEGMENT_CHUNKS)


def segment_leaf_count(size: int, index: int) -> int:
    """Leaves of segment `index` in the padded tree (`want` in spec 2.6)."""
    padded = padded_chunks(num_chunks(size))
    segments = -(-padded // SEGMENT_CHUNKS)
    if not 0 <= index < segments:
        raise UsageError(f"segment index {index} is out of range (the file has {segments})")
    return min(SEGMENT_CHUNKS, padded - SEGMENT_CHUNKS * index)


def tree_root(nodes: Sequence[bytes]) -> bytes:
    """T(nodes): pair neighbours left to right; an odd last node moves up unchanged."""
    level = list(nodes)
    if not level:
        raise UsageError("a Merkle tree needs at least one leaf")
    keccak = _keccak
    while len(level) > 1:
        upper = [keccak(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            upper.append(level[-1])
        level = upper
    return level[0]


def empty_subtree_root(leaves: int) -> bytes:
    """T of `leaves` empty-chunk leaves, in O(log n) hashes.

    T splits a list at the largest power of two below its length, so the root of n
    identical zero leaves is the right fold of Z[b] over the set bits b of n, high
    to low.
    """
    if leaves < 1:
        raise UsageError(f"a Merkle tree needs at least one leaf, not {leaves}")
    heights = [bit for bit in range(leaves.bit_length() - 1, -1, -1) if leaves >> bit & 1]
    root = zero_subtree_hash(heights[-1])
    for height in reversed(heights[:-1]):
        root = _keccak(zero_subtree_hash(height) + root)
    return root


def _chunk_leaves(data: bytes | bytearray | memoryview) -> list[bytes]:
    """Leaf hashes of `data`'s chunks, zero-padding a short last chunk."""
    keccak = _keccak
    data = bytes(data)
    whole = len(data) - len(data) % CHUNK_SIZE
    leaves = [keccak(data[i : i + CHUNK_SIZE]) for i in range(0, whole, CHUNK_SIZE)]
    if whole < len(data):
        leaves.append(keccak(data[whole:].ljust(CHUNK_SIZE, b"\0")))
    return leaves


def full_segment_roots(data: bytes | bytearray | memoryview) -> list[bytes]:
    """Roots of consecutive full segments; `len(data)` must be a multiple of SEGMENT_SIZE."""
    if len(data) % SEGMENT_SIZE:
        raise UsageError(f"{len(data)} bytes is not a whole number of segments")
    return hash_full_segments(memoryview(data).cast("B"))


def segment_root(data: bytes | bytearray | memoryview, padded_leaves: int) -> bytes:
    """Root of a segment from its wire bytes, extended with empty leaves to `padded_leaves`.

    `data` is what `zgs_uploadSegment`/`zgs_downloadSegment` carry: whole chunks,
    the file's last chunk zero-padded, no flow padding (a short last chunk is
    zero-padded here as well). `padded_leaves` is `segment_leaf_count(size, index)`.
    """
    if not 1 <= padded_leaves <= SEGMENT_CHUNKS:
        raise UsageError(f"a segment has 1 to {SEGMENT_CHUNKS} leaves, not {padded_leaves}")
    leaves = _chunk_leaves(data)
    if len(leaves) > padded_leaves:
        raise UsageError(
            f"segment data holds {len(leaves)} chunks, more than its {padded_leaves} leaves"
        )
    leaves.extend([EMPTY_CHUNK_HASH] * (padded_leaves - len(leaves)))
    return tree_root(leaves)


@dataclass(frozen=True)
class SubmissionNode:
    """One node of a Flow submission: the root of 2**height consecutive padded chunks."""

    root: bytes
    height: int

    def to_json(self) -> dict[str, Any]:
        return {"root": "0x" + self.root.hex(), "height": self.height}


def submission_layout(size: int) -> tuple[tuple[int, int], ...]:
    """(chunk offset, height) of each submission node: C' split into descending powers of two."""
    chunks = num_chunks(size)
    rest = padded_chunks(chunks)
    span = _next_pow2(chunks)
    offset = 0
    layout = []
    while rest > 0:
        if rest >= span:
            layout.append((offset, span.bit_length() - 1))
            offset += span
            rest -= span
        span //= 2
    return tuple(layout)


def submission_nodes_for(
    size: int,
    segment_roots: Sequence[bytes],
    last_segment_leaves: Sequence[bytes] = (),
) -> tuple[SubmissionNode, ...]:
    """The nodes `Flow.submit` carries for a file (spec 2.5).

    Nodes of a segment or more are trees over `segment_roots` (one per padded
    segment). Nodes smaller than a segment always lie in the last padded segment,
    so they need that segment's leaf hashes: `last_segment_leaves`, all
    `segment_leaf_count(size, last)` of them, empty-chunk leaves included.
    """
    segments = num_padded_segments(size)
    if len(segment_roots) != segments:
        raise UsageError(f"expected {segments} segment roots, got {len(segment_roots)}")
    last_start = SEGMENT_CHUNKS * (segments - 1)
    nodes = []
    for offset, height in submission_layout(size):
        if height >= SEGMENT_HEIGHT:
            first = offset // SEGMENT_CHUNKS
            covered = segment_roots[first : first + (1 << (height - SEGMENT_HEIGHT))]
        else:
            start = offset - last_start
            covered = last_segment_leaves[start : start + (1 << height)]
            if len(covered) != 1 << height:
                raise UsageError("the last segment's leaf hashes are needed for this file size")
        nodes.append(SubmissionNode(root=tree_root(covered), height=height))
    return tuple(nodes)


def fold_submission_root(nodes: Sequence[SubmissionNode]) -> bytes:
    """The file root from submission nodes: a right fold, as the contract and node do."""
    if not nodes:
        raise UsageError("a submission has at least one node")
    root = nodes[-1].root
    for node in reversed(nodes[:-1]):
        root = _keccak(node.root + root)
    return root


def _hex32(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX32.match(value):
        raise ProtocolError(f"malformed segment proof: {where} is not a 0x-prefixed 32-byte hex")
    return bytes.fromhex(value[2:])


@dataclass(frozen=True)
class SegmentProof:
    """A segment's proof against the file root, in the `FileProof` wire shape (spec 2.6).

    `lemma` = [segment root, siblings bottom to top, file root]; `path[i]` is true
    when the node at level i is a left child (its sibling `lemma[i+1]` is on the
    right). A one-segment file has lemma = [root] and an empty path.
    """

    lemma: tuple[bytes, ...]
    path: tuple[bool, ...]

    def to_json(self) -> dict[str, Any]:
        return {"lemma": ["0x" + node.hex() for node in self.lemma], "path": list(self.path)}

    @classmethod
    def from_json(cls, obj: object) -> SegmentProof:
        """Parse a peer's `{"lemma": [...], "path": [...]}`, refusing anything malformed."""
        if not isinstance(obj, dict):
            raise ProtocolError("malformed segment proof: expected a JSON object")
        lemma, path = obj.get("lemma"), obj.get("path")
        if not isinstance(lemma, list) or not isinstance(path, list):
            raise ProtocolError("malformed segment proof: lemma and path must be lists")
        if len(path) > MAX_PROOF_DEPTH:
            raise ProtocolError(f"malformed segment proof: path has {len(path)} levels")
        if not all(isinstance(step, bool) for step in path):
            raise ProtocolError("malformed segment proof: path entries must be booleans")
        expected = len(path) + 2 if path else 1
        if len(lemma) != expected:
            raise ProtocolError(
                f"malformed segment proof: {len(lemma)} lemma entries for a path of "
                f"{len(path)} (expected {expected})"
            )
        nodes = tuple(_hex32(node, f"lemma[{i}]") for i, node in enumerate(lemma))
        return cls(lemma=nodes, path=tuple(path))


def _proof_positions(
    index: int, num_segments: int, path: Sequence[bool]
) -> tuple[int, int, list[tuple[int, int]]]:
    """Walk the path top-down (spec 2.6 step 3).

    Returns the leaf position it leads to, the leaf count left at the end (1 for a
    well-formed path) and, per path level, the segment range its sibling covers.
    """
    position, count = 0, num_segments
    siblings: list[tuple[int, int]] = [(0, 0)] * len(path)
    for level in range(len(path) - 1, -1, -1):
        if count < 2:
            return position, 0, siblings
        half = _next_pow2(count) // 2
        if path[level]:
            siblings[level] = (position + half, position + count)
            count = half
        else:
            siblings[level] = (position, position + half)
            position += half
            count -= half
    return position, count, siblings


def verify_segment_proof(
    root: bytes,
    seg_root: bytes,
    index: int,
    num_padded_segments: int,
    proof: SegmentProof,
    *,
    check_rear_padding: bool = False,
    num_data_segments: int | None = None,
) -> None:
    """Check a segment proof as the storage node does; raise IntegrityError if it fails.

    With `check_rear_padding`, every sibling that covers only pure flow-padding
    segments (index >= `num_data_segments`) must be the all-zero subtree hash
    (node `validate_rear_padding`).
    """
    where = f"segment {index} proof"
    if not 0 <= index < num_padded_segments:
        raise IntegrityError(
            f"{where}: index out of range for a tree of {num_padded_segments} segments"
        )
    lemma, path = proof.lemma, proof.path
    expected = len(path) + 2 if path else 1
    if len(lemma) != expected or len(path) > MAX_PROOF_DEPTH:
        raise IntegrityError(
            f"{where}: {len(lemma)} lemma entries for a path of {len(path)} (expected {expected})"
        )
    if any(len(node) != 32 for node in lemma):
        raise IntegrityError(f"{where}: lemma entries must be 32-byte hashes")
    if lemma[0] != seg_root:
        raise IntegrityError(
            f"{where}: segment root 0x{seg_root.hex()} does not match lemma[0] 0x{lemma[0].hex()}"
        )
    if lemma[-1] != root:
        raise IntegrityError(
            f"{where}: proves root 0x{lemma[-1].hex()}, expected file root 0x{root.hex()}"
        )
    position, remaining, siblings = _proof_positions(index, num_padded_segments, path)
    if position != index or remaining != 1:
        raise IntegrityError(
            f"{where}: path leads to segment {position} of {num_padded_segments}, not {index}"
        )
    node = lemma[0]
    for level, left in enumerate(path):
        sibling = lemma[level + 1]
        node = _keccak(node + sibling if left else sibling + node)
    if node != root:
        raise IntegrityError(
            f"{where}: recomputed root 0x{node.hex()} does not match file root 0x{root.hex()}"
        )
    if check_rear_padding:
        if num_data_segments is None:
            raise UsageError("num_data_segments is needed to check the rear padding")
        for level, (first, end) in enumerate(siblings):
            if first >= num_data_segments:
                padding = empty_subtree_root((end - first) * SEGMENT_CHUNKS)
                if lemma[level + 1] != padding:
                    raise IntegrityError(
                        f"{where}: invalid proof node value in the padding range "
                        f"(level {level}, segments {first}..{end - 1})"
                    )


@dataclass(frozen=True)
class FileTree:
    """Everything the protocol needs about one file's tree."""

    size: int
    root: bytes
    segment_roots: tuple[bytes, ...]
    num_chunks: int
    padded_chunks: int
    submission_nodes: tuple[SubmissionNode, ...]
    fee_sectors: int

    @property
    def root_hex(self) -> str:
        return "0x" + self.root.hex()

    @property
    def num_data_segments(self) -> int:
        return -(-self.num_chunks // SEGMENT_CHUNKS)

    @property
    def num_padded_segments(self) -> int:
        return len(self.segment_roots)

    @cached_property
    def _levels(self) -> list[list[bytes]]:
        """The tree over the segment roots, level by level (built once, for proofs)."""
        levels = [list(self.segment_roots)]
        while len(levels[-1]) > 1:
            level = levels[-1]
            upper = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                upper.append(level[-1])
            levels.append(upper)
        return levels

    def proof(self, segment_index: int) -> SegmentProof:
        """The proof of segment `segment_index` against `root`."""
        if not 0 <= segment_index < self.num_padded_segments:
            raise UsageError(
                f"segment index {segment_index} is out of range "
                f"(the file has {self.num_padded_segments})"
            )
        siblings: list[bytes] = []
        path: list[bool] = []
        position = segment_index
        for level in self._levels[:-1]:
            if position % 2:
                siblings.append(level[position - 1])
                path.append(False)
            elif position + 1 < len(level):
                siblings.append(level[position + 1])
                path.append(True)
            position //= 2
        if not path:
            return SegmentProof(lemma=(self.root,), path=())
        lemma = (self.segment_roots[segment_index], *siblings, self.root)
        return SegmentProof(lemma=lemma, path=tuple(path))

    def segment_leaf_count(self, index: int) -> int:
        """Leaves of segment `index` in the padded tree (see `segment_root`)."""
        return segment_leaf_count(self.size, index)

    def segment_wire_range(self, index: int) -> tuple[int, int]:
        """(offset, length) of the file bytes segment `index` carries on the wire.

        The caller zero-pads the last chunk of the last data segment to 256 bytes.
        Pure flow-padding segments carry nothing: their length is 0.
        """
        if not 0 <= index < self.num_padded_segments:
            raise UsageError(
                f"segment index {index} is out of range (the file has {self.num_padded_segments})"
            )
        offset = index * SEGMENT_SIZE
        return offset, max(0, min(SEGMENT_SIZE, self.size - offset))


def _assemble(size: int, roots: list[bytes], tail: bytes) -> FileTree:
    """Finish a tree from the roots of its full data segments and the bytes after them."""
    chunks = num_chunks(size)
    padded = padded_chunks(chunks)
    segments = -(-padded // SEGMENT_CHUNKS)
    last_leaves: list[bytes] = []
    if tail:
        last_leaves = _chunk_leaves(tail)
        want = min(SEGMENT_CHUNKS, padded - SEGMENT_CHUNKS * len(roots))
        last_leaves.extend([EMPTY_CHUNK_HASH] * (want - len(last_leaves)))
        roots.append(tree_root(last_leaves))
    while len(roots) < segments:
        want = min(SEGMENT_CHUNKS, padded - SEGMENT_CHUNKS * len(roots))
        last_leaves = [EMPTY_CHUNK_HASH] * want
        roots.append(empty_subtree_root(want))
    nodes = submission_nodes_for(size, roots, last_leaves)
    return FileTree(
        size=size,
        root=tree_root(roots),
        segment_roots=tuple(roots),
        num_chunks=chunks,
        padded_chunks=padded,
        submission_nodes=nodes,
        fee_sectors=sum(1 << node.height for node in nodes),
    )


class TreeBuilder:
    """Streaming root computation: feed bytes in any pieces, then `finish()`.

    Holds one partial segment and one 32-byte root per segment, whatever the size.
    With `with_sha256=True` it also computes the SHA-256 of the same bytes
    (`sha256_hex` after `finish()`), so a file is read once for both.
    """

    def __init__(self, *, with_sha256: bool = False) -> None:
        self._roots: list[bytes] = []
        self._pending = bytearray()
        self._size = 0
        self._sha256 = hashlib.sha256() if with_sha256 else None
        self._finished = False
        self.sha256_hex: str | None = None

    @property
    def size(self) -> int:
        """Bytes fed so far."""
        return self._size

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = self._account(data)
        if self._pending:
            take = min(SEGMENT_SIZE - len(self._pending), len(view))
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < SEGMENT_SIZE:
                return
            self._roots.extend(full_segment_roots(bytes(self._pending)))
            self._pending.clear()
        whole = len(view) - len(view) % SEGMENT_SIZE
        if whole:
            self._roots.extend(full_segment_roots(view[:whole]))
        self._pending += view[whole:]

    def _account(self, data: bytes | bytearray | memoryview) -> memoryview:
        """Count `data` into the size and SHA-256 without hashing its segments."""
        if self._finished:
            raise UsageError("TreeBuilder.update() called after finish()")
        view = memoryview(data).cast("B")
        self._size += len(view)
        if self._sha256 is not None:
            self._sha256.update(view)
        return view

    def _extend_roots(self, roots: Sequence[bytes]) -> None:
        """Append roots of full segments hashed elsewhere (their bytes went through `_account`)."""
        if self._pending:
            raise UsageError("segment roots can only be added on a segment boundary")
        self._roots.extend(roots)

    def finish(self, name: str = "input") -> FileTree:
        """The tree of everything fed so far; `name` is used in the empty-input error."""
        roots, tail = self._close(name)
        return _assemble(self._size, roots, tail)

    def finish_fragments(self, fragment_size: int, name: str = "input") -> list[FileTree]:
        """The trees of consecutive ``fragment_size`` pieces of everything fed so far.

        Each piece is a file of its own (the official clients' split upload; the
        last piece is the short rest, unpadded). A fragment holds whole segments,
        so its tree is assembled from segment roots already computed: the input
        is hashed once however it is cut. One tree, `finish()`'s, when it fits.
        """
        if fragment_size < SEGMENT_SIZE or fragment_size % SEGMENT_SIZE:
            raise UsageError(f"fragment size must be a multiple of {SEGMENT_SIZE} bytes")
        roots, tail = self._close(name)
        per_fragment = fragment_size // SEGMENT_SIZE
        trees = []
        for offset in range(0, self._size, fragment_size):
            first = offset // SEGMENT_SIZE
            if offset + fragment_size < self._size:
                trees.append(_assemble(fragment_size, roots[first : first + per_fragment], b""))
            else:
                trees.append(_assemble(self._size - offset, roots[first:], tail))
        return trees

    def _close(self, name: str) -> tuple[list[bytes], bytes]:
        """End the input: (roots of the full segments, the bytes after them)."""
        if self._finished:
            raise UsageError("TreeBuilder.finish() called twice")
        if self._size == 0:
            raise UsageError(f"{name} is empty: 0G cannot store an empty file")
        self._finished = True
        if self._sha256 is not None:
            self.sha256_hex = self._sha256.hexdigest()
        closed = self._roots, bytes(self._pending)
        self._roots, self._pending = [], bytearray()
        return closed


def tree_from_bytes(data: bytes | bytearray | memoryview) -> FileTree:
    """The tree of an in-memory file (in-process)."""
    builder = TreeBuilder()
    builder.update(data)
    return builder.finish()


def default_workers() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _readinto_for(stream: ByteStream) -> Callable[[memoryview], int]:
    """A function that fills a buffer from `stream` completely unless the stream ends."""

    def readinto(buffer: memoryview) -> int:
        filled = 0
        while filled < len(buffer):
            chunk = stream.read(len(buffer) - filled)
            if not chunk:
                break
            buffer[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        return filled

    native = getattr(stream, "readinto", None)
    if native is None:
        return readinto

    def readinto_native(buffer: memoryview) -> int:
        filled = 0
        while filled < len(buffer):
            got = native(buffer[filled:])
            if not got:
                break
            filled += got
        return filled

    return readinto_native


def _pool_start(stream: ByteStream, workers: int, pool_min_bytes: int) -> int | None:
    """After how many bytes to hand the rest of `stream` to worker processes (None: never).

    A regular file's remaining size is known, so the pool starts at once or not at
    all; any other stream starts in-process and moves to the pool when it turns
    out to be large.
    """
    if workers < 2:
        return None
    try:
        info = os.fstat(stream.fileno())
        position = stream.tell()
    except (AttributeError, OSError, ValueError):
        return pool_min_bytes
    if not stat.S_ISREG(info.st_mode):
        return pool_min_bytes
    return 0 if info.st_size - position >= pool_min_bytes else None


def tree_from_stream(
    stream: ByteStream,
    *,
    workers: int | None = None,
    with_sha256: bool = True,
    name: str = "input",
    block_size: int = DEFAULT_BLOCK_SIZE,
    pool_min_bytes: int = POOL_MIN_BYTES,
) -> tuple[FileTree, str | None]:
    """Tree (and SHA-256 hex when asked) of everything left in `stream`, read once.

    `workers`: hashing processes; None means one per CPU, 0 or 1 hashes in this
    process. Inputs under `pool_min_bytes` are always hashed in-process. Memory
    stays bounded by a few `block_size` blocks whatever the input size.
    """
    builder = TreeBuilder(with_sha256=with_sha256)
    _feed(stream, builder, workers, block_size, pool_min_bytes)
    return builder.finish(name), builder.sha256_hex


def fragment_trees_from_stream(
    stream: ByteStream,
    fragment_size: int,
    *,
    workers: int | None = None,
    with_sha256: bool = True,
    name: str = "input",
    block_size: int = DEFAULT_BLOCK_SIZE,
    pool_min_bytes: int = POOL_MIN_BYTES,
) -> tuple[list[FileTree], str | None]:
    """`tree_from_stream` for an input cut every ``fragment_size`` bytes (one tree
    when it fits): the trees of its fragments, in order, from the same single read."""
    builder = TreeBuilder(with_sha256=with_sha256)
    _feed(stream, builder, workers, block_size, pool_min_bytes)
    return builder.finish_fragments(fragment_size, name), builder.sha256_hex


def _feed(
    stream: ByteStream,
    builder: TreeBuilder,
    workers: int | None,
    block_size: int,
    pool_min_bytes: int,
) -> None:
    """Everything left in ``stream`` into ``builder``, large inputs hashed by the pool."""
    if block_size < SEGMENT_SIZE or block_size % SEGMENT_SIZE:
        raise UsageError(f"block size must be a positive multiple of {SEGMENT_SIZE} bytes")
    count = default_workers() if workers is None else workers
    readinto = _readinto_for(stream)
    pool_at = _pool_start(stream, count, pool_min_bytes)
    buffer = memoryview(bytearray(block_size))
    while True:
        if pool_at is not None and builder.size >= pool_at:
            from zerog_cli.zerog.merkle_pool import PoolUnavailable, hash_rest_pooled

            try:
                hash_rest_pooled(readinto, builder, count, block_size)
                break
            except PoolUnavailable:
                pool_at = None
        filled = readinto(buffer)
        builder.update(buffer[:filled])
        if filled < block_size:
            break


def tree_from_path(
    path: str | os.PathLike[str],
    *,
    workers: int | None = None,
    with_sha256: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
    pool_min_bytes: int = POOL_MIN_BYTES,
) -> tuple[FileTree, str | None]:
    """Tree (and SHA-256 hex) of the file at `path`; see `tree_from_stream`."""
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below; the name is needed for errors
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    with stream:
        return tree_from_stream(
            stream,
            workers=workers,
            with_sha256=with_sha256,
            name=str(Path(path)),
            block_size=block_size,
            pool_min_bytes=pool_min_bytes,
        )
