"""Signing and verification with the configured wallet, with ledger-backed replay protection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zerog_cli.errors import PermissionDenied, UsageError
from zerog_cli.infra import signing
from zerog_cli.infra.choices import KeyPurpose
from zerog_cli.services.context import Context


@dataclass(frozen=True)
class WalletAddress:
    """`auth address`: the key's address, which secret holds the key and where it was found."""

    address: str
    secret: str
    source: str


@dataclass(frozen=True)
class Signed:
    """`auth sign`: an EIP-191 personal_sign signature of ``message``."""

    address: str
    message: str
    signature: str
    scheme: str


@dataclass(frozen=True)
class TypedDomain:
    """An EIP-712 domain as signed: name, version, chainId and verifyingContract (null:
    not in the domain)."""

    name: str | None
    version: str | None
    chainId: int | None
    verifyingContract: str | None


@dataclass(frozen=True)
class TypedSigned:
    """`auth sign-typed`: an EIP-712 signature, its digest, the domain and primary type
    signed, and the secret whose key signed."""

    address: str
    signature: str
    digest: str
    scheme: str
    primary_type: str
    domain: TypedDomain
    secret: str
    warnings: list[str]


@dataclass(frozen=True)
class Verified:
    """`auth verify`: the recovered signer; with --scope, the nonce consumed, its scope and
    when it was recorded (None without --scope)."""

    valid: bool
    signer: str
    signed_nonce: str | None
    nonce_recorded_at: str | None = None
    nonce: str | None = None
    scope: str | None = None


@dataclass(frozen=True)
class TypedVerified(Verified):
    """`auth verify-typed`: `Verified`, plus the primary type and domain of the typed data."""

    primary_type: str = ""
    domain: TypedDomain | None = None


def _key(context: Context, purpose: KeyPurpose) -> signing.WalletKey:
    return signing.wallet_key(context.secrets, devnet=context.settings.is_devnet, purpose=purpose)


def address(context: Context, purpose: KeyPurpose = KeyPurpose.STORAGE) -> WalletAddress:
    key = _key(context, purpose)
    return WalletAddress(address=key.address, secret=key.secret_name, source=key.source)


def sign(context: Context, message: str, purpose: KeyPurpose = KeyPurpose.STORAGE) -> Signed:
    key = _key(context, purpose)
    account = key.account()
    return Signed(
        address=account.address,
        message=message,
        signature=signing.sign_message(account, message),
        scheme="EIP-191 personal_sign",
    )


def verify(
    context: Context,
    message: str,
    signature: str,
    *,
    expected_address: str | None = None,
    nonce: str | None = None,
    scope: str | None = None,
) -> Verified:
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
) -> TypedVerified:
    """Recover the signer of EIP-712 typed data; the nonce is its message's ``nonce`` field."""
    _check_nonce_flags(nonce, scope)
    typed = signing.load_typed_data(path)
    signer = signing.recover_typed_signer(typed, signature)
    signed_nonce = signing.typed_nonce(typed)
    result = _accept(context, signer, expected_address, signed_nonce, nonce, scope, "nonce field")
    return TypedVerified(
        **result.__dict__,
        primary_type=str(typed["primaryType"]),
        domain=TypedDomain(**signing.typed_domain(typed)),
    )


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
) -> Verified:
    """Check the signer, then bind the signed nonce (one signature, one nonce) and consume it."""
    if expected_address is not None and signer.lower() != expected_address.lower():
        raise PermissionDenied(f"signature is by {signer}, not {expected_address}")
    if scope is None:
        return Verified(valid=True, signer=signer, signed_nonce=signed_nonce)
    if signed_nonce is None:
        raise PermissionDenied(f"the signed data has no {field}, so it binds no nonce: refused")
    if claimed_nonce is not None and claimed_nonce != signed_nonce:
        raise PermissionDenied(
            f"the signed nonce is {signed_nonce!r}, not {claimed_nonce!r}: refused"
        )
    from zerog_cli.ledger import nonces

    with context.ledger.transaction() as conn:
        recorded_at = nonces.consume(conn, scope, signed_nonce, signer)
    return Verified(
        valid=True,
        signer=signer,
        signed_nonce=signed_nonce,
        nonce_recorded_at=recorded_at,
        nonce=signed_nonce,
        scope=scope,
    )


def sign_typed(
    context: Context,
    path: Path,
    purpose: KeyPurpose = KeyPurpose.SIGNING,
    allowed_chain_ids: Sequence[int] = (),
) -> TypedSigned:
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
    if purpose is KeyPurpose.SIGNING and key.secret_name != signing.SIGNING_KEY:
        warnings.append(
            f"{signing.SIGNING_KEY} is not set: signing with {key.secret_name} "
            f"({key.source}), the wallet that pays for storage"
        )
    account = key.account()
    signature, digest = signing.sign_typed_data(account, typed)
    return TypedSigned(
        address=account.address,
        signature=signature,
        digest=digest,
        scheme="EIP-712",
        primary_type=str(typed["primaryType"]),
        domain=TypedDomain(**domain),
        secret=key.secret_name,
        warnings=warnings,
    )
