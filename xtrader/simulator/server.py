"""The Simulator: real websocket + REST servers on loopback, one plain and one TLS port per venue.

One port serves both protocols: websockets' ``process_request`` answers plain HTTP GETs (REST,
``/_sim/stats``) and lets websocket upgrades through to the venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trustme
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from . import registry
from .connection import Connection, SimServerConnection
from .faults import NO_FAULTS, parse_faults, split_faults
from .replay import Replayer, load
from .venue import HttpReply, HttpRequest, Venue, VenueOptions

STATS_PATH = "/_sim/stats"
WRITE_LIMIT = 2**20  # bytes buffered per socket before a writer waits (websockets' default: 32 KiB)
BOOK_PATH = "/_sim/book"


@dataclass
class _Listener:
    venue: Venue | None
    replayer: Replayer | None


class Simulator:
    """Local exchange simulator; use as ``async with Simulator(...) as sim``.

    Args:
        venues: venue names (see `registry.VENUES`).
        symbols: symbols per venue.
        rate: market steps per second per venue (each step: one book diff on one symbol plus
            the trades and top-of-book change it causes); 0 for a still market.
        seed: same seed, same market (prices, sizes, ids; not wall-clock times).
        faults: a fault SPEC (see faults.py) for every connection and REST request.
        replay: capture file(s) to replay instead of generating, for the venues they hold.
        speed: replay speed factor (1 = real time, 10 = 10x, None = as fast as possible).
        host: interface to bind.
        port: first port to bind (0: ephemeral ports); venues use consecutive ports.
        ping_interval_s, pong_timeout_s, inbound_per_s, max_lifetime_s: override the venues'
            documented keepalive and limits (tests use short ones).
        max_queue: frames a connection may have queued before it is cut off ("client too slow"); None: 200,000.
            A benchmark that lets a slow client fall far behind a pre-generated pool raises it.
        depth: book levels per side.
        venue_options: venue-specific options by venue name, e.g. ``{"okx": {"checksum": True}}``
            (each venue's ``settings_help`` lists its own; unknown names raise ValueError).
        pregenerate: generate and encode this many market steps per generated venue before
            serving, so sending them costs no generation (see README.md; Binance venues only).
    """

    def __init__(
        self,
        venues: Sequence[str] = ("binance", "binance_futures"),
        *,
        symbols: int = 3,
        rate: float = 100.0,
        seed: int = 1,
        faults: str | None = None,
        replay: str | Path | Sequence[str | Path] | None = None,
        speed: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval_s: float | None = None,
        pong_timeout_s: float | None = None,
        inbound_per_s: int | None = None,
        max_lifetime_s: float | None = None,
        depth: int = 200,
        venue_options: Mapping[str, Mapping[str, Any]] | None = None,
        pregenerate: int = 0,
        max_queue: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.fault_spec = faults
        global_faults = parse_faults(faults)
        if max_queue is not None and max_queue < 1:
            raise ValueError(f"max_queue={max_queue}: must be >= 1 (frames a connection may have queued)")
        options = VenueOptions(
            symbols=symbols,
            rate=rate,
            seed=seed,
            faults=global_faults,
            depth=depth,
            ping_interval_s=ping_interval_s,
            pong_timeout_s=pong_timeout_s,
            max_lifetime_s=max_lifetime_s,
            inbound_per_s=inbound_per_s,
            max_queue=max_queue,
        )
        per_venue = dict(venue_options or {})

        def make(name: str) -> Venue:
            return registry.venue_class(name)(replace(options, settings=dict(per_venue.get(name, {}))))

        self.venues: dict[str, Venue] = {}
        for name in venues:
            self.venues[name] = make(name)
        self.replayers: dict[str, Replayer] = {}
        files = [] if replay is None else [replay] if isinstance(replay, (str, Path)) else list(replay)
        for path in files:
            prefixes = {p: n for n in registry.VENUES for p in registry.venue_class(n).capture_names}
            for name, recording in load(path, prefixes).items():
                if name not in self.venues:
                    self.venues[name] = make(name)
                self.replayers[name] = Replayer(self.venues[name], recording, speed)
        stray = sorted(set(per_venue) - set(self.venues))
        if stray:
            raise ValueError(f"venue_options names {stray[0]!r}, which is not simulated here")
        if pregenerate < 0:
            raise ValueError(f"pregenerate={pregenerate}: must be >= 0")
        for name, venue in self.venues.items():
            if name not in self.replayers:
                venue.pregenerate(pregenerate)
        self.urls: dict[str, dict[str, str]] = {}
        self.stats_url = ""
        self.ca_file = ""
        self._servers: list[Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def symbols(self) -> dict[str, list[str]]:
        """Symbols per venue (generated venues; replayed ones serve what was recorded)."""
        return {name: v.symbols for name, v in self.venues.items() if name not in self.replayers}

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Create the CA, bind every listener and start the markets."""
        self._tmpdir = tempfile.TemporaryDirectory(prefix="xtrader-sim-")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost", self.host)
        self.ca_file = os.path.join(self._tmpdir.name, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(tls)
        next_port = self.port
        for name, venue in self.venues.items():
            listener = _Listener(venue, self.replayers.get(name))
            plain = await self._listen(listener, None, next_port)
            next_port = next_port + 1 if next_port else 0
            secure = await self._listen(listener, tls, next_port)
            next_port = next_port + 1 if next_port else 0
            self.urls[name] = {
                "ws": f"ws://{self.host}:{plain}",
                "wss": f"wss://{self.host}:{secure}",
                "rest": f"http://{self.host}:{plain}",
                "rest_tls": f"https://{self.host}:{secure}",
            }
            if name not in self.replayers:
                self._tasks.append(asyncio.create_task(venue.run_market()))
                self._tasks.append(asyncio.create_task(venue.background()))
        stats_port = await self._listen(_Listener(None, None), None, next_port)
        self.stats_url = f"http://{self.host}:{stats_port}{STATS_PATH}"
        faults_for_s = parse_faults(self.fault_spec).faults_for_s
        if faults_for_s:
            self._tasks.append(asyncio.create_task(self._end_faults(faults_for_s)))

    async def _end_faults(self, after_s: float) -> None:
        await asyncio.sleep(after_s)
        self.clear_faults()

    def clear_faults(self) -> None:
        """End every simulator-wide fault now (call in the simulator's loop): each venue and each open
        connection behaves like the real venue from here on; fault timers already armed are cancelled."""
        for venue in self.venues.values():
            venue.faults = NO_FAULTS
            for connection in list(venue.connections):
                connection.clear_faults()

    async def stop(self) -> None:
        """Stop the markets, close every connection and listener."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    async def _listen(self, listener: _Listener, tls: ssl.SSLContext | None, port: int) -> int:
        # serve() is typed for ServerConnection; create_connection makes every one ours.
        async def handler(ws: ServerConnection) -> None:
            assert isinstance(ws, SimServerConnection)
            if ws.sim is not None:
                await ws.sim.run(ws)

        async def process_request(ws: ServerConnection, request: Request) -> Response | None:
            assert isinstance(ws, SimServerConnection)
            return await self._route(listener, ws, request)

        server = await serve(
            handler,
            self.host,
            port,
            ssl=tls,
            process_request=process_request,
            create_connection=SimServerConnection,
            ping_interval=None,
            compression=None,
            max_queue=64,
            write_limit=WRITE_LIMIT,
            server_header="xtrader-simulator",
        )
        self._servers.append(server)
        sock = next(iter(server.sockets))
        return int(sock.getsockname()[1])

    # -- routing ------------------------------------------------------------------------

    async def _route(self, listener: _Listener, ws: SimServerConnection, request: Request) -> Response | None:
        target = urlsplit(request.path)
        if target.path == STATS_PATH:
            return _response(HttpReply.json(200, self.stats()))
        if target.path == BOOK_PATH:
            q = dict(parse_qsl(target.query))
            try:
                return _response(HttpReply.json(200, self.book(q.get("venue", ""), q.get("symbol", ""))))
            except KeyError:
                return _response(HttpReply.json(404, {"msg": "unknown venue or symbol"}))
        venue = listener.venue
        if venue is None:
            return _response(HttpReply.json(404, {"msg": f"the stats port serves {STATS_PATH} and {BOOK_PATH}"}))
        path, query, spec = split_faults(target.path, target.query)
        try:
            faults = parse_faults(spec, venue.faults)
        except ValueError as exc:
            return _response(HttpReply.json(400, {"code": -1, "msg": str(exc)}))
        replayer = listener.replayer
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            if faults.rest_delay_s:
                await asyncio.sleep(faults.rest_delay_s)
            params = dict(parse_qsl(query))
            if replayer is not None:
                return _response(replayer.rest(path, params))
            reply = await venue.rest(HttpRequest(path, params, faults, spec or ""))
            return _response(reply or HttpReply.json(404, {"code": -1, "msg": f"no REST endpoint at {path!r}"}))
        if faults.handshake_delay_s:
            await asyncio.sleep(faults.handshake_delay_s)
        opened = replayer.open_ws(path, query, faults) if replayer else venue.open_ws(path, query, faults)
        if isinstance(opened, HttpReply):
            return _response(opened)
        venue.truth.add_connection(opened.stats)
        ws.sim = opened
        return None

    # -- ground truth ---------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Ground truth as JSON-able dicts (also served at ``GET /_sim/stats``)."""
        venues = {}
        for name, venue in self.venues.items():
            data = venue.truth.to_json()
            data["open_connections"] = len(venue.connections)
            if name not in self.replayers:
                data["books"] = {s: venue.book(s, 10) for s in venue.symbols}
            venues[name] = data
        return {"venues": venues, "urls": self.urls, "faults": self.fault_spec or ""}

    def book(self, venue: str, symbol: str, depth: int = 20) -> dict[str, Any]:
        """The published book of `symbol` on `venue`, top `depth` levels, venue REST shape."""
        return self.venues[venue].book(symbol, depth)

    # -- control ------------------------------------------------------------------------

    def pause(self) -> None:
        """Freeze the markets at a message boundary (every pending step is published)."""
        for venue in self.venues.values():
            venue.paused = True
            venue.flush()

    def resume(self) -> None:
        for venue in self.venues.values():
            venue.paused = False

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every connection's send queue is empty (after `pause`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while any(c.queue for v in self.venues.values() for c in v.connections):
            if loop.time() > deadline:
                raise TimeoutError("send queues did not drain")
            await asyncio.sleep(0.005)

    async def server_shutdown(self, venue: str) -> None:
        """Send the venue's shutdown notice on every connection, then close them."""
        conns = list(self.venues[venue].connections)
        await asyncio.gather(*(c.shutdown() for c in conns))

    def connections(self, venue: str) -> list[Connection]:
        return list(self.venues[venue].connections)

    def inject(self, venue: str, frames: Sequence[bytes]) -> int:
        """Send raw text `frames` (hostile input: any bytes) on every open connection of `venue`, after
        the market frames already queued; the number of connections they went to."""
        connections = [c for c in self.venues[venue].connections if c.ws is not None and c.closing is None]
        for connection in connections:
            connection.inject(frames)
        return len(connections)


def _response(reply: HttpReply) -> Response:
    headers = Headers(reply.headers)
    headers["Content-Length"] = str(len(reply.body))
    headers["Connection"] = "close"
    try:
        reason = HTTPStatus(reply.status).phrase
    except ValueError:
        reason = ""
    return Response(reply.status, reason, headers, reply.body)
