"""Keeping freed large blocks for reuse during a transfer.

A transfer allocates and frees several blocks of a third of a megabyte per
segment (the answer's bytes, its text, the decoded data). glibc's malloc serves
a block that large from a fresh memory mapping, or gives the freed top of its
heap back to the kernel, so each block is page-faulted in again: measured, 15 %
of a 64 MiB download's CPU and half of its system time. Raising the two
thresholds keeps such blocks in malloc's arenas for the next segment; memory
stays bounded by what the transfer holds at once.
"""

from __future__ import annotations

import os
import sys
import threading

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 4 << 20
"""Blocks up to this size come from the arenas (a segment's answer is about 350 KB)."""
_TRIM_THRESHOLD = 64 << 20
"""Free memory at the heap's top kept before any is given back."""

_done = threading.Event()


def keep_large_blocks() -> None:
    """Have glibc keep freed blocks of up to 4 MiB for reuse (once per process; a no-op
    where the C library is not glibc)."""
    if _done.is_set():
        return
    _done.set()
    if not sys.platform.startswith("linux"):
        return
    try:
        os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        return
    import ctypes

    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
