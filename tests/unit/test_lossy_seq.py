"""Lossy mode must not leak: a dropped batch takes no batch_seq, and the sink's seen-set stays bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pyarrow as pa

from actors._route import Outputs
from tests.unit.test_services import trades_batch
from xtrader.sinkfront import SinkFront, _Seen


class Store:
    """A writer double: keeps what it is given."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, pa.RecordBatch]] = []

    def write(self, table: str, batch: pa.RecordBatch) -> None:
        self.batches.append((table, batch))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class SlowSink:
    """A SinkActor handle whose acks the test releases: writes reach a real SinkFront at once."""

    def __init__(self, front: SinkFront) -> None:
        self.front = front
        self.acks: list[asyncio.Future[Any]] = []
        self.write = self

    def remote(self, *args: Any) -> Any:
        self.front.write(*args)
        future = asyncio.get_running_loop().create_future()
        self.acks.append(future)
        return future

    def release(self) -> None:
        for future in self.acks:
            if not future.done():
                future.set_result(True)


async def drained(outputs: Outputs, sink: SlowSink) -> None:
    """`outputs.drain()`, the sink acknowledging everything meanwhile."""
    task = asyncio.create_task(outputs.drain())
    while not task.done():
        sink.release()
        await asyncio.sleep(0.001)
    await task


async def test_dropped_batches_leave_no_gap_in_the_sinks_seqs() -> None:
    front = SinkFront(Store(), "parquet")
    sink = SlowSink(front)
    outputs = Outputs("binance/c0/r0", [sink], max_inflight=1, policy="lossy")
    tables = {"trades": trades_batch("binance", [("X", "1")]).trades}
    for _round in range(50):
        for _ in range(5):  # the first is sent, the other four dropped: the window is full
            await outputs.write(tables)
        sink.release()
        await drained(outputs, sink)
    assert outputs.stats()["dropped_batches"] == 200
    seen = front.seen[outputs.source_id]
    # every batch the sink got (50 of trades, and the events rows recording the drops) is below the floor
    assert seen.floor == front.batches - 1 and seen.above == set(), (
        f"gaps never closed: floor {seen.floor}, {len(seen.above)} above"
    )


async def test_rows_the_lossy_policy_drops_are_accounted_and_each_has_an_events_row_with_its_rows() -> None:
    """accounted > 0 with lossy flow control, matched exactly by the events rows the sink stored (issue 10)."""
    store = Store()
    front = SinkFront(store, "parquet")
    sink = SlowSink(front)
    outputs = Outputs("book:binance", [sink], max_inflight=1, policy="lossy", sink_kinds=["parquet"])
    tables = {"trades": trades_batch("binance", [("X", "1"), ("X", "2"), ("X", "3")]).trades}
    for _round in range(10):
        for _ in range(4):  # the first is sent, the other three dropped
            await outputs.write(tables)
        sink.release()
        await drained(outputs, sink)
    assert outputs.accounted == {("parquet", "trades", "binance"): 3 * 3 * 10}
    assert front.rows["trades"]["binance"] == 3 * 10  # stored + accounted == every row produced
    details = [d for table, b in store.batches if table == "events" for d in b.column("detail").to_pylist()]
    assert len(details) == 30 and all(d.startswith("lost: 3 trades rows") for d in details), details
    assert sum(int(d.split()[1]) for d in details) == 90
    from xtrader import metrics

    stats = metrics.Stats("book:binance")
    outputs.report_accounted(stats)
    assert metrics.total(stats.snapshot(), metrics.ACCOUNTED_ROWS, exchange="binance", channel="trades/parquet") == 90


def test_seen_set_is_bounded_when_a_gap_never_closes() -> None:
    seen = _Seen()
    for seq in range(1, 200_000):  # seq 0 never arrives
        assert seen.add(seq)
    assert len(seen.above) <= 100_000, f"{len(seen.above)} seqs kept above a gap that never closes"
    assert not seen.add(5_000)  # a repeat is still a repeat
