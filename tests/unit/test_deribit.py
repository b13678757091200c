"""Deribit venue: golden tests on the real 2021 capture, plus synthetic frames from EXCHANGES.md 4.x.

The capture has book snapshots/changes, tickers and one subscribe response but
no trades, quotes, heartbeats or errors; those frames are written here from the
documented shapes.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.captures import records, ws_frames
from xtrader.batch import Batches, Columns
from xtrader.clock import FakeClock, Receipt
from xtrader.errors import ConfigError, ParseError
from xtrader.venues import Control, Subscription, venue
from xtrader.venues.deribit import HEARTBEAT_S, MAX_CHANNELS_PER_REQUEST, Deribit, channel_name

START_NS = 1_700_000_000_000_000_000
STEP_NS = 1_000
MS = 1_000_000
RECEIPT = Receipt(START_NS, 0)


def deribit() -> Deribit:
    v = venue("deribit")
    assert isinstance(v, Deribit)
    return v


def notification(channel: str, data: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}})


class Replay:
    """Every received ws frame of the capture parsed once, with a fake receipt clock."""

    def __init__(self) -> None:
        v, clock = deribit(), FakeClock(START_NS, STEP_NS)
        self.frames = ws_frames("deribit")
        out = v.columns()
        self.controls: list[Control] = []
        for frame in self.frames:
            self.controls.extend(v.parse(frame, clock(), out))
        self.batches: Batches = out.flush()
        self.l2 = self.batches.l2.to_pylist() if self.batches.l2 is not None else []
        self.messages = self.batches.l2_messages.to_pylist() if self.batches.l2_messages is not None else []
        self.bbo = self.batches.bbo.to_pylist() if self.batches.bbo is not None else []

    def receive_ts(self, frame_index: int) -> Any:
        return _ts(START_NS + frame_index * STEP_NS)

    def rows_of(self, seq: int) -> list[tuple[str, float, float]]:
        return [(r["side"], r["price"], r["size"]) for r in self.l2 if r["seq"] == seq]

    def message(self, seq: int) -> dict[str, Any]:
        (found,) = [m for m in self.messages if m["seq"] == seq]
        return dict(found)


def _ts(ns: int) -> Any:
    import pandas as pd

    return pd.Timestamp(ns, unit="ns", tz="UTC")


@pytest.fixture(scope="module")
def replay() -> Replay:
    return Replay()


# --- golden: the real capture --------------------------------------------------------------------


def test_capture_row_counts(replay: Replay) -> None:
    assert len(replay.frames) == 136
    assert len(replay.messages) == 46
    assert sum(m["is_snapshot"] for m in replay.messages) == 10
    assert len(replay.l2) == 149
    assert len(replay.bbo) == 89
    assert replay.batches.trades is None
    assert replay.batches.events is None
    assert replay.batches.rejects == 0


def test_capture_subscribe_response_is_an_ack_listing_every_requested_channel(replay: Replay) -> None:
    (ack,) = replay.controls
    assert ack.kind == "ack" and ack.request_id == 0
    (sent,) = [r for r in records("deribit") if r.kind == "ws" and r.dir == "send"]
    requested = orjson.loads(sent.msg or "")["params"]["channels"]
    assert len(requested) == 30
    assert sorted(ack.detail.split(",")) == sorted(requested)
    subscriptions = [Subscription("l2", c.split(".")[1], "raw") for c in requested if c.startswith("book.")]
    assert Deribit().reply_covers(ack, tuple(subscriptions)) == tuple(subscriptions)
    assert Deribit().reply_covers(ack, (Subscription("l2", "BTC-PERPETUAL"),)) == ()


def test_capture_first_snapshot_levels(replay: Replay) -> None:
    first = replay.messages[0]
    assert first["symbol"] == "ETH-30JUL21-2800-C"
    assert first["seq"] == 13169025645
    assert first["prev_seq"] is None and first["first_seq"] is None and first["checksum"] is None
    assert first["is_snapshot"] is True
    assert first["exchange_ts"] == _ts(1626993723632 * MS)
    assert first["receive_ts"] == replay.receive_ts(11)  # frame 11 of the capture
    assert (first["bid_rows"], first["ask_rows"]) == (3, 13)
    assert replay.rows_of(13169025645) == [
        ("bid", 0.0015, 4714.0),
        ("bid", 0.001, 861.0),
        ("bid", 0.0005, 1.0),
        ("ask", 0.0025, 873.0),
        ("ask", 0.003, 167.0),
        ("ask", 0.004, 5.0),
        ("ask", 0.0055, 5.0),
        ("ask", 0.017, 26.0),
        ("ask", 0.02, 4.0),
        ("ask", 0.03, 100.0),
        ("ask", 0.042, 5.0),
        ("ask", 0.045, 50.0),
        ("ask", 0.073, 1.0),
        ("ask", 0.15, 25.0),
        ("ask", 0.232, 13.0),
        ("ask", 0.35, 1.0),
    ]
    row = replay.l2[0]
    assert row["exchange"] == "deribit" and row["price_text"] is None and row["size_text"] is None


def test_capture_empty_snapshot_keeps_its_header(replay: Replay) -> None:
    empty = replay.message(13167318455)
    assert empty["symbol"] == "ETH-27AUG21-4000-P"
    assert empty["is_snapshot"] is True and (empty["bid_rows"], empty["ask_rows"]) == (0, 0)
    assert replay.rows_of(13167318455) == []


def test_capture_change_with_delete_and_change(replay: Replay) -> None:
    change = replay.message(33195896354)
    assert change["symbol"] == "BTC-31DEC21-34000-P"
    assert change["prev_seq"] == 33195894765
    assert change["is_snapshot"] is False
    assert change["exchange_ts"] == _ts(1626993733801 * MS)
    assert (change["bid_rows"], change["ask_rows"]) == (0, 2)
    assert replay.rows_of(33195896354) == [("ask", 0.239, 0.0), ("ask", 0.2385, 9.3)]


def test_capture_first_and_last_message_of_the_busiest_instrument(replay: Replay) -> None:
    own = [m for m in replay.messages if m["symbol"] == "BTC-24SEP21-8000-P"]
    assert len(own) == 31  # 1 snapshot + 30 changes
    assert own[0]["seq"] == 33195894164 and own[0]["is_snapshot"] and own[0]["prev_seq"] is None
    assert replay.rows_of(33195894164)[:3] == [("bid", 0.0005, 153.1), ("ask", 0.0015, 94.7), ("ask", 0.002, 22.0)]
    assert (own[0]["bid_rows"], own[0]["ask_rows"]) == (1, 14)
    last = own[-1]
    assert (last["seq"], last["prev_seq"], last["is_snapshot"]) == (33195898166, 33195898165, False)
    assert last["exchange_ts"] == _ts(1626993752832 * MS)
    assert replay.rows_of(33195898166) == [("ask", 0.001, 0.0)]
    assert replay.rows_of(33195898165) == [("ask", 0.001, 2.6)]


def test_capture_change_id_chain_holds_per_instrument(replay: Replay) -> None:
    last: dict[str, int] = {}
    starts: dict[str, dict[str, Any]] = {}
    chained = 0
    for m in replay.messages:
        if m["symbol"] not in last:
            starts[m["symbol"]] = m
        else:
            assert m["prev_seq"] == last[m["symbol"]]
            chained += 1
        last[m["symbol"]] = m["seq"]
    assert chained == 36
    assert len(starts) == 10
    assert all(m["is_snapshot"] and m["prev_seq"] is None for m in starts.values())


def test_capture_ticker_rows(replay: Replay) -> None:
    def row(i: int) -> tuple[Any, ...]:
        r = replay.bbo[i]
        return (r["symbol"], r["exchange_ts"], r["seq"], r["bid_price"], r["bid_size"], r["ask_price"], r["ask_size"])

    assert row(0) == ("ETH-30JUL21-2800-C", _ts(1626993723632 * MS), None, 0.0015, 4714.0, 0.0025, 873.0)
    assert replay.bbo[0]["receive_ts"] == replay.receive_ts(1)
    # ticker reports an empty side as 0.0 price / 0.0 amount: stored as null
    assert row(1) == ("ETH-27AUG21-4000-P", _ts(1626993723632 * MS), None, None, None, None, None)
    assert row(2) == ("ETH-23JUL21-2300-C", _ts(1626993723632 * MS), None, None, None, 0.001, 274.0)
    assert row(10) == ("BTC-24SEP21-8000-P", _ts(1626993724318 * MS), None, 0.0005, 153.1, 0.001, 2.6)
    assert row(88) == ("BTC-31DEC21-34000-P", _ts(1626993754148 * MS), None, 0.2325, 1.5, 0.236, 8.4)
    assert replay.bbo[88]["receive_ts"] == replay.receive_ts(135)


def test_capture_instruments_responses() -> None:
    v = deribit()
    bodies = {r.url: (r.msg or "").encode() for r in records("deribit") if r.kind == "http"}
    assert len(bodies) == 4
    btc = v.parse_instruments(
        bodies["https://www.deribit.com/api/v2/public/get_instruments?currency=BTC&expired=false"]
    )
    assert {"BTC-24SEP21-8000-P", "BTC-31DEC21-300000-C", "BTC-PERPETUAL"} <= btc
    eth = v.parse_instruments(
        bodies["https://www.deribit.com/api/v2/public/get_instruments?currency=ETH&expired=false"]
    )
    assert "ETH-30JUL21-2800-C" in eth and not eth & btc


# --- synthetic frames (EXCHANGES.md 4.1-4.4) ----------------------------------------------------------

TRADES = notification(
    "trades.ETH-PERPETUAL.100ms",
    [
        {
            "trade_seq": 30289432,
            "trade_id": "ETH-311974188",
            "timestamp": 1590484156350,
            "tick_direction": 0,
            "price": 206.25,
            "mark_price": 206.23,
            "instrument_name": "ETH-PERPETUAL",
            "index_price": 206.19,
            "direction": "sell",
            "amount": 3,
        },
        {
            "trade_seq": 30289433,
            "trade_id": "ETH-311974189",
            "timestamp": 1590484156351,
            "tick_direction": 1,
            "price": 2.0625e2,
            "mark_price": 206.23,
            "instrument_name": "ETH-PERPETUAL",
            "index_price": 206.19,
            "direction": "buy",
            "amount": 1.0002e6,
            "liquidation": "T",
        },
    ],
)


def test_trades_array_becomes_trade_rows() -> None:
    out = Columns("deribit")  # the Python parser's lists (columns() would buffer in C)
    assert deribit().parse(TRADES, RECEIPT, out) == ()
    t = out.trades
    assert t.symbol == ["ETH-PERPETUAL", "ETH-PERPETUAL"]
    assert t.exchange_ts == [1590484156350 * MS, 1590484156351 * MS]
    assert t.receive_ts == [START_NS, START_NS]
    assert t.trade_id == ["ETH-311974188", "ETH-311974189"]
    assert t.side == ["sell", "buy"]
    assert t.price == [206.25, 206.25]
    assert t.size == [3, 1000200.0]
    rows = out.flush().trades
    assert rows is not None
    assert rows.column("size").to_pylist() == [3.0, 1000200.0]
    assert rows.column("trade_id").to_pylist() == ["ETH-311974188", "ETH-311974189"]


def test_quote_with_an_empty_side() -> None:
    frame = notification(
        "quote.BTC-PERPETUAL",
        {
            "timestamp": 1550658624149,
            "instrument_name": "BTC-PERPETUAL",
            "best_bid_price": 3914.97,
            "best_bid_amount": 40,
            "best_ask_price": None,
            "best_ask_amount": 0,
        },
    )
    out = Columns("deribit")  # the Python parser's lists (columns() would buffer in C)
    assert deribit().parse(frame, RECEIPT, out) == ()
    b = out.bbo
    assert (b.symbol, b.exchange_ts, b.receive_ts, b.seq) == (
        ["BTC-PERPETUAL"],
        [1550658624149 * MS],
        [START_NS],
        [None],
    )
    assert (b.bid_price, b.bid_size, b.ask_price, b.ask_size) == ([3914.97], [40], [None], [None])


def test_grouped_book_is_a_snapshot_of_pairs() -> None:
    frame = notification(
        "book.BTC-PERPETUAL.none.10.100ms",
        {
            "timestamp": 1554375447971,
            "instrument_name": "BTC-PERPETUAL",
            "change_id": 109615,
            "bids": [[160, 40]],
            "asks": [[161, 20], [1.0002e6, 5.5]],
        },
    )
    out = Columns("deribit")  # the Python parser's lists (columns() would buffer in C)
    deribit().parse(frame, RECEIPT, out)
    l2 = out.l2
    assert (l2.symbol, l2.seq, l2.prev_seq, l2.first_seq, l2.is_snapshot) == (
        ["BTC-PERPETUAL"],
        [109615],
        [None],
        [None],
        [True],
    )
    assert (l2.bid_rows, l2.ask_rows, l2.price, l2.size) == ([1], [2], [160, 161, 1000200.0], [40, 20, 5.5])


def test_delete_level_gets_size_zero_whatever_the_amount() -> None:
    frame = notification(
        "book.BTC-PERPETUAL.100ms",
        {
            "type": "change",
            "timestamp": 1554373962454,
            "instrument_name": "BTC-PERPETUAL",
            "change_id": 297217105,
            "prev_change_id": 297217104,
            "bids": [["new", 5042.34, 30.0], ["delete", 5040.0, 7.0]],
            "asks": [["change", 5043, 20]],
        },
    )
    out = Columns("deribit")  # the Python parser's lists (columns() would buffer in C)
    deribit().parse(frame, RECEIPT, out)
    assert out.l2.prev_seq == [297217104] and out.l2.exchange_ts == [1554373962454 * MS]
    assert (out.l2.price, out.l2.size) == ([5042.34, 5040.0, 5043], [30.0, 0, 20])


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}', Control("heartbeat")),
        (b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}', Control("test_request")),
        (
            b'{"jsonrpc":"2.0","id":1,"result":"ok","usIn":1,"usOut":2,"usDiff":1,"testnet":false}',
            Control("ack", "ok", 1),
        ),
        (
            b'{"jsonrpc":"2.0","id":9,"result":{"version":"1.2.26"},"usIn":1,"usOut":2,"usDiff":1,"testnet":false}',
            Control("ack", '{"version":"1.2.26"}', 9),
        ),
        (
            b'{"jsonrpc":"2.0","id":3,"result":["book.BTC-PERPETUAL.100ms","quote.BTC-PERPETUAL"]}',
            Control("ack", "book.BTC-PERPETUAL.100ms,quote.BTC-PERPETUAL", 3),
        ),
        (
            b'{"jsonrpc":"2.0","id":8,"error":{"message":"raw_subscriptions_not_available_for_unauthorized",'
            b'"code":13778},"usIn":1,"usOut":2,"usDiff":1,"testnet":false}',
            Control("error", "13778 raw_subscriptions_not_available_for_unauthorized", 8),
        ),
        (
            b'{"jsonrpc":"2.0","id":4,"error":{"message":"too_many_requests","code":10028}}',
            Control("error", "10028 too_many_requests", 4),
        ),
        (
            b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"deribit_price_index.btc_usd",'
            b'"data":{"timestamp":1,"price":2,"index_name":"btc_usd"}}}',
            Control("unknown", "channel deribit_price_index.btc_usd"),
        ),
        (b'{"jsonrpc":"2.0","method":"announcement","params":{}}', Control("unknown", "method 'announcement'")),
        (b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"nap"}}', Control("unknown", "heartbeat type 'nap'")),
        (b'{"jsonrpc":"2.0","id":5}', Control("unknown", "response without result or error", 5)),
    ],
)
def test_control_frames(frame: bytes, expected: Control) -> None:
    out = deribit().columns()
    assert deribit().parse(frame, RECEIPT, out) == (expected,)
    assert deribit().parse(frame.decode(), RECEIPT, out) == (expected,)  # text frames too
    assert not out.pending()


def test_test_request_is_answered_with_public_test() -> None:
    v = deribit()
    (control,) = v.parse(
        b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}', RECEIPT, v.columns()
    )
    reply = v.reply(control, 77)
    assert reply is not None
    assert orjson.loads(reply) == {"jsonrpc": "2.0", "id": 77, "method": "public/test", "params": {}}
    assert v.reply(Control("heartbeat"), 78) is None


GOOD_BOOK = {
    "type": "change",
    "timestamp": 1554373962454,
    "instrument_name": "BTC-PERPETUAL",
    "change_id": 2,
    "prev_change_id": 1,
    "bids": [["new", 5042.34, 30.0]],
    "asks": [],
}
GOOD_TRADE = orjson.loads(TRADES)["params"]["data"][0]


def _book(**changes: Any) -> bytes:
    return notification("book.BTC-PERPETUAL.100ms", {**GOOD_BOOK, **changes})


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"not json",
        b'{"jsonrpc":"2.0","method":"subscription"',
        b"[1,2,3]",
        b'"heartbeat"',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":7,"data":{}}}',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.X.100ms"}}',
        b'{"jsonrpc":"2.0","method":"heartbeat","params":[]}',
        b'{"jsonrpc":"2.0","method":["list"]}',
        b'{"jsonrpc":"2.0","id":1,"result":["book.X.100ms",3]}',
        b'{"jsonrpc":"2.0","id":1,"error":"nope"}',
        b'{"jsonrpc":"2.0","id":1,"error":{"code":"13778","message":"x"}}',
        _book(change_id="2"),
        _book(change_id=True),
        _book(timestamp=1.5),
        _book(prev_change_id="1"),
        _book(type="update"),
        _book(instrument_name=None),
        _book(bids=[["new", "5042.34", 30.0]]),  # price as a string
        _book(bids=[["new", 5042.34, True]]),
        _book(bids=[["add", 5042.34, 30.0]]),
        _book(bids=[["new", 5042.34]]),
        _book(bids=[["new", 5042.34, 1.0], ["new", 5041.0, 1.0, 9]]),
        _book(bids=[5042.34]),
        _book(bids={"new": 1}),
        _book(asks=[["new", None, 1.0]]),
        notification("book.BTC-PERPETUAL.none.10.100ms", {**GOOD_BOOK, "bids": [["new", 1.0, 2.0]]}),
        notification("trades.ETH-PERPETUAL.100ms", {"trade_id": "x"}),
        notification("trades.ETH-PERPETUAL.100ms", [GOOD_TRADE, {**GOOD_TRADE, "direction": "short"}]),
        notification("trades.ETH-PERPETUAL.100ms", [GOOD_TRADE, {**GOOD_TRADE, "price": "206.25"}]),
        notification("trades.ETH-PERPETUAL.100ms", [GOOD_TRADE, {**GOOD_TRADE, "trade_id": 311974188}]),
        notification("trades.ETH-PERPETUAL.100ms", [GOOD_TRADE, {**GOOD_TRADE, "amount": False}]),
        notification("trades.ETH-PERPETUAL.100ms", [GOOD_TRADE, 3]),
        notification("quote.BTC-PERPETUAL", {"timestamp": 1, "instrument_name": "BTC-PERPETUAL"}),
        notification(
            "quote.BTC-PERPETUAL",
            {
                "timestamp": 1,
                "instrument_name": "BTC-PERPETUAL",
                "best_bid_price": "1",
                "best_bid_amount": 1,
                "best_ask_price": 2,
                "best_ask_amount": 1,
            },
        ),
    ],
)
def test_malformed_frames_raise_parse_error_and_append_nothing(frame: bytes) -> None:
    v = deribit()
    out = v.columns()
    v.parse(_book(), RECEIPT, out)  # something already buffered must survive
    before = out.mark()
    with pytest.raises(ParseError):
        v.parse(frame, RECEIPT, out)
    assert out.mark() == before
    assert out.flush().rejects == 0


# --- connection planning ------------------------------------------------------------------------------


def test_default_and_overridden_channels() -> None:
    assert channel_name(Subscription("trades", "BTC-PERPETUAL")) == "trades.BTC-PERPETUAL.100ms"
    assert channel_name(Subscription("l2", "BTC-PERPETUAL")) == "book.BTC-PERPETUAL.100ms"
    assert channel_name(Subscription("bbo", "BTC-PERPETUAL")) == "quote.BTC-PERPETUAL"
    assert channel_name(Subscription("l2", "ETH-PERPETUAL", "raw")) == "book.ETH-PERPETUAL.raw"
    assert channel_name(Subscription("l2", "ETH-PERPETUAL", "agg2")) == "book.ETH-PERPETUAL.agg2"
    assert channel_name(Subscription("l2", "BTC-PERPETUAL", "none.10.100ms")) == "book.BTC-PERPETUAL.none.10.100ms"
    assert channel_name(Subscription("trades", "ETH-PERPETUAL", "raw")) == "trades.ETH-PERPETUAL.raw"
    assert channel_name(Subscription("bbo", "BTC-PERPETUAL", "ticker")) == "ticker.BTC-PERPETUAL.100ms"
    assert channel_name(Subscription("bbo", "BTC-PERPETUAL", "ticker.agg2")) == "ticker.BTC-PERPETUAL.agg2"
    for bad in (Subscription("l2", "X", "1s"), Subscription("bbo", "X", "raw"), Subscription("trades", "X", "a.b.raw")):
        with pytest.raises(ConfigError):
            channel_name(bad)
    with pytest.raises(ConfigError):
        deribit().connections([Subscription("bbo", "X", "ticker.1s")])


def test_connection_url_and_initial_messages() -> None:
    v = deribit()
    subs = [
        Subscription("l2", "BTC-PERPETUAL"),
        Subscription("trades", "BTC-PERPETUAL"),
        Subscription("bbo", "BTC-PERPETUAL"),
    ]
    (connection,) = v.connections(subs)
    assert connection.url == "wss://www.deribit.com/ws/api/v2"
    assert connection.subscriptions == tuple(subs)
    heartbeat, platform = (orjson.loads(m) for m in v.setup_messages(9))  # a request of its own
    (subscribe,) = (orjson.loads(m) for m in v.initial_messages(connection, 11))
    assert heartbeat == {"jsonrpc": "2.0", "id": 9, "method": "public/set_heartbeat", "params": {"interval": 15}}
    assert platform == {
        "jsonrpc": "2.0",
        "id": 10,
        "method": "public/subscribe",
        "params": {"channels": ["platform_state", "platform_state.public_methods_state"]},
    }
    assert HEARTBEAT_S >= 10
    assert subscribe == {
        "jsonrpc": "2.0",
        "id": 11,
        "method": "public/subscribe",
        "params": {"channels": ["book.BTC-PERPETUAL.100ms", "trades.BTC-PERPETUAL.100ms", "quote.BTC-PERPETUAL"]},
    }
    (unsubscribe,) = v.unsubscribe_messages(subs[:1], 12)
    assert orjson.loads(unsubscribe) == {
        "jsonrpc": "2.0",
        "id": 12,
        "method": "public/unsubscribe",
        "params": {"channels": ["book.BTC-PERPETUAL.100ms"]},
    }
    simulated = venue("deribit", ws_base="ws://127.0.0.1:8765/", rest_base="http://127.0.0.1:8766")
    assert simulated.connections(subs)[0].url == "ws://127.0.0.1:8765/ws/api/v2"
    assert simulated.instruments_request()[0] == "http://127.0.0.1:8766/api/v2/public/get_instruments?currency=BTC"


def test_large_plans_split_into_requests_and_connections() -> None:
    v = deribit()
    subs = [Subscription(table, f"BTC-{n}-C") for n in range(250) for table in ("l2", "trades", "bbo")]
    subs.append(subs[0])  # a duplicate is subscribed once
    connections = v.connections(subs)
    assert [len(c.subscriptions) for c in connections] == [300, 300, 150]
    assert [s for c in connections for s in c.subscriptions] == subs[:-1]
    messages = [orjson.loads(m) for m in v.initial_messages(connections[0], 1)]  # the heartbeat is apart
    assert [m["id"] for m in messages] == [1, 2, 3]
    assert [len(m["params"]["channels"]) for m in messages] == [100, 100, 100]
    assert all(len(m["params"]["channels"]) <= MAX_CHANNELS_PER_REQUEST for m in messages)
    groups = v.request_groups(connections[0].subscriptions)  # one request (own id) per frame
    assert [len({channel_name(s) for s in g}) for g in groups] == [100, 100, 100]
    channels = [c for m in messages for c in m["params"]["channels"]]
    assert len(set(channels)) == 300 and channels[:2] == ["book.BTC-0-C.100ms", "trades.BTC-0-C.100ms"]


def test_raw_channels_are_requested_apart() -> None:
    subs = [
        Subscription("l2", "BTC-PERPETUAL", "raw"),
        Subscription("l2", "ETH-PERPETUAL"),
        Subscription("trades", "X", "raw"),
    ]
    messages = [orjson.loads(m) for m in deribit().subscribe_messages(subs, 5)]
    assert [(m["id"], m["params"]["channels"]) for m in messages] == [
        (5, ["book.ETH-PERPETUAL.100ms"]),
        (6, ["book.BTC-PERPETUAL.raw", "trades.X.raw"]),
    ]


def test_keepalive_relies_on_server_heartbeats() -> None:
    keepalive = deribit().keepalive()
    assert keepalive.ping is None
    assert keepalive.stale_s == 2.5 * HEARTBEAT_S


def test_venue_attributes_and_instruments_requests() -> None:
    v = deribit()
    assert (v.name, v.sync_kind, v.needs_snapshot, v.keep_text) == ("deribit", "deribit", False, False)
    assert v.snapshot_request("BTC-PERPETUAL") is None
    assert v.instruments_request() == [
        f"https://www.deribit.com/api/v2/public/get_instruments?currency={c}" for c in ("BTC", "ETH", "USDC", "SOL")
    ]
    assert v.parse_instruments(b'{"jsonrpc":"2.0","result":[{"instrument_name":"BTC-PERPETUAL"}]}') == {"BTC-PERPETUAL"}
    for bad in (
        b"nope",
        b'{"jsonrpc":"2.0","result":[{"name":"x"}]}',
        b'{"jsonrpc":"2.0","result":[{"instrument_name":1}]}',
        b'{"jsonrpc":"2.0","error":{"code":10028,"message":"too_many_requests"}}',
    ):
        with pytest.raises(ParseError):
            v.parse_instruments(bad)


def test_columns_are_fresh_per_connection() -> None:
    v = deribit()
    a, b = v.columns(), v.columns()
    assert isinstance(a, Columns) and a is not b and a.exchange == "deribit"
    v.parse(_book(), RECEIPT, a)
    assert a.pending() and not b.pending()


def test_prev_change_id_is_reported_as_sent() -> None:
    """Continuity is the sync's job: the parser passes a broken chain through unchanged."""
    v = deribit()
    out = Columns(v.name)  # the Python parser's lists (columns() would buffer in C)
    for symbol, seq, prev in (("A", 5, None), ("B", 9, None), ("A", 6, 5), ("A", 8, 7)):
        data: dict[str, Any] = {**GOOD_BOOK, "instrument_name": symbol, "change_id": seq, "bids": []}
        del data["prev_change_id"]
        if prev is None:
            data["type"] = "snapshot"
        else:
            data["prev_change_id"] = prev
        v.parse(notification(f"book.{symbol}.100ms", data), RECEIPT, out)
    assert out.l2.symbol == ["A", "B", "A", "A"]
    assert out.l2.prev_seq == [None, None, 5, 7]
    assert out.l2.is_snapshot == [True, True, False, False]
