"""The book service fed by real connectors against the simulator, wired as the actors are, without Ray.

- a sequence reset over a reconnect: a stream whose symbols are spread over two
  connections (one per symbol here); each connector drops its own repeats (as
  ConnectorActor does) and feeds one BookService under its connection id;
- resync routing with redundancy: every connector feeds one BatchArbiter, whose
  winners reach the BookService under the arbiter's name; a resync request goes to
  the connector the service names (as OrderBookActor._resync does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from xtrader.arbiter_batches import BatchArbiter
from xtrader.batch import Batches, Columns, FlushPolicy
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
        service = BookService.for_venue(v)
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


async def test_a_resync_of_a_redundant_stream_reaches_a_connector_that_carries_the_symbol() -> None:
    async with Simulator(venues=["okx"], symbols=2, rate=300, seed=6) as sim:
        btc, eth = sim.symbols["okx"]
        v = venue("okx", ws_base=sim.urls["okx"]["ws"], rest_base=sim.urls["okx"]["rest"])
        arbiter = BatchArbiter()
        # a gap waits gap_hold_s for the other copy to fill it (here nobody can), then it is taken as real
        service = BookService.for_venue(v, gap_hold_s=0.5)
        resyncs: list[tuple[str, str]] = []  # what the service asked, as OrderBookActor._resync gets it
        # two connections (one per symbol), two copies of each
        layout = {f"okx/c{c}/r{r}": symbol for c, symbol in enumerate((btc, eth)) for r in range(2)}
        service.set_carriers({name: [symbol] for name, symbol in layout.items()})
        connectors: dict[str, Connector] = {}
        for name, symbol in layout.items():
            (connection,) = v.connections([Subscription("l2", symbol)])

            async def emit(batches: Batches, name: str = name) -> None:
                resyncs.extend(
                    service.on_batch("arbiter:okx", arbiter.filter(name, batches, time.monotonic_ns())).resyncs
                )

            connectors[name] = Connector(v, connection, emit, FlushPolicy(500, 20), seed=7)
        tasks = [asyncio.create_task(c.run()) for c in connectors.values()]
        book = service.sync(eth)
        try:
            await wait_for(lambda: service.sync(btc).valid and book.valid, "books valid")
            # a lost update: the next message does not chain on the book (and no copy will ever fill it)
            assert book.last is not None and book.last_ts is not None
            lost = Columns("okx", keep_text=True)
            ahead = 10**12
            lost.l2.message(
                eth, book.last_ts + 1, time.time_ns(), book.last + ahead, book.last + ahead - 1, None, False, 0, 0, 0
            )
            resyncs.clear()
            resyncs.extend(service.on_batch("arbiter:okx", lost.flush()).resyncs)
            await wait_for(lambda: not book.valid and len(resyncs) > 0, "the gap taken as real after gap_hold_s")
            assert len(resyncs) == 1
            asked, symbol = resyncs[0]
            assert symbol == eth and layout.get(asked) == eth  # a connector that carries ETH, not the arbiter
            resubscribed = connectors[asked].stats()["resyncs"]
            await connectors[asked].resync(eth)
            assert connectors[asked].stats()["resyncs"] == resubscribed + 1
            await wait_for(lambda: book.valid, "book valid again after the resubscription")
        finally:
            for c in connectors.values():
                await c.stop()
            await asyncio.gather(*tasks)
    assert service.stats()["symbols"][eth]["gaps"] == 1


async def test_a_reconnected_redundant_copy_ahead_of_its_partners_backlog_makes_no_gap() -> None:
    """Two copies of one binance connection; r0's batches reach the arbiter a second late (a busy pipeline holds
    them back, as a stalled sink did in a faults soak), and r1 connects while the book is valid: its first
    batch starts at the newest updates, ahead of r0's backlog. The book waits for the backlog: no gap, no
    resync, and it ends like the venue's."""
    delay_s = 1.0
    async with Simulator(venues=["binance"], symbols=1, rate=200, seed=9) as sim:
        (symbol,) = sim.symbols["binance"]
        v = venue("binance", ws_base=sim.urls["binance"]["ws"], rest_base=sim.urls["binance"]["rest"])
        arbiter = BatchArbiter()
        service = BookService.for_venue(v)
        book = service.sync(symbol)
        resyncs: list[tuple[str, str]] = []

        def deliver(name: str, batches: Batches) -> None:
            resyncs.extend(
                service.on_batch("arbiter:binance", arbiter.filter(name, batches, time.monotonic_ns())).resyncs
            )

        late: asyncio.Queue[tuple[float, Batches]] = asyncio.Queue()

        async def delay_line() -> None:  # r0's batches, in order, each delay_s after it was emitted
            while True:
                due, batches = await late.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                deliver("binance/c0/r0", batches)

        async def emit_r0(batches: Batches) -> None:
            late.put_nowait((time.monotonic() + delay_s, batches))

        async def emit_r1(batches: Batches) -> None:
            deliver("binance/c0/r1", batches)

        def connector(emit: Callable[[Batches], object], name: str) -> Connector:
            (connection,) = v.connections([Subscription("l2", symbol)])
            return Connector(v, connection, emit, FlushPolicy(500, 20), seed=7, name=name)  # type: ignore[arg-type]

        line = asyncio.create_task(delay_line())
        r0 = connector(emit_r0, "binance/c0/r0")
        tasks = [asyncio.create_task(r0.run())]
        r1 = connector(emit_r1, "binance/c0/r1")
        try:
            await wait_for(lambda: book.valid and book.counters.updates_applied > 50, "book valid from r0")
            tasks.append(asyncio.create_task(r1.run()))  # r1 (re)connects: it starts at the newest updates
            await wait_for(lambda: arbiter.snapshot()["wins"].get("binance/c0/r1", 0) > 100, "r1 delivering first")
            sim.pause()
            await sim.drain()
            truth = sim.book("binance", symbol, depth=1000)
            await wait_for(lambda: book.last == truth["lastUpdateId"], "the book at the venue's last update")
        finally:
            for c in (r0, r1):
                await c.stop()
            await asyncio.gather(*tasks)
            line.cancel()
        counters = service.stats()["counters"]
        assert counters["gaps"] == 0 and resyncs == [], (counters, resyncs)
        assert counters["held"] > 0  # r1's first updates did come ahead of r0's backlog
        bids, asks = service.tops(1000)[symbol]
        assert (bids, asks) == (levels(truth["bids"]), levels(truth["asks"]))
