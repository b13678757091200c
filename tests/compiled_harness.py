"""Running a venue's compiled parser and its pure-Python parser side by side (tests/unit/test_*_compiled.py).

`both(venue, frames, cuts)` parses the same frames with the same receipts into `venue.columns()` (the compiled
accumulator) and a plain `Columns` (the Python parser), and asserts the contract: frame by frame the same outcome
(ParseError or not, the same controls), and flushes at the same points give equal tables, rejects and events.
`compiled_only` makes a venue's test module fail without its extension; the `assert_*` checks at the end are the
ones every venue's accumulator passes (C takes most real frames, spill(), rows() and pending()). The frame
generators' shared pieces are in tests/compiled_frames.py.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from xtrader.batch import Batches, Columns
from xtrader.clock import Receipt
from xtrader.errors import ParseError
from xtrader.venues import venue
from xtrader.venues.base import Venue

START = 1_700_000_000_000_000_000


def compiled_only(label: str, module: ModuleType) -> Any:
    """Called at import of a venue's test module, `module` the venue's (e.g. xtrader.venues.binance): under
    XTRADER_PURE_PYTHON=1 skips the whole module; else returns an autouse fixture (assign it to a module name) that
    fails every test when the extension (xtrader.venues._binance_fast) was not built, or `module.COMPILED` is not
    True. A skip on every machine would hide a missing build."""
    if os.environ.get("XTRADER_PURE_PYTHON") == "1":
        pytest.skip(f"XTRADER_PURE_PYTHON=1: the compiled {label} parser is switched off", allow_module_level=True)
    package, _, name = module.__name__.rpartition(".")
    extension = f"{package}._{name}_fast"
    try:
        importlib.import_module(extension)
        not_built: str | None = None
    except ImportError as exc:
        not_built = f"{type(exc).__name__}: {exc}"

    @pytest.fixture(scope="module", autouse=True)
    def _compiled() -> None:
        if not_built is not None:
            pytest.fail(
                f"the compiled {label} parser {extension} was not built "
                f"({not_built}); build the extension (pip install -e .), or set XTRADER_PURE_PYTHON=1 to run "
                "without it",
                pytrace=False,
            )
        assert getattr(module, "COMPILED", None) is True, f"the extension imports, yet {name}.COMPILED is not True"

    return _compiled


def pure_columns(v: Venue) -> Columns:
    """The pure-Python side: plain `Columns` as the venue's compiled accumulator keeps them (text or not)."""
    return Columns(v.name, keep_text=v.keep_text)


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
    pure = pure_columns(v)
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


#: flush after each frame, every 7th, every 100th, or once at the end: `cadence_cuts(every, len(frames))`
CADENCES = pytest.mark.parametrize("every", [1, 7, 100, None], ids=["each", "7", "100", "all"])


def cadence_cuts(every: int | None, count: int) -> Iterable[int]:
    """The frame indexes to flush after, every `every` frames of `count` (None: only at the end)."""
    return () if every is None else range(every - 1, count, every)


def l2_seqs(flushes: Sequence[Batches]) -> list[Any]:
    """The `seq` of every l2 message, flush after flush."""
    return [s for b in flushes if b.l2_messages is not None for s in b.l2_messages.column("seq").to_pylist()]


def mixed_types(frames: Sequence[bytes]) -> list[Any]:
    """`frames` with some as str and some as bytearray: those go to the Python parser, among bytes frames."""
    return [f.decode() if i % 3 == 1 else bytearray(f) if i % 7 == 2 else f for i, f in enumerate(frames)]


# -- checks every venue's compiled accumulator passes ---------------------------------------------------------------


def parse_both(v: Venue, frame: bytes, index: int, fast: Columns, pure: Columns) -> None:
    """Frame `index` into both sides, with the same receipt."""
    v.parse(frame, receipt_at(index), fast)
    v.parse(frame, receipt_at(index), pure)


def assert_takes_most(venue_name: str, frames: Sequence[bytes]) -> int:
    """The compiled path takes >= 95% of the data frames, and l2 messages stay in the C buffers; both sides flush
    the same. A frame went to C when it added rows on the pure path but nothing to the compiled side's Python
    lists. Returns the number of data frames."""
    v = venue(venue_name)
    fast, pure = v.columns(), pure_columns(v)
    data_frames = taken = held = 0
    for index, frame in enumerate(frames):
        before_fast, before_pure = listed(fast), listed(pure)
        parse_both(v, frame, index, fast, pure)
        if listed(pure) > before_pure:
            data_frames += 1
            taken += listed(fast) == before_fast
        assert fast.l2_messages() == len(pure.l2.symbol), index
        # l2 messages in C: counted by l2_messages(), not yet in the Python lists
        held = max(held, fast.l2_messages() - len(fast.l2.symbol))
    assert held > 0, f"{venue_name}: no l2 message ever stayed in the C buffers"
    assert taken >= 0.95 * data_frames, f"{venue_name}: the compiled path took {taken} of {data_frames} data frames"
    assert_same_flush(fast.flush(START), pure.flush(START), venue_name)
    return data_frames


def assert_spill_moves_the_rest(
    venue_name: str, frames: Sequence[bytes], comparable: Callable[[list[Any], bool, bool], list[Any]]
) -> None:
    """l2_messages() counts both paths' messages frame by frame; spill() moves what C still holds into the Python
    lists, as the pure path appended it: `comparable(values, numeric, l2)` of each list is the same on both sides
    (`numeric`: a numeric column, `l2`: of the l2 table). A second spill() moves nothing; the flushes are the same."""
    v = venue(venue_name)
    fast, pure = v.columns(), pure_columns(v)
    for index, raw in enumerate(frames):
        parse_both(v, raw, index, fast, pure)
        assert fast.l2_messages() == pure.l2_messages() == len(pure.l2.symbol), index
    assert fast.l2_messages() > len(fast.l2.symbol), "the last l2 frames should still be in C"
    fast.spill()
    assert fast.l2_messages() == len(fast.l2.symbol) == len(pure.l2.symbol)
    for got, want in zip(fast._tables(), pure._tables(), strict=True):
        for name in want._lists():
            numeric, l2 = name in want._numeric(), want is pure.l2
            assert comparable(getattr(got, name), numeric, l2) == comparable(getattr(want, name), numeric, l2), name
    fast.spill()  # nothing left to move
    assert_same_flush(fast.flush(START), pure.flush(START), "after spill()")
    assert fast.l2_messages() == 0


def assert_spills_mid_stream(venue_name: str, frames: Sequence[bytes], l2_messages: int) -> None:
    """A spill() every 4 frames, more frames into C after each: the flushes are the same."""
    v = venue(venue_name)
    fast, pure = v.columns(), pure_columns(v)
    for index, raw in enumerate(frames):
        parse_both(v, raw, index, fast, pure)
        if index % 4 == 0:
            fast.spill()
    assert fast.l2_messages() == len(pure.l2.symbol) == l2_messages
    assert_same_flush(fast.flush(START), pure.flush(START), "spills every 4 frames")


def assert_rows_and_pending_alike(venue_name: str, frames: Sequence[bytes]) -> None:
    """The connector's flush policy reads rows() and pending(): C rows must count as the pure path's do."""
    v = venue(venue_name)
    fast, pure = v.columns(), pure_columns(v)
    assert not fast.pending() and fast.rows() == 0
    for index, raw in enumerate(frames):
        parse_both(v, raw, index, fast, pure)
        assert (fast.rows(), fast.pending()) == (pure.rows(), pure.pending()), index


def connector_entry(venue_name: str, first: bytes) -> tuple[Columns, Callable[..., Any]]:
    """The connector's per-frame call `venue.parser(out)` and its `out`, after `first`, a frame C buffers: the
    call is C's own (a frame C takes must not pass through Python)."""
    v = venue(venue_name)
    out = v.columns()
    parse = v.parser(out)
    assert type(parse).__name__ == "builtin_function_or_method", "a frame C takes must not pass through Python"
    assert parse(first, receipt_at(0)) == ()
    assert out.fast.l2_messages == 1 and not out.l2.symbol  # buffered in C
    return out, parse
