"""Cold-start time of `zerog --help` and `zerog ledger status`, next to `import typer`.

Each command runs as a fresh process, several times, with its bytecode cached as an
installed package has it; the median wall time is printed with the ratio to the
bare `python -c "import typer"` anchor. Goals: `--help` within 150 ms, ledger-only
commands within 200 ms.

    python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

GOALS_MS = {"zerog --help": 150, "zerog ledger status": 200}


def median_ms(command: list[str], env: dict[str, str], runs: int) -> float:
    subprocess.run(command, env=env, capture_output=True, check=True)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "ZEROG_HOME": home,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
        # Measure zerog as an installed package runs: with its bytecode cached (pip
        # compiles it at install). An editable checkout under PYTHONDONTWRITEBYTECODE
        # would compile every module from source on every run (~40 ms here); the
        # warm-up run of each command writes the cache instead.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        init = [python, "-m", "zerog_cli", "init"]
        subprocess.run(init, env=env, capture_output=True, check=True)
        anchor = median_ms([python, "-c", "import typer"], env, args.runs)
        rows = [("python -c 'import typer'", anchor, None)]
        for label, argv in (
            ("zerog --help", ["--help"]),
            ("zerog ledger status", ["ledger", "status"]),
            ("zerog quota show", ["quota", "show"]),
        ):
            ms = median_ms([python, "-m", "zerog_cli", *argv], env, args.runs)
            rows.append((label, ms, GOALS_MS.get(label)))
    print(f"cold start, median of {args.runs} runs")
    for label, ms, goal in rows:
        goal_text = f"  goal {goal} ms: {'met' if ms <= goal else 'MISSED'}" if goal else ""
        print(f"  {label:28s} {ms:7.1f} ms  {ms / anchor:4.2f}x import typer{goal_text}")


if __name__ == "__main__":
    main()
