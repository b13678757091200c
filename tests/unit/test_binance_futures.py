"""Binance USD-M futures venue (COIN-M parses too): golden rows from the real capture, routed URLs."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pytest

from tests.captures import records, ws_frames
from xtrader.clock import FakeClock, Receipt
from xtrader.errors import ConfigError, ParseError
from xtrader.venues import venue
from xtrader.venues.base import Connection, Control, Keepalive, Subscription
from xtrader.venues.binance import BinanceFutures

MS = 1_000_000
START = 1_700_000_000_000_000_000  # FakeClock's first wall_ns; it steps 1_000 ns per frame
RECEIPT = Receipt(START, 0)


def rows(batch: pa.RecordBatch | None) -> list[dict[str, Any]]:
    """A batch as dicts, timestamps as int ns."""
    assert batch is not None
    columns = {}
    for field in batch.schema:
        column = batch.column(field.name)
        columns[field.name] = (column.cast(pa.int64()) if pa.types.is_timestamp(field.type) else column).to_pylist()
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def receive_ts(frame_index: int) -> int:
    return START + 1_000 * frame_index


class Capture:
    """The USD-M capture parsed once: every ws frame, then the four REST snapshots."""

    def __init__(self) -> None:
        self.venue = venue("binance_futures")
        self.out = self.venue.columns()
        clock = FakeClock()
        self.controls: Counter[Control] = Counter()
        self.frames = 0
        for frame in ws_frames("binance_futures"):
            self.controls.update(self.venue.parse(frame, clock(), self.out))
            self.frames += 1
        self.ws = self.out.flush()
        self.snapshot_ids = {}
        for record in records("binance_futures"):
            if record.kind == "http" and "/fapi/v1/depth" in record.url:
                assert record.msg is not None
                symbol = record.url.split("symbol=")[1].split("&")[0]
                self.snapshot_ids[symbol] = self.venue.parse_snapshot(record.msg.encode(), symbol, RECEIPT, self.out)
        self.rest = self.out.flush()


@pytest.fixture(scope="module")
def capture() -> Capture:
    return Capture()


# -- golden: the capture's contents ------------------------------------------------------------------


def test_every_frame_parses_and_counts_per_table(capture: Capture) -> None:
    assert capture.frames == 1535
    assert capture.ws.trades is not None and capture.ws.trades.num_rows == 91
    assert capture.ws.bbo is not None and capture.ws.bbo.num_rows == 613
    assert capture.ws.l2_messages is not None and capture.ws.l2_messages.num_rows == 764
    assert capture.ws.l2 is not None and capture.ws.l2.num_rows == 6297
    assert capture.ws.events is None and capture.ws.rejects == 0
    assert sum(capture.controls.values()) == 67
    assert {control.kind for control in capture.controls} == {"unknown"}  # kline_1m
    assert Counter(capture.ws.l2_messages.column("symbol").to_pylist()) == {
        "SUSHIUSDT": 255,
        "AKROUSDT": 189,
        "CTKUSDT": 185,
        "KEEPUSDT": 135,
    }
    trades = Counter(capture.ws.trades.column("symbol").to_pylist())
    assert trades == {"SUSHIUSDT": 40, "CTKUSDT": 38, "AKROUSDT": 8, "KEEPUSDT": 5}
    assert Counter(capture.ws.trades.column("side").to_pylist()) == {"sell": 44, "buy": 47}


def test_agg_trades_use_the_aggregate_id_and_trade_time(capture: Capture) -> None:
    trades = rows(capture.ws.trades)
    assert trades[0] == {
        "exchange": "binance_futures",
        "symbol": "CTKUSDT",
        "exchange_ts": 1626992741421 * MS,
        "receive_ts": receive_ts(20),
        "trade_id": "16599292",
        "side": "buy",
        "price": 1.011,
        "size": 10.0,
    }
    # m=true: the buyer was the maker, so the taker sold
    assert trades[1] == {
        "exchange": "binance_futures",
        "symbol": "AKROUSDT",
        "exchange_ts": 1626992742134 * MS,
        "receive_ts": receive_ts(36),
        "trade_id": "14888302",
        "side": "sell",
        "price": 0.01731,
        "size": 312.0,
    }
    assert (trades[-1]["trade_id"], trades[-1]["exchange_ts"], trades[-1]["price"], trades[-1]["receive_ts"]) == (
        "16599329",
        1626992770366 * MS,
        1.012,
        receive_ts(1509),
    )


def test_book_tickers_use_transaction_time(capture: Capture) -> None:
    bbo = rows(capture.ws.bbo)
    assert bbo[0] == {
        "exchange": "binance_futures",
        "symbol": "SUSHIUSDT",
        "exchange_ts": 1626992741012 * MS,
        "receive_ts": receive_ts(0),
        "seq": 600859600576,
        "bid_price": 7.611,
        "bid_size": 2.0,
        "ask_price": 7.612,
        "ask_size": 297.0,
    }
    assert bbo[-1] == {
        "exchange": "binance_futures",
        "symbol": "SUSHIUSDT",
        "exchange_ts": 1626992771149 * MS,
        "receive_ts": receive_ts(1534),
        "seq": 600860427282,
        "bid_price": 7.612,
        "bid_size": 303.0,
        "ask_price": 7.615,
        "ask_size": 56.0,
    }


def test_first_and_last_sushi_depth_updates(capture: Capture) -> None:
    messages = [m for m in rows(capture.ws.l2_messages) if m["symbol"] == "SUSHIUSDT"]
    assert messages[0] == {
        "symbol": "SUSHIUSDT",
        "exchange_ts": 1626992741024 * MS,  # T, not E (1626992741037)
        "receive_ts": receive_ts(1),
        "seq": 600859600917,
        "prev_seq": 600859598061,
        "first_seq": 600859599090,
        "is_snapshot": False,
        "checksum": None,
        "bid_rows": 3,
        "ask_rows": 2,
    }
    assert messages[-1]["receive_ts"] == receive_ts(1532)
    assert (messages[-1]["seq"], messages[-1]["prev_seq"], messages[-1]["first_seq"]) == (
        600860425198,
        600860421380,
        600860422707,
    )
    l2 = rows(capture.ws.l2)
    assert [(r["side"], r["price"], r["size"]) for r in l2 if r["seq"] == 600859600917] == [
        ("bid", 7.504, 813.0),
        ("bid", 7.609, 0.0),
        ("bid", 7.611, 2.0),
        ("ask", 7.615, 1563.0),
        ("ask", 7.622, 3284.0),
    ]
    assert [(r["side"], r["price"], r["size"]) for r in l2 if r["seq"] == 600860425198] == [
        ("bid", 7.579, 712.0),
        ("bid", 7.604, 3171.0),
        ("bid", 7.609, 294.0),
        ("ask", 7.623, 2226.0),
        ("ask", 7.624, 1992.0),
        ("ask", 7.641, 3430.0),
        ("ask", 7.647, 2247.0),
        ("ask", 7.649, 8501.0),
    ]


def test_pu_chains_every_symbol(capture: Capture) -> None:
    last: dict[str, int] = {}
    pairs = 0
    for message in rows(capture.ws.l2_messages):
        previous = last.get(message["symbol"])
        if previous is not None:
            assert message["prev_seq"] == previous
            pairs += 1
        last[message["symbol"]] = message["seq"]
    assert pairs == 760


def test_rest_snapshots_carry_transaction_time(capture: Capture) -> None:
    assert capture.snapshot_ids == {
        "SUSHIUSDT": 600859605926,
        "AKROUSDT": 600859605486,
        "KEEPUSDT": 600859619434,
        "CTKUSDT": 600859618836,
    }
    assert capture.rest.l2 is not None and capture.rest.l2.num_rows == 2000 + 1372 + 1012 + 1229
    sushi = rows(capture.rest.l2_messages)[0]
    assert sushi == {
        "symbol": "SUSHIUSDT",
        "exchange_ts": 1626992741261 * MS,
        "receive_ts": START,
        "seq": 600859605926,
        "prev_seq": None,
        "first_seq": None,
        "is_snapshot": True,
        "checksum": None,
        "bid_rows": 1000,
        "ask_rows": 1000,
    }
    l2 = rows(capture.rest.l2)
    assert [(r["side"], r["price"], r["size"]) for r in l2[:2]] == [("bid", 7.611, 6.0), ("bid", 7.608, 161.0)]
    assert [(r["side"], r["price"], r["size"]) for r in l2[1000:1002]] == [("ask", 7.612, 297.0), ("ask", 7.613, 177.0)]
    assert (l2[1999]["price"], l2[1999]["size"]) == (9.122, 2.0)


def test_exchange_info_lists_the_symbols() -> None:
    body = next(r.msg for r in records("binance_futures") if r.url.endswith("/fapi/v1/exchangeInfo"))
    assert body is not None
    symbols = BinanceFutures().parse_instruments(body.encode())
    assert len(symbols) == 122
    assert {"BTCUSDT", "SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"} <= symbols


# -- connections: USD-M routing ------------------------------------------------------------------------


def test_registry_and_class_facts() -> None:
    futures = venue("binance_futures")
    assert isinstance(futures, BinanceFutures)
    assert (futures.name, futures.sync_kind, futures.needs_snapshot) == ("binance_futures", "binance_futures", True)
    assert (futures.ws_base, futures.rest_base) == ("wss://fstream.binance.com", "https://fapi.binance.com")


def test_book_and_trade_streams_are_routed_to_two_connections() -> None:
    l2, trades = Subscription("l2", "BTCUSDT"), Subscription("trades", "BTCUSDT")
    assert BinanceFutures().connections([trades, l2]) == [
        Connection("wss://fstream.binance.com/public/stream?streams=btcusdt@depth@100ms", (l2,)),
        Connection("wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade", (trades,)),
    ]


@pytest.mark.parametrize(
    ("subscription", "route"),
    [
        (Subscription("l2", "BTCUSDT", "depth"), "/public"),
        (Subscription("l2", "BTCUSDT", "depth@500ms"), "/public"),
        (Subscription("l2", "BTCUSDT", "depth5@100ms"), "/public"),
        (Subscription("bbo", "BTCUSDT"), "/public"),
        (Subscription("trades", "BTCUSDT"), "/market"),
        (Subscription("trades", "BTCUSDT", "trade"), "/market"),
    ],
)
def test_routes(subscription: Subscription, route: str) -> None:
    (connection,) = BinanceFutures(ws_base="ws://127.0.0.1:9100").connections([subscription])
    assert connection.url.startswith(f"ws://127.0.0.1:9100{route}/stream?streams=btcusdt@")


def test_each_route_respects_the_stream_cap() -> None:
    subs = [Subscription(table, f"S{i}USDT") for i in range(250) for table in ("l2", "bbo", "trades")]
    connections = BinanceFutures().connections(subs)
    routes = [
        (c.url.split("/stream?")[0].rsplit("/", 1)[1], len(c.url.split("streams=")[1].split("/"))) for c in connections
    ]
    assert routes == [("public", 200), ("public", 200), ("public", 100), ("market", 200), ("market", 50)]
    assert sum(len(c.subscriptions) for c in connections) == 750


def test_subscribe_messages_keepalive_and_no_microseconds() -> None:
    futures = BinanceFutures()
    assert futures.subscribe_messages([Subscription("bbo", "BTCUSDT")], 2) == [
        b'{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":2}'
    ]
    assert futures.initial_messages(futures.connections([Subscription("bbo", "BTCUSDT")])[0], 1) == []
    assert futures.keepalive() == Keepalive(ping=None, idle_s=180.0, stale_s=540.0)
    with pytest.raises(ConfigError):
        BinanceFutures(microseconds=True)


def test_snapshot_request_uses_an_allowed_limit() -> None:
    futures = BinanceFutures()
    assert (
        futures.snapshot_request("SUSHIUSDT").url
        == "https://fapi.binance.com/fapi/v1/depth?symbol=SUSHIUSDT&limit=1000"
    )
    assert futures.snapshot_request("SUSHIUSDT", 7).url.endswith("&limit=10")
    assert futures.snapshot_request("SUSHIUSDT", 500).url.endswith("&limit=500")
    assert futures.snapshot_request("SUSHIUSDT", 5000).url.endswith("&limit=1000")
    assert futures.instruments_request() == ["https://fapi.binance.com/fapi/v1/exchangeInfo"]


# -- other frames ---------------------------------------------------------------------------------------


def test_partial_depth_stream_is_a_snapshot() -> None:
    out = BinanceFutures().columns()
    frame = (
        b'{"stream":"btcusdt@depth5@100ms","data":{"e":"depthUpdate","E":1571889248277,"T":1571889248276,'
        b'"s":"BTCUSDT","U":390497796,"u":390497878,"pu":390497794,'
        b'"b":[["7403.89","0.002"],["7403.90","3.906"]],"a":[["7405.96","3.340"]]}}'
    )
    assert BinanceFutures().parse(frame, RECEIPT, out) == ()
    assert rows(out.flush().l2_messages) == [
        {
            "symbol": "BTCUSDT",
            "exchange_ts": 1571889248276 * MS,
            "receive_ts": START,
            "seq": 390497878,
            "prev_seq": 390497794,
            "first_seq": 390497796,
            "is_snapshot": True,
            "checksum": None,
            "bid_rows": 2,
            "ask_rows": 1,
        }
    ]


def test_coin_m_frames_parse_with_the_futures_venue() -> None:
    futures = BinanceFutures()
    out = futures.columns()
    frames = [
        b'{"stream":"btcusd_200626@depth@100ms","data":{"e":"depthUpdate","E":1591270260907,"T":1591270260891,'
        b'"s":"BTCUSD_200626","ps":"BTCUSD","U":17285681,"u":17285702,"pu":17285675,'
        b'"b":[["9517.6","10"]],"a":[["9518.5","45"]]}}',
        b'{"stream":"btcusd_200626@aggTrade","data":{"e":"aggTrade","E":1591261134288,"a":424951,'
        b'"s":"BTCUSD_200626","p":"9643.5","q":"2","f":606073,"l":606073,"T":1591261134199,"m":false}}',
        b'{"stream":"btcusd_200626@bookTicker","data":{"e":"bookTicker","u":17242169,"s":"BTCUSD_200626",'
        b'"ps":"BTCUSD","b":"9548.1","B":"52","a":"9548.5","A":"11","T":1591268628155,"E":1591268628166}}',
    ]
    for frame in frames:
        assert futures.parse(frame, RECEIPT, out) == ()
    batches = out.flush()
    message = rows(batches.l2_messages)[0]
    assert (message["symbol"], message["seq"], message["prev_seq"], message["first_seq"], message["exchange_ts"]) == (
        "BTCUSD_200626",
        17285702,
        17285675,
        17285681,
        1591270260891 * MS,
    )
    trade = rows(batches.trades)[0]
    assert (trade["trade_id"], trade["side"], trade["price"], trade["size"]) == ("424951", "buy", 9643.5, 2.0)
    bbo = rows(batches.bbo)[0]
    assert (bbo["seq"], bbo["exchange_ts"], bbo["bid_price"], bbo["ask_size"]) == (
        17242169,
        1591268628155 * MS,
        9548.1,
        11.0,
    )
    assert futures.stream(Subscription("l2", "BTCUSD_PERP")) == "btcusd_perp@depth@100ms"


def test_mark_price_is_unknown_not_an_error() -> None:
    frame = (
        b'{"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT",'
        b'"p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}}'
    )
    out = BinanceFutures().columns()
    assert BinanceFutures().parse(frame, RECEIPT, out) == (Control("unknown", "btcusdt@markPrice"),)
    assert not out.pending()


@pytest.mark.parametrize(
    "frame",
    [
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,'
        b'"pu":"0","b":[],"a":[]}}',
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"T":"1","s":"BTCUSDT","U":1,"u":2,'
        b'"pu":0,"b":[],"a":[]}}',
        b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT","b":"1","B":"2",'
        b'"a":"3","A":"4","T":1.5,"E":1}}',
        b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"a":1,"s":"BTCUSDT","p":"1","q":"1","T":1}}',
    ],
)
def test_malformed_futures_frames_raise_parse_error(frame: bytes) -> None:
    out = BinanceFutures().columns()
    with pytest.raises(ParseError):
        BinanceFutures().parse(frame, RECEIPT, out)
    assert not out.pending()
