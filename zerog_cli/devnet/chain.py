"""The devnet chain: accounts, contracts, instant blocks, receipts, persistence.

One block is mined per accepted transaction, at once, with a timestamp from
the clock (plus an offset moved by ``evm_increaseTime``): a transaction is
executed when it arrives or refused with geth's error wording. The only pool
is for the ``hold_next`` fault: a held transaction is pending (known by hash,
counted by the "pending" nonce, never mined) until a version with the same
nonce paying at least 10 % more replaces it, as in geth's pool; a cheaper one
is refused with "replacement transaction underpriced". Held transactions are
not persisted.

Persistence (``data_dir/chain``): ``blocks.jsonl`` gets one line per block
(transactions and receipts in their JSON-RPC form), appended and fsynced;
``state.json`` (accounts, contract states, height) is then replaced
atomically. At start-up blocks beyond the height recorded in ``state.json``
(a crash between the two writes) are dropped, so the two always agree.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerog_cli.devnet.chains import BlockListener
from zerog_cli.devnet.constants import (
    BASE_FEE_PER_GAS,
    BLOCK_GAS_LIMIT,
    PRIORITY_FEE_PER_GAS,
)
from zerog_cli.devnet.contracts import Contract, Log, Revert
from zerog_cli.devnet.transactions import (
    SignedTransaction,
    TransactionError,
    decode_raw_transaction,
    intrinsic_gas,
)
from zerog_cli.infra.files import ensure_private_dir
from zerog_cli.zerog.abi import keccak256

logger = logging.getLogger(__name__)

ZERO_HASH_HEX = "0x" + "00" * 32
COINBASE = "0x0000000000000000000000000000000000000000"
STATE_VERSION = 1
REPLACE_BUMP_PERCENT = 10
"""geth's ``txpool.pricebump``: a replacement pays at least 10 % more."""


def hex_quantity(value: int) -> str:
    """Ethereum JSON-RPC quantity encoding."""
    return hex(value)


def hex_data(value: bytes) -> str:
    return "0x" + value.hex()


def normalize_address(address: str) -> str:
    """Lowercase ``0x`` address; raises ``ValueError`` if it is not 20 bytes of hex."""
    text = address.lower()
    if not text.startswith("0x") or len(text) != 42:
        raise ValueError(f"invalid address {address!r}")
    int(text[2:], 16)
    return text


def logs_bloom(logs: Iterable[dict[str, Any]]) -> str:
    """The 2048-bit bloom filter of a receipt's (or block's) logs."""
    bloom = 0
    for log in logs:
        items = [bytes.fromhex(log["address"][2:])]
        items += [bytes.fromhex(topic[2:]) for topic in log["topics"]]
        for item in items:
            digest = keccak256(item)
            for i in (0, 2, 4):
                bloom |= 1 << (int.from_bytes(digest[i : i + 2], "big") & 2047)
    return "0x" + bloom.to_bytes(256, "big").hex()


class ChainError(Exception):
    """A JSON-RPC level refusal (code -32000 unless given)."""

    def __init__(self, message: str, code: int = -32000, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.data = data


@dataclass
class ChainConfig:
    chain_id: int
    base_fee: int | None = BASE_FEE_PER_GAS
    priority_fee: int = PRIORITY_FEE_PER_GAS
    block_gas_limit: int = BLOCK_GAS_LIMIT
    genesis_balances: dict[str, int] = field(default_factory=dict)

    @property
    def gas_price(self) -> int:
        """What ``eth_gasPrice`` answers: base fee plus the suggested tip."""
        return (self.base_fee or 0) + self.priority_fee


@dataclass
class _Execution:
    """Block context of a call being executed or simulated."""

    number: int
    timestamp: int


class Chain:
    """Chain state and execution. Thread-safe: every public method takes one lock.

    The in-process `chains.DevnetChain`: its listeners are called as each block
    is mined, inside the transaction's request.
    """

    def __init__(self, config: ChainConfig, data_dir: Path | None) -> None:
        self.config = config
        self._dir = data_dir / "chain" if data_dir is not None else None
        self._lock = threading.RLock()
        self._balances: dict[str, int] = {}
        self._nonces: dict[str, int] = {}
        self._contracts: dict[str, Contract] = {}
        self._blocks: list[dict[str, Any]] = []
        self._tx_locations: dict[str, tuple[int, int]] = {}
        self._held: dict[tuple[str, int], SignedTransaction] = {}
        self._listeners: list[BlockListener] = []
        self._clock_offset = 0
        self._execution: _Execution | None = None
        self._loaded = False

    # -- services for contracts (ChainContext) -------------------------------

    @property
    def chain_id(self) -> int:
        return self.config.chain_id

    def balance(self, address: str) -> int:
        with self._lock:
            return self._balances.get(normalize_address(address), 0)

    def nonce(self, address: str) -> int:
        with self._lock:
            return self._nonces.get(normalize_address(address), 0)

    def pending_nonce(self, address: str) -> int:
        """The next nonce counting held (pending) transactions."""
        with self._lock:
            nonce = self.nonce(address)
            while (normalize_address(address), nonce) in self._held:
                nonce += 1
            return nonce

    def transfer(self, source: str, destination: str, amount: int) -> None:
        if amount < 0:
            raise Revert(b"", "negative transfer")
        with self._lock:
            source, destination = normalize_address(source), normalize_address(destination)
            if self._balances.get(source, 0) < amount:
                raise Revert(b"", "insufficient balance for transfer")
            self._balances[source] = self._balances.get(source, 0) - amount
            self._balances[destination] = self._balances.get(destination, 0) + amount

    def now(self) -> int:
        with self._lock:
            if self._execution is not None:
                return self._execution.timestamp
            return self._next_timestamp()

    def block_number(self) -> int:
        with self._lock:
            if self._execution is not None:
                return self._execution.number
            return self.height

    def contract(self, address: str) -> Contract | None:
        try:
            key = normalize_address(address)
        except ValueError:
            return None
        return self._contracts.get(key)

    def register_contract(self, contract: Contract) -> None:
        with self._lock:
            if self._loaded:
                raise RuntimeError("contracts must be registered before the chain is loaded")
            if contract.address in self._contracts:
                raise ValueError(f"a contract is already registered at {contract.address}")
            self._contracts[contract.address] = contract

    # -- start-up ------------------------------------------------------------

    def load(self) -> None:
        """Restore persisted state, or create the genesis block. Call once, after
        every contract is registered."""
        with self._lock:
            self._loaded = True
            if self._dir is not None and (self._dir / "state.json").exists():
                self._load_persisted()
                return
            for address, amount in self.config.genesis_balances.items():
                self._balances[normalize_address(address)] = amount
            self._append_block(self._make_block([], [], gas_used=0))

    def _load_persisted(self) -> None:
        assert self._dir is not None
        state = json.loads((self._dir / "state.json").read_text(encoding="utf-8"))
        if state.get("chainId") != self.config.chain_id:
            raise ChainError(
                f"the devnet data folder was created with chain id {state.get('chainId')},"
                f" not {self.config.chain_id}"
            )
        height = int(state["height"])
        self._balances = {a: int(b) for a, (b, _n) in state["accounts"].items()}
        self._nonces = {a: int(n) for a, (_b, n) in state["accounts"].items() if int(n)}
        self._clock_offset = int(state.get("clockOffset", 0))
        for address, contract_state in state.get("contracts", {}).items():
            contract = self._contracts.get(address)
            if contract is not None:
                contract.import_state(contract_state)
        blocks_file = self._dir / "blocks.jsonl"
        valid_bytes = 0
        with blocks_file.open("rb") as handle:
            for line in handle:
                if len(self._blocks) > height or not line.endswith(b"\n"):
                    break
                self._index_block(json.loads(line))
                valid_bytes += len(line)
        if len(self._blocks) != height + 1:
            raise ChainError(f"the devnet block log in {self._dir} is shorter than its state")
        with blocks_file.open("r+b") as handle:
            handle.truncate(valid_bytes)

    # -- listeners -----------------------------------------------------------

    def subscribe(self, listener: BlockListener, *, replay: bool = True) -> None:
        """Call ``listener(block)`` for every new block (after it is persisted);
        with ``replay`` first for every existing block, in order."""
        with self._lock:
            if replay:
                for block in self._blocks:
                    listener(block)
            self._listeners.append(listener)

    # -- read side -----------------------------------------------------------

    @property
    def height(self) -> int:
        with self._lock:
            return len(self._blocks) - 1

    def head(self) -> tuple[int, str]:
        with self._lock:
            return len(self._blocks) - 1, self._blocks[-1]["hash"]

    def gas_price(self) -> int:
        return self.config.gas_price

    def block(self, number: int) -> dict[str, Any] | None:
        with self._lock:
            if 0 <= number < len(self._blocks):
                return self._blocks[number]
            return None

    def block_by_hash(self, block_hash: str) -> dict[str, Any] | None:
        with self._lock:
            for block in reversed(self._blocks):
                if block["hash"] == block_hash.lower():
                    return block
            return None

    def transaction(self, tx_hash: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(transaction, receipt) in JSON-RPC form, or None."""
        with self._lock:
            location = self._tx_locations.get(tx_hash.lower())
            if location is None:
                return None
            block = self._blocks[location[0]]
            return block["transactions"][location[1]], block["receipts"][location[1]]

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        found = self.transaction(tx_hash)
        return found[1] if found is not None else None

    def held_transaction(self, tx_hash: str) -> dict[str, Any] | None:
        """A held (pending) transaction in JSON-RPC form: no block yet."""
        with self._lock:
            for tx in self._held.values():
                if hex_data(tx.hash) == tx_hash.lower():
                    return {
                        **self._transaction_json(tx),
                        "blockHash": None,
                        "blockNumber": None,
                        "transactionIndex": None,
                    }
            return None

    def blocks(self, first: int, last: int) -> list[dict[str, Any]]:
        with self._lock:
            return self._blocks[max(first, 0) : last + 1]

    @property
    def transaction_count(self) -> int:
        with self._lock:
            return len(self._tx_locations)

    def code(self, address: str) -> bytes:
        """A non-empty placeholder for contract addresses, empty for accounts."""
        return b"\xfe" if self.contract(address) is not None else b""

    # -- simulation (eth_call, eth_estimateGas) -------------------------------

    def call(self, sender: str | None, to: str | None, data: bytes, value: int) -> bytes:
        """Run a read-only call against the latest state. Raises `Revert`, or
        `ChainError` when the sender cannot pay ``value``."""
        with self._lock:
            contract = self.contract(to) if to else None
            if contract is None:
                return b""
            with self._simulation():
                self._credit_value(sender, contract.address, value)
                return contract.call(self, sender or COINBASE, data, value)

    def estimate_gas(self, sender: str | None, to: str | None, data: bytes, value: int) -> int:
        """Gas a transaction would use; raises `Revert` if it would revert."""
        with self._lock:
            base = intrinsic_gas(data)
            contract = self.contract(to) if to else None
            if contract is None:
                if to is None:
                    raise ChainError("contract creation is not supported by the devnet")
                if sender is not None and value > self.balance(sender):
                    raise ChainError("insufficient funds for transfer")
                return base
            with self._simulation():
                self._credit_value(sender, contract.address, value)
                contract.transact(self, sender or COINBASE, data, value)
            return base + contract.gas(data)

    def _credit_value(self, sender: str | None, contract_address: str, value: int) -> None:
        """Pay a simulated call's value from its sender (the zero address when none is
        given), refused as geth and anvil refuse it when the sender is short."""
        if value == 0:
            return
        payer = normalize_address(sender) if sender is not None else COINBASE
        have = self._balances.get(payer, 0)
        if have < value:
            raise ChainError(
                f"insufficient funds for gas * price + value: address {payer}"
                f" have {have} want {value}"
            )
        self.transfer(payer, contract_address, value)

    class _Snapshot:
        def __init__(self, chain: Chain) -> None:
            self.balances = dict(chain._balances)
            self.states = {
                address: json.dumps(contract.export_state())
                for address, contract in chain._contracts.items()
            }

        def restore(self, chain: Chain) -> None:
            chain._balances = self.balances
            for address, contract in chain._contracts.items():
                contract.import_state(json.loads(self.states[address]))

    def _simulation(self) -> _SimulationScope:
        return _SimulationScope(self)

    # -- transactions --------------------------------------------------------

    def send_raw_transaction(self, raw: bytes, *, hold: Callable[[], bool] | None = None) -> str:
        """Validate, execute and mine ``raw``; return its hash (keccak of the bytes).

        ``hold()`` (the ``hold_next`` fault) is asked once the transaction is
        valid: True keeps it pending instead of mining it.
        """
        try:
            tx = decode_raw_transaction(raw)
        except TransactionError as error:
            raise ChainError(str(error)) from error
        with self._lock:
            slot = (tx.sender, tx.nonce)
            held = self._held.get(slot)
            if held is not None:
                if held.hash == tx.hash:
                    raise ChainError("already known")
                bump = 100 + REPLACE_BUMP_PERCENT
                cheaper_cap = tx.fee_cap < held.fee_cap * bump // 100
                if cheaper_cap or _tip(tx) < _tip(held) * bump // 100:
                    raise ChainError("replacement transaction underpriced")
            self._validate(tx)
            if held is not None:
                del self._held[slot]
            if hold is not None and hold():
                self._held[slot] = tx
            else:
                self._execute(tx)
        return hex_data(tx.hash)

    def _validate(self, tx: SignedTransaction) -> None:
        tx_hash = hex_data(tx.hash)
        if tx_hash in self._tx_locations:
            raise ChainError("already known")
        if tx.chain_id is None:
            raise ChainError("only replay-protected (EIP-155) transactions allowed over RPC")
        if tx.chain_id != self.config.chain_id:
            raise ChainError(
                "invalid sender: invalid chain id for signer:"
                f" have {tx.chain_id} want {self.config.chain_id}"
            )
        state_nonce = self._nonces.get(tx.sender, 0)
        if tx.nonce < state_nonce:
            raise ChainError(
                f"nonce too low: address {tx.sender}, tx: {tx.nonce} state: {state_nonce}"
            )
        if tx.nonce > state_nonce:
            raise ChainError(
                f"nonce too high: address {tx.sender}, tx: {tx.nonce} state: {state_nonce}"
                " (the devnet has no transaction pool)"
            )
        if tx.gas > self.config.block_gas_limit:
            raise ChainError("exceeds block gas limit")
        needed = intrinsic_gas(tx.data)
        if tx.gas < needed:
            raise ChainError(f"intrinsic gas too low: gas {tx.gas}, minimum needed {needed}")
        base_fee = self.config.base_fee or 0
        tip, cap = tx.max_priority_fee_per_gas, tx.max_fee_per_gas
        if tip is not None and cap is not None and tip > cap:
            raise ChainError(
                "max priority fee per gas higher than max fee per gas: address"
                f" {tx.sender}, maxPriorityFeePerGas: {tip}, maxFeePerGas: {cap}"
            )
        if tx.fee_cap < base_fee:
            raise ChainError(
                f"max fee per gas less than block base fee: address {tx.sender},"
                f" maxFeePerGas: {tx.fee_cap}, baseFee: {base_fee}"
            )
        cost = tx.gas * tx.fee_cap + tx.value
        have = self._balances.get(tx.sender, 0)
        if have < cost:
            raise ChainError(
                "insufficient funds for gas * price + value: address"
                f" {tx.sender} have {have} want {cost}"
            )
        if tx.to is None:
            raise ChainError("contract creation is not supported by the devnet")

    def _execute(self, tx: SignedTransaction) -> None:
        base_fee = self.config.base_fee or 0
        price = tx.effective_gas_price(base_fee)
        number = len(self._blocks)
        timestamp = self._next_timestamp()
        self._nonces[tx.sender] = tx.nonce + 1
        self._balances[tx.sender] -= tx.gas * price
        assert tx.to is not None
        contract = self._contracts.get(tx.to)
        needed = intrinsic_gas(tx.data) + (contract.gas(tx.data) if contract else 0)
        logs: list[Log] = []
        status = 1
        if needed > tx.gas:
            status, gas_used = 0, tx.gas
        else:
            gas_used = needed
            snapshot = Chain._Snapshot(self)
            self._execution = _Execution(number=number, timestamp=timestamp)
            try:
                self.transfer(tx.sender, tx.to, tx.value)
                if contract is not None:
                    logs = contract.transact(self, tx.sender, tx.data, tx.value)
            except Revert as revert:
                logger.info("transaction %s reverted: %s", hex_data(tx.hash), revert.message)
                snapshot.restore(self)
                status, logs = 0, []
            except Exception:
                # A bug in a contract must not leave half-applied state behind:
                # the transaction fails like an EVM-level exception would.
                logger.exception("contract code failed on transaction %s", hex_data(tx.hash))
                snapshot.restore(self)
                status, logs = 0, []
            finally:
                self._execution = None
        self._balances[tx.sender] += (tx.gas - gas_used) * price
        tx_json = self._transaction_json(tx)
        receipt = self._receipt_json(tx, status, gas_used, price, logs)
        block = self._make_block([tx_json], [receipt], gas_used=gas_used, timestamp=timestamp)
        self._append_block(block)

    # -- block assembly -------------------------------------------------------

    def _next_timestamp(self) -> int:
        now = int(time.time()) + self._clock_offset
        if self._blocks:
            now = max(now, int(self._blocks[-1]["timestamp"], 16))
        return now

    def increase_time(self, seconds: int) -> int:
        """Move the clock forward (``evm_increaseTime``); returns the total offset."""
        with self._lock:
            self._clock_offset += seconds
            self._save_state()
            return self._clock_offset

    def mine_empty_block(self) -> None:
        """Mine a block without transactions (``evm_mine``)."""
        with self._lock:
            self._append_block(self._make_block([], [], gas_used=0))

    def _transaction_json(self, tx: SignedTransaction) -> dict[str, Any]:
        result: dict[str, Any] = {
            "hash": hex_data(tx.hash),
            "type": hex_quantity(tx.type),
            "nonce": hex_quantity(tx.nonce),
            "from": tx.sender,
            "to": tx.to,
            "value": hex_quantity(tx.value),
            "gas": hex_quantity(tx.gas),
            "input": hex_data(tx.data),
            "v": hex_quantity(tx.v),
            "r": hex_quantity(tx.r),
            "s": hex_quantity(tx.s),
            "transactionIndex": "0x0",
        }
        if tx.chain_id is not None:
            result["chainId"] = hex_quantity(tx.chain_id)
        if tx.type == 2:
            result["maxFeePerGas"] = hex_quantity(tx.max_fee_per_gas or 0)
            result["maxPriorityFeePerGas"] = hex_quantity(tx.max_priority_fee_per_gas or 0)
            result["gasPrice"] = hex_quantity(tx.effective_gas_price(self.config.base_fee or 0))
        else:
            result["gasPrice"] = hex_quantity(tx.gas_price or 0)
        if tx.type != 0:
            result["accessList"] = []
            result["yParity"] = hex_quantity(tx.v)
        return result

    def _receipt_json(
        self, tx: SignedTransaction, status: int, gas_used: int, price: int, logs: list[Log]
    ) -> dict[str, Any]:
        log_json = [
            {
                "address": log.address.lower(),
                "topics": [hex_data(topic) for topic in log.topics],
                "data": hex_data(log.data),
                "logIndex": hex_quantity(i),
                "transactionIndex": "0x0",
                "transactionHash": hex_data(tx.hash),
                "removed": False,
            }
            for i, log in enumerate(logs)
        ]
        return {
            "transactionHash": hex_data(tx.hash),
            "transactionIndex": "0x0",
            "from": tx.sender,
            "to": tx.to,
            "contractAddress": None,
            "cumulativeGasUsed": hex_quantity(gas_used),
            "gasUsed": hex_quantity(gas_used),
            "effectiveGasPrice": hex_quantity(price),
            "logs": log_json,
            "logsBloom": logs_bloom(log_json),
            "status": hex_quantity(status),
            "type": hex_quantity(tx.type),
        }

    def _make_block(
        self,
        transactions: list[dict[str, Any]],
        receipts: list[dict[str, Any]],
        *,
        gas_used: int,
        timestamp: int | None = None,
    ) -> dict[str, Any]:
        number = len(self._blocks)
        parent = self._blocks[-1]["hash"] if self._blocks else ZERO_HASH_HEX
        stamp = self._next_timestamp() if timestamp is None else timestamp
        tx_hashes = [tx["hash"] for tx in transactions]
        seal = json.dumps([self.config.chain_id, number, parent, stamp, tx_hashes])
        block_hash = hex_data(keccak256(seal.encode()))
        all_logs = [log for receipt in receipts for log in receipt["logs"]]
        for tx, receipt in zip(transactions, receipts, strict=True):
            for item in (tx, receipt):
                item["blockHash"] = block_hash
                item["blockNumber"] = hex_quantity(number)
            for log in receipt["logs"]:
                log["blockHash"] = block_hash
                log["blockNumber"] = hex_quantity(number)
        block: dict[str, Any] = {
            "number": hex_quantity(number),
            "hash": block_hash,
            "parentHash": parent,
            "timestamp": hex_quantity(stamp),
            "nonce": "0x0000000000000000",
            "difficulty": "0x0",
            "totalDifficulty": "0x0",
            "gasLimit": hex_quantity(self.config.block_gas_limit),
            "gasUsed": hex_quantity(gas_used),
            "miner": COINBASE,
            "extraData": "0x",
            "mixHash": ZERO_HASH_HEX,
            "sha3Uncles": hex_data(keccak256(bytes.fromhex("c0"))),
            "stateRoot": ZERO_HASH_HEX,
            "transactionsRoot": ZERO_HASH_HEX,
            "receiptsRoot": ZERO_HASH_HEX,
            "logsBloom": logs_bloom(all_logs),
            "size": hex_quantity(512 + sum(len(tx["input"]) // 2 for tx in transactions)),
            "uncles": [],
            "transactions": transactions,
            "receipts": receipts,
        }
        if self.config.base_fee is not None:
            block["baseFeePerGas"] = hex_quantity(self.config.base_fee)
        return block

    def _index_block(self, block: dict[str, Any]) -> None:
        number = len(self._blocks)
        self._blocks.append(block)
        for i, tx in enumerate(block["transactions"]):
            self._tx_locations[tx["hash"]] = (number, i)

    def _append_block(self, block: dict[str, Any]) -> None:
        if self._dir is not None:
            ensure_private_dir(self._dir)
            line = json.dumps(block, separators=(",", ":")) + "\n"
            with (self._dir / "blocks.jsonl").open("ab") as handle:
                handle.write(line.encode())
                handle.flush()
                os.fsync(handle.fileno())
        self._index_block(block)
        self._save_state()
        for listener in self._listeners:
            try:
                listener(block)
            except Exception:
                logger.exception("a block listener failed on block %s", block["number"])

    def _save_state(self) -> None:
        if self._dir is None:
            return
        from zerog_cli.infra.files import atomic_write_text

        accounts = {
            address: [str(self._balances.get(address, 0)), self._nonces.get(address, 0)]
            for address in sorted(set(self._balances) | set(self._nonces))
        }
        state = {
            "version": STATE_VERSION,
            "chainId": self.config.chain_id,
            "height": len(self._blocks) - 1,
            "clockOffset": self._clock_offset,
            "accounts": accounts,
            "contracts": {
                address: contract.export_state() for address, contract in self._contracts.items()
            },
        }
        atomic_write_text(self._dir / "state.json", json.dumps(state, indent=1))


def _tip(tx: SignedTransaction) -> int:
    """The tip cap geth compares: maxPriorityFeePerGas, or a legacy gasPrice."""
    tip = tx.max_priority_fee_per_gas
    return tip if tip is not None else tx.gas_price or 0


class _SimulationScope:
    """Run contract code against the latest state and throw its effects away."""

    def __init__(self, chain: Chain) -> None:
        self._chain = chain
        self._snapshot: Chain._Snapshot | None = None

    def __enter__(self) -> None:
        chain = self._chain
        self._snapshot = Chain._Snapshot(chain)
        chain._execution = _Execution(number=chain.height + 1, timestamp=chain._next_timestamp())

    def __exit__(self, *exc: object) -> None:
        assert self._snapshot is not None
        self._chain._execution = None
        self._snapshot.restore(self._chain)
