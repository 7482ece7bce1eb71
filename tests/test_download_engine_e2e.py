"""The download engine through `zerog download` against a devnet that misbehaves.

Node 0 serves corrupt segments, or stalls, while node 1 serves good ones; the
file still arrives whole and verified, and `-v` reports each node's share.
In-memory versions of these cases (out-of-order answers, every proof counted)
are in tests/test_segment_fetch.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.devnet_harness import DevnetProcess

pytestmark = pytest.mark.devnet

SEGMENT = 256 * 1024


def _upload(cli, tmp_path: Path, segments: int) -> tuple[Path, str, list[str]]:
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(segments * SEGMENT - 1000))
    uploaded = cli("upload", str(source), "--replicas", "2", "--json")
    assert uploaded.exit_code == 0, uploaded
    assert len(uploaded.json["nodes"]) == 2, uploaded
    return source, uploaded.json["root"], uploaded.json["nodes"]


def _by_node(report: dict) -> dict[str, dict]:
    return {node["url"].rsplit("/", 1)[-1]: node for node in report["node_stats"]}


def test_corrupt_node_and_good_node(cli, net: DevnetProcess, tmp_path: Path) -> None:
    source, root, _ = _upload(cli, tmp_path, 8)
    net.set_faults(corrupt_nodes=[0])
    out = tmp_path / "out.bin"
    result = cli("download", root, "-o", str(out), "-v", "--json")
    assert result.exit_code == 0, result
    assert out.read_bytes() == source.read_bytes()
    nodes = _by_node(result.json)
    assert nodes["0"]["corrupt"] >= 1 and nodes["0"]["segments"] == 0
    assert nodes["1"]["segments"] == 8
    assert result.json["healed_segments"] == nodes["0"]["corrupt"]
    assert f"node {net.base_url}/node/0: 0 segments" in result.stderr
    assert f"node {net.base_url}/node/1: 8 segments" in result.stderr
    assert "corrupt" in result.stderr


def test_stalled_node_segments_go_to_the_other_node(
    cli, net: DevnetProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, root, _ = _upload(cli, tmp_path, 6)
    monkeypatch.setenv("ZEROG_DOWNLOAD_STALL_TIMEOUT", "1")
    monkeypatch.setenv("ZEROG_DOWNLOAD_NODE_CONCURRENCY", "2")
    net.set_faults(stall_nodes=[0], stall_ms=5000)
    out = tmp_path / "out.bin"
    result = cli("download", root, "-o", str(out), "-v", "--json")
    assert result.exit_code == 0, result
    assert out.read_bytes() == source.read_bytes()
    nodes = _by_node(result.json)
    assert nodes["0"]["stalled"] >= 1
    assert nodes["1"]["segments"] >= nodes["0"]["stalled"]
    assert sum(node["segments"] for node in nodes.values()) == 6
    assert "stalled" in result.stderr


def test_every_segment_is_counted_once(cli, tmp_path: Path) -> None:
    source, root, _ = _upload(cli, tmp_path, 12)
    out = tmp_path / "out.bin"
    result = cli("download", root, "-o", str(out), "--json")
    assert result.exit_code == 0, result
    assert out.read_bytes() == source.read_bytes()
    nodes = _by_node(result.json)
    assert sum(node["segments"] for node in nodes.values()) == 12
    assert result.json["healed_segments"] == 0
    assert all(node["corrupt"] == node["failed"] == node["stalled"] == 0 for node in nodes.values())


def test_verify_and_restore_report_each_node(
    cli, net: DevnetProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`verify` (whole and sampled) and `backup restore` run the same engine as `download`:
    with node 0 corrupt, node 1 serves every segment, and `-v` and `--json` say so."""
    monkeypatch.setenv("ZEROG_REPLICAS", "2")
    source = tmp_path / "db.dump"
    source.write_bytes(os.urandom(6 * SEGMENT - 1000))
    created = cli("backup", "create", str(source), "--label", "nodes", "--json")
    assert created.exit_code == 0, created
    backup_id = str(created.json["backup_id"])
    net.set_faults(corrupt_nodes=[0])
    node_0, node_1 = f"node {net.base_url}/node/0: 0 segments", f"node {net.base_url}/node/1: "

    whole = cli("verify", backup_id, "-v", "--json")
    assert whole.exit_code == 0, whole
    nodes = _by_node(whole.json["items"][0])
    assert nodes["0"]["corrupt"] >= 1 and nodes["0"]["segments"] == 0
    assert nodes["1"]["segments"] == 6
    assert node_0 in whole.stderr and f"{node_1}6 segments" in whole.stderr

    sampled = cli("verify", backup_id, "--read-data-subset", "50%", "-v", "--json")
    assert sampled.exit_code == 0, sampled
    item = sampled.json["items"][0]
    nodes = _by_node(item)
    assert nodes["1"]["segments"] == item["segments_checked"] and nodes["0"]["segments"] == 0
    assert f"{node_1}{item['segments_checked']} segments" in sampled.stderr

    out = tmp_path / "restored.dump"
    restored = cli("backup", "restore", backup_id, "-o", str(out), "-v", "--json")
    assert restored.exit_code == 0, restored
    assert out.read_bytes() == source.read_bytes()
    nodes = _by_node(restored.json)
    assert nodes["1"]["segments"] == 6 and nodes["0"]["corrupt"] >= 1
    assert node_0 in restored.stderr and f"{node_1}6 segments" in restored.stderr
