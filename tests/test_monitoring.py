"""The monitoring assets and the metrics path, with real Prometheus components.

Debian's ``prometheus``, ``prometheus-node-exporter`` and ``prometheus-pushgateway``
are installed by `ensure_prometheus_tools` when missing, so nothing here skips.
Everything listens on 127.0.0.1 on a free port and is stopped at the end.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Result
from tests.devnet_harness import DevnetProcess
from tests.prometheus_tools import (
    PrometheusTools,
    ensure_prometheus_tools,
    free_port,
    free_ports,
    node_exporter_argv,
    prometheus_argv,
    pushgateway_argv,
    run_server,
)
from tests.test_verify_e2e import corrupt_on_disk
from zerog_cli.infra.metrics import metric_names
from zerog_cli.services.metrics_server import collector_metric_names

pytestmark = pytest.mark.promtool

MONITORING = REPO / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana").glob("*.json"))
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1d",
}
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


@pytest.fixture(scope="session")
def tools() -> PrometheusTools:
    return ensure_prometheus_tools()


def exported_names() -> set[str]:
    return metric_names() | collector_metric_names()


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions,
    keywords, label names, label values, durations or numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before in ".$":
            continue
        if text[match.end() :].lstrip().startswith("(") or match.group(0) in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def test_the_name_extractor() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, endpoint) "
        '(rate(zerog_http_request_duration_seconds_bucket{endpoint=~"$e"}[5m])))'
        " / on (job) group_left zerog_backups offset 1h > 1e3 and count(up) or vector(0)"
    )
    assert promql_metric_names(expr) == {
        "zerog_http_request_duration_seconds_bucket",
        "zerog_backups",
        "up",
    }


# -- rules -----------------------------------------------------------------------------


def test_promtool_check_rules(tools: PrometheusTools) -> None:
    checked = subprocess.run(
        [str(tools.promtool), "check", "rules", str(MONITORING / "alerts.yml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout


def test_promtool_test_rules(tools: PrometheusTools) -> None:
    tested = subprocess.run(
        [str(tools.promtool), "test", "rules", "alerts.test.yml"],
        capture_output=True,
        text=True,
        cwd=MONITORING,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def _alert_cases() -> dict[str, set[str]]:
    """For each alertname in alerts.test.yml: {'fires', 'silent'} cases seen.

    The file's layout is fixed (``alertname:`` then ``exp_alerts:`` on the next
    line, ``[]`` when it must not fire), so a line scan reads it exactly.
    """
    lines = (MONITORING / "alerts.test.yml").read_text().splitlines()
    cases: dict[str, set[str]] = {}
    for index, line in enumerate(lines):
        match = re.match(r"\s*alertname:\s*(\S+)\s*$", line)
        if match:
            following = lines[index + 1].strip()
            assert following.startswith("exp_alerts:"), following
            kind = "silent" if following == "exp_alerts: []" else "fires"
            cases.setdefault(match.group(1), set()).add(kind)
    return cases


@pytest.fixture(scope="module")
def loaded_rules(
    tools: PrometheusTools, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """The rules as a real Prometheus parsed them (GET /api/v1/rules)."""
    work = tmp_path_factory.mktemp("prometheus-rules")
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"evaluation_interval": "1s"},
                "rule_files": [str(MONITORING / "alerts.yml")],
            }
        )
    )
    argv = prometheus_argv(tools.prometheus, port, config, work / "data")
    with run_server(argv, port, work / "prometheus.log", ready_path="/-/ready") as server:
        answer = server.get("/api/v1/rules").json()
    assert answer["status"] == "success"
    return [rule for group in answer["data"]["groups"] for rule in group["rules"]]


def test_every_alert_has_a_firing_and_a_silent_test_case(
    loaded_rules: list[dict[str, Any]],
) -> None:
    alerts = {rule["name"] for rule in loaded_rules if rule["type"] == "alerting"}
    assert len(alerts) == 7
    cases = _alert_cases()
    assert set(cases) == alerts
    for name in alerts:
        assert cases[name] == {"fires", "silent"}, name


def test_the_seed_alerts_are_there_with_their_severities(
    loaded_rules: list[dict[str, Any]],
) -> None:
    severity = {rule["name"]: rule["labels"]["severity"] for rule in loaded_rules}
    assert severity == {
        "ZerogErrorRateCritical": "critical",
        "ZerogErrorRateHigh": "warning",
        "ZerogCircuitBreakerOpen": "critical",
        "ZerogQuotaHigh": "warning",
        "ZerogCostIncrease": "info",
        "ZerogBackupVerificationStale": "warning",
        "ZerogBackupVerificationFailed": "critical",
    }


def test_rules_use_only_metrics_zerog_exports(loaded_rules: list[dict[str, Any]]) -> None:
    used = set()
    for rule in loaded_rules:
        used |= promql_metric_names(rule["query"])
    assert used, "no metric found in the rules"
    assert used <= exported_names(), used - exported_names()


# -- dashboards ----------------------------------------------------------------------------


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries(board: dict[str, Any]) -> list[str]:
    queries = [
        target["expr"]
        for panel in _panels(board["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["definition"])
            assert match, variable["definition"]
            queries.append(match.group(1))
    return queries


def _substituted(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\w+", ".*", expr)


def test_four_importable_dashboards() -> None:
    titles = {}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] and board["schemaVersion"] >= 36
        panels = list(_panels(board["panels"]))
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in panels:
            assert {"type", "title", "gridPos"} <= set(panel), panel
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                assert panel["targets"], panel["title"]
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        titles[board["uid"]] = board["title"]
    assert titles == {
        "zerog-overview": "zerog · 0G overview",
        "zerog-cost": "zerog · cost",
        "zerog-performance": "zerog · performance",
        "zerog-quotas": "zerog · quotas",
    }


def test_dashboards_use_only_metrics_zerog_exports() -> None:
    for path in DASHBOARDS:
        used: set[str] = set()
        for query in dashboard_queries(json.loads(path.read_text())):
            used |= promql_metric_names(_substituted(query))
        assert used, path.name
        assert used <= exported_names(), (path.name, used - exported_names())


def test_dashboard_queries_are_valid_promql(tools: PrometheusTools, tmp_path: Path) -> None:
    rules = []
    for path in DASHBOARDS:
        for index, query in enumerate(dashboard_queries(json.loads(path.read_text()))):
            record = f"dashboard:{path.stem.replace('-', '_')}:{index}"
            rules.append({"record": record, "expr": _substituted(query)})
    rules_file = tmp_path / "dashboards.rules.yml"
    rules_file.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run(
        [str(tools.promtool), "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- a real verify run: textfile, node_exporter, Pushgateway, Prometheus -------------------


def _backup(cli: Callable[..., Result], tmp_path: Path, name: str) -> dict[str, Any]:
    source = tmp_path / name
    source.write_bytes(os.urandom(40_000))
    made = cli("backup", "create", str(source), "--json")
    assert made.exit_code == 0, made
    return made.json  # type: ignore[no-any-return]


def test_verify_textfile_passes_promtool_and_node_exporter_serves_it(
    cli: Callable[..., Result], tools: PrometheusTools, tmp_path: Path
) -> None:
    _backup(cli, tmp_path, "a.bin")
    textfiles = tmp_path / "textfiles"
    textfile = textfiles / "zerog.prom"
    ran = cli("verify", "--metrics-file", str(textfile))
    assert ran.exit_code == 0, ran
    checked = subprocess.run(
        [str(tools.promtool), "check", "metrics"],
        input=textfile.read_bytes(),
        capture_output=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not list(textfiles.glob(".*.part"))

    port = free_port()
    argv = node_exporter_argv(tools.node_exporter, port, textfiles)
    with run_server(argv, port, tmp_path / "node_exporter.log") as exporter:
        scraped = exporter.get("/metrics").text
    assert 'zerog_verify_backups_total{status="ok"} 1' in scraped
    assert 'zerog_last_success_timestamp_seconds{command="verify"}' in scraped
    assert "zerog_verify_backup_duration_seconds_bucket" in scraped
    assert "node_textfile_scrape_error 0" in scraped


def test_a_pushgateway_receives_the_push_and_serves_it(
    cli: Callable[..., Result], tools: PrometheusTools, tmp_path: Path
) -> None:
    _backup(cli, tmp_path, "b.bin")
    port = free_port()
    with run_server(
        pushgateway_argv(tools.pushgateway, port), port, tmp_path / "pg.log"
    ) as gateway:
        ran = cli("verify", "--pushgateway", gateway.url)
        assert ran.exit_code == 0, ran
        assert "push failed" not in ran.stderr
        served = gateway.get("/metrics").text
        groups = gateway.get("/api/v1/metrics").json()["data"]
    host = socket.gethostname()
    series = f'zerog_verify_backups_total{{instance="{host}",job="zerog_verify",status="ok"}}'
    assert f"{series} 1" in served
    assert {"job": "zerog_verify", "instance": host} in [group["labels"] for group in groups]


def test_a_dead_pushgateway_is_a_warning_not_a_failed_verify(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused_port: int
) -> None:
    _backup(cli, tmp_path, "c.bin")
    monkeypatch.setenv("ZEROG_HTTP_MAX_TRIES", "1")
    ran = cli("verify", "--pushgateway", f"http://127.0.0.1:{refused_port}")
    assert ran.exit_code == 0
    assert "warning: metrics push failed" in ran.stderr


def _wait_for_alert(
    server: Any, name: str, sources: set[str], timeout: float = 180
) -> list[dict[str, Any]]:
    """The firing alerts called ``name`` once they cover every source in ``sources``.

    A source is the ``job`` or ``namespace`` label: the textfile series (job
    ``node``) and the ledger series (by namespace) are scraped independently, so
    the alert fires for one before the other.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alerts = server.get("/api/v1/alerts").json()["data"]["alerts"]
        firing = [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]
        seen = {a["labels"].get("job") for a in firing} | {
            a["labels"].get("namespace") for a in firing
        }
        if sources <= seen:
            return firing
        time.sleep(0.5)
    raise AssertionError(f"{name} did not fire for {sources}; alerts: {alerts}")


def test_prometheus_scrapes_zerog_and_the_failed_backup_alert_fires(
    cli: Callable[..., Result], net: DevnetProcess, tools: PrometheusTools, tmp_path: Path
) -> None:
    made = _backup(cli, tmp_path, "d.bin")
    corrupt_on_disk(net, made["root"])
    textfiles = tmp_path / "textfiles"
    ran = cli("verify", "--metrics-file", str(textfiles / "zerog.prom"))
    assert ran.exit_code == 3

    exporter_port, serve_port, prometheus_port = free_ports(3)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(MONITORING / "alerts.yml")],
                "scrape_configs": [
                    {
                        "job_name": "node",
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                    },
                    {
                        "job_name": "zerog",
                        "static_configs": [{"targets": [f"127.0.0.1:{serve_port}"]}],
                    },
                ],
            }
        )
    )
    serve_argv = [sys.executable, "-m", "zerog_cli", "metrics", "serve", "--port", str(serve_port)]
    with (
        run_server(
            node_exporter_argv(tools.node_exporter, exporter_port, textfiles),
            exporter_port,
            tmp_path / "node_exporter.log",
        ),
        run_server(serve_argv, serve_port, tmp_path / "serve.log"),
        run_server(
            prometheus_argv(tools.prometheus, prometheus_port, config, tmp_path / "tsdb"),
            prometheus_port,
            tmp_path / "prometheus.log",
            ready_path="/-/ready",
        ) as prometheus,
    ):
        firing = _wait_for_alert(prometheus, "ZerogBackupVerificationFailed", {"node", "default"})
        result = prometheus.get(
            "/api/v1/query", query='zerog_verify_backups_total{status="mismatch"}'
        ).json()["data"]["result"]
    assert firing
    assert [float(r["value"][1]) for r in result] == [1.0]
