"""`zerog infer` pieces that need no network: token cache, input checks, policies, routing."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conformance import load_vectors
from zerog_cli.errors import IntegrityError, UsageError
from zerog_cli.infra import redaction
from zerog_cli.services.infer import AskRequest, _verify_wanted, validate
from zerog_cli.services.infer_chain import parse_address, route_endpoint
from zerog_cli.services.infer_tokens import REFRESH_MARGIN_MS, TokenCache
from zerog_cli.zerog.compute import EPHEMERAL_MAX_DURATION_MS, Service

VECTORS = load_vectors("compute-headers.json")
EPHEMERAL_DEFAULT = next(c for c in VECTORS["auth_header_cases"] if c["id"] == "ephemeral-default")
KEY = EPHEMERAL_DEFAULT["inputs"]["user_private_key"]
WALLET = EPHEMERAL_DEFAULT["inputs"]["user_address"]
PROVIDER = EPHEMERAL_DEFAULT["inputs"]["provider_address_as_passed"]
NOW = EPHEMERAL_DEFAULT["inputs"]["now_ms"]


def _token(cache: TokenCache, *, now_ms: int, generation: int = 0, nonce: str | None = None) -> str:
    return cache.authorization(
        KEY,
        chain_id=31337,
        wallet=WALLET,
        provider=PROVIDER,
        generation=generation,
        now_ms=now_ms,
        nonce=nonce,
    )


def test_cached_token_is_the_sdk_s_header_byte_for_byte(tmp_path: Path) -> None:
    inputs = EPHEMERAL_DEFAULT["inputs"]
    header = _token(
        TokenCache(tmp_path),
        now_ms=NOW,
        generation=int(inputs["onchain_account"]["generation"]),
        nonce=inputs["nonce"],
    )
    assert header == EPHEMERAL_DEFAULT["expected"]["headers"]["Authorization"]


def test_token_is_reused_until_an_hour_is_left(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    first = _token(cache, now_ms=NOW)
    last_reuse = NOW + EPHEMERAL_MAX_DURATION_MS - REFRESH_MARGIN_MS
    assert _token(cache, now_ms=NOW + 1000) == first
    assert _token(TokenCache(tmp_path), now_ms=last_reuse) == first
    renewed = _token(cache, now_ms=last_reuse + 1)
    assert renewed != first
    assert _token(cache, now_ms=last_reuse + 2) == renewed


def test_token_is_renewed_when_the_generation_moves_or_it_is_forgotten(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    first = _token(cache, now_ms=NOW)
    bumped = _token(cache, now_ms=NOW, generation=1)
    assert bumped != first
    assert _token(cache, now_ms=NOW, generation=1) == bumped
    cache.forget(chain_id=31337, wallet=WALLET, provider=PROVIDER)
    assert _token(cache, now_ms=NOW, generation=1) != bumped


def test_tokens_are_kept_per_chain_and_provider(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    first = _token(cache, now_ms=NOW)
    other = cache.authorization(
        KEY, chain_id=16602, wallet=WALLET, provider=PROVIDER, generation=0, now_ms=NOW
    )
    assert other != first
    assert _token(cache, now_ms=NOW) == first


def test_token_file_is_private_drops_expired_entries_and_survives_junk(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    _token(cache, now_ms=NOW)
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    cache.authorization(
        KEY,
        chain_id=16602,
        wallet=WALLET,
        provider=PROVIDER,
        generation=0,
        now_ms=NOW + EPHEMERAL_MAX_DURATION_MS + 1,
    )
    assert len(json.loads(cache.path.read_text())["tokens"]) == 1
    cache.path.write_text("{not json")
    assert _token(cache, now_ms=NOW).startswith("Bearer app-sk-")
    cache.path.write_text(json.dumps({"tokens": {"x": {"authorization": 1}}}))
    assert _token(cache, now_ms=NOW).startswith("Bearer app-sk-")


def test_tokens_read_back_from_the_file_are_scrubbed_from_output(tmp_path: Path) -> None:
    header = _token(TokenCache(tmp_path), now_ms=NOW + 5)
    api_key = header.removeprefix("Bearer ")
    redaction._registered.discard(api_key)
    _token(TokenCache(tmp_path), now_ms=NOW + 6)
    assert api_key not in redaction.scrub(f"oops {api_key}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        ),
        (
            "0X70997970C51812DC3A010C7D01B50E0D17DC79C8",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        ),
        (
            " 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 ",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        ),
    ],
)
def test_addresses_are_checksummed(text: str, expected: str) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0x",
        "70997970c51812dc3a010c7d01b50e0d17dc79c8",
        "0x70997970c51812dc3a010c7d01b50e0d17dc79",
        "0x70997970c51812dc3a010c7d01b50e0d17dc79zz",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79c8",
    ],
)
def test_bad_addresses_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_address(text)


@pytest.mark.parametrize(
    "changes",
    [
        {"prompt": ""},
        {"prompt": " \t\n"},
        {"system": " "},
        {"max_tokens": 0},
        {"max_tokens": -1},
        {"max_tokens": 1_000_001},
        {"temperature": -0.1},
        {"temperature": 2.5},
        {"provider": "0x1"},
        {"model": " "},
    ],
)
def test_bad_requests_are_refused_before_any_network_call(changes: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        validate(AskRequest(**{"prompt": "hello", **changes}))


def test_a_good_request_passes() -> None:
    validate(AskRequest(prompt="hi", system="s", max_tokens=1, temperature=0.0, model="m"))


def _service(verifiability: str) -> Service:
    return Service(
        provider="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        service_type="chatbot",
        url="http://127.0.0.1:9/provider",
        input_price=1,
        output_price=2,
        updated_at=0,
        model="m",
        verifiability=verifiability,
        additional_info="{}",
        tee_signer_address="0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        tee_signer_acknowledged=True,
    )


@pytest.mark.parametrize(
    ("flag", "setting", "verifiability", "wanted"),
    [
        (None, "auto", "TeeML", True),
        (None, "auto", "", False),
        (None, "auto", "OpML", False),
        (None, "never", "TeeML", False),
        (None, "always", "TeeML", True),
        (False, "always", "TeeML", False),
        (True, "never", "TeeML", True),
        (False, "auto", "", False),
    ],
)
def test_verification_policy(
    flag: bool | None, setting: str, verifiability: str, wanted: bool
) -> None:
    request = AskRequest(prompt="x", verify=flag)
    assert _verify_wanted(request, setting, _service(verifiability)) is wanted


@pytest.mark.parametrize(("flag", "setting"), [(True, "auto"), (None, "always")])
def test_asking_to_verify_an_unverifiable_service_refuses_before_paying(
    flag: bool | None, setting: str
) -> None:
    with pytest.raises(IntegrityError):
        _verify_wanted(AskRequest(prompt="x", verify=flag), setting, _service(""))


def test_each_provider_route_has_its_own_breaker() -> None:
    url = "http://127.0.0.1:8545/provider"
    chat = route_endpoint(url, "v1/proxy/chat/completions")
    assert chat == "http://127.0.0.1:8545/provider/v1/proxy/chat/completions"
    assert route_endpoint(url + "/", "/v1/proxy/signature") == (
        "http://127.0.0.1:8545/provider/v1/proxy/signature"
    )
    assert route_endpoint("https://p.example", "v1/user") == "https://p.example:443/v1/user"


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["infer", "hello"], "ask"),
        (["infer", "--json", "hello"], "ask"),
        (["infer", "-"], "ask"),
        (["infer", "ask", "providers"], "ask"),
        (["infer", "providers"], "providers"),
        (["infer", "account"], "account"),
        (["infer", "log"], "log"),
        (["infer", "fund", "deposit", "1"], "fund"),
    ],
)
def test_ask_is_the_default_subcommand(argv: list[str], command: str) -> None:
    import typer

    from zerog_cli.cli import infer

    infer_group = typer.main.get_command(infer.app)
    context = infer_group.make_context("infer", argv[1:], resilient_parsing=True)
    rest = [*context._protected_args, *context.args]
    name, _, _ = infer_group.resolve_command(context, rest)  # type: ignore[attr-defined]
    assert name == command
