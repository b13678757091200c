"""The front of a sink: idempotent writes, row counts per table and venue, latency.

Every batch travels with `(source_id, batch_seq)`: the producer numbers its
batches 0, 1, 2, ... A restarted producer (or a retried Ray call) may send a
batch again; the front writes each (source_id, batch_seq) once. Sequences may
arrive out of order (several in flight), so the front keeps, per source, the
highest contiguous seq written plus the set of seqs seen above it.

Latency: code latency is receipt -> sink write on the monotonic clock, from
the batch's `xtrader.clock.Anchor` (the producer's clocks at its flush; see
`xtrader.clock` for why and for batches from another host, which are counted in
`latency_skipped_rows` instead); overall latency is sink write wall time -
exchange event time. Both are mergeable `xtrader.histogram.Histogram`s in the
`xtrader.metrics` snapshot.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from xtrader import metrics
from xtrader.clock import Anchor, code_latency_ns
from xtrader.histogram import Histogram


class Writer(Protocol):
    """What the front needs of a sink (ParquetSink, QuestDBSink, or a test double)."""

    def write(self, table: str, batch: pa.RecordBatch) -> Any: ...

    def flush(self) -> Any: ...

    def close(self) -> Any: ...


class _Seen:
    """Batch seqs of one source already written: a contiguous floor plus a sparse set above it."""

    __slots__ = ("above", "floor")

    def __init__(self) -> None:
        self.floor = -1
        self.above: set[int] = set()

    def add(self, seq: int) -> bool:
        """True when `seq` is new (and records it)."""
        if seq <= self.floor or seq in self.above:
            return False
        self.above.add(seq)
        while self.floor + 1 in self.above:
            self.floor += 1
            self.above.discard(self.floor)
        return True


class SinkFront:
    """Idempotent, counting front of one writer.

    Args:
        writer: the sink (its `write(table, batch)` is called once per table of a new batch).
        name: the sink's name in stats (`parquet`, `questdb`).
        actor: the actor id in metric labels.
        clock: wall clock in ns.
        mono: monotonic clock in ns (the connector's receipt clock: `time.perf_counter_ns`).
    """

    def __init__(
        self,
        writer: Writer,
        name: str = "sink",
        actor: str = "",
        clock: Callable[[], int] = time.time_ns,
        mono: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.writer = writer
        self.name = name
        self.metrics = metrics.Stats(actor or f"sink/{name}")
        self.clock = clock
        self.mono = mono
        self.latency_skipped_rows = 0  # no comparable monotonic receipt (no anchor, another host)
        self.seen: defaultdict[str, _Seen] = defaultdict(_Seen)
        self.rows: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.origins: defaultdict[str, defaultdict[str, defaultdict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )
        self.batches = 0
        self.repeats = 0
        self.latency = Histogram()  # receipt -> sink write, ns, all exchanges
        self.write_time = Histogram()  # one write() call, ns (Parquet: queueing; QuestDB: the request)

    def write(
        self,
        source_id: str,
        batch_seq: int,
        tables: Mapping[str, pa.RecordBatch | None],
        origin: str = "",
        anchor: Anchor | None = None,
    ) -> bool:
        """Write each table of a batch once; False (nothing written) for a repeat.

        `origin` tags rows that did not come from the websocket (`rest`: a REST book
        snapshot); they are counted in `rows` and also under `origins`. `anchor`: the
        producer's clocks at its flush (code latency).
        """
        if not self.seen[source_id].add(batch_seq):
            self.repeats += 1
            return False
        start = time.perf_counter()
        for table, batch in tables.items():
            if batch is None or not batch.num_rows:
                continue
            self.writer.write(table, batch)
            exchange = _exchange(batch)
            self.rows[table][exchange] += batch.num_rows
            self.metrics.count(metrics.ROWS, batch.num_rows, exchange, table)
            if origin:
                self.origins[origin][table][exchange] += batch.num_rows
            elif "receive_ts" in batch.schema.names:  # a REST snapshot's age is not latency
                self._latency(batch, exchange, table, anchor)
        self.write_time.record(int((time.perf_counter() - start) * 1e9))
        self.batches += 1
        return True

    def _latency(self, batch: pa.RecordBatch, exchange: str, table: str, anchor: Anchor | None) -> None:
        now = self.clock()
        receive = np.asarray(batch.column("receive_ts").cast(pa.int64()), dtype=np.int64)
        code = code_latency_ns(receive, anchor, self.mono())
        if code is None:
            self.latency_skipped_rows += batch.num_rows
        else:
            self.latency.record_many(code)
            self.metrics.histogram(metrics.CODE_LATENCY, exchange, table).record_many(code)
        event = batch.column("exchange_ts").cast(pa.int64())
        if event.null_count < len(event):
            values = np.asarray(event.drop_null() if event.null_count else event, dtype=np.int64)
            self.metrics.histogram(metrics.OVERALL_LATENCY, exchange, table).record_many(now - values)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

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
            "rows": {table: dict(venues) for table, venues in self.rows.items()},
            "origins": {o: {t: dict(v) for t, v in tables.items()} for o, tables in self.origins.items()},
            "batches": self.batches,
            "repeats": self.repeats,
            "latency_ms": metrics.latency_ms(self.latency),
            "latency_skipped_rows": self.latency_skipped_rows,
            "write_ms": {k: v for k, v in metrics.latency_ms(self.write_time).items() if k != "p999"},
            "metrics": self.metrics.snapshot(),
        }


def _exchange(batch: pa.RecordBatch) -> str:
    """The venue of a batch (one venue per batch; the first row's)."""
    column = batch.column("exchange")
    if pa.types.is_dictionary(column.type):
        return str(column.dictionary[column.indices[0].as_py()].as_py())
    return str(column[0].as_py())
