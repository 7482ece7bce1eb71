"""Item 2: a step down of the ledger schema needs --yes and writes a backup first.

`zerog ledger migrate --to 0` used to drop every cost row, nonce, the payment
journal and the inference log without asking; afterwards a signature whose
nonce had been refused as a replay was accepted again. Now any step down
without ``--yes`` exits 2 with one ``error:`` line saying "pass --yes" (cron
has no terminal to answer a prompt, and piping "y" does not count), changes
nothing and writes no file; with ``--yes`` it first writes a `ledger backup`
into ``ledger-backups/`` and names it, and that copy still refuses the replay.
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.security.conftest import AttackContext

MESSAGE = "rotate the deploy key\nNonce: 7"
ROWS = {
    "cost_tracking": (
        "INSERT INTO cost_tracking (created_at, period, user, namespace, service, operation,"
        " quantity, unit, usd_micro, neuron, reference, network) VALUES"
        " ('2026-11-29T00:00:00Z', '2026-11', 'alice', 'docs', 'storage', 'upload', 3000,"
        " 'byte', 1200, '5000', '0xabc', 'devnet')"
    ),
    "pending_payments": (
        "INSERT INTO pending_payments (intent, tx_hash, operation, user, root, size,"
        " fee_neuron, usd_micro, network, created_at) VALUES ('i1', '0xdef', 'upload',"
        " 'alice', '0x' || hex(zeroblob(32)), 3000, '5000', 1200, 'devnet',"
        " '2026-11-29T00:00:00Z')"
    ),
    "inference_log": (
        "INSERT INTO inference_log (created_at, user, network, wallet, provider, model, prompt,"
        " duration_ms, status, stream, max_tokens) VALUES ('2026-11-29T00:00:00Z', 'alice',"
        " 'devnet', '0x1', '0x2', 'm', 'hello', 12, 'ok', 0, 16)"
    ),
}


def table_rows(ledger: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            name: conn.execute(f'SELECT * FROM "{name}"').fetchall()
            for name in sorted(names)
            if name != "breaker_state"
        }
    finally:
        conn.close()


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if not p.name.endswith(("-wal", "-shm"))}


@pytest.fixture
def busy_ledger(zerog: Callable[..., Result], test_key_env: str, zerog_home: Path) -> str:
    """A ledger holding a used nonce, a cost row, a payment journal entry and an inference
    row; returns the signature whose nonce is spent."""
    signature = zerog("auth", "sign", MESSAGE).stdout.strip()
    first = zerog("auth", "verify", MESSAGE, signature, "--scope", "deploy")
    assert first.exit_code == 0, first
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        for statement in ROWS.values():
            conn.execute(statement)
    conn.close()
    return signature


@pytest.mark.parametrize(
    ("how", "target", "stdin"),
    [
        ("to 0 from cron", "0", b""),
        ("to 0 with 'y' piped in", "0", b"y\n"),
        ("one step down", "4", b""),
    ],
)
def test_a_step_down_without_yes_changes_nothing(
    cli_process: Callable[..., Result],
    busy_ledger: str,
    zerog_home: Path,
    tmp_path: Path,
    attack: AttackContext,
    how: str,
    target: str,
    stdin: bytes,
) -> None:
    before = table_rows(zerog_home / "ledger.db")
    files_before = files_under(tmp_path)
    with attack("destructive ledger", f"ledger migrate {how} without --yes"):
        result = cli_process("ledger", "migrate", "--to", target, stdin=stdin)
        assert result.exit_code == 2, result
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "pass --yes" in errors[0], result
        assert table_rows(zerog_home / "ledger.db") == before
        assert files_under(tmp_path) == files_before
        replay = cli_process("auth", "verify", MESSAGE, busy_ledger, "--scope", "deploy")
        assert replay.exit_code == 5 and "replay refused" in replay.stderr, replay


def test_a_step_down_with_yes_writes_a_backup_first(
    cli_process: Callable[..., Result],
    busy_ledger: str,
    zerog_home: Path,
    attack: AttackContext,
) -> None:
    before = table_rows(zerog_home / "ledger.db")
    assert all(before[table] for table in (*ROWS, "nonces"))
    with attack("destructive ledger", "ledger migrate --to 0 --yes loses nothing unsaved"):
        result = cli_process("ledger", "migrate", "--to", "0", "--yes", "--json", stdin=b"")
        assert result.exit_code == 0, result
        saved = Path(result.json["backup"])
        assert saved.parent == zerog_home / "ledger-backups"
        assert f"ledger backed up to {saved}" in result.stderr
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
        assert table_rows(saved) == before
    # The backup is a working ledger: put it back, and the spent nonce is still spent.
    assert cli_process("ledger", "migrate").exit_code == 0
    text = cli_process("ledger", "migrate", "--to", "4", "--yes", stdin=b"")
    assert text.exit_code == 0 and text.stdout.startswith("backup: "), text
    assert len(list(saved.parent.iterdir())) == 2
    for suffix in ("", "-wal", "-shm"):
        (zerog_home / f"ledger.db{suffix}").unlink(missing_ok=True)
    (zerog_home / "ledger.db").write_bytes(saved.read_bytes())
    replay = cli_process("auth", "verify", MESSAGE, busy_ledger, "--scope", "deploy")
    assert replay.exit_code == 5 and "replay refused" in replay.stderr, replay


def test_ns_rm_force_writes_a_backup_before_it_drops_object_records(
    zerog: Callable[..., Result], zerog_home: Path, attack: AttackContext
) -> None:
    assert zerog("ns", "create", "scratch").exit_code == 0
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        conn.execute(
            "INSERT INTO objects (namespace, name, root, size, sha256, network, encrypted,"
            " created_at) VALUES ('scratch', 'a.bin', '0x' || hex(zeroblob(32)), 3, 'ab',"
            " 'devnet', 0, '2026-11-29T00:00:00Z')"
        )
    conn.close()
    before = table_rows(zerog_home / "ledger.db")
    with attack("destructive ledger", "ns rm --force keeps a backup of the records it drops"):
        result = zerog("ns", "rm", "scratch", "--force", "--json")
        assert result.exit_code == 0, result
        saved = Path(result.json["backup"])
        assert saved.parent == zerog_home / "ledger-backups"
        assert f"ledger backed up to {saved}" in result.stderr
        assert table_rows(saved) == before
        assert table_rows(zerog_home / "ledger.db")["objects"] == []
    empty = zerog("ns", "create", "empty")
    assert empty.exit_code == 0
    nothing_to_keep = zerog("ns", "rm", "empty", "--json")
    assert nothing_to_keep.exit_code == 0 and nothing_to_keep.json["backup"] is None
