"""ControllerActor: the named, detached control plane of a running capture.

The driver registers every actor here; `xtrader.control.attach()` (a notebook,
the CLI) finds it by name to see the streams (`streams_table`), subscribe /
unsubscribe symbols at run time, read stats and events and ask the capture to
stop. The tables are built by `xtrader.streams_table`, requests are checked by
`xtrader.control_requests` (pure modules); this actor only gathers and routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import pyarrow as pa

from actors import _wire
from xtrader import streams_table
from xtrader.control import CONTROLLER_NAME
from xtrader.control_requests import RequestError, check

__all__ = ["CONTROLLER_NAME", "ControllerActor"]

log = logging.getLogger(__name__)

#: an instrument list is fetched again after this long
INSTRUMENTS_TTL_S = 300.0
#: `stats()` waits this long for each actor: one that is restarting (a new worker process to start, which
#: takes a minute on a loaded machine) must not hold every caller of `stats()` until it is back
STATS_TIMEOUT_S = 5.0


class ControllerActor:
    """Knows every stream and actor of one capture."""

    def __init__(self, capture: str, prefix: str = "") -> None:
        _wire.install()  # RecordBatch arguments travel as Arrow IPC bytes (`actors._wire`)
        self.capture = capture
        self.prefix = prefix  # the capture's actor-name prefix (`actors.name_prefix`): actors it starts are named so
        # stream id -> {venue, tables, symbols, connectors, ws_base, rest_base, symbols_ran}
        self.streams: dict[str, dict[str, Any]] = {}
        self.actors: dict[str, Any] = {}  # actor id -> handle
        self.groups: dict[str, str] = {}  # connector id -> its placement group's name
        self.retired: dict[str, dict[str, Any]] = {}  # connector id -> its final stats (stopped at run time)
        self.rates = streams_table.RateWindow()
        self.instruments: dict[str, tuple[float, set[str] | None]] = {}
        self.lock = asyncio.Lock()  # one subscription change at a time
        self.config: Any = None  # the Capture (to plan streams added at run time)
        self.endpoints: dict[str, Any] | None = None  # the simulator's endpoints per venue
        self.added: list[Any] = []  # actors.grow.Added, per stream started at run time
        self.tasks: set[asyncio.Task[None]] = set()
        self.stop_requested = False
        self.last_stats: dict[str, dict[str, Any]] = {}  # actor id -> its last answer (for one that does not answer)

    def register(
        self, actors: dict[str, Any], streams: dict[str, dict[str, Any]], groups: dict[str, str] | None = None
    ) -> None:
        self.actors.update(actors)
        self.streams.update(streams)
        self.groups.update(groups or {})

    def configure(self, capture: Any, endpoints: dict[str, Any] | None) -> None:
        """The capture's configuration and the simulator's endpoints (for streams started at run time)."""
        self.config = capture
        self.endpoints = dict(endpoints) if endpoints else None

    def list_streams(self) -> dict[str, dict[str, Any]]:
        """Stream id -> venue, tables, symbols and connector ids (the configuration view)."""
        return {name: dict(s) for name, s in self.streams.items()}

    def list_actors(self) -> list[str]:
        return sorted(self.actors)

    def handle(self, actor_id: str) -> Any:
        """The handle of one actor (for tools and chaos tests)."""
        return self.actors[actor_id]

    # -- the live view --------------------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """Every actor's stats (an actor that does not answer shows its error); samples the row rates.

        A stream started at run time is left out while it waits for placement: its connectors cannot
        answer before they are placed, and its new book or arbiter may still be starting (a worker
        process to spawn): asking them would hold every caller (`streams()`, the next `subscribe`,
        the driver's loop) until then."""
        waiting = {a for added in self.added if added.pending for a in added.actors}
        names = sorted(a for a in self.actors if a not in waiting)
        results = await asyncio.gather(*(self._ask(self.actors[n]) for n in names), return_exceptions=True)
        out: dict[str, Any] = {}
        for n, r in zip(names, results, strict=True):
            if not isinstance(r, BaseException):
                out[n] = self.last_stats[n] = r
            else:
                # its last answer, so counts never fall back, marked with why it is not fresh
                out[n] = {**self.last_stats.get(n, {}), "error": _describe(r)}
        self.rates.add(time.monotonic(), streams_table.connector_counts({**self.retired, **out}))
        return out

    @staticmethod
    async def _ask(actor: Any) -> Any:
        return await asyncio.wait_for(_awaited(actor.stats.remote()), STATS_TIMEOUT_S)

    async def streams_table(self) -> pa.Table:
        """One row per (venue, table, symbol, connection): see `xtrader.streams_table.streams`."""
        return self._streams(await self.stats())

    async def live_view(self, events_since: float | None = None) -> dict[str, Any]:
        """The driver's live view in one read: every actor's `stats` (as `stats()`), the `streams` table
        (as `streams_table()`) and the newest `events` (as `events(events_since)`)."""
        stats = await self.stats()
        return {"stats": stats, "streams": self._streams(stats), "events": await self.events(events_since)}

    def _streams(self, stats: dict[str, Any]) -> pa.Table:
        pending = {c: cpus for added in self.added for c, cpus in added.pending.items()}
        return streams_table.streams(self.streams, {**stats, **self.retired}, self.rates.rates(), pending=pending)

    async def stats_table(self) -> pa.Table:
        return streams_table.stats_table({**(await self.stats()), **self.retired})

    async def events(self, since: float | None = None) -> pa.Table:
        """The newest `events` rows (from the first sink that answers), at or after `since` (epoch s)."""
        for name in sorted(a for a in self.actors if a.startswith("sink/")):
            try:
                table: pa.Table = await self.actors[name].recent_events.remote(since)
                return table
            except Exception as exc:
                log.warning("%s: events: %r", name, exc)
        return streams_table.events_table([], since)

    # -- changing subscriptions -------------------------------------------------------------------------------

    async def subscribe(
        self, venue: str, tables: list[str], symbols: list[str], redundancy: int | None = None
    ) -> list[str]:
        """Add symbols to the running connection(s) of `venue` carrying `tables`, or start a new stream for
        them (`_grow`) when none can take them; returns the connector ids.

        Raises:
            RequestError: a bad request (nothing changed).
        """
        async with self.lock:
            streams = self._streams_of(venue)
            stats = await self.stats()
            subscribed = set().union(
                *(self._carried(c, stats) for _, info in streams for c in info["connectors"] if c in self.actors)
            )
            instruments = await self._instruments(venue, streams)
            request = check(
                "subscribe",
                venue if not streams else streams[0][1]["venue"],
                tables,
                symbols,
                instruments=instruments,
                subscribed=subscribed,
            )
            fitting = [
                (sid, info)
                for sid, info in streams
                if set(request.tables) <= set(info["tables"])
                and (redundancy is None or redundancy == self._redundancy(info))
                and self._first_connection(info)
                and not any(c in added.pending for added in self.added for c in self._first_connection(info))
            ]
            if not fitting:
                return await self._grow(request.venue, request.tables, request.symbols, redundancy)
            _, info = fitting[0]
            first = self._first_connection(info)
            limit = _max_streams(request.venue)  # (`stats` read above, under the lock: no other change since)
            for connector in first:
                carried = sum(len(v) for v in (stats.get(connector, {}).get("subscriptions") or {}).values())
                if carried + len(request.tables) * len(request.symbols) > limit:  # a new connection takes them
                    return await self._grow(request.venue, request.tables, request.symbols, redundancy)
            await asyncio.gather(
                *(self.actors[c].subscribe.remote(list(request.symbols), list(request.tables)) for c in first)
            )
            info["symbols"] = sorted(set(info["symbols"]) | set(request.symbols))
            return first

    async def unsubscribe(self, venue: str, tables: list[str], symbols: list[str]) -> list[str]:
        """Remove symbols from every connection of `venue` carrying them; a connector left with nothing is
        stopped and its placement group removed. Returns the connectors changed.

        Raises:
            RequestError: a bad request (nothing changed).
        """
        async with self.lock:
            streams = self._streams_of(venue)
            stats = await self.stats()
            carried: dict[str, set[tuple[str, str]]] = {}
            for _, info in streams:
                for connector in info["connectors"]:
                    if connector in self.retired:
                        continue
                    carried[connector] = self._carried(connector, stats)
            subscribed = set().union(*carried.values()) if carried else set()
            request = check(
                "unsubscribe",
                venue if not streams else streams[0][1]["venue"],
                tables,
                symbols,
                subscribed=subscribed,
            )
            wanted = {(t, s) for t in request.tables for s in request.symbols}
            changed = sorted(c for c, pairs in carried.items() if pairs & wanted)
            waiting = {c for added in self.added for c in added.pending}
            calls = {c: self.actors[c].unsubscribe.remote(list(request.symbols), list(request.tables)) for c in changed}
            # a connector not yet placed runs the call once it is (awaiting it would wait for the placement)
            await asyncio.gather(*(call for c, call in calls.items() if c not in waiting))
            for _, info in streams:
                remaining = set().union(*(carried[c] - wanted for c in info["connectors"] if c in carried))
                gone = {s for s in request.symbols if not any(symbol == s for _, symbol in remaining)}
                gone &= set(info["symbols"])
                if gone:
                    info["symbols_ran"] = sorted(set(info.get("symbols_ran", ())) | gone)
                    info["symbols"] = sorted(set(info["symbols"]) - gone)
            empty = [c for c in changed if not (carried[c] - wanted)]
            for connector in empty:
                await self._retire(connector)
            return changed

    async def _grow(
        self, venue: str, tables: tuple[str, ...], symbols: tuple[str, ...], redundancy: int | None
    ) -> list[str]:
        """Start a new stream (connectors in their own placement groups, arbiter and book as needed); returns
        its connector ids at once, while its placement groups may still pend."""
        from actors.grow import plan_stream, start_stream, wire_and_start
        from xtrader.errors import ConfigError

        if self.config is None:
            raise RequestError("subscribe rejected, nothing changed: this capture cannot start new connections")
        name = (
            venue
            if venue not in self.streams
            else next(f"{venue}-{n}" for n in range(2, 10_000) if f"{venue}-{n}" not in self.streams)
        )
        stream: dict[str, Any] = {"name": name, "venue": venue, "tables": list(tables), "symbols": list(symbols)}
        if redundancy is not None:
            stream["redundancy"] = redundancy
        try:
            capture, plan = plan_stream(self.config, stream, self.endpoints)
        except (ConfigError, ValueError) as exc:
            raise RequestError(f"subscribe rejected, nothing changed: {exc}") from None
        books = [a for a in self.actors if a.startswith("book/")]
        added = start_stream(capture, plan, self.prefix, books)
        self.added.append(added)
        self.actors.update(added.actors)
        connectors = [c.id for c in plan.connectors]
        self.groups.update({c.id: f"{capture.name}:{c.placement_group}" for c in plan.connectors})
        self.streams[name] = {
            "venue": venue,
            "tables": list(tables),
            "symbols": sorted(symbols),
            "connectors": connectors,
            "ws_base": plan.connectors[0].ws_base,
            "rest_base": plan.connectors[0].rest_base,
            "added": True,
        }
        venue_connectors = {
            c: self.actors[c]
            for sid, info in self.streams.items()
            if info["venue"] == venue
            for c in info["connectors"]
            if c in self.actors
        }
        stats = await self.stats()
        carriers = {c: list((stats.get(c) or {}).get("subscriptions", {}).get("l2", [])) for c in venue_connectors}
        carriers.update({c.id: sorted({s.symbol for s in c.subscriptions if s.table == "l2"}) for c in plan.connectors})
        book = self.actors.get(f"book/{venue}") if "l2" in tables else None
        task = asyncio.get_running_loop().create_task(wire_and_start(added, book, venue_connectors, carriers))
        self.tasks.add(task)
        task.add_done_callback(self._started)
        log.info("%s: new stream %s on %s (placement pending until the cluster has the CPUs)", venue, name, connectors)
        return connectors

    def _started(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a stream started at run time failed to start: %r", task.exception())

    def added_actors(self) -> dict[str, Any]:
        """What run-time subscriptions started, for the driver's drain and summary: connector, arbiter and
        book handles by id, and the streams (as configuration dicts)."""
        out: dict[str, Any] = {"connectors": {}, "arbiters": {}, "books": {}, "streams": []}
        for added in self.added:
            out["streams"].append(added.stream)
            for actor_id, handle in added.actors.items():
                if actor_id not in self.actors or actor_id in added.pending:
                    continue  # retired, or never placed (nothing to drain; gone with this actor's placement groups)
                kind = (
                    "books"
                    if actor_id.startswith("book/")
                    else "arbiters"
                    if actor_id.endswith("/arbiter")
                    else "connectors"
                )
                out[kind][actor_id] = handle
        return out

    async def _retire(self, connector: str) -> None:
        """Stop a connector left with nothing, keep its final stats, remove its placement group when no
        other live connector is in it."""
        import ray
        from ray.util.placement_group import get_placement_group, remove_placement_group

        handle = self.actors.pop(connector)
        waiting = any(connector in added.pending for added in self.added)
        try:
            final = await asyncio.wait_for(handle.stop.remote(), 60) if not waiting else {"placed": False}
        except Exception as exc:
            final = {"error": repr(exc)}
        for added in self.added:
            added.pending.pop(connector, None)
        final["stopped"] = True
        self.retired[connector] = final
        with contextlib.suppress(Exception):
            ray.kill(handle)
        group = self.groups.get(connector)
        if group is not None and not any(self.groups.get(c) == group for c in self.actors):
            with contextlib.suppress(Exception):
                remove_placement_group(get_placement_group(group))
            log.info("%s: stopped (nothing subscribed), placement group %s removed", connector, group)

    def _carried(self, connector: str, stats: dict[str, Any]) -> set[tuple[str, str]]:
        """(table, symbol) pairs a connector carries: from its stats, or its plan while it waits for placement."""
        for added in self.added:
            if connector in added.pending:
                spec = next(c for c in added.plan.connectors if c.id == connector)
                return {(sub.table, sub.symbol) for sub in spec.subscriptions}
        subs = (stats.get(connector) or {}).get("subscriptions") or {}
        return {(t, s) for t, ss in subs.items() for s in ss}

    def retired_connectors(self) -> dict[str, dict[str, Any]]:
        """Connectors stopped at run time (unsubscribed from everything) -> their final stats."""
        return dict(self.retired)

    def _streams_of(self, venue: str) -> list[tuple[str, dict[str, Any]]]:
        """The streams of a venue (or the stream with that id), in id order."""
        by_venue = [(sid, info) for sid, info in sorted(self.streams.items()) if info["venue"] == venue]
        if by_venue:
            return by_venue
        return [(venue, self.streams[venue])] if venue in self.streams else []

    def _first_connection(self, info: dict[str, Any]) -> list[str]:
        """The stream's first connection and every redundant copy of it (still running)."""
        live = [c for c in info["connectors"] if c not in self.retired]
        return [c for c in live if "/c0/" in c] or live[:1]

    @staticmethod
    def _redundancy(info: dict[str, Any]) -> int:
        return sum(1 for c in info["connectors"] if "/c0/" in c) or 1

    async def _instruments(self, venue: str, streams: list[tuple[str, dict[str, Any]]]) -> set[str] | None:
        """The venue's instrument ids (cached), None when unknown (an unknown venue, or the list is unreadable)."""
        from xtrader.venues import VENUES

        name = streams[0][1]["venue"] if streams else venue
        if not streams and name not in VENUES:
            return None  # an unknown venue: check() names it
        cached = self.instruments.get(name)
        if cached is not None and time.monotonic() - cached[0] < INSTRUMENTS_TTL_S:
            return cached[1]
        if streams:
            ws_base, rest_base = streams[0][1].get("ws_base"), streams[0][1].get("rest_base")
        elif self.endpoints and name in self.endpoints:  # the simulator serves it
            ws_base, rest_base = self.endpoints[name]
        else:
            ws_base = rest_base = None  # the official endpoints
        known = await _fetch_instruments(name, ws_base, rest_base)
        self.instruments[name] = (time.monotonic(), known)
        return known

    # -- stopping -------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the driver to stop the capture (it drains and flushes everything)."""
        self.stop_requested = True

    def should_stop(self) -> bool:
        return self.stop_requested


def _max_streams(venue: str) -> int:
    from xtrader.venues import VENUES
    from xtrader.venues import venue as make_venue

    make_venue(venue)
    return VENUES[venue].max_streams_per_connection


async def _fetch_instruments(venue: str, ws_base: str | None, rest_base: str | None) -> set[str] | None:
    import httpx

    from xtrader.venues import venue as make_venue

    v = make_venue(venue, ws_base, rest_base)
    urls = v.instruments_request()
    if not urls:
        return None
    known: set[str] = set()
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            for url in urls:
                response = await client.get(url)
                response.raise_for_status()
                known |= v.parse_instruments(response.content)
    except Exception as exc:
        log.warning("%s: instrument list unavailable (%r); symbols not checked", venue, exc)
        return None
    return known


async def _awaited(ref: Any) -> Any:
    return await ref


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {STATS_TIMEOUT_S:g} s (restarting?)"
    return repr(exc)
