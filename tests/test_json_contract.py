"""The --json contract: every command's document matches its published schema.

`docs/json/` holds one JSON Schema per command that takes ``--json`` (and the
error document), generated from the result types by ``tools/json_schema.py``.
These tests fail when the files drift from the code, when a command's result
type is not declared, and when a real document from a devnet run does not
validate against its schema.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess, send_transaction
from tools.json_schema import REPO, json_commands, schema_file
from zerog_cli.cli.common import result_type
from zerog_cli.devnet.compute import DEVNET_MODEL, PROVIDER_ADDRESS
from zerog_cli.infra.output import schema_id
from zerog_cli.zerog import compute

ZG = 10**18


def _validator(schema: str) -> jsonschema.protocols.Validator:
    path = schema_file(schema)
    assert path.exists(), f"{schema} has no schema file {path.relative_to(REPO)}"
    document = json.loads(path.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(document)
    validator_class.check_schema(document)
    return validator_class(document)  # type: ignore[no-any-return]


def _declared() -> dict[str, Any]:
    """Each --json command's path ("backup ls") and the result type it declares."""
    return {" ".join(path): result_type(command.callback) for path, command in json_commands()}


class Checker:
    """Runs commands with --json and validates each document against its schema."""

    def __init__(self, cli: Callable[..., Result]) -> None:
        self.cli = cli
        self.covered: set[str] = set()

    def __call__(self, path: str, *args: str, code: int = 0, stdin: str | None = None) -> Any:
        result = self.cli(*path.split(), *args, "--json", stdin=stdin)
        assert result.exit_code == code, result
        return self.document(path, result.json)

    def document(self, path: str, document: Any) -> Any:
        """Validate ``document``, the output of ``path`` (a command such as "backup ls")."""
        expected = "zerog.error/1" if document.get("schema") == "zerog.error/1" else None
        schema = expected or schema_id(path.split())
        assert document["schema"] == schema, document
        errors = sorted(_validator(schema).iter_errors(document), key=lambda e: list(e.path))
        assert not errors, f"{path}: {[f'{list(e.path)}: {e.message}' for e in errors]}"
        self.covered.add("error" if expected else path)
        return document


def test_schemas_in_docs_json_are_up_to_date() -> None:
    completed = subprocess.run(
        [sys.executable, "tools/json_schema.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def test_every_command_that_takes_json_declares_its_result_and_has_a_schema() -> None:
    declared = _declared()
    assert {"backup ls", "verify", "infer fund refund", "devnet status"} <= set(declared)
    undeclared = sorted(path for path, result in declared.items() if result is None)
    assert undeclared == [], "commands that take --json but declare no result type"
    for path in declared:
        assert schema_file(schema_id(path.split())).exists(), f"{path} has no schema in docs/json/"


def _types_within(declared: Any) -> set[type]:
    """The dataclasses a declared result is built from: itself (or each of a union),
    and every dataclass its fields hold, at any depth."""
    found: set[type] = set()
    waiting = list(typing.get_args(declared) or (declared,))
    while waiting:
        hint = waiting.pop()
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            if hint not in found:
                found.add(hint)
                waiting += typing.get_type_hints(hint).values()
        else:
            waiting += typing.get_args(hint)
    return found


def test_result_types_live_below_the_cli() -> None:
    """A command parses, calls a service and renders: the types of its --json document
    come from the layers below (services, ledger, devnet), never from cli/."""
    in_cli = sorted(
        f"{path}: {kind.__module__}.{kind.__qualname__}"
        for path, declared in _declared().items()
        for kind in _types_within(declared)
        if kind.__module__.startswith("zerog_cli.cli.")
    )
    assert in_cli == [], "move these result types into services/"


def test_the_error_document_matches_its_schema(zerog: Callable[..., Result]) -> None:
    check = Checker(zerog)
    failed = check("ledger path", "--no-such-flag", code=2)
    assert failed["error"]["kind"] == "usage"


@pytest.mark.devnet
def test_every_json_document_matches_its_schema(
    cli: Callable[..., Result], net: DevnetProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = Checker(cli)
    data = tmp_path / "db.dump"
    data.write_bytes(os.urandom(5000))
    folder = tmp_path / "config"
    (folder / "sub").mkdir(parents=True)
    (folder / "app.toml").write_text("port = 8080\n")
    (folder / "sub" / "notes.txt").write_text("hello\n")

    check("ns create", "backups", "--quota", "1GB", "--meta", "team=sre")
    check("ns create", "scratch")
    check("quota set", "bob", "--storage", "1GB", "--tier", "free")
    check("quota tiers")
    check("ns grant", "backups", "bob", "read")
    check("ns revoke", "backups", "bob")
    check("ns ls")
    check("ns rm", "scratch")
    check("upload", str(data), "--ns", "backups", "--name", "data.bin", "--dry-run")
    uploaded = check("upload", str(data), "--ns", "backups", "--name", "data.bin")
    assert set(uploaded["cost"]) == {"neuron", "0g", "usd_micro"}
    assert int(uploaded["cost"]["neuron"]) > 0 and uploaded["cost"]["usd_micro"] > 0
    check("download", "backups/data.bin", "-o", str(tmp_path / "data.out"))
    check("download", uploaded["root"], "-o", str(tmp_path / "by-root.out"))
    check("status")
    shown = check("ns show", "backups")
    assert shown["objects"] == 1 and shown["your_role"] == "owner"
    listed_objects = check("ns objects", "backups")
    assert [o["fee"] for o in listed_objects["objects"]] == [uploaded["cost"]]
    check("quota show")
    check("quota show", "--all")
    report = check("quota report", "--by", "service")
    assert [group["key"] for group in report["groups"]] == ["storage"]
    assert report["groups"][0]["cost"] == report["total"] == uploaded["cost"]
    check("quota reset", "bob")
    made = check("backup create", str(data), "--ns", "backups", "--label", "db")
    snapshot = check("backup create", str(folder), "--ns", "backups", "--label", "config")
    assert snapshot["kind"] == "folder" and made["kind"] == "file"
    listed = check("backup ls", "--ns", "backups")
    assert [b["id"] for b in listed["backups"]] == [made["backup_id"], snapshot["backup_id"]]
    check("backup ls", "--latest", "--label", "db")
    check("backup show", str(made["backup_id"]))
    check("backup show", str(snapshot["backup_id"]), "--files")
    restored = check(
        "backup restore", str(made["backup_id"]), "-o", str(tmp_path / "restored.dump")
    )
    check("backup restore", str(snapshot["backup_id"]), "--to", str(tmp_path / "tree"))
    member = check(
        "backup restore",
        str(snapshot["backup_id"]),
        "--path",
        "sub/notes.txt",
        "-o",
        str(tmp_path / "notes.txt"),
    )
    node_keys = {"url", "segments", "bytes", "mb_per_s", "corrupt", "failed", "stalled"}
    assert {key for node in restored["node_stats"] for key in node} == node_keys
    assert {key for node in member["node_stats"] for key in node} == node_keys
    assert sum(node["bytes"] for node in member["node_stats"]) == member["bytes_fetched"]
    by_index = check(
        "download",
        snapshot["root"],
        "--index",
        snapshot["index"]["root"],
        "--path",
        "app.toml",
        "-o",
        str(tmp_path / "app.toml"),
    )
    assert sum(node["bytes"] for node in by_index["node_stats"]) == by_index["bytes_fetched"]
    check("verify", "--all")
    check("backup prune", "--keep-last", "1", "--dry-run")
    check("backup unverified", "--max-age", "24h")
    check("backup show", "999", code=7)
    _check_the_rest(check, tmp_path)
    check("ledger path")
    check("ledger status")
    check("ledger migrate")
    check("ledger backup", str(tmp_path / "ledger-copy.db"))
    check("ledger copy", "--to", f"sqlite://{tmp_path / 'ledger-moved.db'}")
    rows = check(
        "ledger sql", "SELECT name, X'00ff' AS blob, 0.5 AS ratio, NULL AS missing FROM namespaces"
    )
    assert rows["rows"] == [{"name": "backups", "blob": "0x00ff", "ratio": 0.5, "missing": None}]

    check.document("metrics serve", _first_document("metrics", "serve", "--port", "0", "--json"))
    _check_inference(check, net, monkeypatch)
    monkeypatch.setenv("ENCRYPTION_KEY", "3c" * 32)
    rebuilt = check("ledger rebuild", "--from-chain", "--dry-run")
    assert rebuilt["dry_run"] is True and rebuilt["objects"] is None

    assert set(_declared()) - check.covered == set(), "commands with a schema this test never ran"


def _check_inference(check: Checker, net: DevnetProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paid inference, Direct and through the Router, then a fresh wallet's funding steps."""
    answered = check("infer ask", "What is 0G?", "--max-tokens", "64")
    assert answered["backend"] == "direct" and answered["cost"]["0g"]
    estimate = check("infer ask", "How much would this cost?", "--estimate")
    providers = check("infer providers", "--model", DEVNET_MODEL)
    models = check("infer models")
    token_prices = {"input", "output", "input_0g_per_million", "output_0g_per_million"}
    assert set(providers["providers"][0]["prices"]) == set(models["models"][0]["prices"])
    assert set(estimate["prices"]) == token_prices | {"source", "cache_divisor"}
    assert set(models["models"][0]["prices"]) == token_prices
    check("infer account")
    verified = check("infer ask", "Is this signed?", "--max-tokens", "32", "--verify-response")
    assert verified["verification"]["by"] == "direct"
    assert verified["verification"]["status"] == "verified"
    router_key = check("devnet router-key")
    monkeypatch.setenv("ZEROG_ROUTER_API_KEY", router_key["key"])
    routed = check("infer ask", "Hello", "--via", "router", "--verify-tee", "--max-tokens", "32")
    assert routed["verification"] == {"by": "router", "status": "ok", "tee_verified": True}
    assert set(routed["cost"]) == {"neuron", "0g", "usd_micro"}
    check("infer log", "-n", "5")
    key = "0x" + compute.keccak256(b"zerog json contract wallet").hex()
    assert send_transaction(net.rpc_url, to=compute.address_of(key), value=20 * ZG)["status"]
    monkeypatch.setenv("ZEROG_COMPUTE_PRIVATE_KEY", key)
    check("infer fund deposit", "5", "--yes")
    check("infer fund transfer", PROVIDER_ADDRESS, "2", "--yes")
    already = check("infer fund acknowledge", PROVIDER_ADDRESS)
    assert already["already"] is True and already["tx_hash"] is None
    check("infer fund retrieve", PROVIDER_ADDRESS, "--yes")
    refunded = check("infer fund refund", "all", "--yes")
    assert refunded["amount"]["0g"] == "3"


def _check_the_rest(check: Checker, tmp_path: Path) -> None:
    """Configuration, secrets, signatures, hashing, metrics, completion and the devnet."""
    check("init")
    shown = check("config show")
    assert {type(setting["value"]) for setting in shown["settings"].values()} == {
        str,
        int,
        bool,
        type(None),
    }
    assert check("config get", "http_max_tries")["value"] == 4
    assert check("config set", "http_max_tries", "6")["value"] == 6
    check("secrets set", "JWT_SECRET", "--stdin", stdin="not-a-real-secret\n")
    check("secrets ls")
    check("secrets doctor")
    check("secrets rm", "JWT_SECRET")
    check("auth address")
    message = "deploy build 7\nNonce: 8f3a91c2"
    signed = check("auth sign", message)
    check("auth verify", message, signed["signature"], "--scope", "deploys")
    typed = tmp_path / "order.json"
    typed.write_text(json.dumps(TYPED_ORDER))
    typed_signed = check("auth sign-typed", str(typed), "--allow-chain-id", "1")
    assert typed_signed["domain"] == {
        "name": "zerog-test",
        "version": None,
        "chainId": 1,
        "verifyingContract": None,
    }
    check("auth verify-typed", str(typed), typed_signed["signature"], "--scope", "orders")
    check("hash", str(tmp_path / "db.dump"))
    check("metrics show")
    check("completion", "bash")
    data_dir = tmp_path / "second-devnet"
    started = check("devnet up", "--detach", "--port", "0", "--data-dir", str(data_dir))
    try:
        shown = check("devnet status", "--data-dir", str(data_dir))
        assert shown["devnet"] == started["devnet"]
        assert shown["health"]["pid"] == started["devnet"]["pid"]
        assert shown["health"]["nodes"] == len(started["devnet"]["node_urls"])
        check("devnet faults", "--latency-ms", "1", "--data-dir", str(data_dir))
        created = check("devnet router-key", "--data-dir", str(data_dir))
        check("devnet router-key", "--revoke", created["id"], "--data-dir", str(data_dir))
    finally:
        check("devnet down", "--data-dir", str(data_dir))
    check("devnet status", "--data-dir", str(data_dir), code=6)


TYPED_ORDER = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "chainId", "type": "uint256"},
        ],
        "Order": [{"name": "nonce", "type": "string"}, {"name": "item", "type": "string"}],
    },
    "primaryType": "Order",
    "domain": {"name": "zerog-test", "chainId": 1},
    "message": {"nonce": "n-1", "item": "lamp"},
}


def _first_document(*args: str) -> dict[str, Any]:
    """The JSON document a long-running command prints once it is ready; then SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "zerog_cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline()]
        while lines[-1] not in ("}\n", ""):
            lines.append(process.stdout.readline())
        document: dict[str, Any] = json.loads("".join(lines))
        return document
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
