"""Getting 0G back: `zerog infer fund retrieve` and `zerog infer fund refund` against a devnet.

The devnet's InferenceServing has the networks' 24 h lock time; the tests pass
it with the chain's own clock (``evm_increaseTime`` then ``evm_mine``), so
"locked" and "unlocked" are decided by block time exactly as on chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess, rpc, send_transaction
from zerog_cli.devnet.compute import LOCK_TIME, PROVIDER_ADDRESS
from zerog_cli.zerog import compute

pytestmark = pytest.mark.devnet(nodes=1)

ZG = 10**18


def funded_wallet(
    net: DevnetProcess, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, name: str
) -> str:
    """A fresh wallet with a 5 0G ledger, 2 0G of it at the devnet provider; zerog uses it."""
    key = "0x" + compute.keccak256(f"zerog refund test wallet {name}".encode()).hex()
    address = compute.address_of(key)
    assert send_transaction(net.rpc_url, to=address, value=20 * ZG)["status"] == "0x1"
    monkeypatch.setenv("ZEROG_COMPUTE_PRIVATE_KEY", key)
    assert cli("infer", "fund", "deposit", "5", "--yes").exit_code == 0
    assert cli("infer", "fund", "transfer", PROVIDER_ADDRESS, "2", "--yes").exit_code == 0
    return address


def pass_time(net: DevnetProcess, seconds: int) -> None:
    rpc(net.rpc_url, "evm_increaseTime", [seconds])
    rpc(net.rpc_url, "evm_mine", [])


def sub_account(cli: Callable[..., Result]) -> dict[str, Any]:
    report = cli("infer", "account", "--json").json
    (sub,) = [s for s in report["sub_accounts"] if s["provider"] == PROVIDER_ADDRESS]
    return sub


def test_retrieve_locks_for_the_lock_time_then_returns_to_the_ledger(
    cli: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    funded_wallet(net, cli, monkeypatch, "retrieve")
    unconfirmed = cli("infer", "fund", "retrieve", PROVIDER_ADDRESS)
    assert unconfirmed.exit_code == 2 and "pass --yes" in unconfirmed.stderr
    assert sub_account(cli)["refunds"] == []

    asked = cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes", "--json")
    assert asked.exit_code == 0, asked
    assert asked.json["sent"] is True
    assert asked.json["returned"]["0g"] == "0" and asked.json["requested"]["0g"] == "2"
    assert asked.json["lock_time"] == LOCK_TIME
    (refund,) = asked.json["refunds"]
    assert refund["amount"]["0g"] == "2" and refund["unlocked"] is False
    assert refund["seconds_left"] == LOCK_TIME

    sub = sub_account(cli)
    assert sub["pending_refund"]["0g"] == "2" and sub["spendable"]["0g"] == "0"
    assert sub["refunds"][0]["unlocks_at"] == refund["unlocks_at"]
    human = cli("infer", "account")
    assert "pending refunds" in human.stdout and "locked, 24 h 0 min left" in human.stdout

    # the provider serves nothing from requested 0G
    refused = cli("infer", "hello")
    assert refused.exit_code == 4, refused

    again = cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes", "--json")
    assert again.exit_code == 0 and again.json["sent"] is False
    human_again = cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes")
    assert "nothing was sent" in human_again.stdout

    pass_time(net, LOCK_TIME - 120)
    early = cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes", "--json")
    assert early.json["sent"] is False and early.json["refunds"][0]["unlocked"] is False
    assert 0 < early.json["refunds"][0]["seconds_left"] <= 120

    pass_time(net, 120)
    assert sub_account(cli)["refunds"][0]["unlocked"] is True
    assert "unlocked: run `zerog infer fund retrieve PROVIDER`" in cli("infer", "account").stdout
    returned = cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes", "--json")
    assert returned.exit_code == 0, returned
    assert returned.json["sent"] is True and returned.json["returned"]["0g"] == "2"
    assert returned.json["refunds"] == []
    assert returned.json["ledger"]["available"]["0g"] == "5"
    sub = sub_account(cli)
    assert (sub["balance"]["0g"], sub["pending_refund"]["0g"]) == ("0", "0")


def test_a_transfer_cancels_the_pending_refund_first(
    cli: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    funded_wallet(net, cli, monkeypatch, "cancel")
    assert cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes").exit_code == 0
    moved = cli("infer", "fund", "transfer", PROVIDER_ADDRESS, "1.5", "--yes", "--json")
    assert moved.exit_code == 0, moved
    # 1.5 0G of the 2 0G requested back are cancelled: nothing leaves the ledger
    assert moved.json["ledger"]["available"]["0g"] == "3"
    sub = sub_account(cli)
    assert (sub["balance"]["0g"], sub["pending_refund"]["0g"]) == ("2", "0.5")
    assert [r["amount"]["0g"] for r in sub["refunds"]] == ["0.5"]


def test_refund_pays_the_wallet_and_an_emptied_ledger_is_deleted(
    cli: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = funded_wallet(net, cli, monkeypatch, "refund")

    too_much = cli("infer", "fund", "refund", "4", "--yes")
    assert too_much.exit_code == 4
    assert "3 0G available" in too_much.stderr and "zerog infer fund retrieve" in too_much.stderr
    leaves_dust = cli("infer", "fund", "refund", "1", "--yes")
    assert leaves_dust.exit_code == 2
    assert "would leave 2 0G" in leaves_dust.stderr and "refund `all`" in leaves_dust.stderr
    assert cli("infer", "fund", "refund", "0", "--yes").exit_code == 2
    assert cli("infer", "fund", "refund", "lots", "--yes").exit_code == 2
    assert cli("infer", "fund", "refund", "3").exit_code == 2  # not confirmed

    wallet_before = int(rpc(net.rpc_url, "eth_getBalance", [address, "latest"]), 16)
    paid = cli("infer", "fund", "refund", "all", "--yes", "--json", "--gas-price", "7gwei")
    assert paid.exit_code == 0, paid
    sent = rpc(net.rpc_url, "eth_getTransactionByHash", [paid.json["tx_hash"]])
    assert int(sent["gasPrice"], 16) == 7 * 10**9
    assert paid.json["amount"]["0g"] == "3" and paid.json["ledger_deleted"] is False
    assert paid.json["ledger"]["available"]["0g"] == "0"
    assert paid.json["ledger"]["total"]["0g"] == "2"
    wallet_after = int(paid.json["wallet_balance"]["neuron"])
    assert 2 * ZG < wallet_after - wallet_before <= 3 * ZG  # 3 0G less gas
    nothing = cli("infer", "fund", "refund", "all", "--yes")
    assert nothing.exit_code == 4 and "nothing available" in nothing.stderr

    assert cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes").exit_code == 0
    pass_time(net, LOCK_TIME)
    assert cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes").exit_code == 0
    closed = cli("infer", "fund", "refund", "all", "--yes", "--json")
    assert closed.exit_code == 0, closed
    assert closed.json["ledger_deleted"] is True and closed.json["ledger"] is None
    assert cli("infer", "account", "--json").json["ledger"] is None
    human = cli("infer", "fund", "refund", "1", "--yes")
    assert human.exit_code == 4 and "has no 0G compute ledger" in human.stderr


def test_retrieve_refuses_what_is_not_there(
    cli: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    funded_wallet(net, cli, monkeypatch, "missing")
    stranger = compute.address_of("0x" + "11" * 32)
    missing = cli("infer", "fund", "retrieve", stranger, "--yes")
    assert missing.exit_code == 7 and "no sub-account" in missing.stderr
    assert cli("infer", "fund", "retrieve", "0xdead", "--yes").exit_code == 2


def test_a_sixth_locked_refund_is_refused_before_sending(
    cli: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contract keeps at most 5 live refunds per sub-account (TooManyRefunds)."""
    funded_wallet(net, cli, monkeypatch, "many")
    assert cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes").exit_code == 0
    for amount in ("0.1", "0.05", "0.02", "0.01"):
        # less than the newest refund: it is cut, and the amount is asked back as a new one
        assert cli("infer", "fund", "transfer", PROVIDER_ADDRESS, amount, "--yes").exit_code == 0
        assert cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes").exit_code == 0
    amounts = [r["amount"]["0g"] for r in sub_account(cli)["refunds"]]
    assert amounts == ["1.9", "0.05", "0.03", "0.01", "0.01"]
    assert cli("infer", "fund", "transfer", PROVIDER_ADDRESS, "0.005", "--yes").exit_code == 0
    blocks = rpc(net.rpc_url, "eth_blockNumber")
    refused = cli("infer", "fund", "retrieve", PROVIDER_ADDRESS, "--yes")
    assert refused.exit_code == 2, refused
    assert "5 locked refund requests" in refused.stderr and "rerun after" in refused.stderr
    assert rpc(net.rpc_url, "eth_blockNumber") == blocks
