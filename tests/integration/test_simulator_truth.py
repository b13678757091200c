"""Simulator ground truth: a book rebuilt by the documented procedure equals the simulator's; counts add up."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration.sim_client import LocalBook, client, collect, rest_get, same_levels
from xtrader.simulator import Simulator


@pytest.mark.parametrize(
    ("venue", "ws_path", "rest_path", "limit"),
    [
        ("binance", "/ws/{s}@depth@100ms", "/api/v3/depth", 5000),
        ("binance_futures", "/public/stream?streams={s}@depth@100ms", "/fapi/v1/depth", 1000),
    ],
)
async def test_book_from_snapshot_and_diffs_equals_ground_truth(
    venue: str, ws_path: str, rest_path: str, limit: int
) -> None:
    async with Simulator(venues=[venue], symbols=2, rate=600, seed=3) as sim:
        symbol = sim.symbols[venue][0]
        book = LocalBook(futures=venue == "binance_futures")
        async with client(sim.urls[venue]["ws"] + ws_path.format(s=symbol.lower())) as ws:

            async def pump() -> None:
                async for text in ws:
                    msg = json.loads(text)
                    book.on_event(msg.get("data", msg))

            reader = asyncio.create_task(pump())
            await asyncio.sleep(0.2)  # buffer some events first (step 1)
            first_u = book.buffer[0]["U"]
            while True:  # step 2: refetch while the snapshot is older than the buffer
                snap = (await rest_get(f"{sim.urls[venue]['rest']}{rest_path}?symbol={symbol}&limit={limit}")).json()
                if snap["lastUpdateId"] >= first_u:
                    break
            book.load(snap)
            await asyncio.sleep(0.5)
            sim.pause()
            await sim.drain()
            truth = sim.book(venue, symbol, depth=5000)
            for _ in range(200):
                if book.book_id == truth["lastUpdateId"]:
                    break
                await asyncio.sleep(0.01)
            reader.cancel()
        assert book.gaps == 0 and book.applied > 20
        assert book.book_id == truth["lastUpdateId"]
        mine = book.top(5000)
        assert same_levels(mine["bids"], truth["bids"]) and same_levels(mine["asks"], truth["asks"])


async def test_snapshot_lies_inside_a_later_event_like_the_real_venue() -> None:
    """Spot and futures both: the first kept event brackets lastUpdateId (U <= id <= u)."""
    async with Simulator(symbols=1, rate=500, seed=5) as sim:
        for venue, path, rest in (
            ("binance", "/ws/btcusdt@depth", "/api/v3/depth"),
            ("binance_futures", "/public/ws/btcusdt@depth", "/fapi/v1/depth"),
        ):
            async with client(sim.urls[venue]["ws"] + path) as ws:
                await asyncio.sleep(0.05)
                snap = (await rest_get(f"{sim.urls[venue]['rest']}{rest}?symbol=BTCUSDT&limit=100")).json()
                events = [json.loads(m) for m in await collect(ws, 0.3)]
            kept = [e for e in events if e["u"] >= snap["lastUpdateId"]]
            assert kept[0]["U"] <= snap["lastUpdateId"] <= kept[0]["u"], venue


async def test_unique_counts_across_redundant_connections() -> None:
    async with Simulator(venues=["binance"], symbols=2, rate=500, seed=9) as sim:
        streams = "btcusdt@depth/btcusdt@trade/btcusdt@bookTicker/ethusdt@aggTrade"
        url = sim.urls["binance"]["ws"] + "/stream?streams=" + streams
        async with client(url) as a, client(url) as b:
            await asyncio.sleep(0.6)
            sim.pause()
            await sim.drain()
            got_a = [json.loads(m) for m in await collect(a, 0.2)]
            got_b = [json.loads(m) for m in await collect(b, 0.2)]
        stats = sim.stats()["venues"]["binance"]

    # Frames sent before both had subscribed are in one copy only; count what each received.
    def rows(msgs: list[dict], table: str) -> int:
        n = 0
        for m in msgs:
            d = m["data"]
            if table == "l2" and d.get("e") == "depthUpdate":
                n += len(d["b"]) + len(d["a"])
            elif (table == "trades" and d.get("e") in ("trade", "aggTrade")) or (table == "bbo" and "e" not in d):
                n += 1
        return n

    for table in ("l2", "trades", "bbo"):
        sent = sum(stats["sent"][table].values())
        unique = sum(stats["unique"][table].values())
        assert sent == rows(got_a, table) + rows(got_b, table)
        union = {json.dumps(m, sort_keys=True) for m in got_a + got_b if rows([m], table)}
        assert unique == sum(rows([json.loads(u)], table) for u in union)
        assert unique < sent
    conns = stats["connections"]
    assert len(conns) == 2 and all(c["messages"] > 0 for c in conns)
    assert stats["seq"]["BTCUSDT"]["last"] == sim.book("binance", "BTCUSDT")["lastUpdateId"]
    assert sum(stats["generated"]["l2"].values()) >= sum(stats["unique"]["l2"].values())


async def test_same_seed_same_market() -> None:
    books = []
    for _ in range(2):
        async with Simulator(venues=["binance_futures"], symbols=2, rate=0, seed=11) as sim:
            venue = sim.venues["binance_futures"]
            for _ in range(300):
                venue.step_once()
            venue.flush()
            books.append(sim.book("binance_futures", "ETHUSDT", depth=50))
    assert books[0] == books[1]


@pytest.mark.parametrize(
    ("venue", "ws_path", "rest_path"),
    [
        ("binance", "/stream?streams={s}@depth@100ms/{s}@depth5", "/api/v3/depth"),
        ("binance_futures", "/public/stream?streams={s}@depth@100ms/{s}@depth5", "/fapi/v1/depth"),
    ],
)
async def test_pregenerated_book_and_counts_equal_ground_truth(venue: str, ws_path: str, rest_path: str) -> None:
    """Pre-generated steps (snapshot taken mid-pool), then live ones: same book, ids and counts."""
    async with Simulator(venues=[venue], symbols=2, rate=600, seed=3, pregenerate=400) as sim:
        symbol = sim.symbols[venue][0]
        book = LocalBook(futures=venue == "binance_futures")
        partials = {"checked": 0, "wrong": 0}
        rows = 0
        async with client(sim.urls[venue]["ws"] + ws_path.format(s=symbol.lower())) as ws:

            async def pump() -> None:
                nonlocal rows
                async for text in ws:
                    msg = json.loads(text)
                    data = msg["data"]
                    if msg["stream"].endswith("@depth5"):
                        last = data.get("lastUpdateId", data.get("u"))
                        if book.book_id == last:
                            top = book.top(5)
                            ok = same_levels(top["bids"], data.get("bids", data.get("b")))
                            ok = ok and same_levels(top["asks"], data.get("asks", data.get("a")))
                            partials["checked"] += 1
                            partials["wrong"] += not ok
                        continue
                    rows += len(data["b"]) + len(data["a"])
                    book.on_event(data)

            reader = asyncio.create_task(pump())
            await asyncio.sleep(0.2)
            assert sim.venues[venue]._pool_order, "the snapshot must be taken while the pool is in use"
            first_u = book.buffer[0]["U"]
            while True:
                snap = (await rest_get(f"{sim.urls[venue]['rest']}{rest_path}?symbol={symbol}&limit=1000")).json()
                if snap["lastUpdateId"] >= first_u:
                    break
            book.load(snap)
            await asyncio.sleep(0.8)
            assert not sim.venues[venue]._pool_order, "the test must go on past the pool, into live steps"
            sim.pause()
            await sim.drain()
            truth = sim.book(venue, symbol, depth=1000)
            for _ in range(200):
                if book.book_id == truth["lastUpdateId"]:
                    break
                await asyncio.sleep(0.01)
            reader.cancel()
        stats = sim.stats()["venues"][venue]
        assert book.gaps == 0 and book.applied > 100
        assert book.book_id == truth["lastUpdateId"] == stats["seq"][symbol]["last"]
        mine = book.top(1000)
        assert same_levels(mine["bids"], truth["bids"]) and same_levels(mine["asks"], truth["asks"])
        assert partials["checked"] > 50 and partials["wrong"] == 0
        assert rows == stats["sent"]["l2"][symbol] == stats["unique"]["l2"][symbol]


async def test_reconnects_do_not_grow_the_truth_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each connection's record is kept while it is open; of the closed ones only the newest KEEP_CLOSED are,
    the others counted as forgotten (a simulator serving for days sees thousands of reconnects)."""
    from xtrader.simulator import truth

    monkeypatch.setattr(truth, "KEEP_CLOSED", 3)
    async with Simulator(venues=["binance"], symbols=1, rate=200, seed=3) as sim:
        path = sim.urls["binance"]["ws"] + f"/ws/{sim.symbols['binance'][0].lower()}@trade"
        async with client(path) as kept:
            await kept.recv()
            for _ in range(12):
                async with client(path) as ws:
                    await ws.recv()
            for _ in range(250):  # the server notes a close once its side of the connection ended
                if sum(c["closed_at"] is None for c in sim.stats()["venues"]["binance"]["connections"]) == 1:
                    break
                await asyncio.sleep(0.02)
            data = sim.stats()["venues"]["binance"]
            ids = [c["id"] for c in data["connections"]]
            assert data["connections_total"] == 13
            assert data["connections_forgotten"] == 13 - len(ids) > 0
            assert len(ids) <= 2 * 3 + 1
            assert ids[0] == min(ids)  # the first connection, still open, is kept
            assert sum(1 for c in data["connections"] if c["closed_at"] is None) == 1
            assert sorted(ids)[-3:] == ids[-3:]  # the newest closed ones are kept
