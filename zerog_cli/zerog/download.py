"""Download one 0G file, or some of its segments, verified (spec 0g-storage.md 7).

Nodes come from ``indexer_getFileLocations`` (or given URLs); each node's
own ``zgs_getFileInfo(root, true)`` gives the txSeq and flow position it
holds the file under. Segments are fetched in parallel (bounded window) with
``zgs_downloadSegmentWithProofByTxSeq``; length, index, root and the Merkle
proof are checked before a segment is accepted, a bad or missing one is asked
from the next node holding it, and segments are written to the sink in order.
The whole stream's root and size are re-checked at the end. No ledger, no
printing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
from zerog_cli.zerog.network import Holder, StorageNetwork
from zerog_cli.zerog.segments import SEGMENT_CHUNKS, SEGMENT_SIZE, Progress, check_segment
from zerog_cli.zerog.selection import ShardedNode

if TYPE_CHECKING:
    from zerog_cli.zerog.storage_node import FileInfo

log = logging.getLogger("zerog.download")


@dataclass(frozen=True)
class DownloadOptions:
    concurrency: int = 6
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
    """Segments that one node served corrupt or not at all and another served good."""
    encrypted: bool
    timings: dict[str, float] = field(default_factory=dict)


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
    """Download the file ``root`` into ``sink``, verified, in order.

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
    if opts.concurrency < 1:
        raise UsageError("concurrency must be at least 1")
    root = root.lower()
    root_bytes = _root_bytes(root)
    started = time.monotonic()
    timings: dict[str, float] = {}
    holders_, size = _locate(network, root, expected_size, opts)
    timings["locate"] = time.monotonic() - started
    num_segments = -(-size // SEGMENT_SIZE)

    decryptor = None
    if symmetric_key is not None or private_key is not None:
        from zerog_cli.zerog.encryption import StreamDecryptor

        decryptor = StreamDecryptor(symmetric_key=symmetric_key, private_key=private_key)
    builder = TreeBuilder() if opts.rehash_stream else None
    segment_roots: list[bytes] = []
    healed = 0
    written = 0
    used: set[str] = set()

    mark = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=opts.concurrency, thread_name_prefix="zerog-down")
    window: list[Future[tuple[bytes, bytes, str, bool]]] = []
    try:
        next_index = 0
        for index in range(num_segments):
            while next_index < num_segments and len(window) < 2 * opts.concurrency:
                window.append(
                    pool.submit(_fetch_segment, network, holders_, root_bytes, size, next_index)
                )
                next_index += 1
            data, seg_root, node_url, was_healed = window.pop(0).result()
            segment_roots.append(seg_root)
            used.add(node_url)
            healed += was_healed
            data = data[: size - index * SEGMENT_SIZE]
            if builder is not None:
                builder.update(data)
            out = decryptor.update(data) if decryptor is not None else data
            if out:
                sink.write(out)
            written += len(out)
            if progress is not None:
                progress("download", index * SEGMENT_SIZE + len(data), size)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
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
        nodes=sorted(used),
        healed_segments=healed,
        encrypted=decryptor is not None,
        timings=timings,
    )


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
    chosen = [
        Holder(node, info.tx.seq, info.tx.start_entry_index // SEGMENT_CHUNKS)
        for node, info in found
        if info.tx.size == size
    ]
    num_segments = -(-size // SEGMENT_SIZE)
    for index in range(num_segments):
        if not any(h.node.config.holds(h.first_segment + index) for h in chosen):
            raise NotFound(f"no storage node holds segment {index} of {root}")
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


def _fetch_segment(
    network: StorageNetwork,
    holders_: list[Holder],
    root: bytes,
    size: int,
    index: int,
) -> tuple[bytes, bytes, str, bool]:
    """Verified data and root of segment ``index``, the node that served it, and
    whether another node failed first. Tries every node holding it, rotating."""
    candidates = [h for h in holders_ if h.node.config.holds(h.first_segment + index)]
    shift = index % len(candidates) if candidates else 0
    candidates = candidates[shift:] + candidates[:shift]
    corrupt: list[str] = []
    failures: list[str] = []
    for holder in candidates:
        url = holder.node.url
        try:
            segment = network.node(url).download_segment_with_proof_by_tx_seq(holder.tx_seq, index)
        except (NetworkUnavailable, ProtocolError) as error:
            failures.append(str(error))
            log.warning("segment %d from %s failed: %s", index, url, error)
            continue
        if segment is None:
            failures.append(f"{url}: no data")
            continue
        try:
            seg_root = check_segment(segment, root, size, index, url)
        except IntegrityError as error:
            corrupt.append(str(error))
            log.warning("segment %d from %s is corrupt: %s", index, url, error)
            continue
        return segment.data, seg_root, url, bool(corrupt or failures)
    if corrupt:
        raise IntegrityError(
            f"no storage node served segment {index} matching root 0x{root.hex()} "
            f"({len(corrupt)} corrupt, {len(failures)} failed; first: {corrupt[0]})"
        )
    reason = failures[0] if failures else "no node holds it"
    raise NetworkUnavailable(f"segment {index} of 0x{root.hex()} could not be fetched: {reason}")


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

    @property
    def bytes_read(self) -> int:
        return sum(len(chunk) for chunk in self.data.values())


def read_segments(
    network: StorageNetwork,
    root: str,
    indices: Sequence[int],
    *,
    expected_size: int | None = None,
    concurrency: int = 6,
) -> SegmentsRead:
    """Fetch only the segments ``indices`` of ``root``, each with its Merkle proof checked.

    A proof ties a segment to the root on its own, so a sample of segments, or
    the segments covering one byte range, can be checked without the rest of
    the file. The root is not rebuilt and the file's SHA-256 cannot be checked:
    the caller decides what the partial read proves.
    """
    root = root.lower()
    root_bytes = _root_bytes(root)
    holders_, size = _locate(network, root, expected_size, DownloadOptions())
    total = -(-size // SEGMENT_SIZE)
    wanted = sorted(set(indices))
    if any(index < 0 or index >= total for index in wanted):
        raise UsageError(f"{root} has segments 0 to {total - 1}, not {wanted}")
    data: dict[int, bytes] = {}
    used: set[str] = set()
    healed = 0
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="zerog-read") as pool:
        futures = {
            index: pool.submit(_fetch_segment, network, holders_, root_bytes, size, index)
            for index in wanted
        }
        for index, future in futures.items():
            segment, _, node_url, was_healed = future.result()
            data[index] = segment[: size - index * SEGMENT_SIZE]
            used.add(node_url)
            healed += was_healed
    return SegmentsRead(root, size, total, data, sorted(used), healed)
