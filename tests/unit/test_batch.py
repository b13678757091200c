"""Column conversion in xtrader.batch: fast paths give what Arrow alone gives; bad values reach the slow path."""

from __future__ import annotations

import pyarrow as pa
import pytest

from xtrader import schema
from xtrader.batch import Columns, dictionary, float_columns, int_column

EDGE_DECIMALS = ["+1", "1.", ".5", "1e+5", "1E5", "-0", "1e400", "1e-400", "00012", "0.35280000", "9" * 30, "-.5e-3"]


def arrow_floats(values: list[str]) -> list[float]:
    return list(pa.array(values, pa.string()).cast(pa.float64()).to_pylist())


def test_small_float_columns_parse_exactly_as_arrow_does() -> None:
    small = float_columns(EDGE_DECIMALS[:6], EDGE_DECIMALS[6:])
    assert [a.to_pylist() for a in small] == [arrow_floats(EDGE_DECIMALS[:6]), arrow_floats(EDGE_DECIMALS[6:])]


def test_large_float_columns_split_one_arrow_parse() -> None:
    prices = [f"{30000 + i / 10:.1f}" for i in range(100)]
    sizes = [str(i) for i in range(100)]
    price, size = float_columns(prices, sizes)
    assert (price.to_pylist(), size.to_pylist()) == (arrow_floats(prices), arrow_floats(sizes))


@pytest.mark.parametrize("bad", ["1e", "1_0", " 1", "", "abc"])
def test_a_string_arrow_refuses_is_refused_on_both_paths(bad: str) -> None:
    with pytest.raises((pa.ArrowInvalid, ValueError)):
        float_columns(["1", bad], ["2", "3"])
    with pytest.raises((pa.ArrowInvalid, ValueError)):
        float_columns(["1"] * 40 + [bad], ["2"] * 41)


def test_float_columns_with_nulls_or_numbers_fall_back_per_column() -> None:
    price, size = float_columns(["1.5", None], [2, 3.5])
    assert (price.to_pylist(), size.to_pylist()) == ([1.5, None], [2.0, 3.5])


def test_int_column_keeps_nulls_and_refuses_what_arrow_refuses() -> None:
    assert int_column([1, None, 3], pa.int64()).to_pylist() == [1, None, 3]
    assert int_column([None, None], schema.TS).null_count == 2
    assert int_column([5], schema.TS).type == schema.TS
    with pytest.raises(pa.ArrowInvalid):
        int_column(["3"], pa.int64())  # type: ignore[list-item]  # numpy alone would turn it into 3
    with pytest.raises(OverflowError):
        int_column([1 << 70], pa.int64())


def test_dictionary_encodes_in_first_seen_order_with_nulls() -> None:
    assert dictionary(["b", "a", "b"], pa.int32()).to_pylist() == ["b", "a", "b"]
    assert dictionary(["b", None], pa.int32()).to_pylist() == ["b", None]


def test_l2_rows_repeat_message_fields_with_mixed_nulls() -> None:
    out = Columns("okx", keep_text=True)
    l2 = out.l2
    for seq, prev_seq, rows in ((1, None, 2), (2, 1, 0), (3, 2, 1)):
        l2.message("BTC-USDT", seq * 10, seq * 100, seq, prev_seq, None, prev_seq is None, None, rows, 0)
        l2.price.extend(["1.5"] * rows)
        l2.size.extend(["2"] * rows)
    batches = out.flush()
    assert batches.l2 is not None and batches.l2_messages is not None
    rows = batches.l2.to_pylist()
    assert [(r["seq"], r["prev_seq"], r["is_snapshot"], r["price_text"]) for r in rows] == [
        (1, None, True, "1.5"),
        (1, None, True, "1.5"),
        (3, 2, False, "1.5"),
    ]
    assert batches.l2_messages.column("prev_seq").to_pylist() == [None, 1, 2]
    assert batches.rejects == 0


def test_one_bad_record_keeps_the_exact_text_of_the_others_and_okx_checksums_hold() -> None:
    """Real okx.jsonl book frames flushed with one unconvertible record (seqId 2**63)."""
    import json

    from tests.captures import ws_frames
    from xtrader.clock import Receipt
    from xtrader.sync import Books
    from xtrader.venues import venue

    okx = venue("okx")
    frames = [f for f in ws_frames("okx") if b'"channel":"books"' in f and b'"data"' in f][:7]
    bad = json.loads(frames[-1])
    bad["arg"]["instId"] = bad["data"][0]["instId"] = "ETH-USDT"
    bad["data"][0].update(seqId=2**63, prevSeqId=2**63 - 1)

    def replay(extra: list[bytes]) -> tuple[Books, int, list[str | None]]:
        out = okx.columns()
        for i, frame in enumerate(frames + extra):
            okx.parse(frame, Receipt(1_700_000_000_000_000_000 + i, i), out)
        batches = out.flush(1_700_000_000_000_000_000)
        assert batches.l2 is not None and batches.l2_messages is not None
        books = Books(okx.sync_kind, keep_text=True, checksum=okx.book_checksum)  # type: ignore[attr-defined]
        books.apply_batch("c0", batches.l2, batches.l2_messages)
        return books, batches.rejects, batches.l2.column("price_text").to_pylist()

    clean, rejects, text = replay([])
    assert rejects == 0 and clean.counters().checksum_ok == 7
    books, rejects, text = replay([json.dumps(bad).encode()])
    assert rejects == 1  # the bad record is dropped and counted ...
    assert None not in text  # ... and every other level keeps the venue's exact string
    counters = books.counters()
    assert (counters.checksum_ok, counters.checksum_failed, counters.gaps) == (7, 0, 0)


def add_trade(out: Columns, trade_id: object, price: object, symbol: str = "BTCUSDT") -> None:
    t = out.trades
    t.symbol.append(symbol)
    t.exchange_ts.append(1_000)
    t.receive_ts.append(2_000)
    t.trade_id.append(trade_id)
    t.side.append("buy")
    t.price.append(price)
    t.size.append("0.5")


def test_a_mixed_batch_keeps_its_good_rows_and_drops_counts_and_reports_the_bad_one() -> None:
    out = Columns("binance")
    add_trade(out, "1", "100.5")
    add_trade(out, "2", "1e")  # Arrow cannot parse this price: the record must go, and only it
    add_trade(out, "3", 101.0)  # a number among strings: the slow path converts it too
    add_trade(out, "4", "102", symbol="ETHUSDT")
    batches = out.flush(now_wall_ns=7)
    assert batches.rejects == 1
    assert batches.trades is not None
    kept = batches.trades.to_pydict()
    assert [str(i) for i in kept["trade_id"]] == ["1", "3", "4"]
    assert kept["price"] == [100.5, 101.0, 102.0]
    assert kept["symbol"] == ["BTCUSDT", "BTCUSDT", "ETHUSDT"]
    assert batches.events is not None
    events = batches.events.to_pydict()
    assert events["kind"] == ["reject"] and batches.events.column("ts").cast(pa.int64()).to_pylist() == [7]
    assert events["detail"] == ["1 unconvertible trades record(s) dropped"]
    assert not out.pending()  # nothing left behind for the next flush


def test_a_bad_l2_message_goes_with_its_levels_and_the_others_stay_whole() -> None:
    out = Columns("binance")
    l2 = out.l2
    for seq, levels in ((1, ["10", "11"]), (2, ["12", "x"]), (3, ["13"])):
        l2.message("BTCUSDT", 1_000, 2_000, seq, None, seq, False, None, len(levels), 0)
        l2.price.extend(levels)
        l2.size.extend(["1"] * len(levels))
    add_trade(out, "9", "100")  # another table in the same flush is untouched
    batches = out.flush(now_wall_ns=7)
    assert batches.rejects == 1
    assert batches.l2 is not None and batches.l2_messages is not None
    assert batches.l2_messages.column("seq").to_pylist() == [1, 3]
    assert list(zip(batches.l2.column("seq").to_pylist(), batches.l2.column("price").to_pylist(), strict=True)) == [
        (1, 10.0),
        (1, 11.0),
        (3, 13.0),
    ]
    assert batches.trades is not None and batches.trades.num_rows == 1
    assert batches.events is not None
    assert batches.events.column("detail").to_pylist() == ["1 unconvertible l2 record(s) dropped"]


def test_a_bad_bbo_record_is_dropped_alone() -> None:
    out = Columns("okx")
    b = out.bbo
    for seq, bid in ((1, "10"), (2, "ten"), (3, None)):
        b.symbol.append("BTC-USDT")
        b.exchange_ts.append(1_000)
        b.receive_ts.append(2_000)
        b.seq.append(seq)
        b.bid_price.append(bid)
        b.bid_size.append("1")
        b.ask_price.append("11")
        b.ask_size.append("2")
    batches = out.flush()
    assert batches.rejects == 1
    assert batches.bbo is not None
    assert batches.bbo.column("seq").to_pylist() == [1, 3]
    assert batches.bbo.column("bid_price").to_pylist() == [10.0, None]


#: strings Python's float() takes and Arrow refuses (found by the fuzz contract: a flipped byte made " .3521")
PYTHON_ONLY_NUMBERS = [" 1", "1 ", "\t1", " .35210000", "1_0", "\u0661", "\uff11", "\u00a01"]


@pytest.mark.parametrize("bad", PYTHON_ONLY_NUMBERS)
def test_the_slow_path_refuses_what_arrow_refuses(bad: str) -> None:
    with pytest.raises(pa.ArrowInvalid):
        pa.array([bad]).cast(pa.float64())
    out = Columns("binance")
    add_trade(out, "1", "100")
    add_trade(out, "2", bad)
    add_trade(out, "3", "1e")  # a value every check refuses, so the slow path is taken
    batches = out.flush()
    assert batches.rejects == 2
    assert batches.trades is not None and batches.trades.column("trade_id").to_pylist() == ["1"]
    assert batches.events is not None
    assert batches.events.column("detail").to_pylist() == ["2 unconvertible trades record(s) dropped"]


@pytest.mark.parametrize("bad", PYTHON_ONLY_NUMBERS)
def test_a_value_arrow_refuses_alone_is_a_reject_not_an_event_of_zero(bad: str) -> None:
    out = Columns("binance")
    add_trade(out, "1", "100")
    add_trade(out, "2", bad)
    batches = out.flush()
    assert batches.rejects == 1
    assert batches.events is not None
    assert batches.events.column("detail").to_pylist() == ["1 unconvertible trades record(s) dropped"]
