"""`zerog ns create|ls|show|objects|grant|revoke|rm`."""

from __future__ import annotations

from typing import Annotated

import typer

from zerog_cli.cli import params
from zerog_cli.cli.common import (
    AsUser,
    Limit,
    Offset,
    command,
    complete_namespace,
    examples,
    new_app,
    results,
    state,
)
from zerog_cli.infra.choices import Role
from zerog_cli.infra.output import Column
from zerog_cli.infra.units import format_size

app = new_app(
    "Namespaces: named groups of objects with an owner, an ACL and a quota.",
    "zerog ns create backups --quota 50GB",
    "zerog ns grant backups bob write",
)


def _acting(user: str | None) -> str:
    current = state()
    current.context.override(user=user)
    return current.context.acting_user


def _size_or_none(value: int | None) -> str:
    return "-" if value is None else format_size(value)


@command(
    app,
    "create",
    result=results("namespaces.NamespaceView"),
    epilog=examples(
        "zerog ns create backups --quota 50GB --meta team=sre --meta env=prod",
        "zerog ns create secrets --encrypt-by-default --as alice",
    ),
)
def create(
    name: Annotated[str, typer.Argument(help="Namespace name: [a-z0-9][a-z0-9._-]{0,62}.")],
    quota: Annotated[
        int | None,
        typer.Option(
            "--quota",
            click_type=params.SIZE,
            help="Total size of its objects, e.g. 50GB.",
            show_default=False,
        ),
    ] = None,
    max_object: Annotated[
        int | None,
        typer.Option(
            "--max-object-size",
            click_type=params.SIZE,
            help="Largest single upload.",
            show_default=False,
        ),
    ] = None,
    meta: Annotated[
        list[params.MetadataPair] | None,
        typer.Option("--meta", click_type=params.METADATA, help="Metadata key=value (repeatable)."),
    ] = None,
    encrypt_by_default: Annotated[
        bool, typer.Option("--encrypt-by-default", help="Encrypt uploads unless --no-encrypt.")
    ] = False,
    as_user: AsUser = None,
) -> None:
    """Create a namespace owned by the acting user."""
    from zerog_cli.services import namespaces

    owner = _acting(as_user)
    created = namespaces.create(
        state().context,
        name,
        owner=owner,
        quota_bytes=quota,
        max_object_bytes=max_object,
        metadata={pair.key: pair.value for pair in meta or []},
        encrypt_by_default=encrypt_by_default,
    )
    state().output.result(
        namespaces.describe(created, 0), f"namespace {name} created, owned by {owner}"
    )


@command(
    app,
    "ls",
    result=results("namespaces.NamespaceList"),
    epilog=examples("zerog ns ls", "zerog ns ls --json"),
)
def list_command() -> None:
    """List namespaces with owner, usage and quota."""
    from zerog_cli.services import namespaces

    listing = namespaces.list_namespaces(state().context)
    columns = [
        Column("name", "name"),
        Column("owner", "owner"),
        Column("objects", "objects", justify="right"),
        Column("used_bytes", "used", format_size, justify="right"),
        Column("quota_bytes", "quota", _size_or_none, justify="right"),
    ]
    state().output.result(listing, lambda: state().output.table(listing.namespaces, columns))


@command(
    app,
    "show",
    result=results("namespaces.NamespaceDetail"),
    epilog=examples("zerog ns show backups", "zerog ns show backups --json"),
)
def show(
    name: Annotated[str, typer.Argument(help="Namespace.", autocompletion=complete_namespace)],
    as_user: AsUser = None,
) -> None:
    """Show a namespace: owner, quota, usage, metadata and ACL."""
    from zerog_cli.services import namespaces

    data = namespaces.show(state().context, name, _acting(as_user))

    def human() -> None:
        out = state().output
        out.fields(
            [
                ("name", data.name),
                ("owner", data.owner),
                ("objects", data.objects),
                ("used", format_size(data.used_bytes)),
                ("quota", _size_or_none(data.quota_bytes)),
                ("max object", _size_or_none(data.max_object_bytes)),
                ("encrypt", "by default" if data.encrypt_by_default else "on request"),
                ("metadata", ", ".join(f"{k}={v}" for k, v in data.metadata.items()) or "-"),
                ("your role", data.your_role),
            ]
        )
        out.table(
            data.acl,
            [Column("user", "user"), Column("role", "role"), Column("granted_by", "granted by")],
            title="acl",
        )

    state().output.result(data, human)


@command(
    app,
    "objects",
    result=results("namespaces.ObjectList"),
    epilog=examples(
        "zerog ns objects backups",
        "zerog ns objects backups --json",
        "zerog ns objects docs --versions",
        "zerog ns objects backups --limit 50 --offset 50",
    ),
)
def list_objects(
    name: Annotated[str, typer.Argument(help="Namespace.", autocompletion=complete_namespace)],
    versions: Annotated[
        bool,
        typer.Option(
            "--versions", help="Every version of each name (upload --replace), not only the newest."
        ),
    ] = False,
    limit: Limit = None,
    offset: Offset = 0,
    as_user: AsUser = None,
) -> None:
    """List the objects recorded in a namespace (the newest version of each name), by name."""
    from zerog_cli.services import namespaces

    listing = namespaces.list_objects(
        state().context, name, _acting(as_user), versions=versions, limit=limit, offset=offset
    )
    columns = [
        Column("name", "name"),
        Column("version", "version", justify="right"),
        Column("size", "size", format_size, justify="right"),
        Column("root", "root"),
        Column("encrypted", "enc", lambda v: "yes" if v else ""),
        Column("created_at", "created"),
    ]
    state().output.result(listing, lambda: state().output.table(listing.objects, columns))


@command(
    app,
    "grant",
    result=results("namespaces.Granted"),
    epilog=examples(
        "zerog ns grant backups bob write", "zerog ns grant backups carol read --as alice"
    ),
)
def grant(
    name: Annotated[str, typer.Argument(help="Namespace.", autocompletion=complete_namespace)],
    user: Annotated[str, typer.Argument(help="User to grant.")],
    role: Annotated[Role, typer.Argument(help="read, write or admin.")],
    as_user: AsUser = None,
) -> None:
    """Give a known user a role (owner or admin only)."""
    from zerog_cli.services import namespaces

    data = namespaces.grant(state().context, name, user, role, _acting(as_user))
    state().output.result(data, f"{user} may now {role} {name}")


@command(
    app,
    "revoke",
    result=results("namespaces.Revoked"),
    epilog=examples("zerog ns revoke backups bob"),
)
def revoke(
    name: Annotated[str, typer.Argument(help="Namespace.", autocompletion=complete_namespace)],
    user: Annotated[str, typer.Argument(help="User to revoke.")],
    as_user: AsUser = None,
) -> None:
    """Take a user's role away (owner or admin only)."""
    from zerog_cli.services import namespaces

    data = namespaces.revoke(state().context, name, user, _acting(as_user))
    state().output.result(data, f"{user} no longer has a role in {name}")


@command(
    app,
    "rm",
    result=results("namespaces.NamespaceRemoved"),
    epilog=examples("zerog ns rm scratch", "zerog ns rm old-backups --force"),
)
def remove(
    name: Annotated[str, typer.Argument(help="Namespace.", autocompletion=complete_namespace)],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Also remove its object records (a ledger backup is written first)."
        ),
    ] = False,
    as_user: AsUser = None,
) -> None:
    """Remove a namespace's records. Data on 0G is immutable: the objects stay on the network."""
    from zerog_cli.services import namespaces

    data = namespaces.remove(state().context, name, _acting(as_user), force=force)
    removed = data.removed
    if data.backup:
        state().output.info(f"ledger backed up to {data.backup}")
    state().output.info(
        "note: 0G storage is immutable; the objects stay on the network, only their records go"
    )
    state().output.result(
        data,
        f"namespace {name} removed "
        f"({removed['objects']} object and {removed['backups']} backup records)",
    )
