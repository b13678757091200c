"""The compiled Binance parser (`xtrader.venues._binance_fast`) changes nothing but speed.

`venue("binance").columns()` carries the C accumulator (`Columns.fast`): frames it takes go to C buffers, frames
it declines go to the Python parser after the C rows are spilled into the Python lists. The contract, checked
here against a plain `Columns(v.name)` (the pure-Python path) on the same frames and receipts: frame by frame the
same outcome (ParseError or not, the same controls), and flushes at the same points give equal tables, rejects
and events. Frames: the real captures, generated valid and adversarial frames, byte mutations of real frames.

Without the extension every test here fails (it was not built); only `XTRADER_PURE_PYTHON=1` skips them.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xtrader.venues.binance as binance
from tests.captures import ws_frames
from tests.compiled_frames import (
    ANY_JSON,
    DECIMAL,
    DEEP,
    DIGIT_RUNS,
    EDITS,
    ESCAPED_ASCII,
    FLOAT_SPELLINGS,
    INT64_EDGES,
    JSON_LITERALS,
    MS_EDGES,
    OBJECT_EDITS,
    PLAIN_JSON,
    Node,
    Obj,
    edit_object,
    frames_and_cuts,
    key,
    mutated_frames,
    odd_values,
    seed_frames,
    text,
    written,
)
from tests.compiled_harness import (
    CADENCES,
    START,
    assert_rows_and_pending_alike,
    assert_same_flush,
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

_compiled = compiled_only("Binance", binance)

VENUES = ("binance", "binance_futures")
#: few examples, fixed seed: the unit suite stays fast and gives the same result on every run
EXAMPLES = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


# -- 1. golden: the real captures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def captures() -> dict[str, list[bytes]]:
    return {name: ws_frames(name) for name in VENUES}  # skips when the captures are absent


@pytest.mark.parametrize("name", VENUES)
@CADENCES
def test_captures_flush_the_same_at_any_cadence(captures: dict[str, list[bytes]], name: str, every: int | None) -> None:
    frames = captures[name]
    flushes = both(name, frames, cadence_cuts(every, len(frames)))
    assert table_rows(flushes, "l2") > 0 and table_rows(flushes, "l2_messages") > 0
    assert table_rows(flushes, "trades") > 0 and table_rows(flushes, "bbo") > 0
    assert sum(b.rejects for b in flushes) == 0
    if name == "binance":  # test_binance.py's golden counts
        assert (table_rows(flushes, "l2_messages"), table_rows(flushes, "l2")) == (177, 422)
        assert (table_rows(flushes, "trades"), table_rows(flushes, "bbo")) == (2, 84)


@pytest.mark.parametrize("name", VENUES)
def test_the_compiled_path_takes_most_capture_frames(captures: dict[str, list[bytes]], name: str) -> None:
    assert_takes_most(name, captures[name])


def test_text_and_buffer_frames_parse_the_same(captures: dict[str, list[bytes]]) -> None:
    """str (and bytearray) frames go to the Python parser, among bytes frames the C path takes."""
    flushes = both("binance_futures", mixed_types(captures["binance_futures"][:300]), range(0, 300, 50))
    assert table_rows(flushes, "l2") > 0


# -- 2. generated frames, valid and adversarial --------------------------------------------------------------------


BOUNDARY_INTS = [0, -1, 1, (1 << 53), (1 << 53) + 1, *INT64_EDGES, -(10**30), *MS_EDGES, 9_223_372_036_854_775]  # µs
#: JSON number tokens, valid or not, for int fields
ODD_NUMBERS = [
    "-0",
    "0",
    "1.0",
    "1e5",
    "1E5",
    "1e+5",
    "-0.0",
    "1.5",
    "01",
    "-01",
    "+1",
    "1.",
    ".5",
    "-",
    "1e400",
    "-1e400",
    "1e-400",
    "0x10",
    "NaN",
    "Infinity",
    "1" * 40,
    "-" + "9" * 25,
    "12345678901234567890",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
]
#: price / quantity strings the pure path treats in all sorts of ways (float(), Arrow's cast, rejects)
ODD_PRICES = [
    *FLOAT_SPELLINGS,
    "-inf",
    "Infinity",
    "nan",
    "NaN",
    "-0.0",
    "-0",
    "0",
    "0.1000000000000000055511151231257827",
    "1" * 35,
    "0." + "0" * 30 + "1",
    "1" * 30 + "." + "9" * 30,
    "1e400",
    "1e-400",
    "1_0",
    "١٢",  # Arabic-Indic digits: float() takes them, Arrow does not
    "１",  # fullwidth 1
    "0x1p3",
    "1,5",
    "--1",
    "1e",
    "e5",
    ".",
    "\t2",
    "2\n",
    # plain decimals at the edges of a fast decimal parser: exact fast path, 16+ digits, 40 characters
    "0.30000000000000004",
    "9007199254740993",
    "9007199254740993.5",
    "123456789012345.6",
    "1234567890123456789",
    "12345678901234567890.5",
    "1" + "0" * 22,
    "1" + "0" * 23,
    "0." + "0" * 21 + "1",
    "0." + "0" * 22 + "1",
    *DIGIT_RUNS,
    "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096" + "0",
    "0." + "0" * 37 + "5",
    "2.4703282292062327",
]
#: raw JSON string tokens: escapes, non-ASCII, invalid escapes and control characters
ODD_STRINGS = [
    *ESCAPED_ASCII,
    '"BTC\\u0055SDT"',
    '"\\u0031.5"',
    '"ü"',
    '"₿TC"',
    '"\\ud800"',
    '"\\udc00x"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"a\\nb"',
    '"\\x41"',
    '"\x01"',
    '"unterminated',
    '"\\u12"',
    "\"'1'\"",
]
ODD_TOKENS = [
    *JSON_LITERALS,
    '["1","2"]',
    '[["1","2"]]',
    "[1,2]",
    '{"a":1}',
    DEEP,
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
    st.sampled_from(ODD_PRICES).map(text),
    st.sampled_from(ODD_STRINGS),
    st.integers(-(1 << 70), 1 << 70).map(str),
)


_time = st.integers(1_500_000_000_000, 1_900_000_000_000)
_id = st.integers(0, 1 << 53)
_symbol = st.sampled_from(["BTCUSDT", "ETHUSDT", "NKNUSDT", "BTCUSD_200626", "LRCBTC"])
#: in an odd frame, an odd value 1 time in 4
ODD_PRICE = st.one_of(*[DECIMAL] * 3, st.sampled_from(ODD_PRICES))
ODD_TIME = st.one_of(*[_time] * 3, st.sampled_from(BOUNDARY_INTS))
ODD_ID = st.one_of(*[_id] * 3, st.sampled_from(BOUNDARY_INTS))
ODD_SYMBOL = st.one_of(*[_symbol] * 3, st.sampled_from(["", "btcusdt", "ÄBC", "₿", "A B", 'A"B', "A\\B", "x" * 70]))
OTHER_EVENTS = [
    "depthUpdate ",
    "DepthUpdate",
    "depthupdate",
    "kline",
    "",
    "aggTrade",
    "trade",
    "bookTicker",
    "depthUpdate",
    "serverShutdown",
    "24hrTicker",
    "markPriceUpdate",
]
DEPTH_STREAMS = ["@depth@100ms", "@depth", "@depth@500ms", "@depth@0ms"]
PARTIAL_STREAMS = ["@depth5@100ms", "@depth10", "@depth20@500ms", "@depth5", "@depth1"]


@st.composite
def _levels(draw: Any, price: Any) -> list[Node]:
    return [[text(draw(price)), text(draw(price))] for _ in range(draw(st.integers(0, 3)))]


@st.composite
def frame(draw: Any, venue_name: str) -> bytes:
    """One Binance frame: a valid hot frame, then (with some probability) made adversarial."""
    futures = venue_name == "binance_futures"
    # half the frames are clean (valid, printable ASCII: what the compiled path takes); the others get odd
    # values and edits. A boolean shrinks to False: a failing example shrinks towards a clean frame
    odd = draw(st.booleans())
    prices, times, ids, symbols = (ODD_PRICE, ODD_TIME, ODD_ID, ODD_SYMBOL) if odd else (DECIMAL, _time, _id, _symbol)
    kind = draw(st.sampled_from(["depth", "aggTrade", "trade", "bookTicker", "keyless"]))
    symbol = draw(symbols)
    fields: list[tuple[str, Node]]
    if kind == "depth":
        fields = [("e", text("depthUpdate")), ("E", str(draw(times)))]
        if futures:
            fields += [("T", str(draw(times))), ("pu", str(draw(ids)))]
        fields += [("s", text(symbol)), ("U", str(draw(ids))), ("u", str(draw(ids)))]
        fields += [("b", draw(_levels(prices))), ("a", draw(_levels(prices)))]
        channel = draw(st.sampled_from(DEPTH_STREAMS + PARTIAL_STREAMS if futures else DEPTH_STREAMS))
    elif kind in ("aggTrade", "trade"):
        trade_id = "a" if kind == "aggTrade" else "t"
        fields = [("e", text(kind)), ("E", str(draw(times))), ("s", text(symbol)), (trade_id, str(draw(ids)))]
        fields += [("p", text(draw(prices))), ("q", text(draw(prices))), ("T", str(draw(times)))]
        fields += [("m", draw(st.sampled_from(["true", "false"]))), ("M", "true")]
        if kind == "aggTrade":
            fields += [("f", str(draw(ids))), ("l", str(draw(ids)))]
        channel = "@" + kind
    else:
        fields = [] if kind == "keyless" else [("e", text("bookTicker")), ("E", str(draw(times)))]
        fields += [("u", str(draw(ids))), ("s", text(symbol))]
        fields += [(name, text(draw(prices))) for name in ("b", "B", "a", "A")]
        if draw(st.booleans()):
            fields.append(("T", str(draw(times))))
        channel = "@bookTicker"
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):  # unknown keys, any JSON value
        name = draw(st.sampled_from(["M", "ps", "x", "f", "l", "X", "stream", "data", "id"]))
        if odd:
            name = draw(st.just(name) | st.text(max_size=4))
        fields.insert(draw(st.integers(0, len(fields))), (name, draw(ANY_JSON if odd else PLAIN_JSON)))
    data = Obj((key(name), value) for name, value in draw(st.permutations(fields)))
    stream = text(symbol.lower() + channel)
    wrapper = Obj([(key("stream"), stream), (key("data"), data)])
    if draw(st.booleans()):
        wrapper.reverse()  # data before stream
    top: Obj = wrapper

    # adversarial edits: sampled_from shrinks to its first entry, no edit
    for _ in range(draw(EDITS) if odd else 0):
        edit = draw(
            st.sampled_from(
                [
                    "replace",
                    "delete",
                    "duplicate",
                    "level",
                    "event",
                    "escape key",
                    "raw framing",
                    "wrapper",
                    "nest",
                ]
            )
        )
        target = data if draw(st.integers(0, 4)) or not top else top
        if edit in OBJECT_EDITS:
            edit_object(draw, edit, target, ODD_VALUE)
        elif edit == "level":
            sides = [i for i, (k, v) in enumerate(data) if k in ('"b"', '"a"') and isinstance(v, list)]
            if sides:
                at = draw(st.sampled_from(sides))
                levels = list(data[at][1])
                shape = draw(st.sampled_from(["one", "three", "odd entry", "not a list", "empty", "nested"]))
                if shape == "one":
                    levels.append([text(draw(prices))])
                elif shape == "three":
                    levels.append([text(draw(prices)), text(draw(prices)), draw(ODD_VALUE)])
                elif shape == "odd entry":
                    levels.append(draw(st.permutations([text(draw(prices)), draw(ODD_VALUE)])))
                elif shape == "not a list":
                    levels.append(draw(ODD_VALUE))
                elif shape == "empty":
                    levels.append([])
                else:
                    levels.append([levels[:1], text("1")])
                data[at] = (data[at][0], levels)
        elif edit == "event":
            value = text(draw(st.sampled_from(OTHER_EVENTS)))
            events = [i for i, (k, _) in enumerate(data) if k == '"e"']
            if events:
                data[events[0]] = ('"e"', value)
            else:
                data.insert(0, ('"e"', value))
        elif edit == "raw framing":
            top = data  # no {"stream", "data"} wrapper: the /ws form
        elif edit == "wrapper" and top is wrapper:
            choice = draw(st.sampled_from(["stream", "data", "extra"]))
            if choice == "stream":
                wrapper[:] = [(k, draw(ODD_VALUE)) if k == '"stream"' else (k, v) for k, v in wrapper]
            elif choice == "data":
                wrapper[:] = [(k, draw(ODD_VALUE)) if k == '"data"' else (k, v) for k, v in wrapper]
            else:
                wrapper.insert(draw(st.integers(0, len(wrapper))), (key(draw(st.text(max_size=5))), draw(ANY_JSON)))
        elif edit == "nest":
            top = Obj([(key("stream"), stream), (key("data"), Obj([(key("data"), data)]))])

    return written(draw, top, odd)


@st.composite
def session(draw: Any, max_frames: int = 14) -> tuple[str, list[bytes], list[int]]:
    venue_name = draw(st.sampled_from(VENUES))
    return (venue_name, *frames_and_cuts(draw, frame(venue_name), max_frames))


@EXAMPLES
@given(session())
def test_generated_frames_parse_and_flush_the_same(case: tuple[str, list[bytes], list[int]]) -> None:
    both(*case)


@settings(EXAMPLES, max_examples=40)
@given(session(max_frames=40))
def test_long_generated_sequences_flush_the_same(case: tuple[str, list[bytes], list[int]]) -> None:
    """Longer batches: past 64 values the pure path converts prices with Arrow instead of float()."""
    venue_name, frames, _ = case
    both(venue_name, frames)


def test_generated_frames_are_mostly_taken_by_the_compiled_path() -> None:
    """The generator makes frames the C path takes (else the tests above compare Python with Python)."""
    v = venue("binance_futures")
    fast, pure = v.columns(), Columns(v.name)
    taken = total = 0

    @settings(EXAMPLES, max_examples=60)
    @given(frame("binance_futures"))
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


# -- edge cases the pure path treats by batch size -----------------------------------------------------------------


def _trade(price: str = "1.5", size: str = "2", trade_id: str = "5", ts: str = "1700000000000") -> bytes:
    data = f'"e":"aggTrade","E":1,"s":"BTCUSDT","a":{trade_id},"p":{text(price)},"q":{text(size)},"f":1,"l":2'
    return f'{{"stream":"btcusdt@aggTrade","data":{{{data},"T":{ts},"m":true}}}}'.encode()


def _depth(price: str = "1.5", size: str = "2", seq: int = 12, ts: str = "1700000000000") -> bytes:
    data = f'"e":"depthUpdate","E":{ts},"s":"BTCUSDT","U":{seq - 1},"u":{seq}'
    levels = f'"b":[[{text(price)},"1"]],"a":[["2",{text(size)}]]'
    return f'{{"stream":"btcusdt@depth@100ms","data":{{{data},{levels}}}}}'.encode()


def _ticker(price: str = "1.5", seq: int = 4) -> bytes:
    data = f'"u":{seq},"s":"BTCUSDT","b":{text(price)},"B":"2","a":"3","A":"4"'
    return f'{{"stream":"btcusdt@bookTicker","data":{{{data}}}}}'.encode()


@pytest.mark.parametrize("odd", ODD_PRICES)
@pytest.mark.parametrize("count", [1, 40], ids=["float()", "arrow"])
def test_odd_price_strings_convert_and_reject_the_same(odd: str, count: int) -> None:
    """One odd price among `count` frames: the pure path parses <= 64 values with float(), more with Arrow."""
    for make in (_trade, _depth, _ticker):
        frames = [make() for _ in range(count)]
        frames[count // 2] = make(odd)
        both("binance", frames)


@pytest.mark.parametrize("value", [str(v) for v in BOUNDARY_INTS] + ["-0"])
@pytest.mark.parametrize("count", [1, 70])
def test_boundary_ints_in_ids_and_times_flush_the_same(value: str, count: int) -> None:
    """ids beyond int64 and times whose ns overflow int64: kept, stringified or rejected as the pure path does."""
    for frames in (
        [_trade(trade_id=value)] + [_trade()] * (count - 1),
        [_trade(ts=value)] + [_trade()] * (count - 1),
        [_depth(ts=value)] + [_depth()] * (count - 1),
    ):
        both("binance", frames)
        both("binance_futures", frames)


#: frames a hand-written scanner may get wrong: each is parsed after frames the compiled path buffered
HOSTILE = [
    b"",
    b" ",
    b"{}",
    b"[]",
    b"null",
    b'"stream"',
    b'{"stream":null,"data":{}}',
    b'{"stream":"btcusdt@depth","data":null}',
    b'{"stream":"btcusdt@depth","data":[]}',
    b'{"stream":"btcusdt@depth","data":{}}',
    b'{"stream":"btcusdt@depth"}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","2"]],"a":[]}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","2"]],"a":[],}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","2"],],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","2"]],"a":[]}},',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","2"]],"a":[]}}\x00',
    b'\xef\xbb\xbf{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","2"]],"a":[]}}{}',
    b'{"stream":"x@depth","data":{e:"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","2"]"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[[ "1" , "2" ]],"a":[ ]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","2"]],"a":[["3"]]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","2","3"]],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[[1,"2"]],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[[]],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":["1","2"],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":null,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"T":null,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":"1","T":2,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","T":2,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"pu":null,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":-0,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":1.0,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":1e3,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":18446744073709551615,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":9223372036854775807,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":-9223372036854775808,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"u":3,"b":[],"a":[]}}',
    b'{"stream":"x@depth","stream":"y@depth5","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]},"data":{}}',
    b'{"stream":"x@depth5","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","2"]],"a":[]}}',
    b'{"stream":"x@depth@depth5","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[],"x":'
    + DEEP.encode()
    + b"}}",
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[],"x":[[[[[[[[[[[[[[[[[[[['
    b"[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X\\u0041","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"\\u0065":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"\xc3\x84","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"\xc3","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"\x7f","U":1,"u":2,"b":[],"a":[]}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","T":null}}',
    b'{"stream":"btcusdt@bookTicker","data":{"e":null,"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"X","b":"1","B":"2","a":"3"}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"lastUpdateId":5,"s":"X","b":"1","B":"2","a":"3","A":"4"}}',
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"X","a":1,"p":"1","q":"2","T":1,"m":null}}',
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"X","a":1,"p":"1","q":"2","T":1,"m":1}}',
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"X","t":1,"p":"1","q":"2","T":1,"m":true}}',
    b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"X","t":-1,"p":"-1","q":"-0","T":-1,"m":false}}',
    b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"","t":0,"p":"0","q":"0","T":0,"m":true}}',
    b'{"stream":"","data":{"e":"trade","s":"X","t":0,"p":"0","q":"0","T":0,"m":true}}',
    b'{"stream":"x","data":{"e":"serverShutdown","E":1}}',
    b'{"stream":"x","data":{"e":"kline","E":1}}',
    b'{"result":null,"id":1}',
    b'{"error":{"code":2,"msg":"Invalid request"},"id":4}',
]


@pytest.mark.parametrize("name", VENUES)
def test_hostile_frames_between_buffered_ones(name: str) -> None:
    frames = []
    for index, hostile in enumerate(HOSTILE):
        frames += [_depth(seq=index), hostile, _trade(trade_id=str(index)), _ticker(seq=index), hostile]
    both(name, frames, range(0, len(frames), 9))
    for hostile in HOSTILE:  # and each alone after one buffered frame
        both(name, [_depth(), hostile])


# -- 3. byte mutations of real frames --------------------------------------------------------------------------------


SEEDS = seed_frames(VENUES, (b"@depth@100ms", b"@bookTicker", b"@aggTrade", b"@kline"))


@st.composite
def mutated_session(draw: Any) -> tuple[str, list[bytes], list[int]]:
    venue_name = draw(st.sampled_from(VENUES))
    return (venue_name, *mutated_frames(draw, SEEDS))


@EXAMPLES
@given(mutated_session())
def test_mutated_capture_frames_parse_the_same(case: tuple[str, list[bytes], list[int]]) -> None:
    if not SEEDS:
        pytest.skip("real exchange captures not found (set XTRADER_CAPTURES)")
    both(*case)


# -- 4. order across the two paths ---------------------------------------------------------------------------------

RAW_DEPTH = b'{"e":"depthUpdate","E":1700000000500,"s":"BTCUSDT","U":20,"u":21,"b":[["9","1"]],"a":[]}'
ACK = b'{"result":null,"id":1}'
SPOT_PARTIAL = (
    b'{"stream":"btcusdt@depth5","data":{"lastUpdateId":30,"bids":[["8","1"],["7","2"]],"asks":[["10","3"]]}}'
)
KLINE = b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":1}}}'
RAW_TRADE = b'{"e":"trade","E":1,"s":"ETHUSDT","t":99,"p":"3","q":"4","T":1700000000001,"m":false}'
ERROR_REPLY = b'{"error":{"code":2,"msg":"Invalid request"},"id":4}'


def _interleaved() -> list[bytes]:
    frames = []
    for i in range(6):
        frames += [_depth(str(100 + i), seq=40 + 2 * i), _trade(str(200 + i), trade_id=str(i)), _ticker(str(i), 50 + i)]
        frames.append([RAW_DEPTH, ACK, SPOT_PARTIAL, KLINE, RAW_TRADE, ERROR_REPLY][i])
        frames.append(_depth(str(300 + i), seq=41 + 2 * i))
    return frames


@pytest.mark.parametrize("cuts", [(), (3, 9, 10), tuple(range(0, 40, 4))], ids=["one", "some", "every 4"])
def test_rows_keep_their_order_across_both_paths(cuts: tuple[int, ...]) -> None:
    frames = _interleaved()
    flushes = both("binance", frames, cuts)
    assert table_rows(flushes, "l2_messages") == 6 * 2 + 2  # + the raw depthUpdate and the spot partial
    assert table_rows(flushes, "trades") == 6 + 1 and table_rows(flushes, "bbo") == 6
    assert l2_seqs(flushes)[:4] == [40, 21, 41, 42]  # the raw depthUpdate between two compiled ones


# -- 5. l2_messages() and spill() ------------------------------------------------------------------------------------


def _comparable(values: list[Any], numeric: bool, l2: bool) -> list[Any]:
    """Spilled, the Python lists hold what the pure path appended: the same values of the same types, decimals as
    text that parses to the same float (the C path keeps floats, not the venue's text)."""
    return [(type(x), float(x) if numeric else x) for x in values]


def test_l2_messages_counts_both_paths_and_spill_moves_the_rest() -> None:
    assert_spill_moves_the_rest("binance", _interleaved(), _comparable)


def test_spill_mid_stream_then_more_compiled_frames() -> None:
    frames = [_depth(seq=s) for s in range(10, 20)] + [_trade(trade_id=str(i)) for i in range(5)]
    assert_spills_mid_stream("binance_futures", frames, l2_messages=10)


def test_rows_and_pending_count_the_compiled_rows() -> None:
    empty = b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}}'
    assert_rows_and_pending_alike("binance_futures", [_depth(seq=5), _trade(), _ticker(), _depth(seq=6), empty])


# -- other ways rows reach the same Columns --------------------------------------------------------------------------


def test_microsecond_times_scale_the_same(captures: dict[str, list[bytes]]) -> None:
    """Spot with `timeUnit=MICROSECOND`: the compiled path scales wire times by 1_000, not 1_000_000."""
    v = binance.BinanceSpot(microseconds=True)
    flushes = both(v, captures["binance"], range(0, 265, 50))
    assert table_rows(flushes, "l2") > 0
    edges = ["9223372036854775", "9223372036854776", "-9223372036854775", "-9223372036854776"]
    both(v, [_trade(ts=ts) for ts in edges] + [_depth(ts=ts) for ts in edges], [1, 5])


def test_a_rest_snapshot_into_the_same_columns_keeps_row_order() -> None:
    """parse_snapshot appends to the lists: rows buffered in C before it must still come first."""
    snapshot = b'{"lastUpdateId":30,"bids":[["8","1"],["7","2"]],"asks":[["10","3"]]}'
    v = venue("binance")
    fast, pure = v.columns(), Columns(v.name)
    for out in (fast, pure):
        v.parse(_depth(seq=20), receipt_at(0), out)
        v.parse(_trade(), receipt_at(1), out)
        assert v.parse_snapshot(snapshot, "BTCUSDT", receipt_at(2), out) == 30
        v.parse(_depth(seq=31), receipt_at(3), out)
    assert fast.l2_messages() == len(pure.l2.symbol) == 3
    assert_same_flush(fast.flush(START), pure.flush(START), "depth, trade, REST snapshot, depth")


def test_the_connectors_entry_answers_from_c_and_falls_back_to_the_python_parser() -> None:
    depth = (
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1700000000001,"T":1700000000000,'
        b'"s":"BTCUSDT","U":5,"u":6,"pu":4,"b":[["1.5","2"]],"a":[["1.6","3"]]}}'
    )
    out, parse = connector_entry("binance_futures", depth)
    kline = b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{}}}'
    (control,) = parse(kline, receipt_at(1))  # declined by C: the Python parser's answer
    assert control.kind == "unknown"
    with pytest.raises(ParseError):
        parse(b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate"', receipt_at(2))
    assert l2_seqs([out.flush()]) == [6]


def test_other_venues_parse_through_the_same_entry() -> None:
    okx = venue("okx")
    out = okx.columns()
    frame = b'{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a"}'
    assert okx.parser(out)(frame, receipt_at(0)) == okx.parse(frame, receipt_at(0), Columns(okx.name, keep_text=True))
