"""The official 0G TypeScript SDK (1.2.8, pinned) uploads to and downloads from the devnet.

The SDK and ethers are installed with ``npm ci`` from tests/interop/package-lock.json
into ``$ZEROG_NPM_CACHE`` (default ``<repo>/.cache/npm-interop``) when missing or
out of date; tests/interop/sdk_interop.cjs drives them and prints one JSON line.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.devnet_harness import DevnetProcess, pattern, rpc, start_devnet
from tests.interop_node import run_interop_script
from tools.ts_sdk import ensure_installed
from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY
from zerog_cli.zerog import merkle

pytestmark = [pytest.mark.interop, pytest.mark.devnet(indexer="builtin")]

NODE_TIMEOUT = 180
THREE_SEGMENTS = 2 * merkle.SEGMENT_SIZE + 1000
AES_KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The pinned SDK, installed once into the npm cache (tools/ts_sdk.py)."""
    return ensure_installed()


def run_sdk(node_modules: Path, mode: str, config: dict[str, Any]) -> dict[str, Any]:
    report, elapsed = run_interop_script(
        node_modules, "sdk_interop.cjs", [mode, json.dumps(config)], timeout=NODE_TIMEOUT
    )
    report["wallSeconds"] = round(elapsed, 2)
    print(f"TS SDK {mode}: {json.dumps(report)}")
    return report


def sdk_config(devnet: DevnetProcess, source: Path, output: Path) -> dict[str, Any]:
    return {
        "rpc": devnet.rpc_url,
        "indexer": devnet.indexer_url,
        "key": DEV_ACCOUNT_KEY,
        "input": str(source),
        "output": str(output),
        "aesKey": AES_KEY,
    }


def transactions(devnet: DevnetProcess) -> int:
    return int(devnet.stats()["transactions"])


def test_sdk_uploads_three_segments_and_downloads_them(
    node_modules: Path, net: DevnetProcess, tmp_path: Path
) -> None:
    data = pattern(THREE_SEGMENTS, seed=100)
    source = tmp_path / "three-segments.bin"
    source.write_bytes(data)
    before = transactions(net)
    report = run_sdk(node_modules, "plain", sdk_config(net, source, tmp_path / "out.bin"))
    tree = merkle.tree_from_bytes(data)
    assert tree.num_data_segments == 3
    assert report["rootHash"] == report["localRoot"] == tree.root_hex
    assert (tmp_path / "out.bin").read_bytes() == data
    assert transactions(net) == before + 1
    receipt = rpc(net.rpc_url, "eth_getTransactionReceipt", [report["txHash"]])
    assert receipt["status"] == "0x1"
    info = rpc(net.node_urls[0], "zgs_getFileInfoByTxSeq", [report["txSeq"]])
    assert info["finalized"] is True and info["tx"]["size"] == len(data)


def test_sdk_encrypted_upload_and_decrypting_download(
    node_modules: Path, net: DevnetProcess, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    data = pattern(THREE_SEGMENTS, seed=101)
    source = tmp_path / "secret.bin"
    source.write_bytes(data)
    report = run_sdk(node_modules, "encrypted", sdk_config(net, source, tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data
    # what the network stores is header (0x01 + nonce) + AES-256-CTR ciphertext
    stored = _gateway_bytes(net, report["rootHash"])
    assert len(stored) == len(data) + 17 and stored[0] == 1
    nonce = stored[1:17]
    decryptor = Cipher(algorithms.AES(bytes.fromhex(AES_KEY)), modes.CTR(nonce)).decryptor()
    assert decryptor.update(stored[17:]) + decryptor.finalize() == data
    assert report["rootHash"] == merkle.tree_from_bytes(stored).root_hex != report["localRoot"]


def _gateway_bytes(devnet: DevnetProcess, root: str) -> bytes:
    import requests

    answer = requests.get(
        f"{devnet.indexer_url}/file", params={"root": root}, timeout=30, proxies={"http": ""}
    )
    assert "attachment" in answer.headers.get("Content-Disposition", ""), answer.text
    return answer.content


def test_sdk_second_upload_takes_the_dedupe_path(
    node_modules: Path, net: DevnetProcess, tmp_path: Path
) -> None:
    data = pattern(THREE_SEGMENTS, seed=102)
    source = tmp_path / "twice.bin"
    source.write_bytes(data)
    config = sdk_config(net, source, tmp_path / "unused")
    first = run_sdk(node_modules, "upload", config)
    assert first["txHash"]
    before = transactions(net)
    net.reset_stats()
    second = run_sdk(node_modules, "upload", config)
    stats = net.stats()
    assert second["txHash"] == "" and second["txSeq"] == first["txSeq"]
    assert second["rootHash"] == first["rootHash"]
    assert transactions(net) == before
    methods = stats["methods"]
    assert not any(name.startswith("rpc:") for name in methods), methods
    assert not any("uploadSegment" in name for name in methods), methods
    assert methods.get("indexer:indexer_getShardedNodes") == 1


@contextlib.contextmanager
def _fresh_devnet(tmp_path: Path, *args: str) -> Iterator[DevnetProcess]:
    with start_devnet(tmp_path / "devnet", extra_args=args) as handle:
        yield handle


def test_sdk_legacy_transactions_without_base_fee(node_modules: Path, tmp_path: Path) -> None:
    """Blocks without baseFeePerGas make ethers send a legacy EIP-155 transaction."""
    with _fresh_devnet(tmp_path, "--legacy-fees") as devnet:
        data = pattern(5000, seed=103)
        source = tmp_path / "small.bin"
        source.write_bytes(data)
        report = run_sdk(node_modules, "plain", sdk_config(devnet, source, tmp_path / "o"))
        assert (tmp_path / "o").read_bytes() == data
        tx = rpc(devnet.rpc_url, "eth_getTransactionByHash", [report["txHash"]])
        assert tx["type"] == "0x0"


def test_zerog_upload_downloads_byte_identical_with_the_sdk(
    node_modules: Path,
    net: DevnetProcess,
    tmp_path: Path,
    zerog: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our client writes, the official SDK reads."""
    monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
    source = tmp_path / "by-zerog.bin"
    source.write_bytes(pattern(2 * 262_144 + 777, seed=7))
    uploaded = zerog("upload", str(source), "--json")
    assert uploaded.exit_code == 0, uploaded
    output = tmp_path / "read-by-sdk.bin"
    config = {**sdk_config(net, source, output), "root": uploaded.json["root"]}
    run_sdk(node_modules, "download", config)
    assert output.read_bytes() == source.read_bytes()


def test_sdk_upload_downloads_and_verifies_with_zerog(
    node_modules: Path,
    net: DevnetProcess,
    tmp_path: Path,
    zerog: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The official SDK writes, our client reads with every proof checked."""
    source = tmp_path / "by-sdk.bin"
    source.write_bytes(pattern(262_144 + 4097, seed=8))
    report = run_sdk(node_modules, "upload", sdk_config(net, source, tmp_path / "unused"))
    monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
    output = tmp_path / "read-by-zerog.bin"
    got = zerog("download", report["rootHash"], "-o", str(output), "--json")
    assert got.exit_code == 0, got
    assert output.read_bytes() == source.read_bytes()
    assert got.json["segments"] == 2
    assert zerog("hash", str(output), "--expect", report["rootHash"]).exit_code == 0


def test_sdk_downloads_what_zerog_uploaded_with_a_catalog_record_in_its_tags(
    node_modules: Path,
    net: DevnetProcess,
    tmp_path: Path,
    zerog: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The catalog record rides in the submission's tags; the official reader ignores it."""
    from zerog_cli.devnet.constants import FLOW_ADDRESS
    from zerog_cli.zerog import catalog, flow_abi

    monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
    monkeypatch.setenv("ENCRYPTION_KEY", AES_KEY)
    source = tmp_path / "tagged.bin"
    source.write_bytes(pattern(262_144 + 999, seed=21))
    uploaded = zerog("upload", str(source), "--json")
    assert uploaded.exit_code == 0, uploaded
    receipt = rpc(net.rpc_url, "eth_getTransactionReceipt", [uploaded.json["tx_hash"]])
    (event,) = flow_abi.find_submit_events(receipt["logs"], FLOW_ADDRESS)
    assert catalog.is_ours(event.submission.data.tags)
    output = tmp_path / "tagged-read-by-sdk.bin"
    config = {**sdk_config(net, source, output), "root": uploaded.json["root"]}
    run_sdk(node_modules, "download", config)
    assert output.read_bytes() == source.read_bytes()
