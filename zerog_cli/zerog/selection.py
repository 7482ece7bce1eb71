"""Replica selection over sharded storage nodes and segment task assignment.

Spec 0g-storage.md 6.2 and 6.3. A node with shard config ``(K, N)`` stores the
segments whose *global* index ``g`` (flow position / 1024) has ``g mod N == K``.
Selection picks nodes so that every residue class is held ``R`` times, using
a binary trie of shard classes. Pure functions, no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zerog_cli.errors import NetworkUnavailable, ProtocolError

SEGMENT_CHUNKS = 1024
MAX_NUM_SHARD = 1 << 20


@dataclass(frozen=True)
class ShardConfig:
    shard_id: int
    num_shard: int

    @property
    def valid(self) -> bool:
        """numShard a power of two (at most 2^20 here), shardId below it."""
        n = self.num_shard
        return 1 <= n <= MAX_NUM_SHARD and n & (n - 1) == 0 and 0 <= self.shard_id < n

    def holds(self, global_segment: int) -> bool:
        return global_segment % self.num_shard == self.shard_id

    def check(self, where: str) -> ShardConfig:
        if not self.valid:
            raise ProtocolError(
                f"{where}: invalid shard config shardId={self.shard_id} numShard={self.num_shard}"
            )
        return self


@dataclass(frozen=True)
class ShardedNode:
    """A storage node as the indexer describes it."""

    url: str
    config: ShardConfig
    latency: int | None = None
    since: int | None = None


class _Trie:
    """One shard class; ``replica`` is how many picked nodes hold all of it."""

    __slots__ = ("children", "replica")

    def __init__(self, replica: int) -> None:
        self.replica = replica
        self.children: list[_Trie] | None = None

    def add_everywhere(self) -> None:
        self.replica += 1
        for child in self.children or ():
            child.add_everywhere()

    def insert(self, shard_id: int, num_shard: int, level: int, wanted: int) -> bool:
        """Count a node of class ``(shard_id, num_shard)`` if it adds coverage."""
        if self.replica >= wanted:
            return False
        if level == num_shard:
            self.add_everywhere()
            return True
        if self.children is None:
            self.children = [_Trie(self.replica), _Trie(self.replica)]
        picked = self.children[shard_id % 2].insert(shard_id // 2, num_shard, level * 2, wanted)
        if picked:
            self.replica = min(child.replica for child in self.children)
        return picked


def order_candidates(
    nodes: Iterable[ShardedNode], method: str, rng: random.Random | None = None
) -> list[ShardedNode]:
    """Candidates in selection order: ``min`` (numShard, shardId ascending),
    ``max`` (numShard descending) or ``random``. Invalid configs are dropped."""
    valid = [node for node in nodes if node.config.valid]
    if method == "min":
        return sorted(valid, key=lambda n: (n.config.num_shard, n.config.shard_id))
    if method == "max":
        return sorted(valid, key=lambda n: (-n.config.num_shard, n.config.shard_id))
    if method == "random":
        shuffled = list(valid)
        (rng or random.Random()).shuffle(shuffled)
        return shuffled
    raise ValueError(f"unknown selection method {method!r}")


def select_nodes(
    nodes: Iterable[ShardedNode],
    replicas: int,
    method: str = "min",
    *,
    rng: random.Random | None = None,
) -> list[ShardedNode]:
    """A subset that holds every segment ``replicas`` times (spec 6.2).

    Raises ``NetworkUnavailable`` when the candidates cannot cover that.
    """
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    root = _Trie(0)
    picked: list[ShardedNode] = []
    seen_urls: set[str] = set()
    for node in order_candidates(nodes, method, rng):
        if node.url in seen_urls:
            continue
        if root.insert(node.config.shard_id, node.config.num_shard, 1, replicas):
            picked.append(node)
            seen_urls.add(node.url)
            if root.replica >= replicas:
                return picked
    raise NetworkUnavailable(
        "cannot select a subset from the returned nodes that meets the replication "
        f"requirement ({replicas} replica{'s' if replicas != 1 else ''})"
    )


def check_replica(configs: Iterable[ShardConfig], replicas: int) -> bool:
    """True when ``configs`` together hold every segment ``replicas`` times."""
    root = _Trie(0)
    for config in sorted((c for c in configs if c.valid), key=lambda c: (c.num_shard, c.shard_id)):
        root.insert(config.shard_id, config.num_shard, 1, replicas)
    return root.replica >= replicas


def segment_span(start_entry_index: int, num_chunks: int) -> tuple[int, int]:
    """(first, last) global segment index of a file, inclusive (spec 6.3)."""
    first = start_entry_index // SEGMENT_CHUNKS
    last = (start_entry_index + num_chunks - 1) // SEGMENT_CHUNKS
    return first, last


def node_segments(config: ShardConfig, first: int, last: int) -> range:
    """Global segments in ``[first, last]`` that a node of ``config`` holds."""
    n, k = config.num_shard, config.shard_id
    start = first if n == 1 else (first + n - 1 - k) // n * n + k
    return range(start, last + 1, n)


@dataclass(frozen=True)
class UploadTask:
    """One ``zgs_uploadSegmentsByTxSeq`` call: file-local segment indexes."""

    node: ShardedNode
    segments: tuple[int, ...]


def upload_tasks(
    nodes: Sequence[ShardedNode],
    start_entry_index: int,
    num_chunks: int,
    task_size: int,
) -> list[UploadTask]:
    """Tasks for every node, interleaved round-robin across nodes (spec 6.3).

    Only data segments are listed; flow-padding segments are never sent.
    """
    if task_size < 1:
        raise ValueError("task_size must be at least 1")
    first, last = segment_span(start_entry_index, num_chunks)
    per_node: list[list[UploadTask]] = []
    for node in nodes:
        local = [g - first for g in node_segments(node.config, first, last)]
        per_node.append(
            [
                UploadTask(node, tuple(local[i : i + task_size]))
                for i in range(0, len(local), task_size)
            ]
        )
    tasks: list[UploadTask] = []
    for round_index in range(max((len(t) for t in per_node), default=0)):
        for node_tasks in per_node:
            if round_index < len(node_tasks):
                tasks.append(node_tasks[round_index])
    return tasks


def replacements(
    candidates: Iterable[ShardedNode],
    needed: Iterable[int],
    *,
    exclude: Iterable[str],
) -> list[tuple[ShardedNode, list[int]]]:
    """Nodes, in "min" order, that together hold every global segment in ``needed``.

    Used when a selected node fails: ``needed`` are its segments and
    ``exclude`` the URLs already in use or failed. Each returned node comes
    with the needed segments it takes over. Raises ``NetworkUnavailable`` when
    some segment has no other holder.
    """
    excluded = set(exclude)
    remaining = sorted(set(needed))
    chosen: list[tuple[ShardedNode, list[int]]] = []
    for node in order_candidates(candidates, "min"):
        if not remaining:
            break
        if node.url in excluded:
            continue
        taken = [g for g in remaining if node.config.holds(g)]
        if taken:
            chosen.append((node, taken))
            excluded.add(node.url)
            remaining = [g for g in remaining if not node.config.holds(g)]
    if remaining:
        raise NetworkUnavailable(
            f"no other trusted node holds segment {remaining[0]} "
            f"({len(remaining)} segment(s) without a replacement)"
        )
    return chosen
