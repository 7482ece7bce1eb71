"""The storage endpoints one transfer talks to, and the nodes that hold a file."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zerog_cli.errors import UsageError, ZerogError
from zerog_cli.zerog.segments import SEGMENT_CHUNKS
from zerog_cli.zerog.selection import ShardedNode

if TYPE_CHECKING:
    from zerog_cli.infra.http import HttpClient, Timeouts
    from zerog_cli.zerog.evm import EvmClient
    from zerog_cli.zerog.indexer import IndexerClient
    from zerog_cli.zerog.storage_node import FileInfo, StorageNodeClient

log = logging.getLogger("zerog.network")


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
        from zerog_cli.zerog.flow_abi import FLOW_ERRORS

        if self.evm_rpc_url is None:
            raise UsageError("an EVM RPC URL is needed to pay for an upload")
        if self._evm is None:
            self._evm = EvmClient(self.http, self.evm_rpc_url, revert_errors=FLOW_ERRORS)
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


@dataclass(frozen=True)
class Holder:
    """A node holding a file under one tx, whose first segment is ``first_segment`` in the flow."""

    node: ShardedNode
    tx_seq: int
    first_segment: int

    @classmethod
    def of(cls, node: ShardedNode, info: FileInfo) -> Holder:
        """``node`` holding the file under the tx ``info`` (its own file info) names."""
        return cls(node, info.tx.seq, info.tx.start_entry_index // SEGMENT_CHUNKS)


def first_missing_segment(holders: Sequence[Holder], num_segments: int) -> int | None:
    """The first of the file's ``num_segments`` segments no holder's shard holds, or None."""
    for index in range(num_segments):
        if not any(h.node.config.holds(h.first_segment + index) for h in holders):
            return index
    return None
