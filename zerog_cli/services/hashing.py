"""`zerog hash`: everything 0G needs to know about a file, from one read of it."""

from __future__ import annotations

from dataclasses import dataclass

from zerog_cli.errors import IntegrityError
from zerog_cli.infra.stdin import standard_input
from zerog_cli.zerog.merkle import tree_from_path, tree_from_stream
from zerog_cli.zerog.roots import parse_root


@dataclass(frozen=True)
class SubmissionNode:
    """A node of the Flow submission: its Merkle root and height."""

    root: str
    height: int


@dataclass(frozen=True)
class FileHash:
    """`zerog hash`: what 0G needs to know about a file (its root, layout and fee sectors)."""

    path: str
    size: int
    sha256: str
    root: str
    chunks: int
    padded_chunks: int
    segments: int
    padded_segments: int
    submission_nodes: list[SubmissionNode]
    fee_sectors: int


def describe(path: str, *, expect_root: str | None = None) -> FileHash:
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
    assert sha256 is not None, "tree_from_* hash the bytes by default"
    report = FileHash(
        path=path,
        size=tree.size,
        sha256=sha256,
        root=tree.root_hex,
        chunks=tree.num_chunks,
        padded_chunks=tree.padded_chunks,
        segments=tree.num_data_segments,
        padded_segments=tree.num_padded_segments,
        submission_nodes=[
            SubmissionNode(root="0x" + node.root.hex(), height=node.height)
            for node in tree.submission_nodes
        ],
        fee_sectors=tree.fee_sectors,
    )
    if expected is not None and expected != tree.root_hex:
        raise IntegrityError(f"{path}: 0G root is {tree.root_hex}, expected {expected}")
    return report
