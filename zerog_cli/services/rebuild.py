"""`zerog ledger rebuild --from-chain`: the ledger again, from the wallet's Flow submissions.

Every upload puts a sealed catalog record in its submission's ``tags``
(`services.catalog`, `zerog.catalog`). A rebuild reads them back:

1. Scan the ``Submit`` logs of the profile's Flow contract whose submitter
   (topic 1) is the wallet, with ``eth_getLogs`` in bounded block ranges, **from
   the chain's head downwards**. A node that refuses a range or a result count
   (public RPCs cap both) gets half the range, down to one block. Each range
   done is saved in a checkpoint beside the target, so a rerun resumes there.
2. Keep a log only when its transaction was sent by the wallet (anyone may name
   any submitter: the contract checks only that it is non-zero) and its tags
   open with the catalog key for this submitter and these node roots. The root
   is recomputed from the nodes; the fee is the transaction's value.
3. Scanning stops at ``--from-block``, or sooner: the newest ledger snapshot
   (`zerog ledger backup --to-0g`) says the chain height it was taken at, so the
   scan stops just above it. Submissions point at the latest snapshot, so a
   pointer seen without its snapshot keeps the scan going until it is found.
4. Write the new ledger: the snapshot's (quotas, ACLs, verifications, nonces)
   when there is one, plus every submission it does not already hold, as
   namespaces, objects (with fragments), backups and costs marked ``rebuilt``.
   Without a snapshot the namespaces belong to the acting user, with no ACL.
   The new ledger is built in a temporary file, then copied over the target in
   one step (SQLite's backup API), after a safety copy of what was there. A
   PostgreSQL ledger (``ledger_url``) gets the temporary file's rows through
   `ledger.copy` (one transaction that deletes what was there, inserts, and
   commits only when row counts and sums match), after the same safety copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerog_cli.errors import ConfigError, IntegrityError, NotFound, UsageError
from zerog_cli.infra.files import atomic_write_text, ensure_private_dir
from zerog_cli.ledger import backups as backup_rows
from zerog_cli.ledger import catalog as catalog_rows
from zerog_cli.ledger import costs, objects
from zerog_cli.ledger import namespaces as namespace_rows
from zerog_cli.ledger import quotas as quota_rows
from zerog_cli.ledger.copy import LedgerCopied
from zerog_cli.ledger.db import LedgerConnection, describe, format_time
from zerog_cli.services import quotas
from zerog_cli.services.catalog import CatalogSecret, catalog_secret
from zerog_cli.services.context import Context
from zerog_cli.zerog.segments import Progress

if TYPE_CHECKING:
    from zerog_cli.ledger.db import Ledger
    from zerog_cli.ledger.postgres import PostgresTarget
    from zerog_cli.zerog.catalog import CatalogRecord
    from zerog_cli.zerog.evm import EvmClient

log = logging.getLogger("zerog.rebuild")

CHECKPOINT_SUFFIX = ".rebuild.json"
CHECKPOINT_VERSION = 1
REBUILT_SOURCE = "(rebuilt from the chain)"
"""The source path of a rebuilt backup: the chain does not keep it (a restore names the
file from the object's name)."""
TX_BATCH = 200


@dataclass
class Found:
    """One accepted submission: where it is on the chain and what its record says."""

    block: int
    time: int
    tx_hash: str
    tx_seq: int
    root: str
    stored_size: int
    fee: int
    record: dict[str, Any]

    def catalog(self) -> CatalogRecord:
        from zerog_cli.zerog.catalog import CatalogRecord

        fields = dict(self.record)
        fields["object_id"] = bytes.fromhex(fields["object_id"])
        return CatalogRecord(**fields)


@dataclass
class ScanState:
    """The checkpoint: what the scan covered and found so far (JSON beside the target)."""

    chain_id: int
    flow: str
    wallet: str
    network: str
    from_block: int
    head: int
    next_high: int
    """The top of the next range to scan (downwards)."""
    low: int
    """The lowest block still to scan: ``from_block``, raised once a snapshot is found."""
    block_range: int
    found: list[Found] = field(default_factory=list)
    snapshot_tx_seq: int | None = None
    """The newest ledger snapshot found (its own record)."""
    pointed_snapshot: int | None = None
    """The snapshot tx seq the newest record points at."""
    skipped: dict[str, int] = field(default_factory=dict)
    ranges: int = 0
    shrunk: int = 0

    @property
    def done(self) -> bool:
        return self.next_high < self.low

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {"version": CHECKPOINT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanState:
        values = {key: value for key, value in data.items() if key != "version"}
        values["found"] = [Found(**item) for item in values["found"]]
        return cls(**values)

    def same_scan(self, other: ScanState) -> bool:
        keys = ("chain_id", "flow", "wallet", "network", "from_block")
        return all(getattr(self, key) == getattr(other, key) for key in keys)


@dataclass(frozen=True)
class RebuildRequest:
    from_block: int = 0
    to: Path | None = None
    dry_run: bool = False
    yes: bool = False


def checkpoint_path(target: Path | PostgresTarget) -> Path:
    """Beside a ledger file; in ZEROG_HOME, named for the database, for a PostgreSQL ledger."""
    if isinstance(target, Path):
        return target.with_name(target.name + CHECKPOINT_SUFFIX)
    from zerog_cli.infra.config import zerog_home

    return zerog_home() / f"postgresql-{target.database}{CHECKPOINT_SUFFIX}"


def prepare_home() -> None:
    """A rebuild after losing the host starts from nothing: make the home (0700)."""
    from zerog_cli.infra.config import zerog_home

    ensure_private_dir(zerog_home())


@dataclass(frozen=True)
class SnapshotFound:
    """The newest ledger snapshot found on the chain: its tx, root, block, and the block
    height it was taken at."""

    tx_seq: int
    root: str
    block: int
    taken_at_height: int


@dataclass
class RebuildReport:
    """`ledger rebuild --from-chain`: what the scan found (``scanned_blocks``: from and to)
    and, unless ``dry_run``, what was written (the counts are None in a dry run), where
    the previous ledger was saved, and what could not be rebuilt."""

    target: str
    chain_id: int
    flow_address: str
    wallet: str
    scanned_blocks: dict[str, int]
    ranges: int
    range_shrunk: int
    resumed: bool
    submissions: int
    snapshot: SnapshotFound | None
    skipped: dict[str, int]
    namespaces: list[str]
    warnings: list[str]
    dry_run: bool = False
    objects: int | None = None
    backups: int | None = None
    fragments: int | None = None
    costs: int | None = None
    incomplete_fragmented_objects: int | None = None
    namespaces_created: list[str] | None = None
    folder_members: dict[str, int] | None = None
    acl_note: str | None = None
    replaced: str | None = None
    copied: LedgerCopied | None = None
    """On PostgreSQL: the rebuilt rows loaded into the database (`ledger copy`'s figures)."""


def rebuild(
    context: Context,
    request: RebuildRequest,
    *,
    progress: Progress | None = None,
    confirm: Callable[[str], None] | None = None,
) -> RebuildReport:
    """Scan, then write (or with ``dry_run`` only report) the rebuilt ledger.

    ``confirm(what)`` is called before an existing ledger with records is
    replaced; it raises to refuse (the CLI's ``--yes`` check).
    """
    from zerog_cli.infra.signing import wallet_key
    from zerog_cli.services.network import check_chain_id, storage_network

    if request.from_block < 0:
        raise UsageError("--from-block must be 0 or more")
    settings = context.settings
    target = request.to if request.to is not None else context.ledger_target
    secret = catalog_secret(context)
    if secret is None:
        raise ConfigError(
            "neither CATALOG_KEY nor ENCRYPTION_KEY is set: the chain's catalog records"
            " cannot be read without the key they were sealed with",
            hint="export CATALOG_KEY_FILE (or ENCRYPTION_KEY_FILE) with the key the uploads used",
        )
    if not request.dry_run:
        _check_target(target, request.yes, confirm)
    wallet = wallet_key(context.secrets, devnet=settings.is_devnet).address
    network = storage_network(context)
    evm = network.evm
    flow = _flow_address(context, network)
    chain_id = check_chain_id(network, context)
    head = evm.block_number()
    fresh = ScanState(
        chain_id=chain_id,
        flow=flow,
        wallet=wallet.lower(),
        network=settings.profile,
        from_block=request.from_block,
        head=head,
        next_high=head,
        low=request.from_block,
        block_range=settings.logs_block_range,
    )
    checkpoint = checkpoint_path(target)
    state, resumed = _resume(checkpoint, fresh)
    if resumed:
        context.notify(
            f"resuming the scan from block {state.next_high} ({len(state.found)} submissions"
            f" found before block {state.head + 1})"
        )
    _scan(evm, state, secret, checkpoint=None if request.dry_run else checkpoint, progress=progress)
    report = _summary(state, target, resumed)
    if request.dry_run:
        report.dry_run = True
        return report
    with tempfile.TemporaryDirectory(prefix="zerog-rebuild-", dir=checkpoint.parent) as folder:
        building = Path(folder) / "ledger.db"
        written = _write_ledger(context, state, secret, building)
        report.objects = written["objects"]
        report.backups = written["backups"]
        report.fragments = written["fragments"]
        report.costs = written["costs"]
        report.incomplete_fragmented_objects = written["incomplete_fragmented_objects"]
        report.namespaces_created = list(written["namespaces_created"])
        report.folder_members = dict(written["folder_members"])
        report.acl_note = written["acl_note"]
        if isinstance(target, Path):
            report.replaced = _install(building, target)
        else:
            report.replaced, report.copied = _load_into_postgres(building, target)
    checkpoint.unlink(missing_ok=True)
    return report


# -- scanning ---------------------------------------------------------------------


def _flow_address(context: Context, network: Any) -> str:
    """The ``flow_address`` setting, else what the storage nodes report."""
    from zerog_cli.errors import NetworkUnavailable, ZerogError

    configured = context.settings.flow_address
    if configured:
        return str(configured).lower()
    problems = []
    for node in network.trusted_nodes():
        try:
            return str(network.node(node.url).get_status().network_identity.flow_address).lower()
        except ZerogError as error:
            problems.append(str(error))
    raise NetworkUnavailable(
        "no storage node told the Flow contract's address"
        + (f" ({problems[0]})" if problems else ""),
        hint="set flow_address",
    )


def _resume(checkpoint: Path, fresh: ScanState) -> tuple[ScanState, bool]:
    try:
        saved = ScanState.from_json(json.loads(checkpoint.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return fresh, False
    except (ValueError, TypeError, KeyError) as error:
        log.warning("ignoring an unreadable rebuild checkpoint %s: %s", checkpoint, error)
        return fresh, False
    if not saved.same_scan(fresh):
        log.warning("ignoring the rebuild checkpoint %s: it scanned another chain", checkpoint)
        return fresh, False
    return saved, True


def _save(checkpoint: Path | None, state: ScanState) -> None:
    if checkpoint is not None:
        atomic_write_text(checkpoint, json.dumps(state.to_json()), mode=0o600)


def _scan(
    evm: EvmClient,
    state: ScanState,
    secret: CatalogSecret,
    *,
    checkpoint: Path | None,
    progress: Progress | None,
) -> None:
    from zerog_cli.zerog.evm import LogQueryTooLarge
    from zerog_cli.zerog.flow_abi import SUBMIT_EVENT_TOPIC

    key = secret.record_key()
    topics: list[str | None] = [
        "0x" + SUBMIT_EVENT_TOPIC.hex(),
        "0x" + bytes(12).hex() + state.wallet.removeprefix("0x"),
    ]
    total = max(1, state.head - state.low + 1)
    while not state.done:
        start = max(state.low, state.next_high - state.block_range + 1)
        try:
            logs = evm.get_logs(state.flow, topics, start, state.next_high)
        except LogQueryTooLarge as error:
            if state.block_range == 1:
                raise
            state.block_range = max(1, state.block_range // 2)
            state.shrunk += 1
            log.info("%s: asking for %d blocks at a time", error, state.block_range)
            continue
        _accept(evm, state, key, logs)
        state.next_high = start - 1
        state.ranges += 1
        _save(checkpoint, state)
        if progress is not None:
            progress("blocks", min(total, state.head - state.next_high), total)


def _accept(evm: EvmClient, state: ScanState, key: bytes, logs: list[dict[str, Any]]) -> None:
    """Keep the logs of ``logs`` that are the wallet's own tagged submissions, newest first."""
    from zerog_cli.zerog.catalog import open_tags
    from zerog_cli.zerog.flow_abi import decode_submit_log
    from zerog_cli.zerog.merkle import fold_submission_root

    decoded = []
    for item in logs:
        try:
            decoded.append((item, decode_submit_log(item)))
        except ValueError:
            state.skip("undecodable")
    hashes = sorted({str(item.get("transactionHash", "")).lower() for item, _ in decoded})
    senders: dict[str, dict[str, Any] | None] = {}
    for first in range(0, len(hashes), TX_BATCH):
        batch = hashes[first : first + TX_BATCH]
        for tx_hash, tx in zip(batch, evm.transactions(batch), strict=True):
            senders[tx_hash] = None if tx is None else dict(tx)
    sectors_per_tx: dict[str, int] = {}
    for item, event in decoded:
        tx_hash = str(item.get("transactionHash", "")).lower()
        sectors_per_tx[tx_hash] = sectors_per_tx.get(tx_hash, 0) + event.sectors
    accepted = []
    for item, event in reversed(decoded):
        tx_hash = str(item.get("transactionHash", "")).lower()
        tx = senders.get(tx_hash)
        if tx is None or str(tx.get("from", "")).lower() != state.wallet:
            state.skip("sent by another account")
            continue
        data = event.submission.data
        try:
            record = open_tags(data.tags, key, submitter=state.wallet, identity=data.identity)
        except IntegrityError:
            state.skip("unreadable catalog record")
            continue
        if record is None:
            state.skip("no catalog record")
            continue
        value = int(str(tx.get("value", "0x0")), 16)
        fee = value * event.sectors // max(1, sectors_per_tx[tx_hash])
        fields = asdict(record)
        fields["object_id"] = record.object_id.hex()
        accepted.append(
            Found(
                block=int(str(item.get("blockNumber", "0x0")), 16),
                time=0,
                tx_hash=tx_hash,
                tx_seq=event.tx_seq,
                root="0x" + fold_submission_root(data.nodes).hex(),
                stored_size=data.length,
                fee=fee,
                record=fields,
            )
        )
    if accepted:
        times = evm.block_times(sorted({found.block for found in accepted}))
        for found in accepted:
            found.time = times[found.block]
            _note_snapshot(state, found)
    state.found.extend(accepted)


def _note_snapshot(state: ScanState, found: Found) -> None:
    """Newest first: the first pointer says which snapshot to want; the first snapshot record
    found ends the scan just above the height it was taken at."""
    record = found.catalog()
    if state.pointed_snapshot is None and record.snapshot is not None:
        state.pointed_snapshot = record.snapshot
    if record.ledger_snapshot_height is not None and state.snapshot_tx_seq is None:
        state.snapshot_tx_seq = found.tx_seq
        state.low = max(state.low, record.ledger_snapshot_height + 1)


def _summary(state: ScanState, target: Path | PostgresTarget, resumed: bool) -> RebuildReport:
    snapshot = next((f for f in state.found if f.tx_seq == state.snapshot_tx_seq), None)
    warnings = []
    if state.pointed_snapshot is not None and snapshot is None:
        warnings.append(
            f"submissions point at the ledger snapshot of tx {state.pointed_snapshot}, which"
            f" was not found above block {state.from_block}: only submissions are restored"
        )
    elif (
        state.pointed_snapshot is not None
        and snapshot is not None
        and snapshot.tx_seq != state.pointed_snapshot
    ):
        warnings.append(
            f"submissions point at the ledger snapshot of tx {state.pointed_snapshot}; the"
            f" newest one found is tx {snapshot.tx_seq}"
        )
    replay = [f for f in state.found if f.tx_seq != state.snapshot_tx_seq]
    return RebuildReport(
        target=describe(target),
        chain_id=state.chain_id,
        flow_address=state.flow,
        wallet=state.wallet,
        scanned_blocks={"from": state.next_high + 1, "to": state.head},
        ranges=state.ranges,
        range_shrunk=state.shrunk,
        resumed=resumed,
        submissions=len(replay),
        snapshot=None
        if snapshot is None
        else SnapshotFound(
            tx_seq=snapshot.tx_seq,
            root=snapshot.root,
            block=snapshot.block,
            taken_at_height=int(snapshot.record["ledger_snapshot_height"]),
        ),
        skipped=dict(state.skipped),
        namespaces=sorted({f.record["namespace"] for f in replay}),
        warnings=warnings,
    )


# -- writing ---------------------------------------------------------------------


def _check_target(
    target: Path | PostgresTarget, yes: bool, confirm: Callable[[str], None] | None
) -> None:
    from zerog_cli.ledger.db import open_ledger

    if isinstance(target, Path) and not target.exists():
        return
    ledger = open_ledger(target)
    try:
        if catalog_rows.has_records(ledger.conn):
            what = f"{ledger.location} holds records; the rebuilt ledger replaces them"
            if yes:
                pass
            elif confirm is not None:
                confirm(what)
            else:
                raise UsageError(f"{what}; nothing was changed", hint="pass --yes")
    finally:
        ledger.close()


def _install(building: Path, target: Path) -> str | None:
    """Copy the built ledger over ``target`` in one step; the old one's records are saved first.

    Returns where the old ledger was saved (None when it held nothing)."""
    import sqlite3

    from zerog_cli.ledger import admin
    from zerog_cli.ledger.db import open_ledger

    ensure_private_dir(target.parent)
    destination = open_ledger(target)
    try:
        saved = None
        if catalog_rows.has_records(destination.conn):
            saved = admin.safety_backup(destination, "rebuild").destination
        assert isinstance(destination.conn, sqlite3.Connection), "target is a SQLite file"
        source = sqlite3.connect(building)
        try:
            source.backup(destination.conn)
        finally:
            source.close()
    finally:
        destination.close()
    os.chmod(target, 0o600)
    return saved


def _load_into_postgres(building: Path, target: PostgresTarget) -> tuple[str | None, LedgerCopied]:
    """Replace the PostgreSQL ledger's rows with the built ledger's, as `zerog ledger copy`
    copies (counts and sums verified before the one transaction commits).

    Returns where the old rows were saved (None when it held nothing) and the copy's report."""
    from zerog_cli.ledger import admin
    from zerog_cli.ledger.copy import copy_ledger
    from zerog_cli.ledger.db import open_ledger

    destination = open_ledger(target)
    try:
        saved = None
        if catalog_rows.has_records(destination.conn):
            saved = admin.safety_backup(destination, "rebuild").destination
    finally:
        destination.close()
    source = open_ledger(building)
    try:
        copied = copy_ledger(source, target, replace=True)
    finally:
        source.close()
    return saved, copied


def _write_ledger(
    context: Context, state: ScanState, secret: CatalogSecret, building: Path
) -> dict[str, Any]:
    """The new ledger in ``building``: the snapshot's, plus the submissions it lacks."""
    from zerog_cli.ledger.db import open_ledger

    snapshot = next((f for f in state.found if f.tx_seq == state.snapshot_tx_seq), None)
    if snapshot is not None:
        _fetch_snapshot(context, snapshot, secret, building)
    ledger = open_ledger(building)
    try:
        with ledger.transaction() as conn:
            known = catalog_rows.known_tx_seqs(conn, state.network)
            if snapshot is not None:
                catalog_rows.add_snapshot(
                    conn,
                    tx_seq=snapshot.tx_seq,
                    network=state.network,
                    root=snapshot.root,
                    block=snapshot.block,
                    taken_at_height=int(snapshot.record["ledger_snapshot_height"]),
                )
            replay = sorted(
                (f for f in state.found if f.tx_seq not in known), key=lambda f: f.tx_seq
            )
            written = _replay(context, conn, state.network, replay)
        members = _folder_members(context, ledger, state.network, written.pop("folders"))
        listed = _directory_members(context, ledger, state.network, written.pop("directories"))
        members = {key: members[key] + listed[key] for key in members}
    finally:
        ledger.close()
    written["folder_members"] = members
    written["acl_note"] = (
        None
        if snapshot is not None
        else f"no ledger snapshot found: every rebuilt namespace belongs to"
        f" {context.acting_user}, with no ACL entries (grant roles again with `zerog ns grant`)"
    )
    return written


def _fetch_snapshot(
    context: Context, snapshot: Found, secret: CatalogSecret, building: Path
) -> None:
    """Download and decrypt the ledger snapshot into ``building``; check its SHA-256."""
    from zerog_cli.services.network import storage_network
    from zerog_cli.zerog.download import download

    record = snapshot.catalog()
    digest = hashlib.sha256()
    with building.open("wb") as sink:

        class _Hashing:
            def write(self, data: bytes) -> int:
                digest.update(data)
                return sink.write(data)

        download(
            storage_network(context),
            snapshot.root,
            _Hashing(),  # type: ignore[arg-type]
            expected_size=snapshot.stored_size,
            symmetric_key=secret.snapshot_key(),
        )
    if digest.hexdigest() != record.sha256:
        raise IntegrityError(
            f"the ledger snapshot {snapshot.root} does not match the SHA-256 its record names"
        )
    os.chmod(building, 0o600)


def _period(context: Context, seconds: int) -> str:
    return quotas.period_of(datetime.fromtimestamp(seconds, UTC), context.settings.timezone)


def _replay(
    context: Context, conn: LedgerConnection, network: str, replay: list[Found]
) -> dict[str, Any]:
    """Write ``replay`` (oldest first) as namespaces, objects, fragments, backups, costs."""
    user = context.acting_user
    quotas.ensure_user(conn, context, user)
    groups: dict[str, list[Found]] = {}
    singles: list[list[Found]] = []
    for found in replay:
        object_id = found.record["object_id"]
        if found.record["fragment_count"] > 1:
            groups.setdefault(object_id, []).append(found)
        else:
            singles.append([found])
    whole = list(singles)
    incomplete = 0
    for parts in groups.values():
        count = parts[0].record["fragment_count"]
        by_index = {part.record["fragment_index"]: part for part in parts}
        if sorted(by_index) != list(range(count)):
            incomplete += 1
            continue
        whole.append([by_index[index] for index in range(count)])
    whole.sort(key=lambda parts: parts[0].tx_seq)
    current = quotas.current_period(context)
    counts = {"objects": 0, "backups": 0, "fragments": 0, "costs": 0}
    created: list[str] = []
    folders: list[tuple[int, str, str, bool]] = []
    directories: list[tuple[int, str, int, int]] = []
    storage_bytes = usd_now = 0
    for parts in whole:
        first = parts[0]
        record = first.catalog()
        if namespace_rows.get(conn, record.namespace) is None:
            namespace_rows.insert(
                conn,
                namespace_rows.Namespace(
                    name=record.namespace,
                    owner=user,
                    quota_bytes=None,
                    used_bytes=0,
                    max_object_bytes=None,
                    encrypt_by_default=False,
                    metadata={},
                    created_at=format_time(datetime.fromtimestamp(first.time, UTC)),
                ),
            )
            catalog_rows.mark_rebuilt(conn, "namespaces", record.namespace)
            created.append(record.namespace)
        fee = sum(part.fee for part in parts)
        stored = sum(part.stored_size for part in parts)
        moment = format_time(datetime.fromtimestamp(first.time, UTC))
        if objects.by_name(conn, network, record.namespace, record.name, record.version):
            continue  # a snapshot held that version of the name already
        usd = quotas.storage_usd_micro(stored, context.settings)
        object_id = objects.insert(
            conn,
            namespace=record.namespace,
            name=record.name,
            version=record.version,
            root=first.root,
            tx_seq=first.tx_seq,
            size=record.size,
            sha256=record.sha256,
            network=network,
            encrypted=record.encrypted,
            uploader=user,
            fee_neuron=fee,
            fee_usd_micro=usd,
            created_at=moment,
            rebuilt=True,
        )
        counts["objects"] += 1
        if len(parts) > 1:
            offsets = [sum(p.stored_size for p in parts[:i]) for i in range(len(parts))]
            objects.add_fragments(
                conn,
                object_id,
                [
                    objects.Fragment(
                        index, part.root, part.tx_seq, offsets[index], part.stored_size
                    )
                    for index, part in enumerate(parts)
                ],
            )
            counts["fragments"] += len(parts)
        namespace_rows.add_used_bytes(conn, record.namespace, stored)
        if record.backup_label is not None:
            backup_id = backup_rows.insert(
                conn,
                namespace=record.namespace,
                label=record.backup_label,
                source_path=REBUILT_SOURCE,
                object_id=object_id,
                root=first.root,
                tx_seq=first.tx_seq,
                size=record.size,
                sha256=record.sha256,
                encrypted=record.encrypted,
                network=network,
                created_at=format_time(datetime.fromtimestamp(record.backup_time or 0, UTC)),
            )
            catalog_rows.mark_rebuilt(conn, "storage_backups", backup_id)
            counts["backups"] += 1
            if record.folder:
                catalog_rows.set_backup_kind_folder(conn, backup_id)
                folders.append((backup_id, record.namespace, record.name, record.encrypted))
            elif record.dir_format:
                directories.append((backup_id, first.root, record.size, record.backup_time or 0))
        period = _period(context, first.time)
        cost_id = costs.record(
            conn,
            costs.CostEntry(
                period=period,
                user=user,
                namespace=record.namespace,
                service="storage",
                operation="backup" if record.backup_label is not None else "upload",
                quantity=stored,
                unit="bytes",
                usd_micro=usd,
                neuron=fee,
                reference=first.root,
                network=network,
            ),
        )
        catalog_rows.mark_rebuilt(conn, "cost_tracking", cost_id)
        counts["costs"] += 1
        storage_bytes += stored
        if period == current:
            usd_now += usd
    quota_rows.add_usage(conn, user, storage_bytes=storage_bytes, usd_micro=usd_now)
    return {
        **counts,
        "incomplete_fragmented_objects": incomplete,
        "namespaces_created": created,
        "folders": folders,
        "directories": directories,
    }


def _folder_members(
    context: Context, ledger: Ledger, network: str, folders: list[tuple[int, str, str, bool]]
) -> dict[str, int]:
    """Members of rebuilt folder backups, read from their index objects on 0G.

    A folder whose index is missing, or encrypted without ENCRYPTION_KEY, stays
    a folder backup without members: it restores whole (``-o``), not by member."""
    import io

    from zerog_cli.infra.archive import Member, check_index
    from zerog_cli.ledger import snapshots
    from zerog_cli.services.network import storage_network
    from zerog_cli.services.snapshots import INDEX_SUFFIX
    from zerog_cli.services.upload import encryption_key
    from zerog_cli.zerog.download import download
    from zerog_cli.zerog.encryption import HEADER_SIZE_V1

    listed = missing = 0
    for backup_id, namespace, name, encrypted in folders:
        index = objects.by_name(ledger.conn, network, namespace, name + INDEX_SUFFIX)
        if index is None:
            missing += 1
            continue
        sink = io.BytesIO()
        try:
            key = encryption_key(context) if encrypted else None
            download(
                storage_network(context),
                index.root,
                sink,
                expected_size=index.size + (HEADER_SIZE_V1 if key else 0),
                symmetric_key=key,
            )
            if hashlib.sha256(sink.getvalue()).hexdigest() != index.sha256:
                raise IntegrityError(f"the index {index.root} does not match its SHA-256")
            document = json.loads(sink.getvalue().decode("utf-8"))
            check_index([Member.from_json(member) for member in document["members"]])
        except (ConfigError, NotFound, IntegrityError, UsageError, ValueError) as error:
            log.warning("folder backup %d: its index could not be read: %s", backup_id, error)
            missing += 1
            continue
        with ledger.transaction() as conn:
            snapshots.record(
                conn,
                backup_id,
                document["members"],
                index_object_id=index.id,
                skipped=document.get("skipped", {}),
            )
        listed += 1
    return {"listed": listed, "missing": missing}


def _directory_members(
    context: Context, ledger: Ledger, network: str, backups: list[tuple[int, str, int, int]]
) -> dict[str, int]:
    """Members of rebuilt backups in the official directory format, from their metadata
    objects on 0G. Sizes, kinds, links and each file's SHA-256 (its rebuilt object's) come
    back; modes and times are not in the format: 0644 files, 0755 folders, the backup's time.
    """
    import io

    from zerog_cli.infra.archive import Member
    from zerog_cli.ledger import snapshots
    from zerog_cli.services.network import storage_network
    from zerog_cli.zerog.directory import decode
    from zerog_cli.zerog.download import download

    empty_sha256 = hashlib.sha256(b"").hexdigest()
    listed = missing = 0
    for backup_id, root, size, moment in backups:
        sink = io.BytesIO()
        try:
            download(storage_network(context), root, sink, expected_size=size)
            entries = decode(sink.getvalue())
        except (NotFound, IntegrityError) as error:
            log.warning("directory backup %d: its metadata could not be read: %s", backup_id, error)
            missing += 1
            continue
        members = []
        for entry in entries:
            if entry.kind == "dir":
                members.append(Member(entry.path, "dir", 0, 0o755, moment))
            elif entry.kind == "symlink":
                members.append(Member(entry.path, "symlink", 0, 0o777, moment, link=entry.link))
            else:
                known = objects.by_root(ledger.conn, network, entry.roots[0]) if entry.roots else []
                sha256 = known[0].sha256 if known else empty_sha256 if not entry.roots else None
                members.append(Member(entry.path, "file", entry.size, 0o644, moment, sha256))
        with ledger.transaction() as conn:
            snapshots.record(
                conn,
                backup_id,
                [member.to_json() for member in members],
                index_object_id=None,
                skipped={},
                kind="0g-dir",
            )
        listed += 1
    return {"listed": listed, "missing": missing}
