"""Benchmark: zerog's 0G file root against the official TS SDK and the Keccak limit.

Usage: .venv/bin/python bench/merkle.py [--size 256MiB] [--repeat 1] [--skip-ts] [--json]
Issue 19's goal (pooled >= 250 MB/s on 2 cores) is for `--size 1GiB --skip-ts`.

Writes a random file of --size bytes in a temporary folder, then measures:
- zerog `tree_from_path` (with SHA-256, as `zerog hash` runs it) with its default
  worker pool (all CPUs, for files of merkle.POOL_MIN_BYTES or more) and in one
  process, each in a fresh child process that also reports its peak RSS (its
  own, and the largest of its worker processes);
- the TS SDK 1.2.8 `ZgFile.fromFilePath(path)` -> `merkleTree()` in node (pinned by
  tests/interop/package-lock.json and installed into a cache folder by
  tools/ts_sdk.py; timed inside node, excluding its start-up);
- the Keccak limit: one Keccak-256 over the same bytes in one process, i.e. the
  raw permutation speed with no per-call cost; the 2-core limit is twice that.
  The tree itself needs more permutations than one flat hash (a 256 KiB segment
  is 1,024 leaves of 256 bytes, two permutations each, and 1,023 nodes of 64
  bytes, one each: 3,071, against 1,928 for a flat hash of the same bytes), so
  the Merkle limit, the best any code can do at that permutation speed, is the
  Keccak limit x 1,928 / 3,071.
It checks that every root agrees and exits 1 if not. MB/s are 10^6 bytes per
second of wall time; CPU seconds (user + system, workers included) are shown too,
since other load on the machine inflates wall time, with the load average, and
the pool's workers' time split by the kernel's scheduler counters into running,
waiting for a CPU (other load) and asleep (waiting for work: what the pool's
design loses).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tools.ts_sdk import ensure_installed, node_env  # noqa: E402

UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 1 << 10, "MIB": 1 << 20}
UNITS["GIB"] = 1 << 30
PIECE = 16 << 20
SEGMENT_PERMUTATIONS = 1024 * 2 + 1023
FLAT_PERMUTATIONS = (256 * 1024) // 136 + 1
"""Keccak-f permutations per 256 KiB segment: in the tree, and in one flat hash (rate 136)."""
GOAL_MB_PER_S = 250
GOAL_SIZE = 1 << 30
"""Issue 19's goal: the pooled root of 1 GiB at 250 MB/s or more on 2 cores."""


def parse_size(text: str) -> int:
    number = text.rstrip("BbIiKkMmGg")
    unit = text[len(number) :].upper()
    if unit not in UNITS or not number.isdigit():
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 268435456, 256MiB, 1GiB)")
    return int(number) * UNITS[unit]


def write_random_file(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        left = size
        while left:
            step = min(PIECE, left)
            handle.write(os.urandom(step))
            left -= step


class WorkerWatch:
    """Samples this process's children's scheduler counters while the root is computed.

    For each worker process, /proc/PID/schedstat gives the time it ran and the
    time it was runnable but waited for a CPU; the rest of its life it slept,
    which for a pool worker means it had no job: that is the pool's own loss,
    whatever the other load on the machine. The last sample of each worker is
    kept (sampled every 20 ms, so a worker's last few milliseconds are missed).
    """

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._children = Path(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/children")

    def __enter__(self) -> WorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(0.02):
            try:
                pids = self._children.read_text().split()
            except OSError:
                return
            for pid in pids:
                try:
                    run, waited = Path(f"/proc/{pid}/schedstat").read_text().split()[:2]
                    stat = Path(f"/proc/{pid}/stat").read_text()
                except OSError:
                    continue
                started = int(stat.rsplit(")", 1)[1].split()[19]) / ticks
                alive = time.clock_gettime(time.CLOCK_BOOTTIME) - started
                self._last[int(pid)] = (alive, int(run) / 1e9, int(waited) / 1e9)

    def report(self) -> dict[str, float]:
        alive = sum(sample[0] for sample in self._last.values())
        running = sum(sample[1] for sample in self._last.values())
        waiting = sum(sample[2] for sample in self._last.values())
        return {
            "workers": len(self._last),
            "alive_s": alive,
            "running_s": running,
            "waiting_for_cpu_s": waiting,
            "asleep_s": max(0.0, alive - running - waiting),
        }


def child_main(mode: str, path: str, workers: int | None) -> None:
    """Run in a fresh process: one root computation, reported as a JSON line."""
    from zerog_cli.zerog.merkle import tree_from_path

    before = os.times()
    started = time.perf_counter()
    with WorkerWatch() as watch:
        tree, sha256 = tree_from_path(path, workers=1 if mode == "single" else workers)
    seconds = time.perf_counter() - started
    after = os.times()
    cpu = sum(after[:4]) - sum(before[:4])
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    report = {"root": tree.root_hex, "sha256": sha256, "seconds": seconds, "cpu_seconds": cpu}
    report |= {"max_rss_bytes": own, "max_worker_rss_bytes": workers_rss}
    report["worker_time"] = watch.report()
    print(json.dumps(report))


def run_zerog(mode: str, path: Path, workers: int | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, str(path)]
    if workers is not None:
        command += ["--workers", str(workers)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout))


def run_ts_sdk(path: Path) -> dict[str, Any]:
    node_modules = ensure_installed()
    script = Path(__file__).with_name("merkle_tssdk.js")
    done = subprocess.run(
        ["node", str(script), str(path)],
        check=True,
        capture_output=True,
        text=True,
        env=node_env(node_modules),
    )
    report = json.loads(done.stdout)
    return {
        "root": report["root"],
        "seconds": report["ms"] / 1000,
        "cpu_seconds": report["cpuMs"] / 1000,
        "max_rss_bytes": report["maxRssBytes"],
    }


def keccak_limit(path: Path) -> float:
    """Seconds for one Keccak-256 over the whole file (read in pieces, page cache warm)."""
    import sha3

    state = sha3.keccak_256()
    buffer = memoryview(bytearray(PIECE))
    with path.open("rb", buffering=0) as handle:
        started = time.perf_counter()
        while True:
            got = handle.readinto(buffer)
            if not got:
                break
            state.update(buffer[:got])
        return time.perf_counter() - started


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return min(runs, key=lambda run: float(run["seconds"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=256 << 20, help="e.g. 256MiB, 1GiB")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: CPUs)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; best kept")
    parser.add_argument("--skip-ts", action="store_true", help="do not run the TS SDK")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the test file")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], args.child[1], args.workers)
        return 0

    from zerog_cli.zerog.merkle import default_workers

    cpus = default_workers()
    size = args.size
    megabytes = size / 1e6
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="zerog-bench-", dir=args.dir) as folder:
        path = Path(folder) / "bench.bin"
        write_random_file(path, size)
        pooled = best([run_zerog("pooled", path, args.workers) for _ in range(args.repeat)])
        single = best([run_zerog("single", path, None) for _ in range(args.repeat)])
        limit = min(keccak_limit(path) for _ in range(args.repeat))
        ts = None if args.skip_ts else best([run_ts_sdk(path) for _ in range(args.repeat)])

    load_after = os.getloadavg()[0]
    roots = {"zerog_pooled": pooled["root"], "zerog_single": single["root"]}
    if ts is not None:
        roots["ts_sdk"] = ts["root"]
    agree = len(set(roots.values())) == 1
    rate = {
        "zerog_pooled": megabytes / pooled["seconds"],
        "zerog_single": megabytes / single["seconds"],
        "keccak_limit_1_core": megabytes / limit,
        "keccak_limit_2_cores": 2 * megabytes / limit,
        "merkle_limit_2_cores": 2 * megabytes / limit * FLAT_PERMUTATIONS / SEGMENT_PERMUTATIONS,
    }
    if ts is not None:
        rate["ts_sdk"] = megabytes / ts["seconds"]
    result: dict[str, Any] = {
        "size_bytes": size,
        "cpus": cpus,
        "load_average_1min": {"before": load_before, "after": load_after},
        "roots": roots,
        "roots_agree": agree,
        "seconds": {
            "zerog_pooled": pooled["seconds"],
            "zerog_single": single["seconds"],
            "keccak_limit_1_core": limit,
            **({"ts_sdk": ts["seconds"]} if ts else {}),
        },
        "cpu_seconds": {
            "zerog_pooled": pooled["cpu_seconds"],
            "zerog_single": single["cpu_seconds"],
            **({"ts_sdk": ts["cpu_seconds"]} if ts else {}),
        },
        "mb_per_s": rate,
        "cpu_seconds_per_gib": {
            "zerog_pooled": pooled["cpu_seconds"] * (1 << 30) / size,
            "zerog_single": single["cpu_seconds"] * (1 << 30) / size,
        },
        "pooled_worker_time": pooled["worker_time"],
        "goal": {
            "zerog_pooled_mb_per_s": GOAL_MB_PER_S,
            "size_bytes": GOAL_SIZE,
            "met": rate["zerog_pooled"] >= GOAL_MB_PER_S if size == GOAL_SIZE else None,
        },
        "ratios": {
            "zerog_pooled/ts_sdk": rate["zerog_pooled"] / rate["ts_sdk"] if ts else None,
            "zerog_single/ts_sdk": rate["zerog_single"] / rate["ts_sdk"] if ts else None,
            "zerog_pooled/keccak_limit_2_cores": rate["zerog_pooled"]
            / rate["keccak_limit_2_cores"],
            "zerog_pooled/merkle_limit_2_cores": rate["zerog_pooled"]
            / rate["merkle_limit_2_cores"],
            "zerog_single/keccak_limit_1_core": rate["zerog_single"] / rate["keccak_limit_1_core"],
        },
        "peak_rss_bytes": {
            "zerog_pooled_main": pooled["max_rss_bytes"],
            "zerog_pooled_largest_worker": pooled["max_worker_rss_bytes"],
            "zerog_single": single["max_rss_bytes"],
            **({"ts_sdk": ts["max_rss_bytes"]} if ts else {}),
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0 if agree else 1


def print_table(result: dict[str, Any]) -> None:
    size = result["size_bytes"]
    load = result["load_average_1min"]
    print(
        f"file: {size} bytes ({size / (1 << 20):.0f} MiB), {result['cpus']} CPUs, "
        f"load average {load['before']:.1f} before, {load['after']:.1f} after"
    )
    rows = [
        ("zerog, workers=auto", "zerog_pooled", "zerog_pooled_main"),
        ("zerog 1 process", "zerog_single", "zerog_single"),
        ("TS SDK 1.2.8", "ts_sdk", "ts_sdk"),
        ("Keccak limit, 1 core", "keccak_limit_1_core", None),
    ]
    for label, key, rss_key in rows:
        if key not in result["seconds"]:
            continue
        rss = result["peak_rss_bytes"].get(rss_key) if rss_key else None
        rss_text = f"  peak RSS {rss / 1e6:6.1f} MB" if rss else ""
        cpu = result["cpu_seconds"].get(key)
        cpu_text = f"  CPU {cpu:6.2f} s" if cpu is not None else ""
        print(
            f"  {label:22} {result['seconds'][key]:8.2f} s {result['mb_per_s'][key]:8.1f} MB/s"
            + rss_text
            + cpu_text
        )
    two_cores = result["mb_per_s"]["keccak_limit_2_cores"]
    print(f"  {'Keccak limit, 2 cores':22} {'':10} {two_cores:8.1f} MB/s")
    merkle_limit = result["mb_per_s"]["merkle_limit_2_cores"]
    label = "Merkle limit, 2 cores"
    print(f"  {label:22} {'':10} {merkle_limit:8.1f} MB/s  (x 1928/3071 permutations)")
    per_gib = result["cpu_seconds_per_gib"]
    print(
        f"  CPU per GiB: pooled {per_gib['zerog_pooled']:.2f} s, "
        f"one process {per_gib['zerog_single']:.2f} s (user + system)"
    )
    workers = result["pooled_worker_time"]
    if workers["workers"]:
        print(
            f"  pool workers ({workers['workers']}): alive {workers['alive_s']:.2f} s = running "
            f"{workers['running_s']:.2f} + waiting for a CPU {workers['waiting_for_cpu_s']:.2f} "
            f"+ asleep waiting for work {workers['asleep_s']:.2f}"
        )
    worker = result["peak_rss_bytes"]["zerog_pooled_largest_worker"]
    if worker:
        print(f"  largest worker process peak RSS {worker / 1e6:.1f} MB")
    else:
        print("  no worker processes: the file is below merkle.POOL_MIN_BYTES")
    for name, value in result["ratios"].items():
        if value is not None:
            print(f"  {name:36} {value:6.2f}")
    goal = result["goal"]
    outcome = {True: "met", False: "not met", None: "not measured at this size"}[goal["met"]]
    print(
        f"  goal: pooled >= {goal['zerog_pooled_mb_per_s']} MB/s for 1 GiB: {outcome} "
        f"(load average {load['after']:.1f})"
    )
    verdict = "agree" if result["roots_agree"] else "DISAGREE"
    print(f"  roots {verdict}: " + ", ".join(f"{k}={v}" for k, v in result["roots"].items()))


if __name__ == "__main__":
    sys.exit(main())
