"""The official 0G contracts on anvil, for differential tests against the devnet chain.

Nothing of theirs is in this repository: anvil (``@foundry-rs/anvil``, its
Linux build inside ``@foundry-rs/anvil-linux-amd64``) and the contracts'
creation bytecode (the typechain factories inside the official storage and
compute SDK packages) are read at test time from the npm packages pinned by
tests/interop/package-lock.json (`tools/ts_sdk.py` installs them).

`official_chain()` starts anvil on 127.0.0.1 and a free port, deploys
``FixedPriceFlow``, ``FixedPrice``, ``LedgerManager`` and ``InferenceServing``
and puts each one's runtime code at the devnet's address for it
(``anvil_setCode``; the compute contracts lock their initializers in their
constructor, as logic contracts behind a proxy do, so the code runs in the
storage of the devnet address, as it does behind the official beacon proxies).
Then it initializes them with the devnet's constants and registers the devnet's
seeded provider, so one transaction sent to both chains means the same thing.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.devnet_harness import rpc
from zerog_cli.devnet import compute
from zerog_cli.devnet.constants import (
    DEFAULT_CHAIN_ID,
    DEFAULT_PRICE_PER_SECTOR,
    DEV_ACCOUNT_ADDRESS,
    FLOW_ADDRESS,
    INFERENCE_SERVING_ADDRESS,
    LEDGER_MANAGER_ADDRESS,
    LOOPBACK_HOST,
    MARKET_ADDRESS,
)
from zerog_cli.zerog.abi import keccak256

ANVIL_BINARY = Path("@foundry-rs/anvil-linux-amd64/bin/anvil")
FACTORIES = {
    "FixedPriceFlow": "@0gfoundation/0g-ts-sdk/lib.commonjs/contracts/flow/factories/"
    "FixedPriceFlow__factory.js",
    "FixedPrice": "@0gfoundation/0g-ts-sdk/lib.commonjs/contracts/market/factories/"
    "FixedPrice__factory.js",
    "LedgerManager": "@0gfoundation/0g-compute-ts-sdk/cli.commonjs/sdk/ledger/contract/"
    "typechain/factories/LedgerManager__factory.js",
    "InferenceServing": "@0gfoundation/0g-compute-ts-sdk/cli.commonjs/sdk/inference/contract/"
    "typechain/factories/InferenceServing__factory.js",
}
_BYTECODE = re.compile(r"""_bytecode\s*=\s*["'](0x[0-9a-fA-F]+)["']""")

REWARD_ADDRESS = "0x00000000000000000000000000000000000a3a2d"
"""Where the official market forwards every fee (``IReward.fillReward``). The
devnet has no reward contract; on anvil a one-byte ``STOP`` accepts the calls."""
BLOCKS_PER_EPOCH = 1_000_000_000
"""Flow mining epochs: so long that no test ever starts a second one (the
devnet has no mining, so it never emits ``NewEpoch``)."""
DEPLOYER_ADDRESS = "0x00000000000000000000000000000000de910e72"
"""Creates the contracts whose code then moves to the devnet addresses. Not the
dev account: its first creations land on those very addresses (they are its
CREATE addresses), and a compute contract's constructor locks the storage there."""
START_TIMEOUT = 30.0


def anvil_binary(node_modules: Path) -> Path:
    binary = node_modules / ANVIL_BINARY
    if not binary.is_file():
        raise FileNotFoundError(
            f"{binary} is missing: the pinned @foundry-rs/anvil did not install"
        )
    return binary


def official_bytecode(node_modules: Path, contract: str) -> bytes:
    """The creation bytecode of ``contract``, read out of the official SDK package."""
    source = (node_modules / FACTORIES[contract]).read_text(encoding="utf-8")
    found = _BYTECODE.search(source)
    if found is None:
        raise ValueError(f"no bytecode in {FACTORIES[contract]}")
    return bytes.fromhex(found.group(1)[2:])


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def encode_call(signature: str, *args: Any) -> bytes:
    """Calldata of ``signature`` (``name(type,...)``) with ``args``."""
    from eth_abi import encode

    types = _split_types(signature[signature.index("(") + 1 : -1])
    return selector(signature) + encode(types, list(args))


def _split_types(text: str) -> list[str]:
    types: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "," and depth == 0:
            types.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    if current:
        types.append(current)
    return types


@dataclass
class OfficialChain:
    """anvil running the official contracts at the devnet's addresses."""

    rpc_url: str
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"anvil exited with {process.returncode}")
        with contextlib.suppress(Exception):
            rpc(url, "eth_chainId")
            return
        time.sleep(0.1)
    raise RuntimeError("anvil did not answer within 30 s")


def _send(url: str, sender: str, to: str | None, data: bytes, value: int = 0) -> dict[str, Any]:
    """Send from an account anvil holds the key of; the receipt, which must succeed."""
    tx: dict[str, Any] = {"from": sender, "data": "0x" + data.hex(), "value": hex(value)}
    if to is not None:
        tx["to"] = to
    tx["gas"] = hex(15_000_000)
    receipt = wait_receipt(url, rpc(url, "eth_sendTransaction", [tx]))
    if receipt["status"] != "0x1":
        raise RuntimeError(f"setting up the official contracts failed at {data[:4].hex()}")
    return receipt


def wait_receipt(url: str, tx_hash: str) -> dict[str, Any]:
    """The receipt of ``tx_hash``: anvil may answer the send just before it mines."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        receipt: dict[str, Any] | None = rpc(url, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        time.sleep(0.02)
    raise RuntimeError(f"anvil did not mine {tx_hash}")


def _install(url: str, creation: bytes, address: str) -> None:
    """Deploy ``creation``, then put its runtime code at ``address``."""
    receipt = _send(url, DEPLOYER_ADDRESS, None, creation)
    code = rpc(url, "eth_getCode", [receipt["contractAddress"], "latest"])
    rpc(url, "anvil_setCode", [address, code])


def deploy_official_contracts(url: str, node_modules: Path) -> None:
    """The official storage and compute contracts, set up as the devnet's are."""
    from eth_abi import encode

    rpc(url, "anvil_impersonateAccount", [DEPLOYER_ADDRESS])
    rpc(url, "anvil_setBalance", [DEPLOYER_ADDRESS, hex(10**18)])
    flow_creation = official_bytecode(node_modules, "FixedPriceFlow") + encode(["uint256"], [0])
    _install(url, flow_creation, FLOW_ADDRESS)
    _install(url, official_bytecode(node_modules, "FixedPrice"), MARKET_ADDRESS)
    _install(url, official_bytecode(node_modules, "LedgerManager"), LEDGER_MANAGER_ADDRESS)
    _install(url, official_bytecode(node_modules, "InferenceServing"), INFERENCE_SERVING_ADDRESS)
    rpc(url, "anvil_setCode", [REWARD_ADDRESS, "0x00"])
    owner = DEV_ACCOUNT_ADDRESS
    setup = [
        (
            FLOW_ADDRESS,
            encode_call("initialize(address,uint256)", MARKET_ADDRESS, BLOCKS_PER_EPOCH),
        ),
        (
            MARKET_ADDRESS,
            encode_call(
                "initialize(uint256,address,address)",
                DEFAULT_PRICE_PER_SECTOR,
                FLOW_ADDRESS,
                REWARD_ADDRESS,
            ),
        ),
        (LEDGER_MANAGER_ADDRESS, encode_call("initialize(address)", owner)),
        (
            INFERENCE_SERVING_ADDRESS,
            encode_call(
                "initialize(uint256,address,address)",
                compute.LOCK_TIME,
                LEDGER_MANAGER_ADDRESS,
                owner,
            ),
        ),
        (
            LEDGER_MANAGER_ADDRESS,
            encode_call(
                "registerService(string,string,address,string)",
                compute.SERVICE_TYPE,
                compute.SERVICE_VERSION,
                INFERENCE_SERVING_ADDRESS,
                "0G inference serving (devnet)",
            ),
        ),
        (
            LEDGER_MANAGER_ADDRESS,
            encode_call(
                "setRecommendedService(string,string)",
                compute.SERVICE_TYPE,
                compute.SERVICE_VERSION,
            ),
        ),
    ]
    for to, data in setup:
        _send(url, owner, to, data)
    stake = int(
        rpc(
            url,
            "eth_call",
            [
                {
                    "to": INFERENCE_SERVING_ADDRESS,
                    "data": "0x" + selector("MIN_PROVIDER_STAKE()").hex(),
                },
                "latest",
            ],
        ),
        16,
    )
    service = (
        "chatbot",
        "",
        compute.DEVNET_MODEL,
        "TeeML",
        compute.INPUT_PRICE,
        compute.OUTPUT_PRICE,
        compute.SERVICE_ADDITIONAL_INFO,
        compute.TEE_SIGNER_ADDRESS,
    )
    params = selector(
        "addOrUpdateService((string,string,string,string,uint256,uint256,string,address))"
    ) + encode(["(string,string,string,string,uint256,uint256,string,address)"], [service])
    _send(url, compute.PROVIDER_ADDRESS, INFERENCE_SERVING_ADDRESS, params, stake)
    _send(
        url,
        owner,
        INFERENCE_SERVING_ADDRESS,
        encode_call("acknowledgeTEESignerByOwner(address)", compute.PROVIDER_ADDRESS),
    )


@contextlib.contextmanager
def official_chain(node_modules: Path, log_path: Path) -> Iterator[OfficialChain]:
    """anvil on 127.0.0.1 with the official contracts deployed; stopped on exit."""
    port = _free_port()
    args = [
        str(anvil_binary(node_modules)),
        "--host",
        LOOPBACK_HOST,
        "--port",
        str(port),
        "--chain-id",
        str(DEFAULT_CHAIN_ID),
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    try:
        url = f"http://{LOOPBACK_HOST}:{port}"
        _wait_ready(url, process)
        deploy_official_contracts(url, node_modules)
        yield OfficialChain(rpc_url=url, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
