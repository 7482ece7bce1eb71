"""`zerog infer` through the devnet's 0G Router (zerog_cli.devnet.router), end to end.

The Router serves ``devnet-echo-1`` from the ``format-a`` provider (50e9 / 100e9
neuron per token) and the ``delayed`` one (55e9 / 110e9), and
``devnet-reasoner-1`` (streams ``reasoning_content``) from ``format-b``. Its
charge for each request is in ``/router/devnet/stats``, so every cost row can
be compared with what the Router billed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Result
from tests.devnet_harness import NO_PROXY, DevnetProcess, start_devnet
from tests.reliability.conftest import collect, exit_problems, ledger_problems, spawn
from zerog_cli.devnet.provider_kinds import DELAYED, FORMAT_A, FORMAT_B

pytestmark = pytest.mark.devnet(nodes=1)

ZG = 10**18
VAULT = 100 * ZG


def control(net: DevnetProcess, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(
        method, f"{net.base_url}/router/devnet{path}", json=body, timeout=10, proxies=NO_PROXY
    )
    response.raise_for_status()
    return response.json()


def provider_settings(net: DevnetProcess, prefix: str, **changes: Any) -> None:
    response = requests.post(
        f"{net.base_url}{prefix}/devnet/settings", json=changes, timeout=10, proxies=NO_PROXY
    )
    response.raise_for_status()


def chat_requests(net: DevnetProcess) -> int:
    return int(control(net, "GET", "/stats")["chat_requests"])


def charges(net: DevnetProcess) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = control(net, "GET", "/stats")["charges"]
    return result


def rows(ledger: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    with sqlite3.connect(ledger) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]


@pytest.fixture
def cli(
    zerog: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """The in-process CLI on the devnet with a fresh Router key and a funded Router account."""
    monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
    for kind in (FORMAT_A, DELAYED, FORMAT_B):
        provider_settings(
            net, kind.prefix, fail_status=None, fail_count=-1, tamper_signatures=False
        )
    control(net, "POST", "/settings", {"rate_limit_next": 0, "retry_after": 1})
    control(net, "POST", "/account", {"vault": str(VAULT), "deposit": "0", "pending": "0"})
    net.clear_faults()
    created = zerog("devnet", "router-key", "--json")
    assert created.exit_code == 0, created
    monkeypatch.setenv("ZEROG_ROUTER_API_KEY", created.json["key"])
    return zerog


def test_one_shot_json_is_charged_as_the_router_charged(
    cli: Callable[..., Result], net: DevnetProcess, zerog_home: Path
) -> None:
    result = cli(
        "infer",
        "Hello router",
        "--system",
        "Be brief",
        "--max-tokens",
        "50",
        "--temperature",
        "0.5",
        "--no-stream",
        "--json",
    )
    assert result.exit_code == 0, result
    report = result.json
    assert report["backend"] == "router"
    assert report["answer"] == "You said: Hello router"
    assert report["provider"] in (FORMAT_A.address, DELAYED.address)
    charge = charges(net)[-1]
    assert charge["chat_id"] == report["chat_id"]
    assert report["cost"]["neuron"] == charge["total_cost"]
    ledger = zerog_home / "ledger.db"
    cost = rows(ledger, "SELECT * FROM cost_tracking WHERE reference = ?", report["chat_id"])
    assert len(cost) == 1
    assert cost[0]["neuron"] == charge["total_cost"]
    assert (cost[0]["backend"], cost[0]["model"], cost[0]["provider"]) == (
        "router",
        "devnet-echo-1",
        charge["provider"],
    )
    logged = cli("infer", "log", "-n", "1", "--json").json["entries"][0]
    assert (logged["backend"], logged["provider"], logged["system"]) == (
        "router",
        charge["provider"],
        "Be brief",
    )
    by_backend = cli("quota", "report", "--by", "backend", "--json").json
    assert [group["key"] for group in by_backend["groups"]] == ["router"]


def test_stream_prints_the_answer_and_keeps_the_reasoning(
    cli: Callable[..., Result], net: DevnetProcess
) -> None:
    streamed = cli("infer", "think first", "--model", "devnet-reasoner-1", "--stream")
    assert streamed.exit_code == 0, streamed
    assert streamed.stdout.strip() == "You said: think first"
    as_json = cli("infer", "think again", "--model", "devnet-reasoner-1", "--stream", "--json")
    assert as_json.exit_code == 0, as_json
    report = as_json.json
    assert report["stream"] is True
    assert report["reasoning"] == "Thinking about: You said: think again"
    assert report["provider"] == FORMAT_B.address
    assert report["cost"]["neuron"] == charges(net)[-1]["total_cost"]


def test_estimate_prices_from_the_router_and_sends_nothing(
    cli: Callable[..., Result], net: DevnetProcess
) -> None:
    before = chat_requests(net)
    estimate = cli("infer", "how much?", "--max-tokens", "100", "--estimate", "--json")
    assert estimate.exit_code == 0, estimate
    report = estimate.json
    assert (report["backend"], report["model"]) == ("router", "devnet-echo-1")
    bound = report["prompt_tokens"] * DELAYED.input_price + 100 * DELAYED.output_price
    assert report["cost_upper_bound"]["neuron"] == str(bound)
    assert chat_requests(net) == before
    wrong = cli("infer", "signed?", "--verify-response", "--no-stream")
    assert wrong.exit_code == 2, wrong
    assert "--verify-tee" in wrong.stderr


def test_budget_refusal_sends_nothing_to_the_router(
    cli: Callable[..., Result], net: DevnetProcess
) -> None:
    assert cli("quota", "set", "tight", "--tokens", "100").exit_code == 0
    before = chat_requests(net)
    refused = cli("infer", "too long", "--as", "tight", "--max-tokens", "500", "--no-stream")
    assert refused.exit_code == 4, refused
    assert "quota exceeded" in refused.stderr
    assert chat_requests(net) == before


def test_402_is_exit_4_naming_the_deposit(cli: Callable[..., Result], net: DevnetProcess) -> None:
    control(net, "POST", "/account", {"vault": "0", "deposit": "0", "pending": "0"})
    refused = cli("infer", "no money", "--no-stream")
    assert refused.exit_code == 4, refused
    assert "insufficient_balance" in refused.stderr
    assert "Payment Layer" in refused.stderr
    status = cli("quota", "show", "--json").json
    assert status["limits"]["tokens"]["reserved"] == 0


def test_revoked_key_is_exit_8_naming_the_secret(
    cli: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = cli("devnet", "router-key", "--json").json
    monkeypatch.setenv("ZEROG_ROUTER_API_KEY", created["key"])
    assert cli("devnet", "router-key", "--revoke", created["id"]).exit_code == 0
    refused = cli("infer", "revoked?", "--no-stream")
    assert refused.exit_code == 8, refused
    assert "api_key_revoked" in refused.stderr
    assert "ZEROG_ROUTER_API_KEY" in refused.stderr
    assert created["key"] not in refused.stderr + refused.stdout
    doctor = cli("secrets", "doctor", "--json")
    assert doctor.exit_code == 8, doctor
    assert any("ZEROG_ROUTER_API_KEY" in problem for problem in doctor.json["problems"])


def test_429_is_retried_after_retry_after(cli: Callable[..., Result], net: DevnetProcess) -> None:
    control(net, "POST", "/settings", {"rate_limit_next": 1, "retry_after": 1})
    before = chat_requests(net)
    result = cli("infer", "rate limited once", "--no-stream", "--json", "-v")
    assert result.exit_code == 0, result
    assert chat_requests(net) == before + 2
    assert "429" in result.stderr, result


def test_failover_when_one_provider_fails(cli: Callable[..., Result], net: DevnetProcess) -> None:
    provider_settings(net, FORMAT_A.prefix, fail_status=500, fail_count=-1)
    served = {
        cli("infer", f"fail over {i}", "--no-stream", "--json").json["provider"] for i in (1, 2)
    }
    assert served == {DELAYED.address}
    cheapest = cli("infer", "cheapest", "--sort", "price", "--no-stream", "--json")
    assert cheapest.json["provider"] == DELAYED.address


def test_sort_price_picks_the_cheapest(cli: Callable[..., Result]) -> None:
    for _ in range(2):
        result = cli("infer", "cheap please", "--sort", "price", "--no-stream", "--json")
        assert result.exit_code == 0, result
        assert result.json["provider"] == FORMAT_A.address


def test_pinning_and_no_fallbacks(
    cli: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = cli("infer", "pinned", "--provider", DELAYED.address, "--no-stream", "--json")
    assert pinned.exit_code == 0, pinned
    assert pinned.json["provider"] == DELAYED.address
    provider_settings(net, FORMAT_A.prefix, fail_status=500, fail_count=-1)
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "1")
    failed = cli("infer", "pinned down", "--provider", FORMAT_A.address, "--no-stream")
    assert failed.exit_code == 6, failed
    assert "502" in failed.stderr
    no_fallback = cli("infer", "only one", "--sort", "price", "--no-fallbacks", "--no-stream")
    assert no_fallback.exit_code == 6, no_fallback


def test_verify_tee_records_the_routers_verdict(
    cli: Callable[..., Result], net: DevnetProcess, zerog_home: Path
) -> None:
    good = cli("infer", "check me", "--verify-tee", "--no-stream", "--json")
    assert good.exit_code == 0, good
    assert good.json["verified"] is True
    provider_settings(net, DELAYED.prefix, tamper_signatures=True)
    bad = cli("infer", "tampered", "--verify-tee", "--provider", DELAYED.address, "--no-stream")
    assert bad.exit_code == 3, bad
    assert "did not verify" in bad.stderr
    logged = rows(
        zerog_home / "ledger.db",
        "SELECT status, verified, backend FROM inference_log ORDER BY id DESC LIMIT 1",
    )[0]
    assert logged == {"status": "mismatch", "verified": 0, "backend": "router"}


def test_account_and_models(cli: Callable[..., Result], net: DevnetProcess) -> None:
    models = cli("infer", "models", "--json").json["models"]
    echo = next(model for model in models if model["id"] == "devnet-echo-1")
    assert echo["prices"]["input"] == str(DELAYED.input_price)
    assert echo["prices"]["input_0g_per_million"] == "0.055"
    assert echo["context_length"] == 32_768
    account = cli("infer", "account", "--json").json
    assert account["router"]["vault"]["neuron"] == str(VAULT)
    assert account["router"]["owed_to_router"] is None
    assert account["sub_accounts"] is not None
    control(net, "POST", "/account", {"vault": "0", "deposit": "0", "pending": str(ZG)})
    owing = cli("infer", "account")
    assert owing.exit_code == 0, owing
    assert "owed to Router: 1 0G" in owing.stdout


def test_backend_selection(cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    direct = cli("infer", "direct please", "--via", "direct", "--no-stream", "--json")
    assert direct.exit_code == 0, direct
    assert direct.json["backend"] == "direct"
    misuse = cli("infer", "sorted direct", "--via", "direct", "--sort", "price")
    assert misuse.exit_code == 2, misuse
    assert cli("config", "set", "compute_provider", FORMAT_A.address).exit_code == 0
    configured = cli("infer", "named provider", "--no-stream", "--json")
    assert configured.json["backend"] == "direct"
    monkeypatch.delenv("ZEROG_ROUTER_API_KEY")
    keyless = cli("infer", "no key", "--no-stream", "--json")
    assert keyless.json["backend"] == "direct"


def test_devnet_faults_reach_the_router(
    cli: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "1")
    net.set_faults(fail_rate=1.0, fail_mode="http", targets=["router"])
    try:
        failed = cli("infer", "through faults", "--no-stream")
    finally:
        net.clear_faults()
    assert failed.exit_code == 6, failed


RACERS = 8
RACE_MAX_TOKENS = 1000
RACE_TOKEN_LIMIT = 2_500
"""A request reserves its prompt + 1000 tokens: two fit at a time, never three."""


def test_eight_processes_share_one_budget_over_the_router(
    tmp_path: Path,
    zerog: Callable[..., Result],
    zerog_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with start_devnet(tmp_path / "devnet", nodes=1) as net:
        monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
        monkeypatch.setenv("ZEROG_ROUTER_API_KEY", control(net, "POST", "/keys")["key"])
        assert zerog("quota", "set", "racer", "--tokens", str(RACE_TOKEN_LIMIT)).exit_code == 0
        before = chat_requests(net)
        started = time.monotonic()
        args_list = [
            (
                "infer",
                f"race {i}",
                "--as",
                "racer",
                "--max-tokens",
                str(RACE_MAX_TOKENS),
                "--no-stream",
                "--json",
            )
            for i in range(RACERS)
        ]
        processes = [(args, spawn(*args)) for args in args_list]
        runs = [collect(process, args, started, 180.0) for args, process in processes]
        ok = [run for run in runs if run.exit_code == 0]
        problems = [problem for run in runs for problem in exit_problems(run, frozenset({4}))]
        assert not problems, problems
        ledger = zerog_home / "ledger.db"
        quota = rows(ledger, "SELECT * FROM user_quotas WHERE user = 'racer'")[0]
        cost = rows(
            ledger,
            "SELECT COUNT(*) AS n, SUM(quantity) AS tokens FROM cost_tracking WHERE user = 'racer'",
        )[0]
        assert quota["tokens_used"] <= RACE_TOKEN_LIMIT
        assert quota["tokens_used"] == (cost["tokens"] or 0)
        assert cost["n"] == len(ok) >= 2
        assert chat_requests(net) - before == len(ok)
        billed = {charge["chat_id"]: charge["total_cost"] for charge in charges(net)}
        recorded = rows(ledger, "SELECT reference, neuron FROM cost_tracking WHERE user = 'racer'")
        assert {row["reference"]: row["neuron"] for row in recorded} == billed
        assert not ledger_problems(ledger)
