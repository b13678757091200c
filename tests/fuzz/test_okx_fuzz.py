"""OKX parser fuzz: any input either parses or raises ParseError leaving nothing behind,
and a flush after it never raises."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.captures import ws_frames
from tests.fuzz.contract import assert_buffered_rows_survive, buffered_alone
from tests.fuzz.mutations import mutate, paths
from xtrader.batch import Columns
from xtrader.clock import Receipt
from xtrader.errors import ParseError
from xtrader.venues import venue

RECEIPT = Receipt(1_700_000_000_000_000_000, 0)
VENUE = venue("okx")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: seqId-era frames the 2022 capture lacks, written from EXCHANGES.md 3.x
SYNTHETIC = [
    b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["8476.98","415","0","13"],'
    b'["8477","7","0","2"]],"bids":[["8476.9","1","0","1"]],"ts":"1597026383085","checksum":0,"prevSeqId":-1,'
    b'"seqId":123456}]}',
    b'{"arg":{"channel":"books-l2-tbt","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],'
    b'"ts":"1597026383185","checksum":0,"prevSeqId":123456,"seqId":123456}]}',
    b'{"arg":{"channel":"books5","instId":"BCH-USDT-SWAP"},"data":[{"asks":[["111.06","55154","0","2"]],'
    b'"bids":[["111.05","57745","0","2"]],"instId":"BCH-USDT-SWAP","ts":"1670324386802","seqId":363996337}]}',
    b'{"arg":{"channel":"bbo-tbt","instId":"BCH-USDT-SWAP"},"data":[{"asks":[["111.06","55154","0","2"]],'
    b'"bids":[],"ts":"1670324386802","seqId":363996337}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474",'
    b'"px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3","source":"0","seqId":1234},'
    b'{"instId":"BTC-USDT","tradeId":"130639475","px":"42219.8","sz":"0.1","side":"sell","ts":"1630048897898"}]}',
    b'{"id":"7","event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}',
    b'{"event":"notice","code":"64008","msg":"The connection will soon be closed","connId":"a4d3ae55"}',
    b"pong",
]

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
    "0",
    " 1",
    "1_0",
    "1e400",
    "-1",
    "snapshot",
    "update",
    [],
    {},
    [[]],
    [["1", "2"]],
    ["1", "2"],
]


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    frames = ws_frames("okx")
    # one of each capture kind: ack, ticker, trade, update (the 400-level snapshot is in the last test)
    picked = [frames[0], frames[18], frames[21], frames[27], frames[29]]
    return picked + SYNTHETIC


def check(frame: bytes | str) -> None:
    """The fuzz contract, with rows already buffered so that a bad rollback would show."""
    out = VENUE.columns()
    buffer(out)
    before = out.mark()
    try:
        VENUE.parse(frame, RECEIPT, out)
    except ParseError:
        assert out.mark() == before
    flushed = out.flush(RECEIPT.wall_ns)  # never raises, whatever was appended
    assert_buffered_rows_survive(ALONE, flushed)


def buffer(out: Columns) -> None:
    VENUE.parse(SYNTHETIC[0], RECEIPT, out)
    VENUE.parse(SYNTHETIC[4], RECEIPT, out)
    VENUE.parse(SYNTHETIC[3], RECEIPT, out)


#: what the buffered frames flush to on their own: they must come out of every flush whole
ALONE = buffered_alone(buffer, VENUE.columns, RECEIPT.wall_ns)


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
    seed = data.draw(st.sampled_from(seeds))
    if seed == b"pong":
        return
    tree = orjson.loads(seed)
    for _ in range(data.draw(st.integers(1, 3))):
        where = paths(tree)
        if not where:
            break
        path = data.draw(st.sampled_from(where))
        tree = mutate(tree, path, data.draw(st.sampled_from(SWAPS)), data.draw(st.booleans()))
    check(orjson.dumps(tree))


#: hostile JSON values, and strings near decimals: float() accepts " 1", "1_0" and "1 ", Arrow does not
SCALAR = st.one_of(
    st.sampled_from(SWAPS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**64 - 1),
)
TEXT = st.one_of(
    st.text(alphabet=st.sampled_from("0123456789.-+eE _\t\u00a0１x"), max_size=6),
    st.sampled_from(["1", "0", "0.5", " 1", "1 ", "1_0", "nan", "inf", "1e400", "１", ""]),
)
VALUE = st.one_of(TEXT, TEXT, TEXT, SCALAR)  # mostly strings, so that whole frames often get through


def header(data: st.DataObject, valid: Any) -> Any:
    """A message-level field: valid three times in four, else hostile."""
    return valid if data.draw(st.integers(0, 3)) else data.draw(VALUE)


@FUZZ
@given(st.data())
def test_level_and_trade_values(data: st.DataObject) -> None:
    """Levels, trades and tickers built from hostile values, in otherwise valid frames."""
    level = st.one_of(st.lists(VALUE, min_size=2, max_size=4), st.lists(VALUE, max_size=4), SCALAR)
    record = {
        "asks": data.draw(st.lists(level, max_size=4)),
        "bids": data.draw(st.lists(level, max_size=4)),
        "ts": header(data, "1597026383085"),
        "checksum": header(data, 0),
        "prevSeqId": header(data, -1),
        "seqId": header(data, 5),
    }
    channel = data.draw(st.sampled_from(["books", "books-l2-tbt", "books5", "bbo-tbt"]))
    action = data.draw(st.sampled_from(["snapshot", "update"]))
    check(orjson.dumps({"arg": {"channel": channel, "instId": "BTC-USDT"}, "action": action, "data": [record]}))
    trade = {
        "tradeId": header(data, "1"),
        "px": data.draw(VALUE),
        "sz": data.draw(VALUE),
        "side": header(data, "sell"),
        "ts": header(data, "1630048897897"),
    }
    check(orjson.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [trade]}))
    ticker = {key: data.draw(VALUE) for key in ("bidPx", "bidSz", "askPx", "askSz")} | {"ts": header(data, "1")}
    check(orjson.dumps({"arg": {"channel": "tickers", "instId": "BTC-USDT"}, "data": [ticker]}))


def test_every_capture_frame_and_its_truncations() -> None:
    for frame in ws_frames("okx"):
        check(frame)
        check(frame[: len(frame) // 2])
        check(frame.decode())
