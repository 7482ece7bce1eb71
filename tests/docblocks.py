"""Run the shell blocks of README.md and runbooks/*.md as tests.

Every fenced block tagged ``sh`` runs, in order, with a fresh ``ZEROG_HOME``
and a scratch working folder per document, exactly as an operator would paste
it into one terminal: each block is its own ``bash`` (errexit, pipefail), and
what a block exports is still exported in the next one. A block passes when it
exits 0, unless an HTML comment right above it says otherwise::

    <!-- expect: exit=3; stdout~mismatch; stderr~"not verified" -->

``exit=N`` is the expected exit code; ``stdout~TEXT`` / ``stderr~TEXT`` require
TEXT in that stream (quote TEXT when it holds spaces or semicolons);
``cwd=repo`` runs the block in the repository instead of the scratch folder
(for ``make`` targets). A block
that cannot run here is marked, with the reason, and is reported as such::

    <!-- no-run: needs a funded mainnet wallet -->

Blocks tagged ``text``, ``toml``, ``ini`` or anything else are not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_FENCE = re.compile(r"^```(\S*)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*(expect|no-run):\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    document: Path
    line: int
    code: str
    exit_code: int = 0
    stdout_contains: list[str] = field(default_factory=list)
    stderr_contains: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    in_repo: bool = False

    @property
    def label(self) -> str:
        return f"{self.document.name}:{self.line}"


def _apply(block: Block, kind: str, argument: str) -> None:
    if kind == "no-run":
        if not argument:
            raise ValueError(f"{block.label}: no-run needs a reason")
        block.skip_reason = argument
        return
    lexer = shlex.shlex(argument, posix=True, punctuation_chars=";")
    lexer.whitespace_split = True
    for token in (t for t in lexer if t != ";"):
        if token.startswith("exit="):
            block.exit_code = int(token[5:])
        elif token.startswith("stdout~"):
            block.stdout_contains.append(token[7:])
        elif token.startswith("stderr~"):
            block.stderr_contains.append(token[7:])
        elif token == "cwd=repo":
            block.in_repo = True
        else:
            raise ValueError(f"{block.label}: unknown expectation {token!r}")


def parse(document: Path) -> list[Block]:
    """The ``sh`` blocks of a markdown document with their expectations."""
    blocks: list[Block] = []
    pending: list[tuple[str, str]] = []
    language: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
        if language is None:
            fence = _FENCE.match(line)
            directive = _DIRECTIVE.match(line)
            if fence:
                language, start, body = fence.group(1), number, []
            elif directive:
                pending.append((directive.group(1), directive.group(2)))
            elif line.strip():
                pending = []
            continue
        if _FENCE.match(line) and line.strip() == "```":
            if language == "sh":
                block = Block(document, start, "\n".join(body))
                for kind, argument in pending:
                    _apply(block, kind, argument)
                blocks.append(block)
            pending, language = [], None
            continue
        body.append(line)
    if language is not None:
        raise ValueError(f"{document}: unclosed code block at line {start}")
    return blocks


@dataclass
class Outcome:
    block: Block
    exit_code: int
    stdout: str
    stderr: str

    def problems(self) -> list[str]:
        found = []
        if self.exit_code != self.block.exit_code:
            found.append(f"exit {self.exit_code}, expected {self.block.exit_code}")
        found += [f"stdout lacks {t!r}" for t in self.block.stdout_contains if t not in self.stdout]
        found += [f"stderr lacks {t!r}" for t in self.block.stderr_contains if t not in self.stderr]
        return found


def run_block(
    block: Block, *, cwd: Path, repo: Path, env: dict[str, str], timeout: float
) -> Outcome:
    """One block in bash with errexit and pipefail; exported variables carry over."""
    state = cwd / ".docblock-exports"
    script = (
        f"[ -f {shlex.quote(str(state))} ] && source {shlex.quote(str(state))}\n"
        f'trap \'export -p | grep -Ev "^declare -x (PWD|OLDPWD|SHLVL|_)=" '
        f"> {shlex.quote(str(state))}' EXIT\n"
        "set -eo pipefail\n" + block.code + "\n"
    )
    completed = subprocess.run(
        ["bash", "-c", script],
        cwd=repo if block.in_repo else cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Outcome(block, completed.returncode, completed.stdout, completed.stderr)


def document_env(home: Path, bin_dir: Path) -> dict[str, str]:
    """A clean environment: zerog on PATH, a private ZEROG_HOME, no inherited zerog settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ZEROG_") or key in ("ZEROG_CONFORMANCE_DIR", "ZEROG_NPM_CACHE")
    }
    for name in ("ENCRYPTION_KEY", "JWT_SECRET", "CIRCLE_API_KEY", "DATABASE_PASSWORD"):
        env.pop(name, None)
    env.update(
        {
            "ZEROG_HOME": str(home),
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "NO_PROXY": "127.0.0.1,localhost",
            "NO_COLOR": "1",
        }
    )
    return env
