"""The chain as the catalog's backup: catalog records in Flow tags, `zerog ledger rebuild
--from-chain` and ledger snapshots on 0G, against a devnet."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import postgres_harness
from tests.devnet_harness import DevnetProcess, rpc, send_transaction
from tests.ledger_backends import use_postgres
from zerog_cli.devnet.constants import (
    DEFAULT_PRICE_PER_SECTOR,
    DEV_ACCOUNT_ADDRESS,
    DEV_ACCOUNT_KEY,
    FLOW_ADDRESS,
)
from zerog_cli.zerog import catalog, flow_abi, merkle

pytestmark = pytest.mark.devnet

ENC_KEY = "6a" * 32
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
"""Hardhat #1: another account, the spoofer."""


def our_logs(net: DevnetProcess, first: int = 0) -> list[dict[str, Any]]:
    topic = "0x" + bytes(12).hex() + DEV_ACCOUNT_ADDRESS[2:].lower()
    query = {"fromBlock": hex(first), "address": FLOW_ADDRESS, "topics": [None, topic]}
    logs: list[dict[str, Any]] = rpc(net.rpc_url, "eth_getLogs", [query])
    return logs


def open_record(log: dict[str, Any], secret: str = ENC_KEY) -> catalog.CatalogRecord | None:
    event = flow_abi.decode_submit_log(log)
    data = event.submission.data
    key = catalog.derive_key(bytes.fromhex(secret))
    return catalog.open_tags(data.tags, key, submitter=DEV_ACCOUNT_ADDRESS, identity=data.identity)


OBJECT_ROWS = (
    "SELECT namespace, name, version, root, size, sha256, encrypted FROM objects ORDER BY id"
)


def ledger_rows(ledger: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute(sql).fetchall()


def test_uploads_carry_a_catalog_record_only_with_a_key(
    cli, net: DevnetProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "plain.bin"
    source.write_bytes(os.urandom(5000))
    status = cli("status", "--json")
    assert status.json["catalog"]["tags"] == "off"
    assert "neither CATALOG_KEY nor ENCRYPTION_KEY" in status.json["catalog"]["note"]
    before = len(our_logs(net))
    assert cli("upload", str(source)).exit_code == 0
    untagged = our_logs(net)[before:]
    assert (
        len(untagged) == 1 and flow_abi.decode_submit_log(untagged[0]).submission.data.tags == b""
    )

    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    assert cli("status", "--json").json["catalog"] == {
        "tags": "on",
        "key": "ENCRYPTION_KEY",
        "note": None,
    }
    assert "catalog records in Flow tags: on" in cli("status").stdout
    cli("ns", "create", "docs")
    source.write_bytes(os.urandom(7000))
    uploaded = cli("upload", str(source), "--ns", "docs", "--name", "a/b.bin", "--json")
    assert uploaded.exit_code == 0, uploaded
    (log,) = our_logs(net)[before + 1 :]
    record = open_record(log)
    assert record == catalog.CatalogRecord(
        namespace="docs",
        name="a/b.bin",
        version=1,
        sha256=uploaded.json["sha256"],
        size=7000,
        encrypted=False,
    )
    with pytest.raises(Exception, match="does not open"):
        open_record(log, "6b" * 32)

    monkeypatch.setenv("ZEROG_CATALOG_TAGS", "off")
    assert cli("status", "--json").json["catalog"]["tags"] == "off"
    source.write_bytes(os.urandom(7000))
    assert cli("upload", str(source), "--ns", "docs", "--name", "c.bin").exit_code == 0
    assert flow_abi.decode_submit_log(our_logs(net)[-1]).submission.data.tags == b""


def spoof_copy_of(net: DevnetProcess, log: dict[str, Any]) -> dict[str, Any]:
    """Another account submits the same nodes and tags, naming our address as submitter."""
    from eth_account import Account

    event = flow_abi.decode_submit_log(log)
    other = flow_abi.Submission(event.submission.data, DEV_ACCOUNT_ADDRESS)

    send_transaction(net.rpc_url, to=Account.from_key(OTHER_KEY).address, value=10**18)
    receipt = send_transaction(
        net.rpc_url,
        key=OTHER_KEY,
        to=FLOW_ADDRESS,
        data=flow_abi.encode_submit_calldata(other),
        value=other.data.fee(DEFAULT_PRICE_PER_SECTOR),
    )
    assert receipt["status"] == "0x1"
    return receipt


def test_rebuild_from_the_chain_in_an_empty_home(
    cli, net: DevnetProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zerog_home: Path
) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    first_block = int(rpc(net.rpc_url, "eth_blockNumber"), 16) + 1
    cli("ns", "create", "backups")
    files = {}
    for name, size in (("orders.db", 300_000), ("users.db", 40_000)):
        files[name] = tmp_path / name
        files[name].write_bytes(os.urandom(size))
        made = cli("backup", "create", str(files[name]), "--ns", "backups", "--label", name[:-3])
        assert made.exit_code == 0, made
    encrypted = tmp_path / "secret.bin"
    encrypted.write_bytes(os.urandom(20_000))
    assert cli("backup", "create", str(encrypted), "--ns", "backups", "--encrypt").exit_code == 0
    folder = tmp_path / "site"
    (folder / "css").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>hi</h1>\n")
    (folder / "css" / "a.css").write_text("h1 { color: red }\n")
    assert cli("backup", "create", str(folder), "--ns", "backups", "--label", "site").exit_code == 0
    as_dir = ("backup", "create", str(folder), "--ns", "backups", "--label", "site-dir")
    assert cli(*as_dir, "--format", "0g-dir").exit_code == 0
    plain = tmp_path / "notes.txt"
    plain.write_bytes(os.urandom(9000))
    assert cli("upload", str(plain), "--name", "notes.txt").exit_code == 0
    plain.write_bytes(os.urandom(9001))
    assert cli("upload", str(plain), "--name", "notes.txt", "--replace").exit_code == 0
    spoof_copy_of(net, our_logs(net, first_block)[0])
    before = cli("backup", "ls", "--json").json["backups"]
    objects_before = ledger_rows(zerog_home / "ledger.db", OBJECT_ROWS)

    shutil.rmtree(zerog_home)
    monkeypatch.setenv("ZEROG_CHAIN_ID", "16661")
    wrong_chain = cli("ledger", "rebuild", "--from-chain", "--dry-run")
    assert wrong_chain.exit_code == 8 and "expects chain 16661" in wrong_chain.stderr
    monkeypatch.delenv("ZEROG_CHAIN_ID")
    dry = cli(
        "ledger", "rebuild", "--from-chain", "--from-block", str(first_block), "--dry-run", "--json"
    )
    assert dry.exit_code == 0, dry
    assert dry.json["dry_run"] is True and dry.json["submissions"] == len(objects_before)
    assert dry.json["skipped"] == {"sent by another account": 1}
    assert not (zerog_home / "ledger.db.rebuild.json").exists()
    rebuilt = cli("ledger", "rebuild", "--from-chain", "--from-block", str(first_block), "--json")
    assert rebuilt.exit_code == 0, rebuilt
    assert rebuilt.json["objects"] == len(objects_before)
    assert rebuilt.json["folder_members"] == {"listed": 2, "missing": 0}
    assert "no ACL entries" in rebuilt.json["acl_note"]
    assert ledger_rows(zerog_home / "ledger.db", OBJECT_ROWS) == objects_before
    assert ledger_rows(
        zerog_home / "ledger.db", "SELECT COUNT(*) FROM objects WHERE rebuilt = 0"
    ) == [(0,)]
    fees = "SELECT COUNT(fee_usd_micro), SUM(fee_usd_micro) FROM objects"
    costs = "SELECT COUNT(*), SUM(usd_micro) FROM cost_tracking WHERE service = 'storage'"
    assert ledger_rows(zerog_home / "ledger.db", fees) == ledger_rows(
        zerog_home / "ledger.db", costs
    )
    after = cli("backup", "ls", "--json").json["backups"]
    keys = ("namespace", "name", "label", "root", "size", "sha256", "encrypted", "kind")
    assert [{k: b[k] for k in keys} for b in after] == [{k: b[k] for k in keys} for b in before]
    restore = tmp_path / "restore"
    restore.mkdir()
    for backup in after:
        if backup["kind"] == "0g-dir":
            where = ("--to", str(restore / "site-dir"))
        else:
            where = ("-o", str(restore) + "/")
        got = cli("backup", "restore", str(backup["id"]), *where)
        assert got.exit_code == 0, got
    assert (restore / "site-dir" / "css" / "a.css").read_text() == "h1 { color: red }\n"
    assert (restore / "orders.db").read_bytes() == files["orders.db"].read_bytes()
    assert (restore / "secret.bin").read_bytes() == encrypted.read_bytes()
    verified = cli("verify", "--all", "--json")
    assert verified.exit_code == 0, verified
    again = cli("ledger", "rebuild", "--from-chain", "--from-block", str(first_block))
    assert again.exit_code == 2 and "pass --yes" in again.stderr
    replaced = cli(
        "ledger", "rebuild", "--from-chain", "--from-block", str(first_block), "--yes", "--json"
    )
    assert replaced.exit_code == 0, replaced
    saved = Path(replaced.json["replaced"])
    assert saved.parent.name == "ledger-backups"
    assert ledger_rows(saved, "SELECT COUNT(*) FROM objects") == [(len(objects_before),)]
    assert ledger_rows(zerog_home / "ledger.db", OBJECT_ROWS) == objects_before


def test_rebuild_into_a_postgresql_ledger(
    cli,
    net: DevnetProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    zerog_home: Path,
    postgres_cluster: postgres_harness.Cluster,
) -> None:
    """With ledger_url naming PostgreSQL the rebuild loads that database (not a file in
    ZEROG_HOME), checked as `ledger copy` checks; one with records is replaced only with
    --yes, after an export to ledger-backups/."""
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    team = use_postgres(postgres_cluster, zerog_home, monkeypatch)
    first_block = int(rpc(net.rpc_url, "eth_blockNumber"), 16) + 1
    cli("ns", "create", "backups")
    orders = tmp_path / "orders.db"
    orders.write_bytes(os.urandom(50_000))
    made = cli("backup", "create", str(orders), "--ns", "backups", "--label", "orders")
    assert made.exit_code == 0, made
    notes = tmp_path / "notes.txt"
    notes.write_bytes(os.urandom(9000))
    assert cli("upload", str(notes), "--name", "notes.txt").exit_code == 0
    objects_before = team.rows(OBJECT_ROWS)
    costs = "SELECT COUNT(*) AS n, SUM(quantity) AS bytes FROM cost_tracking"
    costs_before = team.rows(costs)
    assert len(objects_before) == 2 and costs_before[0]["n"] == 2

    shutil.rmtree(zerog_home, ignore_errors=True)
    fresh = use_postgres(postgres_cluster, zerog_home, monkeypatch)
    rebuild = ("ledger", "rebuild", "--from-chain", "--from-block", str(first_block))
    rebuilt = cli(*rebuild, "--json")
    assert rebuilt.exit_code == 0, rebuilt
    assert rebuilt.json["target"].startswith("postgresql://")
    assert rebuilt.json["replaced"] is None
    copied = rebuilt.json["copied"]
    assert copied["verified"] is True and copied["tables"]["objects"] == 2
    assert fresh.rows(OBJECT_ROWS) == objects_before
    assert fresh.rows(costs) == costs_before
    assert sorted(path.name for path in zerog_home.iterdir() if path.is_file()) == []
    labels = [backup["label"] for backup in cli("backup", "ls", "--json").json["backups"]]
    assert labels == ["orders"]

    refused = cli(*rebuild)
    assert refused.exit_code == 2 and "pass --yes" in refused.stderr
    replaced = cli(*rebuild, "--yes")
    assert replaced.exit_code == 0, replaced
    assert "loaded" in replaced.stdout and "row counts and sums verified" in replaced.stdout
    saved = next((zerog_home / "ledger-backups").iterdir())
    assert ledger_rows(saved, "SELECT COUNT(*) FROM objects") == [(2,)]
    assert fresh.rows(OBJECT_ROWS) == objects_before
    assert fresh.rows(costs) == costs_before


def submit_tagged(net: DevnetProcess, count: int, namespace: str, per_tx: int = 5) -> int:
    """``count`` Flow submissions of the dev account, each with a catalog record sealed as
    zerog seals it, sent straight to the chain ``per_tx`` at a time (``batchSubmit``, one
    block each); returns the first block."""
    from eth_account import Account

    key = catalog.derive_key(bytes.fromhex(ENC_KEY))
    nonce = int(rpc(net.rpc_url, "eth_getTransactionCount", [DEV_ACCOUNT_ADDRESS, "pending"]), 16)
    chain_id = int(rpc(net.rpc_url, "eth_chainId"), 16)
    gas_price = int(rpc(net.rpc_url, "eth_gasPrice"), 16)
    first = int(rpc(net.rpc_url, "eth_blockNumber"), 16) + 1
    submissions = []
    for index in range(count):
        size = 1000 + index
        nodes = tuple(
            merkle.SubmissionNode(root=os.urandom(32), height=height)
            for _, height in merkle.submission_layout(size)
        )
        record = catalog.CatalogRecord(
            namespace, f"file-{index:04}.bin", 1, os.urandom(32).hex(), size, False
        )
        identity = flow_abi.SubmissionData(size, b"", nodes).identity
        tags = catalog.seal(record, key, submitter=DEV_ACCOUNT_ADDRESS, identity=identity)
        submissions.append(
            flow_abi.Submission(flow_abi.SubmissionData(size, tags, nodes), DEV_ACCOUNT_ADDRESS)
        )
    for sent, start in enumerate(range(0, count, per_tx)):
        batch = submissions[start : start + per_tx]
        tx = {
            "chainId": chain_id,
            "nonce": nonce + sent,
            "to": FLOW_ADDRESS,
            "value": sum(item.data.fee(DEFAULT_PRICE_PER_SECTOR) for item in batch),
            "data": flow_abi.encode_batch_submit_calldata(batch),
            "gas": 3_000_000,
            "gasPrice": gas_price,
        }
        raw = bytes(Account.sign_transaction(tx, DEV_ACCOUNT_KEY).raw_transaction)
        rpc(net.rpc_url, "eth_sendRawTransaction", ["0x" + raw.hex()])
    return first


def test_a_rebuild_of_1000_submissions_killed_and_resumed(
    zerog, net: DevnetProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Public RPCs cap eth_getLogs: the scan halves its range on the -32005 refusal (here of
    more than 30 results: 8 blocks hold 40), saves a checkpoint after each range, and a rerun
    after kill -9 resumes from it. Fees are split among a batch's submissions by sectors."""
    first = submit_tagged(net, 1000, "bulk")
    home = tmp_path / "rebuilt-home"
    env = {
        "ZEROG_HOME": str(home),
        "ZEROG_DEVNET_URL": net.base_url,
        "ENCRYPTION_KEY": ENC_KEY,
        "ZEROG_LOGS_BLOCK_RANGE": "8",
    }
    net.set_faults(logs_max_results=30, latency_ms=15, targets=["rpc"])
    checkpoint = home / "ledger.db.rebuild.json"
    command = [sys.executable, "-m", "zerog_cli", "ledger", "rebuild", "--from-chain"]
    process = subprocess.Popen(
        [*command, "--from-block", str(first)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        ranges = 0
        while ranges < 5 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
            if checkpoint.exists():
                ranges = json.loads(checkpoint.read_text())["ranges"]
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
    saved = json.loads(checkpoint.read_text())
    assert saved["ranges"] >= 5 and saved["block_range"] == 4
    assert not (home / "ledger.db").exists() or sqlite3.connect(home / "ledger.db").execute(
        "SELECT COUNT(*) FROM objects"
    ).fetchone() == (0,)

    net.set_faults(latency_ms=0, targets=["rpc", "indexer", "node", "provider"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    resumed = zerog("ledger", "rebuild", "--from-chain", "--from-block", str(first), "--json")
    net.set_faults(logs_max_results=0)
    assert resumed.exit_code == 0, resumed
    assert "resuming the scan from block" in resumed.stderr
    report = resumed.json
    assert report["resumed"] is True and report["submissions"] == 1000
    assert report["ranges"] >= 200 // 4 and report["range_shrunk"] == 1
    assert report["objects"] == 1000 and report["namespaces"] == ["bulk"]
    assert not checkpoint.exists()
    names = ledger_rows(home / "ledger.db", "SELECT name FROM objects WHERE rebuilt = 1")
    assert sorted(name for (name,) in names) == [f"file-{i:04}.bin" for i in range(1000)]
    fees = ledger_rows(home / "ledger.db", "SELECT size, fee_neuron FROM objects")
    for size, fee in fees:
        assert (
            int(fee) == merkle.tree_from_bytes(bytes(size)).fee_sectors * DEFAULT_PRICE_PER_SECTOR
        )
    listed = zerog("ns", "objects", "bulk", "--limit", "2000", "--json")
    assert listed.exit_code == 0, listed
    assert len(listed.json["objects"]) == 1000


def test_rebuild_restores_the_ledger_snapshot_then_replays_what_came_after(
    cli, net: DevnetProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zerog_home: Path
) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    first_block = int(rpc(net.rpc_url, "eth_blockNumber"), 16) + 1
    assert cli("ns", "create", "team").exit_code == 0
    assert cli("quota", "set", "bob", "--tier", "premium").exit_code == 0
    assert cli("ns", "grant", "team", "bob", "read").exit_code == 0
    before_snapshot = tmp_path / "before.db"
    before_snapshot.write_bytes(os.urandom(30_000))
    assert cli("backup", "create", str(before_snapshot), "--ns", "team").exit_code == 0
    assert cli("verify", "--all").exit_code == 0
    snapshot = cli("ledger", "backup", "--to-0g", "--json")
    assert snapshot.exit_code == 0, snapshot
    assert snapshot.json["namespace"] == "zerog.ledger" and snapshot.json["pointer"] is True
    reserved = cli("upload", str(before_snapshot), "--ns", "zerog.ledger", "--name", "x")
    assert reserved.exit_code == 2 and "ledger snapshots only" in reserved.stderr
    after_snapshot = tmp_path / "after.db"
    after_snapshot.write_bytes(os.urandom(40_000))
    assert cli("backup", "create", str(after_snapshot), "--ns", "team").exit_code == 0
    (last,) = our_logs(net)[-1:]
    record = open_record(last)
    assert record is not None and record.snapshot == snapshot.json["tx_seq"]
    acl_before = cli("ns", "show", "team", "--json").json

    shutil.rmtree(zerog_home)
    monkeypatch.setenv("ZEROG_LOGS_BLOCK_RANGE", "1")
    rebuilt = cli("ledger", "rebuild", "--from-chain", "--from-block", str(first_block), "--json")
    assert rebuilt.exit_code == 0, rebuilt
    report = rebuilt.json
    assert report["snapshot"]["tx_seq"] == snapshot.json["tx_seq"]
    assert report["scanned_blocks"]["from"] == snapshot.json["taken_at_height"] + 1
    assert report["acl_note"] is None
    assert cli("ns", "show", "team", "--json").json == acl_before
    assert cli("quota", "show", "bob", "--json").json["tier"] == "premium"
    listed = {b["label"]: b for b in cli("backup", "ls", "--json").json["backups"]}
    assert {"before.db", "after.db", "ledger"} <= set(listed)
    assert listed["before.db"]["last_status"] == "ok"
    assert ledger_rows(
        zerog_home / "ledger.db",
        "SELECT b.rebuilt FROM storage_backups b JOIN objects o ON o.id = b.object_id"
        " WHERE o.name LIKE 'after.db/%'",
    ) == [(1,)]
    assert cli("verify", "--all").exit_code == 0
