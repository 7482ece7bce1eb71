"""Generate docs/cli-reference.md from the Typer app; `--check` fails on drift.

Every command's `--help`, rendered at a fixed width so the output does not
depend on the terminal. `make test` runs the check, so the reference can never
fall behind the code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "docs" / "cli-reference.md"
WIDTH = 100

HEADER = """# zerog command reference

Generated from the code by `python tools/cli_reference.py`; `make test` fails if
this file and the code disagree. Exit codes are listed under `zerog --help`.
"""


def walk(command: object, path: list[str]) -> Iterator[tuple[list[str], object]]:
    """Every command in the tree, depth first, in registration order."""
    yield path, command
    if hasattr(command, "list_commands"):
        for name in command.list_commands(None):
            yield from walk(command.get_command(None, name), [*path, name])


def help_text(command: object, path: list[str]) -> str:
    import typer._click as click

    context = click.Context(
        command,  # type: ignore[arg-type]
        info_name=" ".join(path),
        terminal_width=WIDTH,
        max_content_width=WIDTH,
    )
    return command.get_help(context)  # type: ignore[attr-defined,no-any-return]


def render() -> str:
    import typer

    from zerog_cli.cli.app import app

    root = typer.main.get_command(app)
    sections = [HEADER]
    for path, command in walk(root, ["zerog"]):
        level = "#" * min(len(path) + 1, 4)
        sections.append(
            f"{level} `{' '.join(path)}`\n\n```text\n{help_text(command, path).rstrip()}\n```\n"
        )
    return "\n".join(sections)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not REFERENCE.exists() or REFERENCE.read_text(encoding="utf-8") != text:
            print(
                f"{REFERENCE} is out of date: run `python tools/cli_reference.py`", file=sys.stderr
            )
            return 1
        return 0
    REFERENCE.write_text(text, encoding="utf-8")
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
