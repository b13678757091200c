"""Pure: the live view of a capture as Arrow tables, from the stats its actors already report.

`streams(...)` is one row per (venue, table, symbol, connection); `stats_table` one row per actor;
`events_table` the recent `events` rows. The controller actor feeds them (`actors/controller.py`);
nothing here needs Ray, so the tables are tested on synthetic stats.

A row's `state`:
    stopped     the connection no longer carries it (unsubscribed) or its connector failed
    waiting for N CPU   its placement group is pending (the cluster lacks the CPUs)
    connecting  no link open yet (or reconnecting)
    stalled     a link is open but nothing arrived for `stall_s`
    resyncing   an l2 book that is not valid (waiting for its snapshot, or after a gap)
    live        otherwise
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from xtrader import metrics
from xtrader.histogram import Histogram

#: a link with no message for this long is stalled
STALL_S = 10.0
#: rows/s is measured over this window
RATE_WINDOW_S = 10.0

STREAMS_SCHEMA = pa.schema(
    [
        pa.field("venue", pa.string(), False),
        pa.field("table", pa.string(), False),
        pa.field("symbol", pa.string(), False),
        pa.field("connection", pa.string(), False),  # the connector id, "<stream>/c<n>/r<replica>"
        pa.field("stream", pa.string(), False),
        pa.field("state", pa.string(), False),
        pa.field("rows_per_s", pa.float64()),  # over the last RATE_WINDOW_S (null until two samples)
        pa.field("rows", pa.int64()),  # received on this connection since it started
        pa.field("last_message_age_s", pa.float64()),  # of the connection
        pa.field("gaps", pa.int64()),  # l2 only (the venue's book); null for other tables
        pa.field("resyncs", pa.int64()),  # l2 only
        pa.field("reconnects", pa.int64()),  # of the connection
        pa.field("latency_p99_ms", pa.float64()),  # receipt -> sink write, per (venue, table), all sinks
        pa.field("node", pa.string()),  # the node's IP the connector runs on
    ]
)

STATS_SCHEMA = pa.schema(
    [
        pa.field("actor", pa.string(), False),
        pa.field("kind", pa.string(), False),  # connector, arbiter, book, sink
        pa.field("venue", pa.string()),
        pa.field("ok", pa.bool_(), False),
        pa.field("error", pa.string()),
        pa.field("messages", pa.int64()),
        pa.field("rows", pa.int64()),
        pa.field("reconnects", pa.int64()),
        pa.field("last_message_age_s", pa.float64()),
        pa.field("node", pa.string()),
    ]
)

Key = tuple[str, str, str]  # (connection, table, symbol)


class RateWindow:
    """Cumulative row counts sampled over time -> rows/s over the last `window_s` per key.

    Args:
        window_s: the rate is taken between the newest sample and the newest one at least this old
            (else the oldest kept).
    """

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, dict[Key, int]]] = deque()

    def add(self, t: float, counts: Mapping[Key, int]) -> None:
        self.samples.append((t, dict(counts)))
        # keep one sample older than the window (the rate's base), drop the rest
        while len(self.samples) > 2 and self.samples[1][0] <= t - self.window_s:
            self.samples.popleft()

    def rates(self) -> dict[Key, float]:
        """rows/s per key between the base sample and the newest; {} until two samples."""
        if len(self.samples) < 2:
            return {}
        newest_t, newest = self.samples[-1]
        base_t, base = self.samples[0]
        dt = newest_t - base_t
        if dt <= 0:
            return {}
        # a key absent from the base started within the window: its count is all new
        return {key: max(0, n - base.get(key, 0)) / dt for key, n in newest.items()}


def connector_counts(stats: Mapping[str, Any]) -> dict[Key, int]:
    """(connection, table, symbol) -> rows received, from every connector's `symbol_rows`."""
    out: dict[Key, int] = {}
    for actor, s in stats.items():
        if not isinstance(s, Mapping):
            continue
        for table, symbols in (s.get("symbol_rows") or {}).items():
            for symbol, n in symbols.items():
                out[(actor, table, symbol)] = int(n)
    return out


def count_symbols(batches: Any, into: dict[str, dict[str, int]]) -> None:
    """Add each table's rows per symbol (one `value_counts` per table and batch, no per-row Python)."""
    import pyarrow.compute as pc

    for table in ("trades", "l2", "bbo"):
        batch = getattr(batches, table)
        if batch is None or batch.num_rows == 0:
            continue
        counts = into.setdefault(table, {})
        column = batch.column("symbol")
        if isinstance(column.type, pa.DictionaryType):
            column = column.dictionary_decode()
        for entry in pc.value_counts(column).to_pylist():
            counts[entry["values"]] = counts.get(entry["values"], 0) + entry["counts"]


def _p99_ms(stats: Mapping[str, Any]) -> dict[tuple[str, str], float | None]:
    """(venue, table) -> code latency p99 in ms, merged over the sinks."""
    merged: dict[tuple[str, str], Histogram] = {}
    for actor, s in stats.items():
        if not actor.startswith("sink/") or not isinstance(s, Mapping) or not isinstance(s.get("metrics"), Mapping):
            continue
        for series in s["metrics"].get("histograms", ()):
            if series["name"] == metrics.CODE_LATENCY:
                key = (series["exchange"], series["channel"])
                merged.setdefault(key, Histogram()).merge(Histogram.from_dict(series["value"]))
    return {key: metrics.latency_ms(h)["p99"] for key, h in merged.items()}


def _state(
    connector: Mapping[str, Any] | None,
    table: str,
    symbol: str,
    book: Mapping[str, Any] | None,
    stall_s: float,
) -> str:
    if connector is None or connector.get("error") or "symbol_rows" not in connector:
        return "stopped"  # not answering, failed, or not a connector's stats
    if symbol not in (connector.get("subscriptions") or {}).get(table, ()):
        return "stopped"
    if connector.get("stopped"):
        return "stopped"
    if not connector.get("connected"):
        return "connecting"
    age = connector.get("last_message_age_s")
    if age is None or age > stall_s:
        return "stalled" if age is not None else "connecting"
    if table == "l2" and book is not None and symbol in (book.get("invalid") or ()):
        return "resyncing"
    return "live"


def streams(
    streams: Mapping[str, Mapping[str, Any]],
    stats: Mapping[str, Any],
    rates: Mapping[Key, float] | None = None,
    *,
    pending: Mapping[str, float] | None = None,
    stall_s: float = STALL_S,
) -> pa.Table:
    """One row per (venue, table, symbol, connection) of every stream that ran.

    Args:
        streams: stream id -> {"venue", "tables", "symbols", "connectors"} (what the controller knows;
            "symbols_ran" when present also lists symbols since unsubscribed).
        stats: actor id -> its `stats()` dict (a dict with only "error" when it did not answer).
        rates: (connection, table, symbol) -> rows/s (`RateWindow.rates`).
        pending: connector id -> CPUs its placement group waits for.
    """
    rates = rates or {}
    pending = pending or {}
    p99 = _p99_ms(stats)
    columns: dict[str, list[Any]] = {name: [] for name in STREAMS_SCHEMA.names}
    for stream_id, info in sorted(streams.items()):
        venue = str(info["venue"])
        book = stats.get(f"book/{venue}")
        book = book if isinstance(book, Mapping) else None
        book_symbols = (book or {}).get("symbols") or {}
        symbols = list(dict.fromkeys([*info.get("symbols", ()), *info.get("symbols_ran", ())]))
        for connection in info.get("connectors", ()):
            answer = stats.get(connection)
            s = answer if isinstance(answer, Mapping) else None
            for table in info["tables"]:
                for symbol in symbols:
                    key = (connection, table, symbol)
                    if connection in pending:
                        state = f"waiting for {pending[connection]:g} CPU"
                    else:
                        state = _state(s, table, symbol, book, stall_s)
                    rows = ((s or {}).get("symbol_rows") or {}).get(table, {}).get(symbol)
                    if state == "stopped" and rows is None:
                        continue  # never carried here (another connection of the stream carries it)
                    per_symbol = book_symbols.get(symbol) if table == "l2" else None
                    columns["venue"].append(venue)
                    columns["table"].append(table)
                    columns["symbol"].append(symbol)
                    columns["connection"].append(connection)
                    columns["stream"].append(stream_id)
                    columns["state"].append(state)
                    columns["rows_per_s"].append(rates.get(key))
                    columns["rows"].append(rows)
                    columns["last_message_age_s"].append((s or {}).get("last_message_age_s"))
                    columns["gaps"].append(per_symbol.get("gaps", 0) if per_symbol else (0 if table == "l2" else None))
                    columns["resyncs"].append(
                        per_symbol.get("resyncs", 0) if per_symbol else (0 if table == "l2" else None)
                    )
                    columns["reconnects"].append((s or {}).get("reconnects"))
                    columns["latency_p99_ms"].append(p99.get((venue, table)))
                    columns["node"].append((s or {}).get("node"))
    return pa.table(columns, schema=STREAMS_SCHEMA)


def stats_table(stats: Mapping[str, Any]) -> pa.Table:
    """One row per actor: its kind, whether it answered, and its main counters."""
    columns: dict[str, list[Any]] = {name: [] for name in STATS_SCHEMA.names}
    for actor, answer in sorted(stats.items()):
        s = answer if isinstance(answer, Mapping) else {"error": repr(answer)}
        kind = actor.split("/", 1)[0] if actor.startswith(("sink/", "book/")) else "connector"
        if actor.endswith("/arbiter"):
            kind = "arbiter"
        error = s.get("error")
        columns["actor"].append(actor)
        columns["kind"].append(kind)
        columns["venue"].append(s.get("venue") or s.get("exchange"))
        columns["ok"].append(not error)
        columns["error"].append(str(error) if error else None)
        columns["messages"].append(_int(s.get("messages")))
        rows = s.get("rows")
        columns["rows"].append(_int(rows) if not isinstance(rows, Mapping) else _nested_sum(rows))
        columns["reconnects"].append(_int(s.get("reconnects")))
        age = s.get("last_message_age_s")
        columns["last_message_age_s"].append(float(age) if isinstance(age, int | float) else None)
        columns["node"].append(s.get("node"))
    return pa.table(columns, schema=STATS_SCHEMA)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _nested_sum(value: Any) -> int:
    if isinstance(value, Mapping):
        return sum(_nested_sum(v) for v in value.values())
    return int(value) if isinstance(value, int | float) else 0


def events_table(batches: Iterable[pa.RecordBatch | pa.Table], since: float | None = None) -> pa.Table:
    """The `events` rows of `batches` at or after `since` (epoch seconds; None: all), oldest first."""
    from xtrader.schema import EVENTS

    tables = [pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b for b in batches]
    tables = [t.select(EVENTS.names).cast(EVENTS) for t in tables if t.num_rows]
    table = pa.concat_tables(tables) if tables else EVENTS.empty_table()
    if since is not None:
        import pyarrow.compute as pc

        cutoff = pa.scalar(int(since * 1e9), pa.int64()).cast(EVENTS.field("ts").type)
        table = table.filter(pc.greater_equal(table["ts"], cutoff))
    return table.sort_by("ts")


class EventTail:
    """The newest `events` batches, at most about `max_rows` rows (what `events(since)` reads)."""

    def __init__(self, max_rows: int = 10_000) -> None:
        self.max_rows = max_rows
        self.batches: deque[pa.RecordBatch] = deque()
        self.rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.batches.append(batch)
        self.rows += batch.num_rows
        while len(self.batches) > 1 and self.rows - self.batches[0].num_rows >= self.max_rows:
            self.rows -= self.batches.popleft().num_rows

    def table(self, since: float | None = None) -> pa.Table:
        return events_table(list(self.batches), since)
