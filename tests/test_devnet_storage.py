"""Devnet storage nodes and indexer over JSON-RPC, driven by a minimal in-test client.

Segments and proofs are built with zerog_cli.zerog.merkle (the shared code),
sent as the TS SDK sends them, and checked against the node's exact errors.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.devnet_harness import (
    NO_PROXY,
    DevnetProcess,
    RpcFailure,
    download_file,
    pattern,
    rpc,
    segment_payload,
    start_devnet,
    submission_for,
    submit_file,
    upload_file,
)
from zerog_cli.devnet.constants import DEFAULT_PRICE_PER_SECTOR, FLOW_ADDRESS
from zerog_cli.zerog import flow_abi, merkle
from zerog_cli.zerog.abi import keccak256

pytestmark = pytest.mark.devnet(indexer="builtin")

THREE_SEGMENTS = 2 * merkle.SEGMENT_SIZE + 12_345


@pytest.fixture
def clean_faults(net: DevnetProcess) -> Iterator[DevnetProcess]:
    net.clear_faults()
    yield net
    net.clear_faults()


def error_of(url: str, method: str, params: list[Any]) -> RpcFailure:
    with pytest.raises(RpcFailure) as info:
        rpc(url, method, params)
    return info.value


def test_status_shard_config_and_indexer_nodes(net: DevnetProcess) -> None:
    status = rpc(net.node_urls[0], "zgs_getStatus")
    assert status["networkIdentity"]["flowAddress"] == FLOW_ADDRESS.lower()
    assert status["networkIdentity"]["chainId"] == 31337
    assert rpc(net.node_urls[1], "zgs_getShardConfig") == {"numShard": 1, "shardId": 0}
    nodes = rpc(net.indexer_url, "indexer_getShardedNodes")
    assert [node["url"] for node in nodes["trusted"]] == net.node_urls
    assert nodes["discovered"] == []
    selected = rpc(net.indexer_url, "indexer_getSelectedNodes", [2, "min", True, []])
    assert len(selected["trusted"]) == 2
    with pytest.raises(RpcFailure, match="replication requirement"):
        rpc(net.indexer_url, "indexer_getSelectedNodes", [3, "min", True, []])
    assert "127.0.0.1" in rpc(net.indexer_url, "indexer_getNodeLocations")


def test_upload_finalize_and_download_three_segments(net: DevnetProcess) -> None:
    data = pattern(THREE_SEGMENTS, seed=10)
    tree, event = submit_file(net.rpc_url, data)
    assert tree.num_data_segments == 3
    node = net.node_urls[0]
    info = rpc(node, "zgs_getFileInfo", [tree.root_hex, True])
    assert info["tx"]["seq"] == event.tx_seq
    assert info["tx"]["startEntryIndex"] == event.start_pos
    assert info["tx"]["size"] == len(data)
    assert info["tx"]["merkleNodes"] == [
        [n.height + 1, "0x" + n.root.hex()] for n in tree.submission_nodes
    ]
    assert info["finalized"] is False and info["uploadedSegNum"] == 0
    assert rpc(node, "zgs_checkFileFinalized", [event.tx_seq]) is False
    with pytest.raises(RpcFailure, match="file not found"):
        rpc(net.indexer_url, "indexer_getFileLocations", [tree.root_hex])
    upload_file(node, tree, data, event.tx_seq, indexes=[2, 0])
    assert rpc(node, "zgs_getFileInfo", [tree.root_hex, True])["uploadedSegNum"] == 2
    upload_file(node, tree, data, event.tx_seq, indexes=[1])
    info = rpc(node, "zgs_getFileInfoByTxSeq", [event.tx_seq])
    assert info["finalized"] is True and info["uploadedSegNum"] == 3
    assert rpc(node, "zgs_checkFileFinalized", [tree.root_hex]) is True
    assert rpc(node, "zgs_checkFileFinalized", [10**6]) is None
    assert download_file(node, event.tx_seq, len(data)) == data
    # the other node never got the data
    assert rpc(net.node_urls[1], "zgs_getFileInfo", [tree.root_hex, True])["finalized"] is False
    locations = rpc(net.indexer_url, "indexer_getFileLocations", [tree.root_hex])
    assert [location["url"] for location in locations] == [node]
    # the last segment comes back as whole zero-padded chunks
    last = base64.b64decode(rpc(node, "zgs_downloadSegment", [tree.root_hex, 2048, 2097]))
    assert len(last) == 49 * 256
    assert last[: len(data) - 2 * merkle.SEGMENT_SIZE] == data[2 * merkle.SEGMENT_SIZE :]
    assert set(last[len(data) - 2 * merkle.SEGMENT_SIZE :]) == {0}
    for index in range(3):
        segment = rpc(node, "zgs_downloadSegmentWithProofByTxSeq", [event.tx_seq, index])
        assert segment == segment_payload(tree, data, index)
        seg_data = base64.b64decode(segment["data"])
        seg_root = merkle.segment_root(seg_data, tree.segment_leaf_count(index))
        proof = merkle.SegmentProof.from_json(segment["proof"])
        merkle.verify_segment_proof(tree.root, seg_root, index, 3, proof)
    assert rpc(node, "zgs_downloadSegmentWithProof", [tree.root_hex, 1])["index"] == 1
    error = error_of(node, "zgs_downloadSegmentWithProofByTxSeq", [event.tx_seq, 3])
    assert (error.code, error.message, error.data) == (
        -32602,
        "Invalid params: index",
        "index out of bound",
    )
    # the finalized file refuses further segments with the string the SDK treats as success
    error = error_of(
        node, "zgs_uploadSegmentsByTxSeq", [[segment_payload(tree, data, 0)], event.tx_seq]
    )
    assert (error.code, error.message, error.data) == (
        -32602,
        "Invalid params: root",
        "already uploaded and finalized",
    )


def test_segment_checks_and_exact_errors(net: DevnetProcess) -> None:
    data = pattern(THREE_SEGMENTS, seed=11)
    tree, event = submit_file(net.rpc_url, data)
    node, seq = net.node_urls[0], event.tx_seq

    def upload_error(segment: dict[str, Any], tx_seq: int = seq) -> tuple[Any, Any, Any]:
        error = error_of(node, "zgs_uploadSegmentsByTxSeq", [[segment], tx_seq])
        return error.code, error.message, error.data

    good = segment_payload(tree, data, 1)
    flipped = bytearray(base64.b64decode(good["data"]))
    flipped[100] ^= 1
    bad_data = {**good, "data": base64.b64encode(bytes(flipped)).decode()}
    assert upload_error(bad_data) == (-32602, "Invalid params: proof", "validation failed")
    wrong_index = {**good, "index": 0}
    assert upload_error(wrong_index) == (-32602, "Invalid params: proof", "validation failed")
    short_proof = {**good, "proof": {**good["proof"], "lemma": good["proof"]["lemma"][:-1]}}
    assert upload_error(short_proof) == (-32602, "Invalid params: proof", "invalid proof")
    assert upload_error({**good, "index": 3}) == (
        -32602,
        "Invalid params: index",
        "index out of bound",
    )
    truncated = {**good, "data": base64.b64encode(flipped[:512]).decode()}
    assert upload_error(truncated) == (-32602, "Invalid params: data", "invalid data length")
    assert upload_error({**good, "fileSize": len(data) + 1}) == (
        -32602,
        "Invalid params: file_size",
        "segment file size not matched with tx file size",
    )
    _other_tree, other_event = submit_file(net.rpc_url, pattern(1000, seed=12))
    assert upload_error(good, other_event.tx_seq) == (
        -32603,
        "Internal error",
        "data root and tx seq not match",
    )
    assert upload_error({**good, "data": ""})[1] == "data is empty"
    assert upload_error({**good, "data": base64.b64encode(b"x" * 300).decode()})[1] == (
        "invalid data length"
    )
    # malformed shapes are invalid params, never a crash
    for broken in ({**good, "data": "%%%"}, {**good, "root": "0x12"}, {**good, "index": -1}, 7):
        error = error_of(node, "zgs_uploadSegmentsByTxSeq", [[broken], seq])
        assert error.code == -32602
    # a good segment is accepted once; the batch form skips a repeat, the single form refuses it
    assert rpc(node, "zgs_uploadSegmentsByTxSeq", [[good], seq]) is None
    assert rpc(node, "zgs_uploadSegmentsByTxSeq", [[good], seq]) is None
    error = error_of(node, "zgs_uploadSegmentByTxSeq", [good, seq])
    assert "segment has already been uploaded or is being uploaded" in str(error.message)
    assert rpc(node, "zgs_getFileInfo", [tree.root_hex, True])["uploadedSegNum"] == 1
    # download argument checks
    error = error_of(node, "zgs_downloadSegmentByTxSeq", [seq, 5, 5])
    assert (error.message, error.data) == ("Invalid params: end_index", "invalid chunk index")
    error = error_of(node, "zgs_downloadSegmentByTxSeq", [seq, 0, 1025])
    assert error.data == "exceeds maximum chunks 1024"
    assert rpc(node, "zgs_downloadSegmentByTxSeq", [seq, 0, 1024]) is None  # not uploaded yet
    assert rpc(node, "zgs_downloadSegmentByTxSeq", [10**6, 0, 1]) is None


def test_rear_padding_siblings_must_be_zero_subtrees(net: DevnetProcess) -> None:
    """A submission whose root commits to non-zero flow padding: the node refuses the
    segment next to the padding even though its proof verifies against that root."""
    size = 16 * merkle.SEGMENT_SIZE + 1  # 17 data segments, 18 in the tree (heights 14, 11)
    data = pattern(size, seed=13)
    honest = merkle.tree_from_bytes(data)
    assert honest.num_padded_segments == 18
    roots = list(honest.segment_roots)
    roots[17] = keccak256(b"not padding")
    forged_root = merkle.tree_root(roots)
    nodes = (
        honest.submission_nodes[0],
        merkle.SubmissionNode(merkle.tree_root(roots[16:18]), 11),
    )
    assert merkle.fold_submission_root(nodes) == forged_root
    submission = flow_abi.Submission(
        flow_abi.SubmissionData(size, b"", nodes), submission_for(honest).submitter
    )
    from tests.devnet_harness import send_transaction

    receipt = send_transaction(
        net.rpc_url,
        to=FLOW_ADDRESS,
        data=flow_abi.encode_submit_calldata(submission),
        value=honest.fee_sectors * DEFAULT_PRICE_PER_SECTOR,
    )
    (event,) = flow_abi.find_submit_events(receipt["logs"], FLOW_ADDRESS)
    piece = data[16 * merkle.SEGMENT_SIZE :].ljust(256, b"\0")
    lemma = [roots[16], roots[17], merkle.tree_root(roots[:16]), forged_root]
    segment = {
        "root": "0x" + forged_root.hex(),
        "data": base64.b64encode(piece).decode(),
        "index": 16,
        "proof": {"lemma": ["0x" + h.hex() for h in lemma], "path": [True, False]},
        "fileSize": size,
    }
    error = error_of(net.node_urls[0], "zgs_uploadSegmentsByTxSeq", [[segment], event.tx_seq])
    assert (error.code, error.message, error.data) == (
        -32602,
        "Invalid params: proof",
        "invalid proof node value in the padding range",
    )


def test_same_root_again_is_finalized_without_upload(net: DevnetProcess) -> None:
    data = pattern(5000, seed=14)
    tree, first = submit_file(net.rpc_url, data)
    upload_file(net.node_urls[0], tree, data, first.tx_seq)
    _tree, second = submit_file(net.rpc_url, data)
    node = net.node_urls[0]
    assert rpc(node, "zgs_getFileInfoByTxSeq", [second.tx_seq])["finalized"] is True
    assert rpc(node, "zgs_getFileInfo", [tree.root_hex, True])["tx"]["seq"] == first.tx_seq
    assert download_file(node, second.tx_seq, len(data)) == data


def test_segments_sent_before_the_transaction_are_kept(net: DevnetProcess) -> None:
    data = pattern(70_000, seed=15)
    tree = merkle.tree_from_bytes(data)
    node = net.node_urls[1]
    assert rpc(node, "zgs_uploadSegment", [segment_payload(tree, data, 0)]) is None
    _tree, event = submit_file(net.rpc_url, data)
    assert rpc(node, "zgs_getFileInfoByTxSeq", [event.tx_seq])["finalized"] is True
    big = {**segment_payload(tree, data, 0), "fileSize": 11 * 1024 * 1024}
    error = error_of(node, "zgs_uploadSegment", [{**big, "root": "0x" + "ab" * 32}])
    assert error.data == "caching of large file when tx is unavailable is not supported"


def test_rest_gateway(net: DevnetProcess) -> None:
    data = pattern(THREE_SEGMENTS, seed=16)
    tree, event = submit_file(net.rpc_url, data)
    session = requests.Session()
    session.proxies.update(NO_PROXY)
    answer = session.get(f"{net.indexer_url}/file", params={"root": tree.root_hex}, timeout=30)
    assert answer.json() == {"code": 103, "message": "File not finalized yet", "data": None}
    for node in net.node_urls:
        upload_file(node, tree, data, event.tx_seq)
    answer = session.get(
        f"{net.indexer_url}/file", params={"root": tree.root_hex, "name": "a.bin"}, timeout=30
    )
    assert answer.status_code == 200 and answer.content == data
    assert answer.headers["Content-Disposition"] == 'attachment; filename="a.bin"'
    by_seq = session.get(f"{net.indexer_url}/file", params={"txSeq": event.tx_seq}, timeout=30)
    assert by_seq.content == data
    info = session.get(f"{net.indexer_url}/file/info/{tree.root_hex}", timeout=10).json()
    assert info["code"] == 0 and info["data"]["tx"]["seq"] == event.tx_seq
    assert info["data"]["finalized"] is True
    info = session.get(f"{net.indexer_url}/file/info/{event.tx_seq}", timeout=10).json()
    assert info["data"]["tx"]["dataMerkleRoot"] == tree.root_hex
    missing = session.get(f"{net.indexer_url}/file/info/0x{'00' * 32}", timeout=10).json()
    assert missing == {"code": 101, "message": "File not found", "data": None}
    many = session.get(
        f"{net.indexer_url}/files/info",
        params=[("cid", tree.root_hex), ("cid", "0x" + "00" * 32)],
        timeout=10,
    ).json()
    assert many["data"][0]["tx"]["seq"] == event.tx_seq and many["data"][1] == "File not found"
    status = session.get(f"{net.indexer_url}/node/status", timeout=10).json()
    assert status["data"]["networkIdentity"]["flowAddress"] == FLOW_ADDRESS.lower()
    bad = session.get(f"{net.indexer_url}/file", params={"root": "nope"}, timeout=10).json()
    assert bad["code"] == 1
    locations = rpc(net.indexer_url, "indexer_getFileLocations", [tree.root_hex])
    assert len(locations) == 2


def test_gateway_segment_upload(net: DevnetProcess) -> None:
    data = pattern(3000, seed=17)
    tree, event = submit_file(net.rpc_url, data)
    body = {**segment_payload(tree, data, 0), "txSeq": event.tx_seq}
    del body["fileSize"]
    answer = requests.post(
        f"{net.indexer_url}/file/segment", json=body, timeout=10, proxies=NO_PROXY
    ).json()
    assert answer == {"code": 0, "message": "Success", "data": "Succeeded to upload segment"}
    assert rpc(net.node_urls[0], "zgs_checkFileFinalized", [event.tx_seq]) is True


def test_faults_at_run_time(clean_faults: DevnetProcess) -> None:
    net = clean_faults
    node = net.node_urls[0]
    net.set_faults(fail_rate=1, fail_mode="http", targets=["node"])
    answer = requests.post(
        node, json={"jsonrpc": "2.0", "id": 1, "method": "zgs_getStatus"}, proxies=NO_PROXY
    )
    assert answer.status_code == 503
    assert rpc(net.rpc_url, "eth_chainId") == "0x7a69"  # not a target
    assert net.health()["status"] == "ok"  # admin is never faulted
    net.set_faults(fail_mode="rpc")
    error = error_of(node, "zgs_getStatus", [])
    assert error.code == -32000 and "injected" in str(error.message)
    net.set_faults(fail_rate=0, drop_rate=1)
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.post(
            node,
            json={"jsonrpc": "2.0", "id": 1, "method": "zgs_getStatus"},
            proxies=NO_PROXY,
            timeout=10,
        )
    net.set_faults(drop_rate=0, latency_ms=300)
    started = time.monotonic()
    rpc(node, "zgs_getStatus")
    assert time.monotonic() - started >= 0.3
    net.set_faults(latency_ms=0, fail_nodes=[1])
    answer = requests.post(
        net.node_urls[1], json={"jsonrpc": "2.0", "id": 1, "method": "zgs_getStatus"}
    )
    assert answer.status_code == 503
    rpc(node, "zgs_getStatus")
    bad = requests.post(f"{net.base_url}/admin/faults", json={"fail_rate": 2}, proxies=NO_PROXY)
    assert bad.status_code == 400
    bad = requests.post(f"{net.base_url}/admin/faults", json={"nope": 1}, proxies=NO_PROXY)
    assert bad.status_code == 400


def test_corrupt_one_node_and_heal_from_the_other(clean_faults: DevnetProcess) -> None:
    net = clean_faults
    data = pattern(THREE_SEGMENTS, seed=18)
    tree, event = submit_file(net.rpc_url, data)
    for node in net.node_urls:
        upload_file(node, tree, data, event.tx_seq)
    net.set_faults(corrupt_nodes=[0])
    segment = rpc(net.node_urls[0], "zgs_downloadSegmentWithProofByTxSeq", [event.tx_seq, 1])
    seg_data = base64.b64decode(segment["data"])
    assert seg_data != base64.b64decode(segment_payload(tree, data, 1)["data"])
    assert segment["proof"] == tree.proof(1).to_json()  # the proof is intact
    with pytest.raises(merkle.IntegrityError):
        merkle.verify_segment_proof(
            tree.root,
            merkle.segment_root(seg_data, tree.segment_leaf_count(1)),
            1,
            3,
            merkle.SegmentProof.from_json(segment["proof"]),
        )
    assert download_file(net.node_urls[0], event.tx_seq, len(data)) != data
    assert download_file(net.node_urls[1], event.tx_seq, len(data)) == data
    healed = requests.get(
        f"{net.indexer_url}/file", params={"root": tree.root_hex}, proxies=NO_PROXY, timeout=30
    )
    assert healed.content == data
    net.set_faults(corrupt_nodes=[], corrupt_rate=1, targets=["indexer"])
    assert download_file(net.node_urls[0], event.tx_seq, len(data)) == data  # node not a target


def test_request_counters(clean_faults: DevnetProcess) -> None:
    net = clean_faults
    net.reset_stats()
    assert net.stats()["total"] == 0
    rpc(net.node_urls[1], "zgs_getStatus")
    rpc(net.node_urls[1], "zgs_getStatus")
    rpc(net.indexer_url, "indexer_getShardedNodes")
    stats = net.stats()
    assert stats["methods"] == {"node/1:zgs_getStatus": 2, "indexer:indexer_getShardedNodes": 1}
    assert stats["requests"] == {"node/1": 2, "indexer": 1}
    assert stats["transactions"] >= 1


def test_sharded_nodes_hold_their_own_segments(tmp_path: Any) -> None:
    with start_devnet(tmp_path / "sharded", shards="0/2,1/2") as net:
        configs = [rpc(url, "zgs_getShardConfig") for url in net.node_urls]
        assert configs == [{"numShard": 2, "shardId": 0}, {"numShard": 2, "shardId": 1}]
        data = pattern(THREE_SEGMENTS, seed=19)
        tree, event = submit_file(net.rpc_url, data)
        first = event.start_pos // 1024
        owners = {index: (first + index) % 2 for index in range(3)}
        for index, owner in owners.items():
            upload_file(net.node_urls[owner], tree, data, event.tx_seq, indexes=[index])
        for url in net.node_urls:
            assert rpc(url, "zgs_checkFileFinalized", [event.tx_seq]) is True
        for index, owner in owners.items():
            start, end = index * 1024, min(index * 1024 + 1024, -(-len(data) // 256))
            assert rpc(
                net.node_urls[owner], "zgs_downloadSegmentByTxSeq", [event.tx_seq, start, end]
            )
            assert (
                rpc(
                    net.node_urls[1 - owner],
                    "zgs_downloadSegmentByTxSeq",
                    [event.tx_seq, start, end],
                )
                is None
            )
        assert len(rpc(net.indexer_url, "indexer_getFileLocations", [tree.root_hex])) == 2
        gateway = requests.get(
            f"{net.indexer_url}/file", params={"root": tree.root_hex}, proxies=NO_PROXY, timeout=30
        )
        assert gateway.content == data


def test_storage_survives_a_restart(devnet: DevnetProcess) -> None:
    data = pattern(THREE_SEGMENTS, seed=20)
    tree, event = submit_file(devnet.rpc_url, data)
    upload_file(devnet.node_urls[0], tree, data, event.tx_seq)
    partial_data = pattern(THREE_SEGMENTS, seed=21)
    partial, partial_event = submit_file(devnet.rpc_url, partial_data)
    upload_file(devnet.node_urls[0], partial, partial_data, partial_event.tx_seq, indexes=[0])
    devnet.process.terminate()
    devnet.process.wait(10)
    with start_devnet(devnet.data_dir) as again:
        node = again.node_urls[0]
        assert rpc(node, "zgs_getFileInfo", [tree.root_hex, True])["finalized"] is True
        assert download_file(node, event.tx_seq, len(data)) == data
        info = rpc(node, "zgs_getFileInfo", [partial.root_hex, True])
        assert info["finalized"] is False and info["uploadedSegNum"] == 1
        upload_file(node, partial, partial_data, partial_event.tx_seq, indexes=[1, 2])
        assert rpc(node, "zgs_checkFileFinalized", [partial_event.tx_seq]) is True
        assert rpc(node, "zgs_getStatus")["nextTxSeq"] == 2


@pytest.mark.slow
def test_64_mib_upload_through_json_rpc(devnet: DevnetProcess) -> None:
    data = pattern(64 * 1024 * 1024, seed=22)
    tree, event = submit_file(devnet.rpc_url, data)
    session = requests.Session()
    session.proxies.update(NO_PROXY)
    started = time.monotonic()
    for index in range(tree.num_data_segments):
        body = {
            "jsonrpc": "2.0",
            "id": index,
            "method": "zgs_uploadSegmentsByTxSeq",
            "params": [[segment_payload(tree, data, index)], event.tx_seq],
        }
        assert session.post(devnet.node_urls[0], json=body, timeout=60).json()["result"] is None
    elapsed = time.monotonic() - started
    assert rpc(devnet.node_urls[0], "zgs_checkFileFinalized", [event.tx_seq]) is True
    print(f"64 MiB: {tree.num_data_segments} segments uploaded in {elapsed:.1f} s")
