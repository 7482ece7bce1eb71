"""`zerog infer --provider ADDR` against every kind of broker the devnet runs.

Real brokers sign different texts, rewrite the body they forward, sign late,
and bill per model (zerog_cli.devnet.provider_kinds; docs/protocol.md has the
official source lines). Before this, zerog demanded format A over its own
request bytes: a format B or rewriting broker made it pay, then exit 3 and
withhold the answer. Each test runs the real command line (one-shot, stream,
``--json``) and checks what ``--json`` and the ledger say about the binding.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.devnet_harness import DevnetProcess, send_transaction
from zerog_cli.devnet.compute import SERVICE_NAME
from zerog_cli.devnet.constants import LEDGER_MANAGER_ADDRESS
from zerog_cli.devnet.provider import count_tokens
from zerog_cli.devnet.provider_kinds import (
    DELAYED,
    EXTRA_KINDS,
    FORMAT_A,
    FORMAT_B,
    MULTI_LARGE,
    MULTI_MODEL,
    MULTI_SMALL,
    REWRITING,
    UPSTREAM_CERT_FINGERPRINT,
    UPSTREAM_IDENTITY,
)
from zerog_cli.infra.units import format_0g
from zerog_cli.zerog import compute

pytestmark = pytest.mark.devnet(nodes=1)

ZG = 10**18
MULTI_MODEL_FUNDS = 12 * ZG // 10
"""1.2 0G: after the broker's 1 0G reserve, 0.2 0G to spend at the multi-model provider."""


@pytest.fixture(scope="module")
def net(net: DevnetProcess) -> DevnetProcess:
    """The module's devnet with the dev ledger's funds moved to every extra provider kind."""
    for kind in EXTRA_KINDS:
        amount = MULTI_MODEL_FUNDS if kind is MULTI_MODEL else 2 * ZG
        receipt = send_transaction(
            net.rpc_url,
            to=LEDGER_MANAGER_ADDRESS,
            data=compute.encode_transfer_fund(kind.address, SERVICE_NAME, amount),
        )
        assert receipt["status"] == "0x1", receipt
    return net


def logged(home: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.row_factory = sqlite3.Row
        sql = "SELECT status, verified, binding, cost_neuron FROM inference_log ORDER BY id"
        return [dict(row) for row in conn.execute(sql)]


def test_every_kind_is_listed(cli) -> None:
    listed = {row["provider"]: row for row in cli("infer", "providers", "--json").json["providers"]}
    for kind in (FORMAT_A, *EXTRA_KINDS):
        assert listed[kind.address]["model"] == kind.model
        assert listed[kind.address]["prices"]["input"] == str(kind.input_price)


@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_format_a_binds_request_and_response(cli, stream: str) -> None:
    report = cli("infer", "plain A", "--provider", FORMAT_A.address, stream, "--json").json
    assert report["answer"] == "You said: plain A"
    assert report["verification"]["family"] == "A"
    assert report["verification"]["binding"] == "request_and_response"


@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_format_b_is_verified_with_its_routing_proof(cli, zerog_home: Path, stream: str) -> None:
    result = cli("infer", "centralized", "--provider", FORMAT_B.address, stream, "--json")
    assert result.exit_code == 0, result
    report = result.json
    assert report["answer"] == "You said: centralized"
    assert report["verified"] is True
    verification = report["verification"]
    assert verification["family"] == "B"
    # The broker re-marshals the body to enforce its model; zerog's bytes are
    # already in Go's form, so the request hash still binds.
    assert verification["binding"] == "request_and_response"
    assert verification["routing"] == {
        "provider_type": "centralized",
        "provider_identity": UPSTREAM_IDENTITY,
        "tls_cert_fingerprint": UPSTREAM_CERT_FINGERPRINT,
    }
    assert verification["expected_signer"] == FORMAT_B.tee_address
    assert logged(zerog_home)[-1]["binding"] == "request_and_response"


def test_format_b_human_summary_says_what_was_bound(cli) -> None:
    result = cli("infer", "say it", "--provider", FORMAT_B.address, "--no-stream")
    assert result.exit_code == 0, result
    assert result.stdout == "You said: say it\n"
    assert "signature verified (request+response)" in result.stderr


@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_a_rewritten_request_is_recorded_not_refused(cli, zerog_home: Path, stream: str) -> None:
    prompt = "a prompt long enough to be cut by the broker's output cap of sixteen tokens"
    result = cli("infer", prompt, "--provider", REWRITING.address, stream, "--json")
    assert result.exit_code == 0, result
    report = result.json
    # The broker capped max_tokens at 16 before forwarding: the answer is cut.
    assert report["usage"]["completion_tokens"] == 16
    assert report["finish_reason"] == "length"
    assert report["answer"] == ("You said: " + prompt).encode()[:64].decode()
    assert report["verified"] is True
    assert report["verification"]["family"] == "B"
    assert report["verification"]["binding"] == "response_only"
    assert "request rewritten by the provider" in report["verification"]["reason"]
    (row,) = logged(zerog_home)
    assert row["status"] == "ok" and row["verified"] == 1 and row["binding"] == "response_only"
    table = cli("infer", "log")
    assert "request rewritten" in table.stdout


def test_a_model_the_broker_enforces_against_is_a_usage_error(cli) -> None:
    refused = cli("infer", "hi", "--provider", FORMAT_B.address, "--model", "devnet-echo-1")
    assert refused.exit_code == 2, refused
    assert "does not serve model 'devnet-echo-1'" in refused.stderr


@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_a_late_signature_is_waited_for(cli, stream: str) -> None:
    result = cli("infer", "sign me later", "--provider", DELAYED.address, stream, "--json")
    assert result.exit_code == 0, result
    verification = result.json["verification"]
    assert verification["status"] == "verified"
    assert verification["binding"] == "request_and_response"
    assert verification["attempts"] >= 2


def test_a_late_signature_past_the_wait_is_unavailable(
    cli, zerog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZEROG_SIGNATURE_WAIT", "0")
    shown = cli("infer", "too impatient", "--provider", DELAYED.address, "--json")
    assert shown.exit_code == 0, shown
    assert shown.json["answer"] == "You said: too impatient"
    assert shown.json["verification"]["status"] == "unavailable"
    assert "chat_id_not_found" in shown.stderr
    monkeypatch.setenv("ZEROG_VERIFY_RESPONSE", "always")
    demanded = cli("infer", "too impatient", "--provider", DELAYED.address)
    assert demanded.exit_code == 3, demanded
    assert "signature unavailable" in demanded.stderr
    assert [row["status"] for row in logged(zerog_home)] == ["unverified", "unverified"]


def test_signature_wait_is_validated(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    rejected = cli("config", "set", "signature_wait", "2h")
    assert rejected.exit_code == 2, rejected
    assert "signature_wait must be at most 600s" in rejected.stderr
    assert cli("config", "set", "signature_wait", "45s").exit_code == 0
    assert cli("config", "show", "--json").json["settings"]["signature_wait"]["value"] == 45
    monkeypatch.setenv("ZEROG_SIGNATURE_WAIT", "2h")
    refused = cli("infer", "hi", "--provider", DELAYED.address)
    assert refused.exit_code == 8, refused
    assert "signature_wait must be at most 600s" in refused.stderr


def multi_fee(prompt: str, model: str) -> tuple[int, int, int]:
    """What the multi-model broker bills: the model's prices, half the prompt cached at /4."""
    price = MULTI_LARGE if model == MULTI_LARGE.model else MULTI_SMALL
    prompt_tokens = count_tokens(prompt)
    completion_tokens = count_tokens("You said: " + prompt)
    cached = prompt_tokens // 2 if price.cache_divisor else 0
    fee = (prompt_tokens - cached) * price.input_price + completion_tokens * price.output_price
    if cached and price.cache_divisor:
        fee += cached * price.input_price // price.cache_divisor
    return prompt_tokens, completion_tokens, fee


@pytest.mark.parametrize("model", [MULTI_SMALL.model, MULTI_LARGE.model])
@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_multi_model_costs_follow_each_models_price(cli, model: str, stream: str) -> None:
    prompt = "how much does this one cost?"
    args = ("infer", prompt, "--provider", MULTI_MODEL.address, "--model", model)
    report = cli(*args, stream, "--json").json
    prompt_tokens, completion_tokens, fee = multi_fee(prompt, model)
    assert report["usage"]["prompt_tokens"] == prompt_tokens
    assert report["usage"]["completion_tokens"] == completion_tokens
    assert report["cost"]["neuron"] == str(fee)
    assert report["verification"]["binding"] == "request_and_response"


def test_multi_model_estimate_uses_the_models_price(cli) -> None:
    small = MULTI_SMALL
    args = ("infer", "estimate me", "--provider", MULTI_MODEL.address, "--max-tokens", "100")
    estimate = cli(*args, "--model", small.model, "--estimate", "--json").json
    assert estimate["prices"] == {
        "input": str(small.input_price),
        "output": str(small.output_price),
        "input_0g_per_million": format_0g(small.input_price * 1_000_000),
        "output_0g_per_million": format_0g(small.output_price * 1_000_000),
        "source": "models",
        "cache_divisor": None,
    }
    prompt_tokens = estimate["prompt_tokens"]
    bound = prompt_tokens * small.input_price + 100 * small.output_price
    assert estimate["cost_upper_bound"]["neuron"] == str(bound)
    # The on-chain price of a multi-model service is its highest; the small
    # model's bound is far below it.
    chain_bound = prompt_tokens * MULTI_MODEL.input_price + 100 * MULTI_MODEL.output_price
    assert bound < chain_bound
    unknown = cli(*args, "--model", "devnet-multi-huge")
    assert unknown.exit_code == 2, unknown
    assert "does not serve model 'devnet-multi-huge'" in unknown.stderr
    assert "devnet-multi-large, devnet-multi-small" in unknown.stderr


def test_multi_model_admission_uses_the_models_price(cli) -> None:
    """0.2 0G to spend: a million output tokens fit at the small model's price only."""
    max_tokens = "1000000"
    args = ("infer", "big question", "--provider", MULTI_MODEL.address, "--max-tokens", max_tokens)
    large = cli(*args, "--model", MULTI_LARGE.model, "--estimate", "--json").json
    assert large["fits_balance"] is False
    small = cli(*args, "--model", MULTI_SMALL.model, "--estimate", "--json").json
    assert small["fits_balance"] is True
    refused = cli(*args, "--model", MULTI_LARGE.model)
    assert refused.exit_code == 4, refused
    assert f"zerog infer fund transfer {MULTI_MODEL.address}" in refused.stderr


def test_a_model_only_a_multi_model_catalog_lists_finds_its_provider(cli) -> None:
    """``--model`` alone: a multi-model service serves more than its on-chain model."""
    report = cli("infer", "who serves large?", "--model", MULTI_LARGE.model, "--json").json
    assert report["provider"] == MULTI_MODEL.address
    assert report["model"] == MULTI_LARGE.model
    assert report["cost"]["neuron"] == str(multi_fee("who serves large?", MULTI_LARGE.model)[2])
    missing = cli("infer", "anyone?", "--model", "devnet-multi-huge")
    assert missing.exit_code == 7, missing
    assert "no acknowledged chatbot service serving model 'devnet-multi-huge'" in missing.stderr
