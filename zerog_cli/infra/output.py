"""Output: results on stdout, messages on stderr, one JSON document with --json.

Human results (tables, values a script might capture) go to stdout; progress,
notices and warnings go to stderr. With ``--json`` stdout carries exactly one
JSON document and nothing else. Colour is off when the stream is not a TTY or
``NO_COLOR`` is set. Everything printed passes through `redaction.scrub`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from zerog_cli.infra import redaction

if TYPE_CHECKING:
    from rich.console import Console


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default, ensure_ascii=False)


@dataclass
class Column:
    """A table column: the row key, its header, and an optional formatter."""

    key: str
    header: str
    format: Callable[[Any], str] | None = None
    justify: str = "left"

    def render(self, row: dict[str, Any]) -> str:
        value = row.get(self.key)
        if self.format is not None:
            return self.format(value)
        return "" if value is None else str(value)


@dataclass
class Output:
    json_mode: bool = False
    verbose: bool = False
    quiet: bool = False
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    _json_emitted: bool = False

    @property
    def color(self) -> bool:
        return "NO_COLOR" not in os.environ and self.stderr.isatty()

    def _write(self, stream: IO[str], text: str) -> None:
        stream.write(redaction.scrub(text) + "\n")
        stream.flush()

    def result(self, data: Any, human: Callable[[], None] | str | None = None) -> None:
        """The command's result: JSON on stdout, or the human rendering."""
        if self.json_mode:
            if self._json_emitted:
                raise RuntimeError("a command emitted two JSON documents")
            self._json_emitted = True
            self._write(self.stdout, to_json(data))
        elif callable(human):
            human()
        elif human is not None:
            self._write(self.stdout, human)

    def failure(self, document: dict[str, Any]) -> None:
        """With --json, a failure's document on stdout, unless a result was printed already."""
        if self.json_mode and not self._json_emitted:
            self._json_emitted = True
            self._write(self.stdout, to_json(document))

    def echo(self, text: str) -> None:
        """A human result line on stdout (nothing in JSON mode)."""
        if not self.json_mode:
            self._write(self.stdout, text)

    def info(self, text: str) -> None:
        """A message on stderr, hidden by --quiet."""
        if not self.quiet:
            self._write(self.stderr, text)

    def detail(self, text: str) -> None:
        """A message on stderr shown only with --verbose."""
        if self.verbose:
            self._write(self.stderr, text)

    def warn(self, text: str) -> None:
        """A warning on stderr, hidden by --quiet (which keeps errors only)."""
        if not self.quiet:
            self._write(self.stderr, f"warning: {text}")

    def error(self, text: str) -> None:
        self._write(self.stderr, f"error: {text}")

    def console(self, stream: IO[str] | None = None) -> Console:
        from rich.console import Console

        target = stream or self.stdout
        return Console(
            file=target,
            no_color=not self.color,
            highlight=False,
            soft_wrap=False,
            width=None if target.isatty() else 200,
        )

    def table(
        self,
        rows: Sequence[dict[str, Any]],
        columns: Iterable[Column],
        *,
        title: str | None = None,
        empty: str = "(none)",
    ) -> None:
        """An aligned plain-text table on stdout (human mode only; JSON goes via `result`)."""
        if self.json_mode:
            return
        columns = list(columns)
        if not rows:
            self.echo(empty if not title else f"{title}: {empty}")
            return
        cells = [[redaction.scrub(column.render(row)) for column in columns] for row in rows]
        headers = [column.header for column in columns]
        widths = [
            max(len(headers[i]), *(len(line[i]) for line in cells)) for i in range(len(columns))
        ]

        def line(values: Sequence[str]) -> str:
            parts = [
                value.rjust(width) if column.justify == "right" else value.ljust(width)
                for value, width, column in zip(values, widths, columns, strict=True)
            ]
            return "  ".join(parts).rstrip()

        if title:
            self.echo(title)
        header = line(headers)
        self.echo(f"\x1b[1m{header}\x1b[0m" if self.color and self.stdout.isatty() else header)
        for values in cells:
            self.echo(line(values))

    def fields(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """Aligned ``key: value`` lines on stdout (human mode only)."""
        if self.json_mode:
            return
        width = max((len(key) for key, _ in pairs), default=0)
        for key, value in pairs:
            self.echo(f"{key + ':':<{width + 1}} {'' if value is None else value}")
