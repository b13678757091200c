"""Binance (spot and USD-M) parser fuzz: any input either parses or raises ParseError leaving
nothing behind, and a flush after it never raises."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.captures import records, ws_frames
from tests.fuzz.contract import assert_buffered_rows_survive, buffered_alone
from tests.fuzz.mutations import mutate, paths
from xtrader.clock import Receipt
from xtrader.errors import ParseError
from xtrader.venues import venue

RECEIPT = Receipt(1_700_000_000_000_000_000, 0)
VENUES = (venue("binance"), venue("binance_futures"))
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUFFERED = b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1","2"]],"a":[]}'
#: what BUFFERED flushes to on its own, per venue: it must come out of every flush whole
ALONE = {
    v.name: buffered_alone(lambda out, v=v: v.parse(BUFFERED, RECEIPT, out), v.columns, RECEIPT.wall_ns) for v in VENUES
}

#: frame kinds the captures lack, written from EXCHANGES.md 1.x / 2.x
SYNTHETIC = [
    b'{"stream":"btcusdt@depth5@100ms","data":{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}}',
    b'{"stream":"btcusdt@depth5@100ms","data":{"e":"depthUpdate","E":1571889248277,"T":1571889248276,'
    b'"s":"BTCUSDT","U":390497796,"u":390497878,"pu":390497794,"b":[["7403.89","0.002"]],"a":[["7405.96","3.340"]]}}',
    b'{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782134,"m":true,"M":true}',
    b'{"stream":"btcusd_200626@bookTicker","data":{"e":"bookTicker","u":17242169,"s":"BTCUSD_200626",'
    b'"ps":"BTCUSD","b":"9548.1","B":"52","a":"9548.5","A":"11","T":1591268628155,"E":1591268628166}}',
    b'{"result":null,"id":1}',
    b'{"result":["btcusdt@aggTrade"],"id":3}',
    b'{"error":{"code":2,"msg":"Invalid request"},"id":4}',
    b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1633998542082}}',
]


def _first(frames: list[bytes], marker: bytes) -> bytes:
    return next(frame for frame in frames if marker in frame)


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    picked = []
    for name in ("binance", "binance_futures"):
        frames = ws_frames(name)
        picked += [_first(frames, marker) for marker in (b"@depth@100ms", b"@bookTicker", b"@aggTrade", b"@kline")]
    return picked + SYNTHETIC


@pytest.fixture(scope="module")
def snapshots() -> list[bytes]:
    """One REST snapshot per venue, cut to a few levels a side to keep examples fast."""
    bodies = []
    for name in ("binance", "binance_futures"):
        record = next(r for r in records(name) if r.kind == "http" and "depth?" in r.url)
        assert record.msg is not None
        body = orjson.loads(record.msg)
        body["bids"], body["asks"] = body["bids"][:3], body["asks"][:3]
        bodies.append(orjson.dumps(body))
    return bodies


def check(frame: bytes | str) -> None:
    """The fuzz contract for both venues, with a row already buffered so that a bad rollback would show."""
    for binance in VENUES:
        out = binance.columns()
        binance.parse(BUFFERED, RECEIPT, out)
        before = out.mark()
        try:
            binance.parse(frame, RECEIPT, out)
        except ParseError:
            assert out.mark() == before
        flushed = out.flush(RECEIPT.wall_ns)  # never raises, whatever was appended
        assert_buffered_rows_survive(ALONE[binance.name], flushed)


def check_snapshot(body: bytes) -> None:
    for binance in VENUES:
        out = binance.columns()
        binance.parse(BUFFERED, RECEIPT, out)
        before = out.mark()
        try:
            assert type(binance.parse_snapshot(body, "BTCUSDT", RECEIPT, out)) is int
        except ParseError:
            assert out.mark() == before
        assert_buffered_rows_survive(ALONE[binance.name], out.flush(RECEIPT.wall_ns))


SWAPS: list[Any] = [None, True, False, 0, -1, 1.5, 2**63, 2**64 - 1, -(2**63), "", "x", "0.001", [], {}, [[]], ["1"]]


def mutated(data: st.DataObject, seed: bytes) -> bytes:
    """The seed with 1-3 nodes deleted or replaced by a value of another type, re-encoded."""
    tree = orjson.loads(seed)
    for _ in range(data.draw(st.integers(1, 3))):
        where = paths(tree)
        if not where:
            break
        path = data.draw(st.sampled_from(where))
        if data.draw(st.booleans()):
            mutate(tree, path, None, delete=True)
        else:
            mutate(tree, path, data.draw(st.sampled_from(SWAPS)), delete=False)
    return orjson.dumps(tree)


def flipped(data: st.DataObject, seed: bytes) -> bytes:
    """The seed with up to 4 bytes overwritten, then maybe truncated."""
    frame = bytearray(seed)
    for _ in range(data.draw(st.integers(0, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    return bytes(frame[:cut]) if data.draw(st.booleans()) else bytes(frame)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(frame: bytes) -> None:
    check(frame)


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text(frame: str) -> None:
    check(frame)


@FUZZ
@given(st.data())
def test_byte_flips_and_truncation(seeds: list[bytes], data: st.DataObject) -> None:
    check(flipped(data, data.draw(st.sampled_from(seeds))))


@FUZZ
@given(st.data())
def test_field_deletion_and_type_swaps(seeds: list[bytes], data: st.DataObject) -> None:
    check(mutated(data, data.draw(st.sampled_from(seeds))))


@FUZZ
@given(st.data())
def test_hostile_levels_and_numbers(data: st.DataObject) -> None:
    """depthUpdate / bookTicker / aggTrade frames whose values come from hostile JSON."""
    scalar = st.one_of(
        st.sampled_from(SWAPS),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**63), 2**64 - 1),
        st.text(max_size=6),
    )
    number = st.one_of(st.sampled_from(["0.35130000", "0", "6195.00000000"]), scalar)
    # mostly well-shaped pairs, so that a bad value sits beside good ones
    level = st.one_of(st.tuples(number, number).map(list), st.lists(scalar, max_size=3)).map(copy.deepcopy)
    depth = {
        "e": "depthUpdate",
        "E": data.draw(st.one_of(st.just(1), scalar)),
        "s": "BTCUSDT",
        "U": data.draw(st.one_of(st.just(1), scalar)),
        "u": data.draw(st.one_of(st.just(2), scalar)),
        "pu": data.draw(st.one_of(st.just(0), scalar)),
        "b": data.draw(st.lists(level, max_size=4)),
        "a": data.draw(st.lists(level, max_size=4)),
    }
    check(orjson.dumps({"stream": data.draw(st.sampled_from(["btcusdt@depth", "btcusdt@depth5"])), "data": depth}))
    ticker = {
        "u": data.draw(scalar),
        "s": "BTCUSDT",
        "b": data.draw(scalar),
        "B": "1",
        "a": data.draw(scalar),
        "A": "2",
    }
    check(orjson.dumps(ticker))
    trade = {"e": "aggTrade", "s": "BTCUSDT", "a": data.draw(scalar), "p": data.draw(scalar), "q": data.draw(scalar)}
    check(orjson.dumps({**trade, "T": data.draw(scalar), "m": data.draw(scalar)}))


@FUZZ
@given(st.data())
def test_mutated_rest_snapshots(snapshots: list[bytes], data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(snapshots))
    check_snapshot(mutated(data, seed) if data.draw(st.booleans()) else flipped(data, seed))


def test_every_capture_frame_and_its_truncations() -> None:
    for name, binance in zip(("binance", "binance_futures"), VENUES, strict=True):
        out = binance.columns()
        for frame in ws_frames(name):
            binance.parse(frame, RECEIPT, out)  # the real frames never raise
            check(frame[: len(frame) // 2])
        assert out.flush(RECEIPT.wall_ns).rejects == 0
    for frame in SYNTHETIC:
        for binance in VENUES:
            binance.parse(frame, RECEIPT, binance.columns())
