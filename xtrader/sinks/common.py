"""What both sinks share: batch validation, per-exchange row counts, duration percentiles."""

from __future__ import annotations

import collections
import math

import pyarrow as pa
import pyarrow.compute as pc

from xtrader import schema
from xtrader.errors import XtraderError


class SinkError(XtraderError):
    """A sink could not store data it had accepted; the data is kept and retried.

    Not terminal: the cause (disk full, permissions, server down) may go away.
    """


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
    """The last `size` durations (seconds), for p50 / p99 in milliseconds."""

    def __init__(self, size: int = 1024) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._values.append(seconds)

    def percentile_ms(self, fraction: float) -> float | None:
        """Nearest-rank percentile in ms, None when nothing was measured."""
        if not self._values:
            return None
        ordered = sorted(self._values)
        rank = max(0, math.ceil(fraction * len(ordered)) - 1)
        return ordered[rank] * 1000.0
