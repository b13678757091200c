"""The benchmark feed: the simulator's Binance USD-M venue in a child process of its own.

Its CPU is never counted against a consumer, and on a 2-core machine it has a core to itself. Two
shapes:

- a pool (`pregenerate=N`, rate far above any consumer): N market steps generated and encoded before
  serving, sent as fast as the simulator writes once `resume()` is called; the market pauses itself when
  the pool is used up, so every measured frame is a pre-encoded one;
- a live market at a fixed `rate` (latency runs: event times are the send times).

The feed is paused until `resume()`, so a consumer can connect, subscribe and take its REST snapshots
first.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

VENUE = "binance_futures"
#: how often the feed process looks at its commands and at the pool (seconds)
POLL_S = 0.002


@dataclass(frozen=True)
class FeedOptions:
    symbols: int = 3
    rate: float = 1_000_000.0  # market steps per second (pool runs: faster than any consumer)
    pregenerate: int = 0  # pre-encoded steps; 0: a live market
    seed: int = 1
    #: frames a connection may have queued: the whole pool (a slow client works off its backlog, not cut off)
    max_queue: int = 2_000_000


def frames(steps: int, symbols: int = 3, seed: int = 1) -> tuple[list[bytes], dict[str, bytes]]:
    """The frames a consumer of depth@100ms + aggTrade on every symbol gets from `steps` pre-generated steps,
    as combined-stream frames (`{"stream":...,"data":...}`), in send order, and each symbol's REST depth
    snapshot (the body of `/fapi/v1/depth`) as of the first of them. No socket, no server.

    The simulator's book before the pool has `lastUpdateId` = the first diff's `pu`; a snapshot taken by a
    real client lands inside a diff (`U <= lastUpdateId <= u`), which is what the sync's bridging rule
    expects, so each snapshot's `lastUpdateId` is set to its symbol's first diff's `U` (levels are absolute
    quantities: applying that diff over the earlier book gives the same book)."""
    import orjson

    from xtrader.simulator import Simulator

    sim = Simulator(venues=[VENUE], symbols=symbols, rate=0, seed=seed, pregenerate=steps)
    venue = sim.venues[VENUE]
    books = {s: venue.book(s, 1000) for s in venue.symbols}
    wanted = set(streams(venue.symbols))
    out: list[bytes] = []
    for market in venue._pool_order:
        _, recording = venue._pool[market.instrument.symbol].popleft()
        for stream, frame in recording:
            if stream in wanted:
                out.append(b'{"stream":"%s","data":%s}' % (stream.encode(), frame.data))
                if frame.kind == "depth" and frame.first_seq is not None and "U" not in books[frame.symbol]:
                    books[frame.symbol]["lastUpdateId"] = frame.first_seq
                    books[frame.symbol]["U"] = frame.first_seq
    snapshots = {}
    for symbol, book in books.items():
        book.pop("U", None)
        snapshots[symbol] = orjson.dumps(book)
    return out, snapshots


def streams(symbols: list[str]) -> list[str]:
    """The streams xtrader and cryptofeed subscribe to for l2 + trades on Binance USD-M."""
    return [f"{s.lower()}@{kind}" for s in symbols for kind in ("depth@100ms", "aggTrade")]


class Feed:
    """Handle on the feed process; use as a context manager."""

    def __init__(self, options: FeedOptions) -> None:
        self.options = options
        self._pipe, child = mp.get_context("spawn").Pipe()
        self._process = mp.get_context("spawn").Process(target=_main, args=(options, child), daemon=True)
        self.urls: dict[str, str] = {}
        self.symbols: list[str] = []
        self.ca_file = ""
        self.pid = 0

    def __enter__(self) -> Feed:
        self._process.start()
        self.pid = self._process.pid or 0
        ready = self._call("ready", timeout=600.0)  # pre-generation takes ~50 us a step
        self.urls, self.symbols, self.ca_file = ready["urls"], ready["symbols"], ready["ca_file"]
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._call("stop", timeout=30.0)
        self._process.join(10.0)
        if self._process.is_alive():
            self._process.kill()

    def _call(self, command: str, timeout: float = 30.0) -> Any:
        if command != "ready":
            self._pipe.send(command)
        if not self._pipe.poll(timeout):
            raise TimeoutError(f"benchmark feed: no answer to {command!r} in {timeout:g} s")
        answer = self._pipe.recv()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def resume(self) -> None:
        self._call("resume")

    def pause(self) -> None:
        """Stop the market and wait until every send queue is empty."""
        self._call("pause")

    def state(self) -> dict[str, Any]:
        """messages (data frames written), subscribers, backlog (largest send queue), pool_left, paused, unique
        (rows per table per symbol, once each), open_connections."""
        state: dict[str, Any] = self._call("state")
        return state


def _main(options: FeedOptions, pipe: Pipe) -> None:
    asyncio.run(_serve(options, pipe))


async def _serve(options: FeedOptions, pipe: Pipe) -> None:
    import logging

    from xtrader.simulator import Simulator

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        sim = Simulator(
            venues=[VENUE],
            symbols=options.symbols,
            rate=options.rate,
            seed=options.seed,
            pregenerate=options.pregenerate,
            max_queue=options.max_queue,
        )
        await sim.start()
    except Exception as exc:
        pipe.send(exc)
        return
    sim.pause()
    venue = sim.venues[VENUE]
    pipe.send({"urls": sim.urls[VENUE], "symbols": venue.symbols, "ca_file": sim.ca_file})
    pooled = options.pregenerate > 0
    try:
        while True:
            if pooled and not venue.paused and not venue._pool_order:
                sim.pause()  # pool used up: send nothing generated live
            if not pipe.poll():
                await asyncio.sleep(POLL_S)
                continue
            command = pipe.recv()
            if command == "stop":
                break
            if command == "resume":
                sim.resume()
                pipe.send(None)
            elif command == "pause":
                sim.pause()
                try:
                    await sim.drain(60.0)
                except TimeoutError as exc:
                    pipe.send(exc)
                    continue
                pipe.send(None)
            elif command == "state":
                truth = venue.truth.to_json()
                pipe.send(
                    {
                        "messages": venue.truth.messages,
                        "subscribers": sum(len(c) for c in venue.subscribers.values()),
                        "backlog": max((len(c.queue) for c in venue.connections), default=0),
                        "pool_left": len(venue._pool_order),
                        "paused": venue.paused,
                        "unique": truth.get("unique", {}),
                        "open_connections": len(venue.connections),
                    }
                )
    finally:
        await sim.stop()
        pipe.send(None)
