"""Upload + download throughput of zerog against the official TS SDK, on one devnet.

Starts a devnet on 127.0.0.1, then in the same run:

- zerog: `zerog upload` and `zerog download` of a SIZE file as child processes
  (each download checks every segment proof and the SHA-256);
- the official TS SDK 1.2.8: `Indexer.upload` and `Indexer.download` of another
  file of the same size (fresh bytes, so neither side takes the dedupe path);
- zerog's peak RSS while uploading files of each --rss-sizes size, to show it
  is flat in the file size.

Prints MB/s and the zerog/TS ratios, each zerog's speed divided by the SDK's
(the SDK timed by its own in-process timers, zerog as whole CLI processes):
goals download at least 1.5x (the SDK checks no proof; zerog checks every
one, the root, the size and the SHA-256), end to end at least 4x; RSS under
120 MB whatever the size. ``--json`` prints one document instead, with
``download_ratio``, ``upload_ratio`` and ``end_to_end_ratio``, the timings and
the load average seen (the machine may be shared: the figures are noisy, so each
side runs ``--runs`` times and the medians are compared). ``download_in_process_ratio``
sets the SDK's timer against zerog's own (the download's ``--json`` ``seconds``,
start-up and exit left out on both sides), to tell the engine from the process.

    python bench/transfer.py [--size 64MiB] [--runs 3] [--rss-sizes 256MiB,1GiB] [--json]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness import MB, REPO, bench_devnet, measured, write_random

from tools.ts_sdk import ensure_installed, node_env
from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY
from zerog_cli.infra.units import parse_size

if TYPE_CHECKING:
    from zerog_cli.devnet.control import DevnetInfo


def zerog(env: dict[str, str], *args: str) -> tuple[float, int, str]:
    return measured([sys.executable, "-m", "zerog_cli", *args], env)


def zerog_round_trip(
    env: dict[str, str], work: Path, size: int, run: int
) -> tuple[float, float, float]:
    """Upload then download fresh bytes as CLI processes: (upload s, download s, download's
    own timer s, i.e. the engine without the process's start-up and exit)."""
    ours = write_random(work / f"zerog-{run}.bin", size)
    up, _, report = zerog(env, "upload", str(ours), "--max-size", "100GB", "--json", "-q")
    root = json.loads(report)["root"]
    out = work / "zerog.out"
    down, _, fetched = zerog(env, "download", root, "-o", str(out), "--json", "-q")
    assert filecmp.cmp(out, ours, shallow=False)
    out.unlink()
    ours.unlink()
    return up, down, json.loads(fetched)["seconds"]


def sdk_round_trip(
    info: DevnetInfo, node_modules: Path, work: Path, size: int
) -> tuple[float, float, float]:
    """The official TS SDK's upload and download of other fresh bytes, on its own
    in-process timers, and the node process's wall time."""
    theirs = write_random(work / "sdk.bin", size)
    config = {
        "rpc": info.rpc_url,
        "indexer": info.indexer_url,
        "key": DEV_ACCOUNT_KEY,
        "input": str(theirs),
        "output": str(work / "sdk.out"),
    }
    script = REPO / "tests" / "interop" / "sdk_interop.cjs"
    started = time.perf_counter()
    completed = subprocess.run(
        ["node", str(script), "plain", json.dumps(config)],
        env=node_env(node_modules),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"TS SDK failed: {completed.stdout[-500:]} {completed.stderr[-500:]}")
    sdk = json.loads(completed.stdout.strip().splitlines()[-1])
    (work / "sdk.out").unlink(missing_ok=True)
    return sdk["uploadMs"] / 1000, sdk["downloadMs"] / 1000, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", default="64MiB")
    parser.add_argument("--rss-sizes", default="256MiB,1GiB")
    parser.add_argument("--runs", type=int, default=3, help="rounds per side; medians are printed")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    size = parse_size(args.size)
    rss_sizes = [parse_size(s) for s in args.rss_sizes.split(",") if s]

    node_modules = ensure_installed()
    zerog_runs: list[tuple[float, float, float]] = []
    sdk_runs: list[tuple[float, float, float]] = []
    rss = []
    with tempfile.TemporaryDirectory(prefix="zerog-bench-") as scratch:
        work = Path(scratch)
        with bench_devnet(work) as (info, env):
            for run in range(args.runs):
                zerog_runs.append(zerog_round_trip(env, work, size, run))
                sdk_runs.append(sdk_round_trip(info, node_modules, work, size))
            for rss_size in rss_sizes:
                path = write_random(work / f"rss-{rss_size}.bin", rss_size)
                _, peak, _ = zerog(env, "upload", str(path), "--max-size", "100GB", "-q")
                rss.append((rss_size, peak))
                path.unlink()

    up, down, engine = (statistics.median(column) for column in zip(*zerog_runs, strict=True))
    sdk_up, sdk_down, sdk_wall = (
        statistics.median(column) for column in zip(*sdk_runs, strict=True)
    )
    mb = size / MB
    ours_total, sdk_total = up + down, sdk_up + sdk_down
    if args.json:
        document = {
            "schema": "zerog.bench.transfer/1",
            "size": size,
            "runs": args.runs,
            "zerog": {
                "upload_s": up,
                "download_s": down,
                "download_in_process_s": engine,
                "end_to_end_s": ours_total,
            },
            "sdk": {
                "upload_s": sdk_up,
                "download_s": sdk_down,
                "end_to_end_s": sdk_total,
                "node_wall_s": sdk_wall,
            },
            "download_ratio": round(sdk_down / down, 3),
            "download_in_process_ratio": round(sdk_down / engine, 3),
            "upload_ratio": round(sdk_up / up, 3),
            "end_to_end_ratio": round(sdk_total / ours_total, 3),
            "goals": {"download_ratio": 1.5, "end_to_end_ratio": 4.0},
            "upload_peak_rss": [{"size": n, "peak_kib": peak} for n, peak in rss],
            "load_average": list(os.getloadavg()),
        }
        print(json.dumps(document, indent=2))
        return

    def line(name: str, upload: float, download: float, note: str) -> str:
        total = upload + download
        return (
            f"  {name:7s} upload {upload:6.2f} s {mb / upload:6.1f} MB/s  "
            f"download {download:6.2f} s {mb / download:6.1f} MB/s  "
            f"end to end {total:6.2f} s {mb / total:6.1f} MB/s  ({note})"
        )

    print(
        f"transfer of {size} bytes ({args.size}) against one devnet, 2 storage nodes,"
        f" median of {args.runs} run(s)"
    )
    print(line("zerog", up, down, "CLI processes, start-up included"))
    print(line("TS SDK", sdk_up, sdk_down, f"in-process timers; node wall {sdk_wall:.2f} s"))
    print(
        f"  ratio   zerog is {sdk_total / ours_total:.2f}x the TS SDK end to end (goal 4x); "
        f"upload {sdk_up / up:.2f}x, download {sdk_down / down:.2f}x (goal 1.5x)"
    )
    print(
        f"  download on both sides' in-process timers: zerog {engine:.2f} s (its --json seconds),"
        f" {sdk_down / engine:.2f}x the TS SDK"
    )
    for rss_size, peak in rss:
        print(f"  peak RSS of `zerog upload`, {rss_size / MB:5.0f} MB file: {peak / 1024:6.1f} MiB")
    print(f"  load average {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
