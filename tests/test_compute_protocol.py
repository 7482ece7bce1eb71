"""0G compute protocol layer against the conformance vectors and the broker's checks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.conformance import load_vectors
from zerog_cli.errors import (
    ConfigError,
    IntegrityError,
    NotFound,
    PermissionDenied,
    ProtocolError,
    QuotaExceeded,
    RemoteError,
    UsageError,
)
from zerog_cli.zerog import compute
from zerog_cli.zerog.abi import decode_revert
from zerog_cli.zerog.compute import (
    INFERENCE_SERVING,
    LEDGER_MANAGER,
    ChatStream,
    ComputeContracts,
    Pricing,
    Service,
    SubAccount,
)

USER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
USER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
PROVIDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TEE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
TEE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
LEDGER_CA = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
INFERENCE_CA = "0x0165878A594ca255338adfa4d48449f69242Eb8F"
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # Hardhat #1


VECTORS = load_vectors("compute-headers.json")
AUTH_CASES = VECTORS["auth_header_cases"]
FEE_CASES = VECTORS["fee_cases"]
VERIFY_CASES = VECTORS["response_verification_cases"]
ABI = VECTORS["abi_cases"]


def _hex(data: str) -> bytes:
    return bytes.fromhex(data.removeprefix("0x"))


def _plain(value: Any) -> Any:
    """Dataclass-decoded values in the vectors' notation (ints as strings)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _service(**changes: Any) -> Service:
    fields: dict[str, Any] = {
        "provider": PROVIDER,
        "service_type": "chatbot",
        "url": "https://provider.example.invalid",
        "input_price": 50_000_000_000,
        "output_price": 100_000_000_000,
        "updated_at": 1767225600,
        "model": "qwen-2.5-7b-instruct",
        "verifiability": "TeeML",
        "additional_info": '{"TargetSeparated":false,"TEEVerifier":"dstack"}',
        "tee_signer_address": TEE,
        "tee_signer_acknowledged": True,
    }
    fields.update(changes)
    return Service(**fields)


def _account(**changes: Any) -> SubAccount:
    fields: dict[str, Any] = {
        "user": USER,
        "provider": PROVIDER,
        "nonce": 0,
        "balance": 10 * 10**18,
        "pending_refund": 0,
        "refunds": (),
        "additional_info": "",
        "acknowledged": True,
        "valid_refunds_length": 0,
        "generation": 0,
        "revoked_bitmap": 0,
    }
    fields.update(changes)
    return SubAccount(**fields)


# --- auth header vectors -----------------------------------------------------------------------


def _build(case: dict[str, Any]) -> compute.SignedToken:
    inputs = case["inputs"]
    generation = int(inputs["onchain_account"]["generation"])
    common = {
        "generation": generation,
        "now_ms": inputs["now_ms"],
        "nonce": inputs["nonce"],
    }
    provider = inputs["provider_address_as_passed"]
    if "expires_in_ms" in inputs:
        return compute.new_api_key(
            inputs["user_private_key"],
            provider,
            revoked_bitmap=int(inputs["onchain_account"]["revokedBitmap"]),
            token_id=inputs.get("token_id"),
            expires_in_ms=inputs["expires_in_ms"],
            **common,
        )
    return compute.new_session_token(
        inputs["user_private_key"],
        provider,
        duration_ms=inputs.get("duration_ms", compute.EPHEMERAL_MAX_DURATION_MS),
        **common,
    )


@pytest.mark.parametrize("case", AUTH_CASES, ids=[c["id"] for c in AUTH_CASES])
def test_auth_header_vectors(case: dict[str, Any]) -> None:
    expected = case["expected"]
    signed = _build(case)
    assert signed.raw == expected["raw_message"]
    digest = compute.keccak256(signed.raw.encode())
    assert "0x" + digest.hex() == expected["keccak256_raw_message"]
    assert "0x" + compute.eip191_digest_32(digest).hex() == expected["eip191_digest"]
    assert signed.signature == expected["signature"]
    assert compute.recover_token_signer(signed) == expected["recovered_address"]
    if "Authorization" in expected["headers"]:
        assert signed.headers() == expected["headers"]
    else:
        assert signed.split_headers() == expected["headers"]
    if "api_key" in expected:
        assert signed.api_key == expected["api_key"]
        assert signed.token.token_id == expected["token_id"]
        assert signed.token.timestamp == expected["created_at"]
        assert signed.token.expires_at == expected["expires_at"]


@pytest.mark.parametrize("case", AUTH_CASES, ids=[c["id"] for c in AUTH_CASES])
def test_vector_headers_pass_the_provider_checks(case: dict[str, Any]) -> None:
    expected = case["expected"]
    header = expected["headers"].get("Authorization") or ("Bearer " + _build(case).api_key)
    on_chain = case["inputs"]["onchain_account"]
    account = _account(
        generation=int(on_chain["generation"]), revoked_bitmap=int(on_chain["revokedBitmap"])
    )
    token = compute.check_authorization(
        header,
        provider=PROVIDER,
        now_s=case["inputs"]["now_ms"] // 1000 + 60,
        account_for=lambda user: account,
    )
    assert token.address == USER
    assert token.raw_message() == expected["raw_message"]


def test_token_json_escapes_like_json_stringify() -> None:
    token = compute.SessionToken(USER, PROVIDER, 1, 2, 'a"b\\cé', 0, 255)
    assert token.raw_message().endswith('"nonce":"a\\"b\\\\cé","generation":0,"tokenId":255}')


def test_default_nonce_and_clock() -> None:
    first = compute.new_session_token(USER_KEY, PROVIDER)
    second = compute.new_session_token(USER_KEY, PROVIDER)
    assert len(first.token.nonce) == 32 and first.token.nonce != second.token.nonce
    assert first.token.expires_at - first.token.timestamp == compute.EPHEMERAL_MAX_DURATION_MS
    assert not first.needs_refresh()
    assert first.needs_refresh(now_ms=first.token.expires_at - 3_599_999)


def test_ephemeral_duration_is_bounded() -> None:
    with pytest.raises(UsageError):
        compute.new_session_token(
            USER_KEY, PROVIDER, duration_ms=compute.EPHEMERAL_MAX_DURATION_MS + 1
        )


def test_pick_token_id() -> None:
    assert compute.pick_token_id(0b1011) == 2
    assert compute.pick_token_id(0, 7) == 7
    with pytest.raises(UsageError, match="revoked"):
        compute.pick_token_id(1 << 7, 7)
    with pytest.raises(UsageError):
        compute.pick_token_id(0, 255)
    with pytest.raises(UsageError, match="every API key"):
        compute.pick_token_id((1 << 255) - 1)


# --- provider-side validation ------------------------------------------------------------------

NOW_MS = 1767225600000


def _check(header: str | None, account: SubAccount | None = None, now_s: int | None = None) -> Any:
    return compute.check_authorization(
        header,
        provider=PROVIDER,
        now_s=NOW_MS // 1000 + 10 if now_s is None else now_s,
        account_for=lambda user: account,
    )


def _forged(raw: str, signature: str) -> str:
    return "Bearer app-sk-" + base64.b64encode(f"{raw}|{signature}".encode()).decode()


def test_validator_accepts_fresh_token_without_sub_account() -> None:
    signed = compute.new_session_token(USER_KEY, PROVIDER.lower(), now_ms=NOW_MS, nonce="n")
    assert _check(signed.authorization).nonce == "n"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing or invalid Authorization header"),
        ("Bearer sk-123", "missing or invalid Authorization header"),
        ("Bearer app-sk-***", "invalid base64 in Authorization header"),
        ("Bearer app-sk-" + base64.b64encode(b"no bar").decode(), "invalid Authorization payload"),
        ("Bearer app-sk-" + base64.b64encode(b"{nope|0x").decode(), "invalid session token format"),
        (_forged('{"address":"x","tokenId":"5"}', "0x"), "tokenId is not an integer"),
        (_forged('{"address":"x","tokenId":256}', "0x"), "tokenId is out of range"),
    ],
)
def test_validator_check_1_shape(header: str | None, message: str) -> None:
    with pytest.raises(PermissionDenied, match=message):
        _check(header)


def test_validator_rejects_wrong_provider() -> None:
    signed = compute.new_session_token(USER_KEY, TEE, now_ms=NOW_MS)
    with pytest.raises(PermissionDenied, match=r"^session token is for different provider$"):
        _check(signed.authorization)


def test_validator_rejects_bad_ephemeral_lifetimes() -> None:
    never = compute.SessionToken(USER, PROVIDER, NOW_MS, 0, "n", 0, 255)
    signed = compute.sign_session_token(USER_KEY, never)
    with pytest.raises(PermissionDenied, match="must have an expiration time"):
        _check(signed.authorization)
    too_long = compute.SessionToken(USER, PROVIDER, NOW_MS, NOW_MS + 86_400_001, "n", 0, 255)
    signed = compute.sign_session_token(USER_KEY, too_long)
    with pytest.raises(PermissionDenied, match="cannot exceed 24 hours"):
        _check(signed.authorization)


def test_validator_rejects_expired_token() -> None:
    signed = compute.new_session_token(USER_KEY, PROVIDER, duration_ms=1000, now_ms=NOW_MS)
    assert _check(signed.authorization, now_s=NOW_MS // 1000 + 1)
    with pytest.raises(PermissionDenied, match=r"^session token expired$"):
        _check(signed.authorization, now_s=NOW_MS // 1000 + 2)


def test_api_key_without_expiry_never_expires() -> None:
    signed = compute.new_api_key(USER_KEY, PROVIDER, token_id=3, now_ms=NOW_MS)
    assert _check(signed.authorization, now_s=NOW_MS // 1000 + 10**9).token_id == 3


def test_validator_rejects_old_and_future_generations() -> None:
    signed = compute.new_session_token(USER_KEY, PROVIDER, generation=1, now_ms=NOW_MS)
    assert _check(signed.authorization, _account(generation=1))
    with pytest.raises(PermissionDenied, match=r"^session token has been revoked \(generation"):
        _check(signed.authorization, _account(generation=2))
    with pytest.raises(PermissionDenied, match=r"^invalid session token \(future generation\)$"):
        _check(signed.authorization, _account(generation=0))


def test_validator_rejects_revoked_token_id_only() -> None:
    key5 = compute.new_api_key(USER_KEY, PROVIDER, token_id=5, now_ms=NOW_MS)
    key6 = compute.new_api_key(USER_KEY, PROVIDER, token_id=6, now_ms=NOW_MS)
    ephemeral = compute.new_session_token(USER_KEY, PROVIDER, now_ms=NOW_MS)
    account = _account(revoked_bitmap=1 << 5)
    with pytest.raises(PermissionDenied, match=r"^session token has been revoked$"):
        _check(key5.authorization, account)
    assert _check(key6.authorization, account)
    assert _check(ephemeral.authorization, account), "bitmap does not apply to tokenId 255"


def test_validator_rejects_bad_signatures() -> None:
    signed = compute.new_session_token(USER_KEY, PROVIDER, now_ms=NOW_MS)
    other = compute.new_session_token(OTHER_KEY, PROVIDER, now_ms=NOW_MS)
    with pytest.raises(
        PermissionDenied, match=r"^signature verification failed: address mismatch$"
    ):
        _check(_forged(signed.raw, other.signature))
    with pytest.raises(PermissionDenied, match="without 0x prefix"):
        _check(_forged(signed.raw, signed.signature[2:]))
    with pytest.raises(PermissionDenied, match="invalid signature length"):
        _check(_forged(signed.raw, signed.signature[:-2]))
    low_v = signed.signature[:-2] + ("00" if signed.signature.endswith("1b") else "01")
    with pytest.raises(PermissionDenied, match="recovery id"):
        _check(_forged(signed.raw, low_v))
    tampered_raw = signed.raw.replace('"generation":0', '"generation":0 ')
    with pytest.raises(PermissionDenied, match="address mismatch"):
        _check(_forged(tampered_raw, signed.signature))


def test_validator_check_order_provider_before_signature() -> None:
    """A token with both a wrong provider and a bad signature fails on the provider."""
    signed = compute.new_session_token(USER_KEY, TEE, now_ms=NOW_MS)
    with pytest.raises(PermissionDenied, match="different provider"):
        _check(_forged(signed.raw, "junk"))


# --- response verification ---------------------------------------------------------------------


@pytest.mark.parametrize("case", VERIFY_CASES, ids=[c["id"] for c in VERIFY_CASES])
def test_response_verification_vectors(case: dict[str, Any]) -> None:
    inputs, body, expected = case["inputs"], case["signature_endpoint_body"], case["expected"]
    request = inputs["request_body"].encode()
    response = inputs["response_body"].encode()
    assert compute.response_signing_text(request, response) == body["text"]
    assert (
        compute.sign_response_text(inputs["tee_signer_private_key"], body["text"])
        == (body["signature"])
    )
    from eth_account.messages import _hash_eip191_message, encode_defunct

    digest = _hash_eip191_message(encode_defunct(text=body["text"]))
    assert "0x" + bytes(digest).hex() == expected["eip191_digest"]

    signer = inputs["tee_signer_address"]
    assert (
        compute.verify_response_signature(body["text"], body["signature"], signer)
        is (expected["verify_with_correct_signer"])
    )
    assert (
        compute.verify_response_signature(body["text"], body["signature"], USER)
        is (expected["verify_with_wrong_signer"])
    )
    tampered = body["text"][:-1] + ("0" if body["text"][-1] != "0" else "1")
    assert (
        compute.verify_response_signature(tampered, body["signature"], signer)
        is (expected["verify_with_tampered_text"])
    )

    service = _service(tee_signer_address=signer)
    check = compute.check_response_signature(
        service, body, request_body=request, response_body=response
    )
    assert check.verified and check.recovered_signer == signer
    check.require()
    wrong = compute.check_response_signature(_service(tee_signer_address=USER), body)
    assert wrong.status == "mismatch"
    with pytest.raises(IntegrityError):
        wrong.require()
    other_bytes = compute.check_response_signature(
        service, body, request_body=request, response_body=response + b" "
    )
    assert other_bytes.status == "mismatch"
    assert compute.check_response_signature(service, {**body, "text": tampered}).status == (
        "mismatch"
    )


def test_expected_signer_rules() -> None:
    target = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    separated = json.dumps({"TargetSeparated": True, "TargetTeeAddress": target})
    assert compute.expected_response_signer(_service(additional_info=separated)) == target
    centralized = json.dumps(
        {"TargetSeparated": True, "TargetTeeAddress": target, "ProviderType": "centralized"}
    )
    assert compute.expected_response_signer(_service(additional_info=centralized)) == TEE
    assert compute.expected_response_signer(_service(additional_info="")) is None
    assert compute.check_response_signature(_service(additional_info="x"), {}).status == (
        "unverifiable"
    )
    assert compute.check_response_signature(_service(verifiability=""), {}).status == (
        "unverifiable"
    )
    unacked = _service(tee_signer_acknowledged=False)
    assert compute.check_response_signature(unacked, {}).status == "unverifiable"
    assert compute.recover_response_signer("x", "0x1234") is None


# --- fees -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", FEE_CASES, ids=[c["id"] for c in FEE_CASES])
def test_fee_vectors(case: dict[str, Any]) -> None:
    pricing = Pricing(
        int(case["input_price_neuron_per_unit"]), int(case["output_price_neuron_per_unit"])
    )
    usage = json.loads(case["usage_json"]) if "usage_json" in case else None
    request = json.loads(case["request_json"]) if "request_json" in case else None
    fee = compute.fee_for(case["service_type"], pricing, usage=usage, request=request)
    expected = case["expected"]
    assert fee.input_count == expected["input_count"]
    assert fee.output_count == expected["output_count"]
    assert fee.fee == int(expected["fee_neuron"])
    if "fee_0g" in expected:
        assert compute.format_0g(fee.fee) == expected["fee_0g"]


def test_cached_tokens_and_tiers() -> None:
    info = {
        "cacheTokenBilling": {"divisor": 10},
        "tieredPricing": {
            # The broker matches tiers in the order given (getTierMultipliers).
            "tiers": [
                {
                    "maxInputTokens": 1000,
                    "inputMultiplier": 1,
                    "outputMultiplier": 1,
                },
                {
                    "maxInputTokens": 5000,
                    "inputMultiplier": 3,
                    "inputMultiplierDenominator": 2,
                    "outputMultiplier": 1.5,
                },
                {"maxInputTokens": 0, "inputMultiplier": 2, "outputMultiplier": 3},
            ]
        },
    }
    pricing = Pricing.from_service(_service(additional_info=json.dumps(info)))
    assert pricing.cache_divisor == 10 and len(pricing.tiers) == 3
    assert pricing.prices_for(1000) == (50_000_000_000, 100_000_000_000)
    assert pricing.prices_for(1001) == (75_000_000_000, 150_000_000_000)
    assert pricing.prices_for(10_000) == (100_000_000_000, 300_000_000_000)
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 150},
    }
    fee = compute.chat_fee(usage, pricing)
    assert fee.cached_count == 100
    assert fee.fee == 100 * 50_000_000_000 // 10 + 10 * 100_000_000_000
    assert compute.chat_fee(usage, Pricing(3, 0, cache_divisor=2)).fee == 150
    assert Pricing.from_service(_service(additional_info="not json")) == Pricing(
        50_000_000_000, 100_000_000_000
    )


def test_usage_count_and_estimates() -> None:
    assert [compute.usage_count(v) for v in (5, "7", None, "x", True, -3, "2.9")] == [
        5, 7, 0, 0, 0, 0, 2,
    ]  # fmt: skip
    assert compute.estimate_tokens("abcde") == 2
    assert compute.estimate_tokens(b"") == 0
    fee = compute.estimate_chat_fee(10, 100, Pricing(2, 3))
    assert (fee.input_count, fee.output_count, fee.fee) == (10, 100, 320)
    assert (
        compute.speech_to_text_fee({"type": "duration", "seconds": "2.5"}, Pricing(1, 0)).fee == 3
    )
    assert compute.speech_to_text_fee({"type": "duration"}, Pricing(1, 0)).fee == 0
    with pytest.raises(UsageError):
        compute.fee_for("video-generation", Pricing(1, 1))


def test_0g_text_round_trip() -> None:
    assert compute.format_0g(0) == "0.0"
    assert compute.format_0g(10**18) == "1.0"
    assert compute.format_0g(1) == "0.000000000000000001"
    assert compute.format_0g(-15 * 10**17) == "-1.5"
    assert compute.parse_0g("1.5") == 15 * 10**17
    assert compute.parse_0g("0.000000000000000001") == 1
    with pytest.raises(UsageError):
        compute.parse_0g("0.0000000000000000001")
    with pytest.raises(UsageError):
        compute.parse_0g("lots")


def test_require_funds() -> None:
    compute.require_funds(_account(balance=2 * 10**18), PROVIDER, fee=10**18)
    with pytest.raises(QuotaExceeded, match="no sub-account"):
        compute.require_funds(None, PROVIDER, fee=1)
    with pytest.raises(QuotaExceeded, match="not acknowledged"):
        compute.require_funds(_account(acknowledged=False), PROVIDER, fee=1)
    with pytest.raises(QuotaExceeded, match="short of funds") as caught:
        compute.require_funds(_account(balance=2 * 10**18), PROVIDER, fee=10**18, unsettled=1)
    assert "transfer at least 0.000000000000000001 0G" in str(caught.value)
    assert compute.spendable(_account(balance=5 * 10**18, pending_refund=10**18), 10**18) == (
        2 * 10**18
    )


# --- ABI -----------------------------------------------------------------------------------------

_CONTRACTS = {"InferenceServing": INFERENCE_SERVING, "LedgerManager": LEDGER_MANAGER}


@pytest.mark.parametrize(
    "case", ABI["call_encodings"], ids=[c["function"] for c in ABI["call_encodings"]]
)
def test_call_encoding_vectors(case: dict[str, Any]) -> None:
    contract = _CONTRACTS[case["contract"]]
    function = contract.function(case["function"].split("(")[0])
    assert function.signature == case["function"]
    assert "0x" + function.selector.hex() == case["selector"]
    args = [int(a) if isinstance(a, str) and a.isdigit() else a for a in case["args"]]
    calldata = function.encode(*args)
    assert "0x" + calldata.hex() == case["calldata"]
    assert function.encode(*function.decode_input(calldata)) == calldata


def test_typed_call_encoders_match_vectors() -> None:
    by_name = {c["function"]: _hex(c["calldata"]) for c in ABI["call_encodings"]}
    assert compute.encode_get_all_services() == by_name["getAllServices(uint256,uint256)"]
    assert compute.encode_get_service(PROVIDER) == by_name["getService(address)"]
    assert compute.encode_get_account(USER, PROVIDER) == by_name["getAccount(address,address)"]
    assert (
        compute.encode_acknowledge_tee_signer(PROVIDER)
        == (by_name["acknowledgeTEESigner(address,bool)"])
    )
    assert compute.encode_revoke_token(PROVIDER, 5) == by_name["revokeToken(address,uint8)"]
    assert compute.encode_revoke_all_tokens(PROVIDER) == by_name["revokeAllTokens(address)"]
    assert compute.encode_get_ledger(USER) == by_name["getLedger(address)"]
    assert compute.encode_deposit_fund() == by_name["depositFund()"]
    assert (
        compute.encode_get_service_info("0xa79F4c8311FF93C06b8CfB403690cc987c93F91E")
        == (by_name["getServiceInfo(address)"])
    )
    assert (
        compute.encode_transfer_fund(PROVIDER, "inference-v2.0", 10**18)
        == (by_name["transferFund(address,string,uint256)"])
    )
    assert (
        compute.encode_retrieve_fund([PROVIDER], "inference-v2.0")
        == (by_name["retrieveFund(address[],string)"])
    )
    assert (
        compute.encode_get_ledger_providers(USER, "inference-v2.0")
        == (by_name["getLedgerProviders(address,string)"])
    )


def test_spec_selectors() -> None:
    """Selectors listed in spec section 2 but not in the call vectors.

    The ABI also knows errors the spec does not list (read from the official
    contracts since); each one the spec lists must keep its selector.
    """
    expected = {
        "addLedger": "c5e53f7e",
        "refund": "278ecde1",
        "serviceExists": "0a2a8f88",
        "lockTime": "0d668087",
    }
    functions = {**LEDGER_MANAGER.functions, **INFERENCE_SERVING.functions}
    for name, selector in expected.items():
        assert functions[name].selector.hex() == selector
    errors = {
        "LedgerNotExists": "7d2d536b",
        "InsufficientBalance": "897f6c58",
        "InsufficientAvailableBalance": "adb9e043",
        "MinimumDepositRequired": "54443ec4",
        "LedgerLocked": "689e300a",
        "ServiceNotFound": "b5365807",
        "TooManyProviders": "829e4c32",
        "AccountNotExists": "08ca03ac",
        "AccountExists": "b3c19d64",
        "ServiceNotExist": "098eda7e",
        "LimitTooLarge": "062ba4db",
        "CannotRevokeWithNonZeroBalance": "faa23877",
        "TooManyRefunds": "9edd285f",
    }
    known = {**LEDGER_MANAGER.errors, **INFERENCE_SERVING.errors}
    assert {name: known[name].selector.hex() for name in errors} == errors


def test_return_decoding_vectors() -> None:
    cases = {c["function"]: c for c in ABI["return_decodings"]}
    service_case = cases["getService(address)"]
    service = compute.decode_get_service(_hex(service_case["return_data"]))
    decoded = service_case["decoded"]
    assert _plain(list(service.to_abi())) == [
        decoded[k]
        for k in (
            "provider",
            "serviceType",
            "url",
            "inputPrice",
            "outputPrice",
            "updatedAt",
            "model",
            "verifiability",
            "additionalInfo",
            "teeSignerAddress",
            "teeSignerAcknowledged",
        )
    ]
    assert service.info == {"TargetSeparated": False, "TEEVerifier": "dstack"}
    encoded = INFERENCE_SERVING.function("getService").encode_output(service.to_abi())
    assert "0x" + encoded.hex() == service_case["return_data"]

    account_case = cases["getAccount(address,address)"]
    account = compute.decode_get_account(_hex(account_case["return_data"]))
    want = account_case["decoded"]
    assert account.user == want["user"] and account.provider == want["provider"]
    assert account.balance == int(want["balance"])
    assert account.generation == 3 and account.revoked_bitmap == 11
    assert account.acknowledged is True and account.valid_refunds_length == 1
    assert account.refunds == (compute.Refund(0, 5 * 10**17, 1767225600, False),)
    assert account.pending_refunds == list(account.refunds)
    encoded = INFERENCE_SERVING.function("getAccount").encode_output(account.to_abi())
    assert "0x" + encoded.hex() == account_case["return_data"]


def test_revert_decoding_vectors() -> None:
    for case in ABI["revert_decodings"]:
        decoded = decode_revert(_hex(case["revert_data"]), compute.COMPUTE_ERRORS)
        assert decoded.name == case["error"].split("(")[0]
        assert list(decoded.args) == case["args"]
        assert "0x" + decoded.selector.hex() == case["selector"]
        assert "transfer at least 1 0G" in decoded.message


def test_revert_sentences_and_exceptions() -> None:
    available = LEDGER_MANAGER.error("InsufficientAvailableBalance").encode(10**18, 2 * 10**18)
    decoded = decode_revert(available, compute.COMPUTE_ERRORS)
    assert decoded.message == (
        "insufficient available ledger balance: 1.0 0G available, 2.0 0G required"
    )
    assert isinstance(compute.revert_error(available), QuotaExceeded)
    missing = INFERENCE_SERVING.error("ServiceNotExist").encode(PROVIDER)
    assert isinstance(compute.revert_error(missing), NotFound)
    assert PROVIDER in str(compute.revert_error(missing))
    too_large = INFERENCE_SERVING.error("LimitTooLarge").encode(51, 50)
    assert isinstance(compute.revert_error(too_large), UsageError)
    plain = bytes.fromhex("08c379a0") + _abi_string("nope")
    assert decode_revert(plain).message == "nope"
    assert str(compute.revert_error(plain)) == "execution reverted: nope"
    unknown = compute.revert_error(bytes.fromhex("deadbeef"))
    assert isinstance(unknown, RemoteError) and "0xdeadbeef" in str(unknown)
    assert "no reason given" in decode_revert(b"").message
    truncated = decode_revert(missing[:10], compute.COMPUTE_ERRORS)
    assert truncated.name == "ServiceNotExist" and "unreadable" in truncated.message


def _abi_string(text: str) -> bytes:
    from eth_abi import encode

    return encode(["string"], [text])


class _FakeChain:
    """eth_call over in-memory answers, raising RemoteError with revert data like a node."""

    def __init__(self, services: int) -> None:
        self.services = [_service(provider=_address(i), url=f"u{i}") for i in range(services)]
        self.calls: list[tuple[str, bytes]] = []

    def __call__(self, to: str, data: bytes) -> bytes:
        self.calls.append((to, data))
        function = INFERENCE_SERVING.function_for(data) or LEDGER_MANAGER.function_for(data)
        assert function is not None
        args = function.decode_input(data)
        if function.name == "getAllServices":
            offset, limit = args
            if limit > 50:
                raise self._revert(INFERENCE_SERVING.error("LimitTooLarge").encode(limit, 50))
            page = self.services[offset : offset + (limit or 50)]
            return function.encode_output([s.to_abi() for s in page], len(self.services))
        if function.name == "getAccount":
            raise self._revert(INFERENCE_SERVING.error("AccountNotExists").encode(*args))
        if function.name == "getLedger":
            raise self._revert(LEDGER_MANAGER.error("LedgerNotExists").encode(*args))
        if function.name == "getService":
            raise self._revert(INFERENCE_SERVING.error("ServiceNotExist").encode(*args))
        if function.name == "lockTime":
            return function.encode_output(86400)
        if function.name == "getServiceInfo":
            info = compute.ServiceInfo(
                args[0], args[0], "inference", "v2.0", "inference-v2.0", "", True, 1
            )
            return function.encode_output(info.to_abi())
        if function.name == "getLedgerProviders":
            return function.encode_output([PROVIDER.lower()])
        raise AssertionError(function.name)

    @staticmethod
    def _revert(data: bytes) -> RemoteError:
        return RemoteError("execution reverted", code=3, data={"data": "0x" + data.hex()})


def _address(i: int) -> str:
    return compute.checksum_address(f"0x{i + 1:040x}")


def test_reader_pages_past_fifty_and_maps_reverts() -> None:
    chain = _FakeChain(services=120)
    reader = ComputeContracts(chain, ledger=LEDGER_CA, inference=INFERENCE_CA)
    services = reader.list_services(include_unacknowledged=True)
    assert [s.url for s in services] == [f"u{i}" for i in range(120)]
    assert len(chain.calls) == 3
    assert reader.get_account(USER, PROVIDER) is None
    assert reader.get_ledger(USER) is None
    with pytest.raises(NotFound, match="no compute service"):
        reader.get_service(PROVIDER)
    with pytest.raises(UsageError, match="page size 51"):
        reader.get_all_services(0, 51)
    assert reader.lock_time() == 86400
    assert reader.inference_service_name() == "inference-v2.0"
    assert reader.get_ledger_providers(USER, "inference-v2.0") == [PROVIDER]


def test_reader_drops_unacknowledged_services_by_default() -> None:
    chain = _FakeChain(services=3)
    chain.services[1] = _service(provider=_address(1), tee_signer_acknowledged=False)
    services = ComputeContracts(chain, ledger=LEDGER_CA, inference=INFERENCE_CA).list_services()
    assert [s.provider for s in services] == [_address(0), _address(2)]


def test_reader_passes_non_revert_errors_through() -> None:
    def broken(to: str, data: bytes) -> bytes:
        raise RemoteError("connection refused", kind="retryable")

    with pytest.raises(RemoteError, match="connection refused"):
        ComputeContracts(broken, ledger=LEDGER_CA, inference=INFERENCE_CA).get_account(
            USER, PROVIDER
        )


def test_checksum_and_networks() -> None:
    assert compute.checksum_address(PROVIDER.lower()) == PROVIDER
    with pytest.raises(UsageError):
        compute.checksum_address("0x1234")
    with pytest.raises(UsageError, match="bad arguments for getService"):
        compute.encode_get_service("0xnot-an-address")
    assert (
        compute.network_for_chain(16602).inference == "0xa79F4c8311FF93C06b8CfB403690cc987c93F91E"
    )
    assert compute.network_for_chain(31337).ledger == "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
    with pytest.raises(ConfigError):
        compute.network_for_chain(1)


# --- provider errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind", "error"),
    [
        (None, None, "retryable", RemoteError),
        (429, '{"error":{"type":"rate_limit","message":"slow down"}}', "retryable", RemoteError),
        (502, "bad gateway", "retryable", RemoteError),
        (503, '{"error":"too many requests in flight"}', "retryable", RemoteError),
        (504, "", "retryable", RemoteError),
        (500, '{"error":"upstream exploded"}', "fatal", RemoteError),
        (
            400,
            '{"error":"validate request: insufficient balance: your locked balance is 1 0G"}',
            "funding",
            QuotaExceeded,
        ),
        (400, '{"error":"get account from contract, account not exist"}', "funding", QuotaExceeded),
        (
            400,
            '{"error":"user not acknowledge the provider, please use acknowledgeProviderSigner"}',
            "funding",
            QuotaExceeded,
        ),
        (400, '{"error":"session token expired"}', "auth", PermissionDenied),
        (
            400,
            '{"error":"signature verification failed: address mismatch"}',
            "auth",
            PermissionDenied,
        ),
        (400, '{"error":"service not acknowledge the tee signer"}', "fatal", RemoteError),
        (400, '{"error":"unknown model foo"}', "usage", UsageError),
        (410, '{"error":"model expired"}', "usage", NotFound),
        (413, "too big", "usage", UsageError),
    ],
)
def test_provider_error_classification(
    status: int | None, body: str | None, kind: str, error: type[Exception]
) -> None:
    failure = compute.classify_provider_error(status, body)
    assert failure.kind == kind
    assert failure.retryable is (kind == "retryable")
    assert isinstance(failure.to_error("http://127.0.0.1:1"), error)


def test_provider_error_messages_and_retry_after() -> None:
    assert compute.provider_error_message(b'{"error":"x"}') == "x"
    assert compute.provider_error_message('{"error":{"message":"y"}}') == "y"
    assert compute.provider_error_message("plain text\n") == "plain text"
    failure = compute.classify_provider_error(429, "", {"retry-after": "7"})
    assert failure.retry_after == 7.0 and failure.message == "HTTP 429"
    dated = compute.classify_provider_error(
        503, "", {"Retry-After": "Thu, 01 Jan 2026 00:00:30 GMT"}, now=1767225600.0
    )
    assert dated.retry_after == 30.0
    assert compute.parse_retry_after("soon") is None


# --- streams and answers -----------------------------------------------------------------------


def _sse(*chunks: dict[str, Any]) -> bytes:
    lines = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
    return b"".join(lines) + b": keep-alive\n\ndata: [DONE]\n\n"


def test_stream_parser_deltas_usage_and_id() -> None:
    body = _sse(
        {"id": "chat-1", "model": "m", "choices": [{"delta": {"role": "assistant"}}]},
        {"id": "chat-1", "choices": [{"delta": {"content": "Hel"}}]},
        {"id": "chat-1", "choices": [{"delta": {"content": "lo é"}, "finish_reason": "stop"}]},
        {"id": "chat-1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    )
    stream = ChatStream()
    deltas: list[str] = []
    for i in range(0, len(body), 7):  # split mid-line and mid-character
        deltas += stream.feed(body[i : i + 7])
    deltas += stream.close()
    assert deltas == ["Hel", "lo é"]
    assert stream.text == "Hello é"
    assert stream.chat_id == "chat-1" and stream.model == "m"
    assert stream.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert stream.finish_reason == "stop" and stream.done

    lines = body.decode().splitlines()
    again = ChatStream()
    assert list(compute.iter_stream_deltas(lines, again)) == deltas
    assert again.usage == stream.usage


def test_stream_parser_skips_junk_and_raises_on_error_chunks() -> None:
    stream = ChatStream()
    assert stream.feed_line("data: not json") is None
    assert stream.feed_line("event: ping") is None
    with pytest.raises(RemoteError, match="boom"):
        stream.feed_line('data: {"error": {"message": "boom"}}')


def test_request_body_and_answers() -> None:
    body = compute.chat_request_body(
        "m", [{"role": "user", "content": "hi"}], max_tokens=5, stream=True
    )
    assert json.loads(body) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert b" " not in body
    answer = {"id": "c1", "choices": [{"message": {"content": "yo"}}]}
    assert compute.chat_answer(answer) == "yo"
    with pytest.raises(ProtocolError):
        compute.chat_answer({"choices": []})
    assert compute.chat_id_from({"zg-res-key": "k"}, answer) == "k"
    assert compute.chat_id_from({}, answer) == "c1"
    assert compute.chat_id_from(None, None) is None
    assert compute.parse_unsettled_fee({"unsettledFee": "12"}) == 12
    assert compute.parse_models({"data": [{"id": "m"}, 3]}) == [{"id": "m"}]
    with pytest.raises(ProtocolError):
        compute.parse_models({})


def test_urls() -> None:
    url = "http://127.0.0.1:8545/provider/"
    assert compute.chat_completions_url(url) == (
        "http://127.0.0.1:8545/provider/v1/proxy/chat/completions"
    )
    assert compute.signature_url(url, "a/b", "m 1") == (
        "http://127.0.0.1:8545/provider/v1/proxy/signature/a%2Fb?model=m%201"
    )
    assert compute.models_url(url).endswith("/provider/v1/models")
    assert compute.unsettled_fee_url(url, USER).endswith(f"/v1/user/{USER}/unsettledfee")


def test_protocol_layer_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, zerog_cli.zerog.compute; "
        "heavy = [m for m in ('eth_account', 'eth_abi', 'requests', 'zerog_cli.cli', "
        "'zerog_cli.services', 'zerog_cli.ledger') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
