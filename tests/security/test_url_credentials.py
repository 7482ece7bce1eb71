"""Item 5: credentials inside URLs are never printed.

An RPC URL with an API key in its path (``/v2/KEY``) and its query
(``?apikey=``), an indexer URL with ``?access_token=``, and a Pushgateway URL
with ``user:pass@`` are configured; every place that prints them (the
``network:`` line, `status` as text and JSON, `config show` as text and JSON,
the metrics push warning, ``-v`` logs, error messages) must show the URL with
``***`` where the credential was, and never the credential.

Endpoints are on 127.0.0.1 only: a closed port for RPC and indexer, and a
small local server that answers every push with 401 for the Pushgateway.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.security.conftest import AttackContext
from zerog_cli.infra.redaction import redact_url, scrub


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Refuses(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        self.send_response(401)
        self.end_headers()
        self.wfile.write(b"unauthorized")

    do_POST = do_PUT

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def refusing_gateway() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def credentials() -> dict[str, str]:
    return {
        "path key": "Ak" + secrets.token_hex(12),
        "apikey": secrets.token_hex(10),
        "access_token": "tok" + secrets.token_hex(8),
        "gateway password": "pw" + secrets.token_hex(8),
        "gateway user": "pushuser" + secrets.token_hex(3),
    }


def test_url_credentials_are_never_printed(
    zerog: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    refusing_gateway: int,
    attack: AttackContext,
) -> None:
    found = credentials()
    rpc = closed_port()
    rpc_url = f"http://127.0.0.1:{rpc}/v2/{found['path key']}?apikey={found['apikey']}&chain=1"
    indexer_url = f"http://127.0.0.1:{rpc}/indexer?access_token={found['access_token']}"
    gateway = (
        f"http://{found['gateway user']}:{found['gateway password']}@127.0.0.1:{refusing_gateway}"
    )
    monkeypatch.setenv("ZEROG_RPC_URL", rpc_url)
    monkeypatch.setenv("ZEROG_INDEXER_URL", indexer_url)
    monkeypatch.setenv("ZEROG_PUSHGATEWAY", gateway)
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "1")
    upload = tmp_path / "report.txt"
    upload.write_text("quarterly numbers\n")

    def printed_nothing_secret(result: Result, *masked_in: str) -> None:
        text = result.stdout + result.stderr
        for name, value in found.items():
            assert value not in text, f"{name} printed: {result}"
        for where in masked_in:
            assert where in text, result

    with attack("url credentials", "config show (text)"):
        result = zerog("config", "show")
        assert result.exit_code == 0, result
        printed_nothing_secret(result, f"127.0.0.1:{rpc}/v2/***?apikey=***&chain=1")
    with attack("url credentials", "config show --json"):
        result = zerog("config", "show", "--json")
        settings = result.json["settings"]
        assert settings["rpc_url"]["value"] == redact_url(rpc_url)
        assert settings["pushgateway"]["value"] == f"http://***@127.0.0.1:{refusing_gateway}"
        printed_nothing_secret(result, "access_token=***")
    with attack("url credentials", "status (text)"):
        result = zerog("status")
        assert result.exit_code == 6, result
        printed_nothing_secret(result, "/v2/***?apikey=***", "/indexer?access_token=***")
    with attack("url credentials", "status --json -v"):
        result = zerog("status", "--json", "-v")
        urls = {entry["endpoint"]: entry["url"] for entry in result.json["endpoints"]}
        assert urls == {"evm": redact_url(rpc_url), "indexer": redact_url(indexer_url)}
        printed_nothing_secret(result)
    with attack("url credentials", "network: line, -v logs, push-failure warning of an upload"):
        result = zerog("upload", str(upload), "-v")
        assert result.exit_code == 6, result
        printed_nothing_secret(
            result,
            f"network: devnet (chain 31337, http://127.0.0.1:{rpc}/v2/***?apikey=***&chain=1)",
            f"metrics push failed: Pushgateway http://***@127.0.0.1:{refusing_gateway}/",
        )
    with attack("url credentials", "a bad URL in an error message"):
        bad = f"ftp://{found['gateway user']}:{found['gateway password']}@127.0.0.1/x"
        result = zerog("config", "set", "pushgateway", bad)
        assert result.exit_code == 2, result
        printed_nothing_secret(result)
    assert found["path key"] not in (tmp_path / "zerog-home" / "ledger.db").read_bytes().decode(
        "latin-1"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://eth-mainnet.g.alchemy.com/v2/AbCd1234EfGh5678IjKl",
            "https://eth-mainnet.g.alchemy.com/v2/***",
        ),
        (
            "https://mainnet.infura.io/v3/9aa3d95b3bc440fa88ea12eaa4456161",
            "https://mainnet.infura.io/v3/***",
        ),
        ("https://rpc.example/eth?apikey=s3cr3t&x=1", "https://rpc.example/eth?apikey=***&x=1"),
        (
            "https://rpc.example/?api_key=a&token=b&Password=c&chain=2",
            "https://rpc.example/?api_key=***&token=***&Password=***&chain=2",
        ),
        ("http://alice:hunter2@gateway:9091/", "http://***@gateway:9091/"),
        ("https://evmrpc-testnet.0g.ai", "https://evmrpc-testnet.0g.ai"),
        (
            "http://127.0.0.1:9091/metrics/job/zerog_verify_daily/instance/backup-host",
            "http://127.0.0.1:9091/metrics/job/zerog_verify_daily/instance/backup-host",
        ),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert scrub(f"error: cannot reach {url}: refused") == f"error: cannot reach {shown}: refused"
