"""Which segments a sampled verification reads (``verify --read-data-subset``).

A module of its own, with no imports of weight, so the command line can name
`DataSubset` as an option's type without loading the verify service.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


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
