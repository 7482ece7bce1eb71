"""``python -m zerog_cli.devnet up|status|down``: the devnet process entry point.

``zerog devnet`` (Typer) is the user-facing command; this small argparse
front end is what a detached devnet runs, and works without the CLI layer.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from zerog_cli.devnet import control
from zerog_cli.devnet.constants import (
    DEFAULT_CHAIN_ID,
    DEFAULT_NODES,
    DEFAULT_PORT,
    DEFAULT_PRICE_PER_SECTOR,
    LOOPBACK_HOST,
)
from zerog_cli.devnet.faults import FaultConfigError, FaultSettings
from zerog_cli.devnet.network import DevnetConfig, parse_shards
from zerog_cli.errors import ZerogError
from zerog_cli.infra.choices import DevnetChainKind, DevnetIndexer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m zerog_cli.devnet")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a devnet")
    up.add_argument("--host", default=LOOPBACK_HOST, help="127.0.0.1 or localhost only")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    up.add_argument("--data-dir", default=None, help="default $ZEROG_HOME/devnet")
    up.add_argument("--nodes", type=int, default=DEFAULT_NODES, help="storage nodes")
    up.add_argument("--shards", default=None, help='per-node "shardId/numShard" list, e.g. 0/2,1/2')
    up.add_argument("--chain-id", type=int, default=DEFAULT_CHAIN_ID)
    up.add_argument("--price-per-sector", type=int, default=DEFAULT_PRICE_PER_SECTOR)
    up.add_argument("--legacy-fees", action="store_true", help="blocks without baseFeePerGas")
    up.add_argument("--fail-rate", type=float, default=0.0)
    up.add_argument("--latency-ms", type=int, default=0)
    up.add_argument("--corrupt-rate", type=float, default=0.0)
    up.add_argument("--drop-rate", type=float, default=0.0)
    up.add_argument(
        "--indexer", type=DevnetIndexer, default=DevnetIndexer.BUILTIN, choices=list(DevnetIndexer)
    )
    up.add_argument(
        "--storage-client", default=None, help="0g-storage-client for --indexer official"
    )
    up.add_argument(
        "--chain",
        type=DevnetChainKind,
        default=DevnetChainKind.BUILTIN,
        choices=list(DevnetChainKind),
    )
    up.add_argument("--packages", default=None, help="node_modules with anvil for --chain anvil")
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.add_argument("--log-level", default="INFO")
    for name in ("status", "down"):
        sub = commands.add_parser(name)
        sub.add_argument("--data-dir", default=None)
        sub.add_argument("--json", action="store_true")
    return parser


def _config(args: argparse.Namespace) -> DevnetConfig:
    faults = FaultSettings().updated(
        {
            "fail_rate": args.fail_rate,
            "latency_ms": args.latency_ms,
            "corrupt_rate": args.corrupt_rate,
            "drop_rate": args.drop_rate,
        }
    )
    return DevnetConfig(
        host=args.host,
        port=args.port,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        nodes=args.nodes,
        shards=parse_shards(args.shards) if args.shards else None,
        chain_id=args.chain_id,
        price_per_sector=args.price_per_sector,
        legacy_fees=args.legacy_fees,
        faults=faults,
        indexer=args.indexer,
        storage_client=Path(args.storage_client) if args.storage_client else None,
        chain=args.chain,
        packages=Path(args.packages) if args.packages else None,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            logging.basicConfig(
                level=args.log_level.upper(),
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            )
            config = _config(args)
            if args.detach:
                info = control.start_detached(config)
                print(json.dumps(info.to_json(with_key=True), indent=2))
                return 0

            def ready(info: control.DevnetInfo) -> None:
                print(json.dumps(info.to_json(with_key=True)), flush=True)

            control.run_foreground(config, on_ready=ready)
            return 0
        if args.command == "status":
            result = control.status(args.data_dir)
            if args.json:
                print(json.dumps(result.to_json(), indent=2))
            else:
                state = "running" if result.running else "not running"
                where = ""
                if result.running and result.info:
                    where = f" at {result.info.url} (chain: {result.info.chain})"
                print(f"devnet {state}{where}" + (f" ({result.problem})" if result.problem else ""))
            return 0 if result.running else 1
        stopped = control.stop(args.data_dir)
        print(json.dumps(stopped.__dict__) if args.json else stopped.message)
        return 0
    except FaultConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ZerogError as error:
        print(f"error: {error}", file=sys.stderr)
        return int(error.exit_code)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
