"""Binance spot venue: golden rows from the real capture, URLs, controls, rejects."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pyarrow as pa
import pytest

from tests.captures import records, ws_frames
from xtrader.batch import Batches, Columns
from xtrader.clock import FakeClock, Receipt
from xtrader.errors import ConfigError, ParseError
from xtrader.venues import venue
from xtrader.venues.base import Connection, Control, Keepalive, Subscription
from xtrader.venues.binance import BinanceSpot

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


class Capture:
    """The spot capture parsed once: every ws frame, then the four REST snapshots."""

    def __init__(self) -> None:
        self.venue = venue("binance")
        self.out = self.venue.columns()
        clock = FakeClock()
        self.controls: Counter[Control] = Counter()
        self.frames = 0
        for frame in ws_frames("binance"):
            self.controls.update(self.venue.parse(frame, clock(), self.out))
            self.frames += 1
        self.ws = self.out.flush()
        self.snapshot_ids = {}
        for record in records("binance"):
            if record.kind == "http" and "/api/v3/depth" in record.url:
                assert record.msg is not None
                symbol = record.url.split("symbol=")[1].split("&")[0]
                receipt = Receipt(START + 1_000_000_000, 0)
                self.snapshot_ids[symbol] = self.venue.parse_snapshot(record.msg.encode(), symbol, receipt, self.out)
        self.rest = self.out.flush()


@pytest.fixture(scope="module")
def capture() -> Capture:
    return Capture()


def receive_ts(frame_index: int) -> int:
    return START + 1_000 * frame_index


# -- golden: the capture's contents ------------------------------------------------------------------


def test_every_frame_parses_and_counts_per_table(capture: Capture) -> None:
    assert capture.frames == 265
    assert capture.ws.trades is not None and capture.ws.trades.num_rows == 2
    assert capture.ws.bbo is not None and capture.ws.bbo.num_rows == 84
    assert capture.ws.l2_messages is not None and capture.ws.l2_messages.num_rows == 177
    assert capture.ws.l2 is not None and capture.ws.l2.num_rows == 422
    assert capture.ws.events is None and capture.ws.rejects == 0
    # the two kline_1m frames are valid but not routed
    assert capture.controls == Counter(
        {Control("unknown", "nknusdt@kline_1m"): 1, Control("unknown", "lrcbtc@kline_1m"): 1}
    )
    per_symbol = Counter(capture.ws.l2_messages.column("symbol").to_pylist())
    assert per_symbol == {"NKNUSDT": 150, "LRCBTC": 15, "BLZETH": 10, "RUNEEUR": 2}


def test_the_two_agg_trades_exactly(capture: Capture) -> None:
    assert rows(capture.ws.trades) == [
        {
            "exchange": "binance",
            "symbol": "NKNUSDT",
            "exchange_ts": 1633998523963 * MS,
            "receive_ts": receive_ts(108),
            "trade_id": "15683430",
            "side": "buy",
            "price": 0.3528,
            "size": 58.0,
        },
        {
            "exchange": "binance",
            "symbol": "LRCBTC",
            "exchange_ts": 1633998534486 * MS,
            "receive_ts": receive_ts(207),
            "trade_id": "9213679",
            "side": "buy",
            "price": 0.00000638,
            "size": 177.0,
        },
    ]


def test_book_tickers_have_update_id_and_no_exchange_time(capture: Capture) -> None:
    bbo = rows(capture.ws.bbo)
    assert bbo[0] == {
        "exchange": "binance",
        "symbol": "NKNUSDT",
        "exchange_ts": None,
        "receive_ts": receive_ts(7),
        "seq": 499869768,
        "bid_price": 0.3521,
        "bid_size": 672.0,
        "ask_price": 0.3526,
        "ask_size": 3199.0,
    }
    assert bbo[-1]["seq"] == 499870151
    assert (bbo[-1]["bid_price"], bbo[-1]["bid_size"], bbo[-1]["ask_price"], bbo[-1]["ask_size"]) == (
        0.3527,
        9602.0,
        0.3531,
        152.0,
    )
    assert all(row["exchange_ts"] is None for row in bbo)


def test_first_and_last_nknusdt_depth_updates(capture: Capture) -> None:
    messages = [m for m in rows(capture.ws.l2_messages) if m["symbol"] == "NKNUSDT"]
    first, last = messages[0], messages[-1]
    assert first == {
        "symbol": "NKNUSDT",
        "exchange_ts": 1633998512068 * MS,
        "receive_ts": receive_ts(0),
        "seq": 499869752,
        "prev_seq": None,
        "first_seq": 499869750,
        "is_snapshot": False,
        "checksum": None,
        "bid_rows": 3,
        "ask_rows": 0,
    }
    assert (last["seq"], last["first_seq"], last["exchange_ts"], last["bid_rows"], last["ask_rows"]) == (
        499870179,
        499870179,
        1633998542082 * MS,
        0,
        1,
    )
    l2 = rows(capture.ws.l2)
    assert [(r["side"], r["price"], r["size"]) for r in l2 if r["seq"] == 499869752] == [
        ("bid", 0.3513, 6195.0),
        ("bid", 0.3475, 5548.0),
        ("bid", 0.3464, 6222.0),
    ]
    assert [(r["side"], r["price"], r["size"], r["prev_seq"], r["first_seq"]) for r in l2 if r["seq"] == 499870179] == [
        ("ask", 0.3536, 16324.0, None, 499870179)
    ]


def test_spot_update_ids_are_contiguous_per_symbol(capture: Capture) -> None:
    last: dict[str, int] = {}
    pairs = 0
    for message in rows(capture.ws.l2_messages):
        previous = last.get(message["symbol"])
        if previous is not None:
            assert message["first_seq"] == previous + 1
            pairs += 1
        last[message["symbol"]] = message["seq"]
    assert pairs == 173


def test_rest_snapshots(capture: Capture) -> None:
    assert capture.snapshot_ids == {
        "NKNUSDT": 499869752,
        "BLZETH": 281916627,
        "LRCBTC": 259345543,
        "RUNEEUR": 15602511,
    }
    assert capture.rest.l2_messages is not None and capture.rest.l2 is not None
    nkn = rows(capture.rest.l2_messages)[0]
    assert nkn == {
        "symbol": "NKNUSDT",
        "exchange_ts": None,
        "receive_ts": START + 1_000_000_000,
        "seq": 499869752,
        "prev_seq": None,
        "first_seq": None,
        "is_snapshot": True,
        "checksum": None,
        "bid_rows": 609,
        "ask_rows": 1000,
    }
    l2 = [r for r in rows(capture.rest.l2) if r["symbol"] == "NKNUSDT"]
    assert len(l2) == 1609 and all(r["is_snapshot"] and r["seq"] == 499869752 for r in l2)
    assert [(r["side"], r["price"], r["size"]) for r in l2[:2]] == [("bid", 0.3521, 672.0), ("bid", 0.352, 1144.0)]
    assert (l2[608]["side"], l2[608]["price"], l2[608]["size"]) == ("bid", 0.00212, 117924.5)
    assert [(r["side"], r["price"], r["size"]) for r in l2[609:611]] == [
        ("ask", 0.3525, 3959.0),
        ("ask", 0.3526, 3199.0),
    ]
    assert (l2[-1]["side"], l2[-1]["price"], l2[-1]["size"]) == ("ask", 0.5506, 14418.0)
    assert capture.rest.l2.num_rows == 609 + 1000 + 174 + 1000 + 176 + 1000 + 221 + 468


def test_exchange_info_lists_the_symbols() -> None:
    spot = BinanceSpot()
    body = next(r.msg for r in records("binance") if r.url.endswith("/api/v3/exchangeInfo"))
    assert body is not None
    symbols = spot.parse_instruments(body.encode())
    assert len(symbols) == 1695
    assert {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR", "ETHBTC"} <= symbols
    with pytest.raises(ParseError):
        spot.parse_instruments(b'{"code":-1121,"msg":"Invalid symbol."}')
    with pytest.raises(ParseError):
        spot.parse_instruments(b'{"symbols":[{"symbol":1}]}')


# -- connections, requests, keepalive ----------------------------------------------------------------


def test_registry_and_class_facts() -> None:
    spot = venue("binance", ws_base="ws://127.0.0.1:9000/", rest_base="http://127.0.0.1:9001")
    assert isinstance(spot, BinanceSpot)
    assert (spot.name, spot.sync_kind, spot.needs_snapshot, spot.keep_text) == ("binance", "binance_spot", True, False)
    assert (spot.ws_base, spot.rest_base) == ("ws://127.0.0.1:9000", "http://127.0.0.1:9001")
    assert (BinanceSpot().ws_base, BinanceSpot().rest_base) == (
        "wss://stream.binance.com:9443",
        "https://api.binance.com",
    )


def test_connections_put_lowercase_default_streams_in_the_url() -> None:
    subs = [Subscription("trades", "BTCUSDT"), Subscription("l2", "BTCUSDT"), Subscription("bbo", "ETHBTC")]
    assert BinanceSpot().connections(subs) == [
        Connection(
            "wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade/btcusdt@depth@100ms/ethbtc@bookTicker",
            tuple(subs),
        )
    ]


@pytest.mark.parametrize(
    ("table", "channel", "stream"),
    [
        ("trades", "trade", "btcusdt@trade"),
        ("trades", "aggTrade", "btcusdt@aggTrade"),
        ("l2", "depth", "btcusdt@depth"),
        ("l2", "depth@100ms", "btcusdt@depth@100ms"),
        ("l2", "depth5", "btcusdt@depth5"),
        ("l2", "depth10@100ms", "btcusdt@depth10@100ms"),
        ("l2", "depth20@1000ms", "btcusdt@depth20@1000ms"),
        ("bbo", "bookTicker", "btcusdt@bookTicker"),
    ],
)
def test_channel_overrides(table: Any, channel: str, stream: str) -> None:
    assert BinanceSpot().stream(Subscription(table, "BTCUSDT", channel)) == stream


@pytest.mark.parametrize(
    "subscription",
    [
        Subscription("trades", "BTCUSDT", "depth"),
        Subscription("l2", "BTCUSDT", "depth7"),
        Subscription("l2", "BTCUSDT", "depth@fast"),
        Subscription("bbo", "BTCUSDT", "ticker"),
        Subscription("l2", "BTC/USDT"),
        Subscription("l2", ""),
        Subscription("candles", "BTCUSDT"),  # type: ignore[arg-type]
    ],
)
def test_bad_subscriptions_are_config_errors(subscription: Subscription) -> None:
    with pytest.raises(ConfigError):
        BinanceSpot().connections([subscription])


def test_connections_respect_the_stream_cap_and_deduplicate() -> None:
    spot = BinanceSpot()
    subs = [Subscription("l2", f"SYM{i}USDT") for i in range(450)]
    duplicate = Subscription("l2", "SYM0USDT", "depth@100ms")  # the same stream as the default
    connections = spot.connections([*subs, duplicate])
    assert [len(c.url.split("streams=")[1].split("/")) for c in connections] == [200, 200, 50]
    assert connections[0].subscriptions[:2] == (subs[0], duplicate)
    assert sum(len(c.subscriptions) for c in connections) == 451
    assert connections[2].url.endswith(
        "/stream?streams=" + "/".join(f"sym{i}usdt@depth@100ms" for i in range(400, 450))
    )
    assert spot.connections([]) == []


def test_nothing_sent_on_connect_and_subscribe_message_shapes() -> None:
    spot = BinanceSpot()
    subs = [Subscription("trades", "BTCUSDT"), Subscription("l2", "BTCUSDT", "depth")]
    (connection,) = spot.connections(subs)
    assert spot.initial_messages(connection, 1) == []
    assert spot.subscribe_messages(subs, 7) == [
        b'{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","btcusdt@depth"],"id":7}'
    ]
    assert spot.unsubscribe_messages(subs[:1], 8) == [b'{"method":"UNSUBSCRIBE","params":["btcusdt@aggTrade"],"id":8}']
    assert spot.subscribe_messages([], 9) == []


def test_keepalive_is_server_pinged() -> None:
    assert BinanceSpot().keepalive() == Keepalive(ping=None, idle_s=20.0, stale_s=60.0)


def test_snapshot_request_asks_for_1000_levels_by_default_and_up_to_5000_when_configured() -> None:
    """Issue 13: the default snapshot weighs 50 (limit 1000), not 250 (limit 5000), of the 6000/min IP budget."""
    spot = BinanceSpot(rest_base="http://127.0.0.1:9001")
    request = spot.snapshot_request("NKNUSDT")
    assert (request.symbol, request.url) == ("NKNUSDT", "http://127.0.0.1:9001/api/v3/depth?symbol=NKNUSDT&limit=1000")
    assert spot.snapshot_weight(None) == 50
    assert spot.snapshot_request("nknusdt", 100).url.endswith("symbol=NKNUSDT&limit=100")
    assert spot.snapshot_weight(100) == 5
    assert spot.snapshot_request("NKNUSDT", 5000).url.endswith("&limit=5000")
    assert spot.snapshot_weight(5000) == 250
    assert spot.snapshot_request("NKNUSDT", 9000).url.endswith("&limit=5000")
    assert spot.instruments_request() == ["http://127.0.0.1:9001/api/v3/exchangeInfo"]


def test_microsecond_time_unit_is_requested_and_scaled() -> None:
    spot = BinanceSpot(microseconds=True)
    (connection,) = spot.connections([Subscription("trades", "BTCUSDT")])
    assert connection.url == "wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade&timeUnit=MICROSECOND"
    out = spot.columns()
    frame = (
        b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963001,"s":"BTCUSDT","a":1,'
        b'"p":"1.5","q":"2","f":1,"l":1,"T":1633998523963123,"m":true,"M":true}}'
    )
    assert spot.parse(frame, RECEIPT, out) == ()
    trades = out.flush().trades
    assert trades is not None
    assert trades.column("exchange_ts").cast(pa.int64()).to_pylist() == [1633998523963123 * 1_000]


# -- other frames ---------------------------------------------------------------------------------------


def test_raw_trade_stream_frame() -> None:
    out = BinanceSpot().columns()
    frame = (
        b'{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",'
        b'"T":1672515782134,"m":true,"M":true}'
    )
    assert BinanceSpot().parse(frame, RECEIPT, out) == ()
    assert rows(out.flush().trades) == [
        {
            "exchange": "binance",
            "symbol": "BNBBTC",
            "exchange_ts": 1672515782134 * MS,
            "receive_ts": START,
            "trade_id": "12345",
            "side": "sell",
            "price": 0.001,
            "size": 100.0,
        }
    ]


def test_partial_depth_takes_its_symbol_from_the_stream_name() -> None:
    out = BinanceSpot().columns()
    frame = (
        b'{"stream":"btcusdt@depth5@100ms","data":{"lastUpdateId":160,'
        b'"bids":[["0.0024","10"],["0.0023","1"]],"asks":[["0.0026","100"]]}}'
    )
    assert BinanceSpot().parse(frame, RECEIPT, out) == ()
    batches = out.flush()
    assert rows(batches.l2_messages) == [
        {
            "symbol": "BTCUSDT",
            "exchange_ts": None,
            "receive_ts": START,
            "seq": 160,
            "prev_seq": None,
            "first_seq": None,
            "is_snapshot": True,
            "checksum": None,
            "bid_rows": 2,
            "ask_rows": 1,
        }
    ]
    assert [(r["side"], r["price"], r["size"]) for r in rows(batches.l2)] == [
        ("bid", 0.0024, 10.0),
        ("bid", 0.0023, 1.0),
        ("ask", 0.0026, 100.0),
    ]


def test_empty_depth_update_still_appends_its_header() -> None:
    out = BinanceSpot().columns()
    frame = b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":6,"b":[],"a":[]}'
    assert BinanceSpot().parse(frame, RECEIPT, out) == ()
    assert (out.l2.seq, out.l2.first_seq, out.l2.bid_rows, out.l2.ask_rows, out.l2.price) == ([6], [5], [0], [0], [])


@pytest.mark.parametrize(
    ("frame", "control"),
    [
        (b'{"result":null,"id":1}', Control("ack", "", 1)),
        (b'{"result":["btcusdt@aggTrade"],"id":"list-3"}', Control("ack", '["btcusdt@aggTrade"]', "list-3")),
        (b'{"result":true,"id":null}', Control("ack", "true", None)),
        (
            b'{"error":{"code":2,"msg":"Invalid request: unknown variant `SUBSCRIB`"},"id":4}',
            Control("error", "2: Invalid request: unknown variant `SUBSCRIB`", 4),
        ),
        (b'{"error":{"code":3,"msg":"Invalid JSON"},"id":null}', Control("error", "3: Invalid JSON", None)),
        (b'{"e":"serverShutdown","E":1633998542082}', Control("shutdown", "serverShutdown")),
        (
            b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1633998542082}}',
            Control("shutdown", "serverShutdown"),
        ),
        (b'{"e":"24hrMiniTicker","E":1,"s":"BTCUSDT"}', Control("unknown", "24hrMiniTicker")),
        (b'{"stream":"!miniTicker@arr","data":[{"e":"24hrMiniTicker"}]}', Control("unknown", "!miniTicker@arr")),
        (b"[]", Control("unknown", "array")),
        (b"{}", Control("unknown", "keys=")),
        (b'{"id":5,"status":200}', Control("unknown", "keys=id,status")),
    ],
)
def test_control_frames(frame: bytes, control: Control) -> None:
    out = BinanceSpot().columns()
    before = out.mark()
    assert BinanceSpot().parse(frame, RECEIPT, out) == (control,)
    assert BinanceSpot().parse(frame.decode(), RECEIPT, out) == (control,)  # str frames too
    assert out.mark() == before


AGG = {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "1.5", "q": "2", "T": 1, "m": False}
DEPTH = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1, "u": 2, "b": [["1", "2"]], "a": [["3", "4"]]}
TICKER = {"u": 1, "s": "BTCUSDT", "b": "1", "B": "2", "a": "3", "A": "4"}


def _with(base: dict[str, Any], **changes: Any) -> bytes:
    return orjson.dumps({k: v for k, v in {**base, **changes}.items() if v is not ...})


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"{",
        b"not json",
        b"null",
        b"1",
        b'"text"',
        b"\xff\xfe",
        b'{"stream":1,"data":{}}',
        b'{"stream":"btcusdt@aggTrade"}',
        b'{"stream":"btcusdt@aggTrade","data":"x"}',
        b'{"e":["aggTrade"]}',
        _with(AGG, p=...),
        _with(AGG, p=1.5),
        _with(AGG, m="false"),
        _with(AGG, a="1"),
        _with(AGG, T=None),
        _with(AGG, s=None),
        _with(DEPTH, U="1"),
        _with(DEPTH, u=2.0),
        _with(DEPTH, pu="1"),
        _with(DEPTH, E=True),
        _with(DEPTH, b=...),
        _with(DEPTH, a=[["3"]]),
        _with(DEPTH, a=[["3", 4]]),
        _with(DEPTH, a=[["3", "4"], "56"]),
        _with(DEPTH, a={"3": "4"}),
        _with(TICKER, b=1.0),
        _with(TICKER, A=...),
        _with(TICKER, u="1"),
        b'{"lastUpdateId":1,"bids":[],"asks":[]}',  # partial depth outside a combined stream: no symbol
        b'{"stream":"nosymbol","data":{"lastUpdateId":1,"bids":[],"asks":[]}}',
        b'{"stream":"@depth5","data":{"lastUpdateId":1,"bids":[],"asks":[]}}',
        b'{"result":null,"id":[1]}',
        b'{"error":"bad","id":1}',
        b'{"error":{"code":"2","msg":"x"},"id":1}',
    ],
)
def test_malformed_frames_raise_parse_error_and_append_nothing(frame: bytes) -> None:
    spot = BinanceSpot()
    out = spot.columns()
    spot.parse(b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1","2"]],"a":[]}', RECEIPT, out)
    before = out.mark()
    with pytest.raises(ParseError):
        spot.parse(frame, RECEIPT, out)
    assert out.mark() == before
    batches: Batches = out.flush()
    assert batches.l2_messages is not None and batches.l2_messages.num_rows == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"code":-1121,"msg":"Invalid symbol."}',
        b'{"lastUpdateId":"1","bids":[],"asks":[]}',
        b'{"lastUpdateId":1,"bids":[["1","2"]],"asks":[["1"]]}',
        b'{"lastUpdateId":1,"T":"x","bids":[],"asks":[]}',
    ],
)
def test_malformed_snapshots_raise_parse_error_and_append_nothing(body: bytes) -> None:
    out: Columns = BinanceSpot().columns()
    with pytest.raises(ParseError):
        BinanceSpot().parse_snapshot(body, "BTCUSDT", RECEIPT, out)
    assert not out.pending()
