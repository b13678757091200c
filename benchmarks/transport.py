"""CPU per frame of the connector's two websocket transports (`xtrader.transport`) on the bench feed.

    python benchmarks/transport.py [--frames 150000] [--rounds 2]

The feed is `xtrader bench`'s (the simulator's Binance USD-M venue in a process of its own, 3 symbols,
depth@100ms + aggTrade over wss on the two USD-M routes, pre-encoded and sent faster than any consumer).
Each round opens both routes with `open_socket(transport, ...)` in a fresh client process and reads with
`recv(decode=False)`, as the connector's reader does, until `--frames` frames arrived; the figure is the
client process's CPU time per frame (TLS included). Transports alternate within a round, so both see the
same machine; `ratio` is websockets / picows.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import ssl
import sys
import time
from multiprocessing.connection import Connection as Pipe
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xtrader.bench.feed import Feed, FeedOptions
from xtrader.bench.limits import urls_by_route
from xtrader.transport import TRANSPORTS, Transport, open_socket


def _client(transport: Transport, urls: list[str], ca_file: str, target: int, pipe: Pipe) -> None:
    from websockets.exceptions import ConnectionClosed

    async def run() -> None:
        tls = ssl.create_default_context(cafile=ca_file)
        sockets = [
            await open_socket(
                transport,
                url,
                ssl_context=tls,
                open_timeout=10.0,
                close_timeout=2.0,
                max_size=16 << 20,
                max_queue=1024,
                ping_interval=None,
                user_agent="xtrader-bench",
            )
            for url in urls
        ]
        count = 0
        done = asyncio.Event()

        async def read(ws: object) -> None:
            nonlocal count
            recv = ws.recv  # type: ignore[attr-defined]
            try:
                while count < target:
                    await recv(decode=False)
                    count += 1
            except ConnectionClosed:
                pass
            done.set()

        pipe.send("ready")
        pipe.recv()
        cpu = time.process_time()
        tasks = [asyncio.create_task(read(ws)) for ws in sockets]
        await done.wait()
        pipe.send((count, time.process_time() - cpu))
        for task in tasks:
            task.cancel()

    asyncio.run(run())


def measure(feed: Feed, transport: Transport, target: int) -> float:
    """µs of client CPU per frame."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    urls = urls_by_route(feed.urls["wss"], feed.symbols)
    proc = ctx.Process(target=_client, args=(transport, urls, feed.ca_file, target, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise TimeoutError(f"{transport}: the client did not connect")
        parent.recv()
        time.sleep(1.0)  # the subscriptions settle
        feed.resume()
        parent.send(None)
        if not parent.poll(300):
            raise TimeoutError(f"{transport}: {target} frames did not arrive")
        frames, cpu = parent.recv()
        feed.pause()
        return float(cpu) / int(frames) * 1e6
    finally:
        proc.kill()
        proc.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for round_ in range(1, args.rounds + 1):
        # a feed per round: each pool of pre-encoded frames serves one client
        results: dict[str, float] = {}
        for transport in TRANSPORTS:
            with Feed(FeedOptions(symbols=3, pregenerate=args.frames)) as feed:
                results[transport] = measure(feed, transport, args.frames)
        line = "  ".join(f"{t} {us:.2f}" for t, us in results.items())
        ratio = results["websockets"] / results["picows"]
        print(f"round {round_}: µs of CPU per frame: {line}  ratio {ratio:.1f}", flush=True)


if __name__ == "__main__":
    main()
