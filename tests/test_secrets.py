"""Secrets: the provider chain, the 0600 store, and never showing a value."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.conftest import TEST_PRIVATE_KEY
from zerog_cli.infra.secrets import SecretStore


def test_chain_order_env_then_file_then_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    secret_file = tmp_path / "jwt"
    secret_file.write_text("from-file\n")
    store = SecretStore(home, environ={}, use_keyring=False)
    store.set("JWT_SECRET", "from-store", store="file")
    assert store.lookup("JWT_SECRET").source.startswith("store:")
    store = SecretStore(home, environ={"JWT_SECRET_FILE": str(secret_file)}, use_keyring=False)
    found = store.lookup("JWT_SECRET")
    assert (found.value, found.source) == ("from-file", f"file:{secret_file}")
    store = SecretStore(
        home,
        environ={"JWT_SECRET": "from-env", "JWT_SECRET_FILE": str(secret_file)},
        use_keyring=False,
    )
    assert store.lookup("JWT_SECRET").value == "from-env"


def test_cache_honours_ttl(tmp_path: Path) -> None:
    environ = {"JWT_SECRET": "one"}
    store = SecretStore(tmp_path, environ=environ, use_keyring=False, ttl_seconds=3600)
    assert store.get("JWT_SECRET") == "one"
    environ["JWT_SECRET"] = "two"
    assert store.get("JWT_SECRET") == "one"
    fresh = SecretStore(tmp_path, environ=environ, use_keyring=False, ttl_seconds=0)
    assert fresh.get("JWT_SECRET") == "two"


def test_set_from_stdin_writes_a_0600_file_when_no_keyring(zerog, zerog_home: Path) -> None:
    result = zerog("secrets", "set", "JWT_SECRET", "--stdin", "--json", stdin="s3cr3t-value\n")
    assert result.exit_code == 0, result
    path = zerog_home / "secrets" / "JWT_SECRET"
    assert path.read_text() == "s3cr3t-value"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "s3cr3t-value" not in result.stdout + result.stderr
    assert "no usable keyring backend" in result.stderr


def test_set_without_a_terminal_never_prompts(zerog) -> None:
    result = zerog("secrets", "set", "JWT_SECRET", stdin="")
    assert result.exit_code == 2
    assert "--stdin" in result.stderr


def test_ls_shows_names_and_sources_never_values(zerog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "jwt-value-123")
    monkeypatch.setenv("ZEROG_STORAGE_PRIVATE_KEY", TEST_PRIVATE_KEY)
    result = zerog("secrets", "ls", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in result.json["secrets"]}
    assert rows["JWT_SECRET"]["present"] is True
    assert rows["JWT_SECRET"]["source"] == "env"
    assert rows["CIRCLE_API_KEY"]["present"] is False
    human = zerog("secrets", "ls")
    for output in (result.stdout, human.stdout, human.stderr):
        assert "jwt-value-123" not in output
        assert TEST_PRIVATE_KEY[2:] not in output


def test_rm_removes_from_the_store(zerog, zerog_home: Path) -> None:
    zerog("secrets", "set", "JWT_SECRET", "--stdin", stdin="x-value-1")
    result = zerog("secrets", "rm", "JWT_SECRET", "--json")
    assert result.exit_code == 0
    assert not (zerog_home / "secrets" / "JWT_SECRET").exists()


def test_doctor_flags_bad_keys_and_open_files(
    zerog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("not-a-key-at-all\n")
    key_file.chmod(0o644)
    monkeypatch.setenv("ZEROG_STORAGE_PRIVATE_KEY_FILE", str(key_file))
    result = zerog("secrets", "doctor", "--json")
    assert result.exit_code == 8
    report = result.json
    assert report["ok"] is False
    assert any("not a valid private key" in p for p in report["problems"])
    assert any("readable by group or others" in p for p in report["problems"])
    assert "not-a-key-at-all" not in result.stdout + result.stderr
    key_file.write_text(TEST_PRIVATE_KEY + "\n")
    key_file.chmod(0o600)
    assert zerog("secrets", "doctor").exit_code == 0


def test_malformed_private_key_names_the_secret_not_the_value(
    zerog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZEROG_STORAGE_PRIVATE_KEY", "0xdeadbeefcafe")
    result = zerog("auth", "address")
    assert result.exit_code == 8
    assert "ZEROG_STORAGE_PRIVATE_KEY is not a valid private key" in result.stderr
    assert "deadbeefcafe" not in result.stderr


def test_missing_key_on_a_real_network_says_how_to_set_it(zerog) -> None:
    result = zerog("--profile", "testnet", "auth", "address")
    assert result.exit_code == 8
    assert "zerog secrets set ZEROG_STORAGE_PRIVATE_KEY" in result.stderr


def test_devnet_falls_back_to_the_published_dev_key(zerog) -> None:
    result = zerog("auth", "address", "--json")
    assert result.exit_code == 0
    assert result.json["address"] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert result.json["source"] == "devnet dev key"
