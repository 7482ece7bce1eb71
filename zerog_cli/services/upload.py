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
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import UsageError, ZerogError, note_unrecorded_payment
from zerog_cli.infra.secrets import ENCRYPTION_KEY
from zerog_cli.infra.signing import wallet_key, warm_up
from zerog_cli.infra.units import format_size
from zerog_cli.ledger import costs, objects, payments
from zerog_cli.ledger.payments import PendingPayment
from zerog_cli.ledger.quotas import Reserved
from zerog_cli.services import namespaces, quotas
from zerog_cli.services.context import Context
from zerog_cli.services.network import (
    check_chain_id,
    check_node_chain_id,
    gas_options,
    storage_network,
)
from zerog_cli.services.payments import settle_abandoned
from zerog_cli.services.spool import SealingReader, StreamInput, spool, spool_folder

if TYPE_CHECKING:
    from zerog_cli.zerog.merkle import FileTree
    from zerog_cli.zerog.transfer import SegmentSource, UploadPlan

Progress = Callable[[str, int, int], None]
Recorder = Callable[[sqlite3.Connection, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class UploadRequest:
    path: Path
    """The file to upload; ignored when ``stream`` is given."""
    namespace: str | None = None
    name: str | None = None
    encrypt: bool | None = None
    replicas: int | None = None
    wait: str = "finalized"
    max_size: int | None = None
    dry_run: bool = False
    operation: str = "upload"
    stream: StreamInput | None = None
    """Read this stream (stdin, a producer) instead of ``path``: spooled and hashed in one pass."""
    replace: bool = False
    """Store a new version when the name exists (the old one stays in history)."""
    size_setting: str = "max_upload_size"
    """The setting that limits the size when neither --max-size nor the namespace does
    (backups use ``max_backup_size``, which may be unset: no limit)."""
    also_record: Recorder | None = None
    """Writes more rows (a backup record, say) in the transaction that records the
    object, so a crash can never leave one without the other. It gets the open
    connection and the object's fields, and returns fields to add to the report."""


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
) -> tuple[FileTree, str, int, OpenSource]:
    """One read of the input: (tree of what is uploaded, plaintext SHA-256, plaintext size,
    source factory).

    A stream is spooled to a private file (see `services.spool`) that ``cleanup``
    removes when the upload ends, however it ends.
    """
    from zerog_cli.zerog.encryption import EncryptedReader, new_header_v1
    from zerog_cli.zerog.merkle import tree_from_path, tree_from_stream
    from zerog_cli.zerog.transfer import FileSource

    header = None if key is None else new_header_v1()
    if request.stream is not None:
        folder = spool_folder(context.settings.tmp_dir)
        spooled = cleanup.enter_context(
            spool(request.stream, folder, limit=limit, key=key, header=header)
        )
        path = spooled.path
        tree, sha256, size = spooled.tree, spooled.sha256, spooled.size
    else:
        path = request.path
        size = path.stat().st_size
        if key is None:
            tree, hashed = tree_from_path(path)
            assert hashed is not None
            sha256 = hashed
        else:
            with path.open("rb") as plaintext:
                sealing = SealingReader(plaintext, key, header)
                tree, _ = tree_from_stream(sealing, with_sha256=False, name=str(path))
            sha256 = sealing.sha256.hexdigest()
    if key is None or header is None:
        return tree, sha256, size, lambda: FileSource(path)
    sealed_header = header
    return tree, sha256, size, lambda: EncryptedReader.from_path(path, key, sealed_header)


def _resolve_namespace(
    context: Context, request: UploadRequest, user: str, dry_run: bool
) -> namespaces.Namespace | None:
    if request.namespace is None:
        if dry_run:
            return namespaces.find(context, namespaces.DEFAULT_NAMESPACE)
        return namespaces.ensure_default(context, user)
    return namespaces.require(context, request.namespace, user, "write")


def upload(
    context: Context, request: UploadRequest, progress: Progress | None = None
) -> dict[str, Any]:
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
) -> dict[str, Any]:
    from zerog_cli.zerog.transfer import UploadOptions, plan_upload
    from zerog_cli.zerog.transfer import upload as send

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
        configured = getattr(settings, request.size_setting)
        limit = None if configured is None else int(configured)
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
    key = encryption_key(context) if encrypt else None
    # A missing wallet key is exit 8 whether or not the network is up: look before contacting it.
    signer = None if request.dry_run else wallet_key(context.secrets, devnet=settings.is_devnet)

    if not request.dry_run:
        warm_up()
    tree, sha256, plain_size, open_source = _hash_source(request, key, limit, context, cleanup)
    network = storage_network(context)
    plan: UploadPlan = plan_upload(
        network,
        tree,
        replicas=request.replicas or int(settings.replicas),
        flow_address=settings.flow_address,
    )
    check_node_chain_id(plan, context)
    usd = quotas.storage_usd_micro(tree.size, settings) if plan.needs_payment else 0
    charged = Reserved(storage_bytes=tree.size if plan.needs_payment else 0, usd_micro=usd)
    report: dict[str, Any] = {
        "namespace": ns_name,
        "name": name,
        "path": "-" if request.stream is not None else str(request.path),
        "size": plain_size,
        "stored_size": tree.size,
        "sha256": sha256,
        "root": tree.root_hex,
        "encrypted": key is not None,
        "fee_neuron": str(plan.fee_neuron),
        "usd_micro": usd,
        "already_on_network": not plan.needs_payment,
        "flow_address": plan.flow_address,
    }
    if signer is None:
        report["dry_run"] = True
        report["quota_after"] = _quota_after(context, user, charged)
        return report

    adopted = settle_abandoned(context, network.evm, adopt_root=tree.root_hex, user=user)
    if adopted is not None:
        unrecorded.append(adopted["tx_hash"])
    if plan.needs_payment:
        check_chain_id(network, context)
    prepaid = adopted["tx_hash"] if adopted is not None and plan.needs_payment else None
    pending = PendingPayment(
        intent=uuid.uuid4().hex,
        operation=request.operation,
        user=user,
        namespace=ns_name,
        root=tree.root_hex,
        size=tree.size,
        fee_neuron=plan.fee_neuron,
        usd_micro=usd,
        network=network_name,
    )

    def journal(tx_hash: str) -> None:
        with context.ledger.transaction() as conn:
            payments.add(conn, pending, tx_hash, pid=os.getpid(), host=socket.gethostname())
        unrecorded.append(tx_hash)

    reservation = quotas.reserve(
        context,
        user,
        ns_name,
        charged,
        purpose=request.operation,
        namespace_bytes=tree.size,
        object_name=(network_name, name),
        replace=request.replace,
    )
    metrics = context.metrics
    try:
        with open_source() as source:
            result = send(
                network,
                source,
                tree,
                private_key=signer.private_key,
                options=UploadOptions(
                    replicas=request.replicas or int(settings.replicas),
                    wait=request.wait,
                    concurrency=int(settings.upload_concurrency),
                    gas=gas_options(settings),
                    receipt_timeout=float(settings.wait_timeout),
                    tx_known_timeout=float(settings.node_sync_timeout),
                    finality_timeout=float(settings.wait_timeout),
                ),
                plan=plan,
                progress=progress,
                on_tx_signed=journal,
                prepaid_tx=prepaid,
            )
    except BaseException as error:
        quotas.release(context, reservation)
        result_label = "error" if isinstance(error, ZerogError) else "interrupted"
        metrics.storage_operations.labels(request.operation, result_label).inc()
        raise
    fee_neuron, usd_paid = result.fee_neuron, usd
    if adopted is not None and fee_neuron == 0:
        fee_neuron, usd_paid = int(adopted["fee_neuron"]), int(adopted["usd_micro"])
    paid = fee_neuron > 0
    spent = Reserved(storage_bytes=tree.size if paid else 0, usd_micro=usd_paid if paid else 0)
    with context.ledger.transaction() as conn:
        payments.clear(conn, pending.intent)
        if adopted is not None:
            payments.clear(conn, adopted["intent"])
        object_id = objects.insert(
            conn,
            namespace=ns_name,
            name=name,
            root=result.root,
            tx_seq=result.tx_seq,
            size=plain_size,
            sha256=sha256,
            network=network_name,
            encrypted=key is not None,
            uploader=user,
            fee_neuron=fee_neuron,
        )
        stored = objects.by_id(conn, object_id)
        version = stored.version if stored is not None else 1
        outcome = quotas.settle(
            conn,
            context,
            reservation,
            spent,
            costs.CostEntry(
                period=quotas.current_period(context),
                user=user,
                namespace=ns_name,
                service="storage",
                operation=request.operation,
                quantity=tree.size,
                unit="bytes",
                usd_micro=spent.usd_micro,
                neuron=fee_neuron,
                reference=result.root,
                network=network_name,
            ),
            namespace_bytes=tree.size,
        )
        recorded = {
            "object_id": object_id,
            "namespace": ns_name,
            "name": name,
            "root": result.root,
            "tx_seq": result.tx_seq,
            "size": plain_size,
            "sha256": sha256,
            "encrypted": key is not None,
            "network": network_name,
            "version": version,
        }
        extra = request.also_record(conn, recorded) if request.also_record else {}
    unrecorded.clear()
    metrics.storage_operations.labels(request.operation, "ok").inc()
    metrics.storage_bytes.labels("upload").inc(result.bytes_sent)
    metrics.storage_duration.labels(request.operation).observe(time.monotonic() - started)
    metrics.cost_usd.labels("storage").inc(spent.usd_micro / 1_000_000)
    for limit_name, ratio in outcome.ratios.items():
        metrics.quota_usage.labels(user, limit_name).set(ratio)
    report.update(
        {
            "object_id": object_id,
            "version": version,
            "tx_seq": result.tx_seq,
            "tx_hash": result.tx_hash or (None if adopted is None else adopted["tx_hash"]),
            "fee_neuron": str(fee_neuron),
            "usd_micro": spent.usd_micro,
            "deduped": result.deduped,
            "recovered_payment": None if adopted is None else adopted["tx_hash"],
            "reused_tx": result.reused_tx,
            "finalized": result.finalized,
            "wait": request.wait,
            "nodes": result.nodes,
            "replaced_nodes": result.failed_nodes,
            "seconds": round(time.monotonic() - started, 3),
            "warnings": outcome.warnings,
            **extra,
        }
    )
    return report


def _quota_after(context: Context, user: str, charged: Reserved) -> dict[str, Any]:
    statuses = quotas.preview(context, user)
    after = {}
    for limit_name, entry in statuses["limits"].items():
        extra = {
            "storage": charged.storage_bytes,
            "tokens": charged.tokens,
            "monthly_usd": charged.usd_micro,
        }[limit_name]
        used = entry["used"] + entry["reserved"] + extra
        after[limit_name] = {
            "used": used,
            "limit": entry["limit"],
            "fits": entry["limit"] is None or used <= entry["limit"],
        }
    return after
