"""Files past ``fragment_size`` are split as the official clients split them (issue 18, item 3).

A small ``fragment_size`` (512 KiB, two segments) keeps these end-to-end runs
fast; the cut, the ledger, the money and the checks are the same at 4 GiB
(tests/reliability/test_fragments_soak.py runs that under ``make soak``).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess, upload_killed_after_paying
from tests.test_verify_e2e import corrupt_on_disk
from zerog_cli.zerog import merkle

pytestmark = pytest.mark.devnet

FRAGMENT = 512 * 1024
ENC_KEY = "5a" * 32


def _rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "ledger.db") as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def small_fragments(cli: Callable[..., Result]) -> Callable[..., Result]:
    set_size = cli("config", "set", "fragment_size", "512KiB")
    assert set_size.exit_code == 0, set_size
    return cli


def test_a_file_past_the_fragment_size_is_stored_as_fragments_and_read_back(
    small_fragments: Callable[..., Result], net: DevnetProcess, tmp_path: Path, zerog_home: Path
) -> None:
    cli = small_fragments
    data = os.urandom(3 * FRAGMENT + 1000)
    source = tmp_path / "dump.bin"
    source.write_bytes(data)
    transactions = net.stats()["transactions"]

    made = cli("upload", str(source), "--name", "dump.bin", "--json")

    assert made.exit_code == 0, made
    report = made.json
    assert [f["size"] for f in report["fragments"]] == [FRAGMENT] * 3 + [1000]
    assert report["roots"] == [f["root"] for f in report["fragments"]]
    assert len(set(report["roots"])) == 4
    assert report["root"] == report["roots"][0]
    assert report["sha256"] == hashlib.sha256(data).hexdigest()
    assert net.stats()["transactions"] == transactions + 4, "one Flow submission per fragment"
    paid = sum(int(fragment["cost"]["neuron"]) for fragment in report["fragments"])
    assert report["cost"]["neuron"] == str(paid)
    # Priced once for the whole at the default 100,000 micro-USD per GB, not per fragment.
    assert report["cost"]["usd_micro"] == -(-len(data) * 100_000 // 1_000_000_000) == 158
    stored = _rows(
        zerog_home, "SELECT position, root, offset, size FROM object_fragments ORDER BY position"
    )
    sizes = [FRAGMENT] * 3 + [1000]
    assert stored == [
        (index, report["roots"][index], index * FRAGMENT, sizes[index]) for index in range(4)
    ]
    costs = _rows(zerog_home, "SELECT quantity, neuron, reference FROM cost_tracking")
    assert costs == [(len(data), report["cost"]["neuron"], report["roots"][0])]
    assert _rows(zerog_home, "SELECT storage_used_bytes FROM user_quotas") == [(len(data),)]
    assert _rows(zerog_home, "SELECT COUNT(*) FROM pending_payments") == [(0,)]

    fetched = cli("download", "default/dump.bin", "-o", str(tmp_path / "back.bin"), "--json")
    assert fetched.exit_code == 0, fetched
    assert (tmp_path / "back.bin").read_bytes() == data
    assert fetched.json["segments"] == 3 * 2 + 1
    by_roots = cli("download", ",".join(report["roots"]), "-o", str(tmp_path / "r.bin"), "--json")
    assert by_roots.exit_code == 0, by_roots
    assert by_roots.json["verified_against_ledger"] is True
    assert (tmp_path / "r.bin").read_bytes() == data
    twice = cli("download", f"{report['roots'][0]},{report['roots'][0]}", "-o", "x.bin")
    assert twice.exit_code == 2, twice

    again = cli("upload", str(source), "--name", "dump-again.bin", "--json")
    assert again.exit_code == 0, again
    assert again.json["roots"] == report["roots"]
    assert again.json["cost"]["neuron"] == "0", "every fragment is already on the network"
    assert net.stats()["transactions"] == transactions + 4


def test_an_exact_multiple_makes_full_fragments_and_one_fragment_is_no_split(
    small_fragments: Callable[..., Result], tmp_path: Path, zerog_home: Path
) -> None:
    cli = small_fragments
    exact = tmp_path / "exact.bin"
    exact.write_bytes(os.urandom(2 * FRAGMENT))
    made = cli("upload", str(exact), "--json")
    assert made.exit_code == 0, made
    assert [f["size"] for f in made.json["fragments"]] == [FRAGMENT, FRAGMENT]

    whole = tmp_path / "whole.bin"
    whole.write_bytes(os.urandom(FRAGMENT))
    single = cli("upload", str(whole), "--json")
    assert single.exit_code == 0, single
    assert single.json["fragments"] is None, "a file of exactly fragment_size is one submission"
    assert _rows(zerog_home, "SELECT COUNT(*) FROM object_fragments") == [(2,)]

    back = cli("download", "default/exact.bin", "-o", str(tmp_path / "exact.out"))
    assert back.exit_code == 0, back
    assert (tmp_path / "exact.out").read_bytes() == exact.read_bytes()

    assert cli("ns", "create", "scratch").exit_code == 0
    assert cli("upload", str(exact), "--ns", "scratch").exit_code == 0
    assert _rows(zerog_home, "SELECT COUNT(*) FROM object_fragments") == [(4,)]
    removed = cli("ns", "rm", "scratch", "--force")
    assert removed.exit_code == 0, removed
    assert _rows(zerog_home, "SELECT COUNT(*) FROM object_fragments") == [(2,)]


def test_an_encrypted_backup_is_split_after_encryption_and_restored(
    small_fragments: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = small_fragments
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    data = os.urandom(2 * FRAGMENT + 5)
    source = tmp_path / "secret.bin"
    source.write_bytes(data)

    made = cli("backup", "create", str(source), "--encrypt", "--json")

    assert made.exit_code == 0, made
    # The 17-byte header goes first, as the official clients encrypt before they split.
    assert [f["size"] for f in made.json["fragments"]] == [FRAGMENT, FRAGMENT, 5 + 17]
    restored = tmp_path / "restored.bin"
    back = cli("backup", "restore", str(made.json["backup_id"]), "-o", str(restored))
    assert back.exit_code == 0, back
    assert restored.read_bytes() == data
    checked = cli("verify", "--json")
    assert checked.exit_code == 0, checked
    assert checked.json["counts"]["ok"] == 1


def test_verify_finds_a_corrupt_fragment_and_restore_refuses_it(
    small_fragments: Callable[..., Result], net: DevnetProcess, tmp_path: Path
) -> None:
    cli = small_fragments
    source = tmp_path / "rot.bin"
    source.write_bytes(os.urandom(3 * FRAGMENT + 7))
    made = cli("backup", "create", str(source), "--json")
    assert made.exit_code == 0, made
    assert cli("verify").exit_code == 0
    sampled = cli("verify", "--read-data-subset", "1/2", "--json")
    assert sampled.exit_code == 0, sampled

    assert corrupt_on_disk(net, made.json["roots"][2]) >= 1
    bad = cli("verify", "--json")

    assert bad.exit_code == 3, bad
    assert bad.json["counts"]["mismatch"] == 1
    restored = tmp_path / "restored.bin"
    refused = cli("backup", "restore", str(made.json["backup_id"]), "-o", str(restored))
    assert refused.exit_code == 3, refused
    assert not restored.exists()


def test_killed_between_fragments_the_rerun_pays_only_the_missing_ones(
    small_fragments: Callable[..., Result], net: DevnetProcess, tmp_path: Path, zerog_home: Path
) -> None:
    cli = small_fragments
    data = os.urandom(3 * FRAGMENT + 300)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    assert cli("ledger", "status").exit_code == 0
    transactions = net.stats()["transactions"]
    journaled = upload_killed_after_paying(
        net, zerog_home, source, lambda sql: _rows(zerog_home, sql)
    )
    paid_before = net.stats()["transactions"] - transactions
    assert 1 <= paid_before < 4, "killed between fragments"
    assert _rows(zerog_home, "SELECT COUNT(*) FROM objects") == [(0,)]

    rerun = cli("upload", str(source), "--json")

    assert rerun.exit_code == 0, rerun
    assert net.stats()["transactions"] == transactions + 4, "each fragment paid exactly once"
    fragments = rerun.json["fragments"]
    assert fragments[0]["root"] == journaled[0][0]
    assert fragments[0]["recovered_payment"] is not None
    assert sum(1 for f in fragments if f["cost"]["neuron"] != "0") == 4 - paid_before
    assert _rows(zerog_home, "SELECT COUNT(*) FROM pending_payments") == [(0,)]
    assert _rows(zerog_home, "SELECT COUNT(*) FROM object_fragments") == [(4,)]
    costs = _rows(zerog_home, "SELECT quantity FROM cost_tracking")
    assert sum(row[0] for row in costs) == len(data)
    back = cli("download", "default/big.bin", "-o", str(tmp_path / "big.out"))
    assert back.exit_code == 0, back
    assert (tmp_path / "big.out").read_bytes() == data


def test_fragment_size_must_be_a_power_of_two_of_at_least_a_chunk(
    zerog: Callable[..., Result], zerog_home: Path
) -> None:
    for bad in ("3MiB", "128"):
        refused = zerog("config", "set", "fragment_size", bad)
        assert refused.exit_code == 2, refused
        assert "power of two" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_a_stream_past_the_fragment_size_is_split_after_spooling(
    small_fragments: Callable[..., Result],
    cli_process: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    zerog_home: Path,
) -> None:
    cli = small_fragments
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    data = os.urandom(2 * FRAGMENT + 999)

    piped = cli_process(
        "backup", "create", "-", "--name", "piped.dump", "--encrypt", "--json", stdin=data
    )

    assert piped.exit_code == 0, piped
    assert [f["size"] for f in piped.json["fragments"]] == [FRAGMENT, FRAGMENT, 999 + 17]
    restored = tmp_path / "piped.out"
    back = cli("backup", "restore", str(piped.json["backup_id"]), "-o", str(restored))
    assert back.exit_code == 0, back
    assert restored.read_bytes() == data


def test_a_stream_past_the_fragment_size_is_hashed_once_in_the_spooling_pass(
    small_fragments: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    zerog_home: Path,
) -> None:
    """The spool was read back and hashed a second time to cut it into fragments;
    now the fragments' trees come from the one pass that spools the stream."""
    cli = small_fragments
    hashed: list[int] = []
    account = merkle.TreeBuilder._account

    def counting(builder: merkle.TreeBuilder, data: Any) -> memoryview:
        view = account(builder, data)
        hashed.append(len(view))
        return view

    monkeypatch.setattr(merkle.TreeBuilder, "_account", counting)
    text = os.urandom((3 * FRAGMENT + 5000) // 2).hex()

    piped = cli("backup", "create", "-", "--name", "once.dump", "--json", stdin=text)

    assert piped.exit_code == 0, piped
    data = text.encode()
    assert sum(hashed) == len(data)
    pieces = [data[i : i + FRAGMENT] for i in range(0, len(data), FRAGMENT)]
    assert piped.json["roots"] == [merkle.tree_from_bytes(piece).root_hex for piece in pieces]
    restored = tmp_path / "once.out"
    back = cli("backup", "restore", str(piped.json["backup_id"]), "-o", str(restored))
    assert back.exit_code == 0, back
    assert restored.read_bytes() == data


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_restore_path_reads_a_member_from_the_fragments_that_hold_it(
    small_fragments: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    encrypted: bool,
) -> None:
    cli = small_fragments
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    folder = tmp_path / "site"
    folder.mkdir()
    big = os.urandom(FRAGMENT + FRAGMENT // 2)
    (folder / "a-big.bin").write_bytes(big)
    (folder / "z-last.txt").write_bytes(b"the member in the last fragment\n" * 100)
    flags = ["--encrypt"] if encrypted else []
    made = cli("backup", "create", str(folder), *flags, "--json")
    assert made.exit_code == 0, made
    assert len(made.json["fragments"]) == 2, "a-big.bin spans both; z-last.txt is in the second"

    for member, expected in (
        ("a-big.bin", big),
        ("z-last.txt", b"the member in the last fragment\n" * 100),
    ):
        out = tmp_path / f"out-{member}"
        one = cli(
            "backup", "restore", str(made.json["backup_id"]), "--path", member, "-o", str(out)
        )
        assert one.exit_code == 0, one
        assert out.read_bytes() == expected
    whole = cli("backup", "restore", str(made.json["backup_id"]), "--to", str(tmp_path / "back"))
    assert whole.exit_code == 0, whole
    assert (tmp_path / "back" / "a-big.bin").read_bytes() == big
