"""Where a producer's batches go: trades / bbo / events to the sinks, l2 to the order-book actor.

Every sink write carries (source_id, batch_seq); `source_id` is unique per
actor incarnation, so a retried call is written once and a restarted
producer's new batches are not mistaken for repeats. Each sink has its own
seq counter, and a seq is taken only when the batch is actually sent to that
sink: a batch the lossy policy drops takes none, so no sink waits for a gap.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from actors._downstream import Downstream
from xtrader.batch import Batches
from xtrader.flow import Policy


def source_id(name: str) -> str:
    """A producer id unique to this incarnation of the actor."""
    return f"{name}#{uuid.uuid4().hex[:8]}"


class Outputs:
    """The downstream windows of one producer.

    Args:
        name: the producer's name (connection id, `book:<stream>`...).
        sinks: SinkActor handles.
        book: the OrderBookActor handle, when l2 is captured and does not go through an arbiter.
        arbiter: the ArbiterActor handle, when the stream is redundant (then everything goes there).
    """

    def __init__(
        self,
        name: str,
        sinks: list[Any],
        book: Any = None,
        arbiter: Any = None,
        *,
        max_inflight: int = 4,
        policy: Policy = "block",
    ) -> None:
        self.name = name
        self.source_id = source_id(name)
        self.sinks = sinks
        self.book = book
        self.arbiter = arbiter
        #: the next batch_seq of each sink
        self.sink_seqs = [0] * len(sinks)
        self.dropped_reported = 0
        self.max_inflight = max_inflight
        self.pending_writes: list[asyncio.Task[None]] = []
        self.sink_windows = [Downstream(max_inflight, policy) for _ in sinks]
        self.book_window = Downstream(max_inflight, policy)
        self.arbiter_window = Downstream(max_inflight, policy)

    async def emit(self, batches: Batches, rest: bool = False) -> None:
        """Send one producer batch on; `rest` marks a REST book snapshot (never dropped)."""
        if self.arbiter is not None and not rest:
            await self.arbiter_window.send(
                batches.rows(), lambda: self.arbiter.on_batch.remote(self.name, batches), precious=False
            )
            return
        tables = _direct_tables(batches)
        if tables:
            await self.write(tables)
        if batches.l2 is not None and self.book is not None:
            l2 = Batches(batches.exchange, l2=batches.l2, l2_messages=batches.l2_messages)
            await self.book_window.send(
                batches.l2.num_rows, lambda: self.book.on_batch.remote(self.name, l2, rest), precious=rest
            )

    def submit(self, batches: Batches, rest: bool = False) -> list[Any]:
        """Start the downstream calls of one batch now, without a window (the caller bounds them); the refs."""
        if self.arbiter is not None and not rest:
            return [self.arbiter.on_batch.remote(self.name, batches)]
        refs: list[Any] = []
        tables = _direct_tables(batches)
        if tables:
            refs.extend(self._sink_write(i, tables, "")() for i in range(len(self.sinks)))
        if batches.l2 is not None and self.book is not None:
            l2 = Batches(batches.exchange, l2=batches.l2, l2_messages=batches.l2_messages)
            refs.append(self.book.on_batch.remote(self.name, l2, rest))
        return refs

    async def write(self, tables: dict[str, Any], origin: str = "") -> None:
        """Write tables to every sink, each under its next batch_seq."""
        await self._write(tables, origin)

    async def write_soon(self, tables: dict[str, Any], origin: str = "") -> None:
        """`write` without holding the caller: the slots are awaited (and the seqs taken) in a task.

        The caller (an actor method) returns at once, so the next batch is not held up behind
        a sink ack; at most 2 * max_inflight writes wait here, beyond that the caller waits too.
        """
        task = asyncio.get_running_loop().create_task(self._write(tables, origin))
        self.pending_writes.append(task)
        self.pending_writes = [t for t in self.pending_writes if not t.done()]
        while len(self.pending_writes) > 2 * self.max_inflight:
            await self.pending_writes[0]
            self.pending_writes = [t for t in self.pending_writes if not t.done()]

    async def _write(self, tables: dict[str, Any], origin: str) -> None:
        rows = sum(b.num_rows for b in tables.values())
        for index, window in enumerate(self.sink_windows):
            await window.send(rows, self._sink_write(index, tables, origin))

    def _sink_write(self, index: int, tables: dict[str, Any], origin: str) -> Any:
        """A thunk starting sink `index`'s write; the batch_seq is taken when it is called (the batch is sent)."""

        def call() -> Any:
            seq = self.sink_seqs[index]
            self.sink_seqs[index] = seq + 1
            return self.sinks[index].write.remote(self.source_id, seq, tables, origin)

        return call

    async def warm(self) -> None:
        """One round trip to every downstream actor, so the first data batch does not pay for the connection."""
        handles = [h for h in (self.arbiter, self.book, *self.sinks) if h is not None]
        for handle in handles:
            await handle.stats.remote()

    async def drain(self) -> None:
        while self.pending_writes:
            await asyncio.gather(*self.pending_writes, return_exceptions=True)
            self.pending_writes = [t for t in self.pending_writes if not t.done()]
        for window in (self.arbiter_window, self.book_window, *self.sink_windows):
            await window.drain()

    def count_drops(self, stats: Any, exchange: str) -> None:
        """Add rows the lossy policy dropped since the last call to an `xtrader.metrics.Stats`."""
        from xtrader import metrics

        dropped = sum(w.gate.stats.dropped_rows for w in (self.arbiter_window, self.book_window, *self.sink_windows))
        if dropped > self.dropped_reported:
            stats.count(metrics.DROPPED_ROWS, dropped - self.dropped_reported, exchange)
            self.dropped_reported = dropped

    def stats(self) -> dict[str, Any]:
        flows = [w.stats() for w in (self.arbiter_window, self.book_window, *self.sink_windows)]
        total: dict[str, int] = {}
        for flow in flows:
            for key, value in flow.items():
                total[key] = (
                    max(total.get(key, 0), value) if key in ("high_water", "inflight") else (total.get(key, 0) + value)
                )
        return total


def _direct_tables(batches: Batches) -> dict[str, Any]:
    """The tables of a producer batch that go straight to the sinks."""
    pairs = (("trades", batches.trades), ("bbo", batches.bbo), ("events", batches.events))
    return {table: batch for table, batch in pairs if batch is not None}
