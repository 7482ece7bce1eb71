"""The devnet over anvil and the official 0G contracts (``zerog devnet up --chain anvil``).

Nothing of theirs is part of zerog: anvil (npm ``@foundry-rs/anvil``, its
Linux build inside ``@foundry-rs/anvil-linux-amd64``) and the contracts'
creation bytecode (the typechain factories inside the official storage and
compute SDK packages) are read at run time from an installed ``node_modules``
folder (`find_packages`; `make test-tools` installs the pinned ones).

`AnvilNode` starts anvil on 127.0.0.1 and a free port. `deploy_official_contracts`
deploys ``FixedPriceFlow``, ``FixedPrice``, ``LedgerManager`` and
``InferenceServing`` and puts each one's runtime code at the devnet's address
for it (``anvil_setCode``: the compute contracts lock their initializers in
their constructor, as logic contracts behind a proxy do, so the code runs in
the storage of the devnet address, as it does behind the official beacon
proxies), then initializes them with the devnet's constants. `seed_devnet`
gives the chain the devnet's genesis by transactions: the dev account's
100 0G ledger with 10 0G at the seeded provider, and only the dev account
holding 0G. `AnvilServices` registers each provider broker's service by
transaction, staking the 100 0G the official InferenceServing requires, and
has the owner acknowledge its TEE signer.

`AnvilChain` is the devnet's `chains.DevnetChain` over anvil's JSON-RPC: one
thread polls ``eth_blockNumber``, fetches each new block's header and the
Flow's logs (``eth_getLogs``), and hands them to the storage nodes, which so
learn of submissions the way real nodes do. `AnvilRpcProxy` serves the
devnet's ``/`` (the EVM RPC the ``devnet`` profile uses) by passing each
request on to anvil.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerog_cli.devnet import children, compute
from zerog_cli.devnet.chain import ChainError
from zerog_cli.devnet.chains import BlockListener
from zerog_cli.devnet.constants import (
    DEFAULT_PRICE_PER_SECTOR,
    DEV_ACCOUNT_ADDRESS,
    DEV_ACCOUNT_BALANCE,
    FLOW_ADDRESS,
    INFERENCE_SERVING_ADDRESS,
    LEDGER_MANAGER_ADDRESS,
    LOOPBACK_HOST,
    MARKET_ADDRESS,
)
from zerog_cli.devnet.contracts import Revert
from zerog_cli.devnet.jsonrpc import INJECTED_FAULT_MESSAGE, SERVER_ERROR
from zerog_cli.errors import ConfigError, NetworkUnavailable
from zerog_cli.zerog.abi import AbiFunction, checksum_address, keccak256
from zerog_cli.zerog.compute_abi import (
    INFERENCE_SERVING,
    decode_get_all_services,
    encode_add_ledger,
    encode_get_all_services,
    encode_transfer_fund,
)

if TYPE_CHECKING:
    import requests

    from zerog_cli.devnet.faults import FaultDecision, FaultInjector

logger = logging.getLogger(__name__)

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
PACKAGES_ENV = "ZEROG_NODE_MODULES"
HOW_TO_GET_THEM = (
    f"set {PACKAGES_ENV} to a node_modules folder holding @foundry-rs/anvil,"
    " @0gfoundation/0g-ts-sdk and @0gfoundation/0g-compute-ts-sdk"
    " (npm install them); in a zerog checkout `make test-tools` puts the pinned ones"
    " in $ZEROG_NPM_CACHE"
)

REWARD_ADDRESS = "0x00000000000000000000000000000000000a3a2d"
"""Where the official market forwards every fee (``IReward.fillReward``). The
devnet has no reward contract; on anvil a one-byte ``STOP`` accepts the calls."""
BLOCKS_PER_EPOCH = 1_000_000_000
"""Flow mining epochs: so long that none ever ends (the devnet has no mining,
so it never emits ``NewEpoch``)."""
DEPLOYER_ADDRESS = "0x00000000000000000000000000000000de910e72"
"""Creates the contracts whose code then moves to the devnet addresses. Not the
dev account: its first creations land on those very addresses (they are its
CREATE addresses), and a compute contract's constructor locks the storage there."""
SETUP_GAS = 15_000_000
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.1
"""Seconds between two polls of anvil's head: how late at most a node learns of a block."""
MAX_BLOCKS_PER_POLL = 500
NO_PROXY = {"http": "", "https": ""}


class AnvilError(ChainError):
    """anvil answered a JSON-RPC request with an error object."""


# -- the packages -------------------------------------------------------------------


def _complete(node_modules: Path) -> bool:
    return (node_modules / ANVIL_BINARY).is_file() and all(
        (node_modules / factory).is_file() for factory in FACTORIES.values()
    )


def _pinned_digest() -> str | None:
    """The digest naming the cache folder of this checkout's pinned lock file."""
    lock = Path(__file__).resolve().parents[2] / "tests" / "interop" / "package-lock.json"
    try:
        return hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def find_packages(explicit: Path | str | None = None) -> Path:
    """The ``node_modules`` folder with anvil and the official SDK packages; exit 8 when none.

    In order: ``explicit`` (``--packages``), ``$ZEROG_NODE_MODULES``, then the
    test tools' npm cache (``$ZEROG_NPM_CACHE`` or a checkout's
    ``.cache/npm-interop``), the folder of this checkout's pinned lock file first.
    """
    explicit = explicit or os.environ.get(PACKAGES_ENV) or None
    if explicit:
        folder = Path(explicit).expanduser()
        if not _complete(folder):
            raise ConfigError(
                f"{folder} does not hold anvil and the official 0G SDK packages",
                hint=HOW_TO_GET_THEM,
            )
        return folder.resolve()
    digest = _pinned_digest()
    for cache in children.npm_cache_folders():
        candidates = sorted(cache.glob("*/node_modules"))
        candidates.sort(key=lambda folder: folder.parent.name != digest)
        for candidate in candidates:
            if _complete(candidate):
                return candidate
    raise ConfigError(
        "--chain anvil needs anvil and the official 0G SDK packages (npm), and none were found",
        hint=HOW_TO_GET_THEM,
    )


def anvil_binary(node_modules: Path) -> Path:
    binary = node_modules / ANVIL_BINARY
    if not binary.is_file():
        raise ConfigError(f"{binary} is missing", hint=HOW_TO_GET_THEM)
    return binary


def official_bytecode(node_modules: Path, contract: str) -> bytes:
    """The creation bytecode of ``contract``, read out of the official SDK package."""
    source = (node_modules / FACTORIES[contract]).read_text(encoding="utf-8")
    found = _BYTECODE.search(source)
    if found is None:
        raise ConfigError(f"no bytecode in {FACTORIES[contract]}", hint=HOW_TO_GET_THEM)
    return bytes.fromhex(found.group(1)[2:])


# -- JSON-RPC ------------------------------------------------------------------------


FLOW_INITIALIZE = AbiFunction("initialize", ["address", "uint256"])
MARKET_INITIALIZE = AbiFunction("initialize", ["uint256", "address", "address"])
LEDGER_INITIALIZE = AbiFunction("initialize", ["address"])
SERVING_INITIALIZE = AbiFunction("initialize", ["uint256", "address", "address"])
REGISTER_SERVICE = AbiFunction("registerService", ["string", "string", "address", "string"])
SET_RECOMMENDED_SERVICE = AbiFunction("setRecommendedService", ["string", "string"])
ADD_OR_UPDATE_SERVICE = AbiFunction(
    "addOrUpdateService", ["(string,string,string,string,uint256,uint256,string,address)"]
)
ACKNOWLEDGE_TEE_SIGNER_BY_OWNER = AbiFunction("acknowledgeTEESignerByOwner", ["address"])
MIN_PROVIDER_STAKE = AbiFunction("MIN_PROVIDER_STAKE", [], ["uint256"])
"""The official contracts' set-up functions (not part of what a client calls)."""


class AnvilRpc:
    """A JSON-RPC client of one anvil (one keep-alive session, thread-safe)."""

    def __init__(self, url: str) -> None:
        import requests

        self.url = url
        self._local = threading.local()
        self._requests = requests

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._requests.Session()
            session.trust_env = False
            self._local.session = session
        return session

    def post(self, body: bytes) -> bytes:
        """One raw JSON-RPC exchange."""
        try:
            answer = self._session().post(
                self.url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=60,
                proxies=NO_PROXY,
            )
        except self._requests.RequestException as error:
            raise NetworkUnavailable(f"anvil at {self.url} did not answer: {error}") from None
        return answer.content

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Results of ``calls`` sent as one batch, in order."""
        if not calls:
            return []
        body = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
            for i, (method, params) in enumerate(calls)
        ]
        answers = json.loads(self.post(json.dumps(body).encode()))
        by_id = {answer["id"]: answer for answer in answers}
        return [_result(by_id[i]) for i in range(len(calls))]

    def __call__(self, method: str, params: list[Any] | None = None) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
        return _result(json.loads(self.post(json.dumps(body).encode())))

    def send(self, sender: str, to: str | None, data: bytes, value: int = 0) -> dict[str, Any]:
        """Send from an account anvil holds or impersonates; the receipt, which must succeed."""
        tx: dict[str, Any] = {
            "from": sender,
            "data": "0x" + data.hex(),
            "value": hex(value),
            "gas": hex(SETUP_GAS),
        }
        if to is not None:
            tx["to"] = to
        receipt = self.wait_receipt(self("eth_sendTransaction", [tx]))
        if receipt["status"] != "0x1":
            raise ChainError(f"setting up the official contracts failed at 0x{data[:4].hex()}")
        return receipt

    def wait_receipt(self, tx_hash: str) -> dict[str, Any]:
        """The receipt of ``tx_hash``: anvil may answer the send just before it mines."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            receipt: dict[str, Any] | None = self("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return receipt
            time.sleep(0.02)
        raise NetworkUnavailable(f"anvil did not mine {tx_hash}")


def _result(answer: dict[str, Any]) -> Any:
    error = answer.get("error")
    if error is not None:
        code = int(error.get("code", SERVER_ERROR))
        raise AnvilError(str(error.get("message")), code, error.get("data"))
    return answer.get("result")


# -- anvil itself ----------------------------------------------------------------------


PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    """In the child before anvil starts: SIGTERM when the devnet dies, even by SIGKILL,
    so no anvil outlives its devnet (Linux, as is the anvil build the devnet runs)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class AnvilNode:
    """One anvil process on 127.0.0.1 and a free port (a child of this process)."""

    def __init__(self, node_modules: Path, chain_id: int, log_path: Path) -> None:
        self.binary = anvil_binary(node_modules)
        self.chain_id = chain_id
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK_HOST}:{self.port}"

    def start(self) -> AnvilRpc:
        self.port = children.free_port()
        args = [
            str(self.binary),
            "--host",
            LOOPBACK_HOST,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_end_with_parent,
            )
        rpc = AnvilRpc(self.url)
        try:
            self._wait_ready(rpc)
        except BaseException:
            self.stop()
            raise
        logger.info("anvil serving on %s (log %s)", self.url, self.log_path)
        return rpc

    def _wait_ready(self, rpc: AnvilRpc) -> None:
        def answers() -> bool:
            with contextlib.suppress(NetworkUnavailable, ValueError):
                rpc("eth_chainId")
                return True
            return False

        assert self.process is not None
        children.wait_ready(
            self.process,
            answers,
            name="anvil",
            log_path=self.log_path,
            timeout=START_TIMEOUT,
            late=f"anvil did not answer within {START_TIMEOUT:.0f} s",
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            children.stop(process, STOP_TIMEOUT)


# -- the official contracts, set up as the devnet's ---------------------------------------


def _install(rpc: AnvilRpc, creation: bytes, address: str) -> None:
    """Deploy ``creation``, then put its runtime code at ``address``."""
    receipt = rpc.send(DEPLOYER_ADDRESS, None, creation)
    code = rpc("eth_getCode", [receipt["contractAddress"], "latest"])
    rpc("anvil_setCode", [address, code])


def deploy_official_contracts(
    rpc: AnvilRpc, node_modules: Path, *, price_per_sector: int = DEFAULT_PRICE_PER_SECTOR
) -> None:
    """The official storage and compute contracts at the devnet's addresses, initialized
    as the devnet's: owner the dev account, ``inference-v2.0`` registered and recommended."""
    from eth_abi import encode

    rpc("anvil_impersonateAccount", [DEPLOYER_ADDRESS])
    rpc("anvil_setBalance", [DEPLOYER_ADDRESS, hex(10**18)])
    flow_creation = official_bytecode(node_modules, "FixedPriceFlow") + encode(["uint256"], [0])
    _install(rpc, flow_creation, FLOW_ADDRESS)
    _install(rpc, official_bytecode(node_modules, "FixedPrice"), MARKET_ADDRESS)
    _install(rpc, official_bytecode(node_modules, "LedgerManager"), LEDGER_MANAGER_ADDRESS)
    _install(rpc, official_bytecode(node_modules, "InferenceServing"), INFERENCE_SERVING_ADDRESS)
    rpc("anvil_stopImpersonatingAccount", [DEPLOYER_ADDRESS])
    rpc("anvil_setBalance", [DEPLOYER_ADDRESS, "0x0"])
    rpc("anvil_setCode", [REWARD_ADDRESS, "0x00"])
    owner = DEV_ACCOUNT_ADDRESS
    setup = [
        (
            FLOW_ADDRESS,
            FLOW_INITIALIZE.encode(MARKET_ADDRESS, BLOCKS_PER_EPOCH),
        ),
        (
            MARKET_ADDRESS,
            MARKET_INITIALIZE.encode(price_per_sector, FLOW_ADDRESS, REWARD_ADDRESS),
        ),
        (LEDGER_MANAGER_ADDRESS, LEDGER_INITIALIZE.encode(owner)),
        (
            INFERENCE_SERVING_ADDRESS,
            SERVING_INITIALIZE.encode(compute.LOCK_TIME, LEDGER_MANAGER_ADDRESS, owner),
        ),
        (
            LEDGER_MANAGER_ADDRESS,
            REGISTER_SERVICE.encode(
                compute.SERVICE_TYPE,
                compute.SERVICE_VERSION,
                INFERENCE_SERVING_ADDRESS,
                "0G inference serving (devnet)",
            ),
        ),
        (
            LEDGER_MANAGER_ADDRESS,
            SET_RECOMMENDED_SERVICE.encode(compute.SERVICE_TYPE, compute.SERVICE_VERSION),
        ),
    ]
    for to, data in setup:
        rpc.send(owner, to, data)


@dataclass(frozen=True)
class ServiceSpec:
    """What one provider registers (``addOrUpdateService``'s tuple)."""

    provider: str
    url: str
    model: str
    input_price: int
    output_price: int
    additional_info: str
    tee_signer: str


def seeded_service(url: str = "") -> ServiceSpec:
    """The devnet's seeded service (Hardhat #1, format A)."""
    return ServiceSpec(
        compute.PROVIDER_ADDRESS,
        url,
        compute.DEVNET_MODEL,
        compute.INPUT_PRICE,
        compute.OUTPUT_PRICE,
        compute.SERVICE_ADDITIONAL_INFO,
        compute.TEE_SIGNER_ADDRESS,
    )


def provider_stake(rpc: AnvilRpc) -> int:
    """``MIN_PROVIDER_STAKE`` of the official InferenceServing (100 0G in 0.9.0)."""
    call = {"to": INFERENCE_SERVING_ADDRESS, "data": "0x" + MIN_PROVIDER_STAKE.encode().hex()}
    (stake,) = MIN_PROVIDER_STAKE.decode_output(
        bytes.fromhex(rpc("eth_call", [call, "latest"])[2:])
    )
    return int(stake)


def register_service(rpc: AnvilRpc, spec: ServiceSpec, *, stake: int) -> None:
    """Register (or update) ``spec`` from its provider's account, staking ``stake`` when
    it is new, and have the owner acknowledge its TEE signer. The provider's account
    is impersonated, funded for the stake and emptied again: as on the devnet, it
    holds no 0G of its own."""
    service_exists = INFERENCE_SERVING.function("serviceExists")
    exists_call = {
        "to": INFERENCE_SERVING_ADDRESS,
        "data": "0x" + service_exists.encode(spec.provider).hex(),
    }
    (exists,) = service_exists.decode_output(bytes.fromhex(rpc("eth_call", [exists_call])[2:]))
    value = 0 if exists else stake
    service = (
        "chatbot",
        spec.url,
        spec.model,
        "TeeML",
        spec.input_price,
        spec.output_price,
        spec.additional_info,
        spec.tee_signer,
    )
    data = ADD_OR_UPDATE_SERVICE.encode(service)
    rpc("anvil_impersonateAccount", [spec.provider])
    try:
        rpc("anvil_setBalance", [spec.provider, hex(value + 10**18)])
        rpc.send(spec.provider, INFERENCE_SERVING_ADDRESS, data, value)
        rpc("anvil_setBalance", [spec.provider, "0x0"])
    finally:
        rpc("anvil_stopImpersonatingAccount", [spec.provider])
    rpc.send(
        DEV_ACCOUNT_ADDRESS,
        INFERENCE_SERVING_ADDRESS,
        ACKNOWLEDGE_TEE_SIGNER_BY_OWNER.encode(spec.provider),
    )


def seed_devnet(rpc: AnvilRpc) -> None:
    """The devnet's genesis, by transactions: the dev account's 100 0G ledger with 10 0G
    in a sub-account at the seeded provider; then only the dev account holds 0G (its
    10,000), as on the devnet (anvil funds all ten of its default accounts)."""
    rpc.send(
        DEV_ACCOUNT_ADDRESS,
        LEDGER_MANAGER_ADDRESS,
        encode_add_ledger(),
        compute.SEED_LEDGER_BALANCE,
    )
    rpc.send(
        DEV_ACCOUNT_ADDRESS,
        LEDGER_MANAGER_ADDRESS,
        encode_transfer_fund(
            compute.PROVIDER_ADDRESS, compute.SERVICE_NAME, compute.SEED_SUB_ACCOUNT_BALANCE
        ),
    )
    for account in rpc("eth_accounts"):
        amount = DEV_ACCOUNT_BALANCE if account.lower() == DEV_ACCOUNT_ADDRESS.lower() else 0
        rpc("anvil_setBalance", [account, hex(amount)])


@contextlib.contextmanager
def official_chain(node_modules: Path, log_path: Path, chain_id: int) -> Iterator[AnvilRpc]:
    """anvil with the official contracts deployed and the seeded provider registered
    (no URL, no dev ledger): the differential tests' twin of the devnet chain."""
    node = AnvilNode(node_modules, chain_id, log_path)
    rpc = node.start()
    try:
        deploy_official_contracts(rpc, node_modules)
        register_service(rpc, seeded_service(), stake=provider_stake(rpc))
        yield rpc
    finally:
        node.stop()


# -- the devnet's chain over anvil ---------------------------------------------------------


class AnvilChain:
    """`chains.DevnetChain` over anvil's JSON-RPC, following its blocks by polling."""

    def __init__(self, rpc: AnvilRpc, chain_id: int, followed: list[str]) -> None:
        self.rpc = rpc
        self._chain_id = chain_id
        self._followed = [address.lower() for address in followed]
        self._lock = threading.RLock()
        self._listeners: list[BlockListener] = []
        self._blocks_with_logs: list[dict[str, Any]] = []
        self._next = 0
        self._head: tuple[int, str] = (-1, "0x" + "00" * 32)
        self._transactions = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- following ---------------------------------------------------------------------

    def start(self) -> None:
        """Follow every block so far, then keep following in a background thread."""
        self.sync()
        self._thread = threading.Thread(target=self._follow, name="anvil-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _follow(self) -> None:
        failing = False
        while not self._stop.wait(POLL_INTERVAL):
            try:
                self.sync()
            except (ChainError, NetworkUnavailable, ValueError, KeyError) as error:
                if not failing:
                    logger.warning("following anvil failed (retrying quietly): %s", error)
                failing = True
                continue
            if failing:
                logger.info("following anvil again")
                failing = False

    def sync(self) -> None:
        """Take in every block anvil has mined since the last call."""
        with self._lock:
            latest = int(self.rpc("eth_blockNumber"), 16)
            while self._next <= latest:
                last = min(latest, self._next + MAX_BLOCKS_PER_POLL - 1)
                self._take(self._next, last)
                self._next = last + 1

    def _take(self, first: int, last: int) -> None:
        headers = self.rpc.batch(
            [("eth_getBlockByNumber", [hex(number), False]) for number in range(first, last + 1)]
        )
        log_filter = {"fromBlock": hex(first), "toBlock": hex(last), "address": self._followed}
        logs_by_block: dict[int, list[dict[str, Any]]] = {}
        for log in self.rpc("eth_getLogs", [log_filter]):
            log = {**log, "address": str(log["address"]).lower()}
            logs_by_block.setdefault(int(log["blockNumber"], 16), []).append(log)
        for header in headers:
            number = int(header["number"], 16)
            self._transactions += len(header["transactions"])
            self._head = (number, str(header["hash"]))
            logs = logs_by_block.get(number)
            if not logs:
                continue
            logs.sort(key=lambda log: int(log["logIndex"], 16))
            block = {"number": header["number"], "hash": header["hash"], "receipts": []}
            block["receipts"] = [{"logs": logs}]
            self._blocks_with_logs.append(block)
            for listener in self._listeners:
                try:
                    listener(block)
                except Exception:
                    logger.exception("a block listener failed on block %s", number)

    # -- chains.DevnetChain ----------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        return self._chain_id

    @property
    def height(self) -> int:
        return self.head()[0]

    @property
    def transaction_count(self) -> int:
        """Mined so far, the set-up's included; read after a fresh poll, so a count taken
        right after a transaction includes it."""
        self.sync()
        with self._lock:
            return self._transactions

    def head(self) -> tuple[int, str]:
        with self._lock:
            return self._head

    def subscribe(self, listener: BlockListener, *, replay: bool = True) -> None:
        with self._lock:
            if replay:
                for block in self._blocks_with_logs:
                    listener(block)
            self._listeners.append(listener)

    def call(self, sender: str | None, to: str | None, data: bytes, value: int) -> bytes:
        request: dict[str, Any] = {"data": "0x" + data.hex(), "value": hex(value)}
        if sender is not None:
            request["from"] = sender
        if to is not None:
            request["to"] = to
        try:
            result = self.rpc("eth_call", [request, "latest"])
        except AnvilError as error:
            if error.code != 3 and not isinstance(error.data, str):
                raise
            revert = bytes.fromhex(str(error.data or "0x")[2:])
            raise Revert(revert, error.message) from None
        return bytes.fromhex(str(result)[2:])

    def nonce(self, address: str) -> int:
        return int(self.rpc("eth_getTransactionCount", [address, "latest"]), 16)

    def gas_price(self) -> int:
        return int(self.rpc("eth_gasPrice"), 16)

    def send_raw_transaction(self, raw: bytes) -> str:
        tx_hash = str(self.rpc("eth_sendRawTransaction", ["0x" + raw.hex()]))
        self.rpc.wait_receipt(tx_hash)
        return tx_hash

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        receipt: dict[str, Any] | None = self.rpc("eth_getTransactionReceipt", [tx_hash])
        return receipt


# -- the compute services ---------------------------------------------------------------------


class AnvilServices:
    """`chains.ServiceRegistry` on anvil: every service registered by transaction."""

    def __init__(self, rpc: AnvilRpc) -> None:
        self.rpc = rpc
        self.stake = provider_stake(rpc)
        self._lock = threading.Lock()
        self._synthetic = 0

    def publish(self, urls: Mapping[str, str]) -> None:
        from zerog_cli.devnet.provider_kinds import KINDS

        with self._lock:
            for kind in KINDS:
                if kind.address not in urls:
                    continue
                spec = ServiceSpec(
                    kind.address,
                    urls[kind.address],
                    kind.model,
                    kind.input_price,
                    kind.output_price,
                    kind.additional_info,
                    kind.tee_address,
                )
                register_service(self.rpc, spec, stake=self.stake)

    def register_synthetic(self, count: int) -> dict[str, Any]:
        """As the in-process chain's ``devnetRegisterServices``: the same addresses,
        models and prices, each service staked and acknowledged by transactions."""
        with self._lock:
            for _ in range(count):
                number = self._synthetic
                self._synthetic += 1
                address = "0x" + keccak256(f"zerog-devnet-service-{number}".encode())[12:].hex()
                spec = ServiceSpec(
                    checksum_address(address),
                    f"http://127.0.0.1:9/synthetic/{number}",
                    f"devnet-synthetic-{number}",
                    2 * compute.INPUT_PRICE,
                    2 * compute.OUTPUT_PRICE,
                    compute.SERVICE_ADDITIONAL_INFO,
                    compute.TEE_SIGNER_ADDRESS,
                )
                register_service(self.rpc, spec, stake=self.stake)
            page_call = {
                "to": INFERENCE_SERVING_ADDRESS,
                "data": "0x" + encode_get_all_services(0, 1).hex(),
            }
            page = decode_get_all_services(bytes.fromhex(self.rpc("eth_call", [page_call])[2:]))
        return {"transactionHash": None, "services": page.total}


# -- the devnet's EVM RPC ---------------------------------------------------------------------


class AnvilRpcProxy:
    """The devnet's ``/``: each JSON-RPC body passed on to anvil as it is, after the
    devnet's request faults (an injected ``fail_rpc`` answers every request in the
    body with the devnet's fault error instead)."""

    def __init__(self, rpc: AnvilRpc, faults: FaultInjector) -> None:
        self.rpc = rpc
        self.faults = faults

    def handle(self, body: bytes, decision: FaultDecision) -> bytes | None:
        try:
            message = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return self.rpc.post(body)
        requests = message if isinstance(message, list) else [message]
        for request in requests:
            if isinstance(request, dict) and isinstance(request.get("method"), str):
                self.faults.count_method("rpc", request["method"])
        if not decision.fail_rpc:
            return self.rpc.post(body)
        error = {"code": SERVER_ERROR, "message": INJECTED_FAULT_MESSAGE}
        answers = [
            {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
            for request in requests
            if isinstance(request, dict)
        ]
        return json.dumps(answers if isinstance(message, list) else answers[0]).encode()
