"""Upload one 0G file (spec 0g-storage.md 6). No ledger, no printing.

In order:

1. The plan (:mod:`zerog_cli.zerog.upload_plan`): nodes, Flow address, the
   dedupe probe and the fee quote. A file already finalized on nodes that
   hold all of it ends here; a known tx is reused, and so is a mined payment
   the caller passes in (``prepaid_tx``: an earlier run paid and then gave
   up waiting).
2. Otherwise ``Flow.submit`` with ``value = sectors x pricePerSector``; the
   txSeq comes from the receipt's Submit log.
3. Every selected node must know the tx (``zgs_getFileInfoByTxSeq``) within
   ``tx_known_timeout`` (a node may lag behind the chain).
4. Segments go out with ``zgs_uploadSegmentsByTxSeq`` from a bounded thread
   pool, tasks interleaved across nodes. "already uploaded and finalized" and
   "segment has already been uploaded" count as success; "too many data
   writing" is retried after a pause. A node that fails otherwise is dropped
   and replaced by other trusted nodes that hold its segments; each
   replacement gets all of its own shard's segments.
5. ``wait``: ``"none"`` returns once every segment was accepted;
   ``"uploaded"`` also polls until each node reports the file finalized or
   holding as many segments as it was sent; ``"finalized"`` polls until every
   node reports it finalized and then reads one segment back with its proof.

Memory stays flat in the file size: segments are read from the source when a
worker sends them, and at most ``concurrency`` tasks are in flight.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zerog_cli.errors import IntegrityError, NetworkUnavailable, RemoteError, UsageError, ZerogError
from zerog_cli.zerog.network import Holder, StorageNetwork
from zerog_cli.zerog.segments import (
    CHUNK_SIZE,
    SEGMENT_CHUNKS,
    Progress,
    SegmentSource,
    check_segment,
    wire_segment,
)
from zerog_cli.zerog.selection import (
    ShardedNode,
    node_segments,
    replacements,
    segment_span,
    upload_tasks,
)
from zerog_cli.zerog.upload_plan import UploadPlan, estimate_fee, plan_upload

if TYPE_CHECKING:
    from zerog_cli.zerog.evm import GasOptions
    from zerog_cli.zerog.merkle import FileTree

log = logging.getLogger("zerog.upload")


WAIT_MODES = ("finalized", "uploaded", "none")
READ_BACK_TRIES = 2
"""Reads of segment 0 per holder after an upload before trying the next holder."""


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
        _read_back(network, tree, [Holder(node, tx_seq, first) for node in job.active])
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


def _read_back(network: StorageNetwork, tree: FileTree, holders_: Sequence[Holder]) -> None:
    """Read segment 0 back from a node holding it and check it against the root.

    Only nodes whose shard holds the file's first segment are asked, each
    under the tx it holds the file by. A read that fails its proof is tried
    once more, then on the next holder, and a holder that cannot be reached is
    passed over for the next: one bad read (a bit flipped in transit, one
    node's bad copy, one node down) must not fail an upload that is paid for
    and stored. IntegrityError only when every read of every holder came back
    corrupt.
    """
    corrupt: list[str] = []
    unreachable: list[str] = []
    for holder in holders_:
        if not holder.node.config.holds(holder.first_segment):
            continue
        url = holder.node.url
        for _ in range(READ_BACK_TRIES):
            try:
                segment = network.node(url).download_segment_with_proof_by_tx_seq(holder.tx_seq, 0)
            except NetworkUnavailable as error:
                unreachable.append(str(error))
                log.warning("segment 0 could not be read back from %s: %s", url, error)
                break
            if segment is None:
                break
            try:
                check_segment(segment, tree.root, tree.size, 0, url)
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
        + (f" (first: {unreachable[0]})" if unreachable else "")
    )
