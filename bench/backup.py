"""Streamed backups, folder snapshots, one-member restores and sampled verification.

First, `cat FILE | zerog backup create -` (stdin spooled to a private file
while hashed) against `zerog backup create FILE` of the same SIZE bytes, each
on a fresh devnet of its own so neither takes the dedupe path: throughput
ratio (goal: the stream at least 0.8x the file) and the peak RSS of each (goal:
under 150 MB). Then, on one devnet, a folder of --small-files small files
(1-4 KB) and three large ones, SIZE bytes in all, plus a 1 MB member
``zz/member.sql`` at the end of the archive. Then, as child processes:

- `zerog backup create DIR` and `zerog backup restore ID --to OUT` against
  `tar cf - DIR | zerog backup create -` and `zerog backup restore ID -o - |
  tar xf -` (goal: the snapshot at most 1.2x the tar pipe, each way);
- `zerog backup restore ID --path zz/member.sql`: bytes fetched from the nodes,
  counted as segments served by the devnet (goal: at most 1.1 MB plus one
  256 KiB segment on each side);
- `zerog verify ID --read-data-subset 2%` against a full `zerog verify ID`:
  bytes read (goal: at most 3 % of the archive) and time.

    python bench/backup.py [--size 1GiB] [--small-files 10000]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from harness import MB, bench_devnet, measured, write_random

from zerog_cli.infra.units import parse_size

SEGMENT = 256 * 1024
MEMBER = 1_000_000
SEGMENT_CALL = ":zgs_downloadSegmentWithProofByTxSeq"


def make_folder(root: Path, size: int, small_files: int) -> None:
    small_total = 0
    for index in range(small_files):
        length = 1000 + (index * 7919) % 3000
        path = root / "small" / f"{index // 1000:02d}" / f"f{index:05d}.txt"
        write_random(path, length)
        small_total += length
    large = max(0, size - small_total - MEMBER)
    for index in range(3):
        write_random(root / "large" / f"part{index}.bin", large // 3)
    write_random(root / "zz" / "member.sql", MEMBER)


def run(env: dict[str, str], command: str) -> tuple[float, str]:
    """Wall seconds and stdout of a shell command (for the pipes)."""
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], env=env, capture_output=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command} failed: {done.stderr.decode()[-800:]}")
    return elapsed, done.stdout.decode()


def zerog(env: dict[str, str], *args: str) -> tuple[float, dict]:
    quoted = " ".join(f"'{arg}'" for arg in args)
    elapsed, out = run(env, f"'{sys.executable}' -m zerog_cli {quoted} --json -q")
    return elapsed, json.loads(out) if out.strip() else {}


def segments_served(url: str) -> int:
    methods = requests.get(f"{url}/admin/stats", timeout=10).json()["methods"]
    return sum(int(n) for name, n in methods.items() if name.endswith(SEGMENT_CALL))


def reset_stats(url: str) -> None:
    requests.post(f"{url}/admin/stats/reset", timeout=10)


def measured_backup(work: Path, name: str, script: str) -> tuple[float, int, dict[str, Any]]:
    """Wall seconds, peak RSS (KiB) and report of one backup, on a devnet of its own."""
    with bench_devnet(work, f"devnet-{name}") as (_, env):
        elapsed, peak, output = measured(["sh", "-c", script], {**env, "ZEROG_TMP_DIR": str(work)})
    return elapsed, peak, json.loads(output)


def stream_against_file(size: int, size_text: str) -> None:
    """The first figure: a streamed backup against a file backup of the same bytes."""
    command = f"'{sys.executable}' -m zerog_cli backup create"
    with tempfile.TemporaryDirectory(prefix="zerog-bench-") as scratch:
        work = Path(scratch)
        source = work / "dump.bin"
        write_random(source, size)
        file_s, file_rss, file_report = measured_backup(
            work, "file", f"{command} '{source}' --label db --json -q"
        )
        stream_s, stream_rss, stream_report = measured_backup(
            work, "stream", f"cat '{source}' | {command} - --label db --name dump.bin --json -q"
        )
        leftovers = list(work.glob("zerog-spool-*"))
    if file_report["root"] != stream_report["root"]:
        raise SystemExit("the two backups have different roots: not the same bytes")
    mb = size / MB
    print(f"backup of {size} bytes (--size {size_text}), a fresh devnet each, 2 storage nodes")
    print(
        f"  file      backup create FILE           {file_s:7.2f} s {mb / file_s:6.1f} MB/s"
        f"  peak RSS {file_rss / 1024:6.1f} MiB"
    )
    print(
        f"  stream    cat FILE | backup create -   {stream_s:7.2f} s {mb / stream_s:6.1f} MB/s"
        f"  peak RSS {stream_rss / 1024:6.1f} MiB"
    )
    print(
        f"  ratio     the stream at {file_s / stream_s:.2f}x the file's throughput (goal >= 0.8);"
        f" peak RSS goal < 150 MB; spool files left: {len(leftovers)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--small-files", type=int, default=10_000)
    args = parser.parse_args()
    size = parse_size(args.size)
    stream_against_file(size, args.size)

    with tempfile.TemporaryDirectory(prefix="zerog-bench-") as scratch:
        work = Path(scratch)
        with bench_devnet(work) as (info, env):
            source = work / "tree"
            make_folder(source, size, args.small_files)

            snap_time, snap = zerog(env, "backup", "create", str(source), "--label", "tree")
            pipe_time, piped = run(
                env,
                f"tar cf - -C '{work}' tree | '{sys.executable}' -m zerog_cli backup create - "
                "--label tarpipe --name tree.tar --json -q",
            )
            piped_id = json.loads(piped)["backup_id"]

            restore_time, _ = zerog(
                env, "backup", "restore", str(snap["backup_id"]), "--to", str(work / "out")
            )
            (work / "out-tar").mkdir()
            untar_time, _ = run(
                env,
                f"'{sys.executable}' -m zerog_cli backup restore {piped_id} -o - -q"
                f" | tar xf - -C '{work / 'out-tar'}'",
            )
            same = filecmp.cmp(
                work / "out" / "zz" / "member.sql", source / "zz" / "member.sql", shallow=False
            )
            shutil.rmtree(work / "out")
            shutil.rmtree(work / "out-tar")

            reset_stats(info.url)
            _, one = zerog(
                env,
                "backup",
                "restore",
                str(snap["backup_id"]),
                "--path",
                "zz/member.sql",
                "-o",
                str(work / "member.sql"),
            )
            member_segments = segments_served(info.url)
            same = same and filecmp.cmp(
                work / "member.sql", source / "zz" / "member.sql", shallow=False
            )

            reset_stats(info.url)
            sampled_time, sampled = zerog(
                env, "verify", str(snap["backup_id"]), "--read-data-subset", "2%"
            )
            sampled_segments = segments_served(info.url)
            full_time, full = zerog(env, "verify", str(snap["backup_id"]))

    archive = snap["size"]
    print(
        f"folder of {args.small_files} small files + 3 large + a 1 MB member: "
        f"{archive} bytes archived (--size {args.size}), one devnet, 2 storage nodes"
    )
    print(
        f"  snapshot  backup create DIR {snap_time:7.2f} s   tar cf - | backup create - "
        f"{pipe_time:7.2f} s   ratio {snap_time / pipe_time:.2f}x (goal <= 1.2x)"
    )
    print(
        f"  restore   restore --to      {restore_time:7.2f} s   restore -o - | tar xf -   "
        f"{untar_time:7.2f} s   ratio {restore_time / untar_time:.2f}x (goal <= 1.2x)"
    )
    fetched = member_segments * SEGMENT
    print(
        f"  --path    1 MB member: {member_segments} segments served = {fetched / MB:.2f} MB "
        f"from nodes ({one['bytes_fetched'] / MB:.2f} MB after cutting to the file's end); "
        f"goal <= {(1.1 * MB + 2 * SEGMENT) / MB:.2f} MB"
    )
    sampled_bytes = sampled["bytes_checked"]
    print(
        f"  verify    --read-data-subset 2%: {sampled_segments} segments, "
        f"{sampled_bytes / MB:.2f} MB = {100 * sampled_bytes / archive:.2f} % of the archive "
        f"(goal <= 3 %) in {sampled_time:.2f} s; full verify {full['bytes_checked'] / MB:.1f} MB "
        f"in {full_time:.2f} s ({full_time / sampled_time:.1f}x longer)"
    )
    print(f"  restored bytes identical: {same}")


if __name__ == "__main__":
    main()
