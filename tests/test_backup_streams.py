"""Backups and uploads of streams (stdin, a producer command), size policy, restore selectors.

Every case runs the real command line against a devnet: shell pipelines through
`sh -c`, the producer through `--from-command`, SIGTERM to a child process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess, slow_upload
from zerog_cli.zerog.merkle import DEFAULT_BLOCK_SIZE

pytestmark = pytest.mark.devnet

ZEROG = f"{sys.executable} -m zerog_cli"


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private tmp_dir, so a test can see that no spool file is left behind."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setenv("ZEROG_TMP_DIR", str(folder))
    yield folder


def _shell(script: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, timeout=timeout, env=os.environ.copy()
    )


def _count(cli: Callable[..., Result], table: str) -> int:
    result = cli("ledger", "sql", f"SELECT COUNT(*) AS n FROM {table}", "--json")
    assert result.exit_code == 0, result
    return int(result.json["rows"][0]["n"])


def _nothing_recorded(cli: Callable[..., Result], net: DevnetProcess, txs: int) -> None:
    for table in ("storage_backups", "objects", "cost_tracking", "pending_payments"):
        assert _count(cli, table) == 0, table
    assert net.stats()["transactions"] == txs


def test_pipe_into_backup_create_and_restore_to_stdout(
    cli: Callable[..., Result], spool_dir: Path, tmp_path: Path
) -> None:
    assert cli("ns", "create", "backups").exit_code == 0
    made = _shell(
        f"printf 'orders dump %.0s' $(seq 1 5000) | {ZEROG} backup create - "
        "--ns backups --label db --name orders.dump --json"
    )
    assert made.returncode == 0, made.stderr
    expected = b"".join(b"orders dump " for _ in range(5000))
    import hashlib
    import json

    report = json.loads(made.stdout)
    assert report["size"] == len(expected)
    assert report["sha256"] == hashlib.sha256(expected).hexdigest()
    assert report["name"].startswith("db/") and report["name"].endswith("Z-orders.dump")
    assert report["path"] == "-"
    assert list(spool_dir.iterdir()) == []
    shown = cli("backup", "show", str(report["backup_id"]), "--json").json
    assert shown["source_path"] == "stdin"

    piped = _shell(f"{ZEROG} backup restore {report['backup_id']} -o -")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == expected
    assert list(spool_dir.iterdir()) == []

    folder = tmp_path / "restored"
    folder.mkdir()
    into = cli("backup", "restore", str(report["backup_id"]), "-o", str(folder), "--json")
    assert into.exit_code == 0, into
    assert (folder / "orders.dump").read_bytes() == expected


def test_upload_reads_stdin_and_needs_a_name(
    cli: Callable[..., Result], cli_process: Callable[..., Result], spool_dir: Path
) -> None:
    data = os.urandom(70_000)
    nameless = cli_process("upload", "-", stdin=data)
    assert nameless.exit_code == 2
    assert "--name" in nameless.stderr
    done = cli_process("upload", "-", "--name", "blob.bin", "--json", stdin=data)
    assert done.exit_code == 0, done.stderr
    assert done.json["size"] == len(data)
    back = cli_process("download", "default/blob.bin", "-o", "-")
    assert back.exit_code == 0
    assert list(spool_dir.iterdir()) == []


def test_empty_stdin_is_a_failed_input(
    cli: Callable[..., Result], net: DevnetProcess, spool_dir: Path
) -> None:
    """`false | zerog backup create -`: the status is invisible to zerog, the empty input is not."""
    txs = net.stats()["transactions"]
    failed = _shell(f"false | {ZEROG} backup create - --label db --name db.dump")
    assert failed.returncode == 10, failed.stderr
    assert b"standard input was empty" in failed.stderr
    assert b"--from-command" in failed.stderr
    _nothing_recorded(cli, net, txs)
    assert list(spool_dir.iterdir()) == []


def test_failed_producer_is_never_a_backup(
    cli: Callable[..., Result],
    cli_process: Callable[..., Result],
    net: DevnetProcess,
    spool_dir: Path,
) -> None:
    txs = net.stats()["transactions"]
    quiet = cli_process("backup", "create", "--label", "db", "--from-command", "--", "false")
    assert quiet.exit_code == 10
    assert "producer `false` exited with status 1" in quiet.stderr
    half = cli_process(
        "backup",
        "create",
        "--label",
        "db",
        "--from-command",
        "--",
        "sh",
        "-c",
        "head -c 200000 /dev/urandom; exit 3",
    )
    assert half.exit_code == 10
    assert "exited with status 3" in half.stderr
    killed = cli_process(
        "backup",
        "create",
        "--label",
        "db",
        "--from-command",
        "--",
        "sh",
        "-c",
        "head -c 300000 /dev/urandom; kill -9 $$",
    )
    assert killed.exit_code == 10
    assert "killed by signal 9 (SIGKILL)" in killed.stderr
    _nothing_recorded(cli, net, txs)
    assert list(spool_dir.iterdir()) == []

    good = cli_process(
        "backup",
        "create",
        "--label",
        "db",
        "--name",
        "db.dump",
        "--json",
        "--from-command",
        "--",
        "sh",
        "-c",
        "printf 'rows %.0s' $(seq 1 3000)",
    )
    assert good.exit_code == 0, good.stderr
    assert good.json["size"] == 5 * 3000
    assert cli("backup", "show", str(good.json["backup_id"]), "--json").json["source_path"] == (
        "sh -c printf 'rows %.0s' $(seq 1 3000)"
    )


def test_sigterm_while_spooling_removes_the_spool_file(
    cli: Callable[..., Result], net: DevnetProcess, spool_dir: Path
) -> None:
    # zerog reads the producer a block at a time: more than one block reaches the spool
    # file while the producer is still running (a shorter output would sit in the pipe
    # until the producer ended, 60 s later).
    produced = DEFAULT_BLOCK_SIZE + 100_000
    txs = net.stats()["transactions"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zerog_cli",
            "backup",
            "create",
            "--label",
            "db",
            "--from-command",
            "--",
            "sh",
            "-c",
            f"head -c {produced} /dev/urandom; exec sleep 60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        while not any(p.stat().st_size > 0 for p in spool_dir.iterdir()):
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        spooled = next(spool_dir.iterdir())
        assert spooled.stat().st_mode & 0o777 == 0o600
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr
    assert list(spool_dir.iterdir()) == []
    _nothing_recorded(cli, net, txs)


def test_size_policy_upload_default_and_max_backup_size(
    cli: Callable[..., Result], cli_process: Callable[..., Result], tmp_path: Path, spool_dir: Path
) -> None:
    big = tmp_path / "big.dump"
    big.write_bytes(os.urandom(11_000_000))
    refused = cli("upload", str(big))
    assert refused.exit_code == 2
    assert "upload limit" in refused.stderr
    assert cli("config", "set", "max_backup_size", "soon").exit_code == 2
    made = cli("backup", "create", str(big), "--label", "big", "--json")
    assert made.exit_code == 0, made
    assert made.json["size"] == 11_000_000

    assert cli("config", "set", "max_backup_size", "100KB").exit_code == 0
    too_big = cli("backup", "create", str(big), "--label", "big")
    assert too_big.exit_code == 2
    assert "max_backup_size" in too_big.stderr
    streamed = cli_process("backup", "create", "-", "--label", "big", stdin=os.urandom(150_000))
    assert streamed.exit_code == 2
    assert "over the 100.00 KB limit" in streamed.stderr
    assert list(spool_dir.iterdir()) == []
    assert cli("config", "set", "tmp_dir", "relative/dir").exit_code == 2
    assert cli("config", "set", "tmp_dir", str(tmp_path / "missing")).exit_code == 2


def test_restore_latest_and_before(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    assert cli("ns", "create", "backups").exit_code == 0
    made: dict[str, int] = {}
    contents: dict[str, bytes] = {}
    with monkeypatch.context() as patch:
        for day, label in ((25, "db"), (26, "db"), (27, "web"), (28, "db")):
            moment = datetime(2026, 11, day, 3, 0, tzinfo=UTC)
            patch.setattr("zerog_cli.services.context._utc_now", lambda moment=moment: moment)
            source = tmp_path / f"{label}.dump"
            contents[f"{label}{day}"] = os.urandom(40_000 + day)
            source.write_bytes(contents[f"{label}{day}"])
            result = cli(
                "backup", "create", str(source), "--ns", "backups", "--label", label, "--json"
            )
            assert result.exit_code == 0, result
            made[f"{label}{day}"] = result.json["backup_id"]

    newest = cli("backup", "ls", "--latest", "--json")
    assert newest.exit_code == 0, newest
    assert newest.json["id"] == made["db28"]
    web = cli("backup", "ls", "--latest", "--ns", "backups", "--label", "web", "--json")
    assert web.json["id"] == made["web27"]
    older = cli("backup", "ls", "--latest", "--label", "db", "--before", "2026-11-27", "--json")
    assert older.json["id"] == made["db26"]
    listed = cli("backup", "ls", "--before", "2026-11-26T02:00:00Z", "--json")
    assert [row["id"] for row in listed.json["backups"]] == [made["db25"]]
    none = cli("backup", "ls", "--latest", "--before", "2026-11-01", "--json")
    assert none.exit_code == 7
    assert cli("backup", "ls", "--latest", "--before", "last tuesday").exit_code == 2

    out = tmp_path / "out"
    out.mkdir()
    restored = cli("backup", "restore", "latest", "--label", "db", "-o", str(out), "--json")
    assert restored.exit_code == 0, restored
    assert restored.json["backup_id"] == made["db28"]
    assert (out / "db.dump").read_bytes() == contents["db28"]
    earlier = cli(
        "backup",
        "restore",
        "latest",
        "--label",
        "db",
        "--before",
        "2026-11-26T04:00:00Z",
        "-o",
        str(out / "old.dump"),
        "--json",
    )
    assert earlier.exit_code == 0, earlier
    assert earlier.json["backup_id"] == made["db26"]
    assert (out / "old.dump").read_bytes() == contents["db26"]
    assert cli("backup", "restore", "latest", "--label", "nope", "-o", str(out)).exit_code == 7
    mixed = cli("backup", "restore", str(made["db25"]), "--label", "db", "-o", str(out))
    assert mixed.exit_code == 2
    assert "latest" in mixed.stderr


def test_replace_keeps_history_and_name_at_version(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    assert cli("ns", "create", "docs").exit_code == 0
    first, second = tmp_path / "v1.csv", tmp_path / "v2.csv"
    first.write_bytes(os.urandom(30_000))
    second.write_bytes(os.urandom(31_000))
    made = cli("upload", str(first), "--ns", "docs", "--name", "prices.csv", "--json")
    assert made.exit_code == 0, made
    assert made.json["version"] == 1
    taken = cli("upload", str(second), "--ns", "docs", "--name", "prices.csv")
    assert taken.exit_code == 2
    assert "already exists" in taken.stderr and "--replace" in taken.stderr
    replaced = cli(
        "upload", str(second), "--ns", "docs", "--name", "prices.csv", "--replace", "--json"
    )
    assert replaced.exit_code == 0, replaced
    assert replaced.json["version"] == 2

    current = cli("ns", "objects", "docs", "--json").json["objects"]
    assert [(row["name"], row["version"]) for row in current] == [("prices.csv", 2)]
    history = cli("ns", "objects", "docs", "--versions", "--json").json["objects"]
    assert [(row["version"], row["size"]) for row in history] == [(1, 30_000), (2, 31_000)]

    newest = cli("download", "docs/prices.csv", "-o", str(tmp_path / "now.csv"))
    assert newest.exit_code == 0, newest
    assert (tmp_path / "now.csv").read_bytes() == second.read_bytes()
    old = cli("download", "docs/prices.csv@1", "-o", str(tmp_path / "old.csv"))
    assert old.exit_code == 0, old
    assert (tmp_path / "old.csv").read_bytes() == first.read_bytes()
    assert cli("download", "docs/prices.csv@3", "-o", str(tmp_path / "x")).exit_code == 7


def test_object_versions_migration_keeps_old_rows_readable(tmp_path: Path) -> None:
    import sqlite3

    from zerog_cli.ledger import objects
    from zerog_cli.ledger.db import open_ledger
    from zerog_cli.ledger.migrations import migrate

    ledger = open_ledger(tmp_path / "ledger.db", migrate=False)
    migrate(ledger, 9)
    with ledger.transaction() as conn:
        conn.execute("INSERT INTO namespaces (name, owner, created_at) VALUES ('docs', 'ops', 't')")
        conn.execute(
            "INSERT INTO objects (namespace, name, root, size, sha256, network, encrypted,"
            " fee_neuron, created_at) VALUES ('docs', 'a.txt', ?, 10, ?, 'devnet', 0, '0', ?)",
            ("0x" + "11" * 32, "00" * 32, "2026-11-01T00:00:00Z"),
        )
    migrate(ledger, 10)
    assert ledger.conn.execute("SELECT name, version FROM objects").fetchall() == [("a.txt", 1)]
    migrate(ledger)  # today's objects.py reads and writes today's columns (fee_usd_micro: 15)
    old = objects.by_name(ledger.conn, "devnet", "docs", "a.txt")
    assert old is not None and old.version == 1
    with ledger.transaction() as conn:
        objects.insert(
            conn,
            namespace="docs",
            name="a.txt",
            root="0x" + "22" * 32,
            tx_seq=2,
            size=11,
            sha256="11" * 32,
            network="devnet",
            encrypted=False,
            uploader="ops",
            fee_neuron=1,
            fee_usd_micro=0,
        )
    newest = objects.by_name(ledger.conn, "devnet", "docs", "a.txt")
    assert newest is not None and (newest.version, newest.size) == (2, 11)
    migrate(ledger, 9)
    names = ledger.conn.execute("SELECT name, size FROM objects ORDER BY id").fetchall()
    assert names == [("a.txt@1", 10), ("a.txt", 11)]
    with pytest.raises(sqlite3.IntegrityError), ledger.transaction() as conn:
        conn.execute(
            "INSERT INTO objects (namespace, name, root, size, sha256, network, encrypted,"
            " fee_neuron, created_at) VALUES ('docs', 'a.txt', ?, 10, ?, 'devnet', 0, '0', ?)",
            ("0x" + "33" * 32, "00" * 32, "2026-11-02T00:00:00Z"),
        )
    ledger.close()


def test_two_replacing_uploads_of_one_name_never_both_pay(
    cli: Callable[..., Result], net: DevnetProcess, zerog_home: Path, tmp_path: Path
) -> None:
    """--replace still reserves the name with the quota: a second replacing run is refused."""
    import sqlite3

    files = []
    for index in range(3):
        path = tmp_path / f"v{index}.bin"
        path.write_bytes(os.urandom(5000 + index))
        files.append(path)
    assert cli("upload", str(files[0]), "--name", "report.bin").exit_code == 0

    def held() -> list[str]:
        with sqlite3.connect(zerog_home / "ledger.db") as conn:
            rows = conn.execute(
                "SELECT object_name FROM quota_reservations WHERE object_name IS NOT NULL"
            ).fetchall()
        return [str(row[0]) for row in rows]

    transactions = net.stats()["transactions"]
    with slow_upload(net, str(files[1]), "--name", "report.bin", "--replace") as first:
        while "report.bin" not in held():
            assert first.poll() is None, first.communicate()
            time.sleep(0.02)
        second = cli("upload", str(files[2]), "--name", "report.bin", "--replace")
        assert second.exit_code == 2, second
        assert "is being uploaded by another run" in second.stderr
        net.clear_faults()  # refused: the first upload may now finish at full speed
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err.decode()
    assert net.stats()["transactions"] - transactions == 1
    history = cli("ns", "objects", "default", "--versions", "--json").json["objects"]
    assert [(row["version"], row["size"]) for row in history] == [(1, 5000), (2, 5001)]


def test_encrypted_stream_backup_round_trips(
    cli: Callable[..., Result],
    cli_process: Callable[..., Result],
    spool_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hashlib

    monkeypatch.setenv("ENCRYPTION_KEY", "3c" * 32)
    data = os.urandom(600_000)
    made = cli_process(
        "backup",
        "create",
        "-",
        "--label",
        "vault",
        "--name",
        "keys.tar",
        "--encrypt",
        "--json",
        stdin=data,
    )
    assert made.exit_code == 0, made.stderr
    assert made.json["encrypted"] is True
    assert made.json["sha256"] == hashlib.sha256(data).hexdigest()
    assert made.json["stored_size"] > len(data)
    assert list(spool_dir.iterdir()) == []
    back = subprocess.run(
        [sys.executable, "-m", "zerog_cli", "backup", "restore", "latest", "-o", "-"],
        capture_output=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert back.returncode == 0, back.stderr
    assert back.stdout == data
