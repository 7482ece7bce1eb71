"""Namespaces: names, owners, ACL roles, per-namespace quota and policy.

Roles: the owner and ``admin`` manage the namespace (grant, revoke, remove,
change settings), ``write`` uploads into it, ``read`` downloads and lists.
Anyone else is refused with PermissionDenied (exit 5).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zerog_cli.errors import NotFound, PermissionDenied, UsageError
from zerog_cli.infra.choices import Role
from zerog_cli.infra.output import control_characters, copied_fields
from zerog_cli.infra.units import RecordedCost
from zerog_cli.ledger import namespaces as rows
from zerog_cli.ledger import objects
from zerog_cli.ledger.db import Page, utc_now
from zerog_cli.ledger.namespaces import Namespace
from zerog_cli.services import quotas
from zerog_cli.services.context import Context

if TYPE_CHECKING:
    from zerog_cli.ledger.admin import LedgerCopy

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}\Z")
DEFAULT_NAMESPACE = "default"

_CAN = {
    "read": {"owner", "admin", "write", "read"},
    "write": {"owner", "admin", "write"},
    "manage": {"owner", "admin"},
}


def validate_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise UsageError(
            f"not a namespace name: {name!r} (lowercase letters, digits, '.', '_', '-';"
            " starts with a letter or digit; at most 63 characters)"
        )
    return name


def validate_object_name(name: str, what: str = "object name") -> str:
    """``name`` unless it could forge output or climb folders (UsageError, exit 2).

    Refused: control characters (escape sequences, line breaks), and a name that
    is empty or has an empty, ``.`` or ``..`` part between its ``/``: its last
    part becomes the download's file name, and ``..`` there walks up.
    """
    controls = control_characters(name)
    if controls:
        raise UsageError(
            f"not a valid {what}: {name!r} holds control characters ({', '.join(controls)})"
        )
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise UsageError(
            f"not a valid {what}: {name!r} (no empty, '.' or '..' parts, "
            "no leading, trailing or doubled '/')"
        )
    return name


def require(context: Context, name: str, user: str, action: str) -> Namespace:
    """The namespace if ``user`` may ``action`` it (read, write, manage); else exit 5 or 7."""
    validate_name(name)
    namespace = rows.get(context.ledger.conn, name)
    if namespace is None:
        raise NotFound(f"no namespace {name!r}", hint="create it with `zerog ns create NAME`")
    role = rows.role_of(context.ledger.conn, namespace, user)
    if role not in _CAN[action]:
        held = f"has role {role}" if role else "has no role"
        raise PermissionDenied(f"{user} may not {action} namespace {name!r} ({held} there)")
    return namespace


def may(context: Context, name: str, user: str, action: str) -> bool:
    """Whether ``user`` may ``action`` (read, write, manage) namespace ``name`` (False if gone)."""
    namespace = rows.get(context.ledger.conn, name)
    if namespace is None:
        return False
    return rows.role_of(context.ledger.conn, namespace, user) in _CAN[action]


def create(
    context: Context,
    name: str,
    *,
    owner: str,
    quota_bytes: int | None = None,
    max_object_bytes: int | None = None,
    metadata: dict[str, str] | None = None,
    encrypt_by_default: bool = False,
    reserved: bool = False,
) -> Namespace:
    """Create a namespace; ``reserved`` allows zerog's own (the ledger snapshots')."""
    from zerog_cli.services.catalog import LEDGER_NAMESPACE

    validate_name(name)
    if name == LEDGER_NAMESPACE and not reserved:
        raise UsageError(
            f"namespace {name!r} is reserved for ledger snapshots (`zerog ledger backup --to-0g`)"
        )
    namespace = Namespace(
        name=name,
        owner=owner,
        quota_bytes=quota_bytes,
        used_bytes=0,
        max_object_bytes=max_object_bytes,
        encrypt_by_default=encrypt_by_default,
        metadata=metadata or {},
        created_at=utc_now(),
    )
    with context.ledger.transaction() as conn:
        if rows.get(conn, name) is not None:
            raise UsageError(f"namespace {name!r} already exists")
        quotas.ensure_user(conn, context, owner)
        rows.insert(conn, namespace)
    return namespace


def find(context: Context, name: str) -> Namespace | None:
    return rows.get(context.ledger.conn, name)


def ensure_default(context: Context, user: str) -> Namespace:
    """The ``default`` namespace, created on first use with ``user`` as its owner."""
    quotas.validate_user_name(user)
    existing = rows.get(context.ledger.conn, DEFAULT_NAMESPACE)
    if existing is not None:
        return existing
    try:
        return create(context, DEFAULT_NAMESPACE, owner=user)
    except UsageError:
        found = rows.get(context.ledger.conn, DEFAULT_NAMESPACE)
        assert found is not None
        return found


@dataclass(frozen=True)
class NamespaceView(Namespace):
    """A namespace as every command shows it: owner, quota and usage in bytes, policy,
    metadata, and how many objects (the newest version of each name) it records."""

    objects: int


@dataclass(frozen=True)
class AclEntry:
    """A role granted on a namespace."""

    user: str
    role: Role
    granted_by: str
    granted_at: str


@dataclass(frozen=True)
class NamespaceDetail(NamespaceView):
    """`ns show`: a namespace, its ACL, and the acting user's role in it."""

    acl: list[AclEntry] = field(default_factory=list)
    your_role: str | None = None


@dataclass(frozen=True)
class NamespaceList:
    """`ns ls`: every namespace, by name."""

    namespaces: list[NamespaceView]


@dataclass(frozen=True)
class ObjectView:
    """A stored object as every command shows it: its 0G root, size, SHA-256 and version
    (``fee``: what its upload paid, the Flow fee and the micro-USD of its cost row, as every
    cost is given; ``fee.usd_micro`` is null when the ledger holds no price for it)."""

    id: int
    namespace: str
    name: str
    root: str
    tx_seq: int | None
    size: int
    sha256: str
    network: str
    encrypted: bool
    uploader: str | None
    fee: RecordedCost
    created_at: str
    version: int


@dataclass(frozen=True)
class ObjectList:
    """`ns objects`: a namespace's objects by name, one page (--limit, --offset), streamed
    from the ledger to the output (iterate it once)."""

    objects: Iterable[ObjectView]


@dataclass(frozen=True)
class Granted:
    """`ns grant`: who may now do what in which namespace."""

    namespace: str
    user: str
    role: Role
    granted_by: str


@dataclass(frozen=True)
class Revoked:
    """`ns revoke`: the user no longer has a role in the namespace."""

    namespace: str
    user: str
    revoked: bool


@dataclass(frozen=True)
class NamespaceRemoved:
    """`ns rm`: the rows removed per table, and the ledger backup written first (if any)."""

    namespace: str
    removed: dict[str, int]
    backup: str | None


def describe(namespace: Namespace, object_count: int) -> NamespaceView:
    return copied_fields(
        NamespaceView, namespace, metadata=dict(namespace.metadata), objects=object_count
    )


def object_view(stored: objects.StoredObject) -> ObjectView:
    return copied_fields(
        ObjectView, stored, fee=RecordedCost.of_both(stored.fee_neuron, stored.fee_usd_micro)
    )


def list_namespaces(context: Context) -> NamespaceList:
    return NamespaceList([describe(ns, count) for ns, count in rows.list_all(context.ledger.conn)])


def show(context: Context, name: str, user: str) -> NamespaceDetail:
    namespace = require(context, name, user, "read")
    view = describe(
        namespace, objects.count_in_namespace(context.ledger.conn, name, newest_only=True)
    )
    return NamespaceDetail(
        **view.__dict__,
        acl=[AclEntry(**row) for row in rows.acl(context.ledger.conn, name)],
        your_role=rows.role_of(context.ledger.conn, namespace, user),
    )


def list_objects(
    context: Context,
    name: str,
    user: str,
    *,
    versions: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> ObjectList:
    """The newest version of each name by name; with ``versions`` every version, oldest
    first; ``limit`` of them from ``offset``."""
    page = Page(limit, offset)
    require(context, name, user, "read")
    stored = objects.in_namespace(context.ledger.conn, name, versions=versions, page=page)
    return ObjectList(object_view(obj) for obj in stored)


def grant(context: Context, name: str, grantee: str, role: Role, user: str) -> Granted:
    namespace = require(context, name, user, "manage")
    with context.ledger.transaction() as conn:
        quotas.require_known_user(conn, grantee)
        if grantee == namespace.owner:
            raise UsageError(f"{grantee} owns {name!r} already")
        rows.grant(conn, name, grantee, role, user)
    return Granted(namespace=name, user=grantee, role=role, granted_by=user)


def revoke(context: Context, name: str, grantee: str, user: str) -> Revoked:
    require(context, name, user, "manage")
    with context.ledger.transaction() as conn:
        if not rows.revoke(conn, name, grantee):
            raise NotFound(f"{grantee} has no role in namespace {name!r}")
    return Revoked(namespace=name, user=grantee, revoked=True)


def remove(context: Context, name: str, user: str, *, force: bool) -> NamespaceRemoved:
    """Delete the namespace's records. The data on 0G is immutable and stays there.

    Dropping object records (``force``) first writes a `ledger backup` into
    ``ledger-backups/``: without its record, an object is only a root nobody can find.
    """
    require(context, name, user, "manage")
    saved: LedgerCopy | None = None
    count = objects.count_in_namespace(context.ledger.conn, name)
    if count and not force:
        raise UsageError(
            f"namespace {name!r} holds {count} object record(s); pass --force to remove them"
        )
    if count:
        from zerog_cli.ledger import admin

        saved = admin.safety_backup(context.ledger, f"ns-rm-{name}")
    with context.ledger.transaction() as conn:
        removed = rows.delete(conn, name)
    return NamespaceRemoved(
        namespace=name,
        removed=dict(removed),
        backup=None if saved is None else saved.destination,
    )
