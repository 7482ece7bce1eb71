"""Signing and verification with the configured wallet, with ledger-backed replay protection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zerog_cli.errors import PermissionDenied, UsageError
from zerog_cli.infra import signing
from zerog_cli.services.context import Context


def _key(context: Context, purpose: str) -> signing.WalletKey:
    return signing.wallet_key(context.secrets, devnet=context.settings.is_devnet, purpose=purpose)


def address(context: Context, purpose: str = "storage") -> dict[str, Any]:
    key = _key(context, purpose)
    return {"address": key.address, "secret": key.secret_name, "source": key.source}


def sign(context: Context, message: str, purpose: str = "storage") -> dict[str, Any]:
    key = _key(context, purpose)
    account = key.account()
    return {
        "address": account.address,
        "message": message,
        "signature": signing.sign_message(account, message),
        "scheme": "EIP-191 personal_sign",
    }


def verify(
    context: Context,
    message: str,
    signature: str,
    *,
    expected_address: str | None = None,
    nonce: str | None = None,
    scope: str | None = None,
) -> dict[str, Any]:
    """Recover the signer; check it against ``expected_address``; consume the nonce once."""
    if (nonce is None) != (scope is None):
        raise UsageError("--nonce and --scope go together")
    if nonce is not None and nonce not in message:
        raise UsageError("the nonce must appear in the signed message, or it protects nothing")
    signer = signing.recover_message_signer(message, signature)
    if expected_address is not None and signer.lower() != expected_address.lower():
        raise PermissionDenied(f"signature is by {signer}, not {expected_address}")
    result: dict[str, Any] = {"valid": True, "signer": signer}
    if nonce is not None and scope is not None:
        from zerog_cli.ledger import nonces

        result["nonce_recorded_at"] = nonces.consume(context.ledger, scope, nonce, signer)
        result["nonce"] = nonce
        result["scope"] = scope
    return result


def sign_typed(context: Context, path: Path, purpose: str = "storage") -> dict[str, Any]:
    typed = signing.load_typed_data(path)
    account = _key(context, purpose).account()
    signature, digest = signing.sign_typed_data(account, typed)
    return {
        "address": account.address,
        "signature": signature,
        "digest": digest,
        "scheme": "EIP-712",
    }
