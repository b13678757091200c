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

import importlib
import json
import os
from collections.abc import Iterator
from itertools import cycle, repeat
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.captures import ws_frames
from tests.compiled_harness import START, assert_same_flush, both, listed, outcome, receipt_at, table_rows
from xtrader.batch import Columns
from xtrader.errors import ParseError
from xtrader.venues import venue

if os.environ.get("XTRADER_PURE_PYTHON") == "1":
    pytest.skip("XTRADER_PURE_PYTHON=1: the compiled OKX parser is switched off", allow_module_level=True)

import xtrader.venues.okx as okx

try:
    importlib.import_module("xtrader.venues._okx_fast")
    _NOT_BUILT: str | None = None
except ImportError as exc:  # the tests fail (below): a skip on every machine would hide it
    _NOT_BUILT = f"{type(exc).__name__}: {exc}"

#: few examples, fixed seed: the unit suite stays fast and gives the same result on every run
EXAMPLES = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    if _NOT_BUILT is not None:
        pytest.fail(
            "the compiled OKX parser xtrader.venues._okx_fast was not built "
            f"({_NOT_BUILT}); build the extension (pip install -e .), or set XTRADER_PURE_PYTHON=1 to run "
            "without it",
            pytrace=False,
        )
    assert getattr(okx, "COMPILED", None) is True, "the extension imports, yet okx.COMPILED is not True"


def pure() -> Columns:
    return Columns("okx", keep_text=True)


# -- 1. golden: the real capture -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capture() -> list[bytes]:
    return ws_frames("okx")  # skips when the captures are absent


@pytest.mark.parametrize("every", [1, 7, 100, None], ids=["each", "7", "100", "all"])
def test_capture_flushes_the_same_at_any_cadence(capture: list[bytes], every: int | None) -> None:
    cuts = () if every is None else range(every - 1, len(capture), every)
    flushes = both("okx", capture, cuts)
    # test_okx.py's golden counts
    assert (table_rows(flushes, "l2_messages"), table_rows(flushes, "l2")) == (290, 8264)
    assert (table_rows(flushes, "trades"), table_rows(flushes, "bbo")) == (74, 28)
    assert sum(b.rejects for b in flushes) == 0


def test_the_compiled_path_takes_most_capture_frames(capture: list[bytes]) -> None:
    """A frame went to C when it added rows on the pure path but nothing to the compiled side's Python lists."""
    v = venue("okx")
    fast, slow = v.columns(), pure()
    data_frames = taken = held = 0
    for index, frame in enumerate(capture):
        before_fast, before_pure = listed(fast), listed(slow)
        v.parse(frame, receipt_at(index), fast)
        v.parse(frame, receipt_at(index), slow)
        if listed(slow) > before_pure:
            data_frames += 1
            taken += listed(fast) == before_fast
        assert fast.l2_messages() == len(slow.l2.symbol), index
        held = max(held, fast.l2_messages() - len(fast.l2.symbol))
    assert held > 0, "no l2 message ever stayed in the C buffers"
    assert data_frames == 392 and taken >= 0.95 * data_frames, f"the compiled path took {taken} of {data_frames}"
    assert_same_flush(fast.flush(START), slow.flush(START), "okx")


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
    frames: list[Any] = capture[:200]
    frames = [f.decode() if i % 3 == 1 else bytearray(f) if i % 7 == 2 else f for i, f in enumerate(frames)]
    flushes = both("okx", frames, range(0, 200, 40))
    assert table_rows(flushes, "l2") > 0


# -- 2. generated frames, valid and adversarial --------------------------------------------------------------------


class Obj(list):  # type: ignore[type-arg]
    """A JSON object as [key JSON text, node] pairs: duplicate keys and odd key spellings stay possible."""


# a node is raw JSON text (str), an Obj, or a list of nodes (a JSON array)
Node = Any

WHITESPACE = ["", " ", "\n", "\t", "\r\n  ", "   "]


def _render(node: Node, ws: Iterator[str]) -> str:
    if isinstance(node, Obj):
        if not node:
            return "{" + next(ws) + "}"
        return "{" + ",".join(f"{next(ws)}{k}{next(ws)}:{next(ws)}{_render(v, ws)}{next(ws)}" for k, v in node) + "}"
    if isinstance(node, list):
        if not node:
            return "[" + next(ws) + "]"
        return "[" + ",".join(f"{next(ws)}{_render(v, ws)}{next(ws)}" for v in node) + "]"
    return str(node)


def _key(name: str) -> str:
    return json.dumps(name)


def _text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


DEEP = "[" * 2000 + "]" * 2000
BOUNDARY_INTS = [
    0,
    -1,
    1,
    (1 << 31) - 1,
    -(1 << 31),
    (1 << 53) + 1,
    (1 << 63) - 1,
    1 << 63,
    -(1 << 63),
    -(1 << 63) - 1,
    (1 << 64) - 1,
    1 << 64,
    10**30,
    9_223_372_036_854,  # ms that still fit int64 ns
    9_223_372_036_855,  # ms whose ns overflow int64
    -9_223_372_036_854,
    -9_223_372_036_855,
]
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
    "1e5",
    "1E-3",
    "+1",
    ".5",
    "5.",
    "",
    " 1",
    "1 ",
    "inf",
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
    "00.5",
    "-00",
    "0" * 39 + "1",
    "1" * 40,
    "1" * 41,
    "-" + "1" * 39,
    "9" * 39,
    "2.4703282292062327",
]
#: raw JSON string tokens: escapes, non-ASCII, invalid escapes and control characters
ODD_STRINGS = [
    '"\\u0041"',
    '"\\""',
    '"\\\\"',
    '"\\/"',
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
    "null",
    "true",
    "false",
    "[]",
    "{}",
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

_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(1 << 70), 1 << 70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
#: any JSON value as text (ASCII-escaped or raw UTF-8)
ANY_JSON = st.builds(lambda value, ascii_: json.dumps(value, ensure_ascii=ascii_), _json_value, st.booleans())

_plain_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'), max_size=6)
)
#: JSON the compiled path can skip (printable ASCII, no escapes, no exponent): it declines everything else
PLAIN_JSON = st.recursive(
    _plain_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("abcXYZ_", max_size=4), inner, max_size=3),
    max_leaves=8,
).map(lambda value: json.dumps(value, separators=(",", ":")))

ODD_VALUE = st.one_of(
    st.sampled_from(ODD_TOKENS),
    st.sampled_from(ODD_NUMBERS),
    st.sampled_from(BOUNDARY_INTS).map(str),
    st.sampled_from(ODD_PRICES).map(_text),
    st.sampled_from(ODD_TS).map(_text),
    st.sampled_from(ODD_STRINGS),
    st.floats().map(json.dumps),  # NaN, Infinity: not JSON
    st.text(max_size=5).map(_text),
    ANY_JSON,
)


def _decimal_text(units: int, places: int) -> str:
    digits = str(units).rjust(places + 1, "0")
    return f"{digits[:-places]}.{digits[-places:]}" if places else digits


_decimal = st.builds(_decimal_text, st.integers(0, 10**10), st.integers(0, 8))
_ts = st.integers(1_500_000_000_000, 1_900_000_000_000).map(str)
_seq = st.integers(-1, 1 << 40)
_symbol = st.sampled_from(["BTC-USDT", "ETH-USDT-SWAP", "BTC-USD-220527", "BTC-USD-220527-30000-C"])
#: in an odd frame, an odd value 1 time in 4
ODD_PRICE = st.one_of(*[_decimal] * 3, st.sampled_from(ODD_PRICES))
ODD_TIME = st.one_of(*[_ts] * 3, st.sampled_from(ODD_TS))
ODD_SEQ = st.one_of(*[_seq.map(str)] * 3, st.sampled_from(BOUNDARY_INTS).map(str), st.sampled_from(ODD_NUMBERS))
ODD_SYMBOL = st.one_of(*[_symbol] * 3, st.sampled_from(["", "btc-usdt", "ÄBC", "₿", "A B", 'A"B', "A\\B", "x" * 70]))
CHANNELS = ["books", "books-l2-tbt", "books50-l2-tbt", "books5", "trades", "bbo-tbt", "tickers"]
OTHER_CHANNELS = ["candle1m", "books ", "Books", "", "funding-rate", "bbo", "ticker", "books50", "trade"]
GARBAGE = [" ", "\n", "x", "}", "]", ",", ",{}", "{}", "\x00", "null", '"', "\\", "\ufeff", "\u00e9"]


@st.composite
def _level(draw: Any, price: Any) -> list[Node]:
    """`[px, sz, "0", numOrders]`, now and then only px and sz, or extra items (the Python parser ignores them)."""
    level = [_text(draw(price)), _text(draw(price))]
    tail = draw(st.sampled_from(["four", "four", "four", "two", "extra"]))
    if tail == "four":
        level += [_text("0"), _text(str(draw(st.integers(0, 40))))]
    elif tail == "extra":
        level += draw(st.lists(PLAIN_JSON, min_size=1, max_size=3))
    return level


@st.composite
def _levels(draw: Any, price: Any, most: int = 4) -> list[Node]:
    return [draw(_level(price)) for _ in range(draw(st.integers(0, most)))]


@st.composite
def _record(draw: Any, channel: str, odd: bool, symbol: str) -> Obj:
    prices, times, seqs = (ODD_PRICE, ODD_TIME, ODD_SEQ) if odd else (_decimal, _ts, _seq.map(str))
    fields: list[tuple[str, Node]]
    if channel in ("books", "books-l2-tbt", "books50-l2-tbt", "books5", "bbo-tbt"):
        most = 1 if channel == "bbo-tbt" and draw(st.booleans()) else 4
        fields = [("asks", draw(_levels(prices, most))), ("bids", draw(_levels(prices, most)))]
        fields.append(("ts", _text(draw(times))))
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
            fields.append(("instId", _text(symbol)))
    elif channel == "trades":
        fields = [("instId", _text(symbol)), ("tradeId", _text(str(draw(st.integers(0, 1 << 40)))))]
        fields += [("px", _text(draw(prices))), ("sz", _text(draw(prices)))]
        fields += [("side", _text(draw(st.sampled_from(["buy", "sell"])))), ("ts", _text(draw(times)))]
    else:  # tickers
        fields = [("instType", _text("SPOT")), ("instId", _text(symbol)), ("last", _text(draw(prices)))]
        for side in ("ask", "bid"):
            empty = draw(st.sampled_from(["", "", "", "", "both", "price", "size"]))  # "": an empty side
            price, size = draw(prices), draw(prices)
            if empty in ("both", "price"):
                price = ""
            if empty in ("both", "size"):
                size = ""
            fields += [(f"{side}Px", _text(price)), (f"{side}Sz", _text(size))]
        fields += [("open24h", _text(draw(prices))), ("vol24h", _text("1")), ("ts", _text(draw(times)))]
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):  # unknown keys, any JSON value
        name = draw(st.sampled_from(["instId", "x", "action", "arg", "data", "uTime", "checksum", "seqId"]))
        if odd:
            name = draw(st.just(name) | st.text(max_size=4))
        elif name in dict(fields) or (channel != "trades" and name == "checksum") or name == "seqId":
            continue  # a clean frame keeps its fields unique
        fields.insert(draw(st.integers(0, len(fields))), (name, draw(ANY_JSON if odd else PLAIN_JSON)))
    return Obj((_key(name), value) for name, value in draw(st.permutations(fields)))


@st.composite
def frame(draw: Any) -> bytes:
    """One OKX push: a valid hot frame, then (with some probability) made adversarial."""
    # half the frames are clean (valid, printable ASCII: what the compiled path takes); the others get odd values
    # and edits. A boolean shrinks to False: a failing example shrinks towards a clean frame
    odd = draw(st.booleans())
    channel = draw(st.sampled_from(CHANNELS))
    symbol = draw(ODD_SYMBOL if odd else _symbol)
    records = [draw(_record(channel, odd, symbol)) for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3, 0])))]
    arg = Obj([(_key("channel"), _text(channel)), (_key("instId"), _text(symbol))])
    if draw(st.booleans()):
        arg.insert(draw(st.integers(0, 2)), (_key("uid"), _text("77")))
    if draw(st.booleans()):
        arg.reverse()
    top = Obj([(_key("arg"), arg), (_key("data"), records)])
    if channel.startswith("books") and channel != "books5":
        top.insert(1, (_key("action"), _text(draw(st.sampled_from(["update", "update", "snapshot"])))))
    elif draw(st.integers(0, 3)) == 0:
        top.insert(1, (_key("action"), _text("update")))  # ignored off the books channels
    top[:] = draw(st.permutations(list(top)))  # data before arg, action last, ...

    # adversarial edits: sampled_from shrinks to its first entry, no edit
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3])) if odd else 0):
        edit = draw(
            st.sampled_from(
                ["replace", "delete", "duplicate", "level", "channel", "action", "escape key", "event", "top", "nest"]
            )
        )
        where = draw(st.sampled_from(["record", "record", "record", "arg", "top"]))
        target: Obj = (records[0] if records else top) if where == "record" else arg if where == "arg" else top
        if edit == "replace" and target:
            at = draw(st.integers(0, len(target) - 1))
            target[at] = (target[at][0], draw(ODD_VALUE))
        elif edit == "delete" and target:
            del target[draw(st.integers(0, len(target) - 1))]
        elif edit == "duplicate" and target:
            key, value = target[draw(st.integers(0, len(target) - 1))]
            value = draw(st.sampled_from([value, "null"]) | ODD_VALUE)
            target.insert(draw(st.integers(0, len(target))), (key, value))
        elif edit == "level" and records:
            record = records[draw(st.integers(0, len(records) - 1))]
            sides = [i for i, (k, v) in enumerate(record) if k in ('"bids"', '"asks"') and isinstance(v, list)]
            if sides:
                at = draw(st.sampled_from(sides))
                levels = list(record[at][1])
                shape = draw(st.sampled_from(["one", "odd entry", "not a list", "empty", "nested", "first"]))
                if shape == "one":
                    levels.append([_text(draw(ODD_PRICE))])
                elif shape == "odd entry":
                    levels.append(draw(st.permutations([_text(draw(ODD_PRICE)), draw(ODD_VALUE)])))
                elif shape == "not a list":
                    levels.append(draw(ODD_VALUE))
                elif shape == "empty":
                    levels.append([])
                elif shape == "nested":
                    levels.append([levels[:1], _text("1")])
                else:  # an odd first level (bbo-tbt reads only that one)
                    levels.insert(0, draw(st.sampled_from([[_text("1")], ["null", _text("2")], [], "null"])))
                record[at] = (record[at][0], levels)
        elif edit == "channel":
            name = draw(st.sampled_from(OTHER_CHANNELS + CHANNELS))
            arg[:] = [(k, _text(name)) if k == '"channel"' else (k, v) for k, v in arg]
        elif edit == "action":
            value = draw(st.sampled_from(["snapshot", "update", "partial", "Update", ""]).map(_text) | ODD_VALUE)
            top[:] = [(k, v) for k, v in top if k != '"action"']
            if draw(st.integers(0, 3)):
                top.insert(draw(st.integers(0, len(top))), (_key("action"), value))
        elif edit == "escape key" and target:
            at = draw(st.integers(0, len(target) - 1))
            name = json.loads(target[at][0])
            if name:
                escaped = "".join(f"\\u{ord(c):04x}" for c in name[:1]) + json.dumps(name[1:])[1:-1]
                target[at] = (f'"{escaped}"', target[at][1])
        elif edit == "event":
            value = draw(st.sampled_from(["subscribe", "error", "notice", "login"]).map(_text) | st.just("null"))
            top.insert(draw(st.integers(0, len(top))), (_key("event"), value))
        elif edit == "top":
            top.insert(draw(st.integers(0, len(top))), (_key(draw(st.text(max_size=5))), draw(ANY_JSON)))
        elif edit == "nest":
            top = Obj([(_key("arg"), arg), (_key("data"), [Obj([(_key("data"), records)])])])

    spacing = draw(st.lists(st.sampled_from(WHITESPACE), max_size=6))
    text = draw(st.sampled_from(["", " ", "\n"])) + _render(top, cycle(spacing) if spacing else repeat(""))
    raw = text.encode("utf-8", "surrogatepass")
    ending = draw(st.sampled_from(["", "", "", "garbage", "truncate"])) if odd else ""
    if ending == "garbage":
        raw += draw(st.sampled_from(GARBAGE)).encode()
    elif ending == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    return raw


@st.composite
def session(draw: Any, max_frames: int = 12) -> tuple[list[bytes], list[int]]:
    frames = draw(st.lists(frame(), min_size=1, max_size=max_frames))
    cuts = draw(st.lists(st.integers(0, len(frames) - 1), max_size=4))
    return frames, cuts


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
    fast, slow = v.columns(), pure()
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
    levels = f'"asks":[["2",{_text(size)},"0","1"]],"bids":[[{_text(price)},"1","0","3"]]'
    return push(channel, f'[{{{levels},"ts":"{ts}","checksum":-5,"seqId":{seq},"prevSeqId":{seq - 1}}}]')


def _trade(price: str = "1.5", size: str = "2", trade_id: str = "5", ts: str = "1700000000000") -> bytes:
    record = f'"instId":"BTC-USDT","tradeId":"{trade_id}","px":{_text(price)},"sz":{_text(size)},"side":"sell"'
    return push("trades", f'[{{{record},"ts":"{ts}"}}]', action=None)


def _ticker(price: str = "1.5", ts: str = "1700000000000") -> bytes:
    record = f'"bidPx":{_text(price)},"bidSz":"2","askPx":"3","askSz":"4","last":"3"'
    return push("tickers", f'[{{{record},"ts":"{ts}"}}]', action=None)


def _bbo(price: str = "1.5", seq: str = "7", ts: str = "1700000000000") -> bytes:
    levels = f'"asks":[["3","4","0","1"]],"bids":[[{_text(price)},"2","0","1"]]'
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


def _seeds() -> list[bytes]:
    """A few real frames of each kind from the capture (kept short to keep examples fast)."""
    try:
        frames = ws_frames("okx")
    except pytest.skip.Exception:
        return []
    picked: list[bytes] = []
    for marker in (b'"action":"update"', b'"channel":"trades","instId', b'"channel":"tickers","instId', b"event"):
        picked += sorted((f for f in frames if marker in f), key=len)[:3]
    return picked


SEEDS = _seeds()


@st.composite
def mutated_session(draw: Any) -> tuple[list[bytes], list[int]]:
    frames = []
    for _ in range(draw(st.integers(1, 10))):
        raw = bytearray(draw(st.sampled_from(SEEDS or [b"{}"])))
        for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
            op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]))
            at = draw(st.integers(0, max(len(raw) - 1, 0)))
            if op == "flip" and raw:
                raw[at] ^= 1 << draw(st.integers(0, 7))
            elif op == "insert":
                raw.insert(at, draw(st.sampled_from(b'"\\{}[],:0-.e+_ \x00\x80\xff') | st.integers(0, 255)))
            elif op == "delete" and raw:
                del raw[at]
            elif op == "truncate":
                del raw[at:]
            elif op == "set" and raw:
                raw[at] = draw(st.integers(0, 255))
        frames.append(bytes(raw))
    cuts = draw(st.lists(st.integers(0, len(frames) - 1), max_size=3))
    return frames, cuts


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
    seqs = [s for b in flushes if b.l2_messages is not None for s in b.l2_messages.column("seq").to_pylist()]
    assert seqs[:4] == [40, 90, 41, 42]  # the Python parser's book between two compiled ones


# -- 5. l2_messages(), spill(), rows() -------------------------------------------------------------------------------


def test_l2_messages_counts_both_paths_and_spill_moves_the_rest() -> None:
    v = venue("okx")
    fast, slow = v.columns(), pure()
    frames = _interleaved()
    for index, raw in enumerate(frames):
        v.parse(raw, receipt_at(index), fast)
        v.parse(raw, receipt_at(index), slow)
        assert fast.l2_messages() == slow.l2_messages() == len(slow.l2.symbol), index
    assert fast.l2_messages() > len(fast.l2.symbol), "the last book frames should still be in C"
    fast.spill()
    assert fast.l2_messages() == len(fast.l2.symbol) == len(slow.l2.symbol)
    # spilled, the Python lists hold what the pure path appended: the same values of the same types; book levels
    # as the wire's exact text, trade and bbo decimals as text that parses to the same float
    for got, want in zip(fast._tables(), slow._tables(), strict=True):
        for name in want._lists():
            exact = want is slow.l2 or name not in want._numeric()
            values = [(type(x), x if exact or x is None else float(x)) for x in getattr(got, name)]
            assert values == [(type(x), x if exact or x is None else float(x)) for x in getattr(want, name)], name
    fast.spill()  # nothing left to move
    assert_same_flush(fast.flush(START), slow.flush(START), "after spill()")
    assert fast.l2_messages() == 0


def test_spill_mid_stream_then_more_compiled_frames() -> None:
    v = venue("okx")
    fast, slow = v.columns(), pure()
    frames = [_book(seq=s) for s in range(10, 20)] + [_trade(trade_id=str(i)) for i in range(5)]
    for index, raw in enumerate(frames):
        v.parse(raw, receipt_at(index), fast)
        v.parse(raw, receipt_at(index), slow)
        if index % 4 == 0:
            fast.spill()
    assert fast.l2_messages() == len(slow.l2.symbol) == 10
    assert_same_flush(fast.flush(START), slow.flush(START), "spills every 4 frames")


def test_rows_and_pending_count_the_compiled_rows() -> None:
    """The connector's flush policy reads rows() and pending(): C rows must count as the pure path's do."""
    v = venue("okx")
    fast, slow = v.columns(), pure()
    assert not fast.pending() and fast.rows() == 0
    empty = push("books", '[{"asks":[],"bids":[],"ts":"1","seqId":5,"prevSeqId":5}]')
    for index, raw in enumerate([_book(seq=5), _trade(), _ticker(), _bbo(), _book(seq=6), empty]):
        v.parse(raw, receipt_at(index), fast)
        v.parse(raw, receipt_at(index), slow)
        assert (fast.rows(), fast.pending()) == (slow.rows(), slow.pending()), index


# -- other ways rows reach the same Columns --------------------------------------------------------------------------

REST_BOOK = (
    b'{"code":"0","msg":"","data":[{"asks":[["41006.8","0.60038921","0","1"],["41006.9","1","0","2"]],'
    b'"bids":[["41006.3","0.30178218","0","2"]],"ts":"1629966436396","seqId":3412352}]}'
)


def test_a_rest_book_into_the_same_columns_keeps_row_order() -> None:
    """parse_rest_book appends to the lists: rows buffered in C before it must still come first."""
    v = venue("okx")
    assert isinstance(v, okx.Okx)
    fast, slow = v.columns(), pure()
    for out in (fast, slow):
        v.parse(_book(seq=20), receipt_at(0), out)
        v.parse(_trade(), receipt_at(1), out)
        assert v.parse_rest_book(REST_BOOK, "BTC-USDT", receipt_at(2), out) == 3412352
        v.parse(_book(seq=3412353), receipt_at(3), out)
    assert fast.l2_messages() == len(slow.l2.symbol) == 3
    assert_same_flush(fast.flush(START), slow.flush(START), "book, trade, REST book, book")


def test_the_connectors_entry_answers_from_c_and_falls_back_to_the_python_parser() -> None:
    v = venue("okx")
    out = v.columns()
    parse = v.parser(out)  # the connector's per-frame call
    assert type(parse).__name__ == "builtin_function_or_method", "a frame C takes must not pass through Python"
    assert parse(_book(seq=6), receipt_at(0)) == ()
    assert out.fast.l2_messages == 1 and not out.l2.symbol  # buffered in C
    (control,) = parse(ACK, receipt_at(1))  # declined by C: the Python parser's answer
    assert control.kind == "ack"
    assert parse(b"pong", receipt_at(2)) == (okx.Control("pong"),)
    with pytest.raises(ParseError):
        parse(b'{"arg":{"channel":"books","instId":"X"},"data":[', receipt_at(3))
    batches = out.flush()
    assert batches.l2_messages is not None and batches.l2_messages.column("seq").to_pylist() == [6]
    assert batches.l2 is not None and batches.l2.column("price_text").to_pylist() == ["1.5", "2"]
