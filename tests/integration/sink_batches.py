"""Batches of every stored table for the sink tests, built the way connectors build them."""

from __future__ import annotations

import pyarrow as pa

from xtrader import schema
from xtrader.batch import Columns, constant_dictionary, dictionary, floats, timestamps

#: 2024-01-02T00:00:00Z in ns
DAY = 1_704_153_600_000_000_000
NS_PER_DAY = 86_400_000_000_000


def trades(exchange: str = "binance", rows: int = 5, start_ns: int = DAY, first_id: int = 0) -> pa.RecordBatch:
    columns = Columns(exchange)
    for i in range(rows):
        columns.trades.symbol.append("BTCUSDT" if i % 2 == 0 else "ETHUSDT")
        columns.trades.exchange_ts.append(start_ns + i * 1_000_000)
        columns.trades.receive_ts.append(start_ns + i * 1_000_000 + 123_456_789)
        columns.trades.trade_id.append(first_id + i)
        columns.trades.side.append("buy" if i % 3 else "sell")
        columns.trades.price.append(f"{42000.5 + i * 0.1:.2f}")
        columns.trades.size.append(f"{0.001 * (i + 1):.6f}")
    batch = columns.flush().trades
    assert batch is not None
    return batch


def l2(exchange: str = "okx", messages: int = 3, start_ns: int = DAY) -> pa.RecordBatch:
    columns = Columns(exchange, keep_text=True)
    for m in range(messages):
        columns.l2.message(
            "BTC-USDT",
            start_ns + m * 1_000_000,
            start_ns + m * 1_000_000 + 5_000,
            100 + m,
            99 + m if m else None,
            None,
            m == 0,
            None,
            2,
            1,
        )
        columns.l2.price.extend(["41999.9", "41999.8", "42000.1"])
        columns.l2.size.extend(["1.5", "0", f"{2.25 + m}"])
    batch = columns.flush().l2
    assert batch is not None
    return batch  # L2_WIRE: the sinks must drop the text columns themselves


def bbo(exchange: str = "binance", start_ns: int = DAY) -> pa.RecordBatch:
    """Three quotes: both sides, bid side empty, ask side empty; the last without exchange time."""
    columns = Columns(exchange)
    quotes = [("41999.9", "1.0", "42000.0", "2.0"), (None, None, "42000.5", "0.5"), ("41998.0", "3.0", None, None)]
    for i, (bid, bid_size, ask, ask_size) in enumerate(quotes):
        columns.bbo.symbol.append("BTCUSDT")
        columns.bbo.exchange_ts.append(None if i == 2 else start_ns + i * 1_000)
        columns.bbo.receive_ts.append(start_ns + i * 1_000 + 777)
        columns.bbo.seq.append(1000 + i)
        columns.bbo.bid_price.append(bid)
        columns.bbo.bid_size.append(bid_size)
        columns.bbo.ask_price.append(ask)
        columns.bbo.ask_size.append(ask_size)
    batch = columns.flush().bbo
    assert batch is not None
    return batch


def events(exchange: str = "deribit", start_ns: int = DAY) -> pa.RecordBatch:
    columns = Columns(exchange)
    columns.events.add(None, start_ns, "connect", "wss://test.deribit.com/ws/api/v2")
    columns.events.add("BTC-PERPETUAL", start_ns + 1, "gap", 'expected 5, got 7 "quoted", back\\slash')
    columns.events.add("BTC-PERPETUAL", start_ns + 2, "resync", None)
    batch = columns.flush().events
    assert batch is not None
    return batch


def book_snapshots(exchange: str = "okx", start_ns: int = DAY) -> pa.RecordBatch:
    """Three levels; the book has only two asks."""
    n = 3
    return pa.RecordBatch.from_arrays(
        [
            constant_dictionary(exchange, n),
            dictionary(["BTC-USDT"] * n, pa.int32()),
            timestamps([start_ns] * n),
            pa.array([0, 1, 2], pa.int16()),
            floats([41999.9, 41999.8, 41999.0]),
            floats([1.0, 2.0, 3.0]),
            pa.array([42000.1, 42000.2, None], pa.float64()),
            pa.array([0.5, 0.25, None], pa.float64()),
        ],
        schema=schema.BOOK_SNAPSHOTS,
    )


def all_tables(start_ns: int = DAY) -> dict[str, pa.RecordBatch]:
    return {
        "trades": trades(start_ns=start_ns),
        "l2": l2(start_ns=start_ns),
        "bbo": bbo(start_ns=start_ns),
        "events": events(start_ns=start_ns),
        "book_snapshots": book_snapshots(start_ns=start_ns),
    }


def plain_type(type_: pa.DataType) -> pa.DataType:
    """Dictionaries, large/view strings and dates as string, timestamps as int64 ns: values that compare plainly."""
    if pa.types.is_timestamp(type_):
        return pa.int64()
    if (
        pa.types.is_dictionary(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_string_view(type_)
        or pa.types.is_date(type_)
    ):
        return pa.string()
    return type_


def plain_schema(schema_: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(field.name, plain_type(field.type)) for field in schema_])
