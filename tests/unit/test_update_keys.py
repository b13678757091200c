"""The arbiter's keys are the columns' values as Python objects, whatever the column's layout: the numpy path
for columns without nulls gives what `to_pylist` gives (a key built from a batch must equal the same key built
from a restart's rows, `BatchArbiter.seed`, and the same key from the other connection)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from xtrader.arbiter_batches import UpdateKeys, _pylist, _zip_keys

ints = st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=30)
symbols = st.lists(st.one_of(st.none(), st.sampled_from(["BTCUSDT", "ETH-USDT", "", "é"])), max_size=30)


@settings(max_examples=200, deadline=None)
@given(values=ints, int_type=st.sampled_from([pa.int64(), pa.int32()]), cut=st.integers(0, 30))
def test_an_int_column_gives_its_values(values: list[Any], int_type: pa.DataType, cut: int) -> None:
    if int_type == pa.int32():
        values = [None if v is None else v % 2**31 for v in values]
    array = pa.array(values, int_type)
    assert _pylist(array) == values
    chunked = pa.chunked_array([array[:cut], array[cut:]], int_type)
    assert _pylist(chunked) == values
    assert all(type(v) is int for v in _pylist(array) if v is not None)


@settings(max_examples=200, deadline=None)
@given(values=symbols, index_type=st.sampled_from([pa.int8(), pa.int32()]), cut=st.integers(0, 30))
def test_a_dictionary_column_gives_its_strings(values: list[Any], index_type: pa.DataType, cut: int) -> None:
    array = pa.array(values, pa.string()).dictionary_encode().cast(pa.dictionary(index_type, pa.string()))
    assert _pylist(array) == values
    assert _pylist(array[cut:]) == values[cut:]  # a slice: its indices start past the buffer's start
    assert _pylist(pa.chunked_array([array[:cut], array[cut:]])) == values


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["A", "B"]), st.integers(0, 2**40), st.one_of(st.none(), st.integers(0, 9))),
        max_size=20,
    )
)
def test_keys_are_the_rows_tuples(rows: list[tuple[Any, ...]]) -> None:
    symbol = pa.array([r[0] for r in rows], pa.string()).dictionary_encode()
    seq = pa.array([r[1] for r in rows], pa.int64())
    checksum = pa.array([r[2] for r in rows], pa.int64())
    assert _zip_keys("l2", symbol, seq, checksum) == [("l2", *r) for r in rows]
    trades = pa.table({"symbol": symbol, "trade_id": pa.array([str(r[1]) for r in rows], pa.string())})
    assert UpdateKeys().trades(trades) == [("trades", r[0], str(r[1])) for r in rows]
