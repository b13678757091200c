"""Simulator replay of the real captures: frames byte for byte and in order; recorded REST bodies."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest

from tests.captures import capture_path, records
from tests.integration.sim_client import client, collect, rest_get, take
from xtrader.simulator import Simulator


def recorded(venue: str) -> tuple[str, list[str], float]:
    """(target path+query of the recorded connection, its frames, its span in seconds)."""
    recs = [r for r in records(venue) if r.kind == "ws"]
    url = urlsplit(recs[0].url)
    frames = [r for r in recs if r.dir == "recv"]
    return url.path + "?" + url.query, [r.msg or "" for r in frames], frames[-1].ts - recs[0].ts


@pytest.mark.parametrize("venue", ["binance", "binance_futures"])
async def test_replay_reproduces_recorded_frames_byte_for_byte(venue: str) -> None:
    target, frames, _ = recorded(venue)
    async with Simulator(venues=[], replay=capture_path(venue)) as sim:
        async with client(sim.urls[venue]["ws"] + target, max_size=None) as ws:
            got = await take(ws, len(frames))
            assert await collect(ws, 0.1) == []  # and nothing more
        assert [g.encode() for g in got] == [f.encode() for f in frames]
        stats = sim.stats()["venues"][venue]
        assert stats["messages"] == len(frames) and stats["connections"][0]["notes"]["replay_done"]


async def test_replay_paces_by_recorded_time_and_speed() -> None:
    target, frames, span = recorded("binance")
    speed = 60.0
    async with (
        Simulator(venues=[], replay=capture_path("binance"), speed=speed) as sim,
        client(sim.urls["binance"]["ws"] + target) as ws,
    ):
        start = time.monotonic()
        got = await take(ws, len(frames))
        elapsed = time.monotonic() - start
    assert got == frames
    assert span / speed * 0.9 < elapsed < span / speed + 1.0


async def test_replay_serves_recorded_rest_bodies() -> None:
    rest = [r for r in records("binance") if r.kind == "http"]
    async with Simulator(venues=[], replay=capture_path("binance")) as sim:
        for r in rest:
            url = urlsplit(r.url)
            got = await rest_get(sim.urls["binance"]["rest"] + url.path + "?" + url.query)
            assert got.status_code == 200 and got.content == (r.msg or "").encode()
        # Another limit, same symbol: the recorded snapshot of that symbol.
        nkn = await rest_get(sim.urls["binance"]["rest"] + "/api/v3/depth?symbol=NKNUSDT&limit=5000")
        assert json.loads(nkn.content)["lastUpdateId"] == 499869752
        assert (await rest_get(sim.urls["binance"]["rest"] + "/api/v3/ticker")).status_code == 404


async def test_replay_applies_faults() -> None:
    target, frames, _ = recorded("binance_futures")
    async with (
        Simulator(venues=[], replay=capture_path("binance_futures")) as sim,
        client(sim.urls["binance_futures"]["ws"] + target + "&faults=disconnect_after_msgs=10") as ws,
    ):
        got = await collect(ws, 2.0)
    assert got == frames[:10]
