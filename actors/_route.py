"""Where a producer's batches go: trades / bbo / events to the sinks, l2 to the order-book actor.

Every sink write carries (source_id, batch_seq), and the sink stores each once,
across its own restarts too (`xtrader.sinkfront`, `xtrader.seen`). Two kinds:

- Root writes (a connector's own batches, the book's periodic snapshots): the
  data is new in each incarnation, and Ray never retries those calls, so the
  id is the producer's name plus an epoch unique to the incarnation
  (`source_id(name)`: `name#<epoch>`), numbered by a per-sink counter. A seq is
  taken only when the batch is actually sent to that sink: a batch the lossy
  policy drops takes none, so no sink waits for a gap.
- Derived writes (the arbiter's and the order-book actor's output for a
  numbered input call): Ray retries an input call on the restarted actor, so
  the key is derived from the input's own key, never from the incarnation:
  input (source, seq) -> `(f"{name}|{source}", seq)` (the book: seq * 2 for
  the REST rows, seq * 2 + 1 for the rest). A restarted arbiter or book thus
  writes a retried call's output under the key it used before its death (a
  repeat at the sink), and new inputs under new keys. The arbiter hands its
  derived key to the book as the book's input key (`origin`). Where an input
  makes no output for a sink (nothing for it, or dropped by the lossy policy)
  the key is reported as skipped with the next write to that sink (and, for
  the book's origins, with the next call to the book), so the sink's floor
  passes it.

Each sink has its own window (`sink_max_inflight` unacknowledged writes per
producer; `pipeline.sink_max_inflight`), and a producer's batch waits for a slot
in each sink's window, never for another sink's acknowledgement: a slow sink
holds the producer back only once its own window is full (`block`), or drops
only its own copies, counted (`lossy`); the other sinks keep up meanwhile.

Calls to the order-book and arbiter actors carry (source_id, seq, dropped): the
producer numbers its calls to each of them 0, 1, 2, ... in the order its batches
were made, and the receiving actor processes them in that order
(`actors._inorder`), whatever order Ray runs them in. `dropped` names numbers
the lossy policy dropped, so the receiver does not wait for them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pyarrow as pa

from actors import PRODUCER_CALLS
from actors._downstream import RETRY_S, Downstream
from xtrader import schema
from xtrader.batch import Batches
from xtrader.clock import Anchor
from xtrader.flow import Policy

log = logging.getLogger(__name__)

#: (source_id, batch_seq) of a derived write
Key = tuple[str, int]
#: (source_id, low, high): seqs that will never be written
Skip = tuple[str, int, int]


def sink_kinds(sinks: list[Any]) -> list[str]:
    """The kind of each sink (`parquet`, `questdb`) from its actor name (`...sink/<kind>`); else its index."""
    return [s.rsplit("sink/", 1)[-1] if isinstance(s, str) and "sink/" in s else str(i) for i, s in enumerate(sinks)]


def source_id(name: str) -> str:
    """A root producer's id: its name plus an epoch unique to this incarnation of the actor."""
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
        sink_max_inflight: int | None = None,
        on_event: Callable[[str, str], None] | None = None,
        sink_kinds: list[str] | None = None,
        retry_s: float = RETRY_S,
        book_window_rows: int | None = None,
    ) -> None:
        self.name = name
        self.source_id = source_id(name)
        self.sinks = sinks
        self.book = book
        self.arbiter = arbiter
        #: the next batch_seq of each sink (root writes)
        self.sink_seqs = [0] * len(sinks)
        #: derived keys skipped since the last write, per sink, and since the last call to the book
        self.sink_skips: list[_Skips] = [_Skips() for _ in sinks]
        self.book_skips = _Skips()
        self.book_numbers = _Numbers()
        #: the next book number whose call may take a slot in the book's window: calls take slots in their
        #: numbers' order, else later calls the book holds for an earlier one could fill the window (deadlock)
        self.book_turn = 0
        #: book calls sent and not yet acknowledged (each call tells the book the lowest: its floor)
        self.book_unacked: set[int] = set()
        self.book_turns: dict[int, asyncio.Future[None]] = {}
        self.arbiter_numbers = _Numbers()
        self.dropped_reported = 0
        self.max_inflight = max_inflight
        self.pending_writes: list[asyncio.Task[Any]] = []
        self.sink_windows = [Downstream(sink_max_inflight or max_inflight, policy, retry_s) for _ in sinks]
        #: told ("drop" | "error", detail) when a sink's window drops a batch or a sink write is given up;
        #: without it, such an `events` row is written to the sinks by this producer itself
        self.on_event = on_event
        #: each sink's kind (`parquet`, `questdb`), for the accounted rows
        self.sink_kinds = list(sink_kinds) if sink_kinds is not None else [str(i) for i in range(len(sinks))]
        #: rows received but never to be stored: (sink kind, table, exchange) -> rows (each has an events row)
        self.accounted: dict[tuple[str, str, str], int] = {}
        self.accounted_reported: dict[tuple[str, str, str], int] = {}
        #: events rows of losses not yet written (without `on_event`), and the task writing them
        self.loss_rows: list[pa.RecordBatch] = []
        self.loss_writer: asyncio.Task[None] | None = None
        #: calls to the book have a window of rows, like a sink's, when `book_window_rows` is given (the connector's
        #: and the arbiter's: see `dispatch`), else of `max_inflight` calls
        self.book_window = (
            Downstream(max_inflight, policy, retry_s)
            if book_window_rows is None
            else Downstream(PRODUCER_CALLS, policy, retry_s, max_rows=book_window_rows)
        )
        self.arbiter_window = Downstream(max_inflight, policy, retry_s)

    def behind(self, calls: int) -> float:
        """The share of this producer's downstreams (the arbiter; else the book and each sink) that hold `calls`
        or more of its calls unacknowledged: its next batch had better grow than be one more call in their
        queue, and may wait longer when none of them is keeping up (`xtrader.connector.Connector`, `behind`)."""
        if self.arbiter is not None:
            windows: tuple[Downstream, ...] = (self.arbiter_window,)
        else:
            windows = (self.book_window, *self.sink_windows) if self.book is not None else tuple(self.sink_windows)
        if not windows:
            return 0.0
        return sum(window.gate.pending >= calls for window in windows) / len(windows)

    def _windows(self) -> tuple[Downstream, ...]:
        """Every downstream window of this producer: the arbiter's, the book's, then each sink's."""
        return (self.arbiter_window, self.book_window, *self.sink_windows)

    def book_ticket(self, batches: Batches) -> int | None:
        """Take the number of `batches`' call to the book now (None when it has no l2 for the book).

        A producer that emits several batches takes their numbers first, in order, so the book
        processes them in that order whichever `emit` gets its window slots first.
        """
        if (batches.l2 is None and not batches.notices) or self.book is None:
            return None
        return self.book_numbers.take()

    def derived(self, key: Key) -> Key:
        """The key of this producer's output for input `key` (stable across its restarts)."""
        return f"{self.name}|{key[0]}", key[1]

    def skip(self, key: Key, sinks: bool = True, book: bool = False) -> None:
        """Derived `key` will never be written to the sinks (and/or be an origin at the book)."""
        if sinks:
            for skips in self.sink_skips:
                skips.add(key[0], key[1], key[1])
        if book and self.book is not None:
            self.book_skips.add(key[0], key[1], key[1])

    def skip_range(self, source: str, low: int, high: int) -> None:
        """Derived seqs `low..high` of `source` will never be written to the sinks."""
        for skips in self.sink_skips:
            skips.add(source, low, high)

    async def emit(
        self, batches: Batches, rest: bool = False, book_seq: int | None = None, key: Key | None = None
    ) -> list[asyncio.Task[bool]]:
        """Send one producer batch on; `rest` marks a REST book snapshot (never dropped).

        `book_seq`: its number from `book_ticket` (taken here when None). `key`: the input call's
        (source, seq) it came from (the arbiter): sink writes and the book's origin derive from it.
        Returns the tasks awaiting each downstream acknowledgement (await them: the batch is then stored,
        or its loss recorded).
        """
        if self.arbiter is not None and not rest:
            seq = self.arbiter_numbers.take()
            arbiter, numbers = self.arbiter, self.arbiter_numbers
            request = _Request(arbiter.on_batch, lambda: (self.name, batches, self.source_id, seq, numbers.report()))
            task = await self.arbiter_window.send(batches.rows(), request, precious=False)
            if task is None:
                numbers.dropped(seq)
                self._lost(list(self.sink_kinds), _direct_tables(batches), "dropped (window to the arbiter full)")
                return []
            return [task]
        if book_seq is None:
            book_seq = self.book_ticket(batches)
        out = self.derived(key) if key is not None else None
        tables = _direct_tables(batches)
        acks: list[asyncio.Task[bool]] = []
        if tables:
            acks.extend(await self._write(tables, "", batches.anchor, out))
        elif out is not None:
            self.skip(out)
        if (batches.l2 is not None or batches.notices) and self.book is not None and book_seq is not None:
            task = await self._to_book(batches, rest, book_seq, out)
            if task is not None:
                acks.append(task)
        elif out is not None:
            self.skip(out, sinks=False, book=True)
        return acks

    async def _to_book(self, batches: Batches, rest: bool, seq: int, out: Key | None) -> asyncio.Task[bool] | None:
        """Call `seq` to the book (its l2 and notices) once it has its turn and a slot in the book's window; the
        task awaiting its acknowledgement (None: the lossy policy dropped it, its rows accounted)."""
        l2 = _book_part(batches)
        rows = batches.l2.num_rows if batches.l2 is not None else 0
        numbers, skips, unacked = self.book_numbers, self.book_skips, self.book_unacked
        call = _Request(
            self.book.on_batch,
            lambda: (
                *(self.name, l2, rest, self.source_id, seq, numbers.report(), out, skips.take()),
                min(unacked, default=seq),  # below it, every call was acknowledged
            ),
        )
        unacked.add(seq)
        while self.book_turn < seq:
            turn = self.book_turns[seq] = asyncio.get_running_loop().create_future()
            await turn
        try:  # notices (a link lost, an unsubscribe) are never dropped
            task = await self.book_window.send(rows, call, precious=rest or bool(batches.notices))
        finally:
            self._book_sent(seq)
        if task is None:
            numbers.dropped(seq)
            if out is not None:
                self.skip(out, sinks=False, book=True)
            if batches.l2 is not None:
                self._lost(list(self.sink_kinds), {"l2": batches.l2}, "dropped (window to the book full)", out)
            unacked.discard(seq)
            return None
        task.add_done_callback(functools.partial(_discard, unacked, seq))
        l2_rows = {"l2": batches.l2} if batches.l2 is not None else {}
        task.add_done_callback(functools.partial(self._given_up, self.book_window, None, l2_rows, call))
        return task

    def _book_sent(self, seq: int) -> None:
        """Book call `seq` has its slot (or was dropped): the next number's turn."""
        self.book_turn = max(self.book_turn, seq + 1)
        turn = self.book_turns.pop(self.book_turn, None)
        if turn is not None and not turn.done():
            turn.set_result(None)

    def dispatch(self, batches: Batches, rest: bool = False) -> Awaitable[Any]:
        """Start the downstream calls of one batch (the connector's emit); the awaitable its producer holds.

        The arbiter's call is started now and awaited to its acknowledgement (it answers once the batch is
        stored). Without an arbiter, the awaitable ends once each sink's write and the book's call have a slot
        in that downstream's own window: their acknowledgements free those slots, not this. So a book that is
        restarting holds back only its own calls (up to its window, `pipeline.window_rows` rows), while
        the connection goes on reading and its trades and quotes are stored.
        """
        if self.arbiter is not None and not rest:
            numbers = self.arbiter_numbers
            return self.arbiter.on_batch.remote(  # type: ignore[no-any-return]
                self.name, batches, self.source_id, numbers.take(), numbers.report()
            )
        # the book's number is taken now, in the order the batches were made; `emit` ends once the slots are taken
        return self.emit(batches, rest, self.book_ticket(batches))

    def submit(self, batches: Batches, rest: bool = False) -> list[Any]:
        """Start the downstream calls of one batch now, without a window (the caller bounds them); the refs."""
        if self.arbiter is not None and not rest:
            numbers = self.arbiter_numbers
            return [self.arbiter.on_batch.remote(self.name, batches, self.source_id, numbers.take(), numbers.report())]
        refs: list[Any] = []
        tables = _direct_tables(batches)
        if tables:
            refs.extend(self._sink_write(i, tables, "", batches.anchor)() for i in range(len(self.sinks)))
        if (batches.l2 is not None or batches.notices) and self.book is not None:
            l2 = _book_part(batches)
            seq, dropped = self.book_numbers.take(), self.book_numbers.report()
            self._book_sent(seq)
            refs.append(self.book.on_batch.remote(self.name, l2, rest, self.source_id, seq, dropped))
        return refs

    async def write(
        self, tables: dict[str, Any], origin: str = "", anchor: Anchor | None = None, key: Key | None = None
    ) -> list[asyncio.Task[bool]]:
        """Write tables to every sink, each under its next batch_seq, or under `key` (a derived write).

        `anchor`: the producer's clocks, for latency. A derived write the lossy policy drops is skipped.
        Returns the tasks awaiting each sink's acknowledgement.
        """
        return await self._write(tables, origin, anchor, key)

    async def write_soon(
        self, tables: dict[str, Any], origin: str = "", anchor: Anchor | None = None, key: Key | None = None
    ) -> asyncio.Task[list[asyncio.Task[bool]]]:
        """`write` without holding the caller: the slots are awaited (and the seqs taken) in a task.

        The caller (an actor method) goes on at once, so the next batch is not held up behind
        a sink ack; at most 2 * max_inflight writes wait here, beyond that the caller waits too.
        Returns that task (its result: the acknowledgement tasks, as `write`'s).
        """
        task = asyncio.get_running_loop().create_task(self._write(tables, origin, anchor, key))
        self.pending_writes.append(task)
        self.pending_writes = [t for t in self.pending_writes if not t.done()]
        while len(self.pending_writes) > 2 * self.max_inflight:
            await self.pending_writes[0]
            self.pending_writes = [t for t in self.pending_writes if not t.done()]
        return task

    async def _write(
        self,
        tables: dict[str, Any],
        origin: str,
        anchor: Anchor | None,
        key: Key | None = None,
        precious: bool = False,
    ) -> list[asyncio.Task[bool]]:
        """A slot in each sink's window, independently (FIFO per window, so each sink's seqs stay in order).

        A derived key a sink's window dropped (lossy) is reported to that sink as skipped with its next
        write, and its rows are accounted (an `events` row). Returns the acknowledgement tasks.
        """
        rows = sum(b.num_rows for b in tables.values())
        calls = [self._sink_write(index, tables, origin, anchor, key) for index in range(len(self.sink_windows))]
        sends = [window.send(rows, call, precious) for window, call in zip(self.sink_windows, calls, strict=True)]
        sent = await asyncio.gather(*sends) if len(sends) > 1 else [await sends[0]] if sends else []
        acks: list[asyncio.Task[bool]] = []
        for index, task in enumerate(sent):
            window = self.sink_windows[index]
            if task is not None:
                task.add_done_callback(functools.partial(self._given_up, window, index, tables, calls[index]))
                acks.append(task)
                continue
            if key is not None:
                self.sink_skips[index].add(key[0], key[1], key[1])
            self._lost(
                [self.sink_kinds[index]],
                tables,
                f"dropped for sink {self.sink_kinds[index]} only: its window was full "
                f"({window.gate.window.max_inflight} writes unacknowledged)",
                key,
                kind="drop",
            )
        return acks

    def _given_up(
        self, window: Downstream, index: int | None, tables: dict[str, Any], call: _Request, task: asyncio.Task[bool]
    ) -> None:
        """A write (or a call to the book) given up after its retries: its rows are accounted, with an events row."""
        if task.cancelled() or task.result():
            return
        args = call.args or ()
        key = (str(args[0]), int(args[1])) if index is not None and len(args) > 1 else None
        if index is None and len(args) > 4:  # the book's call: (name, l2, rest, source, seq, ...)
            key = (str(args[3]), int(args[4]))
        kinds = [self.sink_kinds[index]] if index is not None else list(self.sink_kinds)
        where = f"sink {self.sink_kinds[index]}" if index is not None else "the order-book actor"
        self._lost(kinds, tables, f"{where} failed it after every retry: {window.last_error!r}", key, kind="error")

    def _lost(
        self,
        sinks: list[str],
        tables: dict[str, Any],
        reason: str,
        key: Key | None = None,
        kind: str = "drop",
    ) -> None:
        """Rows received that will never be stored in `sinks`: counted (accounted) and an `events` row each."""
        counted = {t: b for t, b in tables.items() if t != "events" and b is not None and b.num_rows}
        if not counted:
            if tables:
                log.error("%s: an events batch was lost: %s", self.name, reason)
            return
        exchange = _exchange(next(iter(counted.values())))
        for sink in sinks:
            for table, batch in counted.items():
                slot = (sink, table, _exchange(batch))
                self.accounted[slot] = self.accounted.get(slot, 0) + batch.num_rows
        rows = ", ".join(f"{b.num_rows} {t}" for t, b in counted.items())
        where = f"key {key[0]} seq {key[1]}-{key[1]}" if key is not None else f"producer {self.source_id}"
        detail = f"lost: {rows} rows ({where}) for {', '.join(sinks)}: {reason}"
        log.error("%s: %s", self.name, detail)
        if self.on_event is not None:
            self.on_event(kind, detail)
            return
        self.loss_rows.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.array([exchange], schema.EVENTS.field("exchange").type),
                    pa.array([None], schema.EVENTS.field("symbol").type),
                    pa.array([time.time_ns()], pa.int64()).cast(schema.EVENTS.field("ts").type),
                    pa.array([kind], schema.EVENTS.field("kind").type),
                    pa.array([detail[:500]], pa.string()),
                ],
                schema=schema.EVENTS,
            )
        )
        if self.loss_writer is None or self.loss_writer.done():
            self.loss_writer = asyncio.get_running_loop().create_task(self._write_losses())
            self.pending_writes.append(self.loss_writer)

    async def _write_losses(self) -> None:
        """The loss rows recorded so far, one events batch at a time, never dropped by the lossy policy
        (it is the record of a loss): one such write in flight, however many losses come meanwhile."""
        while self.loss_rows:
            rows, self.loss_rows = self.loss_rows, []
            batch = pa.Table.from_batches(rows, schema=schema.EVENTS).combine_chunks().to_batches()[0]
            acks = await self._write({"events": batch}, "", None, precious=True)
            await asyncio.gather(*acks)

    def _sink_write(
        self, index: int, tables: dict[str, Any], origin: str, anchor: Anchor | None, key: Key | None = None
    ) -> _Request:
        """The request of sink `index`'s write; a root batch_seq is taken when it is first sent.

        The write carries the derived keys skipped for this sink since the last one; a retry sends the same.
        """

        def args() -> tuple[Any, ...]:
            if key is None:
                source, seq = self.source_id, self.sink_seqs[index]
                self.sink_seqs[index] = seq + 1
            else:
                source, seq = key
            skipped = self.sink_skips[index].take()
            return (source, seq, tables, origin, anchor, skipped)

        return _Request(self.sinks[index].write, args)

    def report_accounted(self, stats: Any) -> None:
        """Add the rows accounted since the last call to an `xtrader.metrics.Stats` (channel `table/sink`)."""
        from xtrader import metrics

        for (sink, table, exchange), rows in self.accounted.items():
            increase = rows - self.accounted_reported.get((sink, table, exchange), 0)
            if increase > 0:
                stats.count(metrics.ACCOUNTED_ROWS, increase, exchange, f"{table}/{sink}")
                self.accounted_reported[(sink, table, exchange)] = rows

    async def warm(self) -> None:
        """One round trip to every downstream actor, so the first data batch does not pay for the connection."""
        handles = [h for h in (self.arbiter, self.book, *self.sinks) if h is not None]
        for handle in handles:
            await handle.stats.remote()

    async def drain(self) -> None:
        """Wait until every write is acknowledged or given up, and every loss it recorded is written."""
        while True:
            while self.pending_writes:
                await asyncio.gather(*self.pending_writes, return_exceptions=True)
                self.pending_writes = [t for t in self.pending_writes if not t.done()]
            for window in self._windows():
                await window.drain()
            if not self.pending_writes:
                return

    def count_drops(self, stats: Any, exchange: str) -> None:
        """Add rows the lossy policy dropped since the last call to an `xtrader.metrics.Stats`."""
        from xtrader import metrics

        dropped = sum(w.gate.stats.dropped_rows for w in self._windows())
        if dropped > self.dropped_reported:
            stats.count(metrics.DROPPED_ROWS, dropped - self.dropped_reported, exchange)
            self.dropped_reported = dropped

    def stats(self) -> dict[str, Any]:
        flows = [w.stats() for w in self._windows()]
        total: dict[str, int] = {}
        for flow in flows:
            for key, value in flow.items():
                total[key] = (
                    max(total.get(key, 0), value) if key in ("high_water", "inflight") else (total.get(key, 0) + value)
                )
        return total


def _book_part(batches: Batches) -> Batches:
    """What the order-book actor gets of a batch: l2, the book notices, the clock anchor."""
    return Batches(
        batches.exchange,
        l2=batches.l2,
        l2_messages=batches.l2_messages,
        notices=batches.notices,
        anchor=batches.anchor,
    )


def _direct_tables(batches: Batches) -> dict[str, Any]:
    """The tables of a producer batch that go straight to the sinks."""
    pairs = (("trades", batches.trades), ("bbo", batches.bbo), ("events", batches.events))
    return {table: batch for table, batch in pairs if batch is not None}


def _discard(numbers: set[int], number: int, _: Any) -> None:
    numbers.discard(number)


class _Request:
    """One downstream request, its arguments made when it is first sent and sent as they are again (a retry)."""

    def __init__(self, method: Any, make_args: Callable[[], tuple[Any, ...]]) -> None:
        self.method = method
        self.make_args = make_args
        self.args: tuple[Any, ...] | None = None

    def __call__(self) -> Any:
        if self.args is None:
            self.args = self.make_args()
        return self.method.remote(*self.args)


def _exchange(batch: Any) -> str:
    """The venue of a batch (one venue per batch; the first row's)."""
    column = batch.column("exchange")
    if pa.types.is_dictionary(column.type):
        return str(column.dictionary[column.indices[0].as_py()].as_py())
    return str(column[0].as_py())


class _Skips:
    """Ranges of skipped keys per source, merged while they are contiguous; taken (and cleared) by a call."""

    def __init__(self) -> None:
        self.ranges: dict[str, list[list[int]]] = {}

    def add(self, source: str, low: int, high: int) -> None:
        ranges = self.ranges.setdefault(source, [])
        if ranges and ranges[-1][1] + 1 >= low and ranges[-1][0] <= low:
            ranges[-1][1] = max(ranges[-1][1], high)
        else:
            ranges.append([low, high])

    def take(self) -> tuple[Skip, ...]:
        out = tuple((source, low, high) for source, ranges in self.ranges.items() for low, high in ranges)
        self.ranges.clear()
        return out


class _Numbers:
    """The numbers of a producer's calls to one actor, and those the lossy policy dropped (reported once)."""

    def __init__(self) -> None:
        self.next = 0
        self.unreported: list[int] = []

    def take(self) -> int:
        number = self.next
        self.next += 1
        return number

    def dropped(self, number: int) -> None:
        self.unreported.append(number)

    def report(self) -> tuple[int, ...]:
        """The dropped numbers not yet told to the receiver (told with the next call)."""
        out = tuple(self.unreported)
        self.unreported.clear()
        return out
