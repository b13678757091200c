"""Both connector transports (`xtrader.transport`: websockets and picows) against a real websockets server on
loopback: the same messages, in order, through fragmentation, backpressure, TLS, pings and every way a link
ends, each ending as websockets' `ConnectionClosed` with the close frames the connector reads."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trustme
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from xtrader.transport import TRANSPORTS, Socket, Transport, open_socket

Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, compression=None, ssl=tls, max_size=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        yield f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/stream"


async def client(
    transport: Transport,
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_size: int = 1 << 20,
    max_queue: int = 1024,
    close_timeout: float = 2.0,
) -> Socket:
    return await open_socket(
        transport,
        url,
        ssl_context=ssl_context,
        open_timeout=5.0,
        close_timeout=close_timeout,
        max_size=max_size,
        max_queue=max_queue,
        ping_interval=None,
        user_agent="xtrader-test",
    )


async def drain(ws: Socket, timeout_s: float = 10.0, burst: int | None = None) -> tuple[list[bytes], ConnectionClosed]:
    """Every message until the link closes, and how it closed. `burst`: read with `recv_many(burst)` (the
    connector's reader), each call giving 1 to `burst` messages; else one `recv` at a time."""
    got: list[bytes] = []
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                if burst is None:
                    got.append(await ws.recv(decode=False))
                else:
                    taken = await ws.recv_many(burst)
                    assert 1 <= len(taken) <= burst
                    got.extend(taken)
            except ConnectionClosed as exc:
                return got, exc


pytestmark = pytest.mark.parametrize("transport", TRANSPORTS)


@pytest.mark.parametrize("burst", [None, 1, 256])
async def test_messages_arrive_in_order_then_the_servers_close(transport: Transport, burst: int | None) -> None:
    sent = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i % 300)) for i in range(5_000)]

    async def handler(ws: ServerConnection) -> None:
        for i, frame in enumerate(sent):
            await ws.send(frame if i % 2 else frame.decode())  # binary and text frames
        await ws.close(CloseCode.GOING_AWAY, "maintenance")

    async with server(handler) as url:
        ws = await client(transport, url)
        got, closed = await drain(ws, burst=burst)
    assert got == sent
    assert closed.rcvd is not None and closed.rcvd.code == CloseCode.GOING_AWAY
    assert closed.rcvd.reason == "maintenance"
    assert closed.sent is not None and closed.sent.code == CloseCode.GOING_AWAY  # the close handshake answered


async def test_a_fragmented_message_arrives_whole(transport: Transport) -> None:
    parts = [b'{"part":1,', b'"part2":"' + b"y" * 70_000 + b'",', b'"end":true}']

    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"first")
        await ws.send(iter(parts))  # one message, three frames
        await ws.send(b"last")
        await ws.close()

    async with server(handler) as url:
        got, _ = await drain(await client(transport, url))
    assert got == [b"first", b"".join(parts), b"last"]


async def test_a_message_beyond_max_size_closes_the_link_with_1009(transport: Transport) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"small")
        await ws.send(b"z" * 200_000)
        await ws.send(b"never read")
        await ws.wait_closed()

    async with server(handler) as url:
        got, closed = await drain(await client(transport, url, max_size=100_000))
    assert got == [b"small"]
    assert closed.sent is not None and closed.sent.code == CloseCode.MESSAGE_TOO_BIG


async def test_a_fragmented_message_beyond_max_size_closes_the_link_with_1009(transport: Transport) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(iter([b"a" * 60_000, b"b" * 60_000]))
        await ws.wait_closed()

    async with server(handler) as url:
        got, closed = await drain(await client(transport, url, max_size=100_000))
    assert got == []
    assert closed.sent is not None and closed.sent.code == CloseCode.MESSAGE_TOO_BIG


@pytest.mark.parametrize("burst", [None, 7])
async def test_a_slow_reader_pauses_the_socket_and_loses_nothing(transport: Transport, burst: int | None) -> None:
    """max_queue bounds what waits unread; the server is held back by TCP, and every message still arrives."""
    sent = [b"%08d" % i + b"." * 8_000 for i in range(4_000)]  # 32 MB: more than the kernel buffers hold
    server_done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        for frame in sent:
            await ws.send(frame)
        server_done.set()
        await ws.close()

    async with server(handler) as url:
        ws = await client(transport, url, max_queue=16)
        got = [await ws.recv(decode=False)]
        await asyncio.sleep(0.5)  # the server writes while nothing is read
        assert not server_done.is_set()  # held back: the client stopped reading from the socket
        rest, _ = await drain(ws, burst=burst)  # and reads again once the queue is drained
    assert got + rest == sent


async def test_tls(transport: Transport, tmp_path: Any) -> None:
    ca = trustme.CA()
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)

    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"over tls")
        await ws.close()

    async with server(handler, tls=server_tls) as url:
        got, _ = await drain(await client(transport, url, ssl_context=client_tls))
    assert got == [b"over tls"]


async def test_sends_reach_the_server_and_server_pings_are_told_and_answered(transport: Transport) -> None:
    received: list[str] = []
    pong = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        received.append(str(await ws.recv()))
        waiter = await ws.ping(b"alive?")
        async with asyncio.timeout(5):
            await waiter  # the client answered the ping
        pong.set()
        await ws.send(b"done")
        await ws.close()

    async with server(handler) as url:
        ws = await client(transport, url)
        pings: list[int] = []
        ws.on_ping = lambda: pings.append(1)
        await ws.send('{"op":"subscribe"}', text=True)
        got, _ = await drain(ws)
    assert received == ['{"op":"subscribe"}']
    assert pong.is_set() and pings == [1]
    assert got == [b"done"]


async def test_abort_ends_the_link_at_once(transport: Transport) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"hello")
        await ws.wait_closed()

    async with server(handler) as url:
        ws = await client(transport, url)
        assert await ws.recv(decode=False) == b"hello"
        started = time.monotonic()
        ws.transport.abort()
        got, closed = await drain(ws)
    assert got == [] and closed.rcvd is None
    assert time.monotonic() - started < 2.0


async def test_close_is_a_handshake(transport: Transport) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with server(handler) as url:
        ws = await client(transport, url)
        await ws.close()
        _, closed = await drain(ws)
    assert closed.sent is not None and closed.sent.code == CloseCode.NORMAL_CLOSURE
    assert closed.rcvd is not None and closed.rcvd.code == CloseCode.NORMAL_CLOSURE
    with pytest.raises(ConnectionClosed):
        await ws.send("late", text=True)


async def test_a_server_that_hangs_up_during_the_handshake_fails_the_open(transport: Transport) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    srv = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(5):
            with pytest.raises(Exception) as raised:
                await client(transport, f"ws://127.0.0.1:{port}/stream")
        assert not isinstance(raised.value, TimeoutError)
    finally:
        srv.close()
