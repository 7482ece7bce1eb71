"""`zerog devnet up|status|down|faults|router-key`: start, inspect and steer the local devnet.

The one module above the devnet that uses it (tests/test_architecture.py): the
commands pass their options here and get typed results back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerog_cli.devnet.constants import DEV_ACCOUNT_KEY as DEV_ACCOUNT_KEY
from zerog_cli.devnet.control import DevnetInfo
from zerog_cli.devnet.control import DevnetView as DevnetView
from zerog_cli.devnet.faults import FaultSettings as FaultSettings
from zerog_cli.errors import NetworkUnavailable
from zerog_cli.infra.choices import DevnetChainKind, DevnetIndexer


@dataclass(frozen=True)
class DevnetStarted:
    """`devnet up`: the devnet, and the dev account's (public, devnet-only) key."""

    devnet: DevnetView
    dev_account_key: str

    @classmethod
    def of(cls, info: DevnetInfo) -> DevnetStarted:
        return cls(info.view(), info.dev_account_key)


@dataclass(frozen=True)
class DevnetHealth:
    """What a running devnet's health check tells beyond its recorded URLs and chain: the
    process that answered, the chain's height and transaction count, and its storage nodes."""

    status: str
    pid: int
    block_number: int
    transactions: int
    nodes: int

    @classmethod
    def of(cls, answer: dict[str, Any]) -> DevnetHealth:
        """From the devnet's ``/admin/health`` answer."""
        return cls(
            status=str(answer["status"]),
            pid=int(answer["pid"]),
            block_number=int(answer["blockNumber"]),
            transactions=int(answer["transactions"]),
            nodes=int(answer["nodes"]),
        )


@dataclass(frozen=True)
class DevnetState:
    """`devnet status`: whether a devnet runs in ``data_dir`` (exit 6 if not), the devnet,
    its health answer, and what is wrong when it does not run."""

    running: bool
    data_dir: str
    devnet: DevnetView | None
    health: DevnetHealth | None
    problem: str | None


@dataclass(frozen=True)
class DevnetStopped:
    """`devnet down`: whether a process was stopped, which one, and what happened."""

    stopped: bool
    pid: int | None
    message: str


@dataclass(frozen=True)
class RouterKey:
    """`devnet router-key`: a new key (shown once) for ``address``, or the key revoked."""

    id: str
    key: str | None
    address: str | None
    revoked: bool


def up(
    *,
    detach: bool,
    on_ready: Callable[[DevnetStarted], None],
    host: str,
    port: int,
    data_dir: Path | None,
    nodes: int,
    fail_rate: float,
    latency_ms: int,
    corrupt_rate: float,
    drop_rate: float,
    indexer: DevnetIndexer,
    storage_client: Path | None,
    chain: DevnetChainKind,
    packages: Path | None,
) -> None:
    """Start a devnet and pass it to ``on_ready`` once it answers.

    Detached, it returns then (the devnet runs on until `down`); else it serves
    in this process until SIGINT or SIGTERM. A fault rate out of range is a
    `UsageError`.
    """
    from zerog_cli.devnet import control
    from zerog_cli.devnet.faults import FaultConfigError
    from zerog_cli.devnet.network import DevnetConfig
    from zerog_cli.errors import UsageError

    try:
        faults = FaultSettings().updated(
            {
                "fail_rate": fail_rate,
                "latency_ms": latency_ms,
                "corrupt_rate": corrupt_rate,
                "drop_rate": drop_rate,
            }
        )
    except FaultConfigError as exc:
        raise UsageError(str(exc)) from None
    config = DevnetConfig(
        host=host,
        port=port,
        data_dir=data_dir,
        nodes=nodes,
        faults=faults,
        indexer=indexer,
        storage_client=storage_client,
        chain=chain,
        packages=packages,
    )
    if detach:
        on_ready(DevnetStarted.of(control.start_detached(config)))
        return
    control.run_foreground(
        config, on_ready=lambda info: on_ready(DevnetStarted.of(info)), record=True
    )


def status(data_dir: Path | None) -> DevnetState:
    """The devnet of ``data_dir`` (default: where `devnet up` ran last) and its health.

    When none runs there, `NetworkUnavailable` (exit 6) carries the state, so it
    is still printed.
    """
    from zerog_cli.devnet import control

    found = control.status(data_dir)
    state = DevnetState(
        running=found.running,
        data_dir=found.data_dir,
        devnet=None if found.info is None else found.info.view(),
        health=None if found.health is None else DevnetHealth.of(found.health),
        problem=found.problem,
    )
    if not found.running:
        raise NetworkUnavailable(f"no devnet is running in {found.data_dir}", report=state)
    return state


def down(data_dir: Path | None) -> DevnetStopped:
    """Stop the detached devnet of ``data_dir`` (exactly the process in its pid file)."""
    from zerog_cli.devnet import control

    result = control.stop(data_dir)
    return DevnetStopped(result.stopped, result.pid, result.message)


def set_faults(data_dir: Path | None, requested: dict[str, Any], *, clear: bool) -> FaultSettings:
    """Change the running devnet's faults and return them all.

    ``requested`` maps each fault setting the caller steers to its new value
    (None: leave it as it is); ``clear`` first switches every one of them off.
    """
    from zerog_cli.devnet import control

    switched_off = FaultSettings().to_json()
    changes = {key: switched_off[key] for key in requested} if clear else {}
    changes.update({key: value for key, value in requested.items() if value is not None})
    return FaultSettings(**control.set_faults(data_dir, changes))


def active_faults(settings: FaultSettings, steered: Iterable[str]) -> dict[str, Any]:
    """The settings among ``steered`` that are on (not zero, empty or None)."""
    keys = set(steered)
    return {
        key: value
        for key, value in settings.to_json().items()
        if key in keys and value not in (0, 0.0, [], None)
    }


def router_key(data_dir: Path | None, *, revoke: str | None) -> RouterKey:
    """A new devnet Router API key for the dev account, or (``revoke``) that key revoked."""
    from zerog_cli.devnet import control

    body = control.router_key(data_dir, revoke=revoke)
    return RouterKey(
        id=str(body["id"]),
        key=body.get("key"),
        address=body.get("address"),
        revoked=bool(body.get("revoked", False)),
    )
