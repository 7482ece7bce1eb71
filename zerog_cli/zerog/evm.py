"""A minimal EVM JSON-RPC client and the Flow ``submit`` transaction.

Only what storage uploads need: chain id, nonce, fees (legacy and EIP-1559),
gas estimation, ``eth_call``, raw transaction broadcast, receipts, balance.
Transactions are signed locally with eth-account from a key the caller
passes; the key is never logged nor put in a message.

Transactions are sent as the official Go storage client sends them
(``contract/contract.go``, ``TransactWithGasAdjustment``): legacy, with
``gasPrice`` from ``eth_gasPrice`` unless one is configured, and re-signed at
1.5 times the price *with the same nonce* when the node refuses it as
underpriced or answers a mempool/timeout error. One nonce means at most one
of the signed versions can ever be mined: a submission is never paid twice.

Resending ``eth_sendRawTransaction`` is safe: the same signed bytes name the
same transaction hash, and a node that already has it answers "already
known", which is read as success here. So the default (retrying) HTTP policy
is used for it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import (
    ConfigError,
    NetworkUnavailable,
    ProtocolError,
    QuotaExceeded,
    RemoteError,
    ZerogError,
)
from zerog_cli.zerog.abi import AbiError, checksum_address, decode_revert, revert_data_from
from zerog_cli.zerog.jsonrpc import JsonRpcClient, Reader, one_line

if TYPE_CHECKING:
    from zerog_cli.infra.http import HttpClient, Timeouts
    from zerog_cli.zerog.flow_abi import Submission
    from zerog_cli.zerog.merkle import FileTree

log = logging.getLogger("zerog.evm")
GAS_LIMIT_MARGIN_PERCENT = 20
_ALREADY_KNOWN = ("already known", "known transaction", "already imported")
_NO_FUNDS = ("insufficient funds",)
_NONCE_TOO_LOW = "nonce too low"
_REPLACEMENT_UNDERPRICED = "replacement transaction underpriced"
_BUMP_ON = ("underpriced", "mempool", "timeout")
"""Refusals answered with a higher gas price (the Go client: "mempool", "timeout")."""
NONCE_ATTEMPTS = 6
TX_TYPES = ("legacy", "eip1559")
BUMP_NUMERATOR, BUMP_DENOMINATOR = 15, 10
"""Each re-signing multiplies the price by 1.5 (the Go client's default ``Step`` 15)."""
DEFAULT_MAX_BUMPS = 4
DEFAULT_RESEND_AFTER = 30.0
"""Seconds without a receipt before a version is re-sent higher (the Go client's 30 s)."""


LOG_LIMIT_CODES = (-32005,)
"""Infura's documented code for a log query over its limits."""
LOG_LIMIT_MARKERS = (
    "query returned more than",  # Infura, the devnet
    "block range too large",  # the devnet
    "exceeds limit",  # Infura's live range check: "range N exceeds limit of M"
    "range limit",  # Tenderly: "range N is bigger than range limit M"
    "exceeds server limit",  # Erigon: "query block range exceeds server limit"
    "too many logs",  # Erigon's result cap
    "response size exceeded",  # Alchemy
    "blocks distance",  # Ethermint: "maximum [from, to] blocks distance: N"
)
"""How RPC nodes say an ``eth_getLogs`` query asked for too much."""


class LogQueryTooLarge(RemoteError):
    """The node refused an ``eth_getLogs`` range or result count: ask for fewer blocks."""


def is_log_limit(error: RemoteError) -> bool:
    text = f"{error} {error.data if isinstance(error.data, str) else ''}".lower()
    return error.code in LOG_LIMIT_CODES or any(marker in text for marker in LOG_LIMIT_MARKERS)


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    status: int
    block_number: int
    gas_used: int
    effective_gas_price: int | None
    logs: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class FeeParams:
    """Either ``gas_price`` (legacy) or the two EIP-1559 fields."""

    gas_price: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None

    @property
    def eip1559(self) -> bool:
        return self.max_fee_per_gas is not None

    @property
    def worst_case_price(self) -> int:
        return self.max_fee_per_gas if self.max_fee_per_gas is not None else self.gas_price or 0

    def bumped(self, ceiling: int | None = None) -> FeeParams:
        """Every price times 1.5, at most ``ceiling`` (geth replaces a pooled
        transaction only when both EIP-1559 fields rise by 10 %)."""

        def raise_(price: int | None) -> int | None:
            if price is None:
                return None
            higher = max(price * BUMP_NUMERATOR // BUMP_DENOMINATOR, price + 1)
            return higher if ceiling is None else min(higher, ceiling)

        return FeeParams(
            gas_price=raise_(self.gas_price),
            max_fee_per_gas=raise_(self.max_fee_per_gas),
            max_priority_fee_per_gas=raise_(self.max_priority_fee_per_gas),
        )

    def describe(self) -> str:
        if self.eip1559:
            return (
                f"maxFeePerGas {self.max_fee_per_gas}, "
                f"maxPriorityFeePerGas {self.max_priority_fee_per_gas}"
            )
        return f"gasPrice {self.gas_price}"


@dataclass(frozen=True)
class GasOptions:
    """How a transaction pays for gas; every field is a setting and a flag.

    ``gas_price`` (neuron per gas) replaces ``eth_gasPrice`` (legacy) or is
    both EIP-1559 fee fields (as ethers does with a given gasPrice);
    ``gas_limit`` replaces the estimate; ``max_gas_price`` caps the bumps,
    of which there are at most ``max_bumps``; ``resend_after`` is how long a
    version may go unmined before it is signed again at a higher price.
    """

    tx_type: str = "legacy"
    gas_price: int | None = None
    gas_limit: int | None = None
    max_gas_price: int | None = None
    max_bumps: int = DEFAULT_MAX_BUMPS
    resend_after: float = DEFAULT_RESEND_AFTER

    def __post_init__(self) -> None:
        if self.tx_type not in TX_TYPES:
            raise ConfigError(f"tx_type must be one of {', '.join(TX_TYPES)}, not {self.tx_type!r}")


def account_address(private_key: str | bytes) -> str:
    """The checksummed address of a key; ConfigError (without the key) if invalid."""
    from eth_account import Account

    try:
        return str(Account.from_key(private_key).address)
    except Exception:  # eth-account raises several classes; none may leak the key
        raise ConfigError("the private key is not a valid secp256k1 key") from None


class EvmClient:
    """JSON-RPC to one EVM endpoint. ``revert_errors`` are the called contracts' custom errors."""

    def __init__(
        self,
        http: HttpClient,
        url: str,
        *,
        timeout: Timeouts | None = None,
        revert_errors: Sequence[AbiError] = (),
    ) -> None:
        self.rpc = JsonRpcClient(http, url, timeout=timeout, max_response_bytes=8 << 20)
        self.endpoint = self.rpc.endpoint
        self.revert_errors = tuple(revert_errors)
        self._chain_id: int | None = None

    def _reader(self, method: str) -> Reader:
        return Reader(f"{self.endpoint} {method}")

    def _quantity(self, method: str, params: list[Any] | None = None) -> int:
        return self._reader(method).quantity(self.rpc.call(method, params or []), "result")

    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self._quantity("eth_chainId")
        return self._chain_id

    def block_number(self) -> int:
        return self._quantity("eth_blockNumber")

    def block_time(self) -> int:
        """Timestamp (Unix seconds) of the latest block: the clock contracts compare with."""
        method = "eth_getBlockByNumber"
        r = self._reader(method)
        block = r.obj(self.rpc.call(method, ["latest", False]), "result")
        return r.quantity(block.get("timestamp"), "timestamp")

    def nonce(self, address: str, block: str = "pending") -> int:
        return self._quantity("eth_getTransactionCount", [address, block])

    def balance(self, address: str, block: str = "latest") -> int:
        return self._quantity("eth_getBalance", [address, block])

    def gas_price(self) -> int:
        return self._quantity("eth_gasPrice")

    def base_fee(self) -> int | None:
        """``baseFeePerGas`` of the latest block; None on a legacy chain."""
        method = "eth_getBlockByNumber"
        r = self._reader(method)
        block = r.obj(self.rpc.call(method, ["latest", False]), "result")
        value = block.get("baseFeePerGas")
        return None if value is None else r.quantity(value, "baseFeePerGas")

    def max_priority_fee(self) -> int | None:
        """``eth_maxPriorityFeePerGas``, or None when the node does not offer it."""
        try:
            return self._quantity("eth_maxPriorityFeePerGas")
        except RemoteError:
            return None

    def fee_params(self, tx_type: str = "legacy", gas_price: int | None = None) -> FeeParams:
        """Legacy: ``gas_price`` or ``eth_gasPrice`` (both official clients' source).

        EIP-1559: a given ``gas_price`` is both fee fields (ethers' rule);
        otherwise ``2 x baseFee + tip``. ConfigError when the chain has no base fee.
        """
        if tx_type == "legacy":
            return FeeParams(gas_price=self.gas_price() if gas_price is None else gas_price)
        base = self.base_fee()
        if base is None:
            raise ConfigError(
                f"{self.endpoint}: the chain has no base fee, so it takes no EIP-1559 transaction",
                hint="set tx_type = legacy",
            )
        if gas_price is not None:
            return FeeParams(max_fee_per_gas=gas_price, max_priority_fee_per_gas=gas_price)
        tip = self.max_priority_fee()
        if tip is None:
            tip = max(0, self.gas_price() - base)
        return FeeParams(max_fee_per_gas=2 * base + tip, max_priority_fee_per_gas=tip)

    def transaction(self, tx_hash: str) -> Mapping[str, Any] | None:
        """``eth_getTransactionByHash``: the pooled or mined transaction, or None."""
        method = "eth_getTransactionByHash"
        value = self.rpc.call(method, [tx_hash])
        return None if value is None else self._reader(method).obj(value, "result")

    def transactions(self, tx_hashes: list[str]) -> list[Mapping[str, Any] | None]:
        """``eth_getTransactionByHash`` of each hash, in one batch; None for unknown ones."""
        method = "eth_getTransactionByHash"
        answers = self.rpc.batch([(method, [tx_hash]) for tx_hash in tx_hashes])
        found: list[Mapping[str, Any] | None] = []
        for answer in answers:
            if isinstance(answer, RemoteError):
                raise answer
            found.append(None if answer is None else self._reader(method).obj(answer, "result"))
        return found

    def block_times(self, numbers: list[int]) -> dict[int, int]:
        """Timestamp (Unix seconds) of each block number, in one batch."""
        method = "eth_getBlockByNumber"
        answers = self.rpc.batch([(method, [hex(number), False]) for number in numbers])
        times = {}
        r = self._reader(method)
        for number, answer in zip(numbers, answers, strict=True):
            if isinstance(answer, RemoteError):
                raise answer
            times[number] = r.quantity(r.obj(answer, "result").get("timestamp"), "timestamp")
        return times

    def get_logs(
        self, address: str, topics: list[str | None], from_block: int, to_block: int
    ) -> list[dict[str, Any]]:
        """``eth_getLogs`` of ``address`` over blocks [from_block, to_block].

        Raises `LogQueryTooLarge` when the node refuses the range or the number of
        results (public RPCs cap both), so the caller can ask for less.
        """
        method = "eth_getLogs"
        query = {
            "address": address,
            "topics": topics,
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
        }
        try:
            value = self.rpc.call(method, [query])
        except RemoteError as error:
            if is_log_limit(error):
                raise LogQueryTooLarge(
                    str(error), code=error.code, endpoint=self.endpoint
                ) from None
            raise
        r = self._reader(method)
        return [r.obj(item, "log") for item in r.array(value, "result")]

    def call(
        self, to: str, data: bytes, *, sender: str | None = None, block: str = "latest"
    ) -> bytes:
        """``eth_call``; a revert raises RemoteError with the decoded reason."""
        request: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
        if sender is not None:
            request["from"] = sender
        method = "eth_call"
        try:
            value = self.rpc.call(method, [request, block])
        except RemoteError as error:
            raise self._revert_error(error, method) from None
        return self._reader(method).hex_bytes(value, "result")

    def estimate_gas(self, tx: Mapping[str, Any]) -> int:
        method = "eth_estimateGas"
        try:
            return self._quantity(method, [dict(tx)])
        except RemoteError as error:
            raise self._revert_error(error, method) from None

    def send_raw_transaction(self, raw: bytes) -> str:
        """Broadcast signed bytes; returns the hash (checked against the bytes)."""
        from zerog_cli.zerog.abi import keccak256

        expected = "0x" + keccak256(raw).hex()
        method = "eth_sendRawTransaction"
        try:
            value = self.rpc.call(method, ["0x" + raw.hex()])
        except RemoteError as error:
            text = str(error).lower()
            if any(marker in text for marker in _ALREADY_KNOWN):
                return expected
            if any(marker in text for marker in _NO_FUNDS):
                raise QuotaExceeded(
                    f"{self.endpoint}: the account cannot pay for the transaction "
                    "(insufficient funds for gas and value)"
                ) from None
            raise
        got = self._reader(method).hash(value, "result")
        if got != expected:
            raise ProtocolError(f"{self.endpoint} {method}: returned a hash that does not match")
        return got

    def receipt(self, tx_hash: str) -> Receipt | None:
        method = "eth_getTransactionReceipt"
        value = self.rpc.call(method, [tx_hash])
        if value is None:
            return None
        r = self._reader(method)
        obj = r.obj(value, "result")
        logs = []
        for i, item in enumerate(r.array(r.get(obj, "logs", "logs"), "logs", max_len=10_000)):
            entry = r.obj(item, f"logs[{i}]")
            topics = r.array(r.get(entry, "topics", "topics"), f"logs[{i}].topics", max_len=4)
            logs.append(
                {
                    "address": r.address(r.get(entry, "address", "address"), f"logs[{i}].address"),
                    "topics": [r.hash(t, f"logs[{i}].topics") for t in topics],
                    "data": "0x"
                    + r.hex_bytes(r.get(entry, "data", "data"), f"logs[{i}].data").hex(),
                }
            )
        gas_price = obj.get("effectiveGasPrice")
        return Receipt(
            tx_hash=r.hash(r.get(obj, "transactionHash", "transactionHash"), "transactionHash"),
            status=r.quantity(r.get(obj, "status", "status"), "status", high=1),
            block_number=r.quantity(r.get(obj, "blockNumber", "blockNumber"), "blockNumber"),
            gas_used=r.quantity(r.get(obj, "gasUsed", "gasUsed"), "gasUsed"),
            effective_gas_price=None
            if gas_price is None
            else r.quantity(gas_price, "effectiveGasPrice"),
            logs=tuple(logs),
        )

    def wait_for_receipt(
        self, tx_hash: str, *, timeout: float = 300.0, poll: float = 1.0
    ) -> Receipt:
        """Poll until the transaction is mined; NetworkUnavailable after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.receipt(tx_hash)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise NetworkUnavailable(
                    f"{self.endpoint}: transaction {tx_hash} not mined within {timeout:.0f} s"
                )
            time.sleep(poll)

    def send_transaction(
        self,
        private_key: str | bytes,
        *,
        to: str,
        data: bytes,
        value: int = 0,
        gas: GasOptions | None = None,
        nonce: int | None = None,
        on_signed: Callable[[str], None] | None = None,
    ) -> str:
        """Build, sign and broadcast a transaction; returns the hash the node took.

        Refused as underpriced, or with a mempool/timeout error, it is signed
        again at 1.5 times the price with the same nonce, at most
        ``gas.max_bumps`` times. Without an explicit ``nonce``, "nonce too low"
        (another process of the same account got there first) makes it fetch
        the pending nonce again, a few times, but only once none of its own
        signed versions is known to the chain. ``on_signed(tx_hash)`` runs
        after each signing and before the broadcast, so a caller can journal
        a payment that may be mined even if this process dies next.
        """
        outgoing = _Outgoing(self, private_key, to, data, value, gas or GasOptions(), nonce)
        return outgoing.broadcast(on_signed)

    def transact(
        self,
        private_key: str | bytes,
        *,
        to: str,
        data: bytes,
        value: int = 0,
        gas: GasOptions | None = None,
        on_signed: Callable[[str], None] | None = None,
        timeout: float = 300.0,
        poll: float = 1.0,
    ) -> Receipt:
        """`send_transaction`, then wait for the receipt of whichever version is mined.

        A version not mined within ``gas.resend_after`` seconds is signed again
        at 1.5 times the price with the same nonce (the Go client's 30 s
        "timeout"), while the earlier versions stay watched: the one nonce
        lets only one of them be mined. NetworkUnavailable after ``timeout``.
        """
        gas = gas or GasOptions()
        outgoing = _Outgoing(self, private_key, to, data, value, gas, None)
        outgoing.broadcast(on_signed)
        started = time.monotonic()
        resend_at = started + gas.resend_after
        resending = True
        while True:
            for tx_hash in reversed(outgoing.hashes):
                found = self.receipt(tx_hash)
                if found is not None:
                    return found
            now = time.monotonic()
            if now >= started + timeout:
                raise NetworkUnavailable(
                    f"{self.endpoint}: transaction {outgoing.hashes[-1]} not mined within "
                    f"{timeout:.0f} s"
                )
            if now >= resend_at and resending and outgoing.can_raise():
                outgoing.raise_price(
                    f"{self.endpoint}: transaction {outgoing.hashes[-1]} not mined "
                    f"within {gas.resend_after:.0f} s"
                )
                outgoing.maybe_pooled = True
                try:
                    outgoing.broadcast(on_signed)
                except ZerogError as error:
                    # An earlier version is still in the pool and may be mined:
                    # keep watching it rather than give up on a paid submission.
                    log.warning("re-sending stopped (%s); waiting for the earlier version", error)
                    resending = False
                resend_at = time.monotonic() + gas.resend_after
            time.sleep(poll)

    def known_version(self, hashes: list[str]) -> str | None:
        """The first of ``hashes`` the chain knows (pooled or mined)."""
        for tx_hash in hashes:
            if self.transaction(tx_hash) is not None:
                return tx_hash
        return None

    def _revert_error(self, error: RemoteError, method: str) -> RemoteError:
        revert = revert_data_from(error)
        if not revert:
            text = str(error)
            if any(marker in text.lower() for marker in _NO_FUNDS):
                raise QuotaExceeded(
                    f"{self.endpoint}: the account cannot pay for the transaction "
                    "(insufficient funds for gas and value)"
                )
            return error
        reason = decode_revert(revert, self.revert_errors).message
        return RemoteError(
            f"{self.endpoint} {method}: reverted: {reason}",
            code=error.code,
            data=error.data,
            kind="fatal",
            endpoint=self.endpoint,
        )


class _Outgoing:
    """One transaction on its way: every version shares the nonce; the price rises."""

    def __init__(
        self,
        evm: EvmClient,
        private_key: str | bytes,
        to: str,
        data: bytes,
        value: int,
        gas: GasOptions,
        nonce: int | None,
    ) -> None:
        self.evm = evm
        self.private_key = private_key
        self.gas = gas
        self.fixed_nonce = nonce
        self.sender = account_address(private_key)
        self.tx: dict[str, Any] = {
            "chainId": evm.chain_id(),
            "to": checksum_address(to),
            "value": value,
            "data": "0x" + data.hex(),
        }
        gas_limit = gas.gas_limit
        if gas_limit is None:
            estimate = evm.estimate_gas(
                {
                    "from": self.sender,
                    "to": self.tx["to"],
                    "data": self.tx["data"],
                    "value": hex(value),
                }
            )
            gas_limit = estimate + estimate * GAS_LIMIT_MARGIN_PERCENT // 100
        self.tx["gas"] = gas_limit
        self.fees = evm.fee_params(gas.tx_type, gas.gas_price)
        if gas.max_gas_price is not None and self.fees.worst_case_price > gas.max_gas_price:
            raise ConfigError(
                f"{evm.endpoint}: the gas price ({self.fees.describe()}) is above "
                f"max_gas_price {gas.max_gas_price}",
                hint="raise max_gas_price or wait for cheaper gas",
            )
        self.nonce = evm.nonce(self.sender) if nonce is None else nonce
        self.hashes: list[str] = []
        self.bumps = 0
        self.nonce_retries = 0
        self.maybe_pooled = False  # a version at this nonce may sit in the node's pool

    def can_raise(self) -> bool:
        return self.bumps < self.gas.max_bumps and self.fees.bumped(self.gas.max_gas_price) != (
            self.fees
        )

    def raise_price(self, reason: str) -> None:
        """1.5 times the price, same nonce; RemoteError when no raise is left.

        ``reason`` names the endpoint and what it did (it starts the messages).
        """
        endpoint = self.evm.endpoint
        if self.bumps >= self.gas.max_bumps:
            raise RemoteError(
                f"transaction still refused after {self.bumps} gas price "
                f"raise(s) at {self.fees.describe()}: {reason}",
                kind="fatal",
                endpoint=endpoint,
            )
        higher = self.fees.bumped(self.gas.max_gas_price)
        if higher == self.fees:
            raise RemoteError(
                f"transaction refused at max_gas_price ({self.fees.describe()}): {reason}",
                kind="fatal",
                endpoint=endpoint,
            )
        self.bumps += 1
        log.warning(
            "%s; signing the transaction again with nonce %d at %s",
            reason,
            self.nonce,
            higher.describe(),
        )
        self.fees = higher

    def broadcast(self, on_signed: Callable[[str], None] | None) -> str:
        """Sign at the current price and send until a node takes a version."""
        from eth_account import Account

        from zerog_cli.zerog.abi import keccak256

        evm = self.evm
        while True:
            self.tx["nonce"] = self.nonce
            _set_fees(self.tx, self.fees)
            try:
                signed = Account.sign_transaction(self.tx, self.private_key)
            except Exception:  # never let a library message carry the key
                raise ConfigError("could not sign the transaction with the given key") from None
            raw = bytes(signed.raw_transaction)
            self.hashes.append("0x" + keccak256(raw).hex())
            if on_signed is not None:
                on_signed(self.hashes[-1])
            try:
                return evm.send_raw_transaction(raw)
            except RemoteError as error:
                taken = self._after_refusal(error)
            if taken is not None:
                return taken

    def _after_refusal(self, error: RemoteError) -> str | None:
        """Set up the next attempt (new nonce, or higher price) or re-raise ``error``.

        Returns the hash of a version of ours the chain already has, if any:
        "nonce too low" after an answer got lost means it was taken.
        """
        text = str(error).lower()
        evm = self.evm
        if _NONCE_TOO_LOW in text:
            taken = evm.known_version(self.hashes)
            if taken is not None:
                return taken
            if self.fixed_nonce is not None or self.maybe_pooled:
                raise error
            if self.nonce_retries >= NONCE_ATTEMPTS:
                raise error
            self.nonce_retries += 1
            time.sleep(random.uniform(0.05, 0.3))
            self.nonce = evm.nonce(self.sender)
            return None
        if not any(marker in text for marker in _BUMP_ON):
            raise error
        if _REPLACEMENT_UNDERPRICED in text and self.fixed_nonce is None and not self.maybe_pooled:
            # Someone else's transaction may hold this nonce in the pool:
            # a newer pending nonce means ours was not the one refused.
            fresh = evm.nonce(self.sender)
            if fresh != self.nonce and self.nonce_retries < NONCE_ATTEMPTS:
                self.nonce_retries += 1
                self.nonce = fresh
                return None
        self.maybe_pooled = self.maybe_pooled or "underpriced" not in text
        self.raise_price(one_line(str(error), 160))
        return None


def _set_fees(tx: dict[str, Any], fees: FeeParams) -> None:
    if fees.eip1559:
        tx.pop("gasPrice", None)
        tx["type"] = 2
        tx["maxFeePerGas"] = fees.max_fee_per_gas
        tx["maxPriorityFeePerGas"] = fees.max_priority_fee_per_gas
    else:
        tx["gasPrice"] = fees.gas_price


# -- Flow submission ---------------------------------------------------------


@dataclass(frozen=True)
class FeeQuote:
    flow_address: str
    market_address: str
    price_per_sector: int
    sectors: int

    @property
    def fee(self) -> int:
        """Neuron to send with ``submit``: sectors x pricePerSector."""
        return self.sectors * self.price_per_sector


@dataclass(frozen=True)
class SubmitResult:
    tx_hash: str
    tx_seq: int
    start_entry_index: int
    sectors: int
    fee: int
    gas_used: int
    effective_gas_price: int | None
    block_number: int


def build_submission(tree: FileTree, submitter: str, tags: bytes = b"") -> Submission:
    """Spec 5.2: length in bytes, tags, the tree's submission nodes, submitter."""
    from zerog_cli.zerog.flow_abi import ZERO_ADDRESS, Submission, SubmissionData

    if submitter.lower() == ZERO_ADDRESS:
        raise ConfigError("the submitter must not be the zero address")
    data = SubmissionData(length=tree.size, tags=tags, nodes=tuple(tree.submission_nodes))
    return Submission(data=data, submitter=submitter)


def quote_fee(evm: EvmClient, flow_address: str, tree: FileTree) -> FeeQuote:
    """Read ``Flow.market()`` then ``market.pricePerSector()``; no transaction."""
    from zerog_cli.zerog import flow_abi

    where = f"{evm.endpoint} eth_call"
    try:
        market = flow_abi.decode_address_word(evm.call(flow_address, flow_abi.MARKET_SELECTOR))
        price = flow_abi.decode_uint_word(evm.call(market, flow_abi.PRICE_PER_SECTOR_SELECTOR))
    except ValueError as error:
        raise ProtocolError(
            f"{where}: malformed market answer from Flow contract {flow_address} "
            f"(is it the Flow contract?): {one_line(str(error), 120)}"
        ) from None
    return FeeQuote(
        flow_address=flow_address.lower(),
        market_address=market.lower(),
        price_per_sector=price,
        sectors=tree.fee_sectors,
    )


def submit_file(
    evm: EvmClient,
    flow_address: str,
    tree: FileTree,
    private_key: str | bytes,
    *,
    fee: int | None = None,
    tags: bytes = b"",
    gas: GasOptions | None = None,
    receipt_timeout: float = 300.0,
    receipt_poll: float = 1.0,
    on_signed: Callable[[str], None] | None = None,
) -> SubmitResult:
    """Pay for ``tree`` on the Flow contract and return its txSeq (spec 5.4, 5.5).

    ``fee`` defaults to the quoted sectors x pricePerSector. Any excess over
    the fee stays in the Flow contract, so never pass more than the quote.
    """
    from zerog_cli.zerog import flow_abi

    if fee is None:
        fee = quote_fee(evm, flow_address, tree).fee
    submission = build_submission(tree, account_address(private_key), tags)
    receipt = evm.transact(
        private_key,
        to=flow_address,
        data=flow_abi.encode_submit_calldata(submission),
        value=fee,
        gas=gas,
        on_signed=on_signed,
        timeout=receipt_timeout,
        poll=receipt_poll,
    )
    return read_submission(evm, receipt.tx_hash, flow_address, tree, fee=fee, poll=receipt_poll)


def read_submission(
    evm: EvmClient,
    tx_hash: str,
    flow_address: str,
    tree: FileTree,
    *,
    fee: int,
    timeout: float = 300.0,
    poll: float = 1.0,
) -> SubmitResult:
    """Where a mined Flow payment for ``tree`` put it: txSeq and flow position.

    Also used for a payment an earlier run made and did not use (a rerun
    reuses it instead of paying again).
    """
    from zerog_cli.zerog import flow_abi

    receipt = evm.wait_for_receipt(tx_hash, timeout=timeout, poll=poll)
    if receipt.status != 1:
        raise RemoteError(
            f"{evm.endpoint}: Flow submit transaction {tx_hash} reverted",
            kind="fatal",
            endpoint=evm.endpoint,
        )
    events = flow_abi.find_submit_events(receipt.logs, flow_address)
    if len(events) != 1:
        raise ProtocolError(
            f"{evm.endpoint}: receipt of {tx_hash} holds {len(events)} Submit events, expected 1"
        )
    event = events[0]
    if tuple(event.submission.data.nodes) != tuple(tree.submission_nodes):
        raise ProtocolError(f"{evm.endpoint}: the Submit event of {tx_hash} names other nodes")
    return SubmitResult(
        tx_hash=tx_hash,
        tx_seq=event.tx_seq,
        start_entry_index=event.start_pos,
        sectors=event.sectors,
        fee=fee,
        gas_used=receipt.gas_used,
        effective_gas_price=receipt.effective_gas_price,
        block_number=receipt.block_number,
    )
