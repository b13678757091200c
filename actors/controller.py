"""ControllerActor: the named, detached control plane of a running capture.

The driver registers every actor here; `xtrader.control.attach()` (a notebook,
the CLI) finds it by name to list streams, subscribe / unsubscribe symbols at
run time, read stats and ask the capture to stop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from xtrader.control import CONTROLLER_NAME

__all__ = ["CONTROLLER_NAME", "ControllerActor"]


class ControllerActor:
    """Knows every stream and actor of one capture."""

    def __init__(self, capture: str) -> None:
        self.capture = capture
        self.streams: dict[str, dict[str, Any]] = {}  # stream id -> {venue, tables, symbols, connectors}
        self.actors: dict[str, Any] = {}  # actor id -> handle
        self.stop_requested = False

    def register(self, actors: dict[str, Any], streams: dict[str, dict[str, Any]]) -> None:
        self.actors.update(actors)
        self.streams.update(streams)

    def list_streams(self) -> dict[str, dict[str, Any]]:
        return {name: {k: v for k, v in s.items()} for name, s in self.streams.items()}

    def list_actors(self) -> list[str]:
        return sorted(self.actors)

    def handle(self, actor_id: str) -> Any:
        """The handle of one actor (for tools and chaos tests)."""
        return self.actors[actor_id]

    async def subscribe(self, stream: str, symbols: list[str], tables: list[str] | None = None) -> list[str]:
        """Add symbols to a running stream (on its first connection and its redundant copies)."""
        return await self._change("subscribe", stream, symbols, tables)

    async def unsubscribe(self, stream: str, symbols: list[str], tables: list[str] | None = None) -> list[str]:
        """Remove symbols from a running stream."""
        return await self._change("unsubscribe", stream, symbols, tables)

    async def _change(self, method: str, stream: str, symbols: list[str], tables: list[str] | None) -> list[str]:
        info = self.streams.get(stream)
        if info is None:
            raise KeyError(f"unknown stream {stream!r}; known: {', '.join(sorted(self.streams))}")
        tables = list(tables or info["tables"])
        # the first connection of the stream, every redundant copy of it
        first = [c for c in info["connectors"] if "/c0/" in c] or list(info["connectors"])
        await asyncio.gather(*(getattr(self.actors[c], method).remote(symbols, tables) for c in first))
        current = set(info["symbols"])
        current = current | set(symbols) if method == "subscribe" else current - set(symbols)
        info["symbols"] = sorted(current)
        return first

    async def stats(self) -> dict[str, Any]:
        """Every actor's stats (an actor that does not answer shows its error)."""
        names = sorted(self.actors)
        results = await asyncio.gather(*(self.actors[n].stats.remote() for n in names), return_exceptions=True)
        return {
            n: (r if not isinstance(r, BaseException) else {"error": repr(r)})
            for n, r in zip(names, results, strict=True)
        }

    def stop(self) -> None:
        """Ask the driver to stop the capture (it drains and flushes everything)."""
        self.stop_requested = True

    def should_stop(self) -> bool:
        return self.stop_requested
