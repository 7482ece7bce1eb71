"""The official Go storage client and the official indexer against the devnet and zerog.

``0g-storage-client`` comes from the pinned ``@0gfoundation/0g-compute-ts-sdk``
package (``binary/0g-storage-client``), installed by the test tools' step and
checked against the SHA-256 in tools/go_client.py. Every URL it gets is a
127.0.0.1 URL of a devnet; its proxy variables point at a closed loopback port,
so nothing it might look up elsewhere leaves the machine. Where the Go client
and the devnet disagree, the devnet is wrong.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import REPO
from tests.devnet_harness import NO_PROXY, DevnetProcess, pattern, rpc
from tools import go_client as go_client_tool
from tools import test_tools, ts_sdk
from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY
from zerog_cli.zerog import merkle

pytestmark = [pytest.mark.interop, pytest.mark.devnet(indexer="builtin")]

GO_TIMEOUT = 120
THREE_SEGMENTS = 2 * merkle.SEGMENT_SIZE + 1000
CLOSED_LOOPBACK_PROXY = "http://127.0.0.1:9"
UPLOADED = re.compile(r"file uploaded, root = (0x[0-9a-f]{64})")


@pytest.fixture(scope="session")
def go_client() -> Path:
    """The pinned, checksum-checked binary (a no-op after `make test`'s tools step)."""
    test_tools.ensure(["go-client"])
    return go_client_tool.binary_path()


@pytest.fixture
def zerog_on(zerog: Any, net: DevnetProcess, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
    net.clear_faults()
    return zerog


def run_go(binary: Path, *args: str, cwd: Path) -> str:
    """Run the Go client; its whole log (it logs to stderr and stdout) on success."""
    env = {
        **os.environ,
        "HTTP_PROXY": CLOSED_LOOPBACK_PROXY,
        "HTTPS_PROXY": CLOSED_LOOPBACK_PROXY,
        "http_proxy": CLOSED_LOOPBACK_PROXY,
        "https_proxy": CLOSED_LOOPBACK_PROXY,
        "NO_PROXY": "",
        "no_proxy": "",
    }
    completed = subprocess.run(
        [str(binary), *args, "--log-color-disabled"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=GO_TIMEOUT,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{args[0]} exit {completed.returncode}: {output[-3000:]}"
    return output


def go_upload(
    binary: Path, devnet: DevnetProcess, source: Path, *flags: str, via_nodes: bool = False
) -> tuple[str, str]:
    """Upload ``source`` with the Go client; its root and log."""
    where = (
        ["--node", ",".join(devnet.node_urls)] if via_nodes else ["--indexer", devnet.indexer_url]
    )
    args = ["upload", "--url", devnet.rpc_url, "--key", DEV_ACCOUNT_KEY, "--file", str(source)]
    output = run_go(binary, *args, *where, *flags, cwd=source.parent)
    found = UPLOADED.search(output)
    assert found, output[-3000:]
    return found.group(1), output


def go_download(
    binary: Path, devnet: DevnetProcess, root: str, output: Path, *, via_nodes: bool = False
) -> str:
    where = (
        ["--node", ",".join(devnet.node_urls)] if via_nodes else ["--indexer", devnet.indexer_url]
    )
    args = ["download", "--root", root, "--file", str(output), "--proof", *where]
    log = run_go(binary, *args, cwd=output.parent)
    assert "Succeeded to validate the downloaded file" in log, log[-3000:]
    return log


def transactions(devnet: DevnetProcess) -> int:
    return int(devnet.stats()["transactions"])


def zerog_reads(zerog: Any, root: str, data: bytes, output: Path) -> dict[str, Any]:
    """zerog downloads ``root`` with every proof checked; the bytes are ``data``."""
    got = zerog("download", root, "-o", str(output), "--json")
    assert got.exit_code == 0, got
    assert output.read_bytes() == data
    assert zerog("hash", str(output), "--expect", root).exit_code == 0
    document: dict[str, Any] = got.json
    return document


def test_go_upload_of_three_segments_reads_back_with_zerog(
    go_client: Path, net: DevnetProcess, zerog_on: Any, tmp_path: Path
) -> None:
    data = pattern(THREE_SEGMENTS, seed=200)
    source = tmp_path / "three.bin"
    source.write_bytes(data)
    before = transactions(net)
    root, log = go_upload(go_client, net, source)
    assert root == merkle.tree_from_bytes(data).root_hex
    assert "segments=3" in log and "Fast mode disabled" in log
    assert transactions(net) == before + 1
    report = zerog_reads(zerog_on, root, data, tmp_path / "back.bin")
    assert report["segments"] == 3


def test_go_fast_mode_small_file_uploads_by_root(
    go_client: Path, net: DevnetProcess, zerog_on: Any, tmp_path: Path
) -> None:
    """Fast mode: the transaction is not awaited and the segment goes up by root."""
    data = pattern(5000, seed=201)
    source = tmp_path / "small.bin"
    source.write_bytes(data)
    root, log = go_upload(go_client, net, source, "--fast-mode", via_nodes=True)
    assert "Begin to upload file by root" in log and "Completed to upload file by root" in log
    zerog_reads(zerog_on, root, data, tmp_path / "back.bin")


def test_go_upload_with_two_replicas_lands_on_both_nodes(
    go_client: Path, net: DevnetProcess, zerog_on: Any, tmp_path: Path
) -> None:
    data = pattern(merkle.SEGMENT_SIZE + 3000, seed=202)
    source = tmp_path / "replicated.bin"
    source.write_bytes(data)
    root, log = go_upload(go_client, net, source, "--expected-replica", "2")
    assert "nodeNum=2" in log
    for node_url in net.node_urls:
        info = rpc(node_url, "zgs_getFileInfo", [root, True])
        assert info is not None and info["finalized"] is True, (node_url, info)
    zerog_reads(zerog_on, root, data, tmp_path / "back.bin")


def test_go_skip_tx_on_a_root_zerog_stored_sends_no_transaction(
    go_client: Path, net: DevnetProcess, zerog_on: Any, tmp_path: Path
) -> None:
    data = pattern(THREE_SEGMENTS, seed=203)
    source = tmp_path / "stored-by-zerog.bin"
    source.write_bytes(data)
    uploaded = zerog_on("upload", str(source), "--json")
    assert uploaded.exit_code == 0, uploaded
    before = transactions(net)
    root, log = go_upload(go_client, net, source, "--skip-tx")
    assert root == uploaded.json["root"]
    assert transactions(net) == before
    assert "Succeeded to send transaction" not in log
    go_download(go_client, net, root, tmp_path / "by-go.bin")
    assert (tmp_path / "by-go.bin").read_bytes() == data


def test_zerog_upload_of_a_root_the_go_client_put_on_another_node_pays_nothing(
    go_client: Path, net: DevnetProcess, zerog_on: Any, tmp_path: Path
) -> None:
    """zerog's dedupe probe asked only the node it selected, so a file the Go client had
    stored on another node was paid for again (found through the official indexer, which
    lists nodes in the order they answer)."""
    data = pattern(THREE_SEGMENTS, seed=206)
    source = tmp_path / "on-node-1.bin"
    source.write_bytes(data)
    args = ["upload", "--url", net.rpc_url, "--key", DEV_ACCOUNT_KEY, "--file", str(source)]
    run_go(go_client, *args, "--node", net.node_urls[1], cwd=tmp_path)
    before = transactions(net)
    uploaded = zerog_on("upload", str(source), "--json")
    assert uploaded.exit_code == 0, uploaded
    assert uploaded.json["deduped"] is True and int(uploaded.json["cost"]["neuron"]) == 0
    assert uploaded.json["nodes"] == [net.node_urls[1]]
    assert transactions(net) == before


@pytest.mark.parametrize("via_nodes", [False, True], ids=["indexer", "nodes"])
def test_zerog_upload_downloads_with_go_proofs(
    go_client: Path, net: DevnetProcess, zerog_on: Any, tmp_path: Path, via_nodes: bool
) -> None:
    data = pattern(THREE_SEGMENTS + 4096, seed=204 + via_nodes)
    source = tmp_path / "by-zerog.bin"
    source.write_bytes(data)
    uploaded = zerog_on("upload", str(source), "--json")
    assert uploaded.exit_code == 0, uploaded
    output = tmp_path / "read-by-go.bin"
    go_download(go_client, net, uploaded.json["root"], output, via_nodes=via_nodes)
    assert output.read_bytes() == data


def test_devnet_with_the_official_indexer_round_trip(
    go_client: Path, zerog: Any, tmp_path: Path
) -> None:
    """`zerog devnet up --indexer official`: upload, download and verify go through it."""
    up = zerog("devnet", "up", "--detach", "--port", "0", "--indexer", "official", "--json")
    assert up.exit_code == 0, up
    info = up.json["devnet"]
    try:
        official = info["indexer_url"]
        assert official.startswith("http://127.0.0.1:") and not official.startswith(info["url"])
        shown = zerog("config", "show", "--json")
        assert shown.exit_code == 0, shown
        assert official in shown.stdout
        answer = requests.post(
            official,
            json={"jsonrpc": "2.0", "id": 1, "method": "indexer_getShardedNodes"},
            timeout=10,
            proxies=NO_PROXY,
        )
        trusted = [node["url"] for node in answer.json()["result"]["trusted"]]
        assert sorted(trusted) == sorted(info["node_urls"])
        requests.post(info["url"] + "/admin/stats/reset", timeout=10, proxies=NO_PROXY)

        data = pattern(THREE_SEGMENTS, seed=210)
        source = tmp_path / "through-official.bin"
        source.write_bytes(data)
        uploaded = zerog("upload", str(source), "--json")
        assert uploaded.exit_code == 0, uploaded
        zerog_reads(zerog, uploaded.json["root"], data, tmp_path / "back.bin")
        backup = zerog("backup", "create", str(source), "--label", "official", "--json")
        assert backup.exit_code == 0, backup
        verified = zerog("verify", "--json")
        assert verified.exit_code == 0, verified
        assert [item["status"] for item in verified.json["items"]] == ["ok"]
        stats = requests.get(info["url"] + "/admin/stats", timeout=10, proxies=NO_PROXY).json()
        builtin_calls = [name for name in stats["methods"] if name.startswith("indexer:")]
        assert builtin_calls == [], builtin_calls
    finally:
        down = zerog("devnet", "down", "--json")
    assert down.exit_code == 0, down
    with pytest.raises(requests.ConnectionError):
        requests.post(official, json={}, timeout=5, proxies=NO_PROXY)


def test_official_indexer_without_its_binary_says_where_to_get_it(
    zerog: Any, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-0g-storage-client"
    got = zerog(
        "devnet",
        "up",
        "--detach",
        "--port",
        "0",
        "--indexer",
        "official",
        "--storage-client",
        str(missing),
    )
    assert got.exit_code == 8, got
    assert "@0gfoundation/0g-compute-ts-sdk" in got.stderr and "ZEROG_STORAGE_CLIENT" in got.stderr
    assert not (Path(os.environ["ZEROG_HOME"]) / "devnet" / "devnet.pid").exists()


def test_a_go_client_with_another_checksum_fails_the_install_loudly(tmp_path: Path) -> None:
    """A cache whose package ships another build: `test_tools.py ensure go-client` refuses it."""
    lock_digest = hashlib.sha256((ts_sdk.INTEROP / "package-lock.json").read_bytes()).hexdigest()
    folder = tmp_path / "npm-cache" / ts_sdk.node_modules_dir().parent.name
    folder.mkdir(parents=True)
    (folder / ts_sdk.STAMP).write_text(lock_digest + "\n", encoding="utf-8")
    for package in ts_sdk.PACKAGES:
        (folder / "node_modules" / package).mkdir(parents=True)
        (folder / "node_modules" / package / "package.json").write_text("{}", encoding="utf-8")
    fake = folder / "node_modules" / ts_sdk.COMPUTE_SDK_PACKAGE / go_client_tool.BINARY_IN_PACKAGE
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho not the official build\n", encoding="utf-8")
    fake.chmod(0o755)
    completed = subprocess.run(
        [sys.executable, "tools/test_tools.py", "ensure", "go-client"],
        cwd=REPO,
        env={**os.environ, "ZEROG_NPM_CACHE": str(tmp_path / "npm-cache")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1, completed
    assert "SHA-256" in completed.stderr and go_client_tool.BINARY_SHA256 in completed.stderr
    assert str(fake) in completed.stderr


FRAGMENTED = re.compile(r"file uploaded in (\d+) fragments, roots = ([0-9a-fx,]+)")


def test_go_fragment_size_upload_reads_back_with_zerog_by_its_roots(
    go_client: Path, net: DevnetProcess, zerog_on: Any, tmp_path: Path
) -> None:
    """`upload --fragment-size` cuts as zerog cuts: zerog reads it given the Go client's roots."""
    fragment = 2 * merkle.SEGMENT_SIZE
    data = pattern(3 * fragment + 777, seed=240)
    source = tmp_path / "split-by-go.bin"
    source.write_bytes(data)
    args = ["upload", "--url", net.rpc_url, "--key", DEV_ACCOUNT_KEY, "--file", str(source)]
    before = transactions(net)
    log = run_go(
        go_client,
        *args,
        "--indexer",
        net.indexer_url,
        "--fragment-size",
        str(fragment),
        cwd=tmp_path,
    )
    found = FRAGMENTED.search(log)
    assert found, log[-3000:]
    roots = found.group(2).split(",")
    assert int(found.group(1)) == len(roots) == 4
    pieces = [data[i : i + fragment] for i in range(0, len(data), fragment)]
    assert roots == [merkle.tree_from_bytes(piece).root_hex for piece in pieces]
    # The Go client batches up to --batch-size (10) fragments per Flow transaction.
    assert transactions(net) == before + 1

    output = tmp_path / "read-by-zerog.bin"
    got = zerog_on("download", ",".join(roots), "-o", str(output), "--json")
    assert got.exit_code == 0, got
    assert output.read_bytes() == data
    assert got.json["segments"] == 2 + 2 + 2 + 1


def test_zerog_fragments_download_with_the_go_client_roots(
    go_client: Path,
    net: DevnetProcess,
    zerog_on: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZEROG_FRAGMENT_SIZE", str(2 * merkle.SEGMENT_SIZE))
    data = pattern(5 * merkle.SEGMENT_SIZE + 99, seed=241)
    source = tmp_path / "split-by-zerog.bin"
    source.write_bytes(data)
    uploaded = zerog_on("upload", str(source), "--json")
    assert uploaded.exit_code == 0, uploaded
    roots = uploaded.json["roots"]
    assert len(roots) == 3

    output = tmp_path / "read-by-go.bin"
    args = ["download", "--roots", ",".join(roots), "--file", str(output), "--proof"]
    run_go(go_client, *args, "--indexer", net.indexer_url, cwd=tmp_path)
    assert output.read_bytes() == data


DIRECTORY_UPLOADED = re.compile(r"rootHash=(0x[0-9a-f]{64})")


def sample_folder(base: Path, seed: int) -> Path:
    """Four non-empty files (one in a subfolder, one named with Go's HTML-escaped
    characters), an empty file and a symlink: what upload-dir stores."""
    folder = base / f"site-{seed}"
    (folder / "css").mkdir(parents=True)
    (folder / "index.html").write_bytes(pattern(3000, seed=seed))
    (folder / "css" / "site.css").write_bytes(pattern(merkle.SEGMENT_SIZE + 5, seed=seed + 1))
    (folder / "big.bin").write_bytes(pattern(2 * merkle.SEGMENT_SIZE + 10, seed=seed + 2))
    (folder / "notes & <todo>.txt").write_bytes(pattern(77, seed=seed + 3))
    (folder / "empty.txt").write_bytes(b"")
    (folder / "latest").symlink_to("index.html")
    return folder


def same_tree(left: Path, right: Path) -> None:
    """Both folders hold the same paths, kinds, bytes and link targets."""

    def listing(folder: Path) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for path in sorted(folder.rglob("*")):
            key = str(path.relative_to(folder))
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = ("dir",)
            else:
                found[key] = ("file", path.read_bytes())
        return found

    assert listing(left) == listing(right)


def test_go_upload_dir_reads_back_with_zerog(
    go_client: Path, net: DevnetProcess, zerog_on: Any, tmp_path: Path
) -> None:
    """The official directory format, read by zerog: the metadata object, then every
    file by its root, each proof checked; and zerog encodes the same folder to the
    same metadata bytes (the same root)."""
    folder = sample_folder(tmp_path, seed=260)
    before = transactions(net)
    # upload-dir takes storage nodes only (no --indexer).
    args = ["upload-dir", "--url", net.rpc_url, "--key", DEV_ACCOUNT_KEY]
    log = run_go(
        go_client,
        *args,
        "--file",
        str(folder),
        "--node",
        ",".join(net.node_urls),
        cwd=tmp_path,
    )
    found = DIRECTORY_UPLOADED.search(log)
    assert found, log[-3000:]
    root = found.group(1)
    # One Flow transaction per non-empty file, plus one for the metadata object.
    assert transactions(net) == before + 5

    restored = tmp_path / "read-by-zerog"
    got = zerog_on("download", root, "--dir", str(restored), "--json")
    assert got.exit_code == 0, got
    assert (got.json["members"], got.json["files"]) == (7, 5)
    same_tree(folder, restored)

    one = tmp_path / "site.css"
    member = zerog_on("download", root, "--path", "css/site.css", "-o", str(one), "--json")
    assert member.exit_code == 0, member
    assert one.read_bytes() == (folder / "css" / "site.css").read_bytes()

    mine = zerog_on("backup", "create", str(folder), "--format", "0g-dir", "--json")
    assert mine.exit_code == 0, mine
    assert mine.json["root"] == root
    assert mine.json["already_on_network"] is True


def test_zerog_0g_dir_backup_reads_with_go_download_dir_and_diff_dir(
    go_client: Path, net: DevnetProcess, zerog_on: Any, tmp_path: Path
) -> None:
    folder = sample_folder(tmp_path, seed=270)
    before = transactions(net)
    made = zerog_on("backup", "create", str(folder), "--format", "0g-dir", "--json")
    assert made.exit_code == 0, made
    assert made.json["kind"] == "0g-dir" and made.json["files_uploaded"] == 4
    assert transactions(net) == before + 5
    root = made.json["root"]

    by_go = tmp_path / "read-by-go"
    where = ["--indexer", net.indexer_url]
    run_go(
        go_client,
        "download-dir",
        "--root",
        root,
        "--file",
        str(by_go),
        "--proof",
        *where,
        cwd=tmp_path,
    )
    same_tree(folder, by_go)

    unchanged = run_go(
        go_client, "diff-dir", "--root", root, "--file", str(folder), *where, cwd=tmp_path
    )
    assert "[*]" not in unchanged and "[+]" not in unchanged and "[-]" not in unchanged
    (folder / "css" / "site.css").write_bytes(b"changed")
    changed = run_go(
        go_client, "diff-dir", "--root", root, "--file", str(folder), *where, cwd=tmp_path
    )
    assert re.search(r"site\.css.*\[\*\]", changed), changed

    restored = tmp_path / "restored"
    back = zerog_on("backup", "restore", str(made.json["backup_id"]), "--to", str(restored))
    assert back.exit_code == 0, back
    same_tree(by_go, restored)
