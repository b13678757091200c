"""The front of a sink: idempotent writes, row counts per table and venue, latency.

Every batch travels with `(source_id, batch_seq)` (see `actors._route` for how
producers number them). A restarted producer (or a retried Ray call) may send a
batch again; the front writes each (source_id, batch_seq) once. Sequences may
arrive out of order (several in flight), so the front keeps, per source, the
highest contiguous seq written plus the set of seqs seen above it
(`xtrader.seen`: at most `MAX_ABOVE` of them; beyond, the floor jumps over the oldest
gap, counted in `skipped_gaps`). A write may also carry `skipped`: ranges of
seqs its producer will never send, so the floor passes them.

The seen state survives the sink: it starts from the writer's
`recovered_seen()` (Parquet: every key its write-ahead log ever took, see
`xtrader.sinks.wal`), and a writer with `save_seen(state)` (QuestDB) gets it on
every `tick()` and at `close()`. So do the counts (`rows`, `origins`): the state
counts the rows of the batches it records (`SeenState.rows`), and a restarted
front starts from them, so the summary's `written` after a sink restart still
counts what its predecessor stored, exactly the batches it answers as repeats.

A seq is recorded only once every table of its batch is stored. A `SinkError`
(disk full, server down) is retried in place with capped backoff for up to
`retry_s`, then raised; the tables already stored are remembered, so the
producer's retry stores only the rest. A writer with `write_tables(tables,
source, seq)` (ParquetSink) takes a whole batch at once; its
`recovered_keys` (batches replayed from its log at start) are marked seen.

A restarted arbiter rebuilds its first-arrival state from what the sinks stored: the front keeps the key
columns of the trades and bbo rows of every arbiter's writes for a while (`recent_keys`, `xtrader.recent`).

`stall(delay_s, duration_s)` is a fault hook (tests, chaos): every write waits `delay_s` first for the
next `duration_s` seconds, as a slow sink would; such writes are counted in `stalled_writes`, and
the code latency of their rows is also kept apart (`stall_latency_ms`: the latency during the stall).

`start_timer(interval_s)` runs `tick()` every `interval_s`
(`pipeline.flush_interval_s`) on a thread of its own: the writer's `tick(hold_s)`
(Parquet: rows held longer are written) or else its `flush()` (QuestDB: replay
the spill while traffic is idle). Every call into the writer holds one lock.

Health: a writer with a `failing` attribute (why it cannot write, None while it can: a full or read-only
Parquet disk, QuestDB unreachable) is watched on every write and tick; when it starts failing the front
records an `events` row (`error`, exchange `xtrader`, the reason and where the data waits) and when it
works again another (`recovered`, with the outage's length). Each row goes to the writer's own `events`
table (through its log or spill, so it is stored once the sink works again) and to `on_event` (the sink
actor's recent events).

Latency: code latency is receipt -> sink write on the monotonic clock, from
the batch's `xtrader.clock.Anchor` (the producer's clocks at its flush; see
`xtrader.clock` for why and for batches from another host, which are counted in
`latency_skipped_rows` instead); overall latency is sink write wall time -
exchange event time. Both are mergeable `xtrader.histogram.Histogram`s in the
`xtrader.metrics` snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from xtrader import metrics, schema
from xtrader.clock import Anchor, code_latency_ns
from xtrader.histogram import Histogram
from xtrader.recent import RecentKeys
from xtrader.retry import backoff
from xtrader.seen import Seen, SeenState
from xtrader.seen import exchange as _exchange
from xtrader.sinks.common import SinkClosed, SinkError
from xtrader.sinks.wal import Skipped

log = logging.getLogger(__name__)

_Seen = Seen  # the per-source state (kept under its old name for callers)


class Writer(Protocol):
    """What the front needs of a sink (ParquetSink, QuestDBSink, or a test double)."""

    def write(self, table: str, batch: pa.RecordBatch) -> Any: ...

    def flush(self) -> Any: ...

    def close(self) -> Any: ...


class SinkFront:
    """Idempotent, counting front of one writer.

    Args:
        writer: the sink (its `write(table, batch)` is called once per table of a new batch).
        name: the sink's name in stats (`parquet`, `questdb`).
        actor: the actor id in metric labels.
        clock: wall clock in ns.
        mono: monotonic clock in ns (the connector's receipt clock: `time.perf_counter_ns`).
        retry_s: how long a `SinkError` is retried in place before it is raised.
        owner: whose counts a recovered state holds (the sink's writer id, the same after a restart): a state
            saved by another owner (an earlier capture on the same QuestDB spill folder) gives its keys only.
        sleep: between retries (injectable for tests).
    """

    def __init__(
        self,
        writer: Writer,
        name: str = "sink",
        actor: str = "",
        clock: Callable[[], int] = time.time_ns,
        mono: Callable[[], int] = time.perf_counter_ns,
        *,
        retry_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        owner: str = "",
    ) -> None:
        self.writer = writer
        self.name = name
        self.metrics = metrics.Stats(actor or f"sink/{name}")
        self.clock = clock
        self.mono = mono
        self.latency_skipped_rows = 0  # no comparable monotonic receipt (no anchor, another host)
        recovered = getattr(writer, "recovered_seen", None)
        self.seen: SeenState = recovered() if callable(recovered) else SeenState()
        #: tables of a batch already stored when a later one failed
        self.partial: dict[tuple[str, int], set[str]] = {}
        self.retry_s = retry_s
        self.sleep = sleep
        self.retries = 0
        self.failures = 0
        self._changes = 0  # changes to `seen`, and how many were saved (a writer with `save_seen`)
        self._saved = 0
        self.lock = threading.RLock()
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()
        for source, seq in getattr(writer, "recovered_keys", ()):
            self.seen.add(source, seq)
        self.rows: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.origins: defaultdict[str, defaultdict[str, defaultdict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )
        if owner and self.seen.owner and self.seen.owner != owner:
            self.seen.rows = {}  # another capture's counts
        self.seen.owner = owner or self.seen.owner
        for (origin, table, exchange), rows in self.seen.rows.items():  # what a predecessor stored
            self.rows[table][exchange] += rows
            if origin:
                self.origins[origin][table][exchange] += rows
        self.batches = 0
        self.repeats = 0
        #: key columns of the trades / bbo rows taken from arbiters lately (a restarted arbiter's rebuild)
        self.recent = RecentKeys()
        self.latency = Histogram()  # receipt -> sink write, ns, all exchanges
        self.write_time = Histogram()  # one write() call, ns (Parquet: queueing; QuestDB: the request)
        self.stall_delay_s = 0.0
        self.stall_until = 0.0  # time.monotonic()
        self.stalled_writes = 0
        self.stall_latency = Histogram()  # code latency of the rows of stalled writes, ns
        self.on_event: Callable[[pa.RecordBatch], None] | None = None
        self.health_events = 0
        self._failing: str | None = None
        self._failing_since = 0.0
        self._stalled = False

    def write(
        self,
        source_id: str,
        batch_seq: int,
        tables: Mapping[str, pa.RecordBatch | None],
        origin: str = "",
        anchor: Anchor | None = None,
        skipped: Skipped = (),
    ) -> bool:
        """Write each table of a batch once; False (nothing written) for a repeat.

        `origin` tags rows that did not come from the websocket (`rest`: a REST book
        snapshot); they are counted in `rows` and also under `origins`. `anchor`: the
        producer's clocks at its flush (code latency). `skipped`: `(source, low, high)`
        ranges of seqs the producer will never send (recorded as seen).

        Raises:
            SinkError: still failing after `retry_s`; the batch is not recorded (a retry stores what is missing).
        """
        with self.lock:
            return self._write(source_id, batch_seq, tables, origin, anchor, tuple(skipped))

    def _write(
        self,
        source_id: str,
        batch_seq: int,
        tables: Mapping[str, pa.RecordBatch | None],
        origin: str,
        anchor: Anchor | None,
        skipped: Skipped,
    ) -> bool:
        if skipped:
            self.seen.skip(skipped)
            self._changes += 1
        seen = self.seen[source_id]
        if batch_seq in seen:
            self.repeats += 1
            return False
        start = time.perf_counter()
        self._stalled = bool(self.stall_delay_s) and time.monotonic() < self.stall_until
        if self._stalled:
            self.stalled_writes += 1
            self.sleep(self.stall_delay_s)
        key = (source_id, batch_seq)
        done = self.partial.get(key, set())
        todo = {t: b for t, b in tables.items() if b is not None and b.num_rows and t not in done}
        write_tables = getattr(self.writer, "write_tables", None)
        if callable(write_tables):
            self._retrying(lambda: write_tables(todo, source_id, batch_seq, skipped, origin))
            self._count(todo, origin, anchor)
        else:
            for table, batch in todo.items():
                try:
                    self._retrying(lambda t=table, b=batch: self.writer.write(t, b))  # type: ignore[misc]
                except SinkError:
                    if done:
                        self.partial[key] = done
                    raise
                done = done | {table}
                self._count({table: batch}, origin, anchor)
        self.partial.pop(key, None)
        for table in ("trades", "bbo"):
            self.recent.add(source_id, table, tables.get(table))
        seen.add(batch_seq)
        self._changes += 1
        self.write_time.record(int((time.perf_counter() - start) * 1e9))
        self.batches += 1
        self._health()
        return True

    def _health(self) -> None:
        """An `events` row when the writer starts failing, and one when it works again; call with the lock."""
        failing = getattr(self.writer, "failing", None)
        failing = failing if isinstance(failing, str) else None
        if (failing is None) == (self._failing is None):
            return
        if failing is not None:
            self._failing_since = time.monotonic()
            where = "the write-ahead log" if hasattr(self.writer, "write_tables") else "the spill"
            kind, detail = "error", f"{self.name} sink failing: {failing}; the data waits in {where}"
            log.error("%s", detail)
        else:
            kind = "recovered"
            detail = f"{self.name} sink writes again after {time.monotonic() - self._failing_since:.1f} s"
            log.warning("%s", detail)
        self._failing = failing
        self._record_event(kind, detail)

    def _record_event(self, kind: str, detail: str) -> None:
        row = pa.RecordBatch.from_arrays(
            [
                pa.array(["xtrader"], schema.EVENTS.field("exchange").type),
                pa.array([None], schema.EVENTS.field("symbol").type),
                pa.array([self.clock()], pa.int64()).cast(schema.EVENTS.field("ts").type),
                pa.array([kind], schema.EVENTS.field("kind").type),
                pa.array([detail[:500]], pa.string()),
            ],
            schema=schema.EVENTS,
        )
        self.health_events += 1
        if self.on_event is not None:
            self.on_event(row)
        write_tables = getattr(self.writer, "write_tables", None)
        for attempt in range(2):  # a failing Parquet writer raises its stored error once, then takes the row
            try:  # stored with the sink's data (its log or spill keeps it while the sink fails)
                if callable(write_tables):
                    write_tables({"events": row}, f"sink:{self.name}", self.health_events, counted=False)
                else:
                    self.writer.write("events", row)
                return
            except Exception as exc:  # the sink cannot take even this row: it is in the actor's tail and the log
                if attempt:
                    log.warning("%s: could not store the events row %r: %r", self.name, detail, exc)

    def stall(self, delay_s: float, duration_s: float) -> None:
        """Fault hook: delay every write by `delay_s` for the next `duration_s` seconds (a slow sink)."""
        self.stall_delay_s = delay_s
        self.stall_until = time.monotonic() + duration_s

    def _retrying(self, call: Callable[[], Any]) -> None:
        """`call()`, retried on SinkError with capped backoff for up to `retry_s`."""
        deadline = time.monotonic() + self.retry_s
        delays = backoff(0.05, 2.0)
        while True:
            try:
                call()
                return
            except SinkClosed:
                self.failures += 1
                raise
            except SinkError as exc:
                delay = next(delays)
                if time.monotonic() + delay > deadline:
                    self.failures += 1
                    raise
                self.retries += 1
                if self.retries == 1 or self.retries % 100 == 0:
                    log.warning("%s: write failed (%s), retrying (%d retries so far)", self.name, exc, self.retries)
                self.sleep(delay)

    def _count(self, tables: Mapping[str, pa.RecordBatch], origin: str, anchor: Anchor | None) -> None:
        self.seen.count(tables, origin)  # saved with the keys (`save_seen`): the counts a restart starts from
        for table, batch in tables.items():
            exchange = _exchange(batch)
            self.rows[table][exchange] += batch.num_rows
            self.metrics.count(metrics.ROWS, batch.num_rows, exchange, table)
            if origin:
                self.origins[origin][table][exchange] += batch.num_rows
            elif "receive_ts" in batch.schema.names:  # a REST snapshot's age is not latency
                self._latency(batch, exchange, table, anchor)

    def _latency(self, batch: pa.RecordBatch, exchange: str, table: str, anchor: Anchor | None) -> None:
        now = self.clock()
        receive = np.asarray(batch.column("receive_ts").view(pa.int64()), dtype=np.int64)  # no copy, unlike cast
        code = code_latency_ns(receive, anchor, self.mono())
        if code is None:
            self.latency_skipped_rows += batch.num_rows
        else:
            self.latency.record_many(code)
            if self._stalled:
                self.stall_latency.record_many(code)
            self.metrics.histogram(metrics.CODE_LATENCY, exchange, table).record_many(code)
        event = batch.column("exchange_ts").view(pa.int64())
        if event.null_count < len(event):
            values = np.asarray(event.drop_null() if event.null_count else event, dtype=np.int64)
            self.metrics.histogram(metrics.OVERALL_LATENCY, exchange, table).record_many(now - values)

    def recent_keys(self, prefix: str) -> dict[str, pa.Table]:
        """Key columns of the trades / bbo rows stored lately from sources starting with `prefix` (`xtrader.recent`)."""
        with self.lock:
            return self.recent.get(prefix)

    def flush(self) -> None:
        with self.lock:
            self.writer.flush()

    def tick(self, interval_s: float) -> None:
        """The periodic flush: the writer's `tick(interval_s)` if it has one, else its `flush()`;
        then the seen state goes to the writer's `save_seen` (if it has one)."""
        with self.lock:
            tick = getattr(self.writer, "tick", None)
            try:
                if callable(tick):
                    tick(interval_s)
                else:
                    self.writer.flush()
                self._save_seen()
            finally:
                self._health()

    def _save_seen(self) -> None:
        save = getattr(self.writer, "save_seen", None)
        if callable(save) and self._changes != self._saved:
            save(self.seen)
            self._saved = self._changes

    def start_timer(self, interval_s: float) -> None:
        """Call `tick()` every `interval_s` on a daemon thread until `close()`."""
        if self._timer is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.tick(interval_s)
                except Exception as exc:  # the next write reports a failing writer; the timer goes on
                    log.warning("%s: periodic flush failed: %r", self.name, exc)

        self._timer = threading.Thread(target=run, name=f"sink-timer-{self.name}", daemon=True)
        self._timer.start()

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        with self.lock:
            self._save_seen()
            self.writer.close()

    def accepted(self) -> dict[str, Any]:
        """Rows accepted per table and venue, and per origin: `stats()`'s "rows" and "origins" alone (no
        histogram is copied; for a caller that polls, as `xtrader bench` does until every row is in)."""
        return {
            "rows": {table: dict(venues) for table, venues in self.rows.items()},
            "origins": {o: {t: dict(v) for t, v in tables.items()} for o, tables in self.origins.items()},
        }

    def stats(self) -> dict[str, Any]:
        """Rows written per table and venue, repeats dropped, latency, and the `xtrader.metrics` snapshot.

        The snapshot's `xtrader_sink_flush_seconds` (channel: the sink's name) holds the writer's own flush
        durations (`flush_times()`: a Parquet writer pass, a QuestDB request), not the time of `write()`.
        """
        flush_times = getattr(self.writer, "flush_times", None)
        if callable(flush_times):
            self.metrics.set_histogram(metrics.SINK_FLUSH, flush_times(), channel=self.name)
        return {
            "sink": self.name,
            **self.accepted(),
            "batches": self.batches,
            "repeats": self.repeats,
            "retries": self.retries,
            "failures": self.failures,
            "stalled_writes": self.stalled_writes,
            "failing": self._failing,
            "health_events": self.health_events,
            "stall_latency_ms": metrics.latency_ms(self.stall_latency),
            "skipped_gaps": sum(seen.skipped for seen in self.seen.values()),
            "sources": len(self.seen),
            "latency_ms": metrics.latency_ms(self.latency),
            "latency_skipped_rows": self.latency_skipped_rows,
            "write_ms": {k: v for k, v in metrics.latency_ms(self.write_time).items() if k != "p999"},
            "metrics": self.metrics.snapshot(),
        }
