"""Plain Binance clients for the simulator tests, written from EXCHANGES.md (not xtrader's connector)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode


def client(url: str, ca_file: str | None = None, **kwargs: Any) -> connect:
    """A websockets client with no keepalive of its own (its pings would count as messages).

    An unbounded receive queue: a test that stops reading must still see the close frame
    behind the data already in flight.
    """
    ctx = ssl.create_default_context(cafile=ca_file) if url.startswith("wss") else None
    kwargs.setdefault("max_queue", None)
    return connect(url, ping_interval=None, compression=None, ssl=ctx, open_timeout=5, close_timeout=2, **kwargs)


async def recv_json(ws: ClientConnection, timeout: float = 2.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def collect(ws: ClientConnection, seconds: float) -> list[Any]:
    """Every message received for `seconds`, or until the connection closes (raw text)."""
    out: list[Any] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            out.append(await asyncio.wait_for(ws.recv(), left))
        except (TimeoutError, ConnectionClosed):
            break
    return out


async def take(ws: ClientConnection, count: int, timeout: float = 5.0) -> list[Any]:
    """The next `count` messages (fewer if the connection closes or `timeout` passes)."""
    out: list[Any] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len(out) < count and (left := end - loop.time()) > 0:
        try:
            out.append(await asyncio.wait_for(ws.recv(), left))
        except (TimeoutError, ConnectionClosed):
            break
    return out


async def reply_to(ws: ClientConnection, request: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    """Send a control request and return the first message carrying an ``id`` (skipping data)."""
    await ws.send(json.dumps(request))
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), end - loop.time()))
        if "id" in msg:
            return msg  # type: ignore[no-any-return]


def watch_pings(ws: ClientConnection, swallow: bool) -> list[bytes]:
    """Record the server's ping payloads; with `swallow`, never answer them."""
    seen: list[bytes] = []
    protocol = ws.protocol
    original = protocol.recv_frame

    def recv_frame(frame: Frame) -> None:
        if frame.opcode is Opcode.PING:
            seen.append(bytes(frame.data))
            if swallow:
                protocol.events.append(frame)
                return
        original(frame)

    protocol.recv_frame = recv_frame  # type: ignore[method-assign]
    return seen


def unwrap(text: str | bytes) -> dict[str, Any]:
    """The event of a raw or combined-stream message."""
    msg = json.loads(text)
    return msg["data"] if "stream" in msg and "data" in msg else msg  # type: ignore[no-any-return]


class LocalBook:
    """The documented local order book: REST snapshot + buffered diffs (EXCHANGES.md 1.6 / 2.5)."""

    def __init__(self, futures: bool) -> None:
        self.futures = futures
        self.bids: dict[Decimal, str] = {}
        self.asks: dict[Decimal, str] = {}
        self.book_id: int | None = None
        self.prev_u: int | None = None
        self.buffer: list[dict[str, Any]] = []
        self.gaps = 0
        self.applied = 0

    def load(self, snapshot: dict[str, Any]) -> None:
        self.bids = {Decimal(p): q for p, q in snapshot["bids"]}
        self.asks = {Decimal(p): q for p, q in snapshot["asks"]}
        self.book_id = snapshot["lastUpdateId"]
        pending, self.buffer = self.buffer, []
        for event in pending:
            self.on_event(event)

    def on_event(self, e: dict[str, Any]) -> None:
        if self.book_id is None:
            self.buffer.append(e)
            return
        if self.futures:
            # 2.5: drop u < lastUpdateId; first must bridge U <= id <= u; then pu == prev u.
            if e["u"] < self.book_id and self.prev_u is None:
                return
            if self.prev_u is None:
                if not e["U"] <= self.book_id <= e["u"]:
                    self.gaps += 1
                    return
            elif e["pu"] != self.prev_u:
                self.gaps += 1
                return
            self.prev_u = e["u"]
        else:
            # 1.6 step 5: u <= book_id ignore; U > book_id + 1 is a gap.
            if e["u"] <= self.book_id:
                return
            if e["U"] > self.book_id + 1:
                self.gaps += 1
                return
        for side, levels in ((self.bids, e["b"]), (self.asks, e["a"])):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = q
        self.book_id = e["u"]
        self.applied += 1

    def top(self, depth: int) -> dict[str, list[list[str]]]:
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return {"bids": [[_plain(p), q] for p, q in bids], "asks": [[_plain(p), q] for p, q in asks]}


def _plain(price: Decimal) -> str:
    return format(price, "f")


def same_levels(ours: list[list[str]], theirs: list[list[str]]) -> bool:
    """Compare levels numerically (the book keys prices as Decimal)."""
    return [(Decimal(p), Decimal(q)) for p, q in ours] == [(Decimal(p), Decimal(q)) for p, q in theirs]


async def rest_get(url: str, ca_file: str | None = None, timeout: float = 5.0) -> httpx.Response:
    verify: Any = ssl.create_default_context(cafile=ca_file) if url.startswith("https") else True
    async with httpx.AsyncClient(verify=verify, timeout=timeout) as http:
        return await http.get(url)


Predicate = Callable[[dict[str, Any]], bool]
