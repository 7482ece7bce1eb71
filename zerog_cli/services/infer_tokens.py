"""Cached ``Authorization: Bearer app-sk-…`` tokens for 0G compute providers.

A token is a bearer secret (anyone holding it can spend the wallet's
sub-account at that provider until it expires), so it never goes into the
ledger, which `zerog ledger sql` can print. It lives in
``$ZEROG_HOME/compute-tokens.json``, written atomically with mode 0600, one
entry per (chain, wallet, provider). An entry is reused, like the SDK does,
until less than an hour of its 24 h life is left, or until the sub-account's
``generation`` moves (``revokeAllTokens``), or the provider rejects it.
Every token read or made is registered with `redaction` so no output can
show it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerog_cli.infra import redaction
from zerog_cli.infra.files import atomic_write_text, ensure_private_dir

FILE_NAME = "compute-tokens.json"
REFRESH_MARGIN_MS = 3600 * 1000
"""Make a new token when less than this is left (the SDK's rule)."""


@dataclass(frozen=True)
class CachedToken:
    authorization: str
    expires_at: int
    generation: int

    def usable(self, generation: int, now_ms: int) -> bool:
        return self.generation == generation and self.expires_at - now_ms >= REFRESH_MARGIN_MS


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class TokenCache:
    """Per-provider ephemeral tokens in a private file under ``home``."""

    def __init__(self, home: Path) -> None:
        self.path = home / FILE_NAME

    @staticmethod
    def _key(chain_id: int, wallet: str, provider: str) -> str:
        return f"{chain_id}:{wallet.lower()}:{provider.lower()}"

    def _load(self) -> dict[str, CachedToken]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries = document.get("tokens") if isinstance(document, dict) else None
        tokens: dict[str, CachedToken] = {}
        for key, entry in (entries or {}).items():
            try:
                token = CachedToken(
                    str(entry["authorization"]), int(entry["expires_at"]), int(entry["generation"])
                )
            except (KeyError, TypeError, ValueError):
                continue
            redaction.register(token.authorization.removeprefix("Bearer "))
            tokens[key] = token
        return tokens

    def _save(self, tokens: dict[str, CachedToken], now_ms: int) -> None:
        live: dict[str, Any] = {
            key: {
                "authorization": token.authorization,
                "expires_at": token.expires_at,
                "generation": token.generation,
            }
            for key, token in tokens.items()
            if token.expires_at > now_ms
        }
        ensure_private_dir(self.path.parent)
        atomic_write_text(self.path, json.dumps({"tokens": live}, indent=1), mode=0o600)

    def authorization(
        self,
        private_key: str,
        *,
        chain_id: int,
        wallet: str,
        provider: str,
        generation: int,
        now_ms: int | None = None,
        nonce: str | None = None,
    ) -> str:
        """A valid ``Bearer app-sk-…`` value for ``provider``: cached, or made and cached."""
        from zerog_cli.zerog.compute import new_session_token

        now = _now_ms() if now_ms is None else now_ms
        tokens = self._load()
        key = self._key(chain_id, wallet, provider)
        cached = tokens.get(key)
        if cached is not None and cached.usable(generation, now):
            return cached.authorization
        signed = new_session_token(
            private_key, provider, generation=generation, now_ms=now, nonce=nonce
        )
        redaction.register(signed.api_key)
        tokens[key] = CachedToken(signed.authorization, signed.token.expires_at, generation)
        self._save(tokens, now)
        return signed.authorization

    def forget(self, *, chain_id: int, wallet: str, provider: str) -> None:
        """Drop a token the provider refused, so the next call signs a fresh one."""
        tokens = self._load()
        if tokens.pop(self._key(chain_id, wallet, provider), None) is not None:
            self._save(tokens, _now_ms())
