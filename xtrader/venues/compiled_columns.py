"""Column buffers of one connection, with a compiled parser's C buffers beside the Python lists.

A venue's compiled parser (`xtrader/venues/_<venue>_fast.c`, on `_accumulator.h`) parses its hot frames from bytes
into C arrays: no Python object per message or level, and a flush wraps the arrays in Arrow without a copy or a
decimal parse. Every other frame goes through the venue's Python parser into the lists, as before. Row order is
kept: before the Python parser appends, the C rows are moved to the lists (`spill`, in `after_buffered`: only when
it did append), so the lists always hold the older rows; a flush with rows in both spills too, and builds from the
lists.

`compiled(module)` is False when the extension was not built (a source checkout without `pip install -e .`) or
when `XTRADER_PURE_PYTHON=1`: then the venue never makes its `CompiledColumns` and the Python parser takes every
frame.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

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

if TYPE_CHECKING:
    from xtrader.clock import Receipt
    from xtrader.venues.base import Control

    #: a venue's Python parser: `_parse(frame, receipt, out)`
    PythonParse = Callable[[bytes | str, Receipt, Columns], Sequence[Control]]

_T = TypeVar("_T")
_SYMBOL_TYPE = pa.dictionary(pa.int32(), pa.string())
_SIDE_TYPE = pa.dictionary(pa.int8(), pa.string())


def compiled(module: ModuleType | None) -> bool:
    """True when a venue's compiled parser is built and not turned off (`XTRADER_PURE_PYTHON=1`)."""
    return module is not None and os.environ.get("XTRADER_PURE_PYTHON", "") not in ("1", "true", "yes")


@dataclass
class CompiledColumns(Columns):
    """`Columns` whose hot rows a compiled parser buffers (`fast`); see the module's docstring.

    A venue's subclass names its `accumulator` (the C type) and how the Python parser's lists hold what C parsed:
    `spill_text` (prices and sizes as text that parses back to the same float64, as the venue's wire strings;
    else floats, as its JSON numbers) and `trade_id` (the id's text to the lists' value).
    """

    accumulator: ClassVar[Any]
    spill_text: ClassVar[bool] = True
    trade_id: ClassVar[Callable[[str], Any]] = str

    scale: int = 1_000_000  # ns per wire time unit
    fast: Any = field(init=False, repr=False)  # the C accumulator, made with the columns

    def __post_init__(self) -> None:
        super().__post_init__()
        # rows(): the C rows plus the lists' (the same lists as Columns.rows counts), in one C call per frame
        lists = (self.trades.symbol, self.l2.price, self.bbo.symbol, self.events.kind)
        self.fast = self.accumulator(self.scale, lists, self.keep_text)
        self.rows = self.fast.rows  # type: ignore[method-assign]

    def declined(self, frame: bytes | str, receipt: Receipt, python: PythonParse) -> Sequence[Control]:
        """A frame the C parser did not take (`fast.parse` was False): the venue's Python parser (`python`), whose
        rows go after those C holds. `Venue.parse` calls `fast.parse` itself, and `Venue.parser` makes this the
        accumulator's fallback: a Python call less a frame (140 ns of a Binance frame's ~1 µs)."""
        return self.after_buffered(lambda: python(frame, receipt, self))

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
                self._spill_l2(l2)
            if trades is not None:
                self._spill_trades(trades)
            if bbo is not None:
                self._spill_bbo(bbo)

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

    # -- spilling: the C rows as the Python parser would have appended them

    def _values(self, data: bytes) -> list[Any]:
        floats: list[Any] = np.frombuffer(data, np.float64).tolist()
        return list(map(repr, floats)) if self.spill_text else floats

    def _spill_l2(self, taken: tuple[Any, ...]) -> None:
        _m, _n, symbols, ets, rts, seq, pseq, pnull, fseq, fnull, snap, cks, cnull, brows, arows, price, size, texts = (
            taken
        )
        l2 = self.l2
        l2.symbol += _symbols(symbols)
        l2.exchange_ts += _i64(ets).tolist()
        l2.receive_ts += _i64(rts).tolist()
        l2.seq += _i64(seq).tolist()
        l2.prev_seq += _with_nulls(pseq, pnull)
        l2.first_seq += _with_nulls(fseq, fnull)
        l2.is_snapshot += np.frombuffer(snap, np.bool_).tolist()
        l2.checksum += _with_nulls(cks, cnull)
        l2.bid_rows += np.frombuffer(brows, np.int32).tolist()
        l2.ask_rows += np.frombuffer(arows, np.int32).tolist()
        if texts is not None:
            price_offsets, price_text, size_offsets, size_text = texts
            l2.price += _strings(price_offsets, price_text)
            l2.size += _strings(size_offsets, size_text)
        else:
            l2.price += self._values(price)
            l2.size += self._values(size)

    def _spill_trades(self, taken: tuple[Any, ...]) -> None:
        _k, symbols, ets, rts, id_offsets, id_text, sides, price, size = taken
        trades = self.trades
        trades.symbol += _symbols(symbols)
        trades.exchange_ts += _i64(ets).tolist()
        trades.receive_ts += _i64(rts).tolist()
        trades.trade_id += list(map(type(self).trade_id, _strings(id_offsets, id_text)))
        side_codes, side_names = sides
        trades.side += [side_names[c] for c in np.frombuffer(side_codes, np.int8).tolist()]
        trades.price += self._values(price)
        trades.size += self._values(size)

    def _spill_bbo(self, taken: tuple[Any, ...]) -> None:
        _j, symbols, ets, enull, rts, seq, snull, bid, bid_size, ask, ask_size, bnull, anull = taken
        bbo = self.bbo
        bbo.symbol += _symbols(symbols)
        bbo.exchange_ts += _with_nulls(ets, enull)
        bbo.receive_ts += _i64(rts).tolist()
        bbo.seq += _with_nulls(seq, snull)
        for column, values, nulls in (
            (bbo.bid_price, bid, bnull),
            (bbo.bid_size, bid_size, bnull),
            (bbo.ask_price, ask, anull),
            (bbo.ask_size, ask_size, anull),
        ):
            column += [None if null else v for v, null in zip(self._values(values), nulls, strict=True)]


def _i64(data: bytes) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.frombuffer(data, np.int64)


def _f64(data: bytes, mask: np.ndarray[Any, Any] | None = None) -> pa.Array:
    return pa.array(np.frombuffer(data, np.float64), mask=mask)


def _mask(nulls: bytes) -> np.ndarray[Any, Any] | None:
    """The null mask of a column (None: no null)."""
    mask = np.frombuffer(nulls, np.bool_)
    return mask if mask.any() else None


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


def _text(count: int, offsets: bytes, data: bytes) -> pa.Array:
    return pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _l2(exchange: str, taken: tuple[Any, ...]) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    *columns, texts = taken
    _m, n, (codes, names), ets, rts, seq, pseq, pnull, fseq, fnull, snap, cks, cnull, brows, arows, price, size = (
        columns
    )
    plain = ((_i64(ets), schema.TS), (_i64(rts), schema.TS), (_i64(seq), pa.int64()))
    ints: list[tuple[np.ndarray[Any, Any] | None, pa.Array]] = [(a, from_int64s(a, t)) for a, t in plain]
    ints.append(_nullable(pseq, pnull, pa.int64()))
    ints.append(_nullable(fseq, fnull, pa.int64()))
    snapshots = np.frombuffer(snap, np.bool_)
    if texts is not None:
        price_offsets, price_text, size_offsets, size_text = texts
        text_price, text_size = _text(n, price_offsets, price_text), _text(n, size_offsets, size_text)
    else:
        text_price = text_size = pa.nulls(n, pa.string())
    return l2_batches(
        exchange,
        np.frombuffer(codes, np.int32),
        _dictionary_values(tuple(names)),
        ints,
        snapshots,
        pa.array(snapshots),
        _nullable(cks, cnull, pa.int64())[1],
        np.frombuffer(brows, np.int32),
        np.frombuffer(arows, np.int32),
        (_f64(price), _f64(size), text_price, text_size),
    )


def _trades(exchange: str, taken: tuple[Any, ...]) -> pa.RecordBatch:
    k, symbols, ets, rts, id_offsets, id_text, sides, price, size = taken
    return pa.RecordBatch.from_arrays(
        [
            constant_dictionary(exchange, k),
            _codes(symbols, _SYMBOL_TYPE, np.int32),
            from_int64s(_i64(ets), schema.TS),
            from_int64s(_i64(rts), schema.TS),
            _text(k, id_offsets, id_text),
            _codes(sides, _SIDE_TYPE, np.int8),
            _f64(price),
            _f64(size),
        ],
        schema=schema.TRADES,
    )


def _bbo(exchange: str, taken: tuple[Any, ...]) -> pa.RecordBatch:
    j, symbols, ets, enull, rts, seq, snull, bid, bid_size, ask, ask_size, bnull, anull = taken
    return pa.RecordBatch.from_arrays(
        [
            constant_dictionary(exchange, j),
            _codes(symbols, _SYMBOL_TYPE, np.int32),
            _nullable(ets, enull, schema.TS)[1],
            from_int64s(_i64(rts), schema.TS),
            _nullable(seq, snull, pa.int64())[1],
            _f64(bid, bid_mask := _mask(bnull)),
            _f64(bid_size, bid_mask),
            _f64(ask, ask_mask := _mask(anull)),
            _f64(ask_size, ask_mask),
        ],
        schema=schema.BBO,
    )


def _symbols(encoded: tuple[bytes, list[str]]) -> list[str]:
    codes, names = encoded
    return [names[c] for c in np.frombuffer(codes, np.int32).tolist()]


def _strings(offsets: bytes, data: bytes) -> list[str]:
    bounds = np.frombuffer(offsets, np.int32).tolist()
    text = data.decode("ascii")
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _with_nulls(values: bytes, nulls: bytes) -> list[int | None]:
    return [None if null else v for v, null in zip(_i64(values).tolist(), nulls, strict=True)]
