"""Folder snapshots against a devnet: create, list, restore whole or one member, hostile archives.

The devnet counts every `zgs_downloadSegmentWithProofByTxSeq` call, so the
``--path`` tests see that only the segments covering the member were fetched.
Hostile archives are crafted here (tar members or index entries that escape)
and uploaded as backups through `snapshots.upload_snapshot`, as one could come
from the network; restore must refuse them and leave nothing behind.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess
from tests.test_verify_sampled import segment_requests
from zerog_cli.services.context import Context

pytestmark = pytest.mark.devnet

SEGMENT = 256 * 1024
HEADER = 17
ENC_KEY = "5a" * 32


def make_tree(root: Path) -> Path:
    (root / "db").mkdir(parents=True)
    (root / "etc" / "empty").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(3 * SEGMENT + 777))
    (root / "db" / "file.sql").write_bytes(os.urandom(SEGMENT + 4321))
    (root / "db" / "notes.txt").write_text("restore me\n")
    (root / "etc" / "app.conf").write_text("mode=strict\n")
    os.chmod(root / "etc" / "app.conf", 0o640)
    os.chmod(root / "db" / "notes.txt", 0o600)
    os.symlink("../db/notes.txt", root / "etc" / "notes-link")
    os.symlink("missing-target", root / "dangling")
    os.mkfifo(root / "db" / "pipe")
    os.utime(root / "db" / "file.sql", (1_600_000_000, 1_600_000_000))
    return root


def tree_listing(root: Path) -> dict[str, Any]:
    """Every entry under ``root``: kind, mode, content or link target, file mtime."""
    listing: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                listing[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                listing[key] = ("dir", stat.S_IMODE(info.st_mode))
            elif stat.S_ISREG(info.st_mode):
                listing[key] = (
                    "file",
                    stat.S_IMODE(info.st_mode),
                    path.read_bytes(),
                    int(info.st_mtime),
                )
    return listing


def snapshot(cli: Callable[..., Result], folder: Path, *extra: str) -> dict[str, Any]:
    created = cli("backup", "create", str(folder), "--label", "tree", "--json", *extra)
    assert created.exit_code == 0, created
    return dict(created.json)


def covering(offset: int, size: int) -> set[int]:
    return set(range(offset // SEGMENT, (offset + size - 1) // SEGMENT + 1))


def test_snapshot_and_full_restore_are_identical(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path
) -> None:
    source = make_tree(tmp_path / "src")
    made = snapshot(cli, source)
    assert made["kind"] == "folder"
    assert made["skipped"] == {"fifo": 1}
    assert made["name"].endswith("-src.tar")
    assert made["index"]["name"] == made["name"] + ".index.json"

    listed = cli("backup", "show", str(made["backup_id"]), "--files", "--json")
    assert listed.exit_code == 0, listed
    paths = [m["path"] for m in listed.json["members"]]
    assert paths == [
        "big.bin",
        "dangling",
        "db",
        "db/file.sql",
        "db/notes.txt",
        "etc",
        "etc/app.conf",
        "etc/empty",
        "etc/notes-link",
    ]
    assert listed.json["skipped"] == {"fifo": 1}
    link = next(m for m in listed.json["members"] if m["path"] == "etc/notes-link")
    assert (link["kind"], link["link"]) == ("symlink", "../db/notes.txt")
    human = cli("backup", "show", str(made["backup_id"]), "--files")
    assert "db/file.sql" in human.stdout

    restored = cli("backup", "restore", str(made["backup_id"]), "--to", str(tmp_path / "out"))
    assert restored.exit_code == 0, restored
    assert tree_listing(tmp_path / "out") == tree_listing(source)
    assert not (tmp_path / "out" / "db" / "pipe").exists(), "a FIFO is skipped, not restored"

    again = snapshot(cli, source)
    assert again["root"] == made["root"], "the same tree gives the same archive"

    busy = cli("backup", "restore", str(made["backup_id"]), "--to", str(tmp_path / "out"))
    assert busy.exit_code == 2, busy
    assert "not an empty folder" in busy.stderr


def test_restore_path_fetches_only_the_covering_segments(
    cli: Callable[..., Result],
    net: DevnetProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = make_tree(tmp_path / "src")
    made = snapshot(cli, source)
    members = cli("backup", "show", str(made["backup_id"]), "--files", "--json").json["members"]
    member = next(m for m in members if m["path"] == "db/file.sql")
    wanted = covering(member["offset"], member["size"])
    total = -(-made["size"] // SEGMENT)
    assert len(wanted) < total

    net.reset_stats()
    out = tmp_path / "file.sql"
    one = cli(
        "backup",
        "restore",
        str(made["backup_id"]),
        "--path",
        "db/file.sql",
        "-o",
        str(out),
        "--json",
    )
    assert one.exit_code == 0, one
    assert out.read_bytes() == (source / "db" / "file.sql").read_bytes()
    assert int(out.stat().st_mtime) == 1_600_000_000
    assert segment_requests(net) == len(wanted)
    assert one.json["bytes_fetched"] <= member["size"] + 2 * SEGMENT
    lookups = {name: n for name, n in net.stats()["methods"].items() if "FileInfo" in name}

    # One segment per batch: the member is assembled across batches, same bytes, same requests,
    # and where the archive is held is asked once for the restore, not once per batch.
    assert len(wanted) > 1
    monkeypatch.setattr("zerog_cli.services.snapshots.MEMBER_BATCH_SEGMENTS", 1)
    net.reset_stats()
    out_batched = tmp_path / "batched.sql"
    batched = cli(
        "backup", "restore", str(made["backup_id"]), "--path", "db/file.sql", "-o", str(out_batched)
    )
    assert batched.exit_code == 0, batched
    assert out_batched.read_bytes() == out.read_bytes()
    assert segment_requests(net) == len(wanted)
    methods = net.stats()["methods"]
    assert methods.get("indexer:indexer_getFileLocations") == 1, methods
    assert {name: n for name, n in methods.items() if "FileInfo" in name} == lookups

    missing = cli("backup", "restore", str(made["backup_id"]), "--path", "db/nope.sql")
    assert missing.exit_code == 7, missing
    folder = cli("backup", "restore", str(made["backup_id"]), "--path", "db")
    assert folder.exit_code == 2, folder


def test_encrypted_snapshot_restores_one_member_and_the_tree(
    cli: Callable[..., Result],
    net: DevnetProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    source = make_tree(tmp_path / "src")
    made = snapshot(cli, source, "--encrypt")
    assert made["encrypted"]
    members = cli("backup", "show", str(made["backup_id"]), "--files", "--json").json["members"]
    member = next(m for m in members if m["path"] == "db/file.sql")

    net.reset_stats()
    out = tmp_path / "file.sql"
    one = cli("backup", "restore", str(made["backup_id"]), "--path", "db/file.sql", "-o", str(out))
    assert one.exit_code == 0, one
    assert out.read_bytes() == (source / "db" / "file.sql").read_bytes()
    # Plaintext offset p is stored at 17 + p; segment 0 is read for the header's nonce.
    assert segment_requests(net) == len(covering(HEADER + member["offset"], member["size"]) | {0})
    monkeypatch.setattr("zerog_cli.services.snapshots.MEMBER_BATCH_SEGMENTS", 1)
    batched = cli(
        "backup",
        "restore",
        str(made["backup_id"]),
        "--path",
        "db/file.sql",
        "-o",
        str(out),
        "--force",
    )
    assert batched.exit_code == 0, batched
    assert out.read_bytes() == (source / "db" / "file.sql").read_bytes()

    restored = cli("backup", "restore", str(made["backup_id"]), "--to", str(tmp_path / "out"))
    assert restored.exit_code == 0, restored
    assert (tmp_path / "out" / "big.bin").read_bytes() == (source / "big.bin").read_bytes()


# -- hostile archives ----------------------------------------------------------------------


def _tar(entries: list[tuple[str, str, bytes | str]]) -> tuple[bytes, list[dict[str, Any]]]:
    """A pax tar of (path, kind, data or link target) and the matching honest index."""
    import hashlib

    buffer = io.BytesIO()
    members = []
    with tarfile.TarFile(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, payload in entries:
            info = tarfile.TarInfo(path)
            info.mtime = 1_600_000_000
            entry: dict[str, Any] = {
                "path": path,
                "kind": kind,
                "size": 0,
                "mode": 0o644,
                "mtime": info.mtime,
                "sha256": None,
                "offset": None,
                "link": None,
            }
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                entry.update(
                    size=len(payload),
                    sha256=hashlib.sha256(payload).hexdigest(),
                    offset=tar.offset - -(-len(payload) // 512) * 512,
                )
            elif kind == "symlink":
                assert isinstance(payload, str)
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                tar.addfile(info)
                entry["link"] = payload
            else:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            members.append(entry)
    return buffer.getvalue(), members


def upload_hostile(tmp_path: Path, archive: bytes, members: list[dict[str, Any]]) -> int:
    """Upload ``archive`` and an index listing ``members`` as a folder backup; its id."""
    from zerog_cli.services import snapshots

    archive_path = tmp_path / "hostile.tar"
    archive_path.write_bytes(archive)
    document = {"schema": "zerog.snapshot-index/1", "members": members, "skipped": {}}
    context = Context()
    try:
        report = snapshots.upload_snapshot(
            context,
            archive_path,
            lambda: document,
            source=tmp_path,
            namespace=None,
            label="hostile",
            encrypt=False,
            progress=None,
            name=f"hostile/{tmp_path.name}-{len(archive)}.tar",
        )
    finally:
        context.close()
    return report.backup_id


HOSTILE = [
    ("path escape", "file", "../evil.txt", b"x"),
    ("absolute path", "file", "/tmp/evil.txt", b"x"),
    ("dot-dot inside", "file", "sub/../../evil.txt", b"x"),
    ("link escape", "symlink", "link", "../../outside"),
    ("absolute link", "symlink", "link", "/etc/passwd"),
]


@pytest.mark.parametrize("where", ["archive", "index"])
@pytest.mark.parametrize(("what", "kind", "path", "payload"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_restore_refuses_hostile_archives(
    cli: Callable[..., Result],
    net: DevnetProcess,
    tmp_path: Path,
    where: str,
    what: str,
    kind: str,
    path: str,
    payload: bytes | str,
) -> None:
    """The hostile member is in the tar (with an innocent index entry) or in the index."""
    hostile = (path, kind, payload)
    innocent = ("innocent", kind, b"x" if kind == "file" else "safe.txt")
    archive, _ = _tar(
        [("safe.txt", "file", b"fine\n"), hostile if where == "archive" else innocent]
    )
    _, lying = _tar([("safe.txt", "file", b"fine\n"), innocent if where == "archive" else hostile])
    backup_id = upload_hostile(tmp_path, archive, lying)
    scratch = tmp_path / "restore"
    destination = scratch / "here"
    refused = cli("backup", "restore", str(backup_id), "--to", str(destination))
    assert refused.exit_code == 3, (what, where, refused)
    assert "refused" in refused.stderr or "differs from the index" in refused.stderr, refused
    assert not destination.exists()
    assert not scratch.exists() or not list(scratch.iterdir()), "no half-restored tree"
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()
    if where == "index" and kind == "file":
        one = cli("backup", "restore", str(backup_id), "--path", path, "-o", str(tmp_path / "one"))
        assert one.exit_code in (3, 7), one
        assert not (tmp_path / "one").exists()


def test_restore_refuses_an_archive_that_differs_from_its_index(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path
) -> None:
    archive, members = _tar([("a.txt", "file", b"one\n"), ("b.txt", "file", b"two\n")])
    members[1]["sha256"] = "0" * 64
    backup_id = upload_hostile(tmp_path, archive, members)
    refused = cli("backup", "restore", str(backup_id), "--to", str(tmp_path / "out"))
    assert refused.exit_code == 3, refused
    assert "SHA-256" in refused.stderr
    assert not (tmp_path / "out").exists()
    one = cli("backup", "restore", str(backup_id), "--path", "b.txt", "-o", str(tmp_path / "b"))
    assert one.exit_code == 3, one
    assert not (tmp_path / "b").exists()


def test_a_snapshot_whose_tar_producer_fails_stores_nothing(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path, zerog_home: Path
) -> None:
    """The tar is written by a producer process: its failure refuses the input (exit 10)."""
    import sqlite3

    source = make_tree(tmp_path / "src")
    (source / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name\n")
    failed = cli("backup", "create", str(source), "--label", "bad")
    assert failed.exit_code == 10, failed
    assert "nothing was stored" in failed.stderr
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM storage_backups").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM objects").fetchone() == (0,)


def test_the_archive_producer_fails_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "zerog_cli.infra.archive",
            str(tmp_path / "gone"),
            str(tmp_path / "i"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("zerog: ") and "gone" in done.stderr
    assert done.stderr.count("\n") == 1, "one line, no traceback"
    assert not (tmp_path / "i").exists()


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_snapshot_restores_from_the_network_alone(
    cli: Callable[..., Result],
    net: DevnetProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    encrypted: bool,
) -> None:
    """Another host (a ledger that never saw the backup) has only the archive's root and
    the index object's root: the index stored beside the archive lists the members."""
    flags = ["--encrypt"] if encrypted else []
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    source = make_tree(tmp_path / "src")
    made = snapshot(cli, source, *flags)
    archive, index = made["root"], made["index"]["root"]
    monkeypatch.setenv("ZEROG_HOME", str(tmp_path / "another-host"))
    decrypt = ["--decrypt"] if encrypted else []

    tree = cli("download", archive, "--index", index, "--dir", str(tmp_path / "out"), *decrypt)

    assert tree.exit_code == 0, tree
    assert tree_listing(tmp_path / "out") == tree_listing(source)
    out = tmp_path / "file.sql"
    one = cli(
        "download",
        archive,
        "--index",
        index,
        "--path",
        "db/file.sql",
        "-o",
        str(out),
        "--json",
        *decrypt,
    )
    assert one.exit_code == 0, one
    assert out.read_bytes() == (source / "db" / "file.sql").read_bytes()
    assert int(out.stat().st_mtime) == 1_600_000_000
    header_segment = SEGMENT if encrypted else 0
    assert one.json["bytes_fetched"] <= one.json["size"] + 2 * SEGMENT + header_segment
    assert one.json["bytes_fetched"] < made["size"]

    swapped = cli("download", index, "--index", archive, "--dir", str(tmp_path / "no"), *decrypt)
    assert swapped.exit_code == 3, swapped
    assert "not a snapshot index" in swapped.stderr
    assert not (tmp_path / "no").exists()
    if encrypted:
        unreadable = cli("download", archive, "--index", index, "--dir", str(tmp_path / "no"))
        assert unreadable.exit_code == 3, unreadable
        assert "--decrypt" in unreadable.stderr
