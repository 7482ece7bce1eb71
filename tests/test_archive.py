"""The snapshot tar stream: written without ``tarfile``'s per-member machinery, byte for byte
what ``tarfile`` writes in PAX_FORMAT (so snapshots keep their roots, and ``tar`` reads them)."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

from zerog_cli.infra.archive import walk_folder, write_snapshot


def edge_tree(root: Path) -> Path:
    """Names and targets on both sides of the 100-byte ustar fields, UTF-8 names (pax
    records), sizes on and off the 512-byte blocks, an empty file, a folder, a FIFO."""
    deep = root / ("d" * 60) / ("e" * 50)
    deep.mkdir(parents=True)
    (root / "dír").mkdir()
    (root / ("a" * 100)).write_text("exactly the name field")
    (root / ("b" * 101)).write_text("one past it")
    (root / "dír" / "ünï.txt").write_bytes(os.urandom(1000))
    (root / "empty").write_bytes(b"")
    (root / "block").write_bytes(os.urandom(512))
    (root / "big").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    (deep / "f").write_text("deep")
    os.symlink("t" * 100, root / "link-100")
    os.symlink("t" * 101, root / "link-101")
    os.symlink("dír/ünï.txt", root / "uni-link")
    os.mkfifo(root / "pipe")
    os.utime(root / "block", (1_600_000_000, 1_600_000_000))
    return root


def reference_tar(root: Path) -> bytes:
    """The stream as ``tarfile`` writes it, member by member (how snapshots were written)."""
    out = io.BytesIO()
    with tarfile.TarFile(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, full, info in walk_folder(root):
            member = tarfile.TarInfo(path)
            member.mode = stat.S_IMODE(info.st_mode)
            member.mtime = int(info.st_mtime)
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            if stat.S_ISDIR(info.st_mode):
                member.type = tarfile.DIRTYPE
                tar.addfile(member)
            elif stat.S_ISLNK(info.st_mode):
                member.type = tarfile.SYMTYPE
                member.linkname = os.readlink(full)
                tar.addfile(member)
            elif stat.S_ISREG(info.st_mode):
                member.size = info.st_size
                with open(full, "rb") as handle:
                    tar.addfile(member, handle)
    return out.getvalue()


def test_the_snapshot_stream_is_what_tarfile_writes_and_tar_reads(tmp_path: Path) -> None:
    root = edge_tree(tmp_path / "tree")
    out = io.BytesIO()

    snapshot = write_snapshot(root, out)

    assert out.getvalue() == reference_tar(root)
    assert snapshot.skipped == {"fifo": 1}
    stream = out.getvalue()
    for member in snapshot.members:
        if member.kind == "file":
            assert member.offset is not None
            data = stream[member.offset : member.offset + member.size]
            assert data == (root / member.path).read_bytes()
    (tmp_path / "tar-tf").write_bytes(stream)
    listed = subprocess.run(
        ["tar", "tf", str(tmp_path / "tar-tf")], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [name.rstrip("/") for name in listed] == [m.path for m in snapshot.members]
