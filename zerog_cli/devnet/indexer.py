"""The devnet indexer: ``indexer_*`` JSON-RPC and the REST gateway (specs/0g-storage.md 4).

The indexer knows every devnet node as ``trusted``. File locations are the
nodes that hold the file finalized. The REST gateway downloads a file from
the nodes itself, checking every segment's proof (a node whose data fails the
check is skipped for that segment, so corrupted downloads from one node are
healed from another), and only then streams it as an attachment.
"""

from __future__ import annotations

import logging
import mimetypes
import random
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from zerog_cli.devnet.jsonrpc import (
    SERVER_ERROR,
    JsonRpcService,
    RpcError,
    hash_param,
    invalid_params,
    param,
)
from zerog_cli.devnet.web import Request, Response
from zerog_cli.errors import IntegrityError, ZerogError
from zerog_cli.zerog.merkle import (
    SEGMENT_CHUNKS,
    SegmentProof,
    num_padded_segments,
    segment_leaf_count,
    segment_root,
    verify_segment_proof,
)

if TYPE_CHECKING:
    from zerog_cli.devnet.faults import FaultInjector
    from zerog_cli.devnet.storage import FlowTx, StorageNode

logger = logging.getLogger(__name__)

# REST gateway result codes (0g-storage.md 4.2).
CODE_SUCCESS = 0
CODE_INVALID_PARAMETER = 1
CODE_INTERNAL = 2
CODE_FILE_NOT_FOUND = 101
CODE_FILE_NOT_FINALIZED = 103
MAX_FILES_INFO = 100

SELECTION_ERROR = (
    "cannot select a subset from the returned nodes that meets the replication requirement"
)


def _gateway(code: int, message: str, data: Any = None, status: int = 200) -> Response:
    return Response.json({"code": code, "message": message, "data": data}, status=status)


class _ShardTrie:
    """One shard class in the replica trie of the node selection (0g-storage.md 6.2)."""

    def __init__(self, replica: int = 0) -> None:
        self.replica = replica
        self.children: list[_ShardTrie] | None = None

    def increment(self) -> None:
        self.replica += 1
        for child in self.children or ():
            child.increment()

    def add(self, shard_id: int, num_shard: int, level_shards: int, replica: int) -> bool:
        if self.replica >= replica:
            return False
        if level_shards == num_shard:
            self.increment()
            return True
        if self.children is None:
            self.children = [_ShardTrie(self.replica), _ShardTrie(self.replica)]
        child = self.children[shard_id % 2]
        picked = child.add(shard_id // 2, num_shard, level_shards * 2, replica)
        if picked:
            self.replica = min(c.replica for c in self.children)
        return picked


def select_nodes(
    configs: Sequence[tuple[int, int]], replica: int, method: str = "min"
) -> list[int] | None:
    """Indexes of a subset of ``(shard_id, num_shard)`` configs covering every shard
    ``replica`` times, or None when impossible."""
    order = list(range(len(configs)))
    if method == "min":
        order.sort(key=lambda i: (configs[i][1], configs[i][0]))
    elif method == "max":
        order.sort(key=lambda i: (-configs[i][1], configs[i][0]))
    elif method == "random":
        random.shuffle(order)
    else:
        raise ValueError(f"unknown selection method {method!r}")
    root = _ShardTrie()
    picked = []
    for i in order:
        shard_id, num_shard = configs[i]
        if num_shard < 1 or num_shard & (num_shard - 1) or not 0 <= shard_id < num_shard:
            continue
        if root.add(shard_id, num_shard, 1, replica):
            picked.append(i)
            if root.replica >= replica:
                return picked
    return None


class Indexer:
    """Indexer JSON-RPC plus REST gateway over the devnet's storage nodes."""

    def __init__(
        self, nodes: Sequence[StorageNode], node_urls: Sequence[str], faults: FaultInjector
    ) -> None:
        self.nodes = list(nodes)
        self.node_urls = list(node_urls)
        self.rpc = JsonRpcService(
            "indexer",
            {
                "indexer_getShardedNodes": self._get_sharded_nodes,
                "indexer_getNodeLocations": self._get_node_locations,
                "indexer_getFileLocations": self._get_file_locations,
                "indexer_getSelectedNodes": self._get_selected_nodes,
            },
            faults,
        )

    def sharded_node(self, i: int) -> dict[str, Any]:
        node = self.nodes[i]
        return {
            "url": self.node_urls[i],
            "config": node.shard_config,
            "latency": 0,
            "since": 0,
        }

    # -- JSON-RPC ----------------------------------------------------------------

    def _get_sharded_nodes(self, params: list[Any]) -> Any:
        return {"trusted": [self.sharded_node(i) for i in range(len(self.nodes))], "discovered": []}

    def _get_node_locations(self, params: list[Any]) -> Any:
        return {
            "127.0.0.1": {
                "city": "Loopback",
                "region": "Devnet",
                "country": "ZZ",
                "loc": "0.0000,0.0000",
                "timezone": "UTC",
            }
        }

    def _get_file_locations(self, params: list[Any]) -> Any:
        root = hash_param(param(params, 0, "root"), "root")
        holders = [
            self.sharded_node(i)
            for i, node in enumerate(self.nodes)
            if node.finalized_tx_for_root(root) is not None
        ]
        if not holders:
            raise RpcError(SERVER_ERROR, "file not found")
        return holders

    def _get_selected_nodes(self, params: list[Any]) -> Any:
        replica = param(params, 0, "expectedReplica")
        method = param(params, 1, "method", optional=True) or "min"
        dropped = param(params, 3, "dropped", optional=True) or []
        if isinstance(replica, bool) or not isinstance(replica, int) or replica < 1:
            raise invalid_params("expectedReplica must be a positive integer")
        if not isinstance(method, str) or method not in ("min", "max", "random"):
            raise invalid_params("method must be one of min, max, random")
        if not isinstance(dropped, list):
            raise invalid_params("dropped must be a list of node URLs")
        candidates = [i for i in range(len(self.nodes)) if self.node_urls[i] not in dropped]
        configs = [(self.nodes[i].shard_id, self.nodes[i].num_shard) for i in candidates]
        picked = select_nodes(configs, replica, method)
        if picked is None:
            raise RpcError(SERVER_ERROR, SELECTION_ERROR)
        return {"trusted": [self.sharded_node(candidates[i]) for i in picked], "discovered": []}

    # -- HTTP ----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path in ("", "/"):
            if request.method != "POST":
                return _gateway(CODE_INVALID_PARAMETER, "Invalid parameter", "POST JSON-RPC here")
            answer = self.rpc.handle(request.body, request.faults)
            if answer is None:
                return Response(status=204)
            return Response(body=answer, headers={"Content-Type": "application/json"})
        if request.faults.fail_rpc:
            return Response.json({"error": "service unavailable (devnet fault injection)"}, 503)
        self.rpc.faults.count_method("indexer", f"{request.method} {_route_name(request.path)}")
        try:
            if request.method == "GET" and request.path == "/file":
                return self._download(request)
            if request.method == "GET" and request.path.startswith("/file/info/"):
                return self._file_info(request.path[len("/file/info/") :])
            if request.method == "GET" and request.path == "/files/info":
                return self._files_info(request.query.get("cid", []))
            if request.method == "GET" and request.path == "/node/status":
                return self._node_status()
            if request.method == "POST" and request.path == "/file/segment":
                return self._upload_segment(request)
        except Exception:
            logger.exception("indexer gateway request %s failed", request.full_path)
            return _gateway(CODE_INTERNAL, "Internal server error", status=600)
        return _gateway(CODE_INVALID_PARAMETER, "Invalid parameter", f"no route {request.path}")

    # -- gateway helpers --------------------------------------------------------------

    def _find(self, cid: str) -> tuple[FlowTx | None, dict[str, Any] | None]:
        """The tx and FileInfo for a root (hex) or tx seq (decimal), from the first node
        that knows it (a finalized copy preferred)."""
        infos = []
        for node in self.nodes:
            if cid.isdigit():
                seq = int(cid)
                info, tx = node.file_info_by_seq(seq), node.tx_by_seq(seq)
            else:
                root = bytes.fromhex(cid.removeprefix("0x").removeprefix("0X"))
                info = node.file_info_by_root(root)
                tx = node.tx_by_seq(info["tx"]["seq"]) if info else None
            if info is not None:
                infos.append((tx, info))
        for tx, info in infos:
            if info["finalized"]:
                return tx, info
        return infos[0] if infos else (None, None)

    def _file_info(self, cid: str) -> Response:
        if not _valid_cid(cid):
            return _gateway(CODE_INVALID_PARAMETER, "Invalid parameter", "invalid cid")
        _tx, info = self._find(cid)
        if info is None:
            return _gateway(CODE_FILE_NOT_FOUND, "File not found")
        return _gateway(CODE_SUCCESS, "Success", info)

    def _files_info(self, cids: list[str]) -> Response:
        if not cids or len(cids) > MAX_FILES_INFO:
            return _gateway(
                CODE_INVALID_PARAMETER, "Invalid parameter", f"1 to {MAX_FILES_INFO} cid values"
            )
        results: list[Any] = []
        for cid in cids:
            if not _valid_cid(cid):
                results.append("invalid cid")
                continue
            _tx, info = self._find(cid)
            results.append(info if info is not None else "File not found")
        return _gateway(CODE_SUCCESS, "Success", results)

    def _node_status(self) -> Response:
        statuses = [node.status() for node in self.nodes]
        merged = dict(statuses[0])
        merged["logSyncHeight"] = min(s["logSyncHeight"] for s in statuses)
        merged["connectedPeers"] = max(s["connectedPeers"] for s in statuses)
        merged["nextTxSeq"] = min(s["nextTxSeq"] for s in statuses)
        return _gateway(CODE_SUCCESS, "Success", merged)

    def _download(self, request: Request) -> Response:
        root_text, seq_text = request.query_value("root"), request.query_value("txSeq")
        cid = root_text if root_text else seq_text
        if not cid or not _valid_cid(cid) or (root_text and cid.isdigit()):
            return _gateway(CODE_INVALID_PARAMETER, "Invalid parameter", "root or txSeq required")
        tx, info = self._find(cid)
        if tx is None or info is None:
            return _gateway(CODE_FILE_NOT_FOUND, "File not found")
        if not info["finalized"]:
            return _gateway(CODE_FILE_NOT_FINALIZED, "File not finalized yet")
        try:
            spool = self._fetch_verified(tx)
        except IntegrityError as error:
            return _gateway(CODE_INTERNAL, "Internal server error", str(error), status=600)
        name = request.query_value("name") or "0x" + tx.root.hex()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        safe_name = name.replace('"', "").replace("\r", "").replace("\n", "")
        return Response(
            body=_stream_and_close(spool),
            length=tx.size,
            headers={
                "Content-Type": content_type,
                "Content-Disposition": f'attachment; filename="{safe_name}"',
            },
        )

    def _fetch_verified(self, tx: FlowTx) -> BinaryIO:
        """Every data segment of ``tx`` from some node, proof-checked, in a temp file."""
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the response stream
        padded = num_padded_segments(tx.size)
        try:
            remaining = tx.size
            for index in range(tx.num_data_segments):
                data = self._verified_segment(tx, index, padded)
                piece = data[: min(remaining, len(data))]
                spool.write(piece)
                remaining -= len(piece)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def _verified_segment(self, tx: FlowTx, index: int, padded: int) -> bytes:
        problems = []
        for node in self.nodes:
            if node.tx_by_seq(tx.seq) is None:
                continue
            found = node.read_segment_with_proof(tx, index)
            if found is None:
                continue
            data = node.faults.corrupt(node.index, found["data"])
            try:
                proof = SegmentProof.from_json(found["proof"])
                seg_root = segment_root(data, segment_leaf_count(tx.size, index))
                verify_segment_proof(tx.root, seg_root, index, padded, proof)
            except ZerogError as error:
                problems.append(f"node {node.index}: {error}")
                continue
            return data
        detail = "; ".join(problems) or "no node holds it"
        raise IntegrityError(f"segment {index} of tx {tx.seq}: {detail}")

    def _upload_segment(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            return _gateway(CODE_INVALID_PARAMETER, "Invalid parameter", "body is not JSON")
        if not isinstance(body, dict):
            return _gateway(CODE_INVALID_PARAMETER, "Invalid parameter", "expected an object")
        seq = body.get("txSeq")
        root_text = body.get("root")
        targets: list[tuple[StorageNode, FlowTx]] = []
        for node in self.nodes:
            if isinstance(seq, int) and not isinstance(seq, bool):
                tx = node.tx_by_seq(seq)
            elif isinstance(root_text, str) and _valid_cid(root_text) and not root_text.isdigit():
                info = node.file_info_by_root(bytes.fromhex(root_text[2:]))
                tx = node.tx_by_seq(info["tx"]["seq"]) if info else None
            else:
                return _gateway(CODE_INVALID_PARAMETER, "Invalid parameter", "root or txSeq")
            if tx is not None and node.holds(tx, int(body.get("index") or 0)):
                targets.append((node, tx))
        if not targets:
            return _gateway(CODE_FILE_NOT_FOUND, "File not found")
        uploaded = 0
        for node, tx in targets:
            try:
                segment = node.parse_segment({**body, "fileSize": tx.size})
                node.put_segment(segment, tx)
                uploaded += 1
            except RpcError as error:
                if "already" in f"{error.message} {error.data}":
                    uploaded += 1
                    continue
                return _gateway(
                    CODE_INVALID_PARAMETER, "Invalid parameter", error.data or error.message
                )
        return _gateway(CODE_SUCCESS, "Success", "Succeeded to upload segment")


def _route_name(path: str) -> str:
    if path.startswith("/file/info/"):
        return "/file/info"
    return path


def _valid_cid(cid: str) -> bool:
    if cid.isdigit():
        return True
    text = cid.removeprefix("0x").removeprefix("0X")
    if len(text) != 64:
        return False
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _stream_and_close(spool: BinaryIO) -> Iterator[bytes]:
    try:
        while True:
            block = spool.read(SEGMENT_CHUNKS * 256)
            if not block:
                return
            yield block
    finally:
        spool.close()
