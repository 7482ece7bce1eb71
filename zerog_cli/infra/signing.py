"""Wallet keys and signatures (eth-account, imported only when a key is used).

Keys come from the secret chain (`infra.secrets`). On the devnet profile, and
only there, a missing storage key falls back to the devnet's well-known,
publicly known development key so a new user can run everything offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import ConfigError, PermissionDenied, UsageError
from zerog_cli.infra import redaction
from zerog_cli.infra.choices import KeyPurpose

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from zerog_cli.infra.secrets import SecretStore

STORAGE_KEY = "ZEROG_STORAGE_PRIVATE_KEY"
COMPUTE_KEY = "ZEROG_COMPUTE_PRIVATE_KEY"
SIGNING_KEY = "ZEROG_SIGNING_PRIVATE_KEY"

# The secrets each purpose's key is looked up in, in order. Typed data
# (permits, orders) is signed with a key of its own, so that a signature
# asked for by a document never spends from the wallet that pays for storage
# unless the operator chose that.
KEY_CHAINS: dict[KeyPurpose, tuple[str, ...]] = {
    KeyPurpose.STORAGE: (STORAGE_KEY,),
    KeyPurpose.COMPUTE: (COMPUTE_KEY, STORAGE_KEY),
    KeyPurpose.SIGNING: (SIGNING_KEY, STORAGE_KEY),
}

# The order of the secp256k1 group. EIP-2: a signature's s must be at most n/2,
# so that (r, n - s) is not a second valid signature of the same message.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# Hardhat / Anvil account #0: published in every Ethereum dev tool, funded only
# on the local devnet. Never used outside the devnet profile.
DEVNET_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@dataclass(frozen=True)
class WalletKey:
    """A private key and the secret name it came from (for messages, never the value)."""

    secret_name: str
    source: str
    private_key: str

    def account(self) -> LocalAccount:
        return load_account(self.private_key, self.secret_name)

    @property
    def address(self) -> str:
        return self.account().address


def warm_up() -> None:
    """Import eth-account in a background thread (it takes about a second).

    Called by commands that will sign after other slow work, such as hashing a
    file, so the import overlaps that work instead of following it.
    """
    import importlib
    import threading

    threading.Thread(
        target=importlib.import_module,
        args=("eth_account",),
        name="eth-account-import",
        daemon=True,
    ).start()


def normalise_private_key(raw: str, secret_name: str) -> str:
    """A 0x-prefixed 64-hex-digit key, or ConfigError naming the secret (never its value)."""
    text = raw.strip()
    body = text[2:] if text.lower().startswith("0x") else text
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise ConfigError(
            f"secret {secret_name} is not a valid private key (expected 64 hex digits)",
        )
    if int(body, 16) == 0:
        raise ConfigError(f"secret {secret_name} is not a valid private key (zero)")
    return "0x" + body.lower()


def load_account(private_key: str, secret_name: str) -> LocalAccount:
    from eth_account import Account

    key = normalise_private_key(private_key, secret_name)
    redaction.register(key)
    try:
        return Account.from_key(key)
    except (ValueError, TypeError):
        raise ConfigError(f"secret {secret_name} is not a valid secp256k1 private key") from None


def wallet_key(
    secrets: SecretStore, *, devnet: bool, purpose: KeyPurpose = KeyPurpose.STORAGE
) -> WalletKey:
    """The key for ``purpose`` from the secret chain."""
    names = KEY_CHAINS[purpose]
    for name in names:
        found = secrets.lookup(name)
        if found.value is not None:
            return WalletKey(name, found.source or "?", normalise_private_key(found.value, name))
    if devnet:
        return WalletKey(names[-1], "devnet dev key", DEVNET_DEV_KEY)
    first = names[0]
    raise ConfigError(
        f"secret {first} is not set; {purpose} needs a wallet key",
        hint=f"export {first}_FILE=/path/to/key, or run `zerog secrets set {first}`",
    )


def sign_message(account: LocalAccount, message: str) -> str:
    """EIP-191 personal_sign of the UTF-8 message; 0x-prefixed 65-byte signature."""
    from eth_account.messages import encode_defunct

    signed = account.sign_message(encode_defunct(text=message))
    return "0x" + bytes(signed.signature).hex()


def signature_bytes(signature: str) -> bytes:
    """The 65 bytes of a 0x-hex signature: UsageError when malformed, PermissionDenied when
    its s is in the upper half of the curve order (malleable; EIP-2 refuses it)."""
    body = signature[2:] if signature.lower().startswith("0x") else signature
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise UsageError("signature is not hex") from None
    if len(raw) != 65:
        raise UsageError(f"signature must be 65 bytes, got {len(raw)}")
    if int.from_bytes(raw[32:64], "big") > SECP256K1_N // 2:
        raise PermissionDenied(
            "signature has a high s value (malleable): EIP-2 refuses it; sign again"
        )
    return raw


def recover_message_signer(message: str, signature: str) -> str:
    """The checksummed address that signed ``message`` (EIP-191)."""
    from eth_account.messages import encode_defunct

    return _recover(encode_defunct(text=message), signature)


def recover_typed_signer(typed_data: dict[str, Any], signature: str) -> str:
    """The checksummed address that signed the EIP-712 ``typed_data``."""
    return _recover(_encode_typed(typed_data), signature)


def _recover(signable: Any, signature: str) -> str:
    from eth_account import Account

    raw = signature_bytes(signature)
    try:
        return str(Account.recover_message(signable, signature=raw))
    except Exception as exc:
        raise UsageError(f"cannot recover a signer from that signature: {exc}") from None


def message_nonce(message: str) -> str | None:
    """The value of the message's ``Nonce:`` line (as in EIP-4361), None when it has none.

    The nonce is a field of its own, matched whole: text that merely contains
    the nonce somewhere binds nothing. A message with more than one line
    naming a nonce (in any case) is refused: one signature, one nonce.
    """
    found = [
        line.removesuffix("\r")
        for line in message.split("\n")
        if line.strip().lower().startswith("nonce:")
    ]
    if not found:
        return None
    if len(found) > 1:
        raise PermissionDenied(
            f"the signed message has {len(found)} nonce lines: one signature binds one nonce"
        )
    value = found[0].removeprefix("Nonce: ")
    if value == found[0] or not value or value != value.strip():
        raise PermissionDenied(
            f"the signed message's nonce line is not `Nonce: VALUE`: {found[0][:80]!r}"
        )
    return value


def typed_nonce(typed_data: dict[str, Any]) -> str | None:
    """The ``nonce`` field of the typed data's message, when its primary type declares one.

    Only a declared field is signed: a ``nonce`` key the types do not name is
    left out of the encoding, so it binds nothing and is not returned.
    """
    fields = typed_data["types"].get(typed_data["primaryType"], [])
    declared = any(isinstance(f, dict) and f.get("name") == "nonce" for f in fields)
    message = typed_data["message"]
    if not declared or not isinstance(message, dict) or message.get("nonce") is None:
        return None
    return str(message["nonce"])


def typed_domain(typed_data: dict[str, Any]) -> dict[str, Any]:
    """The domain's name, version, chainId (an int, or None) and verifyingContract (text,
    or None)."""
    domain = typed_data["domain"] if isinstance(typed_data["domain"], dict) else {}
    chain_id = domain.get("chainId")
    if chain_id is not None:
        try:
            chain_id = int(chain_id, 0) if isinstance(chain_id, str) else int(chain_id)
        except (TypeError, ValueError):
            raise UsageError(
                f"the EIP-712 domain's chainId is not a number: {chain_id!r}"
            ) from None
    return {
        "name": _text(domain.get("name")),
        "version": _text(domain.get("version")),
        "chainId": chain_id,
        "verifyingContract": _text(domain.get("verifyingContract")),
    }


def _text(value: Any) -> str | None:
    """A domain field EIP-712 types as text (string, address), as text; None when absent."""
    return None if value is None else str(value)


def load_typed_data(path: Path) -> dict[str, Any]:
    """Read an EIP-712 document ({types, primaryType, domain, message})."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable JSON file: {exc}") from None
    missing = {"types", "primaryType", "domain", "message"} - set(
        data if isinstance(data, dict) else {}
    )
    if missing:
        raise UsageError(f"{path} is not EIP-712 typed data: missing {', '.join(sorted(missing))}")
    if not isinstance(data["types"], dict) or not isinstance(data["primaryType"], str):
        raise UsageError(f"{path} is not EIP-712 typed data: types must be an object")
    return dict(data)


def _encode_typed(typed_data: dict[str, Any]) -> Any:
    from eth_account.messages import encode_typed_data

    try:
        return encode_typed_data(full_message=typed_data)
    except Exception as exc:
        raise UsageError(f"typed data does not encode: {exc}") from None


def sign_typed_data(account: LocalAccount, typed_data: dict[str, Any]) -> tuple[str, str]:
    """EIP-712 signature and the digest that was signed, both 0x-hex."""
    signed = account.sign_message(_encode_typed(typed_data))
    return "0x" + bytes(signed.signature).hex(), "0x" + bytes(signed.message_hash).hex()
