"""The Arrow schema of every table: the single source of truth.

Stored tables (written by the sinks): trades, l2, bbo, events, book_snapshots.
Transport-only columns travel between actors and are dropped before a sink
(see `L2_WIRE` and `L2_MESSAGES`).

Timestamps are int64 nanoseconds UTC, prices and sizes float64, and
exchange/symbol/side/kind dictionary-encoded strings. Size 0 in an l2 row
means the level is deleted.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("ns", tz="UTC")
EXCHANGE = pa.dictionary(pa.int8(), pa.string())
SYMBOL = pa.dictionary(pa.int32(), pa.string())
SIDE = pa.dictionary(pa.int8(), pa.string())
KIND = pa.dictionary(pa.int8(), pa.string())


def _field(name: str, type_: pa.DataType, nullable: bool, doc: str) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


_EXCHANGE = _field("exchange", EXCHANGE, False, "venue name: binance, binance_futures, okx, deribit")
_SYMBOL = _field("symbol", SYMBOL, False, "venue-native instrument id (BTCUSDT, BTC-USDT-SWAP, BTC-PERPETUAL)")
_EXCHANGE_TS = _field("exchange_ts", TS, True, "exchange event time; null when the venue sends none")
_RECEIVE_TS = _field("receive_ts", TS, False, "local wall clock when the frame arrived")

TRADES = pa.schema(
    [
        _EXCHANGE,
        _SYMBOL,
        _EXCHANGE_TS,
        _RECEIVE_TS,
        _field("trade_id", pa.string(), False, "venue trade id (aggregate id for Binance aggTrade)"),
        _field("side", SIDE, False, "aggressor (taker) side: buy or sell"),
        _field("price", pa.float64(), False, "trade price"),
        _field("size", pa.float64(), False, "trade size in the venue's native unit"),
    ]
)

L2 = pa.schema(
    [
        _EXCHANGE,
        _SYMBOL,
        _EXCHANGE_TS,
        _RECEIVE_TS,
        _field("seq", pa.int64(), False, "venue sequence id of the message (last update id)"),
        _field("prev_seq", pa.int64(), True, "the previous message's seq as the venue states it; null when not sent"),
        _field("first_seq", pa.int64(), True, "first update id of the message (Binance U); null elsewhere"),
        _field("side", SIDE, False, "bid or ask"),
        _field("price", pa.float64(), False, "level price"),
        _field("size", pa.float64(), False, "absolute size at the level; 0 deletes the level"),
        _field("is_snapshot", pa.bool_(), False, "true: the rows of this seq replace the whole book"),
    ]
)

BBO = pa.schema(
    [
        _EXCHANGE,
        _SYMBOL,
        _EXCHANGE_TS,
        _RECEIVE_TS,
        _field("seq", pa.int64(), True, "venue book update id when published (Binance u, OKX seqId)"),
        _field("bid_price", pa.float64(), True, "best bid price; null when the side is empty"),
        _field("bid_size", pa.float64(), True, "best bid size"),
        _field("ask_price", pa.float64(), True, "best ask price; null when the side is empty"),
        _field("ask_size", pa.float64(), True, "best ask size"),
    ]
)

EVENT_KINDS = (
    "connect",
    "disconnect",
    "subscribe",
    "gap",
    "resync",
    "checksum_fail",
    "reject",
    "drop",
    "error",
    "unknown",
    "recovered",
    "chaos",
)

EVENTS = pa.schema(
    [
        _EXCHANGE,
        _field("symbol", SYMBOL, True, "instrument concerned, null for connection-wide events"),
        _field("ts", TS, False, "local wall clock when the event happened"),
        _field("kind", KIND, False, "one of: " + ", ".join(EVENT_KINDS)),
        _field("detail", pa.string(), True, "human-readable detail (error text, seq numbers)"),
    ]
)

BOOK_SNAPSHOTS = pa.schema(
    [
        _EXCHANGE,
        _SYMBOL,
        _field("ts", TS, False, "local wall clock when the validated book was sampled"),
        _field("level", pa.int16(), False, "0 = best"),
        _field("bid_price", pa.float64(), True, "bid price at this level; null past the book's depth"),
        _field("bid_size", pa.float64(), True, "bid size at this level"),
        _field("ask_price", pa.float64(), True, "ask price at this level; null past the book's depth"),
        _field("ask_size", pa.float64(), True, "ask size at this level"),
    ]
)

#: The stored tables, by name.
TABLES: dict[str, pa.Schema] = {
    "trades": TRADES,
    "l2": L2,
    "bbo": BBO,
    "events": EVENTS,
    "book_snapshots": BOOK_SNAPSHOTS,
}

#: l2 between actors: the stored columns plus the venue's exact price/size text
#: (kept only by venues with a checksum over the original strings, i.e. OKX).
L2_WIRE = pa.schema(
    [
        *list(L2),
        _field("price_text", pa.string(), True, "price exactly as the venue sent it (OKX checksum input)"),
        _field("size_text", pa.string(), True, "size exactly as the venue sent it (OKX checksum input)"),
    ]
)

#: One row per l2 message (including messages with no levels), so the book
#: actor can run the sync rules per message. Transport only.
L2_MESSAGES = pa.schema(
    [
        _SYMBOL,
        _EXCHANGE_TS,
        _RECEIVE_TS,
        _field("seq", pa.int64(), False, "venue sequence id"),
        _field("prev_seq", pa.int64(), True, "venue's previous sequence id"),
        _field("first_seq", pa.int64(), True, "first update id (Binance U)"),
        _field("is_snapshot", pa.bool_(), False, "message replaces the book"),
        _field("checksum", pa.int64(), True, "venue checksum of the book after this message; null or 0: none"),
        _field("bid_rows", pa.int32(), False, "number of bid rows of this message in the l2 batch"),
        _field("ask_rows", pa.int32(), False, "number of ask rows (after the bids)"),
    ]
)


def stored(batch: pa.RecordBatch, table: str) -> pa.RecordBatch:
    """Select the stored columns of `table` from a transport batch (drops wire-only columns)."""
    schema = TABLES[table]
    if batch.schema.names == schema.names:
        return batch
    return pa.RecordBatch.from_arrays([batch.column(name) for name in schema.names], schema=schema)
