"""Book-sync state machines: per venue, each book message is Apply, Drop, Buffer or Gap.

The rules work on the normalized l2 message header (seq, prev_seq, first_seq,
is_snapshot, checksum) that every venue parser fills, so no wire names appear
here. Each rule quotes the venue's documented step (see EXCHANGES.md).

`BookSync` holds one book with its rules, buffer and counters; `Books` keeps
one BookSync per (connection, symbol) and feeds them from Arrow batches.
"""

from __future__ import annotations

import bisect
import enum
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from xtrader.book import Book, TextLevel

#: f(top bids text, top asks text) -> venue checksum (OKX crc32 over original strings)
Checksum = Callable[[list[TextLevel], list[TextLevel]], int]
#: a column of a run of messages as a numpy int64 array, and a per-message verdict as a numpy bool array
Ints = Any
Bools = Any

#: Binance buffers diffs while the REST snapshot is fetched; past this many the
#: oldest are dropped and the sync restarts (a snapshot that never comes).
MAX_BUFFERED = 10_000

#: applied seqs remembered per book: a copy of one of them from a lagging connection is a duplicate
RECENT = 256

#: OKX / Deribit updates kept while a book waits for its snapshot, to bridge it (redundant connections)
MAX_WAITING = 1_000

#: updates one book holds while it waits for a missing one (`BookSync.hold`); beyond, the gap is taken as real
MAX_HELD = 10_000


class Verdict(enum.Enum):
    APPLY = "apply"  # levels applied (a snapshot replaced the book)
    DROP = "drop"  # stale, duplicate, or no book yet: nothing applied, nothing wrong
    BUFFER = "buffer"  # kept until a snapshot arrives (Binance; OKX, which may bridge from REST)
    GAP = "gap"  # sequence broken or checksum failed: book discarded, resync requested
    STALE = "stale"  # a REST snapshot older than the buffered stream: fetch again
    HOLD = "hold"  # ahead of the book: waits for the missing updates another connection may deliver


class Message(NamedTuple):
    """The sync-relevant header of one l2 message."""

    seq: int
    prev_seq: int | None
    first_seq: int | None
    is_snapshot: bool
    checksum: int | None = None
    #: the venue's time of the message (ns), when it sends one: tells an older copy from a reset
    exchange_ts: int | None = None


class Levels(NamedTuple):
    """One message's levels: bids then asks, as floats (text only for checksum venues)."""

    bid_prices: Sequence[float]
    bid_sizes: Sequence[float]
    ask_prices: Sequence[float]
    ask_sizes: Sequence[float]
    bid_price_text: Sequence[str | None] | None = None
    bid_size_text: Sequence[str | None] | None = None
    ask_price_text: Sequence[str | None] | None = None
    ask_size_text: Sequence[str | None] | None = None


EMPTY = Levels((), (), (), ())


@dataclass
class SyncCounters:
    """What happened to one book (summed across books by `Books.counters`)."""

    messages: int = 0
    updates_applied: int = 0
    snapshots: int = 0
    dropped: int = 0
    buffered: int = 0
    gaps: int = 0
    resyncs: int = 0
    stale_snapshots: int = 0
    checksum_ok: int = 0
    checksum_failed: int = 0
    checksum_skipped: int = 0
    crossed: int = 0  # a check found the book crossed (after each update; once per run in `xtrader.book_runs`)
    held: int = 0  # updates that came ahead of a missing one and waited for it (`BookSync.hold`)

    def add(self, other: SyncCounters) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Rules:
    """Base: one venue's sequencing rules; `last` is the seq of the last applied message."""

    #: the book starts from a REST snapshot, and diffs are buffered until then
    rest_snapshot = False
    #: the book may start from a REST snapshot bridging buffered diffs, or from a websocket snapshot (OKX)
    rest_bridge = False
    #: a websocket snapshot replaces the book even when its seq is not above the book's (a sequence
    #: reset); only a known older copy (see `BookSync.superseded`) is dropped
    authoritative_snapshot = False

    def update(self, last: int, msg: Message, bridging: bool) -> Verdict:
        raise NotImplementedError

    def chains(self, last: int, seq: int, prev_seq: int | None, first_seq: int | None) -> bool:
        """True when `update(last, msg, bridging=False)` is APPLY for such a message (the fast path of a
        valid book; False sends the message down `update`, which always decides)."""
        return False

    def snapshot_stale(self, snapshot_seq: int, first_buffered: Message | None) -> bool:
        return False

    def chained(self, seq: Ints, prev_seq: Ints | None, first_seq: Ints | None) -> Bools | None:
        """`chains` of each message on the one before it, for a run of one book's updates as arrays
        (element j for message j + 1 on message j); None when these rules have no such form."""
        return None


class BinanceSpotRules(Rules):
    """Binance spot diff depth (EXCHANGES.md 1.6, revised Nov 2025)."""

    rest_snapshot = True

    def snapshot_stale(self, snapshot_seq: int, first_buffered: Message | None) -> bool:
        # 2. "If lastUpdateId is below that first U, the snapshot is too old: fetch again."
        return (
            first_buffered is not None
            and first_buffered.first_seq is not None
            and (snapshot_seq < first_buffered.first_seq)
        )

    def update(self, last: int, msg: Message, bridging: bool) -> Verdict:
        first = msg.first_seq if msg.first_seq is not None else msg.seq
        # 5. "u < book_id: ignore. Treating u <= book_id as ignorable is equivalent and safe."
        if msg.seq <= last:
            return Verdict.DROP
        # 5. "U > book_id + 1: a gap." (this also checks the bridge of step 3:
        #    the first kept event must have lastUpdateId inside [U, u])
        if first > last + 1:
            return Verdict.GAP
        return Verdict.APPLY

    def chains(self, last: int, seq: int, prev_seq: int | None, first_seq: int | None) -> bool:
        return seq > last and (first_seq if first_seq is not None else seq) <= last + 1

    def chained(self, seq: Ints, prev_seq: Ints | None, first_seq: Ints | None) -> Bools | None:
        first = first_seq if first_seq is not None else seq
        return (seq[1:] > seq[:-1]) & (first[1:] <= seq[:-1] + 1)


class BinanceFuturesRules(Rules):
    """Binance USD-M / COIN-M diff depth (EXCHANGES.md 2.5)."""

    rest_snapshot = True

    def snapshot_stale(self, snapshot_seq: int, first_buffered: Message | None) -> bool:
        # A snapshot older than the first buffered event cannot be bridged (step 4 would fail), unless
        # that event chains on it (pu == lastUpdateId: the snapshot is the state right before it).
        return (
            first_buffered is not None
            and first_buffered.first_seq is not None
            and (snapshot_seq < first_buffered.first_seq)
            and first_buffered.prev_seq != snapshot_seq
        )

    def update(self, last: int, msg: Message, bridging: bool) -> Verdict:
        if bridging:
            # 3. "Drop events with u < lastUpdateId."
            if msg.seq < last:
                return Verdict.DROP
            # 5.'s chain from the snapshot: pu == lastUpdateId means the snapshot is the state after the
            # previous event, so this event follows on although U > lastUpdateId (a snapshot taken between
            # two events; step 4's bracket alone would call it a gap and fetch a needless new snapshot)
            if msg.prev_seq is not None and msg.prev_seq == last:
                return Verdict.APPLY
            # 4. "The first processed event must satisfy U <= lastUpdateId AND u >= lastUpdateId."
            first = msg.first_seq if msg.first_seq is not None else msg.seq
            return Verdict.APPLY if first <= last else Verdict.GAP
        if msg.seq <= last:
            return Verdict.DROP  # a duplicate or an older copy
        # 5. "Every later event must satisfy pu == previous event's u."
        return Verdict.APPLY if msg.prev_seq == last else Verdict.GAP

    def chains(self, last: int, seq: int, prev_seq: int | None, first_seq: int | None) -> bool:
        return seq > last and prev_seq == last

    def chained(self, seq: Ints, prev_seq: Ints | None, first_seq: Ints | None) -> Bools | None:
        if prev_seq is None:
            return None
        return (seq[1:] > seq[:-1]) & (prev_seq[1:] == seq[:-1])


class OkxRules(Rules):
    """OKX v5 books seqId / prevSeqId (EXCHANGES.md 3.5), from a websocket snapshot or the REST book (3.6).

    A mismatch is a gap: a seqId at or below the book's is no proof of an older copy, since
    the sequence restarts small after a reset. `BookSync` drops the known older copies first.
    """

    rest_bridge = True
    authoritative_snapshot = True

    def snapshot_stale(self, snapshot_seq: int, first_buffered: Message | None) -> bool:
        # 3.6 step 2: "If its seqId < the noted prevSeqId [of the first buffered update], fetch again."
        return (
            first_buffered is not None
            and first_buffered.prev_seq is not None
            and (snapshot_seq < first_buffered.prev_seq)
        )

    def update(self, last: int, msg: Message, bridging: bool) -> Verdict:
        if bridging:
            return self._bridge(last, msg)
        if msg.prev_seq is None:
            return Verdict.APPLY  # legacy messages carry no seqId: only the checksum can check them
        # "accept a message exactly when prevSeqId == last_seqId" (this covers the no-change
        # heartbeat prevSeqId == seqId == last, and a reset: seqId < prevSeqId == last)
        # "A mismatch means a gap."
        return Verdict.APPLY if msg.prev_seq == last else Verdict.GAP

    def chains(self, last: int, seq: int, prev_seq: int | None, first_seq: int | None) -> bool:
        return prev_seq is None or prev_seq == last

    @staticmethod
    def _bridge(last: int, msg: Message) -> Verdict:
        """The first update after a REST snapshot whose seqId is `last` (3.6 step 3)."""
        if msg.prev_seq is None or msg.prev_seq == last:
            return Verdict.APPLY  # the chain itself (a reset chained to the snapshot included)
        if msg.seq < msg.prev_seq:
            return Verdict.GAP  # a sequence reset that does not follow the snapshot
        # "Drop buffered updates with seqId <= snap.seqId."
        if msg.seq <= last:
            return Verdict.DROP
        # "The first kept one must satisfy prevSeqId <= snap.seqId < seqId." (a REST seqId need not
        # appear in the stream: OKX's steps are not +1)
        return Verdict.APPLY if msg.prev_seq <= last else Verdict.GAP


class DeribitRules(Rules):
    """Deribit book change_id / prev_change_id (EXCHANGES.md 4.3)."""

    authoritative_snapshot = True

    def update(self, last: int, msg: Message, bridging: bool) -> Verdict:
        # "a message follows on correctly when its prev_change_id equals the previous change_id";
        # on mismatch, discard the book (BookSync drops the known older copies first)
        return Verdict.APPLY if msg.prev_seq == last else Verdict.GAP

    def chains(self, last: int, seq: int, prev_seq: int | None, first_seq: int | None) -> bool:
        return prev_seq == last

    def chained(self, seq: Ints, prev_seq: Ints | None, first_seq: Ints | None) -> Bools | None:
        if prev_seq is None:
            return None
        return prev_seq[1:] == seq[:-1]


RULES: dict[str, type[Rules]] = {
    "binance_spot": BinanceSpotRules,
    "binance_futures": BinanceFuturesRules,
    "okx": OkxRules,
    "deribit": DeribitRules,
}


class BookSync:
    """One book and its sync state.

    Args:
        kind: a key of RULES (the venue's `sync_kind`).
        checksum: the venue's checksum over the top `checksum_depth` text levels, if any.
    """

    def __init__(self, kind: str, keep_text: bool = False, checksum: Checksum | None = None, checksum_depth: int = 25):
        self.rules = RULES[kind]()
        self.book = Book(keep_text=keep_text)
        self.checksum = checksum
        self.checksum_depth = checksum_depth
        self.counters = SyncCounters()
        #: seq of the last applied message; None while there is no valid book
        self.last: int | None = None
        #: exchange time of the last applied message (None: unknown)
        self.last_ts: int | None = None
        #: seqs of the last RECENT applied messages: their copies from a lagging connection are duplicates
        self.recent: deque[int] = deque(maxlen=RECENT)
        self.bridging = False
        self.buffer: deque[tuple[Message, Levels]] = deque()
        #: updates that came while the book had no snapshot (OKX, Deribit): those that chain on the next
        #: snapshot are applied after it. With redundancy, the arbiter passes each update once: one that came
        #: from a faster copy before the slower copy's (re)subscription snapshot would otherwise be lost.
        self.waiting: deque[tuple[Message, Levels]] = deque(maxlen=MAX_WAITING)
        #: diffs wait in `buffer` while there is no book, for a REST snapshot to bridge (Binance, OKX)
        self.buffering = self.rules.rest_snapshot or self.rules.rest_bridge
        #: a snapshot (REST) or resubscription is needed; the owner acts and clears it
        self.needs_resync = self.rules.rest_snapshot
        self.last_gap: str | None = None
        #: set by the owner while several connections carry the book: an update ahead of the book (a forward
        #: gap) waits in `held` for the missing ones, which another connection may still deliver (one that
        #: has just (re)connected starts at the newest updates, maybe before its partner's last ones), until
        #: they chain it on or the owner gives up with `release_held`
        self.hold = False
        self.held: deque[tuple[Message, Levels]] = deque()  # by seq

    @property
    def valid(self) -> bool:
        """True when the book is synced: safe to read and emit."""
        return self.last is not None

    def on_message(self, msg: Message, levels: Levels = EMPTY) -> Verdict:
        """Feed one websocket book message."""
        self.counters.messages += 1
        if msg.is_snapshot:
            if self.rules.authoritative_snapshot and self.superseded(msg):
                # a lagging redundant connection's (re)subscription snapshot: the book is past it
                self.counters.dropped += 1
                return Verdict.DROP
            buffered: list[tuple[Message, Levels]] = []
            if not self.rules.rest_snapshot:
                # OKX: what was buffered for a REST bridge came before this websocket snapshot in stream
                # order; like the waiting updates, only those that chain on the snapshot are applied
                buffered = list(self.buffer)
                self.buffer.clear()
            waiting = [*buffered, *self.waiting, *self.held]
            self.waiting.clear()
            self.held.clear()
            verdict = self._load_snapshot(msg, levels)
            applied = self._bridge(waiting) if waiting else 0
            self.counters.dropped += max(0, len(buffered) - applied)
            return verdict
        if self.last is None:
            if self._set_aside(msg, levels):
                self.counters.buffered += 1
                return Verdict.BUFFER
            self.counters.dropped += 1
            return Verdict.DROP
        return self._update(msg, levels)

    def _set_aside(self, msg: Message, levels: Levels) -> bool:
        """An update that came while there is no book: kept for the next snapshot. True when buffered for a REST
        bridge (Binance step 1, OKX 3.6 step 1: buffer while the snapshot is fetched); otherwise, when it has a
        chain to bridge, it waits for the next websocket snapshot (OKX, Deribit; legacy OKX has none)."""
        if self.buffering:
            self.buffer.append((msg, levels))
            if len(self.buffer) > MAX_BUFFERED:
                self.buffer.popleft()
            return True
        if self.rules.authoritative_snapshot and msg.prev_seq is not None:
            self.waiting.append((msg, levels))
        return False

    def apply_fast(self, view: BatchView, i: int) -> bool:
        """Apply message `i` of `view` straight from the batch's columns when it is the common case: a
        websocket update that chains on a valid book, outside a bridge, with no checksum to check and no
        text to keep. Returns False, having changed nothing, otherwise (then `on_message` decides).

        The same outcome as `on_message`, without a Message or Levels object or a level slice."""
        last = self.last
        if last is None or self.bridging or view.is_snapshot[i] or self.book.keep_text or self.held:
            return False
        seq = view.seq[i]
        if not self.rules.chains(last, seq, view.prev_seq[i], view.first_seq[i]):
            return False
        checksum = view.checksum[i]
        if not (checksum is None or checksum == 0 or self.checksum is None):
            return False
        book, counters = self.book, self.counters
        mid = view.mids[i]
        book.apply_range(True, view.prices, view.sizes, view.starts[i], mid)
        book.apply_range(False, view.prices, view.sizes, mid, view.ends[i])
        self.last = seq
        ts = view.exchange_ts[i]
        if ts is not None:
            self.last_ts = ts
        recent = self.recent
        if not recent or recent[-1] != seq:
            recent.append(seq)
        counters.messages += 1
        counters.updates_applied += 1
        counters.checksum_skipped += 1
        if book.crossed():
            counters.crossed += 1
        return True

    def _bridge(self, waiting: list[tuple[Message, Levels]]) -> int:
        """After a websocket snapshot: apply the set-aside updates that chain on it (older ones are left out).

        Returns how many were applied.
        """
        applied = 0
        for msg, levels in waiting:
            if self.last is None:
                break  # a checksum failed on the way: the next snapshot starts again
            if msg.prev_seq is not None and self.rules.update(self.last, msg, False) is Verdict.APPLY:
                self._update(msg, levels)
                applied += 1
        return applied

    def on_rest_snapshot(self, msg: Message, levels: Levels) -> Verdict:
        """Feed a REST snapshot (Binance); replays the buffered diffs over it."""
        if self.last is not None and msg.seq <= self.last:
            # the book is valid and already past this snapshot (a resync raced a healthy
            # stream): loading it would step the book back in time
            self.counters.dropped += 1
            return Verdict.DROP
        first = self.buffer[0][0] if self.buffer else None
        if self.rules.snapshot_stale(msg.seq, first):
            self.counters.stale_snapshots += 1
            self.needs_resync = True
            return Verdict.STALE
        self._load_snapshot(msg, levels)
        self.bridging = True
        pending = [*self.buffer, *self.held]
        self.buffer.clear()
        self.held.clear()
        verdict = Verdict.APPLY
        for index, (buffered, buffered_levels) in enumerate(pending):
            verdict = self._update(buffered, buffered_levels)
            if verdict is Verdict.GAP:
                # the rest waits for the next snapshot, after the gap message (`_update` buffered it)
                self.buffer.extend(pending[index + 1 :])
                return Verdict.GAP
        return Verdict.APPLY if verdict is not Verdict.GAP else verdict

    def superseded(self, msg: Message) -> bool:
        """True when a valid book already holds `msg` or a later state (OKX, Deribit, several connections).

        Known duplicates: a seq applied recently, or a message older than the book by the venue's
        time (a lagging connection's copy; at the same ms, a seq not above the book's, not a reset).
        A sequence reset is newer in time, so it is never taken for an older copy.
        """
        if self.last is None:
            return False
        if msg.seq in self.recent:
            return True  # called for updates that do not chain on `last`, so never the heartbeat itself
        ts, last_ts = msg.exchange_ts, self.last_ts
        if ts is None or last_ts is None or ts > last_ts:
            return False
        if ts < last_ts:
            return True
        return msg.seq <= self.last and (msg.prev_seq is None or msg.seq >= msg.prev_seq)

    def _load_snapshot(self, msg: Message, levels: Levels) -> Verdict:
        self.book.clear()
        self._apply_levels(levels)
        self.last = msg.seq
        self._note_applied(msg)
        self.bridging = self.rules.rest_snapshot
        self.needs_resync = False
        self.counters.snapshots += 1
        return self._after_apply(msg)

    def _update(self, msg: Message, levels: Levels) -> Verdict:
        assert self.last is not None
        verdict = self.rules.update(self.last, msg, self.bridging)
        if verdict is Verdict.GAP and self.rules.authoritative_snapshot and self.superseded(msg):
            verdict = Verdict.DROP  # a known older copy, not a break of the chain
        if verdict is Verdict.DROP:
            self.counters.dropped += 1
            return verdict
        if verdict is Verdict.GAP:
            if self.hold and not self.bridging and msg.seq > self.last:
                return self._hold(msg, levels)
            self._gap(_gap_detail(msg, self.last))
            if self.buffering:
                self.buffer.append((msg, levels))
            return verdict
        verdict = self._apply_update(msg, levels)
        if self.held and verdict is Verdict.APPLY:
            self._drain()
        return verdict

    def _apply_update(self, msg: Message, levels: Levels) -> Verdict:
        self._apply_levels(levels)
        self.last = msg.seq
        self._note_applied(msg)
        self.bridging = False
        self.counters.updates_applied += 1
        return self._after_apply(msg)

    def _hold(self, msg: Message, levels: Levels) -> Verdict:
        held = self.held
        if not held or held[-1][0].seq <= msg.seq:
            held.append((msg, levels))  # the usual order: one connection's updates, oldest first
        else:
            bisect.insort(held, (msg, levels), key=_seq_of)
        self.counters.held += 1
        if len(self.held) > MAX_HELD:
            self.release_held()
            return Verdict.GAP
        return Verdict.HOLD

    def _drain(self) -> None:
        """Apply the held updates that chain on the book now (another connection delivered what was missing)."""
        held = self.held
        while held and self.last is not None:  # (a checksum failed on the way: `_gap` set the rest aside)
            msg, levels = held[0]
            last = self.last
            verdict = self.rules.update(last, msg, False)
            if verdict is Verdict.APPLY:
                held.popleft()
                self._apply_update(msg, levels)
            elif verdict is Verdict.DROP or msg.seq <= last:
                held.popleft()
                self.counters.dropped += 1  # covered by what came meanwhile
            else:
                break  # still ahead: more is missing

    def release_held(self) -> None:
        """The wait is over (the owner's deadline): the first held update's gap is real. The book is discarded
        and a resync asked; the held updates are set aside as after any gap (for the next snapshot's bridge)."""
        if self.held and self.last is not None:
            self._gap(_gap_detail(self.held[0][0], self.last))

    def _after_apply(self, msg: Message) -> Verdict:
        if msg.checksum is None or msg.checksum == 0 or self.checksum is None:
            # OKX sends checksum 0 since 2026-06-23: skip, do not fail.
            self.counters.checksum_skipped += 1
        else:
            bids, asks = self.book.top_text(self.checksum_depth)
            if self.checksum(bids, asks) == msg.checksum:
                self.counters.checksum_ok += 1
            else:
                self.counters.checksum_failed += 1
                self._gap(f"checksum mismatch at seq {msg.seq}", kind="checksum_fail")
                return Verdict.GAP
        if self.book.crossed():
            self.counters.crossed += 1
        return Verdict.APPLY

    def _note_applied(self, msg: Message) -> None:
        if msg.exchange_ts is not None:
            self.last_ts = msg.exchange_ts
        if not self.recent or self.recent[-1] != msg.seq:  # no-change heartbeats repeat the seq
            self.recent.append(msg.seq)

    def _apply_levels(self, levels: Levels) -> None:
        book = self.book
        book.apply(True, levels.bid_prices, levels.bid_sizes, levels.bid_price_text, levels.bid_size_text)
        book.apply(False, levels.ask_prices, levels.ask_sizes, levels.ask_price_text, levels.ask_size_text)

    def _gap(self, detail: str, kind: str = "gap") -> None:
        """Discard the book and ask for a resync; a book known to be wrong is never emitted."""
        self.counters.gaps += 1
        self.counters.resyncs += 1
        self.last = None
        self.recent.clear()
        self.bridging = False
        self.book.clear()
        self.needs_resync = True
        self.last_gap = f"{kind}: {detail}"
        held = list(self.held)
        self.held.clear()
        for msg, levels in held:  # what waited for a missing update: as if it came now, with no book
            self._set_aside(msg, levels)


def _seq_of(item: tuple[Message, Levels]) -> int:
    return item[0].seq


def _gap_detail(msg: Message, last: int) -> str:
    return f"seq {msg.seq} prev {msg.prev_seq} first {msg.first_seq} after {last}"


@dataclass
class SyncEvent:
    """A gap / checksum failure / stale snapshot to record in the `events` table."""

    symbol: str
    kind: str
    detail: str


@dataclass
class Books:
    """One BookSync per (connection, symbol), fed from Arrow l2 batches.

    Args:
        kind: the venue's sync_kind.
        keep_text: keep original strings (checksum venues).
        checksum: the venue's checksum function, if any.
    """

    kind: str
    keep_text: bool = False
    checksum: Checksum | None = None
    books: dict[tuple[str, str], BookSync] = field(default_factory=dict)

    def get(self, connection: str, symbol: str) -> BookSync:
        key = (connection, symbol)
        sync = self.books.get(key)
        if sync is None:
            sync = self.books[key] = BookSync(self.kind, self.keep_text, self.checksum)
        return sync

    def counters(self) -> SyncCounters:
        total = SyncCounters()
        for sync in self.books.values():
            total.add(sync.counters)
        return total

    def apply_batch(
        self, connection: str, l2: object, messages: object, rest: bool = False
    ) -> list[tuple[str, Message, Verdict, BookSync]]:
        """Feed one l2 wire batch and its message batch (from `Columns.flush`).

        Returns (symbol, message, verdict, sync) per message, in order; gaps
        leave `sync.needs_resync` set for the owner to act on.
        """
        out = []
        view = BatchView(l2, messages, self.keep_text)
        get, apply = self.get, Verdict.APPLY
        for i, symbol in enumerate(view.symbol):
            sync = get(connection, symbol)
            msg = view.message(i)
            if not rest and sync.apply_fast(view, i):
                verdict = apply
            elif rest:
                verdict = sync.on_rest_snapshot(msg, view.levels(i))
            else:
                verdict = sync.on_message(msg, view.levels(i))
            out.append((symbol, msg, verdict, sync))
        return out


class BatchView:
    """The columns of one l2 wire batch and its message batch as Python lists: one conversion per batch,
    then each message is read by index (no per-message Arrow call; levels stay in the batch's columns)."""

    __slots__ = (
        "checksum",
        "ends",
        "exchange_ts",
        "first_seq",
        "is_snapshot",
        "mids",
        "prev_seq",
        "price_text",
        "prices",
        "seq",
        "size_text",
        "sizes",
        "starts",
        "symbol",
    )

    def __init__(self, l2: object, messages: object, keep_text: bool) -> None:
        import numpy as np
        import pyarrow as pa

        assert isinstance(l2, pa.RecordBatch) and isinstance(messages, pa.RecordBatch)
        column = messages.column
        self.symbol: list[str] = _strings(column("symbol"))
        self.seq: list[int] = _pylist(column("seq"))
        self.prev_seq: list[int | None] = _pylist(column("prev_seq"))
        self.first_seq: list[int | None] = _pylist(column("first_seq"))
        self.is_snapshot: list[bool] = column("is_snapshot").to_pylist()
        self.checksum: list[int | None] = _pylist(column("checksum"))
        self.exchange_ts: list[int | None] = _pylist(column("exchange_ts").view(pa.int64()))
        bid_rows = np.asarray(column("bid_rows"), dtype=np.int64)
        ends = np.cumsum(bid_rows + np.asarray(column("ask_rows"), dtype=np.int64))
        starts = np.empty_like(ends)
        starts[:1] = 0
        starts[1:] = ends[:-1]
        self.starts: list[int] = starts.tolist()
        self.mids: list[int] = (starts + bid_rows).tolist()
        self.ends: list[int] = ends.tolist()
        self.prices: list[float] = _pylist(l2.column("price"))
        self.sizes: list[float] = _pylist(l2.column("size"))
        self.price_text: list[str | None] | None = l2.column("price_text").to_pylist() if keep_text else None
        self.size_text: list[str | None] | None = l2.column("size_text").to_pylist() if keep_text else None

    def message(self, i: int) -> Message:
        return Message(
            self.seq[i], self.prev_seq[i], self.first_seq[i], self.is_snapshot[i], self.checksum[i], self.exchange_ts[i]
        )

    def levels(self, i: int) -> Levels:
        start, mid, end = self.starts[i], self.mids[i], self.ends[i]
        prices, sizes, ptext, stext = self.prices, self.sizes, self.price_text, self.size_text
        return Levels(
            prices[start:mid],
            sizes[start:mid],
            prices[mid:end],
            sizes[mid:end],
            ptext[start:mid] if ptext is not None else None,
            stext[start:mid] if stext is not None else None,
            ptext[mid:end] if ptext is not None else None,
            stext[mid:end] if stext is not None else None,
        )


def _strings(column: object) -> list[Any]:
    """A string column as a list; a dictionary column through its codes (its to_pylist is ~30x slower)."""
    import numpy as np
    import pyarrow as pa

    assert isinstance(column, pa.Array)
    if isinstance(column, pa.DictionaryArray) and not column.null_count:
        values = np.asarray(column.dictionary.to_pylist(), dtype=object)
        return list(values[np.asarray(column.indices)].tolist())
    return list(column.to_pylist())


def _pylist(column: object) -> list[Any]:
    """An Arrow number column as a list (None where null); through numpy when it has no null (faster)."""
    import numpy as np

    assert hasattr(column, "null_count") and hasattr(column, "to_pylist")
    if column.null_count:
        return list(column.to_pylist())
    return list(np.asarray(column).tolist())


def messages_of(l2: object, messages: object, keep_text: bool) -> Iterator[tuple[str, Message, Levels]]:
    """(symbol, header, levels) of each message of an l2 wire batch and its message batch, in order.

    Messages without levels (OKX no-change, empty Binance diffs) are yielded too: the chain needs them.
    """
    view = BatchView(l2, messages, keep_text)
    for i, symbol in enumerate(view.symbol):
        yield symbol, view.message(i), view.levels(i)
