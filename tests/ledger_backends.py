"""One ledger fixture for both backends: ``ledger_backend`` runs a test on SQLite and on PostgreSQL.

On ``postgresql`` the test's ZEROG_HOME gets ``ZEROG_LEDGER_URL`` (a fresh
database of the session's throwaway cluster, `tests.postgres_harness`) and the
``DATABASE_PASSWORD`` secret in its environment, so in-process commands and
child processes alike use it. `LedgerBackend` reads and writes rows the way a
test needs without knowing which backend runs (``rows``, ``execute``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import postgres_harness
from zerog_cli.ledger.db import Ledger, connect, open_ledger, resolve_target
from zerog_cli.ledger.postgres import PostgresTarget

BACKENDS = ("sqlite", "postgresql")


@dataclass
class LedgerBackend:
    name: str
    home: Path
    url: str | None = None
    """The PostgreSQL ``ledger_url``; None on SQLite (the file in ZEROG_HOME)."""

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    @property
    def target(self) -> Path | PostgresTarget:
        if self.url is None:
            return self.home / "ledger.db"
        return resolve_target(self.url, lambda: postgres_harness.PASSWORD)

    @property
    def db(self) -> Path | str:
        """What `tests.reliability.conftest.ledger_rows` takes: the file, or the URL."""
        return self.home / "ledger.db" if self.url is None else self.url

    def env(self) -> dict[str, str]:
        """The variables that point a child process with another ZEROG_HOME at this ledger."""
        if self.url is None:
            return {"ZEROG_LEDGER_PATH": str(self.home / "ledger.db")}
        return {"ZEROG_LEDGER_URL": self.url, "DATABASE_PASSWORD": postgres_harness.PASSWORD}

    def open(self) -> Ledger:
        return open_ledger(self.target)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return ledger_rows(self.db, sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One write, committed (the way another tool would change the ledger)."""
        ledger = self.open()
        try:
            with ledger.transaction() as conn:
                conn.execute(sql, tuple(params))
        finally:
            ledger.close()


def ledger_rows(db: Path | str, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of a read-only query on its own connection, on either backend."""
    target = (
        resolve_target(str(db), lambda: postgres_harness.PASSWORD) if isinstance(db, str) else db
    )
    conn = connect(target, read_only=True)
    try:
        cursor = conn.execute(sql, tuple(params))
        columns = [column[0] for column in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        conn.close()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[postgres_harness.Cluster]:
    """A PostgreSQL cluster for the whole session, started on first use."""
    cluster = postgres_harness.start_cluster()
    try:
        yield cluster
    finally:
        postgres_harness.remove_cluster(cluster)


def use_postgres(
    cluster: postgres_harness.Cluster, home: Path, monkeypatch: pytest.MonkeyPatch
) -> LedgerBackend:
    url = cluster.create_database()
    monkeypatch.setenv("ZEROG_LEDGER_URL", url)
    monkeypatch.setenv("DATABASE_PASSWORD", postgres_harness.PASSWORD)
    return LedgerBackend("postgresql", home, url)


@pytest.fixture(params=BACKENDS)
def ledger_backend(
    request: pytest.FixtureRequest, zerog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LedgerBackend]:
    """The test's ledger, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield LedgerBackend("sqlite", zerog_home)
        return
    cluster = request.getfixturevalue("postgres_cluster")
    backend = use_postgres(cluster, zerog_home, monkeypatch)
    try:
        yield backend
    finally:
        assert backend.url is not None
        cluster.drop_database(backend.url)
