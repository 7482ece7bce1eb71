"""Install the official 0G TypeScript SDK, pinned, into a cache folder (for benches and interop).

The folder is `$ZEROG_NPM_CACHE` if set, else `~/.cache/zerog-bench/ts-sdk`. It gets
a private package.json with exact versions and an `npm install` (registry through
npm's own configuration, install scripts off); nothing lands in this repository.
Node scripts find the packages through `node_env()`, which sets NODE_PATH.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

TS_SDK_PACKAGE = "@0gfoundation/0g-ts-sdk"
TS_SDK_VERSION = "1.2.8"
ETHERS_VERSION = "6.13.1"
PINNED = {TS_SDK_PACKAGE: TS_SDK_VERSION, "ethers": ETHERS_VERSION}


def sdk_dir() -> Path:
    configured = os.environ.get("ZEROG_NPM_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "zerog-bench" / "ts-sdk"


def installed_version(folder: Path, package: str) -> str | None:
    manifest = folder / "node_modules" / package / "package.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return None


def _is_installed(folder: Path) -> bool:
    return all(installed_version(folder, name) == version for name, version in PINNED.items())


def ensure_ts_sdk(folder: Path | None = None, *, timeout: float = 600) -> Path:
    """The folder holding node_modules with the pinned SDK, installing it on first use.

    Safe to call from several processes at once (a file lock serialises installs).
    Raises RuntimeError when node or npm is missing or the install fails.
    """
    target = folder or sdk_dir()
    if _is_installed(target):
        return target
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed to install the 0G TypeScript SDK")
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_installed(target):
            return target
        manifest = {"name": "zerog-bench-ts-sdk", "private": True, "dependencies": PINNED}
        (target / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--save-exact"],
            cwd=target,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0 or not _is_installed(target):
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise RuntimeError("npm install of the 0G TypeScript SDK failed: " + " | ".join(tail))
    return target


def node_env(folder: Path | None = None) -> dict[str, str]:
    """Environment for `node` so that `require()` finds the pinned SDK."""
    env = dict(os.environ)
    modules = str((folder or sdk_dir()) / "node_modules")
    env["NODE_PATH"] = os.pathsep.join(p for p in (modules, env.get("NODE_PATH")) if p)
    return env
