"""Start, inspect and stop a devnet process: plain functions for ``zerog devnet``.

Nothing here prints; results come back as values and progress goes to the
``zerog_cli.devnet`` logger.

Files in the data folder (default ``$ZEROG_HOME/devnet``):

- ``devnet.json``: the running devnet's URLs, pid, chain id (the ``devnet``
  profile reads ``url`` from it); written once the port is bound;
- ``devnet.pid``: the pid of the devnet process;
- ``devnet.log``: output of a detached devnet;
- ``devnet.lock``: held (``flock``) by the running devnet, so two devnets can
  never share a data folder.

``stop`` signals exactly the pid in ``devnet.pid``, and only after checking
that the process is a devnet serving that folder.

`zerog devnet up` also records its data folder in ``$ZEROG_HOME/devnet.current``
(``record=True`` here), so ``status``, ``down``, ``faults`` and the ``devnet``
profile find a devnet started with ``--data-dir`` without being told again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from zerog_cli.devnet import children
from zerog_cli.devnet.anvil import find_packages
from zerog_cli.devnet.constants import DEV_ACCOUNT_ADDRESS, DEV_ACCOUNT_KEY
from zerog_cli.devnet.network import Devnet, DevnetConfig, check_chain, check_host, check_indexer
from zerog_cli.devnet.official_indexer import find_storage_client
from zerog_cli.errors import NetworkUnavailable, UsageError
from zerog_cli.infra.choices import DevnetChainKind, DevnetIndexer
from zerog_cli.infra.config import DEVNET_POINTER, DEVNET_STATE_FILE, devnet_data_dir, zerog_home
from zerog_cli.infra.files import atomic_write_text, ensure_private_dir
from zerog_cli.infra.output import copied_fields
from zerog_cli.infra.processes import pid_alive

logger = logging.getLogger("zerog_cli.devnet")

STATE_FILE = DEVNET_STATE_FILE
PID_FILE = "devnet.pid"
LOG_FILE = "devnet.log"
LOCK_FILE = "devnet.lock"


def default_data_dir() -> Path:
    """Where `up` puts a devnet without ``--data-dir``: ``$ZEROG_HOME/devnet``."""
    return zerog_home() / "devnet"


def record_data_dir(data_dir: Path) -> None:
    """Make ``data_dir`` the folder this home's devnet commands and profile look in."""
    home = ensure_private_dir(zerog_home())
    atomic_write_text(home / DEVNET_POINTER, f"{data_dir.resolve()}\n", mode=0o600)


def forget_data_dir(data_dir: Path) -> None:
    """Drop the record of ``data_dir`` (only if it is still the recorded one)."""
    pointer = zerog_home() / DEVNET_POINTER
    if pointer.exists() and devnet_data_dir().resolve() == data_dir.resolve():
        pointer.unlink(missing_ok=True)


@dataclass
class DevnetView:
    """A running devnet as every command shows it: its process, URLs, chain id, data folder,
    which chain (builtin, or anvil with its own URL) and the dev account (the public
    Hardhat #0 account)."""

    pid: int
    url: str
    rpc_url: str
    indexer_url: str
    node_urls: list[str]
    provider_url: str
    chain_id: int
    data_dir: str
    chain: str = "builtin"
    """``builtin`` (the in-process chain) or ``anvil`` (the official bytecode on anvil)."""
    anvil_url: str | None = None
    """anvil's own JSON-RPC with ``--chain anvil`` (``rpc_url`` passes requests on to it)."""
    dev_account_address: str = DEV_ACCOUNT_ADDRESS


@dataclass
class DevnetInfo(DevnetView):
    """What a started devnet tells its caller (and what ``devnet.json`` holds): its view
    and the dev account's key."""

    dev_account_key: str = field(default=DEV_ACCOUNT_KEY, repr=False)

    def view(self) -> DevnetView:
        """This devnet without the key, as `devnet status` and `devnet up` show it."""
        return copied_fields(DevnetView, self)

    def to_json(self, *, with_key: bool = False) -> dict[str, Any]:
        """JSON form; the (public, well-known) dev key only when asked."""
        data = asdict(self)
        if not with_key:
            data.pop("dev_account_key")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DevnetInfo:
        return cls(
            pid=int(data["pid"]),
            url=str(data["url"]),
            rpc_url=str(data["rpc_url"]),
            indexer_url=str(data["indexer_url"]),
            node_urls=[str(u) for u in data["node_urls"]],
            provider_url=str(data["provider_url"]),
            chain_id=int(data["chain_id"]),
            data_dir=str(data["data_dir"]),
            chain=str(data.get("chain", "builtin")),
            anvil_url=data.get("anvil_url"),
        )


@dataclass
class DevnetStatus:
    """``running``: a process answers health checks at the recorded URL."""

    running: bool
    data_dir: str
    info: DevnetInfo | None = None
    health: dict[str, Any] | None = None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "data_dir": self.data_dir,
            "info": self.info.to_json() if self.info else None,
            "health": self.health,
            "problem": self.problem,
        }


@dataclass
class StopResult:
    stopped: bool
    pid: int | None
    message: str


def _resolve(data_dir: Path | str | None) -> Path:
    """An explicit folder, else the recorded devnet's (for status, down and faults)."""
    return Path(data_dir).expanduser() if data_dir is not None else devnet_data_dir()


def _resolve_new(data_dir: Path | str | None) -> Path:
    """An explicit folder (made absolute), else the default one (where `up` starts a devnet)."""
    return Path(data_dir).expanduser().absolute() if data_dir is not None else default_data_dir()


@contextlib.contextmanager
def _exclusive_lock(data_dir: Path) -> Iterator[None]:
    import fcntl

    ensure_private_dir(data_dir)
    handle = (data_dir / LOCK_FILE).open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"another devnet is already using {data_dir}",
                hint="stop it with `zerog devnet down` or pick another --data-dir",
            ) from None
        yield
    finally:
        handle.close()


def _info_for(devnet: Devnet) -> DevnetInfo:
    return DevnetInfo(
        pid=os.getpid(),
        url=devnet.base_url,
        rpc_url=devnet.rpc_url,
        indexer_url=devnet.indexer_url,
        node_urls=devnet.node_urls,
        provider_url=devnet.provider_url,
        chain_id=devnet.chain.chain_id,
        data_dir=str(devnet.data_dir),
        chain=devnet.config.chain,
        anvil_url=devnet.anvil.url if devnet.anvil is not None else None,
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def run_foreground(
    config: DevnetConfig,
    *,
    on_ready: Callable[[DevnetInfo], None] | None = None,
    stop_event: threading.Event | None = None,
    record: bool = False,
) -> None:
    """Run a devnet in this process until SIGTERM/SIGINT (or ``stop_event``).

    Writes ``devnet.json`` and ``devnet.pid`` once the port is bound (and, with
    ``record``, the home's pointer to the folder), calls ``on_ready(info)``,
    and removes them when it stops.
    """
    from zerog_cli.infra.memory import keep_large_blocks

    data_dir = _resolve_new(config.data_dir)
    check_host(config.host)
    keep_large_blocks()  # its segment answers are a third of a megabyte each, as a client's
    with _exclusive_lock(data_dir):
        devnet = Devnet(replace(config, data_dir=data_dir))
        stop = stop_event or threading.Event()
        previous = _install_signal_handlers(stop)
        try:
            devnet.start()
            info = _info_for(devnet)
            _write_json(data_dir / STATE_FILE, info.to_json())
            (data_dir / PID_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
            if record:
                record_data_dir(data_dir)
            logger.info("devnet listening on %s (data in %s)", devnet.base_url, data_dir)
            if on_ready is not None:
                on_ready(info)
            while not stop.wait(0.5):
                pass
        finally:
            logger.info("devnet stopping")
            devnet.stop()
            _restore_signal_handlers(previous)
            for name in (STATE_FILE, PID_FILE):
                (data_dir / name).unlink(missing_ok=True)
            if record:
                forget_data_dir(data_dir)


def _install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: object) -> None:
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _subprocess_args(config: DevnetConfig, data_dir: Path) -> list[str]:
    faults = config.faults
    args = [
        sys.executable,
        "-m",
        "zerog_cli.devnet",
        "up",
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--data-dir",
        str(data_dir),
        "--chain-id",
        str(config.chain_id),
        "--price-per-sector",
        str(config.price_per_sector),
        "--fail-rate",
        str(faults.fail_rate),
        "--latency-ms",
        str(faults.latency_ms),
        "--corrupt-rate",
        str(faults.corrupt_rate),
        "--drop-rate",
        str(faults.drop_rate),
    ]
    if config.shards is not None:
        args += ["--shards", ",".join(f"{k}/{n}" for k, n in config.shards)]
    else:
        args += ["--nodes", str(config.nodes)]
    if config.legacy_fees:
        args.append("--legacy-fees")
    args += ["--indexer", config.indexer]
    if config.storage_client is not None:
        args += ["--storage-client", str(config.storage_client)]
    args += ["--chain", config.chain]
    if config.packages is not None:
        args += ["--packages", str(config.packages)]
    return args


DEVNET_ENVIRONMENT = (
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "NO_PROXY",
    "no_proxy",
)
"""Variables a detached devnet inherits: what Python needs to start, nothing else."""


def _devnet_environment() -> dict[str, str]:
    """The environment of a detached devnet: no secret, no zerog setting.

    It lives until ``devnet down``, and ``/proc/PID/environ`` shows what it was
    started with to anyone who may read it; the devnet needs no key of the
    caller's (it has its own well-known dev account).
    """
    kept = {
        name: value
        for name, value in os.environ.items()
        if name in DEVNET_ENVIRONMENT or name.startswith("LC_")
    }
    return {**kept, "PYTHONUNBUFFERED": "1"}


def start_detached(config: DevnetConfig, *, timeout: float = 30.0) -> DevnetInfo:
    """Start a devnet in the background; return once it answers health checks.

    The official indexer's binary and anvil's packages are looked up here, before
    anything starts, so a missing one is exit 8 with its hint rather than a child
    that dies. Output
    goes to ``devnet.log`` in the data folder. Raises `UsageError` if a devnet
    already runs there and `NetworkUnavailable` if it does not come up
    (the half-started process is stopped).
    """
    data_dir = _resolve_new(config.data_dir)
    check_host(config.host)
    if check_indexer(config.indexer) == DevnetIndexer.OFFICIAL:
        config = replace(config, storage_client=find_storage_client(config.storage_client))
    if check_chain(config.chain) == DevnetChainKind.ANVIL:
        config = replace(config, packages=find_packages(config.packages))
    current = status(data_dir)
    if current.running and current.info is not None:
        raise UsageError(
            f"a devnet is already running at {current.info.url} (pid {current.info.pid})",
            hint="stop it with `zerog devnet down`",
        )
    ensure_private_dir(data_dir)
    for name in (STATE_FILE, PID_FILE):
        (data_dir / name).unlink(missing_ok=True)
    log_path = data_dir / LOG_FILE
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            _subprocess_args(config, data_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_devnet_environment(),
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NetworkUnavailable(
                f"the devnet exited at start-up (code {process.returncode}): {_log_tail(log_path)}"
            )
        info = _read_info(data_dir)
        if info is not None and info.pid == process.pid and _health(info.url) is not None:
            record_data_dir(data_dir)
            return info
        time.sleep(0.1)
    children.stop(process, 5)
    raise NetworkUnavailable(f"the devnet did not come up within {timeout:.0f} s")


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def _read_info(data_dir: Path) -> DevnetInfo | None:
    try:
        return DevnetInfo.from_json(json.loads((data_dir / STATE_FILE).read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / PID_FILE).read_text("utf-8").strip())
    except (OSError, ValueError):
        return None


def _health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    import requests

    try:
        answer = requests.get(
            url.rstrip("/") + "/admin/health", timeout=timeout, proxies={"http": "", "https": ""}
        )
        if answer.status_code != 200:
            return None
        body = answer.json()
    except (requests.RequestException, ValueError):
        return None
    return body if isinstance(body, dict) else None


def set_faults(data_dir: Path | str | None, changes: dict[str, Any]) -> dict[str, Any]:
    """Change the running devnet's fault settings (``POST /admin/faults``); returns them all."""
    import requests

    current = status(data_dir)
    if not current.running or current.info is None:
        raise NetworkUnavailable(f"no devnet is running in {current.data_dir}")
    try:
        answer = requests.post(
            current.info.url + "/admin/faults",
            json=changes,
            timeout=10,
            proxies={"http": "", "https": ""},
        )
        body = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise NetworkUnavailable(f"the devnet did not take the fault settings: {exc}") from None
    if answer.status_code != 200 or not isinstance(body, dict):
        raise UsageError(f"the devnet refused the fault settings: {body}")
    return body


def router_key(data_dir: Path | str | None, *, revoke: str | None = None) -> dict[str, Any]:
    """A new Router API key for the dev account (``revoke``: that key id revoked instead).

    The devnet is the one ``--data-dir`` names, else ``ZEROG_DEVNET_URL`` or
    the one `devnet up` recorded, as for every other command.
    """
    import requests

    from zerog_cli.infra.config import running_devnet_url

    if data_dir is not None:
        current = status(data_dir)
        if not current.running or current.info is None:
            raise NetworkUnavailable(f"no devnet is running in {current.data_dir}")
        base: str | None = current.info.url
    else:
        base = running_devnet_url()
    if base is None:
        raise NetworkUnavailable("no devnet is running; start one with `zerog devnet up`")
    path = "/router/devnet/keys/revoke" if revoke else "/router/devnet/keys"
    try:
        answer = requests.post(
            base.rstrip("/") + path,
            json={"id": revoke} if revoke else {},
            timeout=10,
            proxies={"http": "", "https": ""},
        )
        body = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise NetworkUnavailable(f"the devnet Router did not answer: {exc}") from None
    if answer.status_code == 404 and revoke:
        from zerog_cli.errors import NotFound

        raise NotFound(f"the devnet Router has no key {revoke!r}")
    if answer.status_code != 200 or not isinstance(body, dict):
        raise UsageError(f"the devnet Router refused: {body}")
    return body


def status(data_dir: Path | str | None = None) -> DevnetStatus:
    """Is a devnet running for ``data_dir``? Read the pid file and ask it."""
    folder = _resolve(data_dir)
    info = _read_info(folder)
    pid = _read_pid(folder)
    if pid is None and info is None:
        return DevnetStatus(running=False, data_dir=str(folder))
    if pid is None or not pid_alive(pid):
        return DevnetStatus(
            running=False, data_dir=str(folder), info=info, problem="stale pid file"
        )
    if info is None:
        return DevnetStatus(
            running=False, data_dir=str(folder), problem=f"pid {pid} alive, no devnet.json"
        )
    health = _health(info.url)
    if health is None or health.get("pid") != pid:
        return DevnetStatus(
            running=False,
            data_dir=str(folder),
            info=info,
            problem=f"pid {pid} alive but {info.url} does not answer as that devnet",
        )
    return DevnetStatus(running=True, data_dir=str(folder), info=info, health=health)


def _is_devnet_process(pid: int, data_dir: Path) -> bool:
    """The process command line names the devnet module and this data folder."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _health_pid_matches(data_dir, pid)
    args = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    if "zerog_cli.devnet" in args:
        return str(data_dir) in args or _health_pid_matches(data_dir, pid)
    return _health_pid_matches(data_dir, pid)


def _health_pid_matches(data_dir: Path, pid: int) -> bool:
    info = _read_info(data_dir)
    health = _health(info.url) if info else None
    return health is not None and health.get("pid") == pid


def stop(data_dir: Path | str | None = None, *, timeout: float = 10.0) -> StopResult:
    """Stop the devnet recorded in ``data_dir``: SIGTERM, then SIGKILL after ``timeout``."""
    folder = _resolve(data_dir)
    pid = _read_pid(folder)
    if pid is None:
        return StopResult(False, None, f"no devnet pid file in {folder}")
    if not pid_alive(pid):
        for name in (STATE_FILE, PID_FILE):
            (folder / name).unlink(missing_ok=True)
        forget_data_dir(folder)
        return StopResult(False, pid, f"devnet pid {pid} was not running; stale files removed")
    if not _is_devnet_process(pid, folder):
        raise UsageError(
            f"pid {pid} in {folder / PID_FILE} is not a devnet for this folder; not stopping it"
        )
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid) or _reap(pid):
            break
        time.sleep(0.05)
    else:
        logger.warning("devnet pid %s ignored SIGTERM; killing it", pid)
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
    for name in (STATE_FILE, PID_FILE):
        (folder / name).unlink(missing_ok=True)
    forget_data_dir(folder)
    return StopResult(True, pid, f"devnet pid {pid} stopped")


def _reap(pid: int) -> bool:
    """Collect ``pid`` if it is our exited child (a zombie still answers kill 0)."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid
