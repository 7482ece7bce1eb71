"""`zerog devnet up|status|down`: a local 0G network on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zerog_cli.cli.common import (
    command,
    examples,
    new_app,
    printing_failed_report,
    results,
    state,
)
from zerog_cli.infra.choices import DevnetChainKind, DevnetIndexer

if TYPE_CHECKING:
    from zerog_cli.services.devnet import DevnetStarted, DevnetState, DevnetView

app = new_app(
    "A local 0G network (chain, storage nodes, indexer, compute provider) on 127.0.0.1.",
    "zerog devnet up --detach",
    "zerog devnet down",
)


def _print_devnet(devnet: DevnetView, dev_account_key: str) -> None:
    out = state().output
    if devnet.chain == "anvil":
        chain = f"anvil, the official 0G contracts ({devnet.anvil_url})"
    else:
        chain = "builtin (in-process)"
    out.fields(
        [
            ("url", devnet.url),
            ("evm rpc", devnet.rpc_url),
            ("indexer", devnet.indexer_url),
            ("nodes", ", ".join(devnet.node_urls)),
            ("provider", devnet.provider_url),
            ("chain", chain),
            ("chain id", devnet.chain_id),
            ("data", devnet.data_dir),
            ("pid", devnet.pid),
            ("dev account", devnet.dev_account_address),
            ("dev key", f"{dev_account_key} (public Hardhat #0 key: devnet only)"),
        ]
    )
    out.info("the devnet profile now uses it: `zerog upload FILE` works with no other set-up")


@command(
    app,
    "up",
    result=results("devnet.DevnetStarted"),
    epilog=examples(
        "zerog devnet up --detach",
        "zerog devnet up --port 0 --nodes 3 --data-dir /tmp/devnet",
        "zerog devnet up --detach --fail-rate 0.2 --corrupt-rate 0.01",
        "zerog devnet up --detach --indexer official",
        "zerog devnet up --detach --chain anvil",
    ),
)
def up(
    host: Annotated[str, typer.Option("--host", help="127.0.0.1 or localhost only.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", envvar="ZEROG_DEVNET_PORT", help="Port (0 picks a free one)."),
    ] = 8545,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Default $ZEROG_HOME/devnet.", show_default=False),
    ] = None,
    nodes: Annotated[int, typer.Option("--nodes", help="Storage nodes.", min=1)] = 2,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background (pid file + log).")
    ] = False,
    fail_rate: Annotated[
        float, typer.Option("--fail-rate", help="Fraction of requests that fail.")
    ] = 0.0,
    latency_ms: Annotated[int, typer.Option("--latency-ms", help="Added latency per request.")] = 0,
    corrupt_rate: Annotated[
        float, typer.Option("--corrupt-rate", help="Fraction of segments corrupted.")
    ] = 0.0,
    drop_rate: Annotated[
        float, typer.Option("--drop-rate", help="Fraction of connections dropped.")
    ] = 0.0,
    indexer: Annotated[
        DevnetIndexer,
        typer.Option(
            "--indexer",
            help="builtin, or official: run 0g-storage-client's indexer over the nodes"
            " and point the devnet profile at it.",
        ),
    ] = DevnetIndexer.BUILTIN,
    storage_client: Annotated[
        Path | None,
        typer.Option(
            "--storage-client",
            envvar="ZEROG_STORAGE_CLIENT",
            help="The 0g-storage-client binary for --indexer official"
            " (default: on PATH or in $ZEROG_NPM_CACHE).",
            show_default=False,
        ),
    ] = None,
    chain: Annotated[
        DevnetChainKind,
        typer.Option(
            "--chain",
            help="builtin, or anvil: a real EVM (anvil) running the official 0G contracts'"
            " bytecode under the nodes, indexer and providers.",
        ),
    ] = DevnetChainKind.BUILTIN,
    packages: Annotated[
        Path | None,
        typer.Option(
            "--packages",
            envvar="ZEROG_NODE_MODULES",
            help="The node_modules folder with anvil and the official 0G SDKs for --chain anvil"
            " (default: $ZEROG_NPM_CACHE).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start a devnet; with --detach it runs in the background until `devnet down`.

    With --indexer official the official 0G indexer (`0g-storage-client indexer`)
    serves the devnet's nodes on a port of its own; `devnet down` stops it too.
    With --chain anvil the chain is anvil with the official Flow, market and
    compute contracts deployed from the npm packages at start (a new chain at
    each start); the devnet's RPC URL passes requests on to it. No binary or
    package found is exit 8, with where to get it.
    """
    from zerog_cli.services import devnet

    output = state().output

    def ready(started: DevnetStarted) -> None:
        output.result(started, lambda: _print_devnet(started.devnet, started.dev_account_key))
        if not detach:
            output.info("running in the foreground; Ctrl-C stops it")

    devnet.up(
        detach=detach,
        on_ready=ready,
        host=host,
        port=port,
        data_dir=data_dir,
        nodes=nodes,
        fail_rate=fail_rate,
        latency_ms=latency_ms,
        corrupt_rate=corrupt_rate,
        drop_rate=drop_rate,
        indexer=indexer,
        storage_client=storage_client,
        chain=chain,
        packages=packages,
    )


@command(
    app,
    "faults",
    result=results("devnet.FaultSettings"),
    epilog=examples(
        "zerog devnet faults --fail-rate 0.2 --latency-ms 50",
        "zerog devnet faults --corrupt-node 0",
        "zerog devnet faults --underpriced-next 1",
        "zerog devnet faults --lag-node 0 --lag-node 1 --lag-ms 5000",
        "zerog devnet faults --logs-max-range 1000 --logs-max-results 10000",
        "zerog devnet faults --stall-node 0 --stall-ms 30000",
        "zerog devnet faults --clear",
    ),
)
def faults(
    fail_rate: Annotated[
        float | None,
        typer.Option("--fail-rate", help="Fraction of requests that fail.", show_default=False),
    ] = None,
    latency_ms: Annotated[
        int | None,
        typer.Option("--latency-ms", help="Added latency per request.", show_default=False),
    ] = None,
    corrupt_rate: Annotated[
        float | None,
        typer.Option(
            "--corrupt-rate", help="Fraction of segment downloads corrupted.", show_default=False
        ),
    ] = None,
    drop_rate: Annotated[
        float | None,
        typer.Option("--drop-rate", help="Fraction of connections dropped.", show_default=False),
    ] = None,
    corrupt_node: Annotated[
        list[int] | None,
        typer.Option(
            "--corrupt-node",
            help="Node index whose downloads are all corrupt (repeatable).",
            show_default=False,
        ),
    ] = None,
    down_node: Annotated[
        list[int] | None,
        typer.Option(
            "--down-node",
            help="Node index that answers 503 to everything (repeatable).",
            show_default=False,
        ),
    ] = None,
    min_gas_price: Annotated[
        int | None,
        typer.Option(
            "--min-gas-price",
            help="Refuse transactions tipping less (neuron/gas) as 'transaction underpriced'.",
            show_default=False,
        ),
    ] = None,
    underpriced_next: Annotated[
        int | None,
        typer.Option(
            "--underpriced-next",
            help="Refuse the next N transactions as 'replacement transaction underpriced'.",
            show_default=False,
        ),
    ] = None,
    hold_next: Annotated[
        int | None,
        typer.Option(
            "--hold-next",
            help="Keep the next N transactions pending until replaced at +10% (a stuck tx).",
            show_default=False,
        ),
    ] = None,
    lag_node: Annotated[
        list[int] | None,
        typer.Option(
            "--lag-node",
            help="Node index that sees transactions --lag-ms late (repeatable).",
            show_default=False,
        ),
    ] = None,
    lag_ms: Annotated[
        int | None,
        typer.Option("--lag-ms", help="How late lagging nodes see a tx.", show_default=False),
    ] = None,
    logs_max_range: Annotated[
        int | None,
        typer.Option(
            "--logs-max-range",
            help="eth_getLogs refuses wider block ranges (-32005), as public RPCs do (0: off).",
            show_default=False,
        ),
    ] = None,
    logs_max_results: Annotated[
        int | None,
        typer.Option(
            "--logs-max-results",
            help="eth_getLogs refuses queries matching more logs (-32005) (0: off).",
            show_default=False,
        ),
    ] = None,
    stall_node: Annotated[
        list[int] | None,
        typer.Option(
            "--stall-node",
            help="Node index that holds every segment download --stall-ms (repeatable).",
            show_default=False,
        ),
    ] = None,
    stall_ms: Annotated[
        int | None,
        typer.Option(
            "--stall-ms", help="How long stalling nodes hold a download.", show_default=False
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Switch every fault off first.")] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Default: where `devnet up` ran last.", show_default=False),
    ] = None,
) -> None:
    """Inject faults into the running devnet (rehearse incidents, test resilience)."""
    from zerog_cli.services import devnet

    requested = {
        "fail_rate": fail_rate,
        "latency_ms": latency_ms,
        "corrupt_rate": corrupt_rate,
        "drop_rate": drop_rate,
        "corrupt_nodes": corrupt_node,
        "fail_nodes": down_node,
        "min_gas_price": min_gas_price,
        "underpriced_next": underpriced_next,
        "hold_next": hold_next,
        "lag_nodes": lag_node,
        "lag_ms": lag_ms,
        "logs_max_range": logs_max_range,
        "logs_max_results": logs_max_results,
        "stall_nodes": stall_node,
        "stall_ms": stall_ms,
    }
    settings = devnet.set_faults(data_dir, requested, clear=clear)
    active = devnet.active_faults(settings, requested)
    state().output.result(settings, f"devnet faults: {active or 'none'}")


@command(
    app,
    "status",
    result=results("devnet.DevnetState"),
    epilog=examples("zerog devnet status", "zerog devnet status --json"),
)
def status(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Default: where `devnet up` ran last.", show_default=False),
    ] = None,
) -> None:
    """Is the devnet running, where, and how is it doing? Exit 6 when it is not running."""
    from zerog_cli.services import devnet

    def render(report: DevnetState) -> None:
        def human() -> None:
            if report.running and report.devnet is not None:
                _print_devnet(report.devnet, devnet.DEV_ACCOUNT_KEY)
            else:
                state().output.echo(
                    f"devnet not running ({report.problem or 'no devnet in ' + report.data_dir})"
                )

        state().output.result(report, human)

    with printing_failed_report(render):
        report = devnet.status(data_dir)
    render(report)


@command(
    app,
    "down",
    result=results("devnet.DevnetStopped"),
    epilog=examples("zerog devnet down", "zerog devnet down --data-dir /tmp/devnet"),
)
def down(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Default: where `devnet up` ran last.", show_default=False),
    ] = None,
) -> None:
    """Stop the devnet started with --detach (exactly the process in its pid file)."""
    from zerog_cli.services import devnet

    stopped = devnet.down(data_dir)
    state().output.result(stopped, stopped.message)


@command(
    app,
    "router-key",
    result=results("devnet.RouterKey"),
    epilog=examples(
        "zerog devnet router-key",
        "zerog devnet router-key --json",
        "zerog devnet router-key --revoke rk-1a2b3c4d",
    ),
)
def router_key(
    revoke: Annotated[
        str | None,
        typer.Option("--revoke", help="Revoke the key with this id instead.", show_default=False),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Default: where `devnet up` ran last.", show_default=False),
    ] = None,
) -> None:
    """Create a devnet 0G Router API key for the dev account; it is printed once, only here.

    Store it as the ZEROG_ROUTER_API_KEY secret (`zerog secrets set
    ZEROG_ROUTER_API_KEY --stdin`). The dev account's Payment Layer balance is
    funded when the devnet first starts. ``--revoke ID`` revokes a key: the
    Router then answers 401 ``api_key_revoked``.
    """
    from zerog_cli.services import devnet

    result = devnet.router_key(data_dir, revoke=revoke)
    if revoke:
        state().output.result(result, f"revoked Router key {result.id}")
        return
    state().output.result(result, lambda: state().output.echo(str(result.key)))
    state().output.info(
        f"key {result.id} for {result.address}; it is not shown again. Store it: "
        "zerog secrets set ZEROG_ROUTER_API_KEY --stdin"
    )
