"""The devnet as one object: chain, contracts, storage nodes, indexer, routes, server.

Everything is served on one loopback HTTP port, by path:

- ``/`` and ``/rpc``: EVM JSON-RPC (batches accepted);
- ``/indexer``: indexer JSON-RPC (POST) and its REST gateway
  (``/indexer/file``, ``/indexer/file/info/{cid}``, ``/indexer/files/info``,
  ``/indexer/node/status``, ``/indexer/file/segment``); with
  ``indexer="official"`` the official indexer runs beside it on a port of its
  own (`zerog_cli.devnet.official_indexer`) and is the one the devnet advertises;
- ``/node/<i>``: storage node ``i`` (``zgs_*`` JSON-RPC);
- ``/provider``: the compute provider, when ``zerog_cli.devnet.provider``
  registers it;
- ``/router/v1``: the 0G Router in front of those providers
  (``zerog_cli.devnet.router``), ``/router/devnet``: its devnet controls;
- ``/admin/health``, ``/admin/faults``, ``/admin/stats``,
  ``/admin/stats/reset``: devnet control, never subject to faults.

Extension hooks, called at construction when the module exists:

- ``zerog_cli.devnet.compute.register_contracts(chain)``: register extra
  `Contract` objects (``chain.register_contract(contract)``) before the chain
  loads its persisted state;
- ``zerog_cli.devnet.provider.register_routes(devnet)``: add HTTP routes with
  ``devnet.add_route(prefix, handler, service="provider")``; the handler gets a
  `Request` and returns a `Response` (see `zerog_cli.devnet.web`); the devnet
  object gives access to ``chain`` (a `chains.DevnetChain`), ``services`` (a
  `chains.ServiceRegistry`), ``faults``, ``data_dir`` and the URLs.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zerog_cli.devnet.anvil import find_packages
from zerog_cli.devnet.chain import Chain, ChainConfig, ChainError
from zerog_cli.devnet.chains import DevnetChain, ServiceRegistry
from zerog_cli.devnet.constants import (
    ADMIN_PREFIX,
    ALLOWED_HOSTS,
    BASE_FEE_PER_GAS,
    DEFAULT_CHAIN_ID,
    DEFAULT_PORT,
    DEFAULT_PRICE_PER_SECTOR,
    DEV_ACCOUNT_ADDRESS,
    DEV_ACCOUNT_BALANCE,
    FLOW_ADDRESS,
    INDEXER_PREFIX,
    LOOPBACK_HOST,
    MARKET_ADDRESS,
    NODE_PREFIX,
    PROVIDER_PREFIX,
    ROUTER_PREFIX,
)
from zerog_cli.devnet.evm_rpc import EvmRpc
from zerog_cli.devnet.faults import (
    FaultConfigError,
    FaultDecision,
    FaultInjector,
    FaultSettings,
)
from zerog_cli.devnet.indexer import Indexer
from zerog_cli.devnet.official_indexer import OfficialIndexer, find_storage_client
from zerog_cli.devnet.storage import StorageNode
from zerog_cli.devnet.storage_contracts import storage_contracts
from zerog_cli.devnet.web import DevnetHTTPServer, Handler, Request, Response, Router, make_server
from zerog_cli.errors import UsageError
from zerog_cli.infra.choices import DevnetChainKind, DevnetIndexer
from zerog_cli.infra.files import ensure_private_dir

if TYPE_CHECKING:
    from zerog_cli.devnet.anvil import AnvilChain, AnvilNode

logger = logging.getLogger(__name__)


def check_host(host: str) -> str:
    """The address to bind for ``host``: loopback only, anything else is refused."""
    if host not in ALLOWED_HOSTS:
        raise UsageError(
            f"the devnet only listens on the loopback interface; refusing host {host!r}",
            hint="use --host 127.0.0.1",
        )
    return LOOPBACK_HOST


_Kind = TypeVar("_Kind", bound=StrEnum)


def _choice(kinds: type[_Kind], kind: str, what: str) -> _Kind:
    """``kind`` as the enum, for a config not built by the CLI (the harness, devnet.json)."""
    try:
        return kinds(kind)
    except ValueError:
        raise UsageError(f"unknown {what} {kind!r}; pick one of {', '.join(kinds)}") from None


def check_indexer(kind: str) -> DevnetIndexer:
    return _choice(DevnetIndexer, kind, "indexer")


def check_chain(kind: str) -> DevnetChainKind:
    return _choice(DevnetChainKind, kind, "chain")


CHAIN_FAULTS = ("min_gas_price", "underpriced_next", "hold_next")
"""Faults that act inside the in-process chain's transaction handling."""

SHUTDOWN_POLL_SECONDS = 0.05
"""How often the serving loop checks for `Devnet.stop`: socketserver's default (0.5 s)
made every stop, and so every devnet a test suite starts, half a second slower."""


def parse_shards(spec: str) -> list[tuple[int, int]]:
    """``"0/2,1/2"`` -> ``[(0, 2), (1, 2)]`` (shardId/numShard per node)."""
    shards = []
    for item in spec.split(","):
        try:
            shard_id, num_shard = (int(part) for part in item.strip().split("/"))
        except ValueError:
            raise UsageError(f"invalid shard {item!r}: expected shardId/numShard") from None
        if num_shard < 1 or num_shard & (num_shard - 1) or not 0 <= shard_id < num_shard:
            raise UsageError(
                f"invalid shard {item!r}: numShard must be a power of two and shardId below it"
            )
        shards.append((shard_id, num_shard))
    return shards


@dataclass
class DevnetConfig:
    """Everything ``zerog devnet up`` can set."""

    host: str = LOOPBACK_HOST
    port: int = DEFAULT_PORT
    data_dir: Path | None = None
    nodes: int = 2
    shards: list[tuple[int, int]] | None = None
    chain_id: int = DEFAULT_CHAIN_ID
    price_per_sector: int = DEFAULT_PRICE_PER_SECTOR
    legacy_fees: bool = False
    faults: FaultSettings = field(default_factory=FaultSettings)
    indexer: DevnetIndexer = DevnetIndexer.BUILTIN
    """``builtin`` (the devnet's own, under /indexer) or ``official`` (0g-storage-client's)."""
    storage_client: Path | None = None
    """The ``0g-storage-client`` binary for ``indexer="official"`` (found when None)."""
    chain: DevnetChainKind = DevnetChainKind.BUILTIN
    """``builtin`` (the in-process chain) or ``anvil`` (anvil running the official
    contracts' bytecode, `zerog_cli.devnet.anvil`)."""
    packages: Path | None = None
    """The ``node_modules`` folder with anvil and the SDK packages for ``chain="anvil"``
    (found when None)."""

    def shard_layout(self) -> list[tuple[int, int]]:
        if self.shards is not None:
            return list(self.shards)
        if self.nodes < 1:
            raise UsageError("the devnet needs at least one storage node")
        return [(0, 1)] * self.nodes


def _call_hook(module_name: str, function_name: str, argument: Any) -> None:
    if importlib.util.find_spec(module_name) is None:
        return
    module = importlib.import_module(module_name)
    getattr(module, function_name)(argument)


class Devnet:
    """A running (or ready to run) devnet. Binds its port at construction."""

    def __init__(self, config: DevnetConfig) -> None:
        self.config = config
        bind_host = check_host(config.host)
        self.official_indexer: OfficialIndexer | None = None
        binary = None
        if check_indexer(config.indexer) == DevnetIndexer.OFFICIAL:
            binary = find_storage_client(config.storage_client)
        node_modules = None
        if check_chain(config.chain) == DevnetChainKind.ANVIL:
            if config.legacy_fees:
                raise UsageError("--legacy-fees needs the built-in chain, not --chain anvil")
            node_modules = find_packages(config.packages)
        self._owned_dir: str | None = None
        if config.data_dir is None:
            self._owned_dir = tempfile.mkdtemp(prefix="zerog-devnet-")
            self.data_dir = Path(self._owned_dir)
        else:
            self.data_dir = Path(config.data_dir)
            ensure_private_dir(self.data_dir)
        self.faults = FaultInjector(config.faults)
        self.router = Router(self.faults)
        self.anvil: AnvilNode | None = None
        self._anvil_chain: AnvilChain | None = None
        self.chain: DevnetChain
        self.services: ServiceRegistry
        self._rpc_handler: Callable[[bytes, FaultDecision], bytes | None]
        self._thread: threading.Thread | None = None
        try:
            if node_modules is not None:
                self._start_anvil(node_modules)
            else:
                self._load_builtin_chain()
            try:
                self._server: DevnetHTTPServer = make_server(bind_host, config.port, self.router)
            except OSError as error:
                raise UsageError(
                    f"cannot listen on {bind_host}:{config.port}: {error.strerror or error}",
                    hint="pick another --port (0 picks a free one)",
                ) from None
            self.port = int(self._server.server_address[1])
            try:
                self._build_services()
            except BaseException:
                self._server.server_close()
                raise
        except BaseException:
            self._stop_anvil()
            raise
        if binary is not None:
            self.official_indexer = OfficialIndexer(
                binary, self.node_urls, self.data_dir / "official-indexer"
            )

    def _load_builtin_chain(self) -> None:
        from zerog_cli.devnet.provider import InProcessServices

        chain = Chain(
            ChainConfig(
                chain_id=self.config.chain_id,
                base_fee=None if self.config.legacy_fees else BASE_FEE_PER_GAS,
                genesis_balances={DEV_ACCOUNT_ADDRESS: DEV_ACCOUNT_BALANCE},
            ),
            self.data_dir,
        )
        self.flow, self.market = storage_contracts(
            FLOW_ADDRESS, MARKET_ADDRESS, self.config.price_per_sector
        )
        chain.register_contract(self.market)
        chain.register_contract(self.flow)
        _call_hook("zerog_cli.devnet.compute", "register_contracts", chain)
        try:
            chain.load()
        except ChainError as error:
            raise UsageError(error.message) from None
        self.chain = chain
        self.services = InProcessServices(chain)
        self._rpc_handler = EvmRpc(chain, self.faults).service.handle

    def _start_anvil(self, node_modules: Path) -> None:
        """anvil with the official contracts, seeded as the devnet's genesis, followed."""
        from zerog_cli.devnet import anvil

        self.anvil = anvil.AnvilNode(
            node_modules, self.config.chain_id, self.data_dir / "anvil" / "anvil.log"
        )
        rpc = self.anvil.start()
        anvil.deploy_official_contracts(
            rpc, node_modules, price_per_sector=self.config.price_per_sector
        )
        anvil.seed_devnet(rpc)
        self._anvil_chain = anvil.AnvilChain(rpc, self.config.chain_id, [FLOW_ADDRESS])
        self._anvil_chain.start()
        self.chain = self._anvil_chain
        self.services = anvil.AnvilServices(rpc)
        self._rpc_handler = anvil.AnvilRpcProxy(rpc, self.faults).handle

    def _stop_anvil(self) -> None:
        if self._anvil_chain is not None:
            self._anvil_chain.stop()
            self._anvil_chain = None
        if self.anvil is not None:
            self.anvil.stop()

    def _build_services(self) -> None:
        self.nodes = [
            StorageNode(
                i,
                shard_id=shard_id,
                num_shard=num_shard,
                data_dir=self.data_dir / "nodes" / str(i),
                flow_address=FLOW_ADDRESS,
                chain=self.chain,
                faults=self.faults,
            )
            for i, (shard_id, num_shard) in enumerate(self.config.shard_layout())
        ]
        self.indexer = Indexer(self.nodes, self.node_urls, self.faults)
        self.router.add("/", self._rpc, service="rpc")
        self.router.add("/rpc", self._rpc, service="rpc")
        self.router.add(INDEXER_PREFIX, self.indexer.handle, service="indexer")
        for node in self.nodes:
            prefix = f"{NODE_PREFIX}/{node.index}"
            self.router.add(prefix, node.handle, service="node", node=node.index)
        self.router.add(ADMIN_PREFIX, self._admin, service=None)
        self.providers: dict[str, Any] = {}
        """Compute brokers by kind name, filled by the provider hook."""
        _call_hook("zerog_cli.devnet.provider", "register_routes", self)
        _call_hook("zerog_cli.devnet.router", "register_routes", self)

    # -- URLs --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK_HOST}:{self.port}"

    @property
    def rpc_url(self) -> str:
        return self.base_url

    @property
    def indexer_url(self) -> str:
        """The indexer clients should use: the official one when it runs, else the built-in."""
        if self.official_indexer is not None and self.official_indexer.port:
            return self.official_indexer.url
        return self.base_url + INDEXER_PREFIX

    @property
    def node_urls(self) -> list[str]:
        return [f"{self.base_url}{NODE_PREFIX}/{i}" for i in range(len(self.config.shard_layout()))]

    @property
    def provider_url(self) -> str:
        return self.base_url + PROVIDER_PREFIX

    def urls(self) -> dict[str, Any]:
        return {
            "url": self.base_url,
            "rpc_url": self.rpc_url,
            "indexer_url": self.indexer_url,
            "node_urls": self.node_urls,
            "provider_url": self.provider_url,
            "router_url": self.base_url + ROUTER_PREFIX + "/v1",
        }

    # -- routes --------------------------------------------------------------------

    def add_route(self, prefix: str, handler: Handler, *, service: str = "provider") -> None:
        """Serve ``prefix`` (and everything below it) with ``handler``.

        ``service`` names the fault-injection target (``provider`` by default);
        the request's drawn faults are in ``request.faults``.
        """
        self.router.add(prefix, handler, service=service)

    def _rpc(self, request: Request) -> Response:
        if request.method != "POST":
            return Response.json(
                {
                    "devnet": "zerog",
                    **self.urls(),
                    "chainId": self.chain.chain_id,
                    "chain": self.config.chain,
                }
            )
        answer = self._rpc_handler(request.body, request.faults)
        if answer is None:
            return Response(status=204)
        return Response(body=answer, headers={"Content-Type": "application/json"})

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "pid": os.getpid(),
            "chainId": self.chain.chain_id,
            "chain": self.config.chain,
            "anvilUrl": self.anvil.url if self.anvil is not None else None,
            "blockNumber": self.chain.height,
            "transactions": self.chain.transaction_count,
            "nodes": len(self.nodes),
            "dataDir": str(self.data_dir),
            **self.urls(),
        }

    def _admin(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/health" and method == "GET":
            return Response.json(self.health())
        if path == "/faults" and method == "GET":
            return Response.json(self.faults.settings.to_json())
        if path == "/faults" and method == "POST":
            try:
                changes = request.json()
                if not isinstance(changes, dict):
                    raise FaultConfigError("expected a JSON object of fault settings")
                self._check_chain_faults(changes)
                settings = self.faults.update(changes)
            except (ValueError, FaultConfigError) as error:
                return Response.json({"error": str(error)}, status=400)
            logger.info("fault settings changed: %s", settings.to_json())
            return Response.json(settings.to_json())
        if path == "/stats" and method == "GET":
            stats = self.faults.stats()
            stats["transactions"] = self.chain.transaction_count
            stats["blockNumber"] = self.chain.height
            return Response.json(stats)
        if path == "/stats/reset" and method == "POST":
            self.faults.reset_stats()
            return Response.json({"status": "ok"})
        return Response.json({"error": f"no admin endpoint {method} {path}"}, status=404)

    def _check_chain_faults(self, changes: dict[str, Any]) -> None:
        """anvil handles transactions itself: the chain's own faults cannot be injected."""
        if self.anvil is None:
            return
        asked = [name for name in CHAIN_FAULTS if changes.get(name)]
        if asked:
            raise FaultConfigError(
                f"{', '.join(asked)} act inside the built-in chain; --chain anvil has none"
            )

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Devnet:
        """Serve in a background thread and return at once."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                args=(SHUTDOWN_POLL_SECONDS,),
                name="zerog-devnet",
                daemon=True,
            )
            self._thread.start()
        if self.official_indexer is not None and self.official_indexer.process is None:
            try:
                self.official_indexer.start()
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        """Stop the official indexer and serving, close the port, remove a temporary folder."""
        if self.official_indexer is not None:
            self.official_indexer.stop()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._stop_anvil()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    def __enter__(self) -> Devnet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
