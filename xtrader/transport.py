"""The connector's websocket: websockets' client connection, or the same surface over picows
(`pipeline.ws_transport`), with the frame parsing in C.

websockets parses each frame in Python and hands it over through an asyncio future: on the benchmark feed
(wss, Binance USD-M depth + trades) its `recv()` loop costs 5.3-6.8 µs of CPU a frame, this one over picows
1.2-1.9 µs (`python benchmarks/transport.py`). picows calls back per frame instead, so `PicowsSocket` queues each data
message and `recv()` returns the next one without suspending when one is there.

The surface is the one `Connector` uses, with websockets' own types, so both transports share every line of
the connector: `recv(decode=False)` (bytes), `send(text, text=True)`, `close()`, `transport.abort()`,
`on_ping` (server pings: liveness without data); a closed link raises websockets' `ConnectionClosed` with
the close frames received and sent (a frame above `max_size` is refused with 1009 as websockets does).
Fragmented messages are joined; a continuation without a start is a protocol error (1002).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, get_args

import picows
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event, State

from xtrader.config import Transport

TRANSPORTS: tuple[Transport, ...] = get_args(Transport)

_TEXT, _BINARY = picows.WSMsgType.TEXT, picows.WSMsgType.BINARY
_DATA = (_TEXT, _BINARY)


class WebsocketsSocket(ClientConnection):
    """websockets' client connection, telling the connector about server pings (liveness without data)."""

    on_ping: Callable[[], None] | None = None

    @property
    def close_rcvd(self) -> Close | None:
        """The server's close frame, once received."""
        return self.protocol.close_rcvd

    @property
    def is_closed(self) -> bool:
        """The connection is gone (closed or dropped)."""
        return self.protocol.state is State.CLOSED

    async def recv_many(self, limit: int) -> list[bytes]:
        """The next data message, in a list (`PicowsSocket.recv_many`'s shape; websockets hands out one at a
        time)."""
        return [await self.recv(decode=False)]

    def process_event(self, event: Event) -> None:
        if self.on_ping is not None and isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.on_ping()
        super().process_event(event)


class PicowsSocket(picows.WSListener):
    """One picows client websocket (its own listener), read like a websockets `ClientConnection`.

    Args:
        max_size: the largest message accepted (bytes); a bigger one closes the link with 1009.
        max_queue: messages queued unread before reading from the socket pauses (TCP backpressure).
        close_timeout: how long `close()` waits for the server's close frame before dropping TCP.
    """

    def __init__(self, max_size: int, max_queue: int, close_timeout: float) -> None:
        self.on_ping: Callable[[], None] | None = None
        self.transport: Any = None  # the asyncio transport under the websocket (`abort()` drops TCP)
        self._ws: Any = None  # picows.WSTransport
        self._messages: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._fragments: list[bytes] | None = None
        self._size = 0  # bytes of the fragments so far
        self._max_size = max_size
        self._high = max(1, max_queue)
        self._low = max(0, max_queue // 4)
        self._paused = False
        self._close_timeout = close_timeout
        self._rcvd: Close | None = None
        self._sent: Close | None = None
        self._closed = False
        self._rcvd_first = False  # the server's close frame came before ours
        self._failing = False  # closing from this side after a bad frame

    # -- the connector's side ------------------------------------------------------------

    async def recv(self, decode: bool = False) -> bytes:
        """The next data message, as bytes (only `decode=False` is supported)."""
        return (await self.recv_many(1))[0]

    async def recv_many(self, limit: int) -> list[bytes]:
        """The queued data messages, up to `limit` of them, oldest first; waits for one when none is queued (the
        connector's reader: one wait and one call for a burst of frames, not one per frame)."""
        messages = self._messages
        while not messages:
            if self._closed:
                raise self._closed_error()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if len(messages) <= limit:
            taken = list(messages)
            messages.clear()
        else:
            popleft = messages.popleft
            taken = [popleft() for _ in range(limit)]
        if self._paused and len(messages) <= self._low:
            self._paused = False
            self.transport.resume_reading()
        return taken

    async def send(self, message: str | bytes, text: bool = True) -> None:
        if self._closed or self._ws.is_close_frame_sent:
            raise self._closed_error()
        data = message.encode() if isinstance(message, str) else message
        self._ws.send(_TEXT if text else _BINARY, data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The close handshake; TCP is dropped when the server does not answer within `close_timeout`."""
        if self._closed:
            return
        if not self._ws.is_close_frame_sent:
            self._sent = Close(code, reason)
            self._ws.send_close(picows.WSCloseCode(code), reason.encode())
        try:
            await asyncio.wait_for(self._ws.wait_disconnected(), self._close_timeout)
        except TimeoutError:
            self._ws.disconnect(graceful=False)
            with contextlib.suppress(Exception):
                await self._ws.wait_disconnected()
        except Exception:  # a local failure picows re-raises here: the link is down either way
            self._ws.disconnect(graceful=False)

    @property
    def close_rcvd(self) -> Close | None:
        """The server's close frame, once received (as websockets' `close_rcvd`)."""
        return self._rcvd

    @property
    def is_closed(self) -> bool:
        """The connection is gone (closed or dropped)."""
        return self._closed

    def _closed_error(self) -> ConnectionClosed:
        both = self._rcvd is not None and self._sent is not None
        return ConnectionClosed(self._rcvd, self._sent, self._rcvd_first if both else None)

    # -- picows' side --------------------------------------------------------------------

    def on_ws_connected(self, transport: Any) -> None:
        self._ws = transport
        self.transport = transport.underlying_transport

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        kind = frame.msg_type
        if (
            (kind is _TEXT or kind is _BINARY)
            and frame.fin
            and frame.payload_size <= self._max_size
            and self._fragments is None
            and not self._failing
        ):  # the hot path: one whole data message
            self._push(frame.get_payload_as_bytes())
        else:
            self._frame(transport, frame, kind)

    def on_ws_disconnected(self, transport: Any) -> None:
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _frame(self, transport: Any, frame: Any, kind: Any) -> None:
        """Every frame but a whole data message within max_size."""
        if self._failing:
            return  # closed from this side: nothing after the offending frame is delivered
        if kind in _DATA:
            if frame.payload_size > self._max_size:
                self._fail(
                    CloseCode.MESSAGE_TOO_BIG, f"over size limit ({frame.payload_size} > {self._max_size} bytes)"
                )
            elif self._fragments is not None:
                self._fail(CloseCode.PROTOCOL_ERROR, "a new message before the last one ended")
            elif frame.fin:
                self._push(frame.get_payload_as_bytes())
            else:
                self._fragments = [frame.get_payload_as_bytes()]
                self._size = frame.payload_size
        elif kind is picows.WSMsgType.CONTINUATION:
            if self._fragments is None:
                self._fail(CloseCode.PROTOCOL_ERROR, "a continuation without a message")
                return
            self._size += frame.payload_size
            if self._size > self._max_size:
                self._fail(CloseCode.MESSAGE_TOO_BIG, f"over size limit ({self._size} > {self._max_size} bytes)")
                return
            self._fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._push(data)
        elif kind is picows.WSMsgType.PING:
            if self.on_ping is not None:
                self.on_ping()
            transport.send_pong(frame.get_payload_as_bytes())
        elif kind is picows.WSMsgType.CLOSE:
            code = frame.get_close_code()
            reason = (frame.get_close_message() or b"").decode(errors="replace")
            self._rcvd = Close(int(code) if code is not None else CloseCode.NO_STATUS_RCVD, reason)
            self._rcvd_first = self._sent is None
            if not transport.is_close_frame_sent:
                self._sent = Close(self._rcvd.code, self._rcvd.reason) if code is not None else Close(1000, "")
                transport.send_close(picows.WSCloseCode(self._sent.code))
            transport.disconnect()

    def _push(self, data: bytes) -> None:
        messages = self._messages
        messages.append(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self._paused and len(messages) >= self._high:
            self._paused = True
            self.transport.pause_reading()

    def _fail(self, code: CloseCode, reason: str) -> None:
        """Close the link from this side (protocol error, message too big); nothing more is read."""
        self._failing = True
        self._fragments = None
        ws = self._ws
        if ws is None:
            return
        if not ws.is_close_frame_sent:
            self._sent = Close(code, reason)
            ws.send_close(picows.WSCloseCode(int(code)), reason.encode())
        ws.disconnect()


def _as_websockets(exc: Exception) -> Exception:
    """picows' handshake errors as websockets' (what `xtrader.retry.classify` and the events know): a refused
    upgrade keeps its HTTP status and headers (429, 503 maintenance, 418 ban)."""
    if isinstance(exc, picows.WSInvalidURL):
        return InvalidURI(str(exc), str(exc))
    response = getattr(exc, "response", None)
    if isinstance(exc, picows.WSHandshakeError) and response is not None and response.status != 101:
        headers = Headers()
        for name, value in (response.headers or {}).items():
            headers[name] = value
        status = int(response.status)
        phrase = str(getattr(response.status, "phrase", "") or "")
        return InvalidStatus(Response(status, phrase, headers, bytes(response.body or b"")))
    return InvalidHandshake(str(exc))


Socket = WebsocketsSocket | PicowsSocket


async def open_socket(
    transport: Transport,
    url: str,
    *,
    ssl_context: ssl.SSLContext | None,
    open_timeout: float,
    close_timeout: float,
    max_size: int,
    max_queue: int,
    ping_interval: float | None,
    user_agent: str,
) -> Socket:
    """A client websocket over `transport`, with the same options either way (no compression, no proxy); the
    whole handshake within `open_timeout`."""
    if transport == "picows":
        socket = PicowsSocket(max_size, max_queue, close_timeout)  # its own listener: it sets its transports
        try:
            ws, listener = await asyncio.wait_for(
                picows.ws_connect(
                    lambda: socket,
                    url,
                    ssl_context=ssl_context,
                    websocket_handshake_timeout=open_timeout,
                    enable_auto_ping=ping_interval is not None,
                    auto_ping_idle_timeout=ping_interval or 10.0,
                    auto_ping_reply_timeout=20.0,  # websockets' default ping_timeout
                    enable_auto_pong=False,  # `_frame` answers, and tells `on_ping`
                    # `on_ws_frame` refuses a message beyond max_size with 1009, as websockets does; picows' own
                    # limit (a parser error that still delivers the frame) only bounds what one frame may buffer
                    max_frame_size=max(4 * max_size, 1 << 20),
                    extra_headers={"User-Agent": user_agent},
                ),
                open_timeout,
            )
        except picows.WSError as exc:
            raise _as_websockets(exc) from exc
        if listener is None:  # picows returns no listener when the peer hung up during the handshake
            ws.disconnect(graceful=False)
            raise InvalidHandshake(f"{url}: the server closed the connection during the websocket handshake")
        return socket
    websocket = await connect(
        url,
        ssl=ssl_context,
        compression=None,
        proxy=None,
        create_connection=WebsocketsSocket,
        user_agent_header=user_agent,
        open_timeout=open_timeout,
        close_timeout=close_timeout,
        max_size=max_size,
        max_queue=max_queue,
        ping_interval=ping_interval,
    )
    assert isinstance(websocket, WebsocketsSocket)
    return websocket
