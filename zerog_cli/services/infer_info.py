"""Read-only `zerog infer` views: providers on chain, the wallet's account, the request log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zerog_cli.errors import NotFound, UsageError
from zerog_cli.infra.units import INT64_MAX, Amount, RecordedCost
from zerog_cli.ledger import alerts
from zerog_cli.ledger import inference as inference_rows
from zerog_cli.ledger.db import Page
from zerog_cli.services.context import Context
from zerog_cli.services.infer_chain import connect, open_chain, unsettled_fee
from zerog_cli.services.infer_funding import refund_views
from zerog_cli.services.infer_results import (
    AccountReport,
    LedgerFunds,
    LogEntries,
    LogEntry,
    ProviderList,
    ServiceView,
    SubAccountView,
    TokenPrices,
)

if TYPE_CHECKING:
    from zerog_cli.zerog.compute import Service


USAGE_CLAIM_ALERT = "usage_claim"
"""The alert `zerog infer` records when a provider reports more tokens than a request allowed."""


def _service_row(service: Service, usage_claims: int) -> ServiceView:
    return ServiceView(
        provider=service.provider,
        type=service.service_type,
        model=service.model,
        url=service.url,
        prices=TokenPrices.of(service.input_price, service.output_price),
        verifiability=service.verifiability,
        tee_signer=service.tee_signer_address,
        acknowledged=service.tee_signer_acknowledged,
        usage_claims=usage_claims,
        flags=["over-reported usage"] if usage_claims else [],
    )


def providers(
    context: Context, *, model: str | None = None, include_unacknowledged: bool = False
) -> ProviderList:
    """Every service on chain (all pages), optionally only those serving ``model``.

    ``usage_claims`` counts the requests this ledger caught the provider
    reporting more tokens than they allowed (flag ``over-reported usage``).
    """
    chain = open_chain(context)
    services = chain.contracts.list_services(include_unacknowledged=include_unacknowledged)
    claims = alerts.count_by_subject(context.ledger.conn, USAGE_CLAIM_ALERT)
    return ProviderList(
        [
            _service_row(s, claims.get(s.provider.lower(), 0))
            for s in services
            if model is None or s.model == model
        ]
    )


def account(context: Context) -> AccountReport:
    """The wallet's ledger and per-provider sub-accounts, with what each provider will spend.

    Each sub-account lists its pending refunds and when each unlocks, by the
    chain's clock (the latest block's time), which is what ``retrieveFund``
    compares with.
    """
    from zerog_cli.zerog.compute import spendable

    link = connect(context)
    contracts = link.contracts
    ledger = contracts.get_ledger(link.address)
    report = AccountReport(
        wallet=link.address,
        network=context.settings.profile,
        chain_id=link.chain.chain_id,
        wallet_balance=Amount.of(link.chain.evm.balance(link.address)),
    )
    if ledger is None:
        return report
    report.ledger = LedgerFunds(
        total=Amount.of(ledger.total_balance),
        available=Amount.of(ledger.available_balance),
        locked=Amount.of(ledger.locked),
    )
    lock_time = contracts.lock_time()
    chain_time = link.chain.evm.block_time()
    report.refund_lock_seconds = lock_time
    for provider in contracts.get_ledger_providers(
        link.address, contracts.inference_service_name()
    ):
        sub = contracts.get_account(link.address, provider)
        if sub is None:
            continue
        try:
            service: Service | None = contracts.get_service(provider)
        except NotFound:
            service = None
        unsettled = unsettled_fee(link, service, sub) if service is not None else None
        report.sub_accounts.append(
            SubAccountView(
                provider=provider,
                model=None if service is None else service.model,
                balance=Amount.of(sub.balance),
                pending_refund=Amount.of(sub.pending_refund),
                refunds=refund_views(sub, lock_time, chain_time),
                unsettled=None if unsettled is None else Amount.of(unsettled),
                spendable=Amount.of(max(spendable(sub, unsettled or 0), 0)),
                acknowledged=sub.acknowledged,
                generation=sub.generation,
            )
        )
    return report


def account_with_router(context: Context) -> AccountReport:
    """`account`, with the Router's balance under ``router`` when a Router key is set.

    Without a Router key this is `account` (its ``router`` is None). With one, a
    Direct side that cannot be read for want of a wallet key is left out
    (``direct_problem`` says why) rather than hiding the Router balance.
    """
    from zerog_cli.errors import ConfigError
    from zerog_cli.services.infer_router import account_report
    from zerog_cli.zerog.router import API_KEY_SECRET

    if context.secrets.get(API_KEY_SECRET) is None:
        return account(context)
    router = account_report(context)
    try:
        direct = account(context)
    except ConfigError as problem:
        return AccountReport(router=router, direct_problem=str(problem))
    direct.router = router
    return direct


def log(
    context: Context, *, user: str | None, limit: int, everyone: bool, offset: int = 0
) -> LogEntries:
    """The newest ``limit`` requests of ``user`` (default: the acting user) or of everyone,
    after skipping the ``offset`` newest."""
    if not 1 <= limit <= INT64_MAX:
        raise UsageError(f"-n must be between 1 and {INT64_MAX}, got {limit}")
    page = Page(limit, offset)
    who = None if everyone else (user or context.acting_user)
    rows = inference_rows.recent(context.ledger.conn, who, limit, page.offset)
    return LogEntries(_log_entry(row) for row in rows)


def _log_entry(row: dict[str, Any]) -> LogEntry:
    neuron = row["cost_neuron"]
    return LogEntry(
        id=row["id"],
        created_at=row["created_at"],
        user=row["user"],
        network=row["network"],
        wallet=row["wallet"],
        provider=row["provider"],
        model=row["model"],
        system=row["system"],
        prompt=row["prompt"],
        response=row["response"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        cost=None if neuron is None else RecordedCost.of_both(int(neuron), row["usd_micro"]),
        chat_id=row["chat_id"],
        duration_ms=row["duration_ms"],
        status=row["status"],
        verified=row["verified"],
        verification=row["verification"],
        error=row["error"],
        stream=row["stream"],
        max_tokens=row["max_tokens"],
        finish_reason=row["finish_reason"],
        binding=row["binding"],
        backend=row["backend"],
    )
