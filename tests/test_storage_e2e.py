"""upload / download / ns / quota end to end through the CLI, against a devnet."""

from __future__ import annotations

import os
import sqlite3
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import run_cli_process
from tests.devnet_harness import DevnetProcess

ENC_KEY = "5f" * 32


def _file(tmp_path: Path, name: str, size: int, seed: int = 1) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size) if seed else bytes(size))
    return path


def _tables(ledger: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(ledger) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            n: conn.execute(f'SELECT * FROM "{n}"').fetchall()
            for n in names
            if n != "breaker_state"
        }


@pytest.mark.parametrize("size", [1, 4097, 300_000, 3 * 262_144 + 1])
def test_upload_then_download_by_root_and_by_name(cli, tmp_path: Path, size: int) -> None:
    source = _file(tmp_path, "data.bin", size)
    cli("ns", "create", "docs")
    uploaded = cli("upload", str(source), "--ns", "docs", "--json")
    assert uploaded.exit_code == 0, uploaded
    report = uploaded.json
    assert report["finalized"] is True
    by_name = tmp_path / "by-name.bin"
    got = cli("download", "docs/data.bin", "-o", str(by_name), "--json")
    assert got.exit_code == 0, got
    assert by_name.read_bytes() == source.read_bytes()
    assert got.json["verified_against_ledger"] is True
    by_root = tmp_path / "by-root.bin"
    assert cli("download", report["root"], "-o", str(by_root)).exit_code == 0
    assert by_root.read_bytes() == source.read_bytes()
    assert "network: devnet" in uploaded.stderr


def test_encrypted_round_trip(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    source = _file(tmp_path, "secret.bin", 70_000)
    plain_root = cli("hash", str(source), "--json").json["root"]
    uploaded = cli("upload", str(source), "--encrypt", "--json")
    assert uploaded.exit_code == 0, uploaded
    assert uploaded.json["encrypted"] is True
    assert uploaded.json["root"] != plain_root
    assert uploaded.json["stored_size"] == 70_000 + 17
    target = tmp_path / "out.bin"
    assert cli("download", "default/secret.bin", "-o", str(target)).exit_code == 0
    assert target.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    by_root = tmp_path / "by-root.bin"
    assert cli("download", uploaded.json["root"], "-o", str(by_root)).exit_code == 0
    assert by_root.read_bytes() == source.read_bytes()
    monkeypatch.delenv("ENCRYPTION_KEY")
    missing = cli("download", "default/secret.bin", "-o", str(tmp_path / "x"))
    assert missing.exit_code == 8
    assert not (tmp_path / "x").exists()


def test_dedupe_does_not_pay_twice(cli, net: DevnetProcess, tmp_path: Path) -> None:
    source = _file(tmp_path, "dup.bin", 50_000)
    first = cli("upload", str(source), "--json")
    assert first.exit_code == 0, first
    assert int(first.json["cost"]["neuron"]) > 0
    txs = net.stats()["transactions"]
    second = cli("upload", str(source), "--name", "dup-again.bin", "--json")
    assert second.exit_code == 0, second
    assert second.json["deduped"] is True
    assert second.json["cost"]["neuron"] == "0"
    assert second.json["cost"]["usd_micro"] == 0
    assert net.stats()["transactions"] == txs
    rows = cli(
        "ledger", "sql", "SELECT neuron, usd_micro FROM cost_tracking ORDER BY id", "--json"
    ).json["rows"]
    assert [r["neuron"] for r in rows][-1] == "0"


def test_quota_refusal_spends_and_records_nothing(
    cli, net: DevnetProcess, tmp_path: Path, zerog_home: Path
) -> None:
    assert cli("quota", "set", "alice", "--storage", "100KB").exit_code == 0
    source = _file(tmp_path, "big.bin", 150_000)
    before = _tables(zerog_home / "ledger.db")
    txs = net.stats()["transactions"]
    refused = cli("upload", str(source), "--as", "alice")
    assert refused.exit_code == 4, refused
    assert "quota exceeded for alice" in refused.stderr
    assert net.stats()["transactions"] == txs
    after = _tables(zerog_home / "ledger.db")
    changed = {t for t in after if after[t] != before.get(t)}
    assert changed <= {"namespaces", "user_quotas"}, changed
    assert (
        after["objects"] == before["objects"] and after["cost_tracking"] == before["cost_tracking"]
    )


def test_dry_run_touches_nothing(cli, net: DevnetProcess, tmp_path: Path, zerog_home: Path) -> None:
    source = _file(tmp_path, "dry.bin", 10_000)
    cli("ledger", "status")
    before = _tables(zerog_home / "ledger.db")
    txs = net.stats()["transactions"]
    result = cli("upload", str(source), "--dry-run", "--json")
    assert result.exit_code == 0, result
    report = result.json
    assert report["dry_run"] is True
    assert int(report["cost"]["neuron"]) > 0
    assert report["cost"]["usd_micro"] == 1
    assert report["quota_after"]["storage"]["fits"] is True
    assert net.stats()["transactions"] == txs
    assert _tables(zerog_home / "ledger.db") == before


def test_acl_roles(cli, tmp_path: Path) -> None:
    source = _file(tmp_path, "f.bin", 1000)
    for user in ("bob", "carol", "dave", "erin"):
        cli("quota", "set", user, "--tier", "free")
    assert cli("ns", "create", "team", "--as", "alice").exit_code == 0
    cli("ns", "grant", "team", "bob", "admin", "--as", "alice")
    cli("ns", "grant", "team", "carol", "write", "--as", "bob")
    cli("ns", "grant", "team", "dave", "read", "--as", "alice")
    assert cli("upload", str(source), "--ns", "team", "--as", "carol").exit_code == 0
    assert cli("upload", str(source), "--ns", "team", "--name", "g", "--as", "dave").exit_code == 5
    assert cli("upload", str(source), "--ns", "team", "--name", "h", "--as", "erin").exit_code == 5
    out = tmp_path / "o"
    assert cli("download", "team/f.bin", "-o", str(out), "--as", "dave").exit_code == 0
    assert cli("download", "team/f.bin", "-o", str(out), "--force", "--as", "erin").exit_code == 5
    assert cli("ns", "grant", "team", "erin", "read", "--as", "carol").exit_code == 5
    assert cli("ns", "grant", "team", "erin", "read", "--as", "dave").exit_code == 5
    assert cli("ns", "grant", "team", "zed", "read", "--as", "alice").exit_code == 7
    assert cli("ns", "rm", "team", "--as", "carol").exit_code == 5
    refused = cli("ns", "rm", "team", "--as", "bob")
    assert refused.exit_code == 2 and "--force" in refused.stderr
    removed = cli("ns", "rm", "team", "--force", "--as", "bob")
    assert removed.exit_code == 0 and "stay on the network" in removed.stderr


def test_corrupt_node_is_healed_and_all_corrupt_is_exit_3(
    cli, net: DevnetProcess, tmp_path: Path
) -> None:
    source = _file(tmp_path, "heal.bin", 2 * 262_144 + 5)
    uploaded = cli("upload", str(source), "--replicas", "2", "--json")
    assert len(uploaded.json["nodes"]) == 2, uploaded
    root = uploaded.json["root"]
    net.set_faults(corrupt_nodes=[0])
    healed = tmp_path / "healed.bin"
    result = cli("download", root, "-o", str(healed), "--json")
    assert result.exit_code == 0, result
    assert healed.read_bytes() == source.read_bytes()
    net.set_faults(corrupt_nodes=[0, 1])
    bad = tmp_path / "bad.bin"
    failed = cli("download", root, "-o", str(bad))
    assert failed.exit_code == 3, failed
    assert [line for line in failed.stderr.splitlines() if line.startswith("error:")] != []
    assert "Traceback" not in failed.stderr
    assert not bad.exists()
    assert not any(p.name.startswith(".bad.bin") for p in tmp_path.iterdir())


def test_month_rollover_resets_usage(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerog_cli.services import context as context_module

    monkeypatch.setattr(
        context_module, "_utc_now", lambda: datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    )
    source = _file(tmp_path, "m.bin", 20_000)
    assert cli("upload", str(source), "--as", "mo").exit_code == 0
    october = cli("quota", "show", "mo", "--json").json
    assert october["period"] == "2026-10"
    assert october["limits"]["storage"]["used"] == 20_000
    monkeypatch.setattr(
        context_module, "_utc_now", lambda: datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
    )
    november = cli("quota", "show", "mo", "--json").json
    assert november["period"] == "2026-11"
    assert november["limits"]["storage"]["used"] == 0
    report = cli("quota", "report", "--month", "2026-10", "--json").json
    assert report["groups"][0]["key"] == "mo"


def test_crossing_80_percent_writes_an_alert(cli, tmp_path: Path) -> None:
    cli("quota", "set", "al", "--storage", "100KB")
    result = cli("upload", str(_file(tmp_path, "a.bin", 85_000)), "--as", "al")
    assert result.exit_code == 0, result
    assert "85% of the storage limit" in result.stderr
    alerts = cli("ledger", "sql", "SELECT kind, subject FROM alerts", "--json").json["rows"]
    assert {"kind": "quota", "subject": "al"} in alerts


def test_eight_processes_never_overspend(
    net: DevnetProcess, tmp_path: Path, zerog_home: Path
) -> None:
    env = {"ZEROG_DEVNET_URL": net.base_url, "ZEROG_HOME": str(zerog_home)}
    assert run_cli_process("quota", "set", "racer", "--storage", "300KB", env=env).exit_code == 0
    files = [_file(tmp_path, f"r{i}.bin", 100_000) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda f: run_cli_process(
                    "upload", str(f), "--as", "racer", "--wait", "none", env=env
                ),
                files,
            )
        )
    codes = sorted(r.exit_code for r in results)
    assert codes == [0, 0, 0, 4, 4, 4, 4, 4], [(r.exit_code, r.stderr[-300:]) for r in results]
    assert not any("database is locked" in r.stderr for r in results)
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        used = conn.execute(
            "SELECT storage_used_bytes FROM user_quotas WHERE user='racer'"
        ).fetchone()[0]
        objects = conn.execute("SELECT COUNT(*) FROM objects WHERE uploader='racer'").fetchone()[0]
        held = conn.execute("SELECT COUNT(*) FROM quota_reservations").fetchone()[0]
    assert used == 300_000 and objects == 3 and held == 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("upload", "{empty}"), 2, "empty"),
        (("upload", "{big}"), 2, "upload limit"),
        (("upload", "{small}", "--ns", "nope"), 7, "no namespace"),
        (("upload", "{small}", "--ns", "Bad_Name!"), 2, "not a namespace name"),
        (("upload", "{small}", "--max-size", "-3"), 2, ""),
        (("upload", "{small}", "--max-size", "ten"), 2, "not a size"),
        (("download", "0x1234"), 2, "not a 0G root"),
        (("download", "docs-only"), 2, "not a reference"),
        (("download", "nope/x"), 7, "no namespace"),
        (("ns", "create", "-bad"), 2, ""),
        (("ns", "create", "UPPER"), 2, "not a namespace name"),
        (("ns", "create", "q", "--quota", "lots"), 2, "not a size"),
        (("quota", "set", "u", "--tokens", "-5"), 2, ""),
        (("quota", "set", "u", "--monthly-usd", "abc"), 2, "not a USD amount"),
        (("quota", "report", "--month", "2026-13"), 2, "--month"),
    ],
)
def test_bad_input_is_refused_and_records_nothing(
    cli, tmp_path: Path, zerog_home: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    paths = {
        "{empty}": _file(tmp_path, "empty", 0),
        "{big}": _file(tmp_path, "big", 10_000_001, seed=0),
        "{small}": _file(tmp_path, "small", 10),
    }
    cli("ledger", "status")
    before = _tables(zerog_home / "ledger.db")
    result = cli(*(str(paths.get(a, a)) for a in args))
    assert result.exit_code == code, result
    assert message in result.stderr
    assert result.stderr.count("\n") <= 2 and "Traceback" not in result.stderr
    after = _tables(zerog_home / "ledger.db")
    assert {t: r for t, r in after.items() if t not in ("namespaces", "user_quotas")} == {
        t: r for t, r in before.items() if t not in ("namespaces", "user_quotas")
    }


def test_existing_output_needs_force(cli, tmp_path: Path) -> None:
    source = _file(tmp_path, "o.bin", 100)
    root = cli("upload", str(source), "--json").json["root"]
    target = tmp_path / "exists.bin"
    target.write_bytes(b"keep me")
    refused = cli("download", root, "-o", str(target))
    assert refused.exit_code == 2
    assert target.read_bytes() == b"keep me"
    assert cli("download", root, "-o", str(target), "--force").exit_code == 0
    assert target.read_bytes() == source.read_bytes()


def test_encrypted_root_alone_decrypts_with_the_key(
    cli, tmp_path: Path, zerog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    source = _file(tmp_path, "lost-ledger.bin", 5_000)
    root = cli("upload", str(source), "--encrypt", "--json").json["root"]
    monkeypatch.setenv("ZEROG_HOME", str(tmp_path / "fresh-home"))
    raw = tmp_path / "raw.bin"
    assert cli("download", root, "-o", str(raw)).exit_code == 0
    assert raw.read_bytes()[0] == 1 and len(raw.read_bytes()) == 5_017
    plain = tmp_path / "plain.bin"
    result = cli("download", root, "-o", str(plain), "--decrypt", "--json")
    assert result.exit_code == 0, result
    assert plain.read_bytes() == source.read_bytes()
    assert result.json["verified_against_ledger"] is False


def test_devnet_faults_command_changes_the_running_devnet(cli, net: DevnetProcess) -> None:
    result = cli(
        "devnet", "faults", "--data-dir", str(net.data_dir), "--corrupt-node", "1", "--json"
    )
    assert result.exit_code == 0, result
    assert result.json["corrupt_nodes"] == [1]
    cleared = cli("devnet", "faults", "--data-dir", str(net.data_dir), "--clear", "--json")
    assert cleared.json["corrupt_nodes"] == [] and cleared.json["fail_rate"] == 0
