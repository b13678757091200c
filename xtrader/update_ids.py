"""Row ids: an update's arbiter key as one 64-bit int, hashed from its key columns in C.

`xtrader.arbiter_batches.UpdateKeys` gives each update a key tuple, e.g. ("l2", symbol, seq, prev_seq,
first_seq, checksum). Building those tuples (a Python object per value) and hashing them in the arbiter's dicts
was most of the dedup's cost. An id is the same key as one int, which hashes and compares at once in a dict: the
columns' Arrow buffers are mixed row by row in C (`xtrader._arbiter.mix_int64`: MurmurHash3's 64-bit finalizer
over each value, a null mixed as its own step; a string is first made one word from its length and bytes by
`str_words`). `benchmarks/per_batch.py`: a connector's own dedup, 0.238 -> 0.134 µs a frame in batches of
10,000 rows (0.335 -> 0.240 in batches of 2,000).

Ids are equal when keys are; two different keys share an id with probability 2^-64. A table remembers at most
`arbiter_capacity` keys (200,000 by default), so a new update is taken for a duplicate of a remembered one with
probability below 200,000 / 2^64, about 10^-14: once in 10^14 updates. The salts are fixed, so every process
gives a key the same id.

Without the C extension (not built, or `XTRADER_PURE_PYTHON=1`) `row_ids` returns None and the key tuples are
used instead: the same verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from xtrader.venues.compiled_columns import compiled

try:
    from xtrader import _arbiter
except ImportError:  # not built: key tuples
    _arbiter = None  # type: ignore[assignment]

#: the C mixing, unless not built or turned off
_c: object | None = _arbiter if compiled(_arbiter) else None

#: each table's starting value (any fixed 64-bit numbers: the tables' keys are held apart anyway)
SALTS = {"trades": 0x7472616465730001, "l2": 0x6C32000000000002, "bbo": 0x62626F0000000003}


def available() -> bool:
    """True when ids are made (the C extension built and on)."""
    return _c is not None


def row_ids(table: str, columns: Sequence[pa.Array | pa.ChunkedArray]) -> list[int] | None:
    """The id of each row's key (`columns`: the key's columns, in the key's order), or None without the C
    extension. Columns may be int64 (or timestamp), string, or dictionary of string; nulls allowed."""
    if _c is None:
        return None
    n = len(columns[0])
    if not n:
        return []
    h = np.full(n, SALTS[table], dtype=np.uint64)
    for column in columns:
        if len(column) != n:
            raise ValueError(f"row_ids: columns of {len(column)} and {n} rows")
        _mix(h, column)
    return h.view(np.int64).tolist()


def _mix(h: np.ndarray, column: pa.Array | pa.ChunkedArray) -> None:
    """Mix one column's values into `h`, row by row."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_dictionary(kind):
        if column.indices.null_count:
            _mix(h, column.cast(kind.value_type))
            return
        words = _str_words(column.dictionary)  # each dictionary value's word, then each row's by its index
        _mix_int64(h, words[column.indices.to_numpy()], None, 0)
        return
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        valid = column.buffers()[0] if column.null_count else None
        if valid is None:
            _mix_int64(h, _str_words(column), None, 0)
        else:  # the bitmap from the column's offset: the words start at 0
            _mix_int64(h, _str_words(column), column.is_valid().buffers()[1], 0)
        return
    if pa.types.is_integer(kind) or pa.types.is_timestamp(kind):
        if kind.bit_width != 64:
            column = column.cast(pa.int64())
        valid, values = column.buffers()
        _mix_int64(h, values, valid if column.null_count else None, column.offset)
        return
    raise TypeError(f"row_ids: a key column of type {kind}")


def _str_words(column: pa.Array) -> np.ndarray:
    """A string column's values as 64-bit words (`xtrader._arbiter.str_words`)."""
    if pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    words = np.empty(len(column), dtype=np.uint64)
    if len(column):
        offsets, data = column.buffers()[1:3]
        _arbiter.str_words(words, offsets, b"" if data is None else data, column.offset)
    return words


def _mix_int64(h: np.ndarray, values: object, valid: object, offset: int) -> None:
    if values is None:  # an all-null column may have no values buffer
        values = np.zeros(offset + len(h), dtype=np.int64)
    _arbiter.mix_int64(h, values, valid, offset)
