"""Arbiter keys: what identifies an update across connections, one bound per table, one key function for all."""

from __future__ import annotations

import orjson
import pytest

from tests.captures import FILES, capture_path
from xtrader.arbiter import Arbiter
from xtrader.arbiter_batches import BatchArbiter
from xtrader.batch import Batches
from xtrader.clock import Receipt
from xtrader.venues import venue
from xtrader.verify import verify

START_NS = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


def quotes(*tops: tuple[float, float, float, float], ts_ms: int = 1_750_000_000_123) -> Batches:
    """Deribit `quote.BTC-PERPETUAL` notifications (no sequence), all in one exchange millisecond, parsed."""
    deribit = venue("deribit")
    out = deribit.columns()
    for i, (bid, bid_size, ask, ask_size) in enumerate(tops):
        data = {
            "timestamp": ts_ms,
            "instrument_name": "BTC-PERPETUAL",
            "best_bid_price": bid,
            "best_bid_amount": bid_size,
            "best_ask_price": ask,
            "best_ask_amount": ask_size,
        }
        frame = orjson.dumps(
            {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "quote.BTC-PERPETUAL", "data": data}}
        )
        deribit.parse(frame, Receipt(START_NS + i, i), out)
    return out.flush(START_NS)


A = (60000.0, 10.0, 60000.5, 20.0)
B = (60000.0, 10.0, 60000.5, 30.0)


def bbo_sizes(batches: Batches) -> list[float] | None:
    return None if batches.bbo is None else batches.bbo.column("ask_size").to_pylist()


# -- item 11: sequence-less top of book ----------------------------------------------------------------------------


def test_a_quote_that_flicks_back_within_one_ms_keeps_every_row_on_one_connection() -> None:
    arbiter = BatchArbiter()
    kept = arbiter.filter("c0", quotes(A, B, A))
    assert bbo_sizes(kept) == [20.0, 30.0, 20.0]  # A -> B -> A: three updates, three rows
    assert arbiter.snapshot()["duplicates"] == 0


def test_a_flicking_quote_is_deduplicated_across_connections_update_by_update() -> None:
    arbiter = BatchArbiter()
    arbiter.filter("c0", quotes(A, B, A))
    kept = arbiter.filter("c1", quotes(A, B, A, B))  # the same three, then one c0 has not delivered yet
    assert bbo_sizes(kept) == [30.0]
    again = arbiter.filter("c0", quotes(B))  # c0 catches up: c1 delivered that fourth update first
    assert again.bbo is None
    assert arbiter.snapshot()["wins"] == {"c0": 3, "c1": 1}


def test_the_connector_dedup_keeps_flicking_quotes_across_batches() -> None:
    arbiter = BatchArbiter()  # a connector's own dedup (redundancy 1): one connection, batch after batch
    assert bbo_sizes(arbiter.filter("c0", quotes(A, B))) == [20.0, 30.0]
    assert bbo_sizes(arbiter.filter("c0", quotes(A))) == [20.0]


def test_a_quote_sent_twice_in_a_row_is_one_update() -> None:
    """A quote stream sends changes: the same quote again right after itself is the frame resent (a venue or
    network duplicate), not an update; a copy of it on another connection is a duplicate too."""
    arbiter = BatchArbiter()
    kept = arbiter.filter("c0", quotes(A, A, B, B, A))
    assert bbo_sizes(kept) == [20.0, 30.0, 20.0]
    assert arbiter.snapshot()["duplicates"] == 2
    assert arbiter.filter("c1", quotes(A, B, A)).bbo is None


# -- item 12: one bound per table ----------------------------------------------------------------------------------


def test_busy_top_of_book_traffic_does_not_evict_trade_keys() -> None:
    arbiter = Arbiter(capacity=3, ttl_ns=60 * SECOND)
    now = START_NS
    assert arbiter.offer("c0", ("trades", "BTCUSDT", "42"), now)
    for u in range(10):  # bookTicker keys fill their own table, not the trades one
        assert arbiter.offer("c0", ("bbo", "BTCUSDT", u), now + u)
    assert not arbiter.offer("c1", ("trades", "BTCUSDT", "42"), now + 20)  # still remembered: a duplicate
    assert arbiter.remembered() == {"trades": 1, "bbo": 3}


def test_each_table_evicts_its_own_oldest_keys_past_its_capacity() -> None:
    arbiter = Arbiter(capacity=2, ttl_ns=60 * SECOND)
    for u in range(3):
        arbiter.offer("c0", ("bbo", "X", u), START_NS + u)
    assert arbiter.offer("c1", ("bbo", "X", 0), START_NS + 5)  # evicted from the bbo table: taken again
    assert not arbiter.offer("c1", ("bbo", "X", 2), START_NS + 6)


def test_a_batch_arbiter_with_small_capacity_keeps_trades_through_a_bbo_burst() -> None:
    from tests.unit.test_services import trades_batch

    arbiter = BatchArbiter(capacity=3)
    arbiter.filter("c0", trades_batch("deribit", [("BTC-PERPETUAL", "42")]), START_NS)
    for ms in range(5):
        arbiter.filter("c0", quotes(A, ts_ms=1_750_000_000_000 + ms), START_NS + ms)
    kept = arbiter.filter("c1", trades_batch("deribit", [("BTC-PERPETUAL", "42")]), START_NS + 10)
    assert kept.trades is None


# -- issue 11 §5: verify and the pipeline's arbiter use one key function ------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
def test_verify_and_the_batch_arbiter_key_every_real_capture_alike(name: str) -> None:
    result = verify(capture_path(name))
    arbiter = BatchArbiter()
    for connection, batches in result.batches:
        arbiter.filter(connection, batches)
    assert result.arbiter.keys() == arbiter.arbiter.keys()
    ours, theirs = result.arbiter.stats.as_dict(), arbiter.arbiter.stats.as_dict()
    assert ours == theirs
