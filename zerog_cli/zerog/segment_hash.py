"""The roots of full segments, and the loop a hashing worker process runs.

This is the Merkle tree's hot loop (`merkle.full_segment_roots` checks its input
and calls `hash_full_segments`). It lives apart from `merkle` so that a worker of
`merkle_pool` imports nothing but the standard library and tiny-keccak: a worker
then starts in about 22 ms of CPU instead of 119 ms (`perf stat`, importing
`merkle_pool`, whose imports include pathlib, dataclasses and the ABI module),
time the first blocks of every pooled hash used to wait for.

Nothing of `zerog_cli` may be imported here.
"""

from __future__ import annotations

import mmap
import os
import struct

from tiny_keccak import keccak256

CHUNK_SIZE = 256
SEGMENT_CHUNKS = 1024
SEGMENT_SIZE = CHUNK_SIZE * SEGMENT_CHUNKS
SEGMENT_HEIGHT = 10
"""log2(SEGMENT_CHUNKS): the height of a full segment's root above its leaves."""

ROOT_SIZE = 32
JOB = struct.Struct(">QI")
"""A worker's job: (offset, length) of whole segments in the shared memory."""
READY = b"R"
"""A worker's first byte on stdout: it has started and reads jobs."""

_SEGMENT_CHUNKS = struct.Struct(f"{CHUNK_SIZE}s" * SEGMENT_CHUNKS)
"""Cuts a segment into its 1,024 chunks, as bytes objects, in one call."""

_NODE_PAIRS = [
    struct.Struct(f"{2 * ROOT_SIZE}s" * (SEGMENT_CHUNKS >> level))
    for level in range(1, SEGMENT_HEIGHT + 1)
]
"""Per level above the leaves: cuts the level's joined hashes into the pairs hashed
into the level above (512 pairs, then 256, ... 1)."""


def hash_full_segments(view: memoryview) -> list[bytes]:
    """Roots of the consecutive full segments in `view` (a whole number of them).

    2,047 Keccak calls (3,071 permutations) per segment, on 256 or 64 bytes each,
    so the cost per call matters as well as the permutation. tiny-keccak's
    `keccak256(bytes)` is about four times cheaper per call than pysha3's hash
    object. Each level is cut into bytes objects by one `struct` call and hashed
    by `map`, so no Python bytecode runs per hash: by callgrind's count a segment
    takes 21.8 M instructions, of which the permutations are 20.0 M (a list
    comprehension per level took 23.3 M).
    """
    roots = []
    for start in range(0, len(view), SEGMENT_SIZE):
        level = list(map(keccak256, _SEGMENT_CHUNKS.unpack_from(view, start)))
        for pairs in _NODE_PAIRS:
            level = list(map(keccak256, pairs.unpack(b"".join(level))))
        roots.append(level[0])
    return roots


def _read_exact(fd: int, buffer: memoryview) -> bool:
    """Fill `buffer` from `fd`; False on a clean end of input before any byte."""
    filled = 0
    while filled < len(buffer):
        got = os.readv(fd, [buffer[filled:]])
        if not got:
            if filled:
                raise EOFError("input ended inside a job")
            return False
        filled += got
    return True


def worker_main(argv: list[str]) -> None:
    """Entry point of a worker process: `argv` = [shared memory fd, its size].

    Reads jobs from stdin until it closes and answers each with the 32-byte roots
    of its segments, in order, on stdout.
    """
    fd, size = int(argv[0]), int(argv[1])
    memory = mmap.mmap(fd, size)
    os.close(fd)
    shared = memoryview(memory)
    header = memoryview(bytearray(JOB.size))
    try:
        os.write(1, READY)
        while _read_exact(0, header):
            offset, length = JOB.unpack(header)
            answer = memoryview(b"".join(hash_full_segments(shared[offset : offset + length])))
            while answer:
                answer = answer[os.write(1, answer) :]
    except BrokenPipeError:
        return
