"""Secrets: a whole operator session with real, funded secrets, then a scan of every byte.

The wallet key is the suite's throwaway TEST_PRIVATE_KEY (not the devnet's
published development key, which could legitimately appear anywhere), funded
on the devnet by a transfer from the development account, so every paid path
(storage submissions, compute deposits and transfers, inference) runs with it.
ZEROG_SIGNING_PRIVATE_KEY (which `auth sign-typed` uses), ENCRYPTION_KEY,
JWT_SECRET (stored with `secrets set --stdin`), DATABASE_PASSWORD and
CIRCLE_API_KEY (as a NAME_FILE path) carry random values; ZEROG_ROUTER_API_KEY
is a real key of the devnet's 0G Router, used by inferences through it. Afterwards the key
(with and without 0x, in any case) and the values appear nowhere: not in any
command's stdout or stderr, not in any file under $ZEROG_HOME (config, ledger
and its WAL, metrics textfiles, token cache, locks), not in the devnet's files
and logs. The one file meant to hold a value,
zerog's own 0600 secret store entry, holds only its own. ``--verbose``
tracebacks of forced internal errors whose messages carry the secrets show
them masked.

Credentials inside URLs are secrets too: the RPC URL carries an API key in
its query (``?apikey=``, which the devnet ignores) for the whole session, and
`verify` pushes to a Pushgateway URL with ``user:password@`` that answers 401,
so the push-failure warning prints it; neither the key nor the password may
appear anywhere either.
"""

from __future__ import annotations

import json
import os
import random
import secrets as token_source
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import TEST_ADDRESS, TEST_PRIVATE_KEY
from tests.devnet_harness import NO_PROXY, DevnetProcess, send_transaction
from tests.reliability.conftest import (
    TRACEBACK,
    Run,
    collect,
    exit_problems,
    random_file,
    scale,
    zerog_child,
)
from zerog_cli.devnet.compute import PROVIDER_ADDRESS

pytestmark = [pytest.mark.devnet(nodes=1), pytest.mark.timeout(scale(300, 3600))]

ZG = 10**18
INFERENCES = scale(2, 10)

# A child that breaks zerog on purpose: MODE picks where, the message carries the secrets.
FORCED_ERROR = r"""
import os, sys
mode = sys.argv[1]
key = os.environ["ZEROG_STORAGE_PRIVATE_KEY"]
leak = " ".join([key, key[2:].upper(), key[2:], os.environ.get("ENCRYPTION_KEY", ""),
                 os.environ.get("DATABASE_PASSWORD", "")])
if mode == "upload":
    import zerog_cli.zerog.upload as target
    def broken(*args, **kwargs):
        raise RuntimeError("signer exploded while holding " + leak)
    target.upload = broken
else:
    import zerog_cli.services.secrets_report as target
    original = target.list_secrets
    def broken(*args, **kwargs):
        rows = original(*args, **kwargs)
        raise ValueError("secrets listed: " + leak + " " + os.environ.get("JWT_VALUE", ""))
    target.list_secrets = broken
from zerog_cli.cli.app import run
sys.exit(run(sys.argv[2:]))
"""


# EIP-712 data for the devnet's chain, signed with ZEROG_SIGNING_PRIVATE_KEY.
TYPED_ORDER = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "chainId", "type": "uint256"},
        ],
        "Order": [{"name": "amount", "type": "uint256"}, {"name": "nonce", "type": "uint256"}],
    },
    "primaryType": "Order",
    "domain": {"name": "secrets scan", "chainId": 31337},
    "message": {"amount": 1, "nonce": 1},
}


class RefusingGateway(BaseHTTPRequestHandler):
    """A Pushgateway stand-in that refuses every push (401), so zerog warns about it."""

    def do_PUT(self) -> None:
        self.send_response(401)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def refusing_gateway() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RefusingGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def needles(values: dict[str, str]) -> dict[str, bytes]:
    """Lower-case byte strings to look for (the haystack is lower-cased too: any case)."""
    found: dict[str, bytes] = {}
    for name, value in values.items():
        text = value.lower()
        found[name] = text.encode()
        if text.startswith("0x"):
            found[f"{name} without 0x"] = text[2:].encode()
    return found


def scan(blob: bytes, where: str, looking_for: dict[str, bytes], skip: set[str]) -> list[str]:
    lowered = blob.lower()
    return [
        f"{name} in {where}" for name, n in looking_for.items() if n not in skip and n in lowered
    ]


def test_a_whole_session_never_writes_a_secret(
    devnet: DevnetProcess,
    tmp_path: Path,
    zerog_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: dict[str, Any],
    refusing_gateway: int,
) -> None:
    net = devnet
    receipt = send_transaction(net.rpc_url, to=TEST_ADDRESS, value=50 * ZG)
    assert receipt["status"] == "0x1"

    encryption_key = token_source.token_hex(32)
    jwt_secret = "jwt-" + token_source.token_urlsafe(24)
    database_password = "pw-" + token_source.token_urlsafe(18)
    circle_key = "circle-" + token_source.token_hex(16)
    rpc_api_key = "rpc" + token_source.token_hex(12)
    signing_key = "0x" + token_source.token_hex(32)
    gateway_password = "gw-" + token_source.token_hex(10)
    gateway_url = f"http://pusher:{gateway_password}@127.0.0.1:{refusing_gateway}"
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    circle_file = outside / "circle.key"
    circle_file.write_text(circle_key + "\n")
    circle_file.chmod(0o600)
    metrics_file = zerog_home / "metrics" / "zerog.prom"
    router_key = requests.post(
        f"{net.base_url}/router/devnet/keys", timeout=10, proxies=NO_PROXY
    ).json()["key"]
    env = {
        "ZEROG_ROUTER_API_KEY": router_key,
        "ZEROG_DEVNET_URL": net.base_url,
        "ZEROG_STORAGE_PRIVATE_KEY": TEST_PRIVATE_KEY,
        "ZEROG_COMPUTE_PRIVATE_KEY": TEST_PRIVATE_KEY,
        "ZEROG_SIGNING_PRIVATE_KEY": signing_key,
        "ENCRYPTION_KEY": encryption_key,
        "DATABASE_PASSWORD": database_password,
        "CIRCLE_API_KEY_FILE": str(circle_file),
        "ZEROG_METRICS_FILE": str(metrics_file),
        "ZEROG_RPC_URL": f"{net.rpc_url}?apikey={rpc_api_key}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    values = {
        "wallet key": TEST_PRIVATE_KEY,
        "typed-data signing key": signing_key,
        "ENCRYPTION_KEY": encryption_key,
        "JWT_SECRET": jwt_secret,
        "DATABASE_PASSWORD": database_password,
        "CIRCLE_API_KEY": circle_key,
        "RPC URL api key": rpc_api_key,
        "Pushgateway URL password": gateway_password,
        "ZEROG_ROUTER_API_KEY": router_key,
    }
    looking_for = needles(values)
    plain = random_file(tmp_path / "report.pdf", 120_000, random.Random(3))
    vaulted = random_file(tmp_path / "vault.tar", 90_000, random.Random(4))
    runs: list[Run] = []

    def zg(*args: str, stdin: bytes | None = None, expect: int = 0) -> Run:
        run = zerog_child(*args, stdin=stdin, timeout=120)
        runs.append(run)
        assert run.exit_code == expect, run
        return run

    zg("init")
    zg("secrets", "set", "JWT_SECRET", "--stdin", "--store", "file", stdin=jwt_secret.encode())
    zg("secrets", "ls")
    zg("secrets", "ls", "--json")
    zg("secrets", "doctor", "-v")
    assert zg("auth", "address").stdout.strip().lower() == TEST_ADDRESS.lower()
    zg("auth", "sign", "hello from the secrets scan")
    typed = tmp_path / "order.json"
    typed.write_text(json.dumps(TYPED_ORDER))
    signed = zg("auth", "sign-typed", str(typed), "--json", "-v")
    assert signed.json["secret"] == "ZEROG_SIGNING_PRIVATE_KEY"
    zg("config", "show")
    zg("config", "show", "--json")
    zg("ns", "create", "vault", "--encrypt-by-default")
    assert zg("upload", str(vaulted), "--ns", "vault", "--json", "-v").json["encrypted"] is True
    assert int(zg("upload", str(plain), "--json", "-v").json["cost"]["neuron"]) > 0
    zg("download", "vault/vault.tar", "-o", str(tmp_path / "out" / "vault.tar"), "-v")
    assert (tmp_path / "out" / "vault.tar").read_bytes() == vaulted.read_bytes()
    zg("download", "default/report.pdf", "-o", str(tmp_path / "out" / "report.pdf"))
    backup = zg("backup", "create", str(vaulted), "--ns", "vault", "--label", "vault", "--json")
    verified = zg(
        "verify",
        "-v",
        "--metrics-file",
        str(zerog_home / "metrics" / "verify.prom"),
        "--pushgateway",
        gateway_url,
    )
    assert f"metrics push failed: Pushgateway http://***@127.0.0.1:{refusing_gateway}/" in (
        verified.stderr
    ), verified
    restored = tmp_path / "out" / "restored.tar"
    zg("backup", "restore", str(backup.json["backup_id"]), "-o", str(restored), "-v")
    assert restored.read_bytes() == vaulted.read_bytes()
    zg("backup", "ls")
    zg("infer", "fund", "deposit", "5", "--yes", "-v")
    zg("infer", "fund", "transfer", PROVIDER_ADDRESS, "3", "--yes")
    for index in range(INFERENCES):
        zg("infer", "ask", f"is my secret safe? {index}", "--via", "direct", "--json", "-v")
        zg("infer", "ask", f"and via the Router? {index}", "--no-stream", "--json", "-v")
    zg("infer", "ask", "streamed via the Router", "--stream", "--verify-tee", "-v")
    zg("infer", "models")
    zg("infer", "account")
    zg("infer", "account", "--json", "-v")
    zg("infer", "log")
    zg("status")
    zg("status", "--json", "-v")
    zg("ledger", "status")
    zg("ledger", "sql", "SELECT * FROM objects")
    zg("ledger", "sql", "SELECT * FROM cost_tracking", "--json")
    zg("ledger", "sql", "SELECT * FROM inference_log", "--json")
    zg("metrics", "show")
    zg("metrics", "show", "--json")
    zg("quota", "show")
    zg("quota", "report")
    # Failures print messages too.
    zg("download", "vault/nope", "-o", str(tmp_path / "nope"), "-v", expect=7)
    zg("upload", str(tmp_path / "missing.bin"), "-v", expect=2)
    zg("config", "set", "rpc_url", "not-a-url", expect=2)

    # Forced internal errors: the traceback is shown with -v, and scrubbed.
    forced: list[Run] = []
    for mode, args in (
        ("upload", ("-v", "upload", str(plain), "--name", "forced.pdf")),
        ("secrets", ("-v", "secrets", "ls")),
        ("upload", ("upload", str(plain), "--name", "forced-quiet.pdf")),
    ):
        child = zerog_child_script(FORCED_ERROR, mode, *args, env={"JWT_VALUE": jwt_secret})
        forced.append(child)
        runs.append(child)
        assert child.exit_code == 1, child
        assert "internal error" in child.stderr
        assert "***" in child.stderr, child
        assert (TRACEBACK in child.stderr) == ("-v" in args), child

    # The scan: every stdout and stderr, every file zerog or the devnet wrote.
    leaks: list[str] = []
    scanned_bytes = 0
    for run in runs:
        blob = (run.stdout + "\n" + run.stderr).encode()
        scanned_bytes += len(blob)
        leaks += scan(blob, f"output of {' '.join(run.args)[:60]}", looking_for, set())
        if not any(run is f for f in forced):
            leaks += [f"{p} ({' '.join(run.args)[:60]})" for p in exit_problems(run)]
    store = zerog_home / "secrets" / "JWT_SECRET"
    scanned_files = 0
    for root in (zerog_home, net.data_dir):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            scanned_files += 1
            scanned_bytes += len(data)
            skip = {looking_for["JWT_SECRET"]} if path == store else set()
            leaks += scan(data, str(path.relative_to(tmp_path)), looking_for, skip)
    assert store.read_text().strip() == jwt_secret

    private = [
        zerog_home / "config.toml",
        zerog_home / "ledger.db",
        store,
        *[p for p in zerog_home.glob("ledger.db-*")],
        *[p for p in zerog_home.glob("*.json")],
    ]
    wrong_modes = {
        str(p.relative_to(zerog_home)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in private
        if p.exists() and stat.S_IMODE(p.stat().st_mode) != 0o600
    }
    home_mode = stat.S_IMODE(zerog_home.stat().st_mode)

    figures["commands run"] = len(runs)
    figures["secret values looked for (any case, with/without 0x)"] = len(looking_for)
    figures["files scanned"] = scanned_files
    figures["bytes scanned"] = scanned_bytes
    figures["secrets found"] = len(leaks)
    figures["files holding secrets or the ledger not 0600"] = wrong_modes or 0
    figures["ZEROG_HOME mode"] = oct(home_mode)
    figures["forced tracebacks scrubbed"] = (
        f"{sum('***' in r.stderr for r in forced)}/{len(forced)}"
    )

    assert not leaks, "\n".join(leaks[:20])
    assert not wrong_modes
    assert home_mode == 0o700


def zerog_child_script(script: str, mode: str, *args: str, env: dict[str, str]) -> Run:
    """Run ``script`` (which ends by running the CLI) in a child, like `zerog_child`."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", script, mode, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        start_new_session=True,
    )
    return collect(process, (mode, *args), started, 120)
