"""The simulator, on its own event loop in a thread of the driver."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from xtrader.config import Capture
from xtrader.errors import ConfigError
from xtrader.plan import Endpoint


class SimulatorThread:
    """Runs `xtrader.simulator.Simulator` on its own event loop in a daemon thread."""

    def __init__(self, **options: Any) -> None:
        from xtrader.simulator.server import Simulator

        self.sim = Simulator(**options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="xtrader-simulator", daemon=True)

    def start(self) -> dict[str, Endpoint]:
        self.thread.start()
        self.call(self.sim.start())
        return {name: Endpoint(urls["ws"], urls["rest"]) for name, urls in self.sim.urls.items()}

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn: Any, *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)

        return self.call(wrapper())

    def pause(self) -> None:
        """Stop the markets at a message boundary and wait until every send queue is empty."""
        self.run(self.sim.pause)
        with contextlib.suppress(TimeoutError):
            self.call(self.sim.drain(10.0))

    def stats(self) -> dict[str, Any]:
        return self.run(self.sim.stats)  # type: ignore[no-any-return]

    def book(self, venue: str, symbol: str, depth: int = 20) -> dict[str, Any]:
        return self.run(self.sim.book, venue, symbol, depth)  # type: ignore[no-any-return]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.sim.stop(), timeout=10.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)


def simulator_for(capture: Capture) -> SimulatorThread | None:
    """The simulator a capture asks for (serving the venues of its simulated streams), or None."""
    sim = capture.simulator
    if sim is None or not sim.enabled:
        return None
    from xtrader.simulator.registry import VENUES as SIMULATED

    # every venue it can simulate, whatever the streams: a venue can be subscribed at run time
    venues = sorted(SIMULATED)
    try:
        return SimulatorThread(
            venues=venues,
            symbols=sim.symbols,
            rate=sim.rate,
            seed=sim.seed,
            faults=sim.faults or None,
            host=sim.host,
            port=sim.port,
            depth=sim.depth,
            venue_options=sim.options,
        )
    except ValueError as exc:
        raise ConfigError(f"simulator: {exc}") from None
