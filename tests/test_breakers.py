"""Breaker state lives in the ledger: consecutive processes share it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from zerog_cli.errors import NetworkUnavailable
from zerog_cli.infra.http import BreakerSettings, HttpClient, RetryPolicy
from zerog_cli.ledger.breakers import BreakerTable, breaker_rows
from zerog_cli.ledger.db import open_ledger

ONE_TRY = RetryPolicy(max_tries=1)


class Counter:
    def __init__(self) -> None:
        self.hits = 0
        self.status = 503


@pytest.fixture
def failing_server() -> Iterator[tuple[str, Counter]]:
    counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            counter.hits += 1
            self.send_response(counter.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", counter
    httpd.shutdown()
    httpd.server_close()


def _client(ledger_path: Path, reset_timeout: float) -> tuple[HttpClient, BreakerTable]:
    table = BreakerTable(ledger_path)
    client = HttpClient(
        retry=ONE_TRY,
        breaker=BreakerSettings(fail_max=3, reset_timeout=reset_timeout),
        breaker_storage=table.storage,
    )
    return client, table


SECOND_PROCESS = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from zerog_cli.errors import NetworkUnavailable
    from zerog_cli.infra.http import BreakerSettings, HttpClient, RetryPolicy
    from zerog_cli.ledger.breakers import BreakerTable

    table = BreakerTable(Path(sys.argv[1]))
    client = HttpClient(retry=RetryPolicy(max_tries=1),
                        breaker=BreakerSettings(fail_max=3, reset_timeout=float(sys.argv[3])),
                        breaker_storage=table.storage)
    try:
        client.request("GET", sys.argv[2] + "/x")
    except NetworkUnavailable as exc:
        print("refused:", exc)
        sys.exit(6)
    print("sent")
    """
)


def test_open_breaker_is_seen_by_the_next_process_and_half_opens(
    tmp_path: Path, failing_server: tuple[str, Counter]
) -> None:
    url, counter = failing_server
    ledger_path = tmp_path / "ledger.db"
    open_ledger(ledger_path).close()
    client, table = _client(ledger_path, reset_timeout=1.5)
    for _ in range(3):
        with pytest.raises(NetworkUnavailable):
            client.request("GET", url + "/x")
    assert counter.hits == 3
    rows = breaker_rows(table)
    assert rows[0]["state"] == "open"
    assert rows[0]["opened_at"] is not None

    hits_before = counter.hits
    # This process's reset timeout is long: however slowly it starts on a loaded
    # machine, it finds the breaker still open (the opening time is in the ledger).
    child = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, str(ledger_path), url, "600"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 6, child.stderr
    assert "refused" in child.stdout
    assert counter.hits == hits_before, "an open breaker must not send a request"

    time.sleep(1.6)
    counter.status = 200
    child = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, str(ledger_path), url, "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stdout + child.stderr
    assert counter.hits == hits_before + 1
    assert breaker_rows(table)[0]["state"] == "closed"
    client.close()
    table.close()


def test_concurrent_failures_are_all_counted(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.db"
    open_ledger(ledger_path).close()
    tables = [BreakerTable(ledger_path) for _ in range(4)]
    storages = [t.storage("http://127.0.0.1:9") for t in tables]

    def bump(storage: object) -> None:
        for _ in range(50):
            storage.increment_counter()  # type: ignore[attr-defined]

    threads = [threading.Thread(target=bump, args=(s,)) for s in storages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert storages[0].counter == 200
    for table in tables:
        table.close()
