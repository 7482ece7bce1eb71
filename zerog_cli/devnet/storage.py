"""Devnet storage nodes: the ``zgs_*`` JSON-RPC of specs/0g-storage.md 3.

Each node indexes the Flow contract's Submit events (every node sees every
transaction), stores segments it is sent after checking them exactly as the
real node does (order and error strings of 0g-storage.md 3.3 and
0g-interop.md 5.2), and serves them back with their proofs.

Storage is content-addressed: segment ``i`` of a file with root ``R`` is one
file ``segments/<R>/<i>.seg`` (a JSON header line with the proof that was
checked on upload, then the segment bytes), written to a temporary name and
renamed into place. Consequences that match the real node:

- a new transaction whose root is already held is finalized at once
  (``copy_tx_and_finalize``), with no segment upload;
- segments sent before the transaction is known (files up to 10 MiB) are kept
  and count as soon as it arrives;
- finality is derived at start-up from the files present, so nothing else
  needs to be persisted and a crash cannot leave a wrong ``finalized`` flag.

A node with shard config (N, K) stores only the segments whose global index
``floor(startEntryIndex / 1024) + i`` is K modulo N.

A node named by the ``lag_nodes`` fault lags behind the chain: it sees each
transaction ``lag_ms`` after it indexed it (every lookup by root or tx seq,
and ``nextTxSeq``, leave the newer ones out), as a real node still syncing
the chain does.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerog_cli.devnet.jsonrpc import (
    INTERNAL_ERROR,
    SERVER_ERROR,
    JsonRpcService,
    RawJson,
    RpcError,
    hash_param,
    int_param,
    invalid_params,
    param,
)
from zerog_cli.devnet.web import Request, Response
from zerog_cli.errors import IntegrityError, ZerogError
from zerog_cli.infra.files import ensure_private_dir
from zerog_cli.zerog.flow_abi import SUBMIT_EVENT_TOPIC, decode_submit_log
from zerog_cli.zerog.merkle import (
    CHUNK_SIZE,
    SEGMENT_CHUNKS,
    SEGMENT_SIZE,
    SegmentProof,
    SubmissionNode,
    fold_submission_root,
    num_chunks,
    num_padded_segments,
    segment_leaf_count,
    segment_root,
    verify_segment_proof,
)

if TYPE_CHECKING:
    from zerog_cli.devnet.chains import DevnetChain
    from zerog_cli.devnet.faults import FaultInjector

logger = logging.getLogger(__name__)

MAX_CACHE_FILE_SIZE = 10 * 1024 * 1024
DUPLICATE_SEGMENT = "segment has already been uploaded or is being uploaded"
P2P_PROTOCOL_VERSION = {"major": 0, "minor": 4, "build": 0}


@dataclass
class FlowTx:
    """A transaction as the node indexes it from a Submit event."""

    seq: int
    root: bytes
    nodes: tuple[SubmissionNode, ...]
    start_entry_index: int
    size: int

    @property
    def num_chunks(self) -> int:
        return num_chunks(self.size)

    @property
    def num_data_segments(self) -> int:
        return -(-self.num_chunks // SEGMENT_CHUNKS)

    @property
    def start_segment(self) -> int:
        return self.start_entry_index // SEGMENT_CHUNKS

    def to_json(self) -> dict[str, Any]:
        return {
            "streamIds": [],
            "data": [],
            "dataMerkleRoot": "0x" + self.root.hex(),
            "merkleNodes": [[node.height + 1, "0x" + node.root.hex()] for node in self.nodes],
            "startEntryIndex": self.start_entry_index,
            "size": self.size,
            "seq": self.seq,
        }


@dataclass
class _TxState:
    tx: FlowTx
    missing: set[int] = field(default_factory=set)
    needed: int = 0
    indexed_at: float = field(default_factory=time.monotonic)

    @property
    def finalized(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class UploadSegment:
    """A parsed ``SegmentWithProof`` from a request."""

    root: bytes
    data: bytes
    index: int
    proof_json: Any
    file_size: int


class SegmentStore:
    """Segment files of one node, content-addressed by file root."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        ensure_private_dir(self.directory)
        self.present: dict[bytes, set[int]] = {}
        for root_dir in self.directory.iterdir():
            if not root_dir.is_dir():
                continue
            try:
                root = bytes.fromhex(root_dir.name)
            except ValueError:
                continue
            indexes = set()
            for item in root_dir.iterdir():
                if item.suffix == ".seg" and item.stem.isdigit():
                    indexes.add(int(item.stem))
                elif item.name.endswith(".part"):
                    item.unlink(missing_ok=True)
            self.present[root] = indexes

    def has(self, root: bytes, index: int) -> bool:
        return index in self.present.get(root, ())

    def _path(self, root: bytes, index: int) -> Path:
        return self.directory / root.hex() / f"{index}.seg"

    def write(self, root: bytes, index: int, data: bytes, proof_json: Any) -> None:
        """Write one segment atomically (temporary file, then rename)."""
        path = self._path(root, index)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{threading.get_ident()}.part")
        header = json.dumps({"proof": proof_json}, separators=(",", ":")).encode() + b"\n"
        with temporary.open("wb") as handle:
            handle.write(header)
            handle.write(data)
        os.replace(temporary, path)

    def mark(self, root: bytes, index: int) -> None:
        self.present.setdefault(root, set()).add(index)

    def read(self, root: bytes, index: int) -> tuple[bytes, Any] | None:
        """(segment bytes, proof JSON) or None."""
        try:
            raw = self._path(root, index).read_bytes()
        except FileNotFoundError:
            return None
        header, _, data = raw.partition(b"\n")
        return data, json.loads(header)["proof"]


class StorageNode:
    """One storage node: its shard, its segment store, its transaction index."""

    def __init__(
        self,
        index: int,
        *,
        shard_id: int,
        num_shard: int,
        data_dir: Path,
        flow_address: str,
        chain: DevnetChain,
        faults: FaultInjector,
    ) -> None:
        if num_shard < 1 or num_shard & (num_shard - 1) or not 0 <= shard_id < num_shard:
            raise ValueError(f"invalid shard config {shard_id}/{num_shard}")
        self.index = index
        self.shard_id = shard_id
        self.num_shard = num_shard
        self.flow_address = flow_address.lower()
        self.chain = chain
        self.faults = faults
        self.store = SegmentStore(data_dir / "segments")
        self._lock = threading.RLock()
        self._txs: list[_TxState] = []
        self._by_root: dict[bytes, list[int]] = {}
        self._writing: set[tuple[bytes, int]] = set()
        self.rpc = JsonRpcService(
            "node",
            {
                "zgs_getStatus": self._get_status,
                "zgs_getShardConfig": self._get_shard_config,
                "zgs_getFileInfo": self._get_file_info,
                "zgs_getFileInfoByTxSeq": self._get_file_info_by_tx_seq,
                "zgs_checkFileFinalized": self._check_file_finalized,
                "zgs_uploadSegment": self._upload_segment,
                "zgs_uploadSegments": self._upload_segments,
                "zgs_uploadSegmentByTxSeq": self._upload_segment_by_tx_seq,
                "zgs_uploadSegmentsByTxSeq": self._upload_segments_by_tx_seq,
                "zgs_downloadSegment": self._download_segment,
                "zgs_downloadSegmentByTxSeq": self._download_segment_by_tx_seq,
                "zgs_downloadSegmentWithProof": self._download_segment_with_proof,
                "zgs_downloadSegmentWithProofByTxSeq": self._download_with_proof_by_tx_seq,
            },
            faults,
            counter_name=f"node/{index}",
        )
        chain.subscribe(self._on_block, replay=True)

    # -- HTTP ------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path not in ("", "/"):
            return Response.json({"error": "storage nodes answer JSON-RPC POSTs"}, status=405)
        answer = self.rpc.handle(request.body, request.faults)
        if answer is None:
            return Response(status=204)
        return Response(body=answer, headers={"Content-Type": "application/json"})

    # -- indexing --------------------------------------------------------------

    def _on_block(self, block: dict[str, Any]) -> None:
        for receipt in block["receipts"]:
            for log in receipt["logs"]:
                if log["address"] != self.flow_address or not log["topics"]:
                    continue
                if log["topics"][0] != "0x" + SUBMIT_EVENT_TOPIC.hex():
                    continue
                try:
                    event = decode_submit_log(log)
                except ValueError:
                    continue
                nodes = event.submission.data.nodes
                self._add_tx(
                    FlowTx(
                        seq=event.tx_seq,
                        root=fold_submission_root(list(nodes)),
                        nodes=nodes,
                        start_entry_index=event.start_pos,
                        size=event.submission.data.length,
                    )
                )

    def _needed_segments(self, tx: FlowTx) -> set[int]:
        if self.num_shard == 1:
            return set(range(tx.num_data_segments))
        first = tx.start_segment
        return {
            local
            for local in range(tx.num_data_segments)
            if (first + local) % self.num_shard == self.shard_id
        }

    def _add_tx(self, tx: FlowTx) -> None:
        with self._lock:
            if tx.seq != len(self._txs):
                logger.warning("node %s: tx seq %s out of order, ignored", self.index, tx.seq)
                return
            needed = self._needed_segments(tx)
            present = self.store.present.get(tx.root, set())
            state = _TxState(tx=tx, missing=needed - present, needed=len(needed))
            self._txs.append(state)
            self._by_root.setdefault(tx.root, []).append(tx.seq)

    # -- lookups -----------------------------------------------------------------

    def _seen(self) -> int:
        """How many txs this node has seen: all of them unless it lags (``lag_nodes``)."""
        lag = self.faults.node_lag(self.index)
        count = len(self._txs)
        if lag <= 0:
            return count
        cutoff = time.monotonic() - lag
        while count and self._txs[count - 1].indexed_at > cutoff:
            count -= 1
        return count

    def tx_by_seq(self, seq: int) -> FlowTx | None:
        with self._lock:
            return self._txs[seq].tx if 0 <= seq < self._seen() else None

    def _select(self, root: bytes) -> _TxState | None:
        """zgs_getFileInfo's rule: the first finalized tx with ``root``, else the
        first one. (The rule's ``needAvailable`` flag only skips pruned txs, and
        the devnet never prunes.)"""
        seen = self._seen()
        seqs = [seq for seq in self._by_root.get(root, []) if seq < seen]
        for seq in seqs:
            if self._txs[seq].finalized:
                return self._txs[seq]
        return self._txs[seqs[0]] if seqs else None

    def is_finalized(self, seq: int) -> bool:
        with self._lock:
            return 0 <= seq < self._seen() and self._txs[seq].finalized

    def finalized_tx_for_root(self, root: bytes) -> FlowTx | None:
        with self._lock:
            state = self._select(root)
            return state.tx if state is not None and state.finalized else None

    def file_info(self, state: _TxState) -> dict[str, Any]:
        tx = state.tx
        uploaded = tx.num_data_segments if state.finalized else state.needed - len(state.missing)
        return {
            "tx": tx.to_json(),
            "finalized": state.finalized,
            "isCached": False,
            "uploadedSegNum": uploaded,
            "pruned": False,
        }

    def file_info_by_root(self, root: bytes) -> dict[str, Any] | None:
        with self._lock:
            state = self._select(root)
            return self.file_info(state) if state is not None else None

    def file_info_by_seq(self, seq: int) -> dict[str, Any] | None:
        with self._lock:
            if not 0 <= seq < self._seen():
                return None
            return self.file_info(self._txs[seq])

    def status(self) -> dict[str, Any]:
        with self._lock:
            next_seq = self._seen()
        height, block_hash = self.chain.head()
        return {
            "connectedPeers": 0,
            "logSyncHeight": height,
            "logSyncBlock": block_hash,
            "nextTxSeq": next_seq,
            "networkIdentity": {
                "chainId": self.chain.chain_id,
                "flowAddress": self.flow_address,
                "p2pProtocolVersion": dict(P2P_PROTOCOL_VERSION),
            },
        }

    @property
    def shard_config(self) -> dict[str, int]:
        return {"numShard": self.num_shard, "shardId": self.shard_id}

    # -- JSON-RPC: status and info ------------------------------------------------

    def _get_status(self, params: list[Any]) -> Any:
        return self.status()

    def _get_shard_config(self, params: list[Any]) -> Any:
        return self.shard_config

    def _get_file_info(self, params: list[Any]) -> Any:
        root = hash_param(param(params, 0, "data_root"), "data_root")
        need_available = param(params, 1, "need_available")
        if not isinstance(need_available, bool):
            raise invalid_params("invalid type: expected a boolean for need_available")
        return self.file_info_by_root(root)

    def _get_file_info_by_tx_seq(self, params: list[Any]) -> Any:
        return self.file_info_by_seq(int_param(params, 0, "tx_seq"))

    def _check_file_finalized(self, params: list[Any]) -> Any:
        value = param(params, 0, "tx_seq_or_root")
        with self._lock:
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                seq = value
            elif isinstance(value, str):
                seqs = self._by_root.get(hash_param(value, "tx_seq_or_root"), [])
                if not seqs:
                    return None
                seq = seqs[0]
            else:
                raise invalid_params("expected a tx seq (number) or a root (hex string)")
            if not 0 <= seq < self._seen():
                return None
            return self._txs[seq].finalized

    # -- JSON-RPC: upload ------------------------------------------------------

    def parse_segment(self, value: Any) -> UploadSegment:
        if not isinstance(value, dict):
            raise invalid_params("invalid type: expected a SegmentWithProof object")
        root = hash_param(value.get("root"), "root")
        data_text = value.get("data")
        if not isinstance(data_text, str):
            raise invalid_params("invalid type: expected base64 segment data")
        try:
            data = base64.b64decode(data_text, validate=True)
        except ValueError:
            raise invalid_params("invalid base64 segment data") from None
        index = value.get("index")
        file_size = value.get("fileSize")
        for name, number in (("index", index), ("fileSize", file_size)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise invalid_params(f"invalid type: expected a non-negative integer for {name}")
        proof = value.get("proof")
        if (
            not isinstance(proof, dict)
            or not isinstance(proof.get("lemma"), list)
            or not isinstance(proof.get("path"), list)
        ):
            raise invalid_params("invalid type: expected a proof {lemma, path}")
        assert isinstance(index, int) and isinstance(file_size, int)
        return UploadSegment(root, data, index, proof, file_size)

    def _segment_list(self, params: list[Any]) -> list[UploadSegment]:
        segments = param(params, 0, "segments")
        if not isinstance(segments, list):
            raise invalid_params("invalid type: expected a list of SegmentWithProof")
        return [self.parse_segment(item) for item in segments]

    def _upload_segment(self, params: list[Any]) -> Any:
        segment = self.parse_segment(param(params, 0, "segment"))
        self.put_segment(segment, self._tx_for_root(segment.root))
        return None

    def _upload_segments(self, params: list[Any]) -> Any:
        for segment in self._segment_list(params):
            self.put_segment(segment, self._tx_for_root(segment.root))
        return None

    def _upload_segment_by_tx_seq(self, params: list[Any]) -> Any:
        segment = self.parse_segment(param(params, 0, "segment"))
        self.put_segment(segment, self.tx_by_seq(int_param(params, 1, "tx_seq")))
        return None

    def _upload_segments_by_tx_seq(self, params: list[Any]) -> Any:
        segments = self._segment_list(params)
        tx = self.tx_by_seq(int_param(params, 1, "tx_seq"))
        for segment in segments:
            try:
                self.put_segment(segment, tx)
            except RpcError as error:
                if DUPLICATE_SEGMENT in error.message:
                    continue
                raise
        return None

    def _tx_for_root(self, root: bytes) -> FlowTx | None:
        with self._lock:
            state = self._select(root)
            return state.tx if state is not None else None

    def put_segment(self, segment: UploadSegment, tx: FlowTx | None) -> None:
        """Check and store one segment, in the real node's order of checks."""
        data = segment.data
        if not data:
            raise RpcError(SERVER_ERROR, "data is empty")
        if len(data) % CHUNK_SIZE:
            raise RpcError(SERVER_ERROR, "invalid data length")
        if tx is not None:
            if tx.root != segment.root:
                raise RpcError(INTERNAL_ERROR, "Internal error", "data root and tx seq not match")
            if tx.size != segment.file_size:
                raise invalid_params("segment file size not matched with tx file size", "file_size")
            if self.is_finalized(tx.seq):
                raise invalid_params("already uploaded and finalized", "root")
        elif segment.file_size > MAX_CACHE_FILE_SIZE:
            raise invalid_params(
                "caching of large file when tx is unavailable is not supported", "file_size"
            )
        self._validate(segment)
        key = (segment.root, segment.index)
        with self._lock:
            if self.store.has(*key) or key in self._writing:
                raise RpcError(SERVER_ERROR, DUPLICATE_SEGMENT)
            self._writing.add(key)
        try:
            self.store.write(segment.root, segment.index, data, segment.proof_json)
        finally:
            with self._lock:
                self._writing.discard(key)
        with self._lock:
            self.store.mark(*key)
            for seq in self._by_root.get(segment.root, []):
                self._txs[seq].missing.discard(segment.index)

    def _validate(self, segment: UploadSegment) -> None:
        """``SegmentWithProof::validate``: index, data length, proof, rear padding."""
        size = segment.file_size
        if size == 0:
            raise RpcError(SERVER_ERROR, "file is empty")
        chunks = num_chunks(size)
        data_segments = -(-chunks // SEGMENT_CHUNKS)
        if segment.index >= data_segments:
            raise invalid_params("index out of bound", "index")
        if segment.index == data_segments - 1:
            expected = (chunks - SEGMENT_CHUNKS * segment.index) * CHUNK_SIZE
        else:
            expected = SEGMENT_SIZE
        if len(segment.data) != expected:
            raise invalid_params("invalid data length", "data")
        proof_json = segment.proof_json
        path, lemma = proof_json["path"], proof_json["lemma"]
        if (not path and len(lemma) != 1) or (path and len(lemma) != len(path) + 2):
            raise invalid_params("invalid proof", "proof")
        try:
            proof = SegmentProof.from_json(proof_json)
        except ZerogError:
            raise invalid_params("invalid proof", "proof") from None
        padded_segments = num_padded_segments(size)
        leaves = segment_leaf_count(size, segment.index)
        seg_root = segment_root(segment.data, leaves)
        try:
            verify_segment_proof(segment.root, seg_root, segment.index, padded_segments, proof)
        except IntegrityError:
            raise invalid_params("validation failed", "proof") from None
        try:
            verify_segment_proof(
                segment.root,
                seg_root,
                segment.index,
                padded_segments,
                proof,
                check_rear_padding=True,
                num_data_segments=data_segments,
            )
        except IntegrityError:
            raise invalid_params("invalid proof node value in the padding range", "proof") from None

    # -- JSON-RPC: download ------------------------------------------------------

    def holds(self, tx: FlowTx, index: int) -> bool:
        """Whether this node's shard covers file segment ``index`` of ``tx``."""
        if self.num_shard == 1:
            return True
        return (tx.start_segment + index) % self.num_shard == self.shard_id

    def read_chunks(self, tx: FlowTx, start: int, end: int) -> bytes | None:
        """File chunks [start, end) as whole 256-byte chunks, or None if not held."""
        if end > tx.num_chunks:
            return None
        pieces = []
        for index in range(start // SEGMENT_CHUNKS, (end - 1) // SEGMENT_CHUNKS + 1):
            if not self.holds(tx, index):
                return None
            stored = self.store.read(tx.root, index)
            if stored is None:
                return None
            data = stored[0]
            first = max(start, index * SEGMENT_CHUNKS) - index * SEGMENT_CHUNKS
            last = min(end, (index + 1) * SEGMENT_CHUNKS) - index * SEGMENT_CHUNKS
            piece = data[first * CHUNK_SIZE : last * CHUNK_SIZE]
            pieces.append(piece.ljust((last - first) * CHUNK_SIZE, b"\0"))
        return b"".join(pieces)

    def read_segment_with_proof(self, tx: FlowTx, index: int) -> dict[str, Any] | None:
        """``SegmentWithProof`` of file segment ``index`` (faults not applied)."""
        if index >= tx.num_data_segments:
            raise invalid_params("index out of bound", "index")
        if not self.holds(tx, index):
            return None
        stored = self.store.read(tx.root, index)
        if stored is None:
            return None
        data, proof = stored
        wanted = min(SEGMENT_CHUNKS, tx.num_chunks - index * SEGMENT_CHUNKS) * CHUNK_SIZE
        return {
            "root": "0x" + tx.root.hex(),
            "data": data[:wanted].ljust(wanted, b"\0"),
            "index": index,
            "proof": proof,
            "fileSize": tx.size,
        }

    def _chunk_range(self, params: list[Any]) -> tuple[int, int]:
        start = int_param(params, 1, "start_index")
        end = int_param(params, 2, "end_index")
        if start >= end:
            raise invalid_params("invalid chunk index", "end_index")
        if end - start > SEGMENT_CHUNKS:
            raise invalid_params(f"exceeds maximum chunks {SEGMENT_CHUNKS}", "end_index")
        return start, end

    def _encode_download(self, data: bytes | None) -> RawJson | None:
        """``data`` as the JSON string of its base64 (faults applied: a stall, a flipped byte)."""
        stall = self.faults.node_stall(self.index)
        if stall:
            time.sleep(stall)
        if data is None:
            return None
        return RawJson(b'"' + base64.b64encode(self.faults.corrupt(self.index, data)) + b'"')

    def _download_segment(self, params: list[Any]) -> Any:
        root = hash_param(param(params, 0, "data_root"), "data_root")
        start, end = self._chunk_range(params)
        with self._lock:
            state = self._select(root)
        if state is None:
            return None
        return self._encode_download(self.read_chunks(state.tx, start, end))

    def _download_segment_by_tx_seq(self, params: list[Any]) -> Any:
        seq = int_param(params, 0, "tx_seq")
        start, end = self._chunk_range(params)
        tx = self.tx_by_seq(seq)
        if tx is None:
            return None
        return self._encode_download(self.read_chunks(tx, start, end))

    def _with_proof_json(self, tx: FlowTx | None, index: int) -> Any:
        if tx is None:
            return None
        segment = self.read_segment_with_proof(tx, index)
        if segment is None:
            return None
        data = self._encode_download(segment.pop("data"))
        assert data is not None
        # The other fields as JSON, the data's base64 spliced in after them.
        rest = json.dumps(segment, separators=(",", ":")).encode()
        return RawJson(rest[:-1] + b',"data":' + data.text + b"}")

    def _download_segment_with_proof(self, params: list[Any]) -> Any:
        root = hash_param(param(params, 0, "data_root"), "data_root")
        index = int_param(params, 1, "index")
        with self._lock:
            state = self._select(root)
        return self._with_proof_json(state.tx if state else None, index)

    def _download_with_proof_by_tx_seq(self, params: list[Any]) -> Any:
        seq = int_param(params, 0, "tx_seq")
        index = int_param(params, 1, "index")
        return self._with_proof_json(self.tx_by_seq(seq), index)
