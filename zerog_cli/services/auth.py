"""Signing and verification with the configured wallet, with ledger-backed replay protection."""

from __future__ import annotations

from collections.abc import Sequence
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
    """Recover the signer (EIP-191); check ``expected_address``; consume the message's nonce.

    The nonce is the message's ``Nonce:`` line (EIP-4361), not any text in it.
    """
    _check_nonce_flags(nonce, scope)
    signer = signing.recover_message_signer(message, signature)
    signed_nonce = signing.message_nonce(message)
    return _accept(context, signer, expected_address, signed_nonce, nonce, scope, "`Nonce:` line")


def verify_typed(
    context: Context,
    path: Path,
    signature: str,
    *,
    expected_address: str | None = None,
    nonce: str | None = None,
    scope: str | None = None,
) -> dict[str, Any]:
    """Recover the signer of EIP-712 typed data; the nonce is its message's ``nonce`` field."""
    _check_nonce_flags(nonce, scope)
    typed = signing.load_typed_data(path)
    signer = signing.recover_typed_signer(typed, signature)
    signed_nonce = signing.typed_nonce(typed)
    result = _accept(context, signer, expected_address, signed_nonce, nonce, scope, "nonce field")
    result["primary_type"] = typed["primaryType"]
    result["domain"] = signing.typed_domain(typed)
    return result


def _check_nonce_flags(nonce: str | None, scope: str | None) -> None:
    if nonce is not None and scope is None:
        raise UsageError("--nonce needs --scope: the nonce is recorded once per scope")


def _accept(
    context: Context,
    signer: str,
    expected_address: str | None,
    signed_nonce: str | None,
    claimed_nonce: str | None,
    scope: str | None,
    field: str,
) -> dict[str, Any]:
    """Check the signer, then bind the signed nonce (one signature, one nonce) and consume it."""
    if expected_address is not None and signer.lower() != expected_address.lower():
        raise PermissionDenied(f"signature is by {signer}, not {expected_address}")
    result: dict[str, Any] = {"valid": True, "signer": signer, "signed_nonce": signed_nonce}
    if scope is None:
        return result
    if signed_nonce is None:
        raise PermissionDenied(f"the signed data has no {field}, so it binds no nonce: refused")
    if claimed_nonce is not None and claimed_nonce != signed_nonce:
        raise PermissionDenied(
            f"the signed nonce is {signed_nonce!r}, not {claimed_nonce!r}: refused"
        )
    from zerog_cli.ledger import nonces

    with context.ledger.transaction() as conn:
        result["nonce_recorded_at"] = nonces.consume(conn, scope, signed_nonce, signer)
    result["nonce"] = signed_nonce
    result["scope"] = scope
    return result


def sign_typed(
    context: Context,
    path: Path,
    purpose: str = "signing",
    allowed_chain_ids: Sequence[int] = (),
) -> dict[str, Any]:
    """Sign EIP-712 typed data, only for the profile's chain unless another chain is allowed.

    The result names the domain, the primary type and the key, so the operator
    sees what was signed; ``warnings`` says when the signing key fell back to
    the storage key.
    """
    typed = signing.load_typed_data(path)
    domain = signing.typed_domain(typed)
    settings = context.settings
    chain_id = domain["chainId"]
    if chain_id is None:
        raise UsageError(
            "the EIP-712 domain names no chainId: a signature over it is valid on every chain; "
            "refused"
        )
    expected = settings.chain_id
    if chain_id != expected and chain_id not in allowed_chain_ids:
        raise UsageError(
            f"the typed data is for chain {chain_id}, but profile {settings.profile} is chain "
            f"{expected}: refused",
            hint=f"pass --allow-chain-id {chain_id} if you mean to sign for chain {chain_id}",
        )
    key = _key(context, purpose)
    warnings = []
    if purpose == "signing" and key.secret_name != signing.SIGNING_KEY:
        warnings.append(
            f"{signing.SIGNING_KEY} is not set: signing with {key.secret_name} "
            f"({key.source}), the wallet that pays for storage"
        )
    account = key.account()
    signature, digest = signing.sign_typed_data(account, typed)
    return {
        "address": account.address,
        "signature": signature,
        "digest": digest,
        "scheme": "EIP-712",
        "primary_type": typed["primaryType"],
        "domain": domain,
        "secret": key.secret_name,
        "warnings": warnings,
    }
