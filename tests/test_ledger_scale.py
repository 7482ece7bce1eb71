"""The ledger at scale: reports read SQLite's own rollup, every covered query uses an index.

Issue 19: `quota report --by user` over 1,000,000 cost rows took 7.4 s and 556 MB,
because every row was pulled into Python. The totals are now kept by triggers on
``cost_tracking`` (the rollup migration), so a row written by any tool (an import, an
older zerog, `sqlite3` by hand) is counted, and the report reads one row per
group. bench/ledger.py measures the figures; these tests check the shape. The
rollup tests run on both backends (``ledger_backend``): PostgreSQL keeps the
same totals with trigger functions of its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result
from tests.ledger_backends import LedgerBackend
from zerog_cli.infra.units import format_0g
from zerog_cli.ledger import admin, backups, costs, inference, objects, quotas
from zerog_cli.ledger.db import Ledger, Page, open_ledger
from zerog_cli.ledger.migrations import LATEST_VERSION, MIGRATIONS, migrate

ROLLUP_VERSION = next(m.version for m in MIGRATIONS if m.name.startswith("cost totals"))

PERIOD = "2026-11"
BIG = 2**64 * 3 + 12345  # a neuron amount past SQLite's 64-bit INTEGER

# (user, namespace, service, quantity, unit, usd_micro, neuron, model)
ROWS = (
    ("alice", "photos", "storage", 1000, "bytes", 7, "5", None),
    ("alice", "photos", "storage", 24, "bytes", 1, str(BIG), None),
    ("alice", None, "compute", 300, "tokens", 20, "999999999", "llama"),
    ("bob", "docs", "compute", 50, "tokens", 3, "1000000000", "qwen"),
    ("bob", "docs", "storage", 10, "bytes", 2, "-7", None),
    ("carol", "docs", "storage", 0, "other", 0, "0", None),
)


def _insert_by_hand(
    backend: LedgerBackend, rows: tuple[tuple[object, ...], ...], period: str
) -> None:
    """Cost rows written with plain SQL, as an import or another tool would."""
    ledger = open_ledger(backend.target, migrate=False)
    with ledger.transaction() as conn:
        conn.executemany(
            "INSERT INTO cost_tracking (created_at, period, user, namespace, service,"
            " operation, quantity, unit, usd_micro, neuron, model, reference, network)"
            " VALUES ('2026-11-02T00:00:00Z', ?, ?, ?, ?, 'op', ?, ?, ?, ?, ?, NULL, 'devnet')",
            [(period, *row) for row in rows],
        )
    ledger.close()


def _expected(rows: list[tuple[object, ...]], by: str) -> list[dict[str, object]]:
    """The report computed in Python straight from the raw rows."""
    position = {"user": 0, "ns": 1, "service": 2, "model": 3}[by]
    groups: dict[str, dict[str, int]] = {}
    for user, namespace, service, quantity, unit, usd_micro, neuron, model in rows:
        key = str((user, namespace, service, model)[position] or "-")
        group = groups.setdefault(
            key, {"operations": 0, "bytes": 0, "tokens": 0, "usd_micro": 0, "neuron": 0}
        )
        group["operations"] += 1
        if unit in ("bytes", "tokens"):
            group[str(unit)] += int(str(quantity))
        group["usd_micro"] += int(str(usd_micro))
        group["neuron"] += int(str(neuron))
    return [
        {
            "key": key,
            "operations": totals["operations"],
            "bytes": totals["bytes"],
            "tokens": totals["tokens"],
            "cost": {
                "neuron": str(totals["neuron"]),
                "0g": format_0g(totals["neuron"]),
                "usd_micro": totals["usd_micro"],
            },
        }
        for key, totals in sorted(groups.items())
    ]


def _ledger_rows(backend: LedgerBackend) -> list[tuple[object, ...]]:
    return [
        tuple(row.values())
        for row in backend.rows(
            "SELECT user, namespace, service, quantity, unit, usd_micro, neuron, model"
            " FROM cost_tracking WHERE period = ?",
            (PERIOD,),
        )
    ]


@pytest.mark.parametrize("by", ["user", "ns", "service", "model"])
def test_report_counts_rows_inserted_with_plain_sql(
    zerog, ledger_backend: LedgerBackend, by: str
) -> None:
    assert zerog("ledger", "migrate").exit_code == 0
    _insert_by_hand(ledger_backend, ROWS, PERIOD)
    _insert_by_hand(ledger_backend, ROWS[:2], "2026-10")  # another month: not in the report
    result = zerog("quota", "report", "--by", by, "--month", PERIOD, "--json")
    assert result.exit_code == 0, result
    assert result.json["groups"] == _expected(list(ROWS), by)
    assert result.json["total"]["usd_micro"] == sum(int(str(row[5])) for row in ROWS)
    assert result.json["total"]["neuron"] == str(sum(int(str(row[6])) for row in ROWS))


def test_report_follows_rows_changed_and_deleted_with_plain_sql(
    zerog, ledger_backend: LedgerBackend
) -> None:
    assert zerog("ledger", "migrate").exit_code == 0
    _insert_by_hand(ledger_backend, ROWS, PERIOD)
    ledger_backend.execute(
        "UPDATE cost_tracking SET user = 'dave', neuron = '42', model = 'mistral'"
        " WHERE user = 'bob'"
    )
    ledger_backend.execute("UPDATE cost_tracking SET period = '2026-10' WHERE user = 'carol'")
    ledger_backend.execute("DELETE FROM cost_tracking WHERE neuron = ?", (str(BIG),))
    for by in ("user", "ns", "service", "model"):
        result = zerog("quota", "report", "--by", by, "--month", PERIOD, "--json")
        assert result.exit_code == 0, result
        assert result.json["groups"] == _expected(_ledger_rows(ledger_backend), by)
    users = zerog("quota", "report", "--by", "user", "--month", PERIOD, "--json").json["groups"]
    assert [g["key"] for g in users] == ["alice", "dave"]


def test_rows_written_before_the_rollup_migration_are_counted(
    zerog, ledger_backend: LedgerBackend
) -> None:
    """A ledger of an older zerog (before the rollup) with rows: migrating up fills it."""
    ledger = open_ledger(ledger_backend.target, migrate=False)
    migrate(ledger, ROLLUP_VERSION - 1)
    ledger.close()
    _insert_by_hand(ledger_backend, ROWS, PERIOD)
    result = zerog("quota", "report", "--by", "ns", "--month", PERIOD, "--json")
    assert result.exit_code == 0, result
    assert result.json["groups"] == _expected(list(ROWS), "ns")
    ledger = ledger_backend.open()
    migrate(ledger, ROLLUP_VERSION - 1)
    assert "cost_rollup" not in ledger.table_names()
    migrate(ledger)
    assert ledger.schema_version() == LATEST_VERSION
    ledger.close()
    result = zerog("quota", "report", "--by", "ns", "--month", PERIOD, "--json")
    assert result.json["groups"] == _expected(list(ROWS), "ns")


# -- every covered query uses an index ---------------------------------------------------------

LARGE_TABLES = ("cost_tracking", "objects", "storage_backups", "verifications", "inference_log")
# The aliases the ledger's queries give the large tables.
ALIASES = {"b": "storage_backups", "o": "objects", "v": "verifications", "c": "cost_tracking"}


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[Ledger, list[str]]]:
    """A migrated ledger whose connection records every statement it runs, parameters bound."""
    ledger = open_ledger(tmp_path / "ledger.db")
    statements: list[str] = []
    ledger.conn.set_trace_callback(statements.append)
    yield ledger, statements
    ledger.conn.set_trace_callback(None)
    ledger.close()


def _full_scans(ledger: Ledger, statements: list[str]) -> dict[str, list[str]]:
    """Each filtered SELECT whose plan reads a large table from end to end (a SCAN).

    A listing with no filter (``ORDER BY id DESC LIMIT n``) may walk its table in
    order: it stops after ``n`` rows.
    """
    ledger.conn.set_trace_callback(None)
    found: dict[str, list[str]] = {}
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 10, selects
    selects = [s for s in selects if " WHERE " in s.upper()]
    for sql in selects:
        plan = [str(row[3]) for row in ledger.conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        for line in plan:
            words = line.split()
            if words[0] == "SCAN" and ALIASES.get(words[1], words[1]) in LARGE_TABLES:
                found[sql] = plan
    return found


def test_quota_report_reads_the_rollup_never_the_cost_rows(traced) -> None:
    ledger, statements = traced
    for by in costs.GROUP_COLUMNS:
        list(costs.report(ledger.conn, PERIOD, by))
    costs.monthly_usd_by_service(ledger.conn, PERIOD)
    for sql in statements:
        plan = " | ".join(str(r[3]) for r in ledger.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "cost_tracking" not in plan, plan
        assert "SEARCH cost_rollup USING PRIMARY KEY (period=?)" in plan, plan


def test_listings_and_selections_use_an_index(traced) -> None:
    ledger, statements = traced
    list(quotas.all_rows(ledger.conn, Page(10, 10)))
    list(objects.in_namespace(ledger.conn, "photos", page=Page(10, 10)))
    list(objects.in_namespace(ledger.conn, "photos", versions=True, page=Page(10, 10)))
    inference.recent(ledger.conn, "alice", 20)
    inference.recent(ledger.conn, None, 20, 40)
    devnet = backups.BackupFilter("devnet")
    backups.select(ledger.conn, devnet)
    backups.select(ledger.conn, replace(devnet, namespaces=["photos"], label="nightly"))
    backups.select(ledger.conn, replace(devnet, never_ok=True), page=Page(10, 20))
    backups.select(ledger.conn, replace(devnet, ok_before="2026-11-01T00:00:00Z"))
    backups.select(
        ledger.conn,
        replace(
            devnet,
            created_before="2026-11-01T00:00:00Z",
            ok_before="2026-11-01T00:00:00Z",
            full_ok_before="2026-10-01T00:00:00Z",
        ),
    )
    backups.count(ledger.conn, replace(devnet, namespaces=["photos"]))
    backups.count(ledger.conn, replace(devnet, namespaces=["photos"], label="nightly"))
    backups.select(ledger.conn, replace(devnet, id_modulo=(7, 2)), rotation=True)
    backups.count(ledger.conn, replace(devnet, ok_before="2026-11-01T00:00:00Z"))
    backups.namespaces_with_backups(ledger.conn, network="devnet")
    backups.select(ledger.conn, replace(devnet, ids=[3, 1, 2]), rotation=True)
    backups.select_ids(
        ledger.conn, replace(devnet, last_ok_before="2026-11-01T00:00:00Z", id_modulo=(3, 0))
    )
    admin.last_good_verification_by_namespace(ledger)
    assert _full_scans(ledger, statements) == {}


# -- listings page in SQL: --limit N --offset N ------------------------------------------------


def _fill_listings(path: Path, count: int) -> None:
    """One namespace of ``count`` objects, backups and verifications, users, inferences."""
    stamp = "2026-11-02T00:00:00Z"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO user_quotas (user, tier, period, created_at, updated_at)"
            " VALUES ('alice', 'free', '2026-11', ?, ?)",
            (stamp, stamp),
        )
        conn.execute(
            "INSERT INTO namespaces (name, owner, created_at) VALUES ('photos', 'alice', ?)",
            (stamp,),
        )
        for i in range(1, count + 1):
            conn.execute(
                "INSERT INTO user_quotas (user, tier, period, created_at, updated_at)"
                " VALUES (?, 'free', '2026-10', ?, ?)",
                (f"user{i:03}", stamp, stamp),
            )
            conn.execute(
                "INSERT INTO objects (id, namespace, name, root, tx_seq, size, sha256, network,"
                " encrypted, uploader, fee_neuron, created_at)"
                " VALUES (?, 'photos', ?, ?, ?, 10, ?, 'devnet', 0, 'alice', '0', ?)",
                (i, f"object-{(i * 7) % count:03}", f"0x{i:064x}", i, f"{i:064x}", stamp),
            )
            conn.execute(
                "INSERT INTO storage_backups (id, namespace, label, source_path, object_id, root,"
                " tx_seq, size, sha256, encrypted, network, created_at)"
                " VALUES (?, 'photos', 'nightly', '/srv', ?, ?, ?, 10, ?, 0, 'devnet', ?)",
                (i, i, f"0x{i:064x}", i, f"{i:064x}", f"2026-11-{1 + i % 20:02}T00:00:00Z"),
            )
            if i % 3:
                conn.execute(
                    "INSERT INTO verifications (backup_id, run_id, status, checked_at)"
                    " VALUES (?, 'run', 'ok', ?)",
                    (i, stamp),
                )
            conn.execute(
                "INSERT INTO inference_log (created_at, user, network, wallet, provider, model,"
                " prompt, duration_ms, status, stream, max_tokens)"
                " VALUES (?, 'alice', 'devnet', '0xw', '0xp', 'm', ?, 1, 'ok', 0, 10)",
                (stamp, f"prompt {i}"),
            )


LISTINGS = {
    "backup ls": (("backup", "ls", "--as", "alice", "--json"), "backups"),
    "backup ls --unverified": (
        ("backup", "ls", "--unverified", "--as", "alice", "--json"),
        "backups",
    ),
    "ns objects": (("ns", "objects", "photos", "--as", "alice", "--json"), "objects"),
    "quota show --all": (("quota", "show", "--all", "--json"), "users"),
    "infer log": (("infer", "log", "--as", "alice", "-n", "1000", "--json"), "entries"),
}
"""Each listing's arguments and the key of its rows in the document."""


def _timeless(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The rows without the ages computed from the clock, which may tick between two runs."""
    return [{k: v for k, v in row.items() if not k.endswith("age_seconds")} for row in rows]


@pytest.mark.parametrize("listing", list(LISTINGS))
def test_listings_page_with_limit_and_offset(zerog, zerog_home: Path, listing: str) -> None:
    assert zerog("ledger", "migrate").exit_code == 0
    _fill_listings(zerog_home / "ledger.db", 25)
    args, key = LISTINGS[listing]

    def rows(result: Result) -> list[Any]:
        assert result.exit_code == 0, result
        found: list[Any] = result.json[key]
        return found

    whole = rows(zerog(*args))
    assert len(whole) >= 8
    pages = []
    for offset in range(0, len(whole) + 7, 7):
        limit = ("-n", "7") if listing == "infer log" else ("--limit", "7")
        page = rows(zerog(*args, *limit, "--offset", str(offset)))
        assert len(page) <= 7
        pages.extend(page)
    assert _timeless(pages) == _timeless(whole)
    if listing == "backup ls --unverified":
        assert all(row["last_ok_at"] is None for row in whole)
        assert len(whole) == 8  # backups 3, 6, … 24 were never verified


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("backup", "ls", "--limit", "0"), "--limit must be between 1 and"),
        (("ns", "objects", "photos", "--offset", "-1"), "--offset must be between 0 and"),
        (("quota", "show", "--all", "--limit", str(2**63)), "--limit must be between 1 and"),
        (("infer", "log", "--offset", "-5"), "--offset must be between 0 and"),
        (("quota", "show", "alice", "--limit", "5"), "--limit and --offset page"),
    ],
)
def test_a_bad_page_is_a_usage_error(
    zerog, zerog_home: Path, args: tuple[str, ...], message: str
) -> None:
    assert zerog("ledger", "migrate").exit_code == 0
    _fill_listings(zerog_home / "ledger.db", 3)
    result = zerog(*args, "--as", "alice") if args[0] != "quota" else zerog(*args)
    assert result.exit_code == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


BackupsByHand = dict[int, tuple[str, str | None, list[tuple[str, str]]]]
"""Backup id: (created, retired, [(check status, checked)])."""


def _insert_backups_by_hand(
    execute: Callable[[str, Sequence[Any]], object], backups_by_hand: BackupsByHand
) -> None:
    """Backups in namespace photos, each with its object and its checks, written by plain SQL."""
    for backup_id, (created, retired, checks) in backups_by_hand.items():
        execute(
            "INSERT INTO objects (id, namespace, name, root, tx_seq, size, sha256, network,"
            " encrypted, uploader, fee_neuron, created_at)"
            " VALUES (?, 'photos', ?, '0xr', 1, 10, 's', 'devnet', 0, 'alice', '0', ?)",
            (backup_id, f"o{backup_id}", created),
        )
        execute(
            "INSERT INTO storage_backups (id, namespace, label, source_path, object_id, root,"
            " tx_seq, size, sha256, encrypted, network, created_at, retired_at)"
            " VALUES (?, 'photos', 'db', '/srv', ?, '0xr', 1, 10, 's', 0, 'devnet', ?, ?)",
            (backup_id, backup_id, created, retired),
        )
        for status, checked in checks:
            execute(
                "INSERT INTO verifications (backup_id, run_id, status, checked_at)"
                " VALUES (?, 'run', ?, ?)",
                (backup_id, status, checked),
            )


def test_backup_unverified_selects_in_sql_and_counts_rows_written_by_hand(
    zerog, zerog_home: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    def ago(**delta: float) -> str:
        return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert zerog("ledger", "migrate").exit_code == 0
    _fill_listings(zerog_home / "ledger.db", 0)
    backups_by_hand: BackupsByHand = {
        1: (ago(days=10), None, [("ok", ago(days=1))]),
        2: (ago(days=10), None, [("ok", ago(days=5)), ("mismatch", ago(hours=1))]),
        3: (ago(days=2), None, []),
        4: (ago(days=5), None, []),
        5: (ago(days=30), ago(days=20), []),
    }
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        _insert_backups_by_hand(conn.execute, backups_by_hand)
    result = zerog("backup", "unverified", "--max-age", "3d", "--json")
    assert result.exit_code == 3, result
    assert result.json["live_backups"] == 4
    stale = result.json["unverified"]
    assert [(b["id"], b["never_verified"]) for b in stale] == [(2, False), (4, True)]


def test_a_selection_by_more_ids_than_sqlite_binds_at_once(tmp_path: Path) -> None:
    """verify --sample 5% of a million backups names 50,000 ids in one selection."""
    ledger = open_ledger(tmp_path / "ledger.db")
    try:
        wanted = list(range(1, 40_001))
        assert list(backups.select(ledger.conn, backups.BackupFilter("devnet", ids=wanted))) == []
    finally:
        ledger.close()


STREAMED = {
    "backup ls": (("backup", "ls", "--as", "alice"), backups, "_backup", "backups"),
    "backup unverified": (
        ("backup", "unverified", "--max-age", "1d"),
        backups,
        "_backup",
        "unverified",
    ),
    "ns objects": (("ns", "objects", "photos", "--as", "alice"), objects, "_object", "objects"),
    "quota show --all": (("quota", "show", "--all"), quotas, "QuotaRow", "users"),
    "infer log": (("infer", "log", "--all", "-n", "5000"), inference, "_row", "entries"),
}
"""Each streamed listing: its arguments, the ledger function that builds one of its rows
from SQLite's, and the key of its rows in the JSON document."""


@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "human"])
@pytest.mark.parametrize("listing", list(STREAMED))
def test_large_listings_stream_from_the_ledger_to_stdout(
    zerog, zerog_home: Path, monkeypatch: pytest.MonkeyPatch, listing: str, json_mode: bool
) -> None:
    """The first lines reach stdout before the last row is read: memory stays flat however
    many rows the ledger holds (backup unverified --json over 100,000 took 859 MB)."""
    import sys

    assert zerog("ledger", "migrate").exit_code == 0
    _fill_listings(zerog_home / "ledger.db", 1500)
    args, module, builder, key = STREAMED[listing]
    built: list[int] = []
    make_row = getattr(module, builder)

    def counting(*row: Any) -> Any:
        built.append(1)
        return make_row(*row)

    monkeypatch.setattr(module, builder, counting)
    rows_read_at_first_write: list[int] = []
    write = sys.stdout.write

    def first_write_counts(text: str) -> int:
        if not rows_read_at_first_write:
            rows_read_at_first_write.append(len(built))
        return write(text)

    monkeypatch.setattr(sys.stdout, "write", first_write_counts)
    result = zerog(*args, "--json") if json_mode else zerog(*args)
    assert result.exit_code in (0, 3), result
    assert len(built) >= 1500
    if json_mode:
        assert len(result.json[key]) == len(built)
    else:
        assert len(result.stdout.splitlines()) >= len(built)
    assert rows_read_at_first_write[0] < len(built) / 2


def test_a_long_table_prints_a_block_at_a_time_and_never_narrows() -> None:
    """A table streamed from a generator: each block of rows is aligned as it is printed;
    a wider cell in a later block widens the columns from there on, never narrows them."""
    import io

    from zerog_cli.infra.output import _TABLE_BLOCK, Column, Output

    stdout = io.StringIO()
    taken: list[int] = []

    def rows() -> Iterator[dict[str, object]]:
        for i in range(_TABLE_BLOCK * 2 + 10):
            taken.append(i)
            yield {"name": "x" * 30 if i == _TABLE_BLOCK + 3 else f"n{i}", "size": i}

    Output(stdout=stdout).table(
        rows(), [Column("name", "name"), Column("size", "size", justify="right")]
    )
    lines = stdout.getvalue().splitlines()
    assert len(lines) == 1 + len(taken)
    assert lines[0] == "name  size"
    first_block, later = lines[1 : 1 + _TABLE_BLOCK], lines[1 + _TABLE_BLOCK :]
    # "size" is right-aligned: every line of an aligned block ends at the same column.
    assert {len(line) for line in first_block} == {len("name  size")}
    assert {len(line) for line in later} == {30 + 2 + len("size")}
    assert [int(line.split()[-1]) for line in lines[1:]] == taken


def test_status_reads_each_backups_last_ok_check_however_many_checks_it_has(
    zerog, ledger_backend: LedgerBackend
) -> None:
    """`status` per namespace: live backups, the oldest, and the newest OK check of any of
    them; a failed check after an OK one, and a retired backup's checks, do not count."""
    assert zerog("ledger", "migrate").exit_code == 0
    stamp = "2026-11-02T00:00:00Z"
    ledger_backend.execute(
        "INSERT INTO namespaces (name, owner, created_at) VALUES ('photos', 'alice', ?)", (stamp,)
    )
    backups_by_hand: BackupsByHand = {
        1: (
            "2026-11-03T00:00:00Z",
            None,
            [("ok", "2026-11-05T00:00:00Z"), ("mismatch", "2026-11-09T00:00:00Z")],
        ),
        2: (
            "2026-11-04T00:00:00Z",
            None,
            [("ok", "2026-11-06T00:00:00Z"), ("ok", "2026-11-04T00:00:00Z")],
        ),
        3: ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", [("ok", "2026-11-08T00:00:00Z")]),
    }
    _insert_backups_by_hand(ledger_backend.execute, backups_by_hand)
    result = zerog("status", "--no-probe", "--json")
    assert result.json is not None, result
    [photos] = result.json["verifications"]
    assert (photos["namespace"], photos["backups"]) == ("photos", 2)
    assert (photos["oldest_backup_at"], photos["last_ok"]) == (
        "2026-11-03T00:00:00Z",
        "2026-11-06T00:00:00Z",
    )


def test_streamed_listings_read_the_same_on_both_backends(
    zerog, ledger_backend: LedgerBackend
) -> None:
    """The listings that stream from the cursor (`infer log`, `quota show --all`, `ns
    objects`) list the same rows, in the same order, on SQLite and PostgreSQL."""
    assert zerog("ledger", "migrate").exit_code == 0
    stamp = "2026-11-02T00:00:00Z"
    ledger_backend.execute(
        "INSERT INTO namespaces (name, owner, created_at) VALUES ('photos', 'alice', ?)", (stamp,)
    )
    for i in (1, 2, 3):
        ledger_backend.execute(
            "INSERT INTO user_quotas (user, tier, period, created_at, updated_at)"
            " VALUES (?, 'free', '2026-10', ?, ?)",
            (f"user{i}", stamp, stamp),
        )
        ledger_backend.execute(
            "INSERT INTO objects (namespace, name, root, tx_seq, size, sha256, network,"
            " encrypted, uploader, fee_neuron, created_at)"
            " VALUES ('photos', ?, '0xr', 1, 10, 's', 'devnet', 0, 'alice', '0', ?)",
            (f"object-{4 - i}", stamp),
        )
        ledger_backend.execute(
            "INSERT INTO inference_log (created_at, user, network, wallet, provider, model,"
            " prompt, duration_ms, status, stream, max_tokens)"
            " VALUES (?, 'alice', 'devnet', '0xw', '0xp', 'm', ?, 1, 'ok', 0, 10)",
            (stamp, f"prompt {i}"),
        )
    log = zerog("infer", "log", "--all", "--json")
    assert [e["prompt"] for e in log.json["entries"]] == ["prompt 3", "prompt 2", "prompt 1"]
    assert [e["stream"] for e in log.json["entries"]] == [False] * 3
    users = zerog("quota", "show", "--all", "--json").json["users"]
    assert [u["user"] for u in users] == ["user1", "user2", "user3"]
    assert {u["period"] for u in users} == {users[0]["period"]} != {"2026-10"}
    listed = zerog("ns", "objects", "photos", "--as", "alice", "--json").json["objects"]
    assert [o["name"] for o in listed] == ["object-1", "object-2", "object-3"]
    table = zerog("quota", "show", "--all")
    assert table.exit_code == 0, table
    assert [line.split()[0] for line in table.stdout.splitlines() if "· tier" in line] == [
        "user1",
        "user2",
        "user3",
    ]


def test_a_streamed_table_masks_a_secret_in_every_block(
    zerog, zerog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table looks the secrets up once per block of rows, not once per cell: a secret
    of the environment quoted in a prompt is masked on every row, past the first block."""
    secret = "Zq7-s3cret-value-91"
    monkeypatch.setenv("ENCRYPTION_KEY", secret)
    assert zerog("ledger", "migrate").exit_code == 0
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        conn.executemany(
            "INSERT INTO inference_log (created_at, user, network, wallet, provider, model,"
            " prompt, duration_ms, status, stream, max_tokens)"
            " VALUES ('2026-11-02T00:00:00Z', 'alice', 'devnet', '0xw', '0xp', 'm', ?, 1, 'ok',"
            " 0, 10)",
            [(f"k {secret} {i}",) for i in range(1200)],
        )
    result = zerog("infer", "log", "--all", "-n", "1200")
    assert result.exit_code == 0, result
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == 1200
    assert secret not in result.stdout
    assert all("k *** " in row for row in rows)
