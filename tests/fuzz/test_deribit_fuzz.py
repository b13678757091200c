"""Deribit parser fuzz: any input either parses or raises ParseError leaving nothing behind,
and a flush after it never raises."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.captures import ws_frames
from tests.fuzz.contract import assert_buffered_rows_survive, buffered_alone
from tests.fuzz.mutations import mutate, paths
from xtrader.clock import Receipt
from xtrader.errors import ParseError
from xtrader.venues import venue

RECEIPT = Receipt(1_700_000_000_000_000_000, 0)
VENUE = venue("deribit")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: frame kinds the capture lacks, written from EXCHANGES.md 4.x
SYNTHETIC = [
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.ETH-PERPETUAL.100ms","data":['
    b'{"trade_seq":30289432,"trade_id":"ETH-311974188","timestamp":1590484156350,"tick_direction":0,'
    b'"price":206.25,"mark_price":206.23,"instrument_name":"ETH-PERPETUAL","index_price":206.19,'
    b'"direction":"sell","amount":3.0},{"trade_seq":30289433,"trade_id":"ETH-311974189","timestamp":1590484156351,'
    b'"price":2.0625e2,"instrument_name":"ETH-PERPETUAL","direction":"buy","amount":1.0002e6}]}}',
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":{'
    b'"timestamp":1550658624149,"instrument_name":"BTC-PERPETUAL","best_bid_price":3914.97,"best_bid_amount":40.0,'
    b'"best_ask_price":null,"best_ask_amount":0}}}',
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.none.10.100ms","data":{'
    b'"timestamp":1554375447971,"instrument_name":"BTC-PERPETUAL","change_id":109615,"bids":[[160,40]],'
    b'"asks":[[161,20],[1.0002e6,5.5]]}}}',
    b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}',
    b'{"jsonrpc":"2.0","id":8,"error":{"message":"raw_subscriptions_not_available_for_unauthorized","code":13778}}',
    b'{"jsonrpc":"2.0","id":1,"result":"ok","usIn":1,"usOut":2,"usDiff":1,"testnet":false}',
]


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    frames = ws_frames("deribit")
    # one of each capture kind (response, ticker, snapshot, change) plus the synthetic ones
    picked = [frames[0], frames[1], frames[11], frames[22], frames[61]]
    return picked + SYNTHETIC


def check(frame: bytes | str) -> None:
    """The fuzz contract, with a row already buffered so that a bad rollback would show."""
    out = VENUE.columns()
    VENUE.parse(SYNTHETIC[2], RECEIPT, out)
    before = out.mark()
    try:
        VENUE.parse(frame, RECEIPT, out)
    except ParseError:
        assert out.mark() == before
    flushed = out.flush(RECEIPT.wall_ns)  # never raises, whatever was appended
    assert_buffered_rows_survive(ALONE, flushed)


#: what the buffered frame flushes to on its own: it must come out of every flush whole
ALONE = buffered_alone(lambda out: VENUE.parse(SYNTHETIC[2], RECEIPT, out), VENUE.columns, RECEIPT.wall_ns)


SWAPS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**63,
    2**64 - 1,
    -(2**63),
    "",
    "x",
    "0.001",
    [],
    {},
    [[]],
    [1, 2, 3],
]


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
    frame = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(0, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    check(bytes(frame[:cut]) if data.draw(st.booleans()) else bytes(frame))


@FUZZ
@given(st.data())
def test_field_deletion_and_type_swaps(seeds: list[bytes], data: st.DataObject) -> None:
    tree = orjson.loads(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 3))):
        where = paths(tree)
        if not where:
            break
        path = data.draw(st.sampled_from(where))
        tree = mutate(tree, path, data.draw(st.sampled_from(SWAPS)), data.draw(st.booleans()))
    check(orjson.dumps(tree))


@FUZZ
@given(st.data())
def test_level_and_trade_values(data: st.DataObject) -> None:
    """Levels and trades built from hostile JSON values, in otherwise valid frames."""
    scalar = st.one_of(
        st.sampled_from(SWAPS), st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**63), 2**64 - 1)
    )
    level = st.lists(st.one_of(scalar, st.sampled_from(["new", "change", "delete"])), max_size=4).map(copy.deepcopy)
    book = {
        "type": data.draw(st.sampled_from(["snapshot", "change"])),
        "timestamp": 1554373962454,
        "instrument_name": "BTC-PERPETUAL",
        "change_id": 2,
        "bids": data.draw(st.lists(level, max_size=4)),
        "asks": data.draw(st.lists(level, max_size=4)),
    }
    check(orjson.dumps({"method": "subscription", "params": {"channel": "book.BTC-PERPETUAL.raw", "data": book}}))
    trade = {
        "trade_id": data.draw(st.one_of(st.just("ETH-1"), scalar)),
        "timestamp": data.draw(st.one_of(st.just(1590484156350), scalar)),
        "instrument_name": "ETH-PERPETUAL",
        "direction": data.draw(st.sampled_from(["buy", "sell", "short", None])),
        "price": data.draw(scalar),
        "amount": data.draw(scalar),
    }
    check(orjson.dumps({"method": "subscription", "params": {"channel": "trades.ETH-PERPETUAL.raw", "data": [trade]}}))


def test_every_capture_frame_and_its_truncations() -> None:
    for frame in ws_frames("deribit"):
        check(frame)
        check(frame[: len(frame) // 2])
