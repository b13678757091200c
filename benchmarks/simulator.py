"""Send rate of the simulator's generated Binance depth frames, over ws and wss.

The simulator runs in this process; a bare websockets client in a child process only counts
frames, so the two do not share a CPU. For each target rate the simulator generates one depth
diff per market step; the figure is frames the client received per second, and whether the
connection survived (a client that falls too far behind is cut off, as on the real venue).

    /work/venv/bin/python benchmarks/simulator.py [--seconds 3] [--rates 5000,20000,50000,100000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import ssl
import sys
import time
from multiprocessing.connection import Connection as Pipe

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from xtrader.simulator import Simulator


def count_frames(url: str, ca_file: str, seconds: float, out: Pipe) -> None:
    """Child process: connect, count frames and bytes for `seconds` after the first one."""

    async def run() -> tuple[int, int, float, bool]:
        ctx = ssl.create_default_context(cafile=ca_file) if url.startswith("wss") else None
        frames = size = 0
        survived = True
        async with connect(url, ssl=ctx, ping_interval=None, compression=None, max_size=None) as ws:
            first = await ws.recv()
            size += len(first)
            start = time.perf_counter()
            end = start + seconds
            try:
                while time.perf_counter() < end:
                    msg = await ws.recv()
                    frames += 1
                    size += len(msg)
            except ConnectionClosed:
                survived = False
            return frames, size, time.perf_counter() - start, survived

    out.send(asyncio.run(run()))


async def measure(
    scheme: str, rate: float, symbols: int, seconds: float, clients: int = 1
) -> tuple[float, float, bool]:
    """Frames/s and MB/s summed over `clients` identical connections, and whether all survived."""
    async with Simulator(venues=["binance"], symbols=symbols, rate=rate, seed=1) as sim:
        streams = "/".join(f"{s.lower()}@depth@100ms" for s in sim.symbols["binance"])
        url = f"{sim.urls['binance'][scheme]}/ws/{streams}"
        pipes, procs = [], []
        for _ in range(clients):
            parent, child = mp.Pipe(duplex=False)
            proc = mp.get_context("spawn").Process(target=count_frames, args=(url, sim.ca_file, seconds, child))
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        loop = asyncio.get_running_loop()
        while not all(p.poll() for p in pipes):
            await asyncio.sleep(0.05)
        results = [p.recv() for p in pipes]
        for proc in procs:
            await loop.run_in_executor(None, proc.join)
    per_s = sum(frames / elapsed for frames, _, elapsed, _ in results)
    mb_s = sum(size / elapsed for _, size, elapsed, _ in results) / 1e6
    return per_s, mb_s, all(r[3] for r in results)


def generation_only(symbols: int, steps: int = 100_000) -> float:
    """Market steps/s with their depth frame encoded, no socket (one subscriber-less venue)."""
    sim = Simulator(venues=["binance"], symbols=symbols, rate=0, seed=1)
    venue = sim.venues["binance"]
    venue.subscribers["_"] = set()  # make publish() encode as if someone listened
    for s in venue.symbols:
        venue.subscribers[f"{s.lower()}@depth@100ms"] = set()
    start = time.perf_counter()
    for _ in range(steps):
        venue.step_once()
    return steps / (time.perf_counter() - start)


async def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--symbols", type=int, default=3)
    p.add_argument("--rates", default="5000,20000,50000,1000000")
    p.add_argument("--clients", default="1,4", help="client processes per run (comma-separated)")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load:.1f}, {args.symbols} symbols, "
        f"{args.seconds:g} s per run"
    )
    print(f"generation + encoding only: {generation_only(args.symbols):,.0f} depth frames/s")
    print(f"{'scheme':6} {'clients':>7} {'target/s':>10} {'frames/s':>10} {'MB/s':>7}  connections")
    for scheme in ("ws", "wss"):
        for clients in (int(c) for c in args.clients.split(",")):
            for rate in (float(r) for r in args.rates.split(",")):
                per_s, mb_s, survived = await measure(scheme, rate, args.symbols, args.seconds, clients)
                verdict = "kept" if survived else "cut off (client too slow: send queue full)"
                print(f"{scheme:6} {clients:>7} {rate:>10.0f} {per_s:>10.0f} {mb_s:>7.1f}  {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
