"""Configuration: profiles, precedence, the config file and its mode."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from zerog_cli.infra.config import config_path, load_settings


def test_profiles_carry_the_spec_chain_ids_and_contracts(zerog) -> None:
    testnet = zerog("--profile", "testnet", "config", "show", "--json").json
    mainnet = zerog("--profile", "mainnet", "config", "show", "--json").json
    devnet = zerog("config", "show", "--json").json
    assert testnet["settings"]["chain_id"]["value"] == 16602
    assert mainnet["settings"]["chain_id"]["value"] == 16661
    assert testnet["settings"]["inference_serving_address"]["value"] == (
        "0xa79F4c8311FF93C06b8CfB403690cc987c93F91E"
    )
    assert mainnet["settings"]["rpc_url"]["value"] == "https://evmrpc.0g.ai"
    assert devnet["profile"] == "devnet"
    assert devnet["settings"]["rpc_url"] == {"value": None, "source": "no devnet running"}


def test_precedence_flag_over_env_over_file_over_profile(
    zerog, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        zerog("config", "set", "rpc_url", "http://127.0.0.1:1111", "--profile", "testnet").exit_code
        == 0
    )
    settings = load_settings({"profile": "testnet"})
    assert (settings.rpc_url, settings.sources["rpc_url"]) == ("http://127.0.0.1:1111", "file")
    monkeypatch.setenv("ZEROG_RPC_URL", "http://127.0.0.1:2222")
    settings = load_settings({"profile": "testnet"})
    assert (settings.rpc_url, settings.sources["rpc_url"]) == ("http://127.0.0.1:2222", "env")
    settings = load_settings({"profile": "testnet", "rpc_url": "http://127.0.0.1:3333"})
    assert (settings.rpc_url, settings.sources["rpc_url"]) == ("http://127.0.0.1:3333", "flag")
    monkeypatch.delenv("ZEROG_RPC_URL")
    settings = load_settings({"profile": "mainnet"})
    assert (settings.rpc_url, settings.sources["rpc_url"]) == ("https://evmrpc.0g.ai", "profile")


def test_profile_table_beats_top_level(zerog) -> None:
    zerog("config", "set", "replicas", "2")
    zerog("config", "set", "replicas", "3", "--profile", "mainnet")
    assert load_settings({"profile": "mainnet"}).replicas == 3
    assert load_settings({"profile": "testnet"}).replicas == 2


def test_config_set_validates_and_keeps_the_file_private(zerog) -> None:
    result = zerog("config", "set", "max_upload_size", "50MB", "--json")
    assert result.exit_code == 0, result
    assert result.json["value"] == 50_000_000
    mode = stat.S_IMODE(config_path().stat().st_mode)
    assert mode == 0o600
    assert 'max_upload_size = "50MB"' in config_path().read_text()
    assert load_settings().max_upload_size == 50_000_000


def test_money_settings_round_trip_through_the_file(zerog) -> None:
    assert zerog("config", "set", "storage_usd_per_gb", "5").exit_code == 0
    assert load_settings().storage_usd_per_gb == 5_000_000


def test_unknown_key_is_a_usage_error(zerog) -> None:
    result = zerog("config", "set", "no_such_key", "1")
    assert result.exit_code == 2
    assert "unknown config key 'no_such_key'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_bad_value_is_a_usage_error(zerog) -> None:
    result = zerog("config", "set", "max_upload_size", "5XB")
    assert result.exit_code == 2
    assert "not a size" in result.stderr


def test_broken_config_file_is_a_config_error(zerog, zerog_home: Path) -> None:
    zerog_home.mkdir(parents=True)
    (zerog_home / "config.toml").write_text("profile = [unclosed\n")
    result = zerog("config", "show")
    assert result.exit_code == 8
    assert "not valid TOML" in result.stderr


def test_unknown_key_in_file_is_a_config_error(zerog, zerog_home: Path) -> None:
    zerog_home.mkdir(parents=True)
    (zerog_home / "config.toml").write_text('colour = "blue"\n')
    result = zerog("config", "show")
    assert result.exit_code == 8
    assert "colour" in result.stderr


def test_tiers_come_from_config(zerog) -> None:
    assert zerog("config", "set", "tiers.premium.monthly_usd", "750").exit_code == 0
    settings = load_settings()
    assert settings.tier("premium").monthly_usd_micro == 750_000_000
    assert settings.tier("free").storage_bytes == 1_000_000_000


def test_init_creates_home_config_and_ledger(zerog, zerog_home: Path) -> None:
    result = zerog("init", "--profile", "testnet", "--user", "alice", "--json")
    assert result.exit_code == 0, result
    report = result.json
    assert report["profile"] == "testnet"
    assert report["user"] == "alice"
    assert report["wallet"].startswith("missing")
    assert stat.S_IMODE(zerog_home.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(report["ledger"]).stat().st_mode) == 0o600
    assert load_settings().profile == "testnet"


def test_network_commands_name_the_network_on_stderr(zerog) -> None:
    from zerog_cli.services.context import Context

    messages: list[str] = []
    context = Context(flags={"profile": "testnet"}, notify=messages.append)
    context.announce_network()
    context.announce_network()
    assert messages == ["network: testnet (chain 16602, https://evmrpc-testnet.0g.ai)"]


@pytest.mark.parametrize("profile", ["devnet", "testnet", "mainnet"])
def test_every_setting_holds_the_type_its_field_declares(profile: str) -> None:
    import typing
    from dataclasses import fields

    from zerog_cli.infra.config import KEYS, Settings

    settings = load_settings({"profile": profile})
    hints = typing.get_type_hints(Settings)
    assert list(KEYS) == [f.name for f in fields(Settings) if "key" in f.metadata]
    for key in KEYS:
        allowed = typing.get_args(hints[key]) or (hints[key],)
        assert isinstance(getattr(settings, key), allowed), (key, getattr(settings, key))


def test_a_misspelt_setting_is_a_type_error_not_a_runtime_none(tmp_path: Path) -> None:
    from mypy import api

    from zerog_cli.infra.config import Settings

    assert "__getattr__" not in vars(Settings)
    with pytest.raises(AttributeError):
        load_settings().rpc_ulr  # type: ignore[attr-defined]  # noqa: B018
    snippet = tmp_path / "misspelt.py"
    snippet.write_text(
        "from zerog_cli.infra.config import load_settings\n"
        "timeout: int = load_settings().wait_timeout\n"
        "url = load_settings().rpc_ulr\n"
    )
    stdout, _, status = api.run(
        ["--no-incremental", "--follow-imports=silent", "--config-file=", str(snippet)]
    )
    assert status == 1, stdout
    assert 'misspelt.py:3: error: "Settings" has no attribute "rpc_ulr"' in stdout
    assert "misspelt.py:2" not in stdout


def test_no_code_casts_a_setting() -> None:
    """A setting has the type its field declares: `int(settings.replicas)` would hide a
    wrong declaration from mypy, so none is written anywhere in the package."""
    import ast

    import zerog_cli
    from zerog_cli.infra.config import KEYS

    found = []
    for path in sorted(Path(zerog_cli.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("int", "float", "str", "bool")
                and len(node.args) == 1
                and isinstance(node.args[0], ast.Attribute)
                and node.args[0].attr in KEYS
                and isinstance(node.args[0].value, ast.Name | ast.Attribute)
                and ast.unparse(node.args[0].value).endswith("settings")
            ):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert found == []
