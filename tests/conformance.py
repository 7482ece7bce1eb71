"""Locate the shared conformance vectors (never copied into this repository).

`$ZEROG_CONFORMANCE_DIR` if set, else `<repo>/../shared/conformance`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def conformance_dir() -> Path:
    configured = os.environ.get("ZEROG_CONFORMANCE_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "conformance"


def conformance_path(name: str) -> Path:
    """Path of conformance file `name` (e.g. "storage-roots.json"); fails clearly if missing."""
    path = conformance_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"conformance file {path} not found: set ZEROG_CONFORMANCE_DIR to the shared "
            "conformance folder"
        )
    return path


def load_vectors(name: str) -> Any:
    """The parsed JSON of conformance file `name`."""
    with conformance_path(name).open(encoding="utf-8") as handle:
        return json.load(handle)
