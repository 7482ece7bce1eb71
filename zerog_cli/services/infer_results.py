"""What `zerog infer` reports, Direct and through the Router: one type per document.

Amounts are `Amount` (neuron as decimal text and 0G) or `Cost` (plus
micro-USD), the same everywhere a report names money.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from zerog_cli.infra.choices import InferBackend
from zerog_cli.infra.units import Amount, Cost, RecordedCost, format_0g
from zerog_cli.zerog.compute_provider import Binding, SignedFamily


@dataclass(frozen=True)
class TokenPrices:
    """What a token costs, as every report gives it: neuron per input (prompt) and per output
    (completion) token as decimal text, and the same in 0G per million tokens."""

    input: str
    output: str
    input_0g_per_million: str
    output_0g_per_million: str

    @classmethod
    def of(cls, input_neuron: int, output_neuron: int) -> TokenPrices:
        return cls(
            str(input_neuron),
            str(output_neuron),
            format_0g(input_neuron * 1_000_000),
            format_0g(output_neuron * 1_000_000),
        )


@dataclass(frozen=True)
class Prices(TokenPrices):
    """The token prices a request is bounded with, where they came from, and the cache
    divisor."""

    source: str
    cache_divisor: int | None

    @classmethod
    def bounding(
        cls, input_neuron: int, output_neuron: int, source: str, cache_divisor: int | None
    ) -> Prices:
        token = TokenPrices.of(input_neuron, output_neuron)
        return cls(
            token.input,
            token.output,
            token.input_0g_per_million,
            token.output_0g_per_million,
            source,
            cache_divisor,
        )


@dataclass(frozen=True)
class AskEstimate:
    """`infer --estimate`: what a request may cost at most, and whether funds and budget
    allow it; nothing is sent or recorded (``spendable``: Direct's sub-account)."""

    estimate: bool
    backend: InferBackend
    user: str
    provider: str | None
    model: str
    prompt_tokens: int
    max_tokens: int
    tokens_upper_bound: int
    cost_upper_bound: Cost
    prices: Prices
    spendable: Amount | None
    unsettled: Amount | None
    verify: bool
    fits_balance: bool
    balance_problem: str | None
    fits_budget: bool
    budget_problem: str | None


@dataclass(frozen=True)
class Usage:
    """Tokens the answer used, as the provider (or Router) reported them."""

    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None


@dataclass(frozen=True)
class DirectVerification:
    """Direct's own check of the provider's TEE signature (``by`` direct): ``status``
    verified, mismatch or unavailable; the signed text's ``family`` (A, B, image, e2ee or
    unknown) and what it binds (``binding``: request_and_response, response_only or
    signer_only); ``routing``: the provider's routing headers; ``attempts``: signature
    fetches."""

    by: Literal["direct"]
    status: Literal["verified", "mismatch", "unavailable"]
    reason: str
    expected_signer: str | None
    recovered_signer: str | None
    family: SignedFamily | None
    binding: Binding | None
    bound_to_bytes: bool
    routing: dict[str, str] | None
    attempts: int


@dataclass(frozen=True)
class RouterVerification:
    """The Router's ``verify_tee`` result (``by`` router): ``status`` ok, mismatch (the
    signature did not verify) or unverified (no result), and the trace's ``tee_verified``."""

    by: Literal["router"]
    status: Literal["ok", "mismatch", "unverified"]
    tee_verified: bool | None


@dataclass(frozen=True)
class AskAnswer:
    """`infer`: the answer, who served it (``request_id``: the Router's), what it used and
    cost, the signature check (``verification``: Direct's or the Router's verify_tee)
    and the log row (``log_id``)."""

    answer: str
    reasoning: str | None
    backend: InferBackend
    model: str
    provider: str | None
    request_id: str | None
    user: str
    usage: Usage | None
    cost: Cost
    chat_id: str | None
    verified: bool | None
    verification: DirectVerification | RouterVerification | None
    stream: bool
    finish_reason: str | None
    duration_ms: int
    log_id: int
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceView:
    """A compute service on chain: prices in neuron per token, its TEE signer, and
    ``flags`` (``over-reported usage`` when this ledger caught it, ``usage_claims`` times)."""

    provider: str
    type: str
    model: str
    url: str
    prices: TokenPrices
    verifiability: str
    tee_signer: str | None
    acknowledged: bool
    usage_claims: int
    flags: list[str]


@dataclass(frozen=True)
class ProviderList:
    """`infer providers`: the services on chain."""

    providers: list[ServiceView]


@dataclass(frozen=True)
class ModelView:
    """A Router model: its prices, context length and how many providers serve it."""

    id: str
    prices: TokenPrices
    context_length: int | None
    provider_count: int | None


@dataclass(frozen=True)
class ModelList:
    """`infer models`: the Router's catalog."""

    models: list[ModelView]


@dataclass(frozen=True)
class LedgerFunds:
    """The wallet's compute ledger on chain."""

    total: Amount
    available: Amount
    locked: Amount


@dataclass(frozen=True)
class RefundView:
    """A refund requested from a provider, and when the chain's clock unlocks it."""

    amount: Amount
    requested_at: str
    unlocks_at: str
    unlocked: bool
    seconds_left: int


@dataclass(frozen=True)
class SubAccountView:
    """The wallet's sub-account at one provider, with what the provider may still spend."""

    provider: str
    model: str | None
    balance: Amount
    pending_refund: Amount
    refunds: list[RefundView]
    unsettled: Amount | None
    spendable: Amount
    acknowledged: bool
    generation: int


@dataclass(frozen=True)
class RouterAccount:
    """The 0G Router balance of the key's account, and where to deposit."""

    router_url: str
    address: str | None
    ledger: Amount
    deposit: Amount
    credit: Amount
    pending_charge: Amount | None
    vault: Amount | None
    funds: Amount | None
    owed_to_router: Amount | None
    payment_layer_address: str | None
    deposit_how: str


@dataclass
class AccountReport:
    """`infer account`: the Router balance (None without a Router key) and the wallet's
    Direct funds (None, with ``direct_problem``, when they cannot be read)."""

    router: RouterAccount | None = None
    direct_problem: str | None = None
    wallet: str | None = None
    network: str | None = None
    chain_id: int | None = None
    wallet_balance: Amount | None = None
    ledger: LedgerFunds | None = None
    refund_lock_seconds: int | None = None
    sub_accounts: list[SubAccountView] = field(default_factory=list)


@dataclass(frozen=True)
class SubAccountFunds:
    """A sub-account's balance after a funding step."""

    balance: Amount
    pending_refund: Amount
    acknowledged: bool


@dataclass
class FundingReport:
    """`infer fund deposit|transfer|acknowledge|retrieve|refund`: what was done (``action``),
    its transaction (None when nothing was sent), and the funds after it. Fields that
    do not apply to an action are None."""

    action: str
    wallet: str
    provider: str | None = None
    amount: Amount | None = None
    tx_hash: str | None = None
    block: int | None = None
    gas_used: int | None = None
    already: bool | None = None
    sent: bool | None = None
    returned: Amount | None = None
    requested: Amount | None = None
    lock_time: int | None = None
    refunds: list[RefundView] | None = None
    ledger_deleted: bool | None = None
    ledger: LedgerFunds | None = None
    sub_account: SubAccountFunds | None = None
    wallet_balance: Amount | None = None


@dataclass(frozen=True)
class LogEntry:
    """One logged request (``cost``: None when the provider never said what it billed, its
    ``usd_micro`` None when the row holds no price;
    ``verified``: None when the signature was not checked, ``verification`` why;
    ``binding``: what a verified signature bound; ``backend``: direct or router)."""

    id: int
    created_at: str
    user: str
    network: str
    wallet: str
    provider: str
    model: str
    system: str | None
    prompt: str
    response: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: RecordedCost | None
    chat_id: str | None
    duration_ms: int
    status: Literal["ok", "mismatch", "unverified", "error", "overclaimed"]
    verified: bool | None
    verification: str | None
    error: str | None
    stream: bool
    max_tokens: int
    finish_reason: str | None
    binding: Binding | None
    backend: InferBackend


@dataclass(frozen=True)
class LogEntries:
    """`infer log`: requests newest first, each as the ledger's inference log holds it,
    streamed from the ledger to the output (iterate it once)."""

    entries: Iterable[LogEntry]
