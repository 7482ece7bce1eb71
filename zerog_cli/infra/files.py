"""Files that appear atomically and private files that are born 0600."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def pread_all(fd: int, offset: int, length: int) -> bytes:
    """``length`` bytes of ``fd`` from ``offset`` (fewer only at the end of the file), with
    ``os.pread``: no shared file offset, so several threads may read one descriptor."""
    parts = []
    while length > 0:
        part = os.pread(fd, length, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
        length -= len(part)
    return b"".join(parts)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` as 0700 if missing, and every missing parent as 0700 too.

    ``Path.mkdir(parents=True)`` gives the parents it creates the default mode
    (0755 under the usual umask), which would leave zerog's state readable by
    other accounts. Folders that already exist keep their modes.
    """
    if path.is_dir():
        return path
    if not path.parent.exists():
        ensure_private_dir(path.parent)
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def current_umask() -> int:
    """This process's umask, read without changing it where Linux shows it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def created_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0666 less the umask.

    `atomic_path` sets its mode explicitly (the umask does not apply to
    ``fchmod``), so files the user asked for take this mode to honour it.
    """
    return 0o666 & ~current_umask()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_orphans(directory: Path, name: str) -> None:
    """Delete our own ``.NAME.PID.*.part`` leftovers: regular files of this user, writer gone.

    Anything else under such a name (a directory, a symbolic link, another
    user's file, a live writer's file) is not a leftover of ours: it is left
    alone, and cannot block the write, whose temporary name is unique.
    """
    from zerog_cli.infra.processes import pid_alive

    prefix = f".{name}."
    for candidate in directory.glob(f".{glob.escape(name)}.*.part"):
        pid_text = candidate.name[len(prefix) :].split(".", 1)[0]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        try:
            found = candidate.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(found.st_mode) or found.st_uid != os.getuid():
            continue
        with contextlib.suppress(OSError):
            candidate.unlink()


_ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)


def _restated(path: Path, error: OSError) -> OSError | None:
    """A full disk or a refused write, restated about ``path`` (else None).

    The user asked for ``path``: messages name it, never the temporary
    ``.NAME.PID.xxxx.part`` or an anonymous file handle.
    """
    if error.errno not in _ENVIRONMENT_ERRNOS:
        return None
    return OSError(error.errno, error.strerror, str(path))


@contextlib.contextmanager
def atomic_path(path: Path, *, mode: int = 0o644, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it into place.

    On any exception the temporary file is removed and ``path`` is untouched, so a
    reader never sees a half-written file. With ``overwrite=False`` the final
    step refuses to replace an existing file (hard link + unlink, atomic).

    The temporary name carries the writer's pid (``.NAME.PID.xxxx.part``): a
    process killed mid-write cannot clean up, so the next write to the same
    path removes the leftovers of writers that no longer exist.
    """
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    _remove_orphans(directory, path.name)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=directory
        )
    except OSError as error:
        restated = _restated(path, error)
        if restated is None:
            raise
        raise restated from error
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        os.close(fd)
        yield tmp
        _fsync_file(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            tmp.unlink()
        _fsync_dir(directory)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        restated = _restated(path, error)
        if restated is None:
            raise
        raise restated from error
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_output(path: Path, *, mode: int = 0o644, overwrite: bool = True) -> Iterator[BinaryIO]:
    """A binary handle whose bytes appear at ``path`` only if the block completes."""
    with atomic_path(path, mode=mode, overwrite=overwrite) as tmp, tmp.open("wb") as handle:
        yield handle


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    with atomic_output(path, mode=mode) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def create_private_file(path: Path) -> None:
    """Create ``path`` as an empty 0600 file if it does not exist (never widen an existing one)."""
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
