"""Signing: EIP-191, EIP-712 and ledger-backed replay protection."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import TEST_ADDRESS


def test_address_sign_and_verify(zerog, test_key_env: str) -> None:
    assert zerog("auth", "address").stdout.strip() == TEST_ADDRESS
    signature = zerog("auth", "sign", "hello zerog").stdout.strip()
    assert signature.startswith("0x") and len(signature) == 132
    verified = zerog(
        "auth", "verify", "hello zerog", signature, "--address", TEST_ADDRESS, "--json"
    )
    assert verified.exit_code == 0, verified
    assert verified.json["signer"] == TEST_ADDRESS


def test_verify_rejects_another_signer(zerog, test_key_env: str) -> None:
    signature = zerog("auth", "sign", "hello").stdout.strip()
    result = zerog(
        "auth",
        "verify",
        "hello",
        signature,
        "--address",
        "0x0000000000000000000000000000000000000001",
    )
    assert result.exit_code == 5


def test_verify_rejects_a_tampered_message(zerog, test_key_env: str) -> None:
    signature = zerog("auth", "sign", "pay 1").stdout.strip()
    result = zerog("auth", "verify", "pay 9", signature, "--address", TEST_ADDRESS)
    assert result.exit_code == 5


def test_nonce_replay_is_refused(zerog, test_key_env: str) -> None:
    message = "deploy build 7\nNonce: n-42"
    signature = zerog("auth", "sign", message).stdout.strip()
    first = zerog(
        "auth", "verify", message, signature, "--nonce", "n-42", "--scope", "deploys", "--json"
    )
    assert first.exit_code == 0, first
    replay = zerog("auth", "verify", message, signature, "--nonce", "n-42", "--scope", "deploys")
    assert replay.exit_code == 5
    assert "replay refused" in replay.stderr
    other_scope = zerog("auth", "verify", message, signature, "--nonce", "n-42", "--scope", "other")
    assert other_scope.exit_code == 0


def test_malformed_signature_is_a_usage_error(zerog) -> None:
    assert zerog("auth", "verify", "m", "0x1234").exit_code == 2
    assert zerog("auth", "verify", "m", "zz" * 65).exit_code == 2


def test_sign_typed(zerog, test_key_env: str, tmp_path: Path) -> None:
    document = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "Order": [{"name": "amount", "type": "uint256"}],
        },
        "primaryType": "Order",
        "domain": {"name": "zerog", "chainId": 31337},
        "message": {"amount": 5},
    }
    path = tmp_path / "order.json"
    path.write_text(json.dumps(document))
    result = zerog("auth", "sign-typed", str(path), "--json")
    assert result.exit_code == 0, result
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    recovered = Account.recover_message(
        encode_typed_data(full_message=document), signature=result.json["signature"]
    )
    assert recovered == TEST_ADDRESS
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert zerog("auth", "sign-typed", str(bad)).exit_code == 2
