"""One exit-code policy: services raise errors of zerog_cli/errors.py, and cli/app.py is
the only place that turns them into an exit code. No other module of the CLI layer
picks a code: no ``typer.Exit`` with a non-zero code, no ``sys.exit``, no ``SystemExit``."""

from __future__ import annotations

import ast
from pathlib import Path

import zerog_cli.cli

CLI = Path(zerog_cli.cli.__file__).parent
ROOT = "app.py"


def _name(node: ast.expr) -> str:
    """``typer.Exit`` for an attribute chain, ``Exit`` for a bare name."""
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _zero(call: ast.Call) -> bool:
    """``Exit()`` or ``Exit(0)``/``Exit(code=0)``: success, which picks nothing."""
    values = [*call.args, *(keyword.value for keyword in call.keywords)]
    return all(isinstance(value, ast.Constant) and value.value == 0 for value in values)


def exit_code_decisions(source: str, filename: str) -> list[str]:
    """Where ``source`` ends the process or picks an exit code itself."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        where = f"{filename}:{node.lineno}"
        if name in ("sys.exit", "exit", "os._exit", "SystemExit"):
            found.append(f"{where}: {name}(...)")
        elif name.split(".")[-1] == "Exit" and not _zero(node):
            found.append(f"{where}: {name} with a non-zero code")
    return found


def test_only_the_cli_root_maps_errors_to_exit_codes() -> None:
    modules = sorted(path for path in CLI.glob("*.py") if path.name != ROOT)
    assert len(modules) > 10, "the scan must see the command modules"
    found = [
        problem
        for path in modules
        for problem in exit_code_decisions(path.read_text(encoding="utf-8"), path.name)
    ]
    assert found == [], "raise an error of zerog_cli/errors.py instead:\n" + "\n".join(found)


def test_the_scan_sees_each_way_of_picking_a_code() -> None:
    source = (
        "import sys, typer\n"
        "raise typer.Exit(3)\n"
        "raise typer.Exit(code=report.exit_code)\n"
        "sys.exit(answer())\n"
        "raise SystemExit(2)\n"
        "raise typer.Exit()\n"
        "raise typer.Exit(0)\n"
    )
    assert [line.split(":")[1] for line in exit_code_decisions(source, "x.py")] == [
        "2",
        "3",
        "4",
        "5",
    ]
