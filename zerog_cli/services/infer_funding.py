"""Funding 0G compute: deposit, transfer to a provider, acknowledge it, and get 0G back.

These are the only `zerog infer` operations that send transactions, and each
one asks first: the caller passes ``confirm(question)``, which returns only
when the operator said yes (the CLI refuses without ``--yes`` when stdin is
not a terminal). Everything that can be checked from the chain is checked
before asking, so a confirmed transaction is one the contracts accept:
first deposit ≥ 3 0G, first transfer ≥ 1 0G, enough available balance, a
refund that leaves 0 or at least 3 0G available.

Getting 0G back takes two steps, as the official contracts have it
(LedgerManager ``retrieveFund`` then ``refund``): ``retrieve`` asks a
provider's sub-account for everything not yet requested (a refund that unlocks
after the InferenceServing ``lockTime``, 24 h on the networks) and, in the same
transaction, moves every unlocked refund back to the ledger's available
balance; ``refund`` pays available ledger balance out to the wallet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import NotFound, QuotaExceeded, RemoteError, UsageError
from zerog_cli.infra.units import Amount, format_0g
from zerog_cli.services.context import Context
from zerog_cli.services.infer_chain import ComputeLink, connect, parse_address
from zerog_cli.services.infer_results import (
    FundingReport,
    LedgerFunds,
    RefundView,
    SubAccountFunds,
)
from zerog_cli.services.network import gas_options

if TYPE_CHECKING:
    from zerog_cli.zerog.compute import Ledger, Refund, SubAccount
    from zerog_cli.zerog.evm import Receipt

Confirm = Callable[[str], None]
"""Returns when the operator agreed; raises otherwise."""


def _ledger_view(ledger: Ledger | None) -> LedgerFunds | None:
    if ledger is None:
        return None
    return LedgerFunds(
        total=Amount.of(ledger.total_balance),
        available=Amount.of(ledger.available_balance),
        locked=Amount.of(ledger.locked),
    )


def _account_view(account: SubAccount | None) -> SubAccountFunds | None:
    if account is None:
        return None
    return SubAccountFunds(
        balance=Amount.of(account.balance),
        pending_refund=Amount.of(account.pending_refund),
        acknowledged=account.acknowledged,
    )


def _send(link: ComputeLink, *, to: str, data: bytes, value: int = 0) -> Receipt:
    """Sign, send and wait; contract reverts become their project errors (e.g. exit 4)."""
    from zerog_cli.zerog.compute import revert_data_from, revert_error

    settings = link.context.settings
    try:
        receipt = link.chain.evm.transact(
            link.key.private_key,
            to=to,
            data=data,
            value=value,
            gas=gas_options(settings),
            timeout=settings.wait_timeout,
            poll=0.5,
        )
    except RemoteError as failure:
        revert = revert_data_from(failure)
        if revert:
            raise revert_error(revert) from None
        raise
    if receipt.status != 1:
        raise RemoteError(f"transaction {receipt.tx_hash} reverted on chain", kind="fatal")
    return receipt


def _receipt_view(receipt: Receipt) -> dict[str, Any]:
    """The fields of a `FundingReport` that name the transaction."""
    return {"tx_hash": receipt.tx_hash, "block": receipt.block_number, "gas_used": receipt.gas_used}


def deposit(context: Context, amount: int, confirm: Confirm) -> FundingReport:
    """``depositFund``: wallet → compute ledger (creating it, then at least 3 0G)."""
    from zerog_cli.zerog.compute import MIN_ACCOUNT_BALANCE, encode_deposit_fund

    link = connect(context)
    contracts = link.contracts
    ledger = contracts.get_ledger(link.address)
    if ledger is None and amount < MIN_ACCOUNT_BALANCE:
        raise UsageError(
            f"wallet {link.address} has no compute ledger yet: the first deposit creates it "
            f"and must be at least {format_0g(MIN_ACCOUNT_BALANCE)} 0G"
        )
    held = link.chain.evm.balance(link.address)
    if held <= amount:
        raise QuotaExceeded(
            f"wallet {link.address} holds {format_0g(held)} 0G: not enough to deposit "
            f"{format_0g(amount)} 0G and pay gas"
        )
    confirm(
        f"Deposit {format_0g(amount)} 0G from wallet {link.address} into its 0G compute "
        f"ledger on {context.settings.profile} (chain {link.chain.chain_id})?"
    )
    receipt = _send(link, to=contracts.ledger_address, data=encode_deposit_fund(), value=amount)
    return FundingReport(
        action="deposit",
        wallet=link.address,
        amount=Amount.of(amount),
        **_receipt_view(receipt),
        ledger=_ledger_view(contracts.get_ledger(link.address)),
    )


def transfer(context: Context, provider_text: str, amount: int, confirm: Confirm) -> FundingReport:
    """``transferFund``: compute ledger → the provider's sub-account (a first one acknowledges)."""
    from zerog_cli.zerog.compute import MIN_TRANSFER_AMOUNT, encode_transfer_fund

    provider = parse_address(provider_text)
    link = connect(context)
    contracts = link.contracts
    service = contracts.get_service(provider)
    ledger = contracts.get_ledger(link.address)
    if ledger is None:
        raise QuotaExceeded(
            f"wallet {link.address} has no 0G compute ledger to transfer from",
            hint="run `zerog infer fund deposit 3` first; a first deposit is at least 3 0G",
        )
    account = contracts.get_account(link.address, provider)
    if account is None and amount < MIN_TRANSFER_AMOUNT:
        raise UsageError(
            f"the first transfer to provider {provider} must be at least "
            f"{format_0g(MIN_TRANSFER_AMOUNT)} 0G"
        )
    from_ledger = amount - min(account.pending_refund if account else 0, amount)
    if ledger.available_balance < from_ledger:
        raise QuotaExceeded(
            f"the compute ledger of {link.address} has {format_0g(ledger.available_balance)} 0G "
            f"available, less than the {format_0g(from_ledger)} 0G this transfer takes",
            hint=(
                "run `zerog infer fund deposit "
                f"{format_0g(from_ledger - ledger.available_balance)}` first"
            ),
        )
    confirm(
        f"Transfer {format_0g(amount)} 0G from the compute ledger of {link.address} to "
        f"provider {provider} ({service.model}) on {context.settings.profile}?"
    )
    name = contracts.inference_service_name()
    receipt = _send(
        link, to=contracts.ledger_address, data=encode_transfer_fund(provider, name, amount)
    )
    return FundingReport(
        action="transfer",
        wallet=link.address,
        provider=provider,
        amount=Amount.of(amount),
        **_receipt_view(receipt),
        ledger=_ledger_view(contracts.get_ledger(link.address)),
        sub_account=_account_view(contracts.get_account(link.address, provider)),
    )


def acknowledge(context: Context, provider_text: str, confirm: Confirm) -> FundingReport:
    """``acknowledgeTEESigner(provider, true)`` for a sub-account that exists but is not."""
    from zerog_cli.zerog.compute import encode_acknowledge_tee_signer

    provider = parse_address(provider_text)
    link = connect(context)
    contracts = link.contracts
    contracts.get_service(provider)
    account = contracts.get_account(link.address, provider)
    if account is None:
        raise QuotaExceeded(
            f"wallet {link.address} has no sub-account at provider {provider}",
            hint=f"run `zerog infer fund transfer {provider} 1`; a first transfer acknowledges",
        )
    if account.acknowledged:
        return FundingReport(
            action="acknowledge",
            wallet=link.address,
            provider=provider,
            already=True,
            sub_account=_account_view(account),
        )
    confirm(f"Acknowledge provider {provider} for wallet {link.address}?")
    receipt = _send(
        link, to=contracts.inference_address, data=encode_acknowledge_tee_signer(provider, True)
    )
    return FundingReport(
        action="acknowledge",
        wallet=link.address,
        provider=provider,
        already=False,
        **_receipt_view(receipt),
        sub_account=_account_view(contracts.get_account(link.address, provider)),
    )


def _utc(seconds: int) -> str:
    from datetime import UTC, datetime

    from zerog_cli.ledger.db import format_time

    return format_time(datetime.fromtimestamp(seconds, UTC))


def refund_views(account: SubAccount, lock_time: int, chain_time: int) -> list[RefundView]:
    """The live refund requests of a sub-account and when each unlocks (by the chain's clock)."""
    views = []
    for refund in account.pending_refunds:
        unlocks = refund.created_at + lock_time
        views.append(
            RefundView(
                amount=Amount.of(refund.amount),
                requested_at=_utc(refund.created_at),
                unlocks_at=_utc(unlocks),
                unlocked=chain_time >= unlocks,
                seconds_left=max(unlocks - chain_time, 0),
            )
        )
    return views


def _unlocked(refunds: tuple[Refund, ...] | list[Refund], lock_time: int, now: int) -> int:
    return sum(r.amount for r in refunds if now >= r.created_at + lock_time)


def retrieve(context: Context, provider_text: str, confirm: Confirm) -> FundingReport:
    """``retrieveFund([provider])``: unlocked refunds → ledger; request back all the rest.

    After it the provider serves nothing more from this sub-account until a new
    transfer (which cancels the newest pending refunds first).
    """
    from zerog_cli.zerog.compute import MAX_REFUNDS_PER_ACCOUNT, encode_retrieve_fund

    provider = parse_address(provider_text)
    link = connect(context)
    contracts = link.contracts
    if contracts.get_ledger(link.address) is None:
        raise QuotaExceeded(f"wallet {link.address} has no 0G compute ledger")
    account = contracts.get_account(link.address, provider)
    if account is None:
        raise NotFound(f"wallet {link.address} has no sub-account at provider {provider}")
    lock_time = contracts.lock_time()
    now = link.chain.evm.block_time()
    live = account.pending_refunds
    unlocked = _unlocked(live, lock_time, now)
    requested = account.balance - account.pending_refund
    waiting = [r for r in live if now < r.created_at + lock_time]
    if requested > 0 and len(waiting) >= MAX_REFUNDS_PER_ACCOUNT:
        first = min(r.created_at for r in waiting) + lock_time
        raise UsageError(
            f"provider {provider} already holds {len(waiting)} locked refund requests, the "
            f"contract's maximum",
            hint=f"rerun after {_utc(first)}, when the oldest one unlocks",
        )
    report = FundingReport(
        action="retrieve",
        wallet=link.address,
        provider=provider,
        returned=Amount.of(unlocked),
        requested=Amount.of(requested),
        lock_time=lock_time,
    )
    if unlocked == 0 and requested == 0:
        report.sent = False
        report.refunds = refund_views(account, lock_time, now)
        report.ledger = _ledger_view(contracts.get_ledger(link.address))
        return report
    steps = []
    if unlocked:
        steps.append(f"move {format_0g(unlocked)} 0G of unlocked refunds back to the ledger")
    if requested:
        steps.append(
            f"request {format_0g(requested)} 0G back from provider {provider} (it unlocks in "
            f"{_duration(lock_time)}; the provider serves nothing more from it)"
        )
    confirm(f"For wallet {link.address}: {' and '.join(steps)}?")
    name = contracts.inference_service_name()
    receipt = _send(link, to=contracts.ledger_address, data=encode_retrieve_fund([provider], name))
    after = contracts.get_account(link.address, provider)
    report.sent = True
    report.tx_hash = receipt.tx_hash
    report.block = receipt.block_number
    report.gas_used = receipt.gas_used
    report.refunds = [] if after is None else refund_views(after, lock_time, _block_time(link))
    report.ledger = _ledger_view(contracts.get_ledger(link.address))
    report.sub_account = _account_view(after)
    return report


def refund(context: Context, amount: int | None, confirm: Confirm) -> FundingReport:
    """``refund(amount)``: the ledger's available balance → the wallet (None: all of it).

    What stays available must be 0 or at least 3 0G; a ledger whose total
    reaches 0 is deleted with its sub-accounts.
    """
    from zerog_cli.zerog.compute import MIN_ACCOUNT_BALANCE, encode_refund

    link = connect(context)
    contracts = link.contracts
    ledger = contracts.get_ledger(link.address)
    if ledger is None:
        raise QuotaExceeded(f"wallet {link.address} has no 0G compute ledger to refund from")
    if amount is None:
        amount = ledger.available_balance
    if amount == 0:
        raise QuotaExceeded(
            f"the compute ledger of {link.address} has nothing available to refund",
            hint="run `zerog infer fund retrieve PROVIDER` and wait for the lock time first",
        )
    if amount > ledger.available_balance:
        raise QuotaExceeded(
            f"the compute ledger of {link.address} has {format_0g(ledger.available_balance)} 0G "
            f"available, less than the {format_0g(amount)} 0G asked for "
            f"({format_0g(ledger.locked)} 0G are in provider sub-accounts)",
            hint="get 0G back from a provider with `zerog infer fund retrieve PROVIDER` first",
        )
    remaining = ledger.available_balance - amount
    if 0 < remaining < MIN_ACCOUNT_BALANCE:
        raise UsageError(
            f"a refund must leave 0 or at least {format_0g(MIN_ACCOUNT_BALANCE)} 0G available; "
            f"{format_0g(amount)} 0G would leave {format_0g(remaining)} 0G",
            hint=(
                "refund `all` or at most "
                f"{format_0g(ledger.available_balance - MIN_ACCOUNT_BALANCE)} 0G"
            ),
        )
    closes = ledger.total_balance == amount
    question = (
        f"Refund {format_0g(amount)} 0G from the compute ledger of {link.address} to the wallet "
        f"on {context.settings.profile}?"
    )
    if closes:
        question += " This empties and deletes the ledger and its sub-accounts."
    confirm(question)
    receipt = _send(link, to=contracts.ledger_address, data=encode_refund(amount))
    return FundingReport(
        action="refund",
        wallet=link.address,
        amount=Amount.of(amount),
        **_receipt_view(receipt),
        ledger_deleted=closes,
        ledger=_ledger_view(contracts.get_ledger(link.address)),
        wallet_balance=Amount.of(link.chain.evm.balance(link.address)),
    )


def _block_time(link: ComputeLink) -> int:
    return link.chain.evm.block_time()


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    if rest == 0 and hours:
        return f"{hours} h"
    return f"{seconds} s"
