"""Column buffers of one Binance connection, with the compiled parser's C buffers beside the Python lists.

`_binance_fast.Accumulator` (xtrader/venues/_binance_fast.c) parses the hot frames (combined-stream depthUpdate,
aggTrade, trade, bookTicker) from bytes into C arrays: no Python object per message or level, and a flush wraps
the arrays in Arrow without a copy or a decimal parse. Every other frame goes through the Python parser into the
lists, as for the other venues. Row order is kept: before the Python parser appends, the C rows are moved to the
lists (`spill`, in `after_buffered`: only when it did append), so the lists always hold the older rows; a flush
with rows in both spills too, and builds from the lists.

`COMPILED` is False when the extension was not built (a source checkout without `pip install -e .`) or when
`XTRADER_PURE_PYTHON=1`: then `BinanceColumns` is never made and the Python parser takes every frame.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from xtrader import schema
from xtrader.batch import (
    Batches,
    Columns,
    _dictionary_values,
    constant_dictionary,
    from_codes,
    from_int64s,
    l2_batches,
)

try:
    from xtrader.venues import _binance_fast
except ImportError:  # not built: the Python parser takes every frame
    _binance_fast = None  # type: ignore[assignment]

COMPILED = _binance_fast is not None and os.environ.get("XTRADER_PURE_PYTHON", "") not in ("1", "true", "yes")

_T = TypeVar("_T")
_SYMBOL_TYPE = pa.dictionary(pa.int32(), pa.string())
_SIDE_TYPE = pa.dictionary(pa.int8(), pa.string())


@dataclass
class BinanceColumns(Columns):
    """`Columns` whose hot rows the compiled parser buffers (`fast`); see the module's docstring."""

    scale: int = 1_000_000  # ns per wire time unit
    fast: Any = field(init=False, repr=False)  # the C accumulator, made with the columns

    def __post_init__(self) -> None:
        super().__post_init__()
        # rows(): the C rows plus the lists' (the same lists as Columns.rows counts), in one C call per frame
        lists = (self.trades.symbol, self.l2.price, self.bbo.symbol, self.events.kind)
        self.fast = _binance_fast.Accumulator(self.scale, lists)
        self.rows = self.fast.rows  # type: ignore[method-assign]

    def pending(self) -> bool:
        return self.fast.pending or super().pending()

    def l2_messages(self) -> int:
        buffered: int = self.fast.l2_messages
        return len(self.l2.symbol) + buffered

    def l2_heads(self, start: int) -> list[tuple[str, bool]]:
        buffered: list[tuple[str, bool]] = self.fast.heads(max(0, start - len(self.l2.symbol)))
        return super().l2_heads(start) + buffered

    def spill(self) -> None:
        """Move the C rows to the lists (before the Python parser appends after them)."""
        if self.fast.pending:
            l2, trades, bbo = self.fast.take()
            if l2 is not None:
                _spill_l2(self, l2)
            if trades is not None:
                _spill_trades(self, trades)
            if bbo is not None:
                _spill_bbo(self, bbo)

    def mark(self) -> tuple[int, ...]:
        """The lists' lengths, the C rows spilled first: what comes after a mark is in the lists or in C."""
        self.spill()
        return super().mark()

    def rollback(self, mark: tuple[int, ...]) -> None:
        """Back to a `mark()`: C held nothing then, so whatever it holds now goes too."""
        if self.fast.pending:
            self.fast.take()
        super().rollback(mark)

    def after_buffered(self, parse: Callable[[], _T]) -> _T:
        """`parse()` (the Python parser): any row it appends while the C buffers hold rows is moved after them."""
        if not self.fast.pending:
            return parse()
        mark = Columns.mark(self)  # the lists only: a frame that appends nothing (a kline, an ack) spills nothing
        try:
            return parse()
        finally:
            if Columns.mark(self) != mark:
                tails = [column[length:] for column, length in zip(self._all_lists, mark, strict=True)]
                Columns.rollback(self, mark)
                self.spill()
                for column, tail in zip(self._all_lists, tails, strict=True):
                    column.extend(tail)

    def flush(self, now_wall_ns: int = 0) -> Batches:
        if not self.fast.pending:
            return super().flush(now_wall_ns)
        if self.trades.records() or self.l2.records() or self.bbo.records():
            self.spill()
            return super().flush(now_wall_ns)
        l2, trades, bbo = self.fast.take()
        out = super().flush(now_wall_ns)  # events (and nothing else: the lists are empty)
        if l2 is not None:
            out.l2, out.l2_messages = _l2(self.exchange, l2)
        if trades is not None:
            out.trades = _trades(self.exchange, trades)
        if bbo is not None:
            out.bbo = _bbo(self.exchange, bbo)
        return out


def _i64(data: bytes) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.frombuffer(data, np.int64)


def _f64(data: bytes) -> pa.Array:
    return pa.array(np.frombuffer(data, np.float64))


def _codes(encoded: tuple[bytes, list[str]], type_: pa.DataType, dtype: Any) -> pa.Array:
    codes, names = encoded
    return from_codes(type_, np.frombuffer(codes, dtype), _dictionary_values(tuple(names)))


def _nullable(values: bytes, nulls: bytes, type_: pa.DataType) -> tuple[np.ndarray[Any, Any] | None, pa.Array]:
    """(the int64 array, or None when it has nulls; the Arrow column)."""
    array = _i64(values)
    mask = np.frombuffer(nulls, np.bool_)
    count = int(np.count_nonzero(mask))
    if not count:
        return array, from_int64s(array, type_)
    if count == len(array):
        return None, pa.nulls(len(array), type_)
    return None, pa.array(array, type_, mask=mask)


def _l2(exchange: str, taken: tuple[Any, ...]) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    m, n, (codes, names), ets, rts, seq, pseq, pnull, fseq, snap, brows, arows, price, size = taken
    plain = ((_i64(ets), schema.TS), (_i64(rts), schema.TS), (_i64(seq), pa.int64()))
    ints: list[tuple[np.ndarray[Any, Any] | None, pa.Array]] = [(a, from_int64s(a, t)) for a, t in plain]
    ints.append(_nullable(pseq, pnull, pa.int64()))
    first = _i64(fseq)
    ints.append((first, from_int64s(first, pa.int64())))
    snapshots = np.frombuffer(snap, np.bool_)
    text = pa.nulls(n, pa.string())
    return l2_batches(
        exchange,
        np.frombuffer(codes, np.int32),
        _dictionary_values(tuple(names)),
        ints,
        snapshots,
        pa.array(snapshots),
        pa.nulls(m, pa.int64()),
        np.frombuffer(brows, np.int32),
        np.frombuffer(arows, np.int32),
        (_f64(price), _f64(size), text, text),
    )


def _trades(exchange: str, taken: tuple[Any, ...]) -> pa.RecordBatch:
    k, symbols, ets, rts, id_offsets, id_text, sides, price, size = taken
    return pa.RecordBatch.from_arrays(
        [
            constant_dictionary(exchange, k),
            _codes(symbols, _SYMBOL_TYPE, np.int32),
            from_int64s(_i64(ets), schema.TS),
            from_int64s(_i64(rts), schema.TS),
            pa.Array.from_buffers(pa.string(), k, [None, pa.py_buffer(id_offsets), pa.py_buffer(id_text)]),
            _codes(sides, _SIDE_TYPE, np.int8),
            _f64(price),
            _f64(size),
        ],
        schema=schema.TRADES,
    )


def _bbo(exchange: str, taken: tuple[Any, ...]) -> pa.RecordBatch:
    j, symbols, ets, enull, rts, seq, bid, bid_size, ask, ask_size = taken
    return pa.RecordBatch.from_arrays(
        [
            constant_dictionary(exchange, j),
            _codes(symbols, _SYMBOL_TYPE, np.int32),
            _nullable(ets, enull, schema.TS)[1],
            from_int64s(_i64(rts), schema.TS),
            from_int64s(_i64(seq), pa.int64()),
            _f64(bid),
            _f64(bid_size),
            _f64(ask),
            _f64(ask_size),
        ],
        schema=schema.BBO,
    )


# -- spilling: the C rows as the Python parser would have appended them (decimals as text that parses back to the
# same float64: repr round-trips)


def _symbols(encoded: tuple[bytes, list[str]]) -> list[str]:
    codes, names = encoded
    return [names[c] for c in np.frombuffer(codes, np.int32).tolist()]


def _texts(data: bytes) -> list[str]:
    return list(map(repr, np.frombuffer(data, np.float64).tolist()))


def _with_nulls(values: bytes, nulls: bytes) -> list[int | None]:
    return [None if null else v for v, null in zip(_i64(values).tolist(), nulls, strict=True)]


def _spill_l2(out: Columns, taken: tuple[Any, ...]) -> None:
    m, _n, symbols, ets, rts, seq, pseq, pnull, fseq, snap, brows, arows, price, size = taken
    l2 = out.l2
    l2.symbol += _symbols(symbols)
    l2.exchange_ts += _i64(ets).tolist()
    l2.receive_ts += _i64(rts).tolist()
    l2.seq += _i64(seq).tolist()
    l2.prev_seq += _with_nulls(pseq, pnull)
    l2.first_seq += _i64(fseq).tolist()
    l2.is_snapshot += np.frombuffer(snap, np.bool_).tolist()
    l2.checksum += [None] * m
    l2.bid_rows += np.frombuffer(brows, np.int32).tolist()
    l2.ask_rows += np.frombuffer(arows, np.int32).tolist()
    l2.price += _texts(price)
    l2.size += _texts(size)


def _spill_trades(out: Columns, taken: tuple[Any, ...]) -> None:
    _k, symbols, ets, rts, id_offsets, id_text, sides, price, size = taken
    trades = out.trades
    offsets = np.frombuffer(id_offsets, np.int32).tolist()
    text = id_text.decode("ascii")
    trades.symbol += _symbols(symbols)
    trades.exchange_ts += _i64(ets).tolist()
    trades.receive_ts += _i64(rts).tolist()
    trades.trade_id += [int(text[a:b]) for a, b in itertools.pairwise(offsets)]
    side_codes, side_names = sides
    trades.side += [side_names[c] for c in np.frombuffer(side_codes, np.int8).tolist()]
    trades.price += _texts(price)
    trades.size += _texts(size)


def _spill_bbo(out: Columns, taken: tuple[Any, ...]) -> None:
    _j, symbols, ets, enull, rts, seq, bid, bid_size, ask, ask_size = taken
    bbo = out.bbo
    bbo.symbol += _symbols(symbols)
    bbo.exchange_ts += _with_nulls(ets, enull)
    bbo.receive_ts += _i64(rts).tolist()
    bbo.seq += _i64(seq).tolist()
    bbo.bid_price += _texts(bid)
    bbo.bid_size += _texts(bid_size)
    bbo.ask_price += _texts(ask)
    bbo.ask_size += _texts(ask_size)
