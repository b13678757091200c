"""cryptofeed on the benchmark feed: run by the interpreter of its own virtual environment, not xtrader's.

Imports only cryptofeed and the standard library. Usage:
`python cryptofeed_client.py WS_BASE REST_BASE`.
Subscribes L2_BOOK + TRADES on every perpetual the simulator lists (cryptofeed's BinanceFutures with its
endpoints replaced by the simulator's: one feed per USD-M route), with callbacks that only count and
record receipt -> callback time.

Commands on stdin, one per line; each answer is one JSON line on stdout:
- `target N`: answer `{"frames": n, "done": t}` once N frames went through the feed's message handler
  (t: time.monotonic() when the N-th was handled);
- `measure`: start recording latencies (receipt -> callback), dropping earlier ones; answers `{}`;
- `report`: answer `{"frames": n, "callbacks": c, "latencies_s": [...], "overall_s": [...]}` since `measure`
  (overall: callback wall time - the exchange's event time);
- `quit`.
On start it prints `{"ready": true, "symbols": [...]}` once the feed handler runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any


def main(ws_base: str, rest_base: str) -> None:
    from cryptofeed import FeedHandler
    from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
    from cryptofeed.defines import L2_BOOK, TRADES
    from cryptofeed.exchanges import BinanceFutures

    frames = [0]

    def simulated(route: str) -> Any:
        """BinanceFutures with the simulator's endpoints; USD-M serves book streams on /public and trades on
        /market (since 2026-04-23; a stream on the wrong path is silent), so each channel gets its route."""

        class SimulatedBinanceFutures(BinanceFutures):  # type: ignore[misc]
            # cryptofeed's own class attributes, replaced
            websocket_endpoints = [WebsocketEndpoint(ws_base + route, options={"compression": None})]  # noqa: RUF012
            rest_endpoints = [  # noqa: RUF012
                RestEndpoint(
                    rest_base,
                    routes=Routes(
                        "/fapi/v1/exchangeInfo",
                        l2book="/fapi/v1/depth?symbol={}&limit={}",
                        authentication="/fapi/v1/listenKey",
                        open_interest="/fapi/v1/openInterest?symbol={}",
                    ),
                )
            ]

            async def message_handler(self, msg: str, conn: object, timestamp: float) -> None:
                await super().message_handler(msg, conn, timestamp)
                frames[0] += 1
                if frames[0] == state["target"]:
                    state["done"] = time.monotonic()
                    answer({"frames": frames[0], "done": state["done"]})

        return SimulatedBinanceFutures

    state: dict[str, object] = {"target": -1, "done": None, "measuring": False}
    latencies: list[float] = []
    overall: list[float] = []
    callbacks = [0]

    def answer(obj: object) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    async def on_data(data: Any, receipt_timestamp: float) -> None:
        callbacks[0] += 1
        if state["measuring"]:
            now = time.time()
            latencies.append(now - receipt_timestamp)
            if data.timestamp is not None:  # the exchange's event time (E / T), seconds
                overall.append(now - data.timestamp)

    book_feed, trade_feed = simulated("/public"), simulated("/market")
    symbols = [s for s in book_feed.symbols() if s.endswith("-PERP")]
    handler = FeedHandler(config={"log": {"disabled": True}, "uvloop": False})
    handler.add_feed(book_feed(symbols=symbols, channels=[L2_BOOK], callbacks={L2_BOOK: on_data}))
    handler.add_feed(trade_feed(symbols=symbols, channels=[TRADES], callbacks={TRADES: on_data}))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    handler.run(start_loop=False, install_signal_handlers=False)

    def command(line: str) -> None:
        words = line.split()
        if not words:
            return
        if words[0] == "target":
            state["target"] = int(words[1])
            if frames[0] >= int(words[1]):
                answer({"frames": frames[0], "done": state["done"] or time.monotonic()})
        elif words[0] == "measure":
            latencies.clear()
            overall.clear()
            state["measuring"] = True
            answer({})
        elif words[0] == "report":
            state["measuring"] = False
            answer({"frames": frames[0], "callbacks": callbacks[0], "latencies_s": latencies, "overall_s": overall})
        elif words[0] == "quit":
            loop.stop()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(command, line)
        loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=read_stdin, daemon=True).start()
    answer({"ready": True, "symbols": symbols})
    loop.run_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
