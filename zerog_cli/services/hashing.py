"""`zerog hash`: everything 0G needs to know about a file, from one read of it."""

from __future__ import annotations

from typing import Any

from zerog_cli.errors import IntegrityError
from zerog_cli.infra.stdin import standard_input
from zerog_cli.zerog.merkle import tree_from_path, tree_from_stream
from zerog_cli.zerog.roots import parse_root


def describe(path: str, *, expect_root: str | None = None) -> dict[str, Any]:
    """Size, SHA-256, 0G root, chunk and segment counts, submission nodes, fee sectors.

    ``path`` "-" reads stdin. With ``expect_root`` a different root is an
    IntegrityError (exit 3), so restores and pre-upload checks can be scripted.
    """
    expected = parse_root(expect_root) if expect_root else None
    if path == "-":
        stdin = standard_input("`zerog hash -`").buffer
        tree, sha256 = tree_from_stream(stdin, name="stdin")
    else:
        tree, sha256 = tree_from_path(path)
    report: dict[str, Any] = {
        "path": path,
        "size": tree.size,
        "sha256": sha256,
        "root": tree.root_hex,
        "chunks": tree.num_chunks,
        "padded_chunks": tree.padded_chunks,
        "segments": tree.num_data_segments,
        "padded_segments": tree.num_padded_segments,
        "submission_nodes": [
            {"root": "0x" + node.root.hex(), "height": node.height}
            for node in tree.submission_nodes
        ],
        "fee_sectors": tree.fee_sectors,
    }
    if expected is not None and expected != tree.root_hex:
        raise IntegrityError(f"{path}: 0G root is {tree.root_hex}, expected {expected}")
    return report
