"""The download engine: segments of one file from every node that holds them, verified.

Every byte a download, `verify`, `backup restore` or a segment range reads comes
through :func:`fetch_segments`:

- Each source (a node holding the file) gets ``per_node`` fetching threads, so
  every holder serves in parallel and no node gets more than ``per_node``
  requests at once. A thread takes the lowest segment not yet fetched that its
  node holds, at most ``window`` segments ahead of the writer: memory stays
  at ``window`` segments whatever the file size, and segments finish out of
  order while they are handed over in order.
- A fetched segment is checked in the thread that fetched it: index, root,
  size and length, then its Merkle proof. The proof's costly part, the segment
  root (2,047 Keccak calls), runs in the hashing pool's worker processes when a
  :class:`~zerog_cli.zerog.merkle_pool.RootPool` is given, so the GIL stays free
  for the HTTP and JSON work; the path up to the file root is a few hashes.
- A segment whose proof fails (or whose node fails) is asked from another node
  holding it, and the node is reported (a warning, and its counters in the
  report). A request still unanswered after ``stall_after`` seconds lets another
  node take the same segment; whichever answer verifies first is kept.
- The calling thread receives the verified segments strictly in order through
  ``deliver``, so the caller writes its file in one pass.

The caller checks what no single segment can: the file root rebuilt from the
segment roots, the size and the SHA-256.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from zerog_cli.errors import (
    IntegrityError,
    NetworkUnavailable,
    ProtocolError,
    UsageError,
    ZerogError,
)
from zerog_cli.zerog.segments import SEGMENT_SIZE, check_segment

if TYPE_CHECKING:
    from zerog_cli.zerog.merkle_pool import RootPool
    from zerog_cli.zerog.storage_node import SegmentWithProof

log = logging.getLogger("zerog.transfer")

_WAKE_INTERVAL = 0.25
"""Seconds an idle fetching thread or the writer sleeps before it looks for stalls again."""


@dataclass(frozen=True)
class Source:
    """One node holding the file: its name, which segments it holds, how to ask it for one.

    ``fetch(index)`` returns the node's answer for file segment ``index`` (None
    when it has no data) and raises ``NetworkUnavailable`` or ``ProtocolError``
    when the node cannot answer.
    """

    url: str
    holds: Callable[[int], bool]
    fetch: Callable[[int], SegmentWithProof | None]


@dataclass(frozen=True)
class FetchOptions:
    per_node: int = 4
    """Requests in flight to one node at most."""
    window: int = 32
    """Segments fetched ahead of the one the caller receives next (the memory bound)."""
    stall_after: float = 15.0
    """Seconds a request may take before another node is asked for the same segment."""

    def check(self) -> None:
        if self.per_node < 1 or self.window < 1:
            raise UsageError("requests per node and the fetch window must be at least 1")
        if self.stall_after <= 0:
            raise UsageError("the stall timeout must be positive")


@dataclass
class NodeStats:
    """What one node did for one fetch."""

    url: str
    segments: int = 0
    bytes: int = 0
    corrupt: int = 0
    failed: int = 0
    stalled: int = 0

    def throughput(self, seconds: float) -> float:
        """Bytes per second this node delivered over a fetch of ``seconds``."""
        return self.bytes / seconds if seconds > 0 else 0.0

    def to_json(self, seconds: float) -> dict[str, object]:
        return {
            "url": self.url,
            "segments": self.segments,
            "bytes": self.bytes,
            "mb_per_s": round(self.throughput(seconds) / 1e6, 2),
            "corrupt": self.corrupt,
            "failed": self.failed,
            "stalled": self.stalled,
        }


@dataclass
class FetchReport:
    nodes: list[NodeStats]
    healed: int
    """Segments that one node served corrupt, failed or stalled on, and another served good."""
    seconds: float
    proofs_checked: int
    pooled: bool
    """Whether segment roots were computed in the hashing pool."""


Deliver = Callable[[int, bytes, bytes], None]
"""``deliver(index, data, segment_root)``: one verified segment, its bytes cut to the file size."""


class _Slot:
    """The state of one wanted segment."""

    __slots__ = ("asked", "corrupt", "data", "error", "failures", "refused", "root")

    def __init__(self) -> None:
        self.asked: dict[str, float] = {}
        """Source URL -> when its request in flight started."""
        self.data: bytes | None = None
        self.root = b""
        self.refused: set[str] = set()
        """Sources that failed it or served it corrupt: never asked again for it."""
        self.corrupt: list[str] = []
        self.failures: list[str] = []
        self.error: ZerogError | None = None
        """Set once no node is left to ask."""


class _Fetch:
    """Shared state of one :func:`fetch_segments` call, guarded by one condition."""

    def __init__(
        self,
        sources: Sequence[Source],
        root: bytes,
        size: int,
        indices: list[int],
        options: FetchOptions,
        pool: RootPool | None,
    ) -> None:
        self.sources = sources
        self.root = root
        self.size = size
        self.indices = indices
        self.options = options
        self.pool = pool
        self.slots: dict[int, _Slot] = {}
        """Positions between the writer and the window's end that have state: memory
        follows the window, not the file size."""
        self.stats = {source.url: NodeStats(source.url) for source in sources}
        self.next_out = 0
        self.error: BaseException | None = None
        self.finished = False
        self.healed = 0
        self.proofs = 0
        self.changed = threading.Condition()

    def _slot(self, position: int) -> _Slot:
        slot = self.slots.get(position)
        if slot is None:
            slot = self.slots[position] = _Slot()
        return slot

    # -- fetching threads ------------------------------------------------

    def run(self, source: Source) -> None:
        """One fetching thread of ``source``: take, fetch, verify, file, until done."""
        try:
            while True:
                position = self._take(source)
                if position is None:
                    return
                self._fetch_one(source, position)
        except BaseException as error:  # a bug in here must reach the caller, not vanish
            with self.changed:
                if self.error is None:
                    self.error = error
                self.finished = True
                self.changed.notify_all()

    def _take(self, source: Source) -> int | None:
        """The next position ``source`` should fetch (marked as asked), or None to stop."""
        with self.changed:
            while not self.finished:
                position = self._assignable(source, time.monotonic())
                if position is not None:
                    self._slot(position).asked[source.url] = time.monotonic()
                    return position
                self.changed.wait(_WAKE_INTERVAL)
            return None

    def _assignable(self, source: Source, now: float) -> int | None:
        end = min(len(self.indices), self.next_out + self.options.window)
        for position in range(self.next_out, end):
            slot = self._slot(position)
            if slot.data is not None or source.url in slot.refused or source.url in slot.asked:
                continue
            if not source.holds(self.indices[position]):
                continue
            if slot.asked and not self._stalled(slot, self.indices[position], now):
                continue
            return position
        return None

    def _stalled(self, slot: _Slot, index: int, now: float) -> bool:
        """Whether every request in flight for ``slot`` is older than the stall timeout."""
        limit = self.options.stall_after
        late = [url for url, started in slot.asked.items() if now - started >= limit]
        if len(late) < len(slot.asked):
            return False
        for url in late:
            if url not in slot.refused:
                slot.refused.add(url)
                self.stats[url].stalled += 1
                log.warning(
                    "%s has not answered for segment %d within %.1f s; asking another node",
                    url,
                    index,
                    limit,
                )
        return True

    def _fetch_one(self, source: Source, position: int) -> None:
        index = self.indices[position]
        data = seg_root = None
        corrupt = failure = None
        try:
            segment = source.fetch(index)
            if segment is None:
                failure = f"{source.url}: no data for segment {index}"
            else:
                seg_root = check_segment(
                    segment, self.root, self.size, index, source.url, self.pool
                )
                data = segment.data
        except IntegrityError as error:
            corrupt = str(error)
        except (NetworkUnavailable, ProtocolError) as error:
            failure = str(error)
        with self.changed:
            if self.finished or position < self.next_out:
                return  # a stalled request answering late: its segment is taken care of
            slot = self._slot(position)
            slot.asked.pop(source.url, None)
            stats = self.stats[source.url]
            if data is not None and seg_root is not None:
                self.proofs += 1
                if slot.data is None:
                    slot.data = data[: self.size - index * SEGMENT_SIZE]
                    slot.root = seg_root
                    stats.segments += 1
                    stats.bytes += len(slot.data)
                    self.healed += bool(slot.refused)
            else:
                slot.refused.add(source.url)
                if corrupt is not None:
                    self.proofs += 1
                    stats.corrupt += 1
                    slot.corrupt.append(corrupt)
                    log.warning("segment %d from %s is corrupt: %s", index, source.url, corrupt)
                else:
                    stats.failed += 1
                    slot.failures.append(failure or "")
                    log.warning("segment %d from %s failed: %s", index, source.url, failure)
                self._check_servable(position)
            self.changed.notify_all()

    def _check_servable(self, position: int) -> None:
        """Mark ``position`` failed when no node is left to ask for it.

        The caller gets the error when it reaches that segment: the segments
        before it are still delivered, so the failure named is always the first
        one in file order, whatever order the answers came in.
        """
        slot = self._slot(position)
        if slot.data is not None or slot.asked:
            return
        index = self.indices[position]
        if any(s.holds(index) and s.url not in slot.refused for s in self.sources):
            return
        if slot.corrupt:
            slot.error = IntegrityError(
                f"no storage node served segment {index} matching root 0x{self.root.hex()} "
                f"({len(slot.corrupt)} corrupt, {len(slot.failures)} failed; "
                f"first: {slot.corrupt[0]})"
            )
        else:
            reason = slot.failures[0] if slot.failures else "no node holds it"
            slot.error = NetworkUnavailable(
                f"segment {index} of 0x{self.root.hex()} could not be fetched: {reason}"
            )

    # -- the calling thread ---------------------------------------------------

    def next_verified(self) -> tuple[int, bytes, bytes]:
        """Wait for the next segment in order; raise the fetch's error if it failed."""
        with self.changed:
            while True:
                if self.error is not None:
                    raise self.error
                slot = self._slot(self.next_out)
                if slot.error is not None:
                    raise slot.error
                if slot.data is not None:
                    data, seg_root = slot.data, slot.root
                    del self.slots[self.next_out]
                    index = self.indices[self.next_out]
                    self.next_out += 1
                    self.changed.notify_all()
                    return index, data, seg_root
                self.changed.wait(_WAKE_INTERVAL)

    def stop(self) -> None:
        with self.changed:
            self.finished = True
            self.changed.notify_all()


def fetch_segments(
    sources: Sequence[Source],
    root: bytes,
    size: int,
    indices: Sequence[int],
    deliver: Deliver,
    *,
    options: FetchOptions | None = None,
    pool: RootPool | None = None,
) -> FetchReport:
    """Fetch and verify segments ``indices`` (ascending, distinct) of the file ``root``.

    ``deliver`` is called in the calling thread, in the order of ``indices``, with
    each segment's bytes (cut to the file size) and its verified root. Raises
    ``IntegrityError`` when every node holding some segment served it corrupt,
    ``NetworkUnavailable`` when none could serve it, and whatever ``deliver``
    raises; the fetching threads stop either way.
    """
    from zerog_cli.infra.memory import keep_large_blocks

    opts = options or FetchOptions()
    opts.check()
    keep_large_blocks()
    wanted = list(indices)
    if any(later <= earlier for earlier, later in pairwise(wanted)):
        raise UsageError("segments must be asked for in ascending order, each once")
    if not sources:
        raise NetworkUnavailable(f"no storage node to fetch 0x{root.hex()} from")
    started = time.monotonic()
    state = _Fetch(sources, root, size, wanted, opts, pool)
    for index in wanted:
        if not any(source.holds(index) for source in sources):
            raise NetworkUnavailable(f"no storage node holds segment {index} of 0x{root.hex()}")
    threads = [
        threading.Thread(
            target=state.run, args=(source,), name=f"zerog-fetch-{number}", daemon=True
        )
        for number, source in enumerate(sources)
        for _ in range(opts.per_node)
    ]
    try:
        if wanted:
            for thread in threads:
                thread.start()
        for _ in wanted:
            deliver(*state.next_verified())
    finally:
        state.stop()
        # A thread still waiting on a stalled node is left to its HTTP timeout
        # (the threads are daemons and only touch this fetch's own state).
        deadline = time.monotonic() + 1.0
        for thread in threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
    elapsed = time.monotonic() - started
    return FetchReport(
        nodes=list(state.stats.values()),
        healed=state.healed,
        seconds=elapsed,
        proofs_checked=state.proofs,
        pooled=pool is not None,
    )
