"""Quotas, tiers, monthly periods, reservations and cost reports.

A user's limits are the tier's (from config) unless overridden on the user's
row. Usage is per calendar month in the configured timezone and resets itself
on first use in a new month. Anything that spends money first *reserves* the
amount with `hold`: one ``BEGIN IMMEDIATE`` transaction checks used +
reserved + asked against every limit and inserts the reservation, so
concurrent commands cannot both pass a limit only one of them fits. The
outcome is recorded with `Hold.settle`, in the transaction that writes the
object or the inference, which also turns the reservation into usage and
writes the cost row; a failure before that gives the reservation back.
Crossing 80 % of a limit writes an alert and returns a warning.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zerog_cli.errors import ConfigError, NotFound, QuotaExceeded, UsageError
from zerog_cli.infra.choices import CostGrouping
from zerog_cli.infra.config import Settings, Tier
from zerog_cli.infra.output import control_characters
from zerog_cli.infra.processes import pid_alive
from zerog_cli.infra.units import Cost, format_size, format_usd
from zerog_cli.ledger import alerts, costs, objects
from zerog_cli.ledger import namespaces as namespace_rows
from zerog_cli.ledger import quotas as quota_rows
from zerog_cli.ledger.db import LedgerConnection, Page, parse_time
from zerog_cli.ledger.quotas import QuotaRow, Reserved
from zerog_cli.services.context import Context

ALERT_RATIO = 0.8
STALE_RESERVATION_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Limits:
    storage_bytes: int | None
    tokens: int | None
    monthly_usd_micro: int | None


@dataclass(frozen=True)
class Reservation:
    id: int
    user: str
    namespace: str | None
    amounts: Reserved


@dataclass
class SettleOutcome:
    warnings: list[str] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)


def period_of(moment: datetime, timezone: str) -> str:
    """The YYYY-MM month that ``moment`` falls in, in ``timezone``."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {timezone!r} in the timezone setting") from None
    return moment.astimezone(zone).strftime("%Y-%m")


def current_period(context: Context) -> str:
    return period_of(context.now(), context.settings.timezone)


def storage_usd_micro(size_bytes: int, settings: Settings) -> int:
    """USD (micro) of storing ``size_bytes`` at the configured price per GB, rounded up."""
    return -(-size_bytes * settings.storage_usd_per_gb // 1_000_000_000)


def compute_usd_micro(tokens: int, settings: Settings) -> int:
    """USD (micro) of ``tokens`` at the configured price per 1K tokens, rounded up."""
    return -(-tokens * settings.compute_usd_per_1k_tokens // 1000)


def effective_limits(row: QuotaRow, tier: Tier) -> Limits:
    return Limits(
        storage_bytes=row.storage_limit_bytes
        if row.storage_limit_bytes is not None
        else tier.storage_bytes,
        tokens=row.token_limit if row.token_limit is not None else tier.tokens,
        monthly_usd_micro=(
            row.monthly_usd_limit_micro
            if row.monthly_usd_limit_micro is not None
            else tier.monthly_usd_micro
        ),
    )


def _tier_for(settings: Settings, row: QuotaRow) -> Tier:
    try:
        return settings.tier(row.tier)
    except UsageError:
        raise ConfigError(
            f"user {row.user} has tier {row.tier!r}, which the config no longer defines"
        ) from None


def validate_user_name(user: str) -> str:
    """``user`` unless it is empty or holds control characters (UsageError, exit 2): a user
    name is recorded and printed, so it must not carry escape sequences or line breaks."""
    controls = control_characters(user)
    if not user or controls:
        held = f" holds control characters ({', '.join(controls)})" if controls else " is empty"
        raise UsageError(f"not a valid user name: {user!r}{held}")
    return user


def _ensure_current(conn: LedgerConnection, context: Context, user: str) -> QuotaRow:
    validate_user_name(user)
    row = quota_rows.ensure(conn, user, context.settings.default_tier, current_period(context))
    return quota_rows.roll_period(conn, row, current_period(context))


def _expire_dead_reservations(conn: LedgerConnection, context: Context) -> None:
    host = socket.gethostname()
    now = context.now().timestamp()
    stale: list[int] = []
    for rid, pid, rhost, created in quota_rows.reservation_owners(conn):
        age = now - parse_time(created).timestamp()
        dead_here = rhost == host and pid != os.getpid() and not pid_alive(pid)
        if dead_here or age > STALE_RESERVATION_SECONDS:
            stale.append(rid)
    if stale:
        quota_rows.expire_reservations(conn, stale)


def _over(
    what: str, used: int, reserved: int, asked: int, limit: int | None, show: Any
) -> str | None:
    if limit is None or used + reserved + asked <= limit:
        return None
    held = f" + {show(reserved)} held by running commands" if reserved else ""
    return f"{what}: {show(used)} used{held} + {show(asked)} asked > limit {show(limit)}"


class Hold:
    """Amounts reserved against a user's quota for one operation (see `hold`)."""

    def __init__(self, context: Context, reservation: Reservation) -> None:
        self.context = context
        self.reservation = reservation
        self.closed = False

    @property
    def user(self) -> str:
        return self.reservation.user

    def settle(
        self,
        conn: LedgerConnection,
        spent: Reserved,
        cost: costs.CostEntry | None,
        *,
        namespace_bytes: int = 0,
    ) -> SettleOutcome:
        """Inside the caller's transaction: reservation → usage, cost row, 80 % alerts."""
        self.closed = True
        reservation = self.reservation
        quota_rows.delete_reservation(conn, reservation.id)
        before = _ensure_current(conn, self.context, reservation.user)
        quota_rows.add_usage(
            conn,
            reservation.user,
            storage_bytes=spent.storage_bytes,
            tokens=spent.tokens,
            usd_micro=spent.usd_micro,
        )
        if reservation.namespace is not None and namespace_bytes:
            namespace_rows.add_used_bytes(conn, reservation.namespace, namespace_bytes)
        if cost is not None:
            costs.record(conn, cost)
        after = quota_rows.get(conn, reservation.user)
        assert after is not None
        return _threshold_alerts(conn, self.context, before, after)

    def release(self, conn: LedgerConnection) -> None:
        """Inside the caller's transaction: give the hold back (nothing was charged)."""
        self.closed = True
        quota_rows.delete_reservation(conn, self.reservation.id)


@contextlib.contextmanager
def hold(
    context: Context,
    user: str,
    namespace: str | None,
    amounts: Reserved,
    *,
    purpose: str,
    namespace_bytes: int = 0,
    object_name: tuple[str, str] | None = None,
    replace: bool = False,
) -> Iterator[Hold]:
    """Reserve ``amounts`` for the body of a ``with`` block, which settles or releases them.

    Reserving checks every limit first: QuotaExceeded (exit 4) spends nothing.
    ``namespace_bytes`` counts against the namespace's quota (object records),
    ``amounts.storage_bytes`` against the user's monthly storage (bytes paid for).
    ``object_name`` (network, name) also holds that name in ``namespace`` until
    the hold ends: a name already stored, or held by another live run, is a
    UsageError (exit 2), in the same transaction, so of two runs uploading one
    name only one ever gets as far as paying. With ``replace`` a stored name is
    no refusal (a new version follows it), but the name is held all the same,
    so two replacing runs never both pay.

    The body records what it spent with `Hold.settle` in the
    transaction that writes its result, or `Hold.release` when nothing was
    charged. A body that raises gives the reservation back in a transaction of
    its own (a no-op when its settle already committed); one that ends without
    settling gives it back too.
    """
    ledger = context.ledger
    with ledger.transaction() as conn:
        _expire_dead_reservations(conn, context)
        if object_name is not None:
            _claim_name(conn, namespace, object_name, replace)
        _refuse_past_limits(conn, context, user, namespace, amounts, namespace_bytes)
        reservation_id = quota_rows.insert_reservation(
            conn,
            user,
            namespace,
            amounts,
            namespace_bytes=namespace_bytes,
            purpose=purpose,
            pid=os.getpid(),
            host=socket.gethostname(),
            object_name=object_name,
        )
    held = Hold(context, Reservation(reservation_id, user, namespace, amounts))
    try:
        yield held
    except BaseException:
        _release(context, held.reservation)
        raise
    if not held.closed:
        _release(context, held.reservation)


def _refuse_past_limits(
    conn: LedgerConnection,
    context: Context,
    user: str,
    namespace: str | None,
    amounts: Reserved,
    namespace_bytes: int,
) -> None:
    """QuotaExceeded unless used + held by running commands + ``amounts`` fit every limit."""
    row = _ensure_current(conn, context, user)
    limits = effective_limits(row, _tier_for(context.settings, row))
    held = quota_rows.reserved_by_user(conn, user)
    problems = [
        _over(
            "storage",
            row.storage_used_bytes,
            held.storage_bytes,
            amounts.storage_bytes,
            limits.storage_bytes,
            format_size,
        ),
        _over("tokens", row.tokens_used, held.tokens, amounts.tokens, limits.tokens, str),
        _over(
            "monthly budget",
            row.monthly_usd_used_micro,
            held.usd_micro,
            amounts.usd_micro,
            limits.monthly_usd_micro,
            format_usd,
        ),
    ]
    if namespace is not None and namespace_bytes:
        ns = namespace_rows.get(conn, namespace)
        if ns is not None and ns.quota_bytes is not None:
            problems.append(
                _over(
                    f"namespace {namespace}",
                    ns.used_bytes,
                    quota_rows.reserved_in_namespace(conn, namespace),
                    namespace_bytes,
                    ns.quota_bytes,
                    format_size,
                )
            )
    refused = [p for p in problems if p]
    if refused:
        raise QuotaExceeded(
            f"quota exceeded for {user} ({row.tier} tier, {row.period}): " + "; ".join(refused),
            hint=f"see `zerog quota show {user}`; raise it with `zerog quota set {user} …`",
        )


def _release(context: Context, reservation: Reservation) -> None:
    with context.ledger.transaction() as conn:
        quota_rows.delete_reservation(conn, reservation.id)


def name_taken(namespace: str, name: str) -> UsageError:
    """The refusal for a name that is stored already: it says how to add a version."""
    return UsageError(
        f"{namespace}/{name} already exists",
        hint="pass --replace to store a new version (the old one stays in history), "
        "or pick another --name",
    )


def _claim_name(
    conn: LedgerConnection, namespace: str | None, object_name: tuple[str, str], replace: bool
) -> None:
    network, name = object_name
    if namespace is None:
        raise ValueError("an object name is reserved inside a namespace")
    if not replace and objects.by_name(conn, network, namespace, name) is not None:
        raise name_taken(namespace, name)
    holder = quota_rows.name_holder(conn, network, namespace, name)
    if holder is not None:
        raise UsageError(
            f"name {namespace}/{name} is being uploaded by another run "
            f"({holder['purpose']} by {holder['user']}, pid {holder['pid']} on {holder['host']})",
            hint="wait for it to finish, or pick another --name",
        )


def _ratios(row: QuotaRow, limits: Limits) -> dict[str, float]:
    pairs = {
        "storage": (row.storage_used_bytes, limits.storage_bytes),
        "tokens": (row.tokens_used, limits.tokens),
        "monthly_usd": (row.monthly_usd_used_micro, limits.monthly_usd_micro),
    }
    return {name: used / limit for name, (used, limit) in pairs.items() if limit}


def _threshold_alerts(
    conn: LedgerConnection, context: Context, before: QuotaRow, after: QuotaRow
) -> SettleOutcome:
    limits = effective_limits(after, _tier_for(context.settings, after))
    old, new = _ratios(before, limits), _ratios(after, limits)
    outcome = SettleOutcome(ratios=new)
    for name, ratio in new.items():
        if ratio >= ALERT_RATIO > old.get(name, 0.0):
            message = f"{after.user} has used {ratio:.0%} of the {name} limit for {after.period}"
            alerts.record(
                conn,
                level="warning",
                kind="quota",
                subject=after.user,
                message=message,
                value=ratio,
                threshold=ALERT_RATIO,
                period=after.period,
            )
            outcome.warnings.append(message)
    return outcome


@dataclass(frozen=True)
class LimitUsage:
    """One limit this month: used, reserved by runs in flight, the limit (None: unlimited),
    whether the user's own value overrides the tier's, and used / limit."""

    used: int
    reserved: int
    limit: int | None
    overridden: bool
    ratio: float | None


@dataclass(frozen=True)
class QuotaStatus:
    """A user's usage against limits (``limits``: storage in bytes, tokens, monthly_usd
    in micro-USD) for the month ``period``."""

    user: str
    tier: str
    period: str
    limits: dict[str, LimitUsage]


@dataclass(frozen=True)
class QuotaStatusList:
    """`quota show --all`: every user, by name, one page (--limit, --offset), streamed from
    the ledger to the output (iterate it once)."""

    users: Iterable[QuotaStatus]


@dataclass(frozen=True)
class UsageReset:
    """`quota reset`: how many users' usage was zeroed."""

    reset: int


@dataclass(frozen=True)
class CostGroup:
    """Costs of one group of a month (``key``: the user, namespace, service… it groups by)."""

    key: str
    operations: int
    bytes: int
    tokens: int
    cost: Cost


@dataclass(frozen=True)
class CostReport:
    """`quota report`: a month's costs grouped ``by`` user, ns, service, backend, model or
    provider."""

    period: str
    by: CostGrouping
    groups: list[CostGroup]
    total: Cost


@dataclass(frozen=True)
class TierView:
    """A tier's monthly limits (None: unlimited) and whether new users get it."""

    tier: str
    storage_bytes: int | None
    tokens: int | None
    monthly_usd_micro: int | None
    default: bool


@dataclass(frozen=True)
class TierList:
    """`quota tiers`: the tiers the config defines."""

    tiers: list[TierView]


def _status_of(context: Context, row: QuotaRow, held: Reserved) -> QuotaStatus:
    limits = effective_limits(row, _tier_for(context.settings, row))
    usage = {
        "storage": (
            row.storage_used_bytes,
            held.storage_bytes,
            limits.storage_bytes,
            row.storage_limit_bytes,
        ),
        "tokens": (row.tokens_used, held.tokens, limits.tokens, row.token_limit),
        "monthly_usd": (
            row.monthly_usd_used_micro,
            held.usd_micro,
            limits.monthly_usd_micro,
            row.monthly_usd_limit_micro,
        ),
    }
    return QuotaStatus(
        user=row.user,
        tier=row.tier,
        period=row.period,
        limits={
            name: LimitUsage(
                used=used,
                reserved=reserved,
                limit=limit,
                overridden=override is not None,
                ratio=None if not limit else round(used / limit, 4),
            )
            for name, (used, reserved, limit, override) in usage.items()
        },
    )


def show(context: Context, user: str | None) -> QuotaStatus:
    """Quota status of one known user, or of the acting user (registered on first use).

    On a read-only ledger nothing is registered or rolled over: the same
    figures come from `preview`.
    """
    ledger = context.ledger
    if ledger.read_only:
        if user is not None:
            require_known_user(ledger.conn, user)
        return preview(context, user or context.acting_user)
    with ledger.transaction() as conn:
        if user is None:
            row = _ensure_current(conn, context, context.acting_user)
        else:
            require_known_user(conn, user)
            row = _ensure_current(conn, context, user)
        return _status_of(context, row, quota_rows.reserved_by_user(conn, row.user))


def show_all(context: Context, *, limit: int | None = None, offset: int = 0) -> QuotaStatusList:
    """Quota status of every user by name, ``limit`` of them from ``offset``, streamed.

    Every row is rolled over to the current month first, in one transaction;
    the statuses are then read one by one as the output asks for them, with no
    transaction held open while they print. On a read-only ledger nothing is
    rolled over: the same figures come from `preview`.
    """
    ledger = context.ledger
    page = Page(limit, offset)
    if ledger.read_only:
        return QuotaStatusList(
            preview(context, row.user) for row in quota_rows.all_rows(ledger.conn, page)
        )
    with ledger.transaction() as conn:
        quota_rows.roll_all_periods(conn, current_period(context))
        held = quota_rows.reserved_by_users(conn)
    return QuotaStatusList(
        _status_of(context, row, held.get(row.user, Reserved()))
        for row in quota_rows.all_rows(ledger.conn, page)
    )


def preview(context: Context, user: str) -> QuotaStatus:
    """Status of ``user`` without writing anything (a new user shows the default tier)."""
    conn = context.ledger.conn
    period = current_period(context)
    row = quota_rows.get(conn, user)
    if row is None or row.period != period:
        base = row or QuotaRow(
            user, context.settings.default_tier, None, None, None, 0, 0, 0, period
        )
        row = QuotaRow(
            base.user,
            base.tier,
            base.storage_limit_bytes,
            base.token_limit,
            base.monthly_usd_limit_micro,
            0,
            0,
            0,
            period,
        )
    return _status_of(context, row, quota_rows.reserved_by_user(conn, user))


def set_quota(
    context: Context,
    user: str,
    *,
    tier: str | None,
    limits: dict[str, int | None],
) -> QuotaStatus:
    """Change a user's tier and/or explicit limits; creates the user when new."""
    if tier is not None:
        context.settings.tier(tier)
    with context.ledger.transaction() as conn:
        _ensure_current(conn, context, user)
        quota_rows.set_limits(conn, user, tier=tier, limits=limits)
        row = quota_rows.get(conn, user)
        assert row is not None
        return _status_of(context, row, quota_rows.reserved_by_user(conn, user))


def reset(context: Context, user: str | None) -> UsageReset:
    """Zero usage of ``user`` (None: everyone). NotFound for an unknown user."""
    with context.ledger.transaction() as conn:
        if user is not None and not quota_rows.exists(conn, user):
            raise NotFound(f"no quota record for user {user!r}")
        return UsageReset(quota_rows.reset_usage(conn, user))


def report(context: Context, month: str | None, by: CostGrouping) -> CostReport:
    period = month or current_period(context)
    groups = list(costs.report(context.ledger.conn, period, by))
    return CostReport(
        period=period,
        by=by,
        groups=[
            CostGroup(
                key=g.key,
                operations=g.operations,
                bytes=g.bytes,
                tokens=g.tokens,
                cost=Cost.of_both(g.neuron, g.usd_micro),
            )
            for g in groups
        ],
        total=Cost.of_both(sum(g.neuron for g in groups), sum(g.usd_micro for g in groups)),
    )


def tiers(context: Context) -> TierList:
    default = context.settings.default_tier
    return TierList(
        [
            TierView(
                tier=tier.name,
                storage_bytes=tier.storage_bytes,
                tokens=tier.tokens,
                monthly_usd_micro=tier.monthly_usd_micro,
                default=tier.name == default,
            )
            for tier in context.settings.tiers.values()
        ]
    )


def ensure_user(conn: LedgerConnection, context: Context, user: str) -> QuotaRow:
    """Register ``user`` (default tier) if new, inside the caller's transaction."""
    return _ensure_current(conn, context, user)


def require_known_user(conn: LedgerConnection, user: str) -> None:
    """NotFound (exit 7) unless ``user`` has a quota record (acted before, or was set up)."""
    if not quota_rows.exists(conn, user):
        raise NotFound(
            f"unknown user {user!r}",
            hint=f"create the user with `zerog quota set {user} --tier free`",
        )
