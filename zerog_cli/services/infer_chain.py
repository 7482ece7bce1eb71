"""Wiring `zerog infer` to the configured chain and to providers.

`connect` gives the wallet, an `EvmClient` on the profile's RPC (chain id
checked against the profile, so a mainnet key is never used on the wrong
chain) and `ComputeContracts` at the profile's (or the chain's known)
LedgerManager / InferenceServing addresses. The provider helpers name each
provider route as its own circuit-breaker endpoint: a model that keeps failing
opens the breaker of ``…/v1/proxy/chat/completions`` without blocking the
signature or unsettled-fee routes of the same broker, and without touching the
RPC endpoint (on the devnet, one port serves both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zerog_cli.errors import ConfigError, UsageError, ZerogError
from zerog_cli.infra.choices import KeyPurpose
from zerog_cli.infra.signing import WalletKey, wallet_key
from zerog_cli.services.context import Context
from zerog_cli.services.infer_tokens import TokenCache

if TYPE_CHECKING:
    from zerog_cli.zerog.compute import ComputeContracts, Pricing, Service, SubAccount
    from zerog_cli.zerog.evm import EvmClient

_HEX = frozenset("0123456789abcdefABCDEF")


def parse_address(text: str, what: str = "provider") -> str:
    """A 0x address in EIP-55 form; UsageError (exit 2) for anything else.

    A mixed-case address must carry a valid checksum: that catches typos.
    """
    from zerog_cli.zerog.compute import checksum_address

    value = text.strip()
    body = value[2:] if value[:2] in ("0x", "0X") else ""
    if len(body) != 40 or not set(body) <= _HEX:
        raise UsageError(f"{what} must be a 0x address of 40 hex digits, got {text!r}")
    checksummed = checksum_address("0x" + body)
    mixed = body != body.lower() and body != body.upper()
    if mixed and checksummed[2:] != body:
        raise UsageError(f"{what} {text!r} has a bad EIP-55 checksum (a typo?)")
    return checksummed


@dataclass
class ComputeChain:
    """The chain side: RPC client and contract reader (no wallet needed)."""

    context: Context
    evm: EvmClient
    contracts: ComputeContracts
    chain_id: int


@dataclass
class ComputeLink:
    """A chain plus the wallet that pays: what inference and funding need."""

    chain: ComputeChain
    key: WalletKey
    address: str

    @property
    def contracts(self) -> ComputeContracts:
        return self.chain.contracts

    @property
    def context(self) -> Context:
        return self.chain.context

    def _tokens(self) -> TokenCache:
        return TokenCache(self.context.home)

    def authorization(self, provider: str, generation: int) -> str:
        """The cached (or a fresh) ``Bearer app-sk-…`` for ``provider``; never print it."""
        return self._tokens().authorization(
            self.key.private_key,
            chain_id=self.chain.chain_id,
            wallet=self.address,
            provider=provider,
            generation=generation,
        )

    def forget_token(self, provider: str) -> None:
        self._tokens().forget(chain_id=self.chain.chain_id, wallet=self.address, provider=provider)


def open_chain(context: Context) -> ComputeChain:
    """RPC client and contract reader for this profile; the chain id must match it."""
    from zerog_cli.zerog.compute import COMPUTE_ERRORS, ComputeContracts, network_for_chain
    from zerog_cli.zerog.evm import EvmClient

    settings = context.settings
    rpc_url = settings.endpoint("rpc_url")
    context.announce_network()
    evm = EvmClient(context.http, rpc_url, revert_errors=COMPUTE_ERRORS)
    chain_id = evm.chain_id()
    expected = settings.chain_id
    if expected is not None and chain_id != int(expected):
        raise ConfigError(
            f"{settings.rpc_url} is chain {chain_id}, but profile {settings.profile} "
            f"expects chain {expected}",
            hint="fix rpc_url or chain_id (`zerog config show`)",
        )
    ledger_address = settings.ledger_manager_address
    inference_address = settings.inference_serving_address
    if not ledger_address or not inference_address:
        known = network_for_chain(chain_id)
        ledger_address = ledger_address or known.ledger
        inference_address = inference_address or known.inference
    contracts = ComputeContracts(evm.call, ledger=ledger_address, inference=inference_address)
    return ComputeChain(context=context, evm=evm, contracts=contracts, chain_id=chain_id)


def connect(context: Context) -> ComputeLink:
    """The wallet key (exit 8 when missing) and the chain it pays on."""
    from zerog_cli.zerog.compute import address_of

    settings = context.settings
    key = wallet_key(context.secrets, devnet=settings.is_devnet, purpose=KeyPurpose.COMPUTE)
    chain = open_chain(context)
    return ComputeLink(chain=chain, key=key, address=address_of(key.private_key))


def route_endpoint(service_url: str, route: str) -> str:
    """Breaker name of one provider route: ``scheme://host:port/<service path>/<route>``."""
    from urllib.parse import urlsplit

    from zerog_cli.infra.http import endpoint_of

    base_path = urlsplit(service_url).path.rstrip("/")
    return endpoint_of(service_url, f"{base_path}/{route.strip('/')}")


def unsettled_fee(link: ComputeLink, service: Service, account: SubAccount | None) -> int | None:
    """Fees the provider served but has not settled on chain; None when it will not say.

    Best effort: older providers answer non-2xx, and an unreachable provider is
    reported by the chat request itself, not here.
    """
    from zerog_cli.infra.http import NO_RETRY, Timeouts
    from zerog_cli.zerog.compute import parse_unsettled_fee, unsettled_fee_url

    if account is None or not account.acknowledged:
        return None
    authorization = link.authorization(service.provider, account.generation)
    try:
        response = link.context.http.request(
            "GET",
            unsettled_fee_url(service.url, link.address),
            endpoint=route_endpoint(service.url, "v1/user"),
            headers={"Authorization": authorization},
            timeout=Timeouts(connect=3.0, read=10.0, deadline=link.context.settings.http_deadline),
            retry=NO_RETRY,
            max_bytes=64 << 10,
        )
    except ZerogError:
        return None
    if not response.ok:
        return None
    try:
        body = json.loads(response.content)
        return parse_unsettled_fee(body) if isinstance(body, dict) else None
    except (ValueError, ZerogError):
        return None


MODELS_MAX_BYTES = 5 << 20
"""The official SDK's cap on a ``/v1/models`` answer."""


def model_pricing(link: ComputeLink, service: Service, model: str) -> Pricing:
    """The prices the broker bills ``model`` at, for estimates and admission.

    A single-model service bills its on-chain prices (and the tiers and cache
    billing of its ``additionalInfo``). A multi-model service, or a model other
    than the service's own, is billed at that model's entry in ``GET
    /v1/models`` (or the ``*`` catch-all entry): on chain such a broker only
    publishes its highest prices (``GetBillingPrices``). When the catalog
    cannot be read, those on-chain prices are used: they never under-estimate.
    A model the catalog does not list is a usage error (exit 2), before
    anything is paid.
    """
    from zerog_cli.infra.http import NO_RETRY, Timeouts
    from zerog_cli.zerog.compute import Pricing, models_url, parse_models

    chain_pricing = Pricing.from_service(service)
    if service.info.get("MultiModel") is not True and model == service.model:
        return chain_pricing
    try:
        response = link.context.http.request(
            "GET",
            models_url(service.url),
            endpoint=route_endpoint(service.url, "v1/models"),
            timeout=Timeouts(connect=3.0, read=10.0, deadline=link.context.settings.http_deadline),
            retry=NO_RETRY,
            max_bytes=MODELS_MAX_BYTES,
        )
    except ZerogError:
        return chain_pricing
    if not response.ok:
        return chain_pricing
    try:
        entries = parse_models(json.loads(response.content))
    except (ValueError, ZerogError):
        return chain_pricing
    by_id = {entry.get("id"): entry for entry in entries}
    entry = by_id.get(model) or by_id.get("*")
    if entry is None:
        served = ", ".join(sorted(str(key) for key in by_id if isinstance(key, str)))
        raise UsageError(
            f"provider {service.provider} does not serve model {model!r}",
            hint=f"it serves: {served}" if served else "see its /v1/models",
        )
    return Pricing.from_model_entry(entry) or chain_pricing
