"""Backup and verification records without a network: ledger queries and the CLI on top.

`seed_backup` (also used by the verify and metrics tests) writes the rows a
`zerog backup create` would: namespace, object, backup. Every test runs on both
ledger backends (``ledger_backend``: SQLite, PostgreSQL).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from zerog_cli.ledger import backups as rows
from zerog_cli.ledger import namespaces, objects, verifications
from zerog_cli.ledger.db import Ledger, open_ledger, resolve_target
from zerog_cli.ledger.namespaces import Namespace

pytestmark = pytest.mark.usefixtures("ledger_backend")


def ledger_at(home: Path) -> Ledger:
    """The test's ledger: the file in ``home``, or the ``ZEROG_LEDGER_URL`` it was given."""
    url = os.environ.get("ZEROG_LEDGER_URL")
    if url is None:
        return open_ledger(home / "ledger.db")
    return open_ledger(resolve_target(url, lambda: os.environ.get("DATABASE_PASSWORD")))


def seed_backup(
    ledger: Ledger,
    *,
    created_at: str,
    namespace: str = "backups",
    label: str = "db",
    owner: str = "alice",
    network: str = "devnet",
    size: int = 1000,
) -> int:
    """Insert namespace (once), object and backup rows; returns the backup id."""
    with ledger.transaction() as conn:
        if namespaces.get(conn, namespace) is None:
            namespaces.insert(
                conn, Namespace(namespace, owner, None, 0, None, False, {}, "2026-01-01T00:00:00Z")
            )
        count = conn.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
        root = "0x" + hashlib.sha256(f"root-{count}".encode()).hexdigest()
        sha = hashlib.sha256(f"data-{count}".encode()).hexdigest()
        name = f"{label}/{created_at.replace('-', '').replace(':', '')}-{count}.dump"
        object_id = objects.insert(
            conn,
            namespace=namespace,
            name=name,
            root=root,
            tx_seq=count,
            size=size,
            sha256=sha,
            network=network,
            encrypted=False,
            uploader=owner,
            fee_neuron=0,
            fee_usd_micro=0,
        )
        return rows.insert(
            conn,
            namespace=namespace,
            label=label,
            source_path=f"/var/backups/{label}.dump",
            object_id=object_id,
            root=root,
            tx_seq=count,
            size=size,
            sha256=sha,
            encrypted=False,
            network=network,
            created_at=created_at,
        )


def record_check(ledger: Ledger, backup_id: int, status: str, checked_at: str) -> None:
    with ledger.transaction() as conn:
        verifications.record(
            conn,
            backup_id=backup_id,
            run_id="test",
            status=status,
            duration_ms=5,
            bytes_checked=1000 if status == "ok" else 0,
            error=None if status == "ok" else status,
            checked_at=checked_at,
        )


def test_select_joins_the_verification_state(zerog_home: Path) -> None:
    ledger = ledger_at(zerog_home)
    first = seed_backup(ledger, created_at="2026-03-01T01:00:00Z")
    second = seed_backup(ledger, created_at="2026-03-02T01:00:00Z")
    record_check(ledger, first, "ok", "2026-03-03T00:00:00Z")
    record_check(ledger, first, "mismatch", "2026-03-04T00:00:00Z")
    record_check(ledger, first, "error", "2026-03-05T00:00:00Z")
    found = {b.id: b for b in rows.select(ledger.conn, rows.BackupFilter("devnet"))}
    one = found[first]
    assert one.last_status == "error"
    assert one.last_checked_at == "2026-03-05T00:00:00Z"
    assert one.last_ok_at == "2026-03-03T00:00:00Z"
    assert one.last_conclusive_status == "mismatch"
    assert one.last_conclusive_at == "2026-03-04T00:00:00Z"
    assert one.failed
    two = found[second]
    assert (two.last_status, two.last_ok_at, two.failed) == (None, None, False)
    assert list(rows.select(ledger.conn, rows.BackupFilter("testnet"))) == []


def test_retire_is_once_and_hides_by_default(zerog_home: Path) -> None:
    ledger = ledger_at(zerog_home)
    backup_id = seed_backup(ledger, created_at="2026-03-01T01:00:00Z")
    with ledger.transaction() as conn:
        assert rows.retire(conn, backup_id, when="2026-03-09T00:00:00Z", reason="test")
        assert not rows.retire(conn, backup_id, when="2026-03-10T00:00:00Z", reason="again")
    assert list(rows.select(ledger.conn, rows.BackupFilter("devnet"))) == []
    retired = list(rows.select(ledger.conn, rows.BackupFilter("devnet", include_retired=True)))
    assert [(b.retired_at, b.retired_reason) for b in retired] == [("2026-03-09T00:00:00Z", "test")]


def test_unknown_verification_status_is_refused(zerog_home: Path) -> None:
    ledger = ledger_at(zerog_home)
    backup_id = seed_backup(ledger, created_at="2026-03-01T01:00:00Z")
    with pytest.raises(ValueError), ledger.transaction() as conn:
        verifications.record(
            conn,
            backup_id=backup_id,
            run_id="x",
            status="fine",
            duration_ms=0,
            bytes_checked=0,
            error=None,
            checked_at="2026-03-01T00:00:00Z",
        )


def _seed_series(home: Path) -> dict[str, int]:
    ledger = ledger_at(home)
    ids = {}
    for day in ("2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"):
        ids[day] = seed_backup(ledger, created_at=f"{day}T01:00:00Z")
    ids["files"] = seed_backup(ledger, created_at="2026-03-01T05:00:00Z", label="files")
    ledger.close()
    return ids


def test_prune_through_the_cli_retires_per_label_and_says_data_stays(
    zerog: Callable[..., Result], zerog_home: Path
) -> None:
    ids = _seed_series(zerog_home)
    dry = zerog("backup", "prune", "--keep-daily", "2", "--as", "alice", "--json", "--dry-run")
    assert dry.exit_code == 0, dry
    assert dry.json["would_retire"] == 2 and dry.json["retired"] == 0
    assert "immutable" in dry.stderr
    assert len(zerog("backup", "ls", "--as", "alice", "--json").json["backups"]) == 5

    done = zerog("backup", "prune", "--keep-daily", "2", "--as", "alice", "--json")
    assert done.exit_code == 0, done
    groups = {g["label"]: g for g in done.json["groups"]}
    assert [e["id"] for e in groups["db"]["keep"]] == [ids["2026-03-04"], ids["2026-03-03"]]
    assert sorted(e["id"] for e in groups["db"]["retire"]) == sorted(
        [ids["2026-03-01"], ids["2026-03-02"]]
    )
    assert [e["id"] for e in groups["files"]["keep"]] == [ids["files"]]
    assert groups["db"]["keep"][0]["reasons"] == ["daily 2026-03-04"]

    listed = zerog("backup", "ls", "--as", "alice", "--json").json["backups"]
    assert sorted(b["id"] for b in listed) == sorted(
        [ids["2026-03-03"], ids["2026-03-04"], ids["files"]]
    )
    with_retired = zerog("backup", "ls", "--as", "alice", "--retired", "--json").json["backups"]
    reasons = {b["id"]: b["retired_reason"] for b in with_retired}
    assert reasons[ids["2026-03-01"]] == "pruned by policy keep-daily=2"

    human = zerog(
        "backup", "prune", "--keep-last", "1", "--label", "db", "--as", "alice", "--dry-run"
    )
    assert human.exit_code == 0
    assert "backups · db: keep 1, would retire 1" in human.stdout
    assert f"keep   {ids['2026-03-04']:>6}  2026-03-04T01:00:00Z  last" in human.stdout


def test_prune_needs_a_policy_and_write_access(
    zerog: Callable[..., Result], zerog_home: Path
) -> None:
    _seed_series(zerog_home)
    nothing = zerog("backup", "prune", "--as", "alice")
    assert nothing.exit_code == 2
    assert "no policy given" in nothing.stderr
    stranger = zerog("backup", "prune", "--keep-last", "1", "--ns", "backups", "--as", "mallory")
    assert stranger.exit_code == 5
    skipped = zerog("backup", "prune", "--keep-last", "1", "--as", "mallory", "--json")
    assert skipped.exit_code == 0
    assert skipped.json["skipped_namespaces"] == ["backups"]
    assert skipped.json["groups"] == []
    bad = zerog("backup", "prune", "--keep-last", "-1", "--as", "alice")
    assert bad.exit_code == 2


def test_ls_show_and_acl(zerog: Callable[..., Result], zerog_home: Path) -> None:
    ids = _seed_series(zerog_home)
    ledger = ledger_at(zerog_home)
    record_check(ledger, ids["2026-03-01"], "ok", "2026-03-05T00:00:00Z")
    record_check(ledger, ids["2026-03-02"], "mismatch", "2026-03-05T00:00:00Z")
    ledger.close()
    table = zerog("backup", "ls", "--as", "alice")
    assert table.exit_code == 0
    assert "ok 2026-03-05T00:00:00Z" in table.stdout
    assert "mismatch 2026-03-05T00:00:00Z" in table.stdout
    unverified = zerog("backup", "ls", "--unverified", "--label", "db", "--as", "alice", "--json")
    assert sorted(b["id"] for b in unverified.json["backups"]) == sorted(
        [ids["2026-03-02"], ids["2026-03-03"], ids["2026-03-04"]]
    )
    assert zerog("backup", "ls", "--as", "mallory", "--json").json["backups"] == []
    assert zerog("backup", "ls", "--ns", "backups", "--as", "mallory").exit_code == 5

    shown = zerog("backup", "show", str(ids["2026-03-02"]), "--as", "alice", "--json")
    assert shown.exit_code == 0
    assert [v["status"] for v in shown.json["verifications"]] == ["mismatch"]
    assert zerog("backup", "show", str(ids["2026-03-02"]), "--as", "mallory").exit_code == 5
    missing = zerog("backup", "show", "999", "--as", "alice")
    assert missing.exit_code == 7
    assert missing.stderr.count("\n") == 1
    assert zerog("backup", "show", "abc").exit_code == 2


def test_unverified_counts_from_creation_and_exits_3(
    zerog: Callable[..., Result], zerog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    ids = _seed_series(zerog_home)
    ledger = ledger_at(zerog_home)
    for backup_id in ids.values():
        record_check(ledger, backup_id, "ok", "2026-03-05T00:00:00Z")
    fresh = seed_backup(ledger, created_at="2026-03-05T20:00:00Z", label="fresh")
    ledger.close()

    def frozen(text: str) -> None:
        moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
        monkeypatch.setattr("zerog_cli.services.context._utc_now", lambda: moment)

    frozen("2026-03-05T23:00:00")
    calm = zerog("backup", "unverified", "--max-age", "24h")
    assert calm.exit_code == 0, calm
    assert calm.stdout == ""

    frozen("2026-03-06T01:00:00")
    stale = zerog("backup", "unverified", "--max-age", "24h", "--json")
    assert stale.exit_code == 3
    assert sorted(b["id"] for b in stale.json["unverified"]) == sorted(ids.values())
    assert stale.stderr.startswith("error: 5 of 6 live backup(s) not verified within 24h")

    frozen("2026-03-06T21:00:00")
    human = zerog("backup", "unverified", "--max-age", "1d")
    assert human.exit_code == 3
    assert f"{fresh} backups/fresh/" in human.stdout
    assert "never verified (1d01h ago)" in human.stdout
    assert zerog("backup", "unverified", "--max-age", "soon").exit_code == 2
    assert zerog("backup", "unverified", "--ns", "nosuch").exit_code == 7
