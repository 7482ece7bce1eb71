"""`zerog devnet up --chain anvil`: the devnet's nodes, indexer and providers over anvil
running the official contracts' bytecode, from a real command line.

anvil and the bytecode come from the pinned npm packages (`make test-tools`).
The round trip here is what a user with Node rehearses: start the devnet
detached, upload, download, infer through the ``devnet`` profile, stop it.
What it proves beyond the built-in chain: the payment is a real EVM
transaction to the official Flow (its ``Submit`` log is read back from anvil
itself), the storage nodes learned of it by following anvil's logs, and the
provider's billing checks read the official InferenceServing. `make soak`
reruns the storage and infer suites over anvil (``ZEROG_TEST_CHAIN=anvil``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.devnet_harness import pattern, rpc, start_devnet
from tools import test_tools, ts_sdk
from zerog_cli.devnet.compute import DEVNET_MODEL, PROVIDER_ADDRESS
from zerog_cli.devnet.constants import FLOW_ADDRESS, INFERENCE_SERVING_ADDRESS
from zerog_cli.zerog import flow_abi, merkle

pytestmark = [pytest.mark.interop, pytest.mark.devnet]


@pytest.fixture
def anvil_devnet(
    zerog: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """`zerog devnet up --detach --chain anvil`, stopped with `zerog devnet down`."""
    test_tools.ensure(["anvil"])
    monkeypatch.delenv("ZEROG_DEVNET_URL", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    data_dir = tmp_path / "devnet"
    started = zerog(
        "devnet",
        "up",
        "--detach",
        "--port",
        "0",
        "--nodes",
        "2",
        "--chain",
        "anvil",
        "--packages",
        str(ts_sdk.node_modules_dir()),
        "--data-dir",
        str(data_dir),
        "--json",
    )
    assert started.exit_code == 0, started
    try:
        yield started.json
    finally:
        stopped = zerog("devnet", "down", "--data-dir", str(data_dir), "--json")
        assert stopped.exit_code == 0, stopped


def test_upload_download_infer_round_trip_over_anvil(
    zerog: Any, anvil_devnet: dict[str, Any], tmp_path: Path
) -> None:
    anvil_url = anvil_devnet["devnet"]["anvil_url"]
    assert anvil_devnet["devnet"]["chain"] == "anvil"
    assert anvil_url.startswith("http://127.0.0.1:")
    status = zerog("devnet", "status", "--json")
    assert status.exit_code == 0, status
    assert status.json["devnet"]["chain"] == "anvil"
    assert status.json["health"]["pid"] == status.json["devnet"]["pid"]
    assert "chain:       anvil, the official 0G contracts" in zerog("devnet", "status").stdout
    # The official Flow's runtime code is what runs at the devnet's Flow address.
    assert len(rpc(anvil_url, "eth_getCode", [FLOW_ADDRESS, "latest"])) > 2 * 1000

    source = tmp_path / "data.bin"
    source.write_bytes(pattern(3 * merkle.SEGMENT_SIZE + 17, seed=15))
    assert zerog("ns", "create", "docs").exit_code == 0
    uploaded = zerog("upload", str(source), "--ns", "docs", "--json")
    assert uploaded.exit_code == 0, uploaded
    assert uploaded.json["finalized"] is True
    # The payment is a Submit of the official Flow, read back from anvil itself.
    topic = "0x" + flow_abi.SUBMIT_EVENT_TOPIC.hex()
    logs = rpc(anvil_url, "eth_getLogs", [{"fromBlock": "0x0", "address": FLOW_ADDRESS}])
    submits = [flow_abi.decode_submit_log(log) for log in logs if log["topics"][0] == topic]
    assert len(submits) == 1
    roots = [merkle.fold_submission_root(list(s.submission.data.nodes)) for s in submits]
    assert ["0x" + root.hex() for root in roots] == [uploaded.json["root"]]

    copy = tmp_path / "copy.bin"
    downloaded = zerog("download", "docs/data.bin", "-o", str(copy), "--json")
    assert downloaded.exit_code == 0, downloaded
    assert copy.read_bytes() == source.read_bytes()

    answered = zerog("infer", "hello anvil", "--json")
    assert answered.exit_code == 0, answered
    assert answered.json["answer"] == "You said: hello anvil"
    assert answered.json["provider"] == PROVIDER_ADDRESS
    assert answered.json["model"] == DEVNET_MODEL
    # The provider's service is registered on the official InferenceServing, staked.
    assert int(rpc(anvil_url, "eth_getBalance", [INFERENCE_SERVING_ADDRESS, "latest"]), 16) > 0


def test_chain_faults_are_refused_over_anvil(zerog: Any, anvil_devnet: dict[str, Any]) -> None:
    refused = zerog("devnet", "faults", "--hold-next", "1")
    assert refused.exit_code == 2, refused
    assert "hold_next act inside the built-in chain; --chain anvil has none" in refused.stderr
    assert zerog("devnet", "faults", "--fail-rate", "0").exit_code == 0


def test_missing_packages_say_how_to_get_them(zerog: Any, tmp_path: Path) -> None:
    empty = tmp_path / "node_modules"
    empty.mkdir()
    refused = zerog(
        "devnet",
        "up",
        "--port",
        "0",
        "--chain",
        "anvil",
        "--packages",
        str(empty),
        "--data-dir",
        str(tmp_path / "devnet"),
    )
    assert refused.exit_code == 8, refused
    assert "does not hold anvil and the official 0G SDK packages" in refused.stderr
    assert "make test-tools" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "devnet" / "devnet.json").exists()


def test_anvil_ends_with_its_devnet_even_when_killed(tmp_path: Path) -> None:
    """No anvil outlives its devnet: it is told to stop when the devnet process dies."""
    test_tools.ensure(["anvil"])
    with start_devnet(tmp_path / "devnet", nodes=1, chain="anvil") as devnet:
        anvil_url = devnet.health()["anvilUrl"]
        assert int(rpc(anvil_url, "eth_chainId"), 16) == 31337
        os.kill(devnet.pid, signal.SIGKILL)
        devnet.process.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _answers(anvil_url):
            time.sleep(0.1)
        assert not _answers(anvil_url), "anvil still runs after its devnet was killed"


def _answers(url: str) -> bool:
    try:
        requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=2)
    except requests.RequestException:
        return False
    return True
