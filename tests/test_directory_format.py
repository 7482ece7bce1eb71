"""The official 0G directory format (issue 18, item 3): codec, zerog's writer, hostile metadata.

The Go client's side of it is in tests/test_interop_go_client.py (upload-dir
read by zerog; zerog's --format 0g-dir read by download-dir and diff-dir).
Here: the codec's own refusals, a 0g-dir backup restored whole and member by
member with its modes and mtimes, and metadata objects crafted to escape the
folder they are read into, which `download --dir` must refuse leaving nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess
from tests.test_backup_folders import make_tree, tree_listing
from tests.test_verify_e2e import corrupt_on_disk
from zerog_cli.errors import IntegrityError
from zerog_cli.zerog import directory, merkle
from zerog_cli.zerog.directory import Entry

ROOT_A = "0x" + "ab" * 32
ROOT_B = "0x" + "cd" * 32


def metadata(node: dict[str, Any], version: int = 1) -> bytes:
    return directory.MAGIC + version.to_bytes(2, "big") + json.dumps(node).encode()


def folder_of(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"name": "/", "type": "directory", "entries": list(entries)}


def test_encode_writes_version_1_unless_a_file_is_split_and_decode_reads_both() -> None:
    entries = [
        Entry("a & b", "file", 10, (ROOT_A,)),
        Entry("empty", "file"),
        Entry("sub", "dir"),
        Entry("sub/link", "symlink", link="../a & b"),
    ]
    encoded = directory.encode(entries)
    assert encoded[32:34] == b"\x00\x01"
    assert b'"name":"a \\u0026 b","type":"file","hash":"' + ROOT_A.encode() in encoded
    assert b'"hash":"' + directory.ZERO_ROOT.encode() + b'"}' in encoded
    assert directory.decode(encoded) == entries

    split = [Entry("disk.img", "file", 5 << 20, (ROOT_A, ROOT_B))]
    encoded = directory.encode(split)
    assert encoded[32:34] == b"\x00\x02"
    assert directory.decode(encoded) == split


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"not a directory", "magic"),
        (metadata(folder_of(), version=3), "version 3"),
        (metadata(folder_of({"name": "..", "type": "directory"})), "not a file name"),
        (metadata(folder_of({"name": "a/b", "type": "file"})), "not a file name"),
        (metadata(folder_of({"name": "x", "type": "device"})), "unknown type"),
        (metadata(folder_of({"name": "x", "type": "file", "size": 9})), "without a root"),
        (
            metadata(folder_of({"name": "x", "type": "file", "size": 9, "hash": "0x12"})),
            "not 0G roots",
        ),
        (
            metadata(
                folder_of(
                    {"name": "x", "type": "file", "size": 1, "hash": ROOT_A},
                    {"name": "x", "type": "file", "size": 1, "hash": ROOT_B},
                )
            ),
            "appears twice",
        ),
        (metadata(folder_of({"name": "x", "type": "file", "size": -1})), "not a byte count"),
    ],
)
def test_decode_refuses_malformed_metadata(data: bytes, says: str) -> None:
    with pytest.raises(IntegrityError, match=says):
        directory.decode(data)


def test_decode_refuses_folders_nested_past_the_limit() -> None:
    node: dict[str, Any] = {"name": "x", "type": "file", "size": 1, "hash": ROOT_A}
    for _ in range(directory.MAX_DEPTH + 1):
        node = {"name": "d", "type": "directory", "entries": [node]}
    node["name"] = "/"
    with pytest.raises(IntegrityError, match="nested deeper"):
        directory.decode(metadata(node))


@pytest.mark.devnet
def test_a_0g_dir_backup_restores_whole_and_one_file_with_modes_and_mtimes(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path
) -> None:
    source = make_tree(tmp_path / "src")
    before = net.stats()["transactions"]

    made = cli("backup", "create", str(source), "--format", "0g-dir", "--label", "t", "--json")

    assert made.exit_code == 0, made
    report = made.json
    assert (report["kind"], report["files_uploaded"], report["skipped"]) == (
        "0g-dir",
        4,
        {"fifo": 1},
    )
    assert net.stats()["transactions"] == before + 5
    listed = cli("backup", "show", str(report["backup_id"]), "--files", "--json")
    assert listed.exit_code == 0, listed
    assert "db/file.sql" in [member["path"] for member in listed.json["members"]]

    restored = cli("backup", "restore", str(report["backup_id"]), "--to", str(tmp_path / "out"))
    assert restored.exit_code == 0, restored
    assert tree_listing(tmp_path / "out") == tree_listing(source)

    one = tmp_path / "file.sql"
    member = cli(
        "backup",
        "restore",
        str(report["backup_id"]),
        "--path",
        "db/file.sql",
        "-o",
        str(one),
        "--json",
    )
    assert member.exit_code == 0, member
    assert one.read_bytes() == (source / "db" / "file.sql").read_bytes()
    assert sum(node["bytes"] for node in member.json["node_stats"]) == member.json["size"]
    assert int(one.stat().st_mtime) == 1_600_000_000

    plain = cli("backup", "restore", str(report["backup_id"]), "-o", str(tmp_path / "meta"))
    assert plain.exit_code == 2, plain
    assert "--to DIR" in plain.stderr and not (tmp_path / "meta").exists()

    by_root = cli("download", report["root"], "--dir", str(tmp_path / "by-root"), "--json")
    assert by_root.exit_code == 0, by_root
    assert (tmp_path / "by-root" / "etc" / "app.conf").read_text() == "mode=strict\n"


@pytest.mark.devnet
def test_0g_dir_refuses_encryption_and_what_is_not_a_folder(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", "5a" * 32)
    source = make_tree(tmp_path / "src")
    encrypted = cli("backup", "create", str(source), "--format", "0g-dir", "--encrypt")
    assert encrypted.exit_code == 2, encrypted
    assert "unencrypted" in encrypted.stderr
    one_file = cli("backup", "create", str(source / "big.bin"), "--format", "0g-dir")
    assert one_file.exit_code == 2, one_file
    assert "give a folder" in one_file.stderr
    unknown = cli("backup", "create", str(source), "--format", "zip")
    assert unknown.exit_code == 2, unknown


@pytest.mark.devnet
@pytest.mark.parametrize(
    "hostile",
    [
        folder_of({"name": "up", "type": "symbolic", "link": "../../etc/passwd"}),
        folder_of({"name": "abs", "type": "symbolic", "link": "/etc/passwd"}),
        folder_of({"name": "..", "type": "directory"}),
    ],
    ids=["link-escape", "absolute-link", "dot-dot"],
)
def test_download_dir_refuses_hostile_metadata_and_leaves_nothing(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path, hostile: dict[str, Any]
) -> None:
    crafted = tmp_path / "crafted.meta"
    crafted.write_bytes(metadata(hostile))
    stored = cli("upload", str(crafted), "--json")
    assert stored.exit_code == 0, stored
    work = tmp_path / "work"
    work.mkdir()

    refused = cli("download", stored.json["root"], "--dir", str(work / "out"))

    assert refused.exit_code == 3, refused
    assert "refused" in refused.stderr and "Traceback" not in refused.stderr
    assert list(work.iterdir()) == []


@pytest.mark.devnet
def test_verify_of_a_0g_dir_backup_reads_every_file_and_finds_a_corrupt_one(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path
) -> None:
    """The backup's object is only the metadata: verify reads the files it names too."""
    source = make_tree(tmp_path / "src")
    made = cli("backup", "create", str(source), "--format", "0g-dir", "--json")
    assert made.exit_code == 0, made
    backup_id = str(made.json["backup_id"])

    full = cli("verify", backup_id, "--json")
    assert full.exit_code == 0, full
    item = full.json["items"][0]
    stored = sum(f.stat().st_size for f in source.rglob("*") if f.is_file() and not f.is_symlink())
    assert item["bytes_checked"] >= stored
    sampled = cli("verify", backup_id, "--read-data-subset", "1%", "--json")
    assert sampled.exit_code == 0, sampled
    assert sampled.json["items"][0]["segments_checked"] > 1

    big = merkle.tree_from_bytes((source / "big.bin").read_bytes()).root_hex
    assert corrupt_on_disk(net, big) > 0
    broken = cli("verify", backup_id)
    assert broken.exit_code == 3, broken
    assert "Traceback" not in broken.stderr
