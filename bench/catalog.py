"""Benchmark: the gas zerog's catalog record adds to a Flow submission, on the official Flow.

Usage: .venv/bin/python bench/catalog.py [--repeat 3] [--json]

Starts anvil on 127.0.0.1 with the official Flow and market bytecode (from the
npm packages pinned by tests/interop/package-lock.json, as
tests/test_contracts_differential.py deploys them), then for each file size
submits the same node layout twice on the same chain state (``evm_snapshot``,
``evm_revert``: the Flow's gas depends on its tree), once with empty ``tags`` and
once with a sealed catalog record as zerog writes it for a backup (namespace,
time-stamped name, SHA-256, size, a ledger-snapshot pointer), and prints the
gas each used (fee-free: the storage fee is the transaction's value, not gas)
and what the record adds. Exits 1 when the record adds 2 % or more at any size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.devnet_harness import rpc  # noqa: E402
from tools import test_tools, ts_sdk  # noqa: E402
from zerog_cli.devnet.anvil import AnvilRpc, official_chain  # noqa: E402
from zerog_cli.devnet.constants import (  # noqa: E402
    DEFAULT_CHAIN_ID,
    DEFAULT_PRICE_PER_SECTOR,
    DEV_ACCOUNT_ADDRESS,
    FLOW_ADDRESS,
)
from zerog_cli.zerog import catalog, flow_abi, merkle  # noqa: E402

SIZES = {"64 KiB": 64 << 10, "1 MiB": 1 << 20, "16 MiB": 16 << 20, "256 MiB": 256 << 20}
LIMIT_PERCENT = 2.0


def submission(size: int, tags_for: Any) -> flow_abi.Submission:
    """A valid submission of ``size`` bytes with random node roots (the Flow checks shapes)."""
    nodes = tuple(
        merkle.SubmissionNode(root=os.urandom(32), height=height)
        for _, height in merkle.submission_layout(size)
    )
    data = flow_abi.SubmissionData(size, b"", nodes)
    tags = tags_for(data)
    return flow_abi.Submission(flow_abi.SubmissionData(size, tags, nodes), DEV_ACCOUNT_ADDRESS)


def gas_used(url: str, item: flow_abi.Submission) -> int:
    tx = {
        "from": DEV_ACCOUNT_ADDRESS,
        "to": FLOW_ADDRESS,
        "data": "0x" + flow_abi.encode_submit_calldata(item).hex(),
        "value": hex(item.data.fee(DEFAULT_PRICE_PER_SECTOR)),
        "gas": hex(5_000_000),
    }
    receipt = AnvilRpc(url).wait_receipt(rpc(url, "eth_sendTransaction", [tx]))
    if receipt["status"] != "0x1":
        raise SystemExit(f"the official Flow refused a {item.data.length}-byte submission")
    return int(receipt["gasUsed"], 16)


def record_tags(key: bytes, size: int) -> Callable[[flow_abi.SubmissionData], bytes]:
    record = catalog.CatalogRecord(
        namespace="backups",
        name="orders/20261129T031500Z-orders.db",
        version=1,
        sha256=os.urandom(32).hex(),
        size=size,
        encrypted=True,
        backup_label="orders",
        backup_time=1795922100,
        snapshot=1_234_567,
    )

    def tags_for(data: flow_abi.SubmissionData) -> bytes:
        return catalog.seal(record, key, submitter=DEV_ACCOUNT_ADDRESS, identity=data.identity)

    return tags_for


def paired(url: str, size: int, tags_for: Any) -> tuple[int, int, int]:
    """Gas of one node layout without and with tags, each sent on the same chain state
    (anvil's ``evm_snapshot``/``evm_revert``: the Flow's gas depends on its tree's state)."""
    plain = submission(size, lambda data: b"")
    tags = tags_for(plain.data)
    tagged = flow_abi.Submission(
        flow_abi.SubmissionData(size, tags, plain.data.nodes), plain.submitter
    )
    snapshot = rpc(url, "evm_snapshot", [])
    without = gas_used(url, plain)
    rpc(url, "evm_revert", [snapshot])
    with_tags = gas_used(url, tagged)
    return without, with_tags, len(tags)


def measure(url: str, repeat: int) -> list[dict[str, Any]]:
    key = catalog.derive_key(os.urandom(32))
    rows = []
    for label, size in SIZES.items():
        tags_for = record_tags(key, size)
        pairs = [paired(url, size, tags_for) for _ in range(repeat)]
        base = statistics.median(without for without, _, _ in pairs)
        added = statistics.median(with_tags - without for without, with_tags, _ in pairs)
        rows.append(
            {
                "size": label,
                "tags_bytes": pairs[-1][2],
                "gas_without": int(base),
                "gas_with": int(base + added),
                "added_gas": int(added),
                "added_percent": round(100 * added / base, 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Pairs of submissions per size.")
    parser.add_argument("--json", action="store_true", help="Print one JSON document.")
    args = parser.parse_args()
    test_tools.ensure(["anvil"])
    node_modules = ts_sdk.ensure_installed()
    with (
        tempfile.TemporaryDirectory(prefix="zerog-bench-catalog-") as folder,
        official_chain(node_modules, Path(folder) / "anvil.log", DEFAULT_CHAIN_ID) as chain,
    ):
        rows = measure(chain.url, max(1, args.repeat))
    worst = max(row["added_percent"] for row in rows)
    if args.json:
        print(json.dumps({"rows": rows, "limit_percent": LIMIT_PERCENT}, indent=2))
    else:
        print("catalog record gas on the official Flow (anvil), median of paired submissions:")
        for row in rows:
            print(
                f"  {row['size']:>8}: {row['tags_bytes']} bytes of tags,"
                f" {row['gas_without']:,} -> {row['gas_with']:,} gas"
                f" (+{row['added_gas']:,}, {row['added_percent']:.2f} %)"
            )
        print(f"worst: {worst:.2f} % of an upload's fee-free gas (limit {LIMIT_PERCENT} %)")
    if worst >= LIMIT_PERCENT:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
