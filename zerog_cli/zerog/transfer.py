"""Protocol-level upload and download of one 0G file (spec 0g-storage.md 6 and 7).

No ledger, no printing: progress goes to a callback ``progress(phase, done,
total)`` called from the calling thread, so the CLI can draw a bar.
Phases: ``"upload"`` (bytes of segment data accepted by nodes, all replicas
counted) and ``"download"`` (bytes written to the sink).

Upload, in order:

1. :func:`plan_upload` (also the ``--dry-run``): nodes from the indexer's
   ``trusted`` list ("min" selection, ``replicas`` copies), the chain id and
   Flow address from the first node's status (a configured Flow address
   wins, as in the Go client's ``ResolveContractConfig``), a dedupe probe
   (``zgs_getFileInfo(root, false)``) and, when a payment is needed, the fee
   quote (``market()``, then ``pricePerSector()``). Nothing is sent.
2. Dedupe. Nodes that have the root *finalized with the same size* and that
   together hold every segment of it (a sharded node finalizes its own
   shard only) end the upload with their txSeq: no fee, no transaction. A
   node that knows the root with the same size, not finalized and not
   pruned, gives a tx that is reused: no second payment, its segments are
   uploaded under that txSeq (the Go client's ``--skip-tx`` behaviour; the
   TS SDK would pay again). So does a mined payment the caller passes in
   (``prepaid_tx``: an earlier run paid and then gave up waiting).
3. Otherwise ``Flow.submit`` with ``value = sectors x pricePerSector``; the
   txSeq comes from the receipt's Submit log.
4. Every selected node must know the tx (``zgs_getFileInfoByTxSeq``) within
   ``tx_known_timeout`` (a node may lag behind the chain).
5. Segments go out with ``zgs_uploadSegmentsByTxSeq`` from a bounded thread
   pool, tasks interleaved across nodes. "already uploaded and finalized" and
   "segment has already been uploaded" count as success; "too many data
   writing" is retried after a pause. A node that fails otherwise is dropped
   and replaced by other trusted nodes that hold its segments; each
   replacement gets all of its own shard's segments.
6. ``wait``: ``"none"`` returns once every segment was accepted;
   ``"uploaded"`` also polls until each node reports the file finalized or
   holding as many segments as it was sent; ``"finalized"`` polls until every
   node reports it finalized and then reads one segment back with its proof.

Memory stays flat in the file size: segments are read from the source when a
worker sends them, and at most ``concurrency`` tasks are in flight.

Download: nodes from ``indexer_getFileLocations`` (or given URLs); each node's
own ``zgs_getFileInfo(root, true)`` gives the txSeq and flow position it
holds the file under. Segments are fetched in parallel (bounded window) with
``zgs_downloadSegmentWithProofByTxSeq``; length, index, root and the Merkle
proof are checked before a segment is accepted, a bad or missing one is asked
from the next node holding it, and segments are written to the sink in order.
The whole stream's root and size are re-checked at the end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol

from zerog_cli.errors import (
    IntegrityError,
    NetworkUnavailable,
    NotFound,
    ProtocolError,
    RemoteError,
    UsageError,
    ZerogError,
)
from zerog_cli.zerog.selection import (
    ShardedNode,
    node_segments,
    replacements,
    segment_span,
    select_nodes,
    upload_tasks,
)

if TYPE_CHECKING:
    from zerog_cli.infra.http import HttpClient, Timeouts
    from zerog_cli.zerog.evm import EvmClient, FeeQuote, GasOptions
    from zerog_cli.zerog.indexer import IndexerClient
    from zerog_cli.zerog.merkle import FileTree
    from zerog_cli.zerog.storage_node import (
        FileInfo,
        NetworkIdentity,
        SegmentWithProof,
        StorageNodeClient,
    )

log = logging.getLogger("zerog.transfer")

CHUNK_SIZE = 256
SEGMENT_CHUNKS = 1024
SEGMENT_SIZE = CHUNK_SIZE * SEGMENT_CHUNKS
WAIT_MODES = ("finalized", "uploaded", "none")
READ_BACK_TRIES = 2
"""Reads of segment 0 per holder after an upload before trying the next holder."""

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
        parts = []
        while length > 0:
            part = os.pread(self._fd, length, offset)
            if not part:
                break
            parts.append(part)
            offset += len(part)
            length -= len(part)
        return b"".join(parts)

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


class StorageNetwork:
    """The endpoints one transfer talks to, sharing one :class:`HttpClient`.

    ``node_urls`` skips the indexer: those nodes are treated as trusted and
    asked for their shard config.
    """

    def __init__(
        self,
        http: HttpClient,
        *,
        indexer_url: str | None = None,
        evm_rpc_url: str | None = None,
        node_urls: Sequence[str] = (),
        node_timeout: Timeouts | None = None,
    ) -> None:
        from zerog_cli.zerog.indexer import IndexerClient

        if indexer_url is None and not node_urls:
            raise UsageError("an indexer URL or storage node URLs are needed")
        self.http = http
        self.indexer: IndexerClient | None = (
            IndexerClient(http, indexer_url) if indexer_url else None
        )
        self.evm_rpc_url = evm_rpc_url
        self.node_urls = list(node_urls)
        self.node_timeout = node_timeout
        self._nodes: dict[str, StorageNodeClient] = {}
        self._evm: EvmClient | None = None
        self._lock = threading.Lock()

    def node(self, url: str) -> StorageNodeClient:
        from zerog_cli.zerog.storage_node import StorageNodeClient

        with self._lock:
            client = self._nodes.get(url)
            if client is None:
                client = StorageNodeClient(self.http, url, timeout=self.node_timeout)
                self._nodes[url] = client
            return client

    @property
    def evm(self) -> EvmClient:
        from zerog_cli.zerog.evm import EvmClient
        from zerog_cli.zerog.flow_abi import describe_revert

        if self.evm_rpc_url is None:
            raise UsageError("an EVM RPC URL is needed to pay for an upload")
        if self._evm is None:
            self._evm = EvmClient(self.http, self.evm_rpc_url, decode_revert=describe_revert)
        return self._evm

    def trusted_nodes(self) -> list[ShardedNode]:
        if self.node_urls:
            return self._configured_nodes()
        assert self.indexer is not None
        return self.indexer.get_sharded_nodes().trusted

    def file_locations(self, root: str) -> list[ShardedNode]:
        if self.node_urls:
            return self._configured_nodes()
        assert self.indexer is not None
        return self.indexer.get_file_locations(root)

    def _configured_nodes(self) -> list[ShardedNode]:
        found = []
        for url in self.node_urls:
            try:
                found.append(ShardedNode(url, self.node(url).get_shard_config()))
            except ZerogError as error:
                log.warning("skipping storage node %s: %s", url, error)
        return found


# -- upload -------------------------------------------------------------------


@dataclass(frozen=True)
class UploadOptions:
    replicas: int = 1
    wait: str = "finalized"
    task_size: int = 4
    concurrency: int = 8
    tags: bytes = b""
    fee: int | None = None
    """Replace the quoted fee (neuron). Any excess is kept by the Flow contract."""
    gas: GasOptions | None = None
    receipt_timeout: float = 300.0
    tx_known_timeout: float = 600.0
    finality_timeout: float = 600.0
    poll_interval: float = 1.0
    busy_retries: int = 12
    busy_pause: float = 1.0

    def check(self) -> None:
        if self.wait not in WAIT_MODES:
            raise UsageError(f"wait must be one of {', '.join(WAIT_MODES)}, not {self.wait!r}")
        if self.replicas < 1 or self.task_size < 1 or self.concurrency < 1:
            raise UsageError("replicas, task size and concurrency must be at least 1")
        if self.tx_known_timeout <= 0:
            raise UsageError("the time nodes get to see a transaction must be positive")


@dataclass
class UploadPlan:
    """What an upload would do; computed without sending anything."""

    root: str
    size: int
    sectors: int
    nodes: list[ShardedNode]
    candidates: list[ShardedNode]
    flow_address: str
    flow_address_configured: bool
    node_chain_id: int
    """``networkIdentity.chainId`` of the node whose status was read."""
    status_node: str
    existing: FileInfo | None
    """The root finalized with this size on selected nodes that hold all of it."""
    holders: list[_Holder]
    """Those nodes, with the tx each holds the file under."""
    reusable: FileInfo | None
    """The root known, same size, not finalized: its tx is reused, not paid again."""
    quote: FeeQuote | None
    """The fee quote; None when no payment is needed."""

    @property
    def fee_neuron(self) -> int:
        return 0 if self.quote is None else self.quote.fee

    @property
    def needs_payment(self) -> bool:
        return self.existing is None and self.reusable is None


@dataclass
class UploadResult:
    root: str
    size: int
    tx_seq: int
    tx_hash: str | None
    fee_neuron: int
    sectors: int
    start_entry_index: int
    nodes: list[str]
    failed_nodes: dict[str, str]
    deduped: bool
    reused_tx: bool
    finalized: bool
    bytes_sent: int
    segments_sent: int
    timings: dict[str, float] = field(default_factory=dict)


def estimate_fee(network: StorageNetwork, tree: FileTree, flow_address: str) -> FeeQuote:
    """Fee for ``tree``: sectors x pricePerSector read from the market (no tx)."""
    from zerog_cli.zerog.evm import quote_fee

    return quote_fee(network.evm, flow_address, tree)


def plan_upload(
    network: StorageNetwork,
    tree: FileTree,
    *,
    replicas: int = 1,
    quote: bool = True,
    flow_address: str | None = None,
) -> UploadPlan:
    """Select nodes, probe for the file and quote the fee. Sends nothing.

    With ``quote=False`` the chain is not asked (no EVM URL needed); the plan
    then has no fee even when a payment would be needed. ``flow_address``
    (the ``flow_address`` setting) replaces the one the nodes report.
    """
    candidates = network.trusted_nodes()
    nodes = select_nodes(candidates, replicas, "min")
    status_node, identity = _network_identity(network, [*nodes, *candidates])
    finalized: list[tuple[ShardedNode, FileInfo]] = []
    reusable: FileInfo | None = None
    selected_urls = {node.url for node in nodes}
    others = [node for node in candidates if node.url not in selected_urls]
    # The selected nodes first; the other candidates only when those do not hold the
    # file: an indexer lists its nodes in no fixed order (the official one in the order
    # they answer), so the file may sit on a node this selection did not pick.
    for batch in (nodes, others):
        for node in batch:
            try:
                info = network.node(node.url).get_file_info(tree.root_hex, False)
            except ZerogError as error:
                log.info("dedupe probe of %s failed: %s", node.url, error)
                continue
            if (
                info is None
                or info.tx.size != tree.size
                or info.tx.data_merkle_root != tree.root_hex
            ):
                continue
            if info.finalized:
                finalized.append((node, info))
            elif not info.pruned and reusable is None:
                reusable = info
        if _covering_holders(finalized, tree.num_chunks):
            break
    holders_ = _covering_holders(finalized, tree.num_chunks)
    if not holders_ and finalized and reusable is None:
        # Finalized on some shards only: the tx is known, the rest is uploaded under it.
        reusable = finalized[0][1]
    existing = None
    if holders_:
        existing = next(info for node, info in finalized if node.url == holders_[0].node.url)
    plan = UploadPlan(
        root=tree.root_hex,
        size=tree.size,
        sectors=tree.fee_sectors,
        nodes=nodes,
        candidates=candidates,
        flow_address=(flow_address or identity.flow_address).lower(),
        flow_address_configured=flow_address is not None,
        node_chain_id=identity.chain_id,
        status_node=status_node,
        existing=existing,
        holders=holders_,
        reusable=None if existing is not None else reusable,
        quote=None,
    )
    if quote and plan.needs_payment:
        plan.quote = estimate_fee(network, tree, plan.flow_address)
    return plan


def _covering_holders(
    finalized: Sequence[tuple[ShardedNode, FileInfo]], num_chunks: int
) -> list[_Holder]:
    """The finalized nodes when, together, they hold every segment of the file.

    A node of shard (K, N) reports the file finalized once it has its own
    segments; each may hold it under its own tx (the same root paid twice).
    """
    holders_ = [
        _Holder(node, info.tx.seq, info.tx.start_entry_index // SEGMENT_CHUNKS)
        for node, info in finalized
    ]
    num_segments = -(-num_chunks // SEGMENT_CHUNKS)
    for index in range(num_segments):
        if not any(h.node.config.holds(h.first_segment + index) for h in holders_):
            return []
    return holders_


def _network_identity(
    network: StorageNetwork, nodes: Sequence[ShardedNode]
) -> tuple[str, NetworkIdentity]:
    """The first node that answers ``zgs_getStatus`` (selected ones first) and its identity."""
    problems = []
    seen: set[str] = set()
    for node in nodes:
        if node.url in seen:
            continue
        seen.add(node.url)
        try:
            return node.url, network.node(node.url).get_status().network_identity
        except ZerogError as error:
            problems.append(str(error))
    raise NetworkUnavailable(f"no storage node answered zgs_getStatus ({problems[0]})")


def upload(
    network: StorageNetwork,
    source: SegmentSource,
    tree: FileTree,
    *,
    private_key: str | bytes | None,
    options: UploadOptions | None = None,
    plan: UploadPlan | None = None,
    progress: Progress | None = None,
    on_tx_signed: Callable[[str], None] | None = None,
    prepaid_tx: str | None = None,
) -> UploadResult:
    """Upload ``source`` (whose tree is ``tree``) and return where it landed.

    ``on_tx_signed(tx_hash)`` runs before the Flow payment is broadcast (see
    `EvmClient.send_transaction`), so the caller can journal it (once per
    signed version: a gas price raise signs again with the same nonce).
    ``prepaid_tx`` is a mined Flow payment for this file by an earlier run:
    its tx is used and nothing is paid, even before any node has seen it.

    ``private_key`` pays for the Flow transaction; it may be None only when
    the file is already known (the call then raises ``UsageError`` if a
    payment turns out to be needed). ``plan`` reuses a dry-run's plan.
    """
    opts = options or UploadOptions()
    opts.check()
    if source.size != tree.size:
        raise UsageError(f"the source has {source.size} bytes but the tree {tree.size}")
    started = time.monotonic()
    timings: dict[str, float] = {}
    if plan is None:
        plan = plan_upload(network, tree, replicas=opts.replicas, quote=False)
    timings["plan"] = time.monotonic() - started

    if plan.existing is not None:
        return _deduped(network, tree, plan, opts, started, timings)

    mark = time.monotonic()
    tx_hash: str | None = None
    fee = 0
    paid_here = False
    if plan.reusable is not None:
        tx_seq = plan.reusable.tx.seq
        start_entry_index = plan.reusable.tx.start_entry_index
        log.info("reusing known tx %d for %s: no new payment", tx_seq, tree.root_hex)
    elif prepaid_tx is not None:
        from zerog_cli.zerog.evm import read_submission

        earlier = read_submission(
            network.evm, prepaid_tx, plan.flow_address, tree, fee=0, timeout=opts.receipt_timeout
        )
        tx_hash, tx_seq, start_entry_index = prepaid_tx, earlier.tx_seq, earlier.start_entry_index
        log.info("reusing tx %d (%s) an earlier run paid for %s", tx_seq, tx_hash, tree.root_hex)
    else:
        if private_key is None:
            raise UsageError("a private key is needed to pay for this upload")
        from zerog_cli.zerog.evm import submit_file

        fee = (
            opts.fee
            if opts.fee is not None
            else (
                plan.quote.fee
                if plan.quote is not None
                else estimate_fee(network, tree, plan.flow_address).fee
            )
        )
        submitted = submit_file(
            network.evm,
            plan.flow_address,
            tree,
            private_key,
            fee=fee,
            tags=opts.tags,
            gas=opts.gas,
            receipt_timeout=opts.receipt_timeout,
            receipt_poll=min(opts.poll_interval, 1.0),
            on_signed=on_tx_signed,
        )
        tx_hash, tx_seq, start_entry_index = (
            submitted.tx_hash,
            submitted.tx_seq,
            submitted.start_entry_index,
        )
        paid_here = True
        log.info("submitted %s as tx %d (%s)", tree.root_hex, tx_seq, tx_hash)
    timings["submit"] = time.monotonic() - mark

    job = _UploadJob(network, source, tree, opts, tx_seq, start_entry_index, progress)
    mark = time.monotonic()
    try:
        job.run(plan.nodes, plan.candidates)
    except NetworkUnavailable as error:
        if not job.unsynced:
            raise
        paid = f"tx {tx_seq}" + (f" ({tx_hash})" if tx_hash else "")
        raise NetworkUnavailable(
            f"{error}; {job.unsynced[0]} did not see {paid} within {opts.tx_known_timeout:.0f} s",
            hint=(
                f"{'the payment is made: ' if paid_here else ''}"
                f"rerun the same command to reuse {paid} without paying again, "
                "or allow nodes more time with node_sync_timeout"
            ),
        ) from None
    timings["upload"] = time.monotonic() - mark

    mark = time.monotonic()
    finalized = False
    if opts.wait != "none":
        job.wait_stored(final=opts.wait == "finalized")
        finalized = opts.wait == "finalized"
    if opts.wait == "finalized":
        first = start_entry_index // SEGMENT_CHUNKS
        _read_back(network, tree, [_Holder(node, tx_seq, first) for node in job.active])
    timings["wait"] = time.monotonic() - mark
    timings["total"] = time.monotonic() - started
    return UploadResult(
        root=tree.root_hex,
        size=tree.size,
        tx_seq=tx_seq,
        tx_hash=tx_hash,
        fee_neuron=fee,
        sectors=tree.fee_sectors,
        start_entry_index=start_entry_index,
        nodes=[node.url for node in job.active],
        failed_nodes=dict(job.failed),
        deduped=False,
        reused_tx=plan.reusable is not None,
        finalized=finalized,
        bytes_sent=job.bytes_sent,
        segments_sent=job.segments_sent,
        timings=timings,
    )


def _deduped(
    network: StorageNetwork,
    tree: FileTree,
    plan: UploadPlan,
    opts: UploadOptions,
    started: float,
    timings: dict[str, float],
) -> UploadResult:
    assert plan.existing is not None
    tx = plan.existing.tx
    log.info("%s is already stored as tx %d: nothing to pay", tree.root_hex, tx.seq)
    if opts.wait == "finalized":
        _read_back(network, tree, plan.holders)
    timings["total"] = time.monotonic() - started
    return UploadResult(
        root=tree.root_hex,
        size=tree.size,
        tx_seq=tx.seq,
        tx_hash=None,
        fee_neuron=0,
        sectors=tree.fee_sectors,
        start_entry_index=tx.start_entry_index,
        nodes=[holder.node.url for holder in plan.holders],
        failed_nodes={},
        deduped=True,
        reused_tx=False,
        finalized=True,
        bytes_sent=0,
        segments_sent=0,
        timings=timings,
    )


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


class _UploadJob:
    """Segment uploads for one tx, with node replacement."""

    def __init__(
        self,
        network: StorageNetwork,
        source: SegmentSource,
        tree: FileTree,
        opts: UploadOptions,
        tx_seq: int,
        start_entry_index: int,
        progress: Progress | None,
    ) -> None:
        self.network = network
        self.source = source
        self.tree = tree
        self.opts = opts
        self.tx_seq = tx_seq
        self.start_entry_index = start_entry_index
        self.progress = progress
        self.active: list[ShardedNode] = []
        self.failed: dict[str, str] = {}
        self.unsynced: list[str] = []
        """Nodes that did not see the tx within ``tx_known_timeout``."""
        self.sent_per_node: Counter[str] = Counter()
        self.bytes_sent = 0
        self.segments_sent = 0
        self.first, self.last = segment_span(start_entry_index, tree.num_chunks)
        self._lock = threading.Lock()

    def run(self, nodes: list[ShardedNode], candidates: list[ShardedNode]) -> None:
        batch = list(nodes)
        total_bytes = self._bytes_for(batch)
        done_bytes = 0
        while batch:
            ready = self._await_tx(batch)
            self.active.extend(ready)
            todo = [node for node in ready if not self._finalized_already(node)]
            done_bytes = self._send(todo, done_bytes, total_bytes)
            lost = [node for node in batch if node.url in self.failed]
            self.active = [node for node in self.active if node.url not in self.failed]
            if not lost:
                return
            needed = sorted(
                {g for node in lost for g in node_segments(node.config, self.first, self.last)}
            )
            in_use = {node.url for node in self.active} | set(self.failed)
            chosen = replacements(candidates, needed, exclude=in_use)
            batch = [node for node, _ in chosen]
            for node in lost:
                log.warning(
                    "storage node %s failed (%s); replacing it with %s",
                    node.url,
                    self.failed[node.url],
                    ", ".join(n.url for n in batch),
                )
            total_bytes += self._bytes_for(batch)

    def _bytes_for(self, nodes: list[ShardedNode]) -> int:
        total = 0
        for node in nodes:
            for g in node_segments(node.config, self.first, self.last):
                total += self._wire_length(g - self.first)
        return total

    def _wire_length(self, index: int) -> int:
        chunks = min(SEGMENT_CHUNKS, self.tree.num_chunks - index * SEGMENT_CHUNKS)
        return chunks * CHUNK_SIZE

    def _await_tx(self, nodes: list[ShardedNode]) -> list[ShardedNode]:
        """Nodes that know the tx within the timeout; the others are marked failed.

        While some node has not seen it yet, ``progress("sync", seconds
        waited, timeout)`` runs once per poll.
        """
        began = time.monotonic()
        deadline = began + self.opts.tx_known_timeout
        pending = list(nodes)
        ready: list[ShardedNode] = []
        while pending:
            still: list[ShardedNode] = []
            for node in pending:
                try:
                    info = self.network.node(node.url).get_file_info_by_tx_seq(self.tx_seq)
                except ZerogError as error:
                    self.failed[node.url] = str(error)
                    continue
                if info is None:
                    still.append(node)
                    continue
                if info.tx.data_merkle_root != self.tree.root_hex or info.tx.size != self.tree.size:
                    self.failed[node.url] = f"reports another file for tx {self.tx_seq}"
                    continue
                ready.append(node)
            pending = still
            if pending and time.monotonic() >= deadline:
                for node in pending:
                    self.unsynced.append(node.url)
                    self.failed[node.url] = (
                        f"did not learn tx {self.tx_seq} within {self.opts.tx_known_timeout:.0f} s"
                    )
                break
            if pending:
                if self.progress is not None:
                    waited = int(time.monotonic() - began)
                    self.progress("sync", waited, int(self.opts.tx_known_timeout))
                time.sleep(self.opts.poll_interval)
        return ready

    def _finalized_already(self, node: ShardedNode) -> bool:
        try:
            info = self.network.node(node.url).get_file_info_by_tx_seq(self.tx_seq)
        except ZerogError:
            return False
        return info is not None and info.finalized

    def _send(self, nodes: list[ShardedNode], done_bytes: int, total_bytes: int) -> int:
        tasks = upload_tasks(
            nodes, self.start_entry_index, self.tree.num_chunks, self.opts.task_size
        )
        if not tasks:
            return done_bytes
        pool = ThreadPoolExecutor(max_workers=self.opts.concurrency, thread_name_prefix="zerog-up")
        pending: set[Future[int]] = set()
        try:
            for task in tasks:
                while len(pending) >= self.opts.concurrency:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    done_bytes = self._collect(finished, done_bytes, total_bytes)
                pending.add(pool.submit(self._run_task, task.node, task.segments))
            finished, _ = wait(pending)
            done_bytes = self._collect(finished, done_bytes, total_bytes)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return done_bytes

    def _collect(self, finished: set[Future[int]], done_bytes: int, total_bytes: int) -> int:
        for future in finished:
            done_bytes += future.result()
        if self.progress is not None:
            self.progress("upload", done_bytes, total_bytes)
        return done_bytes

    def _run_task(self, node: ShardedNode, segments: tuple[int, ...]) -> int:
        """Send one task; returns the bytes accepted (0 when the node failed)."""
        if node.url in self.failed:
            return 0
        client = self.network.node(node.url)
        try:
            payload = [wire_segment(self.source, self.tree, index) for index in segments]
            attempts = 0
            while True:
                try:
                    client.upload_segments_by_tx_seq(payload, self.tx_seq)
                    break
                except RemoteError as error:
                    if error.kind == "already-exists":
                        break
                    if error.kind == "retryable" and attempts < self.opts.busy_retries:
                        attempts += 1
                        time.sleep(self.opts.busy_pause)
                        continue
                    raise
        except IntegrityError:
            raise
        except ZerogError as error:
            with self._lock:
                self.failed.setdefault(node.url, str(error))
            return 0
        sent = sum(len(segment.data) for segment in payload)
        with self._lock:
            self.bytes_sent += sent
            self.segments_sent += len(payload)
            self.sent_per_node[node.url] += len(payload)
        return sent

    def wait_stored(self, *, final: bool) -> None:
        """Poll every active node until it has the file (finalized when ``final``)."""
        deadline = time.monotonic() + self.opts.finality_timeout
        pending = list(self.active)
        while pending:
            still = []
            for node in pending:
                info = self.network.node(node.url).get_file_info_by_tx_seq(self.tx_seq)
                if info is not None and info.pruned:
                    raise RemoteError(
                        f"{node.url}: tx {self.tx_seq} was pruned", kind="fatal", endpoint=node.url
                    )
                stored = info is not None and (
                    info.finalized
                    or (not final and info.uploaded_seg_num >= self.sent_per_node[node.url])
                )
                if not stored:
                    still.append(node)
            pending = still
            if not pending:
                return
            if time.monotonic() >= deadline:
                what = "finalize" if final else "store"
                raise NetworkUnavailable(
                    f"storage node {pending[0].url} did not {what} tx {self.tx_seq} "
                    f"within {self.opts.finality_timeout:.0f} s"
                )
            time.sleep(self.opts.poll_interval)


def _read_back(network: StorageNetwork, tree: FileTree, holders_: Sequence[_Holder]) -> None:
    """Read segment 0 back from a node holding it and check it against the root.

    Only nodes whose shard holds the file's first segment are asked, each
    under the tx it holds the file by. A read that fails its proof is tried
    once more, then on the next holder: one bad read (a bit flipped in
    transit, one node's bad copy) must not fail an upload that is paid for
    and stored. IntegrityError only when every read of every holder came back
    corrupt.
    """
    corrupt: list[str] = []
    for holder in holders_:
        if not holder.node.config.holds(holder.first_segment):
            continue
        url = holder.node.url
        for _ in range(READ_BACK_TRIES):
            segment = network.node(url).download_segment_with_proof_by_tx_seq(holder.tx_seq, 0)
            if segment is None:
                break
            try:
                _check_segment(segment, tree.root, tree.size, 0, url)
            except IntegrityError as error:
                corrupt.append(str(error))
                log.warning("segment 0 read back from %s is corrupt: %s", url, error)
                continue
            return
    if corrupt:
        raise IntegrityError(
            f"segment 0 of {tree.root_hex} came back corrupt in all {len(corrupt)} reads "
            f"after the upload (first: {corrupt[0]})"
        )
    raise NetworkUnavailable(
        f"no storage node served segment 0 of {tree.root_hex} back after the upload"
    )


# -- download -----------------------------------------------------------------


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


@dataclass(frozen=True)
class _Holder:
    node: ShardedNode
    tx_seq: int
    first_segment: int


def _expected_data_length(size: int, index: int) -> int:
    chunks = -(-size // CHUNK_SIZE)
    return min(SEGMENT_CHUNKS, chunks - index * SEGMENT_CHUNKS) * CHUNK_SIZE


def _check_segment(
    segment: SegmentWithProof, root: bytes, size: int, index: int, where: str
) -> bytes:
    """The segment root; IntegrityError unless ``segment`` is segment ``index`` of the file."""
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
    seg_root = segment_root(segment.data, segment_leaf_count(size, index))
    try:
        verify_segment_proof(root, seg_root, index, num_padded_segments(size), segment.proof)
    except IntegrityError as error:
        raise IntegrityError(f"{where}: {error}") from None
    return seg_root


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
) -> tuple[list[_Holder], int]:
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
        _Holder(node, info.tx.seq, info.tx.start_entry_index // SEGMENT_CHUNKS)
        for node, info in found
        if info.tx.size == size
    ]
    num_segments = -(-size // SEGMENT_SIZE)
    for index in range(num_segments):
        if not any(h.node.config.holds(h.first_segment + index) for h in chosen):
            raise NotFound(f"no storage node holds segment {index} of {root}")
    return chosen, size


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
    holders_: list[_Holder],
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
            seg_root = _check_segment(segment, root, size, index, url)
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
