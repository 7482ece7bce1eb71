"""`zerog download` and the verified fetch that restore and verify share.

Bytes are written to a temporary file beside the destination; the file is
renamed into place only after every segment proof, the whole root, the size
and the ledger's SHA-256 all check out. Anything else leaves no file behind.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from zerog_cli.errors import IntegrityError, NotFound, UsageError
from zerog_cli.infra.files import atomic_output
from zerog_cli.ledger import objects
from zerog_cli.ledger.objects import StoredObject
from zerog_cli.services import namespaces
from zerog_cli.services.context import Context
from zerog_cli.services.network import storage_network
from zerog_cli.services.upload import encryption_key
from zerog_cli.zerog.roots import looks_like_root, parse_root

if TYPE_CHECKING:
    from zerog_cli.zerog.transfer import DownloadResult

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Target:
    """What to fetch: a root, and the ledger's record of it when there is one."""

    root: str
    record: StoredObject | None

    @property
    def label(self) -> str:
        if self.record is None:
            return self.root
        return f"{self.record.namespace}/{self.record.name}"


class _CountingSink:
    """A write-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._handle.write(data)


def resolve(context: Context, ref: str, user: str) -> Target:
    """A 0x root (no ACL: roots are public) or NS/NAME (needs read on NS)."""
    network = context.settings.profile
    if looks_like_root(ref):
        root = parse_root(ref)
        known = objects.by_root(context.ledger.conn, network, root)
        return Target(root, known[0] if known else None)
    namespace, sep, name = ref.partition("/")
    if not sep or not name:
        raise UsageError(f"not a reference: {ref!r} (give a 0x root or NAMESPACE/NAME)")
    namespaces.require(context, namespace, user, "read")
    record = objects.by_name(context.ledger.conn, network, namespace, name)
    if record is None:
        raise NotFound(f"no object {namespace}/{name} on {network}")
    return Target(record.root, record)


def fetch_verified(
    context: Context,
    target: Target,
    sink: BinaryIO,
    *,
    progress: Progress | None = None,
    decrypt: bool = False,
) -> tuple[DownloadResult, str, int]:
    """Download into ``sink`` with proof checks, decrypting when the record says so.

    ``decrypt`` decrypts with ENCRYPTION_KEY even without a ledger record: the
    way back for encrypted data when only its root survived.

    Returns (result, sha256 hex, bytes written). Raises IntegrityError when the
    bytes do not match the ledger's size or SHA-256.
    """
    from zerog_cli.zerog.transfer import download

    record = target.record
    encrypted = decrypt or (record is not None and record.encrypted)
    key = encryption_key(context) if encrypted else None
    counting = _CountingSink(sink)
    result = download(
        storage_network(context),
        target.root,
        counting,  # type: ignore[arg-type]
        symmetric_key=key,
        progress=progress,
    )
    sha256 = counting.sha256.hexdigest()
    if record is not None:
        if counting.size != record.size:
            raise IntegrityError(
                f"{target.label}: got {counting.size} bytes, the ledger recorded {record.size}"
            )
        if sha256 != record.sha256:
            raise IntegrityError(
                f"{target.label}: SHA-256 {sha256} differs from the ledger's {record.sha256}"
            )
    return result, sha256, counting.size


def default_output(target: Target) -> Path:
    if target.record is not None:
        return Path(Path(target.record.name).name)
    return Path(target.root)


def download_to(
    context: Context,
    ref: str,
    output: str | None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    operation: str = "download",
    decrypt: bool = False,
) -> dict[str, Any]:
    """Fetch ``ref`` to ``output`` ("-" = stdout) atomically; returns the report."""
    started = time.monotonic()
    target = resolve(context, ref, context.acting_user)
    metrics = context.metrics
    try:
        if output == "-":
            result, sha256, size = _to_stdout(context, target, progress, decrypt)
            destination = "-"
        else:
            path = Path(output) if output else default_output(target)
            if path.is_dir():
                path = path / default_output(target).name
            if path.exists() and not force:
                raise UsageError(f"{path} exists; pass --force to overwrite it")
            with atomic_output(
                path, mode=0o600 if target.record and target.record.encrypted else 0o644
            ) as handle:
                result, sha256, size = fetch_verified(
                    context, target, handle, progress=progress, decrypt=decrypt
                )
            destination = str(path)
    except Exception:
        metrics.storage_operations.labels(operation, "error").inc()
        raise
    metrics.storage_operations.labels(operation, "ok").inc()
    metrics.storage_bytes.labels("download").inc(size)
    metrics.storage_duration.labels(operation).observe(time.monotonic() - started)
    return {
        "ref": ref,
        "root": target.root,
        "output": destination,
        "size": size,
        "sha256": sha256,
        "verified_against_ledger": target.record is not None,
        "decrypted": result.encrypted,
        "segments": result.segments,
        "healed_segments": result.healed_segments,
        "nodes": result.nodes,
        "seconds": round(time.monotonic() - started, 3),
    }


def _to_stdout(
    context: Context, target: Target, progress: Progress | None, decrypt: bool
) -> tuple[DownloadResult, str, int]:
    """Verify into a private temporary file first: no unverified byte reaches stdout."""
    with tempfile.TemporaryFile(prefix="zerog-") as spool:
        result, sha256, size = fetch_verified(
            context, target, spool, progress=progress, decrypt=decrypt
        )
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout.buffer, 1 << 20)
        sys.stdout.buffer.flush()
    return result, sha256, size
