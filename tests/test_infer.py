"""`zerog infer` end to end through the CLI, against one devnet (its provider at /provider).

The devnet's model is deterministic (zerog_cli.devnet.provider): the answer is
"You said: " + the last user message, tokens are ceil(UTF-8 bytes / 4), and
the fee is prompt x 50e9 + completion x 100e9 neuron. So every number the
client records can be checked exactly against what the provider billed.
"""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Result
from tests.devnet_harness import NO_PROXY, DevnetProcess, send_transaction
from zerog_cli.devnet.compute import (
    DEVNET_MODEL,
    INPUT_PRICE,
    OUTPUT_PRICE,
    PROVIDER_ADDRESS,
    UNFUNDED_ACCOUNT_ADDRESS,
    UNFUNDED_ACCOUNT_KEY,
)
from zerog_cli.devnet.constants import DEV_ACCOUNT_ADDRESS
from zerog_cli.devnet.provider import count_tokens
from zerog_cli.zerog import compute

pytestmark = pytest.mark.devnet(nodes=1)

ZG = 10**18
USD_MICRO_PER_1K = 20_000


def provider_settings(net: DevnetProcess, **changes: Any) -> dict[str, Any]:
    response = requests.post(
        f"{net.provider_url}/devnet/settings", json=changes, timeout=10, proxies=NO_PROXY
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def provider_stats(net: DevnetProcess) -> dict[str, Any]:
    response = requests.get(f"{net.provider_url}/devnet/stats", timeout=10, proxies=NO_PROXY)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def unsettled(net: DevnetProcess, address: str) -> int:
    return int(provider_stats(net)["unsettled"].get(address.lower(), "0"))


@pytest.fixture
def cli(
    zerog: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
    provider_settings(
        net, tamper_signatures=False, fail_status=None, fail_count=-1, retry_after=None
    )
    return zerog


def rows(ledger: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    with sqlite3.connect(ledger) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]


def expected_usage(
    prompt: str, system: str | None = None, max_tokens: int = 1024
) -> tuple[int, int]:
    answer = ("You said: " + prompt).encode()[: 4 * max_tokens].decode(errors="ignore")
    prompt_tokens = count_tokens(prompt) + (count_tokens(system) if system else 0)
    return prompt_tokens, count_tokens(answer)


def fee_of(prompt_tokens: int, completion_tokens: int) -> int:
    return prompt_tokens * INPUT_PRICE + completion_tokens * OUTPUT_PRICE


def usd_of(tokens: int) -> int:
    return -(-tokens * USD_MICRO_PER_1K // 1000)


# --- asking ----------------------------------------------------------------------------------


def test_one_shot_prints_the_answer_and_a_summary(cli, zerog_home: Path) -> None:
    result = cli("infer", "Hello there, devnet!")
    assert result.exit_code == 0, result
    assert result.stdout == "You said: Hello there, devnet!\n"
    assert "devnet-echo-1 via 0x7099…79C8 · 5+8 tokens" in result.stderr
    assert "signature verified" in result.stderr
    logged = rows(zerog_home / "ledger.db", "SELECT * FROM inference_log")
    assert len(logged) == 1
    assert logged[0]["status"] == "ok"
    assert logged[0]["verified"] == 1
    assert logged[0]["response"] == "You said: Hello there, devnet!"
    assert logged[0]["stream"] == 0


def test_explicit_ask_and_stdin_prompt(cli) -> None:
    assert cli("infer", "ask", "log").stdout == "You said: log\n"
    piped = cli("infer", "-", "--no-stream", stdin="from a pipe\n")
    assert piped.exit_code == 0, piped
    assert piped.stdout == "You said: from a pipe\n"


def test_json_is_one_document_with_everything(cli) -> None:
    result = cli("infer", "What is 0G?", "--system", "Be brief.", "--max-tokens", "64", "--json")
    assert result.exit_code == 0, result
    report = result.json
    prompt_tokens, completion_tokens = expected_usage("What is 0G?", "Be brief.")
    assert report["answer"] == "You said: What is 0G?"
    assert report["model"] == DEVNET_MODEL
    assert report["provider"] == PROVIDER_ADDRESS
    assert report["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    fee = fee_of(prompt_tokens, completion_tokens)
    assert report["cost"]["neuron"] == str(fee)
    assert compute.parse_0g(report["cost"]["0g"]) == fee
    assert report["cost"]["usd_micro"] == usd_of(prompt_tokens + completion_tokens)
    assert report["chat_id"].startswith("chatcmpl-")
    assert report["verified"] is True
    assert report["verification"]["bound_to_bytes"] is True
    assert report["finish_reason"] == "stop"


def test_streaming_prints_the_answer_and_records_usage(cli, zerog_home: Path) -> None:
    result = cli("infer", "stream this answer please", "--stream")
    assert result.exit_code == 0, result
    assert result.stdout == "You said: stream this answer please\n"
    prompt_tokens, completion_tokens = expected_usage("stream this answer please")
    assert f"{prompt_tokens}+{completion_tokens} tokens" in result.stderr
    (logged,) = rows(zerog_home / "ledger.db", "SELECT * FROM inference_log")
    assert logged["stream"] == 1
    assert logged["response"] == "You said: stream this answer please"
    assert (logged["prompt_tokens"], logged["completion_tokens"]) == (
        prompt_tokens,
        completion_tokens,
    )
    assert logged["verified"] == 1
    as_json = cli("infer", "streamed json", "--stream", "--json").json
    assert as_json["stream"] is True
    assert as_json["answer"] == "You said: streamed json"
    assert as_json["usage"]["completion_tokens"] == count_tokens("You said: streamed json")
    assert as_json["verification"]["status"] == "verified"


def test_max_tokens_truncates_and_is_billed_as_served(cli) -> None:
    report = cli("infer", "a rather long prompt here", "--max-tokens", "2", "--json").json
    assert report["answer"] == "You said"
    assert report["finish_reason"] == "length"
    assert report["usage"]["completion_tokens"] == 2


# --- money: budget, balance, records -------------------------------------------------------


def test_token_budget_refusal_sends_nothing(cli, net: DevnetProcess, zerog_home: Path) -> None:
    assert cli("quota", "set", "bob", "--tokens", "500").exit_code == 0
    before = provider_stats(net)["chat_requests"]
    refused = cli("infer", "hello", "--as", "bob")
    assert refused.exit_code == 4, refused
    assert "quota exceeded for bob" in refused.stderr
    assert "tokens" in refused.stderr
    assert provider_stats(net)["chat_requests"] == before
    ledger = zerog_home / "ledger.db"
    assert rows(ledger, "SELECT * FROM inference_log") == []
    assert rows(ledger, "SELECT tokens_used FROM user_quotas WHERE user = 'bob'") == [
        {"tokens_used": 0}
    ]
    assert rows(ledger, "SELECT * FROM quota_reservations") == []
    fits = cli("infer", "hello", "--as", "bob", "--max-tokens", "100")
    assert fits.exit_code == 0, fits


def test_usd_budget_refusal_sends_nothing(cli, net: DevnetProcess) -> None:
    assert cli("quota", "set", "cat", "--monthly-usd", "0.001").exit_code == 0
    before = provider_stats(net)["chat_requests"]
    refused = cli("infer", "hello", "--as", "cat", "--max-tokens", "100")
    assert refused.exit_code == 4, refused
    assert "monthly budget" in refused.stderr
    assert provider_stats(net)["chat_requests"] == before


def test_insufficient_balance_is_refused_before_sending(
    cli, net: DevnetProcess, monkeypatch: pytest.MonkeyPatch, zerog_home: Path
) -> None:
    monkeypatch.setenv("ZEROG_COMPUTE_PRIVATE_KEY", UNFUNDED_ACCOUNT_KEY)
    before = provider_stats(net)["chat_requests"]
    refused = cli("infer", "hello")
    assert refused.exit_code == 4, refused
    assert UNFUNDED_ACCOUNT_ADDRESS in refused.stderr
    assert "zerog infer fund deposit 3" in refused.stderr
    assert provider_stats(net)["chat_requests"] == before
    assert rows(zerog_home / "ledger.db", "SELECT * FROM inference_log") == []
    assert UNFUNDED_ACCOUNT_KEY[2:] not in refused.stdout + refused.stderr


def test_log_quota_and_cost_rows_match_the_providers_usage(
    cli, net: DevnetProcess, zerog_home: Path
) -> None:
    billed_before = unsettled(net, DEV_ACCOUNT_ADDRESS)
    asks = [
        ("First question for the ledger", None, []),
        ("Second one, streamed", None, ["--stream"]),
        ("Third, with a system prompt", "You are terse.", ["--max-tokens", "5"]),
    ]
    for prompt, system, extra in asks:
        args = ["infer", prompt, "--as", "dana", *extra]
        if system:
            args += ["--system", system]
        assert cli(*args).exit_code == 0
    ledger = zerog_home / "ledger.db"
    logged = rows(ledger, "SELECT * FROM inference_log WHERE user = 'dana' ORDER BY id")
    costs = rows(ledger, "SELECT * FROM cost_tracking WHERE user = 'dana' ORDER BY id")
    assert len(logged) == len(costs) == 3
    total_tokens = total_usd = total_fee = 0
    for (prompt, system, extra), row, cost in zip(asks, logged, costs, strict=True):
        max_tokens = int(extra[1]) if extra[:1] == ["--max-tokens"] else 1024
        prompt_tokens, completion_tokens = expected_usage(prompt, system, max_tokens)
        fee = fee_of(prompt_tokens, completion_tokens)
        tokens = prompt_tokens + completion_tokens
        assert (row["prompt_tokens"], row["completion_tokens"]) == (
            prompt_tokens,
            completion_tokens,
        )
        assert row["cost_neuron"] == str(fee)
        assert row["usd_micro"] == usd_of(tokens)
        assert row["prompt"] == prompt and row["system"] == system
        assert row["model"] == DEVNET_MODEL and row["provider"] == PROVIDER_ADDRESS
        assert row["wallet"] == DEV_ACCOUNT_ADDRESS
        assert cost["service"] == "compute" and cost["unit"] == "tokens"
        assert cost["quantity"] == tokens
        assert cost["neuron"] == str(fee)
        assert cost["usd_micro"] == usd_of(tokens)
        assert cost["reference"] == row["chat_id"]
        total_tokens += tokens
        total_usd += usd_of(tokens)
        total_fee += fee
    (quota,) = rows(ledger, "SELECT * FROM user_quotas WHERE user = 'dana'")
    assert quota["tokens_used"] == total_tokens
    assert quota["monthly_usd_used_micro"] == total_usd
    assert unsettled(net, DEV_ACCOUNT_ADDRESS) - billed_before == total_fee
    assert rows(ledger, "SELECT * FROM quota_reservations") == []


def test_estimate_sends_and_records_nothing(cli, net: DevnetProcess, zerog_home: Path) -> None:
    before = provider_stats(net)["chat_requests"]
    result = cli(
        "infer", "How much would this cost?", "--max-tokens", "100", "--json", "--estimate"
    )
    assert result.exit_code == 0, result
    report = result.json
    prompt_tokens = count_tokens("How much would this cost?")
    assert report["estimate"] is True
    assert report["prompt_tokens"] == prompt_tokens
    assert report["tokens_upper_bound"] == prompt_tokens + 100
    assert report["cost_upper_bound"]["neuron"] == str(fee_of(prompt_tokens, 100))
    assert report["cost_upper_bound"]["usd_micro"] == usd_of(prompt_tokens + 100)
    assert report["fits_balance"] is True and report["fits_budget"] is True
    human = cli("infer", "How much would this cost?", "--estimate")
    assert "upper bound:" in human.stdout
    assert "nothing was sent" in human.stderr
    assert provider_stats(net)["chat_requests"] == before
    assert rows(zerog_home / "ledger.db", "SELECT * FROM inference_log") == []
    assert rows(zerog_home / "ledger.db", "SELECT * FROM cost_tracking") == []


def test_estimate_reports_what_would_be_refused(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("quota", "set", "eve", "--tokens", "10")
    report = cli("infer", "hi", "--as", "eve", "--estimate", "--json").json
    assert report["fits_budget"] is False
    assert "tokens" in report["budget_problem"]
    monkeypatch.setenv("ZEROG_COMPUTE_PRIVATE_KEY", UNFUNDED_ACCOUNT_KEY)
    report = cli("infer", "hi", "--estimate", "--json").json
    assert report["fits_balance"] is False
    assert "no 0G compute ledger" in report["balance_problem"]


# --- failures: provider errors, breaker, signatures -----------------------------------------


def test_provider_5xx_is_retried_then_the_breaker_opens(
    cli, net: DevnetProcess, monkeypatch: pytest.MonkeyPatch, zerog_home: Path
) -> None:
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "3")
    monkeypatch.setenv("ZEROG_BREAKER_FAIL_MAX", "2")
    monkeypatch.setenv("ZEROG_BREAKER_RESET_TIMEOUT", "60")
    provider_settings(net, fail_status=503, fail_count=-1, retry_after=0)
    start = provider_stats(net)["chat_requests"]
    first = cli("infer", "are you there?")
    assert first.exit_code == 6, first
    assert "after 3 attempts: HTTP 503" in first.stderr
    assert provider_stats(net)["chat_requests"] == start + 3
    second = cli("infer", "are you there?")
    assert second.exit_code == 6
    assert provider_stats(net)["chat_requests"] == start + 6
    fast = cli("infer", "are you there?")
    assert fast.exit_code == 6
    assert "circuit breaker open" in fast.stderr
    assert provider_stats(net)["chat_requests"] == start + 6
    ledger = zerog_home / "ledger.db"
    logged = rows(ledger, "SELECT status, error, prompt_tokens FROM inference_log")
    assert [row["status"] for row in logged] == ["error", "error", "error"]
    assert all(row["prompt_tokens"] is None for row in logged)
    assert rows(ledger, "SELECT * FROM cost_tracking") == []
    assert rows(ledger, "SELECT * FROM quota_reservations") == []
    assert rows(ledger, "SELECT tokens_used FROM user_quotas")[0]["tokens_used"] == 0


def test_a_400_is_not_retried(cli, net: DevnetProcess) -> None:
    provider_settings(net, fail_status=400, fail_count=1)
    start = provider_stats(net)["chat_requests"]
    result = cli("infer", "once only")
    assert result.exit_code == 6, result
    assert "HTTP 400" in result.stderr
    assert provider_stats(net)["chat_requests"] == start + 1


def test_429_waits_for_retry_after_then_succeeds(cli, net: DevnetProcess) -> None:
    provider_settings(net, fail_status=429, fail_count=1, retry_after=0)
    start = provider_stats(net)["chat_requests"]
    result = cli("infer", "after a rate limit")
    assert result.exit_code == 0, result
    assert provider_stats(net)["chat_requests"] == start + 2


@pytest.mark.parametrize("mode", ["--no-stream", "--stream"])
def test_tampered_signature_is_exit_3_and_recorded(
    cli, net: DevnetProcess, zerog_home: Path, mode: str
) -> None:
    provider_settings(net, tamper_signatures=True)
    result = cli("infer", "can you be trusted?", mode, "--as", "fred")
    assert result.exit_code == 3, result
    assert "response signature check failed" in result.stderr
    if mode == "--no-stream":
        assert result.stdout == ""
    ledger = zerog_home / "ledger.db"
    (logged,) = rows(ledger, "SELECT * FROM inference_log WHERE user = 'fred'")
    assert logged["status"] == "mismatch"
    assert logged["verified"] == 0
    assert "expected 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC" in logged["verification"]
    prompt_tokens, completion_tokens = expected_usage("can you be trusted?")
    assert logged["prompt_tokens"] == prompt_tokens
    # The provider served and billed the answer, so the quota is charged all the same.
    (quota,) = rows(ledger, "SELECT tokens_used FROM user_quotas WHERE user = 'fred'")
    assert quota["tokens_used"] == prompt_tokens + completion_tokens
    skipped = cli("infer", "can you be trusted?", "--no-verify-response", "--json")
    assert skipped.exit_code == 0
    assert skipped.json["verified"] is None


def test_verify_response_never_skips_the_check(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROG_VERIFY_RESPONSE", "never")
    report = cli("infer", "no check", "--json").json
    assert report["verified"] is None and report["verification"] is None
    forced = cli("infer", "check anyway", "--verify-response", "--json").json
    assert forced["verified"] is True


def test_a_rejected_cached_token_is_resigned_once(cli, zerog_home: Path) -> None:
    assert cli("infer", "make a token").exit_code == 0
    cache = zerog_home / "compute-tokens.json"
    document = json.loads(cache.read_text())
    (key,) = document["tokens"]
    original = document["tokens"][key]["authorization"]
    document["tokens"][key]["authorization"] = "Bearer app-sk-bm90IGEgdG9rZW4="
    cache.write_text(json.dumps(document))
    result = cli("infer", "with a broken token")
    assert result.exit_code == 0, result
    renewed = json.loads(cache.read_text())["tokens"][key]["authorization"]
    assert renewed.startswith("Bearer app-sk-") and renewed != original


# --- the token cache ----------------------------------------------------------------------


def test_tokens_are_cached_privately_reused_and_never_shown(cli, zerog_home: Path) -> None:
    first = cli("infer", "one", "--json")
    cache = zerog_home / "compute-tokens.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    token = json.loads(cache.read_text())["tokens"]
    second = cli("infer", "two", "--json")
    assert json.loads(cache.read_text())["tokens"] == token
    (entry,) = token.values()
    secret = entry["authorization"].removeprefix("Bearer ")
    outputs = [
        first,
        second,
        cli("infer", "log", "--json"),
        cli("ledger", "sql", "SELECT * FROM inference_log"),
    ]
    for result in outputs:
        assert secret not in result.stdout + result.stderr
    assert secret.encode() not in (zerog_home / "ledger.db").read_bytes()


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["infer", ""], "the prompt is empty"),
        (["infer", "   \n"], "the prompt is empty"),
        (["infer", "hi", "--max-tokens", "-5"], "--max-tokens must be between"),
        (["infer", "hi", "--max-tokens", "0"], "--max-tokens must be between"),
        (["infer", "hi", "--provider", "0x123"], "provider must be a 0x address"),
        (["infer", "hi", "--provider", "not-an-address"], "provider must be a 0x address"),
        (
            ["infer", "hi", "--provider", "0x70997970C51812dc3A010C7d01b50e0d17dc79c8"],
            "bad EIP-55 checksum",
        ),
        (["infer", "hi", "--temperature", "7"], "--temperature must be between"),
        (["infer", "log", "-n", "0"], "-n must be between 1"),
        (["infer", "fund", "deposit", "-1", "--yes"], "No such option: -1"),
        (["infer", "fund", "deposit", "--yes", "--", "-1"], "must not be negative"),
        (["infer", "fund", "deposit", "0", "--yes"], "more than 0"),
        (["infer", "fund", "transfer", "0xdead", "1", "--yes"], "provider must be a 0x address"),
    ],
)
def test_bad_input_is_exit_2_and_sends_nothing(
    cli, net: DevnetProcess, args: list[str], message: str
) -> None:
    before = provider_stats(net)["chat_requests"]
    result = cli(*args)
    assert result.exit_code == 2, result
    assert message in result.stderr
    assert result.stderr.count("error:") == 1
    assert provider_stats(net)["chat_requests"] == before


def test_empty_stdin_prompt_is_exit_2(cli) -> None:
    assert cli("infer", "-", stdin="\n").exit_code == 2


def test_unknown_provider_is_not_found(cli) -> None:
    result = cli("infer", "hi", "--provider", "0x" + "12" * 20)
    assert result.exit_code == 7, result
    assert "no compute service is registered" in result.stderr


def test_missing_key_off_devnet_is_exit_8(zerog) -> None:
    result = zerog("--profile", "testnet", "infer", "hi")
    assert result.exit_code == 8, result
    assert "ZEROG_COMPUTE_PRIVATE_KEY" in result.stderr


# --- discovery, account, funding, log ----------------------------------------------------


def test_providers_pages_past_fifty(cli, net: DevnetProcess) -> None:
    response = requests.post(
        f"{net.provider_url}/devnet/services", json={"count": 60}, timeout=30, proxies=NO_PROXY
    )
    response.raise_for_status()
    listed = cli("infer", "providers", "--json").json["providers"]
    assert len(listed) >= 61
    assert len({row["provider"] for row in listed}) == len(listed)
    echo = cli("infer", "providers", "--model", DEVNET_MODEL, "--json").json["providers"]
    assert [row["provider"] for row in echo] == [PROVIDER_ADDRESS]
    assert echo[0]["prices"]["input"] == str(INPUT_PRICE)
    assert echo[0]["prices"]["output"] == str(OUTPUT_PRICE)
    table = cli("infer", "providers", "--model", DEVNET_MODEL)
    assert PROVIDER_ADDRESS in table.stdout
    # Auto-selection still picks the cheapest service, not a synthetic one.
    assert cli("infer", "who answers?", "--json").json["provider"] == PROVIDER_ADDRESS


def test_account_shows_ledger_and_sub_accounts(cli) -> None:
    report = cli("infer", "account", "--json").json
    assert report["wallet"] == DEV_ACCOUNT_ADDRESS
    assert report["ledger"]["total"]["neuron"] == str(int(report["ledger"]["total"]["neuron"]))
    (sub,) = [s for s in report["sub_accounts"] if s["provider"] == PROVIDER_ADDRESS]
    assert sub["acknowledged"] is True
    balance = int(sub["balance"]["neuron"])
    unsettled_fee = int(sub["unsettled"]["neuron"])
    assert int(sub["spendable"]["neuron"]) == balance - unsettled_fee - ZG
    human = cli("infer", "account")
    assert "sub-accounts" in human.stdout and PROVIDER_ADDRESS in human.stdout


def new_wallet(net: DevnetProcess, name: str, native: int) -> tuple[str, str]:
    key = "0x" + compute.keccak256(f"zerog infer test wallet {name}".encode()).hex()
    address = compute.address_of(key)
    receipt = send_transaction(net.rpc_url, to=address, value=native)
    assert receipt["status"] == "0x1"
    return key, address


def test_funding_flow_deposit_transfer_then_infer(
    cli, net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, address = new_wallet(net, "funding", 20 * ZG)
    monkeypatch.setenv("ZEROG_COMPUTE_PRIVATE_KEY", key)
    assert cli("infer", "account", "--json").json["ledger"] is None

    unconfirmed = cli("infer", "fund", "deposit", "3")
    assert unconfirmed.exit_code == 2
    assert "pass --yes" in unconfirmed.stderr
    assert cli("infer", "account", "--json").json["ledger"] is None
    assert cli("infer", "fund", "deposit", "2", "--yes").exit_code == 2

    deposited = cli("infer", "fund", "deposit", "3", "--yes", "--json")
    assert deposited.exit_code == 0, deposited
    assert deposited.json["ledger"]["total"]["neuron"] == str(3 * ZG)
    more = cli("infer", "fund", "deposit", "0.5", "--yes", "--json").json
    assert more["ledger"]["available"]["0g"] == "3.5"

    no_sub = cli("infer", "hello")
    assert no_sub.exit_code == 4
    assert f"zerog infer fund transfer {PROVIDER_ADDRESS} 1" in no_sub.stderr

    too_much = cli("infer", "fund", "transfer", PROVIDER_ADDRESS, "9", "--yes")
    assert too_much.exit_code == 4
    assert "zerog infer fund deposit 5.5" in too_much.stderr
    assert cli("infer", "fund", "transfer", PROVIDER_ADDRESS, "0.5", "--yes").exit_code == 2

    moved = cli("infer", "fund", "transfer", PROVIDER_ADDRESS, "1", "--yes", "--json")
    assert moved.exit_code == 0, moved
    assert moved.json["sub_account"] == {
        "balance": {"neuron": str(ZG), "0g": "1"},
        "pending_refund": {"neuron": "0", "0g": "0"},
        "acknowledged": True,
    }
    assert moved.json["ledger"]["available"]["0g"] == "2.5"

    short = cli("infer", "hello")
    assert short.exit_code == 4
    assert "short of funds" in short.stderr
    assert f"zerog infer fund transfer {PROVIDER_ADDRESS} 0.0001" in short.stderr

    assert cli("infer", "fund", "transfer", PROVIDER_ADDRESS, "1", "--yes").exit_code == 0
    answered = cli("infer", "hello", "--json")
    assert answered.exit_code == 0, answered
    assert answered.json["answer"] == "You said: hello"
    account = cli("infer", "account", "--json").json
    (sub,) = account["sub_accounts"]
    assert sub["balance"]["0g"] == "2"
    assert int(sub["unsettled"]["neuron"]) == int(answered.json["cost"]["neuron"])
    already = cli("infer", "fund", "acknowledge", PROVIDER_ADDRESS, "--json")
    assert already.exit_code == 0 and already.json["already"] is True
    assert address == account["wallet"]


def test_log_filters_by_user_and_count(cli) -> None:
    cli("infer", "for gus 1", "--as", "gus")
    cli("infer", "for gus 2", "--as", "gus")
    cli("infer", "for hal", "--as", "hal")
    gus = cli("infer", "log", "--as", "gus", "--json").json["entries"]
    assert [row["prompt"] for row in gus] == ["for gus 2", "for gus 1"]
    assert gus[0]["response"] == "You said: for gus 2"
    assert set(gus[0]["cost"]) == {"neuron", "0g", "usd_micro"}
    assert {
        "model",
        "provider",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "chat_id",
        "duration_ms",
        "status",
        "verified",
        "user",
        "created_at",
    } <= set(gus[0])
    assert len(cli("infer", "log", "-n", "1", "--as", "gus", "--json").json["entries"]) == 1
    everyone = cli("infer", "log", "--all", "--json").json["entries"]
    assert {row["user"] for row in everyone} == {"gus", "hal"}
    human = cli("infer", "log", "--as", "hal")
    assert "for hal" in human.stdout and "ok" in human.stdout


def test_log_shows_a_row_without_a_price_as_null_micro_usd_not_zero(cli, zerog_home) -> None:
    priced = cli("infer", "priced", "--json").json["cost"]
    assert priced["usd_micro"] > 0
    ledger = sqlite3.connect(zerog_home / "ledger.db")
    with ledger:
        ledger.execute("UPDATE inference_log SET usd_micro = NULL")
    ledger.close()
    (entry,) = cli("infer", "log", "--json").json["entries"]
    assert entry["cost"] == {"neuron": priced["neuron"], "0g": priced["0g"], "usd_micro": None}
    human = cli("infer", "log")
    assert "priced" in human.stdout and "$" not in human.stdout


def test_help_has_examples_for_every_infer_command(zerog) -> None:
    for args in (
        ["infer"],
        ["infer", "ask"],
        ["infer", "providers"],
        ["infer", "account"],
        ["infer", "log"],
        ["infer", "fund"],
        ["infer", "fund", "deposit"],
        ["infer", "fund", "transfer"],
        ["infer", "fund", "acknowledge"],
    ):
        result = zerog(*args, "--help")
        assert result.exit_code == 0, (args, result)
        assert "Examples:" in result.stdout, args
        assert "$ zerog infer" in result.stdout, args


def test_a_missing_signature_warns_under_auto_and_is_exit_3_when_demanded(
    cli, zerog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = compute.signature_url
    monkeypatch.setattr(
        compute, "signature_url", lambda url, chat_id, model: real(url, "gone", model)
    )
    # 3 s: a second try still fits when the first takes long on a loaded machine.
    monkeypatch.setenv("ZEROG_SIGNATURE_WAIT", "3")
    shown = cli("infer", "sign this", "--json")
    assert shown.exit_code == 0, shown
    assert shown.json["answer"] == "You said: sign this"
    assert shown.json["verified"] is False
    assert shown.json["verification"]["status"] == "unavailable"
    assert shown.json["verification"]["attempts"] >= 2
    assert "signature unavailable after" in shown.stderr
    assert "chat_id_not_found" in shown.stderr
    demanded = cli("infer", "sign this", "--verify-response")
    assert demanded.exit_code == 3, demanded
    assert "response signature not verified" in demanded.stderr
    logged = rows(zerog_home / "ledger.db", "SELECT status, verified FROM inference_log")
    assert logged == [{"status": "unverified", "verified": 0}] * 2


def test_metrics_file_counts_requests_tokens_and_checks(
    cli, zerog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics_file = zerog_home / "zerog.prom"
    monkeypatch.setenv("ZEROG_METRICS_FILE", str(metrics_file))
    assert cli("infer", "count me").exit_code == 0
    text = metrics_file.read_text()
    assert 'zerog_compute_requests_total{model="devnet-echo-1",result="ok"} 1.0' in text
    prompt_tokens, completion_tokens = expected_usage("count me")
    assert f'zerog_compute_tokens_total{{kind="prompt"}} {float(prompt_tokens)}' in text
    assert f'zerog_compute_tokens_total{{kind="completion"}} {float(completion_tokens)}' in text
    assert 'zerog_compute_verifications_total{result="verified"} 1.0' in text


def test_provider_resolution_flag_then_config_then_cheapest_for_the_model(
    cli, net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = requests.post(
        f"{net.provider_url}/devnet/services", json={"count": 1}, timeout=30, proxies=NO_PROXY
    )
    response.raise_for_status()
    synthetic = [
        row
        for row in cli("infer", "providers", "--json").json["providers"]
        if row["model"].startswith("devnet-synthetic-")
    ][-1]
    # Config model: the only service serving it is chosen (and the wallet has no sub-account there).
    monkeypatch.setenv("ZEROG_COMPUTE_MODEL", synthetic["model"])
    refused = cli("infer", "hi")
    assert refused.exit_code == 4, refused
    assert f"no sub-account at provider {synthetic['provider']}" in refused.stderr
    # --model beats the config.
    assert (
        cli("infer", "hi", "--model", DEVNET_MODEL, "--json").json["provider"] == PROVIDER_ADDRESS
    )
    unknown = cli("infer", "hi", "--model", "no-such-model")
    assert unknown.exit_code == 7
    assert "no acknowledged chatbot service serving model 'no-such-model'" in unknown.stderr
    # Config provider beats model selection; the flag beats the config.
    monkeypatch.delenv("ZEROG_COMPUTE_MODEL")
    monkeypatch.setenv("ZEROG_COMPUTE_PROVIDER", synthetic["provider"])
    assert cli("infer", "hi").exit_code == 4
    flagged = cli("infer", "hi", "--provider", PROVIDER_ADDRESS, "--json")
    assert flagged.exit_code == 0, flagged
    assert flagged.json["provider"] == PROVIDER_ADDRESS


def test_a_model_the_provider_does_not_serve_is_a_usage_error_and_costs_nothing(
    cli, zerog_home: Path
) -> None:
    result = cli("infer", "hi", "--provider", PROVIDER_ADDRESS, "--model", "other-model")
    assert result.exit_code == 2, result
    # Refused before sending: the provider's /v1/models does not list it.
    assert "does not serve model 'other-model'" in result.stderr
    assert f"it serves: {DEVNET_MODEL}" in result.stderr
    assert rows(zerog_home / "ledger.db", "SELECT * FROM inference_log") == []
    assert rows(zerog_home / "ledger.db", "SELECT * FROM cost_tracking") == []
