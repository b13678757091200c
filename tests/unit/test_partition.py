"""`xtrader.sinks.partition.split`: each row in the piece of its (exchange, day), in order, in file schema; the
one-exchange one-day batch (its fast path) the same as any other."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xtrader import schema
from xtrader.sinks.partition import FILE_SCHEMAS, NS_PER_DAY, split

DAY0 = 20_000 * NS_PER_DAY  # 2024-10-04


def trades(exchanges: list[str], names: list[str], event: list[int | None], receipt: list[int]) -> pa.RecordBatch:
    n = len(exchanges)
    ts = pa.timestamp("ns", tz="UTC")
    columns = {
        "exchange": pa.DictionaryArray.from_arrays(
            pa.array([names.index(e) for e in exchanges], pa.int8()), pa.array(names, pa.string())
        ),
        "symbol": pa.array(["BTCUSDT"] * n).dictionary_encode().cast(pa.dictionary(pa.int32(), pa.string())),
        "exchange_ts": pa.array(event, pa.int64()).cast(ts),
        "receive_ts": pa.array(receipt, pa.int64()).cast(ts),
        "trade_id": pa.array([str(i) for i in range(n)]),
        "side": pa.array(["buy"] * n).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())),
    }
    target = schema.TABLES["trades"]
    arrays = [columns[f.name] if f.name in columns else pa.array([1.0] * n, f.type) for f in target]
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def expected(batch: pa.RecordBatch) -> dict[tuple[str, str], list[str]]:
    """(exchange, date) -> trade ids in order, row by row."""
    out: dict[tuple[str, str], list[str]] = {}
    rows = batch.to_pydict()
    for exchange, event, receipt, trade_id in zip(
        rows["exchange"], rows["exchange_ts"], rows["receive_ts"], rows["trade_id"], strict=True
    ):
        day = (event or receipt).astimezone(dt.UTC).date().isoformat()
        out.setdefault((exchange, day), []).append(trade_id)
    return out


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["binance", "okx"]),
            st.integers(0, 2 * NS_PER_DAY),
            st.booleans(),  # no exchange time: the receipt's decides
        ),
        min_size=1,
        max_size=40,
    ),
    st.booleans(),  # the dictionary lists both names even when one is used
)
def test_every_row_lands_in_its_exchange_and_days_piece_in_order(rows: list[tuple[str, int, bool]], wide: bool) -> None:
    exchanges = [e for e, _, _ in rows]
    names = ["binance", "okx"] if wide else sorted(set(exchanges))
    event = [None if no_event else DAY0 + t for _, t, no_event in rows]
    receipt = [DAY0 + t for _, t, _ in rows]
    batch = trades(exchanges, names, event, receipt)
    pieces = split("trades", batch)
    got = {(p.exchange, p.date): p.batch.column("trade_id").to_pylist() for p in pieces}
    assert got == expected(batch)
    for piece in pieces:
        assert piece.batch.schema.equals(FILE_SCHEMAS["trades"], check_metadata=True)
        assert set(piece.batch.column("exchange").to_pylist()) == {piece.exchange}


def test_an_exchange_name_unfit_for_a_directory_and_a_row_without_time_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot name a partition directory"):
        split("trades", trades(["bin/ance"], ["bin/ance"], [DAY0], [DAY0]))
    with pytest.raises(ValueError, match="cannot name a partition directory"):
        split("trades", trades(["okx", "x y"], ["okx", "x y"], [DAY0, DAY0], [DAY0, DAY0]))
