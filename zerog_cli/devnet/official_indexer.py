"""The official 0G indexer (``0g-storage-client indexer``) over the devnet's storage nodes.

``zerog devnet up --indexer official`` runs it as a child of the devnet
process, trusting exactly the devnet's node URLs, on a free 127.0.0.1 port;
the devnet then advertises its URL as the indexer (``devnet.json``, so the
``devnet`` profile uses it) and stops it when it stops.

The binary is not part of zerog. It is found, in order: the path given with
``--storage-client`` / ``$ZEROG_STORAGE_CLIENT``; ``0g-storage-client`` on
PATH; the test tools' npm cache (``$ZEROG_NPM_CACHE``, or ``.cache/npm-interop``
of a source checkout), where the pinned ``@0gfoundation/0g-compute-ts-sdk``
package ships it as ``binary/0g-storage-client``.

Two things keep it on the loopback interface. The build in that package looks
up every trusted node's IP address at ipinfo.io when it starts (newer builds
skip loopback addresses); a location cache file that already names 127.0.0.1
answers the lookup locally. And its HTTP proxy variables point at a closed
loopback port, so any other outbound HTTP request fails instead of leaving the
machine (Go never proxies requests to loopback addresses, so the nodes are
reached directly).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

from zerog_cli.devnet import children
from zerog_cli.devnet.constants import LOOPBACK_HOST
from zerog_cli.errors import ConfigError

logger = logging.getLogger(__name__)

BINARY_NAME = "0g-storage-client"
BINARY_ENV = "ZEROG_STORAGE_CLIENT"
PACKAGE_BINARY = "node_modules/@0gfoundation/0g-compute-ts-sdk/binary/" + BINARY_NAME
CLOSED_LOOPBACK_PROXY = f"http://{LOOPBACK_HOST}:9"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
HOW_TO_GET_IT = (
    "the npm package @0gfoundation/0g-compute-ts-sdk@0.9.0 ships it as"
    f" binary/{BINARY_NAME}: set {BINARY_ENV} (or --storage-client) to that file;"
    " in a zerog checkout `make test-tools` puts it in $ZEROG_NPM_CACHE"
)


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_storage_client(explicit: Path | str | None = None) -> Path:
    """The ``0g-storage-client`` binary to run; `ConfigError` (exit 8) when there is none."""
    explicit = explicit or os.environ.get(BINARY_ENV) or None
    if explicit:
        path = Path(explicit).expanduser()
        if not _usable(path):
            raise ConfigError(
                f"{path} (--storage-client / {BINARY_ENV}) is not an executable file",
                hint=HOW_TO_GET_IT,
            )
        return path.resolve()
    on_path = shutil.which(BINARY_NAME)
    if on_path:
        return Path(on_path)
    for folder in children.npm_cache_folders():
        for candidate in sorted(folder.glob("*/" + PACKAGE_BINARY)):
            if _usable(candidate):
                return candidate
    raise ConfigError(
        f"the official indexer needs the {BINARY_NAME} binary, and none was found",
        hint=HOW_TO_GET_IT,
    )


class OfficialIndexer:
    """One ``0g-storage-client indexer`` process trusting ``node_urls``."""

    def __init__(self, binary: Path, node_urls: list[str], work_dir: Path) -> None:
        self.binary = binary
        self.node_urls = list(node_urls)
        self.work_dir = work_dir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK_HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "official-indexer.log"

    def _location_cache(self) -> Path:
        """A cache file that answers the start-up IP lookup of 127.0.0.1 locally."""
        path = self.work_dir / "ip-location-cache.json"
        local = {
            "city": "loopback",
            "region": "loopback",
            "country": "loopback",
            "loc": "0,0",
            "timezone": "UTC",
        }
        path.write_text(json.dumps({LOOPBACK_HOST: local}), encoding="utf-8")
        return path

    def start(self) -> str:
        """Start the process and return its URL once it serves every node."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.port = children.free_port()
        args = [
            str(self.binary),
            "indexer",
            "--endpoint",
            f"{LOOPBACK_HOST}:{self.port}",
            "--trusted",
            ",".join(self.node_urls),
            "--ip-location-cache-file",
            str(self._location_cache()),
            "--log-color-disabled",
        ]
        proxy = {
            name: CLOSED_LOOPBACK_PROXY
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
        }
        env = {**os.environ, **proxy, "NO_PROXY": "", "no_proxy": ""}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        logger.info("official indexer %s serving %d nodes", self.url, len(self.node_urls))
        return self.url

    def _wait_ready(self) -> None:
        import requests

        body = {"jsonrpc": "2.0", "id": 1, "method": "indexer_getShardedNodes"}

        def serves_every_node() -> bool:
            with contextlib.suppress(requests.RequestException, ValueError, TypeError):
                answer = requests.post(
                    self.url + "/", json=body, timeout=2, proxies={"http": "", "https": ""}
                )
                trusted = answer.json()["result"]["trusted"] or []
                return len(trusted) == len(self.node_urls)
            return False

        assert self.process is not None
        children.wait_ready(
            self.process,
            serves_every_node,
            name="the official indexer",
            log_path=self.log_path,
            timeout=START_TIMEOUT,
            late=f"the official indexer did not serve the devnet's nodes within"
            f" {START_TIMEOUT:.0f} s; see {self.log_path}",
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            children.stop(process, STOP_TIMEOUT)
