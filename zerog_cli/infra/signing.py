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

from zerog_cli.errors import ConfigError, UsageError
from zerog_cli.infra import redaction

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from zerog_cli.infra.secrets import SecretStore

STORAGE_KEY = "ZEROG_STORAGE_PRIVATE_KEY"
COMPUTE_KEY = "ZEROG_COMPUTE_PRIVATE_KEY"

# Hardhat / Anvil account #0: published in every Ethereum dev tool, funded only
# on the local devnet. Never used outside the devnet profile.
DEVNET_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEVNET_DEV_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


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


def wallet_key(secrets: SecretStore, *, devnet: bool, purpose: str = "storage") -> WalletKey:
    """The key for ``purpose`` ("storage" or "compute") from the secret chain."""
    names = [STORAGE_KEY] if purpose == "storage" else [COMPUTE_KEY, STORAGE_KEY]
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


def recover_message_signer(message: str, signature: str) -> str:
    """The checksummed address that signed ``message`` (EIP-191), or UsageError."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    body = signature[2:] if signature.lower().startswith("0x") else signature
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise UsageError("signature is not hex") from None
    if len(raw) != 65:
        raise UsageError(f"signature must be 65 bytes, got {len(raw)}")
    try:
        return str(Account.recover_message(encode_defunct(text=message), signature=raw))
    except Exception as exc:
        raise UsageError(f"cannot recover a signer from that signature: {exc}") from None


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
    return dict(data)


def sign_typed_data(account: LocalAccount, typed_data: dict[str, Any]) -> tuple[str, str]:
    """EIP-712 signature and the digest that was signed, both 0x-hex."""
    from eth_account.messages import encode_typed_data

    try:
        signable = encode_typed_data(full_message=typed_data)
    except Exception as exc:
        raise UsageError(f"typed data does not encode: {exc}") from None
    signed = account.sign_message(signable)
    return "0x" + bytes(signed.signature).hex(), "0x" + bytes(signed.message_hash).hex()
