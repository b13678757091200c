"""Simulator, Binance spot and USD-M protocol: subscribe flow, errors, wrapping, routing, keepalive, limits."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.sim_client import client, collect, recv_json, reply_to, rest_get, unwrap, watch_pings
from xtrader.simulator import Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(symbols=2, rate=400, seed=7, inbound_per_s=1000) as s:
        yield s


async def test_subscribe_ack_list_and_unsubscribe(sim: Simulator) -> None:
    async with client(sim.urls["binance"]["ws"] + "/ws") as ws:
        ack = await reply_to(
            ws, {"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms", "btcusdt@bookTicker"], "id": 1}
        )
        assert ack == {"result": None, "id": 1}
        event = unwrap(await asyncio.wait_for(ws.recv(), 2))
        assert event.get("e") == "depthUpdate" or "u" in event
        listed = await reply_to(ws, {"method": "LIST_SUBSCRIPTIONS", "id": "abc-1"})
        assert listed == {"result": ["btcusdt@depth@100ms", "btcusdt@bookTicker"], "id": "abc-1"}
        assert await reply_to(
            ws, {"method": "UNSUBSCRIBE", "params": ["btcusdt@depth@100ms", "btcusdt@bookTicker"], "id": None}
        ) == {"result": None, "id": None}
        await collect(ws, 0.1)  # frames already in flight
        assert await collect(ws, 0.3) == []


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        ("{not json", 3),
        (json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"]}), 2),  # no id
        (json.dumps({"method": "FROB", "params": [], "id": 1}), 2),
        (json.dumps({"params": ["btcusdt@trade"], "id": 1}), 2),
        (json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 1}), 2),
        (json.dumps({"method": "SUBSCRIBE", "params": ["BTCUSDT@trade"], "id": 1}), 2),
        (json.dumps({"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 1}), 2),
        (json.dumps({"method": "SUBSCRIBE", "params": [42], "id": 1}), 1),
        (json.dumps({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 1}), 1),
        (json.dumps({"method": "SET_PROPERTY", "params": ["colour", True], "id": 1}), 0),
        (json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1.5}), 2),
        (json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": "x" * 37}), 2),
    ],
)
async def test_error_codes(sim: Simulator, request_text: str, code: int) -> None:
    async with client(sim.urls["binance"]["ws"] + "/ws") as ws:
        await ws.send(request_text)
        reply = await recv_json(ws)
        assert reply["error"]["code"] == code and reply["error"]["msg"]
        assert "id" in reply
        if code == 3:
            assert reply["id"] is None


async def test_combined_wrapping_raw_paths_and_set_property(sim: Simulator) -> None:
    base = sim.urls["binance"]["ws"]
    async with client(base + "/stream?streams=btcusdt@depth@100ms/ethusdt@depth") as ws:
        msgs = [json.loads(m) for m in await collect(ws, 0.3)]
        assert msgs and all(set(m) == {"stream", "data"} for m in msgs)
        assert {m["stream"] for m in msgs} <= {"btcusdt@depth@100ms", "ethusdt@depth"}
        assert all(m["data"]["s"] == m["stream"].split("@")[0].upper() for m in msgs)
    async with client(base + "/ws/btcusdt@depth/ethusdt@depth@100ms") as ws:
        msgs = [json.loads(m) for m in await collect(ws, 0.3)]
        assert msgs and all(m["e"] == "depthUpdate" for m in msgs)
        assert {m["s"] for m in msgs} == {"BTCUSDT", "ETHUSDT"}
        assert await reply_to(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 1}) == {
            "result": False,
            "id": 1,
        }
        assert await reply_to(ws, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 2}) == {
            "result": None,
            "id": 2,
        }
        await collect(ws, 0.05)
        later = [json.loads(m) for m in await collect(ws, 0.2)]
        assert later and all("stream" in m for m in later)


async def test_payload_shapes_spot(sim: Simulator) -> None:
    streams = "btcusdt@trade/btcusdt@aggTrade/btcusdt@bookTicker/btcusdt@depth/btcusdt@depth5"
    async with client(sim.urls["binance"]["ws"] + "/stream?streams=" + streams) as ws:
        by_stream: dict[str, dict] = {}
        for text in await collect(ws, 1.0):
            m = json.loads(text)
            by_stream.setdefault(m["stream"], m["data"])
    assert list(by_stream["btcusdt@trade"]) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
    assert list(by_stream["btcusdt@aggTrade"]) == ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]
    assert list(by_stream["btcusdt@bookTicker"]) == ["u", "s", "b", "B", "a", "A"]
    assert list(by_stream["btcusdt@depth"]) == ["e", "E", "s", "U", "u", "b", "a"]
    assert list(by_stream["btcusdt@depth5"]) == ["lastUpdateId", "bids", "asks"]
    trade = by_stream["btcusdt@trade"]
    assert isinstance(trade["p"], str) and isinstance(trade["q"], str) and isinstance(trade["m"], bool)
    assert trade["E"] > 1_600_000_000_000 and trade["p"].count(".") == 1 and len(trade["p"].split(".")[1]) == 8
    assert len(by_stream["btcusdt@depth5"]["bids"]) == 5


async def test_payload_shapes_futures(sim: Simulator) -> None:
    base = sim.urls["binance_futures"]["ws"]
    got: dict[str, dict] = {}
    async with (
        client(base + "/public/stream?streams=btcusdt@bookTicker/btcusdt@depth@100ms/btcusdt@depth10") as pub,
        client(base + "/market/stream?streams=btcusdt@aggTrade/btcusdt@trade") as mkt,
    ):
        for ws in (pub, mkt):
            for text in await collect(ws, 0.8):
                m = json.loads(text)
                got.setdefault(m["stream"], m["data"])
    assert list(got["btcusdt@bookTicker"]) == ["e", "u", "s", "b", "B", "a", "A", "T", "E"]
    assert list(got["btcusdt@depth@100ms"]) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
    assert list(got["btcusdt@depth10"]) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
    assert len(got["btcusdt@depth10"]["b"]) == 10
    assert list(got["btcusdt@aggTrade"]) == ["e", "E", "a", "s", "p", "q", "f", "l", "T", "m"]
    assert got["btcusdt@trade"]["e"] == "trade"


async def test_futures_diff_ids_are_not_contiguous_and_chain_by_pu(sim: Simulator) -> None:
    async with client(sim.urls["binance_futures"]["ws"] + "/public/ws/btcusdt@depth") as ws:
        events = [json.loads(m) for m in await collect(ws, 0.5)]
    assert len(events) > 5
    assert all(b["pu"] == a["u"] for a, b in itertools.pairwise(events))
    assert any(b["U"] != a["u"] + 1 for a, b in itertools.pairwise(events))


async def test_futures_routing_market_streams_silent_on_public(sim: Simulator) -> None:
    base = sim.urls["binance_futures"]["ws"]
    streams = "?streams=btcusdt@aggTrade/btcusdt@depth@100ms"
    seen: dict[str, set[str]] = {}
    for route in ("/public", "/market", ""):
        async with client(base + route + "/stream" + streams) as ws:
            seen[route] = {json.loads(m)["stream"] for m in await collect(ws, 0.8)}
            listed = await reply_to(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})
            assert sorted(listed["result"]) == ["btcusdt@aggTrade", "btcusdt@depth@100ms"]  # no error, just silence
    assert seen["/public"] == {"btcusdt@depth@100ms"}
    assert seen["/market"] == {"btcusdt@aggTrade"}
    assert seen[""] == {"btcusdt@depth@100ms"}  # un-routed: /public tier only


async def test_inbound_rate_limit_disconnects() -> None:
    async with Simulator(venues=["binance", "binance_futures"], symbols=1, rate=0) as sim:
        for venue, limit in (("binance", 5), ("binance_futures", 10)):
            async with client(sim.urls[venue]["ws"] + ("/public/ws" if venue != "binance" else "/ws")) as ws:
                for i in range(limit):
                    await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                assert len([await recv_json(ws) for _ in range(limit)]) == limit  # at the limit: fine
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 99}))
                await collect(ws, 1.0)
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1008


async def test_server_pings_answered_keep_the_connection_alive() -> None:
    # Answers count against the 5 messages/s limit too, so ping 4 times a second.
    async with (
        Simulator(venues=["binance"], symbols=1, rate=50, ping_interval_s=0.25, pong_timeout_s=0.6) as sim,
        client(sim.urls["binance"]["ws"] + "/ws/btcusdt@depth") as ws,
    ):
        pings = watch_pings(ws, swallow=False)
        await collect(ws, 1.5)
        assert len(pings) >= 5 and ws.close_code is None


async def test_no_pong_from_client_gets_disconnected_even_with_unsolicited_pongs() -> None:
    async with (
        Simulator(venues=["binance"], symbols=1, rate=50, ping_interval_s=0.1, pong_timeout_s=0.35) as sim,
        client(sim.urls["binance"]["ws"] + "/ws/btcusdt@depth") as ws,
    ):
        pings = watch_pings(ws, swallow=True)
        loop = asyncio.get_running_loop()
        start = loop.time()
        while ws.close_code is None and loop.time() - start < 3:
            await ws.pong(b"unsolicited")  # allowed, but does not count as an answer
            await collect(ws, 0.25)
        assert pings and 0.3 < loop.time() - start < 1.5
        assert ws.close_code == 1011


async def test_server_shutdown_event_then_close(sim: Simulator) -> None:
    async with (
        client(sim.urls["binance"]["ws"] + "/stream?streams=btcusdt@depth") as combined,
        client(sim.urls["binance"]["ws"] + "/ws/btcusdt@depth") as raw,
    ):
        await asyncio.sleep(0.05)
        await sim.server_shutdown("binance")
        for ws, wrapped in ((combined, True), (raw, False)):
            msgs = [json.loads(m) for m in await collect(ws, 0.5)]
            notices = [m for m in msgs if unwrap(json.dumps(m)).get("e") == "serverShutdown"]
            assert len(notices) == 1
            assert (notices[0].get("stream") == "!serverShutdown") is wrapped
            assert ws.close_code == 1001


async def test_rest_depth_exchange_info_and_errors(sim: Simulator) -> None:
    spot, fut = sim.urls["binance"]["rest"], sim.urls["binance_futures"]["rest"]
    r = await rest_get(spot + "/api/v3/depth?symbol=BTCUSDT")
    body = r.json()
    assert r.status_code == 200 and set(body) == {"lastUpdateId", "bids", "asks"}
    assert len(body["bids"]) == 100 and r.headers["X-MBX-USED-WEIGHT-1M"]
    r = await rest_get(fut + "/fapi/v1/depth?symbol=ETHUSDT&limit=5")
    assert list(r.json()) == ["lastUpdateId", "E", "T", "bids", "asks"] and len(r.json()["asks"]) == 5
    assert (await rest_get(fut + "/fapi/v1/depth?symbol=ETHUSDT&limit=7")).json()["code"] == -1130
    assert (await rest_get(spot + "/api/v3/depth?symbol=NOPE")).json()["code"] == -1121
    assert (await rest_get(spot + "/api/v3/depth")).json()["code"] == -1102
    assert (await rest_get(spot + "/api/v3/nothing")).status_code == 404
    for base, path in ((spot, "/api/v3/exchangeInfo"), (fut, "/fapi/v1/exchangeInfo")):
        info = (await rest_get(base + path)).json()
        assert [s["symbol"] for s in info["symbols"]] == sim.symbols["binance"]
        for s in info["symbols"]:
            assert [f["filterType"] for f in s["filters"]][:2] == ["PRICE_FILTER", "LOT_SIZE"]
    stats = (await rest_get(sim.stats_url)).json()
    assert stats["venues"]["binance"]["rest"]["depth"] >= 3


async def test_tls_websocket_and_rest_with_the_ca_file(sim: Simulator) -> None:
    async with client(sim.urls["binance"]["wss"] + "/ws/btcusdt@depth", ca_file=sim.ca_file) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 2))["e"] == "depthUpdate"
    r = await rest_get(sim.urls["binance"]["rest_tls"] + "/api/v3/depth?symbol=BTCUSDT&limit=5", ca_file=sim.ca_file)
    assert r.status_code == 200
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        async with client(sim.urls["binance"]["wss"] + "/ws/btcusdt@depth", ca_file=None):
            pass


async def test_bad_urls_are_refused(sim: Simulator) -> None:
    base = sim.urls["binance"]["ws"]
    for path, status in (("/ws/btcusdt@bogus", 400), ("/nowhere", 404), ("/ws?faults=drop_rate=2", 400)):
        with pytest.raises(Exception, match=str(status)):
            async with client(base + path):
                pass


async def test_futures_mark_price_on_market_route_only() -> None:
    async with Simulator(venues=["binance_futures"], symbols=1, rate=100) as sim:
        base = sim.urls["binance_futures"]["ws"]
        async with (
            client(base + "/market/ws/btcusdt@markPrice@1s") as mkt,
            client(base + "/public/ws/btcusdt@markPrice@1s") as pub,
        ):
            got = [json.loads(m) for m in await collect(mkt, 1.3)]
            assert await collect(pub, 0.01) == []
    assert got and list(got[0]) == ["e", "E", "s", "p", "i", "P", "r", "T"] and got[0]["e"] == "markPriceUpdate"


@pytest.mark.parametrize("max_queue", [0, -5])
def test_a_max_queue_below_one_is_refused(max_queue: int) -> None:
    with pytest.raises(ValueError, match=rf"max_queue={max_queue}: must be >= 1"):
        Simulator(venues=["binance_futures"], max_queue=max_queue)


@pytest.mark.parametrize("max_queue", [300, 10**7])
async def test_a_client_that_stops_reading_is_cut_off_once_max_queue_frames_wait(max_queue: int) -> None:
    # a real venue drops a client that falls too far behind; the bench feed raises the limit so that a slow
    # client works off a whole pre-generated pool instead (xtrader.bench.feed.FeedOptions.max_queue)
    venue = "binance_futures"
    async with Simulator(venues=[venue], symbols=1, rate=1_000_000, max_queue=max_queue) as sim:
        symbol = sim.symbols[venue][0].lower()
        url = sim.urls[venue]["ws"] + f"/stream?streams={symbol}@depth@100ms/{symbol}@aggTrade"
        async with client(url, max_queue=1):  # reads one frame ahead, then TCP pushes back
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while not sim.venues[venue].connections:
                await asyncio.sleep(0.01)
            (connection,) = sim.venues[venue].connections
            while connection.closing is None and len(connection.queue) <= 10 * 300 and loop.time() < deadline:
                await asyncio.sleep(0.01)  # not reading meanwhile: the frames queue in the simulator
            if max_queue > 300:
                assert connection.closing is None and len(connection.queue) > 10 * 300
                return
            # cut off: its close frame (1008) goes out behind what its socket already holds
            assert connection.closing == connection.stats.close_reason == "client too slow: send queue full"
