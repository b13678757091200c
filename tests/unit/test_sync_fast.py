"""The columnar fast path of book sync (`BookSync.apply_fast`, `Book.crossed`'s bounds) decides exactly as the
message-by-message path: same verdicts, books, counters and chain state, on generated and real frames."""

from __future__ import annotations

import itertools
import random

import pytest

from xtrader.book import Book
from xtrader.clock import Receipt
from xtrader.sync import RULES, Books, Message, Verdict, messages_of
from xtrader.venues import venue

SEQS = (None, 0, 1, 2, 3, 4)


@pytest.mark.parametrize("kind", sorted(RULES))
def test_chains_is_update_apply_outside_a_bridge(kind: str) -> None:
    rules = RULES[kind]()
    for last, seq, prev, first in itertools.product((1, 2, 3), SEQS[1:], SEQS, SEQS):
        msg = Message(seq, prev, first, False)
        expected = rules.update(last, msg, False) is Verdict.APPLY
        assert rules.chains(last, seq, prev, first) is expected, (last, msg)


def test_crossed_matches_a_full_scan() -> None:
    rng = random.Random(7)
    book = Book()
    for step in range(5_000):
        if step % 997 == 0:
            book.clear()
        is_bid = rng.random() < 0.5
        prices = [float(rng.randint(90, 110)) for _ in range(rng.randint(0, 3))]
        sizes = [0.0 if rng.random() < 0.4 else float(rng.randint(1, 5)) for _ in prices]
        book.apply(is_bid, prices, sizes)
        naive = bool(book.bids and book.asks) and max(book.bids) >= min(book.asks)
        assert book.crossed() is naive, step
        if step % 3 == 0:  # the bounds made exact by best_bid / best_ask keep crossed() right too
            assert book.best_bid() == (max(book.bids.items()) if book.bids else None), step
            assert book.best_ask() == (min(book.asks.items()) if book.asks else None), step


def _feed(name: str, frames: list[bytes], snapshots: dict[str, bytes], batch_rows: int, fast: bool) -> Books:
    v = venue(name)
    books = Books(v.sync_kind, keep_text=v.keep_text, checksum=getattr(v, "book_checksum", None))
    for i, (symbol, body) in enumerate(snapshots.items()):
        out = v.columns()
        v.parse_snapshot(body, symbol, Receipt(i, i), out)
        batch = out.flush()
        books.apply_batch("c0", batch.l2, batch.l2_messages, rest=True)
    out = v.columns()
    verdicts: list[Verdict] = []

    def flush() -> None:
        batch = out.flush()
        if batch.l2 is None or batch.l2_messages is None:
            return
        if fast:
            verdicts.extend(v for _, _, v, _ in books.apply_batch("c0", batch.l2, batch.l2_messages))
        else:  # the reference: one Message and Levels per message through on_message
            for symbol, msg, levels in messages_of(batch.l2, batch.l2_messages, v.keep_text):
                verdicts.append(books.get("c0", symbol).on_message(msg, levels))

    for i, frame in enumerate(frames):
        v.parse(frame, Receipt(1_700_000_000_000_000_000 + i, i), out)
        if out.rows() >= batch_rows:
            flush()
    flush()
    books.verdicts = verdicts  # type: ignore[attr-defined]
    return books


def _state(books: Books) -> object:
    return (
        books.verdicts,  # type: ignore[attr-defined]
        {
            key: (s.last, s.last_ts, list(s.recent), s.bridging, s.counters.as_dict(), s.book.bids, s.book.asks)
            for key, s in books.books.items()
        },
    )


@pytest.mark.parametrize("batch_rows", [1, 37, 500])
def test_fast_path_equals_message_by_message_on_generated_frames(
    batch_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xtrader.bench.feed import VENUE, frames
    from xtrader.sync import BookSync

    taken = []
    apply_fast = BookSync.apply_fast
    monkeypatch.setattr(
        BookSync, "apply_fast", lambda self, view, i: taken.append(apply_fast(self, view, i)) or taken[-1]
    )

    data, snapshots = frames(1_500, 3)
    # a gap and a duplicate on the way: the fast path must hand them to the slow one
    data = data[:400] + data[401:900] + data[850:]
    fast = _feed(VENUE, data, snapshots, batch_rows, fast=True)
    slow = _feed(VENUE, data, snapshots, batch_rows, fast=False)
    assert _state(fast) == _state(slow)
    counters = fast.counters()
    assert counters.updates_applied > 500 and counters.gaps >= 1 and counters.dropped >= 1
    assert sum(taken) > 500  # most updates went the fast way


@pytest.mark.parametrize("name", ["binance", "binance_futures", "deribit"])
def test_fast_path_equals_message_by_message_on_captures(name: str) -> None:
    from tests.captures import ws_frames

    frames = ws_frames(name)
    fast = _feed(name, frames, {}, 50, fast=True)
    slow = _feed(name, frames, {}, 50, fast=False)
    assert _state(fast) == _state(slow)
