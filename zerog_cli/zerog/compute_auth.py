"""The ``Authorization: Bearer app-sk-…`` token of 0G compute (specs/0g-compute.md 3.2-3.4).

Client side: build the RAW JSON (fixed key order, compact), sign EIP-191 over
the 32 raw bytes of keccak256(RAW), base64 ``RAW|SIG``. ``now_ms`` and
``nonce`` are injectable so the conformance vectors reproduce byte for byte.

Provider side: `parse_authorization` and `validate_token` apply the provider
broker's checks 1-6 in its order and with its messages (raised as
`PermissionDenied`), so the devnet provider rejects exactly what a real one
rejects. The broker caches validated tokens and sub-accounts for minutes;
this validator does not, so a revocation is seen at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import PermissionDenied, UsageError
from zerog_cli.zerog.abi import keccak256

if TYPE_CHECKING:
    from zerog_cli.zerog.compute_abi import SubAccount

EPHEMERAL_TOKEN_ID = 255
MAX_API_KEY_ID = 254
EPHEMERAL_MAX_DURATION_MS = 24 * 3600 * 1000
REFRESH_MARGIN_MS = 3600 * 1000
"""The SDK makes a new ephemeral token when less than this is left."""
TOKEN_PREFIX = "app-sk-"
BEARER_PREFIX = "Bearer " + TOKEN_PREFIX

_EIP191_PREFIX_32 = b"\x19Ethereum Signed Message:\n32"


@dataclass(frozen=True)
class SessionToken:
    """The signed fields, in the order they appear in RAW."""

    address: str
    provider: str
    timestamp: int
    expires_at: int
    nonce: str
    generation: int
    token_id: int

    def raw_message(self) -> str:
        """RAW exactly as the TS SDK's ``JSON.stringify`` writes it."""
        fields = {
            "address": self.address,
            "provider": self.provider,
            "timestamp": self.timestamp,
            "expiresAt": self.expires_at,
            "nonce": self.nonce,
            "generation": self.generation,
            "tokenId": self.token_id,
        }
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)

    @property
    def ephemeral(self) -> bool:
        return self.token_id == EPHEMERAL_TOKEN_ID


@dataclass(frozen=True)
class SignedToken:
    """A token with its exact RAW text and ``0x`` signature, and the header forms."""

    token: SessionToken
    raw: str
    signature: str

    @property
    def api_key(self) -> str:
        """``app-sk-…``: what OpenAI clients take as ``api_key``."""
        payload = (self.raw + "|" + self.signature).encode("utf-8")
        return TOKEN_PREFIX + base64.b64encode(payload).decode("ascii")

    @property
    def authorization(self) -> str:
        return "Bearer " + self.api_key

    def headers(self) -> dict[str, str]:
        """The one header inference requests carry."""
        return {"Authorization": self.authorization}

    def split_headers(self) -> dict[str, str]:
        """Provider-owner endpoints' form (3.3); never for inference."""
        return {
            "Address": self.token.address,
            "Session-Token": self.raw,
            "Session-Signature": self.signature,
        }

    def needs_refresh(self, now_ms: int | None = None) -> bool:
        """True when under an hour of life is left (never for a non-expiring API key)."""
        if self.token.expires_at == 0:
            return False
        now = _now_ms() if now_ms is None else now_ms
        return self.token.expires_at - now < REFRESH_MARGIN_MS


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def random_nonce() -> str:
    """32 lowercase hex characters from 16 random bytes (the browser SDK's form)."""
    return secrets.token_hex(16)


def eip191_digest_32(message_hash: bytes) -> bytes:
    """keccak256("\\x19Ethereum Signed Message:\\n32" ‖ hash): what is actually signed."""
    return keccak256(_EIP191_PREFIX_32 + message_hash)


def sign_session_token(private_key: str | bytes, token: SessionToken) -> SignedToken:
    """Sign RAW: EIP-191 personal message over the 32 bytes of keccak256(RAW)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    raw = token.raw_message()
    message = encode_defunct(primitive=keccak256(raw.encode("utf-8")))
    signed = Account.sign_message(message, private_key)
    return SignedToken(token, raw, "0x" + bytes(signed.signature).hex())


def address_of(private_key: str | bytes) -> str:
    """EIP-55 address of a private key."""
    from eth_account import Account

    return str(Account.from_key(private_key).address)


def new_session_token(
    private_key: str | bytes,
    provider: str,
    *,
    generation: int = 0,
    duration_ms: int = EPHEMERAL_MAX_DURATION_MS,
    now_ms: int | None = None,
    nonce: str | None = None,
) -> SignedToken:
    """An ephemeral token (tokenId 255) for per-request auth; at most 24 h of life.

    ``provider`` goes into RAW exactly as given (the TS SDK does not checksum it).
    """
    if not 0 < duration_ms <= EPHEMERAL_MAX_DURATION_MS:
        raise UsageError("an ephemeral token lasts more than 0 and at most 24 hours")
    return _issue(private_key, provider, EPHEMERAL_TOKEN_ID, duration_ms, generation, now_ms, nonce)


def pick_token_id(revoked_bitmap: int, requested: int | None = None) -> int:
    """The API key id: the requested one unless revoked, else the lowest not revoked."""
    if requested is not None:
        if not 0 <= requested <= MAX_API_KEY_ID:
            raise UsageError(f"API key token id must be 0-{MAX_API_KEY_ID}, got {requested}")
        if revoked_bitmap >> requested & 1:
            raise UsageError(f"API key token id {requested} is revoked; choose another")
        return requested
    for token_id in range(MAX_API_KEY_ID + 1):
        if not revoked_bitmap >> token_id & 1:
            return token_id
    raise UsageError("every API key token id is revoked; run revoke-all-tokens to reset")


def new_api_key(
    private_key: str | bytes,
    provider: str,
    *,
    generation: int = 0,
    revoked_bitmap: int = 0,
    token_id: int | None = None,
    expires_in_ms: int = 0,
    now_ms: int | None = None,
    nonce: str | None = None,
) -> SignedToken:
    """A persistent API key (tokenId 0-254); ``expires_in_ms`` 0 means it never expires."""
    if expires_in_ms < 0:
        raise UsageError("API key lifetime must not be negative")
    chosen = pick_token_id(revoked_bitmap, token_id)
    return _issue(private_key, provider, chosen, expires_in_ms, generation, now_ms, nonce)


def _issue(
    private_key: str | bytes,
    provider: str,
    token_id: int,
    lifetime_ms: int,
    generation: int,
    now_ms: int | None,
    nonce: str | None,
) -> SignedToken:
    """A token issued now (or at ``now_ms``) and signed; ``lifetime_ms`` 0: no expiry."""
    now = _now_ms() if now_ms is None else now_ms
    token = SessionToken(
        address=address_of(private_key),
        provider=provider,
        timestamp=now,
        expires_at=now + lifetime_ms if lifetime_ms else 0,
        nonce=random_nonce() if nonce is None else nonce,
        generation=generation,
        token_id=token_id,
    )
    return sign_session_token(private_key, token)


# --- provider side -----------------------------------------------------------------------------


_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)
_UINT8 = (0, 255)


def _format_error(detail: str) -> PermissionDenied:
    return PermissionDenied(f"invalid session token format in Authorization: {detail}")


def _int_field(fields: dict[str, Any], key: str, bounds: tuple[int, int]) -> int:
    """An integer RAW field as Go unmarshals it: missing is 0, wrong type or range fails."""
    value = fields.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise _format_error(f"{key} is not an integer")
    if not bounds[0] <= value <= bounds[1]:
        raise _format_error(f"{key} is out of range")
    return value


def _str_field(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _format_error(f"{key} is not a string")
    return value


def parse_authorization(header: str | None) -> SignedToken:
    """Check 1: ``Bearer app-sk-`` + base64 of ``RAW|SIG`` with RAW a JSON object."""
    if not header or not header.startswith(BEARER_PREFIX):
        raise PermissionDenied(
            "missing or invalid Authorization header, "
            "must be Bearer app-sk-<base64(rawMessage:signature)>"
        )
    try:
        decoded = base64.b64decode(header[len(BEARER_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise PermissionDenied(
            "invalid base64 in Authorization header: illegal base64 data"
        ) from None
    raw_bytes, bar, signature_bytes = decoded.partition(b"|")
    if not bar:
        raise PermissionDenied("invalid Authorization payload, expect base64(rawMessage:signature)")
    try:
        fields = json.loads(raw_bytes)
    except ValueError as exc:
        raise _format_error(str(exc)) from None
    if not isinstance(fields, dict):
        raise _format_error("not a JSON object")
    token = SessionToken(
        address=_str_field(fields, "address"),
        provider=_str_field(fields, "provider"),
        timestamp=_int_field(fields, "timestamp", _INT64),
        expires_at=_int_field(fields, "expiresAt", _INT64),
        nonce=_str_field(fields, "nonce"),
        generation=_int_field(fields, "generation", _UINT64),
        token_id=_int_field(fields, "tokenId", _UINT8),
    )
    return SignedToken(
        token, raw_bytes.decode("utf-8"), signature_bytes.decode("utf-8", errors="replace")
    )


def _decode_signature(signature: str) -> bytes:
    if not signature.startswith(("0x", "0X")):
        raise PermissionDenied("invalid signature format: hex string without 0x prefix")
    digits = signature[2:]
    if len(digits) % 2:
        raise PermissionDenied("invalid signature format: hex string of odd length")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise PermissionDenied("invalid signature format: invalid hex string") from None


def recover_token_signer(signed: SignedToken) -> str:
    """Address that signed RAW (checks the signature's shape as the broker does)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    signature = _decode_signature(signed.signature)
    if len(signature) != 65:
        raise PermissionDenied("invalid signature length")
    if signature[64] not in (27, 28):
        raise PermissionDenied(
            "failed to recover public key from signature: invalid signature recovery id"
        )
    message = encode_defunct(primitive=keccak256(signed.raw.encode("utf-8")))
    try:
        return str(Account.recover_message(message, signature=signature))
    except Exception as exc:  # eth_keys raises BadSignature / ValidationError variants
        raise PermissionDenied(f"failed to recover public key from signature: {exc}") from None


def validate_token(
    signed: SignedToken,
    *,
    provider: str,
    now_s: int,
    account_for: Callable[[str], SubAccount | None],
) -> SessionToken:
    """Checks 2-6 of the provider broker, in order; returns the accepted token.

    ``account_for(user_address)`` gives the user's sub-account at this provider
    (None when there is none: such a token passes the revocation check).
    """
    token = signed.token
    if token.provider.lower() != provider.lower():
        raise PermissionDenied("session token is for different provider")
    if token.ephemeral:
        if token.expires_at == 0:
            raise PermissionDenied("ephemeral token must have an expiration time")
        if token.expires_at - token.timestamp > EPHEMERAL_MAX_DURATION_MS:
            raise PermissionDenied("ephemeral token duration cannot exceed 24 hours")
    if token.expires_at > 0 and now_s > token.expires_at // 1000:
        raise PermissionDenied("session token expired")
    account = account_for(token.address)
    if account is not None:
        if token.generation < account.generation:
            raise PermissionDenied("session token has been revoked (generation expired)")
        if token.generation > account.generation:
            raise PermissionDenied("invalid session token (future generation)")
        if not token.ephemeral and account.revoked_bitmap >> token.token_id & 1:
            raise PermissionDenied("session token has been revoked")
    if recover_token_signer(signed).lower() != token.address.lower():
        raise PermissionDenied("signature verification failed: address mismatch")
    return token


def check_authorization(
    header: str | None,
    *,
    provider: str,
    now_s: int,
    account_for: Callable[[str], SubAccount | None],
) -> SessionToken:
    """Checks 1-6: what a provider broker does with an inference request's header."""
    return validate_token(
        parse_authorization(header), provider=provider, now_s=now_s, account_for=account_for
    )
