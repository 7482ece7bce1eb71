"""`zerog quota show|set|reset|report|tiers`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zerog_cli.cli import params
from zerog_cli.cli.common import Limit, Offset, command, examples, new_app, results, state
from zerog_cli.errors import UsageError
from zerog_cli.infra.choices import CostGrouping
from zerog_cli.infra.output import Column
from zerog_cli.infra.units import format_size, format_usd

if TYPE_CHECKING:
    from zerog_cli.services.quotas import QuotaStatus

app = new_app(
    "Per-user limits (storage bytes, tokens, USD per month), tiers and cost reports.",
    "zerog quota show alice",
    "zerog quota report --by service",
)

_FORMATS: dict[str, Callable[[int], str]] = {
    "storage": format_size,
    "tokens": str,
    "monthly_usd": format_usd,
}


def _limit_rows(status: QuotaStatus) -> list[dict[str, Any]]:
    rows = []
    for name, entry in status.limits.items():
        show = _FORMATS[name]
        rows.append(
            {
                "limit_name": name,
                "used": show(entry.used),
                "reserved": show(entry.reserved) if entry.reserved else "",
                "limit": "unlimited" if entry.limit is None else show(entry.limit),
                "ratio": "" if entry.ratio is None else f"{entry.ratio:.0%}",
                "source": "user" if entry.overridden else "tier",
            }
        )
    return rows


def _print_status(statuses: Iterable[QuotaStatus]) -> None:
    out = state().output
    for status in statuses:
        out.echo(f"{status.user} · tier {status.tier} · period {status.period}")
        out.table(
            _limit_rows(status),
            [
                Column("limit_name", "limit"),
                Column("used", "used", justify="right"),
                Column("reserved", "in flight", justify="right"),
                Column("limit", "of", justify="right"),
                Column("ratio", "%", justify="right"),
                Column("source", "from"),
            ],
        )


@command(
    app,
    "show",
    result=results("quotas.QuotaStatus", "quotas.QuotaStatusList"),
    epilog=examples(
        "zerog quota show",
        "zerog quota show alice --json",
        "zerog quota show --all",
        "zerog quota show --all --limit 100 --offset 100",
    ),
)
def show(
    user: Annotated[
        str | None, typer.Argument(help="User (default: the acting user).", show_default=False)
    ] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Every user, by name.")] = False,
    limit: Limit = None,
    offset: Offset = 0,
) -> None:
    """Usage against limits for the current month."""
    from zerog_cli.services import quotas

    if (limit is not None or offset) and not everyone:
        raise UsageError("--limit and --offset page `quota show --all`")
    if everyone:
        listing = quotas.show_all(state().context, limit=limit, offset=offset)
        state().output.result(listing, lambda: _print_status(listing.users))
        return
    status = quotas.show(state().context, user)
    state().output.result(status, lambda: _print_status([status]))


@command(
    app,
    "set",
    result=results("quotas.QuotaStatus"),
    epilog=examples(
        "zerog quota set alice --tier premium",
        "zerog quota set bob --storage 20GB --tokens 500000 --monthly-usd 25",
        "zerog quota set bob --storage tier",
    ),
)
def set_quota(
    user: Annotated[str, typer.Argument(help="User (created if new).")],
    tier: Annotated[
        str | None, typer.Option("--tier", help="Tier name from `quota tiers`.", show_default=False)
    ] = None,
    storage: Annotated[
        params.LimitChange | None,
        typer.Option(
            "--storage",
            click_type=params.LimitOrTierType(params.SIZE),
            help="Bytes per month, e.g. 20GB; 'tier' clears.",
            show_default=False,
        ),
    ] = None,
    tokens: Annotated[
        params.LimitChange | None,
        typer.Option(
            "--tokens",
            click_type=params.LimitOrTierType(params.TOKENS),
            help="Tokens per month; 'tier' clears.",
            show_default=False,
        ),
    ] = None,
    monthly_usd: Annotated[
        params.LimitChange | None,
        typer.Option(
            "--monthly-usd",
            click_type=params.LimitOrTierType(params.USD),
            help="Budget in USD per month; 'tier' clears.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Set a user's tier or explicit limits (explicit limits beat the tier's)."""
    from zerog_cli.services import quotas

    changes = {"storage": storage, "tokens": tokens, "monthly_usd": monthly_usd}
    limits = {name: change.limit for name, change in changes.items() if change is not None}
    if tier is None and not limits:
        raise UsageError("nothing to set: give --tier, --storage, --tokens or --monthly-usd")
    status = quotas.set_quota(state().context, user, tier=tier, limits=limits)
    state().output.result(status, lambda: _print_status([status]))


@command(
    app,
    "reset",
    result=results("quotas.UsageReset"),
    epilog=examples("zerog quota reset bob", "zerog quota reset --all"),
)
def reset(
    user: Annotated[str | None, typer.Argument(help="User.", show_default=False)] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Every user.")] = False,
) -> None:
    """Zero this month's usage (monthly resets also happen by themselves)."""
    from zerog_cli.services import quotas

    if (user is None) == (not everyone):
        raise UsageError("give a USER or --all")
    changed = quotas.reset(state().context, None if everyone else user)
    state().output.result(changed, f"usage reset for {changed.reset} user(s)")


@command(
    app,
    "report",
    result=results("quotas.CostReport"),
    epilog=examples(
        "zerog quota report",
        "zerog quota report --month 2026-10 --by ns --json",
        "zerog quota report --by backend",
    ),
)
def report(
    month: Annotated[
        str | None,
        typer.Option(
            "--month",
            click_type=params.MONTH,
            help="YYYY-MM (default: this month).",
            show_default=False,
        ),
    ] = None,
    by: Annotated[
        CostGrouping,
        typer.Option(
            "--by", help="Group by user, ns, service, or for inference backend, model, provider."
        ),
    ] = CostGrouping.USER,
) -> None:
    """Costs for a month from the ledger, grouped by user, namespace or service.

    Inference costs also group by ``backend`` (router or direct), ``model`` and
    ``provider`` (for the Router, the provider it chose); other costs show ``-``.
    """
    from zerog_cli.services import quotas

    data = quotas.report(state().context, month, by)

    def human() -> None:
        out = state().output
        out.echo(f"costs for {data.period} by {by}: total {format_usd(data.total.usd_micro)}")
        out.table(
            data.groups,
            [
                Column("key", by),
                Column("operations", "ops", justify="right"),
                Column("bytes", "bytes", format_size, justify="right"),
                Column("tokens", "tokens", justify="right"),
                Column("cost", "USD", lambda cost: format_usd(cost.usd_micro), justify="right"),
                Column("cost", "0G", lambda cost: cost.og, justify="right"),
            ],
            empty="(no costs recorded)",
        )

    state().output.result(data, human)


@command(
    app,
    "tiers",
    result=results("quotas.TierList"),
    epilog=examples("zerog quota tiers", "zerog config set tiers.premium.storage 200GB"),
)
def tiers() -> None:
    """List the tiers defined in config and their limits."""
    from zerog_cli.services import quotas

    listing = quotas.tiers(state().context)
    columns = [
        Column("tier", "tier"),
        Column(
            "storage_bytes", "storage/month", lambda v: "unlimited" if v is None else format_size(v)
        ),
        Column("tokens", "tokens/month", lambda v: "unlimited" if v is None else str(v)),
        Column(
            "monthly_usd_micro",
            "budget/month",
            lambda v: "unlimited" if v is None else format_usd(v),
        ),
        Column("default", "default", lambda v: "yes" if v else ""),
    ]
    state().output.result(listing, lambda: state().output.table(listing.tiers, columns))
