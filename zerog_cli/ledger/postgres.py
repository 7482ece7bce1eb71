"""The PostgreSQL dialect of the ledger: every difference from SQLite lives here.

The ledger's queries are written once, in the SQL both engines understand,
with SQLite's ``?`` placeholders. On PostgreSQL, `PgConnection` is the
`ledger.db.LedgerConnection` the SQLite connection also is (``execute``,
``executemany`` and cursors with ``fetchone``/``fetchall``/iteration,
``rowcount``, ``lastrowid``, ``description``) and rewrites each statement once
(`translate`):

- ``?`` becomes ``%s`` (and a literal ``%`` is doubled for psycopg);
- the column ``user``, a reserved word there, is quoted;
- ``INSERT OR IGNORE`` becomes ``INSERT … ON CONFLICT DO NOTHING``;
- ``INTEGER`` becomes ``BIGINT`` (SQLite's INTEGER holds 64 bits), ``REAL``
  ``DOUBLE PRECISION`` (SQLite's REAL is 8 bytes), a column declared
  ``INTEGER PRIMARY KEY`` (SQLite's row id) an identity, and ``WITHOUT ROWID``
  goes;
- an empty list, ``IN ()`` (false) and ``NOT IN ()`` (true), which SQLite
  allows, becomes ``= ANY ('{}')`` and ``<> ALL ('{}')``;
- a list of ids bound as one JSON parameter, ``SELECT value FROM
  json_each(?)``, is read with ``json_array_elements_text``.

Sums of BIGINT columns come back as NUMERIC; they are handed up as ``int``,
as SQLite gives them. Errors are raised as the ``sqlite3`` classes the
ledger already handles (a unique violation is ``sqlite3.IntegrityError``),
except a lost or refused connection, which is `NetworkUnavailable` (exit 6):
the database is a server on the network like any other endpoint.

`PgDatabase` is the part of sqlite-utils' ``Database`` the migrations use
(create a table, an index, add or drop columns, drop a table), as PostgreSQL
DDL, so one set of numbered migrations runs on both.

psycopg is imported only in the functions that connect: commands on a
SQLite ledger never load it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dt_time
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from zerog_cli.errors import ConfigError, NetworkUnavailable

if TYPE_CHECKING:
    import psycopg

    from zerog_cli.ledger.admin import SqlCell

SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_SECONDS = 10

WRITE_LOCK_KEY = 0x7A65_726F_0001
"""The advisory lock every ledger transaction takes: PostgreSQL's ``BEGIN IMMEDIATE``."""


@dataclass(frozen=True)
class PostgresTarget:
    """A ``postgresql://user@host:port/db?sslmode=…`` ledger; the password comes from
    ``password()`` (the ``DATABASE_PASSWORD`` secret), never from the URL."""

    url: str
    password: Callable[[], str | None] | None = field(default=None, compare=False)

    @property
    def display(self) -> str:
        """The URL as shown in output and messages (as every printed URL: user info masked)."""
        from zerog_cli.infra.redaction import redact_url

        return redact_url(self.url)

    @property
    def database(self) -> str:
        return urlsplit(self.url).path.strip("/")

    def connect(self, *, read_only: bool = False) -> PgConnection:
        return PgConnection(self, _open(self, read_only=read_only), read_only=read_only)


def parse_url(url: str, password: Callable[[], str | None] | None = None) -> PostgresTarget:
    """A `PostgresTarget`; exit 8 for a URL that is not a usable PostgreSQL address."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"ledger_url {url!r}: expected sqlite:///PATH or postgresql://…")
    if parts.password is not None:
        shown = urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.hostname or ''}"))
        raise ConfigError(
            f"ledger_url {shown} holds a password",
            hint="remove it from the URL and store it as the DATABASE_PASSWORD secret"
            " (`zerog secrets set DATABASE_PASSWORD`)",
        )
    if not parts.path.strip("/"):
        raise ConfigError(f"ledger_url {url!r} names no database (postgresql://USER@HOST/DB)")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"ledger_url {url!r} has a port that is not a number") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _value in query):
        raise ConfigError(
            "ledger_url holds a password parameter",
            hint="store it as the DATABASE_PASSWORD secret instead",
        )
    return PostgresTarget(urlunsplit(parts._replace(query=urlencode(query))), password)


def _open(target: PostgresTarget, *, read_only: bool) -> psycopg.Connection[Any]:
    import psycopg

    options: dict[str, Any] = {
        "autocommit": True,
        "application_name": f"zerog pid {os.getpid()} on {socket.gethostname()}"[:63],
    }
    if "connect_timeout" not in target.url:
        options["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    if read_only:
        options["options"] = "-c default_transaction_read_only=on"
    try:
        return psycopg.connect(target.url, **options)
    except psycopg.OperationalError as exc:
        if target.password is None or "password" not in str(exc):
            raise _unreachable(target, exc) from None
    secret = target.password()
    if not secret:
        raise ConfigError(
            f"ledger {target.display} asks for a password",
            hint="store it as the DATABASE_PASSWORD secret (`zerog secrets set DATABASE_PASSWORD`)",
        )
    try:
        return psycopg.connect(target.url, password=secret, **options)
    except psycopg.OperationalError as exc:
        if "password" in str(exc):
            raise ConfigError(
                f"ledger {target.display} refused the DATABASE_PASSWORD secret",
                hint="check the secret (`zerog secrets ls`) and the role's password",
            ) from None
        raise _unreachable(target, exc) from None


def _unreachable(target: PostgresTarget, exc: Exception) -> NetworkUnavailable:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return NetworkUnavailable(
        f"ledger database {target.display} is unavailable: {first_line}",
        hint="check that PostgreSQL runs and accepts this host, then rerun",
    )


# --- SQL ------------------------------------------------------------------

_TOKENS = re.compile(
    r"""(?P<string>'(?:[^']|'')*')"""
    r"""|(?P<quoted>"(?:[^"]|"")*")"""
    r"""|(?P<dollar>\$\$.*?\$\$)"""
    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|(?P<placeholder>\?)"""
    r"""|(?P<percent>%)""",
    re.DOTALL,
)
_RESERVED_COLUMNS = frozenset({"user"})
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_ROW_ID = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\b", re.IGNORECASE)
_JSON_IDS = re.compile(r"SELECT\s+value\s+FROM\s+json_each\(\?\)", re.IGNORECASE)
_JSON_IDS_POSTGRES = (
    "SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(? AS JSON)) AS ids(value)"
)


def _rewrite(match: re.Match[str]) -> str:
    kind, text = match.lastgroup, match.group()
    if kind == "placeholder":
        return "%s"
    if kind == "percent":
        return "%%"
    if kind in ("string", "quoted"):
        return text.replace("%", "%%")
    if kind == "dollar":
        return "$$" + _TOKENS.sub(_rewrite_body, text[2:-2]).replace("%", "%%") + "$$"
    if text.lower() in _RESERVED_COLUMNS:
        return f'"{text.lower()}"'
    if text.upper() == "INTEGER":
        return "BIGINT"
    if text.upper() == "REAL":
        return "DOUBLE PRECISION"
    return text


def _rewrite_body(match: re.Match[str]) -> str:
    """A function body (between ``$$``): words as in a statement; no parameters there."""
    if match.lastgroup in ("placeholder", "percent", "string", "quoted", "dollar"):
        return match.group()
    return _rewrite(match)


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """One ledger statement in PostgreSQL's dialect (see the module docstring)."""
    ignore = _INSERT_OR_IGNORE.match(sql) is not None
    if ignore:
        sql = _INSERT_OR_IGNORE.sub("INSERT INTO", sql, count=1)
    sql = re.sub(r"\s+WITHOUT\s+ROWID\b", "", sql, flags=re.IGNORECASE)
    sql = _ROW_ID.sub("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", sql)
    sql = _JSON_IDS.sub(_JSON_IDS_POSTGRES, sql)
    sql = re.sub(r"\bNOT\s+IN\s*\(\s*\)", "<> ALL ('{}')", sql, flags=re.IGNORECASE)
    sql = re.sub(r"\bIN\s*\(\s*\)", "= ANY ('{}')", sql, flags=re.IGNORECASE)
    translated = _TOKENS.sub(_rewrite, sql)
    if ignore:
        translated = translated.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return translated


def _value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _row(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_value(value) for value in row)


# --- connection -------------------------------------------------------------


class PgCursor:
    """A `ledger.db.LedgerCursor`: the part of ``sqlite3.Cursor`` the ledger reads."""

    def __init__(self, connection: PgConnection, cursor: psycopg.Cursor[Any]) -> None:
        self._connection = connection
        self._cursor = cursor

    @property
    def description(self) -> list[tuple[str, ...]] | None:
        if self._cursor.description is None:
            return None
        return [(column.name,) for column in self._cursor.description]

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        """The id the last INSERT drew from its table's identity (``lastval()``)."""
        row = self._connection.execute("SELECT lastval()").fetchone()
        return None if row is None else int(row[0])

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._cursor.description is None:  # a statement without rows, as sqlite3 answers
            return None
        row = self._connection.guarded(self._cursor.fetchone)
        return None if row is None else _row(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._cursor.description is None:
            return []
        return [_row(row) for row in self._connection.guarded(self._cursor.fetchall)]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while self._cursor.description is not None:
            rows = self._connection.guarded(lambda: self._cursor.fetchmany(1000))
            if not rows:
                return
            for row in rows:
                yield _row(row)


class PgConnection:
    """A psycopg connection in autocommit mode that speaks to the ledger like sqlite3.

    Transactions are explicit (``BEGIN`` … ``COMMIT``), as on the SQLite
    connection, which runs with ``isolation_level=None``.
    """

    def __init__(
        self, target: PostgresTarget, raw: psycopg.Connection[Any], *, read_only: bool = False
    ) -> None:
        self.target = target
        self.raw = raw
        self.read_only = read_only

    def guarded(self, call: Callable[[], Any]) -> Any:
        """Run ``call``, raising psycopg's errors as the ledger's (see the module docstring)."""
        import psycopg

        try:
            return call()
        except psycopg.Error as exc:
            raise self._translated(exc) from None

    def _translated(self, exc: Exception) -> Exception:
        import psycopg

        state = getattr(exc, "sqlstate", None) or ""
        if (
            self.raw.broken
            or state.startswith(("08", "57P"))
            or isinstance(exc, psycopg.InterfaceError)
        ):
            return _unreachable(self.target, exc)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, psycopg.IntegrityError):
            return sqlite3.IntegrityError(message)
        if state == "25006":  # read_only_sql_transaction
            return sqlite3.OperationalError(f"attempt to write a read-only database: {message}")
        if isinstance(exc, psycopg.OperationalError):
            return sqlite3.OperationalError(message)
        if isinstance(exc, psycopg.ProgrammingError | psycopg.DataError):
            return sqlite3.OperationalError(message)
        return sqlite3.DatabaseError(message)

    def execute(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, one_statement: bool = False
    ) -> PgCursor:
        """``one_statement``: refuse a second statement (the extended protocol takes one)."""
        cursor = self.raw.cursor()
        statement = translate(sql)
        self.guarded(lambda: cursor.execute(statement, params, prepare=False, binary=one_statement))
        return PgCursor(self, cursor)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        cursor = self.raw.cursor()
        statement = translate(sql)
        self.guarded(lambda: cursor.executemany(statement, list(rows)))
        return PgCursor(self, cursor)

    def execute_ddl(self, sql: str) -> None:
        """A schema statement written for PostgreSQL already: run as it is."""
        self.guarded(lambda: self.raw.execute(sql.encode()))

    def close(self) -> None:
        self.raw.close()


# --- schema -----------------------------------------------------------------

_TYPES: dict[type, str] = {int: "BIGINT", str: "TEXT", float: "DOUBLE PRECISION"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgTable:
    """One table, with the sqlite-utils ``Table`` calls the migrations make."""

    def __init__(self, db: PgDatabase, name: str) -> None:
        self.db = db
        self.name = name

    def create(
        self,
        columns: dict[str, Any],
        pk: str | tuple[str, ...] | None = None,
        foreign_keys: Sequence[tuple[str, str, str]] | None = None,
        not_null: Iterable[str] | None = None,
        defaults: dict[str, Any] | None = None,
        **_options: Any,
    ) -> PgTable:
        required = set(not_null or ())
        defaults = defaults or {}
        references = {column: (table, other) for column, table, other in foreign_keys or ()}
        lines = []
        for column, kind in columns.items():
            line = f"{_quote(column)} {_TYPES[kind]}"
            if pk == column and column == "id" and kind is int:
                line += " GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
            elif pk == column:
                line += " PRIMARY KEY"
            if column in required:
                line += " NOT NULL"
            if column in defaults:
                line += f" DEFAULT {_literal(defaults[column])}"
            if column in references:
                table, other = references[column]
                line += f" REFERENCES {_quote(table)} ({_quote(other)})"
            lines.append(line)
        if isinstance(pk, tuple):
            lines.append(f"PRIMARY KEY ({', '.join(_quote(column) for column in pk)})")
        self.db.conn.execute_ddl(f"CREATE TABLE {_quote(self.name)} ({', '.join(lines)})")
        return self

    def create_index(
        self,
        columns: Sequence[str],
        index_name: str | None = None,
        unique: bool = False,
        **_options: Any,
    ) -> PgTable:
        name = index_name or "idx_{}_{}".format(self.name.replace(" ", "_"), "_".join(columns))
        self.db.conn.execute_ddl(
            f"CREATE {'UNIQUE ' if unique else ''}INDEX {_quote(name)} ON {_quote(self.name)}"
            f" ({', '.join(_quote(column) for column in columns)})"
        )
        return self

    def add_column(
        self, name: str, kind: type | None = None, not_null_default: Any = None, **_options: Any
    ) -> PgTable:
        line = f"{_quote(name)} {_TYPES[kind or str]}"
        if not_null_default is not None:
            line += f" NOT NULL DEFAULT {_literal(not_null_default)}"
        self.db.conn.execute_ddl(f"ALTER TABLE {_quote(self.name)} ADD COLUMN {line}")
        return self

    def transform(self, *, drop: Iterable[str] = (), **_options: Any) -> PgTable:
        for column in drop:
            self.db.conn.execute_ddl(
                f"ALTER TABLE {_quote(self.name)} DROP COLUMN {_quote(column)}"
            )
        return self

    def drop(self, ignore: bool = False) -> None:
        self.db.conn.execute_ddl(
            f"DROP TABLE {'IF EXISTS ' if ignore else ''}{_quote(self.name)} CASCADE"
        )


def _literal(value: Any) -> str:
    if isinstance(value, bool | int | float):
        return str(int(value) if isinstance(value, bool) else value)
    return "'" + str(value).replace("'", "''") + "'"


class PgDatabase:
    """The schema-changing half of sqlite-utils' ``Database``, on PostgreSQL."""

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn

    def table(self, name: str, **_options: Any) -> PgTable:
        return PgTable(self, name)


def rollup_trigger_sql(name: str, when: str, body: str) -> list[str]:
    """A row trigger on ``cost_tracking`` running ``body`` (SQL over NEW/OLD) ``when``."""
    return [
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body}"
        " RETURN NULL; END $$",
        f"CREATE TRIGGER {name} {when} ON cost_tracking FOR EACH ROW EXECUTE FUNCTION {name}()",
    ]


def set_row_triggers(conn: PgConnection, table: str, *, enabled: bool) -> None:
    """Switch ``table``'s own row triggers off or on, inside a transaction (its owner may).

    `ledger copy` loads ``cost_tracking`` with them off and fills ``cost_rollup`` in one
    statement: in PostgreSQL a row updated again and again within one transaction
    leaves a version each time that every later update walks, so a million cost rows
    through the trigger, in one transaction, take quadratic time.
    """
    conn.execute_ddl(
        f"ALTER TABLE {_quote(table)} {'ENABLE' if enabled else 'DISABLE'} TRIGGER USER"
    )


def drop_trigger_sql(name: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {name} ON cost_tracking",
        f"DROP FUNCTION IF EXISTS {name}()",
    ]


# --- catalog ----------------------------------------------------------------


def table_names(conn: PgConnection) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        " ORDER BY table_name"
    ).fetchall()
    return [str(row[0]) for row in rows]


def lock_key(name: str) -> int:
    """The advisory-lock key of a named run lock (``verify``), the same on every host."""
    return zlib.crc32(f"zerog run lock {name}".encode())


# --- ledger sql ---------------------------------------------------------------

_READING_STATEMENTS = frozenset({"select", "with", "values", "table", "show"})
_FIRST_WORD = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*\(*\s*([A-Za-z]+)", re.DOTALL)


def run_readonly_sql(
    target: PostgresTarget, sql: str, params: Sequence[Any] = ()
) -> list[dict[str, SqlCell]]:
    """`ledger sql` on PostgreSQL: one reading statement, in a READ ONLY transaction
    that is rolled back whatever it did.

    The server refuses every write inside a READ ONLY transaction; the first
    word must also be a reading one (SELECT, WITH, VALUES, TABLE, SHOW), which
    keeps out what a read-only transaction still allows (SET, LOCK, LISTEN,
    CREATE TEMP TABLE, advisory locks through a DO block). The statement goes
    through the extended protocol, which takes exactly one statement. Each cell is
    one of SQLite's value types (`_cell`), so a row reads the same on both backends.
    """
    from zerog_cli.errors import UsageError

    first = _FIRST_WORD.match(sql)
    word = first.group(1).lower() if first else ""
    if word not in _READING_STATEMENTS:
        shown = word.upper() or "this statement"
        raise UsageError(f"ledger sql is read-only: {shown} is refused")
    conn = target.connect(read_only=True)
    try:
        conn.execute("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            cursor = conn.execute(sql, tuple(params), one_statement=True)
        except sqlite3.IntegrityError as exc:
            raise UsageError(f"SQL error: {exc}") from None
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if "read-only" in message or "multiple commands" in message:
                raise UsageError(
                    f"ledger sql is read-only and takes one statement: {message}"
                ) from None
            raise UsageError(f"SQL error: {message}") from None
        columns = [c[0] for c in cursor.description or ()]
        return [
            dict(zip(columns, (_cell(value) for value in row), strict=True))
            for row in cursor.fetchall()
        ]
    finally:
        conn.close()


def _cell(value: Any) -> SqlCell:
    """A PostgreSQL value as SQLite would hold it: a boolean as 0 or 1, bytea as bytes, a
    date or time as ISO 8601 text, json and arrays as JSON text, anything else (uuid,
    interval, inet) as its text."""
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, str | int | float | bytes):
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, datetime | date | dt_time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def reset_identities(conn: PgConnection, tables: Iterable[str]) -> None:
    """After rows were copied in with their ids, each table's identity continues past them.

    ``tables``: tables with an ``id`` column (``pg_get_serial_sequence`` is NULL,
    and ``setval`` then a no-op, where that column is not an identity).
    """
    for table in tables:
        conn.execute(
            "SELECT setval(pg_get_serial_sequence(?, 'id'), MAX(id)) FROM "
            + _quote(table)
            + " HAVING MAX(id) IS NOT NULL",
            (_quote(table),),
        )
