"""A Binance websocket connection: live SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / *_PROPERTY.

Acks are ``{"result":null,"id":..}``; errors ``{"error":{"code":N,"msg":..},"id":..}`` with codes
0 unknown property, 1 bad value type, 2 invalid request, 3 invalid JSON (EXCHANGES.md 1.2).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from .connection import Connection
from .faults import Faults
from .truth import Frame

if TYPE_CHECKING:
    from .binance import BinanceSpot

MAX_STREAMS = 1024
_ID_TEXT = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


class BinanceConnection(Connection):
    """A client websocket: its subscriptions, combined flag and (futures) route."""

    venue: BinanceSpot

    def __init__(
        self, venue: BinanceSpot, path: str, faults: Faults, *, route: str | None, combined: bool, streams: list[str]
    ) -> None:
        super().__init__(venue, path, faults)
        self.route = route
        self.combined = combined
        self.streams: dict[str, None] = {}
        self._initial = streams

    def on_open(self) -> None:
        self._add(self._initial)

    def on_close(self) -> None:
        for stream in self.streams:
            self.venue.unsubscribe(self, stream)
        self.streams.clear()
        self.venue.connections.discard(self)

    def render(self, stream: str, frame: Frame) -> bytes:
        if self.combined:
            return b'{"stream":"' + stream.encode() + b'","data":' + frame.data + b"}"
        return frame.data

    def _add(self, streams: list[str]) -> None:
        for stream in streams:
            self.streams[stream] = None
            # A stream on a route that does not serve its tier is kept but stays silent,
            # with no error: that is the real USD-M routing pitfall.
            if self.venue.serves(self.route, stream):
                self.venue.subscribe(self, stream)

    async def on_text(self, text: str) -> None:
        reply = self._handle(text)
        await self.send_control(orjson.dumps(reply))

    def _handle(self, text: str) -> dict[str, Any]:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return _error(3, f"Invalid JSON: {exc}", None)
        if not isinstance(msg, dict):
            return _error(2, "Invalid request: expected a JSON object", None)
        if "id" not in msg:
            return _error(2, "Invalid request: missing field `id`", None)
        rid = msg["id"]
        if not _valid_id(rid):
            return _error(
                2, "Invalid request: request ID must be an integer, a string of at most 36 alphanumerics, or null", None
            )
        method = msg.get("method")
        if method is None:
            return _error(2, "Invalid request: missing field `method`", rid)
        if method not in _METHODS:
            return _error(2, f"Invalid request: unknown method {method!r}", rid)
        params = msg.get("params", [])
        if not isinstance(params, list):
            return _error(2, "Invalid request: `params` must be an array", rid)
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(self.streams), "id": rid}
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return self._property(method, params, rid)
        if not all(isinstance(p, str) for p in params):
            return _error(1, "Invalid value type: expected a stream name string", rid)
        bad = [p for p in params if self.venue.classify(p) is None]
        if bad:
            return _error(2, f"Invalid request: invalid stream name {bad[0]!r}", rid)
        if method == "SUBSCRIBE":
            if len(set(self.streams) | set(params)) > MAX_STREAMS:
                return _error(2, f"Invalid request: too many streams (max {MAX_STREAMS})", rid)
            self._add(params)
        else:
            for stream in params:
                if self.streams.pop(stream, 0) is None:
                    self.venue.unsubscribe(self, stream)
        return {"result": None, "id": rid}

    def _property(self, method: str, params: list[Any], rid: Any) -> dict[str, Any]:
        if not params or params[0] != "combined":
            return _error(0, "Unknown property", rid)
        if method == "GET_PROPERTY":
            return {"result": self.combined, "id": rid}
        if len(params) != 2 or not isinstance(params[1], bool):
            return _error(1, "Invalid value type: expected Boolean", rid)
        self.combined = params[1]
        return {"result": None, "id": rid}


def _error(code: int, msg: str, rid: Any) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": rid}


def _valid_id(rid: Any) -> bool:
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return -(2**63) <= rid < 2**63
    return isinstance(rid, str) and _ID_TEXT.match(rid) is not None
