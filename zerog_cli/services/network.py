"""Wiring the protocol clients to the configured network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerog_cli.errors import ConfigError
from zerog_cli.services.context import Context

if TYPE_CHECKING:
    from zerog_cli.zerog.transfer import StorageNetwork


def storage_network(context: Context) -> StorageNetwork:
    """The indexer, nodes and chain of the active profile, over the resilient HTTP client."""
    from zerog_cli.zerog.transfer import StorageNetwork

    settings = context.settings
    if not settings.indexer_url:
        raise ConfigError(f"no indexer_url configured for profile {settings.profile}")
    context.announce_network()
    return StorageNetwork(
        context.http, indexer_url=settings.indexer_url, evm_rpc_url=settings.rpc_url
    )


def check_chain_id(network: StorageNetwork, context: Context) -> int:
    """Refuse to sign for a chain other than the profile's (a mainnet key on testnet, say)."""
    expected = context.settings.chain_id
    actual = network.evm.chain_id()
    if expected is not None and actual != int(expected):
        raise ConfigError(
            f"{context.settings.rpc_url} is chain {actual}, but profile "
            f"{context.settings.profile} expects chain {expected}",
            hint="fix rpc_url or chain_id (`zerog config show`)",
        )
    return actual
