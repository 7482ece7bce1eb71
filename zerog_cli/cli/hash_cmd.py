"""`zerog hash PATH`: size, SHA-256 and 0G root in one read."""

from __future__ import annotations

from typing import Annotated

import typer

from zerog_cli.cli.common import command, examples, results, state


def register(app: typer.Typer) -> None:
    command(
        app,
        "hash",
        result=results("hashing.FileHash"),
        epilog=examples(
            "zerog hash backup.tar.gz",
            "zerog hash restored.tar.gz --expect 0x2a82…f9d4",
            "pg_dump app | zerog hash - --json",
        ),
    )(hash_file)


def hash_file(
    path: Annotated[str, typer.Argument(help="File to hash, or - for stdin.")],
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="Exit 3 unless the 0G root equals this.", show_default=False),
    ] = None,
) -> None:
    """Compute a file's 0G Merkle root, SHA-256 and submission layout without uploading."""
    from zerog_cli.services.hashing import describe

    current = state()
    report = describe(path, expect_root=expect)

    def human() -> None:
        nodes = ", ".join(f"h{n.height}" for n in report.submission_nodes)
        current.output.fields(
            [
                ("root", report.root),
                ("sha256", report.sha256),
                ("size", f"{report.size} bytes"),
                ("chunks", f"{report.chunks} (padded {report.padded_chunks})"),
                ("segments", f"{report.segments} (padded {report.padded_segments})"),
                ("nodes", f"{len(report.submission_nodes)}: {nodes}"),
                ("fee sectors", report.fee_sectors),
            ]
        )

    current.output.result(report, human)
