"""The simulator's send rate against what one xtrader Connector consumes, same run, same machine.

The simulator runs in this process; each client runs in a child process, so on a 2-CPU
machine simulator and client each have a core. Every client subscribes to the Binance depth
diffs of all symbols over the combined-stream URL the connector itself uses, so each market
step is one frame per client. Clients:

- ``raw``: a minimal websocket client on a plain (or TLS) socket that reads large chunks and
  only walks the frame headers. It costs a fraction of what the simulator spends per frame, so
  its rate is the simulator's send rate.
- ``websockets``: the ``websockets`` library's client, counting ``recv()``ed frames (a client
  written in Python on the same library as the connector, with no parsing).
- ``connector``: one ``xtrader.connector.Connector`` (websockets client, ``venue.parse`` into
  column buffers, batch flushes, REST snapshots); ``emit`` only counts the Batches. Its rate
  is ``stats()["messages"]`` per second once the book snapshots are in.

``backlog`` is the client's send queue in the simulator when the run ends: frames generated
and encoded but not yet taken by the client. A growing backlog means the client, not the
simulator, set the rate (a client 200,000 frames behind is cut off, as on the real venue).

Each simulator pre-generates its market steps (``Simulator(pregenerate=N)``, N covering the
run at up to ``POOL_RATE`` steps/s) and stays paused until the client subscribes, so what is
measured is sending ready frames; ``pool left`` is the pre-generated steps still unsent when the
window closed (0 would mean the run went on to live generation).

``frames/s`` is wall-clock and depends on what else runs on the machine. ``sim/cpu-s`` is frames
the simulator wrote per CPU second of its process, ``client/cpu-s`` frames the client took per
CPU second of its own: the capacities to compare on a shared machine. The summary compares the
simulator's (raw client, the best run) with the connector's.

    /work/venv/bin/python benchmarks/simulator.py [--seconds 3] [--rates 5000,1000000]
        [--clients raw,websockets,connector] [--schemes ws,wss]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import ssl
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from xtrader.bench.limits import open_raw_ws, walk_frames
from xtrader.simulator import Simulator

POOL_RATE = 150_000  # pre-generated steps per second of run, at most ("pool left" shows if they last)


class Window:
    """A client's measured interval: both clocks, and a note to the simulator when it starts."""

    def __init__(self, out: Pipe) -> None:
        self.out = out
        self.wall = self.cpu = 0.0

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.out.send("start")

    def done(self, frames: int, size: int, kept: bool) -> None:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        self.out.send(Result(frames, size, wall, cpu, kept))


@dataclass
class Result:
    frames: int
    bytes: int
    wall_s: float
    cpu_s: float  # the client process's CPU time over the window
    kept: bool  # the connection survived the window


def raw_client(url: str, ca_file: str, seconds: float, window: Window) -> None:
    """Handshake by hand, then count frames by walking their headers (server frames are unmasked)."""
    sock, buf = open_raw_ws(url, ca_file)
    frames = size = 0
    kept = True
    window.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        chunk = sock.recv(1 << 20)
        if not chunk:
            kept = False
            break
        buf += chunk
        more, more_size, closed, used = walk_frames(buf)
        buf = buf[used:]
        frames += more
        size += more_size
        kept = kept and not closed
    window.done(frames, size, kept)
    sock.close()


async def websockets_client(url: str, ca_file: str, seconds: float, window: Window) -> None:
    """The websockets library's client: count frames and bytes for `seconds` after the first one."""
    ctx = ssl.create_default_context(cafile=ca_file) if url.startswith("wss") else None
    frames = size = 0
    kept = True
    async with connect(url, ssl=ctx, ping_interval=None, compression=None, max_size=None) as ws:
        await ws.recv()
        window.start()
        end = time.perf_counter() + seconds
        try:
            while time.perf_counter() < end:
                size += len(await ws.recv(decode=False))
                frames += 1
        except ConnectionClosed:
            kept = False
        window.done(frames, size, kept)


async def connector_client(
    urls: dict[str, str], symbols: list[str], ca_file: str, seconds: float, window: Window
) -> None:
    """One Connector on the Binance depth diffs of `symbols`; emit only counts."""
    from xtrader.batch import Batches, FlushPolicy
    from xtrader.connector import Connector, SnapshotBatches
    from xtrader.venues import Subscription, venue

    v = venue("binance", ws_base=urls["ws"], rest_base=urls["rest"])
    (connection,) = v.connections([Subscription("l2", s) for s in symbols])
    snapshots = 0

    async def emit(batches: Batches) -> None:
        nonlocal snapshots
        snapshots += isinstance(batches, SnapshotBatches)

    c = Connector(v, connection, emit, FlushPolicy(), ca_file=ca_file if urls["ws"].startswith("wss") else None)
    task = asyncio.create_task(c.run())
    while snapshots < len(symbols):  # the start-up (connect, REST snapshots) is not measured
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    before = c.stats()
    window.start()
    await asyncio.sleep(seconds)
    after = c.stats()
    kept = after["reconnects"] == before["reconnects"] and after["rejects"] == 0
    window.done(
        int(after["messages"] or 0) - int(before["messages"] or 0),
        int(after["bytes"] or 0) - int(before["bytes"] or 0),
        kept,
    )
    await c.stop()
    await task


def child(kind: str, urls: dict[str, str], symbols: list[str], ca_file: str, seconds: float, out: Pipe) -> None:
    """Child process: run one client over its window."""
    window = Window(out)
    if kind == "raw":
        raw_client(urls["stream"], ca_file, seconds, window)
    elif kind == "websockets":
        asyncio.run(websockets_client(urls["stream"], ca_file, seconds, window))
    else:
        asyncio.run(connector_client(urls, symbols, ca_file, seconds, window))


@dataclass
class Run:
    client: Result
    sim_frames: int  # frames the simulator wrote over the client's window
    sim_cpu_s: float  # the simulator process's CPU time over the window
    backlog: int  # frames still queued for the client when its window closed
    pool_left: int  # pre-generated steps not yet sent when the window closed (0: went live)


async def measure(kind: str, scheme: str, rate: float, symbols: int, seconds: float) -> Run:
    """One client against a fresh simulator, sending pre-generated frames (paused until subscribed)."""
    pool = int(min(rate, POOL_RATE) * (seconds + 1.5))
    async with Simulator(venues=["binance"], symbols=symbols, rate=rate, seed=1, pregenerate=pool) as sim:
        sim.pause()
        base, names = sim.urls["binance"], sim.symbols["binance"]
        truth = sim.venues["binance"].truth
        streams = "/".join(f"{s.lower()}@depth@100ms" for s in names)
        urls = {
            "ws": base[scheme],
            "rest": base["rest" if scheme == "ws" else "rest_tls"],
            "stream": f"{base[scheme]}/stream?streams={streams}",
        }
        parent, pipe = mp.Pipe(duplex=False)
        proc = mp.get_context("spawn").Process(target=child, args=(kind, urls, names, sim.ca_file, seconds, pipe))
        proc.start()

        async def receive() -> Any:
            while not parent.poll():
                await asyncio.sleep(0.005)
            return parent.recv()

        while not sim.venues["binance"].subscribers:
            await asyncio.sleep(0.005)
        sim.resume()
        await receive()  # "start"
        frames, cpu = truth.messages, time.process_time()
        result: Result = await receive()
        frames, cpu = truth.messages - frames, time.process_time() - cpu
        backlog = max((len(c.queue) for c in sim.venues["binance"].connections), default=0)
        left = len(sim.venues["binance"]._pool_order)
        await asyncio.get_running_loop().run_in_executor(None, proc.join)
    return Run(result, frames, cpu, backlog, left)


def generation_only(symbols: int, steps: int = 100_000) -> float:
    """Market steps per CPU-s with their depth frame encoded, no socket (subscribers with no connection)."""
    sim = Simulator(venues=["binance"], symbols=symbols, rate=0, seed=1)
    venue = sim.venues["binance"]
    for s in venue.symbols:
        venue.subscribers[f"{s.lower()}@depth@100ms"] = set()
    start = time.process_time()  # CPU time: other jobs on the machine hardly disturb it
    for _ in range(steps):
        venue.step_once()
    return steps / (time.process_time() - start)


async def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--symbols", type=int, default=3)
    p.add_argument("--rates", default="5000,1000000", help="market steps/s (comma-separated)")
    p.add_argument("--clients", default="raw,websockets,connector", help="client kinds (comma-separated)")
    p.add_argument("--schemes", default="ws,wss")
    args = p.parse_args(argv)
    # The raw client hangs up without a close frame: asyncio would log every failed write.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
        f"{args.symbols} symbols, {args.seconds:g} s per run"
    )
    print(f"generation + encoding only: {generation_only(args.symbols):,.0f} depth frames per CPU-s")
    print(
        f"{'scheme':6} {'client':10} {'target/s':>9} {'frames/s':>9} {'MB/s':>5} {'backlog':>7} "
        f"{'sim/cpu-s':>9} {'client/cpu-s':>12} {'pool left':>9}  connection"
    )
    best: dict[tuple[str, str], tuple[float, float]] = {}
    for scheme in args.schemes.split(","):
        for kind in args.clients.split(","):
            for rate in (float(r) for r in args.rates.split(",")):
                run = await measure(kind, scheme, rate, args.symbols, args.seconds)
                c = run.client
                sim_cpu = run.sim_frames / run.sim_cpu_s if run.sim_cpu_s else 0.0
                client_cpu = c.frames / c.cpu_s if c.cpu_s else 0.0
                old = best.get((scheme, kind), (0.0, 0.0))
                best[scheme, kind] = (max(old[0], sim_cpu), max(old[1], client_cpu))
                print(
                    f"{scheme:6} {kind:10} {rate:>9.0f} {c.frames / c.wall_s:>9.0f} {c.bytes / c.wall_s / 1e6:>5.1f} "
                    f"{run.backlog:>7} {sim_cpu:>9.0f} {client_cpu:>12.0f} {run.pool_left:>9}  "
                    f"{'kept' if c.kept else 'lost'}",
                    flush=True,
                )
    for scheme in args.schemes.split(","):
        sent, taken = best.get((scheme, "raw"), (0.0, 0.0))[0], best.get((scheme, "connector"), (0.0, 0.0))[1]
        if sent and taken:
            print(
                f"{scheme}: simulator sends {sent:,.0f} frames per CPU-s, a connector consumes {taken:,.0f}: "
                f"{sent / taken:.1f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
