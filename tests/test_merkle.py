"""The 0G file Merkle tree against the SDK's vectors and a small reference implementation."""

from __future__ import annotations

import hashlib
import io
import os
import random
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import sha3
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conformance import load_vectors
from zerog_cli.errors import IntegrityError, ProtocolError, UsageError, ZerogError
from zerog_cli.zerog import merkle
from zerog_cli.zerog.abi import keccak256
from zerog_cli.zerog.merkle import (
    EMPTY_CHUNK_HASH,
    SEGMENT_SIZE,
    FileTree,
    SegmentProof,
    SubmissionNode,
    TreeBuilder,
    fold_submission_root,
    num_chunks,
    num_data_segments,
    num_padded_segments,
    padded_chunks,
    segment_leaf_count,
    segment_root,
    submission_nodes_for,
    tree_from_bytes,
    tree_from_path,
    tree_from_stream,
    tree_root,
    verify_segment_proof,
    zero_subtree_hash,
)

ROOT_VECTORS = load_vectors("storage-roots.json")
ENCRYPTION_VECTORS = [
    (name, vector)
    for name in ("encryption-v1.json", "encryption-v2.json")
    for vector in load_vectors(name)["vectors"]
]


def keccak(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()


@lru_cache(maxsize=4)
def generate(expression: str, size: int) -> bytes:
    data = eval(expression, {"hashlib": hashlib, "size": size, "n": size})
    assert isinstance(data, bytes) and len(data) == size
    return data


def hex32(value: bytes) -> str:
    return "0x" + value.hex()


# --- reference implementation, straight from spec sections 2.2 to 2.6 ---


def ref_tree(nodes: list[bytes]) -> bytes:
    if len(nodes) == 1:
        return nodes[0]
    half = 1
    while half * 2 < len(nodes):
        half *= 2
    return keccak(ref_tree(nodes[:half]) + ref_tree(nodes[half:]))


def ref_proof(nodes: list[bytes], index: int) -> tuple[list[bytes], list[bool]]:
    if len(nodes) == 1:
        return [], []
    half = 1
    while half * 2 < len(nodes):
        half *= 2
    if index < half:
        siblings, path = ref_proof(nodes[:half], index)
        return [*siblings, ref_tree(nodes[half:])], [*path, True]
    siblings, path = ref_proof(nodes[half:], index - half)
    return [*siblings, ref_tree(nodes[:half])], [*path, False]


def ref_padded(chunks: int) -> int:
    power = 1
    while power < chunks:
        power *= 2
    if power == chunks:
        return chunks
    multiple = max(1, power // 16)
    return -(-chunks // multiple) * multiple


def ref_leaves(data: bytes) -> list[bytes]:
    chunks = [data[i : i + 256].ljust(256, b"\0") for i in range(0, len(data), 256)]
    leaves = [keccak(chunk) for chunk in chunks]
    return leaves + [keccak(bytes(256))] * (ref_padded(len(chunks)) - len(chunks))


def ref_segment_roots(leaves: list[bytes]) -> list[bytes]:
    return [ref_tree(leaves[i : i + 1024]) for i in range(0, len(leaves), 1024)]


def ref_submission(leaves: list[bytes], chunks: int) -> list[tuple[bytes, int]]:
    span = 1
    while span < chunks:
        span *= 2
    rest, offset, nodes = len(leaves), 0, []
    while rest:
        if rest >= span:
            nodes.append((ref_tree(leaves[offset : offset + span]), span.bit_length() - 1))
            offset += span
            rest -= span
        span //= 2
    return nodes


# --- constants and arithmetic ---


def test_constants() -> None:
    assert merkle.CHUNK_SIZE == 256 and merkle.SEGMENT_CHUNKS == 1024
    assert SEGMENT_SIZE == 262144
    assert hex32(EMPTY_CHUNK_HASH) == (
        "0xd397b3b043d87fcd6fad1291ff0bfd16401c274896d8c63a923727f077b8e0b5"
    )
    assert zero_subtree_hash(0) == EMPTY_CHUNK_HASH
    assert hex32(zero_subtree_hash(10)) == (
        "0xe68d02859bb6211cec64f52368b77d422de3b8eac34bf615942b814b643301b5"
    )
    assert zero_subtree_hash(3) == keccak(zero_subtree_hash(2) * 2)
    assert keccak256(b"") == bytes.fromhex(
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


@pytest.mark.parametrize(
    ("chunks", "padded"),
    [(1, 1), (3, 3), (15, 15), (16, 16), (17, 18), (31, 32), (33, 36), (100, 104), (1000, 1024),
     (1025, 1152), (1500, 1536), (2049, 2304), (3073, 3328), (3907, 4096), (4097, 4608),
     (16385, 18432), (40000, 40960), (409600, 425984)],
)  # fmt: skip
def test_padded_chunks_worked_values(chunks: int, padded: int) -> None:
    assert padded_chunks(chunks) == padded


@pytest.mark.parametrize(
    ("size", "heights"),
    [(4097, [4, 1]), (65537, [8, 5]), (262145, [10, 7]), (786449, [11, 10, 8]),
     (10485760, [15, 13]), (20000000, [16, 14])],
)  # fmt: skip
def test_submission_layout_heights(size: int, heights: list[int]) -> None:
    assert [height for _, height in merkle.submission_layout(size)] == heights


def test_size_helpers() -> None:
    assert num_chunks(1) == 1 and num_chunks(256) == 1 and num_chunks(257) == 2
    assert num_data_segments(4194305) == 17
    assert num_padded_segments(4194305) == 18
    assert segment_leaf_count(4194305, 16) == 1024
    assert segment_leaf_count(262145, 1) == 128
    with pytest.raises(UsageError, match="out of range"):
        segment_leaf_count(262145, 2)
    for helper in (num_chunks, num_data_segments, num_padded_segments):
        with pytest.raises(UsageError, match="empty"):
            helper(0)


def test_tree_root_promotes_the_odd_node() -> None:
    leaves = [keccak(bytes([i])) for i in range(7)]
    for count in range(1, 8):
        assert tree_root(leaves[:count]) == ref_tree(leaves[:count])
    a, b, c = leaves[:3]
    assert tree_root([a, b, c]) == keccak(keccak(a + b) + c)
    with pytest.raises(UsageError):
        tree_root([])


def test_empty_subtree_root_matches_tree_root() -> None:
    for leaves in (1, 2, 3, 5, 128, 384, 1024, 1152):
        assert merkle.empty_subtree_root(leaves) == tree_root([EMPTY_CHUNK_HASH] * leaves)


# --- conformance vectors ---


def check_tree_against_vector(tree: FileTree, vector: dict[str, Any]) -> None:
    assert tree.size == vector["size"]
    assert tree.root_hex == vector["root"]
    assert tree.num_chunks == vector["num_chunks"]
    assert tree.padded_chunks == vector["padded_chunks"]
    assert tree.num_padded_segments == vector["num_segments_padded"]
    assert [node.to_json() for node in tree.submission_nodes] == vector["submission_nodes"]
    assert tree.fee_sectors == vector["fee_sectors"]
    assert fold_submission_root(tree.submission_nodes) == tree.root


@pytest.mark.parametrize("vector", ROOT_VECTORS, ids=[v["name"] for v in ROOT_VECTORS])
def test_storage_root_vector(vector: dict[str, Any], tmp_path: Path) -> None:
    size = vector["size"]
    data = generate(vector["generator"]["python"], size)
    tree = tree_from_bytes(data)
    check_tree_against_vector(tree, vector)
    if size > SEGMENT_SIZE:
        path = tmp_path / "file.bin"
        path.write_bytes(data)
        pooled, digest = tree_from_path(
            path, workers=2, pool_min_bytes=0, block_size=2 * SEGMENT_SIZE
        )
        assert pooled == tree
        assert digest == hashlib.sha256(data).hexdigest()
    assert num_chunks(size) == vector["num_chunks"]
    assert padded_chunks(num_chunks(size)) == vector["padded_chunks"]
    assert num_padded_segments(size) == vector["num_segments_padded"]
    for segment in vector.get("segments", []):
        index = segment["index"]
        offset, length = tree.segment_wire_range(index)
        wire = data[offset : offset + length]
        wire += bytes(-len(wire) % 256)
        assert len(wire) == segment["upload_data_len"]
        expected_root = bytes.fromhex(segment["segment_root"][2:])
        assert tree.segment_roots[index] == expected_root
        assert segment_root(wire, segment_leaf_count(size, index)) == expected_root
        proof = tree.proof(index)
        assert proof.to_json() == segment["proof"]
        parsed = SegmentProof.from_json(segment["proof"])
        assert parsed == proof
        verify_segment_proof(
            tree.root,
            expected_root,
            index,
            tree.num_padded_segments,
            parsed,
            check_rear_padding=True,
            num_data_segments=tree.num_data_segments,
        )


@pytest.mark.parametrize(
    ("name", "vector"), ENCRYPTION_VECTORS, ids=[v["id"] for _, v in ENCRYPTION_VECTORS]
)
def test_encryption_vectors_as_merkle_vectors(name: str, vector: dict[str, Any]) -> None:
    expression = load_vectors(name)["plaintext_generator"]["python"]
    plaintext = generate(expression, vector["plaintext_len"])
    assert hashlib.sha256(plaintext).hexdigest() == vector["plaintext_sha256"]
    assert tree_from_bytes(plaintext).root_hex == vector["plaintext_merkle_root"]
    if "encrypted_hex" in vector:
        encrypted = tree_from_bytes(bytes.fromhex(vector["encrypted_hex"]))
        assert encrypted.root_hex == vector["merkle_root"]
        nodes = [node.to_json() for node in encrypted.submission_nodes]
        assert nodes == vector["submission_nodes"]


# --- streaming, pooling and the reference implementation ---

BOUNDARY_SIZES = sorted(
    {1, 255, 256, 257, 4096, 4097, 4351, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1}
    | {256 * (1 << k) + delta for k in range(0, 13) for delta in (-1, 0, 1, 256, 257)}
)


def assert_matches_reference(tree: FileTree, data: bytes) -> None:
    leaves = ref_leaves(data)
    segments = ref_segment_roots(leaves)
    assert tree.root == ref_tree(leaves)
    assert list(tree.segment_roots) == segments
    assert tree.num_chunks == -(-len(data) // 256)
    assert tree.padded_chunks == len(leaves)
    submission = [(node.root, node.height) for node in tree.submission_nodes]
    assert submission == ref_submission(leaves, tree.num_chunks)
    assert fold_submission_root(tree.submission_nodes) == tree.root
    for index in range(len(segments)):
        siblings, path = ref_proof(segments, index)
        proof = tree.proof(index)
        if path:
            assert proof.lemma == (segments[index], *siblings, tree.root)
        else:
            assert proof.lemma == (tree.root,)
        assert proof.path == tuple(path)
        verify_segment_proof(
            tree.root,
            segments[index],
            index,
            len(segments),
            proof,
            check_rear_padding=True,
            num_data_segments=tree.num_data_segments,
        )


def feed_in_pieces(data: bytes, pieces: list[int], with_sha256: bool) -> TreeBuilder:
    builder = TreeBuilder(with_sha256=with_sha256)
    offset, turn = 0, 0
    while offset < len(data):
        step = pieces[turn % len(pieces)] if pieces else len(data)
        builder.update(data[offset : offset + step])
        offset += step
        turn += 1
    return builder


sizes = st.one_of(
    st.sampled_from(BOUNDARY_SIZES),
    st.integers(1, 20_000),
    st.integers(1, 3 * SEGMENT_SIZE + 1000),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=sizes,
    seed=st.integers(0, 2**32),
    pieces=st.lists(st.integers(1, 2 * SEGMENT_SIZE + 7), max_size=6),
)
@example(size=1, seed=1, pieces=[])
@example(size=255, seed=2, pieces=[1])
@example(size=256, seed=3, pieces=[100])
@example(size=257, seed=4, pieces=[256])
@example(size=4096, seed=5, pieces=[])
@example(size=4097, seed=6, pieces=[4096, 1])
@example(size=SEGMENT_SIZE, seed=7, pieces=[1000, 3])
@example(size=SEGMENT_SIZE + 1, seed=8, pieces=[SEGMENT_SIZE])
@example(size=1025 * 256, seed=9, pieces=[])
@example(size=2049 * 256 - 5, seed=10, pieces=[77777])
@example(size=4194305, seed=11, pieces=[SEGMENT_SIZE + 1, 5])
def test_builder_matches_reference(size: int, seed: int, pieces: list[int]) -> None:
    data = random.Random(seed).randbytes(size)
    builder = feed_in_pieces(data, pieces, with_sha256=True)
    tree = builder.finish()
    assert builder.sha256_hex == hashlib.sha256(data).hexdigest()
    assert tree_from_bytes(data) == tree
    assert_matches_reference(tree, data)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.one_of(st.sampled_from(BOUNDARY_SIZES), st.integers(1, 6 * SEGMENT_SIZE + 999)),
    seed=st.integers(0, 2**32),
    blocks=st.integers(1, 3),
    pool_after=st.sampled_from([0, SEGMENT_SIZE, 3 * SEGMENT_SIZE]),
)
@example(size=4194305, seed=1, blocks=3, pool_after=0)
@example(size=3 * SEGMENT_SIZE, seed=2, blocks=1, pool_after=0)
def test_pooled_stream_matches_reference(
    size: int, seed: int, blocks: int, pool_after: int
) -> None:
    data = random.Random(seed).randbytes(size)
    tree, digest = tree_from_stream(
        io.BytesIO(data),
        workers=2,
        block_size=blocks * SEGMENT_SIZE,
        pool_min_bytes=pool_after,
    )
    assert digest == hashlib.sha256(data).hexdigest()
    assert tree == tree_from_bytes(data)
    assert tree.root == ref_tree(ref_leaves(data))


class ShortReads(io.RawIOBase):
    """A pipe-like stream: no file descriptor, small and irregular reads."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._position = 0
        self._fail_after = fail_after
        self._turn = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._fail_after is not None and self._position >= self._fail_after:
            raise OSError("the disk went away")
        self._turn += 1
        size = min(len(buffer), 1 + (self._turn * 7919) % 300_000)
        chunk = self._data[self._position : self._position + size]
        buffer[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)


def child_pids() -> set[int]:
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            children.add(int(entry))
    return children


def test_short_reads_with_pool_and_without() -> None:
    data = random.Random(5).randbytes(5 * SEGMENT_SIZE + 333)
    expected = tree_from_bytes(data)
    for workers in (1, 2):
        tree, digest = tree_from_stream(
            ShortReads(data), workers=workers, block_size=SEGMENT_SIZE, pool_min_bytes=SEGMENT_SIZE
        )
        assert tree == expected
        assert digest == hashlib.sha256(data).hexdigest()


def test_pool_leaves_no_processes_on_success_or_failure() -> None:
    before = child_pids()
    data = random.Random(6).randbytes(4 * SEGMENT_SIZE)
    tree, _ = tree_from_stream(io.BytesIO(data), workers=2, pool_min_bytes=0)
    assert tree == tree_from_bytes(data)
    assert child_pids() == before
    with pytest.raises(OSError, match="went away"):
        tree_from_stream(
            ShortReads(data, fail_after=2 * SEGMENT_SIZE),
            workers=2,
            block_size=SEGMENT_SIZE,
            pool_min_bytes=0,
        )
    assert child_pids() == before


def test_pool_works_from_worker_threads(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(3 * SEGMENT_SIZE + 17)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    expected = tree_from_bytes(data)

    def run(_: int) -> tuple[FileTree, str | None, str]:
        tree, digest = tree_from_path(path, workers=2, pool_min_bytes=0, block_size=SEGMENT_SIZE)
        return tree, digest, threading.current_thread().name

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, range(3)))
    for tree, digest, thread in results:
        assert thread != "MainThread"
        assert tree == expected
        assert digest == hashlib.sha256(data).hexdigest()


def test_pool_falls_back_in_process_without_an_interpreter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "executable", "")
    data = random.Random(8).randbytes(2 * SEGMENT_SIZE + 1)
    tree, _ = tree_from_stream(io.BytesIO(data), workers=2, pool_min_bytes=0)
    assert tree == tree_from_bytes(data)


def test_segment_pool_reports_a_dead_worker() -> None:
    from zerog_cli.zerog.merkle_pool import SegmentPool

    with (
        pytest.raises(ZerogError, match="exited unexpectedly"),
        SegmentPool(1, SEGMENT_SIZE) as pool,
    ):
        pool._procs[0].kill()
        pool.buffer()[:] = bytes(SEGMENT_SIZE)
        pool.submit(SEGMENT_SIZE)
        pool.results()


def test_pool_worker_imports_nothing_else_of_zerog() -> None:
    """A worker process starts in the time of a bare interpreter plus tiny-keccak."""
    import subprocess

    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import zerog_cli.zerog.segment_hash; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('zerog_cli'))))"
    )
    root = str(Path(merkle.__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-P", "-c", script, root], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["zerog_cli", "zerog_cli.zerog", "zerog_cli.zerog.segment_hash"]


def test_small_regular_file_is_hashed_in_process(tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(b"abc")
    tree, digest = tree_from_path(path)
    assert tree.root_hex == "0x2a82c11d3e604392cb19563c0a196b387ec0cc00f9f38f01cbbc0a37ec00f9d4"
    assert digest == hashlib.sha256(b"abc").hexdigest()
    assert tree_from_path(path, with_sha256=False)[1] is None


def test_same_root_for_trailing_zeros_with_same_padded_count() -> None:
    assert tree_from_bytes(b"abc").root == tree_from_bytes(b"abc\0").root
    assert tree_from_bytes(b"\0").root == tree_from_bytes(bytes(256)).root == EMPTY_CHUNK_HASH


# --- empty and bad input ---


def test_empty_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="input is empty: 0G cannot store an empty file"):
        tree_from_bytes(b"")
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    with pytest.raises(UsageError, match=r"empty\.bin is empty: 0G cannot store an empty file"):
        tree_from_path(path)
    with pytest.raises(UsageError, match="no such file"):
        tree_from_path(tmp_path / "missing.bin")


def test_builder_is_single_use() -> None:
    builder = TreeBuilder()
    builder.update(b"x")
    builder.finish()
    with pytest.raises(UsageError):
        builder.update(b"y")
    with pytest.raises(UsageError):
        builder.finish()


def test_segment_root_rejects_too_much_data() -> None:
    with pytest.raises(UsageError, match="more than"):
        segment_root(bytes(512), 1)
    with pytest.raises(UsageError):
        segment_root(b"", 1025)
    assert segment_root(b"", 4) == merkle.empty_subtree_root(4)


def test_submission_nodes_need_the_last_segment_leaves() -> None:
    tree = tree_from_bytes(bytes(range(256)) * 17)
    with pytest.raises(UsageError, match="leaf hashes"):
        submission_nodes_for(tree.size, tree.segment_roots)
    with pytest.raises(UsageError, match="segment roots"):
        submission_nodes_for(tree.size, [])
    with pytest.raises(UsageError):
        fold_submission_root([])
    single = (SubmissionNode(root=b"\1" * 32, height=0),)
    assert fold_submission_root(single) == b"\1" * 32


# --- proofs ---


def multi_segment_tree() -> tuple[bytes, FileTree]:
    data = random.Random(9).randbytes(5 * SEGMENT_SIZE + 1000)
    return data, tree_from_bytes(data)


def test_proof_rejects_a_flipped_data_byte() -> None:
    data, tree = multi_segment_tree()
    offset, length = tree.segment_wire_range(2)
    wire = bytearray(data[offset : offset + length])
    wire[1234] ^= 1
    bad_root = segment_root(wire, tree.segment_leaf_count(2))
    with pytest.raises(IntegrityError, match=r"segment 2 proof: segment root .* does not match"):
        verify_segment_proof(tree.root, bad_root, 2, tree.num_padded_segments, tree.proof(2))


def test_proof_rejects_a_flipped_proof_node() -> None:
    _, tree = multi_segment_tree()
    proof = tree.proof(3)
    for position in range(1, len(proof.lemma) - 1):
        lemma = list(proof.lemma)
        lemma[position] = bytes([lemma[position][0] ^ 0x80]) + lemma[position][1:]
        tampered = SegmentProof(lemma=tuple(lemma), path=proof.path)
        with pytest.raises(IntegrityError, match="recomputed root"):
            verify_segment_proof(
                tree.root, tree.segment_roots[3], 3, tree.num_padded_segments, tampered
            )
    with pytest.raises(IntegrityError, match="expected file root"):
        verify_segment_proof(
            tree.root,
            tree.segment_roots[3],
            3,
            tree.num_padded_segments,
            SegmentProof(lemma=(*proof.lemma[:-1], b"\0" * 32), path=proof.path),
        )


def test_proof_rejects_a_wrong_index_and_wrong_lengths() -> None:
    _, tree = multi_segment_tree()
    proof, seg = tree.proof(3), tree.segment_roots[3]
    segments = tree.num_padded_segments
    with pytest.raises(IntegrityError, match="path leads to segment 3"):
        verify_segment_proof(tree.root, seg, 2, segments, proof)
    with pytest.raises(IntegrityError, match="out of range"):
        verify_segment_proof(tree.root, seg, segments, segments, proof)
    with pytest.raises(IntegrityError, match="path leads"):
        verify_segment_proof(tree.root, seg, 3, segments + 5, proof)
    short = SegmentProof(lemma=proof.lemma[1:], path=proof.path)
    with pytest.raises(IntegrityError, match="lemma entries"):
        verify_segment_proof(tree.root, seg, 3, segments, short)
    long_path = SegmentProof(lemma=proof.lemma, path=(*proof.path, True))
    with pytest.raises(IntegrityError, match="lemma entries"):
        verify_segment_proof(tree.root, seg, 3, segments, long_path)
    with pytest.raises(IntegrityError, match="32-byte"):
        verify_segment_proof(
            tree.root, seg, 3, segments, SegmentProof(lemma=(seg, b"x", tree.root), path=(True,))
        )


def test_single_segment_proof() -> None:
    tree = tree_from_bytes(b"hello")
    proof = tree.proof(0)
    assert proof.to_json() == {"lemma": [tree.root_hex], "path": []}
    verify_segment_proof(tree.root, tree.root, 0, 1, proof)
    with pytest.raises(IntegrityError, match="expected file root"):
        verify_segment_proof(b"\0" * 32, tree.root, 0, 1, proof)
    with pytest.raises(UsageError):
        tree.proof(1)


def test_rear_padding_check() -> None:
    size = 4194305
    vector = next(v for v in ROOT_VECTORS if v["size"] == size)
    tree = tree_from_bytes(generate(vector["generator"]["python"], size))
    assert tree.num_data_segments == 17 and tree.num_padded_segments == 18
    for index in range(18):
        verify_segment_proof(
            tree.root,
            tree.segment_roots[index],
            index,
            18,
            tree.proof(index),
            check_rear_padding=True,
            num_data_segments=17,
        )
    forged_roots = (*tree.segment_roots[:17], keccak(b"not padding"))
    forged = FileTree(
        size=tree.size,
        root=tree_root(forged_roots),
        segment_roots=forged_roots,
        num_chunks=tree.num_chunks,
        padded_chunks=tree.padded_chunks,
        submission_nodes=tree.submission_nodes,
        fee_sectors=tree.fee_sectors,
    )
    proof = forged.proof(16)
    verify_segment_proof(forged.root, forged.segment_roots[16], 16, 18, proof)
    with pytest.raises(IntegrityError, match="invalid proof node value in the padding range"):
        verify_segment_proof(
            forged.root,
            forged.segment_roots[16],
            16,
            18,
            proof,
            check_rear_padding=True,
            num_data_segments=17,
        )
    with pytest.raises(UsageError, match="num_data_segments"):
        verify_segment_proof(
            tree.root, tree.segment_roots[0], 0, 18, tree.proof(0), check_rear_padding=True
        )


GOOD_HASH = "0x" + "ab" * 32


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "proof",
        {"lemma": [GOOD_HASH]},
        {"path": []},
        {"lemma": GOOD_HASH, "path": []},
        {"lemma": [GOOD_HASH], "path": {}},
        {"lemma": [GOOD_HASH, GOOD_HASH, GOOD_HASH], "path": [1]},
        {"lemma": [GOOD_HASH, GOOD_HASH, GOOD_HASH], "path": ["true"]},
        {"lemma": [GOOD_HASH, GOOD_HASH], "path": [True]},
        {"lemma": [GOOD_HASH, GOOD_HASH], "path": []},
        {"lemma": [], "path": []},
        {"lemma": ["ab" * 32], "path": []},
        {"lemma": ["0x" + "ab" * 31], "path": []},
        {"lemma": ["0x" + "zz" * 32], "path": []},
        {"lemma": [12], "path": []},
        {"lemma": [GOOD_HASH + "\n"], "path": []},
        {"lemma": [GOOD_HASH] * 67, "path": [True] * 65},
    ],
)
def test_proof_from_json_rejects_garbage(payload: object) -> None:
    with pytest.raises(ProtocolError, match="malformed segment proof"):
        SegmentProof.from_json(payload)


def test_proof_json_round_trip() -> None:
    _, tree = multi_segment_tree()
    for index in range(tree.num_padded_segments):
        proof = tree.proof(index)
        assert SegmentProof.from_json(proof.to_json()) == proof


def test_segment_wire_range() -> None:
    tree = tree_from_bytes(bytes(4194305))
    assert tree.segment_wire_range(0) == (0, SEGMENT_SIZE)
    assert tree.segment_wire_range(16) == (16 * SEGMENT_SIZE, 1)
    assert tree.segment_wire_range(17) == (17 * SEGMENT_SIZE, 0)
    with pytest.raises(UsageError):
        tree.segment_wire_range(18)


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "pooled"])
@pytest.mark.parametrize(
    "size", [1, 2 * SEGMENT_SIZE, 2 * SEGMENT_SIZE + 1, 5 * SEGMENT_SIZE + 777, 6 * SEGMENT_SIZE]
)
def test_fragment_trees_from_one_pass_are_the_trees_of_the_pieces(workers: int, size: int) -> None:
    data = random.Random(size).randbytes(size)
    fragment = 2 * SEGMENT_SIZE

    trees, sha256 = merkle.fragment_trees_from_stream(
        io.BytesIO(data), fragment, workers=workers, pool_min_bytes=0, block_size=SEGMENT_SIZE
    )

    pieces = [data[i : i + fragment] for i in range(0, size, fragment)]
    assert [tree.root_hex for tree in trees] == [
        merkle.tree_from_bytes(piece).root_hex for piece in pieces
    ]
    assert [tree.size for tree in trees] == [len(piece) for piece in pieces]
    assert sha256 == hashlib.sha256(data).hexdigest()
