"""The devnet's contract model: Python objects standing in for EVM contracts.

There is no EVM. A contract is a `Contract` subclass registered with the
chain under a fixed address; the chain routes ``eth_call`` /
``eth_estimateGas`` to `Contract.call` or `Contract.transact` and signed
transactions to `Contract.transact`, by the ``to`` address.

Rules every contract follows:

- Decode ``data`` (4-byte selector + ABI arguments) yourself; raise `Revert`
  with the exact revert bytes a Solidity contract would return (custom error
  or ``Error(string)``). Unknown selectors revert with empty data.
- Mutate state only in `transact`. The chain snapshots every contract's
  `export_state` before a transaction and restores it with `import_state` if
  the transaction reverts, and also after ``eth_call`` / ``eth_estimateGas``
  simulations, so a contract may mutate freely before raising.
- `export_state` returns a JSON-compatible value; the chain writes it to the
  data folder after every block and hands it back to `import_state` at start-up,
  which is how contract state survives a restart.
- Amounts are integer neuron. ``value`` has already been credited to the
  contract's balance when `transact` runs; move funds with
  `ChainContext.transfer`.

Registering contracts (the compute engineer's hook): a module
``zerog_cli.devnet.compute`` with a function
``register_contracts(chain: ChainContext) -> None`` is imported and called by
the devnet at start-up, after the storage contracts; it calls
``chain.register_contract(contract)`` for each of its contracts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Revert(Exception):
    """The call reverted with ``data`` (revert bytes as returned by the EVM)."""

    def __init__(self, data: bytes = b"", message: str = "execution reverted") -> None:
        super().__init__(message)
        self.data = data
        self.message = message


@dataclass
class Log:
    """An event log: emitting address, raw 32-byte topics, raw data."""

    address: str
    topics: list[bytes]
    data: bytes = b""


class ChainContext(Protocol):
    """Chain services available to contracts (implemented by `Chain`)."""

    @property
    def chain_id(self) -> int: ...

    def balance(self, address: str) -> int:
        """Balance of ``address`` in neuron."""
        ...

    def transfer(self, source: str, destination: str, amount: int) -> None:
        """Move ``amount`` neuron; raises `Revert` when ``source`` is short."""
        ...

    def now(self) -> int:
        """Timestamp (Unix seconds) of the block being executed or simulated."""
        ...

    def block_number(self) -> int:
        """Number of the block being executed or simulated."""
        ...

    def contract(self, address: str) -> Contract | None:
        """The contract registered at ``address``, if any."""
        ...

    def register_contract(self, contract: Contract) -> None:
        """Install ``contract`` at ``contract.address`` (start-up only)."""
        ...


class Contract:
    """Base class of devnet contracts. Subclasses override what they implement.

    ``address`` is stored lowercase. ``execution_gas`` is what a successful
    call costs on top of the intrinsic 21000 + calldata gas; it is what
    ``eth_estimateGas`` reports and what a transaction's receipt shows.
    """

    name = "contract"
    execution_gas = 60_000

    def __init__(self, address: str) -> None:
        self.address = address.lower()

    def call(self, chain: ChainContext, sender: str, data: bytes, value: int) -> bytes:
        """Answer a read-only call; return the ABI-encoded result."""
        raise Revert(b"", "execution reverted: unknown function")

    def transact(self, chain: ChainContext, sender: str, data: bytes, value: int) -> list[Log]:
        """Execute a state-changing call and return the logs it emits.

        The default treats the call as a view function: it runs `call` and
        emits nothing, as a transaction to a Solidity view function does.
        """
        self.call(chain, sender, data, value)
        return []

    def gas(self, data: bytes) -> int:
        """Execution gas of a successful call with ``data``."""
        return self.execution_gas

    def export_state(self) -> Any:
        """JSON-compatible state to persist (None for a stateless contract)."""
        return None

    def import_state(self, state: Any) -> None:
        """Restore state produced by `export_state`."""
