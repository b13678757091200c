"""Simulator memory: serving clients for a long time must not grow what the simulator keeps.

Measured with tracemalloc, counting only the memory allocated by xtrader/simulator's own files
(the test's clients and websockets' buffers are left out), at points where every send queue is
empty (`pause` then `drain`), so what is left is what the simulator retains.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

import xtrader.simulator
from tests.integration.sim_client import client
from xtrader.simulator import Simulator
from xtrader.simulator.binance import BinanceSpot
from xtrader.simulator.deribit import Deribit
from xtrader.simulator.okx import Okx
from xtrader.simulator.venue import VenueOptions

SIMULATOR_FILES = str(Path(xtrader.simulator.__file__).parent / "*")
# What the simulator may retain beyond its warmed-up state however long it serves: a fixed
# allowance, independent of how many frames are served (a memo of recent prices, a book level
# more or less). Before the fix, OKX kept every size it ever wrote: about 1.5 MB per 10,000 frames.
BOUND = 256 * 1024


@contextlib.contextmanager
def tracing() -> Iterator[None]:
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(1)
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


def simulator_bytes() -> int:
    """Bytes currently held by allocations made in xtrader/simulator's files."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, SIMULATOR_FILES)])
    return sum(trace.size for trace in snapshot.traces)


class Reader:
    """A client that reads every message and counts them."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.count = 0
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for _ in self.ws:
            self.count += 1


async def wait_for(condition: Any, what: str, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def serve(sim: Simulator, readers: list[Reader], frames: int) -> None:
    """Let the market run until every reader got `frames` more messages, then freeze with empty queues."""
    targets = [r.count + frames for r in readers]
    sim.resume()
    await wait_for(lambda: all(r.count >= t for r, t in zip(readers, targets, strict=True)), f"{frames} frames each")
    sim.pause()
    await sim.drain(timeout_s=30)


async def subscribe(sim: Simulator, stack: contextlib.AsyncExitStack) -> list[ClientConnection]:
    """One client per venue, each subscribed to trades, book diffs and best bid/offer of one symbol."""
    binance, okx, deribit = (sim.symbols[v][0] for v in ("binance", "okx", "deribit"))
    streams = "/".join(f"{binance.lower()}@{s}" for s in ("aggTrade", "depth@100ms", "bookTicker"))
    ws_binance = await stack.enter_async_context(client(f"{sim.urls['binance']['ws']}/stream?streams={streams}"))
    ws_okx = await stack.enter_async_context(client(sim.urls["okx"]["ws"] + "/ws/v5/public"))
    args = [{"channel": c, "instId": okx} for c in ("books", "bbo-tbt", "trades")]
    await ws_okx.send(json.dumps({"op": "subscribe", "args": args}))
    ws_deribit = await stack.enter_async_context(client(sim.urls["deribit"]["ws"] + "/ws/api/v2"))
    channels = [f"book.{deribit}.100ms", f"trades.{deribit}.100ms", f"quote.{deribit}"]
    request = {"jsonrpc": "2.0", "id": 1, "method": "public/subscribe", "params": {"channels": channels}}
    await ws_deribit.send(json.dumps(request))
    return [ws_binance, ws_okx, ws_deribit]


async def test_serving_clients_for_many_frames_keeps_the_simulators_memory_bounded() -> None:
    with tracing():
        async with (
            Simulator(venues=["binance", "okx", "deribit"], symbols=1, rate=3000, seed=3) as sim,
            contextlib.AsyncExitStack() as stack,
        ):
            sim.pause()
            readers = [Reader(ws) for ws in await subscribe(sim, stack)]
            await serve(sim, readers, 3_000)  # warm up: books, memos and buffers at their working size
            before = simulator_bytes()
            await serve(sim, readers, 12_000)
            grown = simulator_bytes() - before
            assert all(r.count >= 15_000 for r in readers)
            assert grown < BOUND, f"the simulator kept {grown:,} more bytes after 12,000 more frames per client"


def _formatters() -> Iterator[tuple[str, Any]]:
    options = VenueOptions(symbols=1, rate=0)
    binance = BinanceSpot(options)
    yield "binance price", binance._px[binance.symbols[0]]
    okx = Okx(options)
    state = okx._state[okx.symbols[0]]
    yield "okx price", state.px
    yield "okx size", state.sz
    deribit = Deribit(options)
    contract = deribit.contracts[deribit.symbols[0]]
    yield "deribit price", contract.price_text


@pytest.mark.parametrize(("name", "number_text"), list(_formatters()), ids=lambda v: v if isinstance(v, str) else "")
def test_number_formatters_keep_a_bounded_memo(name: str, number_text: Any) -> None:
    """A run of hours sends ever new prices (the mid wanders) and sizes: no formatter may keep them all."""
    with tracing():
        base = 10**7
        for units in range(base, base + 2_000):
            number_text(units)
        before = simulator_bytes()
        for units in range(base, base + 60_000):
            assert number_text(units)
        grown = simulator_bytes() - before
    assert grown < 2 * BOUND, f"{name}: {grown:,} bytes kept after formatting 58,000 new values"
