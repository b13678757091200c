"""The contract of a simulated venue, and what every venue shares (markets, pacing, fan-out).

Adding a venue = one module with a `Venue` subclass (see README.md), plus one line in
`registry.py`.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import orjson

from .connection import Connection
from .faults import Faults
from .generate import Instrument, Market, Snapshot, Step, instruments
from .truth import Frame, VenueTruth

MAX_STEPS_PER_TURN = 200
_T = TypeVar("_T", bool, int, float, str)
Pooled = list[tuple[str, Frame]]  # a pre-generated step's frames: (stream, frame) in send order
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Keepalive:
    """Server-side liveness and limits of a venue's websocket (None/0: not enforced)."""

    ping_interval_s: float | None = None  # server ping frames
    pong_timeout_s: float | None = None  # disconnect when no pong for this long
    inbound_per_s: int | None = None  # client messages per second before disconnect
    max_lifetime_s: float | None = None  # forced close after this long


@dataclass(frozen=True)
class VenueOptions:
    """What the simulator tells each venue at start-up."""

    symbols: int = 3
    rate: float = 100.0  # market steps per second for the whole venue
    seed: int = 1
    faults: Faults = field(default_factory=Faults)
    depth: int = 200  # book levels per side
    ping_interval_s: float | None = None  # None: the venue's documented value
    pong_timeout_s: float | None = None
    max_lifetime_s: float | None = None
    inbound_per_s: int | None = None
    max_queue: int | None = None  # frames a connection may have queued; None: MAX_QUEUE (connection.py)
    settings: Mapping[str, Any] = field(default_factory=dict)  # venue-specific (Simulator venue_options)


@dataclass(frozen=True)
class HttpRequest:
    """A plain HTTP GET, with the fault selectors already stripped."""

    path: str
    query: dict[str, str]
    faults: Faults
    fault_key: str  # identifies the fault scope, for "first N requests" counters


@dataclass
class HttpReply:
    """A REST answer."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, headers: dict[str, str] | None = None) -> HttpReply:
        return cls(status, orjson.dumps(obj), {"Content-Type": "application/json", **(headers or {})})


class Venue(ABC):
    """One simulated venue: its markets, subscribers and protocol."""

    name: ClassVar[str]
    official: ClassVar[dict[str, str]]  # the real base URLs ours replace: {"ws": .., "rest": ..}
    capture_names: ClassVar[tuple[str, ...]] = ()  # `conn` prefixes in capture files
    default_keepalive: ClassVar[Keepalive] = Keepalive()
    first_update_id: ClassVar[int] = 1_000_000
    update_id_gap: ClassVar[int] = 1  # >1: non-contiguous update ids
    settings_help: ClassVar[dict[str, str]] = {}  # venue-specific option name -> what it does

    def __init__(self, options: VenueOptions) -> None:
        unknown = sorted(set(options.settings) - set(self.settings_help))
        if unknown:
            known = ", ".join(sorted(self.settings_help)) or "none"
            raise ValueError(f"venue {self.name!r} has no option {unknown[0]!r} (known: {known})")
        self.options = options
        self.seed = options.seed
        self.faults = options.faults
        d = self.default_keepalive
        self.keepalive = Keepalive(
            options.ping_interval_s or d.ping_interval_s,
            options.pong_timeout_s or d.pong_timeout_s,
            options.inbound_per_s or d.inbound_per_s,
            options.max_lifetime_s or d.max_lifetime_s,
        )
        self.truth = VenueTruth(self.name)
        self.instruments: list[Instrument] = instruments(options.symbols)
        rng = random.Random(f"{options.seed}:{self.name}")
        self.markets: dict[str, Market] = {
            i.symbol: Market(
                i,
                f"{options.seed}:{self.name}:{i.symbol}",
                self.first_update_id + rng.randrange(10**6),
                self.update_id_gap,
                options.depth,
            )
            for i in self.instruments
        }
        self.connections: set[Connection] = set()
        self.subscribers: dict[str, set[Connection]] = {}
        self.paused = False
        self._rng = rng
        # Busier symbols first, like a real venue (weights 1, 1/2, 1/3...).
        weights = [1.0 / (k + 1) for k in range(len(self.instruments))]
        self._cumulative = list(itertools.accumulate(w / sum(weights) for w in weights))
        self._market_list = list(self.markets.values())
        # Pre-generated steps (`pregenerate`): the visit order, and per symbol the steps with
        # their encoded frames; `_pending_frames` holds the frames of each pooled pending step.
        self._pool_order: deque[Market] = deque()
        self._pool: dict[str, deque[tuple[Step, Pooled]]] = {}
        self._pending_frames: dict[str, Pooled] = {}
        self._recording: Pooled | None = None

    @property
    def symbols(self) -> list[str]:
        return list(self.markets)

    def setting(self, name: str, default: _T) -> _T:
        """A venue-specific option (`settings_help`), coerced to the type of `default`.

        Raises:
            ValueError: naming the option and the bad value.
        """
        raw = self.options.settings.get(name, default)
        try:
            if isinstance(default, bool):
                text = str(raw).strip().lower()
                if text not in _TRUE + _FALSE:
                    raise ValueError
                return type(default)(text in _TRUE)
            value = type(default)(raw)
        except (TypeError, ValueError):
            raise ValueError(f"venue {self.name!r} option {name}={raw!r}: expected {type(default).__name__}") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"venue {self.name!r} option {name}={raw!r}: must be >= 0")
        return value

    # -- protocol: implemented by each venue -------------------------------------

    @abstractmethod
    async def rest(self, request: HttpRequest) -> HttpReply | None:
        """Answer a REST GET, or None when the path is a websocket endpoint."""

    @abstractmethod
    def open_ws(self, path: str, query: str, faults: Faults) -> Connection | HttpReply:
        """A new connection for this websocket path, or an HTTP error to refuse it."""

    @abstractmethod
    def publish(self, market: Market, step: Step, now_ms: int) -> None:
        """Encode a step into the venue's messages and `fan_out` them."""

    @abstractmethod
    def format_book(self, symbol: str, snapshot: Snapshot) -> dict[str, Any]:
        """A snapshot as the venue's REST answer would carry it (for ground truth)."""

    def pregenerate_streams(self, symbol: str) -> tuple[str, ...] | None:
        """The streams whose frames `pregenerate` encodes ahead; None: not supported."""
        return None

    def publish_pregenerated(self, market: Market, step: Step, frames: Pooled, now_ms: int) -> None:
        """Send a pre-generated step: its pre-encoded frames, plus whatever the venue encodes live."""
        for stream, frame in frames:
            self.fan_out(stream, frame)

    def unknown_message(self, conn: Connection) -> bytes:
        """A well-formed message the client cannot know (fault ``unknown_rate``)."""
        return orjson.dumps({"e": "simUnknownEvent", "E": int(time.time() * 1000)})

    def shutdown_notice(self, conn: Connection) -> bytes | None:
        """The venue's "going away" message, if it has one."""
        return None

    def corrupt_checksum(self, frame: Frame, data: bytes) -> bytes | None:
        """`data` with a wrong checksum, or None when the venue has no checksum."""
        return None

    def book(self, symbol: str, depth: int = 20) -> dict[str, Any]:
        """The published book of `symbol` (top `depth` levels), in the venue's REST shape."""
        return self.format_book(symbol, self.markets[symbol].snapshot(depth))

    async def background(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Periodic work besides the market steps (e.g. mark prices); runs until cancelled."""

    # -- shared machinery ----------------------------------------------------------

    def fan_out(self, stream: str, frame: Frame) -> None:
        """Queue `frame` on every connection subscribed to `stream` (same bytes for all)."""
        if self._recording is not None:
            self._recording.append((stream, frame))
            return
        for conn in self.subscribers.get(stream, ()):
            conn.enqueue(frame, conn.render(stream, frame))

    def subscribe(self, conn: Connection, stream: str) -> None:
        self.subscribers.setdefault(stream, set()).add(conn)

    def unsubscribe(self, conn: Connection, stream: str) -> None:
        conns = self.subscribers.get(stream)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.subscribers[stream]

    def step_once(self) -> None:
        """Publish one pending step on one symbol and generate its next one."""
        if self._pool_order:
            market = self._pool_order.popleft()
        else:
            k = bisect.bisect_left(self._cumulative, self._rng.random())
            market = self._market_list[min(k, len(self._market_list) - 1)]
        symbol = market.instrument.symbol
        self._publish_pending(market, int(time.time() * 1000))
        pool = self._pool.get(symbol)
        if pool:
            market.pending, self._pending_frames[symbol] = pool.popleft()
        else:
            market.published = None  # pool used up: the generator's book is the published one again
            market.generate()

    def flush(self) -> None:
        """Publish every pending step, leaving each book at a message boundary."""
        now_ms = int(time.time() * 1000)
        for market in self.markets.values():
            self._publish_pending(market, now_ms)

    def _publish_pending(self, market: Market, now_ms: int) -> None:
        step = market.publish()
        if step is None:
            return
        symbol = market.instrument.symbol
        self._count_generated(symbol, step)
        frames = self._pending_frames.pop(symbol, None)
        if frames is None:
            self.publish(market, step, now_ms)
        else:
            self.publish_pregenerated(market, step, frames, now_ms)

    def pregenerate(self, steps: int) -> None:
        """Generate and encode the next `steps` market steps now, before serving.

        `step_once` then sends these frames (same visit order, ids and book) instead of
        generating, and goes on live when they are used up. Counts are still taken as frames
        are sent; REST snapshots and `book()` read a published book kept apart meanwhile.
        Event times in pre-encoded frames are those of pre-generation.

        Raises:
            ValueError: the venue cannot pre-generate.
        """
        if steps <= 0:
            return
        streams = {s: self.pregenerate_streams(s) for s in self.markets}
        if any(v is None for v in streams.values()):
            raise ValueError(f"venue {self.name!r} does not support pregenerate")
        if self._pool_order or any(m.pending is not None for m in self._market_list):
            raise ValueError("pregenerate must run before the market starts")
        start = {sym: (m.published_id, (dict(m.sides[0]), dict(m.sides[1]))) for sym, m in self.markets.items()}
        subscribers = self.subscribers
        self.subscribers = {s: set() for names in streams.values() for s in names or ()}
        now_ms = int(time.time() * 1000)
        try:
            for _ in range(steps):
                k = bisect.bisect_left(self._cumulative, self._rng.random())
                market = self._market_list[min(k, len(self._market_list) - 1)]
                self._pool_order.append(market)
                step = market.generate()
                market.publish()  # encode against the book as it will be when sent
                self._recording = []
                self.publish(market, step, now_ms)
                for _, frame in self._recording:
                    frame.data = bytes(memoryview(frame.data))  # orjson leaves KBs of slack per buffer
                self._pool.setdefault(market.instrument.symbol, deque()).append((step, self._recording))
        finally:
            self._recording = None
            self.subscribers = subscribers
        for sym, market in self.markets.items():
            market.published_id, market.published = start[sym]

    def _count_generated(self, symbol: str, step: Step) -> None:
        g = self.truth.generated
        bids, asks = step.levels()
        g["l2"][symbol] += len(bids) + len(asks)
        g["trades"][symbol] += len(step.fills)
        g["agg_trades"][symbol] += len(step.groups)
        g["bbo"][symbol] += step.bbo_changed

    async def run_market(self) -> None:
        """Pace market steps at ``options.rate`` per second until cancelled."""
        rate = self.options.rate
        if rate <= 0:
            return
        loop = asyncio.get_running_loop()
        start, done = loop.time(), 0
        # A few ms of steps per turn at most, so connection writers get the loop in between.
        max_batch = min(MAX_STEPS_PER_TURN, max(1, int(rate * 0.005)))
        while True:
            if self.paused:
                await asyncio.sleep(0.01)
                start, done = loop.time(), 0
                continue
            due = int((loop.time() - start) * rate) - done
            if due > rate:  # fell more than a second behind: do not burst to catch up
                start, done, due = loop.time(), 0, 0
            for _ in range(min(due, max_batch)):
                self.step_once()
            done += min(due, max_batch)
            await asyncio.sleep(0 if due > max_batch else min(0.01, 1.0 / rate))
