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


def test_restore_path_reports_each_node_over_every_range(
    cli, net: DevnetProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`backup restore --path` fetches a member's segments range by range (two segments per
    range here) with node 0 corrupt: node 1 serves them all, and `-v` and `--json` report
    each node once, summed over the ranges. One request per node at a time: whichever node
    is listed first, the other is asked the range's second segment, so node 0 is asked."""
    monkeypatch.setenv("ZEROG_REPLICAS", "2")
    monkeypatch.setenv("ZEROG_DOWNLOAD_NODE_CONCURRENCY", "1")
    monkeypatch.setattr("zerog_cli.services.snapshots.MEMBER_BATCH_SEGMENTS", 2)
    folder = tmp_path / "tree"
    folder.mkdir()
    (folder / "head.bin").write_bytes(os.urandom(SEGMENT // 2))
    (folder / "member.bin").write_bytes(os.urandom(5 * SEGMENT + 321))
    created = cli("backup", "create", str(folder), "--label", "tree", "--json")
    assert created.exit_code == 0, created
    backup_id = str(created.json["backup_id"])
    members = cli("backup", "show", backup_id, "--files", "--json").json["members"]
    member = next(m for m in members if m["path"] == "member.bin")
    covering = (member["offset"] + member["size"] - 1) // SEGMENT - member["offset"] // SEGMENT + 1
    assert covering > 2
    net.set_faults(corrupt_nodes=[0])

    out = tmp_path / "member.bin"
    restored = cli(
        "backup", "restore", backup_id, "--path", "member.bin", "-o", str(out), "-v", "--json"
    )
    assert restored.exit_code == 0, restored
    assert out.read_bytes() == (folder / "member.bin").read_bytes()
    assert len(restored.json["node_stats"]) == 2
    nodes = _by_node(restored.json)
    assert nodes["0"]["corrupt"] >= 1 and nodes["0"]["segments"] == 0
    assert nodes["1"]["segments"] == covering
    assert nodes["1"]["bytes"] == restored.json["bytes_fetched"]
    lines = [line for line in restored.stderr.splitlines() if line.startswith("node ")]
    assert len(lines) == 2, restored.stderr
    assert f"node {net.base_url}/node/0: 0 segments" in restored.stderr
    assert f"node {net.base_url}/node/1: {covering} segments" in restored.stderr
