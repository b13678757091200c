"""The machine's limits on the benchmark feed: `limit_recv` (transport) and `limit_parse` (JSON decoding).

`limit_recv` is a bare websocket client in a process of its own: TLS handshake and upgrade by hand, then it
only walks frame headers to count data frames, on the same two USD-M connections xtrader opens (`/public`
for depth, `/market` for trades), one thread each. `limit_parse` is `orjson.loads` over the feed's frames in
memory, looped for the given time.
"""

from __future__ import annotations

import base64
import multiprocessing as mp
import os
import socket
import ssl
import threading
import time
from multiprocessing.connection import Connection as Pipe
from typing import Any
from urllib.parse import urlsplit

from xtrader.bench.cpu import CpuMeter
from xtrader.bench.feed import Feed, streams
from xtrader.bench.report import rates


def limit_parse(data: list[bytes], seconds: float) -> dict[str, Any]:
    """orjson.loads over `data`, looped for `seconds` of wall time, in this process."""
    import orjson

    loads = orjson.loads
    n, wall, cpu = 0, time.perf_counter(), time.process_time()
    end = wall + seconds
    while time.perf_counter() < end or n == 0:
        for frame in data:
            loads(frame)
        n += len(data)
    return rates(n, time.perf_counter() - wall, time.process_time() - cpu)


def urls_by_route(wss_base: str, symbols: list[str]) -> list[str]:
    """The combined-stream URLs of the feed's streams, book streams on /public and trades on /market."""
    names = streams(symbols)
    book = [s for s in names if "@depth" in s]
    rest = [s for s in names if "@depth" not in s]
    return [f"{wss_base}/public/stream?streams={'/'.join(book)}", f"{wss_base}/market/stream?streams={'/'.join(rest)}"]


def open_raw_ws(url: str, ca_file: str) -> tuple[socket.socket, bytes]:
    """A websocket opened by hand (`ws` or `wss` with `ca_file`): the socket and what came after the 101."""
    parts = urlsplit(url)
    sock: socket.socket = socket.create_connection((parts.hostname, parts.port))
    if parts.scheme == "wss":
        sock = ssl.create_default_context(cafile=ca_file).wrap_socket(sock, server_hostname=parts.hostname)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"{url}: closed during the handshake")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"{url}: {head.decode(errors='replace')}")
    return sock, rest


def walk_frames(buf: bytes) -> tuple[int, int, bool, int]:
    """The whole server frames (unmasked) at the start of `buf`: (data frames, their payload bytes, a close
    frame seen, bytes consumed)."""
    frames = size = pos = 0
    closed = False
    n = len(buf)
    while pos + 2 <= n:
        length, at = buf[pos + 1] & 0x7F, pos + 2
        if length == 126:
            length, at = int.from_bytes(buf[pos + 2 : pos + 4]), pos + 4
        elif length == 127:
            length, at = int.from_bytes(buf[pos + 2 : pos + 10]), pos + 10
        if at + length > n:
            break
        opcode = buf[pos] & 0x0F
        if opcode in (1, 2):  # text or binary: data (pings are not)
            frames += 1
            size += length
        elif opcode == 8:
            closed = True
        pos = at + length
    return frames, size, closed, pos


def count_frames(buf: bytes) -> tuple[int, int]:
    """(data frames, bytes consumed) of the whole server frames at the start of `buf` (unmasked frames)."""
    frames, _, _, used = walk_frames(buf)
    return frames, used


def _reader(sock: socket.socket, buf: bytes, counts: list[int], index: int) -> None:
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except OSError:
            return
        if not chunk:
            return
        buf += chunk
        frames, used = count_frames(buf)
        buf = buf[used:]
        counts[index] += frames


def _client(urls: list[str], ca_file: str, pipe: Pipe) -> None:
    """Child process: connect, say ready, then answer each `target N` with the monotonic time N was reached."""
    counts = [0] * len(urls)
    opened = [open_raw_ws(url, ca_file) for url in urls]
    for i, (sock, rest) in enumerate(opened):
        threading.Thread(target=_reader, args=(sock, rest, counts, i), daemon=True).start()
    pipe.send("ready")
    while True:
        command = pipe.recv()
        if command is None:
            break
        while sum(counts) < command:
            time.sleep(0.0005)
        pipe.send(time.monotonic())
    for sock, _ in opened:
        sock.close()


def limit_recv(steps: int, symbols: int, timeout_s: float = 300.0) -> dict[str, Any]:
    """The bare client against a fresh feed of `steps` pre-encoded steps: every frame received, CPU of the client."""
    from xtrader.bench.feed import FeedOptions

    with Feed(FeedOptions(symbols=symbols, pregenerate=steps)) as feed:
        parent, child = mp.get_context("spawn").Pipe()
        proc = mp.get_context("spawn").Process(
            target=_client, args=(urls_by_route(feed.urls["wss"], feed.symbols), feed.ca_file, child), daemon=True
        )
        proc.start()
        try:
            if not parent.poll(60.0):
                raise TimeoutError("limit_recv: the client did not connect")
            parent.recv()
            wait_subscribed(feed, len(streams(feed.symbols)))
            meter = CpuMeter([proc.pid or 0])
            meter.start()
            started = time.monotonic()
            feed.resume()
            sent = wait_sent(feed, timeout_s)
            parent.send(sent)
            if not parent.poll(timeout_s):
                raise TimeoutError(f"limit_recv: {sent} frames sent, not all received in {timeout_s:g} s")
            done = parent.recv()
            cpu = meter.stop()
            parent.send(None)
        finally:
            proc.join(10.0)
            if proc.is_alive():
                proc.kill()
    return rates(sent, done - started, cpu)


def wait_subscribed(feed: Feed, streams_: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while feed.state()["subscribers"] < streams_:
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark feed: fewer than {streams_} streams subscribed after {timeout_s:g} s")
        time.sleep(0.02)


def wait_sent(feed: Feed, timeout_s: float) -> int:
    """Wait until the pool is used up and every send queue is empty; the data frames written."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = feed.state()
        if state["pool_left"] == 0 and state["backlog"] == 0 and state["paused"]:
            return int(state["messages"])
        if state["open_connections"] == 0:
            raise ConnectionError("benchmark feed: the consumer's connections closed")
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark feed: still sending after {timeout_s:g} s: {state}")
        time.sleep(0.01)
