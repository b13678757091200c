"""Runs of one book's chained updates applied at once, from a batch's arrays (the book service's bulk path).

Within a batch, the updates of one symbol that chain one on the other (the venue's rules: `Rules.chains` on
the book, then `Rules.chained` along the run) change the book exactly as applying them one after the other
does: each level ends at the size of its last update in the run (0 removes it). So a run's levels are
reduced with numpy to the last size per (side, price) and set with one dict update per side, and the book's
sequence state moves to the run's last message (`last`, `last_ts`, `recent`, counters). This replaces a
Python loop over every level of every message by a few array calls per symbol and batch.

Only the plain case runs here: a valid book fed by the same connection as before, not bridging a snapshot
or waiting for a missing update (`BookSync.held`), no text kept, no checksum to check, no snapshot, no NaN
price. The run ends at the first message that is not plain or does not chain; that message and every later
one go through the per-message path, in order. One difference, in a diagnostic counter only: `crossed` is
checked once after a run, not after each of its updates.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from xtrader.book import Book
from xtrader.sync import RECENT, BookSync

#: shorter runs are left to the per-message path (a run costs about 20 array calls, whatever its length)
MIN_RUN = 16


def apply_runs(
    books: Mapping[tuple[str, str], BookSync],
    l2: pa.RecordBatch,
    messages: pa.RecordBatch,
    connection: str,
    last_connection: Mapping[str, str],
    dropped: Container[str],
) -> Any:
    """Apply, for each symbol of an l2 wire batch and its message batch (`Columns.flush`), the plain run its
    messages start with (books keyed ("*", symbol), as `BookService` keeps them).

    Returns a numpy bool array, True for each message applied here, or None when none was.
    """
    n = messages.num_rows
    symbols = messages.column("symbol")
    if n < MIN_RUN or not isinstance(symbols, pa.DictionaryArray) or symbols.null_count:
        return None
    codes = np.asarray(symbols.indices)
    arrays: _Arrays | None = None  # the batch's columns as arrays, made for the first symbol that may run
    done: Any = None
    for code, count in enumerate(np.bincount(codes).tolist()):
        if count < MIN_RUN:
            continue
        symbol = symbols.dictionary[code].as_py()
        if symbol in dropped or last_connection.get(symbol) != connection:
            continue
        sync = books.get(("*", symbol))
        if sync is None or sync.last is None or sync.bridging or sync.held or sync.book.keep_text:
            continue
        if arrays is None:
            arrays = _Arrays.of(l2, messages, codes)
            if arrays is None:
                return None
        run = _run(sync, np.flatnonzero(codes == code), arrays)
        if len(run) < MIN_RUN:
            continue
        rows = arrays.row_codes == code
        rows[int(arrays.ends[run[-1]]) :] = False  # the run's rows: its symbol's, up to its last message's
        _apply_levels(sync.book, arrays, rows)
        _advance(sync, arrays.seq[run], arrays.ts[run], None if arrays.ts_valid is None else arrays.ts_valid[run])
        if done is None:
            done = np.zeros(n, dtype=bool)
        done[run] = True
    return done


class _Arrays:
    """One batch's columns as numpy arrays, as the runs need them."""

    __slots__ = ("bids", "ends", "first", "plain", "prev", "prices", "row_codes", "seq", "sizes", "ts", "ts_valid")

    seq: Any  # int64 per message
    prev: Any  # int64 per message, None when the column has a null
    first: Any  # (the same)
    ts: Any  # exchange time per message (0 where null)
    ts_valid: Any  # None when none is null
    plain: Any  # bool per message: no snapshot, no checksum to check
    ends: Any  # each message's end row
    row_codes: Any  # the symbol code of each row
    prices: Any
    sizes: Any
    bids: Any  # bool per row

    @classmethod
    def of(cls, l2: pa.RecordBatch, messages: pa.RecordBatch, codes: Any) -> _Arrays | None:
        """None for what only the per-message path handles: a null seq, a null level or a NaN price."""
        column = messages.column
        seq = _ints(column("seq"))
        price_column, size_column = l2.column("price"), l2.column("size")
        if seq is None or price_column.null_count or size_column.null_count:
            return None
        prices = np.asarray(price_column)
        if np.isnan(prices).any():
            return None
        a = cls()
        a.seq, a.prices, a.sizes = seq, prices, np.asarray(size_column)
        a.prev = _ints(column("prev_seq"))
        a.first = _ints(column("first_seq"))
        ts = column("exchange_ts").view(pa.int64())
        a.ts = np.asarray(ts.fill_null(0)) if ts.null_count else np.asarray(ts)
        a.ts_valid = np.asarray(ts.is_valid()) if ts.null_count else None
        snapshot = column("is_snapshot")
        a.plain = ~np.asarray(snapshot.fill_null(True) if snapshot.null_count else snapshot, dtype=bool)
        checksum = column("checksum")
        if checksum.null_count < len(seq):  # a checksum to check (0: the venue sent none): per message
            a.plain &= np.asarray(checksum.fill_null(0)) == 0
        bid_rows = np.asarray(column("bid_rows"), dtype=np.int64)
        per_message = bid_rows + np.asarray(column("ask_rows"), dtype=np.int64)
        a.ends = np.cumsum(per_message)
        a.row_codes = np.repeat(codes, per_message)
        # a row is a bid when it comes before its message's first ask row
        a.bids = np.arange(len(prices)) < np.repeat(a.ends - per_message + bid_rows, per_message)
        return a


def _ints(column: pa.Array) -> Any:
    """An int column as numpy int64; None when it has a null (those rules need the per-message path)."""
    if column.null_count:
        return None
    return np.asarray(column, dtype=np.int64)


def _run(sync: BookSync, index: Any, arrays: _Arrays) -> Any:
    """The messages of `index` (one symbol's, in order) that chain on the book and one on the other."""
    plain = arrays.plain
    s = arrays.seq[index]
    p = None if arrays.prev is None else arrays.prev[index]
    f = None if arrays.first is None else arrays.first[index]
    assert sync.last is not None
    head = sync.rules.chains(sync.last, int(s[0]), None if p is None else int(p[0]), None if f is None else int(f[0]))
    if not head or not plain[index[0]]:
        return index[:0]
    chained = sync.rules.chained(s, p, f)
    if chained is None:
        return index[:0]
    ok = chained & (s[1:] > s[:-1]) & plain[index[1:]]
    length = len(index) if ok.all() else 1 + int(np.argmin(ok))
    return index[:length]


def _apply_levels(book: Book, arrays: _Arrays, rows: Any) -> None:
    """Set the levels of the `rows` (a mask) on `book`: the last size of each (side, price), 0 removing it."""
    prices, sizes, bids = arrays.prices, arrays.sizes, arrays.bids
    for is_bid, side_rows in ((True, rows & bids), (False, rows & ~bids)):
        if not side_rows.any():
            continue
        side_prices = prices[side_rows]
        # a dict built from the run's (price, size) pairs in order keeps the last size of each price
        last = dict(zip(side_prices.tolist(), sizes[side_rows].tolist(), strict=True))
        side = book.bids if is_bid else book.asks
        side.update(last)
        gone = [price for price, size in last.items() if size == 0.0]
        for price in gone:
            del side[price]
        # the bounds need only hold every price set (`Book.bid_hi`): every price of the run's side does
        if is_bid:
            book.bid_hi = max(book.bid_hi, float(side_prices.max()))
        else:
            book.ask_lo = min(book.ask_lo, float(side_prices.min()))


def _advance(sync: BookSync, seq: Any, ts: Any, ts_valid: Any) -> None:
    """The book's sequence state and counters after a run of len(seq) applied updates."""
    k = len(seq)
    sync.last = int(seq[-1])
    if ts_valid is None:
        sync.last_ts = int(ts[-1])
    elif ts_valid.any():
        sync.last_ts = int(ts[np.flatnonzero(ts_valid)[-1]])
    sync.recent.extend(seq[-RECENT:].tolist())  # increasing, all above the book's last: no repeat
    counters = sync.counters
    counters.messages += k
    counters.updates_applied += k
    counters.checksum_skipped += k
    if sync.book.crossed():
        counters.crossed += 1
