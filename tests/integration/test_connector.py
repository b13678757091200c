"""The connector against the real simulator over loopback: rows, reconnects, rejects, 429, staleness, rotation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pytest

from xtrader.batch import Batches, FlushPolicy
from xtrader.connector import Connector, SnapshotBatches
from xtrader.simulator import Simulator
from xtrader.simulator import registry as sim_registry
from xtrader.sync import Books
from xtrader.venues import Subscription, venue
from xtrader.venues.base import Keepalive

TABLES = ("trades", "l2", "bbo")


class Capture:
    """The emit callback: keeps every Batches in order, with the time it arrived."""

    def __init__(self) -> None:
        self.batches: list[Batches] = []
        self.arrived: list[float] = []

    async def __call__(self, batches: Batches) -> None:
        self.batches.append(batches)
        self.arrived.append(time.monotonic())

    def rows(self, table: str) -> int:
        return sum(b.tables()[table].num_rows for b in self.batches if table in b.tables())

    def table(self, table: str) -> pa.Table:
        return pa.Table.from_batches([b.tables()[table] for b in self.batches if table in b.tables()])

    def events(self, kind: str | None = None) -> list[tuple[str, str, str | None]]:
        out = []
        for b in self.batches:
            if b.events is not None:
                e = b.events.to_pydict()
                out += [(k, d, s) for k, d, s in zip(e["kind"], e["detail"], e["symbol"], strict=True)]
        return [e for e in out if kind is None or e[0] == kind]

    def snapshots(self) -> list[SnapshotBatches]:
        return [b for b in self.batches if isinstance(b, SnapshotBatches)]

    def books(self, sync_kind: str) -> Books:
        """Replay every l2 batch into the downstream book sync, REST snapshots through on_rest_snapshot."""
        books = Books(sync_kind)
        for b in self.batches:
            if b.l2 is not None and b.l2_messages is not None:
                books.apply_batch("c", b.l2, b.l2_messages, rest=isinstance(b, SnapshotBatches))
        return books


def plan(sim: Simulator, name: str, tables: Sequence[str] = TABLES, ws_faults: str = "", rest_faults: str = ""):
    urls = sim.urls[name]
    rest = urls["rest"] + (f"/_faults/{rest_faults}" if rest_faults else "")
    v = venue(name, ws_base=urls["ws"], rest_base=rest)
    subs = [Subscription(t, s) for s in sim.symbols[name] for t in tables]  # type: ignore[arg-type]
    (connection,) = v.connections(subs)
    if ws_faults:
        connection = type(connection)(f"{connection.url}&faults={ws_faults}", connection.subscriptions)
    return v, connection


async def run_until(
    connector: Connector, done: Callable[[], bool], timeout_s: float = 10.0, linger_s: float = 0.0
) -> dict[str, Any]:
    """Run the connector until `done()` (then `linger_s` more), stop it, return its stats."""
    task = asyncio.create_task(connector.run())
    deadline = time.monotonic() + timeout_s
    try:
        while not done():
            if task.done():
                task.result()  # raise what killed it
                raise AssertionError("connector stopped by itself")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached in {timeout_s} s; stats: {connector.stats()}")
            await asyncio.sleep(0.02)
        await asyncio.sleep(linger_s)
    finally:
        await connector.stop()
        await task
    return connector.stats()


def connector(v, connection, capture: Capture, **kwargs: Any) -> Connector:
    kwargs.setdefault("snapshot_depth", 100)
    kwargs.setdefault("seed", 7)
    kwargs.setdefault("backoff_base_s", 0.05)
    kwargs.setdefault("backoff_cap_s", 0.5)
    return Connector(v, connection, capture, FlushPolicy(batch_rows=500, batch_ms=20), **kwargs)


@pytest.fixture
async def sim():
    async with Simulator(venues=["binance"], symbols=2, rate=300, seed=3) as simulator:
        yield simulator


async def test_binance_rows_arrive_and_books_sync_from_in_order_rest_snapshots(sim):
    capture = Capture()
    v, connection = plan(sim, "binance")
    c = connector(v, connection, capture)
    stats = await run_until(c, lambda: len(capture.snapshots()) == 2 and capture.rows("trades") > 20, linger_s=0.3)
    for table in TABLES:
        assert capture.rows(table) > 0, table
    assert stats["rejects"] == 0 and stats["reconnects"] == 0
    assert stats["rows"] == sum(capture.rows(t) for t in TABLES)
    assert stats["messages"] > 0 and stats["bytes"] > stats["messages"]
    assert {s.symbol for s in capture.snapshots()} == set(sim.symbols["binance"])
    assert all(s.trades is None and s.bbo is None and s.l2 is not None for s in capture.snapshots())
    books = capture.books(v.sync_kind)
    counters = books.counters()
    assert counters.snapshots == 2 and counters.gaps == 0 and counters.updates_applied > 0
    assert all(sync.valid for sync in books.books.values())
    kinds = [e[0] for e in capture.events()]
    assert kinds[0] == "connect" and kinds.count("resync") == 2


async def test_binance_futures_book_connection_syncs_with_pu_rules():
    async with Simulator(venues=["binance_futures"], symbols=2, rate=300, seed=3) as sim:
        capture = Capture()
        v, connection = plan(sim, "binance_futures", tables=("l2", "bbo"))  # both routed to /public
        assert "/public/stream" in connection.url
        c = connector(v, connection, capture)
        await run_until(c, lambda: len(capture.snapshots()) == 2 and capture.rows("bbo") > 20, linger_s=0.2)
    counters = capture.books(v.sync_kind).counters()
    assert counters.snapshots == 2 and counters.gaps == 0 and counters.updates_applied > 0


async def test_tls_with_the_simulator_ca(sim):
    capture = Capture()
    urls = sim.urls["binance"]
    v = venue("binance", ws_base=urls["wss"], rest_base=urls["rest_tls"])
    (connection,) = v.connections([Subscription("l2", sim.symbols["binance"][0])])
    c = connector(v, connection, capture, ca_file=sim.ca_file)
    await run_until(c, lambda: len(capture.snapshots()) == 1 and capture.rows("l2") > 200)


async def test_disconnects_lead_to_reconnects_and_capture_goes_on(sim):
    capture = Capture()
    v, connection = plan(sim, "binance", ws_faults="disconnect_after_msgs=150")
    c = connector(v, connection, capture)
    stats = await run_until(c, lambda: c.stats()["reconnects"] >= 2 and capture.rows("trades") > 0, linger_s=0.2)
    assert stats["messages"] > 2 * 150
    kinds = [e[0] for e in capture.events()]
    assert kinds.count("connect") >= 3 and kinds.count("disconnect") >= 2
    # every reconnect starts the books over: a REST snapshot per symbol per link
    assert len(capture.snapshots()) >= 2 * 2
    verdicts = capture.books(v.sync_kind).counters()
    assert verdicts.snapshots >= 4


async def test_malformed_frames_are_rejected_and_recorded_without_a_crash(sim):
    capture = Capture()
    v, connection = plan(sim, "binance", ws_faults="malformed_rate=0.05")
    c = connector(v, connection, capture)
    stats = await run_until(c, lambda: c.stats()["rejects"] >= 5 and capture.rows("trades") > 10, linger_s=0.1)
    assert stats["reconnects"] == 0
    rejects = capture.events("reject")
    assert len(rejects) == stats["rejects"] >= 5
    assert all("binance" in detail for _, detail, _ in rejects)


async def test_rest_429_is_honoured_with_retry_after(sim):
    capture = Capture()
    v, connection = plan(sim, "binance", tables=("l2",), rest_faults="rest_429=2")
    c = connector(v, connection, capture)
    started = time.monotonic()
    stats = await run_until(c, lambda: len(capture.snapshots()) == 2)
    assert stats["snapshot_throttled"] == 2
    assert stats["snapshot_requests"] == 4
    first = capture.arrived[capture.batches.index(capture.snapshots()[0])]
    assert first - started >= 1.0  # the simulator says Retry-After: 1
    assert any("HTTP 429" in detail for _, detail, _ in capture.events("error"))


async def test_a_silent_link_is_found_stale_and_replaced(sim):
    capture = Capture()
    v, connection = plan(sim, "binance", ws_faults="stall_after_s=0.4")
    c = connector(v, connection, capture, keepalive=Keepalive(None, 0.2, 0.6))
    stats = await run_until(c, lambda: c.stats()["reconnects"] >= 1 and c.stats()["connected"] == 1)
    assert stats["session_stale"] >= 1
    assert any("stale" in detail for _, detail, _ in capture.events("disconnect"))


@pytest.mark.parametrize(("ping_interval_s", "stale"), [(0.25, False), (30.0, True)])
async def test_server_pings_keep_a_quiet_link_alive(ping_interval_s, stale):
    # a still market sends no data: only the server's websocket pings show the link is alive
    # (at most 4 a second: the pongs count against Binance's 5 inbound messages a second)
    async with Simulator(venues=["binance"], symbols=1, rate=0, seed=3, ping_interval_s=ping_interval_s) as sim:
        capture = Capture()
        v, connection = plan(sim, "binance", tables=("trades",))
        c = connector(v, connection, capture, keepalive=Keepalive(None, 0.2, 0.7))
        task = asyncio.create_task(c.run())
        await asyncio.sleep(1.5)
        await c.stop()
        await task
    assert (c.stats()["session_stale"] > 0) is stale
    assert (c.stats()["reconnects"] > 0) is stale


async def test_rotation_beats_the_venue_lifetime_limit_and_loses_nothing():
    # the venue closes every connection after 4 s (Binance: 24 h); the connector replaces it at 0.5 s
    async with Simulator(venues=["binance"], symbols=2, rate=150, seed=3, max_lifetime_s=4.0) as sim:
        capture = Capture()
        v, connection = plan(sim, "binance")
        c = connector(v, connection, capture, rotate_after_s=0.5, rotate_overlap_s=0.2)
        stats = await run_until(c, lambda: c.stats()["rotations"] >= 2, linger_s=0.2)
    assert stats["reconnects"] == 0
    assert not [d for _, d, _ in capture.events("disconnect") if "lost" in d]
    assert stats["overlap_duplicates"] > 0
    retired = [d for _, d, _ in capture.events("disconnect") if "retired" in d]
    assert len(retired) >= 2
    # no trade lost across the handovers (duplicates are the arbiter's job)
    trades = capture.table("trades").to_pydict()
    for symbol in sim.symbols["binance"]:
        ids = {int(t) for t, s in zip(trades["trade_id"], trades["symbol"], strict=True) if s == symbol}
        assert ids == set(range(min(ids), max(ids) + 1)), symbol
    # and the books never saw a gap: one REST snapshot per symbol was enough
    counters = capture.books(v.sync_kind).counters()
    assert counters.gaps == 0 and len(capture.snapshots()) == 2


async def test_rotation_on_request_replaces_the_link_and_loses_nothing(sim):
    # the arbiter asks a connector that wins least to replace its link: make-before-break, like the 24 h limit
    capture = Capture()
    v, connection = plan(sim, "binance")
    c = connector(v, connection, capture, rotate_after_s=None, rotate_overlap_s=0.2)
    asked: list[bool] = []

    def done() -> bool:
        if not asked and c.stats()["messages"] >= 50:
            asked.append(True)
            asyncio.get_running_loop().create_task(c.rotate("wins least"))
        return c.stats()["rotations"] >= 1 and c.stats()["connected"] == 1

    stats = await run_until(c, done, linger_s=0.2)
    assert stats["reconnects"] == 0 and stats["connects"] == 2
    assert [d for _, d, _ in capture.events("disconnect") if "retired" in d]
    trades = capture.table("trades").to_pydict()
    for symbol in sim.symbols["binance"]:
        ids = {int(t) for t, s in zip(trades["trade_id"], trades["symbol"], strict=True) if s == symbol}
        assert ids and ids == set(range(min(ids), max(ids) + 1)), symbol
    assert capture.books(v.sync_kind).counters().gaps == 0


async def test_a_shutdown_notice_hands_over_to_a_new_link(sim):
    capture = Capture()
    v, connection = plan(sim, "binance")
    c = connector(v, connection, capture)
    task = asyncio.create_task(run_until(c, lambda: c.stats()["connects"] >= 2 and c.stats()["connected"] == 1))
    while c.stats()["messages"] < 50:
        await asyncio.sleep(0.02)
    await sim.server_shutdown("binance")
    stats = await task
    assert stats["session_shutdowns"] == 1


async def test_resync_fetches_a_new_rest_snapshot(sim):
    capture = Capture()
    v, connection = plan(sim, "binance", tables=("l2",))
    c = connector(v, connection, capture)
    symbol = sim.symbols["binance"][0]
    asked: list[asyncio.Task[None]] = []

    def done() -> bool:
        if len(capture.snapshots()) == 2 and not asked:
            asked.append(asyncio.get_running_loop().create_task(c.resync(symbol)))
        return len(capture.snapshots()) == 3

    stats = await run_until(c, done)
    assert stats["resyncs"] == 1
    first, *_, last = [s for s in capture.snapshots() if s.symbol == symbol]
    assert last.seq > first.seq
    assert ("resync", "rest snapshot requested", symbol) in capture.events("resync")
    # a REST snapshot of a book that is live may be older than diffs already applied: that is for
    # the book sync to judge (downstream asks for a resync only once its book is invalid)
    assert capture.books(v.sync_kind).counters().snapshots >= 3


async def test_runtime_subscribe_and_unsubscribe(sim):
    capture = Capture()
    first, second = sim.symbols["binance"]
    v = venue("binance", ws_base=sim.urls["binance"]["ws"], rest_base=sim.urls["binance"]["rest"])
    (connection,) = v.connections([Subscription("trades", first)])
    c = connector(v, connection, capture)
    task = asyncio.create_task(c.run())
    try:
        while c.stats()["messages"] < 5:
            await asyncio.sleep(0.02)
        await c.subscribe([Subscription("bbo", second)])
        assert Subscription("bbo", second) in c.connection.subscriptions
        assert f"{second.lower()}@bookTicker" in c.connection.url  # a reconnect keeps it
        while capture.rows("bbo") < 5:
            await asyncio.sleep(0.02)
        await c.unsubscribe([Subscription("trades", first)])
        assert c.connection.subscriptions == (Subscription("bbo", second),)
        await asyncio.sleep(0.2)
        trades_after = capture.rows("trades")
        await asyncio.sleep(0.3)
        assert capture.rows("trades") == trades_after
    finally:
        await c.stop()
        await task
    assert set(capture.table("bbo").to_pydict()["symbol"]) == {second}
    assert c.stats()["session_acks"] == 2


async def test_lossy_flow_drops_and_counts_when_downstream_stalls(sim):
    stalled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    emitted: list[Batches] = []

    def emit(batches: Batches) -> asyncio.Future[None]:
        emitted.append(batches)
        return stalled  # never acknowledged

    v, connection = plan(sim, "binance", tables=("trades", "bbo"))
    c = Connector(
        v,
        connection,
        emit,
        FlushPolicy(batch_rows=50, batch_ms=10),
        max_inflight=2,
        flow_policy="lossy",
        drain_timeout_s=0.1,
    )
    stats = await run_until(c, lambda: c.stats()["flow_dropped_rows"] > 100)
    assert len(emitted) == 2 and stats["flow_high_water"] == 2
    assert stats["flow_dropped_batches"] >= 2 and stats["messages"] > 50
    stalled.cancel()


def simulated(name: str) -> None:
    if name not in sim_registry.VENUES:
        pytest.skip(f"the simulator does not implement {name} yet")


@pytest.mark.parametrize("name", ["okx", "deribit"])
async def test_websocket_snapshot_venues_capture_and_sync(name):
    simulated(name)
    async with Simulator(venues=[name], symbols=2, rate=300, seed=3) as simulator:
        capture = Capture()
        v, connection = plan(simulator, name)
        c = connector(v, connection, capture)
        stats = await run_until(c, lambda: all(capture.rows(t) for t in TABLES), linger_s=0.2)
    assert stats["session_acks"] >= 1 and stats["rejects"] == 0
    assert capture.snapshots() == []  # books start from websocket snapshots
    books = Books(v.sync_kind, keep_text=v.keep_text)
    for b in capture.batches:
        if b.l2 is not None and b.l2_messages is not None:
            books.apply_batch("c", b.l2, b.l2_messages)
    assert books.counters().gaps == 0 and books.counters().snapshots == 2


@pytest.mark.parametrize("name", ["okx", "deribit"])
async def test_resync_resubscribes_for_a_fresh_websocket_snapshot(name):
    simulated(name)
    async with Simulator(venues=[name], symbols=2, rate=300, seed=3) as simulator:
        capture = Capture()
        v, connection = plan(simulator, name, tables=("l2",))
        symbol = simulator.symbols[name][0]
        c = connector(v, connection, capture)

        def snapshots() -> int:
            return sum(
                sum(m)
                for b in capture.batches
                if b.l2_messages is not None
                for m in [b.l2_messages.column("is_snapshot").to_pylist()]
            )

        asked: list[asyncio.Task[None]] = []

        def done() -> bool:
            if snapshots() == 2 and not asked:
                asked.append(asyncio.get_running_loop().create_task(c.resync(symbol)))
            return snapshots() == 3

        stats = await run_until(c, done)
    assert stats["resyncs"] == 1
    assert ("resync", "resubscribe", symbol) in capture.events("resync")


async def test_okx_text_pings_keep_a_quiet_link_alive():
    simulated("okx")
    async with Simulator(venues=["okx"], symbols=1, rate=0, seed=3) as simulator:
        capture = Capture()
        v, connection = plan(simulator, "okx", tables=("trades",))
        c = connector(v, connection, capture, keepalive=Keepalive(b"ping", 0.2, 0.6))
        task = asyncio.create_task(c.run())
        await asyncio.sleep(1.3)
        await c.stop()
        await task
    stats = c.stats()
    assert stats["session_pings_sent"] >= 3 and stats["session_pongs"] >= stats["session_pings_sent"] - 1
    assert stats["session_stale"] == 0 and stats["reconnects"] == 0
