"""Replay a capture file (exchange-captures/README.md record format) as a live venue.

Each websocket client gets the frames of the recorded connection whose URL matches its own
(path and query; when the venue recorded only one connection, any path gets it), byte for
byte and in order, paced by the recorded ``ts`` divided by `speed` (``None``: as fast as
possible). A recorded ``send`` (the client's subscribe) holds the replay until the client has
sent that many messages, so acks never precede requests. REST GETs get the recorded body of the
best-matching request: same path and query, else same path and same symbol, else same path.
Faults apply to replayed frames as to generated ones.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from .connection import Connection
from .faults import Faults
from .truth import Frame
from .venue import HttpReply, Venue

SEND_WAIT_S = 5.0  # how long a recorded client request waits for the live client's


@dataclass
class RecordedConnection:
    """One recorded websocket: its target and its (ts, dir, msg) records in order."""

    target: str
    connect_ts: float | None = None
    records: list[tuple[float, str, str]] = field(default_factory=list)


@dataclass
class Recording:
    """Everything recorded for one venue."""

    venue: str
    connections: dict[str, RecordedConnection] = field(default_factory=dict)
    rest: dict[str, list[tuple[dict[str, str], bytes]]] = field(default_factory=lambda: defaultdict(list))


def load(path: str | Path, venue_of: dict[str, str]) -> dict[str, Recording]:
    """Read a capture file.

    Args:
        venue_of: capture ``conn`` prefix (``BINANCE``) -> simulator venue name.

    Raises:
        ValueError: the file names a venue the simulator does not know.
    """
    out: dict[str, Recording] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            r = json.loads(line)
            prefix = r["conn"].split(".", 1)[0]
            venue = venue_of.get(prefix)
            if venue is None:
                raise ValueError(f"{path}: capture connection {r['conn']!r} is not a simulated venue")
            rec = out.setdefault(venue, Recording(venue))
            url = urlsplit(r["url"])
            if r["kind"] == "http":
                if r["dir"] == "recv":
                    rec.rest[url.path].append((dict(parse_qsl(url.query)), r["msg"].encode("utf-8")))
                continue
            target = url.path + ("?" + url.query if url.query else "")
            conn = rec.connections.setdefault(r["conn"], RecordedConnection(target))
            if r["dir"] == "connect":
                conn.connect_ts = r["ts"]
            else:
                conn.records.append((r["ts"], r["dir"], r["msg"]))
    return out


class Replayer:
    """Serves one venue's recording."""

    def __init__(self, venue: Venue, recording: Recording, speed: float | None) -> None:
        self.venue = venue
        self.recording = recording
        self.speed = speed if speed and speed > 0 else None
        self._served: dict[tuple[str, str], int] = defaultdict(int)

    def rest(self, path: str, query: dict[str, str]) -> HttpReply:
        candidates = self.recording.rest.get(path)
        if not candidates:
            return HttpReply.json(404, {"code": -1, "msg": f"nothing recorded for {path!r}"})
        exact = [body for q, body in candidates if q == query]
        if not exact:
            keys = ("symbol", "instId", "instType", "currency")
            exact = [body for q, body in candidates if any(k in query and q.get(k) == query[k] for k in keys)]
        bodies = exact or [candidates[0][1]]
        key = (path, json.dumps(query, sort_keys=True))
        index = min(self._served[key], len(bodies) - 1)
        self._served[key] += 1
        self.venue.truth.rest["replay:" + path] += 1
        return HttpReply(200, bodies[index], {"Content-Type": "application/json"})

    def open_ws(self, path: str, query: str, faults: Faults) -> Connection | HttpReply:
        target = path + ("?" + query if query else "")
        conns = list(self.recording.connections.values())
        match = [c for c in conns if c.target == target] or (conns if len(conns) == 1 else [])
        if not match:
            return HttpReply.json(404, {"code": -1, "msg": f"no recorded connection for {target!r}"})
        conn = ReplayConnection(self.venue, target, faults, match[0], self.speed)
        self.venue.connections.add(conn)
        return conn


class ReplayConnection(Connection):
    """Sends one recorded connection's frames."""

    def __init__(
        self, venue: Venue, path: str, faults: Faults, recorded: RecordedConnection, speed: float | None
    ) -> None:
        super().__init__(venue, path, faults)
        self.recorded = recorded
        self.speed = speed
        self.received = 0
        self._received_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def on_open(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._replay())

    def on_close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.venue.connections.discard(self)

    async def on_text(self, text: str) -> None:
        self.received += 1
        self._received_event.set()

    async def _replay(self) -> None:
        loop = asyncio.get_running_loop()
        records = self.recorded.records
        origin_ts = (
            self.recorded.connect_ts if self.recorded.connect_ts is not None else (records[0][0] if records else 0.0)
        )
        start = loop.time()
        sends = 0
        for ts, direction, msg in records:
            if self.speed is not None:
                delay = (ts - origin_ts) / self.speed - (loop.time() - start)
                if delay > 0:
                    await asyncio.sleep(delay)
            if direction == "send":
                sends += 1
                await self._wait_for_client(sends)
                continue
            self.enqueue(Frame(msg.encode("utf-8"), "replay", None, "", rows=0), b"")
        self.stats.notes["replay_done"] = True

    async def _wait_for_client(self, count: int) -> None:
        deadline = asyncio.get_running_loop().time() + SEND_WAIT_S
        while self.received < count:
            self._received_event.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._received_event.wait(), remaining)
            except TimeoutError:
                return
