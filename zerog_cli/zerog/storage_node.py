"""Client of a 0G storage node's ``zgs_*`` JSON-RPC (spec 0g-storage.md 3).

Every answer is validated field by field into typed dataclasses; anything off
(wrong type, number out of range, bad hex or base64, oversized data, a proof of
impossible shape) is a one-line ``ProtocolError`` naming the node.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pybase64

from zerog_cli.zerog.jsonrpc import JsonRpcClient, Reader, one_line
from zerog_cli.zerog.selection import ShardConfig

if TYPE_CHECKING:
    from zerog_cli.infra.http import HttpClient, Timeouts
    from zerog_cli.zerog.merkle import SegmentProof

CHUNK_SIZE = 256
SEGMENT_SIZE = 256 * 1024
MAX_FILE_SIZE = 1 << 62
_MAX_B64_CHARS = 4 * (SEGMENT_SIZE // 3 + 1)


@dataclass(frozen=True)
class NetworkIdentity:
    chain_id: int
    flow_address: str


@dataclass(frozen=True)
class Status:
    connected_peers: int
    log_sync_height: int
    log_sync_block: str
    next_tx_seq: int
    network_identity: NetworkIdentity


@dataclass(frozen=True)
class Transaction:
    """The flow transaction a file belongs to (``FileInfo.tx``)."""

    seq: int
    size: int
    start_entry_index: int
    data_merkle_root: str
    merkle_nodes: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class FileInfo:
    tx: Transaction
    finalized: bool
    is_cached: bool
    uploaded_seg_num: int
    pruned: bool


@dataclass(frozen=True)
class SegmentWithProof:
    """A segment on the wire: file-local ``index``, whole chunks of ``data``."""

    root: str
    data: bytes
    index: int
    proof: SegmentProof
    file_size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "data": pybase64.b64encode(self.data).decode("ascii"),
            "index": self.index,
            "proof": self.proof.to_json(),
            "fileSize": self.file_size,
        }


def parse_status(value: Any, where: str) -> Status:
    r = Reader(where)
    obj = r.obj(value, "status")
    identity = r.obj(r.get(obj, "networkIdentity", "networkIdentity"), "networkIdentity")
    return Status(
        connected_peers=r.integer(r.get(obj, "connectedPeers", "connectedPeers"), "connectedPeers"),
        log_sync_height=r.integer(r.get(obj, "logSyncHeight", "logSyncHeight"), "logSyncHeight"),
        log_sync_block=r.hash(r.get(obj, "logSyncBlock", "logSyncBlock"), "logSyncBlock"),
        next_tx_seq=r.integer(r.get(obj, "nextTxSeq", "nextTxSeq"), "nextTxSeq"),
        network_identity=NetworkIdentity(
            chain_id=r.integer(r.get(identity, "chainId", "chainId"), "networkIdentity.chainId"),
            flow_address=r.address(
                r.get(identity, "flowAddress", "flowAddress"), "networkIdentity.flowAddress"
            ),
        ),
    )


def parse_shard_config(value: Any, where: str) -> ShardConfig:
    r = Reader(where)
    obj = r.obj(value, "shard config")
    config = ShardConfig(
        shard_id=r.integer(r.get(obj, "shardId", "shardId"), "shardId"),
        num_shard=r.integer(r.get(obj, "numShard", "numShard"), "numShard"),
    )
    return config.check(where)


def parse_file_info(value: Any, where: str) -> FileInfo:
    r = Reader(where)
    obj = r.obj(value, "file info")
    tx = r.obj(r.get(obj, "tx", "tx"), "tx")
    nodes_raw = r.array(r.get(tx, "merkleNodes", "tx.merkleNodes"), "tx.merkleNodes", max_len=64)
    nodes: list[tuple[int, str]] = []
    for i, pair in enumerate(nodes_raw):
        item = r.array(pair, f"tx.merkleNodes[{i}]", max_len=2)
        if len(item) != 2:
            raise r.fail(f"tx.merkleNodes[{i}]", "is not a [depth, root] pair")
        nodes.append(
            (
                r.integer(item[0], f"tx.merkleNodes[{i}][0]", high=64),
                r.hash(item[1], f"tx.merkleNodes[{i}][1]"),
            )
        )
    size = r.integer(r.get(tx, "size", "tx.size"), "tx.size", high=MAX_FILE_SIZE)
    pruned = obj.get("pruned", False)
    return FileInfo(
        tx=Transaction(
            seq=r.integer(r.get(tx, "seq", "tx.seq"), "tx.seq"),
            size=size,
            start_entry_index=r.integer(
                r.get(tx, "startEntryIndex", "tx.startEntryIndex"), "tx.startEntryIndex"
            ),
            data_merkle_root=r.hash(r.get(tx, "dataMerkleRoot", "tx.dataMerkleRoot"), "tx.root"),
            merkle_nodes=tuple(nodes),
        ),
        finalized=r.boolean(r.get(obj, "finalized", "finalized"), "finalized"),
        is_cached=r.boolean(obj.get("isCached", False), "isCached"),
        uploaded_seg_num=r.integer(obj.get("uploadedSegNum", 0), "uploadedSegNum"),
        pruned=r.boolean(pruned if pruned is not None else False, "pruned"),
    )


def decode_segment_data(value: Any, where: str, field: str = "data") -> bytes:
    """Strict standard base64 of at most one segment, whole chunks.

    pybase64 (SIMD, wheels on PyPI) decodes a segment in tens of microseconds where
    the standard library's ``b64decode(validate=True)`` takes milliseconds: the
    largest CPU cost of a download after the proofs."""
    r = Reader(where)
    text = r.string(value, field, max_len=_MAX_B64_CHARS)
    try:
        data = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise r.fail(field, "is not valid base64") from None
    if not data or len(data) % CHUNK_SIZE or len(data) > SEGMENT_SIZE:
        raise r.fail(field, f"holds {len(data)} bytes, not 1 to 1024 whole 256-byte chunks")
    return data


def parse_segment_with_proof(value: Any, where: str) -> SegmentWithProof:
    from zerog_cli.errors import ProtocolError
    from zerog_cli.zerog.merkle import SegmentProof

    r = Reader(where)
    obj = r.obj(value, "segment")
    try:
        proof = SegmentProof.from_json(r.get(obj, "proof", "proof"))
    except ProtocolError as error:
        raise ProtocolError(f"{where}: {error}") from None
    return SegmentWithProof(
        root=r.hash(r.get(obj, "root", "root"), "root"),
        data=decode_segment_data(r.get(obj, "data", "data"), where),
        index=r.integer(r.get(obj, "index", "index"), "index"),
        proof=proof,
        file_size=r.integer(r.get(obj, "fileSize", "fileSize"), "fileSize", high=MAX_FILE_SIZE),
    )


class StorageNodeClient:
    """One storage node. Methods return None where the node answers null."""

    def __init__(
        self,
        http: HttpClient,
        url: str,
        *,
        timeout: Timeouts | None = None,
        max_response_bytes: int = 8 << 20,
    ) -> None:
        from zerog_cli.infra.http import endpoint_with_path

        self.url = url
        self.rpc = JsonRpcClient(
            http,
            url,
            endpoint=endpoint_with_path(url),
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            direct=True,
        )
        self.endpoint = self.rpc.endpoint

    def _where(self, method: str) -> str:
        return f"{self.endpoint} {method}"

    def get_status(self) -> Status:
        return parse_status(self.rpc.call("zgs_getStatus"), self._where("zgs_getStatus"))

    def get_shard_config(self) -> ShardConfig:
        method = "zgs_getShardConfig"
        return parse_shard_config(self.rpc.call(method), self._where(method))

    def get_file_info(self, root: str, need_available: bool) -> FileInfo | None:
        method = "zgs_getFileInfo"
        value = self.rpc.call(method, [root, need_available])
        return None if value is None else parse_file_info(value, self._where(method))

    def get_file_info_by_tx_seq(self, tx_seq: int) -> FileInfo | None:
        method = "zgs_getFileInfoByTxSeq"
        value = self.rpc.call(method, [tx_seq])
        return None if value is None else parse_file_info(value, self._where(method))

    def check_file_finalized(self, tx_seq_or_root: int | str) -> bool | None:
        """True, False (known, not finalized) or None (unknown)."""
        method = "zgs_checkFileFinalized"
        value = self.rpc.call(method, [tx_seq_or_root])
        if value is None:
            return None
        return Reader(self._where(method)).boolean(value, "result")

    def upload_segments_by_tx_seq(self, segments: list[SegmentWithProof], tx_seq: int) -> None:
        """Raises ``RemoteError`` (classified) when the node refuses."""
        self.rpc.call(
            "zgs_uploadSegmentsByTxSeq", [[segment.to_json() for segment in segments], tx_seq]
        )

    def download_segment_with_proof_by_tx_seq(
        self, tx_seq: int, index: int
    ) -> SegmentWithProof | None:
        method = "zgs_downloadSegmentWithProofByTxSeq"
        value = self.rpc.call(method, [tx_seq, index])
        if value is None:
            return None
        return parse_segment_with_proof(value, self._where(method))

    def download_segment_by_tx_seq(
        self, tx_seq: int, start_chunk: int, end_chunk: int
    ) -> bytes | None:
        """Chunks ``[start_chunk, end_chunk)`` of the file, without a proof."""
        method = "zgs_downloadSegmentByTxSeq"
        value = self.rpc.call(method, [tx_seq, start_chunk, end_chunk])
        if value is None:
            return None
        where = self._where(method)
        data = decode_segment_data(value, where, "result")
        expected = (end_chunk - start_chunk) * CHUNK_SIZE
        if len(data) != expected:
            raise Reader(where).fail("result", f"holds {len(data)} bytes, expected {expected}")
        return data

    def __repr__(self) -> str:
        return f"StorageNodeClient({one_line(self.endpoint, 80)})"
