"""Settling one chat request, the same for both backends (Direct and the 0G Router).

In one ledger transaction: the ``inference_log`` row; an ``alerts`` row when a
provider claimed more usage than the request allowed; then either the quota
reservation released (nothing was charged) or the quota usage and the
``cost_tracking`` row settled from what was charged.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zerog_cli.errors import ZerogError
from zerog_cli.infra.choices import InferBackend
from zerog_cli.infra.units import Cost
from zerog_cli.ledger import alerts
from zerog_cli.ledger import inference as inference_rows
from zerog_cli.ledger.costs import CostEntry
from zerog_cli.ledger.quotas import Reserved
from zerog_cli.services import quotas
from zerog_cli.services.context import Context
from zerog_cli.services.infer_info import USAGE_CLAIM_ALERT
from zerog_cli.services.infer_results import (
    AskAnswer,
    DirectVerification,
    RouterVerification,
    Usage,
)

if TYPE_CHECKING:
    from zerog_cli.services.infer import AskRequest
    from zerog_cli.services.infer_exchange import Exchange


@dataclass(frozen=True)
class UsageClaim:
    """Usage a provider reported above what the request allowed, and that allowance."""

    prompt_tokens: int
    completion_tokens: int
    allowed_prompt_tokens: int
    allowed_completion_tokens: int

    def describe(self, provider: str, chat_id: str | None) -> str:
        return (
            f"provider {provider} claimed {self.prompt_tokens}+{self.completion_tokens} tokens "
            f"for chat {chat_id or '(no id)'}, but the request allowed at most "
            f"{self.allowed_prompt_tokens}+{self.allowed_completion_tokens} "
            "(prompt: one token per byte sent; completion: --max-tokens)"
        )


@dataclass(frozen=True)
class Spent:
    """What one answered request is charged."""

    prompt_tokens: int | None
    completion_tokens: int | None
    neuron: int
    tokens: int
    usd_micro: int
    usage_known: bool
    claim: UsageClaim | None = None
    """Set when the provider reported more than the request allowed; the rest is the allowed."""

    def usage(self) -> Usage | None:
        """The token counts as ``ask`` reports them; None when the answer had no usage."""
        if not self.usage_known:
            return None
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.tokens,
        )

    def cost(self) -> Cost:
        """What was charged as ``ask`` reports it: neuron, 0G and micro-USD."""
        return Cost.of_both(self.neuron, self.usd_micro)


@dataclass(frozen=True)
class Answered:
    """Who answered and what was checked: the fields of the log row a backend decides."""

    backend: InferBackend
    wallet: str
    provider: str
    model: str
    verified: bool | None
    verification: str | None
    binding: str | None = None


def inference_hold(
    context: Context, user: str, *, tokens_bound: int, usd_bound: int
) -> AbstractContextManager[quotas.Hold]:
    """Hold the most a request can cost against ``user``'s quota while it is sent;
    `record_and_settle` settles or releases the hold with what the answer cost."""
    return quotas.hold(
        context, user, None, Reserved(tokens=tokens_bound, usd_micro=usd_bound), purpose="infer"
    )


def record_and_settle(
    context: Context,
    request: AskRequest,
    held: quotas.Hold,
    exchange: Exchange,
    answered: Answered,
    *,
    status: str,
    spent: Spent | None,
    error: str | None,
    duration_ms: int,
) -> tuple[int, quotas.SettleOutcome | None]:
    """Log row and quota/cost in one transaction; ``spent`` None releases the hold."""
    settings = context.settings
    user = held.user
    record = inference_rows.InferenceRecord(
        user=user,
        network=settings.profile,
        wallet=answered.wallet,
        provider=answered.provider,
        model=answered.model,
        system=request.system,
        prompt=request.prompt,
        response=exchange.received_text if exchange.answered else None,
        prompt_tokens=None if spent is None else spent.prompt_tokens,
        completion_tokens=None if spent is None else spent.completion_tokens,
        cost_neuron=None if spent is None else spent.neuron,
        usd_micro=None if spent is None else spent.usd_micro,
        chat_id=exchange.chat_id,
        duration_ms=duration_ms,
        status=status,
        verified=answered.verified,
        verification=answered.verification,
        binding=answered.binding,
        error=error,
        stream=request.stream,
        max_tokens=request.max_tokens,
        finish_reason=exchange.finish_reason,
        backend=answered.backend,
    )
    with context.ledger.transaction() as conn:
        row_id = inference_rows.insert(conn, record)
        if spent is not None and spent.claim is not None:
            claim = spent.claim
            alerts.record(
                conn,
                level="critical",
                kind=USAGE_CLAIM_ALERT,
                subject=answered.provider,
                message=f"{claim.describe(answered.provider, exchange.chat_id)}; "
                f"user {user} charged the allowed (inference log #{row_id})",
                value=claim.prompt_tokens + claim.completion_tokens,
                threshold=claim.allowed_prompt_tokens + claim.allowed_completion_tokens,
                period=quotas.current_period(context),
            )
        if spent is None:
            held.release(conn)
            return row_id, None
        outcome = held.settle(
            conn,
            Reserved(tokens=spent.tokens, usd_micro=spent.usd_micro),
            CostEntry(
                period=quotas.current_period(context),
                user=user,
                namespace=None,
                service="compute",
                operation="infer",
                quantity=spent.tokens,
                unit="tokens",
                usd_micro=spent.usd_micro,
                neuron=spent.neuron,
                reference=exchange.chat_id,
                network=settings.profile,
                backend=answered.backend,
                model=answered.model,
                provider=answered.provider or None,
            ),
        )
    return row_id, outcome


def quota_warnings(context: Context, user: str, outcome: quotas.SettleOutcome | None) -> list[str]:
    """A settled request's quota warnings; sets the user's quota usage gauges on the way."""
    if outcome is None:
        return []
    for limit_name, ratio in outcome.ratios.items():
        context.metrics.quota_usage.labels(user, limit_name).set(ratio)
    return list(outcome.warnings)


@dataclass
class Sending:
    """One request sent under a quota hold, the same for both backends: its time, its
    log row and settlement (`record_and_settle`), and the answer ``ask`` reports."""

    context: Context
    request: AskRequest
    held: quotas.Hold
    exchange: Exchange
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def stop(self) -> float:
        """Seconds from the start until now, kept for the log row and the answer."""
        self.seconds = time.monotonic() - self.started
        return self.seconds

    def record(
        self, answered: Answered, *, status: str, spent: Spent | None, error: str | None
    ) -> tuple[int, quotas.SettleOutcome | None]:
        return record_and_settle(
            self.context,
            self.request,
            self.held,
            self.exchange,
            answered,
            status=status,
            spent=spent,
            error=error,
            duration_ms=int(self.seconds * 1000),
        )

    def record_failure(
        self, answered: Answered, spent: Spent | None, failure: BaseException
    ) -> None:
        """Log a send that raised ``failure``: its message, or only its type when it is
        not ours (an interrupt, say); ``spent`` None releases the hold."""
        message = str(failure) if isinstance(failure, ZerogError) else type(failure).__name__
        self.record(answered, status="error", spent=spent, error=message)

    def answer(
        self,
        answered: Answered,
        spent: Spent,
        log_id: int,
        warnings: list[str],
        *,
        provider: str | None,
        request_id: str | None,
        verification: DirectVerification | RouterVerification | None,
    ) -> AskAnswer:
        exchange = self.exchange
        return AskAnswer(
            answer=exchange.text,
            reasoning=exchange.reasoning or None,
            backend=answered.backend,
            model=answered.model,
            provider=provider,
            request_id=request_id,
            user=self.held.user,
            usage=spent.usage(),
            cost=spent.cost(),
            chat_id=exchange.chat_id,
            verified=answered.verified,
            verification=verification,
            stream=self.request.stream,
            finish_reason=exchange.finish_reason,
            duration_ms=int(self.seconds * 1000),
            log_id=log_id,
            warnings=warnings,
        )
