"""`zerog infer` through the 0G Router, with the per-tenant budgets the Router does not have.

One request (``ask``), as `zerog_cli.services.infer` does for Direct:

1. validate the input (exit 2) and read the model's prices from ``GET
   /v1/models`` (cached for a minute per Router);
2. bound the request: the prompt at 4 bytes per token plus ``--max-tokens``,
   priced at the model's published prices; reserve that against the tenant's
   token limit and monthly USD budget (exit 4, and the Router sees no chat
   request, when it does not fit);
3. POST ``/v1/chat/completions`` with the Router key, ``verify_tee`` when
   asked, and the routing preferences as ``X-0G-Provider-*`` headers; the
   Router picks the provider and fails over;
4. settle, in one transaction with the ``inference_log`` row and the
   ``cost_tracking`` row: tokens from the answer's ``usage`` (capped at what the
   request allowed), neuron from the Router's own charge
   (``x_0g_trace.billing.total_cost``, else usage x published prices), the
   provider the Router chose and the backend ``router``;
5. ``tee_verified: false`` in the trace is exit 3 after recording.

The Router's 402 (exit 4), 401 (exit 8, naming the secret) and 429 (retried
after ``Retry-After``) come from `zerog_cli.zerog.router.router_error`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from zerog_cli.errors import IntegrityError, NotFound, UsageError, ZerogError
from zerog_cli.infra.choices import InferBackend
from zerog_cli.infra.units import Amount, Cost
from zerog_cli.services import quotas
from zerog_cli.services.context import Context
from zerog_cli.services.infer_exchange import DeltaSink, Exchange, send_routed
from zerog_cli.services.infer_results import (
    AskAnswer,
    AskEstimate,
    ModelList,
    ModelView,
    Prices,
    RouterAccount,
    RouterVerification,
    TokenPrices,
)
from zerog_cli.services.infer_settle import (
    Answered,
    Sending,
    Spent,
    inference_hold,
    quota_warnings,
)
from zerog_cli.zerog.router import API_KEY_SECRET, RouterModel, Routing, parse_trace

if TYPE_CHECKING:
    from zerog_cli.services.infer import AskRequest

MODELS_TTL_S = 60.0
"""How long one process trusts a Router's model list (prices change rarely)."""

_models_cache: dict[str, tuple[float, list[RouterModel]]] = {}
_models_lock = threading.Lock()


def backend_for(context: Context, via: InferBackend | None) -> str:
    """``--via``, else ``compute_backend``; ``auto`` is the Router when its key is set
    and no ``compute_provider`` names a Direct provider."""
    if via is not None:
        return via
    setting = context.settings.compute_backend
    if setting != "auto":
        return setting
    if context.settings.compute_provider:
        return "direct"
    return "router" if context.secrets.get(API_KEY_SECRET) is not None else "direct"


def router_base(context: Context) -> str:
    return context.settings.endpoint("router_url").rstrip("/")


def _authorization(context: Context) -> dict[str, str]:
    key = context.secrets.require(API_KEY_SECRET, "the 0G Router API key")
    return {"Authorization": f"Bearer {key}"}


def _get_json(context: Context, path: str, *, authorized: bool) -> Any:
    from zerog_cli.infra.http import endpoint_of
    from zerog_cli.zerog.jsonrpc import loads_untrusted
    from zerog_cli.zerog.router import router_error

    url = f"{router_base(context)}/{path}"
    headers = _authorization(context) if authorized else {}
    response = context.http.request(
        "GET", url, endpoint=endpoint_of(url), headers=headers, max_bytes=8 << 20
    )
    if not response.ok:
        raise router_error(response.status, response.content, response.headers, endpoint_of(url))
    try:
        return loads_untrusted(response.content)
    except ValueError:
        from zerog_cli.errors import ProtocolError

        raise ProtocolError(f"the Router's answer to {path} is not JSON") from None


def list_models(context: Context) -> list[RouterModel]:
    """``GET /v1/models`` (no key needed), cached for `MODELS_TTL_S` per Router URL."""
    from zerog_cli.zerog.router import parse_models

    base = router_base(context)
    now = time.monotonic()
    with _models_lock:
        cached = _models_cache.get(base)
        if cached is not None and now - cached[0] < MODELS_TTL_S:
            return cached[1]
    models = parse_models(_get_json(context, "models", authorized=False))
    with _models_lock:
        _models_cache[base] = (now, models)
    return models


def models_report(context: Context) -> ModelList:
    """The catalog with prices in 0G per million tokens, as `zerog infer models` shows it."""
    rows = []
    for model in list_models(context):
        rows.append(
            ModelView(
                id=model.id,
                prices=TokenPrices.of(model.prompt_price, model.completion_price),
                context_length=model.context_length,
                provider_count=model.provider_count,
            )
        )
    return ModelList(rows)


def _model(context: Context, wanted: str | None) -> RouterModel:
    models = list_models(context)
    if wanted is None:
        if not models:
            raise NotFound("the Router lists no models")
        return models[0]
    for model in models:
        if model.id == wanted:
            return model
    known = ", ".join(model.id for model in models) or "none"
    raise NotFound(f"the Router serves no model {wanted!r} (it serves: {known})")


def account_report(context: Context) -> RouterAccount:
    """``/v1/account/balance`` and ``/v1/account/funds``, with where to deposit."""
    from zerog_cli.zerog.router import DEPOSIT_HINT, parse_balance

    balance = parse_balance(
        _get_json(context, "account/balance", authorized=True),
        _get_json(context, "account/funds", authorized=True),
    )
    funds = balance.funds_total
    return RouterAccount(
        router_url=router_base(context),
        address=balance.address,
        ledger=Amount.of(balance.ledger_total),
        deposit=Amount.of(balance.deposit),
        credit=Amount.of(balance.credit),
        pending_charge=None
        if balance.pending_charge is None
        else Amount.of(balance.pending_charge),
        vault=None if balance.vault is None else Amount.of(balance.vault),
        funds=None if funds is None else Amount.of(funds),
        owed_to_router=None if funds is None or funds >= 0 else Amount.of(-funds),
        payment_layer_address=context.settings.payment_layer_address,
        deposit_how=DEPOSIT_HINT,
    )


def check_key(context: Context) -> dict[str, Any]:
    """One cheap authenticated call (``/v1/account/balance``): is the key accepted?

    ``status``: ``ok``, ``invalid`` (the Router refused the key) or
    ``unchecked`` (the Router could not be asked).
    """
    from zerog_cli.errors import ConfigError

    try:
        _get_json(context, "account/balance", authorized=True)
    except ConfigError as refused:
        return {"ok": False, "status": "invalid", "problem": str(refused)}
    except ZerogError as failure:
        return {"ok": False, "status": "unchecked", "problem": str(failure)}
    return {"ok": True, "status": "ok", "problem": None}


# --- one request --------------------------------------------------------------------------


@dataclass(frozen=True)
class _RoutedPlan:
    model: RouterModel
    messages: list[dict[str, Any]]
    prompt_tokens: int
    tokens_bound: int
    usd_bound: int
    fee_bound: int


def _plan(context: Context, request: AskRequest) -> _RoutedPlan:
    from zerog_cli.services.infer import _estimated_prompt_tokens, _messages

    messages = _messages(request)
    model = _model(context, request.model or context.settings.compute_model)
    prompt_tokens = _estimated_prompt_tokens(messages)
    if model.context_length is not None and prompt_tokens + request.max_tokens > (
        model.context_length
    ):
        raise UsageError(
            f"~{prompt_tokens} prompt tokens + --max-tokens {request.max_tokens} exceed "
            f"{model.id}'s context length {model.context_length}"
        )
    tokens_bound = prompt_tokens + request.max_tokens
    return _RoutedPlan(
        model=model,
        messages=messages,
        prompt_tokens=prompt_tokens,
        tokens_bound=tokens_bound,
        usd_bound=quotas.compute_usd_micro(tokens_bound, context.settings),
        fee_bound=model.cost(prompt_tokens, request.max_tokens),
    )


def _spent(context: Context, plan: _RoutedPlan, request: AskRequest, exchange: Exchange) -> Spent:
    """From the answer's usage, capped at what the request allowed; neuron as the Router
    charged it. Without usage: the upper bound."""
    from zerog_cli.zerog.compute_fees import usage_count

    trace = parse_trace(exchange.trace)
    usage = exchange.usage
    if usage is None:
        neuron = trace.total_cost if trace.total_cost is not None else plan.fee_bound
        return Spent(None, None, neuron, plan.tokens_bound, plan.usd_bound, False)
    prompt = min(usage_count(usage.get("prompt_tokens")), len(exchange.request_body))
    completion = min(usage_count(usage.get("completion_tokens")), request.max_tokens)
    neuron = (
        trace.total_cost if trace.total_cost is not None else plan.model.cost(prompt, completion)
    )
    tokens = prompt + completion
    return Spent(
        prompt, completion, neuron, tokens, quotas.compute_usd_micro(tokens, context.settings), True
    )


def _answered(plan: _RoutedPlan, request: AskRequest, exchange: Exchange) -> Answered:
    trace = parse_trace(exchange.trace)
    verified = trace.tee_verified if request.verify_tee else None
    return Answered(
        backend=InferBackend.ROUTER,
        wallet="",
        provider=trace.provider or "",
        model=plan.model.id,
        verified=verified,
        verification=None
        if verified is None
        else ("router verify_tee: " + ("verified" if verified else "signature did not verify")),
    )


def _estimate_report(context: Context, plan: _RoutedPlan, request: AskRequest) -> AskEstimate:
    from zerog_cli.services.infer import _budget_problem

    user = context.acting_user
    budget = _budget_problem(context, user, plan.tokens_bound, plan.usd_bound)
    return AskEstimate(
        estimate=True,
        backend=InferBackend.ROUTER,
        user=user,
        provider=request.provider,
        model=plan.model.id,
        prompt_tokens=plan.prompt_tokens,
        max_tokens=request.max_tokens,
        tokens_upper_bound=plan.tokens_bound,
        cost_upper_bound=Cost.of_both(plan.fee_bound, plan.usd_bound),
        prices=Prices.bounding(
            plan.model.prompt_price, plan.model.completion_price, "router", None
        ),
        spendable=None,
        unsettled=None,
        verify=request.verify_tee,
        fits_balance=True,
        balance_problem=None,
        fits_budget=budget is None,
        budget_problem=budget,
    )


def ask(
    context: Context, request: AskRequest, on_delta: DeltaSink | None = None
) -> AskEstimate | AskAnswer:
    """Run one chat request through the Router (or only estimate it); the CLI's report."""
    from zerog_cli.zerog.compute import chat_request_body, go_json_bytes
    from zerog_cli.zerog.jsonrpc import loads_untrusted

    if request.verify:
        raise UsageError(
            "--verify-response checks a provider's signature Direct; through the Router "
            "ask it with --verify-tee",
            hint="or add --via direct",
        )
    plan = _plan(context, request)
    if request.estimate_only:
        return _estimate_report(context, plan, request)
    routing = Routing(
        sort=request.sort,
        address=request.provider,
        allow_fallbacks=False if request.no_fallbacks else None,
    )
    headers = {**_authorization(context), **routing.headers()}
    url = f"{router_base(context)}/chat/completions"
    user = context.acting_user
    with inference_hold(
        context, user, tokens_bound=plan.tokens_bound, usd_bound=plan.usd_bound
    ) as held:
        body = chat_request_body(
            plan.model.id,
            plan.messages,
            max_tokens=request.max_tokens,
            stream=request.stream,
            temperature=request.temperature,
        )
        if request.verify_tee:
            body = go_json_bytes({**loads_untrusted(body), "verify_tee": True})
        exchange = Exchange(body)
        sending = Sending(context, request, held, exchange)
        try:
            send_routed(context, url, headers, exchange, stream=request.stream, on_delta=on_delta)
        except BaseException as failure:
            sending.stop()
            spent = _spent(context, plan, request, exchange) if exchange.answered else None
            sending.record_failure(_answered(plan, request, exchange), spent, failure)
            context.metrics.compute_requests.labels(plan.model.id, "error").inc()
            raise
        seconds = sending.stop()
        trace = parse_trace(exchange.trace)
        spent = _spent(context, plan, request, exchange)
        status: Literal["ok", "mismatch", "unverified"] = "ok"
        if request.verify_tee and trace.tee_verified is not True:
            status = "mismatch" if trace.tee_verified is False else "unverified"
        answered = _answered(plan, request, exchange)
        log_id, outcome = sending.record(
            answered,
            status=status,
            spent=spent,
            error=None if status == "ok" else f"verify_tee: tee_verified={trace.tee_verified}",
        )
    metrics = context.metrics
    metrics.compute_requests.labels(plan.model.id, status).inc()
    metrics.compute_duration.labels(plan.model.id).observe(seconds)
    metrics.cost_usd.labels("compute").inc(spent.usd_micro / 1_000_000)
    warnings = [] if spent.usage_known else ["the Router sent no usage: charged the upper bound"]
    warnings += quota_warnings(context, user, outcome)
    if status == "mismatch":
        raise IntegrityError(
            f"the Router reports the provider's TEE signature did not verify for chat "
            f"{exchange.chat_id} (logged as #{log_id}; do not trust this answer)"
        )
    if status == "unverified":
        warnings.append("verify_tee was asked but the Router reported no result")
    return sending.answer(
        answered,
        spent,
        log_id,
        warnings,
        provider=trace.provider,
        request_id=trace.request_id,
        verification=None
        if not request.verify_tee
        else RouterVerification(by="router", status=status, tee_verified=trace.tee_verified),
    )
