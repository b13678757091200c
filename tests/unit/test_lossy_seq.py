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


async def test_dropped_batches_leave_no_gap_in_the_sinks_seqs() -> None:
    front = SinkFront(Store(), "parquet")
    sink = SlowSink(front)
    outputs = Outputs("binance/c0/r0", [sink], max_inflight=1, policy="lossy")
    tables = {"trades": trades_batch("binance", [("X", "1")]).trades}
    for _round in range(50):
        for _ in range(5):  # the first is sent, the other four dropped: the window is full
            await outputs.write(tables)
        sink.release()
        await outputs.drain()
    assert outputs.stats()["dropped_batches"] == 200
    seen = front.seen[outputs.source_id]
    assert seen.floor == 49 and seen.above == set(), f"gaps never closed: floor {seen.floor}, {len(seen.above)} above"


def test_seen_set_is_bounded_when_a_gap_never_closes() -> None:
    seen = _Seen()
    for seq in range(1, 200_000):  # seq 0 never arrives
        assert seen.add(seq)
    assert len(seen.above) <= 100_000, f"{len(seen.above)} seqs kept above a gap that never closes"
    assert not seen.add(5_000)  # a repeat is still a repeat
