"""The root's subcommands, imported and built only when used.

Building every command module up front costs more than Typer itself, so the
root group knows each subcommand by name and one-line summary only; `zerog
ledger status` imports and builds the `ledger` group and nothing else, and
`zerog --help` imports no command module at all. tests/test_cli_docs.py checks
that every summary here equals the first line of the real command's help.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

import typer

from zerog_cli.cli.common import ZerogGroup


@dataclass(frozen=True)
class Entry:
    """A root subcommand: where it lives and how it is attached.

    ``group``: the module's ``app`` is a Typer group. Otherwise the module's
    ``register(app)`` adds the named command(s) to a Typer app.
    """

    name: str
    module: str
    summary: str
    group: bool

    def build(self) -> Any:
        module = importlib.import_module(self.module)
        if self.group:
            command = typer.main.get_command(module.app)
        else:
            holder = typer.Typer(add_completion=False, rich_markup_mode=None)
            module.register(holder)
            built = typer.main.get_command(holder)
            commands = getattr(built, "commands", None)
            command = commands[self.name] if commands is not None else built
        command.name = self.name
        return command


ENTRIES: dict[str, Entry] = {
    entry.name: entry
    for entry in (
        Entry(
            "init",
            "zerog_cli.cli.config_cmd",
            "Create $ZEROG_HOME, the config file (0600) and the ledger for a profile.",
            group=False,
        ),
        Entry(
            "status",
            "zerog_cli.cli.status",
            "Network, endpoints, breakers, ledger, secrets, verification freshness.",
            group=False,
        ),
        Entry(
            "upload",
            "zerog_cli.cli.storage",
            "Store a file on 0G: verify policy and quota, pay once, wait until it reads back.",
            group=False,
        ),
        Entry(
            "download",
            "zerog_cli.cli.storage",
            "Fetch a file, check every proof, its size and SHA-256, then write it.",
            group=False,
        ),
        Entry(
            "hash",
            "zerog_cli.cli.hash_cmd",
            "Compute a file's 0G Merkle root, SHA-256 and submission layout without uploading.",
            group=False,
        ),
        Entry(
            "backup",
            "zerog_cli.cli.backup",
            (
                "Backups: uploads with a record, verified restores, restic-style pruning,"
                " staleness checks."
            ),
            group=True,
        ),
        Entry(
            "verify",
            "zerog_cli.cli.verify",
            (
                "Read backups back from 0G with every proof, compare size and SHA-256,"
                " record the result."
            ),
            group=False,
        ),
        Entry(
            "infer",
            "zerog_cli.cli.infer",
            "Paid chat inference on the 0G compute network, budgeted and logged.",
            group=True,
        ),
        Entry(
            "ns",
            "zerog_cli.cli.ns",
            "Namespaces: named groups of objects with an owner, an ACL and a quota.",
            group=True,
        ),
        Entry(
            "quota",
            "zerog_cli.cli.quota",
            "Per-user limits (storage bytes, tokens, USD per month), tiers and cost reports.",
            group=True,
        ),
        Entry(
            "config",
            "zerog_cli.cli.config_cmd",
            "Show and change configuration (flag > ZEROG_* env > config file > profile).",
            group=True,
        ),
        Entry(
            "secrets",
            "zerog_cli.cli.secrets_cmd",
            "Manage secrets: environment, NAME_FILE paths, the OS keyring or zerog's 0600 store.",
            group=True,
        ),
        Entry(
            "auth",
            "zerog_cli.cli.auth",
            "Show the wallet address, sign and verify messages (EIP-191, EIP-712).",
            group=True,
        ),
        Entry(
            "ledger",
            "zerog_cli.cli.ledger_cmd",
            "Inspect and maintain the ledger (a SQLite file, or PostgreSQL through ledger_url).",
            group=True,
        ),
        Entry(
            "metrics",
            "zerog_cli.cli.metrics_cmd",
            (
                "Prometheus metrics read from the ledger: quotas, costs, breakers,"
                " backup verification."
            ),
            group=True,
        ),
        Entry(
            "devnet",
            "zerog_cli.cli.devnet",
            "A local 0G network (chain, storage nodes, indexer, compute provider) on 127.0.0.1.",
            group=True,
        ),
        Entry(
            "completion",
            "zerog_cli.cli.completion",
            "Print the shell completion script for bash, zsh or fish.",
            group=False,
        ),
    )
}


class LazyGroup(ZerogGroup):
    """A Typer root group that builds a subcommand on first access."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._built: dict[str, Any] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return list(ENTRIES)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = ENTRIES.get(cmd_name)
        if entry is None:
            return None
        if cmd_name not in self._built:
            self._built[cmd_name] = entry.build()
        return self._built[cmd_name]

    def _main_shell_completion(
        self, ctx_args: Any, prog_name: str, complete_var: str | None = None
    ) -> None:
        """Answer a TAB press from `zerog completion SHELL`'s script, then exit.

        Only then is the completion module imported, so other runs do not pay for it.
        """
        instruction = os.environ.get("_ZEROG_COMPLETE")
        if instruction:
            from zerog_cli.cli.completion import answer

            answer(self, ctx_args, instruction)
            raise typer.Exit()

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Each entry's whole summary, without building any command."""
        rows = [(name, entry.summary) for name, entry in ENTRIES.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
