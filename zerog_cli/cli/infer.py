"""`zerog infer`: paid chat inference on 0G compute, and its providers, account, funds and log.

``infer`` is a group whose default subcommand is ``ask``: when the first
word after ``infer`` is not a subcommand name (or ``--help``), ``ask`` is
implied, so ``zerog infer "hello"`` is ``zerog infer ask "hello"`` and
``echo hi | zerog infer -`` reads the prompt from stdin. Subcommand names
therefore win: to ask the literal prompt "log", write ``zerog infer ask log``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zerog_cli.cli import params
from zerog_cli.cli.common import (
    AsUser,
    GasLimitOption,
    Offset,
    ZerogGroup,
    command,
    confirm_unless_yes,
    examples,
    new_app,
    results,
    state,
)
from zerog_cli.errors import UsageError
from zerog_cli.infra import redaction
from zerog_cli.infra.choices import InferBackend, RouterSort
from zerog_cli.infra.output import Column, terminal_safe
from zerog_cli.infra.stdin import is_terminal, standard_input
from zerog_cli.infra.units import format_usd
from zerog_cli.services.infer_results import AskEstimate

if TYPE_CHECKING:
    from collections.abc import Callable

    from zerog_cli.infra.units import Amount
    from zerog_cli.services.context import Context
    from zerog_cli.services.infer_funding import Confirm
    from zerog_cli.services.infer_results import (
        AccountReport,
        AskAnswer,
        FundingReport,
        RouterAccount,
    )

DEFAULT_COMMAND = "ask"


class _DefaultAskGroup(ZerogGroup):
    """A group that runs ``ask`` when the first argument is not one of its commands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


app = new_app(
    "Paid chat inference on the 0G compute network, budgeted and logged. "
    "`zerog infer PROMPT` is short for `zerog infer ask PROMPT`.",
    'zerog infer "Summarise RFC 9110 in one line"',
    "git diff | zerog infer - --system 'Review this patch' --max-tokens 400",
    "zerog infer providers --json",
    "zerog infer account",
    "zerog infer models",
    "zerog infer log -n 5",
    group=_DefaultAskGroup,
)
fund_app = new_app(
    "Fund 0G compute: deposit into the ledger, transfer to a provider, acknowledge it; "
    "retrieve from a provider and refund to the wallet to get 0G back.",
    "zerog infer fund deposit 5",
    "zerog infer fund transfer 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 2 --yes",
    "zerog infer fund retrieve 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --yes",
    "zerog infer fund refund all --yes",
)
app.add_typer(fund_app, name="fund")

Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _read_prompt(prompt: str) -> str:
    if prompt != "-":
        return prompt
    if is_terminal():
        raise UsageError("PROMPT is '-' but stdin is a terminal; pipe the prompt in")
    return standard_input("`zerog infer -`").read().rstrip("\n")


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def _og(amount: Amount | None) -> str:
    """An amount in 0G, or "-" where a report has none."""
    return "-" if amount is None else amount.og


def _print_estimate(report: AskEstimate) -> None:
    out = state().output
    bound = report.cost_upper_bound
    spendable = report.spendable
    out.fields(
        [
            ("backend", report.backend),
            ("provider", report.provider or "the Router's choice"),
            ("model", report.model),
            ("prompt tokens", f"~{report.prompt_tokens} (4 bytes per token)"),
            ("max tokens", report.max_tokens),
            ("upper bound", f"{bound.og} 0G, {format_usd(bound.usd_micro)}"),
            (
                "spendable",
                ("see `zerog infer account`" if report.backend == "router" else "no sub-account")
                if spendable is None
                else f"{spendable.og} 0G",
            ),
            ("verify", "yes" if report.verify else "no"),
            ("balance", "fits" if report.fits_balance else report.balance_problem),
            ("budget", "fits" if report.fits_budget else report.budget_problem),
        ]
    )
    out.info("estimate only: nothing was sent or recorded")


_BINDING_WORDS = {
    None: "-",
    "request_and_response": "request+response",
    "response_only": "request rewritten",
    "signer_only": "signer only",
}
"""Short words for what a signature bound (zerog_cli.zerog.compute.BINDING_MEANING)."""


def _summary(report: AskAnswer) -> str:
    usage = report.usage
    tokens = (
        "usage unknown"
        if usage is None
        else f"{usage.prompt_tokens}+{usage.completion_tokens} tokens"
    )
    cost = report.cost
    verification = report.verification
    if verification is None:
        verified = "signature not checked"
    elif verification.by == "router":
        verified = f"Router verify_tee: {verification.status}"
    elif verification.status == "verified":
        verified = f"signature verified ({_BINDING_WORDS[verification.binding]})"
    else:
        verified = "signature unavailable"
    via = "Router → " if report.backend == "router" else ""
    served = _short(report.provider or "?")
    return (
        f"{report.model} via {via}{served} · {tokens} · {cost.og} 0G · "
        f"{format_usd(cost.usd_micro)} · {verified} · log #{report.log_id}"
    )


@command(
    app,
    "ask",
    result=results("infer_results.AskAnswer", "infer_results.AskEstimate"),
    epilog=examples(
        'zerog infer ask "What is 0G?"',
        'zerog infer "Explain this error" --model devnet-echo-1 --max-tokens 200',
        "echo 'hi' | zerog infer - --no-stream --json",
        'zerog infer "Draft a reply" --estimate',
        "zerog infer 'Is this signed?' --verify-response "
        "--provider 0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        'zerog infer "Hello" --via router --sort price --verify-tee',
    ),
)
def ask(
    prompt: Annotated[str, typer.Argument(help="The prompt, or - to read it from stdin.")],
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            help="Provider address (default: compute_provider, else the cheapest for --model).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model id (default: compute_model, else the service's).",
            show_default=False,
        ),
    ] = None,
    system: Annotated[
        str | None, typer.Option("--system", help="A system message.", show_default=False)
    ] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", help="Most output tokens (bounds the cost).")
    ] = 1024,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="0 to 2.", show_default=False)
    ] = None,
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--no-stream",
            help="Print tokens as they arrive (default: when stdout is a terminal).",
            show_default=False,
        ),
    ] = None,
    as_user: AsUser = None,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Only estimate tokens, cost, balance and budget.")
    ] = False,
    verify_response: Annotated[
        bool | None,
        typer.Option(
            "--verify-response/--no-verify-response",
            help=(
                "Check the TEE signature and demand one (default: verify_response; "
                "auto = TeeML services, a missing signature only warns)."
            ),
            show_default=False,
        ),
    ] = None,
    via: Annotated[
        InferBackend | None,
        typer.Option(
            "--via",
            help="router or direct (default: compute_backend; auto = the Router when "
            "ZEROG_ROUTER_API_KEY is set and no compute_provider).",
            show_default=False,
        ),
    ] = None,
    sort: Annotated[
        RouterSort | None,
        typer.Option(
            "--sort", help="Router: pick the provider by latency or price.", show_default=False
        ),
    ] = None,
    no_fallbacks: Annotated[
        bool,
        typer.Option("--no-fallbacks", help="Router: fail rather than try another provider."),
    ] = False,
    verify_tee: Annotated[
        bool,
        typer.Option(
            "--verify-tee",
            help="Router: have it check the provider's TEE signature (a failed check is exit 3).",
        ),
    ] = False,
) -> None:
    """Ask one question, pay the provider, print the answer; every request is logged.

    Through the 0G Router (``--via router``): one API key, one balance, the
    Router picks the provider (``--provider ADDR`` pins one, ``--sort``,
    ``--no-fallbacks``); the tenant's budget is checked before sending from the
    model's prices in ``/v1/models`` and ``--max-tokens``, and settled from the
    answer's usage and the Router's charge. Its 402 is exit 4, a revoked or
    invalid key exit 8, a 429 is retried after ``Retry-After``.

    Refuses (exit 4, nothing sent) when the sub-account or the user's token or
    USD budget cannot cover the request's upper bound. A signature by the wrong
    signer, or over a response other than the one received, is exit 3 and is
    recorded; so is no signature within ``signature_wait`` seconds when it was
    demanded (``--verify-response`` or ``verify_response = always``), while
    ``auto`` warns and shows the answer. A provider that reports more tokens
    than the request allowed (a prompt token per byte sent, ``--max-tokens``
    of answer) is exit 3: the user is charged the allowed, the claim goes to
    the ``alerts`` table and the provider is flagged in ``infer providers``.
    """
    from zerog_cli.services.infer import AskRequest
    from zerog_cli.services.infer import ask as run_ask

    current = state()
    out = current.output
    current.context.override(user=as_user)
    streaming = stream if stream is not None else (sys.stdout.isatty() and not out.json_mode)
    request = AskRequest(
        prompt=_read_prompt(prompt),
        system=system,
        provider=provider,
        model=model,
        max_tokens=max_tokens,
        temperature=temperature,
        stream=streaming,
        verify=verify_response,
        estimate_only=estimate,
        via=via,
        sort=sort,
        no_fallbacks=no_fallbacks,
        verify_tee=verify_tee,
    )
    printed: list[str] = []

    def show(delta: str) -> None:
        printed.append(delta)
        out.stdout.write(terminal_safe(redaction.scrub(delta)))
        out.stdout.flush()

    on_delta = None if out.json_mode or estimate else show
    try:
        report = run_ask(current.context, request, on_delta=on_delta)
    finally:
        if printed:
            out.echo("")
    if isinstance(report, AskEstimate):
        out.result(report, lambda: _print_estimate(report))
        return
    for warning in report.warnings:
        out.warn(warning)
    if not printed and not out.json_mode:
        out.echo(report.answer)
    out.result(report, None)
    out.info(_summary(report))


@command(
    app,
    "providers",
    result=results("infer_results.ProviderList"),
    epilog=examples(
        "zerog infer providers",
        "zerog infer providers --model devnet-echo-1 --json",
        "zerog --profile testnet infer providers --all",
    ),
)
def providers(
    model: Annotated[
        str | None, typer.Option("--model", help="Only services of this model.", show_default=False)
    ] = None,
    include_all: Annotated[
        bool, typer.Option("--all", help="Include services whose TEE signer is not acknowledged.")
    ] = False,
) -> None:
    """Services on chain (every page, not only the first 50), prices in neuron per token.

    ``flags`` says ``over-reported usage`` for a provider this ledger caught
    reporting more tokens than a request allowed (``usage_claims`` times).
    """
    from zerog_cli.services.infer_info import providers as list_providers

    current = state()
    listing = list_providers(current.context, model=model, include_unacknowledged=include_all)
    current.output.result(
        listing,
        lambda: current.output.table(
            listing.providers,
            [
                Column("provider", "provider"),
                Column("type", "type"),
                Column("model", "model"),
                Column("prices", "input/token", lambda prices: prices.input, justify="right"),
                Column("prices", "output/token", lambda prices: prices.output, justify="right"),
                Column("verifiability", "verify"),
                Column("acknowledged", "ack", lambda v: "yes" if v else "no"),
                Column("flags", "flags", lambda v: ", ".join(v) or "-"),
            ],
            empty="no services",
        ),
    )


def _print_router_account(router: RouterAccount) -> None:
    out = state().output
    funds = router.funds
    owed = router.owed_to_router
    pairs: list[tuple[str, Any]] = [
        ("router", router.router_url),
        ("router account", router.address or "-"),
        ("router ledger", f"{router.ledger.og} 0G ({router.ledger.neuron} neuron)"),
    ]
    if router.vault is not None:
        pairs.append(("payment layer vault", f"{router.vault.og} 0G"))
    if router.pending_charge is not None:
        pairs.append(("pending charge", f"{router.pending_charge.og} 0G"))
    if owed is not None:
        pairs.append(("funds", f"owed to Router: {owed.og} 0G"))
    elif funds is not None:
        pairs.append(("funds", f"{funds.og} 0G"))
    pairs.append(("payment layer", router.payment_layer_address or "-"))
    pairs.append(("deposit", router.deposit_how))
    out.fields(pairs)


def _print_account(report: AccountReport) -> None:
    out = state().output
    router = report.router
    if router is not None:
        _print_router_account(router)
    if report.wallet is None:
        out.info(f"direct sub-accounts not shown: {report.direct_problem}")
        return
    ledger = report.ledger
    out.fields(
        [
            ("wallet", report.wallet),
            ("network", f"{report.network} (chain {report.chain_id})"),
            ("wallet balance", f"{_og(report.wallet_balance)} 0G"),
        ]
        + (
            [("ledger", "none (run `zerog infer fund deposit 3`)")]
            if ledger is None
            else [
                (
                    "ledger total",
                    f"{ledger.total.og} 0G ({ledger.total.neuron} neuron)",
                ),
                ("available", f"{ledger.available.og} 0G"),
                ("locked", f"{ledger.locked.og} 0G (in provider sub-accounts)"),
            ]
        )
    )
    if ledger is None:
        return
    rows = [
        {
            "provider": sub.provider,
            "model": sub.model or "",
            "balance": f"{sub.balance.og} 0G",
            "neuron": sub.balance.neuron,
            "pending_refund": f"{sub.pending_refund.og} 0G",
            "unsettled": "?" if sub.unsettled is None else f"{sub.unsettled.og} 0G",
            "spendable": f"{sub.spendable.og} 0G",
            "acknowledged": "yes" if sub.acknowledged else "no",
        }
        for sub in report.sub_accounts
    ]
    refunds = [
        {
            "provider": sub.provider,
            "amount": f"{refund.amount.og} 0G",
            "requested_at": refund.requested_at,
            "unlocks_at": refund.unlocks_at,
            "state": "unlocked: run `zerog infer fund retrieve PROVIDER`"
            if refund.unlocked
            else f"locked, {_wait(refund.seconds_left)} left",
        }
        for sub in report.sub_accounts
        for refund in sub.refunds
    ]
    out.table(
        rows,
        [
            Column("provider", "provider"),
            Column("model", "model"),
            Column("balance", "balance", justify="right"),
            Column("neuron", "neuron", justify="right"),
            Column("pending_refund", "refund pending", justify="right"),
            Column("unsettled", "unsettled", justify="right"),
            Column("spendable", "spendable", justify="right"),
            Column("acknowledged", "ack"),
        ],
        title="sub-accounts",
        empty="none (run `zerog infer fund transfer PROVIDER 1`)",
    )
    if refunds:
        out.table(
            refunds,
            [
                Column("provider", "provider"),
                Column("amount", "amount", justify="right"),
                Column("requested_at", "requested"),
                Column("unlocks_at", "unlocks"),
                Column("state", "state"),
            ],
            title="pending refunds (chain time)",
        )


def _wait(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"


@command(
    app,
    "account",
    result=results("infer_results.AccountReport"),
    epilog=examples("zerog infer account", "zerog infer account --json"),
)
def account() -> None:
    """The Router balance and the wallet's Direct ledger and sub-accounts, in 0G and neuron.

    Router (when ZEROG_ROUTER_API_KEY is set): its ledger, the Payment Layer
    vault, pending charges and the net funds ("owed to Router" when negative),
    and where to deposit. Direct: spendable = balance - pending refund -
    unsettled fees - the provider's 1 0G reserve; pending refunds are listed
    with the time each unlocks (chain time).
    """
    from zerog_cli.services.infer_info import account_with_router

    current = state()
    report = account_with_router(current.context)
    current.output.result(report, lambda: _print_account(report))


@command(
    app,
    "models",
    result=results("infer_results.ModelList"),
    epilog=examples("zerog infer models", "zerog infer models --json"),
)
def models() -> None:
    """Models the 0G Router serves, with prices in 0G per million tokens and context length."""
    from zerog_cli.services.infer_router import models_report

    current = state()
    listing = models_report(current.context)
    current.output.result(
        listing,
        lambda: current.output.table(
            listing.models,
            [
                Column("id", "model"),
                Column(
                    "prices",
                    "input 0G/M",
                    lambda prices: prices.input_0g_per_million,
                    justify="right",
                ),
                Column(
                    "prices",
                    "output 0G/M",
                    lambda prices: prices.output_0g_per_million,
                    justify="right",
                ),
                Column("context_length", "context", justify="right"),
                Column("provider_count", "providers", justify="right"),
            ],
            empty="the Router lists no models",
        ),
    )


def _confirmer(yes: bool) -> Confirm:
    def confirm(question: str) -> None:
        confirm_unless_yes(
            yes,
            question,
            unattended="this sends a transaction and stdin is not a terminal to confirm it",
            declined="not confirmed; nothing was sent",
        )

    return confirm


def _print_funding(report: FundingReport) -> None:
    out = state().output
    if report.already:
        out.echo(f"provider {report.provider} is already acknowledged; nothing was sent")
        return
    pairs: list[tuple[str, Any]] = [("transaction", report.tx_hash), ("block", report.block)]
    if report.amount is not None:
        pairs.insert(0, (report.action, f"{_og(report.amount)} 0G"))
    ledger = report.ledger
    if ledger is not None:
        pairs.append(("ledger", f"{ledger.total.og} 0G, {ledger.available.og} 0G available"))
    sub = report.sub_account
    if sub is not None:
        acknowledged = "acknowledged" if sub.acknowledged else "not acknowledged"
        pairs.append(("sub-account", f"{sub.balance.og} 0G ({acknowledged})"))
    out.fields(pairs)


def _fund(
    yes: bool,
    gas_price: int | None,
    gas_limit: int | None,
    send: Callable[[Context, Confirm], FundingReport],
    render: Callable[[FundingReport], None] = _print_funding,
) -> None:
    """One `infer fund` transaction: the gas options in force, a confirmation (or --yes)
    before it is sent, then its report."""
    current = state()
    current.context.override(gas_price=gas_price, gas_limit=gas_limit)
    report = send(current.context, _confirmer(yes))
    current.output.result(report, lambda: render(report))


@command(
    fund_app,
    "deposit",
    result=results("infer_results.FundingReport"),
    epilog=examples("zerog infer fund deposit 3", "zerog infer fund deposit 0.5 --yes --json"),
)
def fund_deposit(
    amount: Annotated[
        int,
        typer.Argument(click_type=params.AMOUNT, help="0G to move from the wallet, e.g. 3 or 0.5."),
    ],
    yes: Yes = False,
    gas_price: params.GasPriceOption = None,
    gas_limit: GasLimitOption = None,
) -> None:
    """Deposit 0G from the wallet into its compute ledger (the first deposit is ≥ 3 0G)."""
    from zerog_cli.services.infer_funding import deposit

    _fund(yes, gas_price, gas_limit, lambda context, confirm: deposit(context, amount, confirm))


@command(
    fund_app,
    "transfer",
    result=results("infer_results.FundingReport"),
    epilog=examples(
        "zerog infer fund transfer 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 1",
        "zerog infer fund transfer 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 2.5 --yes",
    ),
)
def fund_transfer(
    provider: Annotated[str, typer.Argument(help="Provider address.")],
    amount: Annotated[
        int,
        typer.Argument(
            click_type=params.AMOUNT, help="0G to move from the ledger to the provider."
        ),
    ],
    yes: Yes = False,
    gas_price: params.GasPriceOption = None,
    gas_limit: GasLimitOption = None,
) -> None:
    """Move 0G from the compute ledger to a provider's sub-account (first: ≥ 1 0G, acknowledges)."""
    from zerog_cli.services.infer_funding import transfer

    _fund(
        yes,
        gas_price,
        gas_limit,
        lambda context, confirm: transfer(context, provider, amount, confirm),
    )


@command(
    fund_app,
    "acknowledge",
    result=results("infer_results.FundingReport"),
    epilog=examples(
        "zerog infer fund acknowledge 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --yes"
    ),
)
def fund_acknowledge(
    provider: Annotated[str, typer.Argument(help="Provider address.")],
    yes: Yes = False,
    gas_price: params.GasPriceOption = None,
    gas_limit: GasLimitOption = None,
) -> None:
    """Acknowledge a provider whose sub-account exists but is not acknowledged."""
    from zerog_cli.services.infer_funding import acknowledge

    _fund(
        yes, gas_price, gas_limit, lambda context, confirm: acknowledge(context, provider, confirm)
    )


def _print_retrieve(report: FundingReport) -> None:
    out = state().output
    if not report.sent:
        out.echo(
            f"nothing to retrieve from {report.provider}: every 0G there is already "
            "requested and still locked; nothing was sent"
        )
    else:
        out.fields(
            [
                ("returned to ledger", f"{_og(report.returned)} 0G"),
                ("requested back", f"{_og(report.requested)} 0G"),
                ("transaction", report.tx_hash),
                ("block", report.block),
            ]
        )
    for refund in report.refunds or []:
        state_text = "unlocked" if refund.unlocked else f"unlocks {refund.unlocks_at}"
        out.echo(f"pending refund {refund.amount.og} 0G: {state_text}")
    ledger = report.ledger
    if ledger is not None:
        out.echo(f"ledger: {ledger.available.og} 0G available of {ledger.total.og} 0G")


@command(
    fund_app,
    "retrieve",
    result=results("infer_results.FundingReport"),
    epilog=examples(
        "zerog infer fund retrieve 0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "zerog infer fund retrieve 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --yes --json",
    ),
)
def fund_retrieve(
    provider: Annotated[str, typer.Argument(help="Provider address.")],
    yes: Yes = False,
    gas_price: params.GasPriceOption = None,
    gas_limit: GasLimitOption = None,
) -> None:
    """Ask a provider's sub-account for its 0G back; unlocked refunds return to the ledger.

    One transaction (retrieveFund): refunds older than the contract's lock time
    (24 h) go back to the ledger's available balance, and everything not yet
    requested becomes a new refund that unlocks after the lock time. Run it
    again once that has passed, then `zerog infer fund refund`.
    """
    from zerog_cli.services.infer_funding import retrieve

    _fund(
        yes,
        gas_price,
        gas_limit,
        lambda context, confirm: retrieve(context, provider, confirm),
        _print_retrieve,
    )


def _print_refund(report: FundingReport) -> None:
    ledger = report.ledger
    state().output.fields(
        [
            ("refund", f"{_og(report.amount)} 0G"),
            ("transaction", report.tx_hash),
            ("block", report.block),
            (
                "ledger",
                "deleted (emptied)"
                if ledger is None
                else f"{ledger.total.og} 0G, {ledger.available.og} 0G available",
            ),
            ("wallet balance", f"{_og(report.wallet_balance)} 0G"),
        ]
    )


@command(
    fund_app,
    "refund",
    result=results("infer_results.FundingReport"),
    epilog=examples("zerog infer fund refund 2", "zerog infer fund refund all --yes --json"),
)
def fund_refund(
    amount: Annotated[
        params.AmountOrAll,
        typer.Argument(
            click_type=params.AMOUNT_OR_ALL,
            help="0G to pay out to the wallet, or `all` that is available.",
        ),
    ],
    yes: Yes = False,
    gas_price: params.GasPriceOption = None,
    gas_limit: GasLimitOption = None,
) -> None:
    """Pay available ledger balance back to the wallet (must leave 0 or at least 3 0G).

    Refunding everything deletes the ledger and its sub-accounts. 0G still in a
    provider's sub-account comes back with `zerog infer fund retrieve` first.
    """
    from zerog_cli.services.infer_funding import refund

    _fund(
        yes,
        gas_price,
        gas_limit,
        lambda context, confirm: refund(context, amount.neuron, confirm),
        _print_refund,
    )


def _one_line(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@command(
    app,
    "log",
    result=results("infer_results.LogEntries"),
    epilog=examples(
        "zerog infer log",
        "zerog infer log -n 50 --as alice --json",
        "zerog infer log --all",
        "zerog infer log --limit 20 --offset 20",
    ),
)
def log(
    count: Annotated[
        int, typer.Option("-n", "--count", "--limit", help="How many, newest first.")
    ] = 20,
    offset: Offset = 0,
    as_user: AsUser = None,
    everyone: Annotated[bool, typer.Option("--all", help="Every user's requests.")] = False,
) -> None:
    """Logged requests: prompt, answer, model, provider, tokens, cost, duration, status.

    ``binding`` says what a verified response signature bound: our request and
    the response ("request+response"), only the response because the provider
    rewrote the request before forwarding it ("request rewritten"), or only
    the signer, for a signed text we cannot recompute ("signer only").
    """
    from zerog_cli.services.infer_info import log as read_log

    current = state()
    listing = read_log(current.context, user=as_user, limit=count, everyone=everyone, offset=offset)
    table_rows = (
        {
            "id": entry.id,
            "created_at": entry.created_at,
            "user": entry.user,
            "backend": entry.backend,
            "model": entry.model,
            "duration_ms": entry.duration_ms,
            "status": entry.status,
            "tokens": ""
            if entry.prompt_tokens is None
            else f"{entry.prompt_tokens}+{entry.completion_tokens}",
            "usd": ""
            if entry.cost is None or entry.cost.usd_micro is None
            else format_usd(entry.cost.usd_micro),
            "checked": {None: "-", True: "yes", False: "NO"}[entry.verified],
            "bound": _BINDING_WORDS.get(entry.binding, entry.binding),
            "prompt_line": _one_line(entry.prompt, 40),
            "provider_short": _short(entry.provider),
        }
        for entry in listing.entries
    )
    current.output.result(
        listing,
        lambda: current.output.table(
            table_rows,
            [
                Column("id", "id", justify="right"),
                Column("created_at", "when"),
                Column("user", "user"),
                Column("backend", "via"),
                Column("model", "model"),
                Column("provider_short", "provider"),
                Column("tokens", "tokens", justify="right"),
                Column("usd", "cost", justify="right"),
                Column("duration_ms", "ms", justify="right"),
                Column("status", "status"),
                Column("checked", "verified"),
                Column("bound", "binding"),
                Column("prompt_line", "prompt"),
            ],
            empty="no requests logged",
        ),
    )
