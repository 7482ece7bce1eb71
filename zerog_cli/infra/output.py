"""Output: results on stdout, messages on stderr, one JSON document with --json.

Human results (tables, values a script might capture) go to stdout; progress,
notices and warnings go to stderr. With ``--json`` stdout carries exactly one
JSON document and nothing else. Colour is off when the stream is not a TTY or
``NO_COLOR`` is set. Everything printed passes through `redaction.scrub`.

Names, labels and messages can come from the ledger or the network, where
anyone may have put a terminal escape sequence or a line break that forges an
``error:`` line. `terminal_safe` is the one place that makes such text
printable: every control character is shown as its escape (``\\x1b``), so the
terminal never acts on one. Human output passes through it; JSON output
escapes the same characters as ``\\uXXXX``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from zerog_cli.infra import redaction

if TYPE_CHECKING:
    from rich.console import Console

_Result = TypeVar("_Result")

# C0 controls but tab and line feed, DEL, C1 controls, and the Unicode marks that
# reorder or break lines on display (bidi overrides and isolates, line/paragraph separators).
_LAYOUT_MARKS = "\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_LAYOUT_MARKS}]")
_UNSAFE_IN_A_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_LAYOUT_MARKS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def terminal_safe(text: str, *, one_line: bool = False) -> str:
    """``text`` with every control character shown as its escape (``\\x1b``, ``\\r``).

    Line feeds and tabs stay unless ``one_line``: a table cell, a field value or
    an ``error:`` line is one line whatever a name or a node's message holds.
    """
    return (_UNSAFE_IN_A_LINE if one_line else _UNSAFE).sub(_escaped, text)


def control_characters(text: str) -> list[str]:
    """The control characters (line breaks and tabs included) in ``text``, escaped."""
    return [_escaped(match) for match in _UNSAFE_IN_A_LINE.finditer(text)]


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


def to_document(value: Any) -> Any:
    """A typed result as JSON data: a dataclass's fields in declaration order, an enum's value.

    The one way a result becomes JSON, so a document holds exactly the fields
    its type declares and `tools/json_schema.py` can publish its schema. A field
    whose JSON key is no Python name (``0g``) says it in its metadata: ``json_key``.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    fields = _FIELD_KEYS.get(kind)
    if fields is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = _field_keys(kind)
    if fields is not None:
        keys, names = fields
        attributes = getattr(value, "__dict__", None)
        if names and attributes is not None and tuple(attributes) == names:
            # The instance holds exactly its fields, in order, each named as its key: copy
            # them at once and convert only what is not its own JSON (a listing's rows).
            document = dict(attributes)
            for key, item in attributes.items():
                if type(item) not in _PLAIN:
                    document[key] = to_document(item)
            return document
        return {
            key: item if type(item) in _PLAIN else to_document(item)
            for key, name in keys
            for item in (getattr(value, name),)
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [to_document(item) for item in value]
    if isinstance(value, Iterator):
        return (to_document(item) for item in value)
    if isinstance(value, dict):
        return {str(key): to_document(item) for key, item in value.items()}
    return value


_PLAIN = frozenset({str, int, float, bool, type(None)})
"""Types that are their own JSON (exactly these: an enum that is also a str is not)."""


_FIELD_KEYS: dict[type, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {}


def copied_fields(kind: type[_Result], source: Any, **values: Any) -> _Result:
    """A ``kind`` dataclass holding the fields it shares by name with the dataclass
    ``source``, then ``values``: one result type made from another."""
    wanted = {item.name for item in dataclasses.fields(kind)}  # type: ignore[arg-type]
    shared = {
        item.name: getattr(source, item.name)
        for item in dataclasses.fields(source)
        if item.name in wanted
    }
    return kind(**{**shared, **values})


def _field_keys(kind: type) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(JSON key, attribute) of each field of dataclass ``kind``, and the fields' names when
    each is its own key (else ``()``), worked out once per class: a listing converts
    100,000 rows of the same type."""
    known = _FIELD_KEYS.get(kind)
    if known is None:
        keys = tuple((json_key(item), item.name) for item in dataclasses.fields(kind))
        names = tuple(name for _key, name in keys)
        plain = all(key == name for key, name in keys)
        known = _FIELD_KEYS[kind] = (keys, names if plain else ())
    return known


def json_key(item: dataclasses.Field[Any]) -> str:
    """The JSON key of a dataclass field: its ``json_key`` metadata, else its name."""
    return str(item.metadata.get("json_key", item.name))


def schema_id(command_path: Sequence[str]) -> str:
    """The ``schema`` of a command's JSON document: ``zerog.backup.ls/1`` for ``backup ls``."""
    return "zerog." + ".".join(command_path) + "/1"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


_ONE_LINE = json.JSONEncoder(default=_json_default, ensure_ascii=False)
_LINES_PER_WRITE = 512


def json_lines(data: Any) -> Iterator[str]:
    """The JSON document as lines: objects indented by two spaces, and each object or
    array inside an array on one line of its own.

    One line per record keeps a listing of 100,000 backups greppable and lets the C
    encoder write it (the indenting encoder is pure Python: ~30x slower). A list may
    be any iterable, a generator too, so rows stream from the ledger to stdout.
    """
    yield from _lines(data, "", "")


def _lines(value: Any, pad: str, head: str) -> Iterator[str]:
    if hasattr(value, "to_json") and not isinstance(value, dict | list | tuple):
        value = value.to_json()
    if isinstance(value, dict):
        if not value:
            yield head + "{}"
            return
        yield head + "{"
        inner = pad + "  "
        last = len(value) - 1
        for index, (key, item) in enumerate(value.items()):
            lines = _lines(item, inner, f"{inner}{_ONE_LINE.encode(str(key))}: ")
            yield from (lines if index == last else _with_comma(lines))
        yield pad + "}"
    elif isinstance(value, list | tuple | set | frozenset | Iterator):
        inner = pad + "  "
        previous: str | None = None
        for item in value:
            if previous is None:
                yield head + "["
            else:
                yield previous + ","
            previous = inner + _ONE_LINE.encode(item)
        if previous is None:
            yield head + "[]"
        else:
            yield previous
            yield pad + "]"
    else:
        yield head + _ONE_LINE.encode(value)


def _with_comma(lines: Iterator[str]) -> Iterator[str]:
    """``lines`` with a comma after the last one, one line held back at a time."""
    previous = next(lines)
    for line in lines:
        yield previous
        previous = line
    yield previous + ","


def _json_safe(text: str) -> str:
    """The control characters JSON allows raw (DEL, C1, layout marks) escaped, secrets masked.

    The encoder escapes every C0 control already, so ASCII text without DEL holds none
    of them: it skips the scan (a listing of 100,000 backups writes 88 MB of it).
    """
    scrubbed = redaction.scrub(text)
    if scrubbed.isascii() and "\x7f" not in scrubbed:
        return scrubbed
    return _UNSAFE.sub(_json_escape, scrubbed)


def to_json(data: Any) -> str:
    """The document `json_lines` writes, as one string."""
    return _json_safe("\n".join(json_lines(data)))


@dataclass
class Column:
    """A table column: the row key, its header, and an optional formatter."""

    key: str
    header: str
    format: Callable[[Any], str] | None = None
    justify: str = "left"

    def render(self, row: Any) -> str:
        """The cell of ``row``, a dict or a typed result."""
        value = row.get(self.key) if isinstance(row, dict) else getattr(row, self.key, None)
        if self.format is not None:
            return self.format(value)
        return "" if value is None else str(value)


_TABLE_BLOCK = 500
"""Rows of a table aligned and written together (see `Output.table`)."""


def _table_line(values: Sequence[str], widths: Sequence[int], columns: Sequence[Column]) -> str:
    parts = [
        value.rjust(width) if column.justify == "right" else value.ljust(width)
        for value, width, column in zip(values, widths, columns, strict=True)
    ]
    return "  ".join(parts).rstrip()


@dataclass
class Output:
    json_mode: bool = False
    verbose: bool = False
    quiet: bool = False
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    schema: str | None = None
    """The running command's document schema (``zerog.backup.ls/1``), set as it starts."""
    declares: Callable[[object], bool] | None = None
    """Whether a value is of the result type (or union) the running command declares;
    `result` takes nothing else."""
    _json_emitted: bool = False

    @property
    def color(self) -> bool:
        return "NO_COLOR" not in os.environ and self.stderr.isatty()

    def _write(
        self, stream: IO[str], text: str, *, one_line: bool = False, bold: bool = False
    ) -> None:
        safe = terminal_safe(redaction.scrub(text), one_line=one_line)
        stream.write((f"\x1b[1m{safe}\x1b[0m" if bold else safe) + "\n")
        stream.flush()

    def _write_json(self, data: Any) -> None:
        """The document on stdout, written as it is encoded, a batch of lines at a time."""
        batch: list[str] = []
        for line in json_lines(data):
            batch.append(line)
            if len(batch) == _LINES_PER_WRITE:
                self.stdout.write(_json_safe("\n".join(batch)) + "\n")
                batch.clear()
        self.stdout.write(_json_safe("\n".join(batch)) + "\n")
        self.stdout.flush()

    def result(self, data: Any, human: Callable[[], None] | str | None = None) -> None:
        """The command's result: its JSON document on stdout, or the human rendering.

        ``data`` is the command's declared result type; its document is
        ``{"schema": "zerog.<command>/1", ...its fields}``.
        """
        if self.declares is not None and not self.declares(data):
            raise TypeError(f"{self.schema} does not declare {type(data).__name__} as its result")
        if self.json_mode:
            if self._json_emitted:
                raise RuntimeError("a command emitted two JSON documents")
            self._json_emitted = True
            self._write_json({"schema": self.schema, **to_document(data)})
        elif callable(human):
            human()
        elif human is not None:
            self._write(self.stdout, human)

    def failure(self, schema: str, document: Any) -> None:
        """With --json, a failure's document on stdout, unless a result was printed already."""
        if self.json_mode and not self._json_emitted:
            self._json_emitted = True
            self._write_json({"schema": schema, **to_document(document)})

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
            self._write(self.stderr, f"warning: {text}", one_line=True)

    def error(self, text: str) -> None:
        self._write(self.stderr, f"error: {text}", one_line=True)

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
        rows: Iterable[Any],
        columns: Iterable[Column],
        *,
        title: str | None = None,
        empty: str = "(none)",
    ) -> None:
        """An aligned plain-text table on stdout (human mode only; JSON goes via `result`).

        ``rows`` may be a generator: the table is printed ``_TABLE_BLOCK`` rows at a
        time, so a listing streams from the ledger to the terminal with flat memory.
        A column is as wide as the widest cell printed so far: it widens for a later
        block that needs it and never narrows (a table of one block is aligned exactly).
        """
        if self.json_mode:
            return
        columns = list(columns)
        headers = [column.header for column in columns]
        widths = [len(header) for header in headers]
        remaining = iter(rows)
        printed_header = False
        while block := list(itertools.islice(remaining, _TABLE_BLOCK)):
            scrub = redaction.scrubber()
            cells = [
                [terminal_safe(scrub(column.render(row)), one_line=True) for column in columns]
                for row in block
            ]
            widths = [max(widths[i], *(len(line[i]) for line in cells)) for i in range(len(widths))]
            if not printed_header:
                if title:
                    self.echo(title)
                header_line = _table_line(headers, widths, columns)
                self._write(self.stdout, header_line, bold=self.color and self.stdout.isatty())
                printed_header = True
            self._write(self.stdout, "\n".join(_table_line(v, widths, columns) for v in cells))
        if not printed_header:
            self.echo(empty if not title else f"{title}: {empty}")

    def fields(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """Aligned ``key: value`` lines on stdout (human mode only)."""
        if self.json_mode:
            return
        width = max((len(key) for key, _ in pairs), default=0)
        for key, value in pairs:
            shown = terminal_safe("" if value is None else str(value), one_line=True)
            self.echo(f"{key + ':':<{width + 1}} {shown}")
