"""`make test` installs every external tool before the first test (issue 12, item 1).

On a fresh machine, tests/test_docs.py ran the readiness checklist's
`promtool` before anything had installed Prometheus (exit 127). The install
is now one step, `tools/test_tools.py ensure`, which tests/run_suite.py runs
before pytest. Here it runs from a real command line against a stand-in
``apt-get`` on PATH that records how it was called and "installs" the
commands, so the test needs neither the network nor a machine without the
packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import run_suite
from tests.conftest import REPO, clear_zerog_environment
from tests.devnet_harness import CHAIN_SWITCH, INDEXER_SWITCH

PROMETHEUS_COMMANDS = (
    "promtool",
    "prometheus",
    "prometheus-node-exporter",
    "prometheus-pushgateway",
)

FAKE_APT_GET = """#!{python}
import json, os, sys
from pathlib import Path

bin_dir = Path(sys.argv[0]).parent
args = [a for a in sys.argv[1:] if not a.startswith(("-o", "DPkg::", "Dpkg::"))]
with open(bin_dir / "apt-get.log", "a") as log:
    log.write(json.dumps({{
        "args": args,
        "frontend": os.environ.get("DEBIAN_FRONTEND"),
        "stdin_is_tty": os.isatty(0),
        "options": [a for a in sys.argv[1:] if a.startswith(("DPkg::", "Dpkg::"))],
    }}) + "\\n")
if args[0] == "install":
    if {fail_install}:
        print("E: Unable to locate package prometheus-pushgateway", file=sys.stderr)
        sys.exit(100)
    for name in {commands!r}:
        path = bin_dir / name
        path.write_text("#!/bin/sh\\necho " + name + "\\n")
        path.chmod(0o755)
"""


def fake_bin(tmp_path: Path, *, fail_install: bool = False) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt_get = bin_dir / "apt-get"
    apt_get.write_text(
        FAKE_APT_GET.format(
            python=sys.executable, fail_install=fail_install, commands=PROMETHEUS_COMMANDS
        )
    )
    apt_get.chmod(0o755)
    return bin_dir


def run_tools(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python tools/test_tools.py ARGS` with only the stand-in folder on PATH, no TTY."""
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "test_tools.py"), *args],
        env={"PATH": str(bin_dir), "HOME": str(bin_dir.parent)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def apt_calls(bin_dir: Path) -> list[dict[str, object]]:
    log = bin_dir / "apt-get.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_ensure_installs_the_prometheus_packages_once_then_is_a_no_op(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path)

    first = run_tools(bin_dir, "ensure", "prometheus")

    assert first.returncode == 0, first.stderr
    assert "installing Debian packages: prometheus prometheus-node-exporter" in first.stderr
    calls = apt_calls(bin_dir)
    assert [call["args"] for call in calls] == [
        ["update"],
        [
            "install",
            "-y",
            "--no-install-recommends",
            "prometheus",
            "prometheus-node-exporter",
            "prometheus-pushgateway",
        ],
    ]
    for call in calls:
        assert call["frontend"] == "noninteractive"
        assert call["stdin_is_tty"] is False
        assert "Dpkg::Options::=--force-confold" in call["options"]
    assert all((bin_dir / name).exists() for name in PROMETHEUS_COMMANDS)
    assert "prometheus   present" in first.stdout

    second = run_tools(bin_dir, "ensure", "prometheus")

    assert second.returncode == 0, second.stderr
    assert len(apt_calls(bin_dir)) == 2, "everything present: apt-get must not run again"
    assert second.stderr == ""


def test_a_failed_install_stops_the_step_with_apt_gets_reason(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, fail_install=True)

    completed = run_tools(bin_dir, "ensure", "prometheus")

    assert completed.returncode == 1
    assert "apt-get install failed (exit 100)" in completed.stderr
    assert "Unable to locate package prometheus-pushgateway" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_tool_not_installed_by_the_step_is_named_with_what_is_missing(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path)

    completed = run_tools(bin_dir, "ensure", "ts-sdk")

    assert completed.returncode == 1
    assert "ts-sdk needs node, npm on PATH" in completed.stderr
    assert apt_calls(bin_dir) == []


def test_an_unknown_tool_name_is_refused(tmp_path: Path) -> None:
    completed = run_tools(fake_bin(tmp_path), "ensure", "grafana")

    assert completed.returncode == 1
    assert "unknown tool(s) grafana; known: prometheus, ts-sdk" in completed.stderr


def test_make_test_installs_the_tools_after_lint_and_before_pytest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[tuple[str, tuple[str, ...]]] = []
    monkeypatch.setattr(run_suite, "run", lambda step, *command: steps.append((step, command)))
    monkeypatch.setattr(sys, "argv", ["run_suite.py", "tests/test_docs.py"])

    run_suite.main()

    assert [step for step, _ in steps] == ["ruff", "ruff format", "mypy", "test tools", "pytest"]
    assert steps[3][1][1:] == ("tools/test_tools.py", "ensure")
    assert steps[4][1][-1] == "tests/test_docs.py"
    assert "--durations=25" in steps[4][1], "every CI log lists the slowest tests"


def test_make_test_fails_when_pytest_collects_nothing() -> None:
    with pytest.raises(SystemExit) as stopped:
        run_suite.run("pytest", sys.executable, "-c", "raise SystemExit(5)")

    assert stopped.value.code == "pytest collected no tests: failing on purpose"


def test_the_devnet_switches_survive_the_cleared_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CHAIN_SWITCH, "anvil")
    monkeypatch.setenv(INDEXER_SWITCH, "official")
    monkeypatch.setenv("ZEROG_RPC_URL", "http://127.0.0.1:1")
    clear_zerog_environment(monkeypatch)
    assert os.environ[CHAIN_SWITCH] == "anvil" and os.environ[INDEXER_SWITCH] == "official"
    assert "ZEROG_RPC_URL" not in os.environ
