"""JSON-RPC, storage node, indexer and EVM clients against hostile local peers."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from zerog_cli.errors import (
    IntegrityError,
    NetworkUnavailable,
    NotFound,
    ProtocolError,
    QuotaExceeded,
    RemoteError,
)
from zerog_cli.infra.http import HttpClient, RetryPolicy
from zerog_cli.zerog.evm import EvmClient, GasOptions
from zerog_cli.zerog.indexer import IndexerClient
from zerog_cli.zerog.jsonrpc import JsonRpcClient, classify
from zerog_cli.zerog.merkle import (
    segment_root,
    tree_from_bytes,
    verify_segment_proof,
)
from zerog_cli.zerog.storage_node import SegmentWithProof, StorageNodeClient

ROOT = "0x" + "ab" * 32
FAST = RetryPolicy(max_tries=2, base_delay=0.01, max_delay=0.01)

Answer = Callable[[Any, BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class Peer:
    """A scripted peer: ``answer(request_json, handler)`` -> (status, headers, body)."""

    def __init__(self) -> None:
        self.answer: Answer = lambda req, h: (200, {}, b"{}")
        self.requests: list[Any] = []

    def rpc(self, result: Any) -> None:
        self.answer = lambda req, h: (
            200,
            {"Content-Type": "application/json"},
            json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result}).encode(),
        )

    def raw(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.answer = lambda req, h: (status, headers or {}, body)

    def error(self, code: int, message: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        self.answer = lambda req, h: (
            200,
            {},
            json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": error}).encode(),
        )


@pytest.fixture
def peer() -> Iterator[tuple[str, Peer]]:
    state = Peer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = json.loads(body) if body else None
            state.requests.append(request)
            status, headers, payload = state.answer(request, self)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_POST = _serve
        do_GET = _serve

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()
    httpd.server_close()


def http() -> HttpClient:
    return HttpClient(retry=FAST)


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    return text


FILE_INFO = {
    "tx": {
        "streamIds": [],
        "data": [],
        "dataMerkleRoot": ROOT,
        "merkleNodes": [[11, ROOT]],
        "startEntryIndex": 1024,
        "size": 300000,
        "seq": 1,
    },
    "finalized": True,
    "isCached": False,
    "uploadedSegNum": 2,
    "pruned": False,
}


# -- JSON-RPC ---------------------------------------------------------------


def test_call_and_null_result(peer: tuple[str, Peer]) -> None:
    url, state = peer
    rpc = JsonRpcClient(http(), url)
    state.rpc(None)
    assert rpc.call("zgs_uploadSegment", [1]) is None
    assert state.requests[-1]["params"] == [1] and state.requests[-1]["jsonrpc"] == "2.0"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b'{"jsonrpc":"2.0","id":1,"res', 200, "truncated JSON"),
        (b"<html><body>502 Bad Gateway</body></html>", 404, "HTML page"),
        (b'{"jsonrpc":"2.0","id":1}', 200, "without a result"),
        (b"[1,2]", 200, "batch"),
        (b'"hello"', 200, "other than a JSON-RPC object"),
        (b'{"jsonrpc":"2.0","id":1,"result":NaN}', 200, "malformed"),
        (b'{"jsonrpc":"2.0","id":1,"result":[1e999]}', 200, "malformed"),
        (b'{"jsonrpc":"2.0","id":1,"result":-1E400}', 200, "malformed"),
        (b"", 200, "empty answer"),
        (b"[" * 100000, 200, "malformed"),
        (b'{"a":' * 50000 + b"1" + b"}" * 50000, 200, "malformed"),
        (b'{"jsonrpc":"2.0","id":1,"error":"boom"}', 200, "malformed error"),
        (b'{"jsonrpc":"1.0","id":1,"result":1}', 200, "version"),
    ],
)
def test_hostile_answers_are_protocol_errors(
    peer: tuple[str, Peer], body: bytes, status: int, fragment: str
) -> None:
    url, state = peer
    state.raw(body, status)
    with pytest.raises(ProtocolError) as info:
        JsonRpcClient(http(), url).call("zgs_getStatus")
    assert fragment in one_line(info.value)
    assert not isinstance(info.value, RemoteError)


def test_oversized_answer(peer: tuple[str, Peer]) -> None:
    url, state = peer
    state.raw(b'{"result": "' + b"x" * 5000 + b'"}')
    with pytest.raises(ProtocolError, match="more than"):
        JsonRpcClient(http(), url, max_response_bytes=1000).call("zgs_getStatus")


def test_error_object_is_classified(peer: tuple[str, Peer]) -> None:
    url, state = peer
    rpc = JsonRpcClient(http(), url)
    state.error(-32602, "Invalid params: root", "already uploaded and finalized")
    with pytest.raises(RemoteError) as info:
        rpc.call("zgs_uploadSegmentsByTxSeq", [[], 1])
    assert info.value.kind == "already-exists" and info.value.code == -32602
    assert "already uploaded and finalized" in one_line(info.value)
    state.error(-32000, "too many data writing: 16")
    with pytest.raises(RemoteError) as info:
        rpc.call("zgs_uploadSegmentsByTxSeq", [[], 1])
    assert info.value.kind == "retryable"


def test_transient_server_errors_are_retried_then_unavailable(peer: tuple[str, Peer]) -> None:
    url, state = peer
    rpc = JsonRpcClient(http(), url)
    answers = iter(
        [
            {"error": {"code": -32000, "message": "service temporarily unavailable"}},
            {"result": 7},
        ]
    )

    def scripted(req: Any, handler: object) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, json.dumps({"jsonrpc": "2.0", "id": req["id"], **next(answers)}).encode()

    state.answer = scripted
    assert rpc.call("zgs_getStatus") == 7
    state.error(-32603, "Internal error")
    before = len(state.requests)
    with pytest.raises(NetworkUnavailable, match=f"after {FAST.max_tries} attempts"):
        rpc.call("zgs_getStatus")
    assert len(state.requests) - before == FAST.max_tries
    state.error(-32603, "Internal error", "data root and tx seq not match")
    with pytest.raises(RemoteError) as info:
        rpc.call("zgs_uploadSegmentsByTxSeq", [[], 1])
    assert info.value.kind == "fatal"


def test_classify_table() -> None:
    assert classify("Invalid params: root", "already uploaded and finalized") == "already-exists"
    assert classify("segment has already been uploaded or is being uploaded") == "already-exists"
    assert classify("too many data writing: 16") == "retryable"
    assert classify("Invalid params: root", "already pruned") == "fatal"
    assert classify("segment file size not matched with tx file size") == "fatal"
    assert classify("Internal error", "data root and tx seq not match") == "fatal"
    assert classify("file not found") == "not-found"
    assert classify("Invalid params: proof", "validation failed") == "fatal"
    assert classify("x", {"message": "too many data writing"}) == "retryable"


def test_batch(peer: tuple[str, Peer]) -> None:
    url, state = peer

    def answer(req: Any, handler: Any) -> tuple[int, dict[str, str], bytes]:
        items = [
            {"jsonrpc": "2.0", "id": req[1]["id"], "error": {"code": 3, "message": "nope"}},
            {"jsonrpc": "2.0", "id": req[0]["id"], "result": "0x1"},
        ]
        return 200, {}, json.dumps(items).encode()

    state.answer = answer
    results = JsonRpcClient(http(), url).batch([("eth_chainId", []), ("eth_call", [{}])])
    assert results[0] == "0x1"
    assert isinstance(results[1], RemoteError)


def test_http_500_is_network_unavailable(peer: tuple[str, Peer]) -> None:
    url, state = peer
    state.raw(b"oops", 500)
    with pytest.raises(NetworkUnavailable):
        JsonRpcClient(http(), url).call("zgs_getStatus")
    assert len(state.requests) == 2


# -- storage node -------------------------------------------------------------


def test_status_and_shard_config(peer: tuple[str, Peer]) -> None:
    url, state = peer
    node = StorageNodeClient(http(), url)
    state.rpc(
        {
            "connectedPeers": 1,
            "logSyncHeight": 5,
            "logSyncBlock": ROOT,
            "nextTxSeq": 3,
            "networkIdentity": {
                "chainId": 31337,
                "flowAddress": "0x22E03a6A89B950F1c82ec5e74F8eCa321a105296",
                "p2pProtocolVersion": {"major": 0, "minor": 4, "build": 0},
            },
        }
    )
    status = node.get_status()
    assert status.network_identity.flow_address == "0x22e03a6a89b950f1c82ec5e74f8eca321a105296"
    state.rpc({"shardId": 1, "numShard": 4})
    config = node.get_shard_config()
    assert (config.shard_id, config.num_shard) == (1, 4)
    state.rpc({"shardId": 4, "numShard": 4})
    with pytest.raises(ProtocolError, match="invalid shard config"):
        node.get_shard_config()
    state.rpc({"shardId": 0, "numShard": 3})
    with pytest.raises(ProtocolError, match="invalid shard config"):
        node.get_shard_config()


def test_file_info_parses_and_null(peer: tuple[str, Peer]) -> None:
    url, state = peer
    node = StorageNodeClient(http(), url)
    state.rpc(FILE_INFO)
    info = node.get_file_info(ROOT, True)
    assert info is not None and info.tx.seq == 1 and info.tx.size == 300000 and info.finalized
    old = {k: v for k, v in FILE_INFO.items() if k != "pruned"}
    state.rpc(old)
    info = node.get_file_info_by_tx_seq(1)
    assert info is not None and info.pruned is False
    state.rpc(None)
    assert node.get_file_info(ROOT, False) is None


def _with(path: str, value: Any) -> dict[str, Any]:
    info = json.loads(json.dumps(FILE_INFO))
    target = info
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return info


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("tx.size", "300000", "tx.size is not an integer (string)"),
        ("tx.size", 1 << 80, "tx.size is out of range"),
        ("tx.seq", -1, "tx.seq is out of range"),
        ("tx.seq", 1.5, "tx.seq is not an integer"),
        ("tx.startEntryIndex", 10**400, "out of range"),
        ("finalized", "true", "finalized is not a boolean"),
        ("tx.dataMerkleRoot", "0x1234", "tx.root is not a 0x-prefixed 32-byte hex"),
        ("tx.merkleNodes", [[1]], "is not a [depth, root] pair"),
        ("tx", None, "tx is not a JSON object"),
        ("uploadedSegNum", True, "uploadedSegNum is not an integer (boolean)"),
    ],
)
def test_hostile_file_info(peer: tuple[str, Peer], path: str, value: Any, fragment: str) -> None:
    url, state = peer
    if isinstance(value, int) and value > 1 << 300:
        state.raw(
            json.dumps({"jsonrpc": "2.0", "id": 1, "result": _with(path, 0)})
            .replace('"startEntryIndex": 0', '"startEntryIndex": ' + "9" * 400)
            .encode()
        )
    else:
        state.rpc(_with(path, value))
    with pytest.raises(ProtocolError) as info:
        StorageNodeClient(http(), url).get_file_info(ROOT, True)
    message = one_line(info.value)
    assert fragment in message, message


def _segment_json(data: bytes, tree_data: bytes, index: int = 0) -> dict[str, Any]:
    tree = tree_from_bytes(tree_data)
    return SegmentWithProof(
        root=tree.root_hex, data=data, index=index, proof=tree.proof(index), file_size=tree.size
    ).to_json()


def test_segment_download_and_verification(peer: tuple[str, Peer]) -> None:
    url, state = peer
    content = bytes(range(256)) * 1100
    tree = tree_from_bytes(content)
    node = StorageNodeClient(http(), url)
    state.rpc(_segment_json(content[256 * 1024 :] + bytes(256 - len(content) % 256), content, 1))
    segment = node.download_segment_with_proof_by_tx_seq(1, 1)
    assert segment is not None
    seg_root = segment_root(segment.data, tree.segment_leaf_count(1))
    verify_segment_proof(tree.root, seg_root, 1, tree.num_padded_segments, segment.proof)
    with pytest.raises(IntegrityError):
        verify_segment_proof(tree.root, seg_root, 0, tree.num_padded_segments, segment.proof)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda s: s.update(data="not base64!!"), "not valid base64"),
        (lambda s: s.update(data=base64.b64encode(b"x" * 100).decode()), "whole 256-byte chunks"),
        (lambda s: s.update(data="QUFB" * 200_000), "longer than"),
        (lambda s: s["proof"].update(lemma=s["proof"]["lemma"][:1]), "lemma entries"),
        (lambda s: s["proof"].update(path=["yes"]), "booleans"),
        (lambda s: s.update(index=-1), "index is out of range"),
        (lambda s: s.update(fileSize="big"), "fileSize is not an integer"),
        (lambda s: s.pop("proof"), "proof is missing"),
    ],
)
def test_hostile_segments(peer: tuple[str, Peer], mutate: Any, fragment: str) -> None:
    url, state = peer
    content = bytes(range(256)) * 2048
    segment = _segment_json(content[: 256 * 1024], content, 0)
    mutate(segment)
    state.rpc(segment)
    with pytest.raises(ProtocolError) as info:
        StorageNodeClient(http(), url).download_segment_with_proof_by_tx_seq(1, 0)
    message = one_line(info.value)
    assert fragment in message, message


def test_download_without_proof_checks_length(peer: tuple[str, Peer]) -> None:
    url, state = peer
    node = StorageNodeClient(http(), url)
    state.rpc(base64.b64encode(bytes(512)).decode())
    assert node.download_segment_by_tx_seq(1, 0, 2) == bytes(512)
    with pytest.raises(ProtocolError, match="expected 768"):
        node.download_segment_by_tx_seq(1, 0, 3)


def test_check_file_finalized(peer: tuple[str, Peer]) -> None:
    url, state = peer
    node = StorageNodeClient(http(), url)
    for value in (True, False, None):
        state.rpc(value)
        assert node.check_file_finalized(1) is value
    state.rpc("yes")
    with pytest.raises(ProtocolError):
        node.check_file_finalized(ROOT)


# -- indexer ------------------------------------------------------------------


def test_indexer_nodes_and_locations(peer: tuple[str, Peer]) -> None:
    url, state = peer
    indexer = IndexerClient(http(), url)
    entry = {"url": "http://127.0.0.1:5678", "config": {"shardId": 0, "numShard": 1}}
    state.rpc({"trusted": [dict(entry, latency=3, since=5)], "discovered": None})
    nodes = indexer.get_sharded_nodes()
    assert nodes.trusted[0].url == entry["url"] and nodes.discovered == []
    state.rpc(None)
    assert indexer.get_file_locations(ROOT) == []
    state.error(-32000, "file not found")
    assert indexer.get_file_locations(ROOT) == []
    state.rpc([{"url": "file:///etc/passwd", "config": {"shardId": 0, "numShard": 1}}])
    with pytest.raises(ProtocolError, match="not an http"):
        indexer.get_file_locations(ROOT)
    state.rpc([{"url": entry["url"], "config": {"shardId": "0", "numShard": 1}}])
    with pytest.raises(ProtocolError, match="shardId is not an integer"):
        indexer.get_file_locations(ROOT)


def test_gateway_json_error_even_on_200(peer: tuple[str, Peer]) -> None:
    url, state = peer
    indexer = IndexerClient(http(), url)
    state.raw(json.dumps({"code": 101, "message": "File not found", "data": None}).encode())
    with pytest.raises(NotFound):
        indexer.gateway_download(ROOT, io.BytesIO())
    state.raw(json.dumps({"code": 2, "message": "boom", "data": None}).encode(), 600)
    with pytest.raises(RemoteError, match="boom"):
        indexer.gateway_download(ROOT, io.BytesIO())
    state.raw(b"raw bytes but no attachment header")
    with pytest.raises(ProtocolError):
        indexer.gateway_download(ROOT, io.BytesIO())
    state.raw(b"file-bytes", headers={"Content-Disposition": "attachment; filename=x"})
    sink = io.BytesIO()
    assert indexer.gateway_download(ROOT, sink) == 10 and sink.getvalue() == b"file-bytes"
    state.raw(json.dumps({"code": 0, "message": "", "data": FILE_INFO}).encode())
    assert indexer.gateway_file_info(ROOT).tx.seq == 1
    state.raw(json.dumps({"code": 103, "message": "File not finalized yet"}).encode())
    with pytest.raises(RemoteError, match="not finalized"):
        indexer.gateway_file_info(1)


# -- EVM ----------------------------------------------------------------------


def test_evm_quantities_and_hostile_values(peer: tuple[str, Peer]) -> None:
    url, state = peer
    evm = EvmClient(http(), url)
    state.rpc("0x7a69")
    assert evm.chain_id() == 31337
    state.rpc("0x" + "f" * 65)
    with pytest.raises(ProtocolError, match="hex quantity"):
        evm.gas_price()
    state.rpc(12)
    with pytest.raises(ProtocolError, match="hex quantity"):
        evm.block_number()


def test_evm_revert_is_decoded(peer: tuple[str, Peer]) -> None:
    from zerog_cli.zerog.flow_abi import FLOW_ERRORS, NOT_ENOUGH_FEE

    url, state = peer
    evm = EvmClient(http(), url, revert_errors=FLOW_ERRORS)
    data = "0x" + NOT_ENOUGH_FEE.encode(10, 18, 5).hex()
    state.error(3, "execution reverted", data)
    with pytest.raises(RemoteError, match="NotEnoughFee"):
        evm.call("0x" + "11" * 20, b"\x01")
    state.error(-32000, "insufficient funds for gas * price + value")
    with pytest.raises(QuotaExceeded):
        evm.estimate_gas({"to": "0x" + "11" * 20})


def test_send_raw_transaction_checks_hash_and_already_known(peer: tuple[str, Peer]) -> None:
    from zerog_cli.zerog.abi import keccak256

    url, state = peer
    evm = EvmClient(http(), url)
    raw = b"\x02signed"
    good = "0x" + keccak256(raw).hex()
    state.rpc(good)
    assert evm.send_raw_transaction(raw) == good
    state.rpc("0x" + "00" * 32)
    with pytest.raises(ProtocolError, match="does not match"):
        evm.send_raw_transaction(raw)
    state.error(-32000, "already known")
    assert evm.send_raw_transaction(raw) == good


def test_send_transaction_refetches_a_taken_nonce(peer: tuple[str, Peer]) -> None:
    from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY
    from zerog_cli.zerog.abi import keccak256

    url, state = peer
    sent: list[str] = []
    nonces = iter([5, 6])

    def answer(req: Any, handler: Any) -> tuple[int, dict[str, str], bytes]:
        method = req["method"]
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": req["id"]}
        if method == "eth_sendRawTransaction":
            sent.append(req["params"][0])
            if len(sent) == 1:
                body["error"] = {"code": -32000, "message": "nonce too low: tx 5 state 6"}
            else:
                body["result"] = "0x" + keccak256(bytes.fromhex(sent[-1][2:])).hex()
        elif method == "eth_getTransactionCount":
            body["result"] = hex(next(nonces))
        elif method == "eth_getBlockByNumber":
            body["result"] = {"baseFeePerGas": "0x10"}
        elif method == "eth_getTransactionByHash":
            body["result"] = None
        else:
            body["result"] = {"eth_chainId": "0x7a69"}.get(method, "0x5208")
        return 200, {}, json.dumps(body).encode()

    state.answer = answer
    evm = EvmClient(http(), url)
    tx_hash = evm.send_transaction(DEV_ACCOUNT_KEY, to="0x" + "11" * 20, data=b"")
    assert len(sent) == 2 and sent[0] != sent[1]
    assert tx_hash == "0x" + keccak256(bytes.fromhex(sent[1][2:])).hex()


def _decoded(raw_hex: str) -> Any:
    from zerog_cli.devnet.transactions import decode_raw_transaction

    return decode_raw_transaction(bytes.fromhex(raw_hex[2:]))


def _chain_fake(
    refusals: list[str], known: set[str] | None = None
) -> tuple[list[str], Callable[..., tuple[int, dict[str, str], bytes]]]:
    """A node that refuses the first sends with ``refusals`` and knows ``known`` hashes."""
    from zerog_cli.zerog.abi import keccak256

    sent: list[str] = []

    def answer(req: Any, handler: Any) -> tuple[int, dict[str, str], bytes]:
        method = req["method"]
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": req["id"]}
        if method == "eth_sendRawTransaction":
            sent.append(req["params"][0])
            if len(sent) <= len(refusals):
                body["error"] = {"code": -32000, "message": refusals[len(sent) - 1]}
            else:
                body["result"] = "0x" + keccak256(bytes.fromhex(sent[-1][2:])).hex()
        elif method == "eth_getTransactionByHash":
            body["result"] = (
                {"hash": req["params"][0]} if req["params"][0] in (known or ()) else None
            )
        elif method == "eth_getBlockByNumber":
            body["result"] = {"baseFeePerGas": hex(500_000_000)}
        else:
            answers = {"eth_chainId": "0x7a69", "eth_getTransactionCount": "0x7"}
            body["result"] = answers.get(method, hex(1_000_000_000))
        return 200, {}, json.dumps(body).encode()

    return sent, answer


def test_send_transaction_is_legacy_at_eth_gas_price_by_default(peer: tuple[str, Peer]) -> None:
    from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY

    url, state = peer
    sent, state.answer = _chain_fake([])
    EvmClient(http(), url).send_transaction(DEV_ACCOUNT_KEY, to="0x" + "11" * 20, data=b"")
    tx = _decoded(sent[0])
    assert (tx.type, tx.gas_price, tx.nonce) == (0, 1_000_000_000, 7)


def test_underpriced_is_signed_again_at_1_5x_with_the_same_nonce(peer: tuple[str, Peer]) -> None:
    from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY

    url, state = peer
    sent, state.answer = _chain_fake(
        [
            "transaction underpriced: gas tip cap 1000000000, minimum needed 1400000000",
            "mempool is full",
        ]
    )
    signed: list[str] = []
    evm = EvmClient(http(), url)
    tx_hash = evm.send_transaction(
        DEV_ACCOUNT_KEY, to="0x" + "11" * 20, data=b"", gas=GasOptions(), on_signed=signed.append
    )
    prices = [_decoded(raw).gas_price for raw in sent]
    assert prices == [1_000_000_000, 1_500_000_000, 2_250_000_000]
    assert {_decoded(raw).nonce for raw in sent} == {7}
    assert len(signed) == 3 and tx_hash == signed[-1]


def test_gas_raises_are_bounded(peer: tuple[str, Peer]) -> None:
    from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY

    url, state = peer
    sent, state.answer = _chain_fake(["transaction underpriced"] * 10)
    evm = EvmClient(http(), url)
    with pytest.raises(RemoteError, match="still refused after 2 gas price raise"):
        evm.send_transaction(
            DEV_ACCOUNT_KEY, to="0x" + "11" * 20, data=b"", gas=GasOptions(max_bumps=2)
        )
    assert len(sent) == 3
    sent.clear()
    with pytest.raises(RemoteError, match="refused at max_gas_price"):
        evm.send_transaction(
            DEV_ACCOUNT_KEY,
            to="0x" + "11" * 20,
            data=b"",
            gas=GasOptions(max_gas_price=1_200_000_000),
        )
    assert [_decoded(raw).gas_price for raw in sent] == [1_000_000_000, 1_200_000_000]


def test_a_mined_earlier_version_is_not_paid_again(peer: tuple[str, Peer]) -> None:
    """A timeout, then "nonce too low": the first version was mined; no new nonce."""
    from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY

    url, state = peer
    signed: list[str] = []
    known: set[str] = set()
    sent, state.answer = _chain_fake(["request timeout", "nonce too low: tx 7 state 8"], known)
    evm = EvmClient(http(), url)

    def journal(tx_hash: str) -> None:
        signed.append(tx_hash)
        if len(signed) == 1:
            known.add(tx_hash)

    tx_hash = evm.send_transaction(
        DEV_ACCOUNT_KEY, to="0x" + "11" * 20, data=b"", on_signed=journal
    )
    assert tx_hash == signed[0] and len(sent) == 2


def test_eip1559_option_and_a_given_gas_price(peer: tuple[str, Peer]) -> None:
    from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY

    url, state = peer
    sent, state.answer = _chain_fake([])
    evm = EvmClient(http(), url)
    options = GasOptions(tx_type="eip1559", gas_price=3_000_000_000, gas_limit=90_000)
    evm.send_transaction(DEV_ACCOUNT_KEY, to="0x" + "11" * 20, data=b"", gas=options)
    tx = _decoded(sent[0])
    assert tx.type == 2 and tx.gas == 90_000
    assert tx.max_fee_per_gas == tx.max_priority_fee_per_gas == 3_000_000_000


def test_transact_re_sends_an_unmined_tx_with_the_same_nonce(peer: tuple[str, Peer]) -> None:
    """The Go client's timeout: no receipt within resend_after, same nonce at 1.5x."""
    from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY

    url, state = peer
    sent, fake = _chain_fake([])
    receipts: dict[str, dict[str, Any]] = {}

    def answer(req: Any, handler: Any) -> tuple[int, dict[str, str], bytes]:
        if req["method"] == "eth_getTransactionReceipt":
            tx_hash = req["params"][0]
            if len(sent) == 2 and tx_hash not in receipts:
                receipts[tx_hash] = {
                    "transactionHash": tx_hash,
                    "status": "0x1",
                    "blockNumber": "0x5",
                    "gasUsed": "0x5208",
                    "logs": [],
                }
            body = {"jsonrpc": "2.0", "id": req["id"], "result": receipts.get(tx_hash)}
            return 200, {}, json.dumps(body).encode()
        return fake(req, handler)

    state.answer = answer
    evm = EvmClient(http(), url)
    receipt = evm.transact(
        DEV_ACCOUNT_KEY,
        to="0x" + "11" * 20,
        data=b"",
        gas=GasOptions(resend_after=0.2),
        timeout=30,
        poll=0.05,
    )
    assert len(sent) == 2
    assert [_decoded(raw).nonce for raw in sent] == [7, 7]
    assert [_decoded(raw).gas_price for raw in sent] == [1_000_000_000, 1_500_000_000]
    assert receipt.status == 1


def test_a_failed_re_send_keeps_waiting_for_the_pooled_version(peer: tuple[str, Peer]) -> None:
    """The higher version is refused (funds); the first, still pooled, is mined: no error."""
    from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY

    url, state = peer
    sent, fake = _chain_fake([])
    mined: dict[str, Any] = {}

    def answer(req: Any, handler: Any) -> tuple[int, dict[str, str], bytes]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": req["id"]}
        if req["method"] == "eth_sendRawTransaction" and sent:
            sent.append(req["params"][0])
            body["error"] = {"code": -32000, "message": "insufficient funds for gas * price"}
            return 200, {}, json.dumps(body).encode()
        if req["method"] == "eth_getTransactionReceipt":
            tx_hash = req["params"][0]
            if len(sent) > 1 and tx_hash == first_hash[0]:
                mined[tx_hash] = {
                    "transactionHash": tx_hash,
                    "status": "0x1",
                    "blockNumber": "0x5",
                    "gasUsed": "0x5208",
                    "logs": [],
                }
            body["result"] = mined.get(tx_hash)
            return 200, {}, json.dumps(body).encode()
        return fake(req, handler)

    first_hash: list[str] = []
    state.answer = answer
    evm = EvmClient(http(), url)
    receipt = evm.transact(
        DEV_ACCOUNT_KEY,
        to="0x" + "11" * 20,
        data=b"",
        gas=GasOptions(resend_after=0.2),
        on_signed=lambda tx_hash: first_hash.append(tx_hash),
        timeout=30,
        poll=0.05,
    )
    assert len(sent) == 2 and receipt.tx_hash == first_hash[0]
