"""Running a venue's compiled parser and its pure-Python parser side by side (tests/unit/test_*_compiled.py).

`both(venue, frames, cuts)` parses the same frames with the same receipts into `venue.columns()` (the compiled
accumulator) and a plain `Columns` (the Python parser), and asserts the contract: frame by frame the same outcome
(ParseError or not, the same controls), and flushes at the same points give equal tables, rejects and events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from xtrader.batch import Batches, Columns
from xtrader.clock import Receipt
from xtrader.errors import ParseError
from xtrader.venues import venue
from xtrader.venues.base import Venue

START = 1_700_000_000_000_000_000


def receipt_at(index: int) -> Receipt:
    return Receipt(START + 1_000 * index, index)


def outcome(v: Any, frame: bytes | str, receipt: Receipt, out: Columns, parse: Any = None) -> tuple[Any, ...]:
    """("ok", controls) or ("raised", exception type); anything but a ParseError is kept whole to show.
    `parse`: a `venue.parser(out)` to call instead of `v.parse(.., out)`."""
    try:
        return ("ok", tuple(parse(frame, receipt) if parse is not None else v.parse(frame, receipt, out)))
    except ParseError as exc:
        return ("raised", type(exc))
    except Exception as exc:  # not in the contract: must match exactly, which it will not
        return ("unexpected", type(exc), repr(exc))


def listed(out: Columns) -> int:
    """Values in the Python lists of every table (C rows not included)."""
    return sum(len(getattr(table, name)) for table in out._tables() for name in table._lists())


def float_same(x: pa.Array, y: pa.Array) -> bool:
    """Float columns: equal values, NaN equal to NaN, and the same sign of zero (stored data keeps it)."""
    if not x.is_null().equals(y.is_null()):
        return False
    xv = x.fill_null(0.0).to_numpy(zero_copy_only=False)
    yv = y.fill_null(0.0).to_numpy(zero_copy_only=False)
    return bool(np.array_equal(xv, yv, equal_nan=True) and np.array_equal(np.signbit(xv), np.signbit(yv)))


def same_batch(a: pa.RecordBatch | None, b: pa.RecordBatch | None) -> bool:
    """RecordBatch.equals, except that NaN equals NaN (equals() says a batch holding NaN differs from itself)."""
    if a is None or b is None:
        return a is b
    if not a.schema.equals(b.schema, check_metadata=True) or a.num_rows != b.num_rows:
        return False
    for x, y in zip(a.columns, b.columns, strict=True):
        if pa.types.is_floating(x.type):
            if not float_same(x, y):
                return False
        elif not x.equals(y):
            return False
    return True


def diff(a: pa.RecordBatch | None, b: pa.RecordBatch | None) -> str:
    """The columns that differ, both sides (a few rows), or the schemas when they differ."""
    if a is None or b is None:
        return f"compiled {a and a.num_rows} rows, pure {b and b.num_rows} rows"
    if not a.schema.equals(b.schema, check_metadata=True):
        return f"schemas differ:\ncompiled {a.schema}\npure     {b.schema}"
    lines = [f"{a.num_rows} vs {b.num_rows} rows"]
    for name in a.schema.names:
        if a.num_rows != b.num_rows or not same_batch(a.select([name]), b.select([name])):
            lines.append(f"  {name}: compiled {a.column(name).to_pylist()[:12]}")
            lines.append(f"  {name}: pure     {b.column(name).to_pylist()[:12]}")
    return "\n".join(lines)


def assert_same_flush(got: Batches, want: Batches, where: str | Callable[[], str]) -> None:
    if flush_same(got, want):
        return
    assert_flush(got, want, where if isinstance(where, str) else where())


def flush_same(got: Batches, want: Batches) -> bool:
    if got.rejects != want.rejects or got.tables().keys() != want.tables().keys():
        return False
    pairs = [(got.tables()[n], want.tables()[n]) for n in want.tables()]
    pairs += [(got.l2, want.l2), (got.l2_messages, want.l2_messages)]
    return all(same_batch(a, b) for a, b in pairs)


def assert_flush(got: Batches, want: Batches, where: str) -> None:
    assert got.rejects == want.rejects, f"{where}: rejects compiled {got.rejects}, pure {want.rejects}"
    got_tables, want_tables = got.tables(), want.tables()
    assert got_tables.keys() == want_tables.keys(), f"{where}: tables {sorted(got_tables)} != {sorted(want_tables)}"
    # every stored table, events included; then the l2 transport batches the book service reads
    pairs = [(name, got_tables[name], want_tables[name]) for name in want_tables]
    pairs += [("l2 (wire)", got.l2, want.l2), ("l2_messages", got.l2_messages, want.l2_messages)]
    for name, a, b in pairs:
        assert same_batch(a, b), f"{where}: {name} differs: {diff(a, b)}"


def both(venue_name: str | Venue, frames: Sequence[bytes | str], cuts: Iterable[int] = ()) -> list[Batches]:
    """Parse `frames` through the compiled path (`v.columns()`) and the pure path (`Columns(v.name)`), flushing
    both after each frame index in `cuts` and at the end; assert the same outcome per frame and the same
    flushes. Returns the compiled side's flushes. `venue_name` may be a venue instance (e.g. microseconds)."""
    v = venue(venue_name) if isinstance(venue_name, str) else venue_name
    venue_name = v.name
    fast = v.columns()
    assert getattr(fast, "fast", None) is not None, f"{venue_name}: venue.columns() has no compiled accumulator"
    pure = Columns(v.name, keep_text=v.keep_text)
    assert getattr(pure, "fast", None) is None
    cut = set(cuts)
    flushes: list[Batches] = []
    since = 0  # first frame of the current batch, for the message
    parse_or = v.parser(fast)  # what the connector calls: the accumulator's parse_or, C first
    for index, frame in enumerate(frames):
        receipt = receipt_at(index)
        got = outcome(v, frame, receipt, fast, parse_or if index % 2 else None)  # both entries, interleaved
        want = outcome(v, frame, receipt, pure)
        assert got == want, f"{venue_name} frame {index} {frame!r}: compiled {got}, pure {want}"
        assert fast.l2_messages() == len(pure.l2.symbol), f"{venue_name} frame {index}: l2_messages() differs"
        if index in cut or index == len(frames) - 1:
            now = START + 1_000 * index + 500
            batch = frames[since : index + 1]
            where = f"{venue_name} flush after frame {index}, frames {since}..{index}"
            m = len(pure.l2.symbol)
            for start in {0, m // 2, max(m - 1, 0), m, m + 1}:  # (symbol, is_snapshot) of the buffered messages
                assert fast.l2_heads(start) == pure.l2_heads(start), f"{where}: l2_heads({start}) differs"
            got_flush = fast.flush(now)
            assert_same_flush(got_flush, pure.flush(now), lambda w=where, b=batch: f"{w}: {cut(repr(list(b)))}")
            assert fast.l2_messages() == 0, f"{where}: l2 messages left after the flush"
            flushes.append(got_flush)
            since = index + 1
    return flushes


def cut(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def table_rows(flushes: Sequence[Batches], table: str) -> int:
    return sum(getattr(b, table).num_rows for b in flushes if getattr(b, table) is not None)
