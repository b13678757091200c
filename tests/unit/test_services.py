"""The Ray-free services the actors host: batch arbiter, book service, sink front."""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
import pytest

from xtrader.arbiter_batches import BatchArbiter
from xtrader.batch import Batches, Columns
from xtrader.bookservice import BookService
from xtrader.clock import Anchor, host_id
from xtrader.sinkfront import SinkFront

NOW = 1_700_000_000_000_000_000


def l2_batch(
    exchange: str,
    messages: list[tuple[str, int, int | None, int | None, bool, list[tuple[float, float]], list[tuple[float, float]]]],
    exchange_ts: int | None = None,
) -> Batches:
    """messages: (symbol, seq, prev_seq, first_seq, is_snapshot, bids, asks), all at `exchange_ts`."""
    out = Columns(exchange)
    for symbol, seq, prev, first, snap, bids, asks in messages:
        out.l2.message(symbol, exchange_ts, NOW, seq, prev, first, snap, None, len(bids), len(asks))
        for price, size in bids + asks:
            out.l2.price.append(price)
            out.l2.size.append(size)
    return out.flush(NOW)


def trades_batch(exchange: str, trades: list[tuple[str, str]]) -> Batches:
    out = Columns(exchange)
    for symbol, trade_id in trades:
        t = out.trades
        t.symbol.append(symbol)
        t.exchange_ts.append(NOW)
        t.receive_ts.append(NOW)
        t.trade_id.append(trade_id)
        t.side.append("buy")
        t.price.append(1.0)
        t.size.append(2.0)
    return out.flush(NOW)


# -- arbiter ----------------------------------------------------------------------------------------------------


def test_first_arrival_wins_and_duplicates_lose_all_their_rows() -> None:
    arbiter = BatchArbiter()
    a = l2_batch(
        "okx", [("X", 1, 0, None, False, [(10.0, 1.0)], [(11.0, 1.0)]), ("X", 2, 1, None, False, [(9.0, 1.0)], [])]
    )
    b = l2_batch("okx", [("X", 2, 1, None, False, [(9.0, 1.0)], []), ("X", 3, 2, None, False, [], [(12.0, 3.0)])])
    kept_a = arbiter.filter("a", a)
    kept_b = arbiter.filter("b", b)
    assert kept_a.l2 is not None and kept_a.l2.num_rows == 3
    assert kept_b.l2 is not None and kept_b.l2_messages is not None
    assert kept_b.l2_messages.column("seq").to_pylist() == [3]
    assert kept_b.l2.column("seq").to_pylist() == [3]
    assert kept_b.l2.column("price").to_pylist() == [12.0]
    stats = arbiter.snapshot()
    assert stats["wins"] == {"a": 2, "b": 1}
    assert stats["duplicates"] == 1
    assert stats["duplicate_rows"] == {"l2": 1}
    assert stats["duplicates_by_connection"] == {"b": 1}


def test_all_duplicate_batch_becomes_empty_and_trades_dedup_by_id() -> None:
    arbiter = BatchArbiter()
    arbiter.filter("a", trades_batch("binance", [("X", "1"), ("X", "2")]))
    kept = arbiter.filter("b", trades_batch("binance", [("X", "2"), ("X", "3"), ("Y", "2")]))
    assert kept.trades is not None
    assert list(
        zip(kept.trades.column("symbol").to_pylist(), kept.trades.column("trade_id").to_pylist(), strict=True)
    ) == [
        ("X", "3"),
        ("Y", "2"),
    ]
    again = arbiter.filter("b", trades_batch("binance", [("X", "3")]))
    assert again.trades is None


def test_rotation_reports_the_least_winning_connection() -> None:
    arbiter = BatchArbiter(rotation_s=1.0, min_win_share=0.2)
    arbiter.register("slow")
    arbiter.filter("fast", trades_batch("binance", [("X", "1")]))
    assert arbiter.rotation_due(0) is None
    assert arbiter.rotation_due(500_000_000) is None
    assert arbiter.rotation_due(1_000_000_000) == "slow"
    # a period where both win about as often: nobody is rotated
    arbiter.filter("fast", trades_batch("binance", [("X", "2")]))
    arbiter.filter("slow", trades_batch("binance", [("X", "3")]))
    assert arbiter.rotation_due(2_000_000_000) is None


# -- book service -----------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


def test_binance_book_buffers_requests_a_snapshot_then_syncs() -> None:
    clock = Clock()
    service = BookService("binance", "binance_spot", depth=5, clock=clock)
    first = service.on_batch("c0", l2_batch("binance", [("BTC", 105, None, 101, False, [(100.0, 2.0)], [])]))
    assert first.l2 is not None and first.l2.num_rows == 1
    assert first.resyncs == []  # the connector fetches the first snapshot by itself
    clock.now += 6_000_000_000
    _, events, resyncs = service.tick()
    assert resyncs == [("c0", "BTC")]  # ... unless it never comes
    assert events is not None and events.column("kind").to_pylist() == ["resync"]
    # a REST snapshot at 103 bridges the buffered 101..105
    snap = service.on_batch(
        "c0",
        l2_batch("binance", [("BTC", 103, None, None, True, [(100.0, 1.0), (99.0, 1.0)], [(101.0, 1.0)])]),
        rest=True,
    )
    assert snap.l2 is None
    assert snap.l2_rest is not None and snap.l2_rest.column("is_snapshot").to_pylist() == [True, True, True]
    assert snap.resyncs == []
    tops = service.tops()
    assert tops["BTC"] == ([(100.0, 2.0), (99.0, 1.0)], [(101.0, 1.0)])
    symbol = service.stats()["symbols"]["BTC"]
    assert symbol["syncs"] == 1 and symbol["buffered_applied"] == 1 and symbol["time_to_sync_ms_first"] > 0


def test_gap_discards_the_book_records_an_event_and_asks_for_a_resync() -> None:
    service = BookService("deribit", "deribit", clock=Clock())
    service.on_batch("c0", l2_batch("deribit", [("P", 10, None, None, True, [(1.0, 1.0)], [(2.0, 1.0)])]))
    assert "P" in service.tops()
    out = service.on_batch("c0", l2_batch("deribit", [("P", 12, 11, None, False, [(1.0, 3.0)], [])]))
    assert out.l2 is not None and out.l2.num_rows == 1  # the row is still written
    assert out.events is not None and out.events.column("kind").to_pylist() == ["gap", "resync"]
    assert out.resyncs == [("c0", "P")]
    assert service.tops() == {}
    snapshots, _, _ = service.tick(force=True)
    assert snapshots is None  # an invalid book is never emitted


def test_book_snapshots_hold_the_top_levels_of_valid_books() -> None:
    service = BookService("okx", "okx", depth=2, clock=Clock())
    service.on_batch(
        "c0",
        l2_batch("okx", [("S", 5, -1, None, True, [(10.0, 1.0), (9.0, 2.0), (8.0, 3.0)], [(11.0, 4.0)])]),
    )
    snapshots, events, resyncs = service.tick(force=True)
    assert events is None and resyncs == []
    assert snapshots is not None
    rows: dict[str, list[Any]] = snapshots.to_pydict()
    assert rows["level"] == [0, 1]
    assert rows["bid_price"] == [10.0, 9.0]
    assert rows["ask_price"] == [11.0, None]
    assert rows["exchange"] == ["okx", "okx"]


# -- sink front -------------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.written: list[tuple[str, int]] = []
        self.flushed = 0

    def write(self, table: str, batch: pa.RecordBatch) -> None:
        self.written.append((table, batch.num_rows))

    def flush(self) -> None:
        self.flushed += 1

    def close(self) -> None:
        pass


def test_sink_front_writes_each_source_batch_once_even_out_of_order() -> None:
    recorder = Recorder()
    # code latency runs on the monotonic clock from each batch's anchor (xtrader.clock)
    front = SinkFront(recorder, "parquet", clock=lambda: NOW + 5_000_000, mono=lambda: 5_000_000)
    at = Anchor(host_id(), NOW, 0)
    trades = trades_batch("binance", [("X", "1"), ("X", "2")]).trades
    assert front.write("c0", 0, {"trades": trades}, anchor=at)
    assert front.write("c0", 2, {"trades": trades}, anchor=at)
    assert not front.write("c0", 0, {"trades": trades}, anchor=at)
    assert front.write("c0", 1, {"trades": trades}, anchor=at)
    assert not front.write("c0", 2, {"trades": trades}, anchor=at)
    assert front.write("c1", 0, {"trades": trades, "l2": None}, anchor=at)
    assert recorder.written == [("trades", 2)] * 4
    stats = front.stats()
    assert stats["rows"] == {"trades": {"binance": 8}}
    assert front.accepted() == {"rows": stats["rows"], "origins": stats["origins"]}  # what the bench polls
    assert stats["repeats"] == 2
    assert stats["latency_ms"]["p50"] == pytest.approx(5.0, rel=0.01)
    from xtrader import metrics

    assert metrics.total(stats["metrics"], metrics.ROWS, exchange="binance", channel="trades") == 8


def test_a_stale_rest_snapshot_is_asked_again_at_once() -> None:
    service = BookService("binance", "binance_spot", clock=Clock())
    service.on_batch("c0", l2_batch("binance", [("BTC", 105, None, 101, False, [(100.0, 2.0)], [])]))
    out = service.on_batch("c0", l2_batch("binance", [("BTC", 90, None, None, True, [(1.0, 1.0)], [])]), rest=True)
    assert out.resyncs == [("c0", "BTC")]
    assert out.events is not None and "stale" in out.events.column("detail").to_pylist()[0]
    assert service.tops() == {}


def test_a_book_that_never_gets_its_first_snapshot_asks_for_one() -> None:
    clock = Clock()
    service = BookService("okx", "okx", clock=clock)
    out = service.on_batch("c0", l2_batch("okx", [("S", 7, 6, None, False, [(1.0, 1.0)], [])]))
    assert out.resyncs == []  # the subscription's snapshot is normally on its way
    clock.now += 6_000_000_000
    assert service.tick()[2] == [("c0", "S")]
    assert service.tick()[2] == []  # asked: not again before its backoff (RESYNC_BASE_S)


# -- sequence resets (OKX, Deribit): a websocket snapshot is authoritative, a broken chain is a gap ---------------

MS = 1_000_000  # one millisecond of exchange time, in ns


@pytest.mark.parametrize("venue", ["okx", "deribit"])
def test_a_snapshot_after_a_sequence_reset_replaces_the_book_with_redundant_connections(venue: str) -> None:
    service = BookService(venue, venue, clock=Clock())
    big = 1_000_000
    service.on_batch("c0", l2_batch(venue, [("S", big, None, None, True, [(10.0, 1.0)], [(11.0, 1.0)])], NOW))
    service.on_batch("c1", l2_batch(venue, [("S", big + 40, big, None, False, [(10.0, 2.0)], [])], NOW + MS))
    # maintenance: the venue restarts the sequence; a (re)subscription brings a snapshot at seqId 3
    service.on_batch("c1", l2_batch(venue, [("S", 3, None, None, True, [(20.0, 1.0)], [(21.0, 1.0)])], NOW + 2 * MS))
    out = service.on_batch("c0", l2_batch(venue, [("S", 5, 3, None, False, [(20.0, 7.0)], [])], NOW + 3 * MS))
    assert service.sync("S").last == 5
    assert service.tops()["S"] == ([(20.0, 7.0)], [(21.0, 1.0)])
    assert out.events is None and service.stats()["counters"]["gaps"] == 0


@pytest.mark.parametrize("venue", ["okx", "deribit"])
def test_an_update_after_a_missed_sequence_reset_is_a_gap_not_an_older_copy(venue: str) -> None:
    service = BookService(venue, venue, clock=Clock())
    big = 1_000_000
    service.on_batch("c0", l2_batch(venue, [("S", big, None, None, True, [(10.0, 1.0)], [(11.0, 1.0)])], NOW))
    # the reset update (prev 1,000,000 -> 3) was lost: the next one chains on 3
    out = service.on_batch("c0", l2_batch(venue, [("S", 5, 3, None, False, [(20.0, 7.0)], [])], NOW + MS))
    assert out.events is not None and out.events.column("kind").to_pylist() == ["gap", "resync"]
    assert out.resyncs and service.tops() == {}  # never the frozen old book


@pytest.mark.parametrize("venue", ["okx", "deribit"])
def test_a_lagging_redundant_connection_neither_rewinds_the_book_nor_makes_a_false_gap(venue: str) -> None:
    service = BookService(venue, venue, clock=Clock())
    # c0 subscribed a little later than c1: its snapshot (seq 200) arrives first
    service.on_batch("c0", l2_batch(venue, [("S", 200, None, None, True, [(10.0, 1.0)], [(11.0, 1.0)])], NOW + 5 * MS))
    service.on_batch("c0", l2_batch(venue, [("S", 210, 200, None, False, [(10.0, 2.0)], [])], NOW + 6 * MS))
    # c1's own, older snapshot (seq 150) and its older updates, up to one already applied (the arbiter let
    # them through: no other connection delivered them)
    service.on_batch("c1", l2_batch(venue, [("S", 150, None, None, True, [(9.0, 1.0)], [(12.0, 1.0)])], NOW + 2 * MS))
    service.on_batch("c1", l2_batch(venue, [("S", 190, 150, None, False, [(9.0, 5.0)], [])], NOW + 4 * MS))
    service.on_batch("c1", l2_batch(venue, [("S", 200, 190, None, False, [(9.0, 6.0)], [])], NOW + 5 * MS))
    out = service.on_batch("c1", l2_batch(venue, [("S", 220, 210, None, False, [(10.0, 3.0)], [])], NOW + 7 * MS))
    assert service.stats()["counters"]["gaps"] == 0 and out.events is None
    assert service.tops()["S"] == ([(10.0, 3.0)], [(11.0, 1.0)])


def test_the_first_request_for_a_missing_first_snapshot_is_logged_as_a_request() -> None:
    clock = Clock()
    service = BookService("okx", "okx", clock=clock)
    service.on_batch("c0", l2_batch("okx", [("S", 7, 6, None, False, [(1.0, 1.0)], [])]))
    clock.now += 6_000_000_000
    _, events, resyncs = service.tick()
    assert resyncs == [("c0", "S")]
    assert events is not None and events.column("detail").to_pylist() == ["requested"]
    clock.now += 6_000_000_000
    _, events, resyncs = service.tick()
    assert resyncs == [("c0", "S")]
    assert events is not None and events.column("detail").to_pylist() == ["requested again (no answer)"]


def test_resyncs_of_a_redundant_stream_go_to_connectors_that_carry_the_symbol_rotating_on_retry() -> None:
    clock = Clock()
    carriers = {
        "okx/c0/r0": ["BTC-USDT"],
        "okx/c0/r1": ["BTC-USDT"],
        "okx/c1/r0": ["ETH-USDT"],
        "okx/c1/r1": ["ETH-USDT"],
    }
    service = BookService("okx", "okx", clock=clock, gap_hold_s=0)  # (no wait for a missing update: see test_book_hold)
    service.set_carriers(carriers)
    # l2 of a redundant stream reaches the book under the arbiter's name
    service.on_batch("arbiter:okx", l2_batch("okx", [("ETH-USDT", 10, None, None, True, [(1.0, 1.0)], [])]))
    out = service.on_batch("arbiter:okx", l2_batch("okx", [("ETH-USDT", 30, 20, None, False, [(1.0, 2.0)], [])]))
    assert out.resyncs == [("okx/c1/r0", "ETH-USDT")]
    asked = []
    for _ in range(2):  # no answer: asked again (after the backoff: <= 5 s, then <= 10 s), of the other copy, ...
        clock.now += 11_000_000_000
        asked += service.tick()[2]
    assert asked == [("okx/c1/r1", "ETH-USDT"), ("okx/c1/r0", "ETH-USDT")]


def test_a_book_that_never_becomes_valid_backs_off_per_symbol_instead_of_asking_every_5_s() -> None:
    """Issue 13: 10 minutes of a broken, never-answered book: the retries back off (5 s doubling to 300 s)."""
    clock = Clock()
    service = BookService("okx", "okx", clock=clock)
    service.on_batch("c0", l2_batch("okx", [("S", 10, None, None, True, [(1.0, 1.0)], [])]))
    out = service.on_batch("c0", l2_batch("okx", [("S", 30, 20, None, False, [(1.0, 2.0)], [])]))  # a gap
    asked = [clock.now] if out.resyncs else []
    for _ in range(600):
        clock.now += 1_000_000_000
        asked += [clock.now for _ in service.tick()[2]]
    assert 5 <= len(asked) <= 10, len(asked)  # every 5 s would be 120
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert gaps[-1] > gaps[0] and gaps[-1] >= 100_000_000_000
