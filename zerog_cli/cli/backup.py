"""`zerog backup create|ls|show|restore|prune|unverified`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zerog_cli.cli import params
from zerog_cli.cli.common import (
    AsUser,
    EncryptOption,
    GasLimitOption,
    LabelFilter,
    Limit,
    NamespaceFilter,
    Offset,
    StoreNamespace,
    command,
    complete_backup_id,
    examples,
    namespace_option,
    new_app,
    print_node_stats,
    printing_failed_report,
    progress_bar,
    results,
    state,
)
from zerog_cli.errors import UsageError
from zerog_cli.infra.choices import FolderFormat
from zerog_cli.infra.output import Column, to_document
from zerog_cli.infra.units import format_duration, format_size

if TYPE_CHECKING:
    from zerog_cli.services.backups import BackupView, PruneReport, UnverifiedReport

app = new_app(
    "Backups: uploads with a record, verified restores, restic-style pruning, staleness checks.",
    "zerog backup create /var/backups/db.dump --ns backups --label db",
    "zerog backup create /srv/app/config --ns backups --label config",
    "zerog backup ls --ns backups",
    "zerog backup prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run",
)

BackupId = Annotated[
    int,
    typer.Argument(
        help="Backup id (see `zerog backup ls`).", min=1, autocompletion=complete_backup_id
    ),
]


Before = Annotated[
    params.Moment | None,
    typer.Option(
        "--before",
        click_type=params.MOMENT,
        help="Only backups created before this date (midnight UTC), ISO time, or age (24h, 7d).",
        show_default=False,
    ),
]


def _acting(user: str | None) -> None:
    state().context.override(user=user)


def _last_check(row: BackupView) -> str:
    text = "never" if row.last_status is None else f"{row.last_status} {row.last_checked_at}"
    return f"{text} (retired)" if row.retired_at else text


@command(
    app,
    "create",
    result=results("backups.BackupCreated"),
    epilog=examples(
        "zerog backup create /var/backups/db.dump --ns backups --label db",
        "zerog backup create secrets.tar --ns vault --encrypt --json",
        "pg_dump -Fc orders | zerog backup create - --ns backups --label db --name orders.dump",
        "zerog backup create --ns backups --label db --name orders.dump --from-command -- "
        "pg_dump -Fc orders",
        "zerog backup create /srv/app/config --ns backups --label config",
        "zerog backup create /srv/app/static --ns backups --label static --format 0g-dir",
    ),
)
def create(
    source: Annotated[
        list[str] | None,
        typer.Argument(
            help="File or folder to back up, - for stdin, or with --from-command the producer "
            "command and its arguments (after --).",
            show_default=False,
        ),
    ] = None,
    ns: StoreNamespace = None,
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            help="Series name for listing and pruning (default: file name).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="File name a restore writes (default: the file's; for a stream: the label).",
            show_default=False,
        ),
    ] = None,
    from_command: Annotated[
        bool,
        typer.Option(
            "--from-command",
            help="Run the command given after -- and back up its stdout; a non-zero exit "
            "or a signal stores nothing (exit 10).",
        ),
    ] = False,
    folder_format: Annotated[
        FolderFormat,
        typer.Option(
            "--format",
            help="How a folder is stored: snapshot (one tar object, one transaction) or "
            "0g-dir (the official upload-dir format: one transaction per file, plus one).",
        ),
    ] = FolderFormat.SNAPSHOT,
    encrypt: EncryptOption = None,
    as_user: AsUser = None,
    gas_price: params.GasPriceOption = None,
    gas_limit: GasLimitOption = None,
) -> None:
    """Upload a file, a folder or a stream as a backup named LABEL/<UTC time>-<NAME>; record it.

    A folder becomes one snapshot object, LABEL/<time>-<folder>.tar: a
    deterministic pax tar (sorted names, owner 0:0; files, folders, and
    symlinks stored as links; devices, sockets and FIFOs skipped and counted),
    plus a small index object beside it, <name>.index.json, listing each
    member's path, size, mode, mtime, SHA-256 and the offset of its data in the
    plaintext tar stream; the ledger keeps the index too. With --encrypt the
    offsets still refer to the plaintext stream: plaintext byte p is stored at
    17 + p (0G encryption v1: a 17-byte header, then AES-256-CTR).

    --format 0g-dir stores the folder as the official Go client's upload-dir
    does, so its download-dir and diff-dir read it: each non-empty file is an
    upload of its own (LABEL/<time>-<folder>/<path>), then a metadata object
    naming their roots is the backup. The trade-off: a Flow transaction (and
    its gas) per file, where the default snapshot sends one for the whole
    folder (measured on the devnet: upload-dir of 4 files sent 5
    transactions); in return unchanged files are not paid again, and any 0G
    client reads the files without zerog. Stored unencrypted (download-dir
    cannot decrypt); devices, sockets and FIFOs are skipped and counted.

    A stream (- or --from-command) is copied to a private 0600 spool file in the
    tmp_dir setting (default: the system temp folder) while its SHA-256 and 0G
    root are computed in the same single pass, since the root must be known
    before paying; memory stays flat and the spool file is removed however the
    command ends (SIGINT and SIGTERM too). An empty stream is refused (exit 10):
    a failed producer earlier in a shell pipeline leaves exactly that, and its
    exit status is not visible to zerog. --from-command runs the producer itself
    and refuses (exit 10, nothing recorded or paid) when it exits non-zero or is
    killed by a signal.

    The size limit is the max_backup_size setting (default: none), not upload's
    max_upload_size.
    """
    from zerog_cli.services import backups
    from zerog_cli.services.spool import StreamInput

    arguments = list(source or [])
    path: Path | None = None
    stream: StreamInput | None = None
    if from_command:
        if not arguments:
            raise UsageError("--from-command needs the command after --, e.g. -- pg_dump -Fc db")
        stream = StreamInput(command=tuple(arguments))
    elif len(arguments) != 1:
        raise UsageError(
            "give one FILE, or - for stdin, or --from-command -- COMMAND ARGS..."
            if arguments
            else "missing FILE (or - for stdin, or --from-command -- COMMAND)"
        )
    elif arguments[0] == "-":
        stream = StreamInput()
    else:
        path = Path(arguments[0])
    _acting(as_user)
    current = state()
    current.context.override(gas_price=gas_price, gas_limit=gas_limit)
    shown = path.name if path is not None else (name or label or "stream")
    with progress_bar(f"backup {shown}") as progress:
        report = backups.create(
            current.context,
            path,
            namespace=ns,
            label=label,
            encrypt=encrypt,
            progress=progress,
            stream=stream,
            file_name=name,
            folder_format=folder_format,
        )
    for warning in report.warnings:
        current.output.warn(warning)
    folder = (
        [
            ("members", f"{report.members} ({report.files} files)"),
            ("skipped", ", ".join(f"{n} {k}" for k, n in (report.skipped or {}).items()) or "none"),
            ("index", f"{report.namespace}/{report.index.name}"),
        ]
        if report.index is not None
        else []
    )
    if report.kind == "0g-dir":
        folder = [
            ("format", "0g-dir (official directory format)"),
            ("members", f"{report.members} ({report.files} files)"),
            ("uploads", f"{report.files_uploaded} files + the metadata object"),
            ("skipped", ", ".join(f"{n} {k}" for k, n in (report.skipped or {}).items()) or "none"),
        ]
    current.output.result(
        report,
        lambda: current.output.fields(
            [
                ("backup", report.backup_id),
                ("object", f"{report.namespace}/{report.name}"),
                ("label", report.label),
                *folder,
                ("size", format_size(report.size)),
                ("sha256", report.sha256),
                ("root", report.root),
                ("tx seq", report.tx_seq),
                ("encrypted", "yes" if report.encrypted else "no"),
            ]
        ),
    )


@command(
    app,
    "ls",
    result=results("backups.BackupList", "backups.BackupView"),
    epilog=examples(
        "zerog backup ls",
        "zerog backup ls --ns backups --label db --json",
        "zerog backup ls --unverified",
        "zerog backup ls --latest --ns backups --label db --json",
        "zerog backup ls --latest --label db --before 2026-11-28 --json",
        "zerog backup ls --limit 100 --offset 100",
    ),
)
def list_command(
    ns: Annotated[str | None, namespace_option("Namespace (default: all you may read).")] = None,
    label: LabelFilter = None,
    unverified: Annotated[
        bool, typer.Option("--unverified", help="Only backups never verified OK.")
    ] = False,
    retired: Annotated[bool, typer.Option("--retired", help="Include retired backups.")] = False,
    latest: Annotated[
        bool,
        typer.Option(
            "--latest",
            help="Only the newest live match, as one document with its id (exit 7: none).",
        ),
    ] = False,
    before: Before = None,
    limit: Limit = None,
    offset: Offset = 0,
    as_user: AsUser = None,
) -> None:
    """List backups with their last verification (oldest first)."""
    from zerog_cli.services import backups

    _acting(as_user)
    context = state().context
    cutoff = None if before is None else before.resolve(context.now())
    if latest:
        if unverified or retired:
            raise UsageError("--latest picks the newest live backup: drop --unverified/--retired")
        newest = backups.latest_description(context, namespace=ns, label=label, before=cutoff)
        state().output.result(newest, lambda: _print_backup(newest))
        return
    listing = backups.list_backups(
        context,
        namespace=ns,
        label=label,
        unverified=unverified,
        include_retired=retired,
        before=cutoff,
        limit=limit,
        offset=offset,
    )
    columns = [
        Column("id", "id", justify="right"),
        Column("namespace", "ns"),
        Column("label", "label"),
        Column("created_at", "created"),
        Column("size", "size", format_size, justify="right"),
        Column("last_check", "last check"),
        Column("last_ok_at", "last ok", lambda v: v or "never"),
    ]

    def table() -> None:
        rows = ({**to_document(row), "last_check": _last_check(row)} for row in listing.backups)
        state().output.table(rows, columns)

    state().output.result(listing, table)


@command(
    app,
    "show",
    result=results("backups.BackupDetail", "snapshots.FolderListing"),
    epilog=examples(
        "zerog backup show 12", "zerog backup show 12 --json", "zerog backup show 14 --files"
    ),
)
def show(
    backup_id: BackupId,
    files: Annotated[
        bool,
        typer.Option("--files", help="List the members of a folder snapshot instead."),
    ] = False,
    as_user: AsUser = None,
) -> None:
    """Show one backup and its recent verifications, or the members of a folder snapshot."""
    from zerog_cli.services import backups, snapshots

    _acting(as_user)
    if files:
        listing = snapshots.files(state().context, backup_id)
        state().output.result(
            listing,
            lambda: state().output.table(
                listing.members,
                [
                    Column("kind", "kind"),
                    Column("mode", "mode", lambda v: oct(v)[2:]),
                    Column("size", "size", format_size, justify="right"),
                    Column("mtime", "mtime", justify="right"),
                    Column("path", "path"),
                    Column("link", "link", lambda v: v or ""),
                ],
            ),
        )
        return
    data = backups.show(state().context, backup_id)

    def human() -> None:
        _print_backup(data)
        state().output.table(
            data.verifications,
            [
                Column("checked_at", "checked"),
                Column("status", "status"),
                Column("kind", "kind"),
                Column("segments_checked", "segments", justify="right"),
                Column("duration_ms", "ms", justify="right"),
                Column("bytes_checked", "bytes", justify="right"),
                Column("error", "error"),
            ],
            title="verifications",
        )

    state().output.result(data, human)


def _print_backup(data: BackupView) -> None:
    state().output.fields(
        [
            ("backup", data.id),
            ("object", f"{data.namespace}/{data.name}"),
            ("label", data.label),
            ("source", data.source_path),
            ("created", data.created_at),
            ("size", format_size(data.size)),
            ("sha256", data.sha256),
            ("root", data.root),
            ("tx seq", data.tx_seq),
            ("encrypted", "yes" if data.encrypted else "no"),
            ("network", data.network),
            ("last ok", data.last_ok_at or "never"),
            ("retired", f"{data.retired_at} ({data.retired_reason})" if data.retired_at else "no"),
        ]
    )


@command(
    app,
    "restore",
    result=results("backups.RestoreReport", "snapshots.TreeRestored", "snapshots.MemberRestored"),
    epilog=examples(
        "zerog backup restore 12 -o /srv/restore/db.dump",
        "zerog backup restore 12 -o /srv/restore/ --mode 640",
        "zerog backup restore 12 -o - | pg_restore -d app",
        "zerog backup restore latest --ns backups --label db -o /srv/restore/",
        "zerog backup restore latest --label db --before 2026-11-28 -o - | pg_restore -d app",
        "zerog backup restore 14 --to /srv/restore/config",
        "zerog backup restore 14 --path db/orders.sql -o /tmp/orders.sql",
    ),
)
def restore(
    selector: Annotated[
        str,
        typer.Argument(
            help="Backup id (see `zerog backup ls`), or latest: the newest live backup "
            "matching --ns, --label and --before.",
            metavar="ID|latest",
            autocompletion=complete_backup_id,
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="File, folder (keeps the source's file name), or - for stdout.",
            show_default=False,
        ),
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="Folder snapshot: restore the tree into this folder (absent or empty).",
            show_default=False,
        ),
    ] = None,
    member: Annotated[
        str | None,
        typer.Option(
            "--path",
            help="Folder snapshot: restore only this member, fetching only its segments.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    mode: params.FileModeOption = None,
    ns: Annotated[str | None, namespace_option("With latest: only this namespace.")] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="With latest: only this label.", show_default=False),
    ] = None,
    before: Before = None,
    as_user: AsUser = None,
) -> None:
    """Download a backup, check every proof, its size and SHA-256, then write it (exit 3 if not).


    With -o - the whole backup is first downloaded and verified into a private
    temporary file (in the tmp_dir setting), then that verified file is streamed
    to stdout: no unverified byte is ever written out.

    Folder snapshots: --to DIR restores the tree (members are checked against
    the index, and absolute paths, '..' and links leaving DIR are refused, exit
    3); --path MEMBER downloads only the 0G segments covering that member, each
    checked against the root with its Merkle proof, then the member's SHA-256
    from the index. Encrypted snapshots too: the member at plaintext offset p is
    stored at 17 + p (the v1 header) and decrypted from keystream position p;
    the first segment is fetched as well, for the header's nonce.

    A folder backed up with --format 0g-dir restores the same way: --to DIR
    fetches the metadata object and every file, each proven against its root
    and held to the ledger's SHA-256; --path MEMBER fetches only that file.
    """
    from zerog_cli.services import backups, snapshots

    current = state()
    if output == "-" and current.output.json_mode:
        raise UsageError("--json and -o - both want stdout; pick one")
    if to is not None and (member is not None or output is not None):
        raise UsageError("--to restores the whole folder: drop -o and --path")
    _acting(as_user)
    backup_id = _selected_backup(selector, ns, label, before)
    if to is not None:
        with progress_bar(f"restore {backup_id}") as progress:
            tree = snapshots.restore_tree(current.context, backup_id, to, progress=progress)
        current.output.result(
            tree,
            f"{tree.to}: backup {backup_id} restored, {tree.members} members "
            f"({tree.files} files) verified",
        )
        return
    if member is not None:
        if mode is not None:
            raise UsageError("--path restores the member with its recorded mode: drop --mode")
        one = snapshots.restore_member(current.context, backup_id, member, output, force=force)
        print_node_stats(one.node_stats)
        if output == "-":
            current.output.info(f"backup {backup_id} {one.path}: {one.size} bytes verified")
            return
        current.output.result(
            one,
            f"{one.output}: {one.path} of backup {backup_id} restored, "
            f"{format_size(one.size)} verified, {format_size(one.bytes_fetched)} fetched",
        )
        return
    with progress_bar(f"restore {backup_id}") as progress:
        report = backups.restore(
            current.context, backup_id, output, force=force, progress=progress, mode=mode
        )
    print_node_stats(report.node_stats)
    if output == "-":
        current.output.info(f"backup {backup_id}: {report.size} bytes verified")
        return
    current.output.result(
        report,
        f"{report.output}: backup {backup_id} restored, {format_size(report.size)} "
        f"verified (sha256 {report.sha256[:16]}…)",
    )


def _selected_backup(
    selector: str, ns: str | None, label: str | None, before: params.Moment | None
) -> int:
    """The id ``selector`` names: a number, or ``latest`` among the matches."""
    from zerog_cli.services import backups

    if selector == "latest":
        context = state().context
        cutoff = None if before is None else before.resolve(context.now())
        return backups.latest(context, namespace=ns, label=label, before=cutoff).id
    if ns is not None or label is not None or before is not None:
        raise UsageError("--ns, --label and --before select among backups: use them with latest")
    if not selector.isdigit() or int(selector) < 1:
        raise UsageError(
            f"not a backup id: {selector!r} (a number from `zerog backup ls`, or latest)"
        )
    return int(selector)


def _print_prune(report: PruneReport) -> None:
    out = state().output
    if report.dry_run:
        out.echo("dry run: nothing is retired")
    for group in report.groups:
        out.echo(
            f"{group.namespace} · {group.label}: keep {len(group.keep)}, "
            f"{'would retire' if report.dry_run else 'retire'} {len(group.retire)}"
        )
        entries = [("keep", e) for e in group.keep] + [("retire", e) for e in group.retire]
        entries.sort(key=lambda pair: (pair[1].created_at, pair[1].id), reverse=True)
        for action, entry in entries:
            why = ", ".join(entry.reasons)
            out.echo(f"  {action:<6} {entry.id:>6}  {entry.created_at}  {why}".rstrip())
    if not report.groups:
        out.echo("no live backups match")
    for name in report.skipped_namespaces:
        out.warn(f"skipped namespace {name}: you may not write it")


@command(
    app,
    "prune",
    result=results("backups.PruneReport"),
    epilog=examples(
        "zerog backup prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run",
        "zerog backup prune --keep-last 3 --ns backups --label db",
    ),
)
def prune(
    keep_last: Annotated[int, typer.Option("--keep-last", help="Keep the N newest.", min=0)] = 0,
    keep_daily: Annotated[
        int, typer.Option("--keep-daily", help="Newest of each of the last N days with one.", min=0)
    ] = 0,
    keep_weekly: Annotated[
        int, typer.Option("--keep-weekly", help="Newest of each of the last N ISO weeks.", min=0)
    ] = 0,
    keep_monthly: Annotated[
        int, typer.Option("--keep-monthly", help="Newest of each of the last N months.", min=0)
    ] = 0,
    ns: Annotated[str | None, namespace_option("Namespace (default: all you may write).")] = None,
    label: LabelFilter = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would be kept and retired; change nothing."),
    ] = False,
    as_user: AsUser = None,
) -> None:
    """Retire backups no --keep-* rule keeps (restic's forget rules, per namespace and label).

    0G storage is immutable: retiring removes a backup from listings, verify and
    metrics; the data stays on the network.
    """
    from zerog_cli.services import backups

    _acting(as_user)
    policy = backups.KeepPolicy(
        last=keep_last, daily=keep_daily, weekly=keep_weekly, monthly=keep_monthly
    )
    report = backups.prune(state().context, policy, namespace=ns, label=label, dry_run=dry_run)
    state().output.info(f"note: {report.note}")
    state().output.result(report, lambda: _print_prune(report))


@command(
    app,
    "unverified",
    result=results("backups.UnverifiedReport"),
    epilog=examples(
        "zerog backup unverified --max-age 24h",
        "zerog backup unverified --max-age 7d --ns backups --json",
        "zerog backup unverified --max-age 24h --max-age-full 30d",
    ),
)
def unverified(
    max_age: Annotated[
        params.Duration,
        typer.Option(
            "--max-age",
            click_type=params.DURATION,
            help="How recent an OK verification must be (24h, 7d…).",
        ),
    ] = params.Duration(24 * 3600, "24h"),
    max_age_full: Annotated[
        params.Duration | None,
        typer.Option(
            "--max-age-full",
            click_type=params.DURATION,
            help="Also flag backups whose last full read (not a --read-data-subset sample) "
            "is older than this (30d…).",
            show_default=False,
        ),
    ] = None,
    ns: NamespaceFilter = None,
) -> None:
    """Exit 3 when a live backup had no OK verification within --max-age, and list them.

    Any OK verification counts for --max-age, a sampled one (verify
    --read-data-subset) included; --max-age-full asks for a full read. A backup
    never verified counts from its creation, so a new backup is only flagged
    once verify had the time to reach it.
    """
    from zerog_cli.services import backups

    out = state().output

    def render(report: UnverifiedReport) -> None:
        def human() -> None:
            listed = 0
            for row in report.unverified:
                listed += 1
                if "max-age" in row.reasons:
                    since = "never verified" if row.never_verified else f"last ok {row.last_ok_at}"
                    age = row.age_seconds
                else:
                    since = (
                        "never fully read"
                        if row.never_fully_verified
                        else f"last full read {row.last_full_ok_at}"
                    )
                    age = row.full_age_seconds
                out.echo(
                    f"{row.id} {row.namespace}/{row.name}: {since} ({format_duration(age)} ago)"
                )
            if not listed:
                out.detail(f"all {report.live_backups} live backup(s) verified within {max_age}")

        out.result(report, human)

    with printing_failed_report(render):
        report = backups.unverified(
            state().context, max_age, namespace=ns, max_age_full=max_age_full
        )
    render(report)
