"""The order-book service of one stream: books, resync requests, events and book snapshots.

It is fed the (deduplicated) l2 batches of a stream, message by message
through `xtrader.sync`, and returns what the pipeline does next:

- the l2 rows to write (everything the venue sent, REST snapshots included as
  `is_snapshot` groups; a book verdict never hides a row);
- `events` rows for gaps, checksum failures, stale snapshots and resyncs;
- resync requests (connection, symbol) for the connector: a REST snapshot for
  Binance, a resubscription elsewhere;
- every `snapshot_interval_s`, the `book_snapshots` rows: the top N levels of
  each VALID book (a book known to be wrong is never emitted).

REST snapshots: a message with `is_snapshot` on a venue whose books start from
a REST snapshot (Binance) is treated as one, whether the connector sends it in
a batch of its own (`on_batch(..., rest=True)`) or mixed with diffs.

Link loss and unsubscribe: each batch's `notices` (`xtrader.batch.BookNotice`,
applied before its l2 rows) say which connector carries which book. When no
connector carries a book any more (its link was lost, it was unsubscribed),
`invalidate` discards it: no book_snapshots rows from a stale book, and it is
built again from the next snapshot; an unsubscribed book's state is freed and
its later messages (in flight before the unsubscribe took effect) are ignored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from xtrader import metrics, schema
from xtrader.batch import Batches, BookNotice, EventColumns, constant_dictionary, dictionary
from xtrader.book import Level
from xtrader.book_runs import apply_runs
from xtrader.budget import Backoff
from xtrader.clock import code_latency_ns
from xtrader.resync_route import ResyncRouter
from xtrader.sync import RULES, BatchView, Books, BookSync, Checksum, Levels, Message, SyncCounters, Verdict

if TYPE_CHECKING:
    from xtrader.venues.base import Venue

#: resync retries of one symbol back off from this many seconds (a book waiting for its first snapshot
#: asks after this long) ...
RESYNC_BASE_S = 5.0
#: ... doubling (with jitter) up to this cap, until the book is valid again
RESYNC_CAP_S = 300.0
#: a forward gap in a book that several connections carry waits this long for the missing updates, which the
#: other connection may still deliver (a just reconnected copy starts at the newest updates), before it resyncs
GAP_HOLD_S = 3.0


@dataclass
class SymbolStats:
    """Book-sync instrumentation of one symbol."""

    first_seen_ns: int | None = None
    unsynced_since_ns: int | None = None
    syncs: int = 0
    time_to_sync_ms: list[float] = field(default_factory=list)
    buffered_applied: int = 0
    gaps: int = 0
    checksum_failures: int = 0
    resyncs_requested: int = 0
    stale_snapshots: int = 0

    def as_dict(self) -> dict[str, Any]:
        times = self.time_to_sync_ms
        return {
            "syncs": self.syncs,
            "time_to_sync_ms_first": times[0] if times else None,
            "time_to_sync_ms_max": max(times) if times else None,
            "buffered_applied": self.buffered_applied,
            "gaps": self.gaps,
            "checksum_failures": self.checksum_failures,
            "resyncs": self.resyncs_requested,
            "stale_snapshots": self.stale_snapshots,
        }


@dataclass
class BookOutput:
    """What one fed batch produced."""

    l2: pa.RecordBatch | None = None  # rows the venue sent on the websocket
    l2_rest: pa.RecordBatch | None = None  # REST snapshot rows (is_snapshot groups), written apart
    events: pa.RecordBatch | None = None
    resyncs: list[tuple[str, str]] = field(default_factory=list)


class BookService:
    """Books of one venue (one per symbol, merged across the stream's connections).

    Args:
        exchange: venue name (the `exchange` column).
        sync_kind: the venue's `sync_kind` (a key of `xtrader.sync.RULES`).
        keep_text: the venue checksums its original strings.
        checksum: the venue's checksum function, if any.
        depth: levels per side in `book_snapshots`.
        snapshot_interval_s: how often `tick` emits book_snapshots (0: never).
        clock: wall clock in ns (injected for tests).
        carriers: connection id -> the symbols of its l2 subscriptions (where resync requests go;
            see `xtrader.resync_route`); also settable later with `set_carriers`.
        mono: monotonic clock in ns (code latency; see `xtrader.clock`).
        backoff: per-symbol delays between resync requests of a book that stays invalid
            (default: RESYNC_BASE_S doubling with jitter up to RESYNC_CAP_S).
        gap_hold_s: how long a book that several connections carry waits for a missing update before it
            takes the gap as real (0: at once; see `BookSync.hold`).
    """

    def __init__(
        self,
        exchange: str,
        sync_kind: str,
        *,
        keep_text: bool = False,
        checksum: Checksum | None = None,
        depth: int = 20,
        snapshot_interval_s: float = 1.0,
        clock: Callable[[], int] | None = None,
        carriers: Mapping[str, Iterable[str]] | None = None,
        mono: Callable[[], int] | None = None,
        backoff: Backoff | None = None,
        gap_hold_s: float = GAP_HOLD_S,
    ) -> None:
        import time

        self.exchange = exchange
        self.books = Books(sync_kind, keep_text=keep_text, checksum=checksum)
        self.rest_snapshot = RULES[sync_kind].rest_snapshot
        self.keep_text = keep_text
        self.depth = depth
        self.snapshot_interval_ns = int(snapshot_interval_s * 1e9)
        self.clock = clock or time.time_ns
        self.mono = mono or time.perf_counter_ns
        self.last_snapshot_ns: int | None = None
        self.symbols: defaultdict[str, SymbolStats] = defaultdict(SymbolStats)
        self.pending: dict[str, int] = {}  # symbol -> when a resync was requested
        self.backoff = backoff or Backoff(base_s=RESYNC_BASE_S, cap_s=RESYNC_CAP_S, floor_s=1.0)
        self.retry_at: dict[str, int] = {}  # symbol -> no resync request before (its backoff)
        self.last_connection: dict[str, str] = {}
        self.connections: set[str] = set()
        self.router = ResyncRouter(carriers)
        self.rows_forwarded = 0
        self.metrics = metrics.Stats(f"book/{exchange}")
        self.carriers: dict[str, set[str]] = {}  # symbol -> connectors whose links carry its book (notices)
        self.dropped: set[str] = set()  # unsubscribed: messages still in flight are not fed
        self.gap_hold_ns = int(gap_hold_s * 1e9)
        self.holding: dict[str, int] = {}  # symbol -> since when its book waits for a missing update
        self.discarded = SyncCounters()  # counters of books discarded by invalidate()

    @classmethod
    def for_venue(
        cls, v: Venue, *, depth: int = 20, snapshot_interval_s: float = 1.0, gap_hold_s: float = GAP_HOLD_S
    ) -> BookService:
        """The books of venue `v`: its sync rules, whether it checksums its original strings, its checksum."""
        return cls(
            v.name,
            v.sync_kind,
            keep_text=v.keep_text,
            checksum=type(v).book_checksum,  # a plain function held by the class (not a method)
            depth=depth,
            snapshot_interval_s=snapshot_interval_s,
            gap_hold_s=gap_hold_s,
        )

    def set_carriers(self, carriers: Mapping[str, Iterable[str]]) -> None:
        """connection id -> the symbols of its l2 subscriptions: resync requests go to one that carries the symbol."""
        self.router.set_carriers(carriers)

    def sync(self, symbol: str) -> BookSync:
        """The book of `symbol` (merged across connections)."""
        return self.books.get("*", symbol)

    # -- feeding ---------------------------------------------------------------------------------------------

    def on_batch(self, connection: str, batches: Batches, rest: bool = False) -> BookOutput:
        """Feed the l2 part of one (deduplicated) batch; REST snapshots with `rest=True` or as is_snapshot rows."""
        out = BookOutput()
        events = EventColumns()
        now = self.clock()
        for notice in batches.notices:
            self.notice(notice, now, events)
        if batches.l2 is None or batches.l2_messages is None:
            out.events = events.build(self.exchange) if events.records() else None
            return out
        self.connections.add(connection)
        if not rest:  # receipt -> book (the sink measures receipt -> write): where l2 time goes
            receive = np.asarray(batches.l2_messages.column("receive_ts").cast(pa.int64()), dtype=np.int64)
            code = code_latency_ns(receive, batches.anchor, self.mono())  # None: another host's batch
            if code is not None:
                self.metrics.histogram(metrics.CODE_LATENCY, self.exchange, "l2@book").record_many(code)
        self._feed(connection, batches.l2, batches.l2_messages, rest=rest, now=now, events=events)
        out.l2, out.l2_rest = self._split_rest(schema.stored(batches.l2, "l2"), batches.l2_messages, rest)
        self.rows_forwarded += batches.l2.num_rows
        self._end_holds(now, events)
        out.resyncs = self._resyncs(now, events)
        out.events = events.build(self.exchange) if events.records() else None
        return out

    def _split_rest(
        self, l2: pa.RecordBatch, messages: pa.RecordBatch, rest: bool
    ) -> tuple[pa.RecordBatch | None, pa.RecordBatch | None]:
        """(websocket rows, REST snapshot rows) of one l2 batch."""
        if rest:
            return None, l2
        if not self.rest_snapshot:
            return l2, None
        snapshot = np.asarray(messages.column("is_snapshot"), dtype=bool)
        if not snapshot.any():
            return l2, None
        per_message = np.asarray(messages.column("bid_rows"), np.int64) + np.asarray(
            messages.column("ask_rows"), np.int64
        )
        rows = np.repeat(snapshot, per_message)
        ws = l2.filter(pa.array(~rows)) if not rows.all() else None
        return ws, l2.filter(pa.array(rows))

    def _feed(
        self,
        connection: str,
        l2: pa.RecordBatch,
        messages: pa.RecordBatch,
        *,
        rest: bool,
        now: int,
        events: EventColumns,
    ) -> None:
        books, last_connection, dropped = self.books.books, self.last_connection, self.dropped
        # runs of chained updates straight from the arrays (`xtrader.book_runs`); the rest message by message
        done = None if rest or self.keep_text else apply_runs(books, l2, messages, connection, last_connection, dropped)
        if done is not None and done.all():
            return
        view = BatchView(l2, messages, self.keep_text)
        applied = done.tolist() if done is not None else None
        for i, symbol in enumerate(view.symbol):
            if symbol in dropped or (applied is not None and applied[i]):
                continue
            if not rest and last_connection.get(symbol) == connection:
                # the common case, straight from the columns: an update chaining on a valid book
                # (valid before and after, no gap: `_message` would only have fed the sync)
                sync = books.get(("*", symbol))
                if sync is not None and sync.apply_fast(view, i):
                    continue
            self._message(connection, symbol, view.message(i), view.levels(i), rest=rest, now=now, events=events)

    def _message(
        self, connection: str, symbol: str, msg: Message, levels: Levels, *, rest: bool, now: int, events: EventColumns
    ) -> None:
        sync = self.sync(symbol)
        stats = self.symbols[symbol]
        if stats.first_seen_ns is None:
            stats.first_seen_ns = stats.unsynced_since_ns = now
        if self.last_connection.get(symbol) != connection:
            self.last_connection[symbol] = connection
            self.router.carry(connection, symbol)
        was_valid = sync.valid
        gaps_before = sync.counters.gaps
        sync.hold = self.gap_hold_ns > 0 and self._redundant(symbol)
        if (
            msg.is_snapshot
            and (rest or self.rest_snapshot)
            and was_valid
            and sync.last is not None
            and (msg.seq <= sync.last)
        ):
            # an extra REST snapshot (a redundant connection's, or an answer to a resync that
            # was not needed) no newer than the book: loading it would move the book back
            sync.counters.dropped += 1
            return
        if msg.is_snapshot and (rest or self.rest_snapshot):
            applied_before = sync.counters.updates_applied
            verdict = sync.on_rest_snapshot(msg, levels)
            self.pending.pop(symbol, None)
            if verdict is Verdict.STALE:
                stats.stale_snapshots += 1
                events.add(symbol, now, "resync", f"stale snapshot {msg.seq}: fetching again")
            else:
                stats.buffered_applied += sync.counters.updates_applied - applied_before
        else:
            # a websocket snapshot is authoritative (a sequence reset); the sync drops known older copies
            verdict = sync.on_message(msg, levels)
        if sync.held:
            self.holding.setdefault(symbol, now)
        else:
            self.holding.pop(symbol, None)
        self._note_gaps(symbol, sync, gaps_before, now, events)
        if sync.valid and not was_valid:
            stats.syncs += 1
            if stats.unsynced_since_ns is not None:
                stats.time_to_sync_ms.append((now - stats.unsynced_since_ns) / 1e6)
                self.metrics.histogram(metrics.BOOK_SYNC, self.exchange, "l2").record(now - stats.unsynced_since_ns)
            stats.unsynced_since_ns = None
            self.pending.pop(symbol, None)
            self.retry_at.pop(symbol, None)
            self.backoff.reset(symbol)
            self.router.done(symbol)

    def _redundant(self, symbol: str) -> bool:
        """Several connections carry `symbol`'s book: by their notices, or by the plan (a restarted book
        actor has the plan's carriers before any connector's notice)."""
        return len(self.carriers.get(symbol, ())) > 1 or self.router.carrying(symbol) > 1

    def _note_gaps(self, symbol: str, sync: BookSync, gaps_before: int, now: int, events: EventColumns) -> None:
        """Count, time and record (an `events` row) a gap the sync found since it had `gaps_before`."""
        if sync.counters.gaps <= gaps_before:
            return
        stats = self.symbols[symbol]
        detail = sync.last_gap or "gap"
        kind = "checksum_fail" if detail.startswith("checksum_fail") else "gap"
        if kind == "checksum_fail":
            stats.checksum_failures += 1
        stats.gaps += 1
        stats.unsynced_since_ns = now
        self.metrics.count(metrics.GAPS, 1, self.exchange, "l2")
        events.add(symbol, now, kind, detail)

    def _end_holds(self, now: int, events: EventColumns) -> None:
        """Books that waited `gap_hold_s` for a missing update that did not come: the gap is real."""
        for symbol, since in list(self.holding.items()):
            if now - since < self.gap_hold_ns:
                continue
            del self.holding[symbol]
            sync = self.books.books.get(("*", symbol))
            if sync is not None and sync.held:
                gaps_before = sync.counters.gaps
                sync.release_held()
                self._note_gaps(symbol, sync, gaps_before, now, events)

    # -- link loss and unsubscribe --------------------------------------------------------------------

    def notice(self, notice: BookNotice, now: int, events: EventColumns) -> None:
        """A connector's word on one symbol's stream; invalidates the book when no connector carries it."""
        symbol = notice.symbol
        carriers = self.carriers.setdefault(symbol, set())
        if notice.state == "carried":
            carriers.add(notice.source)
            self.router.carry(notice.source, symbol)  # a run-time subscription is routable too
            self.dropped.discard(symbol)
            return
        carriers.discard(notice.source)
        if notice.state == "dropped":
            self.router.drop(notice.source, symbol)
        if not carriers:  # no redundant connection carries it either
            self.invalidate(symbol, notice.reason, now, events, forget=notice.state == "dropped")

    def invalidate(self, symbol: str, reason: str, now: int, events: EventColumns, forget: bool = False) -> None:
        """Stop trusting `symbol`'s book: discard it (rebuilt from the next snapshot; no resync is asked
        before RESYNC_BASE_S, the reconnect brings one). `forget` (unsubscribed): free its state too, and
        ignore its messages until a connector carries it again."""
        sync = self.books.books.pop(("*", symbol), None)
        if sync is not None:
            self.discarded.add(sync.counters)
        self.pending.pop(symbol, None)
        self.holding.pop(symbol, None)
        if forget:
            self.retry_at.pop(symbol, None)
            self.backoff.reset(symbol)
            self.dropped.add(symbol)
            self.symbols.pop(symbol, None)
            self.last_connection.pop(symbol, None)
            self.carriers.pop(symbol, None)
        elif sync is not None:
            self.symbols[symbol].unsynced_since_ns = now
        if sync is not None:
            events.add(symbol, now, "resync", f"book discarded: {reason}")

    def _resyncs(self, now: int, events: EventColumns) -> list[tuple[str, str]]:
        """Symbols whose book is not valid and has no request outstanding (or an unanswered one).

        A book broken by a gap (or a stale snapshot) asks at once, unless its last request
        did not make it valid: then it waits for its backoff (`self.backoff`, per symbol:
        RESYNC_BASE_S doubling with jitter up to RESYNC_CAP_S; reset once the book is valid).
        A book waiting for its first snapshot (the connector fetches it, or the venue sends it
        on subscribing) asks only when none came within RESYNC_BASE_S, e.g. after this actor
        restarted mid-stream. The venue's own request budget is the connector's to keep.
        """
        out = []
        base_ns = int(self.backoff.base_s * 1e9)
        for (_, symbol), sync in self.books.books.items():
            if sync.valid:
                continue
            asked = self.pending.get(symbol)
            again = asked is not None  # a request of ours went unanswered
            stats = self.symbols[symbol]
            waiting = not (stats.gaps or stats.stale_snapshots or stats.syncs) or not sync.needs_resync
            if asked is None and waiting:
                first = stats.unsynced_since_ns  # the snapshot should be on its way
                if first is not None and now - first < base_ns:
                    continue
            if now < self.retry_at.get(symbol, now):
                continue  # backing off: the last request did not make it valid
            self.retry_at[symbol] = now + self.backoff.next_ns(symbol)
            self.pending[symbol] = now
            stats.resyncs_requested += 1
            self.metrics.count(metrics.RESYNCS, 1, self.exchange, "l2")
            # a connector that carries the symbol (l2 may come under the arbiter's name); the next one on a retry
            connection = self.router.route(symbol, self.last_connection.get(symbol, ""))
            out.append((connection, symbol))
            events.add(symbol, now, "resync", "requested again (no answer)" if again else "requested")
        return out

    # -- periodic ----------------------------------------------------------------------------------------------

    def tick(self, force: bool = False) -> tuple[pa.RecordBatch | None, pa.RecordBatch | None, list[tuple[str, str]]]:
        """(book_snapshots when due, events, resync retries); call about once a second."""
        now = self.clock()
        events = EventColumns()
        self._end_holds(now, events)
        resyncs = self._resyncs(now, events)
        snapshots = None
        if self.snapshot_interval_ns and (
            force or self.last_snapshot_ns is None or now - self.last_snapshot_ns >= self.snapshot_interval_ns
        ):
            self.last_snapshot_ns = now
            snapshots = self.book_snapshots(now)
        return snapshots, (events.build(self.exchange) if events.records() else None), resyncs

    def book_snapshots(self, now: int) -> pa.RecordBatch | None:
        """Top `depth` levels of every valid book as schema.BOOK_SNAPSHOTS rows (None when there is none)."""
        symbols: list[str] = []
        levels: list[int] = []
        columns: list[list[float | None]] = [[], [], [], []]
        for (_, symbol), sync in sorted(self.books.books.items()):
            if not sync.valid or sync.held:  # (a book waiting for a missing update shows an older state)
                continue
            bids, asks = sync.book.top(self.depth)
            for level in range(max(len(bids), len(asks))):
                symbols.append(symbol)
                levels.append(level)
                for offset, side in ((0, bids), (2, asks)):
                    price, size = side[level] if level < len(side) else (None, None)
                    columns[offset].append(price)
                    columns[offset + 1].append(size)
        if not symbols:
            return None
        n = len(symbols)
        return pa.RecordBatch.from_arrays(
            [
                constant_dictionary(self.exchange, n),
                dictionary(symbols, pa.int32()),
                pa.array([now] * n, pa.int64()).cast(schema.TS),
                pa.array(levels, pa.int16()),
                *(pa.array(c, pa.float64()) for c in columns),
            ],
            schema=schema.BOOK_SNAPSHOTS,
        )

    # -- read-outs ---------------------------------------------------------------------------------------------

    def tops(self, depth: int | None = None) -> dict[str, tuple[list[Level], list[Level]]]:
        """symbol -> (top bids, top asks) of every valid book."""
        depth = depth or self.depth
        return {symbol: sync.book.top(depth) for (_, symbol), sync in self.books.books.items() if sync.valid}

    def _counters(self) -> SyncCounters:
        total = self.books.counters()
        total.add(self.discarded)
        return total

    def stats(self) -> dict[str, Any]:
        """Counters summed over books, per-symbol instrumentation, and how many books are valid."""
        books = self.books.books
        return {
            "exchange": self.exchange,
            "books": len(books),
            "valid": sum(1 for s in books.values() if s.valid),
            "invalid": sorted(
                {symbol for (_, symbol), s in books.items() if not s.valid}
            ),  # resyncing or not yet synced
            "rows_forwarded": self.rows_forwarded,
            "counters": self._counters().as_dict(),
            "symbols": {symbol: s.as_dict() for symbol, s in sorted(self.symbols.items())},
            "metrics": self.metrics.snapshot(),
        }
