"""`zerog upload`: policy checks, one hashing pass, quota reservation, upload, record.

Order matters for money: everything that can refuse (ACL, size policy, name
taken, quota) refuses before the Flow transaction is sent. The quota is
*reserved* before paying and settled in the same transaction that records the
object and its cost, so a crash never leaves a half-recorded object, and a
re-run finds the data on the network and does not pay again.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import UsageError, ZerogError, note_unrecorded_payment
from zerog_cli.infra.choices import UploadWait
from zerog_cli.infra.secrets import ENCRYPTION_KEY
from zerog_cli.infra.signing import wallet_key, warm_up
from zerog_cli.infra.units import Cost, format_size
from zerog_cli.ledger import costs, objects, payments
from zerog_cli.ledger.db import LedgerConnection
from zerog_cli.ledger.payments import PendingPayment
from zerog_cli.ledger.quotas import Reserved
from zerog_cli.services import namespaces, quotas
from zerog_cli.services.catalog import LEDGER_NAMESPACE
from zerog_cli.services.context import Context
from zerog_cli.services.network import (
    check_chain_id,
    check_node_chain_id,
    gas_options,
    storage_network,
)
from zerog_cli.services.payments import settle_abandoned_for
from zerog_cli.services.spool import SealingReader, StreamInput, spool, spool_folder
from zerog_cli.zerog.segments import Progress

if TYPE_CHECKING:
    from zerog_cli.infra.config import Settings
    from zerog_cli.zerog.merkle import FileTree
    from zerog_cli.zerog.segments import SegmentSource
    from zerog_cli.zerog.upload import UploadResult
    from zerog_cli.zerog.upload_plan import UploadPlan

Recorder = Callable[[LedgerConnection, dict[str, Any]], None]


@dataclass(frozen=True)
class QuotaAfter:
    """A quota limit after a dry run's upload: usage, the limit (None: none), whether it fits."""

    used: int
    limit: int | None
    fits: bool


@dataclass(frozen=True)
class Fragment:
    """One fragment of an upload split at ``fragment_size``: its own root and what this run
    paid for it (``cost``: its fee and its bytes at the storage price; zero when it was on
    the network already or an earlier run's payment was recovered, ``recovered_payment``)."""

    root: str
    tx_seq: int
    tx_hash: str | None
    size: int
    cost: Cost
    deduped: bool
    recovered_payment: str | None


@dataclass
class UploadReport:
    """What an upload stored (or, with --dry-run, would store) and what it cost.

    ``cost``: the Flow fee (neuron and 0G) and the bytes paid for at the storage
    price (micro-USD), as every cost is given. Fields from ``object_id`` on are None in a dry run;
    ``fragment_size``, ``roots`` and ``fragments`` are None unless the file was
    split into fragments.
    """

    namespace: str
    name: str
    path: str
    size: int
    stored_size: int
    sha256: str
    root: str
    encrypted: bool
    cost: Cost
    already_on_network: bool
    flow_address: str
    dry_run: bool = False
    quota_after: dict[str, QuotaAfter] | None = None
    fragment_size: int | None = None
    roots: list[str] | None = None
    object_id: int | None = None
    version: int | None = None
    tx_seq: int | None = None
    tx_hash: str | None = None
    deduped: bool | None = None
    recovered_payment: str | None = None
    reused_tx: bool | None = None
    finalized: bool | None = None
    wait: UploadWait | None = None
    nodes: list[str] = field(default_factory=list)
    replaced_nodes: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None
    warnings: list[str] = field(default_factory=list)
    fragments: list[Fragment] | None = None


@dataclass(frozen=True)
class CatalogFacts:
    """What the upload's catalog record says beyond the object (`services.catalog`)."""

    backup_label: str | None = None
    backup_time: datetime | None = None
    folder: bool = False
    """The archive of a folder backup."""
    dir_format: bool = False
    """The metadata object of a folder backup in the official directory format."""
    ledger_snapshot_height: int | None = None
    """A ledger snapshot (`zerog ledger backup --to-0g`): the chain height it was taken at."""


@dataclass(frozen=True)
class UploadRequest:
    path: Path
    """The file to upload; ignored when ``stream`` is given."""
    namespace: str | None = None
    name: str | None = None
    encrypt: bool | None = None
    replicas: int | None = None
    wait: UploadWait = UploadWait.FINALIZED
    max_size: int | None = None
    dry_run: bool = False
    operation: str = "upload"
    stream: StreamInput | None = None
    """Read this stream (stdin, a producer) instead of ``path``: spooled and hashed in one pass."""
    replace: bool = False
    """Store a new version when the name exists (the old one stays in history)."""
    catalog: CatalogFacts = CatalogFacts()
    key: bytes | None = None
    """Encrypt with this 32-byte key instead of ENCRYPTION_KEY (ledger snapshots)."""
    also_record: Recorder | None = None
    """Writes more rows (a backup record, say) in the transaction that records the
    object, so a crash can never leave one without the other. It gets the open
    connection and the object's fields."""


def _check_file(path: Path, limit: int | None) -> int:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path} is not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise UsageError(f"{path} is empty: 0G cannot store an empty file")
    if limit is not None and size > limit:
        raise UsageError(
            f"{path} is {format_size(size)}, over the {format_size(limit)} upload limit",
            hint="raise it with --max-size, or the max_upload_size / max_backup_size setting",
        )
    return size


def encryption_key(context: Context) -> bytes:
    from zerog_cli.zerog.encryption import parse_symmetric_key

    value = context.secrets.require(ENCRYPTION_KEY, "client-side encryption")
    return parse_symmetric_key(value, name=ENCRYPTION_KEY)


OpenSource = Callable[[], AbstractContextManager["SegmentSource"]]


def _hash_source(
    request: UploadRequest,
    key: bytes | None,
    limit: int | None,
    context: Context,
    cleanup: ExitStack,
) -> tuple[list[_Part], str, int, OpenSource]:
    """One read of the input: (a tree per fragment of what is uploaded, plaintext
    SHA-256, plaintext size, source factory).

    What is uploaded (``header || ciphertext`` when encrypted, as the official
    clients encrypt before they split) is cut every ``fragment_size`` bytes in
    the same pass: one part when it fits. A stream is spooled to a private file
    (see `services.spool`) that ``cleanup`` removes when the upload ends, however
    it ends.
    """
    from zerog_cli.zerog.encryption import EncryptedReader, new_header_v1
    from zerog_cli.zerog.merkle import fragment_trees_from_stream
    from zerog_cli.zerog.segments import FileSource

    fragment_size = context.settings.fragment_size
    header = None if key is None else new_header_v1()
    if request.stream is not None:
        folder = spool_folder(context.settings.tmp_dir)
        spooled = cleanup.enter_context(
            spool(
                request.stream,
                folder,
                limit=limit,
                key=key,
                header=header,
                fragment_size=fragment_size,
            )
        )
        path = spooled.path
        trees, sha256, size = spooled.trees, spooled.sha256, spooled.size
    else:
        path = request.path
        size = path.stat().st_size
        with path.open("rb") as plaintext:
            if key is None:
                trees, hashed = fragment_trees_from_stream(plaintext, fragment_size, name=str(path))
                assert hashed is not None
                sha256 = hashed
            else:
                sealing = SealingReader(plaintext, key, header)
                trees, _ = fragment_trees_from_stream(
                    sealing, fragment_size, with_sha256=False, name=str(path)
                )
                sha256 = sealing.sha256.hexdigest()
    parts = [_Part(index * fragment_size, tree) for index, tree in enumerate(trees)]
    if key is None or header is None:
        return parts, sha256, size, lambda: FileSource(path)
    sealed_header = header
    return parts, sha256, size, lambda: EncryptedReader.from_path(path, key, sealed_header)


@dataclass(frozen=True)
class _Part:
    """One Flow submission: bytes [offset, offset + tree.size) of the stored stream."""

    offset: int
    tree: FileTree


def _resolve_namespace(
    context: Context, request: UploadRequest, user: str, dry_run: bool
) -> namespaces.Namespace | None:
    if request.namespace is None:
        if dry_run:
            return namespaces.find(context, namespaces.DEFAULT_NAMESPACE)
        return namespaces.ensure_default(context, user)
    if request.namespace == LEDGER_NAMESPACE and request.key is None:
        raise UsageError(
            f"namespace {LEDGER_NAMESPACE!r} holds ledger snapshots only"
            " (`zerog ledger backup --to-0g`)"
        )
    return namespaces.require(context, request.namespace, user, "write")


def upload(
    context: Context, request: UploadRequest, progress: Progress | None = None
) -> UploadReport:
    """Upload one file and record it; returns the report the CLI prints.

    An error (or Ctrl-C, SIGTERM) after the payment was journaled and before
    it was recorded carries the transaction hash (`note_unrecorded_payment`),
    so the operator learns that a rerun records it without paying again.
    """
    unrecorded: list[str] = []
    try:
        with ExitStack() as cleanup:
            return _upload(context, request, progress, unrecorded, cleanup)
    except BaseException as error:
        if unrecorded:
            note_unrecorded_payment(error, unrecorded[-1])
        raise


def _upload(
    context: Context,
    request: UploadRequest,
    progress: Progress | None,
    unrecorded: list[str],
    cleanup: ExitStack,
) -> UploadReport:
    from zerog_cli.zerog.segments import SourceWindow
    from zerog_cli.zerog.upload import UploadOptions
    from zerog_cli.zerog.upload import upload as send
    from zerog_cli.zerog.upload_plan import plan_upload

    settings = context.settings
    user = context.acting_user
    started = time.monotonic()
    if request.stream is not None and not request.name:
        raise UsageError(f"reading {request.stream.description} needs --name")
    name = namespaces.validate_object_name(request.name or request.path.name)
    namespace = _resolve_namespace(context, request, user, request.dry_run)
    if namespace is not None and request.namespace is None:
        namespaces.require(context, namespace.name, user, "write")
    ns_name = namespace.name if namespace else namespaces.DEFAULT_NAMESPACE
    limit = request.max_size or (
        namespace.max_object_bytes if namespace and namespace.max_object_bytes else None
    )
    if limit is None:
        # Neither --max-size nor the namespace limits the size: the setting does (a
        # backup's, max_backup_size, may be unset: no limit).
        limit = (
            settings.max_backup_size if request.operation == "backup" else settings.max_upload_size
        )
    if request.stream is None:
        _check_file(request.path, limit)
    network_name = settings.profile
    if (
        not request.replace
        and objects.by_name(context.ledger.conn, network_name, ns_name, name) is not None
    ):
        raise quotas.name_taken(ns_name, name)
    encrypt = (
        request.encrypt
        if request.encrypt is not None
        else bool(namespace and namespace.encrypt_by_default)
    )
    key = request.key if request.key is not None else encryption_key(context) if encrypt else None
    # A missing wallet key is exit 8 whether or not the network is up: look before contacting it.
    signer = None if request.dry_run else wallet_key(context.secrets, devnet=settings.is_devnet)

    if not request.dry_run:
        warm_up()
    fragment_size = settings.fragment_size
    parts, sha256, plain_size, open_source = _hash_source(request, key, limit, context, cleanup)
    stored_size = sum(part.tree.size for part in parts)
    network = storage_network(context)
    replicas = request.replicas or settings.replicas
    plans: list[UploadPlan] = [
        plan_upload(network, part.tree, replicas=replicas, flow_address=settings.flow_address)
        for part in parts
    ]
    check_node_chain_id(plans[0], context)
    paying_bytes = sum(
        part.tree.size for part, plan in zip(parts, plans, strict=True) if plan.needs_payment
    )
    usd = quotas.storage_usd_micro(paying_bytes, settings) if paying_bytes else 0
    charged = Reserved(storage_bytes=paying_bytes, usd_micro=usd)
    roots = [part.tree.root_hex for part in parts]
    report = UploadReport(
        namespace=ns_name,
        name=name,
        path="-" if request.stream is not None else str(request.path),
        size=plain_size,
        stored_size=stored_size,
        sha256=sha256,
        root=roots[0],
        encrypted=key is not None,
        cost=Cost.of_both(sum(plan.fee_neuron for plan in plans), usd),
        already_on_network=paying_bytes == 0,
        flow_address=plans[0].flow_address,
    )
    if len(parts) > 1:
        report.fragment_size = fragment_size
        report.roots = roots
    if signer is None:
        report.dry_run = True
        report.quota_after = _quota_after(context, user, charged)
        return report

    adopted = settle_abandoned_for(context, network.evm, adopt_roots=roots, user=user)
    unrecorded.extend(row["tx_hash"] for row in adopted.values())
    if paying_bytes:
        check_chain_id(network, context)
    pendings = [
        PendingPayment(
            intent=uuid.uuid4().hex,
            operation=request.operation,
            user=user,
            namespace=ns_name,
            root=part.tree.root_hex,
            size=part.tree.size,
            fee_neuron=plan.fee_neuron,
            usd_micro=quotas.storage_usd_micro(part.tree.size, settings),
            network=network_name,
        )
        for part, plan in zip(parts, plans, strict=True)
    ]

    with quotas.hold(
        context,
        user,
        ns_name,
        charged,
        purpose=request.operation,
        namespace_bytes=stored_size,
        object_name=(network_name, name),
        replace=request.replace,
    ) as held:
        metrics = context.metrics
        part_tags = _catalog_tags(
            context,
            request,
            signer.address,
            parts,
            plans,
            namespace=ns_name,
            name=name,
            sha256=sha256,
            size=plain_size,
            encrypted=key is not None,
        )
        options = UploadOptions(
            replicas=replicas,
            wait=request.wait,
            concurrency=settings.upload_concurrency,
            gas=gas_options(settings),
            receipt_timeout=settings.wait_timeout,
            tx_known_timeout=settings.node_sync_timeout,
            finality_timeout=settings.wait_timeout,
        )
        results: list[UploadResult] = []
        try:
            with open_source() as whole:
                for part, plan, pending, tags in zip(
                    parts, plans, pendings, part_tags, strict=True
                ):
                    source = (
                        whole
                        if len(parts) == 1
                        else SourceWindow(whole, part.offset, part.tree.size)
                    )
                    prepaid = adopted.get(part.tree.root_hex) if plan.needs_payment else None
                    results.append(
                        send(
                            network,
                            source,
                            part.tree,
                            private_key=signer.private_key,
                            options=replace(options, tags=tags),
                            plan=plan,
                            progress=progress,
                            on_tx_signed=_journal(context, pending, unrecorded),
                            prepaid_tx=None if prepaid is None else prepaid["tx_hash"],
                        )
                    )
        except BaseException as error:
            result_label = "error" if isinstance(error, ZerogError) else "interrupted"
            metrics.storage_operations.labels(request.operation, result_label).inc()
            raise
        # Priced for the bytes paid now taken together (as reserved), not rounded per fragment.
        fee_neuron = usd_paid = paid_now_bytes = 0
        for part, result in zip(parts, results, strict=True):
            recovered = adopted.get(part.tree.root_hex)
            if result.fee_neuron > 0:
                fee_neuron += result.fee_neuron
                paid_now_bytes += part.tree.size
            elif recovered is not None:
                fee_neuron += int(recovered["fee_neuron"])
                usd_paid += int(recovered["usd_micro"])
        usd_paid += quotas.storage_usd_micro(paid_now_bytes, settings)
        paid = fee_neuron > 0
        spent = Reserved(
            storage_bytes=stored_size if paid else 0, usd_micro=usd_paid if paid else 0
        )
        first = results[0]
        with context.ledger.transaction() as conn:
            for pending in pendings:
                payments.clear(conn, pending.intent)
            for row in adopted.values():
                payments.clear(conn, row["intent"])
            object_id = objects.insert(
                conn,
                namespace=ns_name,
                name=name,
                root=first.root,
                tx_seq=first.tx_seq,
                size=plain_size,
                sha256=sha256,
                network=network_name,
                encrypted=key is not None,
                uploader=user,
                fee_neuron=fee_neuron,
                fee_usd_micro=spent.usd_micro,
            )
            stored = objects.by_id(conn, object_id)
            version = stored.version if stored is not None else 1
            if len(parts) > 1:
                objects.add_fragments(
                    conn,
                    object_id,
                    [
                        objects.Fragment(
                            index, result.root, result.tx_seq, part.offset, part.tree.size
                        )
                        for index, (part, result) in enumerate(zip(parts, results, strict=True))
                    ],
                )
            outcome = held.settle(
                conn,
                spent,
                costs.CostEntry(
                    period=quotas.current_period(context),
                    user=user,
                    namespace=ns_name,
                    service="storage",
                    operation=request.operation,
                    quantity=stored_size,
                    unit="bytes",
                    usd_micro=spent.usd_micro,
                    neuron=fee_neuron,
                    reference=first.root,
                    network=network_name,
                ),
                namespace_bytes=stored_size,
            )
            recorded = {
                "object_id": object_id,
                "namespace": ns_name,
                "name": name,
                "root": first.root,
                "tx_seq": first.tx_seq,
                "size": plain_size,
                "sha256": sha256,
                "encrypted": key is not None,
                "network": network_name,
                "version": version,
            }
            if request.also_record is not None:
                request.also_record(conn, recorded)
    unrecorded.clear()
    metrics.storage_operations.labels(request.operation, "ok").inc()
    metrics.storage_bytes.labels("upload").inc(sum(result.bytes_sent for result in results))
    metrics.storage_duration.labels(request.operation).observe(time.monotonic() - started)
    metrics.cost_usd.labels("storage").inc(spent.usd_micro / 1_000_000)
    for limit_name, ratio in outcome.ratios.items():
        metrics.quota_usage.labels(user, limit_name).set(ratio)
    recovered_tx = next(iter(adopted.values()))["tx_hash"] if adopted else None
    report.object_id = object_id
    report.version = version
    report.tx_seq = first.tx_seq
    report.tx_hash = first.tx_hash or recovered_tx
    report.cost = Cost.of_both(fee_neuron, spent.usd_micro)
    report.deduped = all(result.deduped for result in results)
    report.recovered_payment = recovered_tx
    report.reused_tx = first.reused_tx
    report.finalized = all(result.finalized for result in results)
    report.wait = request.wait
    report.nodes = sorted({node for result in results for node in result.nodes})
    report.replaced_nodes = {
        node: why for result in results for node, why in result.failed_nodes.items()
    }
    report.seconds = round(time.monotonic() - started, 3)
    report.warnings = list(outcome.warnings)
    if len(parts) > 1:
        report.fragments = [
            Fragment(
                root=result.root,
                tx_seq=result.tx_seq,
                tx_hash=result.tx_hash,
                size=part.tree.size,
                cost=_paid_now(result.fee_neuron, part.tree.size, settings),
                deduped=result.deduped,
                recovered_payment=(adopted.get(result.root) or {}).get("tx_hash"),
            )
            for part, result in zip(parts, results, strict=True)
        ]
    return report


def _paid_now(fee_neuron: int, size: int, settings: Settings) -> Cost:
    """The cost of one fragment this run paid ``fee_neuron`` for (nothing paid: zero)."""
    if fee_neuron == 0:
        return Cost.of_both(0, 0)
    return Cost.of_both(fee_neuron, quotas.storage_usd_micro(size, settings))


def _catalog_tags(
    context: Context,
    request: UploadRequest,
    submitter: str,
    parts: list[_Part],
    plans: list[UploadPlan],
    *,
    namespace: str,
    name: str,
    sha256: str,
    size: int,
    encrypted: bool,
) -> list[bytes]:
    """The tags of each part's submission: a catalog record, or nothing (see `services.catalog`).

    Parts already on the network are not submitted again, so they carry nothing.
    """
    from zerog_cli.services.catalog import Tagger
    from zerog_cli.zerog.catalog import CatalogRecord, new_object_id

    none = [b""] * len(parts)
    if not any(plan.needs_payment for plan in plans):
        return none
    tagger = Tagger.for_upload(context, submitter)
    if tagger is None:
        return none
    earlier = objects.by_name(context.ledger.conn, context.settings.profile, namespace, name)
    facts = request.catalog
    record = CatalogRecord(
        namespace=namespace,
        name=name,
        version=1 if earlier is None else earlier.version + 1,
        sha256=sha256,
        size=size,
        encrypted=encrypted,
        backup_label=facts.backup_label,
        backup_time=None if facts.backup_time is None else int(facts.backup_time.timestamp()),
        folder=facts.folder,
        dir_format=facts.dir_format,
        fragment_count=len(parts),
        object_id=new_object_id() if len(parts) > 1 else b"",
        ledger_snapshot_height=facts.ledger_snapshot_height,
    )
    return [
        tagger.tags(replace(record, fragment_index=index), part.tree) if plan.needs_payment else b""
        for index, (part, plan) in enumerate(zip(parts, plans, strict=True))
    ]


def _journal(
    context: Context, pending: PendingPayment, unrecorded: list[str]
) -> Callable[[str], None]:
    """The callback that journals ``pending``'s Flow payment before it is broadcast."""

    def journal(tx_hash: str) -> None:
        with context.ledger.transaction() as conn:
            payments.add(conn, pending, tx_hash, pid=os.getpid(), host=socket.gethostname())
        unrecorded.append(tx_hash)

    return journal


def _quota_after(context: Context, user: str, charged: Reserved) -> dict[str, QuotaAfter]:
    statuses = quotas.preview(context, user)
    after: dict[str, QuotaAfter] = {}
    for limit_name, entry in statuses.limits.items():
        extra = {
            "storage": charged.storage_bytes,
            "tokens": charged.tokens,
            "monthly_usd": charged.usd_micro,
        }[limit_name]
        used = entry.used + entry.reserved + extra
        after[limit_name] = QuotaAfter(
            used=used, limit=entry.limit, fits=entry.limit is None or used <= entry.limit
        )
    return after
