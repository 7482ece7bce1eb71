"""Which segments a sampled verification reads (``verify --read-data-subset``).

A module of its own, with no imports of weight, so the command line can name
`DataSubset` as an option's type without loading the verify service.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zerog_cli.zerog.download import DownloadOptions, SegmentsRead
    from zerog_cli.zerog.network import StorageNetwork


@dataclass(frozen=True)
class DataSubset:
    """Which segments of each backup ``--read-data-subset`` reads: a percentage or n/t."""

    percent: float | None = None
    part: tuple[int, int] | None = None

    def describe(self) -> str:
        if self.part is not None:
            return f"{self.part[0]}/{self.part[1]}"
        return f"{self.percent:g}%"

    def indices(self, total: int, rng: random.Random) -> list[int]:
        """Segment indices to read out of ``total``: always the first and the last."""
        ends = {0, total - 1} if total else set()
        if self.part is not None:
            n, t = self.part
            chosen = ends | {index for index in range(total) if index % t == n - 1}
            return sorted(chosen)
        count = max(len(ends), math.ceil(total * (self.percent or 0) / 100))
        middle = [index for index in range(1, total - 1)]
        extra = rng.sample(middle, min(len(middle), count - len(ends)))
        return sorted(ends | set(extra))


@dataclass(frozen=True)
class SampleRead:
    """What `read_sample` read: bytes, segments read of the segments in the pieces, and
    each piece's read (with its nodes' counters)."""

    bytes_read: int
    checked: int
    total: int
    reads: list[SegmentsRead]


def read_sample(
    network: StorageNetwork,
    options: DownloadOptions,
    pieces: Sequence[tuple[str, int | None]],
    subset: DataSubset,
    rng: random.Random,
) -> SampleRead:
    """Read ``subset`` of each stored piece's segments with their proofs, each piece
    (its root, and its stored size or None to ask the network) with its own first and
    last segment."""
    from zerog_cli.zerog.download import read_segments, stored_size
    from zerog_cli.zerog.segments import SEGMENT_SIZE

    bytes_read = checked = total = 0
    reads = []
    for root, known in pieces:
        size = stored_size(network, root) if known is None else known
        count = -(-size // SEGMENT_SIZE)
        indices = subset.indices(count, rng)
        read = read_segments(network, root, indices, expected_size=size, options=options)
        bytes_read += read.bytes_read
        checked += len(indices)
        total += count
        reads.append(read)
    return SampleRead(bytes_read, checked, total, reads)
