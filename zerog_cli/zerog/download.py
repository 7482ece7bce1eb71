"""Download one 0G file, or some of its segments, verified (spec 0g-storage.md 7).

Nodes come from ``indexer_getFileLocations`` (or given URLs); each node's
own ``zgs_getFileInfo(root, true)`` gives the txSeq and flow position it
holds the file under. Segments come through the download engine
(:mod:`zerog_cli.zerog.segment_fetch`): from every holder in parallel, bounded
per node, each one's Merkle proof checked (segment roots in the hashing pool
for large files) before it is accepted, a bad, missing or stalled one asked
from another node, and handed over in order. The whole stream's root and size
are re-checked at the end. No ledger, no printing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from zerog_cli.errors import (
    IntegrityError,
    NetworkUnavailable,
    NotFound,
    ProtocolError,
    UsageError,
    ZerogError,
)
from zerog_cli.zerog.merkle import POOL_MIN_BYTES
from zerog_cli.zerog.network import Holder, StorageNetwork, first_missing_segment
from zerog_cli.zerog.segment_fetch import (
    Deliver,
    FetchOptions,
    FetchReport,
    NodeStats,
    Source,
    fetch_segments,
)
from zerog_cli.zerog.segments import SEGMENT_SIZE, Progress
from zerog_cli.zerog.selection import ShardedNode

if TYPE_CHECKING:
    from zerog_cli.zerog.merkle_pool import RootPool
    from zerog_cli.zerog.storage_node import FileInfo, SegmentWithProof

log = logging.getLogger("zerog.download")

_POOL_NODES = 8
"""Holders a hashing pool has slots for (``per_node`` each); more only wait for a slot."""


@dataclass(frozen=True)
class DownloadOptions:
    fetch: FetchOptions = field(default_factory=FetchOptions)
    hash_workers: int | None = None
    """Processes computing segment roots; None: one per CPU, 0 or 1: in this process."""
    pool_min_bytes: int = POOL_MIN_BYTES
    """Files smaller than this are verified in-process (starting workers costs more)."""
    rehash_stream: bool = False
    """Also hash the whole written stream again. Off by default: the final
    check already rebuilds the root from the verified segment roots."""
    require_finalized: bool = True


@dataclass
class DownloadResult:
    root: str
    size: int
    tx_seq: int
    bytes_written: int
    segments: int
    nodes: list[str]
    healed_segments: int
    """Segments that one node served corrupt, failed or stalled on and another served good."""
    encrypted: bool
    timings: dict[str, float] = field(default_factory=dict)
    node_stats: list[NodeStats] = field(default_factory=list)
    """What each node served, its corrupt answers, failures and stalls."""
    fetch_seconds: float = 0.0


def download(
    network: StorageNetwork,
    root: str,
    sink: BinaryIO,
    *,
    expected_size: int | None = None,
    symmetric_key: bytes | None = None,
    private_key: bytes | None = None,
    options: DownloadOptions | None = None,
    progress: Progress | None = None,
) -> DownloadResult:
    """Download the file ``root`` into ``sink``, verified, in order, in one pass.

    ``expected_size`` (from the ledger) picks the tx when several sizes share
    the root and must match. With ``symmetric_key`` (v1) or ``private_key``
    (v2) the stream is decrypted on the fly: the sink gets the plaintext;
    without keys it gets the stored bytes (header and ciphertext).

    Raises ``NotFound`` (no node has the file), ``IntegrityError`` (some
    segment had no node serving data that matches the root, or the final
    root/size check failed; the sink then holds only verified bytes of the
    segments before it) and ``NetworkUnavailable``.
    """
    from zerog_cli.zerog.merkle import TreeBuilder

    opts = options or DownloadOptions()
    opts.fetch.check()
    root = root.lower()
    root_bytes = _root_bytes(root)
    started = time.monotonic()
    timings: dict[str, float] = {}
    with _Hashing(opts) as hashing:
        hashing.start(expected_size)
        holders_, size = _locate(network, root, expected_size, opts)
        timings["locate"] = time.monotonic() - started
        num_segments = -(-size // SEGMENT_SIZE)

        decryptor = None
        if symmetric_key is not None or private_key is not None:
            from zerog_cli.zerog.encryption import StreamDecryptor

            decryptor = StreamDecryptor(symmetric_key=symmetric_key, private_key=private_key)
        builder = TreeBuilder() if opts.rehash_stream else None
        segment_roots: list[bytes] = []
        written = 0

        def deliver(index: int, data: bytes, seg_root: bytes) -> None:
            nonlocal written
            segment_roots.append(seg_root)
            if builder is not None:
                builder.update(data)
            out = decryptor.update(data) if decryptor is not None else data
            if out:
                sink.write(out)
            written += len(out)
            if progress is not None:
                progress("download", index * SEGMENT_SIZE + len(data), size)

        mark = time.monotonic()
        report = _fetch(
            network, holders_, root_bytes, size, range(num_segments), deliver, opts, hashing
        )
        timings["fetch"] = time.monotonic() - mark

    if decryptor is not None:
        decryptor.finish()
    _check_root(segment_roots, root_bytes, size)
    if builder is not None:
        tree = builder.finish()
        if tree.root != root_bytes or tree.size != size:
            raise IntegrityError(
                f"the downloaded stream has root {tree.root_hex} and {tree.size} bytes, "
                f"expected {root} and {size}"
            )
    timings["total"] = time.monotonic() - started
    return DownloadResult(
        root=root,
        size=size,
        tx_seq=holders_[0].tx_seq,
        bytes_written=written,
        segments=num_segments,
        nodes=sorted(stats.url for stats in report.nodes if stats.segments),
        healed_segments=report.healed,
        encrypted=decryptor is not None,
        timings=timings,
        node_stats=report.nodes,
        fetch_seconds=report.seconds,
    )


class _Hashing:
    """The worker processes that compute segment roots, when the bytes to check pay for them.

    ``start(nbytes)`` boots them in a thread, so a download that knows its size
    (from the ledger) has them ready by the time the nodes are located; ``pool``
    waits for them. PoolUnavailable falls back to verifying in-process.
    """

    def __init__(self, opts: DownloadOptions) -> None:
        from zerog_cli.zerog.merkle import default_workers

        self._workers = default_workers() if opts.hash_workers is None else opts.hash_workers
        self._min_bytes = opts.pool_min_bytes
        self._slots = opts.fetch.per_node * _POOL_NODES
        self._thread: threading.Thread | None = None
        self._pool: RootPool | None = None
        self._started = False

    def start(self, nbytes: int | None) -> None:
        if self._thread is not None or nbytes is None:
            return
        if self._workers < 2 or nbytes < self._min_bytes:
            return
        from zerog_cli.zerog.merkle_pool import RootPool

        self._pool = RootPool(self._workers, self._slots)
        self._thread = threading.Thread(target=self._boot, name="zerog-pool-start", daemon=True)
        self._thread.start()

    def _boot(self) -> None:
        from zerog_cli.zerog.merkle_pool import PoolUnavailable

        assert self._pool is not None
        try:
            self._pool.__enter__()
        except PoolUnavailable as error:
            log.info("verifying segments in-process: %s", error)
            return
        self._started = True

    def pool(self, nbytes: int) -> RootPool | None:
        self.start(nbytes)
        if self._thread is None:
            return None
        self._thread.join()
        return self._pool if self._started else None

    def __enter__(self) -> _Hashing:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self._thread is None:
            return
        self._thread.join()
        if self._started and self._pool is not None:
            self._pool.__exit__(kind, None, None)  # an error kills the workers at once


def _fetch(
    network: StorageNetwork,
    holders_: list[Holder],
    root: bytes,
    size: int,
    indices: Sequence[int],
    deliver: Deliver,
    opts: DownloadOptions,
    hashing: _Hashing,
) -> FetchReport:
    """Run the download engine over ``holders_``, with the hashing pool when it pays."""
    sources = [_source(network, holder) for holder in holders_]
    pool = hashing.pool(len(indices) * SEGMENT_SIZE)
    return fetch_segments(sources, root, size, indices, deliver, options=opts.fetch, pool=pool)


def _source(network: StorageNetwork, holder: Holder) -> Source:
    client = network.node(holder.node.url)
    config, first, tx_seq = holder.node.config, holder.first_segment, holder.tx_seq

    def holds(index: int) -> bool:
        return config.holds(first + index)

    def fetch(index: int) -> SegmentWithProof | None:
        return client.download_segment_with_proof_by_tx_seq(tx_seq, index)

    return Source(holder.node.url, holds, fetch)


def _check_root(data_segment_roots: list[bytes], root: bytes, size: int) -> None:
    """The file root rebuilt from the verified data segments plus flow padding."""
    from zerog_cli.zerog.merkle import (
        empty_subtree_root,
        num_padded_segments,
        segment_leaf_count,
        tree_root,
    )

    roots = list(data_segment_roots)
    for index in range(len(roots), num_padded_segments(size)):
        roots.append(empty_subtree_root(segment_leaf_count(size, index)))
    rebuilt = tree_root(roots)
    if rebuilt != root:
        raise IntegrityError(
            f"the downloaded segments rebuild root 0x{rebuilt.hex()}, expected 0x{root.hex()}"
        )


def _root_bytes(root: str) -> bytes:
    text = root.removeprefix("0x")
    if len(text) != 64:
        raise UsageError(f"a root is 0x followed by 64 hex digits, not {root!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"a root is 0x followed by 64 hex digits, not {root!r}") from None


def _locate(
    network: StorageNetwork, root: str, expected_size: int | None, opts: DownloadOptions
) -> tuple[list[Holder], int]:
    """Nodes holding the file with the tx each holds it under, and the size."""
    locations = network.file_locations(root)
    if not locations:
        raise NotFound(f"no storage node holds {root}")
    found: list[tuple[ShardedNode, FileInfo]] = []
    problems: list[str] = []
    unreachable = 0
    for node in locations:
        try:
            info = network.node(node.url).get_file_info(root, True)
        except ZerogError as error:
            problems.append(f"{node.url}: {error}")
            # A node that cannot be reached, or answers garbage or an error other than
            # "not found", says nothing about whether it holds the file.
            unreachable += isinstance(error, NetworkUnavailable | ProtocolError) and (
                getattr(error, "kind", None) != "not-found"
            )
            continue
        if info is None or info.tx.data_merkle_root != root:
            problems.append(f"{node.url}: file not found on node")
            continue
        if opts.require_finalized and not info.finalized:
            problems.append(f"{node.url}: file not finalized")
            continue
        found.append((node, info))
    if not found:
        detail = problems[0] if problems else "no answer"
        if unreachable == len(locations):
            raise NetworkUnavailable(f"no storage node holding {root} answers ({detail})")
        raise NotFound(f"no storage node serves {root} ({detail})")
    size = _agreed_size(root, found, expected_size)
    chosen = [Holder.of(node, info) for node, info in found if info.tx.size == size]
    missing = first_missing_segment(chosen, -(-size // SEGMENT_SIZE))
    if missing is not None:
        raise NotFound(f"no storage node holds segment {missing} of {root}")
    return chosen, size


def stored_size(network: StorageNetwork, root: str) -> int:
    """The size of the file ``root`` names, as every node holding it reports it
    (IntegrityError when they disagree: a root does not pin the exact length)."""
    _, size = _locate(network, root.lower(), None, DownloadOptions())
    return size


def _agreed_size(
    root: str, found: list[tuple[ShardedNode, FileInfo]], expected_size: int | None
) -> int:
    """The file's size: ``expected_size`` when known, else the one size every node reports.

    The root does not pin the exact length (the last chunk is zero-padded), so
    a node could add or cut bytes there and every proof would still hold.
    Nodes reporting another size than the expected one are left out; with no
    expected size, nodes that disagree are an integrity failure.
    """
    reported = {node.url: info.tx.size for node, info in found}
    described = ", ".join(f"{url} says {size}" for url, size in sorted(reported.items()))
    if expected_size is not None:
        if expected_size not in reported.values():
            raise IntegrityError(
                f"no storage node holds {root} with the expected {expected_size} bytes "
                f"({described})"
            )
        for url, size in reported.items():
            if size != expected_size:
                log.warning(
                    "%s reports %d bytes for %s, expected %d", url, size, root, expected_size
                )
        return expected_size
    sizes = set(reported.values())
    if len(sizes) > 1:
        raise IntegrityError(
            f"storage nodes disagree on the size of {root} ({described})",
            hint="give the size you expect to pin it",
        )
    return sizes.pop()


@dataclass(frozen=True)
class Located:
    """Where a file is: the nodes holding it (with the tx each holds it under) and its size.

    Found once (`locate`) and passed to every `read_segments` of the same file, so a
    read in batches asks the indexer and the nodes once, not once per batch."""

    root: str
    holders: list[Holder]
    size: int


def locate(
    network: StorageNetwork,
    root: str,
    *,
    expected_size: int | None = None,
    options: DownloadOptions | None = None,
) -> Located:
    """The nodes serving ``root`` and its size (see `download` for the errors)."""
    root = root.lower()
    holders_, size = _locate(network, root, expected_size, options or DownloadOptions())
    return Located(root, holders_, size)


@dataclass
class SegmentsRead:
    """Segments fetched on their own, each checked against the root with its proof."""

    root: str
    size: int
    total_segments: int
    data: dict[int, bytes]
    """Segment index -> its bytes (cut to the file's size)."""
    nodes: list[str]
    healed_segments: int
    node_stats: list[NodeStats] = field(default_factory=list)
    """What each node served, its corrupt answers, failures and stalls."""
    fetch_seconds: float = 0.0

    @property
    def bytes_read(self) -> int:
        return sum(len(chunk) for chunk in self.data.values())


def read_segments(
    network: StorageNetwork,
    root: str,
    indices: Sequence[int],
    *,
    expected_size: int | None = None,
    options: DownloadOptions | None = None,
    located: Located | None = None,
) -> SegmentsRead:
    """Fetch only the segments ``indices`` of ``root``, each with its Merkle proof checked.

    A proof ties a segment to the root on its own, so a sample of segments, or
    the segments covering one byte range, can be checked without the rest of
    the file. The root is not rebuilt and the file's SHA-256 cannot be checked:
    the caller decides what the partial read proves. ``located`` (from `locate`,
    for the same root) saves asking where the file is again.
    """
    root = root.lower()
    root_bytes = _root_bytes(root)
    opts = options or DownloadOptions()
    if located is None:
        located = locate(network, root, expected_size=expected_size, options=opts)
    elif located.root != root:
        raise UsageError(f"the nodes located are those of {located.root}, not {root}")
    holders_, size = located.holders, located.size
    total = -(-size // SEGMENT_SIZE)
    wanted = sorted(set(indices))
    if any(index < 0 or index >= total for index in wanted):
        raise UsageError(f"{root} has segments 0 to {total - 1}, not {wanted}")
    data: dict[int, bytes] = {}

    def deliver(index: int, segment: bytes, seg_root: bytes) -> None:
        data[index] = segment

    with _Hashing(opts) as hashing:
        report = _fetch(network, holders_, root_bytes, size, wanted, deliver, opts, hashing)
    used = sorted(stats.url for stats in report.nodes if stats.segments)
    return SegmentsRead(root, size, total, data, used, report.healed, report.nodes, report.seconds)


def merged_node_stats(runs: Sequence[Sequence[NodeStats]]) -> list[NodeStats]:
    """Each node's counters summed over several fetches (fragments, batches, samples)."""
    merged: dict[str, NodeStats] = {}
    for run in runs:
        for stats in run:
            total = merged.setdefault(stats.url, NodeStats(stats.url))
            total.segments += stats.segments
            total.bytes += stats.bytes
            total.corrupt += stats.corrupt
            total.failed += stats.failed
            total.stalled += stats.stalled
    return list(merged.values())
