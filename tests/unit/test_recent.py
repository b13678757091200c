"""What downstream keeps of an arbiter's rows (`xtrader.recent`), and a restarted arbiter seeded from it."""

from __future__ import annotations

import pyarrow as pa

from tests.integration import sink_batches
from tests.unit.test_arbiter_keys import A, B, bbo_sizes, quotes
from tests.unit.test_services import l2_batch, trades_batch
from xtrader.arbiter_batches import BatchArbiter
from xtrader.batch import Batches
from xtrader.recent import RecentKeys

SECOND = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def trades(*ids: int) -> Batches:
    return trades_batch("okx", [("BTC-USDT", str(i)) for i in ids])


def test_only_an_arbiters_rows_are_kept_as_their_key_columns_in_buffers_of_their_own() -> None:
    recent = RecentKeys()
    batch = trades(1, 2).trades
    recent.add("arbiter:okx/s0|okx/s0/c0#e1", "trades", batch)
    recent.add("okx/s0/c0#e1", "trades", batch)  # a connection's own batch (redundancy 1): no arbiter
    recent.add("book:okx/s0|arbiter:okx/s0|okx/s0/c0#e1", "trades", batch)  # the book's: not the arbiter's own
    recent.add("arbiter:okx/s1|okx/s1/c0#e1", "trades", trades(3).trades)  # another stream
    got = recent.get("arbiter:okx/s0|")
    assert list(got) == ["trades"]
    assert got["trades"].column_names == ["symbol", "trade_id"]
    assert got["trades"].to_pydict() == {"symbol": ["BTC-USDT"] * 2, "trade_id": ["1", "2"]}
    assert got["trades"].column("symbol").type == pa.string()  # decoded: no reference to the batch's dictionary
    assert recent.get("arbiter:") and recent.stats() == {"trades": 3}


def test_rows_older_than_the_window_or_beyond_the_bound_are_forgotten_oldest_first() -> None:
    clock = Clock()
    recent = RecentKeys(window_s=10, max_rows=4, clock=clock)
    source = "arbiter:s|c0#e1"
    recent.add(source, "trades", trades(1, 2).trades)
    clock.now = 5 * SECOND
    recent.add(source, "trades", trades(3).trades)
    clock.now = 11 * SECOND  # the first batch is 11 s old
    assert recent.get(source)["trades"].column("trade_id").to_pylist() == ["3"]
    recent.add(source, "trades", trades(4, 5, 6, 7).trades)  # 4 rows kept at most: "3" goes
    assert recent.get(source)["trades"].column("trade_id").to_pylist() == ["4", "5", "6", "7"]


def seeded_from(first: BatchArbiter, batches: list[Batches]) -> BatchArbiter:
    """A new arbiter seeded with what `first` passed on of `batches` (as downstream would keep it)."""
    recent = RecentKeys()
    for batch in batches:
        kept = first.filter("c0", batch)
        recent.add("arbiter:s|c0#e1", "trades", kept.trades)
        recent.add("arbiter:s|c0#e1", "bbo", kept.bbo)
        recent.add("arbiter:s|c0#e1", "l2", kept.l2_messages)
    restarted = BatchArbiter()
    for table, rows in recent.get("arbiter:s|").items():
        restarted.seed(table, rows)
    return restarted


def test_a_seeded_arbiter_drops_the_copies_of_what_was_passed_on_and_keeps_the_rest() -> None:
    def l2(*seqs: int) -> Batches:
        return l2_batch("okx", [("BTC-USDT", s, s - 1, None, False, [(10.0, float(s))], []) for s in seqs])

    def bbo(*seqs: int) -> Batches:
        batch = sink_batches.bbo("binance")
        rows = batch.take(pa.array([0] * len(seqs)))
        rows = rows.set_column(rows.schema.get_field_index("seq"), "seq", pa.array(seqs, pa.int64()))
        return Batches("binance", bbo=rows)

    restarted = seeded_from(BatchArbiter(), [trades(1, 2, 3), l2(1, 2), bbo(7, 8)])
    assert restarted.arbiter.stats.unique == 0  # remembered, not won by anyone
    kept = restarted.filter("c1", trades(2, 3, 4))
    assert kept.trades is not None and kept.trades.column("trade_id").to_pylist() == ["4"]
    kept = restarted.filter("c1", l2(2, 3))
    assert kept.l2_messages is not None and kept.l2_messages.column("seq").to_pylist() == [3]
    kept = restarted.filter("c1", bbo(8, 9))
    assert kept.bbo is not None and kept.bbo.column("seq").to_pylist() == [9]


def test_sequence_less_quotes_are_seeded_as_one_connections_updates() -> None:
    restarted = seeded_from(BatchArbiter(), [quotes(A, B, A)])
    assert restarted.filter("c1", quotes(A, B, A)).bbo is None  # the three updates again
    assert bbo_sizes(restarted.filter("c2", quotes(A, B, A, B))) == [30.0]  # only the fourth is new
