"""What both sinks share: batch validation, per-exchange row counts, duration percentiles."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from xtrader import schema
from xtrader.errors import XtraderError
from xtrader.histogram import Histogram


class SinkError(XtraderError):
    """A sink could not store data it had accepted; the data is kept and retried.

    Not terminal: the cause (disk full, permissions, server down) may go away.
    """


class SinkClosed(SinkError):
    """The sink was closed: retrying cannot help."""


def conform(table: str, batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` as the stored schema of `table` (wire-only columns dropped, safe casts applied).

    Raises:
        ValueError: unknown table, missing columns, or types that cannot be cast safely.
    """
    if table not in schema.TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {sorted(schema.TABLES)}")
    target = schema.TABLES[table]
    missing = [name for name in target.names if name not in batch.schema.names]
    if missing:
        raise ValueError(f"{table}: batch lacks column(s) {missing}")
    batch = schema.stored(batch, table)
    if batch.schema.equals(target, check_metadata=False):
        return batch
    try:
        return batch.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ValueError(f"{table}: batch schema does not match schema.{table.upper()}: {exc}") from exc


def rows_by_exchange(batch: pa.RecordBatch) -> dict[str, int]:
    """Row count per value of the `exchange` column."""
    counts = pc.value_counts(batch.column("exchange"))
    return {
        str(value): int(count)
        for value, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    }


def add_counts(totals: dict[str, dict[str, int]], table: str, counts: dict[str, int]) -> None:
    per_table = totals.setdefault(table, {})
    for exchange, rows in counts.items():
        per_table[exchange] = per_table.get(exchange, 0) + rows


class Durations:
    """Durations of one operation (a sink flush) in a mergeable histogram (ns): p50 / p99 in ms, and the
    histogram itself for the metrics (`xtrader_sink_flush_seconds`). Not thread-safe: callers lock."""

    def __init__(self) -> None:
        self.histogram = Histogram()

    def add(self, seconds: float) -> None:
        self.histogram.record(int(seconds * 1e9))

    def percentile_ms(self, fraction: float) -> float | None:
        """The percentile in ms (within the histogram's 0.4%), None when nothing was measured."""
        if not self.histogram.count:
            return None
        return self.histogram.quantile(fraction) / 1e6
