"""Replica selection (spec 6.2) and segment task assignment (spec 6.3)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerog_cli.errors import NetworkUnavailable
from zerog_cli.zerog.selection import (
    ShardConfig,
    ShardedNode,
    check_replica,
    node_segments,
    replacements,
    segment_span,
    select_nodes,
    upload_tasks,
)


def node(name: str, shard_id: int, num_shard: int) -> ShardedNode:
    return ShardedNode(f"http://127.0.0.1/{name}", ShardConfig(shard_id, num_shard))


def covers(nodes: list[ShardedNode], replicas: int, first: int = 0, last: int = 63) -> bool:
    return all(
        sum(1 for n in nodes if n.config.holds(g)) >= replicas for g in range(first, last + 1)
    )


def test_single_full_node() -> None:
    nodes = [node("a", 0, 1), node("b", 0, 1)]
    assert select_nodes(nodes, 1) == [nodes[0]]
    assert select_nodes(nodes, 2) == nodes
    with pytest.raises(NetworkUnavailable, match="replication requirement"):
        select_nodes(nodes, 3)


def test_two_halves() -> None:
    nodes = [node("h1", 1, 2), node("h0", 0, 2)]
    picked = select_nodes(nodes, 1)
    assert {n.url for n in picked} == {nodes[0].url, nodes[1].url}
    assert covers(picked, 1)
    with pytest.raises(NetworkUnavailable):
        select_nodes(nodes[:1], 1)


def test_min_prefers_full_nodes_and_skips_useless_ones() -> None:
    full = node("full", 0, 1)
    quarters = [node(f"q{k}", k, 4) for k in range(4)]
    assert select_nodes([*quarters, full], 1) == [full]
    picked = select_nodes([*quarters, full], 2)
    assert picked[0] == full and len(picked) == 5 and covers(picked, 2)


def test_mix_of_1_2_4() -> None:
    nodes = [node("h0", 0, 2), node("q1", 1, 4), node("q3", 3, 4), node("full", 0, 1)]
    picked = select_nodes(nodes, 2)
    assert covers(picked, 2)
    assert set(picked) == set(nodes)
    without_q3 = [n for n in nodes if n.url != nodes[2].url]
    with pytest.raises(NetworkUnavailable):
        select_nodes(without_q3, 2)
    assert covers(select_nodes(without_q3, 1), 1)


def test_redundant_node_is_not_picked() -> None:
    nodes = [node("q0", 0, 4), node("q2", 2, 4), node("h0", 0, 2), node("h1", 1, 2)]
    picked = select_nodes(nodes, 1)
    # "min" looks at numShard 2 first: the two halves cover everything.
    assert {n.url for n in picked} == {nodes[2].url, nodes[3].url}


def test_invalid_configs_are_ignored() -> None:
    nodes = [node("bad", 3, 3), node("bad2", 2, 2), node("ok", 0, 1)]
    assert select_nodes(nodes, 1) == [nodes[2]]
    assert not check_replica([ShardConfig(0, 3)], 1)


def test_random_method_covers() -> None:
    nodes = [node(f"q{k}", k, 4) for k in range(4)] + [node("h0", 0, 2), node("h1", 1, 2)]
    for seed in range(20):
        picked = select_nodes(nodes, 1, "random", rng=random.Random(seed))
        assert covers(picked, 1)


def test_check_replica() -> None:
    assert check_replica([ShardConfig(0, 2), ShardConfig(1, 2)], 1)
    assert not check_replica([ShardConfig(0, 2), ShardConfig(1, 2)], 2)
    assert check_replica([ShardConfig(0, 1), ShardConfig(0, 2), ShardConfig(1, 2)], 2)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([1, 2, 4, 8]), st.integers(0, 7)), max_size=12),
    st.integers(1, 3),
)
def test_selection_covers_or_fails_correctly(raw: list[tuple[int, int]], replicas: int) -> None:
    nodes = [node(str(i), k % n, n) for i, (n, k) in enumerate(raw)]
    possible = covers(nodes, replicas, 0, 7)
    try:
        picked = select_nodes(nodes, replicas)
    except NetworkUnavailable:
        assert not possible
    else:
        assert covers(picked, replicas, 0, 7)


def test_segment_span_and_node_segments() -> None:
    assert segment_span(0, 1) == (0, 0)
    assert segment_span(1024 * 5, 3 * 1024 + 1) == (5, 8)
    assert segment_span(300, 17) == (0, 0)
    assert list(node_segments(ShardConfig(0, 1), 5, 8)) == [5, 6, 7, 8]
    assert list(node_segments(ShardConfig(1, 2), 5, 8)) == [5, 7]
    assert list(node_segments(ShardConfig(0, 2), 5, 8)) == [6, 8]
    assert list(node_segments(ShardConfig(3, 4), 5, 8)) == [7]
    assert list(node_segments(ShardConfig(2, 4), 7, 9)) == []


def test_upload_tasks_interleave_and_cover() -> None:
    nodes = [node("h0", 0, 2), node("h1", 1, 2), node("full", 0, 1)]
    tasks = upload_tasks(nodes, 1024 * 4, 5 * 1024, task_size=2)
    assert [t.node.url for t in tasks[:3]] == [n.url for n in nodes]
    per_node: dict[str, list[int]] = {}
    for task in tasks:
        assert len(task.segments) <= 2
        per_node.setdefault(task.node.url, []).extend(task.segments)
    assert per_node[nodes[0].url] == [0, 2, 4]
    assert per_node[nodes[1].url] == [1, 3]
    assert per_node[nodes[2].url] == [0, 1, 2, 3, 4]


def test_replacements_cover_a_failed_half() -> None:
    failed = node("h0", 0, 2)
    others = [node("h1", 1, 2), node("q0", 0, 4), node("q2", 2, 4), node("full", 0, 1)]
    needed = list(node_segments(failed.config, 0, 7))
    chosen = replacements(others, needed, exclude={failed.url, others[0].url})
    # "min" order: the full node comes first and takes everything.
    assert [(n.url, segs) for n, segs in chosen] == [(others[3].url, needed)]
    chosen = replacements(others, needed, exclude={failed.url, others[3].url})
    assert {n.url for n, _ in chosen} == {others[1].url, others[2].url}
    with pytest.raises(NetworkUnavailable):
        replacements(others[:2], needed, exclude={failed.url})
