"""Chain transactions as the official clients send them, nodes that lag, sharded dedupe.

Issue 13, items 6 to 8, end to end from the CLI against a devnet:

- the Flow payment is a legacy transaction at ``eth_gasPrice`` (the Go and
  TS storage clients' source of the price), EIP-1559 on request, with
  ``--gas-price`` / ``--gas-limit`` flags;
- refused as underpriced, it is signed again at 1.5x with the same nonce and
  paid once;
- the storage nodes' ``networkIdentity.chainId`` must be the profile's;
- ``flow_address`` replaces the nodes' Flow address;
- the time nodes get to see a paid transaction is ``node_sync_timeout``; when
  it runs out the message says a rerun reuses the payment, and it does;
- a file stored on sharded nodes is recognised as stored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.devnet_harness import DevnetProcess, rpc, start_devnet
from zerog_cli.devnet.constants import DEV_ACCOUNT_ADDRESS, FLOW_ADDRESS


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _tx(net: DevnetProcess, tx_hash: str) -> dict[str, Any]:
    found: dict[str, Any] = rpc(net.rpc_url, "eth_getTransactionByHash", [tx_hash])
    return found


def _gas_price(net: DevnetProcess) -> int:
    return int(rpc(net.rpc_url, "eth_gasPrice"), 16)


def _nonce(net: DevnetProcess) -> int:
    return int(rpc(net.rpc_url, "eth_getTransactionCount", [DEV_ACCOUNT_ADDRESS, "latest"]), 16)


def _balance(net: DevnetProcess) -> int:
    return int(rpc(net.rpc_url, "eth_getBalance", [DEV_ACCOUNT_ADDRESS, "latest"]), 16)


# -- item 6: transactions like the official clients --------------------------------


def test_upload_pays_with_a_legacy_tx_at_eth_gas_price(cli, net: DevnetProcess, tmp_path: Path):
    uploaded = cli("upload", str(_file(tmp_path, "legacy.bin", 5_000)), "--json")
    assert uploaded.exit_code == 0, uploaded
    tx = _tx(net, uploaded.json["tx_hash"])
    assert tx["type"] == "0x0"
    assert int(tx["gasPrice"], 16) == _gas_price(net)
    assert "maxFeePerGas" not in tx


def test_eip1559_is_an_option(cli, net: DevnetProcess, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ZEROG_TX_TYPE", "eip1559")
    uploaded = cli("upload", str(_file(tmp_path, "typed.bin", 5_000)), "--json")
    assert uploaded.exit_code == 0, uploaded
    assert _tx(net, uploaded.json["tx_hash"])["type"] == "0x2"
    monkeypatch.setenv("ZEROG_TX_TYPE", "eip4844")
    refused = cli("upload", str(_file(tmp_path, "blob.bin", 5_000)))
    assert refused.exit_code == 8, refused
    assert "tx_type" in refused.stderr


def test_gas_flags_on_upload_and_backup_create(cli, net: DevnetProcess, tmp_path: Path):
    uploaded = cli(
        "upload",
        str(_file(tmp_path, "flags.bin", 5_000)),
        "--gas-price",
        "3gwei",
        "--gas-limit",
        "400000",
        "--json",
    )
    assert uploaded.exit_code == 0, uploaded
    tx = _tx(net, uploaded.json["tx_hash"])
    assert (int(tx["gasPrice"], 16), int(tx["gas"], 16)) == (3_000_000_000, 400_000)

    backup = cli(
        "backup",
        "create",
        str(_file(tmp_path, "db.dump", 6_000)),
        "--gas-price",
        "2500000000",
        "--json",
    )
    assert backup.exit_code == 0, backup
    assert int(_tx(net, backup.json["tx_hash"])["gasPrice"], 16) == 2_500_000_000

    bad = cli("upload", str(tmp_path / "flags.bin"), "--name", "x", "--gas-price", "cheap")
    assert bad.exit_code == 2, bad
    assert "gas price" in bad.stderr


def test_gas_flags_on_infer_fund(cli, net: DevnetProcess, monkeypatch):
    """The compute funding transactions take the same type and gas flags."""
    from eth_account import Account

    from tests.devnet_harness import send_transaction

    key = "0x" + "5e" * 32
    funded = send_transaction(net.rpc_url, to=Account.from_key(key).address, value=10 * 10**18)
    assert funded["status"] == "0x1"
    monkeypatch.setenv("ZEROG_COMPUTE_PRIVATE_KEY", key)
    deposited = cli(
        "infer",
        "fund",
        "deposit",
        "3",
        "--yes",
        "--gas-price",
        "2gwei",
        "--gas-limit",
        "900000",
        "--json",
    )
    assert deposited.exit_code == 0, deposited
    tx = _tx(net, deposited.json["tx_hash"])
    assert tx["type"] == "0x0"
    assert (int(tx["gasPrice"], 16), int(tx["gas"], 16)) == (2_000_000_000, 900_000)


def test_underpriced_is_raised_with_the_same_nonce_and_paid_once(
    cli, net: DevnetProcess, tmp_path: Path
):
    price = _gas_price(net)
    floor = str(price * 12 // 10)
    faults = cli("devnet", "faults", "--data-dir", str(net.data_dir), "--min-gas-price", floor)
    assert faults.exit_code == 0, faults
    nonce, balance, txs = _nonce(net), _balance(net), net.stats()["transactions"]
    uploaded = cli("upload", str(_file(tmp_path, "bump.bin", 5_000)), "--json")
    assert uploaded.exit_code == 0, uploaded
    assert "transaction underpriced" in uploaded.stderr
    tx = _tx(net, uploaded.json["tx_hash"])
    assert int(tx["nonce"], 16) == nonce
    assert int(tx["gasPrice"], 16) == price * 15 // 10
    assert net.stats()["transactions"] == txs + 1
    receipt = rpc(net.rpc_url, "eth_getTransactionReceipt", [uploaded.json["tx_hash"]])
    fee = int(uploaded.json["cost"]["neuron"])
    gas_paid = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert balance - _balance(net) == fee + gas_paid
    costs = cli("ledger", "sql", "SELECT neuron FROM cost_tracking", "--json").json["rows"]
    assert [row["neuron"] for row in costs] == [str(fee)]
    pending = cli("ledger", "sql", "SELECT * FROM pending_payments", "--json").json["rows"]
    assert pending == []

    net.set_faults(min_gas_price=0, underpriced_next=1)
    nonce, txs = _nonce(net), net.stats()["transactions"]
    again = cli("upload", str(_file(tmp_path, "replace.bin", 5_000)), "--json")
    assert again.exit_code == 0, again
    assert "replacement transaction underpriced" in again.stderr
    assert int(_tx(net, again.json["tx_hash"])["nonce"], 16) == nonce
    assert net.stats()["transactions"] == txs + 1


def test_a_stuck_tx_is_re_sent_higher_with_the_same_nonce_and_paid_once(
    cli, net: DevnetProcess, tmp_path: Path, monkeypatch
):
    """Accepted but not mined: after tx_resend_after the same nonce goes out at 1.5x."""
    price = _gas_price(net)
    stuck = cli("devnet", "faults", "--data-dir", str(net.data_dir), "--hold-next", "1")
    assert stuck.exit_code == 0, stuck
    monkeypatch.setenv("ZEROG_TX_RESEND_AFTER", "1")
    nonce, balance, txs = _nonce(net), _balance(net), net.stats()["transactions"]
    uploaded = cli("upload", str(_file(tmp_path, "stuck-in-pool.bin", 5_000)), "--json")
    assert uploaded.exit_code == 0, uploaded
    assert "not mined within 1 s" in uploaded.stderr
    tx = _tx(net, uploaded.json["tx_hash"])
    assert (int(tx["nonce"], 16), int(tx["gasPrice"], 16)) == (nonce, price * 15 // 10)
    assert net.stats()["transactions"] == txs + 1
    assert net.stats()["faults"]["held"] == 1
    receipt = rpc(net.rpc_url, "eth_getTransactionReceipt", [uploaded.json["tx_hash"]])
    gas_paid = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert balance - _balance(net) == int(uploaded.json["cost"]["neuron"]) + gas_paid


def test_gas_raises_are_bounded_and_nothing_is_paid(cli, net: DevnetProcess, tmp_path: Path):
    net.set_faults(underpriced_next=50)
    txs = net.stats()["transactions"]
    refused = cli("upload", str(_file(tmp_path, "stuck.bin", 5_000)))
    assert refused.exit_code == 6, refused
    assert "still refused after 4 gas price raise(s)" in refused.stderr
    assert net.stats()["transactions"] == txs
    stored = cli("ledger", "sql", "SELECT name FROM objects", "--json").json["rows"]
    assert "stuck.bin" not in [row["name"] for row in stored]


def test_node_chain_id_must_match_the_profile(cli, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ZEROG_CHAIN_ID", "16661")
    result = cli("upload", str(_file(tmp_path, "wrong.bin", 5_000)), "--dry-run")
    assert result.exit_code == 8, result
    assert "serves chain 31337, but profile devnet expects chain 16661" in result.stderr


def test_flow_address_setting_overrides_the_nodes(
    cli, net: DevnetProcess, tmp_path: Path, monkeypatch
):
    source = _file(tmp_path, "flow.bin", 5_000)
    monkeypatch.setenv("ZEROG_FLOW_ADDRESS", FLOW_ADDRESS.upper().replace("0X", "0x"))
    planned = cli("upload", str(source), "--dry-run", "--json")
    assert planned.exit_code == 0, planned
    assert planned.json["flow_address"] == FLOW_ADDRESS.lower()

    elsewhere = "0x" + "ab" * 20
    monkeypatch.setenv("ZEROG_FLOW_ADDRESS", elsewhere)
    txs = net.stats()["transactions"]
    refused = cli("upload", str(source))
    assert refused.exit_code != 0, refused
    assert f"Flow contract {elsewhere}" in refused.stderr
    assert net.stats()["transactions"] == txs


# -- item 7: waiting for nodes ---------------------------------------------------


def test_a_lagging_node_gets_node_sync_timeout(
    cli, net: DevnetProcess, tmp_path: Path, monkeypatch
):
    lag = ["--lag-node", "0", "--lag-node", "1", "--lag-ms", "2000", "--json"]
    faults = cli("devnet", "faults", "--data-dir", str(net.data_dir), *lag)
    assert faults.exit_code == 0, faults
    assert (faults.json["lag_nodes"], faults.json["lag_ms"]) == ([0, 1], 2000)
    monkeypatch.setenv("ZEROG_NODE_SYNC_TIMEOUT", "2m")
    uploaded = cli("upload", str(_file(tmp_path, "late.bin", 5_000)), "--json")
    assert uploaded.exit_code == 0, uploaded
    assert uploaded.json["finalized"] is True

    monkeypatch.setenv("ZEROG_NODE_SYNC_TIMEOUT", "0")
    invalid = cli("upload", str(_file(tmp_path, "never.bin", 5_000)))
    assert invalid.exit_code == 8, invalid
    assert "node_sync_timeout" in invalid.stderr
    cleared = cli("devnet", "faults", "--data-dir", str(net.data_dir), "--clear", "--json")
    assert (cleared.json["lag_nodes"], cleared.json["lag_ms"]) == ([], 0)


def test_timeout_after_payment_then_rerun_pays_nothing(
    cli, cli_process, net: DevnetProcess, tmp_path: Path, monkeypatch
):
    """Each run is its own process, as a rerun is: the journal names the dead payer."""
    monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
    source = _file(tmp_path, "slow.bin", 5_000)
    net.set_faults(lag_nodes=[0, 1], lag_ms=600_000)
    monkeypatch.setenv("ZEROG_NODE_SYNC_TIMEOUT", "1")
    txs, balance = net.stats()["transactions"], _balance(net)
    failed = cli_process("upload", str(source), "--json")
    assert failed.exit_code == 6, failed
    assert net.stats()["transactions"] == txs + 1
    assert "did not see tx" in failed.stderr
    assert "the payment is made: rerun the same command to reuse tx" in failed.stderr
    paid = balance - _balance(net)

    # Still lagging when the rerun starts: it must take the paid tx from the journal.
    net.set_faults(lag_ms=8_000)
    monkeypatch.setenv("ZEROG_NODE_SYNC_TIMEOUT", "2m")
    rerun = cli_process("upload", str(source), "--json")
    assert rerun.exit_code == 0, rerun
    assert net.stats()["transactions"] == txs + 1
    assert balance - _balance(net) == paid
    assert rerun.json["recovered_payment"] == rerun.json["tx_hash"]
    assert f"({rerun.json['tx_hash']})" in failed.stderr
    costs = cli("ledger", "sql", "SELECT neuron, reference FROM cost_tracking", "--json").json[
        "rows"
    ]
    assert [row["reference"] for row in costs].count(rerun.json["root"]) == 1
    assert int(rerun.json["cost"]["neuron"]) > 0


# -- item 8: dedupe on sharded nodes -----------------------------------------------


@pytest.fixture
def sharded(tmp_path: Path, zerog, monkeypatch) -> Iterator[DevnetProcess]:
    with start_devnet(tmp_path / "sharded", shards="0/2,1/2") as handle:
        monkeypatch.setenv("ZEROG_DEVNET_URL", handle.base_url)
        yield handle


def test_a_file_on_sharded_nodes_is_recognised_as_stored(zerog, sharded, tmp_path: Path):
    # Whole-segment fillers first, so that the file is an odd segment of the
    # flow: shard 1/2 holds it, and shard 0/2 (the first node selected)
    # reports it finalized while holding none of it.
    for index in range(2):
        filler = zerog("upload", str(_file(tmp_path, f"filler{index}.bin", 262_144)), "--json")
        assert filler.exit_code == 0, filler
        info = rpc(sharded.node_urls[0], "zgs_getFileInfo", [filler.json["root"], True])
        if info["tx"]["startEntryIndex"] // 1024 % 2 == 0:
            break
    source = _file(tmp_path, "two.bin", 100_000)
    first = zerog("upload", str(source), "--json")
    assert first.exit_code == 0, first
    info = rpc(sharded.node_urls[0], "zgs_getFileInfo", [first.json["root"], True])
    assert info["tx"]["startEntryIndex"] // 1024 % 2 == 1 and info["finalized"] is True
    txs = sharded.stats()["transactions"]
    again = zerog("upload", str(source), "--name", "two-again.bin", "--json")
    assert again.exit_code == 0, again
    assert again.json["deduped"] is True
    assert again.json["cost"]["neuron"] == "0"
    assert again.json["tx_seq"] == first.json["tx_seq"]
    assert sorted(again.json["nodes"]) == sorted(sharded.node_urls)
    assert sharded.stats()["transactions"] == txs
