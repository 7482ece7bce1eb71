"""Item 10: a provider cannot bill a tenant more than the request allowed.

A hostile devnet broker (``claimed_prompt_tokens`` / ``claimed_completion_tokens``
in its ``/devnet/settings``) answers normally but reports 500,000 tokens for a
``--max-tokens 16`` request. The tenant must be charged only what the request
could have cost (prompt: one token per byte sent; completion: ``max_tokens``),
the claim must land in ``alerts``, the provider must be flagged in
``zerog infer providers``, and the command must exit 3.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Result
from tests.devnet_harness import NO_PROXY, DevnetProcess
from tests.security.conftest import AttackContext
from zerog_cli.devnet.compute import INPUT_PRICE, OUTPUT_PRICE, PROVIDER_ADDRESS
from zerog_cli.devnet.provider import count_tokens

pytestmark = pytest.mark.devnet(nodes=1)

USD_MICRO_PER_1K = 20_000
CLAIM = 500_000


def provider_settings(net: DevnetProcess, **changes: Any) -> None:
    response = requests.post(
        f"{net.provider_url}/devnet/settings", json=changes, timeout=10, proxies=NO_PROXY
    )
    response.raise_for_status()


@pytest.fixture
def cli(
    zerog: Callable[..., Result], net: DevnetProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Result]]:
    monkeypatch.setenv("ZEROG_DEVNET_URL", net.base_url)
    yield zerog
    provider_settings(net, claimed_prompt_tokens=None, claimed_completion_tokens=None)


def rows(home: Path, sql: str) -> list[dict[str, Any]]:
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql)]


def usd_of(tokens: int) -> int:
    return -(-tokens * USD_MICRO_PER_1K // 1000)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_provider_claiming_500k_tokens_for_16_is_charged_16(
    cli, net: DevnetProcess, zerog_home: Path, attack: AttackContext, stream: bool
) -> None:
    provider_settings(net, claimed_completion_tokens=CLAIM)
    mode = "--stream" if stream else "--no-stream"
    with attack("usage bounds", f"provider claims {CLAIM} completion tokens ({mode})"):
        result = cli("infer", "hello", "--max-tokens", "16", "--as", "tenant", mode)
        assert result.exit_code == 3, result
        assert f"claimed 2+{CLAIM} tokens" in result.stderr
        prompt_tokens = count_tokens("hello")
        charged = prompt_tokens + 16
        (quota,) = rows(zerog_home, "SELECT * FROM user_quotas WHERE user = 'tenant'")
        assert quota["tokens_used"] == charged
        assert quota["monthly_usd_used_micro"] == usd_of(charged)
        (cost,) = rows(zerog_home, "SELECT * FROM cost_tracking WHERE user = 'tenant'")
        assert cost["quantity"] == charged
        assert cost["neuron"] == str(prompt_tokens * INPUT_PRICE + 16 * OUTPUT_PRICE)
        (logged,) = rows(zerog_home, "SELECT * FROM inference_log WHERE user = 'tenant'")
        assert (logged["status"], logged["completion_tokens"]) == ("overclaimed", 16)
        (alert,) = rows(zerog_home, "SELECT * FROM alerts WHERE kind = 'usage_claim'")
        assert alert["subject"] == PROVIDER_ADDRESS
        assert alert["value"] == prompt_tokens + CLAIM
        assert f"claimed {prompt_tokens}+{CLAIM}" in alert["message"]
        assert rows(zerog_home, "SELECT * FROM quota_reservations") == []
        shown = cli("quota", "show", "tenant", "--json")
        assert shown.exit_code == 0, shown
        assert shown.json["limits"]["tokens"]["used"] == charged


def test_an_inflated_prompt_is_capped_at_the_bytes_sent_and_the_provider_flagged(
    cli, net: DevnetProcess, zerog_home: Path, attack: AttackContext
) -> None:
    provider_settings(net, claimed_prompt_tokens=CLAIM)
    with attack("usage bounds", f"provider claims a {CLAIM}-token prompt"):
        result = cli("infer", "hello", "--max-tokens", "16", "--as", "tenant", "--json")
        assert result.exit_code == 3, result
        assert result.json["error"]["exit_code"] == 3
        (logged,) = rows(zerog_home, "SELECT * FROM inference_log WHERE user = 'tenant'")
        assert logged["status"] == "overclaimed"
        assert logged["prompt_tokens"] < 200
        (quota,) = rows(zerog_home, "SELECT * FROM user_quotas WHERE user = 'tenant'")
        assert quota["tokens_used"] == logged["prompt_tokens"] + logged["completion_tokens"]
    provider_settings(net, claimed_prompt_tokens=None)
    with attack("usage bounds", "the over-reporting provider is flagged in `infer providers`"):
        listed = cli("infer", "providers", "--json")
        assert listed.exit_code == 0, listed
        (flagged,) = [
            row for row in listed.json["providers"] if row["provider"] == PROVIDER_ADDRESS
        ]
        assert flagged["usage_claims"] == 1
        assert flagged["flags"] == ["over-reported usage"]
        table = cli("infer", "providers")
        assert "over-reported usage" in table.stdout
        honest = cli("infer", "hello", "--max-tokens", "16", "--as", "tenant")
        assert honest.exit_code == 0, honest


def test_a_claim_past_what_sqlite_holds_is_recorded_not_a_crash(
    cli, net: DevnetProcess, zerog_home: Path, attack: AttackContext
) -> None:
    huge = 2**300
    provider_settings(net, claimed_completion_tokens=huge)
    with attack("usage bounds", "provider claims 2**300 completion tokens"):
        result = cli("infer", "hello", "--max-tokens", "16", "--as", "tenant")
        assert result.exit_code == 3, result
        (alert,) = rows(zerog_home, "SELECT * FROM alerts WHERE kind = 'usage_claim'")
        assert alert["value"] >= 1e90
        (logged,) = rows(zerog_home, "SELECT * FROM inference_log WHERE user = 'tenant'")
        assert (logged["status"], logged["completion_tokens"]) == ("overclaimed", 16)
