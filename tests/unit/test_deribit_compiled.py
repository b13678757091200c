"""The compiled Deribit parser (`xtrader.venues._deribit_fast`) changes nothing but speed.

`venue("deribit").columns()` carries the C accumulator (`Columns.fast`): frames it takes (`subscription`
notifications of book, trades, quote and ticker channels) go to C buffers, frames it declines go to the Python
parser after the C rows are spilled into the Python lists. The contract, checked here against a plain
`Columns("deribit")` (the pure-Python path) on the same frames and receipts (tests/compiled_harness.py): frame by
frame the same outcome (ParseError or not, the same controls), and flushes at the same points give equal tables,
rejects and events. Frames: the real capture, generated valid and adversarial frames, byte mutations of real frames.

Without the extension every test here fails (it was not built); only `XTRADER_PURE_PYTHON=1` skips them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xtrader.venues.deribit as deribit
from tests.captures import ws_frames
from tests.compiled_frames import (
    ANY_JSON,
    DEEP,
    EDITS,
    ESCAPED_ASCII,
    INT64_EDGES,
    JSON_LITERALS,
    MS_EDGES,
    OBJECT_EDITS,
    PLAIN_JSON,
    Node,
    Obj,
    decimal_text,
    edit_object,
    key,
    mutated_sessions,
    odd_values,
    seed_frames,
    sessions,
    text,
    written,
)
from tests.compiled_harness import (
    CADENCES,
    assert_rows_and_pending_alike,
    assert_spill_moves_the_rest,
    assert_spills_mid_stream,
    assert_takes_most,
    both,
    cadence_cuts,
    compiled_only,
    connector_entry,
    l2_seqs,
    listed,
    mixed_types,
    outcome,
    receipt_at,
    table_rows,
)
from xtrader.batch import Columns
from xtrader.errors import ParseError
from xtrader.venues import venue

_compiled = compiled_only("Deribit", deribit)

#: few examples, fixed seed: the unit suite stays fast and gives the same result on every run
EXAMPLES = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def taken_by_c(frame: bytes) -> bool:
    """Whether the C parser alone takes the frame (into a fresh accumulator)."""
    out = venue("deribit").columns()
    return bool(out.fast.parse(frame, receipt_at(0)))


# -- 1. golden: the real capture ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capture() -> list[bytes]:
    return ws_frames("deribit")  # skips when the captures are absent


@CADENCES
def test_capture_flushes_the_same_at_any_cadence(capture: list[bytes], every: int | None) -> None:
    flushes = both("deribit", capture, cadence_cuts(every, len(capture)))
    # test_deribit.py's golden counts: 46 book messages, 89 tickers, no trades in this capture
    assert (table_rows(flushes, "l2_messages"), table_rows(flushes, "bbo")) == (46, 89)
    assert table_rows(flushes, "l2") > 0 and table_rows(flushes, "trades") == 0
    assert sum(b.rejects for b in flushes) == 0


def test_the_compiled_path_takes_most_capture_frames(capture: list[bytes]) -> None:
    data_frames = assert_takes_most("deribit", capture)
    assert data_frames == 135


def test_text_and_buffer_frames_parse_the_same(capture: list[bytes]) -> None:
    """str (and bytearray) frames go to the Python parser, among bytes frames the C path takes."""
    flushes = both("deribit", mixed_types(capture), range(0, len(capture), 20))
    assert table_rows(flushes, "l2") > 0 and table_rows(flushes, "bbo") > 0


# -- frames written by hand -----------------------------------------------------------------------------------------


def _n(channel: str, data: str, method: str = '"subscription"') -> bytes:
    return f'{{"jsonrpc":"2.0","method":{method},"params":{{"channel":"{channel}","data":{data}}}}}'.encode()


def _book(
    price: str = "5042.5", size: str = "30.0", seq: int = 12, prev: str | None = "11", ts: str = "1700000000000"
) -> bytes:
    prev_field = "" if prev is None else f'"prev_change_id":{prev},'
    data = (
        f'{{"type":"change","timestamp":{ts},{prev_field}"instrument_name":"BTC-PERPETUAL","change_id":{seq},'
        f'"bids":[["new",{price},{size}],["delete",5040.0,7.0]],"asks":[["change",5043,{size}]]}}'
    )
    return _n("book.BTC-PERPETUAL.100ms", data)


def _grouped(price: str = "160", size: str = "40", seq: int = 7, ts: str = "1700000000000") -> bytes:
    data = (
        f'{{"timestamp":{ts},"instrument_name":"BTC-PERPETUAL","change_id":{seq},'
        f'"bids":[[{price},{size}]],"asks":[[161,20],[1000200.0,5.5]]}}'
    )
    return _n("book.BTC-PERPETUAL.none.10.100ms", data)


def _trade_obj(price: str = "206.25", size: str = "3", trade_id: str = "ETH-1", ts: str = "1700000000000") -> str:
    return (
        f'{{"trade_seq":1,"trade_id":"{trade_id}","timestamp":{ts},"tick_direction":2,"price":{price},'
        f'"mark_price":206.23,"instrument_name":"ETH-PERPETUAL","index_price":206.19,"direction":"sell",'
        f'"amount":{size}}}'
    )


def _trades(price: str = "206.25", size: str = "3", trade_id: str = "ETH-1", ts: str = "1700000000000") -> bytes:
    data = f"[{_trade_obj()},{_trade_obj(price, size, trade_id, ts)}]"
    return _n("trades.ETH-PERPETUAL.100ms", data)


def _quote(
    bid: str = "3914.97", bid_size: str = "40", ask: str = "3915.5", ask_size: str = "0.5", ts: str = "1"
) -> bytes:
    data = (
        f'{{"timestamp":{ts},"instrument_name":"BTC-PERPETUAL","best_bid_price":{bid},"best_bid_amount":{bid_size},'
        f'"best_ask_price":{ask},"best_ask_amount":{ask_size}}}'
    )
    return _n("quote.BTC-PERPETUAL", data)


def _ticker(bid: str = "0.0015", bid_size: str = "4714.0", ts: str = "1626993723632") -> bytes:
    data = (
        f'{{"underlying_price":2003.61,"underlying_index":"ETH-30JUL21","timestamp":{ts},'
        '"stats":{"volume":869.0,"price_change":null,"low":0.0015,"high":0.0025},"state":"open",'
        '"last_price":null,"instrument_name":"ETH-30JUL21-2800-C","index_price":2006.72,'
        '"greeks":{"vega":0.20072,"theta":-1.64029,"rho":0.01188,"gamma":0.0002,"delta":0.03127},'
        f'"best_bid_price":{bid},"best_bid_amount":{bid_size},"best_ask_price":0.0025,"best_ask_amount":873.0}}'
    )
    return _n("ticker.ETH-30JUL21-2800-C.raw", data)


HEARTBEAT = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'
TEST_REQUEST = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
ACK = b'{"jsonrpc":"2.0","id":3,"result":["book.BTC-PERPETUAL.100ms","quote.BTC-PERPETUAL"]}'
ERROR_REPLY = b'{"jsonrpc":"2.0","id":4,"error":{"message":"too_many_requests","code":10028}}'
PLATFORM = _n("platform_state", '{"maintenance":true}')
INDEX = _n("deribit_price_index.btc_usd", '{"timestamp":1,"price":2,"index_name":"btc_usd"}')
#: frames the Python parser takes with rows, the C parser declines: an escape, an exponent, a `-0` int
ESCAPED_BOOK = _book().replace(b'"instrument_name":"BTC-PERPETUAL"', b'"instrument_name":"BTC\\u002dPERPETUAL"')
EXPONENT_TRADE = _trades(size="1.0002e6")
MINUS_ZERO_QUOTE = _quote(bid="-0")


#: each is taken by C (and the contract then says Python takes it with the same rows)
TAKEN = [
    _book(),
    _book(prev=None),
    _book(prev="null"),
    _book(price="9007199254740992", size="-9007199254740992"),
    _book(price="-0.0", size="0.000000000000000000001"),
    _book(seq=-(1 << 63)),
    _book(ts="-9223372036854"),
    _book(ts="9223372036854"),
    _book().replace(b'"type":"change"', b'"type":"snapshot"'),
    _n("book.X.100ms", '{"type":"snapshot","timestamp":1,"instrument_name":"X","change_id":1,"bids":[],"asks":[]}'),
    _n("book", '{"type":"snapshot","timestamp":1,"instrument_name":"X","change_id":1,"bids":[],"asks":[]}'),
    _n("book.a.b.c.d", '{"timestamp":1,"instrument_name":"X","change_id":1,"bids":[],"asks":[],"type":7}'),
    _grouped(),
    _grouped(price="0", size="-0.5"),
    # five dots: not the grouped book (its four), so incremental levels
    _n(
        "book.X.a.b.c.d",
        '{"type":"change","timestamp":1,"instrument_name":"X","change_id":1,"bids":[["new",1,2]],"asks":[]}',
    ),
    _trades(),
    _trades(trade_id=""),
    _n("trades.X.raw", "[]"),
    _quote(),
    _quote(bid="null", ask_size="0"),
    _quote(bid_size="0.0", ask_size="-0.0"),
    _quote(bid_size="null", ask="null", ask_size="null"),
    _quote(bid="0", bid_size="1"),
    _ticker(),
    _ticker(bid="0.0", bid_size="0.0"),
    # keys in any order at every level; whitespace anywhere
    b'{"params":{"data":{"best_ask_amount":1,"best_ask_price":2,"best_bid_amount":3,"best_bid_price":4,'
    b'"instrument_name":"X","timestamp":5},"channel":"quote.X"},"method":"subscription","jsonrpc":"2.0"}',
    b' \n{ "params" : { "channel" : "quote.X" , "data" : { "timestamp" : 5 , "instrument_name" : "X" ,'
    b' "best_bid_price" : null , "best_bid_amount" : 0 , "best_ask_price" : 1.5 , "best_ask_amount" : 2 } } ,'
    b' "method" : "subscription" }\r\n\t',
    # exponents in fields the handler does not use are skipped (Deribit writes small greeks so)
    _ticker().replace(b'"volume":869.0', b'"volume":8.69e2'),
    _ticker().replace(b'"vega":0.20072', b'"vega":2.0072E-1').replace(b'"rho":0.01188', b'"rho":-1.188e+02'),
]

#: each is declined by C: the Python parser decides (raises, answers with a control, or takes it its way)
DECLINED = [
    ESCAPED_BOOK,
    EXPONENT_TRADE,
    MINUS_ZERO_QUOTE,
    HEARTBEAT,
    TEST_REQUEST,
    ACK,
    ERROR_REPLY,
    PLATFORM,
    INDEX,
    _n("book.X.100ms", "{}"),
    _n("announcements", "{}"),
    _book(price="9007199254740993"),
    _book(size="-9007199254740993"),
    _book(price="18446744073709551616"),
    _book(price="-0"),
    _book(price='"1.5"'),
    _book(price="true"),
    _book(price="null"),
    _book(prev='"11"'),
    _book(prev="true"),
    _book(prev="11.0"),
    _book(prev="9223372036854775808"),
    _book(seq=1 << 63),
    _book(ts="9223372036855"),
    _book(ts="1.5"),
    _book().replace(b'"type":"change"', b'"type":"update"'),
    _book().replace(b'"type":"change",', b""),
    _book().replace(b'["new",5042.5,30.0]', b'["add",5042.5,30.0]'),
    _book().replace(b'["new",5042.5,30.0]', b"[5042.5,30.0]"),
    _book().replace(b'"change_id":12', b'"change_id":12,"change_id":13'),
    _book().replace(b'"timestamp"', b'"timestamp":1,"timestamp"'),
    _grouped().replace(b"[[160,40]]", b'[["new",160,40]]'),
    _grouped().replace(b".none.10.100ms", b".none.10.100ms.x"),
    _grouped().replace(b".none.10.100ms", b".100ms"),
    _trades(trade_id="7").replace(b'"trade_id":"7"', b'"trade_id":7'),
    _trades().replace(b'"direction":"sell"', b'"direction":"short"', 1),
    _trades().replace(b'"amount":3', b'"amount":3,"amount":4'),
    _n("trades.X.raw", "{}"),
    _n("trades.X.raw", "[3]"),
    _quote(bid='"1"'),
    _quote(ts="null"),
    _quote().replace(b'"best_ask_amount":0.5', b""),
    _quote().replace(b"{", b'{"method":1,', 1),  # a duplicate method (orjson keeps the last)
    _quote().replace(b'"method":"subscription"', b'"method":"heartbeat"'),
    _quote().replace(b'"method":"subscription"', b'"method":"Subscription"'),
    _quote().replace(b'"channel":"quote.', b'"channel":"quotes.'),
    _book().replace(b'"channel":"book.', b'"channel":"bookX.'),
    _n("quote.X", "{}", method='"heartbeat"'),
    _n("quote.X", "{}", method="null"),
    _ticker(bid="1.5e-3"),  # an exponent in a field the handler converts: Python does
    _ticker(bid_size="4714E0"),
    _ticker().replace(b'"state":"open"', b'"state":"\\u006fpen"'),
    _ticker() + b"x",
    _ticker()[:-1],
]


@pytest.mark.parametrize("frame", TAKEN, ids=range(len(TAKEN)))
def test_frames_the_c_parser_takes(frame: bytes) -> None:
    assert taken_by_c(frame), frame
    both("deribit", [frame, _book(), frame])


@pytest.mark.parametrize("frame", DECLINED, ids=range(len(DECLINED)))
def test_frames_the_c_parser_declines(frame: bytes) -> None:
    assert not taken_by_c(frame), frame
    both("deribit", [frame, _book(), frame, _quote(), frame])


def test_python_parser_quirks_the_c_parser_mirrors() -> None:
    """Values as orjson + Arrow give them: a delete level's size is 0 whatever its amount, `-0.0` keeps its sign,
    an int price is exact up to 2**53, a null price or a zero / null amount empties a top-of-book side."""
    v = venue("deribit")
    out = v.columns()
    frames = [
        _book(price="-0.0", size="9007199254740992"),
        _quote(bid="null", bid_size="5", ask="2", ask_size="-0.0"),
        _quote(bid="3", bid_size="null", ask="0", ask_size="1"),
    ]
    for index, frame in enumerate(frames):
        assert v.parse(frame, receipt_at(index), out) == ()
    assert not out.l2.symbol and not out.bbo.symbol  # all in C
    batches = out.flush()
    assert batches.l2 is not None and batches.bbo is not None
    prices = batches.l2.column("price").to_numpy()
    assert prices.tolist() == [0.0, 5040.0, 5043.0] and np.signbit(prices).tolist() == [True, False, False]
    assert batches.l2.column("size").to_pylist() == [9007199254740992.0, 0.0, 9007199254740992.0]
    bbo = batches.bbo.to_pydict()
    assert (bbo["bid_price"], bbo["bid_size"]) == ([None, None], [None, None])
    assert (bbo["ask_price"], bbo["ask_size"]) == ([None, 0.0], [None, 1.0])
    assert bbo["seq"] == [None, None]
    messages = batches.l2_messages
    assert messages is not None
    assert messages.column("first_seq").null_count == 1 and messages.column("checksum").null_count == 1


# -- 2. generated frames, valid and adversarial ------------------------------------------------------------------


BOUNDARY_INTS = [0, -1, 1, (1 << 53), (1 << 53) + 1, -(1 << 53), -(1 << 53) - 1, *INT64_EDGES, -(10**30), *MS_EDGES]
#: JSON number tokens, valid or not, for number fields (orjson: ints, floats beyond u64, errors)
ODD_NUMBERS = [
    "-0",
    "0",
    "-0.0",
    "0.0",
    "1.0",
    "1e5",
    "1E5",
    "1e+5",
    "1.5e-3",
    "-2.5E2",
    "1.5",
    "01",
    "-01",
    "00.5",
    "-00",
    "+1",
    "1.",
    ".5",
    "-",
    "--1",
    "1e",
    "1e400",
    "-1e400",
    "1e-400",
    "0x10",
    "NaN",
    "Infinity",
    "-Infinity",
    "1" * 24,
    "1" * 25,
    "1" * 40,
    "-" + "9" * 25,
    "12345678901234567890",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "0.1000000000000000055511151231257827",
    "0.30000000000000004",
    "9007199254740993.5",
    "123456789012345.6",
    "1234567890123456789.5",
    "0." + "0" * 21 + "1",
    "0." + "0" * 22 + "1",
    "1" + "0" * 22 + ".0",
    "2.4703282292062327",
    "1.7976931348623157e308",
    "4.9e-324",
]
#: raw JSON string tokens: escapes, non-ASCII, invalid escapes and control characters
ODD_STRINGS = [
    *ESCAPED_ASCII,
    '"BTC\\u002dPERPETUAL"',
    '"\\u0031.5"',
    '"ü"',
    '"₿TC"',
    '"\\ud800"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"a\\nb"',
    '"\\x41"',
    '"\x01"',
    '"\x7f"',
    '"unterminated',
    '"\\u12"',
    '"buy "',
    '"Sell"',
    '"new "',
    '"delete"',
    '"snapshot"',
    '"change"',
    '"1.5"',
    '""',
]
ODD_TOKENS = [
    *JSON_LITERALS,
    "[1,2]",
    '["new",1,2]',
    '[["new",1,2]]',
    "[[1,2]]",
    '{"a":1}',
    DEEP,
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "nul",
    "tru",
    "True",
    "None",
    "'1'",
    "",
]

ODD_VALUE = odd_values(
    ODD_TOKENS,
    ODD_NUMBERS,
    BOUNDARY_INTS,
    st.sampled_from(ODD_STRINGS),
    st.integers(-(1 << 70), 1 << 70).map(str),
)


def _signed_decimal(negative: bool, units: int, places: int) -> str:
    plain = decimal_text(units, places)
    return "-" + plain if negative and plain.strip("0.") else plain


#: JSON numbers as Deribit writes them: ints, and decimals with a fraction (no exponent)
_number = st.one_of(
    st.builds(_signed_decimal, st.booleans(), st.integers(0, 10**12), st.integers(1, 10)),
    st.integers(-(10**9), 10**9).map(str),
    st.floats(-1e9, 1e9).map(lambda x: f"{x:.{abs(hash(x)) % 12 + 1}f}"),
)
_time = st.integers(1_500_000_000_000, 1_900_000_000_000).map(str)
_seq = st.integers(0, 1 << 40).map(str)
_symbol = st.sampled_from(["BTC-PERPETUAL", "ETH-30JUL21-2800-C", "BTC-24SEP21-8000-P", "SOL_USDC", "X"])
#: in an odd frame, an odd value 1 time in 4
ODD_NUMBER = st.one_of(*[_number] * 3, st.sampled_from([*ODD_NUMBERS, "null", "true", '"1.5"']))
ODD_TIME = st.one_of(*[_time] * 3, st.sampled_from(BOUNDARY_INTS).map(str), st.sampled_from(ODD_NUMBERS))
ODD_SEQ = st.one_of(*[_seq] * 3, st.sampled_from(BOUNDARY_INTS).map(str), st.sampled_from([*ODD_NUMBERS, "null"]))
ODD_SYMBOL = st.one_of(*[_symbol] * 3, st.sampled_from(["", "btc", "ÄBC", "₿", "A B", 'A"B', "A\\B", "x" * 70]))
CHANNEL_PREFIXES = ["book", "trades", "ticker", "quote", "platform_state", "deribit_price_index", "Book", "book ", ""]


@st.composite
def _levels(draw: Any, number: Any, actions: bool) -> list[Node]:
    out: list[Node] = []
    for _ in range(draw(st.integers(0, 3))):
        level = [draw(number), draw(number)]
        if actions:
            level.insert(0, text(draw(st.sampled_from(["new", "change", "delete"]))))
        out.append(level)
    return out


@st.composite
def _top_of_book_fields(draw: Any, number: Any) -> list[tuple[str, Node]]:
    fields: list[tuple[str, Node]] = []
    for side in ("bid", "ask"):
        empty = draw(st.sampled_from(["no", "no", "no", "null price", "zero amount", "null amount"]))
        price = "null" if empty == "null price" else draw(number)
        amount = {"zero amount": draw(st.sampled_from(["0", "0.0", "-0.0"])), "null amount": "null"}.get(empty)
        fields += [(f"best_{side}_price", price), (f"best_{side}_amount", amount or draw(number))]
    return fields


@st.composite
def frame(draw: Any) -> bytes:
    """One Deribit frame: a valid hot notification (or another frame), then (maybe) made adversarial."""
    # half the frames are clean (valid, printable ASCII: what the compiled path takes); the others get odd
    # values and edits. A boolean shrinks to False: a failing example shrinks towards a clean frame
    odd = draw(st.booleans())
    number, times, seqs, symbols = (
        (ODD_NUMBER, ODD_TIME, ODD_SEQ, ODD_SYMBOL) if odd else (_number, _time, _seq, _symbol)
    )
    kind = draw(st.sampled_from(["book", "grouped", "trades", "quote", "ticker", "other"]))
    symbol = draw(symbols)
    data: Node
    if kind in ("book", "grouped"):
        fields: list[tuple[str, Node]] = [
            ("timestamp", draw(times)),
            ("instrument_name", text(symbol)),
            ("change_id", draw(seqs)),
        ]
        if kind == "book" or draw(st.booleans()):  # the grouped book has no type, and ignores one
            fields.append(("type", text(draw(st.sampled_from(["snapshot", "change"])))))
            if draw(st.booleans()):
                fields.append(("prev_change_id", draw(st.sampled_from(["null"]) | seqs)))
        fields += [(side, draw(_levels(number, kind == "book"))) for side in ("bids", "asks")]
        channel = f"book.{symbol}.100ms" if kind == "book" else f"book.{symbol}.none.10.100ms"
        data = fields
    elif kind == "trades":
        trades: list[Node] = []
        for _ in range(draw(st.integers(0, 3))):
            trade = [
                ("trade_seq", draw(seqs)),
                ("trade_id", text(f"{symbol}-{draw(st.integers(0, 10**9))}")),
                ("timestamp", draw(times)),
                ("tick_direction", "2"),
                ("price", draw(number)),
                ("mark_price", draw(number)),
                ("instrument_name", text(symbol)),
                ("index_price", draw(number)),
                ("direction", text(draw(st.sampled_from(["buy", "sell"])))),
                ("amount", draw(number)),
            ]
            trades.append(Obj((key(k), v) for k, v in draw(st.permutations(trade))))
        channel = f"trades.{symbol}.100ms"
        data = trades
    elif kind in ("quote", "ticker"):
        fields = [("timestamp", draw(times)), ("instrument_name", text(symbol))]
        fields += draw(_top_of_book_fields(number))
        if kind == "ticker":
            stats = Obj((key(k), draw(st.sampled_from(["null"]) | number)) for k in ("volume", "low", "high"))
            greeks = Obj((key(k), draw(number)) for k in ("vega", "theta", "delta"))
            fields += [("stats", stats), ("greeks", greeks), ("state", text("open")), ("last_price", draw(number))]
            fields += [("mark_iv", draw(number)), ("underlying_index", text("index_price"))]
        channel = f"{kind}.{symbol}" + (".100ms" if kind == "ticker" else "")
        data = fields
    else:
        channel, data = draw(
            st.sampled_from(
                [
                    ("platform_state", [("maintenance", "true")]),
                    ("platform_state.public_methods_state", [("allow_unauthenticated_public_requests", "false")]),
                    ("deribit_price_index.btc_usd", [("timestamp", "1"), ("price", "2")]),
                    ("announcements", [("action", '"new"')]),
                ]
            )
        )
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))) if isinstance(data, list) and kind != "trades" else ():
        name = draw(st.sampled_from(["mark_price", "state", "stats", "x", "channel", "data", "params", "id"]))
        if odd:
            name = draw(st.just(name) | st.text(max_size=4))
        data.insert(draw(st.integers(0, len(data))), (name, draw(ANY_JSON if odd else PLAIN_JSON)))
    if kind != "trades":
        data = Obj((key(k), v) for k, v in draw(st.permutations(data)))
    params = Obj(draw(st.permutations([(key("channel"), text(channel)), (key("data"), data)])))
    top = Obj(
        draw(
            st.permutations(
                [(key("jsonrpc"), text("2.0")), (key("method"), text("subscription")), (key("params"), params)]
            )
        )
    )
    if kind == "other" and draw(st.booleans()):
        top = draw(
            st.sampled_from(
                [
                    Obj(
                        [
                            (key("jsonrpc"), '"2.0"'),
                            (key("method"), '"heartbeat"'),
                            (key("params"), Obj([(key("type"), '"heartbeat"')])),
                        ]
                    ),
                    Obj([(key("jsonrpc"), '"2.0"'), (key("id"), "3"), (key("result"), '["quote.X"]')]),
                    Obj(
                        [
                            (key("jsonrpc"), '"2.0"'),
                            (key("id"), "4"),
                            (key("error"), Obj([(key("code"), "10028"), (key("message"), '"x"')])),
                        ]
                    ),
                ]
            )
        )

    # adversarial edits: sampled_from shrinks to its first entry, no edit
    for _ in range(draw(EDITS) if odd else 0):
        edit = draw(
            st.sampled_from(
                ["replace", "delete", "duplicate", "level", "channel", "escape key", "method", "wrapper", "nest"]
            )
        )
        objects = [o for o in (data, params, top) if isinstance(o, Obj)]
        if isinstance(data, list) and not isinstance(data, Obj):  # trades: each trade object too
            objects += [t for t in data if isinstance(t, Obj)]
        target = draw(st.sampled_from(objects))
        if edit in OBJECT_EDITS:
            edit_object(draw, edit, target, ODD_VALUE)
        elif edit == "level" and isinstance(data, Obj):
            sides = [i for i, (k, v) in enumerate(data) if k in ('"bids"', '"asks"') and isinstance(v, list)]
            if sides:
                at = draw(st.sampled_from(sides))
                levels = list(data[at][1])
                shape = draw(st.sampled_from(["two", "three", "four", "odd entry", "not a list", "empty", "nested"]))
                if shape == "two":
                    levels.append([draw(number), draw(number)])
                elif shape == "three":
                    levels.append([text(draw(st.sampled_from(["new", "delete", "add"]))), draw(number), draw(number)])
                elif shape == "four":
                    levels.append([text("new"), draw(number), draw(number), draw(ODD_VALUE)])
                elif shape == "odd entry":
                    levels.append(draw(st.permutations([text("change"), draw(number), draw(ODD_VALUE)])))
                elif shape == "not a list":
                    levels.append(draw(ODD_VALUE))
                elif shape == "empty":
                    levels.append([])
                else:
                    levels.append([levels[:1], draw(number)])
                data[at] = (data[at][0], levels)
        elif edit == "channel":
            prefix = draw(st.sampled_from(CHANNEL_PREFIXES))
            rest = draw(st.sampled_from(["", ".X", ".X.100ms", ".X.none.10.100ms", ".X.a.b.c.d", "."]))
            params[:] = [(k, text(prefix + rest)) if k == '"channel"' else (k, v) for k, v in params]
        elif edit == "method":
            value = draw(st.sampled_from(['"heartbeat"', '"Subscription"', '"subscription "', "null"]) | ODD_VALUE)
            top[:] = [(k, value) if k == '"method"' else (k, v) for k, v in top]
        elif edit == "wrapper":
            top.insert(draw(st.integers(0, len(top))), (key(draw(st.text(max_size=7))), draw(ANY_JSON)))
        elif edit == "nest":
            top = Obj([(key("method"), '"subscription"'), (key("params"), Obj([(key("params"), params)]))])

    return written(draw, top, odd)


def session(max_frames: int = 14) -> st.SearchStrategy[tuple[list[bytes], list[int]]]:
    return sessions(frame(), max_frames)


@EXAMPLES
@given(session())
def test_generated_frames_parse_and_flush_the_same(case: tuple[list[bytes], list[int]]) -> None:
    both("deribit", *case)


@settings(EXAMPLES, max_examples=30)
@given(session(max_frames=40))
def test_long_generated_sequences_flush_the_same(case: tuple[list[bytes], list[int]]) -> None:
    both("deribit", case[0])


def test_generated_frames_are_mostly_taken_by_the_compiled_path() -> None:
    """The generator makes frames the C path takes (else the tests above compare Python with Python)."""
    v = venue("deribit")
    fast, pure = v.columns(), Columns(v.name)
    taken = total = 0

    @settings(EXAMPLES, max_examples=80)
    @given(frame())
    def collect(raw: bytes) -> None:
        nonlocal taken, total
        before_fast, before_pure = listed(fast), listed(pure)
        fast_out, pure_out = outcome(v, raw, receipt_at(0), fast), outcome(v, raw, receipt_at(0), pure)
        assert fast_out == pure_out, raw
        if listed(pure) > before_pure:
            total += 1
            taken += listed(fast) == before_fast

    collect()
    assert total > 10 and taken > total // 2, f"the compiled path took {taken} of {total} generated data frames"


@pytest.mark.parametrize("odd", [*ODD_NUMBERS, "null", "true", '"1.5"', "[]"])
@pytest.mark.parametrize("count", [1, 70])
def test_odd_numbers_convert_and_reject_the_same(odd: str, count: int) -> None:
    """One odd number among `count` frames, in every number field of every hot frame."""
    makers = [
        lambda x: _book(price=x),
        lambda x: _book(size=x),
        lambda x: _grouped(price=x),
        lambda x: _grouped(size=x),
        lambda x: _trades(price=x),
        lambda x: _trades(size=x),
        lambda x: _quote(bid=x),
        lambda x: _quote(ask_size=x),
        lambda x: _ticker(bid=x),
        lambda x: _ticker(bid_size=x),
    ]
    for make in makers:
        frames = [make("1.5") for _ in range(count)]
        frames[count // 2] = make(odd)
        both("deribit", frames)


@pytest.mark.parametrize("value", [str(v) for v in BOUNDARY_INTS] + ["-0", "1.0", "null"])
def test_boundary_ints_in_sequences_and_times_flush_the_same(value: str) -> None:
    """Sequences beyond int64 and times whose ns overflow int64: kept, rejected at the flush or raised, as the pure
    path does."""
    frames = [
        _book(seq=0).replace(b'"change_id":0', f'"change_id":{value}'.encode()),
        _book(prev=value),
        _book(ts=value),
        _grouped(ts=value),
        _trades(ts=value),
        _quote(ts=value),
        _ticker(ts=value),
    ]
    for raw in frames:
        both("deribit", [raw, _book()])
        both("deribit", [_quote(), raw, _quote(), raw])


#: frames a hand-written scanner may get wrong: each is parsed after frames the compiled path buffered
HOSTILE = [
    b"",
    b" ",
    b"{}",
    b"[]",
    b"null",
    b'"subscription"',
    b'{"method":"subscription"}',
    b'{"method":"subscription","params":null}',
    b'{"method":"subscription","params":[]}',
    b'{"method":"subscription","params":{}}',
    b'{"method":"subscription","params":{"channel":"quote.X"}}',
    b'{"method":"subscription","params":{"data":{}}}',
    b'{"method":"subscription","params":{"channel":null,"data":{}}}',
    b'{"method":"subscription","params":{"channel":"quote.X","data":null}}',
    b'{"method":"subscription","params":{"channel":"quote.X","data":[]}}',
    b'{"method":"subscription","params":{"channel":"trades.X","data":{}}}',
    b'{"method":"subscription","params":{"channel":"trades.X","data":[{}]}}',
    b'{"method":"subscription","params":{"channel":"trades.X","data":[[]]}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":[]}}',
    b'{"params":{"channel":"quote.X","data":{"timestamp":1,"instrument_name":"X","best_bid_price":1,'
    b'"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1}}}',
    b'{"method":"subscription","params":{"channel":"quote.X","data":{"timestamp":1,"instrument_name":"X",'
    b'"best_bid_price":1,"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1}},"params":{}}',
    b'{"method":"subscription","params":{"channel":"quote.X","channel":"book.X","data":{"timestamp":1,'
    b'"instrument_name":"X","best_bid_price":1,"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1}}}',
    b'{"method":"subscription","params":{"channel":"quote.X","data":{"timestamp":1,"instrument_name":"X",'
    b'"best_bid_price":1,"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1},"data":{}}}',
    b'{"method":"subscription","params":{"channel":"quote.X","data":{"timestamp":1,"instrument_name":"X",'
    b'"best_bid_price":1,"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1}}',
    b'{"method":"subscription","params":{"channel":"quote.X","data":{"timestamp":1,"instrument_name":"X",'
    b'"best_bid_price":1,"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1,}}}',
    b'{"method":"subscription","params":{"channel":"quote.X","data":{"timestamp":1,"instrument_name":"X",'
    b'"best_bid_price":1,"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1}}},',
    b'{"method":"subscription","params":{"channel":"quote.X","data":{"timestamp":1,"instrument_name":"X",'
    b'"best_bid_price":1,"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1}}}\x00',
    b'\xef\xbb\xbf{"method":"subscription","params":{"channel":"quote.X","data":{"timestamp":1,'
    b'"instrument_name":"X","best_bid_price":1,"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1}}}',
    b'{"method":"subscription","params":{"channel":"quote.X","data":{"timestamp":1,"instrument_name":"X",'
    b'"best_bid_price":1,"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1}}}{}',
    b'{method:"subscription","params":{"channel":"quote.X","data":{}}}',
    b'{"method":"subscription","params":{"channel":"quote.X","data":{"timestamp":1,"instrument_name":"X",'
    b'"best_bid_price":1,"best_bid_amount":1,"best_ask_price":1,"best_ask_amount":1,"x":' + DEEP.encode() + b"}}}",
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":[["new",1,2]"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":[["new",1,2],],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":[["new",1,2,]],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":[["new" 1,2]],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":[[ "new" , 1 , 2 ]],"asks":[ ]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":["new",1,2],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":["ne1"],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":[{"new":1,"a":2,"b":3}],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.1.2.3","data":{"timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":["12"],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.1.2.3","data":{"timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":[[1,2],[3]],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"X","change_id":2,"bids":[["new",1,2],["new",1]],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"X\x7f","change_id":2,"bids":[],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"\xc3\x84","change_id":2,"bids":[],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"change","timestamp":1,'
    b'"instrument_name":"\xc3","change_id":2,"bids":[],"asks":[]}}}',
    b'{"method":"subscription","params":{"channel":"trades.X","data":[{"trade_id":"1","timestamp":1,'
    b'"price":1,"amount":1,"direction":"buy","instrument_name":"X"},3]}}',
    b'{"method":"subscription","params":{"channel":"trades.X","data":[{"trade_id":"1","timestamp":1,'
    b'"price":1,"amount":1,"direction":"buy","instrument_name":"X"}{}]}}',
    HEARTBEAT,
    ACK,
    ERROR_REPLY,
    PLATFORM,
    INDEX,
]


def test_hostile_frames_between_buffered_ones() -> None:
    frames = []
    for index, hostile in enumerate(HOSTILE):
        frames += [_book(seq=index), hostile, _trades(trade_id=str(index)), _quote(), hostile, _grouped(), _ticker()]
    both("deribit", frames, range(0, len(frames), 9))
    for hostile in HOSTILE:  # and each alone after one buffered frame
        both("deribit", [_book(), hostile])


# -- 3. byte mutations of real frames --------------------------------------------------------------------------------


def _seeds() -> list[bytes]:
    """A few real frames of each kind from the capture, and the written frames of the kinds it lacks."""
    picked = seed_frames(["deribit"], (b'"ticker.', b'"snapshot"', b'"change"', b'"result"'))
    return [*picked, _trades(), _quote(bid="null"), _grouped()] if picked else []


SEEDS = _seeds()


def mutated_session() -> st.SearchStrategy[tuple[list[bytes], list[int]]]:
    return mutated_sessions(SEEDS)


@EXAMPLES
@given(mutated_session())
def test_mutated_capture_frames_parse_the_same(case: tuple[list[bytes], list[int]]) -> None:
    if not SEEDS:
        pytest.skip("real exchange captures not found (set XTRADER_CAPTURES)")
    both("deribit", *case)


# -- 4. order across the two paths ---------------------------------------------------------------------------------


def _interleaved() -> list[bytes]:
    """C frames with, between them, frames the Python parser takes with rows (declined by C) or answers."""
    declined = [ESCAPED_BOOK, ACK, EXPONENT_TRADE, HEARTBEAT, MINUS_ZERO_QUOTE, PLATFORM]
    frames = []
    for i in range(6):
        frames += [_book(seq=40 + 2 * i, price=str(100 + i)), _trades(trade_id=f"T-{i}"), _quote(bid=f"{i}.5")]
        frames.append(declined[i])
        frames.append(_book(seq=41 + 2 * i, price=str(300 + i)))
    return frames


@pytest.mark.parametrize("cuts", [(), (3, 9, 10), tuple(range(0, 30, 4))], ids=["one", "some", "every 4"])
def test_rows_keep_their_order_across_both_paths(cuts: tuple[int, ...]) -> None:
    frames = _interleaved()
    assert all(not taken_by_c(frames[5 * i + 3]) for i in range(6))
    flushes = both("deribit", frames, cuts)
    assert table_rows(flushes, "l2_messages") == 6 * 2 + 1  # + the escaped book
    assert table_rows(flushes, "trades") == 6 * 2 + 2 and table_rows(flushes, "bbo") == 6 + 1
    assert l2_seqs(flushes)[:4] == [40, 12, 41, 42]  # the escaped book (Python) between two compiled ones


# -- 5. l2_messages(), spill(), rows() and the connector's entry ----------------------------------------------------


def _comparable(values: list[Any], numeric: bool, l2: bool) -> list[Any]:
    """Spilled, the Python lists hold what the pure path appended: the same values, numbers as floats (the pure path
    keeps orjson's ints and floats; Arrow makes the same float64 of both), with the sign of zero."""
    if not numeric:
        return [(type(x), x) for x in values]
    return [None if x is None else (float(x), bool(np.signbit(float(x)))) for x in values]


def test_l2_messages_counts_both_paths_and_spill_moves_the_rest() -> None:
    assert_spill_moves_the_rest("deribit", _interleaved(), _comparable)


def test_spill_mid_stream_then_more_compiled_frames() -> None:
    frames = [_book(seq=s) for s in range(10, 20)] + [_trades(trade_id=str(i)) for i in range(5)] + [_ticker()] * 3
    assert_spills_mid_stream("deribit", frames, l2_messages=10)


def test_rows_and_pending_count_the_compiled_rows() -> None:
    empty = _n(
        "book.X.100ms", '{"type":"snapshot","timestamp":1,"instrument_name":"X","change_id":1,"bids":[],"asks":[]}'
    )
    frames = [_book(seq=5), _trades(), _quote(), _grouped(), empty, _n("trades.X.raw", "[]"), HEARTBEAT, _ticker()]
    assert_rows_and_pending_alike("deribit", frames)


def test_the_connectors_entry_answers_from_c_and_falls_back_to_the_python_parser() -> None:
    out, parse = connector_entry("deribit", _book(seq=6))
    assert parse(TEST_REQUEST, receipt_at(1))[0].kind == "test_request"  # declined by C: the Python parser's answer
    assert parse(PLATFORM, receipt_at(2))[0].kind == "pause"
    with pytest.raises(ParseError):
        parse(_book(price='"1.5"'), receipt_at(3))
    assert l2_seqs([out.flush()]) == [6]


def test_pure_python_columns_without_the_compiled_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """With COMPILED off (not built, or XTRADER_PURE_PYTHON=1) the venue's columns are plain and parse the same."""
    monkeypatch.setattr(deribit, "COMPILED", False)
    v = venue("deribit")
    out = v.columns()
    assert type(out) is Columns
    frames = [_book(), _quote(), _trades(), HEARTBEAT]
    for index, raw in enumerate(frames):
        v.parser(out)(raw, receipt_at(index))
    assert len(out.l2.symbol) == 1 and len(out.bbo.symbol) == 1 and len(out.trades.symbol) == 2
