"""Books across a venue's sequence reset: real connectors against the simulator, the book service, no Ray.

A stream whose symbols are spread over two connections (one per symbol here): each
connector drops its own repeats (as ConnectorActor does) and feeds one BookService
under its connection id, as the order-book actor is fed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from xtrader.arbiter_batches import BatchArbiter
from xtrader.batch import Batches, FlushPolicy
from xtrader.bookservice import BookService
from xtrader.connector import Connector
from xtrader.simulator import Simulator
from xtrader.venues import Subscription, venue

TIMEOUT_S = 30.0


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout_s} s")
        await asyncio.sleep(0.02)


def levels(rows: list[list[str]]) -> list[tuple[float, float]]:
    return [(float(p), float(s)) for p, s, *_ in rows]


async def test_okx_books_follow_a_sequence_reset_over_a_reconnect() -> None:
    async with Simulator(venues=["okx"], symbols=2, rate=300, seed=5) as sim:
        symbols = sim.symbols["okx"]
        v = venue("okx", ws_base=sim.urls["okx"]["ws"], rest_base=sim.urls["okx"]["rest"])
        service = BookService("okx", v.sync_kind, keep_text=v.keep_text, checksum=getattr(v, "book_checksum", None))
        books = [service.sync(s) for s in symbols]

        def emit_as(name: str) -> Callable[[Batches], object]:
            dedup = BatchArbiter()

            async def emit(batches: Batches) -> None:
                service.on_batch(name, dedup.filter(name, batches, time.monotonic_ns()))

            return emit

        async def run(condition: Callable[[], bool], what: str, settle: bool = False) -> None:
            connectors = []
            for number, symbol in enumerate(symbols):
                (connection,) = v.connections([Subscription("l2", symbol)])
                connectors.append(Connector(v, connection, emit_as(f"okx/c{number}"), FlushPolicy(500, 20), seed=7))
            tasks = [asyncio.create_task(c.run()) for c in connectors]
            try:
                await wait_for(condition, what)
                if settle:  # freeze the market: each book must reach the venue's own last seqId
                    sim.pause()
                    await sim.drain()
                    for symbol, book in zip(symbols, books, strict=True):
                        seq = sim.book("okx", symbol)["data"][0]["seqId"]
                        await wait_for(lambda b=book, s=seq: b.last == s, f"{symbol} at the venue's seqId {seq}")
            finally:
                for c in connectors:
                    await c.stop()
                await asyncio.gather(*tasks)

        # before: the books valid and moving
        await run(lambda: all(b.valid and b.counters.updates_applied > 10 for b in books), "books valid")
        before = [b.last for b in books]
        # maintenance: the links are down while the venue restarts its sequences (nobody sees the reset update)
        okx = sim.venues["okx"]
        okx.reset_sequence()  # type: ignore[attr-defined]
        await wait_for(lambda: okx.resets >= len(symbols), "sequence reset")  # type: ignore[attr-defined]
        applied = [b.counters.updates_applied for b in books]

        # the links come back: their snapshots and updates carry new, smaller seqIds
        def moving_again() -> bool:
            return all(b.valid and b.counters.updates_applied > n + 10 for b, n in zip(books, applied, strict=True))

        await run(moving_again, "books on the new sequences", settle=True)
        for symbol, book, last in zip(symbols, books, before, strict=True):
            truth = sim.book("okx", symbol, depth=20)["data"][0]
            assert book.last is not None and last is not None and book.last < last
            assert service.tops(20)[symbol] == (levels(truth["bids"]), levels(truth["asks"]))
    assert service.stats()["counters"]["checksum_failed"] == 0
