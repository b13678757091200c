"""Simulator faults: each switch, and only that switch, is what the client sees."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from urllib.parse import quote

import pytest

from tests.integration.sim_client import client, collect, rest_get
from xtrader.simulator import Simulator, parse_faults
from xtrader.simulator.faults import split_faults

DEPTH = "/ws/btcusdt@depth"


def depth_events(texts: list[str]) -> list[dict]:
    return [json.loads(t) for t in texts]


def gaps(events: list[dict]) -> int:
    return sum(1 for a, b in itertools.pairwise(events) if b["U"] != a["u"] + 1)


async def run(
    faults: str, seconds: float = 0.6, path: str = DEPTH, rate: float = 400
) -> tuple[list[str], dict, int | None]:
    """Connect with per-connection faults; return texts received, that connection's stats, close code."""
    async with Simulator(venues=["binance"], symbols=1, rate=rate, seed=2) as sim:
        sep = "&" if "?" in path else "?"
        async with client(f"{sim.urls['binance']['ws']}{path}{sep}faults={faults}") as ws:
            texts = await collect(ws, seconds)
            sim.pause()
            await sim.drain()
            texts += await collect(ws, 0.1)
            code = ws.close_code
        conn = sim.stats()["venues"]["binance"]["connections"][0]
    return texts, conn, code


def test_parse_spec_and_errors() -> None:
    f = parse_faults("drop_rate=0.1, disconnect_after_msgs=5,no_pong=1")
    assert (f.drop_rate, f.disconnect_after_msgs, f.no_pong) == (0.1, 5, 1)
    assert parse_faults(f.as_spec()) == f
    with pytest.raises(ValueError, match="unknown fault 'drop'"):
        parse_faults("drop=0.1")
    with pytest.raises(ValueError, match="drop_rate"):
        parse_faults("drop_rate=lots")
    with pytest.raises(ValueError, match="drop_rate"):
        parse_faults("drop_rate=1.5")
    with pytest.raises(ValueError, match="disconnect_after_msgs"):
        parse_faults("disconnect_after_msgs=2.5")
    with pytest.raises(ValueError, match="no_pong"):
        parse_faults("no_pong=2")


def test_fault_selectors_survive_the_venue_query() -> None:
    path, query, spec = split_faults("/stream", "streams=a@trade/b@depth&faults=drop_rate=0.1,no_pong=1")
    assert (path, query, spec) == ("/stream", "streams=a@trade/b@depth", "drop_rate=0.1,no_pong=1")
    path, query, spec = split_faults("/_faults/drop_rate%3D0.2/ws/a@trade", "")
    assert (path, query, spec) == ("/ws/a@trade", "", "drop_rate=0.2")


async def test_faults_by_path_prefix_and_global_then_overridden() -> None:
    async with Simulator(venues=["binance"], symbols=1, rate=300, faults="drop_rate=1") as sim:
        async with client(sim.urls["binance"]["ws"] + DEPTH) as ws:
            assert await collect(ws, 0.3) == []  # the simulator-wide switch
        base = sim.urls["binance"]["ws"] + "/_faults/drop_rate=0,disconnect_after_msgs=3"
        async with client(base + "/stream?streams=btcusdt@depth") as ws:
            assert len(await collect(ws, 1.0)) == 3 and ws.close_code == 1000


async def test_disconnect_after_msgs() -> None:
    texts, conn, code = await run("disconnect_after_msgs=5")
    assert len(texts) == 5 and code == 1000 and conn["messages"] == 5
    assert gaps(depth_events(texts)) == 0


async def test_disconnect_after_s_repeats_on_every_connection() -> None:
    async with Simulator(venues=["binance"], symbols=1, rate=300) as sim:
        for _ in range(2):
            async with client(sim.urls["binance"]["ws"] + DEPTH + "?faults=disconnect_after_s=0.3") as ws:
                start = time.monotonic()
                await collect(ws, 2.0)
                assert 0.25 < time.monotonic() - start < 1.5 and ws.close_code == 1000


async def test_close_without_frame() -> None:
    texts, _conn, code = await run("close_without_frame=1,disconnect_after_msgs=3")
    assert len(texts) == 3 and code == 1006  # 1006: TCP closed with no close frame


async def test_drop_rate() -> None:
    texts, conn, _ = await run("drop_rate=0.3")
    events = depth_events(texts)
    assert gaps(events) > 0 and conn["faults_applied"]["drop"] > 0
    assert len(events) == conn["messages"]
    assert all(b["U"] > a["u"] for a, b in itertools.pairwise(events))  # order kept


async def test_duplicate_rate() -> None:
    texts, conn, _ = await run("duplicate_rate=0.3")
    events = depth_events(texts)
    dups = sum(1 for a, b in itertools.pairwise(texts) if a == b)
    assert dups == conn["faults_applied"]["duplicate"] > 0
    assert gaps([e for i, e in enumerate(events) if i == 0 or texts[i] != texts[i - 1]]) == 0


async def test_reorder_rate() -> None:
    texts, conn, _ = await run("reorder_rate=0.2")
    events = depth_events(texts)
    backwards = sum(1 for a, b in itertools.pairwise(events) if b["U"] < a["U"])
    assert backwards == conn["faults_applied"]["reorder"] > 0
    assert gaps(sorted(events, key=lambda e: e["U"])) == 0  # nothing lost


async def test_bad_checksum_rate_is_ignored_on_binance_which_has_no_checksum() -> None:
    texts, conn, _ = await run("bad_checksum_rate=1")
    assert gaps(depth_events(texts)) == 0 and "bad_checksum" not in conn["faults_applied"]


async def test_malformed_rate() -> None:
    texts, conn, _ = await run("malformed_rate=0.3")
    bad = 0
    for t in texts:
        try:
            json.loads(t)
        except json.JSONDecodeError:
            bad += 1
    assert bad == conn["faults_applied"]["malformed"] > 0


async def test_unknown_rate() -> None:
    texts, conn, _ = await run("unknown_rate=0.3", path="/stream?streams=btcusdt@depth")
    msgs = [json.loads(t) for t in texts]
    unknown = [m for m in msgs if m["data"].get("e") != "depthUpdate"]
    assert len(unknown) == conn["faults_applied"]["unknown"] > 0
    assert all(m["stream"].endswith("@simUnknown") for m in unknown)
    assert gaps([m["data"] for m in msgs if m not in unknown]) == 0


async def test_stall_after_s() -> None:
    async with (
        Simulator(venues=["binance"], symbols=1, rate=300) as sim,
        client(sim.urls["binance"]["ws"] + DEPTH + "?faults=stall_after_s=0.3") as ws,
    ):
        assert len(await collect(ws, 0.5)) > 10
        assert await collect(ws, 0.5) == []
        assert ws.close_code is None  # still open, just silent
        pong = await ws.ping()
        await asyncio.wait_for(pong, 1)


async def test_no_pong() -> None:
    async with Simulator(venues=["binance"], symbols=1, rate=100) as sim:
        async with client(sim.urls["binance"]["ws"] + DEPTH + "?faults=no_pong=1") as ws:
            pong = await ws.ping()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pong), 0.5)
            assert len(await collect(ws, 0.2)) > 0  # data still flows
        async with client(sim.urls["binance"]["ws"] + DEPTH) as ws:
            await asyncio.wait_for(await ws.ping(), 1)  # without the fault, pongs come back


async def test_shutdown_after_s() -> None:
    texts, _, code = await run("shutdown_after_s=0.2", seconds=1.0)
    kinds = [json.loads(t)["e"] for t in texts]
    assert kinds.count("serverShutdown") == 1 and code == 1001
    assert len(kinds) - kinds.index("serverShutdown") < 40  # closed right after a short grace


async def test_rest_delay_s() -> None:
    async with Simulator(venues=["binance"], symbols=1, rate=0, faults="rest_delay_s=0.3") as sim:
        start = time.monotonic()
        r = await rest_get(sim.urls["binance"]["rest"] + "/api/v3/depth?symbol=BTCUSDT")
        assert r.status_code == 200 and time.monotonic() - start >= 0.3


async def test_rest_429() -> None:
    async with Simulator(venues=["binance"], symbols=1, rate=0) as sim:
        url = sim.urls["binance"]["rest"] + "/api/v3/depth?symbol=BTCUSDT&faults=rest_429=2"
        statuses = [(await rest_get(url)) for _ in range(3)]
        assert [r.status_code for r in statuses] == [429, 429, 200]
        assert statuses[0].headers["Retry-After"] == "1"
        assert (
            await rest_get(sim.urls["binance"]["rest"] + "/api/v3/exchangeInfo?faults=rest_429=2")
        ).status_code == 200


async def test_stale_snapshot() -> None:
    async with Simulator(venues=["binance"], symbols=1, rate=300) as sim:
        async with client(sim.urls["binance"]["ws"] + DEPTH) as ws:
            first_u = json.loads(await asyncio.wait_for(ws.recv(), 2))["U"]
            url = sim.urls["binance"]["rest"] + "/_faults/stale_snapshot=1/api/v3/depth?symbol=BTCUSDT&limit=1000"
            stale = (await rest_get(url)).json()
            fresh = (await rest_get(url)).json()
        assert stale["lastUpdateId"] < first_u <= fresh["lastUpdateId"] + 1


async def test_bad_fault_in_url_is_a_clear_400() -> None:
    async with Simulator(venues=["binance"], symbols=1, rate=0) as sim:
        r = await rest_get(sim.urls["binance"]["rest"] + "/api/v3/depth?symbol=BTCUSDT&faults=" + quote("nope=1"))
        assert r.status_code == 400 and "unknown fault 'nope'" in r.json()["msg"]


async def test_global_spec_errors_name_the_fault() -> None:
    with pytest.raises(ValueError, match="stall_after_s"):
        Simulator(venues=["binance"], faults="stall_after_s=-1")
    with pytest.raises(ValueError, match="unknown venue 'kraken'"):
        Simulator(venues=["kraken"])


async def test_faults_for_s_ends_every_fault_on_open_connections_too() -> None:
    """`faults_for_s`: drops and the armed disconnect timer end together; the same socket then streams
    a gap-free sequence and stays open."""
    spec = "drop_rate=0.5,disconnect_after_s=1.5,faults_for_s=0.6"
    async with Simulator(venues=["binance"], symbols=1, rate=300, faults=spec) as sim:
        ws_url = sim.urls["binance"]["ws"] + DEPTH
        async with client(ws_url) as ws:
            during = depth_events(await collect(ws, 0.5))
            await asyncio.sleep(0.3)  # the faults end at 0.6 s
            await collect(ws, 0.2)  # what was on the way when they ended
            after = depth_events(await collect(ws, 1.5))  # past the disconnect the fault had armed
            assert ws.close_code is None
    assert gaps(during) > 0
    assert len(after) > 50 and gaps(after) == 0
