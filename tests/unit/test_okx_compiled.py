"""The compiled OKX parser (`xtrader.venues._okx_fast`) changes nothing but speed.

`venue("okx").columns()` carries the C accumulator (`Columns.fast`, keeping each book level's exact text): frames
it takes go to C buffers, frames it declines go to the Python parser after the C rows are spilled into the Python
lists. The contract, checked here against a plain `Columns("okx", keep_text=True)` (the pure-Python path) on the
same frames and receipts (tests/compiled_harness.py): frame by frame the same outcome (ParseError or not, the same
controls), and flushes at the same points give equal tables (the l2 text columns and checksums included), rejects
and events. Frames: the real capture, generated valid and adversarial frames, byte mutations of real frames.

Without the extension every test here fails (it was not built); only `XTRADER_PURE_PYTHON=1` skips them.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xtrader.venues.okx as okx
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
    pure_columns,
    receipt_at,
    table_rows,
)
from xtrader.errors import ParseError
from xtrader.venues import venue

_compiled = compiled_only("OKX", okx)

#: few examples, fixed seed: the unit suite stays fast and gives the same result on every run
EXAMPLES = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


# -- 1. golden: the real capture -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capture() -> list[bytes]:
    return ws_frames("okx")  # skips when the captures are absent


@CADENCES
def test_capture_flushes_the_same_at_any_cadence(capture: list[bytes], every: int | None) -> None:
    flushes = both("okx", capture, cadence_cuts(every, len(capture)))
    # test_okx.py's golden counts
    assert (table_rows(flushes, "l2_messages"), table_rows(flushes, "l2")) == (290, 8264)
    assert (table_rows(flushes, "trades"), table_rows(flushes, "bbo")) == (74, 28)
    assert sum(b.rejects for b in flushes) == 0


def test_the_compiled_path_takes_most_capture_frames(capture: list[bytes]) -> None:
    data_frames = assert_takes_most("okx", capture)
    assert data_frames == 392


def test_level_text_and_checksums_are_the_wires(capture: list[bytes]) -> None:
    """The l2 text columns built from the C buffers are the wire's strings, and OKX's checksums hold over them."""
    from xtrader.sync import Books

    v = venue("okx")
    books = [f for f in capture if b'"channel":"books"' in f and b'"data"' in f]
    out = v.columns()
    for index, frame in enumerate(books):
        assert out.fast.parse(frame, receipt_at(index)), "a real book frame declined"
    assert not out.l2.symbol  # all in C: the flush builds from the C buffers
    batches = out.flush(START)
    assert batches.l2 is not None and batches.l2_messages is not None
    wire_price: list[str] = []
    wire_size: list[str] = []
    checksums = []
    for frame in books:
        (record,) = orjson.loads(frame)["data"]
        for side in ("bids", "asks"):
            wire_price += [level[0] for level in record[side]]
            wire_size += [level[1] for level in record[side]]
        checksums.append(record["checksum"])
    assert batches.l2.column("price_text").to_pylist() == wire_price
    assert batches.l2.column("size_text").to_pylist() == wire_size
    assert batches.l2.column("price").to_pylist() == [float(p) for p in wire_price]
    assert batches.l2_messages.column("checksum").to_pylist() == checksums
    synced = Books(v.sync_kind, keep_text=True, checksum=v.book_checksum)  # type: ignore[attr-defined]
    synced.apply_batch("c0", batches.l2, batches.l2_messages)
    counters = synced.counters()
    assert (counters.checksum_ok, counters.checksum_failed) == (len(books), 0)


def test_text_and_buffer_frames_parse_the_same(capture: list[bytes]) -> None:
    """str (and bytearray) frames go to the Python parser, among bytes frames the C path takes."""
    flushes = both("okx", mixed_types(capture[:200]), range(0, 200, 40))
    assert table_rows(flushes, "l2") > 0


# -- 2. generated frames, valid and adversarial --------------------------------------------------------------------


BOUNDARY_INTS = [0, -1, 1, (1 << 31) - 1, -(1 << 31), (1 << 53) + 1, *INT64_EDGES, *MS_EDGES]
#: JSON number tokens, valid or not, for int fields (seqId, prevSeqId, checksum)
ODD_NUMBERS = [
    "-0",
    "1.0",
    "1e5",
    "-0.0",
    "01",
    "+1",
    "1.",
    ".5",
    "-",
    "1e400",
    "NaN",
    "Infinity",
    "1" * 40,
    "12345678901234567890",
    "9223372036854775808",
    "-9223372036854775809",
]
#: `ts` strings: what int() takes (whitespace, '+', '_', non-ASCII digits, leading zeros) and what it refuses
ODD_TS = [
    "",
    " 1",
    "1 ",
    "+1",
    "-1",
    "-0",
    "0",
    "007",
    "1_0",
    "1.0",
    "1e3",
    "0x10",
    "١٢",
    "１",
    "-",
    "--1",
    "9223372036854",
    "9223372036855",
    "-9223372036854",
    "-9223372036855",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999",
    "0" * 25 + "1",
    "1" * 25,
]
#: price / size strings the pure path treats in all sorts of ways (kept as text, rejected at flush, refused)
ODD_PRICES = [
    *FLOAT_SPELLINGS,
    "nan",
    "NaN",
    "-0.0",
    "-0",
    "0",
    "0.1000000000000000055511151231257827",
    "1" * 35,
    "0." + "0" * 30 + "1",
    "1e400",
    "1e-400",
    "1_0",
    "١٢",
    "１",
    "1,5",
    "--1",
    "1-",
    "-1-2",
    "1..2",
    "1e",
    "e5",
    "E",
    ".",
    "-",
    "\t2",
    "0.30000000000000004",
    "9007199254740993",
    "123456789012345.6",
    "12345678901234567890.5",
    "1" + "0" * 23,
    "0." + "0" * 22 + "1",
    *DIGIT_RUNS,
    "2.4703282292062327",
]
#: raw JSON string tokens: escapes, non-ASCII, invalid escapes and control characters
ODD_STRINGS = [
    *ESCAPED_ASCII,
    '"BTC-\\u0055SDT"',
    '"\\u0031.5"',
    '"\\u0031"',
    '"ü"',
    '"₿TC"',
    '"\\ud800"',
    '"\\u0000"',
    '"a\\nb"',
    '"\\x41"',
    '"\x01"',
    '"unterminated',
    '"\\u12"',
]
ODD_TOKENS = [
    *JSON_LITERALS,
    '["1","2"]',
    '[["1","2"]]',
    '[["1","2","0","1"]]',
    "[1,2]",
    '{"a":1}',
    DEEP,
    "nul",
    "True",
    "'1'",
    "",
]

ODD_VALUE = odd_values(
    ODD_TOKENS,
    ODD_NUMBERS,
    BOUNDARY_INTS,
    st.sampled_from(ODD_PRICES).map(text),
    st.sampled_from(ODD_TS).map(text),
    st.sampled_from(ODD_STRINGS),
)


_ts = st.integers(1_500_000_000_000, 1_900_000_000_000).map(str)
_seq = st.integers(-1, 1 << 40)
_symbol = st.sampled_from(["BTC-USDT", "ETH-USDT-SWAP", "BTC-USD-220527", "BTC-USD-220527-30000-C"])
#: in an odd frame, an odd value 1 time in 4
ODD_PRICE = st.one_of(*[DECIMAL] * 3, st.sampled_from(ODD_PRICES))
ODD_TIME = st.one_of(*[_ts] * 3, st.sampled_from(ODD_TS))
ODD_SEQ = st.one_of(*[_seq.map(str)] * 3, st.sampled_from(BOUNDARY_INTS).map(str), st.sampled_from(ODD_NUMBERS))
ODD_SYMBOL = st.one_of(*[_symbol] * 3, st.sampled_from(["", "btc-usdt", "ÄBC", "₿", "A B", 'A"B', "A\\B", "x" * 70]))
CHANNELS = ["books", "books-l2-tbt", "books50-l2-tbt", "books5", "trades", "bbo-tbt", "tickers"]
OTHER_CHANNELS = ["candle1m", "books ", "Books", "", "funding-rate", "bbo", "ticker", "books50", "trade"]


@st.composite
def _level(draw: Any, price: Any) -> list[Node]:
    """`[px, sz, "0", numOrders]`, now and then only px and sz, or extra items (the Python parser ignores them)."""
    level = [text(draw(price)), text(draw(price))]
    tail = draw(st.sampled_from(["four", "four", "four", "two", "extra"]))
    if tail == "four":
        level += [text("0"), text(str(draw(st.integers(0, 40))))]
    elif tail == "extra":
        level += draw(st.lists(PLAIN_JSON, min_size=1, max_size=3))
    return level


@st.composite
def _levels(draw: Any, price: Any, most: int = 4) -> list[Node]:
    return [draw(_level(price)) for _ in range(draw(st.integers(0, most)))]


@st.composite
def _record(draw: Any, channel: str, odd: bool, symbol: str) -> Obj:
    prices, times, seqs = (ODD_PRICE, ODD_TIME, ODD_SEQ) if odd else (DECIMAL, _ts, _seq.map(str))
    fields: list[tuple[str, Node]]
    if channel in ("books", "books-l2-tbt", "books50-l2-tbt", "books5", "bbo-tbt"):
        most = 1 if channel == "bbo-tbt" and draw(st.booleans()) else 4
        fields = [("asks", draw(_levels(prices, most))), ("bids", draw(_levels(prices, most)))]
        fields.append(("ts", text(draw(times))))
        if channel != "bbo-tbt" and draw(st.booleans()):
            fields.append(("checksum", str(draw(st.integers(-(1 << 31), (1 << 31) - 1)))))
        if draw(st.integers(0, 3)):  # seqId (absent: before OKX added it)
            seq = draw(seqs)
            fields.append(("seqId", seq))
            if draw(st.booleans()):
                fields.append(("prevSeqId", draw(st.sampled_from(["-1", "null", seq]) | seqs)))
        elif draw(st.booleans()):  # read only with a seqId
            fields.append(("prevSeqId", draw(ODD_VALUE if odd else PLAIN_JSON)))
        if draw(st.booleans()):
            fields.append(("instId", text(symbol)))
    elif channel == "trades":
        fields = [("instId", text(symbol)), ("tradeId", text(str(draw(st.integers(0, 1 << 40)))))]
        fields += [("px", text(draw(prices))), ("sz", text(draw(prices)))]
        fields += [("side", text(draw(st.sampled_from(["buy", "sell"])))), ("ts", text(draw(times)))]
    else:  # tickers
        fields = [("instType", text("SPOT")), ("instId", text(symbol)), ("last", text(draw(prices)))]
        for side in ("ask", "bid"):
            empty = draw(st.sampled_from(["", "", "", "", "both", "price", "size"]))  # "": an empty side
            price, size = draw(prices), draw(prices)
            if empty in ("both", "price"):
                price = ""
            if empty in ("both", "size"):
                size = ""
            fields += [(f"{side}Px", text(price)), (f"{side}Sz", text(size))]
        fields += [("open24h", text(draw(prices))), ("vol24h", text("1")), ("ts", text(draw(times)))]
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):  # unknown keys, any JSON value
        name = draw(st.sampled_from(["instId", "x", "action", "arg", "data", "uTime", "checksum", "seqId"]))
        if odd:
            name = draw(st.just(name) | st.text(max_size=4))
        elif name in dict(fields) or (channel != "trades" and name == "checksum") or name == "seqId":
            continue  # a clean frame keeps its fields unique
        fields.insert(draw(st.integers(0, len(fields))), (name, draw(ANY_JSON if odd else PLAIN_JSON)))
    return Obj((key(name), value) for name, value in draw(st.permutations(fields)))


@st.composite
def frame(draw: Any) -> bytes:
    """One OKX push: a valid hot frame, then (with some probability) made adversarial."""
    # half the frames are clean (valid, printable ASCII: what the compiled path takes); the others get odd values
    # and edits. A boolean shrinks to False: a failing example shrinks towards a clean frame
    odd = draw(st.booleans())
    channel = draw(st.sampled_from(CHANNELS))
    symbol = draw(ODD_SYMBOL if odd else _symbol)
    records = [draw(_record(channel, odd, symbol)) for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3, 0])))]
    arg = Obj([(key("channel"), text(channel)), (key("instId"), text(symbol))])
    if draw(st.booleans()):
        arg.insert(draw(st.integers(0, 2)), (key("uid"), text("77")))
    if draw(st.booleans()):
        arg.reverse()
    top = Obj([(key("arg"), arg), (key("data"), records)])
    if channel.startswith("books") and channel != "books5":
        top.insert(1, (key("action"), text(draw(st.sampled_from(["update", "update", "snapshot"])))))
    elif draw(st.integers(0, 3)) == 0:
        top.insert(1, (key("action"), text("update")))  # ignored off the books channels
    top[:] = draw(st.permutations(list(top)))  # data before arg, action last, ...

    # adversarial edits: sampled_from shrinks to its first entry, no edit
    for _ in range(draw(EDITS) if odd else 0):
        edit = draw(
            st.sampled_from(
                ["replace", "delete", "duplicate", "level", "channel", "action", "escape key", "event", "top", "nest"]
            )
        )
        where = draw(st.sampled_from(["record", "record", "record", "arg", "top"]))
        target: Obj = (records[0] if records else top) if where == "record" else arg if where == "arg" else top
        if edit in OBJECT_EDITS:
            edit_object(draw, edit, target, ODD_VALUE)
        elif edit == "level" and records:
            record = records[draw(st.integers(0, len(records) - 1))]
            sides = [i for i, (k, v) in enumerate(record) if k in ('"bids"', '"asks"') and isinstance(v, list)]
            if sides:
                at = draw(st.sampled_from(sides))
                levels = list(record[at][1])
                shape = draw(st.sampled_from(["one", "odd entry", "not a list", "empty", "nested", "first"]))
                if shape == "one":
                    levels.append([text(draw(ODD_PRICE))])
                elif shape == "odd entry":
                    levels.append(draw(st.permutations([text(draw(ODD_PRICE)), draw(ODD_VALUE)])))
                elif shape == "not a list":
                    levels.append(draw(ODD_VALUE))
                elif shape == "empty":
                    levels.append([])
                elif shape == "nested":
                    levels.append([levels[:1], text("1")])
                else:  # an odd first level (bbo-tbt reads only that one)
                    levels.insert(0, draw(st.sampled_from([[text("1")], ["null", text("2")], [], "null"])))
                record[at] = (record[at][0], levels)
        elif edit == "channel":
            name = draw(st.sampled_from(OTHER_CHANNELS + CHANNELS))
            arg[:] = [(k, text(name)) if k == '"channel"' else (k, v) for k, v in arg]
        elif edit == "action":
            value = draw(st.sampled_from(["snapshot", "update", "partial", "Update", ""]).map(text) | ODD_VALUE)
            top[:] = [(k, v) for k, v in top if k != '"action"']
            if draw(st.integers(0, 3)):
                top.insert(draw(st.integers(0, len(top))), (key("action"), value))
        elif edit == "event":
            value = draw(st.sampled_from(["subscribe", "error", "notice", "login"]).map(text) | st.just("null"))
            top.insert(draw(st.integers(0, len(top))), (key("event"), value))
        elif edit == "top":
            top.insert(draw(st.integers(0, len(top))), (key(draw(st.text(max_size=5))), draw(ANY_JSON)))
        elif edit == "nest":
            top = Obj([(key("arg"), arg), (key("data"), [Obj([(key("data"), records)])])])

    return written(draw, top, odd)


def session(max_frames: int = 12) -> st.SearchStrategy[tuple[list[bytes], list[int]]]:
    return sessions(frame(), max_frames)


@EXAMPLES
@given(session())
def test_generated_frames_parse_and_flush_the_same(case: tuple[list[bytes], list[int]]) -> None:
    both("okx", *case)


@settings(EXAMPLES, max_examples=30)
@given(session(max_frames=40))
def test_long_generated_sequences_flush_the_same(case: tuple[list[bytes], list[int]]) -> None:
    """Longer batches: past 64 values the pure path converts trade and bbo prices with Arrow, not float()."""
    frames, _ = case
    both("okx", frames)


def test_generated_frames_are_mostly_taken_by_the_compiled_path() -> None:
    """The generator makes frames the C path takes (else the tests above compare Python with Python)."""
    v = venue("okx")
    fast, slow = v.columns(), pure_columns(v)
    taken = total = 0

    @settings(EXAMPLES, max_examples=60)
    @given(frame())
    def collect(raw: bytes) -> None:
        nonlocal taken, total
        before_fast, before_pure = listed(fast), listed(slow)
        assert outcome(v, raw, receipt_at(0), fast) == outcome(v, raw, receipt_at(0), slow), raw
        if listed(slow) > before_pure:
            total += 1
            taken += listed(fast) == before_fast

    collect()
    assert total > 10 and taken > total // 2, f"the compiled path took {taken} of {total} generated data frames"


# -- hand-picked frames ----------------------------------------------------------------------------------------------


def push(channel: str, data: str, inst: str = "BTC-USDT", action: str | None = '"update"') -> bytes:
    head = f'{{"arg":{{"channel":"{channel}","instId":"{inst}"}},' + (f'"action":{action},' if action else "")
    return f'{head}"data":{data}}}'.encode()


def _book(
    price: str = "1.5", size: str = "2", seq: int = 12, ts: str = "1700000000000", channel: str = "books"
) -> bytes:
    levels = f'"asks":[["2",{text(size)},"0","1"]],"bids":[[{text(price)},"1","0","3"]]'
    return push(channel, f'[{{{levels},"ts":"{ts}","checksum":-5,"seqId":{seq},"prevSeqId":{seq - 1}}}]')


def _trade(price: str = "1.5", size: str = "2", trade_id: str = "5", ts: str = "1700000000000") -> bytes:
    record = f'"instId":"BTC-USDT","tradeId":"{trade_id}","px":{text(price)},"sz":{text(size)},"side":"sell"'
    return push("trades", f'[{{{record},"ts":"{ts}"}}]', action=None)


def _ticker(price: str = "1.5", ts: str = "1700000000000") -> bytes:
    record = f'"bidPx":{text(price)},"bidSz":"2","askPx":"3","askSz":"4","last":"3"'
    return push("tickers", f'[{{{record},"ts":"{ts}"}}]', action=None)


def _bbo(price: str = "1.5", seq: str = "7", ts: str = "1700000000000") -> bytes:
    levels = f'"asks":[["3","4","0","1"]],"bids":[[{text(price)},"2","0","1"]]'
    return push("bbo-tbt", f'[{{{levels},"ts":"{ts}","seqId":{seq}}}]', action=None)


@pytest.mark.parametrize("odd", ODD_PRICES)
@pytest.mark.parametrize("count", [1, 70], ids=["float()", "arrow"])
def test_odd_price_strings_convert_and_reject_the_same(odd: str, count: int) -> None:
    """One odd price among `count` frames: the pure path parses <= 64 trade / bbo values with float(), more with
    Arrow; book levels always with Arrow (their text is kept)."""
    for make in (_trade, _book, _ticker, _bbo):
        frames = [make() for _ in range(count)]
        frames[count // 2] = make(odd)
        both("okx", frames)


@pytest.mark.parametrize("ts", ODD_TS + [str(v) for v in BOUNDARY_INTS])
def test_odd_ts_strings_convert_and_reject_the_same(ts: str) -> None:
    """`ts` is read with int(): C takes only ASCII digits whose ns fit int64, and leaves the rest to Python."""
    frames = [make() for make in (_book, _trade, _ticker, _bbo)]
    frames += [make(ts=ts) for make in (_book, _trade, _ticker, _bbo)]  # type: ignore[operator]
    frames += [make() for make in (_book, _trade, _ticker, _bbo)]
    both("okx", frames, [3, 7])


GOOD_BOOK = '"asks":[["2","1","0","1"]],"bids":[["1","1","0","1"]],"ts":"1700000000000"'
GOOD_TRADE = '"tradeId":"9","px":"1.5","sz":"2","side":"buy","ts":"1700000000000"'
GOOD_TICKER = '"bidPx":"1","bidSz":"1","askPx":"2","askSz":"1","ts":"1700000000000"'
BOOKS_UPDATE = b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":'

#: frames a hand-written scanner may get wrong: each is parsed after frames the compiled path buffered
HOSTILE = [
    b"",
    b" ",
    b"pong",
    b"ping",
    b"{}",
    b"[]",
    b"null",
    b'"arg"',
    b'{"arg":null,"data":[]}',
    b'{"arg":{},"data":[]}',
    b'{"arg":[],"data":[]}',
    b'{"arg":"books","data":[]}',
    b'{"arg":{"channel":"books"},"action":"update","data":[]}',
    b'{"arg":{"instId":"X"},"action":"update","data":[]}',
    b'{"arg":{"channel":"books","instId":1},"action":"update","data":[]}',
    b'{"arg":{"channel":"books","instId":null},"action":"update","data":[]}',
    b'{"arg":{"channel":null,"instId":"X"},"action":"update","data":[]}',
    b'{"arg":{"channel":["books"],"instId":"X"},"action":"update","data":[]}',
    b'{"arg":{"channel":"candle1m","instId":"X"},"data":[{"x":1}]}',
    b'{"arg":{"channel":"books","instId":"X","channel":"books"},"action":"update","data":[]}',
    b'{"arg":{"channel":"books","instId":"X","instId":"Y"},"action":"update","data":[]}',
    b'{"arg":{"channel":"books","instId":"X"},"arg":{"channel":"books","instId":"X"},"action":"update","data":[]}',
    b'{"arg":{"channel":"books","instId":"X"},"data":[]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update"}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":null}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":{}}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[null]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[[]]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[],"data":[]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","action":"snapshot","data":[]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"Update","data":[]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":null,"data":[]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":["update"],"data":[]}',
    b'{"arg":{"channel":"books5","instId":"X"},"action":["update"],"data":[]}',
    b'{"arg":{"channel":"trades","instId":"X"},"data":[]}',
    b'{"event":null,"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b'}],"event":"subscribe"}',
    b'{"event":"subscribe","arg":{"channel":"books","instId":"X"},"connId":"a"}',
    b'{"event":"error","code":"60012","msg":"Invalid request","connId":"a"}',
    b'{"event":"notice","code":"64008","msg":"upgrade","connId":"a"}',
    b'{"hello":"world"}',
    # records
    b'{"data":[{' + GOOD_BOOK.encode() + b'}],"action":"snapshot","arg":{"instId":"X","channel":"books"}}',
    b'{"data":[{' + GOOD_BOOK.encode() + b'}],"arg":{"instId":"X","channel":"books"},"action":"snapshot"}',
    b'{"arg":{"channel":"books","instId":"X"},"data":[{' + GOOD_BOOK.encode() + b'}],"action":"snapshot"}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{' + GOOD_BOOK.encode() + b',"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":1}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[]}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":{},"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"asks":[],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1","2"]],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1"]],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[[]],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":["1","2"],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[[1,"2"]],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1",2]],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1","2",3,null,{"a":[1]}]],'
    b'"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1","2"],null],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1e5","2"]],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["","2"]],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1x","2"]],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1\\u002e5","2"]],"bids":[],'
    b'"ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","seqId":null,'
    b'"prevSeqId":"garbage","checksum":null}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","seqId":5,'
    b'"prevSeqId":"4"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","seqId":5,'
    b'"prevSeqId":-1,"checksum":0}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","seqId":5,'
    b'"prevSeqId":null,"checksum":-2147483648}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","seqId":5,'
    b'"prevSeqId":true}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","seqId":true}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","seqId":1.0}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1",'
    b'"seqId":9223372036854775808}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1",'
    b'"seqId":-9223372036854775808,"prevSeqId":9223372036854775807}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1",'
    b'"checksum":"1"}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1",'
    b'"checksum":1e3}]}',
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1",'
    b'"checksum":18446744073709551616}]}',
    b'{"arg":{"channel":"books5","instId":"X"},"data":[{"asks":[],"bids":[],"ts":"1","checksum":"x",'
    b'"prevSeqId":"y","seqId":3}]}',
    b'{"arg":{"channel":"books5","instId":"X"},"data":[{"asks":[],"bids":[],"ts":"1","seqId":[1]}]}',
    BOOKS_UPDATE + b"[{" + GOOD_BOOK.encode() + b"},{}]}",
    BOOKS_UPDATE + b"[{" + GOOD_BOOK.encode() + b"},{" + GOOD_BOOK.encode() + b"}]}",
    BOOKS_UPDATE
    + b"[{"
    + GOOD_BOOK.encode()
    + b"},{"
    + GOOD_BOOK.replace('"1","1","0"', '"1","1e1","0"').encode()
    + b"}]}",
    b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","x":'
    + DEEP.encode()
    + b"}]}",
    # bbo-tbt: only the first level is read
    b'{"arg":{"channel":"bbo-tbt","instId":"X"},"data":[{"asks":[],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"bbo-tbt","instId":"X"},"data":[{"asks":[["1","2"],"x",[1]],"bids":[["1","2","0"],{}],'
    b'"ts":"1","seqId":null}]}',
    b'{"arg":{"channel":"bbo-tbt","instId":"X"},"data":[{"asks":[["1"]],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"bbo-tbt","instId":"X"},"data":[{"asks":[null],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"bbo-tbt","instId":"X"},"data":[{"asks":["1","2"],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"bbo-tbt","instId":"X"},"data":[{"asks":[["","2"]],"bids":[],"ts":"1"}]}',
    b'{"arg":{"channel":"bbo-tbt","instId":"X"},"data":[{"asks":[],"bids":[],"ts":"1","seqId":"1"}]}',
    b'{"arg":{"channel":"bbo-tbt","instId":"X"},"data":[{"asks":[],"bids":[],"ts":"1","seqId":-1,"checksum":"z"}]}',
    # tickers: "" is an empty side
    b'{"arg":{"channel":"tickers","instId":"X"},"data":[{"bidPx":"","bidSz":"","askPx":"","askSz":"","ts":"1"}]}',
    b'{"arg":{"channel":"tickers","instId":"X"},"data":[{"bidPx":"","bidSz":"1","askPx":"2","askSz":"","ts":"1"}]}',
    b'{"arg":{"channel":"tickers","instId":"X"},"data":[{"bidPx":"1","bidSz":"1","askPx":"2","ts":"1"}]}',
    b'{"arg":{"channel":"tickers","instId":"X"},"data":[{"bidPx":null,"bidSz":"1","askPx":"2","askSz":"1","ts":"1"}]}',
    b'{"arg":{"channel":"tickers","instId":"X"},"data":[{' + GOOD_TICKER.encode() + b',"bidPx":"1"}]}',
    b'{"arg":{"channel":"tickers","instId":"X"},"data":[{' + GOOD_TICKER.replace('"1"', '"+1"', 1).encode() + b"}]}",
    # trades
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.replace("buy", "BUY").encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.replace('"buy"', '["buy"]').encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.replace('"buy"', "null").encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.replace('"9"', "9").encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.replace('"9"', '""').encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.replace('"9"', '"a b:c"').encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.replace("1.5", "1e5").encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b',"side":"sell"}]}',
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b',"instId":"Y","instId":1}]}',
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"}," + b"{}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"},{" + GOOD_TRADE.encode() + b"}]}",
    # escapes, non-ASCII, framing
    b'{"arg":{"channel":"trades","instId":"X\\u0041"},"data":[{' + GOOD_TRADE.encode() + b"}]}",
    b'{"\\u0061rg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"\xc3\x84"},"data":[{' + GOOD_TRADE.encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"\xc3"},"data":[{' + GOOD_TRADE.encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":""},"data":[{' + GOOD_TRADE.encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b',"instType":"\xc3\xbc"}]}',
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"}]}x",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"}]} \n",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"}]},",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"}]}\x00",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"}],}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"},]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"}]",
    b'\xef\xbb\xbf{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b"}]}",
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b',"x":1e5}]}',
    b'{"arg":{"channel":"trades","instId":"X"},"data":[{' + GOOD_TRADE.encode() + b',"x":-0,"y":1.5,"z":[]}]}',
]


def test_hostile_frames_between_buffered_ones() -> None:
    frames = []
    for index, hostile in enumerate(HOSTILE):
        frames += [_book(seq=index), hostile, _trade(trade_id=str(index)), _ticker(), _bbo(), hostile]
    both("okx", frames, range(0, len(frames), 11))
    for hostile in HOSTILE:  # and each alone after one buffered frame
        both("okx", [_book(), hostile])


def test_a_push_with_a_bad_record_leaves_nothing_in_either_path() -> None:
    """Several records are taken whole or not at all; a bad one after good ones raises, appending nothing."""
    v = venue("okx")
    good = "{" + GOOD_TRADE + "}"
    bad = "{" + GOOD_TRADE.replace('"buy"', '"up"') + "}"
    fast = v.columns()
    v.parse(_book(), receipt_at(0), fast)
    for data in (f"[{good},{good},{bad}]", f"[{good},{bad},{good}]"):
        with pytest.raises(ParseError):
            v.parse(push("trades", data, action=None), receipt_at(1), fast)
        assert fast.rows() == 2 and fast.l2_messages() == 1
    assert fast.fast.parse(push("trades", f"[{good},{good},{good}]", action=None), receipt_at(2))
    assert fast.rows() == 5 and not fast.trades.symbol


# -- 3. byte mutations of real frames --------------------------------------------------------------------------------


SEEDS = seed_frames(
    ["okx"], (b'"action":"update"', b'"channel":"trades","instId', b'"channel":"tickers","instId', b"event")
)


def mutated_session() -> st.SearchStrategy[tuple[list[bytes], list[int]]]:
    return mutated_sessions(SEEDS, b'"\\{}[],:0-.e+_ \x00\x80\xff')  # OKX's decimals: + and _ too


@EXAMPLES
@given(mutated_session())
def test_mutated_capture_frames_parse_the_same(case: tuple[list[bytes], list[int]]) -> None:
    if not SEEDS:
        pytest.skip("real exchange captures not found (set XTRADER_CAPTURES)")
    both("okx", *case)


# -- 4. order across the two paths ---------------------------------------------------------------------------------

ACK = b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}'
EXP_BOOK = push("books", '[{"asks":[["1e1","2","0","1"]],"bids":[],"ts":"1700000000000","seqId":90,"prevSeqId":89}]')
CANDLE = push("candle1m", '[["1700000000000","1","2","0.5","1.5","10"]]', action=None)
HALF_TICKER = push("tickers", '[{"bidPx":"","bidSz":"1","askPx":"3","askSz":"4","ts":"1700000000000"}]', action=None)
ESCAPED_TRADE = push("trades", '[{"tradeId":"\\u0037","px":"1","sz":"2","side":"buy","ts":"1"}]', action=None)
ERROR = b'{"event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}'


def _interleaved() -> list[bytes]:
    frames = []
    for i in range(6):
        frames += [_book(str(100 + i), seq=40 + 2 * i), _trade(str(200 + i), trade_id=str(i)), _ticker(str(i))]
        frames.append([EXP_BOOK, ACK, CANDLE, HALF_TICKER, ESCAPED_TRADE, ERROR][i])
        frames.append(_book(str(300 + i), seq=41 + 2 * i))
    return frames


@pytest.mark.parametrize("cuts", [(), (3, 9, 10), tuple(range(0, 40, 4))], ids=["one", "some", "every 4"])
def test_rows_keep_their_order_across_both_paths(cuts: tuple[int, ...]) -> None:
    frames = _interleaved()
    flushes = both("okx", frames, cuts)
    assert table_rows(flushes, "l2_messages") == 6 * 2 + 1  # + the book C declines ("1e1")
    assert table_rows(flushes, "trades") == 6 + 1 and table_rows(flushes, "bbo") == 6 + 1
    assert l2_seqs(flushes)[:4] == [40, 90, 41, 42]  # the Python parser's book between two compiled ones


# -- 5. l2_messages(), spill(), rows() -------------------------------------------------------------------------------


def _comparable(values: list[Any], numeric: bool, l2: bool) -> list[Any]:
    """Spilled, the Python lists hold what the pure path appended: the same values of the same types; book levels
    as the wire's exact text, trade and bbo decimals as text that parses to the same float."""
    exact = l2 or not numeric
    return [(type(x), x if exact or x is None else float(x)) for x in values]


def test_l2_messages_counts_both_paths_and_spill_moves_the_rest() -> None:
    assert_spill_moves_the_rest("okx", _interleaved(), _comparable)


def test_spill_mid_stream_then_more_compiled_frames() -> None:
    frames = [_book(seq=s) for s in range(10, 20)] + [_trade(trade_id=str(i)) for i in range(5)]
    assert_spills_mid_stream("okx", frames, l2_messages=10)


def test_rows_and_pending_count_the_compiled_rows() -> None:
    empty = push("books", '[{"asks":[],"bids":[],"ts":"1","seqId":5,"prevSeqId":5}]')
    assert_rows_and_pending_alike("okx", [_book(seq=5), _trade(), _ticker(), _bbo(), _book(seq=6), empty])


# -- other ways rows reach the same Columns --------------------------------------------------------------------------

REST_BOOK = (
    b'{"code":"0","msg":"","data":[{"asks":[["41006.8","0.60038921","0","1"],["41006.9","1","0","2"]],'
    b'"bids":[["41006.3","0.30178218","0","2"]],"ts":"1629966436396","seqId":3412352}]}'
)


def test_a_rest_book_into_the_same_columns_keeps_row_order() -> None:
    """parse_rest_book appends to the lists: rows buffered in C before it must still come first."""
    v = venue("okx")
    assert isinstance(v, okx.Okx)
    fast, slow = v.columns(), pure_columns(v)
    for out in (fast, slow):
        v.parse(_book(seq=20), receipt_at(0), out)
        v.parse(_trade(), receipt_at(1), out)
        assert v.parse_rest_book(REST_BOOK, "BTC-USDT", receipt_at(2), out) == 3412352
        v.parse(_book(seq=3412353), receipt_at(3), out)
    assert fast.l2_messages() == len(slow.l2.symbol) == 3
    assert_same_flush(fast.flush(START), slow.flush(START), "book, trade, REST book, book")


def test_the_connectors_entry_answers_from_c_and_falls_back_to_the_python_parser() -> None:
    out, parse = connector_entry("okx", _book(seq=6))
    (control,) = parse(ACK, receipt_at(1))  # declined by C: the Python parser's answer
    assert control.kind == "ack"
    assert parse(b"pong", receipt_at(2)) == (okx.Control("pong"),)
    with pytest.raises(ParseError):
        parse(b'{"arg":{"channel":"books","instId":"X"},"data":[', receipt_at(3))
    batches = out.flush()
    assert l2_seqs([batches]) == [6]
    assert batches.l2 is not None and batches.l2.column("price_text").to_pylist() == ["1.5", "2"]
