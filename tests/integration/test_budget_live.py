"""Issue 13 section 2: the connector keeps within each venue's limits, against the simulator that enforces them.

The simulator closes a Binance link with 1008 on more than 5 (spot) incoming messages per second,
answers OKX requests beyond 480 per connection and hour with 60014, and Binance snapshots beyond
the weight budget per minute with 429 (xtrader/simulator: connection.on_inbound,
okx_session._within_op_budget, binance._weighted).
"""

from __future__ import annotations

import asyncio

from tests.integration.test_connector_subscriptions import Capture, make, running, sim_venue, wait_for
from xtrader.budget import reset_shared
from xtrader.simulator import Simulator
from xtrader.venues import Subscription


async def test_binance_seven_back_to_back_subscribes_are_paced_and_the_link_stays_up():
    async with Simulator(venues=["binance"], symbols=8, rate=200, seed=3) as sim:
        first, *others = sim.symbols["binance"]
        v = sim_venue(sim, "binance")
        (connection,) = v.connections([Subscription("trades", first)])
        capture = Capture()
        c = make(v, connection, capture)
        async with running(c) as task:
            await wait_for(lambda: capture.rows("trades") > 0, task, what="first trades")
            for symbol in others[:7]:  # 7 SUBSCRIBE frames at once: more than 5 per second
                await c.subscribe([Subscription("bbo", symbol)])
            await wait_for(
                lambda: all(capture.rows("bbo", s) > 0 for s in others[:7]), task, timeout_s=20, what="7 bbo streams"
            )
            stats = c.stats()
        assert stats["reconnects"] == 0 and stats["connects"] == 1, stats
        assert stats["paced_frames"] >= 1
        assert not [d for _, d, _ in capture.events("disconnect") if "1008" in d or "too many" in d]


async def test_okx_many_resyncs_wait_for_the_hourly_budget_and_the_book_stays_subscribed():
    async with Simulator(venues=["okx"], symbols=1, rate=200, seed=3) as sim:
        (btc,) = sim.symbols["okx"]
        v = sim_venue(sim, "okx")
        (connection,) = v.connections([Subscription("l2", btc)])
        capture = Capture()
        c = make(v, connection, capture)
        async with running(c) as task:
            await wait_for(lambda: capture.rows("l2", btc) > 0, task, what="book rows")
            for _ in range(300):  # 600 subscribe/unsubscribe requests asked for: more than 480 per hour
                await c.resync(btc)
                await asyncio.sleep(0)
            await wait_for(lambda: c.stats()["budget_waits"] >= 1, task, what="a resync waiting for the budget")
            after = capture.rows("l2", btc)
            await wait_for(lambda: capture.rows("l2", btc) > after + 20, task, what="the book still streaming")
            stats = c.stats()
            assert not task.done()
        assert not [d for _, d, _ in capture.events("error") if "60014" in d], capture.events("error")[:3]
        assert stats["refused"] == 0 and stats["reconnects"] == 0
        assert Subscription("l2", btc) in c.connection.subscriptions
        waits = [d for _, d, s in capture.events("resync") if s == btc and "request budget spent" in d]
        assert len(waits) == 1, waits  # said once, not per ask
        assert stats["session_requests"] <= 480


async def test_binance_thirty_spot_books_and_two_connectors_on_one_ip_get_no_429():
    reset_shared()
    async with Simulator(venues=["binance"], symbols=30, rate=100, seed=3) as sim:
        symbols = sim.symbols["binance"]
        v = sim_venue(sim, "binance")
        captures = [Capture(), Capture()]
        connectors = []
        for capture in captures:
            (connection,) = v.connections([Subscription("l2", s) for s in symbols])
            # the venue's default snapshot depth (1000 levels, weight 50), as configured by default
            connectors.append(make(v, connection, capture, snapshot_depth=None))
        async with running(connectors[0]) as t0, running(connectors[1]) as t1:
            for c, task in zip(connectors, (t0, t1), strict=True):
                await wait_for(
                    lambda c=c: (c.stats().get("snapshot_snapshots") or 0) >= len(symbols),
                    task,
                    timeout_s=60,
                    what="a snapshot of every book",
                )
            stats = [c.stats() for c in connectors]
        assert [s["snapshot_throttled"] for s in stats] == [0, 0]
        assert [s["snapshot_banned"] for s in stats] == [0, 0]
        assert all(s["snapshot_used_weight"] <= 6000 for s in stats)
    reset_shared()


# -- issue 13 section 3: Deribit platform state ------------------------------------------------------


async def test_deribit_a_maintenance_pauses_the_connector_instead_of_hammering_the_venue():
    options = {"deribit": {"maintenance_at_s": 1.5, "maintenance_s": 3.0}}
    async with Simulator(venues=["deribit"], symbols=1, rate=200, seed=3, venue_options=options) as sim:
        (btc,) = sim.symbols["deribit"]
        v = sim_venue(sim, "deribit")
        (connection,) = v.connections([Subscription("l2", btc)])
        capture = Capture()
        # a backoff of 0.05 .. 0.5 s alone would try ~10 times during the 3 s maintenance
        c = make(v, connection, capture, pause_wait_s=1.0)
        async with running(c) as task:
            await wait_for(lambda: capture.rows("l2", btc) > 0, task, what="book rows")
            await wait_for(lambda: c.stats()["session_pauses"] >= 1, task, what="the maintenance notice")
            await wait_for(lambda: c.stats()["connects"] >= 2, task, timeout_s=20, what="the reconnect after it")
            after = capture.rows("l2", btc)
            await wait_for(lambda: capture.rows("l2", btc) > after, task, what="book rows after the maintenance")
            stats = c.stats()
        refused = sim.venues["deribit"].maintenance_refused  # type: ignore[attr-defined]
        assert refused <= 4, f"{refused} connection attempts during a 3 s maintenance"
        assert stats["pause_waits"] >= 1
        assert any("venue paused" in d and "maintenance" in d for _, d, _ in capture.events("error"))
        assert any("reconnect waits" in d for _, d, _ in capture.events("disconnect"))


async def test_deribit_10028_waits_for_the_credits_before_reconnecting():
    # a venue much stricter than the documented one: 5000 credits, 500 a request, 500 refilled per second
    options = {"deribit": {"credit_pool": 5000, "credit_refill_per_s": 500, "subscribe_cost": 500}}
    async with Simulator(venues=["deribit"], symbols=1, rate=200, seed=3, venue_options=options) as sim:
        (btc,) = sim.symbols["deribit"]
        v = sim_venue(sim, "deribit")
        (connection,) = v.connections([Subscription("l2", btc)])
        capture = Capture()
        c = make(v, connection, capture)
        async with running(c) as task:
            await wait_for(lambda: capture.rows("l2", btc) > 0, task, what="book rows")
            for _ in range(10):  # 20 requests: more than the simulated pool holds
                await c.resync(btc)
            await wait_for(
                lambda: any("10028" in d for _, d, _ in capture.events("error")), task, what="the 10028 answer"
            )
            seen = asyncio.get_running_loop().time()
            await wait_for(lambda: c.stats()["connects"] >= 2, task, timeout_s=20, what="the reconnect")
            waited = asyncio.get_running_loop().time() - seen
            after = capture.rows("l2", btc)
            await wait_for(lambda: capture.rows("l2", btc) > after, task, what="book rows after the reconnect")
            stats = c.stats()
        assert waited >= 4.0, f"reconnected {waited:.1f} s after 10028: the credits had no time to refill"
        assert stats["pause_waits"] >= 1 and stats["refused"] == 0
        assert any("credits refill" in d for _, d, _ in capture.events("disconnect"))
