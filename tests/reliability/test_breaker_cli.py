"""The circuit breaker through the CLI: consecutive processes share it through the ledger.

The devnet's only storage node goes down (HTTP 503 to everything). `zerog
verify` runs, one process after another, until the node's breaker opens. A
new process then fails fast: exit 6 and not one request reaches the node. After
the reset timeout a process half-opens the breaker; while the node is still
down the trial call fails and the breaker opens again; once the node is back,
the trial succeeds and the breaker closes. Every change shows in the
``--metrics-file`` textfile, in `zerog metrics show` and in `zerog status`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Result
from tests.devnet_harness import DevnetProcess
from tests.reliability.conftest import (
    exit_problems,
    ledger_rows,
    random_file,
    scale,
    zerog_child,
)

pytestmark = [pytest.mark.devnet(nodes=1), pytest.mark.timeout(scale(300, 3600))]

CYCLES = scale(1, 3)
FAIL_MAX = 3
RESET_TIMEOUT = 2
MAX_TRIPPING_RUNS = 12


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``{sorted labels: value}`` of every sample called ``name`` in a text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    for key, number in samples(text, name).items():
        if labels.items() <= dict(key).items():
            return number
    return None


def node_requests(net: DevnetProcess) -> int:
    return int(net.stats()["requests"].get("node/0", 0))


def breaker_of(db: Path, endpoint: str) -> dict[str, Any]:
    rows = ledger_rows(db, "SELECT * FROM breaker_state WHERE name = ?", (endpoint,))
    return rows[0] if rows else {"state": "absent", "fail_counter": 0}


def test_breaker_is_shared_fails_fast_half_opens_and_shows(
    own_devnet: DevnetProcess,
    zerog: Callable[..., Result],
    tmp_path: Path,
    zerog_home: Path,
    figures: dict[str, Any],
) -> None:
    net = own_devnet
    db = zerog_home / "ledger.db"
    for key, setting in (
        ("breaker_fail_max", str(FAIL_MAX)),
        ("http_max_tries", "2"),
    ):
        assert zerog("config", "set", key, setting).exit_code == 0
    source = random_file(tmp_path / "db.dump", 200_000, random.Random(7))
    made = zerog("backup", "create", str(source), "--label", "db", "--json")
    assert made.exit_code == 0, made
    name = f"{made.json['namespace']}/{made.json['name']}"
    endpoint = f"{net.base_url}/node/0"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    problems: list[str] = []
    runs_to_open: list[int] = []
    fast_fail_seconds: list[float] = []
    requests_while_open = 0

    for cycle in range(CYCLES):
        # Steps 1 and 2 run several processes while the breaker must stay open: a long
        # reset timeout, also after step 3 of the cycle before set it to RESET_TIMEOUT.
        assert zerog("config", "set", "breaker_reset_timeout", "60").exit_code == 0
        net.set_faults(fail_nodes=[0])
        # 1. Consecutive processes count failures in the shared ledger row until it opens.
        opened_by = None
        for attempt in range(1, MAX_TRIPPING_RUNS + 1):
            textfile = metrics_dir / f"c{cycle}-trip-{attempt}.prom"
            run = zerog_child("verify", "--metrics-file", str(textfile), "--json", timeout=120)
            problems += exit_problems(run)
            if run.exit_code != 6:
                problems.append(f"verify with the node down ended {run.exit_code}: {run!r}")
            if breaker_of(db, endpoint)["state"] == "open":
                opened_by = textfile
                runs_to_open.append(attempt)
                break
        assert opened_by is not None, breaker_of(db, endpoint)
        text = opened_by.read_text()
        assert (
            value(text, "zerog_circuit_breaker_transitions_total", endpoint=endpoint, state="open")
            == 1
        )
        assert value(text, "zerog_circuit_breaker_state", endpoint=endpoint) == 2

        # 2. A new process fails fast: exit 6, no request reaches the node.
        before = node_requests(net)
        rejected_file = metrics_dir / f"c{cycle}-rejected.prom"
        fast = zerog_child("verify", "--metrics-file", str(rejected_file), "--json", timeout=60)
        download = zerog_child("download", name, "-o", str(tmp_path / f"x{cycle}"), timeout=60)
        requests_while_open += node_requests(net) - before
        assert node_requests(net) == before, "an open breaker must not send a request"
        for run in (fast, download):
            assert run.exit_code == 6, run
            problems += exit_problems(run)
        assert "circuit breaker open" in download.stderr, download
        assert not (tmp_path / f"x{cycle}").exists()
        fast_fail_seconds += [fast.seconds, download.seconds]
        rejected = rejected_file.read_text()
        assert value(rejected, "zerog_circuit_breaker_rejections_total", endpoint=endpoint) >= 1

        # ... and status and the ledger-derived metrics show it open.
        status = zerog_child("status", "--json", timeout=60)
        assert status.exit_code == 6, status
        assert any(
            b["endpoint"] == endpoint and b["state"] == "open" for b in status.json["breakers"]
        ), status.json
        assert f"breaker open: {endpoint}" in [p["problem"] for p in status.json["problems"]]
        shown = zerog_child("metrics", "show", timeout=60)
        assert shown.exit_code == 0, shown
        assert value(shown.stdout, "zerog_circuit_breaker_state", endpoint=endpoint) == 2

        # 3. After the reset timeout one trial call goes out; the node is still down: open again.
        # (Each process reads the timeout from the config; the opening time is in the ledger.)
        assert zerog("config", "set", "breaker_reset_timeout", str(RESET_TIMEOUT)).exit_code == 0
        time.sleep(RESET_TIMEOUT + 0.3)
        before = node_requests(net)
        trial_file = metrics_dir / f"c{cycle}-trial-fails.prom"
        trial = zerog_child("verify", "--metrics-file", str(trial_file), "--json", timeout=60)
        assert trial.exit_code == 6, trial
        assert node_requests(net) > before, "a half-open breaker lets a trial call through"
        assert breaker_of(db, endpoint)["state"] == "open"
        text = trial_file.read_text()
        for state in ("half-open", "open"):
            assert (
                value(
                    text, "zerog_circuit_breaker_transitions_total", endpoint=endpoint, state=state
                )
                == 1
            ), text

        # 4. The node is back: after the reset timeout the trial succeeds and it closes.
        net.clear_faults()
        time.sleep(RESET_TIMEOUT + 0.3)
        healed_file = metrics_dir / f"c{cycle}-healed.prom"
        healed = zerog_child("verify", "--metrics-file", str(healed_file), "--json", timeout=60)
        assert healed.exit_code == 0, healed
        assert breaker_of(db, endpoint)["state"] == "closed"
        text = healed_file.read_text()
        for state in ("half-open", "closed"):
            assert (
                value(
                    text, "zerog_circuit_breaker_transitions_total", endpoint=endpoint, state=state
                )
                == 1
            ), text
        assert value(text, "zerog_circuit_breaker_state", endpoint=endpoint) == 0
        status = zerog_child("status", "--json", timeout=60)
        assert status.exit_code == 0, status
        got = zerog_child("download", name, "-o", str(tmp_path / f"ok{cycle}.bin"), timeout=60)
        assert got.exit_code == 0, got
        assert (tmp_path / f"ok{cycle}.bin").read_bytes() == source.read_bytes()
        assert zerog("config", "set", "breaker_reset_timeout", "60").exit_code == 0

    figures["cycles (open, fail fast, half-open, re-open, close)"] = CYCLES
    figures["processes needed to open the breaker (fail_max 3)"] = runs_to_open
    figures["requests reaching the node while open"] = requests_while_open
    figures["fail-fast command seconds (max)"] = round(max(fast_fail_seconds), 2)
    figures["problems"] = len(problems)
    assert not problems, "\n".join(problems[:10])
