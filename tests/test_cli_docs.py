"""Every command documents itself, and docs/cli-reference.md matches the code."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from tools.cli_reference import REPO, walk
from zerog_cli.cli.app import app

COMMANDS = list(walk(typer.main.get_command(app), ["zerog"]))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_and_an_example(path: list[str], command: object) -> None:
    help_text = getattr(command, "help", None) or ""
    assert help_text.strip(), f"{' '.join(path)} has no help text"
    epilog = getattr(command, "epilog", None) or ""
    assert "Examples:" in epilog, f"{' '.join(path)} has no examples"
    example_lines = [line for line in epilog.splitlines() if line.strip().startswith("$ zerog")]
    assert example_lines, f"{' '.join(path)} has no `$ zerog …` example"


def test_every_help_runs(zerog) -> None:
    for path, _ in COMMANDS:
        result = zerog(*path[1:], "--help")
        assert result.exit_code == 0, (path, result)
        assert "Usage:" in result.stdout


def test_cli_reference_is_up_to_date() -> None:
    checked = subprocess.run(
        [sys.executable, "tools/cli_reference.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_root_summaries_match_each_command_help() -> None:
    from zerog_cli.cli.lazy import ENTRIES

    for name, entry in ENTRIES.items():
        first_line = (entry.build().help or "").strip().splitlines()[0]
        assert first_line.startswith(entry.summary), name


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys; from zerog_cli.cli.app import run; run(['--help']);"
        "prefixes = ('zerog_cli.cli.', 'zerog_cli.services');"
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = shown.stdout.strip().splitlines()[-1]
    assert loaded == "['zerog_cli.cli.app', 'zerog_cli.cli.common', 'zerog_cli.cli.lazy']"
