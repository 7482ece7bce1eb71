"""The official 0G TypeScript SDKs, pinned by tests/interop/package-lock.json.

Two packages: the storage SDK (``@0gfoundation/0g-ts-sdk``) and the compute SDK
(``@0gfoundation/0g-compute-ts-sdk``), with the ethers both take; and anvil
(``@foundry-rs/anvil``: its binary is in the platform package
``@foundry-rs/anvil-linux-amd64``, an optional dependency that ``npm ci``
installs on Linux x86-64 without running any install script), which runs the
official contracts' bytecode from the two SDK packages. One installer
for everything that drives them (interop tests, benchmarks): `npm ci` of the
committed lock file into a cache folder, `$ZEROG_NPM_CACHE` or
`<repo>/.cache/npm-interop`, once per lock file. Each lock file gets its own
subfolder named by its digest, so worktrees on different lock files share the
cache without reinstalling over each other; a file lock serialises parallel
installs. Nothing is installed into the repository itself.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INTEROP = REPO / "tests" / "interop"
SDK_PACKAGE = "@0gfoundation/0g-ts-sdk"
COMPUTE_SDK_PACKAGE = "@0gfoundation/0g-compute-ts-sdk"
ANVIL_PACKAGE = "@foundry-rs/anvil"
ANVIL_BINARY_PACKAGE = "@foundry-rs/anvil-linux-amd64"
PACKAGES = (SDK_PACKAGE, COMPUTE_SDK_PACKAGE, "ethers", ANVIL_PACKAGE, ANVIL_BINARY_PACKAGE)
STAMP = ".installed-lock-sha256"


def cache_dir() -> Path:
    configured = os.environ.get("ZEROG_NPM_CACHE")
    return Path(configured).expanduser() if configured else REPO / ".cache" / "npm-interop"


def _lock_digest() -> str:
    return hashlib.sha256((INTEROP / "package-lock.json").read_bytes()).hexdigest()


def _installed(folder: Path, digest: str) -> bool:
    stamp = folder / STAMP
    return (
        stamp.is_file()
        and stamp.read_text(encoding="utf-8").strip() == digest
        and all((folder / "node_modules" / name / "package.json").is_file() for name in PACKAGES)
    )


def _install_dir(digest: str) -> Path:
    return cache_dir() / digest[:16]


def node_modules_dir() -> Path:
    """The ``node_modules`` folder the current lock file installs into (it may not exist yet)."""
    return _install_dir(_lock_digest()) / "node_modules"


def is_installed() -> bool:
    """Whether the pinned SDKs are in the cache folder (no lock, no install)."""
    digest = _lock_digest()
    return _installed(_install_dir(digest), digest)


def ensure_installed(*, timeout: float = 900) -> Path:
    """The ``node_modules`` folder holding the pinned SDKs, installing them when needed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are needed to run the official 0G TypeScript SDKs")
    digest = _lock_digest()
    folder = _install_dir(digest)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".install.lock").open("w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if not _installed(folder, digest):
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(INTEROP / name, folder / name)
            completed = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if completed.returncode != 0:
                tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
                raise RuntimeError("npm ci of the 0G TypeScript SDKs failed: " + " | ".join(tail))
            (folder / STAMP).write_text(digest + "\n", encoding="utf-8")
    return folder / "node_modules"


def node_env(node_modules: Path) -> dict[str, str]:
    """Environment for ``node`` so that ``require()`` finds the pinned SDKs."""
    return {
        **os.environ,
        "NODE_PATH": str(node_modules),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
