"""`zerog verify`: read backups back from 0G under a run lock and record what was found.

Each selected backup is downloaded with every segment proof checked into a
hashing sink (nothing is kept on disk), then its size and SHA-256 are
compared with the ledger. One ``verifications`` row is written per backup as
soon as it is checked, so a run that is stopped or killed keeps its progress.

Statuses: ``ok``; ``mismatch`` (a proof, the root, the size or the SHA-256
did not match); ``missing`` (no storage node has the file); ``error`` (the
check could not finish: network, missing key…). ``error`` says nothing about
the backup, so it does not count as a verification when choosing what to
check next: the default order is least recently *conclusively* checked
first, which is also what makes ``--max-duration`` resume where the previous
run stopped. ``--subset n/t`` takes backups whose id is ``n-1`` modulo ``t``
(so t nightly runs read everything).

``--read-data-subset 5%`` (restic's flag) reads only a sample of each
backup's segments, always the first and the last, each checked against the
root with its Merkle proof: a proof ties one segment to the root without the
rest of the file, so the check is sound for what it reads. It cannot rebuild
the root or compare the SHA-256, so it is recorded as ``sampled`` with its
coverage (segments read of segments in the file), and `backup unverified
--max-age-full` still asks for a full read now and then. ``n/t`` reads the
segments whose index is ``n-1`` modulo ``t`` (plus the first and last).
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from zerog_cli.errors import (
    ExitCode,
    IntegrityError,
    NetworkUnavailable,
    NotFound,
    UsageError,
    ZerogError,
    error_class,
)
from zerog_cli.infra.locking import Holder
from zerog_cli.infra.output import copied_fields
from zerog_cli.ledger import backups as rows
from zerog_cli.ledger import objects, verifications
from zerog_cli.ledger.backups import Backup, BackupFilter
from zerog_cli.ledger.db import format_time
from zerog_cli.services.backups import require_namespace, stored_object
from zerog_cli.services.context import Context
from zerog_cli.services.download import NodeFetch, node_fetches
from zerog_cli.services.sampling import DataSubset

LOCK_NAME = "verify"
NETWORK_GIVE_UP = 3
"""Consecutive backups failing for network reasons after which a run stops early."""

SYMBOLS = {"ok": "=", "mismatch": "!", "missing": "-", "error": "*"}


@dataclass(frozen=True)
class Selection:
    """What to verify. Filters combine; with nothing given, every live backup."""

    ids: tuple[int, ...] = ()
    all: bool = False
    namespace: str | None = None
    label: str | None = None
    older_than: int | None = None
    subset: tuple[int, int] | None = None
    sample_percent: float | None = None
    data_subset: DataSubset | None = None

    def __post_init__(self) -> None:
        filters = (self.older_than, self.subset, self.sample_percent, self.namespace, self.label)
        if self.ids and self.all:
            raise UsageError("give backup ids or --all, not both")
        if self.all and any(value is not None for value in filters):
            raise UsageError("--all means every live backup: drop it to use a filter")


@dataclass(frozen=True)
class CheckedBackup:
    """One backup a verify run checked (``status``: ok, mismatch, missing or error;
    ``kind``: full or sampled, with the segments read of those in the file)."""

    backup_id: int
    namespace: str
    name: str | None
    root: str
    status: str
    duration_ms: int
    bytes_checked: int
    error: str | None
    checked_at: str
    kind: str = "full"
    segments_checked: int | None = None
    segments_total: int | None = None
    node_stats: list[NodeFetch] = field(default_factory=list)
    """What each storage node served of the check: segments, bytes, MB/s, and the
    segments it served corrupt, failed or stalled on."""


@dataclass(frozen=True)
class ItemResult(CheckedBackup):
    """A checked backup and the exit code of the error it failed with (0 when it did not)."""

    exit_code: int = 0

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.status]

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}" if self.name else f"{self.namespace} {self.root}"

    def line(self) -> str:
        """One line like rclone's ``check --combined``: symbol, id, ns/name, why."""
        text = f"{self.symbol} {self.backup_id} {self.label}"
        if self.kind == "sampled" and self.segments_checked is not None:
            text += f" (sampled {self.segments_checked} of {self.segments_total} segments)"
        return f"{text}: {self.error}" if self.error else text

    def checked(self) -> CheckedBackup:
        return copied_fields(CheckedBackup, self)


@dataclass(frozen=True)
class VerifyCounts:
    """Backups checked per status."""

    ok: int
    mismatch: int
    missing: int
    error: int


@dataclass(frozen=True)
class VerifyResult:
    """`zerog verify`: what one run selected and checked, and the exit code it implies
    (``not_checked``: ids selected but left for the next run, and ``stopped`` says why)."""

    run_id: str
    started_at: str
    in_scope: int
    selected: int
    checked: int
    counts: VerifyCounts
    bytes_checked: int
    seconds: float
    bytes_per_second: int | None
    stopped: str | None
    not_checked: list[int]
    exit_code: int
    items: list[CheckedBackup]


@dataclass
class VerifyReport:
    run_id: str
    started_at: str
    in_scope: int = 0
    selected: int = 0
    items: list[ItemResult] = field(default_factory=list)
    not_checked: list[int] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(SYMBOLS, 0)
        for item in self.items:
            counts[item.status] += 1
        return counts

    @property
    def bytes_checked(self) -> int:
        return sum(item.bytes_checked for item in self.items)

    def failure(self) -> ZerogError | None:
        """The error this run failed with, carrying the report: integrity if any backup
        is bad; else network if the network failed; else the first other error's class.
        None when every backup checked out (or none was due)."""
        if any(item.status in ("mismatch", "missing") for item in self.items):
            code = int(ExitCode.INTEGRITY)
        else:
            errors = [item.exit_code for item in self.items if item.status == "error"]
            if not errors:
                return None
            code = int(ExitCode.NETWORK) if int(ExitCode.NETWORK) in errors else errors[0]
        return error_class(code)(f"verify: {self.summary()}", report=self)

    @property
    def exit_code(self) -> int:
        """The exit code of `failure` (0 when there is none), as the JSON report gives it."""
        failure = self.failure()
        return 0 if failure is None else int(failure.exit_code)

    def summary(self) -> str:
        if self.selected == 0:
            return (
                f"nothing due: {self.in_scope} live backup(s) in scope,"
                " none selected by --older-than or --subset"
            )
        counts = self.counts()
        bad = ", ".join(f"{n} {status}" for status, n in counts.items() if n and status != "ok")
        text = f"{len(self.items)} of {self.selected} backup(s) checked: {counts['ok']} ok"
        if bad:
            text += f", {bad}"
        if self.not_checked:
            text += f"; {len(self.not_checked)} not checked ({self.stopped})"
        return text

    def result(self) -> VerifyResult:
        return VerifyResult(
            run_id=self.run_id,
            started_at=self.started_at,
            in_scope=self.in_scope,
            selected=self.selected,
            checked=len(self.items),
            counts=VerifyCounts(**self.counts()),
            bytes_checked=self.bytes_checked,
            seconds=round(self.seconds, 3),
            bytes_per_second=(
                round(self.bytes_checked / self.seconds) if self.seconds > 0 else None
            ),
            stopped=self.stopped,
            not_checked=list(self.not_checked),
            exit_code=self.exit_code,
            items=[item.checked() for item in self.items],
        )


def in_scope(context: Context, selection: Selection) -> int:
    """How many backups the ids, ``--ns`` and ``--label`` name (every live one by default).

    None is exit 7, not a green "0 of 0": a verify job pointed at an empty or
    wrong ledger (another ZEROG_HOME, another profile) must not look healthy.
    """
    conn = context.ledger.conn
    network = context.settings.profile
    if selection.ids:
        wanted = list(dict.fromkeys(selection.ids))
        found = {b.id for b in rows.select(conn, _by_ids(network, wanted))}
        unknown = [str(i) for i in wanted if i not in found]
        if unknown:
            raise NotFound(f"no backup {', '.join(unknown)} on {network}")
        return len(wanted)
    if selection.namespace is not None:
        require_namespace(context, selection.namespace)
    count = rows.count(
        conn, BackupFilter(network, namespaces=_namespaces(selection), label=selection.label)
    )
    if not count:
        where = "".join(
            f" {text}"
            for text, given in (
                (f"in namespace {selection.namespace}", selection.namespace),
                (f"labelled {selection.label}", selection.label),
            )
            if given is not None
        )
        raise NotFound(
            f"no live backup{where} on {network} to verify",
            hint=f"`zerog backup ls` lists the backups of {context.ledger.location}",
        )
    return count


def _by_ids(network: str, ids: list[int]) -> BackupFilter:
    """The backups named by id, retired ones too (verify checks what it is told to)."""
    return BackupFilter(network, ids=ids, include_retired=True)


def _namespaces(selection: Selection) -> list[str] | None:
    return None if selection.namespace is None else [selection.namespace]


def due(context: Context, selection: Selection, rng: random.Random | None = None) -> list[Backup]:
    """The backups to check now, in the order they will be checked (selected in SQL:
    only the rows chosen are read, whatever the ledger holds)."""
    conn = context.ledger.conn
    network = context.settings.profile
    if selection.ids:
        wanted = list(dict.fromkeys(selection.ids))
        found = {b.id: b for b in rows.select(conn, _by_ids(network, wanted))}
        return [found[i] for i in wanted]
    last_ok_before = None
    if selection.older_than is not None:
        last_ok_before = format_time(context.now() - timedelta(seconds=selection.older_than))
    id_modulo = None
    if selection.subset is not None:
        n, t = selection.subset
        id_modulo = (t, n - 1)
    match = BackupFilter(
        network,
        namespaces=_namespaces(selection),
        label=selection.label,
        last_ok_before=last_ok_before,
        id_modulo=id_modulo,
    )
    if selection.sample_percent is None:
        return list(rows.select(conn, match, rotation=True))
    ids = rows.select_ids(conn, match)
    if not ids:
        return []
    count = math.ceil(len(ids) * selection.sample_percent / 100)
    sample = (rng or random.Random()).sample(ids, count)
    return list(rows.select(conn, BackupFilter(network, ids=sample), rotation=True))


def record_result(context: Context, run_id: str, item: ItemResult) -> None:
    """One ``verifications`` row for ``item``, in its own transaction."""
    with context.ledger.transaction() as conn:
        verifications.record(
            conn,
            backup_id=item.backup_id,
            run_id=run_id,
            status=item.status,
            duration_ms=item.duration_ms,
            bytes_checked=item.bytes_checked,
            error=item.error,
            checked_at=item.checked_at,
            kind=item.kind,
            segments_checked=item.segments_checked,
            segments_total=item.segments_total,
        )


def _read_sample(
    context: Context, backup: Backup, subset: DataSubset, rng: random.Random
) -> tuple[int, int, int, list[NodeFetch]]:
    """Read the sampled segments of ``backup`` with their proofs: (bytes, read, total,
    what each node served).

    A file split into fragments is sampled fragment by fragment, each with its own
    first and last segment, each segment proven against its fragment's root.
    """
    from zerog_cli.services.network import download_options, storage_network
    from zerog_cli.services.sampling import read_sample
    from zerog_cli.zerog.download import merged_node_stats
    from zerog_cli.zerog.encryption import HEADER_SIZE_V1

    stored_size = backup.size + (HEADER_SIZE_V1 if backup.encrypted else 0)
    fragments = objects.fragments_of(context.ledger.conn, backup.object_id or 0)
    parts: list[tuple[str, int | None]] = [(f.root, f.size) for f in fragments]
    sample = read_sample(
        storage_network(context),
        download_options(context.settings),
        parts or [(backup.root, stored_size)],
        subset,
        rng,
    )
    nodes = merged_node_stats([read.node_stats for read in sample.reads])
    seconds = sum(read.fetch_seconds for read in sample.reads)
    return sample.bytes_read, sample.checked, sample.total, node_fetches(nodes, seconds)


def check(
    context: Context,
    backup: Backup,
    run_id: str,
    subset: DataSubset | None = None,
    rng: random.Random | None = None,
) -> ItemResult:
    """Read one backup back (all of it, or the ``subset`` of its segments), record, return.

    A 0g-dir backup's object is its metadata: the files it names are read too.
    """
    from zerog_cli.ledger import snapshots
    from zerog_cli.services import directories
    from zerog_cli.services.download import DiscardingSink, fetch_verified, target_for

    metrics = context.metrics
    started = time.monotonic()
    sink = DiscardingSink()
    status, error, exit_code = "ok", None, 0
    kind = "full" if subset is None else "sampled"
    segments: tuple[int | None, int | None] = (None, None)
    nodes: list[NodeFetch] = []
    try:
        try:
            record = stored_object(context, backup)
        except NotFound as gone:
            # The ledger lost the record, which says nothing of the data on 0G: an error
            # of this check, not a missing backup.
            raise ZerogError(str(gone)) from None
        if subset is None:
            result, _, _ = fetch_verified(context, target_for(context, record), sink)  # type: ignore[arg-type]
            segments = (result.segments, result.segments)
            nodes = node_fetches(result.node_stats, result.fetch_seconds)
        else:
            sink.size, read, total, nodes = _read_sample(
                context, backup, subset, rng or random.Random()
            )
            segments = (read, total)
        if snapshots.kind(context.ledger.conn, backup.id)[0] == directories.FORMAT:
            more, read, total = directories.check_files(
                context, backup.id, record, subset, rng or random.Random()
            )
            sink.size += more
            segments = ((segments[0] or 0) + read, (segments[1] or 0) + total)
    except IntegrityError as exc:
        status, error, exit_code = "mismatch", str(exc), int(exc.exit_code)
    except NotFound as exc:
        status, error, exit_code = "missing", str(exc), int(exc.exit_code)
    except ZerogError as exc:
        status, error, exit_code = "error", str(exc), int(exc.exit_code)
    seconds = time.monotonic() - started
    item = ItemResult(
        backup_id=backup.id,
        namespace=backup.namespace,
        name=backup.name,
        root=backup.root,
        status=status,
        duration_ms=round(seconds * 1000),
        bytes_checked=sink.size,
        error=error,
        checked_at=format_time(context.now()),
        kind=kind,
        segments_checked=segments[0],
        segments_total=segments[1],
        node_stats=nodes,
        exit_code=exit_code,
    )
    record_result(context, run_id, item)
    metrics.verify_results.labels(status).inc()
    metrics.verify_kinds.labels(kind).inc()
    metrics.verify_bytes.inc(sink.size)
    metrics.verify_duration.observe(seconds)
    metrics.storage_operations.labels("verify", "ok" if status == "ok" else "error").inc()
    metrics.storage_bytes.labels("download").inc(sink.size)
    return item


def run(
    context: Context,
    selection: Selection,
    *,
    max_duration: float | None = None,
    wait_lock: bool = False,
    on_wait: Callable[[Holder | None], None] | None = None,
    on_item: Callable[[ItemResult], None] | None = None,
    on_checking: Callable[[int, int, Backup], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    raise_failure: bool = False,
) -> VerifyReport:
    """Take the verify lock, select, check one backup after another, and report.

    With ``raise_failure``, a run where a backup is bad or could not be checked
    raises its `VerifyReport.failure` (which carries the report) instead.

    ``max_duration`` is checked between backups (the first is always checked),
    so a run never stops halfway through one. ``clock`` is injectable for tests.
    ``on_checking(done, selected, backup)`` is called before each check (for a
    progress display), ``on_item`` after it.
    """
    if max_duration is not None and max_duration <= 0:
        raise UsageError("--max-duration must be more than 0 seconds")
    lock = context.run_lock(LOCK_NAME, "zerog verify")
    lock.acquire(wait=wait_lock, on_wait=on_wait)
    try:
        report = VerifyReport(run_id=uuid.uuid4().hex[:12], started_at=format_time(context.now()))
        report.in_scope = in_scope(context, selection)
        chosen = due(context, selection, rng)
        report.selected = len(chosen)
        context.metrics.verify_pending.set(len(chosen))
        started = clock()
        network_failures = 0
        for index, backup in enumerate(chosen):
            if index and max_duration is not None and clock() - started >= max_duration:
                report.stopped = "max-duration reached"
            elif network_failures >= NETWORK_GIVE_UP:
                report.stopped = "network unavailable"
            if report.stopped:
                report.not_checked = [b.id for b in chosen[index:]]
                break
            if on_checking is not None:
                on_checking(index, len(chosen), backup)
            item = check(context, backup, report.run_id, selection.data_subset, rng)
            report.items.append(item)
            context.metrics.verify_pending.dec()
            network_failures = (
                network_failures + 1 if item.exit_code == NetworkUnavailable.exit_code else 0
            )
            if on_item is not None:
                on_item(item)
        report.seconds = clock() - started
    finally:
        lock.release()
    failure = report.failure() if raise_failure else None
    if failure is not None:
        raise failure
    return report
