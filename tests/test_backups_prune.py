"""`plan_prune`: restic's forget rules, table-driven with fixed dates (expected sets by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from zerog_cli.errors import UsageError
from zerog_cli.services.backups import KeepPolicy, plan_prune


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def daily_series() -> list[tuple[int, datetime]]:
    """One backup a day at 01:00 UTC from 2026-01-01 to 2026-03-31, plus 2026-03-31 13:00."""
    items = []
    start = at("2026-01-01T01:00:00")
    for day in range(90):
        items.append((day + 1, start + timedelta(days=day)))
    items.append((91, at("2026-03-31T13:00:00")))
    return items


def kept(items: list[tuple[int, datetime]], policy: KeepPolicy, zone: str = "UTC") -> set[str]:
    decisions = plan_prune(items, policy, ZoneInfo(zone))
    return {d.created_at.strftime("%Y-%m-%d %H:%M") for d in decisions if d.keep}


DAILY_CASES = [
    (
        KeepPolicy(last=3),
        {"2026-03-31 13:00", "2026-03-31 01:00", "2026-03-30 01:00"},
    ),
    (
        KeepPolicy(daily=3),
        {"2026-03-31 13:00", "2026-03-30 01:00", "2026-03-29 01:00"},
    ),
    (
        # 2026-03-31 is a Tuesday of ISO week 14; the newest of week 13 is Sunday 03-29.
        KeepPolicy(weekly=3),
        {"2026-03-31 13:00", "2026-03-29 01:00", "2026-03-22 01:00"},
    ),
    (
        KeepPolicy(monthly=2),
        {"2026-03-31 13:00", "2026-02-28 01:00"},
    ),
    (
        KeepPolicy(monthly=12),
        {"2026-03-31 13:00", "2026-02-28 01:00", "2026-01-31 01:00"},
    ),
    (
        KeepPolicy(last=1, daily=2, weekly=2, monthly=3),
        {
            "2026-03-31 13:00",
            "2026-03-30 01:00",
            "2026-03-29 01:00",
            "2026-02-28 01:00",
            "2026-01-31 01:00",
        },
    ),
    (
        KeepPolicy(last=2, daily=2),
        {"2026-03-31 13:00", "2026-03-31 01:00", "2026-03-30 01:00"},
    ),
]


@pytest.mark.parametrize(("policy", "expected"), DAILY_CASES, ids=lambda v: str(v))
def test_daily_series(policy: KeepPolicy, expected: set[str]) -> None:
    assert kept(daily_series(), policy) == expected


def test_buckets_count_days_that_have_backups_not_calendar_days() -> None:
    items = [
        (1, at("2026-03-01T02:00:00")),
        (2, at("2026-03-05T02:00:00")),
        (3, at("2026-03-10T02:00:00")),
    ]
    assert kept(items, KeepPolicy(daily=2)) == {"2026-03-10 02:00", "2026-03-05 02:00"}


def test_iso_weeks_and_months_across_the_new_year() -> None:
    # 2025-12-28 is Sunday of 2025-W52; 2025-12-29 (Monday) already belongs to 2026-W01.
    items = [
        (1, at("2025-12-28T03:00:00")),
        (2, at("2025-12-29T03:00:00")),
        (3, at("2026-01-01T03:00:00")),
    ]
    assert kept(items, KeepPolicy(weekly=2)) == {"2026-01-01 03:00", "2025-12-28 03:00"}
    assert kept(items, KeepPolicy(monthly=2)) == {"2026-01-01 03:00", "2025-12-29 03:00"}


def test_days_are_taken_in_the_configured_timezone() -> None:
    items = [
        (1, at("2026-03-30T23:30:00")),
        (2, at("2026-03-31T00:30:00")),
        (3, at("2026-03-29T12:00:00")),
    ]
    assert kept(items, KeepPolicy(daily=2)) == {"2026-03-31 00:30", "2026-03-30 23:30"}
    # In Berlin (UTC+2 after 2026-03-29) both late backups fall on 2026-03-31.
    assert kept(items, KeepPolicy(daily=2), "Europe/Berlin") == {
        "2026-03-31 00:30",
        "2026-03-29 12:00",
    }


def test_a_backup_kept_for_several_rules_lists_every_reason() -> None:
    decisions = plan_prune(daily_series(), KeepPolicy(last=1, daily=2, weekly=2, monthly=3))
    newest = decisions[0]
    assert newest.id == 91
    assert newest.reasons == ["last", "daily 2026-03-31", "weekly 2026-W14", "monthly 2026-03"]
    by_id = {d.id: d for d in decisions}
    assert by_id[88].reasons == ["weekly 2026-W13"]
    assert by_id[90].keep is False and by_id[90].reasons == []


def test_same_time_the_higher_id_is_newer() -> None:
    moment = at("2026-03-01T00:00:00")
    decisions = plan_prune([(5, moment), (6, moment)], KeepPolicy(last=1))
    assert [(d.id, d.keep) for d in decisions] == [(6, True), (5, False)]


def test_zero_keeps_nothing_and_negative_is_refused() -> None:
    assert KeepPolicy().empty
    assert not any(d.keep for d in plan_prune(daily_series(), KeepPolicy()))
    with pytest.raises(UsageError):
        KeepPolicy(daily=-1)
