"""Generate docs/json/ from the result types; `--check` fails on drift.

One JSON Schema (draft 2020-12) per command that takes ``--json``, derived
from the dataclass it declares (`command(..., result=...)`), plus the error
document. A field's schema follows its type: ``str``, ``int``, ``float``,
``bool``, ``None`` and their unions, ``list``/``tuple``, ``dict[str, ...]``,
``Literal``, enums, ``bytes`` (printed as 0x and hex), and nested dataclasses
(under ``$defs``). Every field is always present (``None`` when it has no
value), so every field is required and no other key is allowed. `make test`
runs the check, so the published contract can never fall behind the code.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections import abc
from collections.abc import Iterator
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "docs" / "json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema_file(schema: str) -> Path:
    """``zerog.backup.ls/1`` → docs/json/zerog.backup.ls.v1.json."""
    name, version = schema.rsplit("/", 1)
    return SCHEMAS / f"{name}.v{version}.json"


class _Builder:
    """Schemas of one document: each nested dataclass once, under ``$defs``."""

    def __init__(self) -> None:
        self.definitions: dict[str, Any] = {}
        self._owners: dict[str, type] = {}

    def of_type(self, hint: Any) -> dict[str, Any]:
        origin = typing.get_origin(hint)
        arguments = typing.get_args(hint)
        if hint is type(None) or hint is None:
            return {"type": "null"}
        if origin in (typing.Union, types.UnionType):
            choices = [self.of_type(argument) for argument in arguments]
            if all(list(choice) == ["type"] for choice in choices):
                return {"type": [choice["type"] for choice in choices]}
            return {"anyOf": choices}
        if origin is typing.Literal:
            return {"enum": list(arguments)}
        if origin in (list, tuple, frozenset, set, typing.Sequence, abc.Iterable, abc.Iterator):
            if origin is tuple and arguments and arguments[-1] is not Ellipsis:
                return {
                    "type": "array",
                    "prefixItems": [self.of_type(argument) for argument in arguments],
                    "minItems": len(arguments),
                    "maxItems": len(arguments),
                }
            return {"type": "array", "items": self.of_type(arguments[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.of_type(arguments[1])}
        if hint is Any:
            return {}
        if isinstance(hint, type):
            return self._of_class(hint)
        raise TypeError(f"no JSON schema for type {hint!r}")

    def _of_class(self, hint: type) -> dict[str, Any]:
        if hint is bool:
            return {"type": "boolean"}
        if hint is int:
            return {"type": "integer"}
        if hint is float:
            return {"type": "number"}
        if hint in (str, Path, Decimal):
            return {"type": "string"}
        if hint is bytes:
            return {"type": "string", "pattern": "^0x([0-9a-f]{2})*$"}
        if issubclass(hint, Enum):
            return {"enum": [member.value for member in hint]}
        if dataclasses.is_dataclass(hint):
            name = hint.__name__
            owner = self._owners.setdefault(name, hint)
            if owner is not hint:
                raise TypeError(f"two result types named {name}: {owner} and {hint}")
            if name not in self.definitions:
                self.definitions[name] = {}
                self.definitions[name] = self.of_dataclass(hint)
            return {"$ref": f"#/$defs/{name}"}
        raise TypeError(f"no JSON schema for type {hint!r}")

    def of_dataclass(self, cls: type, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        from zerog_cli.infra.output import json_key

        hints = typing.get_type_hints(cls)
        properties = dict(extra or {})
        for item in dataclasses.fields(cls):
            properties[json_key(item)] = self.of_type(hints[item.name])
        schema: dict[str, Any] = {"type": "object"}
        if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
            schema["description"] = " ".join(cls.__doc__.split("\n\n")[0].split())
        schema["properties"] = properties
        schema["required"] = list(properties)
        schema["additionalProperties"] = False
        return schema


def document_schema(schema: str, declared: Any, title: str) -> dict[str, Any]:
    """The JSON Schema of the document ``Output.result`` prints for ``declared``: a
    dataclass, or a union of them (a command whose options pick the result)."""
    builder = _Builder()
    extra = {"schema": {"const": schema}}
    choices = typing.get_args(declared) or (declared,)
    bodies = [builder.of_dataclass(cls, extra) for cls in choices]
    body = bodies[0] if len(bodies) == 1 else {"anyOf": bodies}
    document: dict[str, Any] = {"$schema": DRAFT, "$id": schema, "title": title, **body}
    if builder.definitions:
        document["$defs"] = dict(sorted(builder.definitions.items()))
    return document


def json_commands() -> Iterator[tuple[list[str], Any]]:
    """Every command that takes ``--json``: its path under ``zerog`` and its Click command."""
    import typer

    from tools.cli_reference import walk
    from zerog_cli.cli.app import app

    root = typer.main.get_command(app)
    for path, command in walk(root, []):
        if hasattr(command, "list_commands"):
            continue
        if any("--json" in getattr(p, "opts", ()) for p in command.params):  # type: ignore[attr-defined]
            yield path, command


def expected() -> dict[Path, str]:
    """Every schema file and its text, from the code."""
    from zerog_cli.cli.app import ERROR_SCHEMA, ErrorDocument
    from zerog_cli.cli.common import result_type
    from zerog_cli.infra.output import schema_id

    documents = {ERROR_SCHEMA: document_schema(ERROR_SCHEMA, ErrorDocument, "zerog error")}
    for path, command in json_commands():
        declared = result_type(command.callback)
        if declared is None:
            continue
        schema = schema_id(path)
        documents[schema] = document_schema(schema, declared, f"zerog {' '.join(path)} --json")
    return {
        schema_file(schema): json.dumps(document, indent=2) + "\n"
        for schema, document in sorted(documents.items())
    }


def main(argv: list[str]) -> int:
    wanted = expected()
    present = set(SCHEMAS.glob("*.json")) if SCHEMAS.is_dir() else set()
    if "--check" in argv:
        stale = sorted(
            str(path.relative_to(REPO))
            for path, text in wanted.items()
            if not path.exists() or path.read_text(encoding="utf-8") != text
        )
        stale += sorted(str(path.relative_to(REPO)) for path in present - set(wanted))
        if stale:
            print(
                f"{', '.join(stale)} out of date: run `python tools/json_schema.py`",
                file=sys.stderr,
            )
            return 1
        return 0
    SCHEMAS.mkdir(parents=True, exist_ok=True)
    for path in present - set(wanted):
        path.unlink()
    for path, text in wanted.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(wanted)} schemas to {SCHEMAS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
