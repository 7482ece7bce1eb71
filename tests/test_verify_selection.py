"""Verify's selection, rotation and --max-duration, with the download replaced by a stub.

The stub records a verification row exactly as the real check does, so these
tests exercise the real ordering (least recently *conclusively* checked
first) and a deterministic clock; the devnet tests do the same for real. Every
test runs on both ledger backends (``ledger_backend``: SQLite, PostgreSQL).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.test_backups_ledger import ledger_at, record_check, seed_backup
from zerog_cli.errors import ExitCode, LockHeld, NotFound, UsageError
from zerog_cli.ledger.backups import Backup
from zerog_cli.ledger.db import format_time
from zerog_cli.services import verify
from zerog_cli.services.context import Context

pytestmark = pytest.mark.usefixtures("ledger_backend")


class Clock:
    """A monotonic clock that moves only when the stub check runs, and a wall clock beside it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.wall = datetime(2026, 3, 10, tzinfo=UTC)
        self.wall_rate = 1.0

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall += timedelta(seconds=seconds * self.wall_rate)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Iterator[dict[int, str]]:
    """Replace the download with 10 s of fake work; statuses per backup id (default ok)."""
    statuses: dict[int, str] = {}

    def fake_check(
        context: Context, backup: Backup, run_id: str, *_sampling: object
    ) -> verify.ItemResult:
        clock.advance(10)
        status = statuses.get(backup.id, "ok")
        codes = {"ok": 0, "mismatch": 3, "missing": 7, "error": 6}
        item = verify.ItemResult(
            backup_id=backup.id,
            namespace=backup.namespace,
            name=backup.name,
            root=backup.root,
            status=status,
            duration_ms=10_000,
            bytes_checked=backup.size if status == "ok" else 0,
            error=None if status == "ok" else f"stub {status}",
            checked_at=format_time(context.now()),
            exit_code=codes[status],
        )
        verify.record_result(context, run_id, item)
        return item

    monkeypatch.setattr(verify, "check", fake_check)
    yield statuses


def seeded(home: Path, count: int) -> list[int]:
    ledger = ledger_at(home)
    ids = [
        seed_backup(ledger, created_at=f"2026-03-{day + 1:02d}T01:00:00Z") for day in range(count)
    ]
    ledger.close()
    return ids


def run(
    clock: Clock, selection: verify.Selection | None = None, **kwargs: object
) -> verify.VerifyReport:
    context = Context(clock=clock.now)
    try:
        return verify.run(
            context,
            selection or verify.Selection(),
            clock=clock.monotonic,
            **kwargs,  # type: ignore[arg-type]
        )
    finally:
        context.close()


def checked(report: verify.VerifyReport) -> list[int]:
    return [item.backup_id for item in report.items]


def test_max_duration_continues_where_the_previous_run_stopped(
    zerog_home: Path, clock: Clock, stub: dict[int, str]
) -> None:
    ids = seeded(zerog_home, 7)
    first = run(clock, max_duration=25)
    assert checked(first) == ids[:3]
    assert first.stopped == "max-duration reached"
    assert first.not_checked == ids[3:]
    assert first.exit_code == 0
    second = run(clock, max_duration=25)
    assert checked(second) == ids[3:6]
    third = run(clock, max_duration=25)
    assert checked(third) == [ids[6], ids[0], ids[1]]
    assert third.stopped == "max-duration reached"


def test_checks_within_the_same_second_still_rotate(
    zerog_home: Path, clock: Clock, stub: dict[int, str]
) -> None:
    ids = seeded(zerog_home, 4)
    clock.wall_rate = 0  # every check lands in the same second
    assert checked(run(clock)) == ids
    assert checked(run(clock, max_duration=5)) == ids[:1]
    assert checked(run(clock, max_duration=5)) == ids[1:2]
    assert checked(run(clock, max_duration=15)) == ids[2:4]


def test_the_first_backup_is_always_checked(
    zerog_home: Path, clock: Clock, stub: dict[int, str]
) -> None:
    ids = seeded(zerog_home, 2)
    report = run(clock, max_duration=1)
    assert checked(report) == ids[:1]
    assert report.not_checked == ids[1:]


def test_errors_do_not_count_as_a_verification_for_rotation(
    zerog_home: Path, clock: Clock, stub: dict[int, str]
) -> None:
    ids = seeded(zerog_home, 3)
    stub[ids[0]] = "error"
    stub[ids[1]] = "mismatch"
    report = run(clock)
    assert checked(report) == ids
    assert report.exit_code == ExitCode.INTEGRITY
    stub.clear()
    again = run(clock, max_duration=5)
    assert checked(again) == [ids[0]], "an errored backup was never really checked: first again"
    assert run(clock).exit_code == 0


def test_exit_codes_prefer_integrity_then_network(
    zerog_home: Path, clock: Clock, stub: dict[int, str]
) -> None:
    ids = seeded(zerog_home, 2)
    stub[ids[0]] = "error"
    assert run(clock).exit_code == ExitCode.NETWORK
    stub[ids[1]] = "missing"
    report = run(clock)
    assert report.exit_code == ExitCode.INTEGRITY
    assert report.counts() == {"ok": 0, "mismatch": 0, "missing": 1, "error": 1}
    assert "1 missing, 1 error" in report.summary()


def test_network_failures_stop_the_run_early(
    zerog_home: Path, clock: Clock, stub: dict[int, str]
) -> None:
    ids = seeded(zerog_home, 6)
    for backup_id in ids:
        stub[backup_id] = "error"
    report = run(clock)
    assert checked(report) == ids[: verify.NETWORK_GIVE_UP]
    assert report.stopped == "network unavailable"
    assert report.not_checked == ids[verify.NETWORK_GIVE_UP :]
    assert report.exit_code == ExitCode.NETWORK


def test_subset_covers_everything_over_t_runs(
    zerog_home: Path, clock: Clock, stub: dict[int, str]
) -> None:
    ids = seeded(zerog_home, 10)
    seen: list[int] = []
    for n in (1, 2, 3):
        part = checked(run(clock, verify.Selection(subset=(n, 3))))
        assert all(backup_id % 3 == n - 1 for backup_id in part)
        seen += part
    assert sorted(seen) == ids


def test_older_than_sample_namespace_and_ids(
    zerog_home: Path, clock: Clock, stub: dict[int, str]
) -> None:
    ids = seeded(zerog_home, 10)
    ledger = ledger_at(zerog_home)
    other = seed_backup(ledger, created_at="2026-03-02T00:00:00Z", namespace="docs", label="d")
    for backup_id in ids[:4]:
        record_check(ledger, backup_id, "ok", "2026-03-09T12:00:00Z")
    record_check(ledger, ids[4], "ok", "2026-03-01T12:00:00Z")
    ledger.close()

    old = checked(run(clock, verify.Selection(older_than=24 * 3600, namespace="backups")))
    assert old == [*ids[5:], ids[4]], "never checked first, then the longest ago"
    assert other not in old

    sample = run(clock, verify.Selection(sample_percent=25), rng=random.Random(7))
    assert len(sample.items) == 3  # ceil(11 * 25 %)

    chosen = run(clock, verify.Selection(ids=(ids[2], other, ids[2])))
    assert checked(chosen) == [ids[2], other]
    with pytest.raises(NotFound):
        run(clock, verify.Selection(ids=(999,)))
    with pytest.raises(NotFound):
        run(clock, verify.Selection(namespace="nosuch"))


def test_conflicting_selection_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        verify.Selection(ids=(1,), all=True)
    with pytest.raises(UsageError):
        verify.Selection(all=True, subset=(1, 2))


def test_a_held_lock_is_exit_9_at_once_and_names_the_holder(
    zerog_home: Path, clock: Clock, stub: dict[int, str]
) -> None:
    seeded(zerog_home, 1)
    owner = Context()
    holder = owner.run_lock(verify.LOCK_NAME, "zerog verify")  # a file, or an advisory lock
    holder.acquire()
    try:
        with pytest.raises(LockHeld) as refused:
            run(clock)
        assert "zerog verify (pid" in str(refused.value)
        assert refused.value.exit_code == ExitCode.LOCKED
    finally:
        holder.release()
        owner.close()
    assert run(clock).exit_code == 0


def test_cli_lines_are_quiet_on_success_and_one_per_problem(
    zerog: Callable[..., Result], zerog_home: Path, stub: dict[int, str]
) -> None:
    ids = seeded(zerog_home, 3)
    quiet = zerog("verify")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    loud = zerog("verify", "-v")
    assert [line.split()[:2] for line in loud.stdout.splitlines()] == [["=", str(i)] for i in ids]
    stub[ids[1]] = "mismatch"
    stub[ids[2]] = "missing"
    bad = zerog("verify")
    assert bad.exit_code == 3
    assert bad.stdout.splitlines() == [
        f"! {ids[1]} backups/db/20260302T010000Z-1.dump: stub mismatch",
        f"- {ids[2]} backups/db/20260303T010000Z-2.dump: stub missing",
    ]
    assert (
        bad.stderr.strip() == "error: verify: 3 of 3 backup(s) checked: 1 ok, 1 mismatch, 1 missing"
    )
    document = zerog("verify", "--json", str(ids[0]))
    assert document.exit_code == 0
    assert document.json["counts"]["ok"] == 1
    assert document.json["items"][0]["backup_id"] == ids[0]
    assert zerog("verify", "--all", "--subset", "1/2").exit_code == 2
    assert zerog("verify", "--subset", "3/2").exit_code == 2
    assert zerog("verify", "x1").exit_code == 2
    assert zerog("verify", "--max-duration", "0s").exit_code == 2


def test_selection_reads_only_the_backups_it_chooses(
    zerog_home: Path, clock: Clock, stub: dict[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--subset, --older-than and --sample select in SQL: a run over a large ledger builds
    a row only for each backup it checks (issue 19: the selection was made in Python)."""
    from zerog_cli.ledger import backups as rows

    ids = seeded(zerog_home, 60)
    built: list[int] = []
    make_row = rows._backup

    def counting(row: tuple[object, ...]) -> Backup:
        backup = make_row(row)
        built.append(backup.id)
        return backup

    monkeypatch.setattr(rows, "_backup", counting)
    report = run(clock, verify.Selection(subset=(2, 20)))
    assert checked(report) == [i for i in ids if i % 20 == 1]
    assert sorted(built) == sorted(checked(report))
    assert report.in_scope == 60

    built.clear()
    report = run(clock, verify.Selection(sample_percent=5), rng=random.Random(3))
    assert len(report.items) == 3  # ceil(60 * 5 %)
    assert sorted(built) == sorted(checked(report))


def test_a_backup_whose_object_record_differs_or_is_gone_is_caught_before_any_read(
    zerog: Callable[..., Result], zerog_home: Path
) -> None:
    """verify and backup restore hold a backup to its object record the same way: a
    disagreement is a mismatch (exit 3); a lost record is an error of the check for
    verify (the data on 0G may be fine) and exit 7 for restore. No network is asked."""
    ids = seeded(zerog_home, 2)
    ledger = ledger_at(zerog_home)
    with ledger.transaction() as conn:
        conn.execute(
            "UPDATE objects SET sha256 = ? WHERE id = "
            "(SELECT object_id FROM storage_backups WHERE id = ?)",
            ("0" * 64, ids[0]),
        )
        conn.execute("UPDATE storage_backups SET object_id = NULL WHERE id = ?", (ids[1],))
    ledger.close()

    differs = zerog("verify", "--json", str(ids[0]))
    assert differs.exit_code == 3
    item = differs.json["items"][0]
    assert item["status"] == "mismatch"
    assert "disagree on root, size or SHA-256" in item["error"]
    restore = zerog("backup", "restore", str(ids[0]), "-o", str(zerog_home / "out"))
    assert restore.exit_code == 3
    assert "disagree on root, size or SHA-256" in restore.stderr

    gone = zerog("verify", "--json", str(ids[1]))
    assert gone.json["items"][0]["status"] == "error"
    assert "has no object record" in gone.json["items"][0]["error"]
    assert zerog("backup", "restore", str(ids[1]), "-o", str(zerog_home / "out")).exit_code == 7
