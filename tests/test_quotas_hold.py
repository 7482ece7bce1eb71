"""quotas.hold(): reserve, give back on failure, settle with the cost row in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zerog_cli.errors import QuotaExceeded
from zerog_cli.infra.choices import CostGrouping
from zerog_cli.ledger.costs import CostEntry
from zerog_cli.ledger.quotas import Reserved
from zerog_cli.services import quotas
from zerog_cli.services.context import Context

USER = "alice"


@pytest.fixture
def context(zerog_home: Path) -> Iterator[Context]:
    context = Context()
    quotas.set_quota(context, USER, tier=None, limits={"tokens": 1000})
    try:
        yield context
    finally:
        context.close()


def held_rows(context: Context) -> int:
    return int(context.ledger.conn.execute("SELECT COUNT(*) FROM quota_reservations").fetchone()[0])


def tokens_used(context: Context) -> int:
    return quotas.show(context, USER).limits["tokens"].used


def cost_rows(context: Context) -> int:
    return sum(g.operations for g in quotas.report(context, None, CostGrouping.USER).groups)


def cost(context: Context, tokens: int) -> CostEntry:
    return CostEntry(
        period=quotas.current_period(context),
        user=USER,
        namespace=None,
        service="compute",
        operation="infer",
        quantity=tokens,
        unit="tokens",
        usd_micro=0,
        neuron=0,
        reference=None,
        network="devnet",
    )


def test_a_hold_over_the_limit_is_refused_and_holds_nothing(context: Context) -> None:
    with (
        pytest.raises(QuotaExceeded, match="tokens"),
        quotas.hold(context, USER, None, Reserved(tokens=1001), purpose="infer"),
    ):
        pytest.fail("the body ran past a refused hold")
    assert held_rows(context) == 0


def test_a_hold_counts_against_the_limit_while_it_is_held(context: Context) -> None:
    with quotas.hold(context, USER, None, Reserved(tokens=600), purpose="infer") as held:
        assert held_rows(context) == 1
        with (
            pytest.raises(QuotaExceeded, match="held by running commands"),
            quotas.hold(context, USER, None, Reserved(tokens=600), purpose="infer"),
        ):
            pytest.fail("two holds passed a limit only one fits")
        with context.ledger.transaction() as conn:
            held.release(conn)
    assert held_rows(context) == 0


def test_a_failing_body_gives_the_hold_back(context: Context) -> None:
    with (
        pytest.raises(RuntimeError, match="provider went away"),
        quotas.hold(context, USER, None, Reserved(tokens=600), purpose="infer"),
    ):
        raise RuntimeError("provider went away")
    assert held_rows(context) == 0
    assert tokens_used(context) == 0


def test_settle_turns_the_hold_into_usage_and_a_cost_row(context: Context) -> None:
    with (
        quotas.hold(context, USER, None, Reserved(tokens=600), purpose="infer") as held,
        context.ledger.transaction() as conn,
    ):
        outcome = held.settle(conn, Reserved(tokens=450), cost(context, 450))
    assert held_rows(context) == 0
    assert tokens_used(context) == 450
    assert cost_rows(context) == 1
    assert outcome.ratios["tokens"] == pytest.approx(0.45)


def test_a_failure_after_settling_keeps_what_was_charged(context: Context) -> None:
    with (
        pytest.raises(RuntimeError, match="signature did not verify"),
        quotas.hold(context, USER, None, Reserved(tokens=600), purpose="infer") as held,
    ):
        with context.ledger.transaction() as conn:
            held.settle(conn, Reserved(tokens=500), cost(context, 500))
        raise RuntimeError("signature did not verify")
    assert held_rows(context) == 0
    assert tokens_used(context) == 500
    assert cost_rows(context) == 1


def test_a_body_that_neither_settles_nor_releases_gives_the_hold_back(context: Context) -> None:
    with quotas.hold(context, USER, None, Reserved(tokens=600), purpose="infer"):
        pass
    assert held_rows(context) == 0
    assert tokens_used(context) == 0
