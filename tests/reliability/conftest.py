"""The reliability suite's shared pieces: sizes, child processes, ledger checks, figures.

Every test here runs in `make test` at a small default size and at full size with
`make soak` (``ZEROG_SOAK=1``). Each test records the figures it measured with
the ``figures`` fixture; they are printed at the end of the test and again in a
"reliability figures" section of pytest's terminal summary, so `make test`
output shows them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.devnet_harness import DevnetProcess

SOAK = os.environ.get("ZEROG_SOAK", "") not in ("", "0")

# Exit codes a command may end with besides 0 (zerog_cli.errors.ExitCode); 1 is a bug.
DOCUMENTED_FAILURES = frozenset({2, 3, 4, 5, 6, 7, 8, 9, 10})
TRACEBACK = "Traceback (most recent call last)"


def is_report(args: Sequence[str]) -> bool:
    """Checks whose non-zero exit is their answer (`status`, `backup unverified`): they
    list what needs attention (warnings, rows, or the --json document) instead of
    one ``error:`` line."""
    words = [a for a in args if not a.startswith("-")]
    return words[:1] == ["status"] or words[:2] == ["backup", "unverified"]


def error_line_problem(args: Sequence[str], exit_code: int | None, stderr: str) -> str | None:
    """A failed command says why in exactly one ``error:`` line (reports: at most one)."""
    if exit_code in (0, None):
        return None
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if len(errors) == 1 or (is_report(args) and not errors):
        return None
    return f"{len(errors)} error lines"


def scale(default: int, soak: int) -> int:
    """``soak`` under `make soak` (ZEROG_SOAK=1), else ``default``."""
    return soak if SOAK else default


@pytest.fixture
def own_devnet(devnet: DevnetProcess, monkeypatch: pytest.MonkeyPatch) -> DevnetProcess:
    """The test's own devnet (`devnet`, sized by its marker), with ZEROG_DEVNET_URL
    pointing every zerog the test runs, in process or spawned, at it."""
    monkeypatch.setenv("ZEROG_DEVNET_URL", devnet.base_url)
    return devnet


# -- figures ---------------------------------------------------------------------------

FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A dict the test fills with what it measured; printed at its end and in the summary."""
    data: dict[str, Any] = {}
    FIGURES[request.node.nodeid] = data
    yield data
    print(f"\nfigures for {request.node.name}:")
    for key, value in data.items():
        print(f"  {key}: {value}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    title = "reliability figures" + (" (soak size)" if SOAK else " (default size; soak: make soak)")
    terminalreporter.section(title)
    for nodeid, data in FIGURES.items():
        terminalreporter.write_line(nodeid.split("::", 1)[-1])
        for key, value in data.items():
            terminalreporter.write_line(f"    {key}: {value}")


# -- child processes -------------------------------------------------------------------


@dataclass
class Run:
    """One finished (or killed) ``python -m zerog_cli`` child."""

    args: tuple[str, ...]
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float
    hung: bool = False
    killed: bool = False

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return (
            f"Run(args={self.args!r}, exit={self.exit_code}, hung={self.hung}, "
            f"seconds={self.seconds:.1f}, stdout={self.stdout[-300:]!r}, "
            f"stderr={self.stderr[-800:]!r})"
        )


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return env


def spawn(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    """Start ``python -m zerog_cli ARGS`` in its own session (stdin closed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "zerog_cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(env),
        cwd=cwd,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child we started (and anything it started in its session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def collect(
    process: subprocess.Popen[bytes],
    args: Sequence[str],
    started: float,
    timeout: float,
    stdin: bytes | None = None,
) -> Run:
    """Wait for ``process`` at most ``timeout`` seconds; a child still running then is a hang."""
    hung = False
    try:
        out, err = process.communicate(input=stdin, timeout=max(0.1, timeout))
    except subprocess.TimeoutExpired:
        hung = True
        kill_group(process)
        out, err = process.communicate()
    code = process.returncode
    killed = code is not None and code < 0
    return Run(
        tuple(args),
        None if killed or hung else code,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        time.monotonic() - started,
        hung=hung,
        killed=killed,
    )


def zerog_child(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    stdin: bytes | None = None,
    cwd: Path | None = None,
) -> Run:
    """Run ``python -m zerog_cli ARGS`` to the end, or kill it after ``timeout`` (a hang)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "zerog_cli", *args],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(env),
        cwd=cwd,
        start_new_session=True,
    )
    return collect(process, args, started, timeout, stdin)


def exit_problems(run: Run, allowed: frozenset[int] | None = None) -> list[str]:
    """Why ``run`` did not end the way every zerog command must end (empty when fine).

    A documented exit code (never 1), no traceback, no hang, and on failure one
    ``error:`` line on stderr.
    """
    allowed = DOCUMENTED_FAILURES if allowed is None else allowed
    problems = []
    label = " ".join(run.args)[:120]
    if run.hung:
        problems.append(f"hung: {label}")
    elif run.exit_code is None:
        problems.append(f"killed by a signal: {label}")
    elif run.exit_code != 0 and run.exit_code not in allowed:
        problems.append(f"exit {run.exit_code}: {label}: {run.stderr.strip()[-400:]}")
    if TRACEBACK in run.stderr or TRACEBACK in run.stdout:
        problems.append(f"traceback: {label}: {run.stderr[-600:]}")
    wrong = error_line_problem(run.args, run.exit_code, run.stderr)
    if wrong:
        problems.append(f"{wrong}: {label}: {run.stderr[-400:]}")
    return problems


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- files -----------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def random_file(path: Path, size: int, rng: Any) -> Path:
    """``size`` bytes from ``rng`` (a random.Random): reproducible from the test's seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rng.randbytes(size))
    return path


def part_files(folder: Path) -> list[Path]:
    """Temporary download files (``.NAME.*.part``) under ``folder``."""
    return sorted(p for p in folder.rglob(".*.part") if p.is_file())


# -- the ledger ------------------------------------------------------------------------


def ledger_rows(db: Path | str, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of a read-only query (a separate connection; never blocks a writer for long).

    ``db``: the SQLite file, or a PostgreSQL ``ledger_url`` (`tests.ledger_backends`).
    """
    if isinstance(db, str):
        from tests.ledger_backends import ledger_rows as rows_on_either

        return rows_on_either(db, sql, params)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, tuple(params))]
    finally:
        conn.close()


def ledger_problems(
    db: Path | str,
    *,
    dead_reservations_allowed: bool = False,
    paid_without_object: Collection[str] = (),
) -> list[str]:
    """Everything that would make the ledger wrong; empty when it is consistent.

    - ``PRAGMA integrity_check`` and ``foreign_key_check`` are clean (SQLite; PostgreSQL
      checks its pages and enforces foreign keys itself);
    - objects and storage cost rows pair up one to one (namespace, root, network, fee);
    - paid inference log rows and compute cost rows pair up (chat id);
    - each user's usage equals the sum of their recorded costs in the current period
      (storage bytes paid for, tokens, micro-USD);
    - each namespace's used bytes equal the bytes of its recorded objects;
    - each backup row points at an object with the same root, size and SHA-256;
    - no quota reservation of a dead process remains (unless allowed: right
      after a kill, before the next command).

    ``paid_without_object``: roots of uploads that failed after paying; a cost row
    for one of them with no object is the payment recorded later by another process
    (`payments.settle_abandoned_for`), not a fault, and its bytes are no object's.
    """
    problems: list[str] = []
    if isinstance(db, Path):
        integrity = ledger_rows(db, "PRAGMA integrity_check")
        if [next(iter(r.values())) for r in integrity] != ["ok"]:
            problems.append(f"integrity_check: {integrity}")
        foreign = ledger_rows(db, "PRAGMA foreign_key_check")
        if foreign:
            problems.append(f"foreign_key_check: {foreign[:5]}")

    objects = Counter(
        (r["namespace"], r["root"], r["network"], str(r["fee_neuron"] or 0))
        for r in ledger_rows(db, "SELECT * FROM objects")
    )
    storage_costs = Counter(
        (r["namespace"], r["reference"], r["network"], str(r["neuron"]))
        for r in ledger_rows(db, "SELECT * FROM cost_tracking WHERE service = 'storage'")
    )
    if objects - storage_costs:
        problems.append(f"objects without a cost row: {sorted(objects - storage_costs)[:5]}")
    settled = Counter(
        {key: n for key, n in (storage_costs - objects).items() if key[1] in paid_without_object}
    )
    storage_costs -= settled
    if storage_costs - objects:
        problems.append(f"storage costs without an object: {sorted(storage_costs - objects)[:5]}")

    paid_log = Counter(
        r["chat_id"]
        for r in ledger_rows(db, "SELECT chat_id FROM inference_log WHERE cost_neuron IS NOT NULL")
    )
    compute_costs = Counter(
        r["reference"]
        for r in ledger_rows(db, "SELECT reference FROM cost_tracking WHERE service = 'compute'")
    )
    if paid_log != compute_costs:
        problems.append(
            f"inference log and compute costs differ: {paid_log - compute_costs} / "
            f"{compute_costs - paid_log}"
        )

    for quota in ledger_rows(db, "SELECT * FROM user_quotas"):
        sums = ledger_rows(
            db,
            "SELECT"
            " COALESCE(SUM(CASE WHEN service = 'storage' AND neuron != '0' THEN quantity END), 0)"
            " AS storage,"
            " COALESCE(SUM(CASE WHEN service = 'compute' THEN quantity END), 0) AS tokens,"
            " COALESCE(SUM(usd_micro), 0) AS usd"
            " FROM cost_tracking WHERE user = ? AND period = ?",
            (quota["user"], quota["period"]),
        )[0]
        used = (
            quota["storage_used_bytes"],
            quota["tokens_used"],
            quota["monthly_usd_used_micro"],
        )
        recorded = (sums["storage"], sums["tokens"], sums["usd"])
        if used != recorded:
            problems.append(
                f"usage of {quota['user']} (storage, tokens, usd) {used} != recorded {recorded}"
            )

    for ns in ledger_rows(db, "SELECT name, used_bytes FROM namespaces"):
        stored = ledger_rows(
            db,
            "SELECT COALESCE(SUM(quantity), 0) AS bytes FROM cost_tracking"
            " WHERE service = 'storage' AND namespace = ?",
            (ns["name"],),
        )[0]["bytes"]
        stored -= sum(
            int(r["quantity"])
            for r in ledger_rows(
                db,
                "SELECT quantity, reference, neuron, network FROM cost_tracking"
                " WHERE service = 'storage' AND namespace = ?",
                (ns["name"],),
            )
            if (ns["name"], r["reference"], r["network"], str(r["neuron"])) in settled
        )
        if ns["used_bytes"] != stored:
            problems.append(f"namespace {ns['name']} uses {ns['used_bytes']} != {stored} recorded")

    for backup in ledger_rows(
        db,
        "SELECT b.id, b.root, b.size, b.sha256, o.root AS o_root, o.size AS o_size,"
        " o.sha256 AS o_sha FROM storage_backups b LEFT JOIN objects o ON o.id = b.object_id",
    ):
        if (backup["root"], backup["size"], backup["sha256"]) != (
            backup["o_root"],
            backup["o_size"],
            backup["o_sha"],
        ):
            problems.append(f"backup {backup['id']} does not match its object")

    if not dead_reservations_allowed:
        host = socket.gethostname()
        for held in ledger_rows(db, "SELECT id, pid, host, purpose FROM quota_reservations"):
            if held["host"] == host and not pid_alive(int(held["pid"])):
                problems.append(f"reservation {held['id']} of dead pid {held['pid']} remains")
    return problems


def backup_objects_without_record(db: Path | str) -> int:
    """Uploads made by `backup create` (cost rows of operation ``backup``) with no backup row."""
    uploaded = Counter(
        (r["namespace"], r["reference"])
        for r in ledger_rows(
            db,
            "SELECT namespace, reference FROM cost_tracking"
            " WHERE service = 'storage' AND operation = 'backup'",
        )
    )
    recorded = Counter(
        (r["namespace"], r["root"])
        for r in ledger_rows(db, "SELECT namespace, root FROM storage_backups")
    )
    return sum((uploaded - recorded).values())
