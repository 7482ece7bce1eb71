"""Client of the 0G indexer: JSON-RPC ``indexer_*`` and the REST gateway (spec 4).

The gateway answers business errors as JSON ``{"code", "message", "data"}``
with HTTP 200 (and internal errors with HTTP 600), so a 200 is not success by
itself: a file download must carry ``Content-Disposition: attachment`` and any
JSON body with ``code`` and ``message`` is read as an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

from zerog_cli.errors import NotFound, ProtocolError, RemoteError
from zerog_cli.zerog.jsonrpc import JsonRpcClient, Reader, loads_untrusted, one_line
from zerog_cli.zerog.selection import ShardConfig, ShardedNode
from zerog_cli.zerog.storage_node import FileInfo, parse_file_info

if TYPE_CHECKING:
    from zerog_cli.infra.http import HttpClient, Timeouts

I64_MAX = (1 << 63) - 1
MAX_NODES = 10_000
GATEWAY_CODES = {
    0: "success",
    1: "invalid parameter",
    2: "internal server error",
    101: "file not found",
    102: "file already pruned",
    103: "file not finalized yet",
    104: "file path not found",
    105: "file size too large",
    106: "file type unsupported",
}


@dataclass(frozen=True)
class ShardedNodes:
    trusted: list[ShardedNode]
    discovered: list[ShardedNode]


def parse_sharded_node(value: Any, r: Reader, field: str) -> ShardedNode:
    obj = r.obj(value, field)
    url = r.string(r.get(obj, "url", f"{field}.url"), f"{field}.url", max_len=2048)
    if not url.startswith(("http://", "https://")):
        raise r.fail(f"{field}.url", "is not an http(s) URL")
    config_obj = r.obj(r.get(obj, "config", f"{field}.config"), f"{field}.config")
    config = ShardConfig(
        shard_id=r.integer(r.get(config_obj, "shardId", "shardId"), f"{field}.config.shardId"),
        num_shard=r.integer(r.get(config_obj, "numShard", "numShard"), f"{field}.config.numShard"),
    )
    latency = obj.get("latency")
    since = obj.get("since")
    return ShardedNode(
        url=url,
        config=config,
        latency=None if latency is None else r.integer(latency, f"{field}.latency", low=-I64_MAX),
        since=None if since is None else r.integer(since, f"{field}.since", low=-I64_MAX),
    )


def parse_node_list(value: Any, r: Reader, field: str) -> list[ShardedNode]:
    if value is None:
        return []
    items = r.array(value, field, max_len=MAX_NODES)
    return [parse_sharded_node(item, r, f"{field}[{i}]") for i, item in enumerate(items)]


class IndexerClient:
    """The indexer at ``url`` (one base URL for JSON-RPC and the gateway)."""

    def __init__(self, http: HttpClient, url: str, *, timeout: Timeouts | None = None) -> None:
        from zerog_cli.infra.http import endpoint_with_path

        self.http = http
        self.url = url.rstrip("/")
        self.rpc = JsonRpcClient(
            http, url, endpoint=endpoint_with_path(url), timeout=timeout, direct=True
        )
        self.endpoint = self.rpc.endpoint
        self.timeout = timeout

    def get_sharded_nodes(self) -> ShardedNodes:
        method = "indexer_getShardedNodes"
        r = Reader(f"{self.endpoint} {method}")
        obj = r.obj(self.rpc.call(method), "result")
        return ShardedNodes(
            trusted=parse_node_list(obj.get("trusted"), r, "trusted"),
            discovered=parse_node_list(obj.get("discovered"), r, "discovered"),
        )

    def get_file_locations(self, root: str) -> list[ShardedNode]:
        """Nodes holding ``root`` finalized; empty when the indexer knows none."""
        method = "indexer_getFileLocations"
        try:
            value = self.rpc.call(method, [root])
        except RemoteError as error:
            if error.kind == "not-found":
                return []
            raise
        return parse_node_list(value, Reader(f"{self.endpoint} {method}"), "result")

    def gateway_file_info(self, cid: str | int) -> FileInfo:
        """``GET /file/info/{cid}``: cid is a root or a decimal txSeq."""
        path = f"/file/info/{quote(str(cid), safe='')}"
        response = self.http.request(
            "GET", self.url + path, endpoint=self.endpoint, timeout=self.timeout, max_bytes=1 << 20
        )
        where = f"{self.endpoint} GET /file/info"
        data = self._gateway_json(response.content, response.status, where)
        return parse_file_info(data, where)

    def gateway_download(self, root: str, sink: BinaryIO, *, max_bytes: int | None = None) -> int:
        """``GET /file?root=``: stream the file into ``sink``; returns bytes written.

        The gateway checks proofs itself, but callers should still recompute
        the root of what they received.
        """
        where = f"{self.endpoint} GET /file"
        with self.http.stream(
            "GET",
            f"{self.url}/file?root={quote(root, safe='')}",
            endpoint=self.endpoint,
            timeout=self.timeout,
        ) as response:
            disposition = response.headers.get("Content-Disposition", "")
            if response.status != 200 or "attachment" not in disposition.lower():
                body = response.read(1 << 20)
                self._gateway_json(body, response.status, where)
                raise ProtocolError(f"{where}: answered HTTP {response.status} without a file")
            written = 0
            for piece in response.iter_bytes():
                written += len(piece)
                if max_bytes is not None and written > max_bytes:
                    raise ProtocolError(f"{where}: file larger than {max_bytes} bytes")
                sink.write(piece)
            return written

    def _gateway_json(self, content: bytes, status: int, where: str) -> Any:
        """``data`` of a gateway JSON answer, or the error it describes."""
        try:
            answer = loads_untrusted(content)
        except ValueError:
            raise ProtocolError(
                f"{where}: answered HTTP {status} with a body that is not gateway JSON"
            ) from None
        r = Reader(where)
        obj = r.obj(answer, "answer")
        code = r.integer(r.get(obj, "code", "code"), "code", low=-I64_MAX, high=I64_MAX)
        message = obj.get("message")
        text = one_line(message) if isinstance(message, str) else GATEWAY_CODES.get(code, "")
        if code == 0 and status == 200:
            return obj.get("data")
        if code in (101, 104):
            raise NotFound(f"{where}: {text or 'not found'}")
        raise RemoteError(
            f"{where}: {text or 'error'} (code {code})",
            code=code,
            data=obj.get("data"),
            kind="retryable" if code in (2, 103) or status >= 500 else "fatal",
            endpoint=self.endpoint,
        )
