"""The layers of docs/development.md and DESIGN.md, checked on every import in the package.

cli → services → zerog | ledger → infra: a module imports its own layer or one
below, never one above (function-level and TYPE_CHECKING imports included, so a
lazy import cannot hide an upward one). zerog (protocol) and ledger (SQL) are
side by side and do not import each other. The devnet is a separate top: it may
use the protocol layer and infra, and only its service (``services/devnet.py``,
which the ``devnet`` command group calls) imports it. ``errors`` is the one
exception hierarchy every layer raises.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import zerog_cli

PACKAGE = Path(zerog_cli.__file__).parent

MAY_IMPORT: dict[str, set[str]] = {
    "cli": {"cli", "services", "ledger", "infra", "errors"},
    "services": {"services", "zerog", "ledger", "infra", "errors"},
    "zerog": {"zerog", "infra", "errors"},
    "ledger": {"ledger", "infra", "errors"},
    "infra": {"infra", "errors"},
    "devnet": {"devnet", "zerog", "infra", "errors"},
    "errors": {"errors"},
    "__main__": {"cli"},
    "__init__": set(),
}
DEVNET_IMPORTERS = ("services/devnet.py",)
"""The only module outside the devnet that may import it: the service behind `zerog devnet`."""


def layer_of(relative: Path) -> str:
    """``cli`` for cli/app.py, ``errors`` for errors.py."""
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """Every ``zerog_cli`` module ``source`` imports, anywhere in it, with its line.

    ``module`` is the dotted name of the importing module, to resolve relative imports.
    """
    found = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return [(line, name) for line, name in found if name.split(".")[0] == "zerog_cli"]


def violations(relative: Path, source: str) -> list[str]:
    """The imports of the module at ``relative`` (inside the package) that break the layers."""
    module = "zerog_cli." + ".".join(relative.with_suffix("").parts)
    layer = layer_of(relative)
    allowed = MAY_IMPORT[layer]
    problems = []
    for line, name in imported_modules(source, module):
        parts = name.split(".")
        if len(parts) < 2:
            continue
        target = parts[1]
        where = f"{relative}:{line} imports {name}"
        if target == "devnet" and layer != "devnet":
            if relative.as_posix() not in DEVNET_IMPORTERS:
                problems.append(f"{where}: only {', '.join(DEVNET_IMPORTERS)} may use the devnet")
        elif target not in allowed:
            problems.append(f"{where}: {layer} may import {', '.join(sorted(allowed))}")
    return problems


def package_modules() -> list[Path]:
    return sorted(path.relative_to(PACKAGE) for path in PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_known_layer() -> None:
    unknown = sorted({layer_of(path) for path in package_modules()} - set(MAY_IMPORT))
    assert unknown == [], f"add these layers to MAY_IMPORT and DESIGN.md: {unknown}"


def test_no_module_imports_a_layer_above_it() -> None:
    problems = []
    for relative in package_modules():
        problems += violations(relative, (PACKAGE / relative).read_text(encoding="utf-8"))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("path", "source", "why"),
    [
        (
            "zerog/download.py",
            "def fetch():\n    from zerog_cli.ledger import objects\n",
            "zerog may import",
        ),
        (
            "ledger/quotas.py",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from zerog_cli.services.context import Context\n",
            "ledger may import",
        ),
        ("services/upload.py", "import zerog_cli.cli.app\n", "services may import"),
        ("infra/http.py", "from ..zerog import evm\n", "infra may import"),
        ("services/status.py", "from zerog_cli.devnet import control\n", "only services/devnet.py"),
        ("cli/devnet.py", "from zerog_cli.devnet import control\n", "only services/devnet.py"),
        ("ledger/db.py", "from zerog_cli.devnet import control\n", "only services/devnet.py"),
        ("devnet/chain.py", "from zerog_cli.services import quotas\n", "devnet may import"),
    ],
)
def test_an_upward_import_is_caught(path: str, source: str, why: str) -> None:
    (problem,) = violations(Path(path), source)
    assert why in problem and path in problem


def test_imports_down_the_layers_pass() -> None:
    source = (
        "from zerog_cli.errors import UsageError\n"
        "from zerog_cli.infra.config import Settings\n"
        "def later():\n"
        "    from zerog_cli.ledger import objects\n"
        "    from zerog_cli.zerog import download\n"
        "    from . import quotas\n"
    )
    assert violations(Path("services/upload.py"), source) == []
    assert violations(Path("services/devnet.py"), "from zerog_cli.devnet import control\n") == []
