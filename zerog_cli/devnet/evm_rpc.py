"""The EVM JSON-RPC subset: what ethers 6 (inside the TS SDK), web3.py and our
client send (specs/0g-interop.md 1.2, 2.3, 5.3).

State queries accept any block tag and answer from the latest state (the
devnet keeps no history of balances). Reverts of ``eth_call`` and
``eth_estimateGas`` are answered as geth does: code 3, message
``execution reverted`` (``: <reason>`` for ``Error(string)``), ``data`` = the
revert bytes. Hardhat's ``evm_increaseTime`` and ``evm_mine`` are offered so
tests can pass lock periods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zerog_cli.devnet.chain import ChainError, hex_data, hex_quantity, normalize_address
from zerog_cli.devnet.contracts import Revert
from zerog_cli.devnet.jsonrpc import (
    INVALID_PARAMS,
    SERVER_ERROR,
    JsonRpcService,
    RpcError,
    param,
)
from zerog_cli.devnet.transactions import TransactionError, decode_raw_transaction
from zerog_cli.zerog.abi import ERROR_STRING, decode_revert

if TYPE_CHECKING:
    from zerog_cli.devnet.chain import Chain
    from zerog_cli.devnet.faults import FaultInjector

CLIENT_VERSION = "zerog-devnet/0.1"
REVERT_CODE = 3
LIMIT_EXCEEDED = -32005
"""Infura's code for an ``eth_getLogs`` query over its limits."""


def _argument_error(index: int, detail: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"invalid argument {index}: {detail}")


def _quantity(value: Any, index: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if not isinstance(value, str) or not value.startswith(("0x", "0X")) or len(value) < 3:
        raise _argument_error(index, "hex string without 0x prefix")
    try:
        return int(value, 16)
    except ValueError:
        raise _argument_error(index, "invalid hex string") from None


def _bytes(value: Any, index: int) -> bytes:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise _argument_error(index, "hex string without 0x prefix")
    text = value[2:]
    if len(text) % 2:
        raise _argument_error(index, "hex string of odd length")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise _argument_error(index, "invalid hex string") from None


def _address(value: Any, index: int) -> str:
    if not isinstance(value, str):
        raise _argument_error(index, "expected an address string")
    try:
        return normalize_address(value)
    except ValueError:
        raise _argument_error(
            index, f"hex string has length {max(len(value) - 2, 0)}, want 40 for common.Address"
        ) from None


def _revert_error(revert: Revert) -> RpcError:
    message = "execution reverted"
    if revert.data[:4] == ERROR_STRING.selector:
        message = f"execution reverted: {decode_revert(revert.data).message}"
    return RpcError(REVERT_CODE, message, hex_data(revert.data))


class EvmRpc:
    """The ``eth_*`` / ``net_*`` methods over a `Chain`."""

    def __init__(self, chain: Chain, faults: FaultInjector) -> None:
        self.chain = chain
        self.faults = faults
        self.service = JsonRpcService(
            "rpc",
            {
                "eth_chainId": self._chain_id,
                "net_version": self._net_version,
                "web3_clientVersion": lambda params: CLIENT_VERSION,
                "eth_syncing": lambda params: False,
                "eth_accounts": lambda params: [],
                "eth_blockNumber": self._block_number,
                "eth_getBlockByNumber": self._get_block_by_number,
                "eth_getBlockByHash": self._get_block_by_hash,
                "eth_gasPrice": self._gas_price,
                "eth_maxPriorityFeePerGas": self._max_priority_fee,
                "eth_feeHistory": self._fee_history,
                "eth_getBalance": self._get_balance,
                "eth_getCode": self._get_code,
                "eth_getTransactionCount": self._get_transaction_count,
                "eth_estimateGas": self._estimate_gas,
                "eth_call": self._call,
                "eth_sendRawTransaction": self._send_raw_transaction,
                "eth_getTransactionReceipt": self._get_receipt,
                "eth_getTransactionByHash": self._get_transaction,
                "eth_getLogs": self._get_logs,
                "evm_increaseTime": self._increase_time,
                "evm_mine": self._mine,
            },
            faults,
            method_not_found=lambda method: f"the method {method} does not exist/is not available",
        )

    # -- helpers -----------------------------------------------------------------

    def _block_tag(self, value: Any, index: int) -> int | None:
        """Block number for a tag; None for a number beyond the chain."""
        if value is None or value in ("latest", "pending", "safe", "finalized"):
            return self.chain.height
        if value == "earliest":
            return 0
        number = _quantity(value, index)
        return number if number <= self.chain.height else None

    def _block_json(self, block: dict[str, Any] | None, full: bool) -> Any:
        if block is None:
            return None
        result = {key: value for key, value in block.items() if key != "receipts"}
        if not full:
            result["transactions"] = [tx["hash"] for tx in block["transactions"]]
        return result

    def _call_object(self, params: list[Any]) -> tuple[str | None, str | None, bytes, int]:
        call = param(params, 0, "transaction")
        if not isinstance(call, dict):
            raise _argument_error(0, "expected a transaction call object")
        sender = _address(call["from"], 0) if call.get("from") else None
        to = _address(call["to"], 0) if call.get("to") else None
        raw_data = call.get("input", call.get("data"))
        data = _bytes(raw_data, 0) if raw_data else b""
        value = _quantity(call["value"], 0) if call.get("value") is not None else 0
        return sender, to, data, value

    # -- methods -----------------------------------------------------------------

    def _chain_id(self, params: list[Any]) -> Any:
        return hex_quantity(self.chain.chain_id)

    def _net_version(self, params: list[Any]) -> Any:
        return str(self.chain.chain_id)

    def _block_number(self, params: list[Any]) -> Any:
        return hex_quantity(self.chain.height)

    def _get_block_by_number(self, params: list[Any]) -> Any:
        number = self._block_tag(param(params, 0, "block"), 0)
        full = bool(param(params, 1, "full", optional=True))
        return self._block_json(self.chain.block(number) if number is not None else None, full)

    def _get_block_by_hash(self, params: list[Any]) -> Any:
        block_hash = _bytes(param(params, 0, "hash"), 0)
        full = bool(param(params, 1, "full", optional=True))
        return self._block_json(self.chain.block_by_hash(hex_data(block_hash)), full)

    def _gas_price(self, params: list[Any]) -> Any:
        return hex_quantity(self.chain.config.gas_price)

    def _max_priority_fee(self, params: list[Any]) -> Any:
        return hex_quantity(self.chain.config.priority_fee)

    def _fee_history(self, params: list[Any]) -> Any:
        count = min(max(_quantity(param(params, 0, "blockCount"), 0), 1), 1024)
        newest = self._block_tag(param(params, 1, "newestBlock"), 1)
        if newest is None:
            raise RpcError(-32000, "request beyond head block")
        percentiles = param(params, 2, "rewardPercentiles", optional=True) or []
        oldest = max(0, newest - count + 1)
        blocks = self.chain.blocks(oldest, newest)
        base_fee = self.chain.config.base_fee or 0
        limit = self.chain.config.block_gas_limit
        result: dict[str, Any] = {
            "oldestBlock": hex_quantity(oldest),
            "baseFeePerGas": [hex_quantity(base_fee)] * (len(blocks) + 1),
            "gasUsedRatio": [int(block["gasUsed"], 16) / limit for block in blocks],
        }
        if percentiles:
            tip = hex_quantity(self.chain.config.priority_fee)
            result["reward"] = [[tip] * len(percentiles) for _ in blocks]
        return result

    def _get_balance(self, params: list[Any]) -> Any:
        return hex_quantity(self.chain.balance(_address(param(params, 0, "address"), 0)))

    def _get_code(self, params: list[Any]) -> Any:
        return hex_data(self.chain.code(_address(param(params, 0, "address"), 0)))

    def _get_transaction_count(self, params: list[Any]) -> Any:
        address = _address(param(params, 0, "address"), 0)
        if len(params) > 1 and params[1] == "pending":
            return hex_quantity(self.chain.pending_nonce(address))
        return hex_quantity(self.chain.nonce(address))

    def _estimate_gas(self, params: list[Any]) -> Any:
        sender, to, data, value = self._call_object(params)
        try:
            return hex_quantity(self.chain.estimate_gas(sender, to, data, value))
        except Revert as revert:
            raise _revert_error(revert) from None
        except ChainError as error:
            raise RpcError(error.code, error.message, error.data) from None

    def _call(self, params: list[Any]) -> Any:
        sender, to, data, value = self._call_object(params)
        try:
            return hex_data(self.chain.call(sender, to, data, value))
        except Revert as revert:
            raise _revert_error(revert) from None
        except ChainError as error:
            raise RpcError(error.code, error.message, error.data) from None

    def _send_raw_transaction(self, params: list[Any]) -> Any:
        raw = _bytes(param(params, 0, "data"), 0)
        self._refuse_underpriced(raw)
        try:
            return self.chain.send_raw_transaction(raw, hold=self.faults.hold)
        except ChainError as error:
            raise RpcError(error.code, error.message, error.data) from None

    def _refuse_underpriced(self, raw: bytes) -> None:
        """The underpriced faults, checked where geth checks them: after "already known"."""
        try:
            tx = decode_raw_transaction(raw)
        except TransactionError:
            return  # the chain refuses it with the decoding error
        if self.chain.transaction(hex_data(tx.hash)) is not None:
            return
        tip_cap = tx.max_priority_fee_per_gas
        refusal = self.faults.underpriced(tip_cap if tip_cap is not None else tx.gas_price or 0)
        if refusal is not None:
            raise RpcError(SERVER_ERROR, refusal)

    def _get_receipt(self, params: list[Any]) -> Any:
        found = self.chain.transaction(hex_data(_bytes(param(params, 0, "hash"), 0)))
        return found[1] if found else None

    def _get_transaction(self, params: list[Any]) -> Any:
        tx_hash = hex_data(_bytes(param(params, 0, "hash"), 0))
        found = self.chain.transaction(tx_hash)
        return found[0] if found else self.chain.held_transaction(tx_hash)

    def _get_logs(self, params: list[Any]) -> Any:
        query = param(params, 0, "filter")
        if not isinstance(query, dict):
            raise _argument_error(0, "expected a filter object")
        limits = self.faults.settings
        if query.get("blockHash"):
            block = self.chain.block_by_hash(hex_data(_bytes(query["blockHash"], 0)))
            blocks = [block] if block else []
        else:
            first = self._block_tag(query.get("fromBlock", "latest"), 0)
            last = self._block_tag(query.get("toBlock", "latest"), 0)
            if first is None:
                return []
            last = self.chain.height if last is None else last
            span = last - first + 1
            if limits.logs_max_range and span > limits.logs_max_range:
                raise RpcError(
                    LIMIT_EXCEEDED,
                    f"block range too large: {span} blocks, at most {limits.logs_max_range}",
                )
            blocks = self.chain.blocks(first, last)
        addresses = query.get("address")
        if isinstance(addresses, str):
            addresses = [addresses]
        wanted = {_address(a, 0) for a in addresses} if addresses else None
        topic_filter = query.get("topics") or []
        logs = []
        for block in blocks:
            for receipt in block["receipts"]:
                for log in receipt["logs"]:
                    if wanted is not None and log["address"] not in wanted:
                        continue
                    if _topics_match(log["topics"], topic_filter):
                        logs.append(log)
            if limits.logs_max_results and len(logs) > limits.logs_max_results:
                raise RpcError(
                    LIMIT_EXCEEDED, f"query returned more than {limits.logs_max_results} results"
                )
        return logs

    def _increase_time(self, params: list[Any]) -> Any:
        seconds = _quantity(param(params, 0, "seconds"), 0)
        return self.chain.increase_time(seconds)

    def _mine(self, params: list[Any]) -> Any:
        self.chain.mine_empty_block()
        return "0x0"


def _topics_match(topics: list[str], wanted: list[Any]) -> bool:
    for position, option in enumerate(wanted):
        if option is None:
            continue
        if position >= len(topics):
            return False
        choices = option if isinstance(option, list) else [option]
        if topics[position] not in [str(choice).lower() for choice in choices]:
            return False
    return True
