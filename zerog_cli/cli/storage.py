"""`zerog upload` and `zerog download`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zerog_cli.cli import params
from zerog_cli.cli.common import (
    AsUser,
    EncryptOption,
    GasLimitOption,
    StoreNamespace,
    command,
    examples,
    print_node_stats,
    progress_bar,
    results,
    state,
)
from zerog_cli.errors import UsageError
from zerog_cli.infra.choices import UploadWait
from zerog_cli.infra.units import format_size, format_usd

if TYPE_CHECKING:
    from zerog_cli.services.directories import FileDownloaded, TreeDownloaded
    from zerog_cli.services.snapshots import SnapshotDownloaded, SnapshotMemberDownloaded
    from zerog_cli.services.upload import UploadReport

WAIT_HELP = "finalized (default: data stored and read back), uploaded, or none."


def register(app: typer.Typer) -> None:
    command(
        app,
        "upload",
        result=results("upload.UploadReport"),
        epilog=examples(
            "zerog upload report.pdf --ns docs",
            "zerog upload db.dump --ns backups --name db-2026-11-26.dump --encrypt",
            "zerog upload big.iso --max-size 5GB --dry-run --json",
            "ZEROG_FRAGMENT_SIZE=1GiB zerog upload disk.img --max-size 10GB --json",
            "zerog upload db.dump --gas-price 4gwei --gas-limit 600000",
            "pg_dump -Fc orders | zerog upload - --ns backups --name orders.dump",
            "zerog upload prices.csv --ns docs --replace",
        ),
    )(upload)
    command(
        app,
        "download",
        result=results(
            "download.DownloadReport",
            "directories.TreeDownloaded",
            "directories.FileDownloaded",
            "snapshots.SnapshotDownloaded",
            "snapshots.SnapshotMemberDownloaded",
        ),
        epilog=examples(
            "zerog download docs/report.pdf",
            "zerog download docs/prices.csv@1 -o prices-v1.csv",
            "zerog download 0x2a82…f9d4 -o restored.bin --size 3000",
            "zerog download backups/db.dump -o - | pg_restore -d app",
            "zerog download 0x1f2e…,0x9c0d…,0x77ab… -o disk.img",
            "zerog download 0x5b1c… --dir restored-site",
            "zerog download 0x5b1c… --path css/site.css -o site.css",
            "zerog download 0x8e07… --index 0x41d2… --path db/orders.sql -o orders.sql",
        ),
    )(download)


def _print_upload(report: UploadReport) -> None:
    out = state().output
    if report.dry_run:
        out.echo("dry run: nothing was sent or recorded")
    out.fields(
        [
            ("object", f"{report.namespace}/{report.name}"),
            ("root", report.root),
            ("size", format_size(report.size)),
            ("sha256", report.sha256),
            ("encrypted", "yes" if report.encrypted else "no"),
            ("fee", f"{report.cost.og} 0G"),
            ("cost", format_usd(report.cost.usd_micro)),
        ]
        + ([("tx seq", report.tx_seq)] if report.tx_seq is not None else [])
        + ([("roots", ",".join(report.roots))] if report.roots is not None else [])
        + ([("on network", "already (not paid again)")] if report.already_on_network else [])
    )
    for name, entry in (report.quota_after or {}).items():
        limit = "unlimited" if entry.limit is None else entry.limit
        fits = "fits" if entry.fits else "OVER LIMIT"
        out.echo(f"quota after: {name} {entry.used} of {limit} ({fits})")


def upload(
    path: Annotated[Path, typer.Argument(help="File to upload, or - for stdin (needs --name).")],
    ns: StoreNamespace = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Name in the namespace (default: file name).", show_default=False
        ),
    ] = None,
    as_user: AsUser = None,
    encrypt: EncryptOption = None,
    replicas: Annotated[
        int | None,
        typer.Option("--replicas", help="Copies of each segment.", show_default=False, min=1),
    ] = None,
    wait: Annotated[UploadWait, typer.Option("--wait", help=WAIT_HELP)] = UploadWait.FINALIZED,
    max_size: Annotated[
        int | None,
        typer.Option(
            "--max-size",
            click_type=params.SIZE,
            help="Size limit for this upload, e.g. 2GB.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print root, fee, cost and quota after; send nothing.")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="When the name exists, store a new version; the old one stays in history "
            "(`ns objects --versions`, `download NS/NAME@N`).",
        ),
    ] = False,
    gas_price: params.GasPriceOption = None,
    gas_limit: GasLimitOption = None,
) -> None:
    """Store a file on 0G: verify policy and quota, pay once, wait until it reads back.

    With - the standard input is copied to a private 0600 spool file in the
    tmp_dir setting (default: the system temp folder) while its SHA-256 and 0G
    root are computed in the same single pass, since the root must be known
    before paying; memory stays flat and the spool file is removed however the
    command ends. An empty stdin is refused (exit 10).
    """
    from zerog_cli.services.spool import StreamInput
    from zerog_cli.services.upload import UploadRequest
    from zerog_cli.services.upload import upload as run_upload

    current = state()
    current.context.override(user=as_user, gas_price=gas_price, gas_limit=gas_limit)
    stream = StreamInput() if str(path) == "-" else None
    request = UploadRequest(
        path=path,
        stream=stream,
        namespace=ns,
        name=name,
        encrypt=encrypt,
        replicas=replicas,
        wait=wait,
        max_size=max_size,
        dry_run=dry_run,
        replace=replace,
    )
    with progress_bar(f"upload {name or path.name}") as progress:
        report = run_upload(current.context, request, progress=progress)
    for warning in report.warnings:
        current.output.warn(warning)
    current.output.result(report, lambda: _print_upload(report))


def download(
    ref: Annotated[
        str,
        typer.Argument(
            help="A 0x root, NAMESPACE/NAME, NAMESPACE/NAME@N (version N), or ROOT1,ROOT2,..."
            " (the fragments of one file, in order, as the official client's --roots)."
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="File, folder, or - for stdout.", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    decrypt: Annotated[
        bool,
        typer.Option("--decrypt", help="Decrypt with ENCRYPTION_KEY even without a ledger record."),
    ] = False,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            help="The file's exact size in bytes (as written, after decrypting); "
            "default: the ledger's, else every node must agree.",
            show_default=False,
            min=0,
        ),
    ] = None,
    mode: params.FileModeOption = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="REF is a folder (the official upload-dir's metadata root, or with --index a "
            "zerog snapshot): write its tree into this folder (absent or empty).",
            show_default=False,
        ),
    ] = None,
    member: Annotated[
        str | None,
        typer.Option(
            "--path",
            help="REF is a folder: fetch only this file of it (to -o).",
            show_default=False,
        ),
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            help="REF is a zerog folder snapshot's archive (its root, or its fragments' "
            "roots), and this the root of its index object: read it with no ledger record.",
            show_default=False,
        ),
    ] = None,
    as_user: AsUser = None,
) -> None:
    """Fetch a file, check every proof, its size and SHA-256, then write it.

    A root the ledger records in namespaces needs read on one of them (--as);
    a root it does not know is public data and anyone may fetch it.

    --dir and --path read a folder in the official 0G directory format (what
    `0g-storage-client upload-dir` and `zerog backup create DIR --format
    0g-dir` store): REF is its metadata object, whose files are fetched by
    their roots, every segment proven; names that are not single path parts
    and links leaving the folder are refused (exit 3).

    With --index they read a zerog folder snapshot from the network alone (a
    lost ledger, another host): REF is the archive, --index the index object
    stored beside it (both roots are printed by backup create --json). --path
    then fetches only the segments covering that member, each proven; --dir
    checks every tar member against the index. Add --decrypt for an encrypted
    snapshot.
    """
    from zerog_cli.services.download import download_to

    current = state()
    if output == "-" and current.output.json_mode:
        raise UsageError("--json and -o - both want stdout; pick one")
    current.context.override(user=as_user)
    if index is not None and directory is None and member is None:
        raise UsageError("--index reads a folder snapshot: give --dir OUT or --path MEMBER")
    if directory is not None or member is not None:
        _download_folder(
            ref, directory, member, output, force=force, mode=mode, index=index, decrypt=decrypt
        )
        return
    with progress_bar(f"download {ref[:24]}") as progress:
        report = download_to(
            current.context,
            ref,
            output,
            force=force,
            progress=progress,
            decrypt=decrypt,
            size=size,
            mode=mode,
        )
    print_node_stats(report.node_stats)
    if output == "-":
        current.output.info(f"{report.size} bytes verified ({report.root})")
        return
    current.output.result(
        report,
        f"{report.output}: {format_size(report.size)} verified (root {report.root}, "
        f"sha256 {report.sha256[:16]}…)",
    )


def _download_folder(
    ref: str,
    directory: Path | None,
    member: str | None,
    output: str | None,
    *,
    force: bool,
    mode: int | None,
    index: str | None,
    decrypt: bool,
) -> None:
    """A 0G directory (REF is its metadata object) or, with ``index``, a zerog snapshot."""
    from zerog_cli.services import directories, snapshots

    current = state()
    context = current.context
    if directory is not None and (member is not None or output is not None):
        raise UsageError("--dir writes the whole folder: drop -o and --path")
    if mode is not None:
        raise UsageError("a folder's files take their recorded or the umask's mode: drop --mode")
    if decrypt and index is None:
        raise UsageError("a 0G directory is not encrypted: drop --decrypt (or give --index)")
    if directory is not None:
        tree: TreeDownloaded | SnapshotDownloaded
        with progress_bar(f"download {ref[:24]}") as progress:
            if index is None:
                tree = directories.download_tree(context, ref, directory, progress=progress)
            else:
                tree = snapshots.download_tree(
                    context, ref, index, directory, decrypt=decrypt, progress=progress
                )
        current.output.result(
            tree, f"{tree.to}: {tree.members} members ({tree.files} files) verified"
        )
        return
    assert member is not None
    one: FileDownloaded | SnapshotMemberDownloaded
    if index is None:
        one = directories.download_member(context, ref, member, output, force=force)
    else:
        one = snapshots.download_member(
            context, ref, index, member, output, decrypt=decrypt, force=force
        )
    print_node_stats(one.node_stats)
    if output == "-":
        current.output.info(f"{one.path}: {one.size} bytes verified")
        return
    current.output.result(one, f"{one.output}: {one.path} ({format_size(one.size)}) verified")
