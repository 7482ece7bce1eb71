"""Wiring the protocol clients to the configured network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerog_cli.errors import ConfigError
from zerog_cli.services.context import Context

if TYPE_CHECKING:
    from zerog_cli.infra.config import Settings
    from zerog_cli.zerog.download import DownloadOptions
    from zerog_cli.zerog.evm import GasOptions
    from zerog_cli.zerog.network import StorageNetwork
    from zerog_cli.zerog.upload_plan import UploadPlan


def storage_network(context: Context) -> StorageNetwork:
    """The indexer, nodes and chain of the active profile, over the resilient HTTP client."""
    from zerog_cli.zerog.network import StorageNetwork

    settings = context.settings
    indexer_url = settings.endpoint("indexer_url")
    context.announce_network()
    return StorageNetwork(context.http, indexer_url=indexer_url, evm_rpc_url=settings.rpc_url)


def download_options(settings: Settings) -> DownloadOptions:
    """How downloads, verifies and restores fetch: requests per node, the stall timeout."""
    from zerog_cli.zerog.download import DownloadOptions
    from zerog_cli.zerog.segment_fetch import FetchOptions

    return DownloadOptions(
        fetch=FetchOptions(
            per_node=settings.download_node_concurrency,
            stall_after=settings.download_stall_timeout,
        )
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


def check_node_chain_id(plan: UploadPlan, context: Context) -> None:
    """The storage nodes must serve the profile's chain (their ``networkIdentity.chainId``)."""
    settings = context.settings
    expected = settings.chain_id
    if expected is not None and plan.node_chain_id != int(expected):
        raise ConfigError(
            f"storage node {plan.status_node} serves chain {plan.node_chain_id}, but profile "
            f"{settings.profile} expects chain {expected}",
            hint="fix indexer_url or chain_id (`zerog config show`)",
        )


def gas_options(settings: Settings) -> GasOptions:
    """Transaction type and gas settings (tx_type, gas_price, gas_limit, max_gas_price,
    tx_resend_after)."""
    from zerog_cli.zerog.evm import GasOptions

    return GasOptions(
        tx_type=settings.tx_type,
        gas_price=settings.gas_price,
        gas_limit=settings.gas_limit,
        max_gas_price=settings.max_gas_price,
        resend_after=settings.tx_resend_after,
    )
