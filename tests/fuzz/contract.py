"""The fuzz contract on a flush: rows buffered before a bad frame come out whole, rejects are reported."""

from __future__ import annotations

from collections.abc import Callable

from xtrader.batch import Batches, Columns


def buffered_alone(prepare: Callable[[Columns], None], columns: Callable[[], Columns], wall_ns: int) -> Batches:
    """What the rows buffered by `prepare` flush to on their own."""
    out = columns()
    prepare(out)
    return out.flush(wall_ns)


def assert_buffered_rows_survive(buffered: Batches, flushed: Batches) -> None:
    """Every table of `buffered` starts `flushed`'s, row for row; a reject is counted and has its event."""
    assert buffered.rows() > 0, "the contract needs rows buffered before the fuzzed frame"
    got = flushed.tables()
    expected = buffered.tables()
    if buffered.l2_messages is not None:
        expected["l2_messages"] = buffered.l2_messages
        if flushed.l2_messages is not None:
            got["l2_messages"] = flushed.l2_messages
    for name, table in expected.items():
        assert name in got, f"{name}: the buffered rows were lost"
        assert got[name].slice(0, table.num_rows).to_pylist() == table.to_pylist(), name
    kinds = [] if flushed.events is None else flushed.events.column("kind").to_pylist()
    assert (flushed.rejects > 0) == ("reject" in kinds)
