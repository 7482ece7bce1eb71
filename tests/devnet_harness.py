"""Run a devnet as a child process for tests, and talk to it.

``start_devnet(data_dir, ...)`` is a context manager: it starts
``python -m zerog_cli.devnet up --port 0`` (the OS picks a free port; the
devnet prints its URLs as one JSON line once it listens), waits until
``eth_chainId`` answers, yields a `DevnetProcess`, and always stops the
process at the end, even when the test fails (SIGTERM, then SIGKILL).

Fixtures (import them into a test module, or list this module in
``pytest_plugins``):

- ``devnet``: a fresh devnet per test, data in the test's ``tmp_path``;
- ``net``: one devnet shared by the tests of a module, and ``cli``: the
  in-process ``zerog`` runner pointed at it with faults switched off.
  ``ZEROG_TEST_INDEXER=official`` runs every ``net`` devnet with the official
  indexer (``--indexer official``) and points ``cli`` at it: `make soak` runs
  the storage end-to-end suite that way. ``ZEROG_TEST_CHAIN=anvil`` starts
  every devnet of `start_devnet` over anvil and the official contracts
  (``--chain anvil``): `make soak` runs the storage and infer suites that way.

The helpers at the bottom (`rpc`, `submit_file`, `upload_file`, ...) are a
minimal client written straight from the spec, so devnet tests do not depend
on the real client.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from zerog_cli.devnet.constants import (
    DEFAULT_PRICE_PER_SECTOR,
    DEV_ACCOUNT_ADDRESS,
    DEV_ACCOUNT_KEY,
    FLOW_ADDRESS,
)
from zerog_cli.zerog import flow_abi, merkle

START_TIMEOUT = 30.0
INDEXER_SWITCH = "ZEROG_TEST_INDEXER"
CHAIN_SWITCH = "ZEROG_TEST_CHAIN"
STOP_TIMEOUT = 10.0
NO_PROXY = {"http": "", "https": ""}


class DevnetStartError(RuntimeError):
    pass


@dataclass
class DevnetProcess:
    """A devnet child process and its URLs."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    base_url: str
    rpc_url: str
    indexer_url: str
    node_urls: list[str]
    provider_url: str
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def pid(self) -> int:
        return self.process.pid

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(
            method, f"{self.base_url}/admin{path}", json=body, timeout=10, proxies=NO_PROXY
        )
        response.raise_for_status()
        return response.json()

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change fault settings at run time (see zerog_cli.devnet.faults)."""
        result: dict[str, Any] = self.admin("POST", "/faults", changes)
        return result

    def clear_faults(self) -> dict[str, Any]:
        return self.set_faults(
            fail_rate=0,
            latency_ms=0,
            corrupt_rate=0,
            drop_rate=0,
            corrupt_nodes=[],
            fail_nodes=[],
            min_gas_price=0,
            underpriced_next=0,
            hold_next=0,
            lag_nodes=[],
            lag_ms=0,
            logs_max_range=0,
            logs_max_results=0,
            stall_nodes=[],
            stall_ms=0,
            targets=["rpc", "indexer", "node", "provider"],
        )

    def stats(self) -> dict[str, Any]:
        """Request counters per service and per ``service:method``, plus tx count."""
        result: dict[str, Any] = self.admin("GET", "/stats")
        return result

    def reset_stats(self) -> None:
        self.admin("POST", "/stats/reset")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("GET", "/health")
        return result

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


def _read_first_line(process: subprocess.Popen[bytes], deadline: float) -> bytes:
    """The devnet's first stdout line, read from the raw pipe with a deadline."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    # poll, not select: select() refuses a descriptor numbered 1024 or more, which a
    # long pytest session that has started many devnets can reach.
    waiter = select.poll()
    waiter.register(fd, select.POLLIN)
    line = b""
    while b"\n" not in line:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DevnetStartError("the devnet did not print its URLs in time")
        if waiter.poll(int(min(remaining, 0.2) * 1000)):
            piece = os.read(fd, 65536)
            if not piece:
                raise DevnetStartError("the devnet exited before it was ready")
            line += piece
        elif process.poll() is not None:
            raise DevnetStartError("the devnet exited before it was ready")
    return line.split(b"\n", 1)[0]


def _wait_chain_id(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevnetStartError("the devnet exited before eth_chainId answered")
        try:
            answer = requests.post(url, json=body, timeout=2, proxies=NO_PROXY)
            if answer.status_code == 200 and "result" in answer.json():
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.05)
    raise DevnetStartError("eth_chainId did not answer in time")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the devnet's process group, SIGKILL if it lingers; always reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextlib.contextmanager
def start_devnet(
    data_dir: Path,
    *,
    nodes: int = 2,
    shards: str | None = None,
    indexer: str = "builtin",
    chain: str | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[DevnetProcess]:
    """Start a devnet on a free port with data in ``data_dir``; stop it on exit.

    ``chain`` defaults to `chain_under_test()`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "zerog_cli.devnet", "up", "--port", "0"]
    args += ["--data-dir", str(data_dir), "--log-level", "WARNING"]
    args += ["--shards", shards] if shards else ["--nodes", str(nodes)]
    chain = chain or chain_under_test()
    args += ["--indexer", indexer, "--chain", chain]
    if chain == "anvil":
        from tools import ts_sdk

        args += ["--packages", str(ts_sdk.node_modules_dir())]
    args += list(extra_args)
    log_path = data_dir / "harness.log"
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        try:
            info = json.loads(_read_first_line(process, deadline))
            _wait_chain_id(info["rpc_url"], process, deadline)
        except DevnetStartError as error:
            text = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise DevnetStartError(f"{error}; log: {text}") from None
        yield DevnetProcess(
            process=process,
            data_dir=data_dir,
            base_url=info["url"],
            rpc_url=info["rpc_url"],
            indexer_url=info["indexer_url"],
            node_urls=list(info["node_urls"]),
            provider_url=info["provider_url"],
            log_path=log_path,
        )
    finally:
        stop_process(process)


@contextlib.contextmanager
def paused(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """``process`` stopped (SIGSTOP) for the block and continued after: a run caught
    holding something (a lock, a payment in flight) still holds it, however
    long a loaded machine takes to run the block."""
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def slow_upload(
    net: DevnetProcess, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``zerog upload ARGS`` in a child process while every storage node call takes 1 s,
    so a test can act on a run in flight (a reserved name, a journaled payment) before it
    ends, even on a loaded machine. On exit a child still running is killed and the
    faults are cleared."""
    net.set_faults(latency_ms=1000, targets=["node"])
    child = subprocess.Popen(
        [sys.executable, "-m", "zerog_cli", "upload", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ) if env is None else env,
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)
        net.clear_faults()


def upload_killed_after_paying(
    net: DevnetProcess, home: Path, source: Path, rows: Callable[[str], list[tuple[Any, ...]]]
) -> list[tuple[Any, ...]]:
    """Upload ``source`` slowly and SIGKILL the run once it has journaled a payment the chain
    has mined; the journal's ``(root, fee_neuron)`` rows at that moment, read with ``rows``
    (SQL in, tuples out: the ledger under test, SQLite or PostgreSQL)."""
    before = net.stats()["transactions"]
    env = {**os.environ, "ZEROG_HOME": str(home), "ZEROG_DEVNET_URL": net.base_url}
    journaled: list[tuple[Any, ...]] = []
    with slow_upload(net, str(source), "-q", env=env) as upload:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            journaled = rows("SELECT root, fee_neuron FROM pending_payments")
            if journaled and net.stats()["transactions"] > before:
                break
            time.sleep(0.05)
        assert journaled, "the payment was never journaled"
        upload.send_signal(signal.SIGKILL)
    return journaled


def asked_of(request: pytest.FixtureRequest) -> dict[str, Any]:
    """What the ``devnet`` marker of the asking test or module passes to `start_devnet`.

    ``pytestmark = pytest.mark.devnet(nodes=1)`` gives a module one storage node
    (compute tests need a provider, not replicas); a bare ``devnet`` marker asks
    nothing, so the devnet has two nodes.
    """
    marker = request.node.get_closest_marker("devnet")
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def devnet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DevnetProcess]:
    """A fresh devnet for one test (two nodes unless its ``devnet`` marker asks otherwise)."""
    with start_devnet(tmp_path / "devnet", **asked_of(request)) as handle:
        yield handle


def indexer_under_test() -> str:
    """``builtin`` unless ``$ZEROG_TEST_INDEXER`` asks for the official indexer."""
    choice = os.environ.get(INDEXER_SWITCH, "builtin") or "builtin"
    if choice not in ("builtin", "official"):
        raise pytest.UsageError(f"{INDEXER_SWITCH} must be builtin or official, not {choice!r}")
    if choice == "official":
        from tools import test_tools

        test_tools.ensure(["go-client"])
    return choice


def chain_under_test() -> str:
    """``builtin`` unless ``$ZEROG_TEST_CHAIN`` asks for anvil and the official contracts."""
    choice = os.environ.get(CHAIN_SWITCH, "builtin") or "builtin"
    if choice not in ("builtin", "anvil"):
        raise pytest.UsageError(f"{CHAIN_SWITCH} must be builtin or anvil, not {choice!r}")
    if choice == "anvil":
        from tools import test_tools

        test_tools.ensure(["anvil"])
    return choice


@pytest.fixture(scope="module")
def net(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevnetProcess]:
    """A devnet shared by the tests of one module (two nodes unless its ``devnet`` marker
    asks otherwise; the indexer `indexer_under_test` names)."""
    options = {"indexer": indexer_under_test(), **asked_of(request)}
    with start_devnet(tmp_path_factory.mktemp("devnet"), **options) as handle:
        yield handle


@pytest.fixture
def cli(zerog: Callable[..., Any], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The in-process `zerog` runner pointed at the module's devnet, faults switched off."""
    monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
    if net.indexer_url != net.base_url + "/indexer":
        monkeypatch.setenv("ZEROG_INDEXER_URL", net.indexer_url)
    net.clear_faults()
    return zerog


# -- a minimal client, written from the spec ------------------------------------------


class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')} {error.get('message')} {error.get('data')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")


def rpc_raw(url: str, method: str, params: list[Any] | None = None, request_id: Any = 1) -> Any:
    """POST one JSON-RPC request; return the whole response object."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        body["params"] = params
    answer = requests.post(url, json=body, timeout=60, proxies=NO_PROXY)
    assert answer.status_code == 200, answer.text
    return answer.json()


def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    """POST one JSON-RPC request; return ``result`` or raise `RpcFailure`."""
    answer = rpc_raw(url, method, params)
    if "error" in answer:
        raise RpcFailure(answer["error"])
    return answer["result"]


def sign_transaction(
    rpc_url: str,
    *,
    to: str,
    data: bytes = b"",
    value: int = 0,
    key: str = DEV_ACCOUNT_KEY,
    legacy: bool = False,
    chain_id: int | None = None,
    nonce: int | None = None,
    gas: int = 500_000,
) -> bytes:
    """A signed raw transaction (type 2, or legacy EIP-155) from ``key``."""
    from eth_account import Account

    from zerog_cli.zerog.abi import checksum_address

    sender = Account.from_key(key).address
    if nonce is None:
        nonce = int(rpc(rpc_url, "eth_getTransactionCount", [sender, "pending"]), 16)
    if chain_id is None:
        chain_id = int(rpc(rpc_url, "eth_chainId"), 16)
    gas_price = int(rpc(rpc_url, "eth_gasPrice"), 16)
    tx: dict[str, Any] = {
        "chainId": chain_id,
        "nonce": nonce,
        "to": checksum_address(to),
        "value": value,
        "data": data,
        "gas": gas,
    }
    if legacy:
        tx["gasPrice"] = gas_price
    else:
        tx.update(type=2, maxFeePerGas=gas_price, maxPriorityFeePerGas=gas_price)
    return bytes(Account.sign_transaction(tx, key).raw_transaction)


def send_transaction(rpc_url: str, **kwargs: Any) -> dict[str, Any]:
    """Sign, send and return the receipt (waited for: anvil may answer the send just
    before it has mined the transaction; the built-in chain mines first)."""
    raw = sign_transaction(rpc_url, **kwargs)
    tx_hash = rpc(rpc_url, "eth_sendRawTransaction", ["0x" + raw.hex()])
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        receipt: dict[str, Any] | None = rpc(rpc_url, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None or time.monotonic() > deadline:
            assert receipt is not None, f"{tx_hash} was not mined in time"
            return receipt
        time.sleep(0.02)


def submission_for(
    tree: merkle.FileTree, submitter: str = DEV_ACCOUNT_ADDRESS
) -> flow_abi.Submission:
    data = flow_abi.SubmissionData(tree.size, b"", tree.submission_nodes)
    return flow_abi.Submission(data, submitter)


def submit_file(
    rpc_url: str, data: bytes, *, price: int = DEFAULT_PRICE_PER_SECTOR, legacy: bool = False
) -> tuple[merkle.FileTree, flow_abi.SubmitEvent]:
    """Pay for ``data`` with the dev account; return its tree and Submit event."""
    tree = merkle.tree_from_bytes(data)
    calldata = flow_abi.encode_submit_calldata(submission_for(tree))
    receipt = send_transaction(
        rpc_url, to=FLOW_ADDRESS, data=calldata, value=tree.fee_sectors * price, legacy=legacy
    )
    assert receipt["status"] == "0x1", receipt
    events = flow_abi.find_submit_events(receipt["logs"], FLOW_ADDRESS)
    assert len(events) == 1
    return tree, events[0]


def segment_payload(tree: merkle.FileTree, data: bytes, index: int) -> dict[str, Any]:
    """The ``SegmentWithProof`` the SDK would send for segment ``index``."""
    offset, length = tree.segment_wire_range(index)
    piece = data[offset : offset + length]
    piece = piece.ljust(-(-len(piece) // 256) * 256, b"\0")
    return {
        "root": tree.root_hex,
        "data": base64.b64encode(piece).decode(),
        "index": index,
        "proof": tree.proof(index).to_json(),
        "fileSize": tree.size,
    }


def upload_file(
    node_url: str, tree: merkle.FileTree, data: bytes, tx_seq: int, indexes: Sequence[int] = ()
) -> None:
    """Upload segments (all data segments by default), one call per segment."""
    for index in indexes or range(tree.num_data_segments):
        rpc(node_url, "zgs_uploadSegmentsByTxSeq", [[segment_payload(tree, data, index)], tx_seq])


def download_file(node_url: str, tx_seq: int, size: int) -> bytes:
    """Download a whole file by tx seq, chunk range by chunk range, trimmed to ``size``."""
    chunks = -(-size // 256)
    pieces = []
    for start in range(0, chunks, 1024):
        end = min(start + 1024, chunks)
        encoded = rpc(node_url, "zgs_downloadSegmentByTxSeq", [tx_seq, start, end])
        assert encoded is not None, f"chunks {start}..{end} missing"
        pieces.append(base64.b64decode(encoded))
    return b"".join(pieces)[:size]


class BytesSource:
    """An upload source (``zerog.segments.SegmentSource``) over bytes in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read_at(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic non-repeating test bytes."""
    import hashlib

    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])
