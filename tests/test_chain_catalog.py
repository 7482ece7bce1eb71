"""The chain as the catalog's backup: catalog records in Flow tags, `zerog ledger rebuild
--from-chain` and ledger snapshots on 0G, against a devnet."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.devnet_harness import DevnetProcess, rpc
from zerog_cli.devnet.constants import (
    DEV_ACCOUNT_ADDRESS,
    FLOW_ADDRESS,
)
from zerog_cli.zerog import catalog, flow_abi

pytestmark = pytest.mark.devnet

ENC_KEY = "6a" * 32
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
"""Hardhat #1: another account, the spoofer."""


def our_logs(net: DevnetProcess, first: int = 0) -> list[dict[str, Any]]:
    topic = "0x" + bytes(12).hex() + DEV_ACCOUNT_ADDRESS[2:].lower()
    query = {"fromBlock": hex(first), "address": FLOW_ADDRESS, "topics": [None, topic]}
    logs: list[dict[str, Any]] = rpc(net.rpc_url, "eth_getLogs", [query])
    return logs


def open_record(log: dict[str, Any], secret: str = ENC_KEY) -> catalog.CatalogRecord | None:
    event = flow_abi.decode_submit_log(log)
    data = event.submission.data
    key = catalog.derive_key(bytes.fromhex(secret))
    return catalog.open_tags(data.tags, key, submitter=DEV_ACCOUNT_ADDRESS, identity=data.identity)


def ledger_rows(ledger: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute(sql).fetchall()


def test_uploads_carry_a_catalog_record_only_with_a_key(
    cli, net: DevnetProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "plain.bin"
    source.write_bytes(os.urandom(5000))
    status = cli("status", "--json")
    assert status.json["catalog"]["tags"] == "off"
    assert "neither CATALOG_KEY nor ENCRYPTION_KEY" in status.json["catalog"]["note"]
    before = len(our_logs(net))
    assert cli("upload", str(source)).exit_code == 0
    untagged = our_logs(net)[before:]
    assert (
        len(untagged) == 1 and flow_abi.decode_submit_log(untagged[0]).submission.data.tags == b""
    )

    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    assert cli("status", "--json").json["catalog"] == {
        "tags": "on",
        "key": "ENCRYPTION_KEY",
        "note": None,
    }
    assert "catalog records in Flow tags: on" in cli("status").stdout
    cli("ns", "create", "docs")
    source.write_bytes(os.urandom(7000))
    uploaded = cli("upload", str(source), "--ns", "docs", "--name", "a/b.bin", "--json")
    assert uploaded.exit_code == 0, uploaded
    (log,) = our_logs(net)[before + 1 :]
    record = open_record(log)
    assert record == catalog.CatalogRecord(
        namespace="docs",
        name="a/b.bin",
        version=1,
        sha256=uploaded.json["sha256"],
        size=7000,
        encrypted=False,
    )
    with pytest.raises(Exception, match="does not open"):
        open_record(log, "6b" * 32)

    monkeypatch.setenv("ZEROG_CATALOG_TAGS", "off")
    assert cli("status", "--json").json["catalog"]["tags"] == "off"
    source.write_bytes(os.urandom(7000))
    assert cli("upload", str(source), "--ns", "docs", "--name", "c.bin").exit_code == 0
    assert flow_abi.decode_submit_log(our_logs(net)[-1]).submission.data.tags == b""
