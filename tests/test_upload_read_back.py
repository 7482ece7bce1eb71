"""After an upload, segment 0 is read back from a holder and checked against the root.

The chaos suite saw a paid, stored upload fail with exit 6 because the one node asked
first could not be reached during the read-back: the next holder is asked instead.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from tests.devnet_harness import BytesSource
from zerog_cli.errors import NetworkUnavailable
from zerog_cli.zerog.merkle import tree_from_bytes
from zerog_cli.zerog.segments import wire_segment
from zerog_cli.zerog.storage_node import SegmentWithProof
from zerog_cli.zerog.upload import _read_back


class _Node:
    def __init__(self, answer: SegmentWithProof | Exception) -> None:
        self.answer = answer
        self.asked = 0

    def download_segment_with_proof_by_tx_seq(self, tx_seq: int, index: int) -> SegmentWithProof:
        self.asked += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _holders(urls: list[str]) -> list[SimpleNamespace]:
    config = SimpleNamespace(holds=lambda index: True)
    return [
        SimpleNamespace(node=SimpleNamespace(url=url, config=config), tx_seq=1, first_segment=0)
        for url in urls
    ]


def test_a_holder_that_cannot_be_reached_is_passed_over() -> None:
    data = random.Random(5).randbytes(3000)
    tree = tree_from_bytes(data)
    nodes = {
        "http://127.0.0.1:1/down": _Node(NetworkUnavailable("connection refused")),
        "http://127.0.0.1:1/up": _Node(wire_segment(BytesSource(data), tree, 0)),
    }
    network = SimpleNamespace(node=lambda url: nodes[url])
    _read_back(network, tree, _holders(list(nodes)))  # type: ignore[arg-type]
    assert nodes["http://127.0.0.1:1/up"].asked == 1

    nodes["http://127.0.0.1:1/up"] = _Node(NetworkUnavailable("timed out"))
    with pytest.raises(NetworkUnavailable, match="connection refused"):
        _read_back(network, tree, _holders(list(nodes)))  # type: ignore[arg-type]
