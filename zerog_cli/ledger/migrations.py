"""Numbered schema migrations, each with an ``up`` and a ``down``.

Applied versions are recorded in ``schema_migrations``. `migrate_to_latest`
runs on every open; `migrate(ledger, to=N)` moves up or down to any version.
Each step runs in its own ``BEGIN IMMEDIATE`` transaction, so a crash leaves
the ledger at a recorded version.

Every step runs on SQLite and on PostgreSQL: ``db`` is sqlite-utils'
``Database`` or its PostgreSQL stand-in (`ledger.postgres.PgDatabase`), and
plain SQL goes through the connection, which speaks either dialect. What
cannot be said once (triggers) asks `_postgres(db)`.

Conventions: money is integer micro-USD (``*_micro``); chain amounts are
neuron, stored as decimal TEXT because they can exceed SQLite's 64-bit
INTEGER; sizes are integer bytes; timestamps ISO 8601 UTC text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zerog_cli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    import sqlite_utils

    from zerog_cli.ledger.db import Ledger
    from zerog_cli.ledger.postgres import PgDatabase

    SchemaDatabase = sqlite_utils.Database | PgDatabase


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: Callable[[SchemaDatabase], None]
    down: Callable[[SchemaDatabase], None]


def _postgres(db: SchemaDatabase) -> bool:
    return not isinstance(db.conn, sqlite3.Connection)


def _initial_up(db: SchemaDatabase) -> None:
    db.table("namespaces").create(
        {
            "name": str,
            "owner": str,
            "quota_bytes": int,
            "used_bytes": int,
            "max_object_bytes": int,
            "encrypt_by_default": int,
            "metadata": str,
            "created_at": str,
        },
        pk="name",
        not_null={"owner", "used_bytes", "encrypt_by_default", "metadata", "created_at"},
        defaults={"used_bytes": 0, "encrypt_by_default": 0, "metadata": "{}"},
    )
    db.table("namespace_acl").create(
        {"namespace": str, "user": str, "role": str, "granted_by": str, "granted_at": str},
        pk=("namespace", "user"),
        not_null={"role", "granted_by", "granted_at"},
        foreign_keys=[("namespace", "namespaces", "name")],
    )
    db.table("user_quotas").create(
        {
            "user": str,
            "tier": str,
            "storage_limit_bytes": int,
            "token_limit": int,
            "monthly_usd_limit_micro": int,
            "storage_used_bytes": int,
            "tokens_used": int,
            "monthly_usd_used_micro": int,
            "period": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="user",
        not_null={
            "tier",
            "storage_used_bytes",
            "tokens_used",
            "monthly_usd_used_micro",
            "period",
            "created_at",
            "updated_at",
        },
        defaults={"storage_used_bytes": 0, "tokens_used": 0, "monthly_usd_used_micro": 0},
    )
    db.table("objects").create(
        {
            "id": int,
            "namespace": str,
            "name": str,
            "root": str,
            "tx_seq": int,
            "size": int,
            "sha256": str,
            "network": str,
            "encrypted": int,
            "uploader": str,
            "fee_neuron": str,
            "created_at": str,
        },
        pk="id",
        not_null={
            "namespace",
            "name",
            "root",
            "size",
            "sha256",
            "network",
            "encrypted",
            "created_at",
        },
        foreign_keys=[("namespace", "namespaces", "name")],
    )
    db.table("objects").create_index(["network", "namespace", "name"], unique=True)
    db.table("objects").create_index(["root"])
    db.table("cost_tracking").create(
        {
            "id": int,
            "created_at": str,
            "period": str,
            "user": str,
            "namespace": str,
            "service": str,
            "operation": str,
            "quantity": int,
            "unit": str,
            "usd_micro": int,
            "neuron": str,
            "reference": str,
            "network": str,
        },
        pk="id",
        not_null={"created_at", "period", "user", "service", "operation", "usd_micro", "neuron"},
    )
    db.table("cost_tracking").create_index(["period", "user"])
    db.table("storage_backups").create(
        {
            "id": int,
            "namespace": str,
            "label": str,
            "source_path": str,
            "object_id": int,
            "root": str,
            "tx_seq": int,
            "size": int,
            "sha256": str,
            "encrypted": int,
            "network": str,
            "created_at": str,
            "retired_at": str,
            "retired_reason": str,
        },
        pk="id",
        not_null={"namespace", "source_path", "root", "size", "sha256", "network", "created_at"},
        foreign_keys=[("object_id", "objects", "id")],
    )
    db.table("verifications").create(
        {
            "id": int,
            "backup_id": int,
            "run_id": str,
            "status": str,
            "duration_ms": int,
            "bytes_checked": int,
            "error": str,
            "checked_at": str,
        },
        pk="id",
        not_null={"backup_id", "status", "checked_at"},
        foreign_keys=[("backup_id", "storage_backups", "id")],
    )
    db.table("verifications").create_index(["backup_id", "checked_at"])
    db.table("alerts").create(
        {
            "id": int,
            "created_at": str,
            "level": str,
            "kind": str,
            "subject": str,
            "message": str,
            "value": float,
            "threshold": float,
            "period": str,
        },
        pk="id",
        not_null={"created_at", "level", "kind", "subject", "message"},
    )
    db.table("nonces").create(
        {"scope": str, "nonce": str, "address": str, "seen_at": str},
        pk=("scope", "nonce"),
        not_null={"seen_at"},
    )
    db.table("breaker_state").create(
        {
            "name": str,
            "state": str,
            "fail_counter": int,
            "success_counter": int,
            "opened_at": float,
            "updated_at": str,
        },
        pk="name",
        not_null={"state", "fail_counter", "success_counter", "updated_at"},
        defaults={"fail_counter": 0, "success_counter": 0},
    )


INITIAL_TABLES = (
    "breaker_state",
    "nonces",
    "alerts",
    "verifications",
    "storage_backups",
    "cost_tracking",
    "objects",
    "user_quotas",
    "namespace_acl",
    "namespaces",
)


def _initial_down(db: SchemaDatabase) -> None:
    for table in INITIAL_TABLES:
        db.table(table).drop()


def _reservations_up(db: SchemaDatabase) -> None:
    db.table("quota_reservations").create(
        {
            "id": int,
            "user": str,
            "namespace": str,
            "namespace_bytes": int,
            "storage_bytes": int,
            "tokens": int,
            "usd_micro": int,
            "purpose": str,
            "pid": int,
            "host": str,
            "created_at": str,
        },
        pk="id",
        not_null={
            "user",
            "namespace_bytes",
            "storage_bytes",
            "tokens",
            "usd_micro",
            "purpose",
            "created_at",
        },
        defaults={"namespace_bytes": 0, "storage_bytes": 0, "tokens": 0, "usd_micro": 0},
    )
    db.table("quota_reservations").create_index(["user"])


def _reservations_down(db: SchemaDatabase) -> None:
    db.table("quota_reservations").drop()


def _inference_log_up(db: SchemaDatabase) -> None:
    db.table("inference_log").create(
        {
            "id": int,
            "created_at": str,
            "user": str,
            "network": str,
            "wallet": str,
            "provider": str,
            "model": str,
            "system": str,
            "prompt": str,
            "response": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "cost_neuron": str,
            "usd_micro": int,
            "chat_id": str,
            "duration_ms": int,
            "status": str,
            "verified": int,
            "verification": str,
            "error": str,
            "stream": int,
            "max_tokens": int,
            "finish_reason": str,
        },
        pk="id",
        not_null={
            "created_at",
            "user",
            "network",
            "wallet",
            "provider",
            "model",
            "prompt",
            "duration_ms",
            "status",
            "stream",
            "max_tokens",
        },
    )
    db.table("inference_log").create_index(["user", "id"])


def _inference_log_down(db: SchemaDatabase) -> None:
    db.table("inference_log").drop()


def _payments_up(db: SchemaDatabase) -> None:
    db.table("pending_payments").create(
        {
            "id": int,
            "intent": str,
            "tx_hash": str,
            "operation": str,
            "user": str,
            "namespace": str,
            "root": str,
            "size": int,
            "fee_neuron": str,
            "usd_micro": int,
            "network": str,
            "pid": int,
            "host": str,
            "created_at": str,
        },
        pk="id",
        not_null={
            "intent",
            "tx_hash",
            "operation",
            "user",
            "root",
            "size",
            "fee_neuron",
            "usd_micro",
            "network",
            "created_at",
        },
    )
    db.table("pending_payments").create_index(["intent"])


def _payments_down(db: SchemaDatabase) -> None:
    db.table("pending_payments").drop()


def _signature_binding_up(db: SchemaDatabase) -> None:
    db.table("inference_log").add_column("binding", str)


def _signature_binding_down(db: SchemaDatabase) -> None:
    db.table("inference_log").transform(drop={"binding"})


def _name_claims_up(db: SchemaDatabase) -> None:
    reservations = db.table("quota_reservations")
    reservations.add_column("network", str)
    reservations.add_column("object_name", str)
    reservations.create_index(
        ["network", "namespace", "object_name"], index_name="reserved_object_names", unique=True
    )


def _name_claims_down(db: SchemaDatabase) -> None:
    db.conn.execute("DROP INDEX IF EXISTS reserved_object_names")
    db.table("quota_reservations").transform(drop={"network", "object_name"})


def _sampled_verification_up(db: SchemaDatabase) -> None:
    verifications = db.table("verifications")
    verifications.add_column("kind", str, not_null_default="full")
    verifications.add_column("segments_checked", int)
    verifications.add_column("segments_total", int)


def _sampled_verification_down(db: SchemaDatabase) -> None:
    db.table("verifications").transform(drop={"kind", "segments_checked", "segments_total"})


def _compute_backend_up(db: SchemaDatabase) -> None:
    db.table("inference_log").add_column("backend", str)
    costs = db.table("cost_tracking")
    costs.add_column("backend", str)
    costs.add_column("model", str)
    costs.add_column("provider", str)


def _compute_backend_down(db: SchemaDatabase) -> None:
    db.table("inference_log").transform(drop={"backend"})
    db.table("cost_tracking").transform(drop={"backend", "model", "provider"})


def _snapshots_up(db: SchemaDatabase) -> None:
    backups = db.table("storage_backups")
    backups.add_column("kind", str, not_null_default="file")
    backups.add_column("index_object_id", int)
    backups.add_column("skipped", str)
    db.table("backup_members").create(
        {
            "backup_id": int,
            "position": int,
            "path": str,
            "kind": str,
            "size": int,
            "mode": int,
            "mtime": int,
            "sha256": str,
            "offset": int,
            "link": str,
        },
        pk=("backup_id", "path"),
        not_null={"position", "kind", "size", "mode", "mtime"},
        foreign_keys=[("backup_id", "storage_backups", "id")],
    )


def _snapshots_down(db: SchemaDatabase) -> None:
    db.table("backup_members").drop()
    db.table("storage_backups").transform(drop={"kind", "index_object_id", "skipped"})


_OBJECT_NAME_INDEX = "idx_objects_network_namespace_name"
_OBJECT_VERSION_INDEX = "object_versions"


def _object_versions_up(db: SchemaDatabase) -> None:
    db.table("objects").add_column("version", int, not_null_default=1)
    db.conn.execute(f"DROP INDEX IF EXISTS {_OBJECT_NAME_INDEX}")
    db.table("objects").create_index(
        ["network", "namespace", "name", "version"], index_name=_OBJECT_VERSION_INDEX, unique=True
    )


def _object_versions_down(db: SchemaDatabase) -> None:
    """Older versions keep their rows (backups and verifications point at them) under
    the name ``NAME@N``, so the one-row-per-name index of version 9 fits again."""
    db.conn.execute(
        "UPDATE objects SET name = name || '@' || version WHERE version < ("
        "SELECT MAX(newer.version) FROM objects AS newer WHERE newer.network = objects.network"
        " AND newer.namespace = objects.namespace AND newer.name = objects.name)"
    )
    db.conn.execute(f"DROP INDEX IF EXISTS {_OBJECT_VERSION_INDEX}")
    db.table("objects").transform(drop={"version"})
    db.table("objects").create_index(
        ["network", "namespace", "name"], index_name=_OBJECT_NAME_INDEX, unique=True
    )


# The neuron text of a cost row split into three integer parts of nine digits
# (units, 1e9s, 1e18s and above), each carrying the sign, so SQLite sums
# amounts that outgrow its 64-bit INTEGER without losing a digit; the reader
# joins them back (ledger/costs.py).
_NEURON_DIGITS = "ltrim({row}.neuron, '-')"
_NEURON_SIGN = "(CASE WHEN substr({row}.neuron, 1, 1) = '-' THEN -1 ELSE 1 END)"


# PostgreSQL calls SQLite's two-argument max() and min() GREATEST and LEAST.
def _neuron_parts(postgres: bool) -> tuple[str, ...]:
    high, low = ("GREATEST", "LEAST") if postgres else ("max", "min")
    return tuple(
        f"{_NEURON_SIGN} * CAST('0' || {digits} AS INTEGER)"
        for digits in (
            f"substr({_NEURON_DIGITS}, {high}(length({_NEURON_DIGITS}) - 8, 1))",
            f"substr({_NEURON_DIGITS}, {high}(length({_NEURON_DIGITS}) - 17, 1),"
            f" {low}(9, {high}(length({_NEURON_DIGITS}) - 9, 0)))",
            f"substr({_NEURON_DIGITS}, 1, {high}(length({_NEURON_DIGITS}) - 18, 0))",
        )
    )


# One rollup row per month and every --by of `quota report` (NULL stored as '-',
# as the report shows it). A later migration that rebuilds cost_tracking
# (sqlite-utils transform) drops these triggers and must create them again.
_ROLLUP_KEY = "period, user, namespace, service, backend, model, provider"


def _rollup_change(row: str, sign: str, postgres: bool = False) -> str:
    """The upsert that adds (sign '+') or takes away (sign '-') one cost row's figures."""
    values = (
        f"{row}.period, {row}.user, COALESCE({row}.namespace, '-'), {row}.service,"
        f" COALESCE({row}.backend, '-'), COALESCE({row}.model, '-'),"
        f" COALESCE({row}.provider, '-'),"
        f" {sign}1,"
        f" CASE WHEN {row}.unit = 'bytes' THEN {sign}COALESCE({row}.quantity, 0) ELSE 0 END,"
        f" CASE WHEN {row}.unit = 'tokens' THEN {sign}COALESCE({row}.quantity, 0) ELSE 0 END,"
        f" {sign}{row}.usd_micro, "
        + ", ".join(f"{sign}{part.format(row=row)}" for part in _neuron_parts(postgres))
    )
    return (
        "INSERT INTO cost_rollup (period, user, namespace, service, backend, model, provider,"
        " operations, bytes, tokens, usd_micro, neuron_units, neuron_billions,"
        " neuron_quintillions)"
        f" VALUES ({values})"
        f" ON CONFLICT ({_ROLLUP_KEY}) DO UPDATE SET"
        " operations = cost_rollup.operations + excluded.operations,"
        " bytes = cost_rollup.bytes + excluded.bytes,"
        " tokens = cost_rollup.tokens + excluded.tokens,"
        " usd_micro = cost_rollup.usd_micro + excluded.usd_micro,"
        " neuron_units = cost_rollup.neuron_units + excluded.neuron_units,"
        " neuron_billions = cost_rollup.neuron_billions + excluded.neuron_billions,"
        " neuron_quintillions = cost_rollup.neuron_quintillions + excluded.neuron_quintillions;"
    )


_ROLLUP_EMPTIED = "DELETE FROM cost_rollup WHERE operations = 0;"


def _rollup_triggers(postgres: bool) -> dict[str, tuple[str, str]]:
    """Trigger name → (when it fires, what it runs), as SQL over NEW and OLD."""
    return {
        "cost_rollup_insert": ("AFTER INSERT", _rollup_change("NEW", "+", postgres)),
        "cost_rollup_delete": (
            "AFTER DELETE",
            f"{_rollup_change('OLD', '-', postgres)} {_ROLLUP_EMPTIED}",
        ),
        "cost_rollup_update": (
            "AFTER UPDATE OF period, user, namespace, service, backend, model, provider,"
            " quantity, unit, usd_micro, neuron",
            f"{_rollup_change('OLD', '-', postgres)} {_rollup_change('NEW', '+', postgres)}"
            f" {_ROLLUP_EMPTIED}",
        ),
    }


# Indexes behind every listing and selection that filters: (name, table, columns).
_SCALE_INDEXES = (
    ("objects_by_namespace", "objects", "namespace, name, version"),
    ("backups_by_network", "storage_backups", "network, retired_at, created_at, id"),
    ("backups_live_by_namespace", "storage_backups", "retired_at, namespace, created_at"),
    ("verifications_by_status", "verifications", "backup_id, status, checked_at, id"),
)


def rollup_fill_sql(postgres: bool) -> str:
    """Fill an empty ``cost_rollup`` from every ``cost_tracking`` row in one statement (the
    migration that creates it, and `ledger copy` into PostgreSQL: see ledger/copy.py)."""
    parts = ", ".join(f"SUM({part.format(row='c')})" for part in _neuron_parts(postgres))
    return (
        "INSERT INTO cost_rollup SELECT c.period, c.user, COALESCE(c.namespace, '-'), c.service,"
        " COALESCE(c.backend, '-'), COALESCE(c.model, '-'), COALESCE(c.provider, '-'), COUNT(*),"
        " SUM(CASE WHEN c.unit = 'bytes' THEN COALESCE(c.quantity, 0) ELSE 0 END),"
        " SUM(CASE WHEN c.unit = 'tokens' THEN COALESCE(c.quantity, 0) ELSE 0 END),"
        f" SUM(c.usd_micro), {parts}"
        " FROM cost_tracking c GROUP BY 1, 2, 3, 4, 5, 6, 7"
    )


def _cost_rollup_up(db: SchemaDatabase) -> None:
    conn = db.conn
    postgres = _postgres(db)
    conn.execute(
        "CREATE TABLE cost_rollup ("
        " period TEXT NOT NULL, user TEXT NOT NULL, namespace TEXT NOT NULL,"
        " service TEXT NOT NULL, backend TEXT NOT NULL, model TEXT NOT NULL,"
        " provider TEXT NOT NULL, operations INTEGER NOT NULL DEFAULT 0,"
        " bytes INTEGER NOT NULL DEFAULT 0, tokens INTEGER NOT NULL DEFAULT 0,"
        " usd_micro INTEGER NOT NULL DEFAULT 0, neuron_units INTEGER NOT NULL DEFAULT 0,"
        " neuron_billions INTEGER NOT NULL DEFAULT 0,"
        " neuron_quintillions INTEGER NOT NULL DEFAULT 0,"
        f" PRIMARY KEY ({_ROLLUP_KEY})) WITHOUT ROWID"
    )
    conn.execute(rollup_fill_sql(postgres))
    for name, (when, body) in _rollup_triggers(postgres).items():
        if postgres:
            from zerog_cli.ledger.postgres import rollup_trigger_sql

            for statement in rollup_trigger_sql(name, when, body):
                conn.execute(statement)
        else:
            conn.execute(f"CREATE TRIGGER {name} {when} ON cost_tracking BEGIN {body} END")
    for name, table, columns in _SCALE_INDEXES:
        conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})")


def _cost_rollup_down(db: SchemaDatabase) -> None:
    for name, _table, _columns in _SCALE_INDEXES:
        db.conn.execute(f"DROP INDEX IF EXISTS {name}")
    for name in _rollup_triggers(_postgres(db)):
        if _postgres(db):
            from zerog_cli.ledger.postgres import drop_trigger_sql

            for statement in drop_trigger_sql(name):
                db.conn.execute(statement)
        else:
            db.conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    db.conn.execute("DROP TABLE IF EXISTS cost_rollup")


def _object_fragments_up(db: SchemaDatabase) -> None:
    db.table("object_fragments").create(
        {
            "object_id": int,
            "position": int,
            "root": str,
            "tx_seq": int,
            "offset": int,
            "size": int,
        },
        pk=("object_id", "position"),
        not_null={"object_id", "position", "root", "offset", "size"},
        foreign_keys=[("object_id", "objects", "id")],
    )
    db.table("object_fragments").create_index(["root"])


def _object_fragments_down(db: SchemaDatabase) -> None:
    db.table("object_fragments").drop()


_REBUILT_TABLES = ("namespaces", "objects", "storage_backups", "cost_tracking")


def _chain_catalog_up(db: SchemaDatabase) -> None:
    for table in _REBUILT_TABLES:
        db.conn.execute(f"ALTER TABLE {table} ADD COLUMN rebuilt INTEGER NOT NULL DEFAULT 0")
    db.conn.execute(
        "CREATE TABLE catalog_snapshots ("
        " tx_seq INTEGER NOT NULL, network TEXT NOT NULL, root TEXT NOT NULL,"
        " block INTEGER NOT NULL, taken_at_height INTEGER NOT NULL, created_at TEXT NOT NULL,"
        " PRIMARY KEY (network, tx_seq))"
    )


def _integrity_checks_up(db: SchemaDatabase) -> None:
    db.conn.execute(
        "CREATE TABLE integrity_checks (id INTEGER PRIMARY KEY, checked_at TEXT NOT NULL,"
        " result TEXT NOT NULL, seconds REAL NOT NULL)"
    )


def _integrity_checks_down(db: SchemaDatabase) -> None:
    db.conn.execute("DROP TABLE integrity_checks")


def _chain_catalog_down(db: SchemaDatabase) -> None:
    db.conn.execute("DROP TABLE catalog_snapshots")
    for table in _REBUILT_TABLES:
        db.conn.execute(f"ALTER TABLE {table} DROP COLUMN rebuilt")


# An object's micro-USD is in its upload's storage cost row: the one of the same network,
# namespace, user, first root and neuron. The n-th object of such a key (by id) pairs with
# its n-th cost row, so two paid uploads of the same bytes each keep their own price.
_OBJECT_FEES_FROM_COSTS = (
    "WITH ranked_objects AS (SELECT id, network, namespace, uploader, root, fee_neuron,"
    " ROW_NUMBER() OVER (PARTITION BY network, namespace, uploader, root, fee_neuron"
    " ORDER BY id) AS n FROM objects),"
    " ranked_costs AS (SELECT usd_micro, network, namespace, user, reference, neuron,"
    " ROW_NUMBER() OVER (PARTITION BY network, namespace, user, reference, neuron"
    " ORDER BY id) AS n FROM cost_tracking WHERE service = 'storage')"
    " UPDATE objects SET fee_usd_micro = paired.usd_micro FROM ("
    "SELECT o.id, c.usd_micro FROM ranked_objects o JOIN ranked_costs c"
    " ON c.network = o.network AND c.namespace = o.namespace AND c.user = o.uploader"
    " AND c.reference = o.root AND c.neuron = o.fee_neuron AND c.n = o.n) AS paired"
    " WHERE paired.id = objects.id"
)


def _object_fee_usd_up(db: SchemaDatabase) -> None:
    db.conn.execute("ALTER TABLE objects ADD COLUMN fee_usd_micro INTEGER")
    db.conn.execute(_OBJECT_FEES_FROM_COSTS)


def _object_fee_usd_down(db: SchemaDatabase) -> None:
    db.conn.execute("ALTER TABLE objects DROP COLUMN fee_usd_micro")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial_up, _initial_down),
    Migration(
        2,
        "quota reservations held while money is being spent",
        _reservations_up,
        _reservations_down,
    ),
    Migration(
        3,
        "inference log: every paid prompt, answer, tokens, cost and signature check",
        _inference_log_up,
        _inference_log_down,
    ),
    Migration(
        4,
        "payments journaled between signing and recording, so a crash never loses one",
        _payments_up,
        _payments_down,
    ),
    Migration(
        5,
        "inference log says what each response signature bound (request rewritten, or not)",
        _signature_binding_up,
        _signature_binding_down,
    ),
    Migration(
        6,
        "an upload reserves its object name with its quota, so a second run is refused unpaid",
        _name_claims_up,
        _name_claims_down,
    ),
    Migration(
        7,
        "verifications say whether the whole file was read or a sample of its segments",
        _sampled_verification_up,
        _sampled_verification_down,
    ),
    Migration(
        8,
        "inference and cost rows say which backend (router or direct), model and provider served",
        _compute_backend_up,
        _compute_backend_down,
    ),
    Migration(
        9,
        "folder snapshots: a backup is a file or a tar of a folder, with its members indexed",
        _snapshots_up,
        _snapshots_down,
    ),
    Migration(
        10,
        "objects keep every version of a name (upload --replace); the newest is the name",
        _object_versions_up,
        _object_versions_down,
    ),
    Migration(
        11,
        "cost totals per month, user, namespace, service, backend, model and provider kept by"
        " triggers, and the indexes behind every listing, so reports stay fast at millions of rows",
        _cost_rollup_up,
        _cost_rollup_down,
    ),
    Migration(
        12,
        "a file past fragment_size keeps every fragment's root, in order, beside its object",
        _object_fragments_up,
        _object_fragments_down,
    ),
    Migration(
        13,
        "the chain as the catalog's backup: rows rebuilt from Flow submissions say so, and"
        " the ledger snapshots on 0G are listed, so every submission's tags point at the latest",
        _chain_catalog_up,
        _chain_catalog_down,
    ),
    Migration(
        14,
        "ledger integrity checks are recorded, so `status` on a ledger of millions of rows"
        " trusts a recent pass instead of reading every page each time",
        _integrity_checks_up,
        _integrity_checks_down,
    ),
    Migration(
        15,
        "an object keeps the micro-USD its upload paid beside its fee, filled from the upload's"
        " cost row, so every listing shows an object's fee as every cost is shown",
        _object_fee_usd_up,
        _object_fee_usd_down,
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def _ensure_table(ledger: Ledger) -> None:
    statement = (
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    if ledger.dialect == "postgresql":
        # Two hosts creating it at once would collide in PostgreSQL's catalog.
        with ledger.transaction() as conn:
            conn.execute(statement)
    else:
        ledger.conn.execute(statement)


def current_version(ledger: Ledger) -> int:
    """The applied schema version (0 for a new file)."""
    _ensure_table(ledger)
    return ledger.schema_version()


def validate_target(to: int | None) -> int:
    """The version ``to`` names (None: the latest); UsageError when there is no such version."""
    target = LATEST_VERSION if to is None else to
    if not 0 <= target <= LATEST_VERSION:
        raise UsageError(f"no migration {target}: versions run from 0 to {LATEST_VERSION}")
    return target


def migrate(ledger: Ledger, to: int | None = None) -> list[tuple[str, int, str]]:
    """Move the schema to version ``to`` (default: latest). Returns the steps taken."""
    from zerog_cli.ledger.db import utc_now

    target = validate_target(to)
    _ensure_table(ledger)
    steps: list[tuple[str, int, str]] = []
    while True:
        with ledger.transaction():
            current = ledger.schema_version()
            if current == target:
                return steps
            if current < target:
                step = MIGRATIONS[current]
                step.up(ledger.db)
                ledger.conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (step.version, step.name, utc_now()),
                )
                steps.append(("up", step.version, step.name))
            else:
                step = MIGRATIONS[current - 1]
                step.down(ledger.db)
                ledger.conn.execute(
                    "DELETE FROM schema_migrations WHERE version = ?", (step.version,)
                )
                steps.append(("down", step.version, step.name))


def migrate_to_latest(ledger: Ledger) -> None:
    _ensure_table(ledger)
    version = ledger.schema_version()
    if version > LATEST_VERSION:
        raise ConfigError(
            f"ledger {ledger.location} has schema version {version}, newer than this zerog "
            f"understands ({LATEST_VERSION})",
            hint="upgrade zerog, or restore a ledger backup",
        )
    if version < LATEST_VERSION:
        migrate(ledger)
