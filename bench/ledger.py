"""How the ledger's reports, listings and selections scale with its rows.

Fills a fresh ledger (in a temporary ZEROG_HOME) in SQL, not through the CLI:
ROWS cost rows of one month (default 1,000,000 and 10,000,000, one ledger
each), plus --others backups, objects, verifications and inference log rows
(default 100,000). Then times each covered command as a whole process
(`python -m zerog_cli … --json`) and prints its CPU time, peak RSS and how many rows its
document lists, next to the bare start-up of `zerog ledger path` measured in the
same run (the anchor) and the ratio. The commands act as a user granted read on
every namespace, so `backup ls` lists every backup; half the objects and backups
are in ns1, the namespace `ns objects` lists.

Goals (issue 19): `quota report --by user|ns|service` over 1,000,000 rows
< 0.5 s (at most 4x `ledger path`) and < 60 MB; over 10,000,000 rows < 3 s.

With ``--postgres`` (issue 20) every ledger is also filled, with the same rows,
in a database of a throwaway PostgreSQL cluster (tests/postgres_harness.py)
and every command runs against it too: a PostgreSQL column beside SQLite's.
Then 16 processes per backend reserve and release quota for one user as fast
as they can (`services.quotas.hold`: the reservation every upload and
inference opens with, then its release): reservations per second, all processes together.

    python bench/ledger.py [--rows 1000000,10000000] [--others 100000] [--runs 3]
                           [--postgres] [--workers 16] [--reservations 200]

The SQLite fill goes through the ledger's own triggers (the cost rollup of
`cost_tracking`), as an import by plain SQL would; the PostgreSQL fill loads
the cost rows as `zerog ledger copy` does (see `fill_postgres`).
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PERIOD = "2026-11"
USERS = 1_000
NAMESPACES = 100
SERVICES = ("storage", "compute")
# Half the objects and backups are in ns1, so `ns objects ns1` lists 50 % of --others;
# the other half spreads over the even-numbered namespaces.
HOME_NAMESPACE = f"'ns' || CASE i % 2 WHEN 0 THEN 1 ELSE i % {NAMESPACES} + 1 END"

# The measured command runs under a tiny Python parent: a child's peak RSS as the
# kernel reports it includes the memory of the process that spawned it, so this
# bench's own memory must not be that parent (as in bench/transfer.py). The parent
# times the command itself (wall clock, and the CPU seconds it used: on a loaded
# machine the steadier figure), then counts the rows of the list named by its first
# argument in the command's JSON document ("-": none).
_MEASURE = (
    "import json, resource, subprocess, sys, time\n"
    "started = time.perf_counter()\n"
    "done = subprocess.run(sys.argv[2:], capture_output=True)\n"
    "elapsed = time.perf_counter() - started\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.buffer.write(done.stderr[-800:])\n"
    "key = sys.argv[1]\n"
    "listed = len(json.loads(done.stdout)[key]) if key != '-' and done.stdout else -1\n"
    "cpu = usage.ru_utime + usage.ru_stime\n"
    "print(done.returncode, usage.ru_maxrss, elapsed, cpu, listed)\n"
)

# Each covered command and the key of the rows its JSON document lists (None: a report
# with no listing); exit codes other than 0 that the command documents for what it
# found (unverified: 3) are expected. Every command acts as READER, who may read every
# namespace, so a listing is the whole ledger's, not only what one owner may see.
COMMANDS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("quota report --by user", ("quota", "report", "--by", "user", "--month", PERIOD), "groups"),
    ("quota report --by ns", ("quota", "report", "--by", "ns", "--month", PERIOD), "groups"),
    (
        "quota report --by service",
        ("quota", "report", "--by", "service", "--month", PERIOD),
        "groups",
    ),
    ("quota show --all", ("quota", "show", "--all"), "users"),
    ("backup ls", ("backup", "ls"), "backups"),
    ("ns objects ns1", ("ns", "objects", "ns1"), "objects"),
    ("infer log --all", ("infer", "log", "--all", "-n", "{others}"), "entries"),
    ("backup unverified", ("backup", "unverified", "--max-age", "1d"), "unverified"),
    ("status", ("status",), None),
)
READER = "auditor"


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
        f"{_numbers(NAMESPACES)} INSERT INTO namespace_acl (namespace, user, role, granted_by,"
        f" granted_at) SELECT 'ns' || i, '{READER}', 'read', 'user' || i, '{stamp}' FROM n"
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
        f" SELECT i, {HOME_NAMESPACE}, 'object-' || i, printf('0x%064x', i), i,"
        f" 4096, printf('%064x', i), 'devnet', 0, 'user1', '0', '{stamp}' FROM n"
    )
    conn.execute(
        f"{_numbers(others)} INSERT INTO storage_backups (id, namespace, label, source_path,"
        " object_id, root, tx_seq, size, sha256, encrypted, network, created_at)"
        f" SELECT i, {HOME_NAMESPACE}, 'nightly', '/srv/data/' || i, i,"
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


def fill_postgres(url: str, rows: int, others: int) -> None:
    """The same rows as `fill`, in PostgreSQL's SQL (generate_series, lpad/to_hex).

    The cost rows go in as `zerog ledger copy` loads them: the rollup triggers off,
    then ``cost_rollup`` filled in one statement (a million row triggers updating
    the same rollup rows in one transaction take quadratic time in PostgreSQL).
    """
    from tests import postgres_harness
    from zerog_cli.ledger.db import open_ledger, resolve_target
    from zerog_cli.ledger.migrations import rollup_fill_sql
    from zerog_cli.ledger.postgres import PgConnection, set_row_triggers

    ledger = open_ledger(resolve_target(url, lambda: postgres_harness.PASSWORD))
    conn = ledger.conn
    stamp = f"{PERIOD}-15T12:00:00Z"
    hex64 = "'0x' || lpad(to_hex(i), 64, '0')"
    series = "FROM generate_series(1, {count}) AS i"
    with ledger.transaction():
        set_row_triggers(cast(PgConnection, conn), "cost_tracking", enabled=False)
        conn.execute(
            "INSERT INTO user_quotas (user, tier, period, created_at, updated_at)"
            f" SELECT 'user' || i, 'free', '{PERIOD}', '{stamp}', '{stamp}' "
            + series.format(count=USERS)
        )
        conn.execute(
            f"INSERT INTO namespaces (name, owner, created_at) SELECT 'ns' || i, 'user' || i,"
            f" '{stamp}' " + series.format(count=NAMESPACES)
        )
        conn.execute(
            "INSERT INTO namespace_acl (namespace, user, role, granted_by, granted_at)"
            f" SELECT 'ns' || i, '{READER}', 'read', 'user' || i, '{stamp}' "
            + series.format(count=NAMESPACES)
        )
        conn.execute(
            "INSERT INTO cost_tracking (created_at, period, user, namespace,"
            " service, operation, quantity, unit, usd_micro, neuron, reference, network)"
            f" SELECT '{stamp}', '{PERIOD}', 'user' || (i % {USERS}), 'ns' || (i % {NAMESPACES}),"
            f" CASE i % 2 WHEN 0 THEN '{SERVICES[0]}' ELSE '{SERVICES[1]}' END,"
            " CASE i % 2 WHEN 0 THEN 'upload' ELSE 'infer' END, 1000 + i % 5000,"
            " CASE i % 2 WHEN 0 THEN 'bytes' ELSE 'tokens' END, 10 + i % 90,"
            " CAST(1000000000000000 + i AS TEXT), 'ref' || i, 'devnet' " + series.format(count=rows)
        )
        conn.execute(rollup_fill_sql(postgres=True))
        set_row_triggers(cast(PgConnection, conn), "cost_tracking", enabled=True)
        conn.execute(
            "INSERT INTO objects (id, namespace, name, root, tx_seq, size,"
            " sha256, network, encrypted, uploader, fee_neuron, created_at)"
            f" SELECT i, {HOME_NAMESPACE}, 'object-' || i, {hex64}, i,"
            f" 4096, lpad(to_hex(i), 64, '0'), 'devnet', 0, 'user1', '0', '{stamp}' "
            + series.format(count=others)
        )
        conn.execute(
            "INSERT INTO storage_backups (id, namespace, label, source_path,"
            " object_id, root, tx_seq, size, sha256, encrypted, network, created_at)"
            f" SELECT i, {HOME_NAMESPACE}, 'nightly', '/srv/data/' || i, i,"
            f" {hex64}, i, 4096, lpad(to_hex(i), 64, '0'), 0, 'devnet',"
            f" '{PERIOD}-01T00:00:00Z' " + series.format(count=others)
        )
        conn.execute(
            "INSERT INTO verifications (backup_id, run_id, status, duration_ms,"
            f" bytes_checked, checked_at) SELECT i, 'run1', 'ok', 5, 4096, '{stamp}' "
            + series.format(count=others)
        )
        conn.execute(
            "INSERT INTO inference_log (created_at, user, network, wallet,"
            " provider, model, prompt, response, prompt_tokens, completion_tokens, cost_neuron,"
            " usd_micro, duration_ms, status, stream, max_tokens)"
            f" SELECT '{stamp}', 'user' || (i % {USERS}), 'devnet', '0xwallet', '0xprovider',"
            " 'model', 'prompt ' || i, 'answer ' || i, 10, 20, '1000', 1, 100, 'ok', 0, 64 "
            + series.format(count=others)
        )
    from zerog_cli.ledger.postgres import reset_identities

    reset_identities(
        cast(PgConnection, conn),
        ("objects", "storage_backups", "verifications", "inference_log", "cost_tracking"),
    )
    conn.execute("ANALYZE")
    ledger.close()


def run_once(
    argv: list[str], env: dict[str, str], key: str | None
) -> tuple[float, float, int, int]:
    """Wall and CPU seconds, peak RSS (KiB) and rows listed (-1: not a listing) of one
    command."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", _MEASURE, key or "-", *argv],
        env=env,
        capture_output=True,
        check=False,
    )
    code, peak, elapsed, cpu, listed = done.stdout.decode().split()
    if int(code) in (1, 2, 5, 7, 8, 10):
        raise SystemExit(f"{' '.join(argv[2:])} failed ({code}): {done.stderr.decode()}")
    return float(elapsed), float(cpu), int(peak), int(listed)


def measure(
    args: tuple[str, ...], env: dict[str, str], runs: int, key: str | None = None
) -> tuple[float, float, int, int]:
    """Median wall and CPU seconds, the highest peak RSS (KiB) over ``runs`` runs, and the
    rows the last run listed."""
    argv = [sys.executable, "-m", "zerog_cli", *args]
    results = [run_once(argv, env, key) for _ in range(runs)]
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
        max(r[2] for r in results),
        results[-1][3],
    )


# One reserving process: reserve and release quota for one user ``count`` times,
# starting at ``start_at`` (so all start together); prints its first and last moment.
_RESERVER = (
    "import sys, time\n"
    "from zerog_cli.ledger.quotas import Reserved\n"
    "from zerog_cli.services import quotas\n"
    "from zerog_cli.services.context import Context\n"
    "count, start_at = int(sys.argv[1]), float(sys.argv[2])\n"
    "context = Context()\n"
    "context.ledger\n"
    "while time.time() < start_at:\n"
    "    time.sleep(0.001)\n"
    "began = time.time()\n"
    "for _ in range(count):\n"
    "    with quotas.hold(context, 'reserver', None, Reserved(storage_bytes=1),"
    " purpose='bench'):\n"
    "        pass\n"
    "print(began, time.time())\n"
    "context.close()\n"
)


def reservations_per_second(env: dict[str, str], workers: int, count: int) -> float:
    """``workers`` processes reserving and releasing ``count`` times each, all at once."""
    start_at = time.time() + 3 + workers * 0.3
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _RESERVER, str(count), str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    spans = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        if process.returncode != 0:
            raise SystemExit(f"a reserving process failed: {err.decode()[-800:]}")
        began, ended = (float(value) for value in out.split())
        spans.append((began, ended))
    seconds = max(end for _begin, end in spans) - min(begin for begin, _end in spans)
    return workers * count / seconds


@contextmanager
def ledgers(
    rows: int, others: int, postgres_url: str | None
) -> Iterator[dict[str, dict[str, str]]]:
    """The environment of each filled ledger: ``sqlite``, and ``postgresql`` when given a URL."""
    with tempfile.TemporaryDirectory(prefix="zerog-bench-ledger-") as folder:
        environments: dict[str, dict[str, str]] = {}
        for backend in ("sqlite", "postgresql") if postgres_url else ("sqlite",):
            home = Path(folder) / backend
            env = {**os.environ, "ZEROG_HOME": str(home), "NO_COLOR": "1", "ZEROG_USER": READER}
            for name in ("ZEROG_LEDGER_PATH", "ZEROG_LEDGER_URL", "DATABASE_PASSWORD"):
                env.pop(name, None)
            if backend == "postgresql" and postgres_url:
                from tests import postgres_harness

                env["ZEROG_LEDGER_URL"] = postgres_url
                env["DATABASE_PASSWORD"] = postgres_harness.PASSWORD
            # Creates the ledger at the latest schema (migrations run on open).
            subprocess.run(
                [sys.executable, "-m", "zerog_cli", "ledger", "migrate"],
                env=env,
                capture_output=True,
                check=True,
            )
            started = time.perf_counter()
            if backend == "sqlite":
                fill(home / "ledger.db", rows, others)
                size = (home / "ledger.db").stat().st_size
            else:
                assert postgres_url is not None
                fill_postgres(postgres_url, rows, others)
                size = int(
                    subprocess.run(
                        [sys.executable, "-m", "zerog_cli", "ledger", "status", "--json"],
                        env=env,
                        capture_output=True,
                        check=True,
                    )
                    .stdout.decode()
                    .split('"size_bytes": ')[1]
                    .split(",")[0]
                )
            print(
                f"{backend}: {rows:,} cost rows of {PERIOD}, {others:,} objects/backups/"
                f"verifications/inference rows: filled in {time.perf_counter() - started:.1f} s,"
                f" {size / 1e6:.0f} MB"
            )
            environments[backend] = env
        yield environments


def bench(
    rows: int, others: int, runs: int, postgres_url: str | None, workers: int, count: int
) -> None:
    print()
    with ledgers(rows, others, postgres_url) as environments:
        backends = list(environments)
        header = " (ms, cpu ms, MB, x anchor, rows)"
        print(f"  {'':32} " + "".join(f"{name + header:>48}" for name in backends))
        anchor = ("zerog ledger path (anchor)", ("ledger", "path"), None)
        anchors: dict[str, float] = {}
        with_json = [(name, (*args, "--json"), key) for name, args, key in COMMANDS]
        for name, args, key in (anchor, *with_json):
            argv = tuple(arg.format(others=others) for arg in args)
            cells = []
            for backend in backends:
                seconds, cpu, peak, listed = measure(argv, environments[backend], runs, key)
                anchors.setdefault(backend, seconds)
                ratio = seconds / anchors[backend]
                shown = "-" if listed < 0 else f"{listed:,}"
                cells.append(
                    f"{seconds * 1000:9.0f} {cpu * 1000:7.0f} {peak / 1024:7.1f}"
                    f" {ratio:8.2f}x {shown:>9}"
                )
            print(f"  {name:32} " + "".join(f"{cell:>48}" for cell in cells))
        rates = [
            f"{reservations_per_second(environments[backend], workers, count):9.0f}/s"
            for backend in backends
        ]
        label = f"reservations, {workers} processes"
        print(f"  {label:32} " + "".join(f"{rate:>30}" for rate in rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        default="1000000,10000000",
        help="comma-separated cost row counts, one ledger each (default: %(default)s)",
    )
    parser.add_argument("--others", type=int, default=100_000, help="backups, objects, ...")
    parser.add_argument("--runs", type=int, default=3, help="runs per command (median)")
    parser.add_argument(
        "--postgres", action="store_true", help="a PostgreSQL column (a throwaway cluster)"
    )
    parser.add_argument("--workers", type=int, default=16, help="reserving processes")
    parser.add_argument("--reservations", type=int, default=200, help="per reserving process")
    options = parser.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    cluster = None
    if options.postgres:
        from tests import postgres_harness

        cluster = postgres_harness.start_cluster()
    try:
        for count in options.rows.split(","):
            url = None if cluster is None else cluster.create_database()
            bench(
                int(count.replace("_", "")),
                options.others,
                options.runs,
                url,
                options.workers,
                options.reservations,
            )
            if cluster is not None and url is not None:
                cluster.drop_database(url)
    finally:
        if cluster is not None:
            from tests import postgres_harness

            postgres_harness.remove_cluster(cluster)


if __name__ == "__main__":
    main()
