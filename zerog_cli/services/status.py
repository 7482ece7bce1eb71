"""`zerog status`: is this machine ready, and what needs attention?

Reports the network and whether each endpoint answers (probed with one
attempt, outside the shared breakers so a status check never trips one), the
breaker states recorded in the ledger, ledger integrity and size, which
secrets are present (never their values) and the last good verification per
namespace. Every problem carries the exit code it maps to; the command exits
with the most important one, so monitoring can call it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from zerog_cli.errors import ExitCode, ZerogError, error_class
from zerog_cli.infra import redaction
from zerog_cli.infra.signing import STORAGE_KEY
from zerog_cli.ledger import admin
from zerog_cli.ledger.admin import LedgerStatus
from zerog_cli.ledger.db import format_time, parse_time
from zerog_cli.services.catalog import CatalogState
from zerog_cli.services.context import Context
from zerog_cli.services.secrets_report import SecretInfo, list_secrets

# A nightly verify leaves at most a day between good checks; 26 h allows for drift.
STALE_VERIFICATION_SECONDS = 26 * 3600
_PRIORITY = (ExitCode.CONFIG, ExitCode.INTEGRITY, ExitCode.NETWORK)


@dataclass(frozen=True)
class EndpointProbe:
    """One endpoint contacted once: its latency, or why it did not answer; ``detail``
    is what it said (``chain_id`` for the EVM RPC, ``trusted_nodes`` for the indexer)."""

    endpoint: str
    url: str | None
    reachable: bool
    latency_ms: float | None = None
    error: str | None = None
    detail: dict[str, int] | None = None


@dataclass(frozen=True)
class BreakerRow:
    """A circuit breaker as the ledger holds it (``state``: closed, open, half-open)."""

    endpoint: str
    state: str
    failures: int
    opened_at: str | None
    updated_at: str | None


@dataclass(frozen=True)
class VerificationFreshness:
    """Per namespace with live backups: the last good verification and its age."""

    namespace: str
    backups: int
    oldest_backup_at: str
    last_ok: str | None
    age_seconds: int | None
    stale: bool


@dataclass(frozen=True)
class Problem:
    """Something that needs attention, and the exit code it maps to."""

    code: int
    problem: str


@dataclass(frozen=True)
class StatusReport:
    """`zerog status`: is this machine ready (``ok``), and what needs attention."""

    profile: str
    chain_id: int | None
    endpoints: list[EndpointProbe]
    breakers: list[BreakerRow]
    ledger: LedgerStatus
    secrets: list[SecretInfo]
    catalog: CatalogState
    verifications: list[VerificationFreshness]
    problems: list[Problem]
    ok: bool


def _probe(name: str, url: str, call: Any) -> EndpointProbe:
    url = redaction.redact_url(url)
    started = time.monotonic()
    try:
        detail = call()
    except ZerogError as exc:
        return EndpointProbe(endpoint=name, url=url, reachable=False, error=str(exc))
    return EndpointProbe(
        endpoint=name,
        url=url,
        reachable=True,
        latency_ms=round((time.monotonic() - started) * 1000, 1),
        detail=detail,
    )


def _probes(context: Context) -> list[EndpointProbe]:
    from zerog_cli.infra.http import NO_RETRY, HttpClient, Timeouts
    from zerog_cli.zerog.evm import EvmClient
    from zerog_cli.zerog.indexer import IndexerClient

    settings = context.settings
    if settings.is_devnet and not settings.rpc_url:
        try:
            settings.endpoint("rpc_url")
        except ZerogError as exc:
            return [EndpointProbe(endpoint="devnet", url=None, reachable=False, error=str(exc))]
    http = HttpClient(
        timeouts=Timeouts(connect=3.0, read=5.0, deadline=settings.http_deadline),
        retry=NO_RETRY,
    )
    results = []
    try:
        if settings.rpc_url:
            evm = EvmClient(http, settings.rpc_url)
            results.append(_probe("evm", settings.rpc_url, lambda: {"chain_id": evm.chain_id()}))
        if settings.indexer_url:
            indexer = IndexerClient(http, settings.indexer_url)
            results.append(
                _probe(
                    "indexer",
                    settings.indexer_url,
                    lambda: {"trusted_nodes": len(indexer.get_sharded_nodes().trusted)},
                )
            )
    finally:
        http.close()
    return results


def _age_seconds(timestamp: str | None, now: datetime) -> float | None:
    if timestamp is None:
        return None
    return (now - parse_time(timestamp)).total_seconds()


def gather(context: Context, *, probe: bool = True) -> StatusReport:
    """The status document when all is well.

    Otherwise the error of the most important problem's class (config, then
    integrity, then network) carrying the document, which says what is wrong.
    """
    from zerog_cli.ledger.breakers import breaker_rows

    settings = context.settings
    problems: list[Problem] = []
    ledger = context.ledger
    interval = settings.integrity_check_interval
    ledger_report = admin.status(
        ledger,
        counts=False,
        trust_passed_since=(
            None if not interval else format_time(context.now() - timedelta(seconds=interval))
        ),
    )
    if ledger_report.integrity != "ok":
        problems.append(
            Problem(int(ExitCode.CONFIG), f"ledger integrity: {ledger_report.integrity}")
        )

    endpoints = _probes(context) if probe else []
    for entry in endpoints:
        served = (entry.detail or {}).get("chain_id")
        if not entry.reachable:
            problem = entry.error if entry.url is None else f"{entry.endpoint} unreachable"
            problems.append(Problem(int(ExitCode.NETWORK), problem or "unreachable"))
        elif (
            entry.endpoint == "evm"
            and settings.chain_id is not None
            and served != settings.chain_id
        ):
            problems.append(
                Problem(
                    int(ExitCode.CONFIG),
                    f"rpc_url serves chain {served}, profile expects {settings.chain_id}",
                )
            )

    breakers = [BreakerRow(**row) for row in breaker_rows(context.breaker_table)]
    for breaker in breakers:
        if breaker.state != "closed":
            problems.append(
                Problem(int(ExitCode.NETWORK), f"breaker {breaker.state}: {breaker.endpoint}")
            )

    secrets = list_secrets(context.secrets).secrets
    if not settings.is_devnet and not any(s.present for s in secrets if s.name == STORAGE_KEY):
        problems.append(Problem(int(ExitCode.CONFIG), f"{STORAGE_KEY} is not set"))

    from zerog_cli.services import catalog

    catalog_report = catalog.describe(context)
    now = context.now()
    verifications = []
    for row in admin.last_good_verification_by_namespace(ledger):
        age = _age_seconds(row["last_ok"], now)
        waiting = _age_seconds(row["oldest_backup_at"], now) if age is None else age
        stale = waiting is not None and waiting > STALE_VERIFICATION_SECONDS
        verifications.append(
            VerificationFreshness(
                namespace=row["namespace"],
                backups=row["backups"],
                oldest_backup_at=row["oldest_backup_at"],
                last_ok=row["last_ok"],
                age_seconds=None if age is None else int(age),
                stale=stale,
            )
        )
        if stale:
            problems.append(
                Problem(
                    int(ExitCode.INTEGRITY), f"backups in {row['namespace']} not verified recently"
                )
            )

    document = StatusReport(
        profile=settings.profile,
        chain_id=settings.chain_id,
        endpoints=endpoints,
        breakers=breakers,
        ledger=ledger_report,
        secrets=secrets,
        catalog=catalog_report,
        verifications=verifications,
        problems=problems,
        ok=not problems,
    )
    codes = {p.code for p in problems}
    for code in _PRIORITY:
        if int(code) in codes:
            raise error_class(code)(
                f"{len(problems)} problem(s) need attention",
                report=document,
                report_says_why=True,
            )
    return document
