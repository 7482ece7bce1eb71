"""`make test`: lint, the external test tools, then the whole pytest suite.

Any non-zero exit fails CI. Every external tool a test drives (Prometheus,
the official TS SDK, ...) is installed by `tools/test_tools.py ensure` before
pytest starts, so no test depends on what an earlier run left on the machine.

pytest's exit code 5 ("no tests ran") is reported as a failure explicitly, so a
broken collection can never pass silently. pytest lists the 25 slowest test phases
at the end (``--durations=25``), so every CI log shows where the time goes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(step: str, *command: str) -> None:
    print(f"== {step}: {' '.join(command)}", flush=True)
    code = subprocess.call(command, cwd=REPO)
    if code == 5 and step == "pytest":
        sys.exit("pytest collected no tests: failing on purpose")
    if code != 0:
        sys.exit(f"{step} failed with exit code {code}")


def main() -> None:
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    sources = ("zerog_cli", "tests", "bench", "tools")
    run("ruff", str(BIN / "ruff"), "check", *sources)
    run("ruff format", str(BIN / "ruff"), "format", "--check", *sources)
    run("mypy", str(BIN / "mypy"))
    run("test tools", sys.executable, "tools/test_tools.py", "ensure")
    run("pytest", str(BIN / "pytest"), "-q", "--durations=25", *sys.argv[1:])


if __name__ == "__main__":
    main()
