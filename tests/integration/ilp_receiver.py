"""A strict QuestDB ILP-over-HTTP receiver on 127.0.0.1:0, for tests (a real QuestDB cannot run here).

Endpoints, as QuestDB serves them:
- `GET /settings`: `{"config": {"line.proto.support.versions": [1, 2], ...}}`
  (the client reads that key and `cairo.max.file.name.length`);
- `GET /ping`: 204 with `X-Influxdb-Version`;
- `POST /write` and `POST /api/v2/write` (`?precision=n|u|ms|s`): the body is
  parsed line by line per ILP; 204 when every line is valid, else 400 with
  QuestDB's JSON error `{"code":"invalid","message":"failed to parse line
  protocol:errors encountered on line(s):\\nerror in line N: ...","line":N,
  "errorId":"..."}` and nothing of the request stored (one request = one
  transaction, as QuestDB does for single-table requests).

Parsing follows QuestDB's LineTcpParser: `table[,tag=value...] field=value[,...] [timestamp]\\n`
with backslash escapes in names and tag values; field values: float text
(`1.5`, `-2e-3`, `NaN`, `Infinity`), `123i` LONG, `"..."` STRING (escapes `\\"`,
`\\\\`, escaped newline), booleans (`t`/`true`/... `f`/`false`/...), `123t`
TIMESTAMP in micros, `123n` in nanos (protocol 2), and protocol 2's binary
DOUBLE (`==` + type byte 16 + 8 bytes little endian). Binary data may contain
newlines, so the body is parsed as a byte stream, never split on `\\n` first.
Column types are remembered per table: a later line with another type for a
column is a 400 (QuestDB: cast error). Stricter than QuestDB: a column named
twice in one line, and binary arrays (unused by xtrader), are rejected.

`GET /exec?query=SQL` takes the DDL the sink sends, as QuestDB does: `CREATE
TABLE [IF NOT EXISTS] name (col TYPE, ...) TIMESTAMP(col) PARTITION BY unit
[WAL] [DEDUP UPSERT KEYS(col, ...)]` and `ALTER TABLE name DEDUP ENABLE UPSERT
KEYS(col, ...)`; 200 `{"ddl": "OK"}`, or 400 `{"query", "error", "position"}`
for what QuestDB refuses (unknown type, keys without the designated timestamp
or naming a missing column, dedup on a non-WAL table). Declared columns fix
their types for later lines. A table with upsert keys stores one row per key
(the designated timestamp is the row's timestamp; a missing value is NULL): a
row with the key of a stored row replaces it (QuestDB's DEDUP UPSERT KEYS).
Other SQL is a 400.

Fault switches: `fail_next(n, status)`, `stop_listening()` / `start_listening()`
(connection refused, same port), `delay_s` (slow responses), `reject_tables`,
`store_then_fail_next(n)` (rows stored, then a 503: a commit whose answer was
lost), `after_store` (called after each stored write, before the answer:
a test can kill the client there).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_FLOAT = re.compile(rb"^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INT = re.compile(rb"^-?\d+$")
_TRUE = {b"t", b"T", b"true", b"True", b"TRUE"}
_FALSE = {b"f", b"F", b"false", b"False", b"FALSE"}
_BAD_TABLE_CHARS = set("?,'\"\\/:)(+*%~\r\n\t\x00")
_BAD_COLUMN_CHARS = _BAD_TABLE_CHARS | set(".-")
_PRECISION_NS = {"n": 1, "ns": 1, "u": 1_000, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_INT64 = (-(1 << 63), (1 << 63) - 1)
_BINARY_DOUBLE = 16
_BINARY_ARRAY = 14


class LineError(Exception):
    """A line is malformed; the message reads like QuestDB's, `line` is 1-based."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Row:
    """One parsed ILP line."""

    table: str
    symbols: dict[str, str]
    fields: dict[str, Any]
    #: ILP type per field: double, long, string, boolean, timestamp (values of timestamps are ns)
    types: dict[str, str]
    timestamp: int | None
    line: int


@dataclass
class _Cursor:
    data: bytes
    pos: int = 0

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def at_end_of_line(self) -> bool:
        byte = self.peek()
        return byte is None or byte == 0x0A or (byte == 0x0D and self.data[self.pos + 1 : self.pos + 2] == b"\n")


def _read_escaped(cursor: _Cursor, stops: bytes, what: str) -> str:
    """Read up to an unescaped stop byte; a backslash escapes the next byte (QuestDB)."""
    out = bytearray()
    data = cursor.data
    while cursor.pos < len(data):
        byte = data[cursor.pos]
        if byte == 0x5C:  # backslash
            if cursor.pos + 1 >= len(data):
                raise LineError(f"{what}: dangling escape")
            out.append(data[cursor.pos + 1])
            cursor.pos += 2
            continue
        if byte in stops or byte == 0x0A:
            break
        out.append(byte)
        cursor.pos += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"{what}: invalid UTF-8") from exc


def _check_name(name: str, bad: set[str], what: str) -> str:
    if not name or name in (".", "..") or any(c in bad for c in name) or name != name.strip():
        raise LineError(f"invalid {what} name: {name!r}")
    return name


def _read_token(cursor: _Cursor) -> bytes:
    start = cursor.pos
    data = cursor.data
    while cursor.pos < len(data) and data[cursor.pos] not in b", \n":
        cursor.pos += 1
    return data[start : cursor.pos].rstrip(b"\r")


def _read_string(cursor: _Cursor, name: str) -> str:
    cursor.pos += 1  # opening quote
    out = bytearray()
    data = cursor.data
    while True:
        if cursor.pos >= len(data):
            raise LineError(f"Could not parse entire line. Field value is missing: {name} (unterminated string)")
        byte = data[cursor.pos]
        if byte == 0x5C:
            if cursor.pos + 1 >= len(data):
                raise LineError(f"Could not parse entire line, field value is invalid. Field: {name}")
            out.append(data[cursor.pos + 1])
            cursor.pos += 2
        elif byte == 0x22:
            cursor.pos += 1
            break
        elif byte == 0x0A:
            raise LineError(f"Could not parse entire line, field value is invalid. Field: {name} (raw newline)")
        else:
            out.append(byte)
            cursor.pos += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"Could not parse entire line, field value is invalid. Field: {name}") from exc


def _read_binary(cursor: _Cursor, name: str) -> tuple[str, Any]:
    cursor.pos += 1  # the second '='
    kind = cursor.peek()
    if kind == _BINARY_DOUBLE:
        raw = cursor.data[cursor.pos + 1 : cursor.pos + 9]
        if len(raw) != 8:
            raise LineError(f"Could not parse entire line, field value is invalid. Field: {name} (short double)")
        cursor.pos += 9
        value: float = struct.unpack("<d", raw)[0]
        return "double", value
    if kind == _BINARY_ARRAY:
        raise LineError(f"Could not parse entire line, field value is invalid. Field: {name} (arrays unsupported)")
    raise LineError(f"Could not parse entire line, field value is invalid. Field: {name} (binary type {kind})")


def _typed(token: bytes, name: str) -> tuple[str, Any]:
    """Text field value -> (ILP type, Python value)."""
    invalid = LineError(f"Could not parse entire line, field value is invalid. Field: {name}; value: {token!r}")
    if not token:
        raise LineError(f"Could not parse entire line. Field value is missing: {name}")
    if token in _TRUE or token in _FALSE:
        return "boolean", token in _TRUE
    suffix, digits = token[-1:], token[:-1]
    if suffix in (b"i", b"t", b"n"):
        if not _INT.match(digits):
            raise invalid
        number = int(digits)
        if not _INT64[0] <= number <= _INT64[1]:
            raise invalid
        if suffix == b"i":
            return "long", number
        if number < 0:
            raise invalid
        return "timestamp", number * 1000 if suffix == b"t" else number
    if token in (b"NaN", b"Infinity", b"-Infinity"):
        return "double", float(token.decode().replace("Infinity", "inf"))
    if _FLOAT.match(token):
        return "double", float(token)
    raise invalid


def _parse_line(cursor: _Cursor, number: int, precision_ns: int) -> Row:
    table = _check_name(_read_escaped(cursor, b", ", "table"), _BAD_TABLE_CHARS, "table")
    symbols: dict[str, str] = {}
    while cursor.peek() == 0x2C:  # ','
        cursor.pos += 1
        name = _check_name(_read_escaped(cursor, b"=, ", "tag"), _BAD_COLUMN_CHARS, "column")
        if cursor.peek() != 0x3D:
            raise LineError(f"Could not parse entire line. Symbol value is missing: {name}")
        cursor.pos += 1
        value = _read_escaped(cursor, b", ", "tag value")
        if not value:
            raise LineError(f"Could not parse entire line. Symbol value is missing: {name}")
        if name in symbols:
            raise LineError(f"duplicate column: {name}")
        symbols[name] = value
    fields: dict[str, Any] = {}
    types: dict[str, str] = {}
    if cursor.peek() == 0x20:
        cursor.pos += 1
        while True:
            name = _check_name(_read_escaped(cursor, b"= ,", "field"), _BAD_COLUMN_CHARS, "column")
            if cursor.peek() != 0x3D:
                raise LineError(f"Could not parse entire line. Field value is missing: {name}")
            cursor.pos += 1
            byte = cursor.peek()
            if byte == 0x22:
                kind, value = "string", _read_string(cursor, name)
            elif byte == 0x3D:
                kind, value = _read_binary(cursor, name)
            else:
                kind, value = _typed(_read_token(cursor), name)
            if name in fields or name in symbols:
                raise LineError(f"duplicate column: {name}")
            fields[name], types[name] = value, kind
            if cursor.peek() != 0x2C:
                break
            cursor.pos += 1
    if not fields and not symbols:
        raise LineError("No fields were provided")
    timestamp = None
    if cursor.peek() == 0x20:
        cursor.pos += 1
        token = _read_token(cursor)
        scale = precision_ns
        if token[-1:] in (b"n", b"t"):
            scale = 1 if token[-1:] == b"n" else 1000
            token = token[:-1]
        if not _INT.match(token) or token.startswith(b"-"):
            raise LineError(f"Could not parse timestamp: {token.decode(errors='replace')}")
        timestamp = int(token) * scale
    if not cursor.at_end_of_line():
        raise LineError("Could not parse entire line (unexpected bytes after the line)")
    return Row(table, symbols, fields, types, timestamp, number)


def parse_body(body: bytes, precision_ns: int = 1) -> list[Row]:
    """Every line of an ILP request body, strictly.

    Raises:
        LineError: the first malformed line (its number in `.line`).
    """
    cursor = _Cursor(body)
    rows: list[Row] = []
    number = 0
    while cursor.pos < len(body):
        if cursor.at_end_of_line():  # blank line
            cursor.pos += 2 if body[cursor.pos] == 0x0D else 1
            continue
        number += 1
        try:
            rows.append(_parse_line(cursor, number, precision_ns))
        except LineError as exc:
            exc.line = number
            raise
        cursor.pos += 2 if cursor.peek() == 0x0D else 1
    return rows


def _compatible(column_type: str, value_type: str) -> bool:
    # QuestDB widens a LONG value into an existing DOUBLE column; everything else must match
    return column_type == value_type or (column_type == "double" and value_type == "long")


@dataclass
class _Faults:
    fail_next: int = 0
    fail_status: int = 503
    delay_s: float = 0.0
    store_then_fail: int = 0


#: SQL column types -> the ILP types they take (QuestDB casts LONG into DOUBLE, see `_compatible`)
_SQL_TYPES = {
    "SYMBOL": "symbol",
    "TIMESTAMP": "timestamp",
    "DOUBLE": "double",
    "LONG": "long",
    "BOOLEAN": "boolean",
    "VARCHAR": "string",
    "STRING": "string",
}
_ILP_TO_SQL = {
    "symbol": "SYMBOL",
    "timestamp": "TIMESTAMP",
    "double": "DOUBLE",
    "long": "LONG",
    "boolean": "BOOLEAN",
    "string": "VARCHAR",
}
_IDENT = r'"?([A-Za-z_][A-Za-z0-9_]*)"?'
_CREATE = re.compile(
    r"^\s*CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?"
    + _IDENT
    + r"\s*\((.*)\)\s*TIMESTAMP\s*\(\s*"
    + _IDENT
    + r"\s*\)\s*PARTITION\s+BY\s+(DAY|HOUR|MONTH|YEAR|WEEK)\s*(WAL)?\s*"
    r"(DEDUP\s+UPSERT\s+KEYS\s*\(([^)]*)\))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_ALTER = re.compile(
    r"^\s*ALTER\s+TABLE\s+" + _IDENT + r"\s+DEDUP\s+ENABLE\s+UPSERT\s+KEYS\s*\(([^)]*)\)\s*;?\s*$",
    re.IGNORECASE,
)


class SqlError(Exception):
    """What QuestDB's /exec answers with a 400."""


@dataclass
class Table:
    """A table made by DDL: its designated timestamp, its columns, its upsert keys (empty: no dedup)."""

    designated: str
    columns: dict[str, str]
    wal: bool
    keys: tuple[str, ...] = ()
    #: upsert key -> position in the stored rows (rows stored before the keys were set are not in it)
    index: dict[tuple[Any, ...], int] = field(default_factory=dict)


@dataclass
class IlpReceiver:
    """The receiver: `start()`, point the client at `conf()`, assert on `rows`."""

    versions: tuple[int, ...] = (1, 2)
    max_name_len: int = 127
    rows: dict[str, list[Row]] = field(default_factory=dict)
    #: (method, path, status) of every request, in order
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    #: table -> column -> type, as QuestDB would have created them
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    reject_tables: set[str] = field(default_factory=set)
    faults: _Faults = field(default_factory=_Faults)
    #: every SQL statement received on /exec, in order, and the tables DDL made
    sql: list[str] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    after_store: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._error_count = 0
        self.port = 0

    # lifecycle -----------------------------------------------------------------

    def start(self) -> IlpReceiver:
        self.start_listening()
        return self

    def stop(self) -> None:
        self.stop_listening()

    def __enter__(self) -> IlpReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def conf(self, protocol_version: int = 1, **extra: object) -> str:
        """A client configuration string for this receiver."""
        options = "".join(f"{key}={value};" for key, value in extra.items())
        return f"http::addr=127.0.0.1:{self.port};protocol_version={protocol_version};{options}"

    # fault switches --------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` write requests with `status` (nothing stored)."""
        with self._lock:
            self.faults.fail_next, self.faults.fail_status = count, status

    def store_then_fail_next(self, count: int) -> None:
        """Store the next `count` write requests, then answer 503 (the client never learns of the commit)."""
        with self._lock:
            self.faults.store_then_fail = count

    def stop_listening(self) -> None:
        """Close the listening socket and every open connection: clients get 'connection refused'."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def start_listening(self) -> None:
        """Listen again, on the same port as before (a fresh port the first time)."""
        if self._server is not None:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # assertions helpers ----------------------------------------------------------

    def table(self, name: str) -> list[Row]:
        with self._lock:
            return list(self.rows.get(name, []))

    def write_requests(self) -> int:
        with self._lock:
            return sum(1 for method, path, _ in self.requests if method == "POST")

    # request handling --------------------------------------------------------------

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def _settings(self) -> dict[str, Any]:
        return {
            "config": {
                "release.type": "OSS",
                "release.version": "ilp-receiver",
                "line.proto.support.versions": list(self.versions),
                "ilp.proto.transports": ["tcp", "http"],
                "cairo.max.file.name.length": self.max_name_len,
            },
            "preferences.version": 0,
            "preferences": {},
        }

    def _write(self, body: bytes, query: str) -> tuple[int, dict[str, Any] | None]:
        """Parse and store a write request; (status, JSON error or None)."""
        with self._lock:
            if self.faults.fail_next > 0:
                self.faults.fail_next -= 1
                return self.faults.fail_status, {"code": "internal error", "message": "injected failure"}
        precision = parse_qs(query).get("precision", ["n"])[0]
        if precision not in _PRECISION_NS:
            return 400, self._error(f"unsupported precision: {precision}", None)
        try:
            rows = parse_body(body, _PRECISION_NS[precision])
        except LineError as exc:
            return 400, self._error(str(exc), exc.line or 1)
        with self._lock:
            try:
                staged = self._typecheck(rows)
            except LineError as exc:
                return 400, self._error(str(exc), exc.line or 1)
            for table, columns in staged.items():
                self.columns.setdefault(table, {}).update(columns)
                # a table a line makes is a WAL table whose designated timestamp is `timestamp` (QuestDB's default)
                made = self.tables.setdefault(table, Table("timestamp", {"timestamp": "TIMESTAMP"}, wal=True))
                made.columns.update({c: _ILP_TO_SQL[kind] for c, kind in columns.items() if c not in made.columns})
            for row in rows:
                self._store(row)
            lost_answer = self.faults.store_then_fail > 0
            if lost_answer:
                self.faults.store_then_fail -= 1
        if self.after_store is not None:
            self.after_store()
        if lost_answer:
            return 503, {"code": "internal error", "message": "injected failure after the commit"}
        return 204, None

    def _store(self, row: Row) -> None:
        """Append `row`, or replace the stored row with its upsert key (DEDUP UPSERT KEYS); call with _lock held."""
        stored = self.rows.setdefault(row.table, [])
        table = self.tables.get(row.table)
        if table is None or not table.keys:
            stored.append(row)
            return
        key = self._key(table, row)
        position = table.index.get(key)
        if position is None:
            table.index[key] = len(stored)
            stored.append(row)
        else:
            stored[position] = row

    @staticmethod
    def _key(table: Table, row: Row) -> tuple[Any, ...]:
        return tuple(
            row.timestamp if name == table.designated else row.symbols.get(name, row.fields.get(name))
            for name in table.keys
        )

    def execute(self, query: str) -> tuple[int, dict[str, Any]]:
        """Run one /exec statement (DDL only); (status, QuestDB's JSON answer)."""
        with self._lock:
            self.sql.append(query)
            try:
                self._ddl(query)
            except SqlError as exc:
                return 400, {"query": query, "error": str(exc), "position": 0}
        return 200, {"ddl": "OK"}

    def _ddl(self, query: str) -> None:
        if match := _CREATE.match(query):
            exists, name, body, designated, _, wal, _, keys = match.groups()
            if name in self.tables:
                if exists:
                    return
                raise SqlError(f"table already exists [table={name}]")
            columns: dict[str, str] = {}
            for definition in body.split(","):
                parts = definition.split()
                if len(parts) != 2 or parts[1].upper() not in _SQL_TYPES:
                    raise SqlError(f"unsupported column definition: {definition.strip()!r}")
                columns[parts[0].strip('"')] = parts[1].upper()
            if columns.get(designated) != "TIMESTAMP":
                raise SqlError(f"TIMESTAMP column expected [column={designated}]")
            table = Table(designated, columns, wal=bool(wal))
            if keys is not None:
                if not wal:
                    raise SqlError("deduplication is possible only on WAL tables")
                table.keys = self._keys(table, keys)
            self.tables[name] = table
            self.columns[name] = {c: _SQL_TYPES[t] for c, t in columns.items() if c != designated}
            return
        if match := _ALTER.match(query):
            name, keys = match.groups()
            altered = self.tables.get(name)
            if altered is None:
                raise SqlError(f"table does not exist [table={name}]")
            if not altered.wal:
                raise SqlError("deduplication is possible only on WAL tables")
            altered.keys = self._keys(altered, keys)
            # stored rows stay as they are (duplicates too); new rows are matched against all of them
            altered.index = {}
            for position, row in enumerate(self.rows.get(name, [])):
                altered.index.setdefault(self._key(altered, row), position)
            return
        raise SqlError("this receiver takes CREATE TABLE and ALTER TABLE ... DEDUP ENABLE only")

    @staticmethod
    def _keys(table: Table, text: str) -> tuple[str, ...]:
        keys = tuple(key.strip().strip('"') for key in text.split(",") if key.strip())
        if not keys:
            raise SqlError("deduplication column list expected")
        for key in keys:
            if key not in table.columns:
                raise SqlError(f"deduplicate key column not found [column={key}]")
        if table.designated not in keys:
            raise SqlError("deduplicate key list must include dedicated timestamp column")
        return keys

    def _typecheck(self, rows: list[Row]) -> dict[str, dict[str, str]]:
        staged: dict[str, dict[str, str]] = {}
        for row in rows:
            if row.table in self.reject_tables:
                raise LineError(f"table: {row.table}; table is read-only", row.line)
            known = {**self.columns.get(row.table, {}), **staged.get(row.table, {})}
            new = staged.setdefault(row.table, {})
            for name, kind in [*((n, "symbol") for n in row.symbols), *row.types.items()]:
                existing = known.get(name)
                if existing is None:
                    new[name] = kind
                elif not _compatible(existing, kind):
                    raise LineError(
                        f"table: {row.table}, column: {name}; cast error from protocol type: "
                        f"{kind.upper()} to column type: {existing.upper()}",
                        row.line,
                    )
        return staged

    def _error(self, message: str, line: int | None) -> dict[str, Any]:
        self._error_count += 1
        error: dict[str, Any] = {"code": "invalid"}
        if line is not None:
            error["message"] = f"failed to parse line protocol:errors encountered on line(s):\nerror in line {line}: "
            error["message"] += message
            error["line"] = line
        else:
            error["message"] = message
        error["errorId"] = f"ilp-receiver-{self._error_count}"
        return error


def _handler(receiver: IlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like QuestDB and the client's pool expect
        server_version = "questDB/1.0"

        def setup(self) -> None:
            super().setup()
            receiver._track(self.connection, True)

        def finish(self) -> None:
            receiver._track(self.connection, False)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/settings":
                self._reply(200, receiver._settings())
            elif path == "/ping":
                self._reply(204, None, {"X-Influxdb-Version": "v2.7.4"})
            elif path == "/exec":
                query = parse_qs(urlsplit(self.path).query).get("query", [""])[0]
                self._reply(*receiver.execute(query))
            else:
                self._reply(404, {"code": "not found", "message": path})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self._body()
            if url.path not in ("/write", "/api/v2/write"):
                self._reply(404, {"code": "not found", "message": url.path})
                return
            if receiver.faults.delay_s:
                time.sleep(receiver.faults.delay_s)
            status, error = receiver._write(body, url.query)
            self._reply(status, error)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return bytes(chunks)
                    chunks += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _reply(self, status: int, payload: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
            try:
                self._send(status, payload, headers)
            except OSError:  # the client went away (a test killed it): nothing to answer
                self.close_connection = True

        def _send(self, status: int, payload: dict[str, Any] | None, headers: dict[str, str] | None) -> None:
            with receiver._lock:
                receiver.requests.append((self.command, urlsplit(self.path).path, status))
            body = b"" if payload is None else json.dumps(payload, allow_nan=False).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status != 204:
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 204:
                self.wfile.write(body)

    return Handler
