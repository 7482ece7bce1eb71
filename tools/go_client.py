"""The official 0G Go storage client, ``0g-storage-client``, from the pinned compute SDK.

The npm package ``@0gfoundation/0g-compute-ts-sdk`` (pinned by
tests/interop/package-lock.json) ships the Go client's Linux x86-64 build as
``binary/0g-storage-client``. It arrives with `tools/ts_sdk.py`'s ``npm ci``
into the shared cache folder; nothing of it is committed here. What is
committed is the SHA-256 the binary must have: a package that ships another
build (a new lock file, a tampered cache) fails the install loudly instead of
testing the devnet against an unknown client. A new pin of the package means
a new `BINARY_SHA256`, checked by hand once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tools import ts_sdk

BINARY_IN_PACKAGE = "binary/0g-storage-client"
BINARY_SHA256 = "c727ef0acb0e9acfb7e001d15a923cab97f8ecca4f05b8b5fef12743b7e6f370"
"""SHA-256 of ``binary/0g-storage-client`` in ``@0gfoundation/0g-compute-ts-sdk`` 0.9.0
(built from 0g-storage-client commit 31a974739d67, 2026-02-06)."""


class ChecksumMismatch(RuntimeError):
    """The binary in the package is not the build this repository pins."""


def binary_path(node_modules: Path | None = None) -> Path:
    """Where the binary sits in the cache folder (it may be missing)."""
    if node_modules is None:
        node_modules = ts_sdk.node_modules_dir()
    return node_modules / ts_sdk.COMPUTE_SDK_PACKAGE / BINARY_IN_PACKAGE


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_installed() -> bool:
    """Whether the pinned package is in the cache and its binary has the pinned digest."""
    path = binary_path()
    return (
        ts_sdk.is_installed()
        and path.is_file()
        and os.access(path, os.X_OK)
        and sha256_of(path) == BINARY_SHA256
    )


def ensure_installed() -> Path:
    """The checked binary, installing the pinned npm packages when needed.

    Raises `ChecksumMismatch` when the binary's SHA-256 differs from `BINARY_SHA256`.
    """
    path = binary_path(ts_sdk.ensure_installed())
    if not path.is_file():
        raise RuntimeError(f"{ts_sdk.COMPUTE_SDK_PACKAGE} has no {BINARY_IN_PACKAGE} ({path})")
    actual = sha256_of(path)
    if actual != BINARY_SHA256:
        raise ChecksumMismatch(
            f"{path} has SHA-256 {actual}, but tools/go_client.py pins {BINARY_SHA256}:"
            " refusing an unknown build of the official Go client"
        )
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not executable")
    return path
