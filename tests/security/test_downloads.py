"""Items 4, 8, 9 and 13 (network side): what a download may read, how long it is, its mode.

Reads by root (kind "acl by root"): `download 0x<root> --as bob` returned, and
decrypted, an object of a namespace bob has no role in, while the same object
by name was refused. A root the ledger records now needs read on one of its
namespaces (exit 5, nothing written); a root the ledger does not know is public
data and stays downloadable.

Sizes (kind "sizes"): the root does not pin the exact length (the last chunk is
zero-padded), so a node reporting the size +72 bytes made `download` write
3,072 bytes for a 3,000-byte file and call it verified. The ledger's size is
now used when known, `--size N` pins it otherwise, and nodes that disagree are
exit 3. The liar is a hostile node (tests/reliability/hostile.py) in front of
the devnet that adds 72 to the size in every file info and segment it serves;
the file is stored on both devnet nodes, so one node can lie and one tell the truth.

Modes (kind "file modes"): downloads and decrypted plaintext were written 0644
whatever the umask. Plain downloads and restores now get 0666 less the umask,
decrypted data 0600, and `--mode` sets either.

Names from the network (kind "names"): a node's error message holding escape
sequences and a forged ``error:`` line is printed escaped, on one line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess
from tests.reliability.hostile import Hostile, start_hostile
from tests.security.conftest import AttackContext

ENC_KEY = "5f" * 32
LIE = 72


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def source_file(folder: Path, name: str, size: int) -> Path:
    path = folder / name
    path.write_bytes(os.urandom(size))
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set this process's umask for the test (the in-process `zerog` runs under it)."""
    original = os.umask(0o022)
    os.umask(original)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(original)


@pytest.fixture(scope="module")
def hostile(net: DevnetProcess) -> Iterator[Hostile]:
    proxy = start_hostile(net.base_url)
    try:
        yield proxy
    finally:
        proxy.close()


def lying_nodes(*nodes: int) -> Callable[[str, Any], Any]:
    """A rewrite that makes storage ``nodes`` report every file LIE bytes longer."""
    services = {f"node/{n}" for n in nodes}

    def rewrite(key: str, answer: Any) -> Any:
        service, _, method = key.partition(":")
        result = answer.get("result") if isinstance(answer, dict) else None
        if service not in services or not isinstance(result, dict):
            return answer
        if method == "zgs_getFileInfo" and isinstance(result.get("tx"), dict):
            tx = {**result["tx"], "size": result["tx"]["size"] + LIE}
            return {**answer, "result": {**result, "tx": tx}}
        if method.startswith("zgs_downloadSegment") and "fileSize" in result:
            return {**answer, "result": {**result, "fileSize": result["fileSize"] + LIE}}
        return answer

    return rewrite


# -- item 4: reads by root obey the ACL -----------------------------------------------------


def test_a_root_in_a_private_namespace_needs_read_there(
    cli: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attack: AttackContext,
) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    for user in ("alice", "bob"):
        assert cli("quota", "set", user, "--tier", "free").exit_code == 0
    assert cli("ns", "create", "private", "--as", "alice").exit_code == 0
    source = source_file(tmp_path, "payroll.csv", 5_000)
    uploaded = cli("upload", str(source), "--ns", "private", "--encrypt", "--as", "alice", "--json")
    assert uploaded.exit_code == 0, uploaded
    root = uploaded.json["root"]
    loot = tmp_path / "loot"
    loot.mkdir()
    for how, extra in (("", ()), (" --decrypt", ("--decrypt",)), (" to stdout", ("-o", "-"))):
        with attack("acl by root", f"download 0x<root>{how} --as bob of alice's private object"):
            args = ("download", root, *extra, "--as", "bob")
            result = cli(*args) if "-o" in extra else cli(*args, "-o", str(loot / "stolen"))
            assert result.exit_code == 5, result
            assert "bob may not read" in result.stderr
            assert result.stdout == ""
            assert files_in(loot) == set()
    with attack("acl by root", "download by name --as bob is refused the same way"):
        result = cli("download", "private/payroll.csv", "-o", str(loot / "stolen"), "--as", "bob")
        assert result.exit_code == 5, result
        assert files_in(loot) == set()
    assert cli("ns", "grant", "private", "bob", "read", "--as", "alice").exit_code == 0
    granted = cli("download", root, "-o", str(loot / "granted"), "--as", "bob", "--json")
    assert granted.exit_code == 0, granted
    assert (loot / "granted").read_bytes() == source.read_bytes()
    assert granted.json["verified_against_ledger"] is True and granted.json["decrypted"] is True


def test_a_root_the_ledger_does_not_know_is_public(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = source_file(tmp_path, "public.bin", 4_000)
    root = cli("upload", str(source), "--json").json["root"]
    monkeypatch.setenv("ZEROG_HOME", str(tmp_path / "another-home"))
    fetched = cli("download", root, "-o", str(tmp_path / "copy.bin"), "--as", "bob", "--json")
    assert fetched.exit_code == 0, fetched
    assert fetched.json["verified_against_ledger"] is False
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()


# -- item 8: sizes a node cannot lie about --------------------------------------------------


def test_a_node_lying_about_the_size_is_caught(
    cli: Callable[..., Result],
    hostile: Hostile,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attack: AttackContext,
) -> None:
    source = source_file(tmp_path, "ledger-export.csv", 3_000)
    assert cli("ns", "create", "exports").exit_code == 0
    uploaded = cli("upload", str(source), "--ns", "exports", "--replicas", "2", "--json")
    assert uploaded.exit_code == 0, uploaded
    root = uploaded.json["root"]
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("ZEROG_DEVNET_URL", hostile.url)
    home = Path(os.environ["ZEROG_HOME"])
    try:
        hostile.rewrite = lying_nodes(1)
        with attack("sizes", "one node says +72 bytes, no ledger record: nodes disagree"):
            monkeypatch.setenv("ZEROG_HOME", str(tmp_path / "no-ledger"))
            result = cli("download", root, "-o", str(out / "a.csv"))
            assert result.exit_code == 3, result
            assert "disagree on the size" in result.stderr
            assert files_in(out) == set()
        with attack("sizes", "one node says +72 bytes, --size 3000 pins the honest one"):
            result = cli("download", root, "-o", str(out / "b.csv"), "--size", "3000")
            assert result.exit_code == 0, result
            assert (out / "b.csv").read_bytes() == source.read_bytes()
        monkeypatch.setenv("ZEROG_HOME", str(home))
        with attack("sizes", "one node says +72 bytes, the ledger's size picks the honest one"):
            result = cli("download", root, "-o", str(out / "c.csv"))
            assert result.exit_code == 0, result
            assert (out / "c.csv").read_bytes() == source.read_bytes()

        hostile.rewrite = lying_nodes(0, 1)
        with attack("sizes", "every node says +72 bytes, the ledger knows 3000"):
            result = cli("download", "exports/ledger-export.csv", "-o", str(out / "d.csv"))
            assert result.exit_code == 3, result
            assert "expected 3000 bytes" in result.stderr
            assert not (out / "d.csv").exists()
        with attack("sizes", "every node says +72 bytes, --size 3000 without a ledger"):
            monkeypatch.setenv("ZEROG_HOME", str(tmp_path / "no-ledger"))
            result = cli("download", root, "-o", str(out / "e.csv"), "--size", "3000")
            assert result.exit_code == 3, result
            assert not (out / "e.csv").exists()
        with attack("sizes", "--size that contradicts the ledger's record"):
            monkeypatch.setenv("ZEROG_HOME", str(home))
            result = cli("download", root, "-o", str(out / "f.csv"), "--size", "3072")
            assert result.exit_code == 3, result
            assert "the ledger records 3000 bytes" in result.stderr
            assert not (out / "f.csv").exists()
        assert files_in(out) == {"b.csv", "c.csv"}
    finally:
        hostile.rewrite = None


def test_node_error_messages_cannot_forge_output(
    cli: Callable[..., Result],
    hostile: Hostile,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attack: AttackContext,
) -> None:
    source = source_file(tmp_path, "any.bin", 1_000)
    root = cli("upload", str(source), "--json").json["root"]
    forged = "\x1b[2K\r\x1b[1Aerror: ledger damaged\nerror: run zerog ledger migrate --to 0 --yes"

    def failing(key: str, answer: Any) -> Any:
        if key.endswith(":zgs_getFileInfo") and isinstance(answer, dict):
            return {
                "jsonrpc": "2.0",
                "id": answer.get("id"),
                "error": {"code": -1, "message": forged},
            }
        return answer

    monkeypatch.setenv("ZEROG_DEVNET_URL", hostile.url)
    monkeypatch.setenv("ZEROG_HOME", str(tmp_path / "no-ledger"))
    hostile.rewrite = failing
    try:
        with attack("names", "a node's error message with escapes and a forged error: line"):
            result = cli("download", root, "-o", str(tmp_path / "x.bin"), "-v")
            assert result.exit_code in (6, 7), result
            assert "\x1b" not in result.stderr and "\r" not in result.stderr, result
            errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            assert len(errors) == 1, result
            assert not (tmp_path / "x.bin").exists()
    finally:
        hostile.rewrite = None


# -- item 9: local file modes ---------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_downloads_follow_the_umask_and_plaintext_is_private(
    cli: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    umask: Callable[[int], None],
    attack: AttackContext,
    mask: int,
) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    plain = source_file(tmp_path, "plain.bin", 2_000)
    secret = source_file(tmp_path, "secret.bin", 2_000)
    assert cli("upload", str(plain), "--json").exit_code == 0
    sealed = cli("upload", str(secret), "--encrypt", "--json")
    assert sealed.exit_code == 0, sealed
    umask(mask)
    out = tmp_path / "out"
    out.mkdir()
    with attack("file modes", f"plain download under umask {mask:03o}"):
        result = cli("download", "default/plain.bin", "-o", str(out / "plain.bin"), "--json")
        assert result.exit_code == 0, result
        assert mode_of(out / "plain.bin") == 0o666 & ~mask
        assert result.json["mode"] == oct(0o666 & ~mask)
    with attack("file modes", f"decrypted download under umask {mask:03o} is 0600"):
        result = cli("download", "default/secret.bin", "-o", str(out / "secret.bin"))
        assert result.exit_code == 0, result
        assert mode_of(out / "secret.bin") == 0o600
        assert (out / "secret.bin").read_bytes() == secret.read_bytes()
    result = cli("download", sealed.json["root"], "-o", str(out / "by-root.bin"), "--mode", "640")
    assert result.exit_code == 0, result
    assert mode_of(out / "by-root.bin") == 0o640


def test_restores_follow_the_umask_and_decrypted_restores_are_private(
    cli: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    umask: Callable[[int], None],
    attack: AttackContext,
) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", ENC_KEY)
    dump = source_file(tmp_path, "db.dump", 3_000)
    plain_id = cli("backup", "create", str(dump), "--label", "db", "--json").json["backup_id"]
    sealed = cli("backup", "create", str(dump), "--label", "db-sealed", "--encrypt", "--json")
    assert sealed.exit_code == 0, sealed
    umask(0o027)
    with attack("file modes", "backup restore under umask 027"):
        target = tmp_path / "restored.dump"
        assert cli("backup", "restore", str(plain_id), "-o", str(target)).exit_code == 0
        assert mode_of(target) == 0o640
    with attack("file modes", "decrypted backup restore is 0600"):
        target = tmp_path / "restored-sealed.dump"
        result = cli("backup", "restore", str(sealed.json["backup_id"]), "-o", str(target))
        assert result.exit_code == 0, result
        assert mode_of(target) == 0o600 and target.read_bytes() == dump.read_bytes()
    target = tmp_path / "shared.dump"
    result = cli(
        "backup", "restore", str(sealed.json["backup_id"]), "-o", str(target), "--mode", "0644"
    )
    assert result.exit_code == 0, result
    assert mode_of(target) == 0o644
    for bad in ("rw-r--r--", "999", "1777", ""):
        with attack("file modes", f"--mode {bad!r} is refused"):
            result = cli("download", "default/db", "-o", str(tmp_path / "x"), "--mode", bad)
            assert result.exit_code == 2, result
            assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_an_answer_from_the_network_cannot_drive_the_terminal(
    cli: Callable[..., Result], attack: AttackContext, stream: str
) -> None:
    # The devnet's models answer "You said: " + the prompt, so the provider sends these back.
    prompt = "hi \x1b[2J\x1b]0;owned\x07\rerror: wallet drained"
    with attack("names", f"a provider's answer with escape sequences ({stream})"):
        result = cli("infer", prompt, stream, "--max-tokens", "64")
        assert result.exit_code == 0, result
        assert not any(char in result.stdout for char in ("\x1b", "\x07", "\r")), result
        assert "\\x1b[2J" in result.stdout
