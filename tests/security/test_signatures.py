"""Items 3 and 6: a signature binds one nonce, and typed data is signed only as meant.

Nonces (kind "nonce"): `auth verify` used to accept a nonce that appeared
anywhere in the signed text, so one signature over "deploy nonce=42" passed for
42, 4, 2, "=42", "deploy" and "e". The nonce is now the message's one
``Nonce:`` line (EIP-4361) or the ``nonce`` field of EIP-712 typed data; every
other claim is refused (exit 5) and records no nonce. High-s signatures
(EIP-2) are refused too.

Typed data (kind "typed data"): `auth sign-typed` of a USDC Permit for chain 1
with unlimited value, on a profile of another chain, is refused; when allowed,
the domain and primary type are shown, and the key is
ZEROG_SIGNING_PRIVATE_KEY, or the storage key with a warning.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_ADDRESS, Result
from tests.security.conftest import AttackContext
from zerog_cli.infra.signing import SECP256K1_N

# A second throwaway key, for ZEROG_SIGNING_PRIVATE_KEY.
SIGNING_PRIVATE_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
UNLIMITED = 2**256 - 1


def nonce_rows(zerog: Callable[..., Result]) -> list[dict[str, Any]]:
    result = zerog("ledger", "sql", "SELECT scope, nonce, address FROM nonces", "--json")
    assert result.exit_code == 0, result
    return list(result.json["rows"])


def refused(result: Result, code: int = 5) -> None:
    assert result.exit_code == code, result
    assert result.stdout == "", result
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")], result


def high_s(signature: str) -> str:
    """The malleable twin of a signature: (r, n - s) with the other recovery id."""
    raw = bytes.fromhex(signature.removeprefix("0x"))
    r, s, v = raw[:32], int.from_bytes(raw[32:64], "big"), raw[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v if v in (27, 28) else v ^ 1])
    return "0x" + twin.hex()


@pytest.mark.parametrize("claim", ["42", "4", "2", "=42", "deploy", "e"])
def test_a_nonce_that_only_appears_in_the_text_binds_nothing(
    zerog: Callable[..., Result], test_key_env: str, attack: AttackContext, claim: str
) -> None:
    message = "deploy nonce=42"
    signature = zerog("auth", "sign", message).stdout.strip()
    with attack("nonce", f"claim {claim!r} of a signature over {message!r}"):
        result = zerog("auth", "verify", message, signature, "--nonce", claim, "--scope", "d")
        refused(result)
        assert "binds no nonce" in result.stderr
        assert nonce_rows(zerog) == []


def test_a_nonce_line_binds_exactly_one_nonce(
    zerog: Callable[..., Result], test_key_env: str, attack: AttackContext
) -> None:
    message = "deploy build 7\nNonce: 42"
    signature = zerog("auth", "sign", message).stdout.strip()
    for claim in ("4", "2", "42 ", "Nonce: 42", "deploy"):
        with attack("nonce", f"claim {claim!r} of a signature over Nonce: 42"):
            refused(zerog("auth", "verify", message, signature, "--nonce", claim, "--scope", "d"))
            assert nonce_rows(zerog) == []
    accepted = zerog(
        "auth", "verify", message, signature, "--nonce", "42", "--scope", "d", "--json"
    )
    assert accepted.exit_code == 0, accepted
    assert accepted.json["nonce"] == "42"
    with attack("nonce", "replay of the accepted signature, nonce taken from the message"):
        replay = zerog("auth", "verify", message, signature, "--scope", "d")
        refused(replay)
        assert "replay refused" in replay.stderr
        assert nonce_rows(zerog) == [{"scope": "d", "nonce": "42", "address": TEST_ADDRESS}]


@pytest.mark.parametrize(
    "message",
    [
        "deploy\nNonce: 41\nNonce: 42",
        "deploy\nNonce: 42\nnonce: 43",
        "deploy\n  Nonce: 42",
        "deploy\nNonce:  42",
        "deploy\nNonce: 42 ",
        "deploy\nnonce: 42",
    ],
)
def test_ambiguous_or_malformed_nonce_lines_are_refused(
    zerog: Callable[..., Result], test_key_env: str, attack: AttackContext, message: str
) -> None:
    signature = zerog("auth", "sign", message).stdout.strip()
    with attack("nonce", f"nonce lines {message.splitlines()[1:]!r}"):
        refused(zerog("auth", "verify", message, signature, "--nonce", "42", "--scope", "d"))
        assert nonce_rows(zerog) == []


def test_a_high_s_signature_is_refused(
    zerog: Callable[..., Result], test_key_env: str, attack: AttackContext
) -> None:
    message = "deploy\nNonce: 7"
    signature = zerog("auth", "sign", message).stdout.strip()
    twin = high_s(signature)
    assert twin != signature
    with attack("nonce", "high-s twin of a valid signature (EIP-2)"):
        result = zerog("auth", "verify", message, twin, "--address", TEST_ADDRESS, "--scope", "d")
        refused(result)
        assert "high s" in result.stderr
        assert nonce_rows(zerog) == []
    assert zerog("auth", "verify", message, signature, "--scope", "d").exit_code == 0


def typed_order(nonce: int, *, declared: bool = True, chain_id: int = 31337) -> dict[str, Any]:
    fields = [{"name": "amount", "type": "uint256"}]
    if declared:
        fields.append({"name": "nonce", "type": "uint256"})
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "Order": fields,
        },
        "primaryType": "Order",
        "domain": {"name": "zerog orders", "chainId": chain_id},
        "message": {"amount": 5, "nonce": nonce},
    }


def write_json(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_typed_data_binds_its_nonce_field(
    zerog: Callable[..., Result], test_key_env: str, tmp_path: Path, attack: AttackContext
) -> None:
    order = write_json(tmp_path / "order.json", typed_order(9))
    signature = zerog("auth", "sign-typed", str(order), "--key", "storage").stdout.strip()
    with attack("nonce", "typed data: claim another nonce than the signed field"):
        refused(
            zerog("auth", "verify-typed", str(order), signature, "--nonce", "8", "--scope", "o")
        )
        assert nonce_rows(zerog) == []
    first = zerog("auth", "verify-typed", str(order), signature, "--scope", "o", "--json")
    assert first.exit_code == 0, first
    assert (first.json["signer"], first.json["nonce"]) == (TEST_ADDRESS, "9")
    with attack("nonce", "typed data: replay"):
        refused(zerog("auth", "verify-typed", str(order), signature, "--scope", "o"))
        assert len(nonce_rows(zerog)) == 1
    with attack("nonce", "typed data: high-s twin"):
        refused(zerog("auth", "verify-typed", str(order), high_s(signature), "--scope", "p"))
        assert len(nonce_rows(zerog)) == 1

    undeclared = write_json(tmp_path / "undeclared.json", typed_order(10, declared=False))
    signature = zerog("auth", "sign-typed", str(undeclared), "--key", "storage").stdout.strip()
    with attack("nonce", "typed data: a nonce key the types do not declare (not signed)"):
        result = zerog("auth", "verify-typed", str(undeclared), signature, "--scope", "o")
        refused(result)
        assert "binds no nonce" in result.stderr
        assert len(nonce_rows(zerog)) == 1


def usdc_permit(chain_id: int | None = 1) -> dict[str, Any]:
    domain: dict[str, Any] = {"name": "USD Coin", "version": "2", "verifyingContract": USDC}
    domain_fields = [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "verifyingContract", "type": "address"},
    ]
    if chain_id is not None:
        domain["chainId"] = chain_id
        domain_fields.insert(2, {"name": "chainId", "type": "uint256"})
    return {
        "types": {
            "EIP712Domain": domain_fields,
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": domain,
        "message": {
            "owner": TEST_ADDRESS,
            "spender": "0x000000000000000000000000000000000000dEaD",
            "value": UNLIMITED,
            "nonce": 0,
            "deadline": UNLIMITED,
        },
    }


def test_a_permit_for_another_chain_is_refused(
    zerog: Callable[..., Result], test_key_env: str, tmp_path: Path, attack: AttackContext
) -> None:
    permit = write_json(tmp_path / "permit.json", usdc_permit(1))
    with attack("typed data", "USDC Permit for chain 1, unlimited value, on the devnet profile"):
        result = zerog("auth", "sign-typed", str(permit))
        refused(result, 2)
        assert "for chain 1, but profile devnet is chain 31337" in result.stderr
        assert "--allow-chain-id 1" in result.stderr
    with attack("typed data", "a domain without chainId (valid on every chain)"):
        no_chain = write_json(tmp_path / "no-chain.json", usdc_permit(None))
        result = zerog("auth", "sign-typed", str(no_chain), "--allow-chain-id", "1")
        refused(result, 2)
        assert "no chainId" in result.stderr
    with attack("typed data", "a key name that is not a wallet purpose"):
        refused(zerog("auth", "sign-typed", str(permit), "--key", "bogus"), 2)


def test_an_allowed_permit_shows_what_is_signed_and_warns_of_the_storage_key(
    zerog: Callable[..., Result], test_key_env: str, tmp_path: Path, attack: AttackContext
) -> None:
    permit = write_json(tmp_path / "permit.json", usdc_permit(1))
    with attack("typed data", "sign with the storage key when no signing key is set"):
        result = zerog("auth", "sign-typed", str(permit), "--allow-chain-id", "1", "--json")
        assert result.exit_code == 0, result
        assert result.json["address"] == TEST_ADDRESS
        assert result.json["domain"] == {
            "name": "USD Coin",
            "version": "2",
            "chainId": 1,
            "verifyingContract": USDC,
        }
        assert result.json["primary_type"] == "Permit"
        assert f"signing EIP-712 Permit for 'USD Coin' (chain 1, contract {USDC})" in (
            result.stderr
        )
        assert "warning: ZEROG_SIGNING_PRIVATE_KEY is not set: signing with " in result.stderr
        assert "ZEROG_STORAGE_PRIVATE_KEY" in result.stderr


def test_typed_data_is_signed_with_its_own_key(
    zerog: Callable[..., Result],
    test_key_env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZEROG_SIGNING_PRIVATE_KEY", SIGNING_PRIVATE_KEY)
    order = write_json(tmp_path / "order.json", typed_order(3))
    result = zerog("auth", "sign-typed", str(order), "--json")
    assert result.exit_code == 0, result
    assert result.json["secret"] == "ZEROG_SIGNING_PRIVATE_KEY"
    assert result.json["address"] != TEST_ADDRESS
    assert "warning" not in result.stderr
    verified = zerog("auth", "verify-typed", str(order), result.json["signature"], "--json")
    assert verified.json["signer"] == result.json["address"]
    listed = zerog("secrets", "ls", "--json")
    assert any(row["name"] == "ZEROG_SIGNING_PRIVATE_KEY" for row in listed.json["secrets"])
