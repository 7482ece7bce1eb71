"""Every shell block in README.md and runbooks/*.md runs, in order, and does what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import postgres_harness
from tests.docblocks import document_env, parse, run_block
from tools import test_tools

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "runbooks").glob("*.md"))]
BLOCK_TIMEOUT = 300
DOCUMENT_TIMEOUT = 900
"""README.md runs about 80 command lines, each zerog its own process: 213 s on this
2-core machine at load 5, and past pytest's default 300 s (cut off mid-document) at
load 12, when other suites share it."""


@pytest.fixture(scope="session", autouse=True)
def document_tools() -> None:
    """The external commands the documents run (promtool), from the step `make test` runs first."""
    test_tools.ensure(["prometheus"])


def postgres_admin_env(cluster: postgres_harness.Cluster) -> dict[str, str]:
    """The administrator's connection to the session's PostgreSQL server, in libpq's
    variables, for runbooks/postgresql-ledger.md (psql, pg_dump)."""
    return {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(cluster.port),
        "PGUSER": postgres_harness.SUPERUSER,
        "PGPASSWORD": postgres_harness.PASSWORD,
        "PGDATABASE": "postgres",
        "PATH": str(cluster.bindir),
    }


@pytest.mark.timeout(DOCUMENT_TIMEOUT)
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_document_runs_as_written(
    document: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    blocks = parse(document)
    runnable = [b for b in blocks if b.skip_reason is None]
    assert runnable, f"{document.name} has no runnable sh block"
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    env = document_env(home, Path(sys.executable).parent)
    # Each `zerog devnet up` binds a free port itself (commands find it in the devnet's
    # state file): a port picked here and released could be taken before the devnet binds.
    env["ZEROG_DEVNET_PORT"] = "0"
    if "PGHOST" in document.read_text(encoding="utf-8"):
        admin = postgres_admin_env(request.getfixturevalue("postgres_cluster"))
        env.update({**admin, "PATH": f"{env['PATH']}{os.pathsep}{admin['PATH']}"})
    failures = []
    try:
        for block in runnable:
            outcome = run_block(block, cwd=work, repo=REPO, env=env, timeout=BLOCK_TIMEOUT)
            problems = outcome.problems()
            if problems:
                failures.append(
                    f"{block.label}: {'; '.join(problems)}\n--- block ---\n{block.code}\n"
                    f"--- stdout ---\n{outcome.stdout[-1500:]}\n"
                    f"--- stderr ---\n{outcome.stderr[-1500:]}"
                )
                break
    finally:
        subprocess.run(
            ["zerog", "devnet", "down"], env=env, cwd=work, capture_output=True, timeout=60
        )
        subprocess.run(["pkill", "-f", f"--data-dir {home}"], capture_output=True, timeout=30)
    assert not failures, "\n\n".join(failures)


def test_skipped_blocks_are_rare_and_explained() -> None:
    skipped = [b for d in DOCUMENTS for b in parse(d) if b.skip_reason is not None]
    total = sum(len(parse(d)) for d in DOCUMENTS)
    assert all(len(b.skip_reason or "") > 10 for b in skipped)
    assert len(skipped) * 10 <= total, [b.label for b in skipped]
