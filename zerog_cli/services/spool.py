"""Streams (stdin, a producer command, a tar stream) turned into something 0G can upload.

A Flow submission needs the 0G Merkle root before the first byte is sent, and
a stream can be read only once. So the stream is copied to a private spool
file (0600, in the ``tmp_dir`` setting, default the system temp folder) while
the same bytes feed the SHA-256 and the Merkle tree: one pass, memory bounded
by a few hashing blocks whatever the size. The spool file is removed on every
way out, a refusal, an error, Ctrl-C and SIGTERM included (the CLI turns
SIGTERM into `errors.Terminated`, a KeyboardInterrupt).

A producer command (`backup create --from-command`) is run here, not by a
shell: its exit status is checked after its output ended, and a non-zero
status or a signal refuses the input (exit 10), so a failed ``pg_dump`` never
becomes a backup. An empty stream is refused too (exit 10): 0G cannot store
zero bytes, and an empty stdin is what a failed producer earlier in a shell
pipeline leaves behind, whose status zerog cannot see.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from zerog_cli.errors import EnvironmentFailure, UsageError
from zerog_cli.infra.stdin import standard_input
from zerog_cli.infra.units import format_size

if TYPE_CHECKING:
    from zerog_cli.zerog.encryption import EncryptionHeader
    from zerog_cli.zerog.merkle import FileTree

SPOOL_PREFIX = "zerog-spool-"


@dataclass(frozen=True)
class StreamInput:
    """Bytes that can be read once: standard input, or a producer command's output."""

    command: tuple[str, ...] | None = None
    name: str | None = None
    """How messages call the stream (default: standard input, or the producer command)."""

    @property
    def description(self) -> str:
        if self.name is not None:
            return self.name
        if self.command is None:
            return "standard input"
        return f"producer `{' '.join(self.command)}`"


@dataclass(frozen=True)
class Spooled:
    """A stream copied to ``path``, with what one pass over it computed."""

    path: Path
    size: int
    """Plaintext bytes read from the stream (what the user will get back)."""
    sha256: str
    """SHA-256 of the plaintext."""
    trees: list[FileTree]
    """Merkle trees of what is uploaded (the plaintext, or ``header || ciphertext``),
    one per ``fragment_size`` piece, from the same pass."""


def spool_folder(configured: str | None) -> Path:
    """The folder spool files go to: the ``tmp_dir`` setting, else the system temp folder."""
    folder = Path(configured) if configured else Path(tempfile.gettempdir())
    if not folder.is_dir():
        raise EnvironmentFailure(
            f"tmp_dir {folder} is not a folder", hint="`zerog config set tmp_dir DIR`"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EnvironmentFailure(
            f"tmp_dir {folder} is not writable", hint="`zerog config set tmp_dir DIR`"
        )
    return folder


class SealingReader(io.RawIOBase):
    """Reads a plaintext stream once: feeds its SHA-256 and yields ``header || ciphertext``.

    Used for the single hashing pass of an encrypted upload: the 0G root is over
    the encrypted stream, the recorded SHA-256 over the plaintext the user holds.
    """

    def __init__(self, plaintext: Any, key: bytes, header: EncryptionHeader | None) -> None:
        from zerog_cli.zerog.encryption import StreamEncryptor

        super().__init__()
        assert header is not None
        self._plaintext = plaintext
        self._encryptor = StreamEncryptor(key, header)
        self._pending = b""
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while len(self._pending) < len(view):
            block = self._plaintext.read(max(len(view), 1 << 16))
            if not block:
                break
            self.sha256.update(block)
            self._pending += self._encryptor.update(block)
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


class _TeeReader(io.RawIOBase):
    """Reads ``source`` once, writes every byte to ``sink`` and counts them against ``limit``."""

    def __init__(self, source: IO[bytes], sink: IO[bytes], limit: int | None, what: str) -> None:
        super().__init__()
        self._source = source
        self._sink = sink
        self._limit = limit
        self._what = what
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = self._source.readinto(view)  # type: ignore[attr-defined]
        if not count:
            return 0
        self.size += count
        if self._limit is not None and self.size > self._limit:
            raise UsageError(
                f"{self._what} is over the {format_size(self._limit)} limit "
                "(stopped reading; nothing was sent)",
                hint="raise it with --max-size, or the max_upload_size / max_backup_size setting",
            )
        self._sink.write(view[:count])
        return count


class _EmptyStream(EnvironmentFailure):
    """The stream ended before its first byte."""


@contextmanager
def _opened(source: StreamInput) -> Iterator[IO[bytes]]:
    """The stream's bytes; for a producer, its exit status is checked once they ended.

    A producer that failed is named even when its failure shows up here first as
    an empty stream; one still running when reading stops (an error, Ctrl-C) is killed.
    """
    if source.command is None:
        yield standard_input(f"`-` ({source.description})").buffer
        return
    try:
        process = subprocess.Popen(source.command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except OSError as error:
        raise EnvironmentFailure(
            f"cannot run {source.description}: {error.strerror or error}"
        ) from None
    assert process.stdout is not None
    try:
        yield process.stdout
    except BaseException as error:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
        status = process.wait()
        if isinstance(error, _EmptyStream) and status != 0:
            raise _producer_failure(source, status) from None
        raise
    process.stdout.close()
    status = process.wait()
    if status != 0:
        raise _producer_failure(source, status)


def _producer_failure(source: StreamInput, status: int) -> EnvironmentFailure:
    if status < 0:
        return EnvironmentFailure(
            f"{source.description} was killed by signal {-status} "
            f"({_signal_name(-status)}): nothing was stored"
        )
    return EnvironmentFailure(
        f"{source.description} exited with status {status}: nothing was stored"
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


@contextmanager
def spool(
    source: StreamInput,
    folder: Path,
    *,
    limit: int | None = None,
    key: bytes | None = None,
    header: EncryptionHeader | None = None,
    fragment_size: int,
) -> Iterator[Spooled]:
    """Copy ``source`` to a private file in ``folder`` while hashing it; remove it afterwards.

    What is uploaded is cut every ``fragment_size`` bytes in the same pass (one
    tree when it fits), so a stream past it is still read once.

    With ``key`` (and the ``header`` the upload will use) the tree is over
    ``header || ciphertext`` and the file keeps the plaintext, which
    `EncryptedReader.from_path` re-encrypts identically for the upload.
    Raises EnvironmentFailure (exit 10) for an empty stream or a failed producer,
    UsageError (exit 2) past ``limit``.
    """
    from zerog_cli.zerog.merkle import fragment_trees_from_stream

    descriptor, name = tempfile.mkstemp(prefix=SPOOL_PREFIX, dir=folder)
    path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as sink, _opened(source) as stream:
            tee = _TeeReader(stream, sink, limit, source.description)
            reader: io.RawIOBase = tee if key is None else SealingReader(tee, key, header)
            try:
                trees, sha256 = fragment_trees_from_stream(
                    reader, fragment_size, with_sha256=key is None, name=source.description
                )
            except UsageError:
                if tee.size == 0:
                    raise _EmptyStream(
                        f"{source.description} was empty: nothing to store",
                        hint="a failed producer in a shell pipeline leaves an empty stdin; "
                        "use --from-command so that zerog checks its exit status",
                    ) from None
                raise
            sink.flush()
        if isinstance(reader, SealingReader):
            sha256 = reader.sha256.hexdigest()
        assert sha256 is not None
        yield Spooled(path=path, size=tee.size, sha256=sha256, trees=trees)
    finally:
        path.unlink(missing_ok=True)
