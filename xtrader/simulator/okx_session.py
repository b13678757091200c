"""An OKX v5 websocket connection: subscribe / unsubscribe ops, text ping, the 30 s idle rule.

Written from docs/EXCHANGES.md 3.1, 3.2 and 7::

    <- {"id":"1512","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}
    -> {"id":"1512","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}
    -> {"id":"1512","event":"error","code":"60012","msg":"Invalid request: ...","connId":"a4d3ae55"}

One event per arg. Codes: 60012 invalid request, 60013 invalid args, 60014 too frequent,
60018 wrong URL or channel, 64001 channel moved to ``/business``, 64003 channel not available
to this (anonymous) user, 64004 ``books-l2-tbt`` together with another deep book of the same
instrument. Subscribing again to a channel already held is acked again but streams once
(clients send cumulative requests). The text ``ping`` gets the text ``pong``; websocket ping
frames get pong frames (websockets answers them). The server closes with 4004 when a connection
has had no subscription, or no push at all, for 30 s.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson
from websockets.frames import Opcode

from .connection import Connection
from .faults import Faults

if TYPE_CHECKING:
    from .okx import Okx

PUBLIC_PATH, BUSINESS_PATH = "/ws/v5/public", "/ws/v5/business"
#: public channels with data, in OKX's per-instrument push order (3.4)
STREAMED = ("bbo-tbt", "books", "books5", "trades", "tickers")
#: need a logged-in VIP account: this simulator has no accounts, so always 64003
LOGIN_BOOKS = ("books-l2-tbt", "books50-l2-tbt")
DEEP_BOOKS = ("books", "books-l2-tbt", "books50-l2-tbt")
PUBLIC_SILENT = ("index-tickers",)  # accepted, nothing to push for generated spot markets
BUSINESS_STREAMED = ("trades-all",)
_BUSINESS_SILENT = re.compile(
    r"^(candle|mark-price-candle|index-candle)(3M|1M|1W|1D|2D|3D|5D|12H|6H|4H|2H|1H|30m|15m|5m|3m|1m|1s)(utc)?$"
)
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
MAX_ARGS_BYTES = 64 * 1024
OPS_PER_HOUR = 480
_MOVED = (
    "This channel has been migrated to the '/business' URL. Please subscribe using the new URL. More details can "
    "refer to: https://www.okx.com/help-center/changes-to-v5-api-websocket-subscription-parameter-and-url"
)


def is_business(channel: str) -> bool:
    return channel in BUSINESS_STREAMED or _BUSINESS_SILENT.match(channel) is not None


class OkxConnection(Connection):
    """A client websocket on ``/ws/v5/public`` or ``/ws/v5/business``."""

    venue: Okx

    def __init__(self, venue: Okx, path: str, faults: Faults, *, business: bool, conn_ref: str) -> None:
        super().__init__(venue, path, faults)
        self.business = business
        self.conn_ref = conn_ref  # OKX's connId
        self.held: dict[tuple[str, str], None] = {}  # (channel, instId), in subscription order
        self._ops: deque[float] = deque()
        self._pings = 0  # websocket ping frames answered (activity for the idle rule)
        self._bare_since: float | None = None  # no subscription since then

    # -- lifecycle -----------------------------------------------------------------

    def on_open(self) -> None:
        loop = asyncio.get_running_loop()
        self._bare_since = loop.time()
        timeout = self.venue.idle_timeout_s
        if timeout > 0:
            self._tasks.append(loop.create_task(self._idle_watch(timeout)))

    def on_close(self) -> None:
        for channel, inst in self.held:
            self.venue.unsubscribe(self, f"{channel}:{inst}")
        self.held.clear()
        self.venue.connections.discard(self)

    def on_inbound(self, opcode: Opcode) -> None:
        super().on_inbound(opcode)
        if opcode is Opcode.PING and not self.faults.no_pong:
            self._pings += 1

    async def _idle_watch(self, timeout: float) -> None:
        """Close 4004 after `timeout` with no subscription, or with nothing pushed (acks and pongs count)."""
        loop = asyncio.get_running_loop()
        seen, active_at = 0, loop.time()
        while self.closing is None:
            await asyncio.sleep(min(1.0, timeout / 5))
            now = loop.time()
            count = self.stats.messages + self.stats.control + self._pings
            if count != seen:
                seen, active_at = count, now
            bare = self._bare_since is not None and now - self._bare_since >= timeout
            if bare or now - active_at >= timeout:
                self.kill(f"no {'subscription' if bare else 'data push'} for {timeout:g} s", 4004)
                return

    # -- requests --------------------------------------------------------------------

    async def on_text(self, text: str) -> None:
        if text == "ping":  # 3.2: not JSON
            if not self.faults.no_pong:
                await self.send_control(b"pong")
            return
        for reply, start in self._handle(text):
            await self.send_control(orjson.dumps(reply))
            if start is not None:
                # After the ack, synchronously with the first push: no update can slip between.
                self.venue.attach(self, *start)

    def _handle(self, text: str) -> list[tuple[dict[str, Any], tuple[str, str] | None]]:
        """The replies to one request, each with the subscription to start once it is sent."""
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [(self._error("60012", f"Invalid request: {text[:200]}", None), None)]
        if not isinstance(msg, dict):
            return [(self._error("60012", f"Invalid request: {text[:200]}", None), None)]
        rid = msg.get("id")
        if rid is not None and not (isinstance(rid, str) and _ID.match(rid)):
            return [(self._error("60012", "Invalid request: id must be 1 to 32 alphanumeric characters", None), None)]
        op = msg.get("op")
        if op == "login":
            return [(self._error("60009", "Login failed.", rid), None)]  # no accounts here
        if op not in ("subscribe", "unsubscribe"):
            return [(self._error("60012", f"Invalid request: {text[:200]}", rid), None)]
        args = msg.get("args")
        if not isinstance(args, list) or not args:
            return [(self._error("60013", "Invalid args", rid), None)]
        if len(orjson.dumps(args)) > MAX_ARGS_BYTES:
            return [(self._error("60013", "Invalid args: the args of a request are limited to 64 KB", rid), None)]
        if not self._within_op_budget():
            return [(self._error("60014", "Requests too frequent.", rid), None)]
        requested = {(a.get("channel"), a.get("instId")) for a in args if isinstance(a, dict)}
        out: list[tuple[dict[str, Any], tuple[str, str] | None]] = []
        for arg in args:
            problem = self._check(op, arg, requested)
            if problem is not None:
                out.append((self._error(*problem, rid), None))
                continue
            key = (arg["channel"], arg["instId"])
            ack: dict[str, Any] = {"id": rid} if rid is not None else {}
            ack.update(event=op, arg={"channel": key[0], "instId": key[1]}, connId=self.conn_ref)
            start = None
            if op == "subscribe":
                if key not in self.held:  # a repeat is acked again but streams once
                    self.held[key] = None
                    self._bare_since = None
                    start = key
            elif self.held.pop(key, 0) is None:
                self.venue.unsubscribe(self, f"{key[0]}:{key[1]}")
                if not self.held:
                    self._bare_since = asyncio.get_running_loop().time()
            out.append((ack, start))
        return out

    def _check(self, op: str, arg: Any, requested: set[tuple[Any, Any]]) -> tuple[str, str] | None:
        """(code, msg) when OKX would refuse this arg, else None."""
        if not isinstance(arg, dict) or not isinstance(arg.get("channel"), str):
            return ("60013", f"Invalid args: {orjson.dumps(arg).decode()[:200]}")
        channel, inst = arg["channel"], arg.get("instId")
        if inst is not None and not isinstance(inst, str):
            return ("60013", f"Invalid args: {orjson.dumps(arg).decode()[:200]}")
        business = is_business(channel)
        if business and not self.business:
            return ("64001", _MOVED)
        known = business or channel in STREAMED + LOGIN_BOOKS + PUBLIC_SILENT
        if not known or (self.business and not business) or inst not in self.venue.markets:
            return (
                "60018",
                f"Wrong URL or channel:{channel},instId:{inst} doesn't exist. Please use the correct URL, channel "
                "and parameters referring to API document.",
            )
        if op == "subscribe" and channel in DEEP_BOOKS:
            others = {(c, inst) for c in DEEP_BOOKS if c != channel}
            if channel == "books-l2-tbt" and others & (set(self.held) | requested):
                return ("64004", f"You can't subscribe to books-l2-tbt and books or books50-l2-tbt of {inst}.")
            if channel in LOGIN_BOOKS:
                return ("64003", "Your trading fee tier doesn't meet the requirement to access this channel")
        return None

    def _within_op_budget(self) -> bool:
        now = asyncio.get_running_loop().time()
        ops = self._ops
        while ops and ops[0] <= now - 3600.0:
            ops.popleft()
        if len(ops) >= OPS_PER_HOUR:
            return False
        ops.append(now)
        return True

    def _error(self, code: str, text: str, rid: Any) -> dict[str, Any]:
        reply: dict[str, Any] = {"id": rid} if rid is not None else {}
        reply.update(event="error", code=code, msg=text, connId=self.conn_ref)
        return reply
