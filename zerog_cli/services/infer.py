"""`zerog infer`: paid chat inference on the 0G compute network, budgeted and logged.

One request (`ask`) follows specs/0g-compute.md section 8:

1. validate the input (exit 2 before any network call);
2. pick the provider: ``--provider``, else the ``compute_provider`` setting,
   else the acknowledged chatbot service serving the model that is cheapest
   for this request (all pages of ``getAllServices``; a multi-model service
   serves every model of its ``/v1/models``, at that model's price);
3. read the service and the wallet's sub-account; estimate the request's
   upper bound (prompt at 4 bytes per token plus ``max_tokens`` of output)
   at the prices the broker bills: the model's own in ``/v1/models`` for a
   multi-model service, the highest rate a prompt token can cost (a
   cache-write premium), the tier of the prompt's size;
   refuse with exit 4 and a funding command when the sub-account is missing,
   not acknowledged or short of ``fee + unsettled + 1 0G``;
4. reserve the estimate against the user's token limit and monthly budget
   (exit 4 when it does not fit; nothing is sent);
5. POST the chat request with the cached auth token, retrying only what the
   spec allows (connection failures that never reached the provider, 429
   after ``Retry-After``, 502/503/504), behind the route's circuit breaker;
   a token the provider rejects is re-signed once;
6. check the TEE response signature when asked (``verify_response=auto``:
   TeeML services), retrying while the broker has not signed yet, and say
   what it binds (request and response, the response only when the broker
   rewrote the request, or the signer only); a wrong signer or a response
   hash that is not the bytes received is exit 3, and so is no signature at
   all when verification was demanded (``always`` / ``--verify-response``);
7. in one transaction: the `inference_log` row, the quota usage and the
   ``cost_tracking`` row, from the provider's own ``usage`` numbers, capped at
   what the request allowed (a prompt token per byte of the body sent,
   ``max_tokens`` of answer); a claim above that is an ``alerts`` row (the
   provider's numbers, kept apart) and exit 3.

Funding is never a side effect: ``zerog infer fund …`` sends transactions,
``ask`` only reads the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import (
    IntegrityError,
    NotFound,
    QuotaExceeded,
    UsageError,
)
from zerog_cli.infra.choices import InferBackend, RouterSort
from zerog_cli.infra.units import Amount, Cost, format_0g, format_usd
from zerog_cli.services import quotas
from zerog_cli.services.context import Context
from zerog_cli.services.infer_chain import (
    ComputeLink,
    connect,
    model_pricing,
    parse_address,
    unsettled_fee,
)
from zerog_cli.services.infer_exchange import DeltaSink, Exchange, Verification, send, verify
from zerog_cli.services.infer_results import AskAnswer, AskEstimate, Prices
from zerog_cli.services.infer_settle import (
    Answered,
    Sending,
    Spent,
    UsageClaim,
    inference_hold,
    quota_warnings,
)

if TYPE_CHECKING:
    from zerog_cli.zerog.compute import (
        Pricing,
        Service,
        SubAccount,
    )

DEFAULT_MAX_TOKENS = 1024
MAX_TOKENS_LIMIT = 1_000_000


@dataclass(frozen=True)
class AskRequest:
    prompt: str
    system: str | None = None
    provider: str | None = None
    model: str | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float | None = None
    stream: bool = False
    verify: bool | None = None
    """None: follow the ``verify_response`` setting."""
    estimate_only: bool = False
    via: InferBackend | None = None
    """``router`` or ``direct``; None: the ``compute_backend`` setting."""
    sort: RouterSort | None = None
    """Router only: ``latency`` or ``price``."""
    no_fallbacks: bool = False
    """Router only: no retry on another provider."""
    verify_tee: bool = False
    """Router only: ask the Router to check the provider's TEE signature."""


def validate(request: AskRequest) -> None:
    """Bad input is exit 2, before any network call."""
    if not request.prompt.strip():
        raise UsageError("the prompt is empty")
    if request.system is not None and not request.system.strip():
        raise UsageError("--system is empty")
    if not 1 <= request.max_tokens <= MAX_TOKENS_LIMIT:
        raise UsageError(
            f"--max-tokens must be between 1 and {MAX_TOKENS_LIMIT}, got {request.max_tokens}"
        )
    if request.temperature is not None and not 0.0 <= request.temperature <= 2.0:
        raise UsageError(f"--temperature must be between 0 and 2, got {request.temperature}")
    if request.provider is not None:
        parse_address(request.provider)
    if request.model is not None and not request.model.strip():
        raise UsageError("--model is empty")


def _messages(request: AskRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system is not None:
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": request.prompt})
    return messages


def _estimated_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    from zerog_cli.zerog.compute import estimate_tokens

    return sum(estimate_tokens(str(message["content"])) for message in messages)


# --- planning: provider, account, estimate -------------------------------------------------


@dataclass
class _Plan:
    link: ComputeLink
    service: Service
    pricing: Pricing
    model: str
    messages: list[dict[str, Any]]
    prompt_tokens: int
    max_tokens: int
    fee_bound: int
    tokens_bound: int
    usd_bound: int
    account: SubAccount | None
    unsettled: int | None
    verify: bool
    strict_verify: bool
    """``--verify-response`` or ``verify_response = always``: no signature is exit 3."""


def _priced_candidates(link: ComputeLink, model: str | None) -> list[tuple[Service, Pricing]]:
    """Chatbot services that serve ``model`` (any, when None), each with its price for it.

    A service serves its on-chain model; a multi-model service also serves
    every model its ``/v1/models`` lists, at that model's price.
    """
    from zerog_cli.zerog.compute import Pricing

    candidates = []
    for service in link.contracts.list_services():
        if service.service_type != "chatbot":
            continue
        if model is None or service.model == model:
            candidates.append((service, Pricing.from_service(service)))
        elif service.info.get("MultiModel") is True:
            try:
                pricing = model_pricing(link, service, model)
            except UsageError:
                continue
            if pricing.source == "models":
                candidates.append((service, pricing))
    return candidates


def _resolve_service(
    link: ComputeLink, request: AskRequest, prompt_tokens: int, model: str | None
) -> Service:
    from zerog_cli.zerog.compute import estimate_chat_fee

    settings = link.context.settings
    chosen = request.provider or settings.compute_provider
    if chosen:
        return link.contracts.get_service(parse_address(chosen))
    candidates = _priced_candidates(link, model)
    if not candidates:
        serving = f" serving model {model!r}" if model else ""
        raise NotFound(
            f"no acknowledged chatbot service{serving} on {settings.profile}",
            hint="see `zerog infer providers`, or pass --provider",
        )
    service, _ = min(
        candidates,
        key=lambda candidate: (
            estimate_chat_fee(prompt_tokens, request.max_tokens, candidate[1]).fee,
            candidate[0].provider.lower(),
        ),
    )
    return service


def _verify_wanted(request: AskRequest, setting: str, service: Service) -> bool:
    """``--verify-response`` wins; else ``verify_response``: auto (TeeML), always, never."""
    wanted = request.verify
    if wanted is None:
        if setting == "never":
            return False
        if setting == "auto":
            return service.verifiability == "TeeML"
        wanted = True
    if wanted and not service.verifiable:
        raise IntegrityError(
            f"provider {service.provider} cannot prove its answers "
            f"(verifiability {service.verifiability!r}); refusing to pay for an unverifiable one",
            hint="drop --verify-response, or set verify_response to auto",
        )
    return wanted


def _funding_problem(plan: _Plan) -> QuotaExceeded | None:
    """What the provider would refuse, as an error naming the command that fixes it."""
    from zerog_cli.zerog.compute import require_funds, spendable

    provider = plan.service.provider
    wallet = plan.link.address
    account = plan.account
    if account is None:
        if plan.link.contracts.get_ledger(wallet) is None:
            return QuotaExceeded(
                f"wallet {wallet} has no 0G compute ledger, so provider {provider} cannot be paid",
                hint=(
                    "run `zerog infer fund deposit 3`, then "
                    f"`zerog infer fund transfer {provider} 1`; a first deposit is at least "
                    "3 0G, a first transfer at least 1 0G"
                ),
            )
        return QuotaExceeded(
            f"wallet {wallet} has no sub-account at provider {provider}",
            hint=(
                f"run `zerog infer fund transfer {provider} 1`; a first transfer is at least "
                "1 0G and also acknowledges the provider"
            ),
        )
    if not account.acknowledged:
        return QuotaExceeded(
            f"wallet {wallet} has not acknowledged provider {provider}",
            hint=f"run `zerog infer fund acknowledge {provider}`",
        )
    short = plan.fee_bound - spendable(account, plan.unsettled or 0)
    if short <= 0:
        return None
    try:
        require_funds(account, provider, fee=plan.fee_bound, unsettled=plan.unsettled or 0)
    except QuotaExceeded as refused:
        return QuotaExceeded(
            str(refused.args[0]),
            hint=f"run `zerog infer fund transfer {provider} {format_0g(short)}`",
        )
    return None


def _plan(context: Context, request: AskRequest) -> _Plan:
    from zerog_cli.zerog.compute import estimate_chat_fee

    validate(request)
    link = connect(context)
    messages = _messages(request)
    prompt_tokens = _estimated_prompt_tokens(messages)
    wanted_model = request.model or context.settings.compute_model
    service = _resolve_service(link, request, prompt_tokens, wanted_model)
    if service.service_type != "chatbot":
        raise UsageError(
            f"provider {service.provider} offers {service.service_type!r}, not chatbot",
            hint="see `zerog infer providers`",
        )
    if not service.tee_signer_acknowledged:
        raise IntegrityError(
            f"provider {service.provider}'s TEE signer is not acknowledged on chain: "
            "its answers cannot be trusted",
            hint="pick an acknowledged provider (`zerog infer providers`)",
        )
    verify = _verify_wanted(request, context.settings.verify_response, service)
    model = wanted_model or service.model
    pricing = model_pricing(link, service, model)
    tokens_bound = prompt_tokens + request.max_tokens
    account = link.contracts.get_account(link.address, service.provider)
    return _Plan(
        link=link,
        service=service,
        pricing=pricing,
        model=model,
        messages=messages,
        prompt_tokens=prompt_tokens,
        max_tokens=request.max_tokens,
        fee_bound=estimate_chat_fee(prompt_tokens, request.max_tokens, pricing).fee,
        tokens_bound=tokens_bound,
        usd_bound=quotas.compute_usd_micro(tokens_bound, context.settings),
        account=account,
        unsettled=unsettled_fee(link, service, account),
        verify=verify,
        strict_verify=verify
        and (request.verify is True or context.settings.verify_response == "always"),
    )


def _budget_problem(context: Context, user: str, tokens: int, usd_micro: int) -> str | None:
    status = quotas.preview(context, user)
    problems = []
    for name, asked, show in (
        ("tokens", tokens, str),
        ("monthly_usd", usd_micro, format_usd),
    ):
        entry = status.limits[name]
        limit = entry.limit
        held = entry.used + entry.reserved
        if limit is not None and held + asked > limit:
            problems.append(
                f"{name}: {show(held)} used + {show(asked)} asked > limit {show(limit)}"
            )
    return "; ".join(problems) or None


def _estimate_report(context: Context, plan: _Plan) -> AskEstimate:
    from zerog_cli.zerog.compute import spendable

    user = context.acting_user
    funding = _funding_problem(plan)
    budget = _budget_problem(context, user, plan.tokens_bound, plan.usd_bound)
    account = plan.account
    return AskEstimate(
        estimate=True,
        backend=InferBackend.DIRECT,
        user=user,
        provider=plan.service.provider,
        model=plan.model,
        prompt_tokens=plan.prompt_tokens,
        max_tokens=plan.max_tokens,
        tokens_upper_bound=plan.tokens_bound,
        cost_upper_bound=Cost.of_both(plan.fee_bound, plan.usd_bound),
        prices=Prices.bounding(
            plan.pricing.input_price,
            plan.pricing.output_price,
            plan.pricing.source,
            plan.pricing.cache_divisor,
        ),
        spendable=None
        if account is None
        else Amount.of(max(spendable(account, plan.unsettled or 0), 0)),
        unsettled=None if plan.unsettled is None else Amount.of(plan.unsettled),
        verify=plan.verify,
        fits_balance=funding is None,
        balance_problem=None if funding is None else str(funding),
        fits_budget=budget is None,
        budget_problem=budget,
    )


# --- recording ------------------------------------------------------------------------------


def _allowed_usage(plan: _Plan, exchange: Exchange, usage: dict[str, Any]) -> UsageClaim | None:
    """None when ``usage`` fits the request, else the claim and what it may be charged.

    No tokenizer makes more tokens than the bytes it reads, so the request body
    sent (messages plus JSON, which outweighs any chat template) bounds the
    prompt; ``max_tokens`` bounds the completion (a broker only lowers it).
    """
    from zerog_cli.zerog.compute_fees import usage_count

    prompt = usage_count(usage.get("prompt_tokens"))
    completion = usage_count(usage.get("completion_tokens"))
    allowed_prompt = len(exchange.request_body)
    if prompt <= allowed_prompt and completion <= plan.max_tokens:
        return None
    return UsageClaim(prompt, completion, allowed_prompt, plan.max_tokens)


def _spent(context: Context, plan: _Plan, exchange: Exchange) -> Spent:
    """From the provider's usage, capped at what the request allowed; without it, the bound."""
    from zerog_cli.zerog.compute import chat_fee

    if exchange.usage is None:
        return Spent(None, None, plan.fee_bound, plan.tokens_bound, plan.usd_bound, False)
    usage = exchange.usage
    claim = _allowed_usage(plan, exchange, usage)
    if claim is not None:
        usage = {
            **usage,
            "prompt_tokens": min(claim.prompt_tokens, claim.allowed_prompt_tokens),
            "completion_tokens": min(claim.completion_tokens, claim.allowed_completion_tokens),
        }
    fee = chat_fee(usage, plan.pricing)
    tokens = fee.input_count + fee.output_count
    return Spent(
        fee.input_count,
        fee.output_count,
        fee.fee,
        tokens,
        quotas.compute_usd_micro(tokens, context.settings),
        True,
        claim,
    )


def _answered(plan: _Plan, verification: Verification | None) -> Answered:
    return Answered(
        backend=InferBackend.DIRECT,
        wallet=plan.link.address,
        provider=plan.service.provider,
        model=plan.model,
        verified=None if verification is None else verification.verified,
        verification=None if verification is None else verification.reason,
        binding=None if verification is None else verification.binding,
    )


def _count(context: Context, plan: _Plan, result: str, seconds: float, spent: Spent | None) -> None:
    metrics = context.metrics
    metrics.compute_requests.labels(plan.model, result).inc()
    metrics.compute_duration.labels(plan.model).observe(seconds)
    if spent is None:
        return
    if spent.prompt_tokens is not None and spent.completion_tokens is not None:
        metrics.compute_tokens.labels("prompt").inc(spent.prompt_tokens)
        metrics.compute_tokens.labels("completion").inc(spent.completion_tokens)
    metrics.cost_usd.labels("compute").inc(spent.usd_micro / 1_000_000)


# --- the use case ---------------------------------------------------------------------------


def ask(
    context: Context, request: AskRequest, on_delta: DeltaSink | None = None
) -> AskEstimate | AskAnswer:
    """Run one paid chat request (or only estimate it); returns the report the CLI prints.

    ``on_delta`` receives streamed text as it arrives. Raises QuotaExceeded (4)
    before sending when funds or budget fall short, IntegrityError (3) after a
    failed signature check (the answer is still recorded), NetworkUnavailable
    (6) when the provider cannot be reached.
    """
    from zerog_cli.services import infer_router
    from zerog_cli.zerog.compute import chat_request_body

    validate(request)
    if infer_router.backend_for(context, request.via) == "router":
        return infer_router.ask(context, request, on_delta)
    if request.sort is not None or request.no_fallbacks or request.verify_tee:
        raise UsageError(
            "--sort, --no-fallbacks and --verify-tee are Router options; this request goes Direct",
            hint="add --via router (and set ZEROG_ROUTER_API_KEY), or use --verify-response",
        )
    plan = _plan(context, request)
    if request.estimate_only:
        return _estimate_report(context, plan)
    funding = _funding_problem(plan)
    if funding is not None:
        raise funding
    user = context.acting_user
    with inference_hold(
        context, user, tokens_bound=plan.tokens_bound, usd_bound=plan.usd_bound
    ) as held:
        exchange = Exchange(
            chat_request_body(
                plan.model,
                plan.messages,
                max_tokens=request.max_tokens,
                stream=request.stream,
                temperature=request.temperature,
            )
        )
        assert plan.account is not None  # _funding_problem refused a missing one
        generation = plan.account.generation
        sending = Sending(context, request, held, exchange)
        try:
            send(
                plan.link,
                plan.service,
                exchange,
                generation=generation,
                stream=request.stream,
                on_delta=on_delta,
            )
        except BaseException as failure:
            seconds = sending.stop()
            # A provider that started answering has billed: charge the upper bound then.
            spent = _spent(context, plan, exchange) if exchange.answered else None
            sending.record_failure(_answered(plan, None), spent, failure)
            _count(context, plan, "error", seconds, spent)
            raise
        seconds = sending.stop()
        verification = (
            verify(plan.link, plan.service, plan.model, exchange) if plan.verify else None
        )
        context.metrics.compute_verifications.labels(
            "skipped" if verification is None else verification.status
        ).inc()
        status = "ok"
        if verification is not None and not verification.verified:
            status = "mismatch" if verification.status == "mismatch" else "unverified"
        spent = _spent(context, plan, exchange)
        if spent.claim is not None:
            status = "overclaimed"
        warnings = (
            [] if spent.usage_known else ["the provider sent no usage: charged the upper bound"]
        )
        answered = _answered(plan, verification)
        log_id, outcome = sending.record(
            answered,
            status=status,
            spent=spent,
            error=None if verification is None or status == "ok" else verification.reason,
        )
    _count(context, plan, status, seconds, spent)
    warnings += quota_warnings(context, user, outcome)
    if spent.claim is not None:
        raise IntegrityError(
            f"{spent.claim.describe(plan.service.provider, exchange.chat_id)}; charged "
            f"{spent.tokens} tokens, the provider is flagged (logged as #{log_id})",
            hint="see `zerog infer providers`; the provider's own claim is in the alerts table",
        )
    if verification is not None and verification.status == "mismatch":
        raise IntegrityError(
            f"response signature check failed for chat {exchange.chat_id}: "
            f"{verification.reason} (logged as #{log_id}; do not trust this answer)"
        )
    if verification is not None and verification.status == "unavailable":
        if plan.strict_verify:
            raise IntegrityError(
                f"response signature not verified for chat {exchange.chat_id}: "
                f"{verification.reason} (logged as #{log_id}; do not trust this answer)",
                hint="raise signature_wait, or verify later with the chat id",
            )
        warnings.append(f"{verification.reason}: the answer is not verified")
    return sending.answer(
        answered,
        spent,
        log_id,
        warnings,
        provider=plan.service.provider,
        request_id=None,
        verification=None if verification is None else verification.view(),
    )
