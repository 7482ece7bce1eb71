"""The devnet chain against the official contract bytecode, transaction by transaction.

Every transaction here goes to two chains: the devnet, and anvil running the
official ``FixedPriceFlow``, ``FixedPrice``, ``LedgerManager`` and
``InferenceServing`` at the same addresses (`zerog_cli.devnet.anvil`, the
deployment `zerog devnet up --chain anvil` uses; anvil and the bytecode come
from the pinned npm packages). For each one the test
compares what a client can see: the ``eth_call`` answer before it is sent
(result or revert data), the receipt's status, every log (address, topics,
data) and how the balances of every account involved moved (a sender's gas is
added back: the two chains price gas differently, and gas is not what is under
test). Where the official contract and the devnet differ, the devnet is wrong.

What the devnet cannot have, by design (docs/protocol.md, "Held against the
official bytecode"): a block timestamp is the chain's own, so a log word equal
to the block's timestamp is compared as "the timestamp"; the market forwards
every fee to a reward contract the devnet does not model, so the devnet
market's balance is compared with the official market's plus the reward's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.devnet_harness import net, pattern, rpc, rpc_raw  # noqa: F401 (fixture)
from tools import test_tools, ts_sdk
from zerog_cli.devnet import compute
from zerog_cli.devnet.anvil import REWARD_ADDRESS, official_chain
from zerog_cli.devnet.constants import (
    DEFAULT_CHAIN_ID,
    DEFAULT_PRICE_PER_SECTOR,
    DEV_ACCOUNT_KEY,
    FLOW_ADDRESS,
    INFERENCE_SERVING_ADDRESS,
    LEDGER_MANAGER_ADDRESS,
    MARKET_ADDRESS,
)
from zerog_cli.zerog import compute_abi, flow_abi, merkle
from zerog_cli.zerog.abi import keccak256
from zerog_cli.zerog.compute_fees import NEURON_PER_0G

pytestmark = pytest.mark.interop

GAS_LIMIT = 5_000_000
MAX_FEE_PER_GAS = 50 * 10**9
PRIORITY_FEE_PER_GAS = 10**9
USER_FUNDS = 100 * NEURON_PER_0G
SEGMENT = 256 * 1024
SERVICE = compute.SERVICE_NAME
PROVIDER = compute.PROVIDER_ADDRESS


def account(label: str) -> tuple[str, str]:
    """A fresh (address, key) pair, the same on both chains."""
    from eth_account import Account

    key = "0x" + keccak256(f"zerog-differential-{label}".encode()).hex()
    return Account.from_key(key).address, key


@dataclass
class Outcome:
    """What one chain showed for one transaction, ready to compare."""

    call: tuple[str, str]
    status: str
    logs: list[tuple[str, list[str], str]]


@dataclass
class Twin:
    """The devnet and the official chain, driven in lockstep."""

    devnet: str
    official: str
    gas_spent: dict[str, dict[str, int]] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)

    @property
    def urls(self) -> dict[str, str]:
        return {"devnet": self.devnet, "official": self.official}

    def send(
        self, label: str, key: str, to: str, data: bytes, value: int = 0
    ) -> dict[str, Outcome]:
        outcomes = {
            name: self._send_one(name, url, key, to, data, value) for name, url in self.urls.items()
        }
        devnet, official = outcomes["devnet"], outcomes["official"]
        for part in ("call", "status", "logs"):
            if getattr(devnet, part) != getattr(official, part):
                self.differences.append(
                    f"{label}: {part} differs\n  devnet:   {getattr(devnet, part)}"
                    f"\n  official: {getattr(official, part)}"
                )
        return outcomes

    def _send_one(self, name: str, url: str, key: str, to: str, data: bytes, value: int) -> Outcome:
        from eth_account import Account

        sender = Account.from_key(key).address
        request = {"from": sender, "to": to, "data": "0x" + data.hex(), "value": hex(value)}
        answer = rpc_raw(url, "eth_call", [request, "latest"])
        if "error" in answer:
            call = ("revert", str(answer["error"].get("data") or "0x"))
        else:
            call = ("ok", str(answer["result"]))
        nonce = int(rpc(url, "eth_getTransactionCount", [sender, "latest"]), 16)
        tx = {
            "type": 2,
            "chainId": int(rpc(url, "eth_chainId"), 16),
            "nonce": nonce,
            "to": to,
            "value": value,
            "data": data,
            "gas": GAS_LIMIT,
            "maxFeePerGas": MAX_FEE_PER_GAS,
            "maxPriorityFeePerGas": PRIORITY_FEE_PER_GAS,
        }
        raw = bytes(Account.sign_transaction(tx, key).raw_transaction)
        receipt = wait_receipt(url, rpc(url, "eth_sendRawTransaction", ["0x" + raw.hex()]))
        spent = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        per_chain = self.gas_spent.setdefault(name, {})
        per_chain[sender.lower()] = per_chain.get(sender.lower(), 0) + spent
        block = rpc(url, "eth_getBlockByNumber", [receipt["blockNumber"], False])
        timestamp = int(block["timestamp"], 16).to_bytes(32, "big").hex()
        logs = [
            (
                log["address"].lower(),
                [topic.lower() for topic in log["topics"]],
                _mark_timestamp(log["data"][2:].lower(), timestamp),
            )
            for log in receipt["logs"]
        ]
        return Outcome(call=call, status=receipt["status"], logs=logs)

    def balances(self, addresses: list[str]) -> dict[str, dict[str, int]]:
        """Each chain's balance of each address, the gas it paid so far added back."""
        result: dict[str, dict[str, int]] = {}
        for name, url in self.urls.items():
            gas = self.gas_spent.get(name, {})
            result[name] = {
                address.lower(): int(rpc(url, "eth_getBalance", [address, "latest"]), 16)
                + gas.get(address.lower(), 0)
                for address in addresses
            }
            if name == "official":
                reward = int(rpc(url, "eth_getBalance", [REWARD_ADDRESS, "latest"]), 16)
                if MARKET_ADDRESS.lower() in result[name]:
                    result[name][MARKET_ADDRESS.lower()] += reward
        return result

    def compare_moves(
        self, label: str, before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
    ) -> None:
        for address in before["devnet"]:
            moves = {name: after[name][address] - before[name][address] for name in before}
            if moves["devnet"] != moves["official"]:
                self.differences.append(f"{label}: balance of {address} moved {moves}")

    def compare_views(self, views: list[tuple[str, bytes]]) -> None:
        """The same ``eth_call`` on both chains: the same result or the same revert data."""
        for to, data in views:
            answers = {}
            for name, url in self.urls.items():
                answer = rpc_raw(url, "eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
                error = answer.get("error")
                answers[name] = ("revert", error.get("data")) if error else ("ok", answer["result"])
            if answers["devnet"] != answers["official"]:
                self.differences.append(f"view {data[:4].hex()} at {to}: {answers}")

    def increase_time(self, seconds: int) -> None:
        for url in self.urls.values():
            rpc(url, "evm_increaseTime", [seconds])

    def fund(self, address: str, amount: int) -> None:
        from eth_account import Account

        for url in self.urls.values():
            sender = Account.from_key(DEV_ACCOUNT_KEY).address
            tx = {
                "type": 2,
                "chainId": int(rpc(url, "eth_chainId"), 16),
                "nonce": int(rpc(url, "eth_getTransactionCount", [sender, "latest"]), 16),
                "to": address,
                "value": amount,
                "data": b"",
                "gas": 21_000,
                "maxFeePerGas": MAX_FEE_PER_GAS,
                "maxPriorityFeePerGas": PRIORITY_FEE_PER_GAS,
            }
            raw = bytes(Account.sign_transaction(tx, DEV_ACCOUNT_KEY).raw_transaction)
            receipt = wait_receipt(url, rpc(url, "eth_sendRawTransaction", ["0x" + raw.hex()]))
            assert receipt["status"] == "0x1"


def wait_receipt(url: str, tx_hash: str) -> dict[str, Any]:
    """The receipt of ``tx_hash``: anvil may answer the send just before it mines."""
    for _ in range(1500):
        receipt: dict[str, Any] | None = rpc(url, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        time.sleep(0.02)
    raise AssertionError(f"{url} did not mine {tx_hash}")


def _mark_timestamp(data_hex: str, timestamp_word: str) -> str:
    """``data`` with every 32-byte word equal to the block's timestamp shown as ``<time>``."""
    words = [data_hex[i : i + 64] for i in range(0, len(data_hex), 64)]
    return "".join("<time>" if word == timestamp_word else word for word in words)


@pytest.fixture(scope="module")
def twin(net: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:  # noqa: F811
    test_tools.ensure(["anvil"])
    node_modules = ts_sdk.ensure_installed()
    log = Path(tmp_path_factory.mktemp("anvil")) / "anvil.log"
    with official_chain(node_modules, log, DEFAULT_CHAIN_ID) as official:
        yield Twin(devnet=net.rpc_url, official=official.url)


def _submission(size: int, *, tags: bytes = b"", submitter: str) -> flow_abi.Submission:
    tree = merkle.tree_from_bytes(pattern(size, seed=size))
    data = flow_abi.SubmissionData(size, tags, tree.submission_nodes)
    return flow_abi.Submission(data, submitter)


def test_flow_submissions_match_the_official_flow(twin: Twin) -> None:
    """Many sizes, tags, fees exact / short / over, odd submitters, batches: same answers,
    logs and moves."""
    user, key = account("flow-user")
    other, _ = account("flow-other")
    twin.fund(user, USER_FUNDS)
    watched = [user, FLOW_ADDRESS, MARKET_ADDRESS]
    price = DEFAULT_PRICE_PER_SECTOR
    sizes = [1, 255, 256, 257, 4096, 4097, SEGMENT, SEGMENT + 1, 1 << 20, 3 * SEGMENT + 17]
    cases: list[tuple[str, flow_abi.Submission, int]] = []
    for size in sizes:
        submission = _submission(size, submitter=user)
        cases.append((f"{size} bytes, exact fee", submission, submission.data.fee(price)))
    tagged = _submission(5000, tags=b"\x01zerog-tag\xff", submitter=user)
    cases.append(("tagged, exact fee", tagged, tagged.data.fee(price)))
    short = _submission(70_000, submitter=user)
    cases.append(("fee short by 1", short, short.data.fee(price) - 1))
    cases.append(("no fee at all", short, 0))
    over = _submission(9000, submitter=user)
    cases.append(("fee over by 12345", over, over.data.fee(price) + 12345))
    small = _submission(100, submitter=user)
    cases.append(("paid by the leftover of an over-payment", small, 0))
    cases.append(("leftover no longer enough", _submission(20_000, submitter=user), 0))
    for_other = _submission(777, submitter=other)
    cases.append(("submitter other than the sender", for_other, for_other.data.fee(price)))
    zero = _submission(777, submitter=flow_abi.ZERO_ADDRESS)
    cases.append(("zero submitter", zero, zero.data.fee(price)))
    nodes = _submission(3 * SEGMENT + 17, submitter=user).data.nodes
    invalid = {
        "length beyond the nodes": flow_abi.SubmissionData(SEGMENT * 5, b"", nodes),
        "too much padding": flow_abi.SubmissionData(
            1, b"", _submission(4096, submitter=user).data.nodes
        ),
        "no nodes": flow_abi.SubmissionData(1, b"", ()),
        "heights not decreasing": flow_abi.SubmissionData(3 * SEGMENT + 17, b"", nodes[::-1]),
    }
    for label, data in invalid.items():
        cases.append((label, flow_abi.Submission(data, user), data.fee(price) + 10**15))
    for label, submission, value in cases:
        before = twin.balances(watched)
        twin.send(label, key, FLOW_ADDRESS, flow_abi.encode_submit_calldata(submission), value)
        twin.compare_moves(label, before, twin.balances(watched))
    batch = [_submission(size, submitter=user) for size in (300, 2 * SEGMENT, 64)]
    batch_fee = sum(item.data.fee(price) for item in batch)
    batches = [
        ("batchSubmit of three, exact fee", batch, batch_fee),
        ("batchSubmit short by 1 for the last", batch, batch_fee - 1),
        ("batchSubmit of none", [], 0),
        ("batchSubmit with a zero submitter", [batch[0], zero], batch_fee),
    ]
    for label, submissions, value in batches:
        before = twin.balances(watched)
        twin.send(
            label, key, FLOW_ADDRESS, flow_abi.encode_batch_submit_calldata(submissions), value
        )
        twin.compare_moves(label, before, twin.balances(watched))
    twin.compare_views(
        [
            (FLOW_ADDRESS, flow_abi.MARKET_SELECTOR),
            (MARKET_ADDRESS, flow_abi.PRICE_PER_SECTOR_SELECTOR),
        ]
    )
    assert not twin.differences, "\n".join(twin.differences)


def _ledger_call(name: str, *args: Any) -> bytes:
    return compute_abi.LEDGER_MANAGER.function(name).encode(*args)


def _serving_call(name: str, *args: Any) -> bytes:
    return compute_abi.INFERENCE_SERVING.function(name).encode(*args)


def test_compute_ledger_moves_match_the_official_contracts(twin: Twin) -> None:
    """Deposits, transfers, acknowledgements, refunds and retrievals, step by step."""
    user, key = account("compute-user")
    friend, _ = account("compute-friend")
    twin.fund(user, USER_FUNDS)
    watched = [user, friend, LEDGER_MANAGER_ADDRESS, INFERENCE_SERVING_ADDRESS]
    one = NEURON_PER_0G
    steps: list[tuple[str, str, bytes, int]] = [
        ("addLedger below the minimum", LEDGER_MANAGER_ADDRESS, _ledger_call("addLedger", ""), one),
        ("depositFund of nothing", LEDGER_MANAGER_ADDRESS, _ledger_call("depositFund"), 0),
        ("refund without a ledger", LEDGER_MANAGER_ADDRESS, _ledger_call("refund", one), 0),
        (
            "depositFund below the minimum without a ledger",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("depositFund"),
            one,
        ),
        (
            "addLedger with too long a description",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("addLedger", "x" * 4097),
            5 * one,
        ),
        ("addLedger", LEDGER_MANAGER_ADDRESS, _ledger_call("addLedger", "differential"), 5 * one),
        ("addLedger twice", LEDGER_MANAGER_ADDRESS, _ledger_call("addLedger", ""), 5 * one),
        ("depositFund", LEDGER_MANAGER_ADDRESS, _ledger_call("depositFund"), 2 * one),
        (
            "transferFund below the minimum",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("transferFund", PROVIDER, SERVICE, one // 2),
            0,
        ),
        (
            "transferFund to an unknown service name",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("transferFund", PROVIDER, "inference-v9.9", 2 * one),
            0,
        ),
        (
            "transferFund to oneself",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("transferFund", user, SERVICE, 2 * one),
            0,
        ),
        (
            "transferFund to the zero address",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("transferFund", flow_abi.ZERO_ADDRESS, SERVICE, 2 * one),
            0,
        ),
        (
            "transferFund opens a sub-account",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("transferFund", PROVIDER, SERVICE, 2 * one),
            0,
        ),
        (
            "transferFund beyond the available balance",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("transferFund", PROVIDER, SERVICE, 50 * one),
            0,
        ),
        (
            "acknowledgement without a sub-account",
            INFERENCE_SERVING_ADDRESS,
            _serving_call("acknowledgeTEESigner", friend, True),
            0,
        ),
        (
            "acknowledgement withdrawn with a balance",
            INFERENCE_SERVING_ADDRESS,
            _serving_call("acknowledgeTEESigner", PROVIDER, False),
            0,
        ),
        (
            "acknowledgement given",
            INFERENCE_SERVING_ADDRESS,
            _serving_call("acknowledgeTEESigner", PROVIDER, True),
            0,
        ),
        (
            "retrieveFund for more than 20 providers",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("retrieveFund", [PROVIDER] * 21, SERVICE),
            0,
        ),
        (
            "retrieveFund from providers without a sub-account",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("retrieveFund", [friend, MARKET_ADDRESS], SERVICE),
            0,
        ),
        (
            "retrieveFund requests a refund",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("retrieveFund", [PROVIDER], SERVICE),
            0,
        ),
        (
            "transferFund cancels the pending refund",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("transferFund", PROVIDER, SERVICE, one),
            0,
        ),
        (
            "retrieveFund again",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("retrieveFund", [PROVIDER], SERVICE),
            0,
        ),
        ("revokeToken", INFERENCE_SERVING_ADDRESS, _serving_call("revokeToken", PROVIDER, 7), 0),
        (
            "revokeTokens",
            INFERENCE_SERVING_ADDRESS,
            _serving_call("revokeTokens", PROVIDER, [1, 2, 200]),
            0,
        ),
        (
            "revokeAllTokens",
            INFERENCE_SERVING_ADDRESS,
            _serving_call("revokeAllTokens", PROVIDER),
            0,
        ),
        (
            "revokeToken without a sub-account",
            INFERENCE_SERVING_ADDRESS,
            _serving_call("revokeToken", friend, 1),
            0,
        ),
    ]
    _run(twin, key, steps, watched)
    twin.increase_time(compute.LOCK_TIME + 1)
    later: list[tuple[str, str, bytes, int]] = [
        (
            "retrieveFund after the lock time",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("retrieveFund", [PROVIDER], SERVICE),
            0,
        ),
        ("refund more than available", LEDGER_MANAGER_ADDRESS, _ledger_call("refund", 50 * one), 0),
        (
            "refund leaving less than the minimum",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("refund", 5 * one),
            0,
        ),
        ("refund", LEDGER_MANAGER_ADDRESS, _ledger_call("refund", one), 0),
        (
            "refund of everything closes the ledger",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("refund", 6 * one),
            0,
        ),
        (
            "transferFund without a ledger",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("transferFund", PROVIDER, SERVICE, one),
            0,
        ),
        (
            "depositFundFor the zero address",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("depositFundFor", flow_abi.ZERO_ADDRESS),
            3 * one,
        ),
        (
            "depositFundFor another wallet",
            LEDGER_MANAGER_ADDRESS,
            _ledger_call("depositFundFor", friend),
            3 * one,
        ),
    ]
    _run(twin, key, later, watched)
    twin.compare_views(
        [
            (LEDGER_MANAGER_ADDRESS, _ledger_call("getLedger", user)),
            (LEDGER_MANAGER_ADDRESS, _ledger_call("getLedger", friend)),
            (INFERENCE_SERVING_ADDRESS, _serving_call("getAccount", user, PROVIDER)),
            (LEDGER_MANAGER_ADDRESS, _ledger_call("getLedgerProviders", user, SERVICE)),
            (LEDGER_MANAGER_ADDRESS, _ledger_call("getLedgerProviders", user, "inference-v9.9")),
            (INFERENCE_SERVING_ADDRESS, _serving_call("lockTime")),
        ]
    )
    assert not twin.differences, "\n".join(twin.differences)


def _run(
    twin: Twin, key: str, steps: list[tuple[str, str, bytes, int]], watched: list[str]
) -> None:
    for label, to, data, value in steps:
        before = twin.balances(watched)
        twin.send(label, key, to, data, value)
        twin.compare_moves(label, before, twin.balances(watched))
