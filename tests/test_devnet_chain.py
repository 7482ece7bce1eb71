"""The devnet chain over JSON-RPC: batches, signed transactions, the Flow contract, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from eth_account import Account

from tests.devnet_harness import (
    NO_PROXY,
    DevnetProcess,
    RpcFailure,
    pattern,
    rpc,
    rpc_raw,
    send_transaction,
    sign_transaction,
    start_devnet,
    submission_for,
    submit_file,
)
from zerog_cli.devnet.constants import (
    DEFAULT_PRICE_PER_SECTOR,
    DEV_ACCOUNT_ADDRESS,
    FLOW_ADDRESS,
    MARKET_ADDRESS,
)
from zerog_cli.zerog import flow_abi, merkle
from zerog_cli.zerog.abi import PANIC, keccak256

pytestmark = pytest.mark.devnet

# Hardhat account #5: a valid key the devnet never funds.
UNFUNDED_KEY = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetProcess]:
    with start_devnet(tmp_path_factory.mktemp("chain")) as handle:
        yield handle


def post(url: str, body: bytes | str) -> requests.Response:
    return requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=10, proxies=NO_PROXY
    )


def test_basic_reads(chain: DevnetProcess) -> None:
    assert rpc(chain.rpc_url, "eth_chainId") == "0x7a69"
    assert rpc(chain.rpc_url, "net_version") == "31337"
    block = rpc(chain.rpc_url, "eth_getBlockByNumber", ["latest", False])
    for key in ("parentHash", "number", "timestamp", "gasLimit", "gasUsed", "baseFeePerGas"):
        assert key in block
    assert int(rpc(chain.rpc_url, "eth_getBalance", [DEV_ACCOUNT_ADDRESS, "latest"]), 16) > 10**21
    assert rpc(chain.rpc_url, "eth_getCode", [FLOW_ADDRESS, "latest"]) != "0x"
    assert rpc(chain.rpc_url, "eth_getCode", [DEV_ACCOUNT_ADDRESS, "latest"]) == "0x"
    assert int(rpc(chain.rpc_url, "eth_gasPrice"), 16) > 0
    history = rpc(chain.rpc_url, "eth_feeHistory", ["0x2", "latest", [50]])
    assert len(history["baseFeePerGas"]) == len(history["gasUsedRatio"]) + 1
    assert rpc(chain.rpc_url, "eth_getBlockByNumber", ["0xffffff", False]) is None


def test_market_and_price_calls(chain: DevnetProcess) -> None:
    call = {"from": DEV_ACCOUNT_ADDRESS, "to": FLOW_ADDRESS, "data": "0x80f55605"}
    market = rpc(chain.rpc_url, "eth_call", [call, "latest"])
    assert flow_abi.decode_address_word(bytes.fromhex(market[2:])).lower() == MARKET_ADDRESS.lower()
    price = rpc(chain.rpc_url, "eth_call", [{"to": MARKET_ADDRESS, "data": "0x61ec5082"}, "latest"])
    assert flow_abi.decode_uint_word(bytes.fromhex(price[2:])) == DEFAULT_PRICE_PER_SECTOR


def test_batches_keep_ids_and_order(chain: DevnetProcess) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 3, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_nope"},
        {"jsonrpc": "2.0", "id": 17956667421325200, "method": "eth_maxPriorityFeePerGas"},
    ]
    answer = requests.post(chain.rpc_url, json=batch, timeout=10, proxies=NO_PROXY)
    assert answer.status_code == 200
    replies = answer.json()
    assert [reply["id"] for reply in replies] == [3, 1, 2, 17956667421325200]
    assert replies[0]["result"] == "0x7a69"
    assert replies[2]["error"]["code"] == -32601
    assert "17956667421325200" in answer.text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", -32700),
        ("[]", -32600),
        ("42", -32600),
        ('{"jsonrpc":"2.0","id":1}', -32600),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_frobnicate"}', -32601),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":{"a":1}}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x12"]}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["zz"]}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"eth_getTransactionCount"}', -32602),
    ],
)
def test_malformed_requests_get_json_rpc_errors(chain: DevnetProcess, body: str, code: int) -> None:
    for url in (chain.rpc_url, chain.node_urls[0], chain.indexer_url):
        answer = post(url, body)
        assert answer.status_code == 200
        assert "Traceback" not in answer.text
        error = answer.json()["error"]
        expected = code
        if url != chain.rpc_url and code == -32602 and "eth_" in body:
            expected = -32601  # eth_* methods do not exist on nodes and the indexer
        assert error["code"] == expected, (url, body, error)


def test_type2_and_legacy_transactions_move_nonce_and_balance(chain: DevnetProcess) -> None:
    receiver = "0x000000000000000000000000000000000000dead"
    start_nonce = int(
        rpc(chain.rpc_url, "eth_getTransactionCount", [DEV_ACCOUNT_ADDRESS, "latest"]), 16
    )
    before = int(rpc(chain.rpc_url, "eth_getBalance", [DEV_ACCOUNT_ADDRESS, "latest"]), 16)
    height = int(rpc(chain.rpc_url, "eth_blockNumber"), 16)
    first = send_transaction(chain.rpc_url, to=receiver, value=5)
    second = send_transaction(chain.rpc_url, to=receiver, value=7, legacy=True)
    assert first["type"] == "0x2" and second["type"] == "0x0"
    assert first["status"] == second["status"] == "0x1"
    assert int(rpc(chain.rpc_url, "eth_blockNumber"), 16) == height + 2
    for tag in ("latest", "pending"):
        count = rpc(chain.rpc_url, "eth_getTransactionCount", [DEV_ACCOUNT_ADDRESS, tag])
        assert int(count, 16) == start_nonce + 2
    assert int(rpc(chain.rpc_url, "eth_getBalance", [receiver, "latest"]), 16) == 12
    spent = before - int(rpc(chain.rpc_url, "eth_getBalance", [DEV_ACCOUNT_ADDRESS, "latest"]), 16)
    gas = sum(int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16) for r in (first, second))
    assert spent == 12 + gas
    tx = rpc(chain.rpc_url, "eth_getTransactionByHash", [first["transactionHash"]])
    assert tx["from"] == DEV_ACCOUNT_ADDRESS.lower() and tx["nonce"] == hex(start_nonce)


def test_send_returns_keccak_of_raw_bytes(chain: DevnetProcess) -> None:
    raw = sign_transaction(chain.rpc_url, to=DEV_ACCOUNT_ADDRESS, value=1)
    tx_hash = rpc(chain.rpc_url, "eth_sendRawTransaction", ["0x" + raw.hex()])
    assert tx_hash == "0x" + keccak256(raw).hex()
    with pytest.raises(RpcFailure, match="already known"):
        rpc(chain.rpc_url, "eth_sendRawTransaction", ["0x" + raw.hex()])


def test_wrong_chain_id_bad_nonce_and_unfunded_are_refused(chain: DevnetProcess) -> None:
    raw = sign_transaction(chain.rpc_url, to=DEV_ACCOUNT_ADDRESS, chain_id=1)
    with pytest.raises(RpcFailure, match="invalid chain id for signer: have 1 want 31337") as info:
        rpc(chain.rpc_url, "eth_sendRawTransaction", ["0x" + raw.hex()])
    assert info.value.code == -32000
    raw = sign_transaction(chain.rpc_url, to=DEV_ACCOUNT_ADDRESS, nonce=0)
    with pytest.raises(RpcFailure, match="nonce too low"):
        rpc(chain.rpc_url, "eth_sendRawTransaction", ["0x" + raw.hex()])
    raw = sign_transaction(chain.rpc_url, to=DEV_ACCOUNT_ADDRESS, key=UNFUNDED_KEY)
    with pytest.raises(RpcFailure, match="insufficient funds for gas"):
        rpc(chain.rpc_url, "eth_sendRawTransaction", ["0x" + raw.hex()])
    unprotected = Account.sign_transaction(
        {"nonce": 0, "to": DEV_ACCOUNT_ADDRESS, "value": 0, "gas": 21000, "gasPrice": 10**10},
        UNFUNDED_KEY,
    )
    with pytest.raises(RpcFailure, match="replay-protected"):
        rpc(chain.rpc_url, "eth_sendRawTransaction", ["0x" + unprotected.raw_transaction.hex()])
    tampered = bytearray(sign_transaction(chain.rpc_url, to=DEV_ACCOUNT_ADDRESS))
    tampered[-5] ^= 0xFF
    with pytest.raises(RpcFailure):
        rpc(chain.rpc_url, "eth_sendRawTransaction", ["0x" + tampered.hex()])
    with pytest.raises(RpcFailure, match=r"rlp|typed"):
        rpc(chain.rpc_url, "eth_sendRawTransaction", ["0x02c0ffee"])


def test_submit_receipt_has_the_real_submit_log(chain: DevnetProcess) -> None:
    data = pattern(300_000, seed=1)
    tree, event = submit_file(chain.rpc_url, data)
    assert event.submission.data.length == len(data)
    assert event.sectors == tree.fee_sectors
    assert event.start_pos % 1024 == 0  # more than one segment: starts on a boundary
    assert event.submission.submitter.lower() == DEV_ACCOUNT_ADDRESS.lower()
    _tree2, event2 = submit_file(chain.rpc_url, pattern(1000, seed=2), legacy=True)
    assert event2.tx_seq == event.tx_seq + 1
    # a small file right after never crosses a segment boundary
    assert event2.start_pos // 1024 == (event2.start_pos + event2.sectors - 1) // 1024
    market = int(rpc(chain.rpc_url, "eth_getBalance", [MARKET_ADDRESS, "latest"]), 16)
    assert market >= (tree.fee_sectors + event2.sectors) * DEFAULT_PRICE_PER_SECTOR


def test_underpaid_submit_reverts_with_not_enough_fee(chain: DevnetProcess) -> None:
    tree = merkle.tree_from_bytes(pattern(5000, seed=3))
    calldata = flow_abi.encode_submit_calldata(submission_for(tree))
    fee = tree.fee_sectors * DEFAULT_PRICE_PER_SECTOR
    flow_balance = int(rpc(chain.rpc_url, "eth_getBalance", [FLOW_ADDRESS, "latest"]), 16)
    call = {
        "from": DEV_ACCOUNT_ADDRESS,
        "to": FLOW_ADDRESS,
        "data": "0x" + calldata.hex(),
        "value": hex(fee - flow_balance - 1),
    }
    with pytest.raises(RpcFailure) as info:
        rpc(chain.rpc_url, "eth_estimateGas", [call])
    assert info.value.code == 3 and info.value.message == "execution reverted"
    revert = bytes.fromhex(str(info.value.data)[2:])
    assert flow_abi.NOT_ENOUGH_FEE.decode(revert) == (
        DEFAULT_PRICE_PER_SECTOR,
        tree.fee_sectors,
        fee - 1,
    )
    seq_before = rpc(chain.node_urls[0], "zgs_getStatus")["nextTxSeq"]
    receipt = send_transaction(
        chain.rpc_url, to=FLOW_ADDRESS, data=calldata, value=fee - flow_balance - 1
    )
    assert receipt["status"] == "0x0" and receipt["logs"] == []
    assert rpc(chain.node_urls[0], "zgs_getStatus")["nextTxSeq"] == seq_before
    assert rpc(chain.node_urls[0], "zgs_getFileInfo", [tree.root_hex, False]) is None


def test_zero_submitter_and_bad_heights_are_invalid(chain: DevnetProcess) -> None:
    tree = merkle.tree_from_bytes(pattern(5000, seed=4))
    fee = hex(tree.fee_sectors * DEFAULT_PRICE_PER_SECTOR)
    zero = flow_abi.Submission(submission_for(tree).data, flow_abi.ZERO_ADDRESS)
    bad_nodes = flow_abi.Submission(
        flow_abi.SubmissionData(tree.size, b"", tuple(reversed(tree.submission_nodes))),
        DEV_ACCOUNT_ADDRESS,
    )
    too_long = flow_abi.Submission(
        flow_abi.SubmissionData(tree.size * 2, b"", tree.submission_nodes), DEV_ACCOUNT_ADDRESS
    )
    failures = []
    for submission in (zero, bad_nodes, too_long):
        call = {
            "from": DEV_ACCOUNT_ADDRESS,
            "to": FLOW_ADDRESS,
            "data": "0x" + flow_abi.encode_submit_calldata(submission).hex(),
            "value": fee,
        }
        with pytest.raises(RpcFailure) as info:
            rpc(chain.rpc_url, "eth_call", [call, "latest"])
        assert info.value.code == 3
        failures.append(info.value)
    zero_failure, bad_nodes_failure, too_long_failure = failures
    for failure in (zero_failure, too_long_failure):
        assert failure.message == "execution reverted: Invalid submission"
        assert str(failure.data).startswith("0x08c379a0")
    # The official valid() computes first - last height before it checks the
    # order, so rising heights underflow: Panic(0x11), as the bytecode answers.
    assert bad_nodes_failure.data == "0x" + PANIC.encode(0x11).hex()


def test_legacy_selector_uses_the_sender_as_submitter(chain: DevnetProcess) -> None:
    tree = merkle.tree_from_bytes(pattern(700, seed=5))
    calldata = flow_abi.encode_legacy_submit_calldata(submission_for(tree).data)
    receipt = send_transaction(
        chain.rpc_url,
        to=FLOW_ADDRESS,
        data=calldata,
        value=tree.fee_sectors * DEFAULT_PRICE_PER_SECTOR,
    )
    (event,) = flow_abi.find_submit_events(receipt["logs"], FLOW_ADDRESS)
    assert event.submission.submitter.lower() == DEV_ACCOUNT_ADDRESS.lower()
    assert receipt["logs"][0]["topics"][2] == "0x" + event.submission.data.identity.hex()
    assert int(receipt["logsBloom"], 16) != 0
    logs = rpc(
        chain.rpc_url,
        "eth_getLogs",
        [
            {
                "fromBlock": "0x0",
                "address": FLOW_ADDRESS,
                "topics": [receipt["logs"][0]["topics"][0]],
            }
        ],
    )
    assert receipt["logs"][0] in logs


def test_increase_time_moves_block_timestamps(chain: DevnetProcess) -> None:
    before = int(rpc(chain.rpc_url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    rpc(chain.rpc_url, "evm_increaseTime", [3600])
    rpc(chain.rpc_url, "evm_mine", [])
    after = int(rpc(chain.rpc_url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    assert after >= before + 3600


def test_chain_state_survives_a_restart(devnet: DevnetProcess) -> None:
    receipt = send_transaction(
        devnet.rpc_url, to="0x000000000000000000000000000000000000beef", value=9
    )
    nonce = rpc(devnet.rpc_url, "eth_getTransactionCount", [DEV_ACCOUNT_ADDRESS, "latest"])
    height = rpc(devnet.rpc_url, "eth_blockNumber")
    devnet.process.terminate()
    devnet.process.wait(10)
    with start_devnet(devnet.data_dir) as again:
        assert (
            rpc(again.rpc_url, "eth_getTransactionCount", [DEV_ACCOUNT_ADDRESS, "latest"]) == nonce
        )
        assert rpc(again.rpc_url, "eth_blockNumber") == height
        assert (
            rpc(again.rpc_url, "eth_getTransactionReceipt", [receipt["transactionHash"]]) == receipt
        )
        balance = rpc(
            again.rpc_url, "eth_getBalance", ["0x000000000000000000000000000000000000beef"]
        )
        assert int(balance, 16) == 9
        send_transaction(again.rpc_url, to=DEV_ACCOUNT_ADDRESS, value=1)


def test_requests_without_params_and_huge_ids(chain: DevnetProcess) -> None:
    answer = rpc_raw(chain.node_urls[0], "zgs_getShardConfig", None, request_id=17956667421325200)
    assert answer == {
        "jsonrpc": "2.0",
        "id": 17956667421325200,
        "result": {"numShard": 1, "shardId": 0},
    }


def test_get_logs_filters_by_submitter_and_refuses_over_its_limits(chain: DevnetProcess) -> None:
    """Public RPCs cap eth_getLogs by block range and result count (-32005); a spoofed
    submission naming our address is accepted by the Flow contract (only non-zero is
    checked), but its transaction's ``from`` tells it apart."""
    other_key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
    other = Account.from_key(other_key).address
    send_transaction(chain.rpc_url, to=other, value=10**18)
    first = int(rpc(chain.rpc_url, "eth_blockNumber"), 16) + 1
    ours = [submit_file(chain.rpc_url, pattern(300 + i, seed=40 + i))[1] for i in range(3)]
    spoof_tree = merkle.tree_from_bytes(pattern(333, seed=77))
    spoof = send_transaction(
        chain.rpc_url,
        key=other_key,
        to=FLOW_ADDRESS,
        data=flow_abi.encode_submit_calldata(submission_for(spoof_tree, DEV_ACCOUNT_ADDRESS)),
        value=spoof_tree.fee_sectors * DEFAULT_PRICE_PER_SECTOR,
    )
    assert spoof["status"] == "0x1"
    last = int(rpc(chain.rpc_url, "eth_blockNumber"), 16)
    our_topic = "0x" + bytes(12).hex() + DEV_ACCOUNT_ADDRESS[2:].lower()
    query = {
        "fromBlock": hex(first),
        "toBlock": hex(last),
        "address": FLOW_ADDRESS,
        "topics": [None, our_topic],
    }
    logs = rpc(chain.rpc_url, "eth_getLogs", [query])
    assert [flow_abi.decode_submit_log(log).tx_seq for log in logs] == [
        *(event.tx_seq for event in ours),
        flow_abi.decode_submit_log(spoof["logs"][0]).tx_seq,
    ]
    senders = [
        rpc(chain.rpc_url, "eth_getTransactionByHash", [log["transactionHash"]])["from"]
        for log in logs
    ]
    assert [s.lower() for s in senders] == [DEV_ACCOUNT_ADDRESS.lower()] * 3 + [other.lower()]
    try:
        chain.set_faults(logs_max_range=2)
        with pytest.raises(RpcFailure) as too_wide:
            rpc(chain.rpc_url, "eth_getLogs", [query])
        assert too_wide.value.code == -32005
        assert too_wide.value.message.startswith("block range too large")
        narrow = {**query, "toBlock": hex(first + 1)}
        assert len(rpc(chain.rpc_url, "eth_getLogs", [narrow])) == 2
        chain.set_faults(logs_max_range=0, logs_max_results=2)
        with pytest.raises(RpcFailure) as too_many:
            rpc(chain.rpc_url, "eth_getLogs", [query])
        assert (too_many.value.code, too_many.value.message) == (
            -32005,
            "query returned more than 2 results",
        )
    finally:
        chain.set_faults(logs_max_range=0, logs_max_results=0)
