"""The server side of one websocket: outbound queue, faults, keepalive, limits and counting.

Venue modules subclass `Connection` and implement `on_text`; everything a venue shares
(server pings and pong deadline, inbound rate limit, lifetime, fault switches, counting what
really went on the wire) lives here.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from .faults import NO_FAULTS, FaultDice, Faults
from .truth import ConnectionStats, Frame

if TYPE_CHECKING:
    from .venue import Venue

MAX_QUEUE = 200_000  # frames; a client this far behind is cut off, as a real venue would
WRITE_BATCH = 512  # frames per socket write
_ids = itertools.count(1)


class SimServerConnection(ServerConnection):
    """websockets' connection, plus a hook that sees every inbound frame (pings included)."""

    sim: Connection | None = None

    def process_event(self, event: object) -> None:
        if self.sim is not None and isinstance(event, WsFrame):
            self.sim.on_inbound(event.opcode)
        super().process_event(event)  # type: ignore[arg-type]


class Connection:
    """One client connection to a venue.

    Args:
        venue: the venue serving it.
        path: the request target (for stats).
        faults: the effective fault switches of this connection.
    """

    def __init__(self, venue: Venue, path: str, faults: Faults) -> None:
        self.venue = venue
        self.conn_id = next(_ids)
        self.faults = faults
        self.dice = FaultDice(faults, venue.seed * 1_000_003 + self.conn_id)
        self.stats = ConnectionStats(self.conn_id, path, faults.as_spec())
        self.queue: deque[tuple[Frame, bytes]] = deque()
        self.max_queue = venue.options.max_queue or MAX_QUEUE  # frames queued before the client is cut off
        self.wake = asyncio.Event()
        self.ws: SimServerConnection | None = None
        self.closing: str | None = None
        self.stalled = False
        self.last_pong = 0.0
        self._inbound: deque[float] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._fault_timers: list[asyncio.TimerHandle] = []  # the faults' own (cancelled by `clear_faults`)
        self._held: tuple[Frame, bytes] | None = None  # fault reorder_rate
        self._out: list[bytes] = []  # the current batch's websocket frames, written at its end

    # -- venue hooks -------------------------------------------------------------

    async def on_text(self, text: str) -> None:
        """Handle one message from the client (a venue's control protocol)."""

    def on_open(self) -> None:
        """Called once the websocket is open, before any frame is sent."""

    def on_close(self) -> None:
        """Called once when the connection is gone (unsubscribe from the venue here)."""

    def render(self, stream: str, frame: Frame) -> bytes:
        """The bytes this connection gets for `frame` on `stream` (e.g. a stream wrapper)."""
        return frame.data

    # -- outbound ----------------------------------------------------------------

    def enqueue(self, frame: Frame, data: bytes) -> None:
        """Queue a market frame; never blocks the generator."""
        if self.stalled or self.closing is not None:
            return
        if len(self.queue) >= self.max_queue:
            self.kill("client too slow: send queue full", 1008)
            return
        self.queue.append((frame, data))
        self.wake.set()

    def inject(self, frames: Sequence[bytes]) -> None:
        """Queue raw text frames after the market frames already queued (a test hook for hostile input).

        The bytes go out as they are, in text frames: invalid UTF-8, broken or deeply nested JSON,
        or a frame larger than the client accepts. Counted under `faults_applied["injected"]`.
        """
        if self.closing is not None:
            return
        for data in frames:
            self.queue.append((Frame(data, "injected", None, "", rows=0), data))
        self.wake.set()

    async def send_control(self, data: bytes) -> None:
        """Send an ack, error or notice (never subject to data faults)."""
        if self.ws is None:
            return
        try:
            await self.ws.send(data, text=True)
        except ConnectionClosed:
            return
        self.stats.control += 1

    def kill(self, reason: str, code: int = 1000) -> None:
        """Disconnect (once): with a close frame, or dropping TCP if ``close_without_frame``."""
        if self.closing is not None or self.ws is None:
            return
        self.closing = reason
        self.stats.close_reason = reason
        self.queue.clear()
        self.wake.set()
        if self.faults.close_without_frame:
            # After the current batch reaches the transport: abort() discards unsent bytes.
            asyncio.get_running_loop().call_soon(self.ws.transport.abort)
        else:
            asyncio.get_running_loop().create_task(self.ws.close(code, reason[:120]))

    async def shutdown(self, grace_s: float = 0.05) -> None:
        """The venue's shutdown notice (if it has one), then close."""
        notice = self.venue.shutdown_notice(self)
        if notice is not None:
            await self.send_control(notice)
            await asyncio.sleep(grace_s)
        self.kill("server shutdown", 1001)

    def clear_faults(self) -> None:
        """Behave like the real venue from now on: no fault switch, no fault timer still armed."""
        self.faults = NO_FAULTS
        for timer in self._fault_timers:
            timer.cancel()
        self._fault_timers.clear()

    # -- running -----------------------------------------------------------------

    async def run(self, ws: SimServerConnection) -> None:
        """Serve the connection until it closes."""
        self.ws = ws
        ws.sim = self
        loop = asyncio.get_running_loop()
        f = self.faults
        if f.no_pong:
            _swallow(ws, Opcode.PING, keep_event=True)
        if f.no_close_reply:
            _swallow(ws, Opcode.CLOSE, keep_event=False)
        self.on_open()
        keep = self.venue.keepalive
        self._tasks.append(loop.create_task(self._writer()))
        if keep.ping_interval_s:
            self._tasks.append(loop.create_task(self._keepalive(keep.ping_interval_s, keep.pong_timeout_s)))
        for task in self._tasks:
            task.add_done_callback(self._task_done)
        for delay, action, fault in (
            (keep.max_lifetime_s, lambda: self.kill("maximum connection lifetime", 1000), False),
            (f.disconnect_after_s, lambda: self.kill("fault disconnect_after_s", 1000), True),
            (f.stall_after_s, self._stall, True),
            (f.shutdown_after_s, lambda: self._tasks.append(loop.create_task(self.shutdown())), True),
        ):
            if delay:
                self._timers.append(loop.call_later(delay, action))
                if fault:
                    self._fault_timers.append(self._timers[-1])
        try:
            async for message in ws:
                text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
                await self.on_text(text)
        except ConnectionClosed:
            pass
        finally:
            for timer in self._timers:
                timer.cancel()
            for task in self._tasks:
                task.cancel()
            self.stats.closed_at = time.time()
            if self.stats.close_reason is None:
                self.stats.close_reason = "closed by client" if ws.close_code else "connection lost"
            self.on_close()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        # A bug in a writer must not leave a silent, half-dead connection behind.
        if not task.cancelled() and task.exception() is not None:
            self.kill(f"simulator error: {task.exception()!r}", 1011)

    def on_inbound(self, opcode: Opcode) -> None:
        """Count a client frame against the venue's inbound message limit."""
        limit = self.venue.keepalive.inbound_per_s
        if not limit or opcode is Opcode.CLOSE:
            return
        now = asyncio.get_running_loop().time()
        window = self._inbound
        window.append(now)
        while window[0] <= now - 1.0:
            window.popleft()
        if len(window) > limit:
            self.kill(f"too many incoming messages (>{limit}/s)", 1008)

    def _stall(self) -> None:
        self.stalled = True
        self.queue.clear()
        self.stats.faults_applied["stall"] += 1

    async def _keepalive(self, interval: float, timeout: float | None) -> None:
        assert self.ws is not None
        loop = asyncio.get_running_loop()
        self.last_pong = loop.time()
        next_ping = self.last_pong + interval
        serial = 0
        while self.closing is None:
            now = loop.time()
            if self.stalled:
                self.last_pong = now  # a stalled server pings no one and expects no pong
            elif timeout and now - self.last_pong >= timeout:
                self.kill("no pong within the timeout", 1011)
                return
            if now >= next_ping and not self.stalled:
                serial += 1
                try:
                    waiter = await self.ws.ping(f"{int(loop.time() * 1000)}:{serial}")
                except ConnectionClosed:
                    return
                waiter.add_done_callback(self._pong_received)  # type: ignore[attr-defined]
                next_ping = now + interval
            wake_at = next_ping if not timeout else min(next_ping, self.last_pong + timeout)
            await asyncio.sleep(max(0.0, wake_at - loop.time()))

    def _pong_received(self, waiter: asyncio.Future[float]) -> None:
        if not waiter.cancelled() and waiter.exception() is None:
            self.last_pong = asyncio.get_running_loop().time()

    async def _writer(self) -> None:
        assert self.ws is not None
        ws, queue, wake, out = self.ws, self.queue, self.wake, self._out
        try:
            while self.closing is None:
                if not queue and self._held is None:
                    wake.clear()
                    await wake.wait()
                    continue
                # One socket write per batch, not per frame: websockets' send() flushes and
                # checks flow control on every call, and its per-frame Frame objects cost more
                # than the frame itself. send_context() checks the connection is open, and on
                # exit flushes the protocol's own frames (pongs) and waits for the buffer to drain.
                async with ws.send_context():
                    for _ in range(min(len(queue), WRITE_BATCH)):
                        if self.closing is not None:
                            break
                        self._process(*queue.popleft())
                    if not queue and self._held is not None and self.closing is None:
                        self._write(*self._held)  # nothing came to swap with: send as is
                        self._held = None
                    if out:  # even when closing: these frames are counted as sent
                        ws.transport.write(b"".join(out))
                        out.clear()
        except ConnectionClosed:
            return

    def _process(self, frame: Frame, data: bytes) -> None:
        """Apply the per-frame faults, then write."""
        f, dice = self.faults, self.dice
        if not (f.drop_rate or f.duplicate_rate or f.reorder_rate or f.unknown_rate):
            self._write(frame, data)
            return
        applied = self.stats.faults_applied
        if dice.hit(f.drop_rate):
            applied["drop"] += 1
            return
        if dice.hit(f.unknown_rate):
            applied["unknown"] += 1
            self._write(Frame(self.venue.unknown_message(self), "unknown", None, "", rows=0), b"")
        if self._held is None and dice.hit(f.reorder_rate):
            self._held = (frame, data)  # goes out right after the next frame
            return
        self._write(frame, data)
        if self._held is not None:
            applied["reorder"] += 1
            self._write(*self._held)
            self._held = None
        if dice.hit(f.duplicate_rate):
            applied["duplicate"] += 1
            self._write(frame, data)

    def _write(self, frame: Frame, data: bytes) -> None:
        """Add one text frame to the batch (inside send_context) and count it."""
        assert self.ws is not None
        if self.closing is not None:
            return
        f = self.faults
        if not data:
            data = frame.data
        if frame.kind == "injected":
            self.stats.faults_applied["injected"] += 1
        if f.malformed_rate and self.dice.hit(f.malformed_rate):
            self.stats.faults_applied["malformed"] += 1
            frame = Frame(b"", "malformed", None, "", rows=0)
            data = _truncate(data)
        elif f.bad_checksum_rate and frame.table == "l2" and self.dice.hit(f.bad_checksum_rate):
            corrupted = self.venue.corrupt_checksum(frame, data)
            if corrupted is None:
                self.venue.truth.faults_ignored.add("bad_checksum_rate")
            else:
                self.stats.faults_applied["bad_checksum"] += 1
                data = corrupted
        out = self._out
        out.append(_text_header(len(data)))
        out.append(data)
        self.venue.truth.count_sent(frame, len(data), self.stats)
        if f.disconnect_after_msgs and self.stats.messages >= f.disconnect_after_msgs:
            self.kill("fault disconnect_after_msgs", 1000)
        elif f.close_without_frame and not (f.disconnect_after_msgs or f.disconnect_after_s):
            self.kill("fault close_without_frame")


def _text_header(size: int) -> bytes:
    """The header of a final, unmasked text frame of `size` bytes (RFC 6455 5.2), as websockets
    writes it: servers do not mask, and compression is off, so no extension touches the payload."""
    if size < 126:
        return _SHORT_HEADERS[size]
    if size < 1 << 16:
        return b"\x81\x7e" + size.to_bytes(2, "big")
    return b"\x81\x7f" + size.to_bytes(8, "big")


_SHORT_HEADERS = [bytes((0x81, n)) for n in range(126)]


def _truncate(data: bytes) -> bytes:
    """Cut a JSON message in half, on a UTF-8 character boundary."""
    cut = max(1, len(data) // 2)
    while cut > 1 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut]


def _swallow(ws: ServerConnection, opcode: Opcode, *, keep_event: bool) -> None:
    """Make the protocol leave the client's `opcode` frames unanswered on this one connection (faults
    ``no_pong``: pings, ``no_close_reply``: the close frame, so the connection stays open until the client
    drops TCP).

    websockets answers pings and close frames inside its sans-I/O protocol, before any hook runs, so the only
    way to stay silent is to intercept its frame handler. `keep_event`: the frame is still an event (counted).
    """
    protocol = ws.protocol
    original = protocol.recv_frame

    def recv_frame(frame: WsFrame) -> None:
        if frame.opcode is opcode:
            if keep_event:
                protocol.events.append(frame)
            return
        original(frame)

    protocol.recv_frame = recv_frame  # type: ignore[method-assign]
