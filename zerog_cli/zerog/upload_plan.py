"""What an upload will do, found without sending anything (also the ``--dry-run``).

:func:`plan_upload` reads nodes from the indexer's ``trusted`` list ("min"
selection, ``replicas`` copies), the chain id and Flow address from the
first node's status (a configured Flow address wins, as in the Go client's
``ResolveContractConfig``), probes for the file (``zgs_getFileInfo(root,
false)``) and, when a payment is needed, quotes the fee (``market()``, then
``pricePerSector()``).

The probe decides the dedupe. Nodes that have the root *finalized with the
same size* and that together hold every segment of it (a sharded node
finalizes its own shard only) end the upload with their txSeq: no fee, no
transaction. A node that knows the root with the same size, not finalized
and not pruned, gives a tx that is reused: no second payment, its segments
are uploaded under that txSeq (the Go client's ``--skip-tx`` behaviour; the
TS SDK would pay again).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zerog_cli.errors import NetworkUnavailable, ZerogError
from zerog_cli.zerog.network import Holder, StorageNetwork, first_missing_segment
from zerog_cli.zerog.segments import SEGMENT_CHUNKS
from zerog_cli.zerog.selection import ShardedNode, select_nodes

if TYPE_CHECKING:
    from zerog_cli.zerog.evm import FeeQuote
    from zerog_cli.zerog.merkle import FileTree
    from zerog_cli.zerog.storage_node import FileInfo, NetworkIdentity

log = logging.getLogger("zerog.upload")


@dataclass
class UploadPlan:
    """What an upload would do; computed without sending anything."""

    root: str
    size: int
    sectors: int
    nodes: list[ShardedNode]
    candidates: list[ShardedNode]
    flow_address: str
    node_chain_id: int
    """``networkIdentity.chainId`` of the node whose status was read."""
    status_node: str
    existing: FileInfo | None
    """The root finalized with this size on selected nodes that hold all of it."""
    holders: list[Holder]
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
) -> list[Holder]:
    """The finalized nodes when, together, they hold every segment of the file.

    A node of shard (K, N) reports the file finalized once it has its own
    segments; each may hold it under its own tx (the same root paid twice).
    """
    holders_ = [Holder.of(node, info) for node, info in finalized]
    if first_missing_segment(holders_, -(-num_chunks // SEGMENT_CHUNKS)) is not None:
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
