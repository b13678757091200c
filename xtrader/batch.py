"""Column buffers that parsers append into, and their conversion to RecordBatches.

Parsers append raw values (the venue's price strings, numbers, ms->ns ints)
into plain lists: no per-row objects, no float() per level. Conversion to
float64 happens here, in Arrow's C++ cast, once per batch. A value that does
not convert (a malformed frame that slipped past the parser) costs only its
own record: it is pruned, counted in `rejects` and reported as an event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from xtrader import schema

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _is_int(value: Any) -> bool:
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX


def _is_opt_int(value: Any) -> bool:
    return value is None or _is_int(value)


def _is_number(value: Any) -> bool:
    """True when Arrow can turn the raw value into a float64."""
    if type(value) is str:
        try:
            float(value)
        except ValueError:
            return False
        return True
    # Arrow refuses ints beyond 2**53 as float64 (they would lose precision)
    return type(value) is float or (type(value) is int and -(1 << 53) <= value <= (1 << 53))


def _is_opt_number(value: Any) -> bool:
    return value is None or _is_number(value)


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_opt_str(value: Any) -> bool:
    return value is None or type(value) is str


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _is_trade_id(value: Any) -> bool:
    return type(value) is str or _is_int(value)


def floats(values: Sequence[Any]) -> pa.Array:
    """Raw venue numbers (decimal strings or JSON numbers) -> float64, null for None."""
    if values and type(values[0]) is str:
        return pa.array(values, pa.string()).cast(pa.float64())
    return pa.array(values, pa.float64())


def timestamps(values: Sequence[int | None]) -> pa.Array:
    """Epoch nanoseconds -> timestamp[ns, UTC]."""
    # built directly: a cast to a timezone-aware type costs ~150 us per call (measured)
    return pa.array(values, schema.TS)


def dictionary(values: Sequence[str | None], index_type: pa.DataType) -> pa.Array:
    """Strings -> dictionary array with the given index type.

    Encoded here rather than with Arrow's dictionary_encode + cast, which costs
    ~300 us per call whatever the length (measured): the values are few
    distinct symbols or sides, so a Python dict is faster.
    """
    index: dict[str, int] = {}
    codes = [None if v is None else index.setdefault(v, len(index)) for v in values]
    return pa.DictionaryArray.from_arrays(pa.array(codes, index_type), pa.array(list(index), pa.string()))


def constant_dictionary(value: str, length: int) -> pa.Array:
    """A dictionary<int8, string> column holding one value `length` times."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(length, dtype=np.int8)), pa.array([value], pa.string()))


class _Table:
    """Lists of raw values, one list per column, one entry per record."""

    #: (attribute name, validator) in record order
    _checks: tuple[tuple[str, Callable[[Any], bool]], ...] = ()

    def records(self) -> int:
        raise NotImplementedError

    def clear(self) -> None:
        for name in self._lists():
            getattr(self, name).clear()

    def _lists(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._checks)

    def _bad_records(self) -> list[int]:
        """Indices of records holding a value that cannot be converted."""
        bad = []
        for index in range(self.records()):
            for name, ok in self._checks:
                if not ok(getattr(self, name)[index]):
                    bad.append(index)
                    break
        return bad

    def _drop_records(self, bad: Sequence[int]) -> None:
        drop = set(bad)
        for name, _ in self._checks:
            column = getattr(self, name)
            column[:] = [v for i, v in enumerate(column) if i not in drop]
        self._normalize()

    def _normalize(self) -> None:
        """Slow path only: numeric columns become floats, so mixed str/number columns convert."""
        for name in self._numeric():
            column = getattr(self, name)
            column[:] = [None if v is None else float(v) for v in column]

    def _numeric(self) -> tuple[str, ...]:
        return tuple(name for name, check in self._checks if check in (_is_number, _is_opt_number))


class TradeColumns(_Table):
    """One entry per trade."""

    __slots__ = ("exchange_ts", "price", "receive_ts", "side", "size", "symbol", "trade_id")
    _checks = (
        ("symbol", _is_str),
        ("exchange_ts", _is_opt_int),
        ("receive_ts", _is_int),
        ("trade_id", _is_trade_id),
        ("side", _is_str),
        ("price", _is_number),
        ("size", _is_number),
    )

    def __init__(self) -> None:
        self.symbol: list[str] = []
        self.exchange_ts: list[int | None] = []
        self.receive_ts: list[int] = []
        self.trade_id: list[str | int] = []
        self.side: list[str] = []
        self.price: list[Any] = []
        self.size: list[Any] = []

    def records(self) -> int:
        return len(self.symbol)

    def _normalize(self) -> None:
        super()._normalize()
        self.trade_id[:] = [str(v) for v in self.trade_id]

    def build(self, exchange: str) -> pa.RecordBatch:
        ids = pa.array(self.trade_id)
        if ids.type != pa.string():
            ids = ids.cast(pa.string())
        n = len(self.symbol)
        return pa.RecordBatch.from_arrays(
            [
                constant_dictionary(exchange, n),
                dictionary(self.symbol, pa.int32()),
                timestamps(self.exchange_ts),
                timestamps(self.receive_ts),
                ids,
                dictionary(self.side, pa.int8()),
                floats(self.price),
                floats(self.size),
            ],
            schema=schema.TRADES,
        )


class BboColumns(_Table):
    """One entry per top-of-book update as the venue publishes it."""

    __slots__ = (
        "ask_price",
        "ask_size",
        "bid_price",
        "bid_size",
        "exchange_ts",
        "receive_ts",
        "seq",
        "symbol",
    )
    _checks = (
        ("symbol", _is_str),
        ("exchange_ts", _is_opt_int),
        ("receive_ts", _is_int),
        ("seq", _is_opt_int),
        ("bid_price", _is_opt_number),
        ("bid_size", _is_opt_number),
        ("ask_price", _is_opt_number),
        ("ask_size", _is_opt_number),
    )

    def __init__(self) -> None:
        self.symbol: list[str] = []
        self.exchange_ts: list[int | None] = []
        self.receive_ts: list[int] = []
        self.seq: list[int | None] = []
        self.bid_price: list[Any] = []
        self.bid_size: list[Any] = []
        self.ask_price: list[Any] = []
        self.ask_size: list[Any] = []

    def records(self) -> int:
        return len(self.symbol)

    def build(self, exchange: str) -> pa.RecordBatch:
        n = len(self.symbol)
        return pa.RecordBatch.from_arrays(
            [
                constant_dictionary(exchange, n),
                dictionary(self.symbol, pa.int32()),
                timestamps(self.exchange_ts),
                timestamps(self.receive_ts),
                pa.array(self.seq, pa.int64()),
                _opt_floats(self.bid_price),
                _opt_floats(self.bid_size),
                _opt_floats(self.ask_price),
                _opt_floats(self.ask_size),
            ],
            schema=schema.BBO,
        )


def _opt_floats(values: Sequence[Any]) -> pa.Array:
    """Like floats() but tolerates a mix of None with strings or numbers."""
    first = next((v for v in values if v is not None), None)
    if type(first) is str:
        return pa.array(values, pa.string()).cast(pa.float64())
    return pa.array(values, pa.float64())


class EventColumns(_Table):
    """One entry per event (connect, gap, reject, ...)."""

    __slots__ = ("detail", "kind", "symbol", "ts")
    _checks = (
        ("symbol", _is_opt_str),
        ("ts", _is_int),
        ("kind", _is_str),
        ("detail", _is_opt_str),
    )

    def __init__(self) -> None:
        self.symbol: list[str | None] = []
        self.ts: list[int] = []
        self.kind: list[str] = []
        self.detail: list[str | None] = []

    def records(self) -> int:
        return len(self.kind)

    def add(self, symbol: str | None, ts: int, kind: str, detail: str | None = None) -> None:
        self.symbol.append(symbol)
        self.ts.append(ts)
        self.kind.append(kind)
        self.detail.append(detail)

    def build(self, exchange: str) -> pa.RecordBatch:
        n = len(self.kind)
        return pa.RecordBatch.from_arrays(
            [
                constant_dictionary(exchange, n),
                dictionary(self.symbol, pa.int32()),
                timestamps(self.ts),
                dictionary(self.kind, pa.int8()),
                pa.array(self.detail, pa.string()),
            ],
            schema=schema.EVENTS,
        )


class L2Columns(_Table):
    """Message-level lists (one entry per book message) plus level lists.

    A message's levels are its `bid_rows` bids followed by its `ask_rows` asks,
    appended to `price` / `size` in that order.
    """

    __slots__ = (
        "ask_rows",
        "bid_rows",
        "checksum",
        "exchange_ts",
        "first_seq",
        "is_snapshot",
        "keep_text",
        "prev_seq",
        "price",
        "receive_ts",
        "seq",
        "size",
        "symbol",
    )
    _checks = (
        ("symbol", _is_str),
        ("exchange_ts", _is_opt_int),
        ("receive_ts", _is_int),
        ("seq", _is_int),
        ("prev_seq", _is_opt_int),
        ("first_seq", _is_opt_int),
        ("is_snapshot", _is_bool),
        ("checksum", _is_opt_int),
    )

    def __init__(self, keep_text: bool = False) -> None:
        self.keep_text = keep_text
        self.symbol: list[str] = []
        self.exchange_ts: list[int | None] = []
        self.receive_ts: list[int] = []
        self.seq: list[int] = []
        self.prev_seq: list[int | None] = []
        self.first_seq: list[int | None] = []
        self.is_snapshot: list[bool] = []
        self.checksum: list[int | None] = []
        self.bid_rows: list[int] = []
        self.ask_rows: list[int] = []
        self.price: list[Any] = []
        self.size: list[Any] = []

    def records(self) -> int:
        return len(self.symbol)

    def rows(self) -> int:
        return len(self.price)

    def _lists(self) -> tuple[str, ...]:
        return (*super()._lists(), "bid_rows", "ask_rows", "price", "size")

    def _numeric(self) -> tuple[str, ...]:
        return ("price", "size")

    def message(
        self,
        symbol: str,
        exchange_ts: int | None,
        receive_ts: int,
        seq: int,
        prev_seq: int | None,
        first_seq: int | None,
        is_snapshot: bool,
        checksum: int | None,
        bid_rows: int,
        ask_rows: int,
    ) -> None:
        """Append one message's header; its levels go to `price` / `size` by the caller."""
        self.symbol.append(symbol)
        self.exchange_ts.append(exchange_ts)
        self.receive_ts.append(receive_ts)
        self.seq.append(seq)
        self.prev_seq.append(prev_seq)
        self.first_seq.append(first_seq)
        self.is_snapshot.append(is_snapshot)
        self.checksum.append(checksum)
        self.bid_rows.append(bid_rows)
        self.ask_rows.append(ask_rows)

    def _bad_records(self) -> list[int]:
        bad = set(super()._bad_records())
        start = 0
        for index, (bids, asks) in enumerate(zip(self.bid_rows, self.ask_rows, strict=True)):
            end = start + bids + asks
            if index not in bad and not all(
                _is_number(p) and _is_number(s)
                for p, s in zip(self.price[start:end], self.size[start:end], strict=True)
            ):
                bad.add(index)
            start = end
        return sorted(bad)

    def _drop_records(self, bad: Sequence[int]) -> None:
        drop = set(bad)
        price: list[Any] = []
        size: list[Any] = []
        start = 0
        for index, (bids, asks) in enumerate(zip(self.bid_rows, self.ask_rows, strict=True)):
            end = start + bids + asks
            if index not in drop:
                price.extend(self.price[start:end])
                size.extend(self.size[start:end])
            start = end
        self.price[:] = price
        self.size[:] = size
        for name in ("bid_rows", "ask_rows"):
            column = getattr(self, name)
            column[:] = [v for i, v in enumerate(column) if i not in drop]
        super()._drop_records(bad)

    def build_messages(self) -> pa.RecordBatch:
        """The per-message transport batch (schema.L2_MESSAGES)."""
        return pa.RecordBatch.from_arrays(
            [
                dictionary(self.symbol, pa.int32()),
                timestamps(self.exchange_ts),
                timestamps(self.receive_ts),
                pa.array(self.seq, pa.int64()),
                pa.array(self.prev_seq, pa.int64()),
                pa.array(self.first_seq, pa.int64()),
                pa.array(self.is_snapshot, pa.bool_()),
                pa.array(self.checksum, pa.int64()),
                pa.array(self.bid_rows, pa.int32()),
                pa.array(self.ask_rows, pa.int32()),
            ],
            schema=schema.L2_MESSAGES,
        )

    def build(self, exchange: str) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        """(l2 rows as schema.L2_WIRE, messages as schema.L2_MESSAGES).

        Message fields are repeated per level with Arrow `take`, in C.
        """
        counts = np.empty(2 * len(self.bid_rows), dtype=np.int64)
        counts[0::2] = self.bid_rows
        counts[1::2] = self.ask_rows
        rows_per_message = counts[0::2] + counts[1::2]
        take = pa.array(np.repeat(np.arange(len(self.bid_rows), dtype=np.int64), rows_per_message))
        messages = self.build_messages()
        side_codes = np.repeat(np.tile(np.array([0, 1], dtype=np.int8), len(self.bid_rows)), counts)
        side = pa.DictionaryArray.from_arrays(pa.array(side_codes), pa.array(["bid", "ask"]))
        n = len(self.price)
        text_price: pa.Array
        text_size: pa.Array
        if type(self.price[0] if self.price else None) is str:
            text_price = pa.array(self.price, pa.string())
            text_size = pa.array(self.size, pa.string())
            price = text_price.cast(pa.float64())
            size = text_size.cast(pa.float64())
        else:
            price = pa.array(self.price, pa.float64())
            size = pa.array(self.size, pa.float64())
            text_price = text_size = pa.nulls(n, pa.string())
        if not self.keep_text:
            text_price = text_size = pa.nulls(n, pa.string())
        rows = pa.RecordBatch.from_arrays(
            [
                constant_dictionary(exchange, n),
                messages.column("symbol").take(take),
                messages.column("exchange_ts").take(take),
                messages.column("receive_ts").take(take),
                messages.column("seq").take(take),
                messages.column("prev_seq").take(take),
                messages.column("first_seq").take(take),
                side,
                price,
                size,
                messages.column("is_snapshot").take(take),
                text_price,
                text_size,
            ],
            schema=schema.L2_WIRE,
        )
        return rows, messages


@dataclass
class Batches:
    """What one flush of a Columns produced. Tables with no rows are None."""

    exchange: str
    trades: pa.RecordBatch | None = None
    l2: pa.RecordBatch | None = None
    l2_messages: pa.RecordBatch | None = None
    bbo: pa.RecordBatch | None = None
    events: pa.RecordBatch | None = None
    rejects: int = 0

    def tables(self) -> dict[str, pa.RecordBatch]:
        """Stored-table name -> batch, for the non-empty tables (l2 as stored columns)."""
        out: dict[str, pa.RecordBatch] = {}
        if self.trades is not None:
            out["trades"] = self.trades
        if self.l2 is not None:
            out["l2"] = schema.stored(self.l2, "l2")
        if self.bbo is not None:
            out["bbo"] = self.bbo
        if self.events is not None:
            out["events"] = self.events
        return out

    def rows(self) -> int:
        return sum(b.num_rows for b in (self.trades, self.l2, self.bbo, self.events) if b is not None)


@dataclass
class Columns:
    """Everything parsers of one connection append into, until the next flush.

    Args:
        exchange: the venue name written in every row's `exchange` column.
        keep_text: keep the venue's exact price/size strings in l2 batches
            (needed downstream only for checksums over original strings).
    """

    exchange: str
    keep_text: bool = False
    trades: TradeColumns = field(default_factory=TradeColumns)
    l2: L2Columns = field(default_factory=L2Columns)
    bbo: BboColumns = field(default_factory=BboColumns)
    events: EventColumns = field(default_factory=EventColumns)

    def __post_init__(self) -> None:
        self.l2.keep_text = self.keep_text
        self._all_lists: tuple[list[Any], ...] = tuple(getattr(t, n) for t in self._tables() for n in t._lists())

    def mark(self) -> tuple[int, ...]:
        """Lengths of every list, for `rollback` when a frame fails half-way."""
        return tuple(map(len, self._all_lists))

    def rollback(self, mark: tuple[int, ...]) -> None:
        """Truncate every list back to a `mark()`: a rejected frame leaves nothing behind."""
        for column, length in zip(self._all_lists, mark, strict=True):
            del column[length:]

    def _tables(self) -> tuple[_Table, ...]:
        return (self.trades, self.l2, self.bbo, self.events)

    def rows(self) -> int:
        """Rows buffered across all tables (l2 counts levels)."""
        return len(self.trades.symbol) + len(self.l2.price) + len(self.bbo.symbol) + len(self.events.kind)

    def pending(self) -> bool:
        """True when anything (rows, or an l2 message without levels) is buffered."""
        return bool(self.rows() or self.l2.symbol)

    def flush(self, now_wall_ns: int = 0) -> Batches:
        """Convert everything buffered to RecordBatches and clear the buffers.

        Never raises on bad values: records that cannot be converted are
        dropped, counted in `Batches.rejects` and reported as `reject` events.
        """
        out = Batches(self.exchange)
        out.trades, rejects_trades = self._build(self.trades, "trades", now_wall_ns)
        out.bbo, rejects_bbo = self._build(self.bbo, "bbo", now_wall_ns)
        l2, rejects_l2 = self._build(self.l2, "l2", now_wall_ns)
        if l2 is not None:
            out.l2, out.l2_messages = l2
        out.rejects = rejects_trades + rejects_bbo + rejects_l2
        out.events, _ = self._build(self.events, "events", now_wall_ns)
        return out

    def _build(self, table: _Table, name: str, now_wall_ns: int) -> tuple[Any, int]:
        """Build one table's batch; prune unconvertible records on the slow path."""
        if not table.records():
            return None, 0
        rejects = 0
        try:
            built = table.build(self.exchange)  # type: ignore[attr-defined]
        except _CONVERSION_ERRORS:
            bad = table._bad_records()
            table._drop_records(bad)
            rejects = len(bad)
            if name != "events":
                self.events.add(None, now_wall_ns, "reject", f"{rejects} unconvertible {name} record(s) dropped")
            built = table.build(self.exchange) if table.records() else None  # type: ignore[attr-defined]
        table.clear()
        return built, rejects


_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)


class FlushPolicy:
    """Flush at `batch_rows` rows or when the oldest buffered row is `batch_ms` old.

    The caller reports the monotonic receipt of each frame that added rows;
    `due()` is then a couple of comparisons.
    """

    def __init__(self, batch_rows: int = 1000, batch_ms: float = 50.0) -> None:
        self.batch_rows = batch_rows
        self.batch_ns = int(batch_ms * 1_000_000)
        self.oldest_mono_ns: int | None = None

    def noted(self, mono_ns: int) -> None:
        """Record that rows received at `mono_ns` are buffered."""
        if self.oldest_mono_ns is None:
            self.oldest_mono_ns = mono_ns

    def due(self, rows: int, now_mono_ns: int) -> bool:
        if self.oldest_mono_ns is None:
            return False
        return rows >= self.batch_rows or now_mono_ns - self.oldest_mono_ns >= self.batch_ns

    def reset(self) -> None:
        self.oldest_mono_ns = None
