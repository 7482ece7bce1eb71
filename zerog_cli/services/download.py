"""`zerog download` and the verified fetch that restore and verify share.

Bytes are written to a temporary file beside the destination; the file is
renamed into place only after every segment proof, the whole root, the size
and the ledger's SHA-256 all check out. Anything else leaves no file behind.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from zerog_cli.errors import IntegrityError, NotFound, PermissionDenied, UsageError
from zerog_cli.infra.files import atomic_output, created_file_mode
from zerog_cli.infra.output import control_characters
from zerog_cli.ledger import objects
from zerog_cli.ledger.objects import Fragment, StoredObject
from zerog_cli.services import namespaces
from zerog_cli.services.context import Context
from zerog_cli.services.network import download_options, storage_network
from zerog_cli.services.spool import spool_folder
from zerog_cli.zerog.roots import looks_like_root, parse_root
from zerog_cli.zerog.segments import Progress

if TYPE_CHECKING:
    from zerog_cli.zerog.download import DownloadResult
    from zerog_cli.zerog.encryption import StreamDecryptor
    from zerog_cli.zerog.segment_fetch import NodeStats

_VERSIONED = re.compile(r"(.+)@([1-9][0-9]{0,17})")
"""``NAME@N``: version N of a name (`upload --replace` adds versions); a name that
really ends so is found under its own name first."""


@dataclass(frozen=True)
class Target:
    """What to fetch: a root, the ledger's record of it when there is one, and the size
    the written file must have when the caller pinned it (``--size``)."""

    root: str
    record: StoredObject | None
    pinned_size: int | None = None
    fragments: tuple[Fragment, ...] = ()
    """The Flow submissions of a file split at ``fragment_size``, in order (else empty)."""

    @property
    def label(self) -> str:
        if self.record is None:
            return self.root
        return f"{self.record.namespace}/{self.record.name}"

    @property
    def expected_size(self) -> int | None:
        """The bytes the written file must hold: the ledger's, else the pinned size."""
        return self.record.size if self.record is not None else self.pinned_size


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


class DiscardingSink:
    """A sink that only counts: a verification needs the proofs and hashes, not the bytes."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


class _DecryptingSink:
    """Feeds the stored stream of several fragments through one decryptor: the header
    sits at the start of the first fragment, the keystream runs on across the rest."""

    def __init__(self, sink: _CountingSink, decryptor: StreamDecryptor | None) -> None:
        self._sink = sink
        self.decryptor = decryptor

    def write(self, data: bytes) -> int:
        out = self.decryptor.update(data) if self.decryptor is not None else data
        if out:
            self._sink.write(out)
        return len(data)


def target_for(context: Context, record: StoredObject, *, size: int | None = None) -> Target:
    """The target of a recorded object, with its fragments when it was split."""
    fragments = tuple(objects.fragments_of(context.ledger.conn, record.id))
    return Target(record.root, record, size, fragments)


def resolve(context: Context, ref: str, user: str, *, size: int | None = None) -> Target:
    """A 0x root, R1,R2,… (a split file's roots), NS/NAME or NS/NAME@VERSION, if ``user``
    may read it; ``size`` pins the file's size. A reference with a ``/`` is always a name
    (names may hold commas; roots never hold a slash).

    A root the ledger records needs read on one of the namespaces that hold it,
    as a name does. A root the ledger does not know is public data on the
    network: anyone may fetch it (and only its proofs vouch for it).
    """
    network = context.settings.profile
    if "," in ref and "/" not in ref:
        return _resolve_fragments(context, ref, user, size)
    if looks_like_root(ref):
        root = parse_root(ref)
        known = objects.by_root(context.ledger.conn, network, root)
        readable = [r for r in known if namespaces.may(context, r.namespace, user, "read")]
        if known and not readable:
            raise PermissionDenied(
                f"{user} may not read {root}: the ledger records it only in namespaces "
                f"where {user} has no read role"
            )
        target = (
            target_for(context, readable[0], size=size) if readable else Target(root, None, size)
        )
    else:
        namespace, sep, name = ref.partition("/")
        if not sep or not name:
            raise UsageError(f"not a reference: {ref!r} (give a 0x root or NAMESPACE/NAME)")
        namespaces.require(context, namespace, user, "read")
        record = objects.by_name(context.ledger.conn, network, namespace, name)
        versioned = _VERSIONED.fullmatch(name)
        if record is None and versioned is not None:
            record = objects.by_name(
                context.ledger.conn,
                network,
                namespace,
                versioned.group(1),
                version=int(versioned.group(2)),
            )
        if record is None:
            raise NotFound(f"no object {namespace}/{name} on {network}")
        target = target_for(context, record, size=size)
    if size is not None and target.record is not None and size != target.record.size:
        raise IntegrityError(
            f"{target.label}: the ledger records {target.record.size} bytes, not {size}"
        )
    return target


def _resolve_fragments(context: Context, ref: str, user: str, size: int | None) -> Target:
    """``R1,R2,...``: the fragments of one file in order, as the Go client's ``--roots``.

    When the ledger records an object split into exactly these roots, it is that
    object (read access, sizes and SHA-256 checked); otherwise the roots are
    public data, each fragment's size whatever the nodes agree on.
    """
    roots = [parse_root(part.strip()) for part in ref.split(",")]
    if len(set(roots)) != len(roots):
        raise UsageError(f"a root is listed twice in {ref!r}")
    network = context.settings.profile
    for record in objects.by_root(context.ledger.conn, network, roots[0]):
        target = target_for(context, record, size=size)
        if [fragment.root for fragment in target.fragments] == roots:
            if not namespaces.may(context, record.namespace, user, "read"):
                raise PermissionDenied(
                    f"{user} may not read {target.label}: no read role on {record.namespace}"
                )
            if size is not None and size != record.size:
                raise IntegrityError(
                    f"{target.label}: the ledger records {record.size} bytes, not {size}"
                )
            return target
    unknown = tuple(Fragment(index, root, None, 0, 0) for index, root in enumerate(roots))
    return Target(roots[0], None, size, unknown)


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
    from zerog_cli.zerog.download import download

    record = target.record
    key = None
    header = 0
    if decrypts(target, decrypt):
        # Imported here: a plain download needs neither keys nor the encryption code.
        from zerog_cli.services.catalog import object_key
        from zerog_cli.services.upload import encryption_key
        from zerog_cli.zerog.encryption import HEADER_SIZE_V1

        key = encryption_key(context) if record is None else object_key(context, record.namespace)
        header = HEADER_SIZE_V1
    expected = target.expected_size
    # What the network stores: the file as written, plus the header when zerog encrypted it.
    stored_size = None if expected is None else expected + header
    counting = _CountingSink(sink)
    if target.fragments:
        result = _fetch_fragments(context, target.fragments, counting, key, progress)
    else:
        result = download(
            storage_network(context),
            target.root,
            counting,  # type: ignore[arg-type]
            expected_size=stored_size,
            symmetric_key=key,
            options=download_options(context.settings),
            progress=progress,
        )
    sha256 = counting.sha256.hexdigest()
    if expected is not None and counting.size != expected:
        where = "the ledger recorded" if record is not None else "expected"
        raise IntegrityError(f"{target.label}: got {counting.size} bytes, {where} {expected}")
    if record is not None and sha256 != record.sha256:
        raise IntegrityError(
            f"{target.label}: SHA-256 {sha256} differs from the ledger's {record.sha256}"
        )
    return result, sha256, counting.size


def _fetch_fragments(
    context: Context,
    fragments: tuple[Fragment, ...],
    counting: _CountingSink,
    key: bytes | None,
    progress: Progress | None,
) -> DownloadResult:
    """Each fragment downloaded in order, every segment proven against its own root and
    each fragment's size pinned to the recorded one; the caller checks the whole SHA-256."""
    from zerog_cli.zerog.download import DownloadResult, download, merged_node_stats
    from zerog_cli.zerog.encryption import StreamDecryptor

    network = storage_network(context)
    options = download_options(context.settings)
    sink = _DecryptingSink(counting, StreamDecryptor(symmetric_key=key) if key else None)
    writer: Any = sink
    results = [
        # A size of 0 is a fragment the ledger does not know: the nodes must agree on it.
        download(
            network,
            fragment.root,
            writer,
            expected_size=fragment.size or None,
            options=options,
            progress=progress,
        )
        for fragment in fragments
    ]
    if sink.decryptor is not None:
        sink.decryptor.finish()
    return DownloadResult(
        root=fragments[0].root,
        size=sum(result.size for result in results),
        tx_seq=results[0].tx_seq,
        bytes_written=counting.size,
        segments=sum(result.segments for result in results),
        nodes=sorted({node for result in results for node in result.nodes}),
        healed_segments=sum(result.healed_segments for result in results),
        encrypted=key is not None,
        node_stats=merged_node_stats([result.node_stats for result in results]),
        fetch_seconds=sum(result.fetch_seconds for result in results),
    )


def decrypts(target: Target, decrypt: bool) -> bool:
    """Whether the bytes written are plaintext decrypted with ENCRYPTION_KEY."""
    return decrypt or (target.record is not None and target.record.encrypted)


def default_output(target: Target) -> Path:
    """The object's last name part, or the root; never a part that walks up or hides escapes."""
    if target.record is None:
        return Path(target.root)
    file_name = target.record.name.rsplit("/", 1)[-1]
    if file_name in ("", ".", "..") or control_characters(file_name):
        raise UsageError(
            f"{target.label!r} does not make a safe file name", hint="name one with -o FILE"
        )
    return Path(file_name)


@dataclass(frozen=True)
class NodeFetch:
    """What one storage node served of a download: segments, bytes and MB/s, and the
    segments it served corrupt, failed or stalled on."""

    url: str
    segments: int
    bytes: int
    mb_per_s: float
    corrupt: int
    failed: int
    stalled: int

    @classmethod
    def of(cls, stats: dict[str, Any]) -> NodeFetch:
        """From the engine's per-node figures (`NodeStats.to_json`)."""
        return cls(**stats)


def node_fetches(stats: list[NodeStats], seconds: float) -> list[NodeFetch]:
    """The engine's per-node figures of a fetch that took ``seconds``, as reported."""
    return [NodeFetch.of(node.to_json(seconds)) for node in stats]


@dataclass(frozen=True)
class DownloadReport:
    """What a download wrote (``output``: a path, or ``-`` for stdout) and what it checked.

    ``mode`` is the written file's mode in octal (``0o600``), None on stdout;
    ``verified_against_ledger`` says the size and SHA-256 were compared with
    the ledger's record (a bare root has none).
    """

    ref: str
    root: str
    output: str
    mode: str | None
    size: int
    sha256: str
    verified_against_ledger: bool
    decrypted: bool
    segments: int
    healed_segments: int
    nodes: list[str]
    node_stats: list[NodeFetch]
    seconds: float


def download_to(
    context: Context,
    ref: str,
    output: str | None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    operation: str = "download",
    decrypt: bool = False,
    size: int | None = None,
    mode: int | None = None,
) -> DownloadReport:
    """Fetch ``ref`` to ``output`` ("-" = stdout) atomically; returns the report.

    The file is created with ``mode``; by default 0600 when it is decrypted
    plaintext, else what the umask allows (0666 & ~umask), like any file the
    user asked for.
    """
    started = time.monotonic()
    target = resolve(context, ref, context.acting_user, size=size)
    metrics = context.metrics
    try:
        if output == "-":
            result, sha256, written = _to_stdout(context, target, progress, decrypt)
            destination = "-"
            written_mode = None
        else:
            path = Path(output) if output else default_output(target)
            if path.is_dir():
                path = path / default_output(target).name
            if path.exists() and not force:
                raise UsageError(f"{path} exists; pass --force to overwrite it")
            if mode is None:
                mode = 0o600 if decrypts(target, decrypt) else created_file_mode()
            with atomic_output(path, mode=mode) as handle:
                result, sha256, written = fetch_verified(
                    context, target, handle, progress=progress, decrypt=decrypt
                )
            destination = str(path)
            written_mode = oct(mode)
    except Exception:
        metrics.storage_operations.labels(operation, "error").inc()
        raise
    metrics.storage_operations.labels(operation, "ok").inc()
    metrics.storage_bytes.labels("download").inc(written)
    metrics.storage_duration.labels(operation).observe(time.monotonic() - started)
    return DownloadReport(
        ref=ref,
        root=target.root,
        output=destination,
        mode=written_mode,
        size=written,
        sha256=sha256,
        verified_against_ledger=target.record is not None,
        decrypted=result.encrypted,
        segments=result.segments,
        healed_segments=result.healed_segments,
        nodes=list(result.nodes),
        node_stats=node_fetches(result.node_stats, result.fetch_seconds),
        seconds=round(time.monotonic() - started, 3),
    )


def _to_stdout(
    context: Context, target: Target, progress: Progress | None, decrypt: bool
) -> tuple[DownloadResult, str, int]:
    """Verify into a private temporary file first: no unverified byte reaches stdout."""
    folder = spool_folder(context.settings.tmp_dir)
    with tempfile.TemporaryFile(prefix="zerog-", dir=folder) as spool:
        result, sha256, size = fetch_verified(
            context, target, spool, progress=progress, decrypt=decrypt
        )
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout.buffer, 1 << 20)
        sys.stdout.buffer.flush()
    return result, sha256, size
