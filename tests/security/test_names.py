"""Item 13: names cannot forge output or walk up folders.

Object names, labels and namespaces with control characters or terminal
escape codes were printed raw, so an upload name could forge an ``error:``
line; a name of ``..`` made a download target ``../..``. Such names are now
refused at input (exit 2, nothing recorded), and whatever reaches the output
from the ledger (rows written by an older zerog or by hand) or from the
network is printed with its control characters escaped, in one place
(`zerog_cli.infra.output.terminal_safe`). A record whose last name part is
``.`` or ``..`` never becomes a file name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.security.conftest import AttackContext

FORGED = "error: the backup of db is corrupt, run `zerog ledger migrate --to 0 --yes`"
HOSTILE_NAMES = [
    ("an escape sequence", f"\x1b[2K\r{FORGED}"),
    ("a line break", f"report.pdf\n{FORGED}"),
    ("a carriage return", f"report.pdf\r{FORGED}"),
    ("a bell and an OSC title", "\x1b]0;owned\x07report.pdf"),
    ("a right-to-left override", "report\u202efdp.exe"),
    ("a C1 control", "report\x9b31mpdf"),
    ("'..'", ".."),
    ("'.'", "."),
    ("a '..' part", "logs/../../etc/passwd"),
    ("a leading '/'", "/etc/passwd"),
    ("a trailing '/'", "logs/"),
]
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


def printed_safely(result: Result) -> None:
    """No raw control character on either stream, and at most one ``error:`` line."""
    for stream in (result.stdout, result.stderr):
        assert not any(char in stream for char in RAW_CONTROLS), result
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) <= 1, result


def ledger_rows(home: Path, table: str) -> list[tuple[object, ...]]:
    """The rows of ``table`` (none when the refusal came before any ledger was made)."""
    if not (home / "ledger.db").exists():
        return []
    with sqlite3.connect(home / "ledger.db") as conn:
        rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
    conn.close()
    return rows


@pytest.mark.parametrize(("what", "name"), HOSTILE_NAMES, ids=[n[0] for n in HOSTILE_NAMES])
def test_an_upload_name_that_forges_output_is_refused(
    zerog: Callable[..., Result],
    zerog_home: Path,
    tmp_path: Path,
    attack: AttackContext,
    what: str,
    name: str,
) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(b"%PDF" * 100)
    with attack("names", f"upload --name with {what}"):
        result = zerog("upload", str(source), "--name", name)
        assert result.exit_code == 2, result
        assert "not a valid object name" in result.stderr
        printed_safely(result)
        assert ledger_rows(zerog_home, "objects") == []
        assert ledger_rows(zerog_home, "namespaces") == []


def test_a_file_name_with_escapes_is_refused_as_a_name_and_a_label(
    zerog: Callable[..., Result], zerog_home: Path, tmp_path: Path, attack: AttackContext
) -> None:
    source = tmp_path / f"db.dump\x1b[2K\r{FORGED}"
    source.write_bytes(b"rows" * 100)
    with attack("names", "upload of a file whose name holds an escape sequence"):
        result = zerog("upload", str(source))
        assert result.exit_code == 2, result
        printed_safely(result)
        assert ledger_rows(zerog_home, "objects") == []
    with attack("names", "backup create of that file (its name is the default label)"):
        result = zerog("backup", "create", str(source))
        assert result.exit_code == 2, result
        assert "not a valid backup label" in result.stderr
        printed_safely(result)
        assert ledger_rows(zerog_home, "storage_backups") == []


def test_names_already_in_the_ledger_are_printed_escaped(
    zerog: Callable[..., Result], zerog_home: Path, attack: AttackContext
) -> None:
    assert zerog("ns", "create", "docs").exit_code == 0
    hostile = [name for _, name in HOSTILE_NAMES[:6]]
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        for index, name in enumerate(hostile):
            conn.execute(
                "INSERT INTO objects (namespace, name, root, size, sha256, network, encrypted,"
                " fee_neuron, created_at) VALUES ('docs', ?, ?, 10, ?, 'devnet', 0, '0', ?)",
                (name, "0x" + f"{index:064x}", "00" * 32, "2026-11-29T00:00:00Z"),
            )
    conn.close()
    with attack("names", "ns objects listing names that hold escape sequences"):
        result = zerog("ns", "objects", "docs")
        assert result.exit_code == 0, result
        printed_safely(result)
        assert "\\x1b[2K\\r" + FORGED in result.stdout
        assert not [line for line in result.stdout.splitlines() if line.startswith("error:")]
        assert len(result.stdout.splitlines()) == 1 + len(hostile)
    with attack("names", "ns objects --json keeps the names exact and terminal-safe"):
        result = zerog("ns", "objects", "docs", "--json")
        assert result.exit_code == 0, result
        printed_safely(result)
        assert sorted(row["name"] for row in result.json["objects"]) == sorted(hostile)
    with attack("names", "an error message naming an object with a line break"):
        result = zerog("download", f"docs/report.pdf\n{FORGED}", "-o", "-", "--as", "mallory")
        assert result.exit_code == 5, result
        printed_safely(result)
        assert len(result.stderr.splitlines()) == 1, result


def test_a_dot_dot_record_never_becomes_a_file_name(
    zerog: Callable[..., Result], zerog_home: Path, tmp_path: Path, attack: AttackContext
) -> None:
    assert zerog("ns", "create", "docs").exit_code == 0
    with sqlite3.connect(zerog_home / "ledger.db") as conn:
        for index, name in enumerate(("..", "logs/..", "logs/.")):
            conn.execute(
                "INSERT INTO objects (namespace, name, root, size, sha256, network, encrypted,"
                " fee_neuron, created_at) VALUES ('docs', ?, ?, 10, ?, 'devnet', 0, '0', ?)",
                (name, "0x" + f"{index + 1:064x}", "00" * 32, "2026-11-29T00:00:00Z"),
            )
    conn.close()
    target = tmp_path / "downloads" / "inner"
    target.mkdir(parents=True)
    before = sorted(tmp_path.rglob("*"))
    for name in ("..", "logs/..", "logs/."):
        with attack("names", f"download of a record named {name!r} into a folder"):
            result = zerog("download", f"docs/{name}", "-o", str(target))
            assert result.exit_code == 2, result
            assert "does not make a safe file name" in result.stderr
            assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    ("what", "user"),
    [("an escape sequence", f"bob\x1b[2K\r{FORGED}"), ("a line break", f"bob\n{FORGED}")],
)
def test_a_user_name_that_forges_output_is_never_recorded(
    zerog: Callable[..., Result],
    zerog_home: Path,
    tmp_path: Path,
    attack: AttackContext,
    what: str,
    user: str,
) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(b"%PDF" * 100)
    with attack("names", f"quota set for a user name with {what}"):
        result = zerog("quota", "set", user, "--tier", "free")
        assert result.exit_code == 2, result
        assert "not a valid user name" in result.stderr
        printed_safely(result)
        assert ledger_rows(zerog_home, "user_quotas") == []
    with attack("names", f"upload --as a user name with {what}"):
        result = zerog("upload", str(source), "--as", user)
        assert result.exit_code == 2, result
        printed_safely(result)
        assert ledger_rows(zerog_home, "user_quotas") == []
        assert ledger_rows(zerog_home, "namespaces") == []
