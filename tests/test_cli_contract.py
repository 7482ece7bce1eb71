"""The CLI contract: one JSON document, messages on stderr, exit codes, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TEST_PRIVATE_KEY
from zerog_cli.errors import EXIT_CODE_MEANINGS, ExitCode


def test_json_is_exactly_one_document_and_messages_go_to_stderr(zerog) -> None:
    result = zerog("--json", "init")
    assert result.exit_code == 0
    json.loads(result.stdout)
    assert "next:" in result.stderr
    assert "next:" not in result.stdout


def test_json_flag_works_after_the_subcommand_too(zerog) -> None:
    before = zerog("--json", "ledger", "path").json
    after = zerog("ledger", "path", "--json").json
    assert before == after


def test_help_lists_every_exit_code(zerog) -> None:
    result = zerog("--help")
    assert result.exit_code == 0
    for code, meaning in EXIT_CODE_MEANINGS.items():
        assert f"{int(code)}  {meaning}" in result.stdout


def test_usage_errors_are_one_line_exit_2(zerog) -> None:
    result = zerog("ledger", "migrate", "--to", "banana")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_an_internal_error_is_exit_1_without_traceback_unless_verbose(
    zerog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zerog_cli.ledger import admin

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"bug while holding {TEST_PRIVATE_KEY}")

    monkeypatch.setenv("ZEROG_STORAGE_PRIVATE_KEY", TEST_PRIVATE_KEY)
    zerog("auth", "address")
    monkeypatch.setattr(admin, "status", broken)
    quiet = zerog("ledger", "status")
    assert quiet.exit_code == 1
    assert "Traceback" not in quiet.stderr
    assert "internal error: RuntimeError" in quiet.stderr
    loud = zerog("ledger", "status", "--verbose")
    assert loud.exit_code == 1
    assert "Traceback" in loud.stderr
    for text in (quiet.stderr, loud.stderr):
        assert TEST_PRIVATE_KEY[2:] not in text.lower()


def test_exit_code_enum_matches_the_design() -> None:
    assert [int(c) for c in ExitCode] == [*range(11), 130, 141, 143]


def test_no_colour_when_not_a_tty(zerog) -> None:
    result = zerog("config", "show")
    assert "\x1b[" not in result.stdout + result.stderr


def test_version(zerog) -> None:
    from zerog_cli import __version__

    assert zerog("--version").stdout.strip() == f"zerog {__version__}"


def test_the_test_key_never_appears_anywhere(
    zerog, zerog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the key-using and secret-listing commands with a known key and scan every output."""
    monkeypatch.setenv("ZEROG_STORAGE_PRIVATE_KEY", TEST_PRIVATE_KEY)
    monkeypatch.setenv("JWT_SECRET", "jwt-secret-value-777")
    outputs = []
    signature = zerog("auth", "sign", "m").stdout.strip()
    for args in (
        ("init",),
        ("auth", "address", "--json"),
        ("auth", "sign", "m", "--json"),
        ("auth", "verify", "m", signature, "--nonce", "m", "--scope", "s", "--json"),
        ("secrets", "ls", "--json"),
        ("secrets", "ls"),
        ("secrets", "doctor", "--json"),
        ("config", "show", "--json"),
        ("ledger", "status", "--json"),
        ("ledger", "sql", "SELECT * FROM nonces", "--json"),
    ):
        result = zerog(*args)
        outputs.append(result.stdout + result.stderr)
    written = b"".join(p.read_bytes() for p in zerog_home.rglob("*") if p.is_file())
    needles = [TEST_PRIVATE_KEY[2:], TEST_PRIVATE_KEY[2:].upper(), "jwt-secret-value-777"]
    for needle in needles:
        assert all(needle not in text for text in outputs), needle
        assert needle.encode() not in written, needle
