"""`zerog hash`: the conformance roots through the CLI, stdin, --expect."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conformance import load_vectors

SMALL_VECTORS = [v for v in load_vectors("storage-roots.json") if v["size"] <= 1_100_000]


@pytest.mark.parametrize("vector", SMALL_VECTORS, ids=lambda v: v["name"])
def test_hash_matches_the_official_sdk(zerog, tmp_path: Path, vector: dict) -> None:
    data = eval(vector["generator"]["python"], {"size": vector["size"], "hashlib": hashlib})
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    result = zerog("hash", str(path), "--json")
    assert result.exit_code == 0, result
    report = result.json
    assert report["root"] == vector["root"]
    assert report["size"] == vector["size"]
    assert report["sha256"] == hashlib.sha256(data).hexdigest()
    assert report["chunks"] == vector["num_chunks"]
    assert report["padded_chunks"] == vector["padded_chunks"]
    assert report["padded_segments"] == vector["num_segments_padded"]
    assert report["submission_nodes"] == vector["submission_nodes"]
    assert report["fee_sectors"] == vector["fee_sectors"]


def test_hash_reads_stdin(zerog) -> None:
    result = zerog("hash", "-", "--json", stdin="abc")
    assert result.exit_code == 0, result
    assert (
        result.json["root"] == "0x2a82c11d3e604392cb19563c0a196b387ec0cc00f9f38f01cbbc0a37ec00f9d4"
    )


def test_expect_mismatch_is_an_integrity_failure(zerog, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    good = "0x2a82c11d3e604392cb19563c0a196b387ec0cc00f9f38f01cbbc0a37ec00f9d4"
    assert zerog("hash", str(path), "--expect", good.upper().replace("0X", "0x")).exit_code == 0
    bad = zerog("hash", str(path), "--expect", "0x" + "11" * 32)
    assert bad.exit_code == 3
    assert "expected 0x1111" in bad.stderr


@pytest.mark.parametrize("root", ["0x00", "abc", "0x" + "zz" * 32, "0x" + "1" * 65])
def test_malformed_expected_root_is_a_usage_error(zerog, tmp_path: Path, root: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert zerog("hash", str(path), "--expect", root).exit_code == 2


def test_empty_and_missing_files_are_refused(zerog, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    result = zerog("hash", str(empty))
    assert result.exit_code == 2
    assert "empty" in result.stderr
    assert zerog("hash", str(tmp_path / "missing")).exit_code == 2
