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
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from xtrader import schema
from xtrader.clock import Anchor

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _is_int(value: Any) -> bool:
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX


def _is_opt_int(value: Any) -> bool:
    return value is None or _is_int(value)


def _is_number(value: Any) -> bool:
    """True when Arrow can turn the raw value into a float64."""
    if type(value) is str:
        # float() also takes what Arrow refuses: surrounding whitespace, "1_0", non-ASCII digits
        if not value.isascii() or "_" in value or value.strip() != value:
            return False
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


#: at most this many strings are parsed with float() rather than Arrow (see float_columns)
_SMALL = 64
#: str.translate(_NOT_DECIMAL) leaves what is not a character of a plain decimal number
_NOT_DECIMAL = str.maketrans("", "", "0123456789.-+eE")


def float_columns(*columns: list[Any]) -> list[pa.Array]:
    """Several equally long columns of decimal strings -> float64 arrays, with one Arrow parse for all.

    Each Arrow call costs a few µs whatever its length, and batches are small, so the
    columns are joined (a C list concatenation), cast once and split again (numpy views,
    no copy). Columns with a null or a non-string fall back to `_opt_floats` each.
    """
    n = len(columns[0])
    joined: list[Any] = []
    for column in columns:
        joined += column
    if not n or len(joined) != n * len(columns) or type(joined[0]) is not str or None in joined:
        return [_opt_floats(column) for column in columns]
    values: np.ndarray[Any, np.dtype[np.float64]]
    if len(joined) <= _SMALL and not "".join(joined).translate(_NOT_DECIMAL):
        # few values: Python's float() beats the ~10 µs fixed cost of an Arrow parse; over these characters
        # (digits . + - e E) it accepts, refuses and rounds exactly as Arrow's cast does (checked)
        values = np.fromiter(map(float, joined), np.float64, len(joined))  # ValueError: the slow path prunes it
    else:
        parsed = pa.array(joined, pa.string()).cast(pa.float64())
        values = np.frombuffer(parsed.buffers()[1], np.float64, len(joined), parsed.offset * 8)  # no nulls
    return [pa.array(values[i * n : (i + 1) * n]) for i in range(len(columns))]


def _opt_floats(values: Sequence[Any]) -> pa.Array:
    """Like floats() but tolerates a mix of None with strings or numbers."""
    first = next((v for v in values if v is not None), None)
    if type(first) is str:
        return pa.array(values, pa.string()).cast(pa.float64())
    return pa.array(values, pa.float64())


_INT_ONLY = {int}


def int64s(values: Sequence[int | None]) -> np.ndarray[Any, np.dtype[np.int64]] | None:
    """Python ints -> an int64 numpy array; None when anything but an int is there (a null, or a bad value).

    The type check matters: numpy would silently turn 1.5, True or "3" into an int, where Arrow
    (the fallback) refuses them and the flush's slow path prunes their record.

    Raises:
        OverflowError: an int beyond int64 (the flush's slow path prunes it).
    """
    if {*map(type, values)} != _INT_ONLY:
        return None
    return np.fromiter(values, np.int64, len(values))


def from_int64s(array: np.ndarray[Any, np.dtype[np.int64]], type_: pa.DataType) -> pa.Array:
    """An int64 numpy array as an Arrow int64 or timestamp array, without a copy.

    Built from the buffer: `pa.array(.., timestamp with tz)` costs ~9 µs per call (measured), this ~1 µs.
    """
    return pa.Array.from_buffers(type_, len(array), [None, pa.py_buffer(np.ascontiguousarray(array))])


def int_column(values: Sequence[int | None], type_: pa.DataType) -> pa.Array:
    """Python ints (None for null) -> an Arrow int64-backed array of `type_` (int64 or timestamp)."""
    array = int64s(values)
    if array is not None:
        return from_int64s(array, type_)
    if values.count(None) == len(values):
        return pa.nulls(len(values), type_)
    return pa.array(values, type_)


def timestamps(values: Sequence[int | None]) -> pa.Array:
    """Epoch nanoseconds -> timestamp[ns, UTC]."""
    return int_column(values, schema.TS)


_CODE_TYPES: dict[pa.DataType, type[np.signedinteger[Any]]] = {pa.int8(): np.int8, pa.int32(): np.int32}
#: dictionaries (tuples of distinct values) already made into Arrow string arrays; few distinct symbols and sides
_DICTIONARIES: dict[tuple[str, ...], pa.Array] = {}


def _dictionary_values(keys: tuple[str, ...]) -> pa.Array:
    values = _DICTIONARIES.get(keys)
    if values is None:
        if len(_DICTIONARIES) >= 4096:  # bounded: a connection with churning symbol sets cannot grow it forever
            _DICTIONARIES.clear()
        values = _DICTIONARIES[keys] = pa.array(keys, pa.string())
    return values


def dictionary_codes(
    values: Sequence[str | None], index_type: pa.DataType
) -> tuple[np.ndarray[Any, Any], pa.Array] | None:
    """(codes as numpy, dictionary) for strings without nulls; None when a value is None or no string."""
    keys = tuple(dict.fromkeys(values))
    if None in keys or any(type(key) is not str for key in keys):
        return None
    code_type = _CODE_TYPES[index_type]
    if len(keys) == 1:
        codes = np.zeros(len(values), code_type)
    else:
        lookup = {key: code for code, key in enumerate(keys)}
        codes = np.fromiter(map(lookup.__getitem__, values), code_type, len(values))
    return codes, _dictionary_values(keys)  # type: ignore[arg-type]


def from_codes(type_: pa.DataType, codes: np.ndarray[Any, Any], values: pa.Array) -> pa.Array:
    """A dictionary array from numpy codes (valid by construction) and its dictionary."""
    return pa.DictionaryArray.from_buffers(type_, len(codes), [None, pa.py_buffer(np.ascontiguousarray(codes))], values)


def dictionary(values: Sequence[str | None], index_type: pa.DataType) -> pa.Array:
    """Strings -> dictionary array with the given index type.

    Encoded here rather than with Arrow's dictionary_encode + cast, which costs
    ~300 us per call whatever the length (measured): the values are few
    distinct symbols or sides, so a Python dict is faster.
    """
    encoded = dictionary_codes(values, index_type)
    if encoded is not None:
        return from_codes(pa.dictionary(index_type, pa.string()), *encoded)
    index: dict[str, int] = {}
    codes = [None if v is None else index.setdefault(v, len(index)) for v in values]
    return pa.DictionaryArray.from_arrays(pa.array(codes, index_type), pa.array(list(index), pa.string()))


_ZEROS8 = np.zeros(0, np.int8)


def constant_dictionary(value: str, length: int) -> pa.Array:
    """A dictionary<int8, string> column holding one value `length` times."""
    global _ZEROS8
    if len(_ZEROS8) < length:
        _ZEROS8 = np.zeros(max(length, 2 * len(_ZEROS8), 1024), np.int8)
    return from_codes(schema.EXCHANGE, _ZEROS8[:length], _dictionary_values((value,)))


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
        n = len(self.symbol)
        if n <= 64 and all(type(v) is int for v in self.trade_id):
            ids = pa.array(list(map(str, self.trade_id)), pa.string())  # an Arrow cast costs ~6 µs whatever n
        else:
            ids = pa.array(self.trade_id)
            if ids.type != pa.string():
                ids = ids.cast(pa.string())
        price, size = float_columns(self.price, self.size)
        return pa.RecordBatch.from_arrays(
            [
                constant_dictionary(exchange, n),
                dictionary(self.symbol, pa.int32()),
                timestamps(self.exchange_ts),
                timestamps(self.receive_ts),
                ids,
                dictionary(self.side, pa.int8()),
                price,
                size,
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
                int_column(self.seq, pa.int64()),
                *float_columns(self.bid_price, self.bid_size, self.ask_price, self.ask_size),
            ],
            schema=schema.BBO,
        )


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

    def _normalize(self) -> None:
        """Slow path: the venue's exact strings stay when they are kept (checksum input) and Arrow parses them."""
        if self.keep_text and _all_arrow_numbers(self.price) and _all_arrow_numbers(self.size):
            return
        super()._normalize()

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
        return self.build("")[1]

    def build(self, exchange: str) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        """(l2 rows as schema.L2_WIRE, messages as schema.L2_MESSAGES), from the lists (see `l2_batches`)."""
        m = len(self.symbol)
        n = len(self.price)
        encoded = dictionary_codes(self.symbol, pa.int32())
        if encoded is None:
            raise TypeError("l2 symbol is not a string")
        ints: list[tuple[np.ndarray[Any, Any] | None, pa.Array]] = []
        for values, type_ in (
            (self.exchange_ts, schema.TS),
            (self.receive_ts, schema.TS),
            (self.seq, pa.int64()),
            (self.prev_seq, pa.int64()),
            (self.first_seq, pa.int64()),
        ):
            array = int64s(values)
            ints.append((array, from_int64s(array, type_) if array is not None else int_column(values, type_)))
        is_snapshot = pa.array(self.is_snapshot, pa.bool_())  # validates: only bools
        text_price: pa.Array
        text_size: pa.Array
        if self.keep_text and n and type(self.price[0]) is str:
            text_price = pa.array(self.price, pa.string())
            text_size = pa.array(self.size, pa.string())
            price = text_price.cast(pa.float64())
            size = text_size.cast(pa.float64())
        else:
            price, size = float_columns(self.price, self.size)
            text_price = text_size = pa.nulls(n, pa.string())
        return l2_batches(
            exchange,
            *encoded,
            ints,
            np.fromiter(self.is_snapshot, np.bool_, m),
            is_snapshot,
            int_column(self.checksum, pa.int64()),
            np.fromiter(self.bid_rows, np.int32, m),
            np.fromiter(self.ask_rows, np.int32, m),
            (price, size, text_price, text_size),
        )


def l2_batches(
    exchange: str,
    codes: np.ndarray[Any, Any],
    names: pa.Array,
    ints: list[tuple[np.ndarray[Any, Any] | None, pa.Array]],
    snapshots: np.ndarray[Any, Any],
    is_snapshot: pa.Array,
    checksum: pa.Array,
    bid_rows: np.ndarray[Any, Any],
    ask_rows: np.ndarray[Any, Any],
    levels: tuple[pa.Array, pa.Array, pa.Array, pa.Array],
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """(l2 rows as schema.L2_WIRE, messages as schema.L2_MESSAGES) from message-level columns and level columns.

    `codes` / `names`: the symbol's dictionary codes per message; `ints`: exchange_ts, receive_ts, seq, prev_seq,
    first_seq, each (int64 numpy array, or None when it has nulls; its message column); `levels`: price, size,
    text_price, text_size, one entry per level. Message fields are repeated per level with numpy (`np.repeat`) and
    wrapped without a copy; only a column mixing nulls and values goes through Arrow `take`. Every Arrow call costs
    µs whatever its length, so the number of calls is what is kept down.
    """
    m = len(codes)
    n = len(levels[0])
    per_message = bid_rows + ask_rows
    take: pa.Array | None = None

    def repeated(values: np.ndarray[Any, Any] | None, message_column: pa.Array) -> pa.Array:
        nonlocal take
        if values is not None:
            return from_int64s(np.repeat(values, per_message), message_column.type)
        if message_column.null_count == m:
            return pa.nulls(n, message_column.type)
        if take is None:
            take = pa.array(np.repeat(np.arange(m, dtype=np.int64), per_message))
        return message_column.take(take)

    messages_columns: list[pa.Array] = [from_codes(schema.SYMBOL, codes, names)]
    rows_columns: list[pa.Array] = [
        constant_dictionary(exchange, n),
        from_codes(schema.SYMBOL, np.repeat(codes, per_message), names),
    ]
    for array, column in ints:
        messages_columns.append(column)
        rows_columns.append(repeated(array, column))
    messages_columns += [is_snapshot, checksum, pa.array(bid_rows), pa.array(ask_rows)]
    messages = pa.RecordBatch.from_arrays(messages_columns, schema=schema.L2_MESSAGES)

    counts = np.empty(2 * m, dtype=np.int32)
    counts[0::2] = bid_rows
    counts[1::2] = ask_rows
    side_codes = np.repeat(np.tile(_BID_ASK_CODES, m), counts)
    rows_columns.append(from_codes(schema.SIDE, side_codes, _dictionary_values(("bid", "ask"))))
    price, size, text_price, text_size = levels
    snapshot_rows = pa.array(np.repeat(snapshots, per_message))
    rows_columns += [price, size, snapshot_rows, text_price, text_size]
    rows = pa.RecordBatch.from_arrays(rows_columns, schema=schema.L2_WIRE)
    return rows, messages


_BID_ASK_CODES = np.array([0, 1], dtype=np.int8)


def _all_arrow_numbers(values: list[Any]) -> bool:
    """True when every value is a string that Arrow parses as a float (what `build` does with kept text)."""
    if not all(type(v) is str for v in values):
        return False
    try:
        pa.array(values, pa.string()).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


class BookNotice(NamedTuple):
    """A connector's word on one symbol's l2 stream, for the book service (it rides in `Batches.notices`).

    Attributes:
        symbol: the instrument.
        state: "carried" (a link of `source` carries the book from now on), "lost" (no link of
            `source` carries it any more, e.g. the link was lost: the book cannot be trusted
            unless another source still carries it), "dropped" (unsubscribed: forget the book).
        source: the connector saying so (`Connector.name`).
        reason: why, in words (the link lost, the unsubscribe).
    """

    symbol: str
    state: str
    source: str
    reason: str


@dataclass
class Batches:
    """What one flush of a Columns produced. Tables with no rows are None.

    `notices` (book side only) apply before this batch's l2 rows: they were given after
    every earlier frame was flushed.
    """

    exchange: str
    trades: pa.RecordBatch | None = None
    l2: pa.RecordBatch | None = None
    l2_messages: pa.RecordBatch | None = None
    bbo: pa.RecordBatch | None = None
    events: pa.RecordBatch | None = None
    rejects: int = 0
    notices: tuple[BookNotice, ...] = ()
    #: the producer's clocks at the flush, for code latency on the monotonic clock (`xtrader.clock`)
    anchor: Anchor | None = None

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

    def l2_messages(self) -> int:
        """l2 messages buffered."""
        return len(self.l2.symbol)

    def l2_heads(self, start: int) -> list[tuple[str, bool]]:
        """(symbol, is_snapshot) of each l2 message buffered from the `start`-th on."""
        return list(zip(self.l2.symbol[start:], self.l2.is_snapshot[start:], strict=True))

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
            if rejects and name != "events":
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
