"""``inference_log``: one row per inference request that reached the sending stage.

Every paid request is written here (prompt, answer, model, provider, token
counts, cost in neuron and micro-USD, chat id, duration, outcome, signature
check and what the signature bound), in the same transaction that settles
its quota reservation, so the log and the quota never disagree. Token counts
and cost are NULL when the provider never said how many tokens it billed (a
failed request, or a stream without ``usage``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from zerog_cli.ledger.db import LedgerConnection, utc_now

STATUSES = ("ok", "mismatch", "unverified", "error", "overclaimed")
"""``ok``: answered (and verified when checked); ``mismatch``: answered but the
response signature failed (exit 3); ``unverified``: answered but the signature
could not be fetched; ``error``: no usable answer; ``overclaimed``: answered,
but the provider reported more tokens than the request allowed (exit 3; the
row holds what was charged, the claim is in ``alerts``)."""


@dataclass(frozen=True)
class InferenceRecord:
    user: str
    network: str
    wallet: str
    provider: str
    model: str
    system: str | None
    prompt: str
    response: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_neuron: int | None
    usd_micro: int | None
    chat_id: str | None
    duration_ms: int
    status: str
    verified: bool | None
    verification: str | None
    error: str | None
    stream: bool
    max_tokens: int
    finish_reason: str | None
    binding: str | None = None
    """What a verified signature bound: request_and_response, response_only, signer_only."""
    backend: str = "direct"
    """``direct`` (a provider's broker) or ``router`` (the 0G Router; provider is its choice)."""


_COLUMNS = (
    "user, network, wallet, provider, model, system, prompt, response, prompt_tokens,"
    " completion_tokens, cost_neuron, usd_micro, chat_id, duration_ms, status, verified,"
    " verification, error, stream, max_tokens, finish_reason, binding, backend"
)


def insert(conn: LedgerConnection, record: InferenceRecord) -> int:
    """Write one row in the caller's transaction; neuron as decimal text (may exceed 64 bits)."""
    if record.status not in STATUSES:
        raise ValueError(f"unknown inference status {record.status!r}")
    cursor = conn.execute(
        f"INSERT INTO inference_log (created_at, {_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            utc_now(),
            record.user,
            record.network,
            record.wallet,
            record.provider,
            record.model,
            record.system,
            record.prompt,
            record.response,
            record.prompt_tokens,
            record.completion_tokens,
            None if record.cost_neuron is None else str(record.cost_neuron),
            record.usd_micro,
            record.chat_id,
            record.duration_ms,
            record.status,
            None if record.verified is None else int(record.verified),
            record.verification,
            record.error,
            int(record.stream),
            record.max_tokens,
            record.finish_reason,
            record.binding,
            record.backend,
        ),
    )
    return int(cursor.lastrowid or 0)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    row["verified"] = None if row["verified"] is None else bool(row["verified"])
    row["stream"] = bool(row["stream"])
    row["backend"] = row["backend"] or "direct"
    return row


def recent(
    conn: LedgerConnection, user: str | None, limit: int, offset: int = 0
) -> Iterator[dict[str, Any]]:
    """The newest ``limit`` rows of ``user`` (None: everyone) after the ``offset`` newest,
    as SQLite yields them."""
    if user is None:
        cursor = conn.execute(
            f"SELECT id, created_at, {_COLUMNS} FROM inference_log ORDER BY id DESC"
            " LIMIT ? OFFSET ?",
            (limit, offset),
        )
    else:
        cursor = conn.execute(
            f"SELECT id, created_at, {_COLUMNS} FROM inference_log WHERE user = ?"
            " ORDER BY id DESC LIMIT ? OFFSET ?",
            (user, limit, offset),
        )
    columns = [c[0] for c in cursor.description or ()]
    return (_row(dict(zip(columns, row, strict=True))) for row in cursor)
