"""The download engine (zerog/segment_fetch.py) against in-memory nodes.

Each fake node serves segments of one file built here, with real proofs from
the file's tree, and can corrupt, fail, stall or answer out of order. The
devnet versions of these cases are in tests/test_transfer.py.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from tests.devnet_harness import BytesSource
from zerog_cli.errors import IntegrityError, NetworkUnavailable, UsageError
from zerog_cli.zerog.merkle import FileTree, tree_from_bytes
from zerog_cli.zerog.merkle_pool import RootPool
from zerog_cli.zerog.segment_fetch import FetchOptions, FetchReport, Source, fetch_segments
from zerog_cli.zerog.segments import SEGMENT_SIZE, wire_segment
from zerog_cli.zerog.storage_node import SegmentWithProof

SIZE = 9 * SEGMENT_SIZE + 1000
"""Nine full segments and a short tenth."""
QUICK_STALL = FetchOptions(per_node=2, window=4, stall_after=0.2)


@pytest.fixture(scope="module")
def file() -> tuple[bytes, FileTree]:
    data = random.Random(19).randbytes(SIZE)
    return data, tree_from_bytes(data)


class FakeNode:
    """One node's behaviour; ``served`` and ``asked`` record what it was asked."""

    def __init__(
        self,
        name: str,
        file: tuple[bytes, FileTree],
        *,
        corrupt: Callable[[int], bool] = lambda index: False,
        fail: Callable[[int], bool] = lambda index: False,
        delay: Callable[[int], float] = lambda index: 0.0,
        holds: Callable[[int], bool] = lambda index: True,
    ) -> None:
        self.url = f"http://127.0.0.1:1/{name}"
        self._data, self._tree = file
        self._corrupt, self._fail, self._delay = corrupt, fail, delay
        self.holds = holds
        self.asked: list[int] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def fetch(self, index: int) -> SegmentWithProof | None:
        with self._lock:
            self.asked.append(index)
        delay = self._delay(index)
        if delay == float("inf"):
            self.release.wait(30)
        elif delay:
            time.sleep(delay)
        if self._fail(index):
            raise NetworkUnavailable(f"{self.url}: connection refused")
        segment = wire_segment(BytesSource(self._data), self._tree, index)
        if self._corrupt(index):
            flipped = bytearray(segment.data)
            flipped[len(flipped) // 2] ^= 0xFF
            segment = replace(segment, data=bytes(flipped))
        return segment

    @property
    def source(self) -> Source:
        return Source(self.url, self.holds, self.fetch)


def run(
    tree: FileTree,
    nodes: list[FakeNode],
    indices: list[int] | None = None,
    options: FetchOptions | None = None,
    pool: RootPool | None = None,
) -> tuple[dict[int, bytes], list[int], FetchReport]:
    got: dict[int, bytes] = {}
    order: list[int] = []

    def deliver(index: int, data: bytes, seg_root: bytes) -> None:
        assert seg_root == tree.segment_roots[index]
        order.append(index)
        got[index] = data

    wanted = list(range(tree.num_data_segments)) if indices is None else indices
    report = fetch_segments(
        [node.source for node in nodes],
        tree.root,
        tree.size,
        wanted,
        deliver,
        options=options,
        pool=pool,
    )
    return got, order, report


def segment_bytes(data: bytes, index: int) -> bytes:
    return data[index * SEGMENT_SIZE : (index + 1) * SEGMENT_SIZE]


@pytest.fixture
def released() -> Iterator[list[FakeNode]]:
    """Nodes registered here are unblocked at the end of the test."""
    nodes: list[FakeNode] = []
    yield nodes
    for node in nodes:
        node.release.set()


def test_every_segment_in_order_from_both_nodes(file: tuple[bytes, FileTree]) -> None:
    data, tree = file
    nodes = [FakeNode("a", file), FakeNode("b", file)]
    got, order, report = run(tree, nodes)
    assert order == list(range(10))
    assert b"".join(got[i] for i in order) == data
    assert report.proofs_checked == 10
    assert sum(stats.segments for stats in report.nodes) == 10
    assert sum(stats.bytes for stats in report.nodes) == SIZE
    assert report.healed == 0


def test_out_of_order_completion_is_delivered_in_order(file: tuple[bytes, FileTree]) -> None:
    """Later segments answer first (the first ones are slowest); delivery is still 0, 1, 2..."""
    _, tree = file
    slow_first = FakeNode("a", file, delay=lambda index: 0.05 * (10 - index))
    _, order, report = run(tree, [slow_first], options=FetchOptions(per_node=10, window=10))
    assert order == list(range(10))
    assert report.proofs_checked == 10


def test_corrupt_segment_is_fetched_from_the_other_node(file: tuple[bytes, FileTree]) -> None:
    """Node a flips a byte in every even segment and answers at once; b is slower but good."""
    data, tree = file
    bad = FakeNode("a", file, corrupt=lambda index: index % 2 == 0)
    good = FakeNode("b", file, delay=lambda index: 0.02)
    got, order, report = run(tree, [bad, good])
    assert b"".join(got[i] for i in order) == data
    stats = {s.url: s for s in report.nodes}
    corrupt_asked = [i for i in bad.asked if i % 2 == 0]
    assert corrupt_asked, "the corrupt node was never asked: the test proves nothing"
    assert stats[bad.url].corrupt == len(corrupt_asked)
    assert set(corrupt_asked) <= set(good.asked)
    assert report.healed == len(set(corrupt_asked))
    # Every answer had its proof checked, the corrupt ones included.
    assert report.proofs_checked == len(bad.asked) + len(good.asked)


def test_a_wrong_proof_is_refused(file: tuple[bytes, FileTree]) -> None:
    """Right data with the proof of another segment is as bad as flipped data."""
    data, tree = file

    class WrongProof(FakeNode):
        def fetch(self, index: int) -> SegmentWithProof | None:
            segment = super().fetch(index)
            assert segment is not None
            return replace(segment, proof=tree.proof((index + 1) % tree.num_data_segments))

    liar = WrongProof("a", file)
    got, order, report = run(tree, [liar, FakeNode("b", file, delay=lambda index: 0.01)])
    assert b"".join(got[i] for i in order) == data
    assert {s.url: s for s in report.nodes}[liar.url].segments == 0


def test_every_node_corrupt_is_an_integrity_error(file: tuple[bytes, FileTree]) -> None:
    """Segments 3 and 6 are corrupt everywhere, 3 answers last: the error names 3, and
    only the verified segments before it were delivered."""
    _, tree = file
    nodes = [
        FakeNode(
            name,
            file,
            corrupt=lambda index: index in (3, 6),
            delay=lambda index: 0.3 if index == 3 else 0.0,
        )
        for name in "ab"
    ]
    delivered: list[int] = []
    with pytest.raises(IntegrityError, match="segment 3 ") as info:
        fetch_segments(
            [node.source for node in nodes],
            tree.root,
            tree.size,
            list(range(10)),
            lambda index, data, seg_root: delivered.append(index),
            options=FetchOptions(per_node=4, window=8),
        )
    assert "2 corrupt" in str(info.value)
    assert delivered == [0, 1, 2]


def test_failed_node_is_replaced_and_all_failing_is_network(
    file: tuple[bytes, FileTree],
) -> None:
    data, tree = file
    down = FakeNode("a", file, fail=lambda index: True)
    got, order, report = run(tree, [down, FakeNode("b", file, delay=lambda index: 0.01)])
    assert b"".join(got[i] for i in order) == data
    assert {s.url: s for s in report.nodes}[down.url].failed >= 1
    with pytest.raises(NetworkUnavailable, match="could not be fetched"):
        run(tree, [FakeNode(name, file, fail=lambda index: True) for name in "ab"])


def test_stalled_node_segments_are_reassigned(
    file: tuple[bytes, FileTree], released: list[FakeNode]
) -> None:
    """Node a takes one request per thread and never answers; b serves those segments
    once a's requests are stale, and each counts as one stall of a.

    b offers nothing until both of a's threads hold a request, so a is always asked
    (its requests are the first) and b's own requests are never judged stale by a,
    however slowly a loaded machine runs b: the count is exact on every run.
    """
    data, tree = file
    stalled = FakeNode("a", file, delay=lambda index: float("inf"))
    released.append(stalled)
    slow = FakeNode(
        "b",
        file,
        delay=lambda index: 0.05,
        holds=lambda index: len(stalled.asked) == QUICK_STALL.per_node,
    )
    got, order, report = run(tree, [stalled, slow], options=QUICK_STALL)
    assert b"".join(got[i] for i in order) == data
    stats = {s.url: s for s in report.nodes}
    stuck = set(stalled.asked)
    assert len(stuck) == QUICK_STALL.per_node, stalled.asked
    assert stats[stalled.url].stalled == len(stuck)
    assert stats[stalled.url].segments == 0
    assert stuck <= set(slow.asked)


def test_a_stalled_answer_that_arrives_late_is_still_used(file: tuple[bytes, FileTree]) -> None:
    """The only holder of a segment stalls past the timeout: the fetch waits for its answer."""
    data, tree = file
    only = FakeNode("a", file, delay=lambda index: 0.6 if index == 1 else 0.0)
    got, order, report = run(tree, [only], options=QUICK_STALL)
    assert b"".join(got[i] for i in order) == data
    assert only.asked.count(1) == 1
    assert report.nodes[0].segments == 10


def test_sharded_nodes_each_serve_their_own_segments(file: tuple[bytes, FileTree]) -> None:
    data, tree = file
    even = FakeNode("even", file, holds=lambda index: index % 2 == 0)
    odd = FakeNode("odd", file, holds=lambda index: index % 2 == 1)
    got, order, _ = run(tree, [even, odd])
    assert b"".join(got[i] for i in order) == data
    assert all(i % 2 == 0 for i in even.asked) and all(i % 2 == 1 for i in odd.asked)


def test_a_subset_of_segments(file: tuple[bytes, FileTree]) -> None:
    data, tree = file
    node = FakeNode("a", file)
    got, order, report = run(tree, [node], indices=[1, 4, 9])
    assert order == [1, 4, 9]
    assert sorted(node.asked) == [1, 4, 9]
    assert got[9] == segment_bytes(data, 9)
    assert len(got[9]) == 1000
    assert report.proofs_checked == 3
    with pytest.raises(UsageError, match="ascending"):
        run(tree, [node], indices=[4, 1])


def test_the_window_bounds_what_is_fetched_ahead(file: tuple[bytes, FileTree]) -> None:
    """While the caller sits on segment 0, no node is asked past the window.

    The caller waits until the window's last segment (3) was asked, however long a
    loaded machine takes, then gives the fetching threads time to overreach.
    """
    _, tree = file
    node = FakeNode("a", file)
    seen_ahead: list[int] = []

    def deliver(index: int, data: bytes, seg_root: bytes) -> None:
        if index == 0:
            deadline = time.monotonic() + 60
            while 3 not in node.asked and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)
            seen_ahead.append(max(node.asked))

    fetch_segments(
        [node.source],
        tree.root,
        tree.size,
        list(range(10)),
        deliver,
        options=FetchOptions(per_node=4, window=3),
    )
    assert seen_ahead == [3]


def test_roots_from_the_hashing_pool(file: tuple[bytes, FileTree]) -> None:
    """With a RootPool, full segments are hashed in worker processes; same result."""
    data, tree = file
    bad = FakeNode("a", file, corrupt=lambda index: index == 4)
    with RootPool(2, 4) as pool:
        got, order, report = run(
            tree, [bad, FakeNode("b", file, delay=lambda index: 0.01)], pool=pool
        )
    assert b"".join(got[i] for i in order) == data
    assert report.pooled
    if 4 in bad.asked:
        assert {s.url: s for s in report.nodes}[bad.url].corrupt == 1


def test_root_pool_matches_in_process_roots() -> None:
    segments = [os.urandom(SEGMENT_SIZE) for _ in range(12)]
    expected = [tree_from_bytes(segment).root for segment in segments]
    got: list[bytes | None] = [None] * len(segments)
    with RootPool(2, 3) as pool:

        def work(start: int) -> None:
            for i in range(start, len(segments), 4):
                got[i] = pool.segment_root(segments[i])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with pytest.raises(UsageError):
            pool.segment_root(b"short")
    assert got == expected


_PAGE_FAULTS = """
import base64, json, resource, sys
if sys.argv[1] == "kept":
    from zerog_cli.infra.memory import keep_large_blocks
    keep_large_blocks()
answer = json.dumps({"data": base64.b64encode(bytes(262144)).decode()}).encode()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    json.loads(answer)  # the parse of a segment's answer: two blocks of 350 KB, freed
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_a_transfer_reuses_freed_segment_sized_blocks() -> None:
    """Freed third-of-a-megabyte blocks stay with malloc for the next segment instead of
    being page-faulted in afresh each time (what the engine sets up before fetching)."""
    import subprocess
    import sys

    def faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _PAGE_FAULTS, mode], capture_output=True, text=True, check=True
        )
        return int(done.stdout)

    pages_per_parse = 350_000 // 4096
    assert faults("default") > 50 * pages_per_parse
    assert faults("kept") < 5 * pages_per_parse
