"""Issue 12, "Connector and session": subscriptions, refusals, backoff, book notices; real websockets on loopback.

Each test failed on main before its fix (see the issue's items 1-6).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from xtrader.batch import Batches, BookNotice, FlushPolicy
from xtrader.bookservice import BookService
from xtrader.connector import Connector, SnapshotBatches
from xtrader.simulator import Simulator
from xtrader.venues import Subscription, venue
from xtrader.venues.base import Connection

S = 1_000_000_000


class Capture:
    """The emit callback: every Batches in order."""

    def __init__(self) -> None:
        self.batches: list[Batches] = []

    async def __call__(self, batches: Batches) -> None:
        self.batches.append(batches)

    def rows(self, table: str, symbol: str | None = None) -> int:
        total = 0
        for b in self.batches:
            batch = b.tables().get(table)
            if batch is None:
                continue
            if symbol is None:
                total += batch.num_rows
            else:
                total += sum(1 for s in batch.column("symbol").to_pylist() if s == symbol)
        return total

    def events(self, kind: str | None = None) -> list[tuple[str, str, str | None]]:
        out = []
        for b in self.batches:
            if b.events is not None:
                e = b.events.to_pydict()
                out += [(k, d, s) for k, d, s in zip(e["kind"], e["detail"], e["symbol"], strict=True)]
        return [e for e in out if kind is None or e[0] == kind]

    def notices(self) -> list[BookNotice]:
        return [n for b in self.batches for n in b.notices]


def make(v, connection: Connection, capture: Capture, **kwargs: Any) -> Connector:
    kwargs.setdefault("seed", 7)
    kwargs.setdefault("backoff_base_s", 0.05)
    kwargs.setdefault("backoff_cap_s", 0.5)
    kwargs.setdefault("snapshot_depth", 100)
    return Connector(v, connection, capture, FlushPolicy(batch_rows=500, batch_ms=20), **kwargs)


async def wait_for(done: Callable[[], bool], task: asyncio.Task[None], timeout_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if task.done():
            task.result()
            raise AssertionError(f"connector stopped by itself while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(c: Connector):
    task = asyncio.create_task(c.run())
    try:
        yield task
    finally:
        await c.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


def sim_venue(sim: Simulator, name: str, faults: str = ""):
    urls = sim.urls[name]
    ws = urls["ws"] + (f"/_faults/{faults}" if faults else "")
    return venue(name, ws_base=ws, rest_base=urls["rest"])


# -- item 1: a change made while a link is still connecting -----------------------------------------


async def test_okx_a_subscribe_during_the_handshake_is_sent_once_the_link_opens():
    async with Simulator(venues=["okx"], symbols=2, rate=200, seed=3) as sim:
        btc, eth = sim.symbols["okx"]
        v = sim_venue(sim, "okx", "handshake_delay_s=0.4")
        (connection,) = v.connections([Subscription("trades", btc)])
        capture = Capture()
        c = make(v, connection, capture)
        async with running(c) as task:
            await asyncio.sleep(0.1)  # setup only: the handshake (0.4 s) is under way
            assert c.stats()["connected"] == 0
            await c.subscribe([Subscription("trades", eth)])
            await wait_for(lambda: capture.rows("trades", eth) > 0, task, what=f"{eth} trades")
        assert Subscription("trades", eth) in c.connection.subscriptions


async def test_binance_a_subscribe_during_a_rotation_reaches_the_new_link_and_stays_in_the_url():
    async with Simulator(venues=["binance"], symbols=2, rate=300, seed=3) as sim:
        btc, eth = sim.symbols["binance"]
        v = sim_venue(sim, "binance", "handshake_delay_s=0.4")
        (connection,) = v.connections([Subscription("trades", btc)])
        capture = Capture()
        c = make(v, connection, capture, rotate_overlap_s=0.2)
        async with running(c) as task:
            await wait_for(lambda: capture.rows("trades") > 0, task, what="first trades")
            assert await c.rotate("test")
            await wait_for(lambda: bool(c._opening), task, what="the replacement link connecting")
            await c.subscribe([Subscription("bbo", eth)])
            await wait_for(lambda: c.stats()["rotations"] == 1, task, what="the rotation")
            assert f"{eth.lower()}@bookTicker" in c.connection.url
            assert Subscription("bbo", eth) in c.connection.subscriptions
            after = capture.rows("bbo", eth)
            await wait_for(lambda: capture.rows("bbo", eth) > after + 5, task, what=f"{eth} bbo on the new link")


# -- item 2: one bad symbol never refuses the others --------------------------------------------------


async def test_okx_one_nonexistent_instrument_is_refused_alone_and_the_others_stream():
    async with Simulator(venues=["okx"], symbols=2, rate=300, seed=3) as sim:
        btc, eth = sim.symbols["okx"]
        v = sim_venue(sim, "okx")
        subs = [Subscription("trades", s) for s in (btc, eth, "NOPE-USDT")]
        (connection,) = v.connections(subs)
        capture = Capture()
        c = make(v, connection, capture)
        async with running(c) as task:
            await wait_for(
                lambda: capture.rows("trades", btc) > 0 and capture.rows("trades", eth) > 0, task, what="trades"
            )
            await wait_for(lambda: c.stats()["refused"] == 1, task, what="the refusal")
            assert not task.done()
        assert c.connection.subscriptions == tuple(subs[:2])
        assert [s for k, _, s in capture.events("error") if s is not None] == ["NOPE-USDT"]


async def test_deribit_a_refused_raw_request_leaves_the_streaming_book_alone():
    async with Simulator(venues=["deribit"], symbols=2, rate=300, seed=3) as sim:
        btc, eth = sim.symbols["deribit"]
        v = sim_venue(sim, "deribit")
        subs = [Subscription("l2", btc), Subscription("trades", eth, "raw")]
        (connection,) = v.connections(subs)
        capture = Capture()
        c = make(v, connection, capture)
        async with running(c) as task:
            await wait_for(lambda: c.stats()["refused"] == 1, task, what="the refusal")
            after = capture.rows("l2", btc)
            await wait_for(lambda: capture.rows("l2", btc) > after + 20, task, what="more book rows")
        assert c.connection.subscriptions == (Subscription("l2", btc),)
        assert any("13778" in d for _, d, s in capture.events("error") if s == eth)


# -- item 3: Deribit subscriptions confirmed only by their own result ---------------------------------


async def test_deribit_an_instrument_left_out_of_the_subscribe_result_is_refused():
    async with Simulator(venues=["deribit"], symbols=1, rate=300, seed=3) as sim:
        (btc,) = sim.symbols["deribit"]
        v = sim_venue(sim, "deribit")
        subs = [Subscription("l2", btc), Subscription("l2", "NOPE-PERPETUAL")]
        (connection,) = v.connections(subs)
        capture = Capture()
        c = make(v, connection, capture)
        async with running(c) as task:
            await wait_for(lambda: c.stats()["refused"] == 1, task, what="the refusal of NOPE-PERPETUAL")
            await wait_for(lambda: capture.rows("l2", btc) > 0, task, what="book rows")
        assert ("NOPE-PERPETUAL") in [s for _, _, s in capture.events("error")]
        assert c.connection.subscriptions == (Subscription("l2", btc),)


# -- item 4: the Binance URL follows the subscription set ---------------------------------------------


async def test_binance_a_refused_runtime_stream_leaves_the_url_and_reconnects_go_on():
    async with Simulator(venues=["binance"], symbols=1, rate=300, seed=3) as sim:
        (btc,) = sim.symbols["binance"]
        v = sim_venue(sim, "binance", "disconnect_after_s=1")
        (connection,) = v.connections([Subscription("trades", btc)])
        capture = Capture()
        c = make(v, connection, capture)
        async with running(c) as task:
            await wait_for(lambda: capture.rows("trades") > 0, task, what="first trades")
            await c.subscribe([Subscription("l2", btc, "depth@250ms")])
            await wait_for(lambda: c.stats()["refused"] == 1, task, what="the refusal")
            assert "depth@250ms" not in c.connection.url
            await wait_for(lambda: c.stats()["reconnects"] >= 2, task, what="two reconnects")
            after = capture.rows("trades")
            await wait_for(lambda: capture.rows("trades") > after, task, what="trades after the reconnects")


async def test_binance_after_unsubscribing_everything_a_reconnect_brings_nothing_back():
    async with Simulator(venues=["binance"], symbols=1, rate=300, seed=3) as sim:
        (btc,) = sim.symbols["binance"]
        v = sim_venue(sim, "binance", "disconnect_after_s=0.5")
        (connection,) = v.connections([Subscription("trades", btc)])
        capture = Capture()
        c = make(v, connection, capture)
        async with running(c) as task:
            await wait_for(lambda: capture.rows("trades") > 0, task, what="first trades")
            await c.unsubscribe([Subscription("trades", btc)])
            assert c.connection.subscriptions == ()
            lost = len(capture.events("disconnect"))
            await wait_for(lambda: len(capture.events("disconnect")) > lost, task, what="the link closing")
            after = capture.rows("trades")
            connects = c.stats()["connects"]
            await asyncio.sleep(1.0)  # backoff cap 0.5 s: main reconnected (and streamed) within this
            assert c.stats()["connects"] == connects
            assert capture.rows("trades") == after
            # subscribing again opens a link with the new set
            await c.subscribe([Subscription("bbo", btc)])
            await wait_for(lambda: capture.rows("bbo") > 0, task, what="bbo after subscribing again")
        assert f"{btc.lower()}@bookTicker" in c.connection.url and "@aggTrade" not in c.connection.url


# -- item 6: backoff -----------------------------------------------------------------------------


async def test_a_link_that_dies_after_one_frame_does_not_reset_the_backoff():
    async with Simulator(venues=["binance"], symbols=1, rate=300, seed=3) as sim:
        (btc,) = sim.symbols["binance"]
        v = sim_venue(sim, "binance", "disconnect_after_msgs=1")
        (connection,) = v.connections([Subscription("trades", btc)])
        capture = Capture()
        c = make(v, connection, capture, backoff_base_s=0.2, backoff_cap_s=30.0, jitter="none")
        async with running(c) as task:
            await wait_for(lambda: capture.rows("trades") > 0, task, what="the first frame")
            start = c.stats()["connects"]
            await asyncio.sleep(3.0)  # the window the connects are counted in
            connects = c.stats()["connects"] - start
        # delays 0.2, 0.4, 0.8, 1.6 s...: connects at about 0.2, 0.6, 1.4, 3.0 s after the first, so 3 or 4
        # in the 3 s window, 5 leaves a margin (main: one per 0.2 s, 13 to 14)
        assert 1 <= connects <= 5, connects


class Gate:
    """A TCP forwarder to the simulator that can stop accepting (a venue refusing new connections)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.open = True
        self.attempts = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts += 1
        if not self.open:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(src, dst))
            self.tasks.add(task)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.server is not None:
            self.server.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    dst.close()


async def test_failing_rotation_opens_share_one_growing_backoff():
    async with Simulator(venues=["okx"], symbols=1, rate=100, seed=3) as sim:
        (btc,) = sim.symbols["okx"]
        gate = Gate(int(sim.urls["okx"]["ws"].rsplit(":", 1)[1]))
        port = await gate.start()
        try:
            v = venue("okx", ws_base=f"ws://127.0.0.1:{port}")
            (connection,) = v.connections([Subscription("trades", btc)])
            capture = Capture()
            c = make(v, connection, capture, backoff_base_s=0.1, backoff_cap_s=30.0, jitter="none")
            async with running(c) as task:
                await wait_for(lambda: capture.rows("trades") > 0, task, what="first trades")
                gate.open = False
                start = gate.attempts
                assert await c.rotate("test")
                await asyncio.sleep(2.0)  # the window the attempts are counted in
                attempts = gate.attempts - start
                assert c.stats()["connected"] == 1  # the old link keeps capturing
        finally:
            await gate.close()
    # delays 0.1, 0.2, 0.4, 0.8, 1.6 s: attempts at about 0, 0.1, 0.3, 0.7, 1.5 s: 5 in the 2 s window,
    # 6 leaves a margin (main: one per 0.1 s, 16 to 17)
    assert 2 <= attempts <= 6, attempts


# -- item 5, connector side: notices for the book ----------------------------------------------------


async def test_a_lost_link_and_an_unsubscribe_tell_the_book_side_in_stream_order():
    async with Simulator(venues=["okx"], symbols=2, rate=300, seed=3) as sim:
        btc, eth = sim.symbols["okx"]
        v = sim_venue(sim, "okx", "disconnect_after_s=0.6")
        (connection,) = v.connections([Subscription("l2", btc), Subscription("l2", eth)])
        capture = Capture()
        c = make(v, connection, capture, name="c0")
        async with running(c) as task:
            await wait_for(
                lambda: any(n.state == "lost" for n in capture.notices()), task, what="a notice of the lost link"
            )
            await wait_for(lambda: c.stats()["reconnects"] >= 1, task, what="the reconnect")
            await wait_for(lambda: len(capture.notices()) >= 6, task, what="carried again")
            await c.unsubscribe([Subscription("l2", eth)])
            await wait_for(
                lambda: any(n.state == "dropped" for n in capture.notices()), task, what="the dropped notice"
            )
        states = [(n.state, n.symbol) for n in capture.notices()]
        assert states[:6] == [
            ("carried", btc),
            ("carried", eth),
            ("lost", btc),
            ("lost", eth),
            ("carried", btc),
            ("carried", eth),
        ]
        assert ("dropped", eth) in states and all(n.source == "c0" for n in capture.notices())
        # every frame of the lost link was flushed before the notice: the first btc message at or
        # after it is the new link's snapshot
        first_after: bool | None = None
        after_lost = False
        for b in capture.batches:
            after_lost |= any(n.state == "lost" and n.symbol == btc for n in b.notices)
            if after_lost and b.l2_messages is not None and first_after is None:
                m = b.l2_messages.to_pydict()
                first_after = next(
                    (snap for sym, snap in zip(m["symbol"], m["is_snapshot"], strict=True) if sym == btc), None
                )
        assert first_after is True


# -- item 5: books during outages and after unsubscribe (connector -> BookService, in process) ----------


class Feed(Capture):
    """Capture, and feed every batch to a BookService as the order-book actor does."""

    def __init__(self, v) -> None:
        super().__init__()
        self.service = BookService.for_venue(v)

    async def __call__(self, batches: Batches) -> None:
        await super().__call__(batches)
        self.service.on_batch("c0", batches, rest=isinstance(batches, SnapshotBatches))

    def valid(self, symbol: str) -> bool:
        return symbol in self.service.tops()


async def test_a_book_is_not_valid_while_its_only_link_is_down_and_syncs_again_after():
    async with Simulator(venues=["okx"], symbols=1, rate=300, seed=3) as sim:
        (btc,) = sim.symbols["okx"]
        v = sim_venue(sim, "okx", "disconnect_after_s=1")
        (connection,) = v.connections([Subscription("l2", btc)])
        feed = Feed(v)
        c = make(v, connection, feed, backoff_base_s=1.5, backoff_cap_s=1.5, jitter="none", name="c0")
        async with running(c) as task:
            await wait_for(lambda: feed.valid(btc), task, what="a valid book")
            await wait_for(lambda: len(feed.events("disconnect")) > 0, task, what="the link lost")
            assert c.stats()["connected"] == 0  # the 1.5 s reconnect wait
            await asyncio.sleep(0.1)  # the flush timer (20 ms) ships the notice
            assert c.stats()["connected"] == 0
            assert not feed.valid(btc)
            assert feed.service.book_snapshots(time.time_ns()) is None  # nothing from a stale book
            await wait_for(lambda: feed.valid(btc), task, what="the book valid again after the reconnect")
        assert feed.service.stats()["counters"]["gaps"] == 0


async def test_an_unsubscribed_book_is_dropped_and_its_state_freed():
    async with Simulator(venues=["okx"], symbols=2, rate=300, seed=3) as sim:
        btc, eth = sim.symbols["okx"]
        v = sim_venue(sim, "okx")
        (connection,) = v.connections([Subscription("l2", btc), Subscription("l2", eth)])
        feed = Feed(v)
        c = make(v, connection, feed, name="c0")
        async with running(c) as task:
            await wait_for(lambda: feed.valid(btc) and feed.valid(eth), task, what="two valid books")
            await c.unsubscribe([Subscription("l2", eth)])
            await wait_for(lambda: not feed.valid(eth), task, timeout_s=5.0, what=f"{eth} dropped")
            assert ("*", eth) not in feed.service.books.books and eth not in feed.service.symbols
            rows = feed.rows("l2", btc)
            await wait_for(lambda: feed.rows("l2", btc) > rows + 10, task, what=f"more {btc} rows")
            assert feed.valid(btc) and ("*", eth) not in feed.service.books.books


async def test_a_rest_snapshot_in_flight_for_an_unsubscribed_symbol_is_cancelled():
    async with Simulator(venues=["binance"], symbols=1, rate=300, seed=3) as sim:
        (btc,) = sim.symbols["binance"]
        urls = sim.urls["binance"]
        v = venue("binance", ws_base=urls["ws"], rest_base=urls["rest"] + "/_faults/rest_delay_s=1")
        (connection,) = v.connections([Subscription("l2", btc), Subscription("trades", btc)])
        feed = Feed(v)
        c = make(v, connection, feed, name="c0")
        async with running(c) as task:
            await wait_for(lambda: c.stats().get("snapshot_requests", 0) >= 1, task, what="the REST request sent")
            await c.unsubscribe([Subscription("l2", btc)])
            trades = feed.rows("trades")
            await wait_for(lambda: feed.rows("trades") > trades + 50, task, what="trades for 1.5 s more")
            await asyncio.sleep(1.0)  # the snapshot (1 s delay) would have come by now
        assert [b for b in feed.batches if isinstance(b, SnapshotBatches)] == []
        assert ("*", btc) not in feed.service.books.books
        assert c.stats()["resyncs"] == 0


async def test_a_book_a_redundant_connection_still_carries_stays_valid_when_one_link_is_lost():
    async with Simulator(venues=["okx"], symbols=1, rate=300, seed=3) as sim:
        (btc,) = sim.symbols["okx"]
        flaky, steady = sim_venue(sim, "okx", "disconnect_after_s=1"), sim_venue(sim, "okx")
        feed = Feed(steady)

        def emit(name: str) -> Callable[[Batches], Any]:
            async def call(batches: Batches) -> None:
                feed.batches.append(batches)
                feed.service.on_batch(name, batches)

            return call

        subs = [Subscription("l2", btc)]
        c0 = make(
            flaky,
            flaky.connections(subs)[0],
            emit("c0"),
            backoff_base_s=1.5,
            backoff_cap_s=1.5,
            jitter="none",
            name="c0",
        )
        c1 = make(steady, steady.connections(subs)[0], emit("c1"), name="c1")
        async with running(c1) as task1, running(c0) as task0:
            await wait_for(lambda: feed.valid(btc) and c0.stats()["connected"] == 1, task0, what="a valid book")
            await wait_for(lambda: any(n.state == "lost" for n in feed.notices()), task0, what="c0's link lost")
            assert c0.stats()["connected"] == 0 and not task0.done() and not task1.done()
            assert feed.service.carriers[btc] == {"c1"}
            assert feed.valid(btc)  # c1 still carries it
            assert feed.service.book_snapshots(time.time_ns()) is not None


# -- item 7: every batch carries the producer's clocks at its flush --------------------------------------


async def test_every_flushed_batch_carries_the_monotonic_anchor_of_its_flush():
    from xtrader.clock import host_id

    async with Simulator(venues=["okx"], symbols=1, rate=300, seed=3) as sim:
        (btc,) = sim.symbols["okx"]
        v = sim_venue(sim, "okx")
        (connection,) = v.connections([Subscription("l2", btc), Subscription("trades", btc)])
        capture = Capture()
        c = make(v, connection, capture)
        start = time.perf_counter_ns()
        async with running(c) as task:
            await wait_for(lambda: capture.rows("l2") > 100, task, what="l2 rows")
        end = time.perf_counter_ns()
    data = [b for b in capture.batches if b.l2 is not None or b.trades is not None]
    assert data and all(b.anchor is not None and b.anchor.host == host_id() for b in data)
    for b in data:
        assert b.anchor is not None and start <= b.anchor.mono_ns <= end
        for table in (b.l2_messages, b.trades):
            if table is not None:
                received = table.column("receive_ts").cast("int64").to_pylist()
                assert max(received) <= b.anchor.wall_ns  # flushed after every receipt in it
