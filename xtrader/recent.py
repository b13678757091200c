"""What a downstream actor took from an arbiter lately: the witness a restarted arbiter rebuilds from.

An arbiter's first-arrival state (`xtrader.arbiter`) lives in memory; Ray restarts a killed arbiter
with none, and a late redundant copy of an update its predecessor passed on would win again. Its
outputs go to the sinks (trades, bbo) and to the order-book actor (l2), each of which keeps here the
key columns of what it took from an arbiter (sources starting with `PREFIX`) for the last `window_s`
seconds (and at most `max_rows` rows); the restarted arbiter asks for them before it takes its first
input (`ArbiterActor`, see docs/guide.md "Arbiter restarts") and treats every key as already passed on.

Only the key columns are kept (`COLUMNS`), copied out of the batch (a received batch may be a view of
a larger buffer that must not stay pinned), so the cost is a few dozen bytes per row of a redundant
stream, and nothing for streams with one connection (no arbiter).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pyarrow as pa

#: sources whose rows are kept: an arbiter's derived keys (`actors._route`: `arbiter:<stream>|<input>`)
PREFIX = "arbiter:"
#: how long rows are kept: longer than an arbiter remembers a key (`pipeline.arbiter_ttl_s`, 60 s by default)
#: plus a restart, so a copy its predecessor could still have recognised is recognised after the restart
WINDOW_S = 180.0
#: the most rows kept, all tables together (the oldest go first)
MAX_ROWS = 1_000_000
#: the columns an arbiter's keys are made of (`xtrader.arbiter_batches.UpdateKeys`), per table (l2: its messages)
COLUMNS = {
    "trades": ("symbol", "trade_id"),
    "bbo": ("symbol", "seq", "exchange_ts", "bid_price", "bid_size", "ask_price", "ask_size"),
    "l2": ("symbol", "seq", "prev_seq", "first_seq", "checksum"),
}


class _Entry(NamedTuple):
    at_ns: int
    source: str
    table: str
    keys: pa.RecordBatch


class RecentKeys:
    """Key columns of the rows taken from arbiters, per table, for the last `window_s` seconds."""

    def __init__(
        self,
        window_s: float = WINDOW_S,
        max_rows: int = MAX_ROWS,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.window_ns = int(window_s * 1e9)
        self.max_rows = max_rows
        self.clock = clock
        self.entries: deque[_Entry] = deque()
        self.rows: dict[str, int] = {}

    def add(self, source: str, table: str, batch: pa.RecordBatch | None) -> None:
        """Keep the key columns of `batch` when `source` is an arbiter's (else nothing)."""
        if batch is None or not batch.num_rows or not source.startswith(PREFIX) or table not in COLUMNS:
            return
        keys = pa.RecordBatch.from_arrays([_owned(batch.column(c)) for c in COLUMNS[table]], list(COLUMNS[table]))
        now = self.clock()
        self.entries.append(_Entry(now, source, table, keys))
        self.rows[table] = self.rows.get(table, 0) + keys.num_rows
        self._trim(now)

    def get(self, prefix: str) -> dict[str, pa.Table]:
        """The kept key columns of the rows from sources starting with `prefix`, per table (oldest first)."""
        self._trim(self.clock())
        out: dict[str, list[pa.RecordBatch]] = {}
        for entry in self.entries:
            if entry.source.startswith(prefix):
                out.setdefault(entry.table, []).append(entry.keys)
        return {table: pa.Table.from_batches(batches) for table, batches in out.items()}

    def _trim(self, now: int) -> None:
        entries = self.entries
        while entries and (now - entries[0].at_ns > self.window_ns or sum(self.rows.values()) > self.max_rows):
            entry = entries.popleft()
            self.rows[entry.table] -= entry.keys.num_rows

    def stats(self) -> dict[str, int]:
        return {table: rows for table, rows in self.rows.items() if rows}


def _owned(column: pa.Array) -> pa.Array:
    """`column` in buffers of its own (a dictionary decoded), so the batch it came from can be freed."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column.take(pa.array(np.arange(len(column), dtype=np.int64)))
