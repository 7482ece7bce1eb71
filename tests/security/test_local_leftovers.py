"""Item 14: a detached devnet holds no secret, and foreign ``.part`` entries block nothing.

``zerog devnet up --detach`` used to hand its whole environment, storage key
included, to a process that lives until ``devnet down`` (``/proc/PID/environ``
keeps it). And a ``.NAME.PID.x.part`` entry that atomic writes did not make (a
directory, a link, another user's file) made every write to NAME fail with
exit 1; such entries are now left alone, and only our own leftovers swept.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TEST_PRIVATE_KEY, Result
from tests.security.conftest import AttackContext

DEAD_PID = 4_194_305
"""Above the largest pid Linux hands out (``pid_max`` is at most 2**22)."""
NOBODY = 65534


def test_a_detached_devnet_inherits_no_secret(
    cli_process: Callable[..., Result], tmp_path: Path, attack: AttackContext
) -> None:
    secrets = {
        "ZEROG_STORAGE_PRIVATE_KEY": TEST_PRIVATE_KEY,
        "ZEROG_COMPUTE_PRIVATE_KEY": "0x" + "c0" * 32,
        "ZEROG_SIGNING_PRIVATE_KEY": "0x" + "5e" * 32,
        "JWT_SECRET": "jwt-" + os.urandom(8).hex(),
        "DATABASE_PASSWORD": "db-" + os.urandom(8).hex(),
        "ENCRYPTION_KEY": os.urandom(32).hex(),
    }
    data_dir = tmp_path / "devnet"
    started = cli_process(
        "devnet",
        "up",
        "--detach",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--json",
        env=secrets,
    )
    assert started.exit_code == 0, started
    pid = int(started.json["devnet"]["pid"])
    try:
        with attack("local secrets", "read a detached devnet's /proc/PID/environ for keys"):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
            assert not names & set(secrets)
            assert not any(name.startswith("ZEROG_") for name in names)
            joined = b"\0".join(environ)
            for value in secrets.values():
                assert value.encode() not in joined
                assert value.removeprefix("0x").encode() not in joined
            assert "PATH" in names
    finally:
        stopped = cli_process("devnet", "down", "--data-dir", str(data_dir))
    assert stopped.exit_code == 0, stopped


def test_part_entries_we_did_not_create_do_not_block_a_write(
    zerog: Callable[..., Result], tmp_path: Path, attack: AttackContext
) -> None:
    assert zerog("ledger", "migrate").exit_code == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    destination = shared / "ledger-copy.db"
    prefix = f".{destination.name}.{DEAD_PID}"
    foreign_dir = shared / f"{prefix}.dir00001.part"
    foreign_dir.mkdir()
    (foreign_dir / "inside").write_text("someone else's\n")
    target = tmp_path / "elsewhere.txt"
    target.write_text("not ours\n")
    foreign_link = shared / f"{prefix}.link0001.part"
    foreign_link.symlink_to(target)
    foreign_file = shared / f"{prefix}.user0001.part"
    foreign_file.write_text("another user's\n")
    os.chown(foreign_file, NOBODY, NOBODY)
    own_leftover = shared / f"{prefix}.ours0001.part"
    own_leftover.write_text("a crashed run of ours\n")
    with attack(
        "local files", "a directory, a link and another user's file named .NAME.PID.x.part"
    ):
        result = zerog("ledger", "backup", str(destination))
        assert result.exit_code == 0, result
        assert destination.stat().st_size > 0
        assert (foreign_dir / "inside").read_text() == "someone else's\n"
        assert foreign_link.is_symlink() and target.read_text() == "not ours\n"
        assert foreign_file.read_text() == "another user's\n"
        assert not own_leftover.exists()
        left = sorted(path.name for path in shared.iterdir())
        assert left == sorted(
            [destination.name, foreign_dir.name, foreign_link.name, foreign_file.name]
        )
