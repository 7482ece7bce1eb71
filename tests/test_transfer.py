"""Upload and download against the devnet (a child process on 127.0.0.1)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.devnet_harness import (
    BytesSource,
    DevnetProcess,
    pattern,
    start_devnet,
    submit_file,
)
from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY
from zerog_cli.errors import IntegrityError, NotFound
from zerog_cli.infra.http import HttpClient, RetryPolicy
from zerog_cli.zerog import encryption
from zerog_cli.zerog.download import DownloadOptions, download
from zerog_cli.zerog.merkle import FileTree, tree_from_bytes, tree_from_stream
from zerog_cli.zerog.network import StorageNetwork
from zerog_cli.zerog.segments import FileSource
from zerog_cli.zerog.upload import UploadOptions, UploadResult, upload
from zerog_cli.zerog.upload_plan import plan_upload

pytestmark = pytest.mark.devnet

SEGMENT = 256 * 1024
FAST = RetryPolicy(max_tries=2, base_delay=0.01, max_delay=0.05)
QUICK = UploadOptions(poll_interval=0.1, busy_pause=0.1, tx_known_timeout=30, finality_timeout=60)


@pytest.fixture
def net_session(net: DevnetProcess) -> Iterator[tuple[DevnetProcess, StorageNetwork]]:
    net.clear_faults()
    network = StorageNetwork(
        HttpClient(retry=FAST), indexer_url=net.indexer_url, evm_rpc_url=net.rpc_url
    )
    yield net, network
    net.clear_faults()
    network.http.close()


def write(tmp_path: Path, data: bytes, name: str = "input.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def do_upload(
    network: StorageNetwork, path: Path, options: UploadOptions = QUICK
) -> tuple[UploadResult, bytes]:
    with open(path, "rb") as handle:
        tree, _ = tree_from_stream(handle, workers=1)
    with FileSource(path) as source:
        result = upload(network, source, tree, private_key=DEV_ACCOUNT_KEY, options=options)
    return result, tree.root


def upload_watched(
    network: StorageNetwork, path: Path
) -> tuple[UploadResult, FileTree, list[tuple[str, int, int]]]:
    """Upload ``path`` as `do_upload` does; also returns the tree and every progress call."""
    progress: list[tuple[str, int, int]] = []
    with open(path, "rb") as handle:
        tree, _ = tree_from_stream(handle, workers=1)
    with FileSource(path) as source:
        result = upload(
            network,
            source,
            tree,
            private_key=DEV_ACCOUNT_KEY,
            options=QUICK,
            progress=lambda *call: progress.append(call),
        )
    return result, tree, progress


@pytest.mark.parametrize("size", [1, 4097, 3 * SEGMENT + 1, 3 * 1024 * 1024 + 17])
def test_round_trip(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path, size: int
) -> None:
    _, network = net_session
    data = pattern(size, seed=size)
    path = write(tmp_path, data)
    result, tree, progress = upload_watched(network, path)
    assert result.finalized and not result.deduped and result.tx_hash
    assert result.fee_neuron == tree.fee_sectors * 1_000_000_000
    assert result.segments_sent == tree.num_data_segments
    assert progress[-1][1] == progress[-1][2] == result.bytes_sent
    sink = io.BytesIO()
    got = download(network, tree.root_hex, sink, expected_size=size)
    assert sink.getvalue() == data
    assert got.bytes_written == size and got.tx_seq == result.tx_seq
    assert got.healed_segments == 0


def test_dedupe_pays_nothing(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path
) -> None:
    devnet, network = net_session
    path = write(tmp_path, pattern(70_000, seed=7))
    first, _ = do_upload(network, path)
    before = devnet.stats()["transactions"]
    second, _ = do_upload(network, path)
    assert devnet.stats()["transactions"] == before
    assert second.deduped and second.fee_neuron == 0 and second.tx_hash is None
    assert second.tx_seq == first.tx_seq


def test_plan_is_a_dry_run(net_session: tuple[DevnetProcess, StorageNetwork]) -> None:
    devnet, network = net_session
    tree = tree_from_bytes(pattern(5000, seed=99))
    before = devnet.stats()["transactions"]
    plan = plan_upload(network, tree)
    assert plan.needs_payment and plan.fee_neuron == tree.fee_sectors * 1_000_000_000
    assert devnet.stats()["transactions"] == before


def test_known_unfinalized_tx_is_reused(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path
) -> None:
    devnet, network = net_session
    data = pattern(SEGMENT + 5, seed=11)
    tree, event = submit_file(devnet.rpc_url, data)
    before = devnet.stats()["transactions"]
    result, _ = do_upload(network, write(tmp_path, data))
    assert devnet.stats()["transactions"] == before
    assert result.reused_tx and result.tx_seq == event.tx_seq and result.fee_neuron == 0
    sink = io.BytesIO()
    download(network, tree.root_hex, sink)
    assert sink.getvalue() == data


def test_corrupt_segment_is_healed_from_another_node(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path
) -> None:
    devnet, network = net_session
    data = pattern(4 * SEGMENT + 3, seed=21)
    result, root = do_upload(network, write(tmp_path, data), replace(QUICK, replicas=2))
    assert len(result.nodes) == 2
    devnet.set_faults(corrupt_nodes=[0])
    sink = io.BytesIO()
    got = download(network, "0x" + root.hex(), sink)
    assert sink.getvalue() == data
    assert got.healed_segments >= 1


def test_pooled_verification_heals_and_reports_the_corrupt_node(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path
) -> None:
    """Segment roots from the hashing pool's workers (started while the nodes are located)."""
    devnet, network = net_session
    data = pattern(5 * SEGMENT + 17, seed=23)
    _, root = do_upload(network, write(tmp_path, data), replace(QUICK, replicas=2))
    devnet.set_faults(corrupt_nodes=[1])
    sink = io.BytesIO()
    options = DownloadOptions(hash_workers=2, pool_min_bytes=0)
    got = download(network, "0x" + root.hex(), sink, expected_size=len(data), options=options)
    assert sink.getvalue() == data
    stats = {node.url.rsplit("/", 1)[-1]: node for node in got.node_stats}
    assert stats["1"].segments == 0 and stats["1"].corrupt >= 1
    assert stats["0"].segments == 6
    assert got.healed_segments == stats["1"].corrupt


def test_all_nodes_corrupt_is_an_integrity_error(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path
) -> None:
    devnet, network = net_session
    data = pattern(3 * SEGMENT, seed=31)
    _, root = do_upload(network, write(tmp_path, data), replace(QUICK, replicas=2))
    devnet.set_faults(corrupt_nodes=[0, 1])
    sink = io.BytesIO()
    with pytest.raises(IntegrityError) as info:
        download(network, "0x" + root.hex(), sink)
    assert "segment 0" in str(info.value) and "\n" not in str(info.value)
    assert sink.getvalue() == b""


def test_missing_root_is_not_found(net_session: tuple[DevnetProcess, StorageNetwork]) -> None:
    _, network = net_session
    with pytest.raises(NotFound):
        download(network, "0x" + "77" * 32, io.BytesIO())


def test_failing_node_is_replaced(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path
) -> None:
    devnet, network = net_session
    devnet.set_faults(fail_nodes=[0])
    data = pattern(2 * SEGMENT + 9, seed=41)
    result, root = do_upload(network, write(tmp_path, data))
    failed = result.failed_nodes
    assert list(failed) == [devnet.node_urls[0]]
    assert result.nodes == [devnet.node_urls[1]]
    devnet.clear_faults()
    sink = io.BytesIO()
    download(network, "0x" + root.hex(), sink)
    assert sink.getvalue() == data


def test_encrypted_round_trip(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path
) -> None:
    _, network = net_session
    plaintext = pattern(SEGMENT + 1000, seed=51)
    path = write(tmp_path, plaintext)
    key = os.urandom(32)
    header = encryption.new_header_v1()
    with encryption.EncryptedReader.from_path(path, key, header) as reader:
        tree, _ = tree_from_stream(reader, workers=1)
        reader.seek(0)
        result = upload(network, reader, tree, private_key=DEV_ACCOUNT_KEY, options=QUICK)
    assert result.size == len(plaintext) + encryption.HEADER_SIZE_V1
    plain_sink = io.BytesIO()
    got = download(network, tree.root_hex, plain_sink, symmetric_key=key)
    assert got.encrypted and plain_sink.getvalue() == plaintext
    raw_sink = io.BytesIO()
    download(network, tree.root_hex, raw_sink, options=DownloadOptions(rehash_stream=True))
    assert raw_sink.getvalue()[:17] == header.to_bytes()
    assert encryption.decrypt_bytes(raw_sink.getvalue(), symmetric_key=key) == plaintext


@pytest.mark.parametrize("mode", ["none", "uploaded"])
def test_wait_modes(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path, mode: str
) -> None:
    _, network = net_session
    data = pattern(SEGMENT * 2 + 100, seed=len(mode))
    result, _ = do_upload(network, write(tmp_path, data), replace(QUICK, wait=mode))
    assert not result.finalized
    assert result.segments_sent == 3
    again, _ = do_upload(network, write(tmp_path, data, "again.bin"))
    assert again.deduped


def test_download_from_given_node_urls(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path
) -> None:
    devnet, network = net_session
    data = pattern(SEGMENT + 1, seed=61)
    _, root = do_upload(network, write(tmp_path, data))
    direct = StorageNetwork(HttpClient(retry=FAST), node_urls=devnet.node_urls)
    sink = io.BytesIO()
    download(direct, "0x" + root.hex(), sink)
    assert sink.getvalue() == data


@pytest.mark.parametrize(("shards", "replicas"), [("0/2,1/2", 1), ("0/1,0/2,1/2,1/4,3/4", 2)])
def test_sharded_nodes(tmp_path: Path, shards: str, replicas: int) -> None:
    with start_devnet(tmp_path / "devnet", shards=shards) as devnet:
        network = StorageNetwork(
            HttpClient(retry=FAST), indexer_url=devnet.indexer_url, evm_rpc_url=devnet.rpc_url
        )
        data = pattern(5 * SEGMENT + 7, seed=71)
        result, root = do_upload(
            network,
            write(tmp_path, data),
            replace(QUICK, replicas=replicas, task_size=2),
        )
        assert result.finalized
        sink = io.BytesIO()
        download(network, "0x" + root.hex(), sink)
        assert sink.getvalue() == data


class FakeNode:
    """Answers uploads with a scripted list of errors, then success."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0

    def upload_segments_by_tx_seq(self, segments: list[object], tx_seq: int) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


class FakeNetwork:
    def __init__(self, node: FakeNode) -> None:
        self._node = node

    def node(self, url: str) -> FakeNode:
        return self._node


def run_one_task(errors: list[Exception]) -> tuple[int, FakeNode, dict[str, str]]:
    from zerog_cli.zerog.selection import ShardConfig, ShardedNode
    from zerog_cli.zerog.upload import _UploadJob

    data = pattern(1000, seed=3)
    tree = tree_from_bytes(data)

    fake = FakeNode(errors)
    job = _UploadJob(
        FakeNetwork(fake),  # type: ignore[arg-type]
        BytesSource(data),
        tree,
        replace(QUICK, busy_retries=3, busy_pause=0.01),
        tx_seq=1,
        start_entry_index=0,
        progress=None,
    )
    node = ShardedNode("http://127.0.0.1:1/node/0", ShardConfig(0, 1))
    sent = job._run_task(node, (0,))
    return sent, fake, job.failed


def test_busy_node_is_retried_and_duplicates_count_as_success() -> None:
    from zerog_cli.errors import RemoteError

    busy = RemoteError("too many data writing: 16", kind="retryable")
    sent, fake, failed = run_one_task([busy, busy])
    assert sent == 1024 and fake.calls == 3 and not failed
    done = RemoteError(
        "Invalid params: root: already uploaded and finalized", kind="already-exists"
    )
    sent, fake, failed = run_one_task([done])
    assert sent == 1024 and fake.calls == 1 and not failed
    sent, fake, failed = run_one_task([busy] * 5)
    assert sent == 0 and fake.calls == 4 and "too many data writing" in failed[next(iter(failed))]
    fatal = RemoteError("Invalid params: proof: validation failed", kind="fatal")
    sent, fake, failed = run_one_task([fatal])
    assert sent == 0 and fake.calls == 1 and failed


def test_waiting_for_a_lagging_node_reports_progress(
    net_session: tuple[DevnetProcess, StorageNetwork], tmp_path: Path
) -> None:
    """While nodes have not seen the paid tx, progress("sync", waited, timeout) runs."""
    net, network = net_session
    net.set_faults(lag_nodes=[0, 1], lag_ms=1_500)
    path = write(tmp_path, pattern(5_000, seed=77))
    result, _, progress = upload_watched(network, path)
    assert result.finalized
    waits = [call for call in progress if call[0] == "sync"]
    assert waits and all(total == 30 and 0 <= waited <= total for _, waited, total in waits)
