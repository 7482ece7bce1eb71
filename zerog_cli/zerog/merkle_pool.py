"""Segment hashing in worker processes, for inputs large enough to pay for them.

Design: the caller's process reads the input straight into a ring of blocks in
one shared memory file (memfd), computes the SHA-256 there, and sends each full
block's (offset, length) as 12 bytes down a worker's stdin; the worker hashes the
segments in place and answers with 32 bytes per segment root. No file data is
copied between processes and memory stays at `ring slots x block size`.

Workers are plain `subprocess` children (no fork of a threaded process, no
re-import of `__main__`), so this works from any thread. They run in their own
session, so a terminal's Ctrl-C reaches only the caller, which kills and reaps
them; if the caller dies, their stdin closes and they exit. The coordinator is
single-threaded: it waits on the workers' stdout pipes with a selector.

Workers run `segment_hash.worker_main` and import nothing else of zerog, so
they start in the time of a bare interpreter plus tiny-keccak; the modules only
this coordinator needs (subprocess, selectors, tempfile) are imported inside the
functions that use them.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import threading
from collections import deque
from pathlib import Path
from typing import IO, TYPE_CHECKING

from zerog_cli.errors import UsageError, ZerogError
from zerog_cli.zerog.segment_hash import JOB, READY, ROOT_SIZE, SEGMENT_SIZE

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from types import TracebackType
    from typing import Self

    from zerog_cli.zerog.merkle import TreeBuilder

_DEPTH = 2
"""Jobs queued per worker: one being hashed and the next one ready."""
_START_TIMEOUT = 60.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from zerog_cli.zerog.segment_hash import worker_main; worker_main(sys.argv[2:])"
)


class PoolUnavailable(Exception):
    """Worker processes could not be started; the caller hashes in-process instead."""


def _shared_file(size: int) -> int:
    """A file descriptor of `size` bytes of shared memory that vanishes with its last user."""
    import tempfile

    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("zerog-merkle", os.MFD_CLOEXEC)
    else:
        with tempfile.TemporaryFile() as handle:
            fd = os.dup(handle.fileno())
    os.ftruncate(fd, size)
    return fd


class _WorkerPool:
    """What both pools share: worker processes over one shared memory file, started on
    entry (`_start`) and stopped on exit, killed when the block raised (`_stop`)."""

    _memory: mmap.mmap | None

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._close(abort=True)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._close(abort=kind is not None)

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self, *, abort: bool) -> None:
        raise NotImplementedError

    def _close(self, *, abort: bool) -> None:
        self._stop(abort=abort)
        if self._memory is not None:
            with contextlib.suppress(BufferError):
                self._memory.close()
            self._memory = None


def _start_workers(count: int, size: int) -> tuple[mmap.mmap, list[subprocess.Popen[bytes]]]:
    """``count`` workers sharing ``size`` bytes of memory, each ready; PoolUnavailable, and
    none left running, when they cannot start."""
    if not sys.executable:
        raise PoolUnavailable("no Python executable to start workers with")
    try:
        fd = _shared_file(size)
    except OSError as error:
        raise PoolUnavailable(f"no shared memory: {error}") from error
    memory: mmap.mmap | None = None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        try:
            memory = mmap.mmap(fd, size)
            for _ in range(count):
                procs.append(_spawn_worker(fd, size))
        except (OSError, ValueError) as error:
            raise PoolUnavailable(f"cannot start worker processes: {error}") from error
        finally:
            os.close(fd)
        _await_ready(procs)
    except BaseException:
        _stop_workers(procs, abort=True)
        if memory is not None:
            memory.close()
        raise
    return memory, procs


class SegmentPool(_WorkerPool):
    """Hash blocks of full segments in `workers` processes; roots come back in order.

    Use as a context manager: `buffer()` gives the next free block to fill,
    `submit(length)` sends its first `length` bytes (whole segments) to a worker,
    `results()` waits for everything and returns all roots in submission order.
    Leaving the block with an exception kills the workers.
    """

    def __init__(self, workers: int, block_size: int) -> None:
        import selectors

        if workers < 1 or block_size < SEGMENT_SIZE or block_size % SEGMENT_SIZE:
            raise UsageError("a segment pool needs workers and a block of whole segments")
        self._block_size = block_size
        self._workers = workers
        slots = workers * _DEPTH + 1
        self._free: deque[int] = deque(range(slots))
        self._filling: int | None = None
        self._memory = None
        self._size = slots * block_size
        self._procs: list[subprocess.Popen[bytes]] = []
        self._jobs: list[deque[tuple[int, int, int]]] = []
        self._received: list[bytearray] = []
        self._roots: list[list[bytes] | None] = []
        self._selector = selectors.DefaultSelector()

    def _start(self) -> None:
        import selectors

        self._memory, self._procs = _start_workers(self._workers, self._size)
        for index, proc in enumerate(self._procs):
            self._selector.register(_stdout(proc), selectors.EVENT_READ, index)
            self._jobs.append(deque())
            self._received.append(bytearray())

    def buffer(self) -> memoryview:
        """The next block to fill (waits for a free one); pass its filled length to `submit`."""
        if self._memory is None:
            raise UsageError("the segment pool is not started")
        if self._filling is None:
            while not self._free:
                self._collect()
            self._filling = self._free.popleft()
        start = self._filling * self._block_size
        return memoryview(self._memory)[start : start + self._block_size]

    def submit(self, length: int) -> None:
        """Hash the first `length` bytes (whole segments) of the block from `buffer()`."""
        slot = self._filling
        if slot is None or length % SEGMENT_SIZE or not 0 < length <= self._block_size:
            raise UsageError("submit() needs a filled buffer() of whole segments")
        worker = min(range(self._workers), key=lambda i: len(self._jobs[i]))
        while len(self._jobs[worker]) >= _DEPTH:
            self._collect()
            worker = min(range(self._workers), key=lambda i: len(self._jobs[i]))
        try:
            _write_all(_stdin(self._procs[worker]), JOB.pack(slot * self._block_size, length))
        except BrokenPipeError:
            code = self._procs[worker].poll()
            raise ZerogError(f"a Merkle worker process exited unexpectedly (code {code})") from None
        self._jobs[worker].append((len(self._roots), slot, length // SEGMENT_SIZE))
        self._roots.append(None)
        self._filling = None

    def results(self) -> list[bytes]:
        """Wait for every submitted block; all segment roots in submission order."""
        while any(self._jobs):
            self._collect()
        roots: list[bytes] = []
        for block in self._roots:
            if block is None:
                raise ZerogError("a Merkle worker lost a block")
            roots.extend(block)
        return roots

    def _collect(self) -> None:
        """Wait for at least one worker answer and file every finished block."""
        for key, _ in self._selector.select():
            worker = key.data
            data = os.read(key.fd, 1 << 16)
            if not data:
                code = self._procs[worker].poll()
                raise ZerogError(f"a Merkle worker process exited unexpectedly (code {code})")
            received = self._received[worker]
            received += data
            jobs = self._jobs[worker]
            while jobs and len(received) >= jobs[0][2] * ROOT_SIZE:
                sequence, slot, count = jobs.popleft()
                size = count * ROOT_SIZE
                self._roots[sequence] = [
                    bytes(received[i : i + ROOT_SIZE]) for i in range(0, size, ROOT_SIZE)
                ]
                del received[:size]
                self._free.append(slot)
            if not jobs and received:
                raise ZerogError("a Merkle worker sent more data than asked")

    def _stop(self, *, abort: bool) -> None:
        _stop_workers(self._procs, abort=abort)
        self._procs = []
        self._selector.close()


def _spawn_worker(fd: int, size: int) -> subprocess.Popen[bytes]:
    """A worker process hashing in the `size` bytes of shared memory behind `fd`."""
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-P", "-c", _BOOT, _PACKAGE_ROOT, str(fd), str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
        pass_fds=(fd,),
        start_new_session=True,
    )


def _stop_workers(procs: list[subprocess.Popen[bytes]], *, abort: bool) -> None:
    """Close the workers' stdin (they exit at its end), or kill them; reap them."""
    import subprocess

    for proc in procs:
        if abort:
            proc.kill()
        with contextlib.suppress(OSError):
            _stdin(proc).close()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _stdout(proc).close()


def _stdin(proc: subprocess.Popen[bytes]) -> IO[bytes]:
    if proc.stdin is None:
        raise ZerogError("worker process has no stdin")
    return proc.stdin


def _stdout(proc: subprocess.Popen[bytes]) -> IO[bytes]:
    if proc.stdout is None:
        raise ZerogError("worker process has no stdout")
    return proc.stdout


def _write_all(handle: IO[bytes], data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = handle.write(view)
        view = view[written or 0 :]


class _Answer:
    """One segment root a worker owes a waiting thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.root: bytes | None = None


class _RootWorker:
    """A worker process, the jobs it was sent (in order) and the thread reading its answers."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lock = threading.Lock()
        self.owed: deque[_Answer] = deque()
        self.reader = threading.Thread(target=self._read, name="zerog-merkle-reader", daemon=True)

    def send(self, offset: int, answer: _Answer) -> None:
        with self.lock:
            self.owed.append(answer)
            try:
                _write_all(_stdin(self.proc), JOB.pack(offset, SEGMENT_SIZE))
            except (BrokenPipeError, ValueError):
                self.owed.remove(answer)
                raise ZerogError(
                    f"a Merkle worker process exited unexpectedly (code {self.proc.poll()})"
                ) from None

    def _read(self) -> None:
        """File each 32-byte answer with the oldest job; at the end, release every waiter."""
        stdout = _stdout(self.proc)
        pending = bytearray()
        try:
            while True:
                data = stdout.read(ROOT_SIZE - len(pending))
                if not data:
                    break
                pending += data
                if len(pending) < ROOT_SIZE:
                    continue
                with self.lock:
                    answer = self.owed.popleft() if self.owed else None
                if answer is None:
                    break
                answer.root = bytes(pending)
                pending.clear()
                answer.done.set()
        except (OSError, ValueError):
            pass
        with self.lock:
            left, self.owed = list(self.owed), deque()
        for answer in left:
            answer.done.set()


class RootPool(_WorkerPool):
    """Roots of single full segments hashed in worker processes, for many threads at once.

    The download engine's fetching threads call `segment_root(data)`: the segment
    is copied into a free slot of the shared ring, a worker hashes it in place, and
    the calling thread sleeps (without the GIL) until a reader thread hands it the
    answer. A worker answers its jobs in the order they were sent, so each waiter is
    matched to its root by position. Use as a context manager.
    """

    def __init__(self, workers: int, slots: int) -> None:
        if workers < 1 or slots < 1:
            raise UsageError("a root pool needs at least one worker and one slot")
        self._count = workers
        self._size = slots * SEGMENT_SIZE
        self._free: deque[int] = deque(range(slots))
        self._slots = threading.Semaphore(slots)
        self._lock = threading.Lock()
        self._memory = None
        self._workers: list[_RootWorker] = []
        self._turn = 0

    def _start(self) -> None:
        self._memory, procs = _start_workers(self._count, self._size)
        self._workers = [_RootWorker(proc) for proc in procs]
        for worker in self._workers:
            worker.reader.start()

    def segment_root(self, data: bytes | bytearray | memoryview) -> bytes:
        """The root of one full segment (`SEGMENT_SIZE` bytes); thread-safe."""
        if len(data) != SEGMENT_SIZE:
            raise UsageError(f"a root pool hashes whole segments, not {len(data)} bytes")
        memory = self._memory
        if memory is None:
            raise UsageError("the root pool is not started")
        self._slots.acquire()
        try:
            with self._lock:
                slot = self._free.popleft()
                worker = self._workers[self._turn % len(self._workers)]
                self._turn += 1
            offset = slot * SEGMENT_SIZE
            memory[offset : offset + SEGMENT_SIZE] = data
            answer = _Answer()
            worker.send(offset, answer)
            answer.done.wait()
            with self._lock:
                self._free.append(slot)
        finally:
            self._slots.release()
        if answer.root is None:
            code = worker.proc.poll()
            raise ZerogError(f"a Merkle worker process exited unexpectedly (code {code})")
        return answer.root

    def _stop(self, *, abort: bool) -> None:
        _stop_workers([worker.proc for worker in self._workers], abort=abort)
        for worker in self._workers:
            if worker.reader.is_alive():
                worker.reader.join(timeout=10)
        self._workers = []


def _await_ready(procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait until every worker said it is ready; PoolUnavailable if one fails or is late."""
    import selectors

    with selectors.DefaultSelector() as selector:
        for index, proc in enumerate(procs):
            selector.register(_stdout(proc), selectors.EVENT_READ, index)
        waiting = set(range(len(procs)))
        while waiting:
            events = selector.select(_START_TIMEOUT)
            if not events:
                raise PoolUnavailable("worker processes did not start in time")
            for key, _ in events:
                if os.read(key.fd, 1) != READY:
                    raise PoolUnavailable("a worker process failed to start")
                waiting.discard(key.data)
                selector.unregister(key.fileobj)


def hash_rest_pooled(
    readinto: Callable[[memoryview], int],
    builder: TreeBuilder,
    workers: int,
    block_size: int,
) -> None:
    """Feed everything `readinto` still yields to `builder`, hashing full blocks in workers.

    `builder` must be on a segment boundary. Raises PoolUnavailable before reading
    anything if the workers cannot start.
    """
    with SegmentPool(workers, block_size) as pool:
        while True:
            buffer = pool.buffer()
            filled = readinto(buffer)
            whole = filled - filled % SEGMENT_SIZE
            if whole:
                builder._account(buffer[:whole])
                pool.submit(whole)
            if filled < block_size:
                tail = bytes(buffer[whole:filled])
                break
        buffer.release()
        builder._extend_roots(pool.results())
    if tail:
        builder.update(tail)
