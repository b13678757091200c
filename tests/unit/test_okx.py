"""OKX venue: golden tests on the real 2022 capture, plus synthetic seqId-era frames from EXCHANGES.md 3.x.

The capture has `books` snapshots/updates with checksums but no seqId/prevSeqId, trades,
tickers and cumulative subscribe acks; it has no pongs, errors, notices, books5 or bbo-tbt,
so those frames are written here from the documented shapes.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pytest

from tests.captures import records, ws_frames
from xtrader.batch import Batches, Columns
from xtrader.clock import FakeClock, Receipt
from xtrader.errors import ConfigError, ParseError
from xtrader.venues import Control, SnapshotRequest, Subscription, venue
from xtrader.venues.okx import MAX_REQUEST_BYTES, Okx, okx_checksum

START_NS = 1_700_000_000_000_000_000
STEP_NS = 1_000
MS = 1_000_000
RECEIPT = Receipt(START_NS, 0)


def okx() -> Okx:
    v = venue("okx")
    assert isinstance(v, Okx)
    return v


def ints(batch: pa.RecordBatch, column: str) -> list[int | None]:
    """A timestamp column as epoch ns ints (None for nulls)."""
    values: list[int | None] = batch.column(column).cast(pa.int64()).to_pylist()
    return values


def push(channel: str, data: list[Any], inst: str = "BTC-USDT", **extra: Any) -> bytes:
    return orjson.dumps({"arg": {"channel": channel, "instId": inst}, **extra, "data": data})


def parse_all(frames: list[bytes]) -> tuple[Batches, list[Control]]:
    v, out = okx(), okx().columns()
    controls: list[Control] = []
    for frame in frames:
        controls.extend(v.parse(frame, RECEIPT, out))
    return out.flush(RECEIPT.wall_ns), controls


class Replay:
    """Every received ws frame of the capture parsed once, with a fake receipt clock."""

    def __init__(self) -> None:
        v, clock = okx(), FakeClock(START_NS, STEP_NS)
        self.frames = ws_frames("okx")
        out = v.columns()
        self.controls: list[Control] = []
        for frame in self.frames:
            self.controls.extend(v.parse(frame, clock(), out))
        self.batches = out.flush()
        assert self.batches.l2 is not None and self.batches.l2_messages is not None
        assert self.batches.trades is not None and self.batches.bbo is not None
        self.trades = self.batches.trades
        self.l2 = self.batches.l2.to_pylist()
        self.messages = self.batches.l2_messages.to_pylist()
        self.message_receive = ints(self.batches.l2_messages, "receive_ts")
        self.message_exchange = ints(self.batches.l2_messages, "exchange_ts")
        # first l2 row of each message
        self.starts = [0]
        for m in self.messages:
            self.starts.append(self.starts[-1] + m["bid_rows"] + m["ask_rows"])

    def receive_ns(self, frame_index: int) -> int:
        return START_NS + frame_index * STEP_NS

    def message_at(self, frame_index: int) -> int:
        """Index of the l2 message parsed from frame `frame_index`."""
        (index,) = [i for i, ns in enumerate(self.message_receive) if ns == self.receive_ns(frame_index)]
        return index

    def levels(self, index: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(bids, asks) of message `index` as (price_text, size_text), in wire order."""
        m, start = self.messages[index], self.starts[index]
        rows = self.l2[start : self.starts[index + 1]]
        assert [r["side"] for r in rows] == ["bid"] * m["bid_rows"] + ["ask"] * m["ask_rows"]
        assert all(r["seq"] == m["seq"] and r["is_snapshot"] == m["is_snapshot"] for r in rows)
        assert all(r["price"] == float(r["price_text"]) and r["size"] == float(r["size_text"]) for r in rows)
        pairs = [(r["price_text"], r["size_text"]) for r in rows]
        return pairs[: m["bid_rows"]], pairs[m["bid_rows"] :]


@pytest.fixture(scope="module")
def replay() -> Replay:
    return Replay()


# --- golden: the real capture --------------------------------------------------------------------


def test_capture_row_counts(replay: Replay) -> None:
    b = replay.batches
    assert len(replay.frames) == 410
    assert b.trades is not None and b.trades.num_rows == 74
    assert b.l2 is not None and b.l2.num_rows == 8264
    assert len(replay.messages) == 290
    assert sum(m["is_snapshot"] for m in replay.messages) == 3
    assert b.bbo is not None and b.bbo.num_rows == 28
    assert b.events is None and b.rejects == 0
    per_symbol: dict[str, int] = defaultdict(int)
    for m in replay.messages:
        per_symbol[m["symbol"]] += 1
    assert per_symbol == {"BTC-USDT": 98, "UNI-USD-SWAP": 93, "BTC-USD-220527": 99}
    assert replay.trades.column("symbol").to_pylist().count("BTC-USDT") == 69
    assert b.bbo.column("symbol").to_pylist().count("BTC-USDT") == 25
    # zero-size rows are deletions, kept as rows
    assert sum(r["size_text"] == "0" for r in replay.l2) == 3236


def test_capture_acks_including_cumulative_repeats(replay: Replay) -> None:
    assert {c.kind for c in replay.controls} == {"ack"}
    details = [c.detail for c in replay.controls]
    assert len(details) == 18  # 3 + 6 + 9 acks for 3 cumulative subscribe requests
    assert details[:3] == [
        "subscribe tickers BTC-USD-220527",
        "subscribe tickers UNI-USD-SWAP",
        "subscribe tickers BTC-USDT",
    ]
    assert details.count("subscribe tickers BTC-USDT") == 3
    assert details.count("subscribe trades BTC-USDT") == 2
    assert details.count("subscribe books BTC-USDT") == 1
    assert all(c.request_id is None for c in replay.controls)  # cryptofeed sent no id


def test_capture_trade_rows(replay: Replay) -> None:
    t = replay.trades
    rows = list(
        zip(
            t.column("symbol").to_pylist(),
            ints(t, "exchange_ts"),
            ints(t, "receive_ts"),
            t.column("trade_id").to_pylist(),
            t.column("side").to_pylist(),
            t.column("price").to_pylist(),
            t.column("size").to_pylist(),
            strict=True,
        )
    )
    assert set(t.column("exchange").to_pylist()) == {"okx"}
    assert rows[0] == ("BTC-USD-220527", 1652459199958 * MS, replay.receive_ns(21), "7849", "buy", 30218.8, 1.0)
    assert rows[1] == ("UNI-USD-SWAP", 1652459215150 * MS, replay.receive_ns(22), "12883020", "sell", 5.123, 100.0)
    assert rows[2] == ("BTC-USDT", 1652459224818 * MS, replay.receive_ns(23), "338476307", "buy", 30236.0, 0.0002)
    assert rows[-1] == (
        "BTC-USDT",
        1652459235576 * MS,
        replay.receive_ns(392),
        "338476375",
        "buy",
        30227.6,
        0.00000088,
    )
    btc = [r[3] for r in rows if r[0] == "BTC-USDT"]
    assert btc == [str(i) for i in range(338476307, 338476376)]  # contiguous ids, none lost


def test_capture_btc_usdt_snapshot(replay: Replay) -> None:
    index = replay.message_at(26)
    m = replay.messages[index]
    assert m["symbol"] == "BTC-USDT" and m["is_snapshot"] is True
    assert (m["bid_rows"], m["ask_rows"]) == (400, 400)
    assert m["seq"] == 1652459225381  # no seqId in 2022: ts in ms
    assert m["prev_seq"] is None and m["first_seq"] is None
    assert m["checksum"] == 47640993
    assert replay.message_exchange[index] == 1652459225381 * MS
    bids, asks = replay.levels(index)
    assert bids[:3] == [("30243.4", "0.0012029"), ("30236.6", "0.007903"), ("30236.1", "0.05452")]
    assert asks[:3] == [("30243.5", "1.44679"), ("30244", "0.08"), ("30246.1", "0.05426064")]
    assert bids[-1] == ("29999.7", "0.00276686")
    assert asks[-1] == ("30650.2", "0.00102749")
    assert okx_checksum(bids, asks) == 47640993


def test_capture_first_update_of_each_instrument(replay: Replay) -> None:
    index = replay.message_at(27)
    m = replay.messages[index]
    assert (m["symbol"], m["is_snapshot"], m["seq"], m["prev_seq"], m["checksum"]) == (
        "BTC-USD-220527",
        False,
        1652459225464,
        None,
        -914047754,
    )
    assert replay.levels(index) == ([("30182.6", "452")], [("30249.4", "0"), ("30261", "4"), ("30310.3", "19")])
    uni = replay.levels(replay.message_at(29))
    assert uni == ([("5.14", "427"), ("5.138", "26"), ("5.117", "0")], [("5.158", "129"), ("5.233", "240")])


def test_capture_last_message_of_each_instrument(replay: Replay) -> None:
    last = {m["symbol"]: i for i, m in enumerate(replay.messages)}
    btc_future = last["BTC-USD-220527"]
    assert replay.messages[btc_future]["checksum"] == 664471393
    assert replay.messages[btc_future]["seq"] == 1652459236119
    assert replay.levels(btc_future) == ([], [("30238.8", "3"), ("30240.7", "0")])  # no bids: 0 bid rows
    uni = last["UNI-USD-SWAP"]
    assert replay.messages[uni]["checksum"] == 1552772605
    bids, asks = replay.levels(uni)
    assert (len(bids), len(asks)) == (9, 7)
    assert bids[0] == ("5.137", "20") and bids[-1] == ("5.118", "564")
    assert asks[0] == ("5.146", "0") and asks[-1] == ("5.159", "304")
    assert replay.message_receive[last["BTC-USDT"]] == replay.receive_ns(407)


def test_capture_checksum_of_every_rebuilt_book(replay: Replay) -> None:
    """Rebuild each book from the parsed rows; its top-25 crc32 equals all 290 message checksums."""
    books: dict[str, tuple[dict[Decimal, tuple[str, str]], dict[Decimal, tuple[str, str]]]] = defaultdict(
        lambda: ({}, {})
    )
    matched = 0
    for index, m in enumerate(replay.messages):
        bids, asks = books[m["symbol"]]
        if m["is_snapshot"]:
            bids.clear()
            asks.clear()
        new_bids, new_asks = replay.levels(index)
        for side, levels in ((bids, new_bids), (asks, new_asks)):
            for price, size in levels:
                if Decimal(size) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = (price, size)
        top_bids = [bids[p] for p in sorted(bids, reverse=True)[:25]]
        top_asks = [asks[p] for p in sorted(asks)[:25]]
        assert okx_checksum(top_bids, top_asks) == m["checksum"], f"message {index} of {m['symbol']}"
        assert max(bids) < min(asks), "book crossed"
        matched += 1
    assert matched == 290


def test_capture_ticker_rows(replay: Replay) -> None:
    bbo = replay.batches.bbo
    assert bbo is not None
    rows = bbo.to_pylist()
    exchange_ts = ints(bbo, "exchange_ts")
    first, last = rows[0], rows[-1]
    assert (first["symbol"], first["bid_price"], first["bid_size"], first["ask_price"], first["ask_size"]) == (
        "BTC-USD-220527",
        30210.4,
        4.0,
        30220.1,
        3.0,
    )
    assert exchange_ts[0] == 1652459223003 * MS and first["seq"] is None
    assert ints(bbo, "receive_ts")[0] == replay.receive_ns(18)
    assert (last["symbol"], last["bid_price"], last["bid_size"], last["ask_price"], last["ask_size"]) == (
        "BTC-USDT",
        30230.2,
        0.4112,
        30230.3,
        1.92174778,
    )
    assert exchange_ts[-1] == 1652459235637 * MS
    assert all(r["seq"] is None for r in rows)


def test_capture_instruments_requests_and_replies() -> None:
    v = okx()
    http = [r for r in records("okx") if r.kind == "http"]
    assert set(v.instruments_request()) == {r.url for r in http}
    found: set[str] = set()
    for r in http:
        assert r.msg is not None
        found |= v.parse_instruments(r.msg.encode())
    assert {"BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527", "BTC-USD-SWAP", "BTC-USD-220514-22000-C"} <= found
    assert "ETH-USD-220514-1300-C" in found


def test_instruments_error_reply_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="50011"):
        okx().parse_instruments(b'{"code":"50011","msg":"Too Many Requests","data":[]}')
    for body in (b"", b"[]", b'{"code":"0"}', b'{"code":"0","data":[{"instType":"SPOT"}]}'):
        with pytest.raises(ParseError):
            okx().parse_instruments(body)


# --- the checksum ----------------------------------------------------------------------------------


def test_checksum_vectors_from_exchanges_md() -> None:
    # "3366.1:7:3366.8:9:3366:6:3368:8" -> -1881014294
    assert okx_checksum([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]) == -1881014294
    # "3366.1:7:3366.8:9:3368:8:3372:8" -> 831078360 (one bid, three asks interleave to the same string)
    assert okx_checksum([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")]) == 831078360


def test_checksum_uses_only_the_top_25_and_ignores_extra_fields() -> None:
    bids = [(str(100 - i), "1", "0", "1") for i in range(40)]
    asks = [(str(101 + i), "2") for i in range(30)]
    assert okx_checksum(bids, asks) == okx_checksum(bids[:25], asks[:25])
    assert okx_checksum([], []) == 0  # crc32 of the empty string


# --- synthetic seqId-era frames (EXCHANGES.md 3.4 / 3.5) ------------------------------------------


def book(action: str, seq: int, prev: int, bids: list[list[str]], asks: list[list[str]], **kw: Any) -> bytes:
    channel = kw.pop("channel", "books")
    record = {"asks": asks, "bids": bids, "ts": "1700000000123", "checksum": 0, "prevSeqId": prev, "seqId": seq, **kw}
    return push(channel, [record], action=action)


SEQUENCE = [  # the documented example: snapshot (-1, 10) -> update (10, 15) -> no-change -> reset -> update
    book("snapshot", 10, -1, [["100.5", "2", "0", "1"], ["100", "1", "0", "3"]], [["101", "4", "0", "2"]]),
    book("update", 15, 10, [["100", "0", "0", "0"]], [["101.5", "7", "0", "1"]]),
    book("update", 15, 15, [], []),
    book("update", 3, 15, [], [["101", "5", "0", "2"]]),
    book("update", 5, 3, [["99", "1", "0", "1"]], []),
]


def test_seq_id_sequence_headers_and_rows() -> None:
    batches, controls = parse_all(SEQUENCE)
    assert controls == []
    assert batches.l2_messages is not None and batches.l2 is not None
    headers = [
        (m["seq"], m["prev_seq"], m["first_seq"], m["is_snapshot"], m["checksum"], m["bid_rows"], m["ask_rows"])
        for m in batches.l2_messages.to_pylist()
    ]
    assert headers == [
        (10, None, None, True, 0, 2, 1),  # prevSeqId -1 -> null; checksum 0 is carried (0 = none)
        (15, 10, None, False, 0, 1, 1),
        (15, 15, None, False, 0, 0, 0),  # no-change: a header with no rows
        (3, 15, None, False, 0, 0, 1),  # reset: seqId < prevSeqId, reported as sent
        (5, 3, None, False, 0, 1, 0),
    ]
    assert ints(batches.l2_messages, "exchange_ts") == [1700000000123 * MS] * 5
    rows = [(r["seq"], r["side"], r["price_text"], r["size_text"]) for r in batches.l2.to_pylist()]
    assert rows == [
        (10, "bid", "100.5", "2"),
        (10, "bid", "100", "1"),
        (10, "ask", "101", "4"),
        (15, "bid", "100", "0"),
        (15, "ask", "101.5", "7"),
        (3, "ask", "101", "5"),
        (5, "bid", "99", "1"),
    ]


@pytest.mark.parametrize("channel", ["books-l2-tbt", "books50-l2-tbt"])
def test_tick_by_tick_book_channels_parse_like_books(channel: str) -> None:
    frame = book("update", 42, 40, [["1.5", "3", "0", "1"]], [], channel=channel, checksum=-123)
    batches, _ = parse_all([frame])
    assert batches.l2_messages is not None
    (m,) = batches.l2_messages.to_pylist()
    assert (m["seq"], m["prev_seq"], m["is_snapshot"], m["checksum"], m["bid_rows"]) == (42, 40, False, -123, 1)


def test_books5_is_a_full_snapshot_each_push() -> None:
    record = {
        "asks": [["111.06", "55154", "0", "2"], ["111.07", "53276", "0", "2"]],
        "bids": [["111.05", "57745", "0", "2"]],
        "instId": "BCH-USDT-SWAP",
        "ts": "1670324386802",
        "seqId": 363996337,
    }
    legacy = {k: v for k, v in record.items() if k != "seqId"}
    batches, _ = parse_all([push("books5", [record], "BCH-USDT-SWAP"), push("books5", [legacy], "BCH-USDT-SWAP")])
    assert batches.l2_messages is not None and batches.l2 is not None
    headers = [
        (m["symbol"], m["seq"], m["prev_seq"], m["is_snapshot"], m["checksum"], m["bid_rows"], m["ask_rows"])
        for m in batches.l2_messages.to_pylist()
    ]
    assert headers == [
        ("BCH-USDT-SWAP", 363996337, None, True, None, 1, 2),
        ("BCH-USDT-SWAP", 1670324386802, None, True, None, 1, 2),  # no seqId: ts in ms
    ]
    assert batches.l2.column("price").to_pylist()[:3] == [111.05, 111.06, 111.07]


def test_bbo_tbt_rows_with_an_empty_side() -> None:
    frames = [
        push(
            "bbo-tbt",
            [
                {
                    "asks": [["111.06", "55154", "0", "2"]],
                    "bids": [["111.05", "57745", "0", "2"]],
                    "ts": "1670324386802",
                    "seqId": 363996337,
                }
            ],
            "BCH-USDT-SWAP",
        ),
        push("bbo-tbt", [{"asks": [], "bids": [["111.04", "1", "0", "1"]], "ts": "1670324386803", "seqId": 363996340}]),
    ]
    batches, _ = parse_all(frames)
    assert batches.bbo is not None and batches.l2 is None
    rows = [
        (r["symbol"], r["seq"], r["bid_price"], r["bid_size"], r["ask_price"], r["ask_size"])
        for r in batches.bbo.to_pylist()
    ]
    assert rows == [
        ("BCH-USDT-SWAP", 363996337, 111.05, 57745.0, 111.06, 55154.0),
        ("BTC-USDT", 363996340, 111.04, 1.0, None, None),
    ]
    assert ints(batches.bbo, "exchange_ts") == [1670324386802 * MS, 1670324386803 * MS]


def test_tickers_empty_side_is_null() -> None:
    record = {
        "instId": "BTC-USD-250328-100000-C",
        "bidPx": "",
        "bidSz": "0",
        "askPx": "0.0005",
        "askSz": "12",
        "last": "",
        "ts": "1700000000000",
    }
    batches, _ = parse_all([push("tickers", [record], "BTC-USD-250328-100000-C")])
    assert batches.bbo is not None
    (row,) = batches.bbo.to_pylist()
    assert (row["bid_price"], row["bid_size"], row["ask_price"], row["ask_size"], row["seq"]) == (
        None,
        0.0,
        0.0005,
        12.0,
        None,
    )


def test_one_frame_with_several_records() -> None:
    trades = [
        {
            "instId": "BTC-USDT",
            "tradeId": "1",
            "px": "42219.9",
            "sz": "0.1",
            "side": "buy",
            "ts": "1630048897897",
            "count": "3",
            "source": "0",
            "seqId": 1234,
        },
        {"instId": "BTC-USDT", "tradeId": "2", "px": "42219.8", "sz": "0.2", "side": "sell", "ts": "1630048897898"},
    ]
    batches, _ = parse_all([push("trades", trades)])
    assert batches.trades is not None
    assert batches.trades.column("trade_id").to_pylist() == ["1", "2"]
    assert batches.trades.column("side").to_pylist() == ["buy", "sell"]
    assert ints(batches.trades, "exchange_ts") == [1630048897897 * MS, 1630048897898 * MS]
    assert ints(batches.trades, "receive_ts") == [START_NS, START_NS]


# --- control frames --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b"pong", Control("pong")),
        ("pong", Control("pong")),
        (
            b'{"id":"1512","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}',
            Control("ack", "subscribe books BTC-USDT", 1512),
        ),
        (
            b'{"event":"unsubscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}',
            Control("ack", "unsubscribe trades BTC-USDT", None),
        ),
        (
            b'{"id":"7","event":"error","code":"60012","msg":"Invalid request: {\\"op\\": \\"subscribe\\"}",'
            b'"connId":"a4d3ae55"}',
            Control("error", 'code 60012: Invalid request: {"op": "subscribe"}', 7),
        ),
        (
            b'{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. '
            b'Please reconnect.","connId":"a4d3ae55"}',
            Control(
                "shutdown",
                "code 64008: The connection will soon be closed for a service upgrade. Please reconnect.",
            ),
        ),
        (
            b'{"event":"notice","code":"64009","msg":"something else","connId":"a4d3ae55"}',
            Control("notice", "code 64009: something else"),
        ),
    ],
)
def test_control_frames(frame: bytes | str, expected: Control) -> None:
    out = okx().columns()
    assert okx().parse(frame, RECEIPT, out) == (expected,)
    assert not out.pending()


def test_other_events_are_notices_and_unknown_pushes_are_unknown() -> None:
    v, out = okx(), okx().columns()
    (conn_count,) = v.parse(
        b'{"event":"channel-conn-count","channel":"books-l2-tbt","connCount":"2","connId":"abc"}', RECEIPT, out
    )
    assert conn_count.kind == "notice" and "channel-conn-count" in conn_count.detail
    (candles,) = v.parse(push("candle1m", [{"x": 1}]), RECEIPT, out)
    assert candles == Control("unknown", "channel 'candle1m'")
    (other,) = v.parse(b'{"hello":"world"}', RECEIPT, out)
    assert other.kind == "unknown"
    assert not out.pending()


# --- malformed frames -------------------------------------------------------------------------------

GOOD_TRADE = {"instId": "BTC-USDT", "tradeId": "9", "px": "1.5", "sz": "2", "side": "buy", "ts": "1630048897897"}


def _trade(**changes: Any) -> bytes:
    return push("trades", [GOOD_TRADE, {**GOOD_TRADE, **changes}])


def _book(**changes: Any) -> bytes:
    record = {
        "asks": [["2", "1", "0", "1"]],
        "bids": [["1", "1", "0", "1"]],
        "ts": "1",
        "seqId": 2,
        "prevSeqId": 1,
        "checksum": 0,
        **changes,
    }
    return push("books", [{"asks": [], "bids": [], "ts": "1", "seqId": 1, "prevSeqId": 1}, record], action="update")


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"pin",
        b"ping",
        b"{",
        b"[]",
        b"1",
        b'"pong"',
        b'{"event":["subscribe"]}',
        b'{"event":"subscribe"}',
        b'{"event":"subscribe","arg":"books"}',
        b'{"arg":[],"data":[]}',
        b'{"arg":{"channel":"books"},"data":[]}',
        b'{"arg":{"channel":["books"],"instId":"X"},"data":[]}',
        b'{"arg":{"channel":"books","instId":7},"data":[]}',
        b'{"arg":{"channel":"books","instId":"X"},"action":"update"}',
        b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":{}}',
        b'{"arg":{"channel":"books","instId":"X"},"data":[]}',
        push("books", [], action="partial"),
        push("books", [1], action="update"),
        _book(asks="2"),
        _book(asks={"2": "1"}),
        _book(asks=["2", "1"]),
        _book(asks=[["2"]]),
        _book(asks=[["2", "1", "0", "1"], ["3"]]),
        _book(asks=[[2, "1", "0", "1"]]),
        _book(asks=[["2", 1.5, "0", "1"]]),
        _book(asks=[["2", None]]),
        _book(bids=[["1 ", "1"]]),
        _book(bids=[["1_0", "1"]]),
        _book(bids=[["1", "１"]]),
        _book(ts=1),
        _book(ts="soon"),
        _book(ts="1.5"),
        _book(seqId="2"),
        _book(seqId=2.0),
        _book(seqId=True),
        _book(prevSeqId="1"),
        _book(checksum="0"),
        _book(bids=None),
        _trade(side="hold"),
        _trade(side=["buy"]),
        _trade(tradeId=9),
        _trade(px=1.5),
        _trade(sz=None),
        _trade(px=" 1.5"),
        _trade(ts=1630048897897),
        push("trades", [GOOD_TRADE, {k: v for k, v in GOOD_TRADE.items() if k != "px"}]),
        push("trades", [GOOD_TRADE, "trade"]),
        # one-record pushes (parsed without a mark: every check precedes the first append)
        push("books", [{"asks": [["2", "1"]], "bids": [["x", "1"]], "ts": "1"}], action="update"),
        push("books", [{"asks": [["2", "1"]], "bids": [], "ts": "1", "checksum": 1.5}], action="snapshot"),
        push("trades", [{**GOOD_TRADE, "ts": "later"}]),
        push("trades", [{**GOOD_TRADE, "side": "short"}]),
        push("tickers", [{"bidPx": "1", "bidSz": "1", "askPx": "2", "askSz": "1", "ts": 1}]),
        push("bbo-tbt", [{"asks": [["1"]], "bids": [], "ts": "1"}]),
        push("bbo-tbt", [{"asks": ["1", "2"], "bids": [], "ts": "1"}]),
        push("bbo-tbt", [{"asks": [], "bids": [], "ts": "1", "seqId": "5"}]),
        push("bbo-tbt", [{"asks": {}, "bids": [], "ts": "1"}]),
        push("tickers", [{"bidPx": 1, "bidSz": "1", "askPx": "2", "askSz": "1", "ts": "1"}]),
        push("tickers", [{"bidPx": "1", "bidSz": "1", "askPx": "2", "ts": "1"}]),
        push("books5", [{"asks": [], "bids": [], "ts": "1", "seqId": [1]}]),
    ],
)
def test_malformed_frames_raise_parse_error_and_append_nothing(frame: bytes) -> None:
    v, out = okx(), okx().columns()
    v.parse(SEQUENCE[0], RECEIPT, out)
    v.parse(push("trades", [GOOD_TRADE]), RECEIPT, out)
    v.parse(push("tickers", [{"bidPx": "1", "bidSz": "1", "askPx": "2", "askSz": "1", "ts": "1"}]), RECEIPT, out)
    before = out.mark()
    with pytest.raises(ParseError):
        v.parse(frame, RECEIPT, out)
    assert out.mark() == before
    batches = out.flush(RECEIPT.wall_ns)
    assert batches.rejects == 0


# --- REST book (announced snapshot-less path, EXCHANGES.md 3.6) ------------------------------------

REST_BOOK = (
    b'{"code":"0","msg":"","data":[{"asks":[["41006.8","0.60038921","0","1"],["41006.9","1","0","2"]],'
    b'"bids":[["41006.3","0.30178218","0","2"]],"ts":"1629966436396","seqId":3412352}]}'
)


def test_rest_book_request_and_parse() -> None:
    v = okx()
    # the REST book bridges books without a websocket snapshot (EXCHANGES.md 3.6): 400 levels, source=0
    assert (
        v.snapshot_request("BTC-USDT")
        == v.rest_book_request("BTC-USDT")
        == SnapshotRequest("BTC-USDT", "https://www.okx.com/api/v5/market/books?instId=BTC-USDT&sz=400&source=0")
    )
    assert okx_with_bases().rest_book_request("ETH-USDT", 50).url == (
        "http://127.0.0.1:9/api/v5/market/books?instId=ETH-USDT&sz=50&source=0"
    )
    assert v.snapshot_request("ETH-USDT", 5000).url.endswith("&sz=400&source=0")  # OKX serves at most 400
    out = v.columns()
    assert v.parse_rest_book(REST_BOOK, "BTC-USDT", RECEIPT, out) == 3412352
    batches = out.flush()
    assert batches.l2_messages is not None and batches.l2 is not None
    (m,) = batches.l2_messages.to_pylist()
    assert (m["symbol"], m["seq"], m["prev_seq"], m["is_snapshot"], m["checksum"], m["bid_rows"], m["ask_rows"]) == (
        "BTC-USDT",
        3412352,
        None,
        True,
        None,
        1,
        2,
    )
    assert ints(batches.l2_messages, "exchange_ts") == [1629966436396 * MS]
    assert batches.l2.column("price_text").to_pylist() == ["41006.3", "41006.8", "41006.9"]
    assert v.parse_snapshot(REST_BOOK, "BTC-USDT", RECEIPT, v.columns()) == 3412352


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"code":"51001","msg":"Instrument ID does not exist","data":[]}',
        b'{"code":"0","msg":"","data":[]}',
        REST_BOOK.replace(b',"seqId":3412352', b""),  # the REST path cannot bridge without seqId
        REST_BOOK.replace(b'"41006.9"', b"41006.9"),
    ],
)
def test_bad_rest_books_raise_parse_error_and_append_nothing(body: bytes) -> None:
    v, out = okx(), okx().columns()
    with pytest.raises(ParseError):
        v.parse_rest_book(body, "BTC-USDT", RECEIPT, out)
    assert not out.pending()


# --- connections, subscribe messages, keepalive -------------------------------------------------------


def okx_with_bases() -> Okx:
    v = venue("okx", ws_base="ws://127.0.0.1:9/", rest_base="http://127.0.0.1:9")
    assert isinstance(v, Okx)
    return v


def test_venue_attributes() -> None:
    v = okx()
    assert (v.name, v.sync_kind, v.keep_text, v.needs_snapshot) == ("okx", "okx", True, False)
    assert (v.ws_base, v.rest_base) == ("wss://ws.okx.com:8443", "https://www.okx.com")
    assert isinstance(v.columns(), Columns) and v.columns().keep_text
    assert v.book_checksum is okx_checksum  # what xtrader.sync checks OKX books with


def test_default_and_overridden_channels() -> None:
    v = okx()
    subs = [
        Subscription("trades", "BTC-USDT"),
        Subscription("l2", "BTC-USDT"),
        Subscription("bbo", "BTC-USDT"),
        Subscription("l2", "ETH-USDT", "books5"),
        Subscription("l2", "SOL-USDT", "books50-l2-tbt"),
        Subscription("bbo", "ETH-USDT", "tickers"),
    ]
    (conn,) = v.connections(subs)
    assert conn.url == "wss://ws.okx.com:8443/ws/v5/public"
    assert conn.subscriptions == tuple(subs)
    (message,) = v.initial_messages(conn, 3)
    assert orjson.loads(message) == {
        "id": "3",
        "op": "subscribe",
        "args": [
            {"channel": "trades", "instId": "BTC-USDT"},
            {"channel": "books", "instId": "BTC-USDT"},
            {"channel": "bbo-tbt", "instId": "BTC-USDT"},
            {"channel": "books5", "instId": "ETH-USDT"},
            {"channel": "books50-l2-tbt", "instId": "SOL-USDT"},
            {"channel": "tickers", "instId": "ETH-USDT"},
        ],
    }
    assert message.startswith(b'{"id":"3","op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}')
    (unsub,) = v.unsubscribe_messages(subs[:1], 4)
    assert unsub == b'{"id":"4","op":"unsubscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}'
    assert okx_with_bases().connections(subs[:1])[0].url == "ws://127.0.0.1:9/ws/v5/public"


@pytest.mark.parametrize(
    "sub",
    [
        Subscription("trades", "BTC-USDT", "trades-all"),
        Subscription("l2", "BTC-USDT", "bbo-tbt"),
        Subscription("bbo", "BTC-USDT", "books5"),
    ],
)
def test_a_channel_that_cannot_feed_the_table_is_a_config_error(sub: Subscription) -> None:
    with pytest.raises(ConfigError, match=str(sub.channel)):
        okx().connections([sub])


def test_duplicates_are_dropped() -> None:
    v = okx()
    subs = [Subscription("l2", "BTC-USDT"), Subscription("l2", "BTC-USDT", "books"), Subscription("l2", "BTC-USDT")]
    (conn,) = v.connections(subs)
    assert conn.subscriptions == (subs[0],)
    (message,) = v.subscribe_messages(subs, 1)
    assert len(orjson.loads(message)["args"]) == 1


def test_deep_books_are_capped_per_connection_and_tbt_conflicts_are_split() -> None:
    v = okx()
    books = [Subscription("l2", f"C{i}-USDT") for i in range(60)]
    trades = [Subscription("trades", f"C{i}-USDT") for i in range(60)]
    conns = v.connections(books + trades)
    assert [sum(s.table == "l2" for s in c.subscriptions) for c in conns] == [29, 29, 2]
    assert sum(len(c.subscriptions) for c in conns) == 120
    # error 64004: books-l2-tbt and another deep book channel of one instrument never share a connection
    subs = [
        Subscription("l2", "BTC-USDT", "books-l2-tbt"),
        Subscription("l2", "BTC-USDT", "books"),
        Subscription("l2", "BTC-USDT", "books5"),
        Subscription("l2", "BTC-USDT", "books50-l2-tbt"),
    ]
    first, second = v.connections(subs)
    assert [s.channel for s in first.subscriptions] == ["books-l2-tbt", "books5"]
    assert [s.channel for s in second.subscriptions] == ["books", "books50-l2-tbt"]


def test_stream_cap_per_connection() -> None:
    v = okx()
    subs = [Subscription("trades", f"C{i}-USDT") for i in range(450)]
    assert [len(c.subscriptions) for c in v.connections(subs)] == [200, 200, 50]


def test_large_requests_split_under_64_kb_with_one_id() -> None:
    v = okx()
    subs = [Subscription("bbo", f"INSTRUMENT{i:05d}-USDT-SWAP", "tickers") for i in range(3000)]
    messages = v.subscribe_messages(subs, 11)
    assert len(messages) > 1
    assert all(len(m) <= MAX_REQUEST_BYTES for m in messages)
    decoded = [orjson.loads(m) for m in messages]
    assert {d["id"] for d in decoded} == {"11"}
    args = [a["instId"] for d in decoded for a in d["args"]]
    assert args == [s.symbol for s in subs]


def test_keepalive_is_a_text_ping_before_30_s_of_silence() -> None:
    keepalive = okx().keepalive()
    assert keepalive.ping == b"ping"
    assert keepalive.idle_s < 30 and keepalive.idle_s <= keepalive.stale_s <= 30
    assert okx().reply(Control("pong"), 1) is None
