"""OKX books from the REST snapshot, end to end without Ray: simulator -> Connector -> BookService.

The simulator with `initial_snapshot=0` streams `books` updates only, as OKX announced (changelog,
12 Feb 2026; EXCHANGES.md 3.6). The connector fetches `GET /api/v5/market/books?..&source=0` and the
book service bridges the buffered updates by seqId; its resync requests go back to the connector, as
the OrderBookActor sends them. Every book must end equal to the simulator's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from xtrader.batch import Batches, FlushPolicy
from xtrader.bookservice import BookService
from xtrader.connector import Connector, SnapshotBatches
from xtrader.simulator import Simulator
from xtrader.simulator.faults import NO_FAULTS
from xtrader.venues import Subscription, venue
from xtrader.venues.okx import Okx

NO_SNAPSHOT = {"okx": {"initial_snapshot": 0}}
DEPTH = 20


class Pipeline:
    """The downstream of one connector: a BookService fed in order, resyncs sent back to the connector."""

    def __init__(self) -> None:
        v = venue("okx")
        self.service = BookService("okx", v.sync_kind, keep_text=True, checksum=Okx.book_checksum)
        self.connector: Connector | None = None
        self.snapshots: list[SnapshotBatches] = []
        self.events: list[tuple[str, str, str | None]] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, batches: Batches) -> None:
        rest = isinstance(batches, SnapshotBatches)
        if rest:
            self.snapshots.append(batches)
        if batches.events is not None:
            e = batches.events.to_pydict()
            self.events += list(zip(e["kind"], e["detail"], e["symbol"], strict=True))
        out = self.service.on_batch("c0", batches, rest=rest)
        if out.events is not None:
            e = out.events.to_pydict()
            self.events += list(zip(e["kind"], e["detail"], e["symbol"], strict=True))
        for _, symbol in out.resyncs:
            assert self.connector is not None
            task = asyncio.get_running_loop().create_task(self.connector.resync(symbol))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def counters(self) -> dict[str, int]:
        return self.service.books.counters().as_dict()


def start(sim: Simulator, pipeline: Pipeline, rest_faults: str = "", ws_faults: str = "", **kwargs: Any) -> Connector:
    urls = sim.urls["okx"]
    rest = urls["rest"] + (f"/_faults/{rest_faults}" if rest_faults else "")
    v = venue("okx", ws_base=urls["ws"], rest_base=rest)
    subs = [Subscription("l2", s) for s in sim.symbols["okx"]]
    (connection,) = v.connections(subs)
    if ws_faults:
        connection = type(connection)(f"{connection.url}?faults={ws_faults}", connection.subscriptions)
    kwargs.setdefault("seed", 7)
    kwargs.setdefault("backoff_base_s", 0.05)
    kwargs.setdefault("backoff_cap_s", 0.5)
    connector = Connector(v, connection, pipeline, FlushPolicy(batch_rows=200, batch_ms=10), **kwargs)
    pipeline.connector = connector
    return connector


async def wait_for(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout_s} s")
        await asyncio.sleep(0.02)


def truth(sim: Simulator, symbol: str) -> tuple[int, list[tuple[float, float]], list[tuple[float, float]]]:
    book = sim.book("okx", symbol, DEPTH)["data"][0]
    side = lambda levels: [(float(px), float(sz)) for px, sz, *_ in levels]  # noqa: E731
    return book["seqId"], side(book["bids"]), side(book["asks"])


async def books_match_the_simulator(sim: Simulator, pipeline: Pipeline) -> None:
    """Pause the market, let the connector read everything, then compare every book with the simulator's."""
    sim.pause()
    await sim.drain()
    service = pipeline.service

    def caught_up() -> bool:
        return all(service.sync(s).valid and service.sync(s).last == truth(sim, s)[0] for s in sim.symbols["okx"])

    await wait_for(caught_up, 10.0, "books valid at the simulator's last seqId")
    tops = service.tops(DEPTH)
    for symbol in sim.symbols["okx"]:
        _, bids, asks = truth(sim, symbol)
        assert tops[symbol] == (bids, asks), symbol


@pytest.fixture
async def connector_task() -> AsyncIterator[Callable[[Connector], None]]:
    started: list[tuple[Connector, asyncio.Task[None]]] = []

    def run(connector: Connector) -> None:
        started.append((connector, asyncio.get_running_loop().create_task(connector.run())))

    yield run
    for connector, task in started:
        await connector.stop()
        await task


async def test_auto_bridges_from_rest_when_no_websocket_snapshot_comes(connector_task) -> None:
    async with Simulator(venues=["okx"], symbols=2, rate=300, seed=5, venue_options=NO_SNAPSHOT) as sim:
        pipeline = Pipeline()
        connector = start(sim, pipeline, book_source="auto", ws_snapshot_wait_s=0.3)
        connector_task(connector)
        symbols = set(sim.symbols["okx"])
        await wait_for(lambda: {s.symbol for s in pipeline.snapshots} == symbols, 10.0, "a REST snapshot per book")
        await wait_for(lambda: pipeline.service.stats()["valid"] == 2, 10.0, "both books valid")
        await books_match_the_simulator(sim, pipeline)
        rest = sim.stats()["venues"]["okx"]["rest"]
    counters = pipeline.counters()
    assert counters["gaps"] == 0 and counters["snapshots"] == 2 and counters["buffered"] > 0
    assert rest["books"] == rest["books_source_0"] == 2  # one request per book, each with source=0
    waited = [e for e in pipeline.events if e[0] == "resync" and "no websocket snapshot 0.3 s after" in e[1]]
    assert {e[2] for e in waited} == symbols
    assert all(s.l2 is not None and s.l2.num_rows > 0 for s in pipeline.snapshots)


async def test_auto_takes_the_websocket_snapshot_when_one_comes(connector_task) -> None:
    async with Simulator(venues=["okx"], symbols=2, rate=300, seed=5) as sim:
        pipeline = Pipeline()
        connector_task(start(sim, pipeline, book_source="auto", ws_snapshot_wait_s=0.3))
        await wait_for(lambda: pipeline.service.stats()["valid"] == 2, 10.0, "both books valid")
        await asyncio.sleep(0.5)  # past the wait: no REST request may follow
        await books_match_the_simulator(sim, pipeline)
        rest = sim.stats()["venues"]["okx"]["rest"]
    assert pipeline.snapshots == [] and rest.get("books", 0) == 0
    assert pipeline.counters()["snapshots"] == 2


async def test_rest_refetches_a_stale_snapshot_and_bridges(connector_task) -> None:
    async with Simulator(venues=["okx"], symbols=2, rate=300, seed=6, venue_options=NO_SNAPSHOT) as sim:
        pipeline = Pipeline()
        connector_task(start(sim, pipeline, rest_faults="stale_snapshot=1", book_source="rest"))
        await wait_for(lambda: pipeline.service.stats()["valid"] == 2, 15.0, "both books valid")
        await books_match_the_simulator(sim, pipeline)
        rest = sim.stats()["venues"]["okx"]["rest"]
    counters = pipeline.counters()
    assert rest["books_stale"] == 2 and counters["stale_snapshots"] == 2  # each book's first snapshot was old
    assert rest["books"] == 4 and len(pipeline.snapshots) == 4  # and was fetched again
    assert counters["gaps"] == 0
    stale = [e for e in pipeline.events if e[0] == "resync" and e[1].startswith("stale snapshot")]
    assert len(stale) == 2


async def test_gaps_after_the_bridge_resync_from_rest_without_resubscribing(connector_task) -> None:
    async with Simulator(venues=["okx"], symbols=2, rate=300, seed=7, venue_options=NO_SNAPSHOT) as sim:
        pipeline = Pipeline()
        connector = start(sim, pipeline, ws_faults="drop_rate=0.02", book_source="auto", ws_snapshot_wait_s=0.2)
        connector_task(connector)
        await wait_for(lambda: pipeline.counters()["gaps"] >= 2, 20.0, "gaps from dropped updates")
        for conn in sim.connections("okx"):
            conn.faults = NO_FAULTS  # stop dropping, so that the last update of each book reaches the client
        gaps = pipeline.counters()["gaps"]
        await wait_for(lambda: pipeline.service.stats()["valid"] == 2, 15.0, "both books valid again")
        await books_match_the_simulator(sim, pipeline)
        stats = connector.stats()
    assert len(pipeline.snapshots) > 2 and pipeline.counters()["gaps"] >= gaps
    assert stats["session_requests"] == 1  # the one subscribe at open: no resubscription
    assert stats["snapshot_snapshots"] == len(pipeline.snapshots)


async def test_simulator_rest_book_takes_source_0_and_the_option_is_initial_snapshot() -> None:
    import httpx

    with pytest.raises(ValueError, match="no option 'ws_snapshot'"):
        Simulator(venues=["okx"], venue_options={"okx": {"ws_snapshot": 0}})
    async with Simulator(venues=["okx"], symbols=1, rate=50, seed=5, venue_options=NO_SNAPSHOT) as sim:
        base = sim.urls["okx"]["rest"] + "/api/v5/market/books?instId=BTC-USDT&sz=400"
        async with httpx.AsyncClient() as client:
            ok = (await client.get(base + "&source=0")).json()
            bad = await client.get(base + "&source=7")
        rest = sim.stats()["venues"]["okx"]["rest"]
    assert ok["code"] == "0" and isinstance(ok["data"][0]["seqId"], int) and len(ok["data"][0]["bids"]) > 1
    assert (bad.status_code, bad.json()["code"]) == (400, "51000")
    assert rest["books_source_0"] == 1


async def test_a_make_before_break_rotation_needs_no_new_rest_book(connector_task) -> None:
    async with Simulator(venues=["okx"], symbols=2, rate=300, seed=5, venue_options=NO_SNAPSHOT) as sim:
        pipeline = Pipeline()
        connector = start(sim, pipeline, book_source="auto", ws_snapshot_wait_s=0.2, rotate_overlap_s=0.2)
        connector_task(connector)
        await wait_for(lambda: pipeline.service.stats()["valid"] == 2, 10.0, "both books valid")
        assert await connector.rotate("test")
        await wait_for(lambda: connector.stats()["rotations"] == 1, 10.0, "the link replaced")
        await asyncio.sleep(0.5)  # past the wait after the new link's acks
        await books_match_the_simulator(sim, pipeline)
        rest = sim.stats()["venues"]["okx"]["rest"]
    assert rest["books"] == 2 and len(pipeline.snapshots) == 2  # the books went on over the new link
    assert pipeline.counters()["gaps"] == 0
