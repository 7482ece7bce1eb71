"""`zerog verify`: the cron job that reads backups back and checks them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from zerog_cli.cli import params
from zerog_cli.cli.common import (
    LabelFilter,
    NamespaceFilter,
    command,
    complete_backup_id,
    examples,
    print_node_stats,
    printing_failed_report,
    results,
    state,
    steps_progress,
)
from zerog_cli.infra.units import format_size
from zerog_cli.services.sampling import DataSubset

if TYPE_CHECKING:
    from zerog_cli.infra.locking import Holder
    from zerog_cli.ledger.backups import Backup
    from zerog_cli.services.verify import ItemResult, VerifyReport

EPILOG = examples(
    "zerog verify --older-than 24h --max-duration 30m --metrics-file /var/lib/zerog/verify.prom",
    "zerog verify --subset 3/7 --pushgateway http://127.0.0.1:9091",
    "zerog verify 12 15 -v",
    "zerog verify --sample 10 --json",
    "zerog verify --read-data-subset 5%",
) + (
    "\n\n\b\nOutput (one line per backup, like rclone check --combined; ok lines only with -v):\n"
    "  = ID NS/NAME          verified\n"
    "  ! ID NS/NAME: why     mismatch (proof, root, size or SHA-256)\n"
    "  - ID NS/NAME: why     missing on the network\n"
    "  * ID NS/NAME: why     could not be checked (network, key…)\n"
    "Exit 0 all good (or nothing due), 3 any mismatch or missing, 6 network unavailable,\n"
    "7 no live backup in scope (ids, --ns, --label), 9 lock held."
)


def register(app: typer.Typer) -> None:
    command(app, "verify", result=results("verify.VerifyResult"), epilog=EPILOG)(verify)


def verify(
    ids: Annotated[
        list[int] | None,
        typer.Argument(
            click_type=params.BACKUP_ID,
            help="Backup ids (default: every live backup).",
            show_default=False,
            autocompletion=complete_backup_id,
        ),
    ] = None,
    all_backups: Annotated[
        bool, typer.Option("--all", help="Every live backup (the default; no filters).")
    ] = False,
    ns: NamespaceFilter = None,
    label: LabelFilter = None,
    older_than: Annotated[
        params.Duration | None,
        typer.Option(
            "--older-than",
            click_type=params.DURATION,
            help="Only backups not verified OK within AGE (24h, 7d…).",
            show_default=False,
        ),
    ] = None,
    subset: Annotated[
        params.Part | None,
        typer.Option(
            "--subset",
            click_type=params.SUBSET,
            help="Subset n of t by backup id (run n=1..t on t nights).",
            show_default=False,
        ),
    ] = None,
    sample: Annotated[
        float | None,
        typer.Option(
            "--sample",
            click_type=params.PERCENT,
            help="A random PERCENT of the selection.",
            show_default=False,
        ),
    ] = None,
    read_data_subset: Annotated[
        DataSubset | None,
        typer.Option(
            "--read-data-subset",
            click_type=params.DATA_SUBSET,
            help="Read only this share of each backup's segments (5%, or n/t), always the "
            "first and last, each checked against the root with its Merkle proof; recorded "
            "as a sampled check (no SHA-256). Default: read everything.",
            show_default=False,
        ),
    ] = None,
    max_duration: Annotated[
        params.Duration | None,
        typer.Option(
            "--max-duration",
            click_type=params.DURATION,
            help="Stop between backups after this long (30m); the next run continues.",
            show_default=False,
        ),
    ] = None,
    metrics_file: Annotated[
        str | None,
        typer.Option(
            "--metrics-file",
            help="Write metrics here for node_exporter (atomic).",
            show_default=False,
        ),
    ] = None,
    pushgateway: Annotated[
        str | None,
        typer.Option(
            "--pushgateway", help="Push metrics to this Pushgateway URL.", show_default=False
        ),
    ] = None,
    wait_lock: Annotated[
        bool, typer.Option("--wait-lock", help="Wait for a running verify instead of exit 9.")
    ] = False,
) -> None:
    """Read backups back from 0G with every proof, compare size and SHA-256, record the result.

    Least recently verified first; takes a lock so cron runs never overlap.
    Silent on success unless -v; on a terminal, a progress bar on stderr
    (never under cron, with -q or with --json).
    """
    from zerog_cli.services import verify as service

    current = state()
    out = current.output
    current.context.override(metrics_file=metrics_file, pushgateway=pushgateway)
    current.context.notify = out.detail
    selection = service.Selection(
        ids=tuple(ids or ()),
        all=all_backups,
        namespace=ns,
        label=label,
        older_than=None if older_than is None else older_than.seconds,
        subset=None if subset is None else (subset.n, subset.t),
        sample_percent=sample,
        data_subset=read_data_subset,
    )
    limit = None if max_duration is None else max_duration.seconds

    def waiting(holder: Holder | None) -> None:
        who = holder.describe() if holder else "another run"
        out.info(f"waiting for the verify lock held by {who}")

    def item_done(item: ItemResult) -> None:
        if item.status != "ok" or out.verbose:
            out.echo(item.line())
        print_node_stats(item.node_stats, prefix="  ")

    def render(report: VerifyReport) -> None:
        out.result(report.result())
        if report.selected == 0:
            out.info(f"verify: {report.summary()}")
            return
        out.detail(
            f"verify: {report.summary()}; {format_size(report.bytes_checked)} "
            f"in {report.seconds:.1f}s"
        )
        if report.not_checked and report.exit_code == 0:
            out.detail(f"stopped ({report.stopped}); the next run starts with the rest")

    with printing_failed_report(render), steps_progress("verify") as progress:

        def checking(done: int, selected: int, backup: Backup) -> None:
            if progress is not None:
                progress(done, selected, f"{backup.id} {backup.namespace}/{backup.name}")

        report = service.run(
            current.context,
            selection,
            max_duration=limit,
            wait_lock=wait_lock,
            on_wait=waiting,
            on_item=item_done,
            on_checking=checking,
            raise_failure=True,
        )
    render(report)
