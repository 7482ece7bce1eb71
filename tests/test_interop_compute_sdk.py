"""The official 0G compute SDK (0.9.0, pinned) funds, calls and verifies the devnet's brokers.

What holds the devnet's compute contracts and provider brokers to the official
protocol: the SDK (installed by tools/ts_sdk.py from tests/interop/package-lock.json,
driven by tests/interop/compute_sdk.cjs) creates and funds a ledger, transfers to
providers, acknowledges a TEE signer, lists services, gets request headers every
devnet broker kind accepts and verifies each kind's response signature with
``processResponse``. Ledgers and sub-accounts cross over both ways: the SDK's are
used by `zerog infer`, zerog's by the SDK, and funds zerog asked back are
collected by the SDK after the lock time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Result
from tests.devnet_harness import NO_PROXY, DevnetProcess, rpc, send_transaction
from tests.interop_node import run_interop_script
from tools.ts_sdk import ensure_installed
from zerog_cli.devnet.compute import LOCK_TIME
from zerog_cli.devnet.provider_kinds import (
    DELAYED,
    FORMAT_A,
    FORMAT_B,
    KINDS,
    MULTI_LARGE,
    MULTI_MODEL,
    REWRITING,
)
from zerog_cli.zerog import compute

pytestmark = [pytest.mark.interop, pytest.mark.devnet(nodes=1)]

ZG = 10**18
NODE_TIMEOUT = 120


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return ensure_installed()


def new_wallet(net: DevnetProcess, name: str) -> tuple[str, str]:
    key = "0x" + compute.keccak256(f"zerog compute sdk interop {name}".encode()).hex()
    address = compute.address_of(key)
    assert send_transaction(net.rpc_url, to=address, value=50 * ZG)["status"] == "0x1"
    return key, address


def run_sdk(
    node_modules: Path, net: DevnetProcess, key: str, steps: list[dict[str, Any]]
) -> dict[str, Any]:
    """Run ``steps`` in one broker; returns each step's result by position."""
    config = {"rpc": net.rpc_url, "key": key, "steps": steps}
    report, elapsed = run_interop_script(
        node_modules, "compute_sdk.cjs", [json.dumps(config)], timeout=NODE_TIMEOUT
    )
    assert [s["op"] for s in report["steps"]] == [s["op"] for s in steps]
    timings = {f"{i}:{s['op']}": s["ms"] for i, s in enumerate(report["steps"])}
    print(f"compute SDK: {elapsed:.1f} s in node, steps (ms): {json.dumps(timings)}")
    return report


def provider_settings(net: DevnetProcess, **changes: Any) -> None:
    answer = requests.post(
        f"{net.provider_url}/devnet/settings", json=changes, timeout=10, proxies=NO_PROXY
    )
    answer.raise_for_status()


def pass_time(net: DevnetProcess, seconds: int) -> None:
    rpc(net.rpc_url, "evm_increaseTime", [seconds])
    rpc(net.rpc_url, "evm_mine", [])


def chat_step(provider: str, prompt: str, **extra: Any) -> dict[str, Any]:
    return {"op": "chat", "provider": provider, "prompt": prompt, **extra}


@pytest.fixture(scope="module")
def sdk_wallet(node_modules: Path, net: DevnetProcess) -> dict[str, Any]:
    """A wallet whose ledger and sub-accounts the SDK made, and what the SDK saw doing it."""
    key, address = new_wallet(net, "sdk-made")
    steps = [
        {"op": "addLedger", "amount": 12},
        {"op": "ledger"},
        {"op": "acknowledge", "provider": FORMAT_A.address},
        {"op": "transferFund", "provider": FORMAT_A.address, "neuron": str(2 * ZG)},
        {"op": "services"},
        chat_step(FORMAT_A.address, "hello from the SDK"),
        chat_step(FORMAT_A.address, "a streamed hello", stream=True),
        chat_step(FORMAT_B.address, "format B"),
        chat_step(REWRITING.address, "rewritten"),
        chat_step(DELAYED.address, "late signature", retryMs=1500),
        chat_step(MULTI_MODEL.address, "the default model"),
        chat_step(MULTI_MODEL.address, "the large one", model=MULTI_LARGE.model, stream=True),
        {"op": "account", "provider": FORMAT_A.address},
        {"op": "ledger"},
        {"op": "accounts"},
        {"op": "readOnlyServices", "rpc": net.rpc_url},
    ]
    report = run_sdk(node_modules, net, key, steps)
    return {"key": key, "address": address, "results": [s["result"] for s in report["steps"]]}


def test_sdk_creates_funds_and_acknowledges_on_the_devnet_contracts(
    sdk_wallet: dict[str, Any], cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = sdk_wallet["results"]
    created = results[1]
    assert created["user"] == sdk_wallet["address"]
    assert created["totalBalance"] == created["availableBalance"] == str(12 * ZG)
    acknowledged = results[2]
    # no sub-account yet: the SDK transferred its 1 0G minimum, then acknowledged
    assert acknowledged["acknowledged"] is True and acknowledged["balance"] == str(ZG)
    account = results[12]
    assert account["balance"] == str(3 * ZG) and account["pendingRefund"] == "0"

    # zerog reads the same chain state
    monkeypatch.setenv("ZEROG_COMPUTE_PRIVATE_KEY", sdk_wallet["key"])
    report = cli("infer", "account", "--json").json
    assert report["wallet"] == sdk_wallet["address"]
    assert report["ledger"]["total"]["neuron"] == results[13]["totalBalance"]
    assert report["ledger"]["available"]["neuron"] == results[13]["availableBalance"]
    subs = {s["provider"]: s for s in report["sub_accounts"]}
    assert set(subs) == {kind.address for kind in KINDS}
    assert subs[FORMAT_A.address]["balance"]["neuron"] == str(3 * ZG)
    assert all(sub["acknowledged"] for sub in subs.values())
    listed = {(a["user"], a["provider"]): a["balance"] for a in results[14]}
    for provider, sub in subs.items():
        assert listed[(sdk_wallet["address"], provider)] == sub["balance"]["neuron"]


def test_sdk_lists_every_devnet_service(sdk_wallet: dict[str, Any]) -> None:
    services = {s["provider"]: s for s in sdk_wallet["results"][4]}
    for kind in KINDS:
        assert services[kind.address]["model"] == kind.model
        assert services[kind.address]["teeSignerAddress"] == kind.tee_address
        assert services[kind.address]["teeSignerAcknowledged"] is True
        assert services[kind.address]["url"].endswith(kind.prefix)
    # a broker without a wallet lists the same
    assert sdk_wallet["results"][15] == sdk_wallet["results"][4]


def test_sdk_headers_are_accepted_and_process_response_verifies_every_kind(
    sdk_wallet: dict[str, Any],
) -> None:
    chats = sdk_wallet["results"][5:12]
    prompts = [
        "hello from the SDK",
        "a streamed hello",
        "format B",
        "rewritten",
        "late signature",
        "the default model",
        "the large one",
    ]
    for chat, prompt in zip(chats, prompts, strict=True):
        assert chat["answer"] == "You said: " + prompt
        assert chat["verified"] is True, chat
        assert chat["chatID"].startswith("chatcmpl-")
    assert chats[0]["endpoint"].endswith(f"{FORMAT_A.prefix}/v1/proxy")
    assert chats[5]["model"] == MULTI_MODEL.model and chats[6]["model"] == MULTI_LARGE.model
    # the delayed broker has no signature at first: the SDK throws, then verifies
    assert chats[4]["firstError"] is not None
    assert [c["firstError"] for i, c in enumerate(chats) if i != 4] == [None] * 6


def test_process_response_rejects_a_tampered_signature(
    sdk_wallet: dict[str, Any], node_modules: Path, net: DevnetProcess
) -> None:
    provider_settings(net, tamper_signatures=True)
    try:
        report = run_sdk(
            node_modules, net, sdk_wallet["key"], [chat_step(FORMAT_A.address, "tampered")]
        )
    finally:
        provider_settings(net, tamper_signatures=False)
    assert report["steps"][0]["result"]["verified"] is False


def test_zerog_infers_on_the_ledger_and_sub_accounts_the_sdk_made(
    sdk_wallet: dict[str, Any], cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZEROG_COMPUTE_PRIVATE_KEY", sdk_wallet["key"])
    for kind in (FORMAT_A, FORMAT_B):
        answered = cli("infer", "via zerog", "--provider", kind.address, "--json")
        assert answered.exit_code == 0, answered
        assert answered.json["answer"] == "You said: via zerog"
        assert answered.json["verified"] is True


def test_sdk_uses_the_ledger_zerog_made_and_collects_what_zerog_asked_back(
    node_modules: Path,
    net: DevnetProcess,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, address = new_wallet(net, "zerog-made")
    monkeypatch.setenv("ZEROG_COMPUTE_PRIVATE_KEY", key)
    assert cli("infer", "fund", "deposit", "6", "--yes").exit_code == 0
    assert cli("infer", "fund", "transfer", FORMAT_A.address, "2", "--yes").exit_code == 0

    used = run_sdk(
        node_modules,
        net,
        key,
        [
            {"op": "ledger"},
            {"op": "account", "provider": FORMAT_A.address},
            chat_step(FORMAT_A.address, "on a zerog ledger"),
            {"op": "account", "provider": FORMAT_A.address},
        ],
    )
    ledger, before, chat, after = (s["result"] for s in used["steps"])
    assert (ledger["user"], ledger["totalBalance"]) == (address, str(6 * ZG))
    assert before["balance"] == str(2 * ZG) and before["acknowledged"] is True
    assert chat["verified"] is True and chat["answer"] == "You said: on a zerog ledger"
    assert after["balance"] == before["balance"]  # 2 0G cover the SDK's reserve: no top-up

    asked = cli("infer", "fund", "retrieve", FORMAT_A.address, "--yes", "--json")
    assert asked.exit_code == 0, asked
    assert asked.json["requested"]["neuron"] == str(2 * ZG)
    pass_time(net, LOCK_TIME)
    collected = run_sdk(
        node_modules,
        net,
        key,
        [
            {"op": "account", "provider": FORMAT_A.address},
            {"op": "retrieveFund"},
            {"op": "account", "provider": FORMAT_A.address},
            {"op": "ledger"},
            {"op": "refund", "amount": 1},
            {"op": "ledger"},
        ],
    )
    pending, _, emptied, returned, _, refunded = (s["result"] for s in collected["steps"])
    assert [r["amount"] for r in pending["refunds"]] == [str(2 * ZG)]
    assert (emptied["balance"], emptied["pendingRefund"], emptied["refunds"]) == ("0", "0", [])
    assert returned["availableBalance"] == returned["totalBalance"] == str(6 * ZG)
    assert refunded["availableBalance"] == refunded["totalBalance"] == str(5 * ZG)

    account = cli("infer", "account", "--json").json
    assert account["ledger"]["available"]["neuron"] == str(5 * ZG)
    (sub,) = account["sub_accounts"]
    assert sub["refunds"] == [] and sub["balance"]["neuron"] == "0"


def test_zerog_collects_what_the_sdk_asked_back(
    sdk_wallet: dict[str, Any],
    node_modules: Path,
    net: DevnetProcess,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = sdk_wallet["key"]
    asked = run_sdk(
        node_modules,
        net,
        key,
        [{"op": "retrieveFund", "provider": FORMAT_B.address}, {"op": "ledger"}],
    )
    available = int(asked["steps"][1]["result"]["availableBalance"])
    monkeypatch.setenv("ZEROG_COMPUTE_PRIVATE_KEY", key)
    sub = {s["provider"]: s for s in cli("infer", "account", "--json").json["sub_accounts"]}
    (refund,) = sub[FORMAT_B.address]["refunds"]
    assert refund["unlocked"] is False
    pending = int(refund["amount"]["neuron"])
    assert pending > 0

    pass_time(net, LOCK_TIME)
    collected = cli("infer", "fund", "retrieve", FORMAT_B.address, "--yes", "--json")
    assert collected.exit_code == 0, collected
    assert collected.json["returned"]["neuron"] == str(pending)
    assert collected.json["ledger"]["available"]["neuron"] == str(available + pending)
