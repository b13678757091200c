"""Runs of chained updates applied at once (`xtrader.book_runs`) end exactly where one-by-one application does.

Two book services are fed the same batches: one applies runs of at least 2 updates at once, the other none
(each update through `BookSync`, as before). Random chains of updates over a few prices (so levels are set,
changed and removed within a run), on two symbols interleaved, with gaps, repeats and snapshots thrown in,
split into random batches.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_services import NOW, Clock, l2_batch
from xtrader import book_runs
from xtrader.bookservice import BookService

SYMBOLS = ("AAA", "BBB")
PRICES = [100.0 + i * 0.5 for i in range(12)]

levels = st.lists(st.tuples(st.sampled_from(PRICES), st.sampled_from([0.0, 0.0, 1.0, 2.5, 3.0])), max_size=4)
#: one step of a symbol's stream: an update chaining on the last, a lost update (a gap), a repeat of the
#: last update (a lagging copy), or a snapshot
step = st.tuples(
    st.sampled_from(SYMBOLS),
    st.sampled_from(["next"] * 12 + ["gap", "repeat", "snapshot"]),
    levels,
    levels,
)


def stream(kind: str, steps: list[Any]) -> list[tuple[Any, ...]]:
    """Messages (symbol, seq, prev_seq, first_seq, is_snapshot, bids, asks) of `kind`'s rules for `steps`."""
    last = dict.fromkeys(SYMBOLS, 1000)
    out: list[tuple[Any, ...]] = []
    for symbol, what, bids, asks in steps:
        seq = last[symbol]
        if what == "repeat":  # a lagging copy of an older update
            out.extend([m for m in out if m[0] == symbol][-3:-2])
            continue
        if what == "gap":
            seq += 3
        if what == "snapshot" and kind == "deribit":
            last[symbol] = seq + 5
            out.append((symbol, seq + 5, None, None, True, bids, asks))
            continue
        new = seq + 2
        if kind == "binance_futures":
            out.append((symbol, new, seq, seq + 1, False, bids, asks))
        elif kind == "binance_spot":
            out.append((symbol, new, None, seq + 1, False, bids, asks))
        else:
            out.append((symbol, new, seq, None, False, bids, asks))
        last[symbol] = new
    return out


def service(kind: str) -> BookService:
    exchange = "deribit" if kind == "deribit" else "binance"
    s = BookService(exchange, kind, clock=Clock(), gap_hold_s=0)
    first = [(symbol, 998, None, None, True, [(PRICES[0], 1.0)], [(PRICES[-1], 1.0)]) for symbol in SYMBOLS]
    s.on_batch("c0", l2_batch(exchange, first, NOW), rest=kind != "deribit")
    # one update each, so that the books are past the snapshot's bridge (`BookSync.bridging`)
    prev = None if kind == "binance_spot" else 998
    s.on_batch("c0", l2_batch(exchange, [(symbol, 1000, prev, 999, False, [], []) for symbol in SYMBOLS], NOW))
    assert all(s.sync(symbol).last == 1000 for symbol in SYMBOLS)
    return s


def state(s: BookService) -> dict[str, Any]:
    counters = s.stats()["counters"]
    counters.pop("crossed")  # checked once per run by book_runs: a diagnostic only
    books = {
        symbol: (sync.last, sync.last_ts, list(sync.recent), sync.valid, sync.book.top(100))
        for (_, symbol), sync in sorted(s.books.books.items())
    }
    return {"counters": counters, "books": books}


@pytest.mark.parametrize("kind", ["binance_futures", "binance_spot", "deribit"])
@settings(max_examples=60, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=120), cuts=st.lists(st.integers(0, 120), max_size=6))
def test_runs_applied_at_once_end_like_one_by_one(kind: str, steps: list[Any], cuts: list[int]) -> None:
    messages = stream(kind, steps)
    exchange = "deribit" if kind == "deribit" else "binance"
    bounds = sorted({0, len(messages), *(c for c in cuts if c < len(messages))})
    runs, single = service(kind), service(kind)
    outputs = []
    try:
        for lo, hi in itertools.pairwise(bounds):
            chunk = messages[lo:hi]
            ts = NOW + hi  # each batch a little later
            book_runs.MIN_RUN = 2
            a = runs.on_batch("c0", l2_batch(exchange, chunk, ts))
            book_runs.MIN_RUN = 10**9
            b = single.on_batch("c0", l2_batch(exchange, chunk, ts))
            outputs.append((a.resyncs, b.resyncs, a.events is None, b.events is None))
    finally:
        book_runs.MIN_RUN = MIN_RUN
    assert state(runs) == state(single)
    assert [(a, c) for a, _, c, _ in outputs] == [(b, d) for _, b, _, d in outputs]


MIN_RUN = book_runs.MIN_RUN


@pytest.mark.parametrize("kind", ["binance_futures", "binance_spot", "deribit"])
def test_a_long_chain_is_applied_as_a_run(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    apply_levels = book_runs._apply_levels
    monkeypatch.setattr(book_runs, "_apply_levels", lambda *a: calls.append(1) or apply_levels(*a))
    s = service(kind)
    chain = stream(kind, [("AAA", "next", [(PRICES[i % 12], float(i % 3))], []) for i in range(40)])
    s.on_batch("c0", l2_batch("deribit" if kind == "deribit" else "binance", chain, NOW))
    assert calls == [1]  # one run, not 40 updates
    sync = s.sync("AAA")
    assert sync.last == 1080 and sync.counters.updates_applied == 41  # (with the one of `service`)
    # the last size of each price (0 removes it): what 40 updates one after the other leave
    expected = {PRICES[0]: 1.0} | {PRICES[i % 12]: float(i % 3) for i in range(40)}
    assert dict(sync.book.top(100)[0]) == {p: size for p, size in expected.items() if size}


def test_a_run_ends_at_a_lagging_copy_whose_levels_are_not_applied() -> None:
    s = service("binance_futures")
    steps = [("AAA", "next", [(PRICES[1], float(1 + i % 2))], []) for i in range(20)]  # ends at size 2.0
    chain = stream("binance_futures", steps)
    copy = chain[-2]  # an older update (size 1.0) again, from a lagging connection
    after = stream("binance_futures", [*steps, ("AAA", "next", [(PRICES[2], 1.0)], [])])[-1]
    s.on_batch("c0", l2_batch("binance", [*chain, copy, after], NOW))
    sync = s.sync("AAA")
    assert sync.last == after[1] and sync.counters.gaps == 0
    assert dict(sync.book.top(100)[0])[PRICES[1]] == 2.0
