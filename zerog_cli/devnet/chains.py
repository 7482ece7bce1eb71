"""What the devnet's services need of a chain, so that they run over either chain.

The storage nodes, the indexer and the compute providers never reach into a
chain's state: they follow new blocks (the nodes index the Flow's ``Submit``
logs), read with ``eth_call``, and send signed transactions. `DevnetChain` is
that surface. Two chains provide it:

- `zerog_cli.devnet.chain.Chain`, the in-process chain (``zerog devnet up``,
  the default, ``--chain builtin``);
- `zerog_cli.devnet.anvil.AnvilChain`, a JSON-RPC client of anvil running the
  official contracts' bytecode (``zerog devnet up --chain anvil``), which
  follows new blocks by polling ``eth_blockNumber`` and ``eth_getLogs``, as a
  real storage node follows its chain.

`ServiceRegistry` is the compute side's set-up: what the devnet registers on
chain for its provider brokers (their URLs once the port is known; synthetic
services for paging tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

BlockListener = Callable[[dict[str, Any]], None]
"""Called with each new block, in order: a dict with ``number`` and ``hash``
(JSON-RPC quantities) and ``receipts``, a list of ``{"logs": [...]}`` whose logs
are JSON-RPC log objects. A followed remote chain only hands over the logs of
the contracts it follows."""


class DevnetChain(Protocol):
    """A chain as the devnet's services use it."""

    @property
    def chain_id(self) -> int: ...

    @property
    def height(self) -> int:
        """The number of the newest block the devnet has followed."""
        ...

    @property
    def transaction_count(self) -> int:
        """Transactions mined so far (the devnet's ``/admin/stats``)."""
        ...

    def head(self) -> tuple[int, str]:
        """(number, hash) of the newest block the devnet has followed."""
        ...

    def subscribe(self, listener: BlockListener, *, replay: bool = True) -> None:
        """Call ``listener(block)`` for every new block; with ``replay`` first for
        every block already followed, in order."""
        ...

    def call(self, sender: str | None, to: str | None, data: bytes, value: int) -> bytes:
        """``eth_call`` against the latest state; raises `contracts.Revert`."""
        ...

    def nonce(self, address: str) -> int:
        """The next nonce of ``address`` (mined transactions)."""
        ...

    def gas_price(self) -> int:
        """What ``eth_gasPrice`` answers."""
        ...

    def send_raw_transaction(self, raw: bytes) -> str:
        """Send a signed transaction and return its hash once it is mined;
        `chain.ChainError` when the chain refuses it."""
        ...

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The JSON-RPC receipt of a mined transaction, or None."""
        ...


class ServiceRegistry(Protocol):
    """The devnet's compute services on chain."""

    def publish(self, urls: Mapping[str, str]) -> None:
        """Point each provider's service (by provider address) at its broker's URL."""
        ...

    def register_synthetic(self, count: int) -> dict[str, Any]:
        """Register ``count`` synthetic acknowledged chatbot services with unreachable
        URLs (paging tests); ``{"transactionHash": ..., "services": total}``."""
        ...
