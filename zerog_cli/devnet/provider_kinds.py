"""The kinds of provider broker the devnet runs, one service each under its own address.

Real brokers differ in what they sign and bill (docs/protocol.md has the
official source lines); the devnet runs one of each, so a client is tested
against all of them:

- ``format-a`` at ``/provider``: the seeded service; the model runs in the
  broker's TEE, which signs ``sha256(req):sha256(resp)``;
- ``format-b`` at ``/providers/format-b``: centralized; enforces its model
  (re-marshalling the body) and signs the routing proof;
- ``rewriting`` at ``/providers/rewriting``: as format-b, and caps
  ``max_tokens`` at 16 (or injects it);
- ``delayed`` at ``/providers/delayed``: format A, but the signature exists
  only 1 s after the answer (as with older brokers);
- ``multi-model`` at ``/providers/multi-model``: two models with their own
  prices in ``/v1/models``; one has cache billing.

Each kind has its own provider address and TEE signer key (derived from
``keccak256("zerog devnet provider <kind>")`` and ``keccak256("zerog devnet
tee signer <kind>")``; public, test-only). Prices are above the seeded
service's, so choosing the cheapest provider still picks ``format-a``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from zerog_cli.devnet.compute import (
    DEVNET_MODEL,
    INPUT_PRICE,
    OUTPUT_PRICE,
    PROVIDER_ADDRESS,
    SERVICE_ADDITIONAL_INFO,
    TEE_SIGNER_ADDRESS,
    TEE_SIGNER_KEY,
)
from zerog_cli.devnet.constants import PROVIDER_PREFIX


@dataclass(frozen=True)
class ModelPrice:
    """One model of a multi-model service, as ``/v1/models`` publishes its native prices."""

    model: str
    input_price: int
    output_price: int
    cache_divisor: int | None = None
    """Cache billing: cached prompt tokens cost ``input_price / divisor``; the
    devnet's model then reports half of every prompt as cached."""


@dataclass(frozen=True)
class ProviderKind:
    name: str
    prefix: str
    address: str
    tee_key: str
    tee_address: str
    model: str
    input_price: int
    output_price: int
    additional_info: str
    centralized: bool = False
    """Format B: the broker forwards to a separate target, enforces its model and
    signs the routing proof."""
    max_completion_tokens: int | None = None
    """``enforceMaxCompletionTokens``: cap or inject ``max_tokens`` before forwarding."""
    context_length: int = 32_768
    signature_misses: int = 0
    """Requests for an answer's signature answered 400 (not signed yet) before it is
    served: a count, not a time, so what a client sees does not depend on the load."""
    models: tuple[ModelPrice, ...] = ()
    """Multi-model services: every model served, with its own prices."""

    def price_of(self, model: str) -> ModelPrice | None:
        """The prices billed for ``model``; None when this service does not serve it."""
        if not self.models:
            if model != self.model:
                return None
            return ModelPrice(model, self.input_price, self.output_price)
        for entry in self.models:
            if entry.model == model:
                return entry
        return None


UPSTREAM_IDENTITY = "devnet-upstream"
"""What centralized devnet brokers sign as their provider identity."""
UPSTREAM_CERT_FINGERPRINT = hashlib.sha256(b"zerog devnet upstream certificate").hexdigest()
"""Stand-in for the upstream's TLS leaf certificate fingerprint (no TLS on loopback)."""

_CENTRALIZED_INFO = json.dumps(
    {
        "ProviderType": "centralized",
        "TargetSeparated": True,
        "TEEVerifier": "dstack",
    },
    separators=(",", ":"),
)

FORMAT_A = ProviderKind(
    name="format-a",
    prefix=PROVIDER_PREFIX,
    address=PROVIDER_ADDRESS,
    tee_key=TEE_SIGNER_KEY,
    tee_address=TEE_SIGNER_ADDRESS,
    model=DEVNET_MODEL,
    input_price=INPUT_PRICE,
    output_price=OUTPUT_PRICE,
    additional_info=SERVICE_ADDITIONAL_INFO,
)
FORMAT_B = ProviderKind(
    name="format-b",
    prefix="/providers/format-b",
    address="0x7bc9625079684bE3ccfF9cA9321678fF344b4E04",
    tee_key="0x96093f8722f840162592fec35e4abf4e0a77e05469f5c799e425858dcffa8b7c",
    tee_address="0x0b38D45b67f3e170df8f18addC6D688ED5C0cc45",
    model="devnet-echo-b",
    input_price=60_000_000_000,
    output_price=120_000_000_000,
    additional_info=_CENTRALIZED_INFO,
    centralized=True,
)
REWRITING = ProviderKind(
    name="rewriting",
    prefix="/providers/rewriting",
    address="0x068A348769f974294265a4519dFDb9a5F3786196",
    tee_key="0x86d4022d7708e8628f8784f28768cb453c5408186b30c16cc71af1ae58196ca4",
    tee_address="0xa9eb85601cef97652940B765b0A987cA01ede95C",
    model="devnet-echo-rewrite",
    input_price=70_000_000_000,
    output_price=140_000_000_000,
    additional_info=_CENTRALIZED_INFO,
    centralized=True,
    max_completion_tokens=16,
    context_length=4096,
)
DELAYED = ProviderKind(
    name="delayed",
    prefix="/providers/delayed",
    address="0x66c9913ADC23d99679d42bFa742A29B7f24B3DeF",
    tee_key="0x243eeaab893f6a56a486af97064ff374c169208bc2cc2d1655260d39fc5826a0",
    tee_address="0x58b2E9eC3d2282A9F5fEc39E363E33F65f1FFC3D",
    model="devnet-echo-delayed",
    input_price=55_000_000_000,
    output_price=110_000_000_000,
    additional_info=SERVICE_ADDITIONAL_INFO,
    signature_misses=1,
)
MULTI_SMALL = ModelPrice("devnet-multi-small", 20_000_000_000, 40_000_000_000)
MULTI_LARGE = ModelPrice("devnet-multi-large", 200_000_000_000, 400_000_000_000, cache_divisor=4)
MULTI_MODEL = ProviderKind(
    name="multi-model",
    prefix="/providers/multi-model",
    address="0x45aA1b1b11BDb90E938993b6cdc7857Fa87Ce491",
    tee_key="0xe5a4d73bba4a380548db64973c4e1ea46c7b5de2ecfcf676d4877d13d2029bbd",
    tee_address="0xBd3A4928db98C8a08457D72E17fdaAb7030a352c",
    model=MULTI_SMALL.model,
    # On chain a multi-model broker publishes the highest of its models' prices.
    input_price=MULTI_LARGE.input_price,
    output_price=MULTI_LARGE.output_price,
    additional_info=json.dumps(
        {"TargetSeparated": False, "TEEVerifier": "dstack", "MultiModel": True},
        separators=(",", ":"),
    ),
    models=(MULTI_SMALL, MULTI_LARGE),
)

KINDS: tuple[ProviderKind, ...] = (FORMAT_A, FORMAT_B, REWRITING, DELAYED, MULTI_MODEL)
EXTRA_KINDS: tuple[ProviderKind, ...] = KINDS[1:]
"""The kinds registered at genesis next to the seeded ``format-a`` service."""
