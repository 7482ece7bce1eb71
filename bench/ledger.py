"""How the ledger's reports, listings and selections scale with its rows.

Fills a fresh ledger (in a temporary ZEROG_HOME) in SQL, not through the CLI:
ROWS cost rows of one month (default 1,000,000 and 10,000,000, one ledger
each), plus --others backups, objects, verifications and inference log rows
(default 100,000). Then times each covered command as a whole process
(`python -m zerog_cli …`) and prints its peak RSS, next to the bare start-up
of `zerog ledger path` measured in the same run (the anchor) and the ratio.

Goals (issue 19): `quota report --by user|ns|service` over 1,000,000 rows
< 0.5 s (at most 4x `ledger path`) and < 60 MB; over 10,000,000 rows < 3 s.

    python bench/ledger.py [--rows 1000000,10000000] [--others 100000] [--runs 3]

The fill goes through the ledger's own triggers (the cost rollup
of `cost_tracking`), as an import by plain SQL would.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PERIOD = "2026-11"
USERS = 1_000
NAMESPACES = 100
SERVICES = ("storage", "compute")

# The measured command runs under a tiny Python parent: a child's peak RSS as the
# kernel reports it includes the memory of the process that spawned it, so this
# bench's own memory must not be that parent (as in bench/transfer.py).
_MEASURE = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True)\n"
    "sys.stderr.buffer.write(done.stderr[-800:])\n"
    "print(done.returncode)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)

# Each covered command; exit codes other than 0 that the command documents for
# what it found (verify: 3 or 6 with no devnet running; unverified: 3) are expected.
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("quota report --by user", ("quota", "report", "--by", "user", "--month", PERIOD)),
    ("quota report --by ns", ("quota", "report", "--by", "ns", "--month", PERIOD)),
    ("quota report --by service", ("quota", "report", "--by", "service", "--month", PERIOD)),
    ("quota show --all", ("quota", "show", "--all")),
    ("backup ls", ("backup", "ls", "--json")),
    ("ns objects", ("ns", "objects", "ns1", "--json")),
    ("infer log", ("infer", "log", "--json")),
    ("backup unverified", ("backup", "unverified", "--max-age", "1d", "--json")),
    ("status", ("status", "--json")),
)


def _numbers(count: int) -> str:
    """A recursive CTE yielding i = 1 … count (SQLite here has no generate_series)."""
    return f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {int(count)})"


def fill(path: Path, rows: int, others: int) -> None:
    """Cost rows, quota users, namespaces, objects, backups, verifications, inference rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    stamp = f"{PERIOD}-15T12:00:00Z"
    conn.execute(
        f"{_numbers(USERS)} INSERT INTO user_quotas (user, tier, period, created_at, updated_at)"
        f" SELECT 'user' || i, 'free', '{PERIOD}', '{stamp}', '{stamp}' FROM n"
    )
    conn.execute(
        f"{_numbers(NAMESPACES)} INSERT INTO namespaces (name, owner, created_at)"
        f" SELECT 'ns' || i, 'user' || i, '{stamp}' FROM n"
    )
    conn.execute(
        f"{_numbers(rows)} INSERT INTO cost_tracking (created_at, period, user, namespace,"
        " service, operation, quantity, unit, usd_micro, neuron, reference, network)"
        f" SELECT '{stamp}', '{PERIOD}', 'user' || (i % {USERS}), 'ns' || (i % {NAMESPACES}),"
        f" CASE i % 2 WHEN 0 THEN '{SERVICES[0]}' ELSE '{SERVICES[1]}' END,"
        " CASE i % 2 WHEN 0 THEN 'upload' ELSE 'infer' END, 1000 + i % 5000,"
        " CASE i % 2 WHEN 0 THEN 'bytes' ELSE 'tokens' END, 10 + i % 90,"
        " CAST(1000000000000000 + i AS TEXT), 'ref' || i, 'devnet' FROM n"
    )
    conn.execute(
        f"{_numbers(others)} INSERT INTO objects (id, namespace, name, root, tx_seq, size,"
        " sha256, network, encrypted, uploader, fee_neuron, created_at)"
        f" SELECT i, 'ns' || (i % {NAMESPACES} + 1), 'object-' || i, printf('0x%064x', i), i,"
        f" 4096, printf('%064x', i), 'devnet', 0, 'user1', '0', '{stamp}' FROM n"
    )
    conn.execute(
        f"{_numbers(others)} INSERT INTO storage_backups (id, namespace, label, source_path,"
        " object_id, root, tx_seq, size, sha256, encrypted, network, created_at)"
        f" SELECT i, 'ns' || (i % {NAMESPACES} + 1), 'nightly', '/srv/data/' || i, i,"
        " printf('0x%064x', i), i, 4096, printf('%064x', i), 0, 'devnet',"
        f" '{PERIOD}-01T00:00:00Z' FROM n"
    )
    conn.execute(
        f"{_numbers(others)} INSERT INTO verifications (backup_id, run_id, status, duration_ms,"
        f" bytes_checked, checked_at) SELECT i, 'run1', 'ok', 5, 4096, '{stamp}' FROM n"
    )
    conn.execute(
        f"{_numbers(others)} INSERT INTO inference_log (created_at, user, network, wallet,"
        " provider, model, prompt, response, prompt_tokens, completion_tokens, cost_neuron,"
        " usd_micro, duration_ms, status, stream, max_tokens)"
        f" SELECT '{stamp}', 'user' || (i % {USERS}), 'devnet', '0xwallet', '0xprovider',"
        " 'model', 'prompt ' || i, 'answer ' || i, 10, 20, '1000', 1, 100, 'ok', 0, 64 FROM n"
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) and exit code of one command."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-S", "-c", _MEASURE, *argv], env=env, capture_output=True, check=False
    )
    elapsed = time.perf_counter() - started
    code, peak = done.stdout.decode().split()
    if int(code) in (1, 2, 8, 10):
        raise SystemExit(f"{' '.join(argv[2:])} failed ({code}): {done.stderr.decode()}")
    return elapsed, int(peak), int(code)


def measure(args: tuple[str, ...], env: dict[str, str], runs: int) -> tuple[float, int]:
    """Median wall seconds and the highest peak RSS (KiB) over ``runs`` runs."""
    argv = [sys.executable, "-m", "zerog_cli", *args]
    results = [run_once(argv, env) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def bench(rows: int, others: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="zerog-bench-ledger-") as home:
        env = {**os.environ, "ZEROG_HOME": home, "NO_COLOR": "1"}
        env.pop("ZEROG_LEDGER_PATH", None)
        # Creates the ledger at the latest schema (migrations run on open).
        subprocess.run(
            [sys.executable, "-m", "zerog_cli", "ledger", "migrate"],
            env=env,
            capture_output=True,
            check=True,
        )
        started = time.perf_counter()
        fill(Path(home) / "ledger.db", rows, others)
        filled = time.perf_counter() - started
        size = (Path(home) / "ledger.db").stat().st_size
        print(
            f"\n{rows:,} cost rows of {PERIOD}, {others:,} objects/backups/verifications/"
            f"inference rows: filled in {filled:.1f} s, {size / 1e6:.0f} MB"
        )
        anchor, anchor_rss = measure(("ledger", "path"), env, runs)
        name = "zerog ledger path (anchor)"
        print(f"  {name:32} {anchor * 1000:7.0f} ms {anchor_rss / 1024:6.1f} MB")
        for name, args in COMMANDS:
            seconds, peak = measure(args, env, runs)
            print(
                f"  {name:32} {seconds * 1000:7.0f} ms {peak / 1024:6.1f} MB"
                f"   {seconds / anchor:5.2f}x the anchor"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        default="1000000,10000000",
        help="comma-separated cost row counts, one ledger each (default: %(default)s)",
    )
    parser.add_argument("--others", type=int, default=100_000, help="backups, objects, ...")
    parser.add_argument("--runs", type=int, default=3, help="runs per command (median)")
    options = parser.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    for count in options.rows.split(","):
        bench(int(count.replace("_", "")), options.others, options.runs)


if __name__ == "__main__":
    main()
