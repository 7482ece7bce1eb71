"""Backups: an upload plus a record, restore with every check, restic-style pruning.

A backup is an ordinary upload (operation ``backup``) under a generated unique
name, ``<label>/<UTC time>-<file name>``, plus a ``storage_backups`` row with
the source path, size, SHA-256, 0G root and txSeq. Data on 0G is immutable:
pruning *retires* records (they leave listings, verification and metrics) and
the data stays on the network.

`plan_prune` is restic's ``forget`` policy as a pure function: backups are
walked newest first; ``--keep-last N`` keeps the N newest; ``--keep-daily N``
keeps the newest backup of each of the N most recent days that have a backup
(likewise weeks and months), buckets being counted back from the newest
backup, not from today. A backup kept for several rules lists every reason.
Policies apply per group of (namespace, label), as restic groups by host and
paths, so one series can never push another out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zerog_cli.errors import ConfigError, IntegrityError, NotFound, PermissionDenied, UsageError
from zerog_cli.infra.choices import FolderFormat
from zerog_cli.infra.output import copied_fields
from zerog_cli.infra.units import INT64_MAX, Duration
from zerog_cli.ledger import backups as rows
from zerog_cli.ledger import objects, verifications
from zerog_cli.ledger.backups import Backup, BackupFilter
from zerog_cli.ledger.db import EVERYTHING, LedgerConnection, Page, format_time, parse_time
from zerog_cli.services import namespaces
from zerog_cli.services.context import Context
from zerog_cli.services.download import DownloadReport
from zerog_cli.services.spool import StreamInput
from zerog_cli.services.upload import UploadReport
from zerog_cli.zerog.segments import Progress

NAME_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
STDIN_SOURCE = "stdin"
"""The source recorded for a backup read from standard input."""
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
IMMUTABLE_NOTE = (
    "0G storage is immutable: prune retires backup records (no longer listed, verified or "
    "counted); the data stays on the network"
)


@dataclass(frozen=True)
class BackupView(Backup):
    """A backup as every command shows it: its record, its last checks, and how long ago
    its last OK verification was (None: never verified)."""

    verification_age_seconds: int | None = None


@dataclass(frozen=True)
class VerificationRecord:
    """One recorded check of a backup (``kind``: full or sampled)."""

    id: int
    run_id: str
    status: str
    kind: str
    segments_checked: int | None
    segments_total: int | None
    duration_ms: int
    bytes_checked: int
    error: str | None
    checked_at: str


@dataclass(frozen=True)
class BackupDetail(BackupView):
    """`backup show`: a backup and its most recent verifications, newest first."""

    verifications: list[VerificationRecord] = field(default_factory=list)


@dataclass(frozen=True)
class BackupList:
    """`backup ls`: backups oldest first, one page (--limit, --offset), streamed from the
    ledger to the output (iterate it once)."""

    backups: Iterable[BackupView]


@dataclass(frozen=True)
class IndexObject:
    """The object holding a folder snapshot's index of members."""

    name: str
    root: str


@dataclass
class BackupCreated(UploadReport):
    """`backup create`: the upload report, the backup's id and label; for a folder
    (``kind`` folder: a tar snapshot; 0g-dir: the official directory format), its member
    counts, what it skipped, and the snapshot's index object or the files uploaded one by one."""

    backup_id: int = 0
    label: str = ""
    kind: str = "file"
    members: int | None = None
    files: int | None = None
    skipped: dict[str, int] | None = None
    index: IndexObject | None = None
    files_uploaded: int | None = None


@dataclass
class BackupRecord:
    """The ``also_record`` of a backup's upload: inserts the ``storage_backups`` row in the
    upload's own transaction (then ``more`` rows for it, a folder's members), keeps its id."""

    label: str
    source_path: str
    network: str
    moment: datetime
    more: Callable[[LedgerConnection, int], None] | None = None
    backup_id: int = 0

    def __call__(self, tx: LedgerConnection, stored: dict[str, Any]) -> None:
        self.backup_id = rows.insert(
            tx,
            namespace=stored["namespace"],
            label=self.label,
            source_path=self.source_path,
            object_id=int(stored["object_id"]),
            root=stored["root"],
            tx_seq=stored["tx_seq"],
            size=int(stored["size"]),
            sha256=stored["sha256"],
            encrypted=bool(stored["encrypted"]),
            network=self.network,
            created_at=format_time(self.moment),
        )
        if self.more is not None:
            self.more(tx, self.backup_id)

    def created(self, report: UploadReport) -> BackupCreated:
        """The upload ``report`` of this backup, as `backup create` reports it."""
        return copied_fields(BackupCreated, report, backup_id=self.backup_id, label=self.label)


@dataclass(frozen=True)
class RestoreReport(DownloadReport):
    """`backup restore` of a file backup (or a snapshot's tar with -o)."""

    backup_id: int = 0


def age_seconds(context: Context, stamp: str) -> int:
    return _age(context.now(), stamp)


def validate_label(label: str) -> str:
    if not LABEL_PATTERN.match(label):
        raise UsageError(
            f"not a backup label: {label!r} (letters, digits, '.', '_', '-';"
            " starts with a letter or digit; at most 64 characters)"
        )
    return label


def object_name(label: str, file_name: str, moment: datetime, taken: Callable[[str], bool]) -> str:
    """``<label>/<UTC time>-<file name>``, with ``.2``, ``.3``… when that second is taken."""
    base = f"{label}/{moment.astimezone(UTC).strftime(NAME_TIME_FORMAT)}-{file_name}"
    name, counter = base, 1
    while taken(name):
        counter += 1
        name = f"{base}.{counter}"
    return name


def create(
    context: Context,
    path: Path | None,
    *,
    namespace: str | None = None,
    label: str | None = None,
    encrypt: bool | None = None,
    progress: Progress | None = None,
    stream: StreamInput | None = None,
    file_name: str | None = None,
    folder_format: FolderFormat = FolderFormat.SNAPSHOT,
) -> BackupCreated:
    """Upload ``path`` (or ``stream``) as a backup and record it; returns the upload
    report plus the id.

    ``file_name`` (default: the file's name) is the name a restore writes; a
    stream needs it or a ``label``, which it then defaults to. The size limit is
    the ``max_backup_size`` setting (default: none), not upload's. A folder is
    stored as one tar snapshot (``folder_format`` ``snapshot``) or in the
    official directory format (``0g-dir``: a transaction per file).
    """
    from zerog_cli.services.upload import CatalogFacts, UploadRequest, upload

    if label is not None:
        validate_label(label)
    if stream is None:
        if path is None or not (path.is_file() or path.is_dir()):
            raise UsageError(
                f"{path}: no such file"
                if path is None or not path.exists()
                else f"{path} is not a file or folder"
            )
        source_path = str(path.resolve())
        base_name = file_name or path.absolute().name
    else:
        if file_name is None and label is None:
            raise UsageError(
                f"reading {stream.description} needs --name (the file name a restore writes)"
                " or --label"
            )
        base_name = file_name or str(label)
        source_path = STDIN_SOURCE if stream.command is None else " ".join(stream.command)
    effective_label = label or namespaces.validate_object_name(
        base_name, "backup label (the file's name)"
    )
    namespaces.validate_object_name(base_name, "backup file name")
    if "/" in base_name or base_name in (".", ".."):
        raise UsageError(f"not a file name: {base_name!r} (no '/')")
    moment = context.now()
    network = context.settings.profile
    conn = context.ledger.conn
    ns_for_name = namespace or namespaces.DEFAULT_NAMESPACE

    def name_for(stored: str) -> str:
        return object_name(
            effective_label,
            stored,
            moment,
            lambda candidate: objects.by_name(conn, network, ns_for_name, candidate) is not None,
        )

    if folder_format != FolderFormat.SNAPSHOT and (
        stream is not None or path is None or not path.is_dir()
    ):
        raise UsageError(f"--format {folder_format} stores a folder; give a folder")
    if folder_format == FolderFormat.DIRECTORY and path is not None:
        from zerog_cli.services import directories

        return directories.create(
            context,
            path,
            namespace=namespace,
            label=effective_label,
            encrypt=encrypt,
            progress=progress,
            name=name_for(base_name),
        )
    if stream is None and path is not None and path.is_dir():
        from zerog_cli.services import snapshots

        return snapshots.create(
            context,
            path,
            namespace=namespace,
            label=effective_label,
            encrypt=encrypt,
            progress=progress,
            name=name_for(f"{base_name}.tar"),
        )
    name = name_for(base_name)
    record = BackupRecord(effective_label, source_path, network, moment)
    report = upload(
        context,
        UploadRequest(
            path=path or Path("-"),
            namespace=namespace,
            name=name,
            encrypt=encrypt,
            operation="backup",
            catalog=CatalogFacts(backup_label=effective_label, backup_time=moment),
            also_record=record,
            stream=stream,
        ),
        progress,
    )
    return record.created(report)


def require_namespace(context: Context, name: str) -> None:
    """NotFound (exit 7) for an unknown namespace: a typo must not pass as "nothing to check"."""
    namespaces.validate_name(name)
    if namespaces.find(context, name) is None:
        raise NotFound(f"no namespace {name!r}")


def _permitted(context: Context, names: Sequence[str], user: str, action: str) -> list[str]:
    allowed = []
    for name in names:
        try:
            namespaces.require(context, name, user, action)
        except PermissionDenied:
            continue
        allowed.append(name)
    return allowed


def _namespaces_for(
    context: Context, namespace: str | None, action: str
) -> tuple[list[str], list[str]]:
    """(namespaces the acting user may ``action``, namespaces skipped for lack of a role)."""
    user = context.acting_user
    if namespace is not None:
        namespaces.require(context, namespace, user, action)
        return [namespace], []
    known = rows.namespaces_with_backups(context.ledger.conn, network=context.settings.profile)
    allowed = _permitted(context, known, user, action)
    return allowed, [name for name in known if name not in allowed]


def describe(context: Context, backup: Backup, now: datetime | None = None) -> BackupView:
    """``backup`` as commands show it; ``now`` once for a whole listing (the clock is slow
    next to the rest of a row)."""
    age = None if backup.last_ok_at is None else _age(now or context.now(), backup.last_ok_at)
    return BackupView(**vars(backup), verification_age_seconds=age)


def _age(now: datetime, stamp: str) -> int:
    return max(0, int((now - parse_time(stamp)).total_seconds()))


def list_backups(
    context: Context,
    *,
    namespace: str | None = None,
    label: str | None = None,
    unverified: bool = False,
    include_retired: bool = False,
    before: datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> BackupList:
    """Backups in namespaces the acting user may read, oldest first, ``limit`` from
    ``offset``; only those created before ``before`` when it is given."""
    found = _select(
        context,
        namespace,
        label,
        include_retired,
        before,
        never_ok=unverified,
        page=Page(limit, offset),
    )
    now = context.now()
    return BackupList(describe(context, b, now) for b in found)


def _select(
    context: Context,
    namespace: str | None,
    label: str | None,
    include_retired: bool,
    before: datetime | None,
    *,
    never_ok: bool = False,
    page: Page = EVERYTHING,
) -> Iterator[Backup]:
    """Backups the acting user may read, matching every filter, oldest first (in SQL)."""
    allowed, _ = _namespaces_for(context, namespace, "read")
    match = BackupFilter(
        context.settings.profile,
        namespaces=allowed,
        label=label,
        include_retired=include_retired,
        never_ok=never_ok,
        created_before=None if before is None else format_time(before),
    )
    return rows.select(context.ledger.conn, match, page=page)


def latest(
    context: Context,
    *,
    namespace: str | None = None,
    label: str | None = None,
    before: datetime | None = None,
) -> Backup:
    """The newest live backup the acting user may read that matches; NotFound (exit 7) if none."""
    newest = max(
        _select(context, namespace, label, False, before),
        key=lambda b: (b.created_at, b.id),
        default=None,
    )
    if newest is None:
        scope = [f"namespace {namespace}" if namespace else "", f"label {label}" if label else ""]
        if before is not None:
            scope.append(f"created before {format_time(before)}")
        where = ", ".join(part for part in scope if part)
        raise NotFound(f"no live backup{' with ' + where if where else ''}")
    return newest


def latest_description(
    context: Context,
    *,
    namespace: str | None = None,
    label: str | None = None,
    before: datetime | None = None,
) -> BackupView:
    """`backup ls --latest`: the newest matching backup as one document with its ``id``."""
    return describe(context, latest(context, namespace=namespace, label=label, before=before))


def get(context: Context, backup_id: int) -> Backup:
    backup = rows.get(context.ledger.conn, backup_id) if backup_id <= INT64_MAX else None
    if backup is None or backup.network != context.settings.profile:
        raise NotFound(f"no backup {backup_id} on {context.settings.profile}")
    return backup


def show(context: Context, backup_id: int) -> BackupDetail:
    backup = get(context, backup_id)
    namespaces.require(context, backup.namespace, context.acting_user, "read")
    view = describe(context, backup)
    history = verifications.history(context.ledger.conn, backup_id)
    return copied_fields(
        BackupDetail, view, verifications=[VerificationRecord(**row) for row in history]
    )


def original_file_name(backup: Backup) -> str:
    """The name a restore writes: the source file's, or for a stream its --name.

    A file's source path is absolute; a stream's source is ``stdin`` or its
    producer command, and its name is what follows the time in the object name.
    """
    if backup.source_path.startswith("/"):
        return Path(backup.source_path).name
    assert backup.name is not None
    stamped = backup.name.rsplit("/", 1)[-1]
    return stamped.split("-", 1)[1] if "-" in stamped else stamped


def stored_object(context: Context, backup: Backup) -> objects.StoredObject:
    """The object ``backup`` was uploaded as, to restore from: NotFound when the ledger no
    longer has it, IntegrityError when the two records disagree on root, size or SHA-256."""
    record = objects.by_id(context.ledger.conn, backup.object_id or 0)
    if record is None:
        raise NotFound(f"backup {backup.id} has no object record (was its namespace removed?)")
    if (record.root, record.size, record.sha256) != (backup.root, backup.size, backup.sha256):
        raise IntegrityError(
            f"backup {backup.id}: the backup record and object {record.id} disagree on "
            "root, size or SHA-256"
        )
    return record


def restore(
    context: Context,
    backup_id: int,
    output: str | None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    mode: int | None = None,
) -> RestoreReport:
    """Download a backup with every check (proofs, size, SHA-256); no partial file on failure.

    The file keeps the source file's name (not the object's time-stamped name),
    in the current folder by default or in ``output`` when that is a folder;
    its mode as for `download_to` (0600 when decrypted, else the umask's).
    """
    from zerog_cli.services.download import download_to

    backup = get(context, backup_id)
    stored_object(context, backup)
    if backup.kind == "0g-dir":
        raise UsageError(
            f"backup {backup_id} is a folder in the 0G directory format: its object is "
            "the metadata, not the files",
            hint=f"`zerog backup restore {backup_id} --to DIR`, or one file with --path",
        )
    original_name = original_file_name(backup)
    if backup.kind == "folder":
        original_name += ".tar"
    if output is None:
        destination = original_name
    elif output != "-" and Path(output).is_dir():
        destination = str(Path(output) / original_name)
    else:
        destination = output
    report = download_to(
        context,
        f"{backup.namespace}/{backup.name}",
        destination,
        force=force,
        progress=progress,
        operation="restore",
        mode=mode,
    )
    return copied_fields(RestoreReport, report, backup_id=backup_id)


# -- pruning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeepPolicy:
    last: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def __post_init__(self) -> None:
        for rule, count in self.counts().items():
            if count < 0:
                raise UsageError(f"--keep-{rule} must be 0 or more, not {count}")

    def counts(self) -> dict[str, int]:
        return {
            "last": self.last,
            "daily": self.daily,
            "weekly": self.weekly,
            "monthly": self.monthly,
        }

    @property
    def empty(self) -> bool:
        return not any(self.counts().values())

    def describe(self) -> str:
        return " ".join(f"keep-{rule}={count}" for rule, count in self.counts().items() if count)


def _bucket(rule: str, moment: datetime, item_id: int) -> str:
    if rule == "last":
        return f"#{item_id}"
    if rule == "daily":
        return moment.strftime("%Y-%m-%d")
    if rule == "weekly":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime("%Y-%m")


@dataclass
class PruneDecision:
    id: int
    created_at: datetime
    keep: bool = False
    reasons: list[str] = field(default_factory=list)
    """Each rule that keeps it with its bucket: ``last``, ``daily 2026-11-26``, …"""


def plan_prune(
    items: Sequence[tuple[int, datetime]], policy: KeepPolicy, zone: ZoneInfo | None = None
) -> list[PruneDecision]:
    """restic's ``forget`` rules over (id, created_at) pairs; newest first in the result.

    Days, weeks (ISO) and months are taken in ``zone`` (default UTC).
    """
    zone = zone or ZoneInfo("UTC")
    ordered = sorted(items, key=lambda item: (item[1], item[0]), reverse=True)
    remaining = policy.counts()
    last_bucket: dict[str, str | None] = dict.fromkeys(remaining)
    decisions = []
    for item_id, created in ordered:
        decision = PruneDecision(item_id, created)
        local = created.astimezone(zone)
        for rule in remaining:
            if remaining[rule] <= 0:
                continue
            bucket = _bucket(rule, local, item_id)
            if bucket == last_bucket[rule]:
                continue
            last_bucket[rule] = bucket
            remaining[rule] -= 1
            decision.keep = True
            decision.reasons.append(rule if rule == "last" else f"{rule} {bucket}")
        decisions.append(decision)
    return decisions


def _zone(context: Context) -> ZoneInfo:
    name = context.settings.timezone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {name!r} in the timezone setting") from None


@dataclass(frozen=True)
class PruneEntry:
    """A backup prune keeps or retires, and the rules that keep it (none: retired)."""

    id: int
    name: str | None
    created_at: str
    size: int
    reasons: list[str]


@dataclass(frozen=True)
class PruneGroup:
    """One series (namespace, label) and what the policy does to it."""

    namespace: str
    label: str
    keep: list[PruneEntry]
    retire: list[PruneEntry]


@dataclass(frozen=True)
class PruneReport:
    """`backup prune`: per series, what is kept and retired (``would_retire`` in a dry run)."""

    dry_run: bool
    policy: dict[str, int]
    timezone: str
    groups: list[PruneGroup]
    kept: int
    retired: int
    would_retire: int
    skipped_namespaces: list[str]
    note: str


def _entry(backup: Backup, decision: PruneDecision) -> PruneEntry:
    return PruneEntry(
        id=backup.id,
        name=backup.name,
        created_at=backup.created_at,
        size=backup.size,
        reasons=list(decision.reasons),
    )


def prune(
    context: Context,
    policy: KeepPolicy,
    *,
    namespace: str | None = None,
    label: str | None = None,
    dry_run: bool = False,
) -> PruneReport:
    """Apply ``policy`` per (namespace, label) group; retire what no rule keeps."""
    if policy.empty:
        raise UsageError(
            "no policy given: pass at least one --keep-last/--keep-daily/--keep-weekly/"
            "--keep-monthly (nothing was retired)"
        )
    if label is not None:
        validate_label(label)
    allowed, skipped = _namespaces_for(context, namespace, "write")
    live = rows.select(
        context.ledger.conn, BackupFilter(context.settings.profile, namespaces=allowed, label=label)
    )
    groups: dict[tuple[str, str], list[Backup]] = {}
    for backup in live:
        groups.setdefault((backup.namespace, backup.label or ""), []).append(backup)
    zone = _zone(context)
    reason = f"pruned by policy {policy.describe()}"
    when = format_time(context.now())
    result_groups = []
    to_retire: list[int] = []
    for (ns_name, group_label), members in sorted(groups.items()):
        by_id = {b.id: b for b in members}
        decisions = plan_prune([(b.id, parse_time(b.created_at)) for b in members], policy, zone)
        kept = [_entry(by_id[d.id], d) for d in decisions if d.keep]
        retired = [_entry(by_id[d.id], d) for d in decisions if not d.keep]
        to_retire.extend(entry.id for entry in retired)
        result_groups.append(PruneGroup(ns_name, group_label, kept, retired))
    if not dry_run and to_retire:
        with context.ledger.transaction() as conn:
            for backup_id in to_retire:
                rows.retire(conn, backup_id, when=when, reason=reason)
    return PruneReport(
        dry_run=dry_run,
        policy=policy.counts(),
        timezone=context.settings.timezone,
        groups=result_groups,
        kept=sum(len(g.keep) for g in result_groups),
        retired=0 if dry_run else len(to_retire),
        would_retire=len(to_retire) if dry_run else 0,
        skipped_namespaces=skipped,
        note=IMMUTABLE_NOTE,
    )


# -- unverified backups ----------------------------------------------------------------------


@dataclass(frozen=True)
class UnverifiedBackup(BackupView):
    """A live backup past --max-age (``reasons`` has ``max-age``) or --max-age-full
    (``max-age-full``); ages count from its creation when it was never verified."""

    never_verified: bool = False
    never_fully_verified: bool = False
    age_seconds: int = 0
    full_age_seconds: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class UnverifiedReport:
    """`backup unverified`: the live backups not verified recently enough (exit 3 if any)."""

    max_age_seconds: int
    max_age_full_seconds: int | None
    checked_at: str
    live_backups: int
    unverified: Iterable[UnverifiedBackup]
    """Streamed from the ledger to the output: iterate it once."""


def unverified(
    context: Context,
    max_age: Duration,
    *,
    namespace: str | None = None,
    max_age_full: Duration | None = None,
) -> UnverifiedReport:
    """The report when no live backup's last OK verification is older than ``max_age``,
    nor its last OK *full* read older than ``max_age_full`` when given; otherwise an
    `IntegrityError` carrying the report, which lists those backups.

    A sampled check (`verify --read-data-subset`) counts for ``max_age`` only. A
    backup never verified counts from its creation, so a new backup is not
    flagged before verify had ``max_age`` to reach it. Fleet-wide (no ACL): this
    is a monitoring check.
    """
    max_age_seconds = max_age.seconds
    max_age_full_seconds = None if max_age_full is None else max_age_full.seconds
    if max_age_seconds <= 0:
        raise UsageError("--max-age must be more than 0 seconds")
    if max_age_full_seconds is not None and max_age_full_seconds <= 0:
        raise UsageError("--max-age-full must be more than 0 seconds")
    if namespace is not None:
        require_namespace(context, namespace)
    now = context.now()
    cutoff = format_time(now - timedelta(seconds=max_age_seconds))
    cutoff_full = (
        None
        if max_age_full_seconds is None
        else format_time(now - timedelta(seconds=max_age_full_seconds))
    )
    conn = context.ledger.conn
    scope = None if namespace is None else [namespace]
    stale = BackupFilter(
        context.settings.profile, namespaces=scope, ok_before=cutoff, full_ok_before=cutoff_full
    )
    stale_count = rows.count(conn, stale)

    def entry(backup: Backup) -> UnverifiedBackup:
        reference = backup.last_ok_at or backup.created_at
        full_reference = backup.last_full_ok_at or backup.created_at
        reasons = []
        if reference < cutoff:
            reasons.append("max-age")
        if cutoff_full is not None and full_reference < cutoff_full:
            reasons.append("max-age-full")
        # One row built per backup, its ages parsed once: a fleet of 100,000 backups
        # past --max-age is one row each in the report.
        age = _age(now, reference)
        full_age = age if full_reference == reference else _age(now, full_reference)
        return UnverifiedBackup(
            **vars(backup),
            verification_age_seconds=None if backup.last_ok_at is None else age,
            never_verified=backup.last_ok_at is None,
            never_fully_verified=backup.last_full_ok_at is None,
            age_seconds=age,
            full_age_seconds=full_age,
            reasons=reasons,
        )

    report = UnverifiedReport(
        max_age_seconds=max_age_seconds,
        max_age_full_seconds=max_age_full_seconds,
        checked_at=format_time(now),
        live_backups=rows.count(conn, BackupFilter(context.settings.profile, namespaces=scope)),
        unverified=(entry(backup) for backup in rows.select(conn, stale)),
    )
    if stale_count:
        within = max_age if max_age_full is None else f"{max_age} (full read: {max_age_full})"
        raise IntegrityError(
            f"{stale_count} of {report.live_backups} live backup(s) not verified within {within}",
            report=report,
        )
    return report
