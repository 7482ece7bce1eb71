"""Bad input: generated arguments, config files and hostile network answers.

Whatever it is given, zerog answers with a documented exit code and one
``error:`` line, never a traceback and never a hang: every invocation runs
under a deadline (SIGALRM) and fails the test if it does not return in time.
Commands run in-process (the ``zerog`` fixture) for speed. Hypothesis draws
the inputs; its example database is off so runs leave nothing behind
(``ZEROG_SOAK=1`` draws many more examples).

Not fuzzed, because they wait for a person or run forever by design:
``devnet up``, ``metrics serve``, ``secrets set`` without ``--stdin`` and
``infer ask -`` (read a prompt from stdin).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess, start_devnet
from tests.reliability.conftest import (
    DOCUMENTED_FAILURES,
    TRACEBACK,
    error_line_problem,
    scale,
)
from tests.reliability.hostile import MUTATIONS, Attack, Hostile, start_hostile
from zerog_cli.infra.config import KEYS

pytestmark = pytest.mark.timeout(scale(300, 3600))

ARGUMENT_EXAMPLES = scale(150, 1500)
CONFIG_EXAMPLES = scale(60, 600)
HOSTILE_EXAMPLES = scale(40, 400)
DEADLINE_SECONDS = 60
SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


class Hang(BaseException):
    """Raised in the main thread when an invocation outlives its deadline."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `Hang` if the block runs longer than ``seconds``.

    pytest-timeout arms SIGALRM for the whole test too: its timer is saved and
    re-armed with what is left of it afterwards.
    """

    def expired(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expired)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            left = outer - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def improper(args: tuple[str, ...], result: Result) -> list[str]:
    """How ``result`` breaks the contract: exit code, traceback, one error line."""
    problems = []
    if result.exit_code != 0 and result.exit_code not in DOCUMENTED_FAILURES:
        problems.append(f"exit {result.exit_code}")
    if TRACEBACK in result.stderr or TRACEBACK in result.stdout:
        problems.append("traceback")
    wrong = error_line_problem(args, result.exit_code, result.stderr)
    if wrong:
        problems.append(wrong)
    return problems


class Outcomes:
    """What the generated invocations ended with, for the figures."""

    def __init__(self) -> None:
        self.codes: Counter[int] = Counter()
        self.problems: list[str] = []

    def check(self, zerog: Callable[..., Result], *args: str, stdin: str | None = None) -> Result:
        with deadline(DEADLINE_SECONDS):
            result = zerog(*args, stdin=stdin)
        self.codes[result.exit_code] += 1
        found = improper(args, result)
        if found:
            self.problems.append(f"{found}: zerog {args!r}: {result!r}")
        assert not found, f"zerog {args!r}: {found}: {result!r}"
        return result

    def figures(self) -> dict[str, Any]:
        return {
            "invocations": sum(self.codes.values()),
            "exit codes": dict(sorted(self.codes.items())),
            "tracebacks / undocumented exits / hangs": len(self.problems),
        }


# -- strategies --------------------------------------------------------------------------

text_arg = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=60,
)
sizes = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.from_regex(r"-?[0-9]{0,25}(\.[0-9]{0,6})? ?([kKMGTPE]i?[bB]?|[bB]|bytes)?", fullmatch=True),
    st.sampled_from(["nan", "inf", "-0", "1e309", "0x10", "1_000", "½MB", "tier"]),
    text_arg,
)
numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    text_arg,
)
durations = st.one_of(
    st.from_regex(r"-?[0-9]{0,12}(\.[0-9]{0,3})?[smhdwy]?", fullmatch=True), text_arg
)
roots = st.one_of(
    st.from_regex(r"0[xX][0-9a-fA-F]{0,70}", fullmatch=True),
    st.just("0x" + "0" * 64),
    text_arg,
)
ns_names = st.one_of(st.from_regex(r"[a-z0-9][a-z0-9._/-]{0,70}", fullmatch=True), text_arg)
config_keys = st.one_of(
    st.sampled_from(sorted(KEYS)),
    st.from_regex(r"tiers\.[a-z]{1,5}\.[a-z_]{1,12}", fullmatch=True),
    text_arg,
)


def commands(file: str, out: str) -> st.SearchStrategy[list[str]]:
    """Argument lists for every command, with generated values where a user types them."""
    pick = st.sampled_from
    return st.one_of(
        st.tuples(ns_names, sizes, sizes, text_arg).map(
            lambda v: [
                "ns",
                "create",
                v[0],
                "--quota",
                v[1],
                "--max-object-size",
                v[2],
                "--meta",
                v[3],
            ]
        ),
        st.tuples(ns_names).map(lambda v: ["ns", "show", v[0]]),
        st.tuples(ns_names, text_arg, text_arg).map(lambda v: ["ns", "grant", *v]),
        st.tuples(text_arg, sizes, numbers, numbers, text_arg).map(
            lambda v: [
                "quota",
                "set",
                v[0],
                "--storage",
                v[1],
                "--tokens",
                v[2],
                "--monthly-usd",
                v[3],
                "--tier",
                v[4],
            ]
        ),
        st.tuples(text_arg).map(lambda v: ["quota", "show", v[0]]),
        st.tuples(text_arg, text_arg).map(
            lambda v: ["quota", "report", "--month", v[0], "--by", v[1]]
        ),
        st.tuples(sizes, text_arg, ns_names, numbers, text_arg).map(
            lambda v: [
                "upload",
                file,
                "--dry-run",
                "--max-size",
                v[0],
                "--name",
                v[1],
                "--ns",
                v[2],
                "--replicas",
                v[3],
                "--wait",
                v[4],
            ]
        ),
        st.tuples(text_arg).map(lambda v: ["upload", v[0]]),
        st.tuples(roots).map(lambda v: ["download", v[0], "-o", out]),
        st.tuples(ns_names).map(lambda v: ["download", v[0], "-o", "-"]),
        st.tuples(roots).map(lambda v: ["hash", file, "--expect", v[0]]),
        st.tuples(config_keys, text_arg).map(lambda v: ["config", "set", v[0], v[1]]),
        st.tuples(durations, text_arg, numbers, durations).map(
            lambda v: [
                "verify",
                "--older-than",
                v[0],
                "--subset",
                v[1],
                "--sample",
                v[2],
                "--max-duration",
                v[3],
            ]
        ),
        st.lists(text_arg, max_size=4).map(lambda v: ["verify", *v]),
        st.tuples(text_arg, ns_names).map(
            lambda v: ["backup", "create", file, "--label", v[0], "--ns", v[1]]
        ),
        st.tuples(text_arg).map(lambda v: ["backup", "show", v[0]]),
        st.tuples(numbers).map(lambda v: ["backup", "restore", v[0], "-o", out]),
        st.tuples(numbers, numbers, durations).map(
            lambda v: ["backup", "prune", "--keep-last", v[0], "--keep-daily", v[1], "--dry-run"]
        ),
        st.tuples(durations).map(lambda v: ["backup", "unverified", "--max-age", v[0]]),
        st.tuples(text_arg, numbers, numbers).map(
            lambda v: [
                "infer",
                "ask",
                v[0] or "x",
                "--max-tokens",
                v[1],
                "--temperature",
                v[2],
                "--estimate",
            ]
        ),
        st.tuples(numbers).map(lambda v: ["infer", "log", "-n", v[0]]),
        st.tuples(text_arg).map(lambda v: ["ledger", "sql", v[0]]),
        st.tuples(text_arg, text_arg).map(lambda v: ["auth", "verify", v[0], v[1]]),
        st.tuples(text_arg).map(lambda v: ["secrets", "rm", v[0]]),
        st.tuples(
            pick(["status", "ledger", "quota", "ns", "backup", "config", "hash", "auth"]),
            st.lists(
                st.one_of(
                    text_arg, pick(["--json", "-v", "-q", "--help", "--as", "--ns", "-o", "--"])
                ),
                max_size=5,
            ),
        ).map(lambda v: [v[0], *v[1]]),
    )


def toml_values() -> st.SearchStrategy[str]:
    scalar = st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.floats().map(
            lambda f: (
                "nan"
                if math.isnan(f)
                else ("inf" if f == math.inf else ("-inf" if f == -math.inf else repr(f)))
            )
        ),
        st.booleans().map(lambda b: "true" if b else "false"),
        text_arg.map(json.dumps),
        sizes.map(json.dumps),
        st.sampled_from(
            [
                '"http://127.0.0.1:9"',
                '"60s"',
                '"1GB"',
                '"0x' + "ab" * 20 + '"',
                "1979-05-27T07:32:00Z",
            ]
        ),
    )
    return st.one_of(scalar, st.lists(scalar, max_size=3).map(lambda v: "[" + ", ".join(v) + "]"))


toml_keys = st.one_of(st.sampled_from(sorted(KEYS)), st.from_regex(r"[a-z_]{1,12}", fullmatch=True))


def toml_documents() -> st.SearchStrategy[str]:
    table = st.dictionaries(toml_keys, toml_values(), max_size=6)

    def render(parts: tuple[dict[str, str], list[tuple[str, dict[str, str]]]]) -> str:
        top, tables = parts
        lines = [f"{key} = {value}" for key, value in top.items()]
        for header, body in tables:
            lines.append(f"[{header}]")
            lines += [f"{key} = {value}" for key, value in body.items()]
        return "\n".join(lines) + "\n"

    headers = st.one_of(
        st.sampled_from(
            [
                "profiles.devnet",
                "profiles.testnet",
                "profiles.mars",
                "tiers.free",
                "tiers.gold",
                "tiers",
                "profiles",
            ]
        ),
        st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8})?", fullmatch=True),
    )
    return st.tuples(table, st.lists(st.tuples(headers, table), max_size=3)).map(render)


# -- generated arguments and config files --------------------------------------------------


@pytest.fixture
def offline(zerog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens at the devnet URL: network commands fail at once (exit 6).

    Runs in the test's own folder: a generated relative path (``ledger backup -1.5``)
    must land there, never in the repository.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZEROG_DEVNET_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "1")


def test_generated_arguments(
    offline: None,
    zerog: Callable[..., Result],
    tmp_path: Path,
    zerog_home: Path,
    figures: dict[str, Any],
) -> None:
    outcomes = Outcomes()
    source = tmp_path / "input.bin"
    source.write_bytes(random.Random(1).randbytes(5000))
    out = tmp_path / "out.bin"
    outcomes.check(zerog, "init")

    huge = "9223372036854775808"  # 2**63: one more than SQLite's INTEGER holds

    @settings(max_examples=ARGUMENT_EXAMPLES, **SETTINGS)
    @given(args=commands(str(source), str(out)))
    @example(args=["infer", "log", "-n", huge])
    @example(args=["backup", "restore", huge, "-o", str(out)])
    @example(args=["verify", huge])
    @example(args=["quota", "set", "bob", "--tokens", huge])
    @example(args=["quota", "set", "bob", "--storage", huge + "GB"])
    @example(args=["ns", "create", "big", "--quota", huge + "TB"])
    @example(args=["verify", "--older-than", huge + "w"])
    @example(args=["config", "set", "breaker_reset_timeout", huge])
    def run(args: list[str]) -> None:
        (zerog_home / "config.toml").unlink(missing_ok=True)
        result = outcomes.check(zerog, *args)
        if result.exit_code != 0:
            assert not out.exists(), (args, result)  # a failed download leaves nothing
        out.unlink(missing_ok=True)

    try:
        run()
    finally:
        figures.update(outcomes.figures())
    assert outcomes.codes


def test_generated_config_files(
    offline: None, zerog: Callable[..., Result], zerog_home: Path, figures: dict[str, Any]
) -> None:
    outcomes = Outcomes()
    outcomes.check(zerog, "init")
    config = zerog_home / "config.toml"

    @settings(max_examples=CONFIG_EXAMPLES, **SETTINGS)
    @given(
        text=st.one_of(
            toml_documents(),
            st.text(max_size=300),
            st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        )
    )
    def run(text: str) -> None:
        config.write_text(text, encoding="utf-8")
        for args in (("config", "show", "--json"), ("status", "--no-probe"), ("quota", "show")):
            result = outcomes.check(zerog, *args)
            assert result.exit_code in (0, 4, 8), (text, args, result)

    try:
        run()
    finally:
        figures.update(outcomes.figures())
    assert outcomes.codes[8] > 0, outcomes.codes


# -- a hostile node --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_net(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DevnetProcess, Hostile]]:
    with start_devnet(tmp_path_factory.mktemp("hostile-devnet"), nodes=1) as net:
        hostile = start_hostile(net.base_url)
        try:
            yield net, hostile
        finally:
            hostile.close()


@pytest.mark.devnet
def test_hostile_node_answers(
    hostile_net: tuple[DevnetProcess, Hostile],
    zerog: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: dict[str, Any],
) -> None:
    _, hostile = hostile_net
    hostile.disarm()
    monkeypatch.setenv("ZEROG_DEVNET_URL", hostile.url)
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "2")
    monkeypatch.setenv("ZEROG_HTTP_READ_TIMEOUT", "2")
    monkeypatch.setenv("ZEROG_WAIT_TIMEOUT", "6")
    monkeypatch.setenv("ZEROG_BREAKER_FAIL_MAX", "1000000")
    outcomes = Outcomes()
    seed_file = tmp_path / "seed.bin"
    seed_file.write_bytes(random.Random(2).randbytes(70_000))
    made = outcomes.check(zerog, "backup", "create", str(seed_file), "--label", "seed", "--json")
    assert made.exit_code == 0, made
    seed_ref = f"{made.json['namespace']}/{made.json['name']}"
    seed_root = made.json["root"]
    counter = iter(range(10**9))

    def scenario(name: str) -> tuple[list[str], Path | None, Path | None]:
        """(argv, destination to check, source the destination must equal)."""
        n = next(counter)
        target = tmp_path / "out" / f"{name}-{n}.bin"
        if name == "upload":
            source = tmp_path / "in" / f"up-{n}.bin"
            source.parent.mkdir(exist_ok=True)
            source.write_bytes(random.Random(n).randbytes(random.Random(n).randint(1, 300_000)))
            return ["upload", str(source), "--name", f"up-{n}", "--json"], None, source
        if name == "download":
            return ["download", seed_ref, "-o", str(target)], target, seed_file
        if name == "download-root":
            return ["download", seed_root, "-o", str(target)], target, seed_file
        if name == "restore":
            return (
                ["backup", "restore", str(made.json["backup_id"]), "-o", str(target)],
                target,
                seed_file,
            )
        if name == "verify":
            return ["verify", "--json"], None, None
        if name == "infer":
            return (
                ["infer", "ask", f"hostile {n}", "--no-stream", "--max-tokens", "16", "--json"],
                None,
                None,
            )
        if name == "estimate":
            return ["infer", "ask", "hostile", "--estimate", "--json"], None, None
        return ["status", "--json"], None, None

    names = [
        "upload",
        "download",
        "download-root",
        "restore",
        "verify",
        "infer",
        "estimate",
        "status",
    ]
    calls: dict[str, list[str]] = {}
    for name in names:  # learn which calls each command makes against an honest network
        hostile.disarm()
        args, _, _ = scenario(name)
        assert outcomes.check(zerog, *args).exit_code == 0, args
        calls[name] = sorted(hostile.seen)
    applied: Counter[str] = Counter()
    corrupt = 0

    @settings(max_examples=HOSTILE_EXAMPLES, **SETTINGS)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        nonlocal corrupt
        name = data.draw(st.sampled_from(names), label="command")
        attack = Attack(
            target=data.draw(st.sampled_from(calls[name]), label="call"),
            mutation=data.draw(st.sampled_from(MUTATIONS), label="mutation"),
            every=data.draw(st.booleans(), label="every call"),
            seed=data.draw(st.integers(0, 2**32), label="seed"),
            stall_seconds=2.5,
            payload=data.draw(
                st.recursive(
                    st.none()
                    | st.booleans()
                    | st.integers(-(2**300), 2**300)
                    | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda inner: (
                        st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
                    ),
                    max_leaves=6,
                ),
                label="payload",
            ),
        )
        args, target, source = scenario(name)
        hostile.arm(attack)
        try:
            result = outcomes.check(zerog, *args)
        finally:
            hostile.disarm()
        applied[attack.mutation] += bool(hostile.spoiled[attack.mutation])
        hostile.spoiled.clear()
        if target is not None and target.exists():
            if (
                result.exit_code != 0
                or source is None
                or target.read_bytes() != source.read_bytes()
            ):
                corrupt += 1
            assert result.exit_code == 0 and source is not None, (args, result)
            assert target.read_bytes() == source.read_bytes(), (attack, result)
        if target is not None:
            assert not list(target.parent.glob(".*.part")), "temporary file left behind"
        if name == "upload" and result.exit_code == 0 and source is not None:
            # A success must be real: read it back through the honest network.
            check = tmp_path / "out" / f"check-{next(counter)}.bin"
            got = outcomes.check(zerog, "download", result.json["root"], "-o", str(check))
            assert got.exit_code == 0 and check.read_bytes() == source.read_bytes(), (attack, got)

    try:
        run()
    finally:
        figures.update(outcomes.figures())
        figures["hostile answers sent, by kind"] = dict(sorted(applied.items()))
        figures["corrupt files at a destination"] = corrupt
    assert corrupt == 0
    assert sum(applied.values()) > 0


@pytest.mark.devnet
def test_a_garbage_answer_is_never_evidence_of_a_missing_backup(
    hostile_net: tuple[DevnetProcess, Hostile],
    zerog: Callable[..., Result],
    tmp_path: Path,
    zerog_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: dict[str, Any],
) -> None:
    """A node that answers zgs_getFileInfo with junk cannot be trusted either way: the
    backup could not be checked (exit 6, status "error"), not "missing" (exit 3)."""
    _, hostile = hostile_net
    hostile.disarm()
    monkeypatch.setenv("ZEROG_DEVNET_URL", hostile.url)
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "1")
    source = tmp_path / "junk.bin"
    source.write_bytes(random.Random(9).randbytes(5000))
    made = zerog("backup", "create", str(source), "--label", "junk", "--json")
    assert made.exit_code == 0, made
    outcomes = Outcomes()
    statuses = []
    for payload in ("surprise", 42, [1, 2], {"tx": None}):
        hostile.arm(Attack(target="node/0:zgs_getFileInfo", mutation="wrong-type", payload=payload))
        try:
            checked = outcomes.check(zerog, "verify", str(made.json["backup_id"]), "--json")
            restored = outcomes.check(
                zerog, "backup", "restore", str(made.json["backup_id"]), "-o", str(tmp_path / "r")
            )
        finally:
            hostile.disarm()
        statuses += [item["status"] for item in checked.json["items"]]
        assert checked.exit_code == 6, checked
        assert restored.exit_code == 6, restored
        assert not (tmp_path / "r").exists()
    figures["verify statuses with a junk file-info answer"] = statuses
    figures.update(outcomes.figures())
    assert set(statuses) == {"error"}
