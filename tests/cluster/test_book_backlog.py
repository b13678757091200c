"""A book actor far behind its producers stays right: every update applied once, in order, no false gap.

The order-book actor answers a call only once the call's l2 rows are stored, so a slow sink keeps its producers'
calls open at the book. With more calls open than the actor's `max_concurrency`, Ray queues the rest and gives a
freed slot to a call just arriving, not the oldest queued one (`python benchmarks/ray_order.py`); a producer's later
calls can take the slots while its earlier one waits in Ray's queue, held by the book's reorder buffer until its
timeout gives it up: a false gap, a resync, and the late call applied out of turn (the 10,000 msg/s soak's gaps
with no row lost; benchmarks/RESULTS.md, "A lagging book").
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_sink_durability import parquet_spec

pytestmark = pytest.mark.usefixtures("ray_session")

VENUE = "binance_futures"
CONNECTION = "binance_futures/s0/c0"


def depth_batches(steps: int, symbols: int) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Per symbol of a generated market: its REST snapshot's batches, and one batch per depth update in order."""
    from xtrader.bench.feed import frames
    from xtrader.clock import now
    from xtrader.venues import venue

    v = venue(VENUE)
    data, snapshots = frames(steps, symbols=symbols)
    out = v.columns()
    rest = {}
    for symbol, body in snapshots.items():
        v.parse_snapshot(body, symbol, now(), out)
        rest[symbol] = out.flush()
    updates: dict[str, list[Any]] = {symbol: [] for symbol in snapshots}
    for frame in data:
        if b"depthUpdate" in frame:
            v.parse(frame, now(), out)
            batches = out.flush()
            updates[batches.l2.column("symbol")[0].as_py()].append(batches)
    return rest, updates


def in_order_tops(rest: dict[str, Any], updates: dict[str, list[Any]]) -> Any:
    """The books of the same batches applied in order, in this process."""
    from xtrader.bookservice import BookService
    from xtrader.venues import venue

    service = BookService.for_venue(venue(VENUE))
    for symbol, batches in rest.items():
        service.on_batch(CONNECTION, batches, rest=True)
        for update in updates[symbol]:
            service.on_batch(CONNECTION, update)
    return service.tops(20)


def test_a_book_with_more_calls_open_than_slots_applies_every_producers_calls_in_order(tmp_path: Path) -> None:
    import ray

    from actors import actor
    from actors.book import OrderBookActor
    from actors.sink import SinkActor, writer_id

    @ray.remote(num_cpus=0)
    class Producer:
        """One producer process (a connector's place): its numbered calls to the book, in order."""

        async def send(self, book: Any, source: str, rest: Any, updates: list[Any]) -> int:
            """Its calls one every 10 ms (a connector's pace), each left open until the book answers it."""
            calls = [book.on_batch.remote(CONNECTION, rest, True, source, 0)]
            for n, batches in enumerate(updates, 1):
                await asyncio.sleep(0.01)
                calls.append(book.on_batch.remote(CONNECTION, batches, False, source, n))
            await asyncio.gather(*calls)
            return len(calls)

    rest, updates = depth_batches(1_200, symbols=3)
    sink = actor(SinkActor).remote(parquet_spec(tmp_path), writer_id("backlog-test"))
    # the actor's real options (`actors.OPTIONS`); a reorder timeout of 1 s instead of 5 shows a starved call sooner
    book = actor(OrderBookActor).remote(VENUE, VENUE, [sink], reorder_timeout_s=1.0)
    # every write 10 ms: the producers' calls (3 every 10 ms) stay open at the book by the hundred
    ray.get(sink.stall.remote(0.01, 1_000.0), timeout=60)
    producers = [Producer.remote() for _ in rest]
    started = time.monotonic()
    sends = [
        producer.send.remote(book, f"{VENUE}/s0/c{i}#e1", rest[symbol], updates[symbol])
        for i, (producer, symbol) in enumerate(zip(producers, rest, strict=True))
    ]
    sent = ray.get(sends, timeout=600)
    print(f"\n{sum(sent)} calls from {len(sent)} producers answered in {time.monotonic() - started:.1f} s")
    stats = ray.get(book.stats.remote(), timeout=60)
    tops = ray.get(book.tops.remote(20), timeout=60)
    for handle in (book, sink, *producers):
        ray.kill(handle, no_restart=True)

    print(f"order {stats['order']}, gaps {stats['counters']['gaps']}")
    assert sum(sent) > 256 * 2  # well over the 256 slots the book actor had before
    assert stats["order"]["skipped"] == 0, stats["order"]  # no call given up for lateness
    assert stats["order"]["late"] == 0, stats["order"]
    assert stats["counters"]["gaps"] == 0
    assert tops == in_order_tops(rest, updates)
