"""Running a script of tests/interop/ under ``node``; its last line is a JSON report."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tools.ts_sdk import INTEROP, node_env


def run_interop_script(
    node_modules: Path, script: str, args: list[str], *, timeout: float
) -> tuple[dict[str, Any], float]:
    """``node tests/interop/SCRIPT ARGS`` with the pinned SDKs; its report and the seconds it ran.

    Asserts that node printed a report, exited 0 and reported no ``error``.
    """
    started = time.monotonic()
    completed = subprocess.run(
        ["node", str(INTEROP / script), *args],
        capture_output=True,
        env=node_env(node_modules),
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    lines = completed.stdout.decode("utf-8", "replace").strip().splitlines()
    stderr = completed.stderr.decode("utf-8", "replace")[-3000:]
    assert lines, f"node printed nothing (exit {completed.returncode}); stderr: {stderr}"
    report: dict[str, Any] = json.loads(lines[-1])
    assert completed.returncode == 0 and "error" not in report, (report, stderr)
    return report, elapsed
