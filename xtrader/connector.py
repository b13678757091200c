"""The asyncio shell around one planned websocket connection: read, parse, batch, emit; reconnect.

Per frame: take both clocks once (`clock.now()`), `venue.parse()` into the
column buffers, count a `ParseError` as a reject (events row, never a crash).
Buffers flush at `FlushPolicy` rows or age (a timer flushes an idle buffer)
into `emit(batches)`, bounded by a `FlowGate`. The `Session` decides what to
send and when the link is dead; links are replaced with capped, jittered
backoff, and rotated make-before-break before a venue's lifetime limit or on
a shutdown notice: the old link is retired only once a frame arrived on both
(proof that the streams overlap: the old one has delivered everything sent
before the new one subscribed), plus a margin. Duplicates are counted; the
arbiter dedupes them.

Subscriptions: one desired set (`Connector.connection`); every link is
reconciled against it once open and on each change, so nothing changed during
a handshake is lost, and the URL is planned again from it (a refusal, the last
unsubscribe: no link at all while it is empty). A refusal drops only what the
venue refused (`Session`). The book side is told, in stream order, which books
this connector carries (`BookNotice` in `Batches.notices`): carried when a link
opens or a book is subscribed, lost when the last link carrying it goes, dropped
on unsubscribe (its REST fetch in flight is cancelled). Every batch carries the
clocks of its flush (`Batches.anchor`) for code latency on the monotonic clock.

Limits (`xtrader.budget`): every frame a link sends goes through the venue's
pacer (`Venue.control_pacer`: Binance's inbound messages per second, Deribit's
credits), waiting for its slot instead of going over. A resync the request
budget cannot afford now (`session.Wait`: OKX's 480 requests per connection
per hour) waits: one `resync` events row saying so and the `budget_waits`
counter, then it is sent when the budget allows, never as a burst. A link the
venue paused (Deribit maintenance, public methods disabled) or starved of
credits (10028) is reconnected only after `pause_wait_s` / the credit refill.

Backoff: reconnect delays grow until a link stayed up, with data, for
`backoff_reset_s`; failed rotation opens share one growing sequence.

REST snapshots (venues with `needs_snapshot`, and OKX books with `book_source`
auto or rest) are fetched by `SnapshotFetcher` while diffs keep flowing: at a
book's first diff ("rest"), or when no websocket snapshot came within
`ws_snapshot_wait_s` of its subscribe ack ("auto"); resyncs fetch again. Each is emitted, in stream order, as its own
`SnapshotBatches`: every diff received before it was flushed first, every
later one follows in later batches. Downstream feeds it to
`BookSync.on_rest_snapshot` (`Books.apply_batch(..., rest=True)`), everything
else to `on_message`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from xtrader.batch import Batches, BookNotice, FlushPolicy
from xtrader.budget import Credits, Window
from xtrader.clock import Receipt, anchor, now
from xtrader.config import Transport
from xtrader.errors import ConfigError, ParseError
from xtrader.flow import FlowGate, Policy
from xtrader.handover import Handover
from xtrader.rest import RestStats, SnapshotFetcher
from xtrader.retry import Jitter, backoff, classify
from xtrader.session import Action, Reconnect, Record, Refused, Send, Session, SessionStats, Wait
from xtrader.transport import TRANSPORTS, Socket, open_socket
from xtrader.venues.base import Connection, Keepalive, Subscription, Venue

log = logging.getLogger("xtrader.connector")

Emit = Callable[[Batches], Awaitable[object]]

_NS = 1_000_000_000
#: while every downstream is behind (`behind`), a batch due by age waits for it at most this many batch_ms (or
#: until batch_rows): 10 was too short for redundancy 2 at 5,000 msg/s on 2 cores (eight connectors, each still
#: sending 5 calls a second, held their arbiters a minute behind; benchmarks/RESULTS.md)
DEFER_FACTOR = 100
#: while only some are (a slow sink), at most this many: the others get the rows at most this late
DEFER_SOME_FACTOR = 10
#: and `behind` is asked again this often meanwhile (ns): not on every frame read, which is when CPU is short
_DEFER_POLL_NS = 2_000_000
#: frames the reader takes from its socket at a time (`PicowsSocket.recv_many`): ~1 ms of frames at full speed
READ_BURST = 256
_DETAIL = 500  # longest events detail
#: default `max_frame_bytes`: far above any venue's frame (a few KiB; books of 400 levels ~100 KiB)
MAX_FRAME_BYTES = 16 * 1024 * 1024
#: venues with a documented maximum connection lifetime, until `Venue` declares `max_lifetime_s`
_LIFETIMES_S = {"binance": 86_400.0, "binance_futures": 86_400.0}
#: rotate this long before a venue's lifetime limit
_ROTATION_MARGIN_S = 600.0


@dataclass
class SnapshotBatches(Batches):
    """One REST book snapshot (l2 `is_snapshot` rows of `symbol`, sequence `seq`).

    Feed it to `BookSync.on_rest_snapshot`, not `on_message`: a REST snapshot
    bridges buffered diffs, a websocket snapshot replaces the book.
    """

    symbol: str = ""
    seq: int = 0


@dataclass
class ConnectorStats:
    """Counters of one connector (`Connector.stats()` adds session, flow and REST counters)."""

    messages: int = 0
    bytes: int = 0
    rows: int = 0
    events: int = 0
    rejects: int = 0
    batches: int = 0
    emit_errors: int = 0
    connects: int = 0
    connect_failures: int = 0
    reconnects: int = 0
    rotations: int = 0
    overlap_duplicates: int = 0
    resyncs: int = 0
    refused: int = 0
    budget_waits: int = 0
    paced_frames: int = 0
    pause_waits: int = 0
    #: stops whose last flush was not acknowledged within drain_timeout_s, and what was still outstanding then
    shutdown_timeouts: int = 0
    shutdown_unacked_batches: int = 0
    shutdown_unacked_rows: int = 0
    oversized_frames: int = 0
    #: clean closes that ended without the venue's close frame (TCP dropped): frames sent after the last one
    #: read may be lost, and each such close is an `events` row
    close_unconfirmed: int = 0


class _Link:
    """One open websocket and its session."""

    def __init__(self, number: int, ws: Socket, session: Session, opened_ns: int) -> None:
        self.number = number
        self.ws = ws
        self.session = session
        self.opened_ns = opened_ns
        self.reader: asyncio.Task[None] | None = None
        self.first_data_ns: int | None = None
        self.handover: Handover | None = None  # set while this link replaces, or is replaced by, another
        self.replaces: _Link | None = None  # the old link, while this one takes over
        self.replaced_by: _Link | None = None  # the new link, while it takes over
        self.rotate: str | None = None  # why it should be replaced (make-before-break)
        self.rotating = False
        self.retired = False  # closed on purpose after a rotation
        self.close_reason: str | None = None
        self.pacer: Window | Credits | None = session.venue.control_pacer()


class Connector:
    """Captures one connection of one venue into `emit`.

    Args:
        venue: the venue spoken.
        connection: the planned connection (URL and subscriptions).
        emit: called with each flushed Batches, in order; its awaitable
            resolves when downstream acknowledged (frees an in-flight slot).
        flush_policy: when buffers flush (rows or age).
        max_inflight: unacknowledged batches allowed.
        max_inflight_rows: and at most this many rows of them (None: no bound in rows).
        behind: the share of the downstreams (0 to 1; a bool is fine) that have not answered enough of the
            batches already sent (the actor's windows). While it is above 0, a batch due by age keeps growing
            and the reading goes on, until `batch_rows`, the downstream catches up, or DEFER_FACTOR x batch_ms
            (every downstream behind) / DEFER_SOME_FACTOR x batch_ms (some: the others are kept waiting less):
            fewer, bigger calls where more small ones would only queue (each actor call has a fixed cost), as a
            full window did when it stopped the reading.
        flow_policy: "block" (stop reading when full) or "lossy" (drop, counted).
        ca_file: CA bundle trusted for wss / https (e.g. a simulator's).
        keepalive: overrides the venue's keepalive rule (tests: short timeouts).
        backoff_base_s, backoff_cap_s, jitter, seed: reconnect backoff (seed: reproducible jitter).
        backoff_reset_s: the backoff starts over only after a link stayed up (and delivered
            data) this long; a link that dies sooner keeps the delays growing. Failed
            rotation opens share one backoff sequence, reset by a rotation that succeeds.
        rotate_after_s: replace the link after this long, make-before-break
            ("auto": before the venue's lifetime limit; None: never).
        rotate_overlap_s: how long both links run once their streams overlap.
        snapshot_depth: REST snapshot levels (None: the venue's default).
        snapshot_concurrency: REST snapshot requests at once.
        ban_wait_s: pause after HTTP 418 without Retry-After.
        open_timeout_s, close_timeout_s: websocket handshake and close timeouts.
        max_frame_bytes: largest frame accepted (bytes; `pipeline.max_frame_bytes`), enforced by the transport
            (`max_size`): a bigger frame is dropped, counted (`oversized_frames`), recorded as a
            `reject` event, and its link is closed (1009) and replaced.
        max_queue: messages buffered unread before TCP backpressure.
        ws_ping_interval_s: websocket-level client pings (None: off; they count
            against Binance's inbound message limit).
        transport: the websocket library: "websockets", or "picows" (frames parsed in C; `xtrader.transport`).
        book_source: where l2 books start: "rest" (a REST snapshot at the first diff), "auto" (a websocket
            snapshot, else REST `ws_snapshot_wait_s` after the subscribe ack) or "ws" (websocket snapshots,
            resync by resubscribing); None: "ws". Always "rest" when the venue `needs_snapshot`.
        ws_snapshot_wait_s: see book_source "auto".
        pause_wait_s: after the venue paused the link (maintenance), wait at least this long before reconnecting.
        ack_timeout_s: a request unanswered this long is reported.
        drain_timeout_s: on stop, how long to wait for the last flush and the acks.
        clock: the receipt clock (tests inject a fake one).
        name: this connector in `BookNotice`s (the book side tells redundant connectors apart).

    Subscriptions: the connector keeps ONE desired subscription set (`connection` shows it,
    with the URL planned for it). Every link is reconciled against it as soon as it is open
    and on every change, so a change made while a link is still connecting reaches it;
    refused subscriptions leave the set and the URL.
    """

    def __init__(
        self,
        venue: Venue,
        connection: Connection,
        emit: Emit,
        flush_policy: FlushPolicy | None = None,
        *,
        max_inflight: int = 4,
        max_inflight_rows: int | None = None,
        behind: Callable[[], float] | None = None,
        flow_policy: Policy = "block",
        ca_file: str | None = None,
        keepalive: Keepalive | None = None,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        jitter: Jitter = "full",
        seed: int | None = None,
        backoff_reset_s: float = 10.0,
        rotate_after_s: float | Literal["auto"] | None = "auto",
        rotate_overlap_s: float = 5.0,
        snapshot_depth: int | None = None,
        snapshot_concurrency: int = 2,
        ban_wait_s: float = 60.0,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 2.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        max_queue: int = 1024,
        ws_ping_interval_s: float | None = None,
        transport: Transport = "picows",
        book_source: str | None = None,
        ws_snapshot_wait_s: float = 1.0,
        pause_wait_s: float = 30.0,
        ack_timeout_s: float = 10.0,
        drain_timeout_s: float = 10.0,
        clock: Callable[[], Receipt] = now,
        name: str = "",
    ) -> None:
        self.venue = venue
        self.name = name or f"{venue.name}#{id(self):x}"
        self._desired: dict[Subscription, None] = dict.fromkeys(connection.subscriptions)
        self._url = connection.url
        self._emit = emit
        self._policy = flush_policy or FlushPolicy()
        self._gate = FlowGate(max_inflight, flow_policy, max_inflight_rows)
        self._behind = behind
        #: a batch held back for the downstream is not flushed before this (monotonic ns; see `_flush_due`)
        self._held_until_ns = 0
        self._keepalive = keepalive
        self._rng = random.Random(seed)
        self._backoff: tuple[float, float, Jitter] = (backoff_base_s, backoff_cap_s, jitter)
        self._reset_ns = int(backoff_reset_s * _NS)
        self._rotation_delays: Iterator[float] | None = None  # one sequence across failed rotation opens
        self._rotate_ns = _rotation_ns(venue, rotate_after_s)
        self._overlap_s = rotate_overlap_s
        self._ack_timeout_s = ack_timeout_s
        self._clock = clock
        self._ssl = ssl.create_default_context(cafile=ca_file)
        self._open_timeout_s = open_timeout_s
        self._close_timeout_s = close_timeout_s
        self._max_frame_bytes = max_frame_bytes
        self._max_queue = max_queue
        self._ws_ping_interval_s = ws_ping_interval_s
        if transport not in TRANSPORTS:
            raise ConfigError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self._transport = transport
        self._snapshot_depth = snapshot_depth
        self._snapshot_concurrency = snapshot_concurrency
        self._ban_wait_s = ban_wait_s
        self._columns = venue.columns()
        self._parse = venue.parser(self._columns)  # the one Columns of this connector, for its life
        self._stats = ConnectorStats()
        self._session_stats = SessionStats()
        self.refused: dict[Subscription, str] = {}
        self._links: list[_Link] = []
        self._numbers = 0
        self._last_frame_ns: int | None = None
        self._awaiting_diff: set[str] = set()  # symbols whose REST snapshot waits for a first diff
        self._book_source = "rest" if venue.needs_snapshot else (book_source or "ws")
        self._snapshot_wait_ns = int(ws_snapshot_wait_s * _NS)
        self._snapshot_due: dict[str, int] = {}  # auto: symbol -> when REST is fetched unless a ws snapshot came
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._acks: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Future[None]] = set()  # clean closes in progress
        self._fatal: BaseException | None = None
        self._fetcher: SnapshotFetcher | None = None
        self._rest_stats: RestStats | None = None
        self._running = False
        self._finished = asyncio.Event()
        self._drain_timeout_s = drain_timeout_s
        #: rows of batches taken from the buffers and not yet acknowledged (waiting for a slot, or in flight)
        self._outstanding_rows = 0
        self._opening: set[asyncio.Future[object]] = set()  # replacement links being opened
        self._subscribed = asyncio.Event()  # the desired set is not empty
        if self._desired:
            self._subscribed.set()
        self._notices: list[BookNotice] = []  # ride with the next flush
        self._deferred: dict[str, int] = {}  # symbol -> when its resync may go (the request budget was spent)
        self._pause_ns = int(pause_wait_s * _NS)
        self._resume_at_ns = 0  # no reconnect before (a venue pause, a credit refill)
        self._venue_paused: str | None = None  # the last link was paused by the venue (maintenance)

    # -- public ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Capture until `stop()`; reconnects on its own.

        Raises:
            SubscriptionError: the venue refused every subscription.
            Exception: a fatal error (see `retry.classify`), e.g. a refused certificate.
        """
        if self._running:
            raise RuntimeError("connector is already running")
        self._running = True
        self._stop.clear()
        self._finished.clear()
        if self.venue.needs_snapshot or self._book_source in ("auto", "rest"):
            self._fetcher = SnapshotFetcher(
                self.venue,
                self._deliver_snapshot,
                self._record,
                depth=self._snapshot_depth,
                concurrency=self._snapshot_concurrency,
                ssl_context=self._ssl,
                ban_wait_s=self._ban_wait_s,
                backoff_base_s=self._backoff[0],
                backoff_cap_s=self._backoff[1],
                jitter=self._backoff[2],
                rng=random.Random(self._rng.random()),
                clock=self._clock,
            )
            self._fetcher.stats = self._rest_stats = self._rest_stats or RestStats()
        tick = asyncio.get_running_loop().create_task(self._tick(), name="connector tick")
        try:
            await self._connect_loop()
        finally:
            self._stop.set()
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick
            await self._shutdown()
            self._running = False
            self._finished.set()

    async def stop(self) -> None:
        """Stop capturing: close the links, flush, wait for the acks; returns when `run()` has."""
        self._stop.set()
        self._wake.set()
        for link in list(self._links):
            await self._close(link, abort=False)
        if self._running:
            await self._finished.wait()

    async def rotate(self, reason: str) -> bool:
        """Replace the live link make-before-break (e.g. the arbiter finds it wins least).

        Returns False when no link is up or one is already being replaced.
        """
        for link in self._links:
            if not (link.rotating or link.retired or link.handover is not None):
                link.rotate = reason
                self._wake.set()
                return True
        return False

    @property
    def connection(self) -> Connection:
        """The desired subscriptions and the URL planned for them (what every link is reconciled to)."""
        return Connection(self._url, tuple(self._desired))

    async def resync(self, symbol: str) -> None:
        """Fetch `symbol`'s book again: a new REST snapshot, or a resubscription (websocket snapshot).

        Ignored for a symbol whose book this connector no longer carries (unsubscribed).
        """
        if symbol not in self._books():
            return
        if symbol in self._deferred:
            return  # it waits for the request budget already: asking again would be a burst later
        self._stats.resyncs += 1
        if self._fetcher is not None:
            if self._fetcher.request(symbol):
                self._record("resync", "rest snapshot requested", symbol)
            return
        for link in list(self._links):
            await self._apply(link, link.session.resubscribe(symbol, self._clock().mono_ns))

    async def subscribe(self, subscriptions: Sequence[Subscription]) -> None:
        """Add subscriptions at run time (sent now if connected; kept across reconnects).

        Raises:
            ConfigError: they do not fit this connection (another URL route, the stream cap).
        """
        books_before = self._books()
        new = [s for s in dict.fromkeys(subscriptions) if s not in self._desired]
        if not new:
            return
        desired = {**self._desired, **dict.fromkeys(new)}
        self._plan(tuple(desired))
        for subscription in new:
            self.refused.pop(subscription, None)
        self._desired = desired
        self._subscribed.set()
        added = self._books() - books_before
        if self._fetcher is not None and self._links and self._book_source == "rest":
            self._awaiting_diff |= added
        if added and self._links:
            self._notices.extend(BookNotice(s, "carried", self.name, "subscribed") for s in sorted(added))
        await self._reconcile_all()

    async def unsubscribe(self, subscriptions: Sequence[Subscription]) -> None:
        """Remove subscriptions at run time.

        A book no longer carried is dropped downstream (a `BookNotice`, applied after every
        frame received so far), its REST snapshot in flight is cancelled.
        """
        gone = set(subscriptions)
        if not gone & set(self._desired):
            return
        books_before = self._books()
        desired = {s: None for s in self._desired if s not in gone}
        self._plan(tuple(desired))
        self._desired = desired
        if not desired:
            self._subscribed.clear()
        dropped = books_before - self._books()
        if dropped:
            await self._notice(dropped, "dropped", "unsubscribed")
        await self._reconcile_all()

    def _books(self) -> set[str]:
        """Symbols whose l2 stream is desired."""
        return {s.symbol for s in self._desired if s.table == "l2"}

    def _plan(self, subscriptions: tuple[Subscription, ...]) -> None:
        """Plan the URL for a new desired set (it carries the streams on some venues).

        Raises:
            ConfigError: the set would not fit this one connection (URL route, stream cap).
        """
        if not subscriptions:
            return  # nothing to carry: no link is opened until something is subscribed
        planned = self.venue.connections(subscriptions)
        if len(planned) != 1:
            raise ConfigError(
                f"{self.venue.name}: {len(subscriptions)} subscriptions need {len(planned)} connections; "
                "subscribe the extra ones on another connection"
            )
        self._url = planned[0].url

    async def _reconcile_all(self) -> None:
        for link in list(self._links):
            await self._reconcile(link)

    async def _reconcile(self, link: _Link) -> None:
        """Bring an open link's subscriptions to the desired set (requests for the difference)."""
        session = link.session
        if not session.is_open:
            return
        have = session.subscriptions
        drop = tuple(s for s in have if s not in self._desired)
        add = tuple(s for s in self._desired if s not in have)
        mono = self._clock().mono_ns
        actions: list[Action] = []
        if drop:
            actions += session.unsubscribe(drop, mono)
        if add:
            actions += session.subscribe(add, mono)
        await self._apply(link, actions)

    async def _notice(self, symbols: set[str], state: str, reason: str) -> None:
        """Tell the book side about `symbols`: everything received so far is flushed first."""
        async with self._flush_lock:
            await self._flush_locked()
            if self._fetcher is not None and state != "carried":
                for symbol in symbols:  # it would bridge diffs of a stream that is gone
                    self._fetcher.cancel(symbol)
                self._awaiting_diff -= symbols
                for symbol in symbols:
                    self._snapshot_due.pop(symbol, None)
            self._notices.extend(BookNotice(s, state, self.name, reason) for s in sorted(symbols))
            kind = "subscribe" if state == "dropped" else "disconnect"
            for symbol in sorted(symbols):
                self._record(kind, f"book {state}: {reason}", symbol)

    def stats(self) -> dict[str, float | int | None]:
        """Counters, the flow window, session and REST counters, and the age of the last message (s)."""
        out: dict[str, float | int | None] = dict(asdict(self._stats))
        out.update({f"session_{k}": v for k, v in self._session_stats.as_dict().items()})
        out.update({f"flow_{k}": v for k, v in self._gate.stats.as_dict().items()})
        if self._rest_stats is not None:
            out.update({f"snapshot_{k}": v for k, v in self._rest_stats.as_dict().items()})
        last = self._last_frame_ns
        out["last_message_age_s"] = None if last is None else (self._clock().mono_ns - last) / _NS
        out["connected"] = len(self._links)
        return out

    # -- connecting -----------------------------------------------------------------------

    def _delays(self) -> Iterator[float]:
        base_s, cap_s, jitter = self._backoff
        return backoff(base_s, cap_s, jitter=jitter, rng=self._rng)

    async def _connect_loop(self) -> None:
        delays = self._delays()
        while not self._stop.is_set():
            if not self._desired:
                await self._until_subscribed()
                continue
            try:
                await self._open(fresh=True)
            except Exception as exc:
                if classify(exc) == "fatal":
                    raise
                self._stats.connect_failures += 1
                self._record("error", f"connect failed: {exc!r}")
                if self._venue_paused is not None:  # still paused (maintenance): ask again after a pause only
                    self._resume_at_ns = max(self._resume_at_ns, self._clock().mono_ns + self._pause_ns)
                await self._sleep(self._reconnect_delay(next(delays)))
                continue
            self._venue_paused = None
            healthy = await self._serve()
            if self._fatal is not None:
                raise self._fatal
            if healthy:
                delays = self._delays()
            if not self._stop.is_set():
                await self._sleep(self._reconnect_delay(next(delays)))

    def _reconnect_delay(self, delay: float) -> float:
        """The backoff delay, or longer while the venue paused us or wants its credits back (said once each)."""
        hold = (self._resume_at_ns - self._clock().mono_ns) / _NS
        if hold <= delay:
            return delay
        self._stats.pause_waits += 1
        why = f"venue paused: {self._venue_paused}" if self._venue_paused else "the venue's credits refill"
        self._record("disconnect", f"reconnect waits {hold:.1f} s ({why})")
        return hold

    async def _until_subscribed(self) -> None:
        """Wait (no link) until something is subscribed again, or stop()."""
        stop = asyncio.ensure_future(self._stop.wait())
        subscribed = asyncio.ensure_future(self._subscribed.wait())
        try:
            await asyncio.wait({stop, subscribed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            subscribed.cancel()

    async def _open(self, fresh: bool, reason: str = "", replacing: _Link | None = None) -> _Link:
        """Open a websocket, start its reader and send the session's first frames.

        fresh: the stream starts over (not a make-before-break replacement): books need new snapshots.
        replacing: the live link this one takes over from (their frames are compared).
        """
        # the session starts from the set as dialled; _reconcile() sends what changed during the handshake
        session = Session(self.venue, self.connection, self._keepalive, self._ack_timeout_s, stats=self._session_stats)
        session.refused = self.refused
        url = session.connection.url
        ws = await open_socket(
            self._transport,
            url,
            ssl_context=self._ssl if url.startswith("wss:") else None,
            open_timeout=self._open_timeout_s,
            close_timeout=self._close_timeout_s + self._drain_timeout_s,  # a cap: `_close` watches for silence
            max_size=self._max_frame_bytes,
            max_queue=self._max_queue,
            ping_interval=self._ws_ping_interval_s,
            user_agent="xtrader",
        )
        receipt = self._clock()
        self._numbers += 1
        link = _Link(self._numbers, ws, session, receipt.mono_ns)
        if replacing is not None and replacing in self._links:
            link.handover = replacing.handover = Handover()
            link.replaces, replacing.replaced_by = replacing, link
        ws.on_ping = lambda: session.on_server_ping(self._clock().mono_ns)
        stats = self._stats
        stats.connects += 1
        if fresh and stats.connects > 1:
            stats.reconnects += 1
        if fresh and self._fetcher is not None:
            if self._book_source == "rest":
                self._awaiting_diff = {s.symbol for s in session.subscriptions if s.table == "l2"}
            self._snapshot_due.clear()  # auto: armed again by the subscribe acks
        self._links.append(link)
        self._record("connect", f"link {link.number} open{reason}: {_short(url)}", wall_ns=receipt.wall_ns)
        link.reader = asyncio.get_running_loop().create_task(self._read(link), name=f"reader {link.number}")
        carried = self._carried()
        await self._apply(link, session.open(receipt.mono_ns))
        await self._reconcile(link)
        books = self._books() - carried
        if books:
            self._notices.extend(BookNotice(s, "carried", self.name, f"link {link.number} open") for s in sorted(books))
        return link

    def _carried(self, without: _Link | None = None) -> set[str]:
        """Symbols whose book an open link (other than `without`) carries."""
        return {
            s.symbol
            for link in self._links
            if link is not without and link.session.is_open
            for s in link.session.subscriptions
            if s.table == "l2"
        }

    async def _serve(self) -> bool:
        """Until no link is left nor being opened (rotations hand over). True when any link delivered data."""
        healthy = False
        while self._links or self._opening:
            waiting: set[asyncio.Future[Any]] = {lk.reader for lk in self._links if lk.reader is not None}
            waiting |= self._opening
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for finished in [lk for lk in self._links if lk.reader in done]:
                first = finished.first_data_ns
                healthy |= first is not None and self._clock().mono_ns - finished.opened_ns >= self._reset_ns
                await self._lost(finished)
                self._closed(finished)
                exc = finished.reader.exception() if finished.reader is not None else None
                if exc is not None and self._fatal is None:
                    self._fatal = exc
                    for other in list(self._links):
                        await self._close(other, abort=True)
        return healthy

    async def _lost(self, link: _Link) -> None:
        """A link is going: books no other link carries can no longer be trusted downstream."""
        if self._stop.is_set():
            return
        lost = {s.symbol for s in link.session.subscriptions if s.table == "l2"} & self._books()
        lost -= self._carried(without=link)
        if lost:
            reason = f"link {link.number} lost: {link.close_reason or 'closed'}"
            await self._notice(lost, "lost", reason)

    def _closed(self, link: _Link) -> None:
        session = link.session
        mono = self._clock().mono_ns
        if session.paused is not None:
            self._venue_paused = session.paused
            self._resume_at_ns = max(self._resume_at_ns, mono + self._pause_ns)
        if session.cooldown_ns:
            self._resume_at_ns = max(self._resume_at_ns, session.cooldown_ns)
        self._links.remove(link)
        if not self._links:
            self._deferred.clear()  # the next link subscribes afresh (and has its own budget)
        link.session.closed()
        handover, replaced, successor = link.handover, link.replaces, link.replaced_by
        if handover is not None:
            _end_handover(link)
            if replaced is not None:
                replaced.rotating = False  # the replacement died: try again later
            elif successor is not None and not handover.proven and self._fetcher is not None:
                # the old link died before the streams were seen to overlap: frames may be missing
                self._awaiting_diff = {s.symbol for s in successor.session.subscriptions if s.table == "l2"}
        if self._stop.is_set():
            detail = f"link {link.number} closed: connector stopped"
        elif link.retired:
            duplicates = handover.duplicates if handover is not None else 0
            detail = f"link {link.number} retired after the handover: {duplicates} duplicate frame(s)"
        else:
            detail = f"link {link.number} lost: {link.close_reason or 'closed'}"
        self._record("disconnect", detail)

    async def _close(self, link: _Link, abort: bool) -> None:
        """Close a link: a clean close, or drop TCP when it is dead (a close handshake would hang).

        A clean close reads the link up to the venue's close frame: every frame sent before it is data. While
        the reader waits for downstream acks it reads nothing, and that is not the venue's silence: TCP is
        dropped only after `close_timeout_s` with nothing read while nothing waited downstream, or after
        `close_timeout_s + drain_timeout_s` in all (the socket's own timeout). A close that ends without the
        venue's close frame is counted and recorded: frames sent after the last one read may be lost.
        """
        if abort:
            link.ws.transport.abort()
            return
        task = asyncio.ensure_future(self._close_cleanly(link))
        self._closing.add(task)  # `_shutdown` waits for it: its event must ship with the last flush
        task.add_done_callback(self._closing.discard)
        await task

    async def _close_cleanly(self, link: _Link) -> None:
        if link.ws.is_closed:
            return  # gone already (its loss is recorded when its reader ends)
        closing = asyncio.ensure_future(link.ws.close())
        timeout_ns = int(self._close_timeout_s * _NS)
        while True:
            done, _ = await asyncio.wait({closing}, timeout=self._close_timeout_s)
            if done:
                break
            if self._flush_lock.locked():
                continue  # a flush waits for downstream acks: the reader is not reading
            if link.session.silent_ns(self._clock().mono_ns) >= timeout_ns:
                link.ws.transport.abort()
                break
        with contextlib.suppress(Exception):
            await closing
        if link.ws.close_rcvd is None:
            self._stats.close_unconfirmed += 1
            self._record(
                "disconnect",
                f"link {link.number}: no close frame from the venue (TCP dropped after {self._close_timeout_s:g} s "
                f"of silence, or {self._close_timeout_s + self._drain_timeout_s:g} s in all): frames it sent after "
                "the last one read are lost",
            )

    # -- reading --------------------------------------------------------------------------

    async def _read(self, link: _Link) -> None:
        ws, columns, policy, on_frame = link.ws, self._columns, self._policy, self._on_frame
        try:
            while True:
                # the frames queued, up to READ_BURST: one wait for a burst of frames (picows queues every frame
                # of a socket read), not one per frame
                for frame in await ws.recv_many(READ_BURST):
                    actions = on_frame(link, frame)
                    if actions:
                        await self._apply(link, actions)
                    oldest, mono = policy.oldest_mono_ns, self._last_frame_ns or 0
                    if oldest is None:
                        continue  # nothing buffered (`FlushPolicy.due`'s first test, without the calls)
                    rows = columns.rows()
                    if (rows >= policy.batch_rows or mono - oldest >= policy.batch_ns) and self._flush_due(rows, mono):
                        await self._flush()
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                # the transport refused a frame beyond max_size and closed the link (1009)
                self._stats.oversized_frames += 1
                self._stats.rejects += 1
                self._record(
                    "reject", f"{self.venue.name}: frame larger than max_frame_bytes={self._max_frame_bytes}: dropped"
                )
            if link.close_reason is None:
                link.close_reason = str(exc) or type(exc).__name__

    def _on_frame(self, link: _Link, frame: bytes) -> list[Action] | None:
        """The hot path: clocks, parse into columns, bookkeeping. Returns the session's actions, if any."""
        receipt = self._clock()
        mono = receipt.mono_ns
        stats = self._stats
        stats.messages += 1
        stats.bytes += len(frame)
        self._last_frame_ns = mono
        link.session.on_frame(mono)
        columns = self._columns
        watching = self._awaiting_diff or self._snapshot_due  # only then does a frame's l2 message matter here
        books_before = columns.l2_messages() if watching else 0
        try:
            controls = self._parse(frame, receipt)
        except ParseError as exc:
            stats.rejects += 1
            columns.events.add(None, receipt.wall_ns, "reject", str(exc)[:_DETAIL])
            controls = None
        handover = link.handover
        if handover is not None and handover.observe("new" if link.replaces else "old", frame, mono):
            stats.overlap_duplicates += 1
        if watching and columns.l2_messages() > books_before:
            heads = columns.l2_heads(books_before)
            if self._awaiting_diff:
                self._first_diffs(heads)
            if self._snapshot_due:
                self._ws_snapshots(heads)
        if self._policy.oldest_mono_ns is None and columns.pending():
            self._policy.noted(mono)
            self._wake.set()
        if controls:
            if self._book_source != "auto" or self._fetcher is None or link.replaces is not None:
                # (a make-before-break replacement: the books go on from the old link's stream)
                return link.session.on_controls(controls, mono)
            acked = set(link.session.acked)
            actions = link.session.on_controls(controls, mono)
            for subscription in link.session.acked - acked:
                if subscription.table == "l2":  # auto: a websocket snapshot has this long to come
                    self._snapshot_due[subscription.symbol] = mono + self._snapshot_wait_ns
                    self._wake.set()  # the timer sleeps until the earliest deadline
            return actions
        if controls is not None and link.first_data_ns is None:
            link.first_data_ns = mono
        return None

    def _first_diffs(self, heads: list[tuple[str, bool]]) -> None:
        """Ask for the REST snapshot of each book whose first diff just arrived (Binance step 1 -> 2)."""
        assert self._fetcher is not None
        for symbol, is_snapshot in heads:
            if symbol in self._awaiting_diff:
                self._awaiting_diff.discard(symbol)
                if not is_snapshot:  # a partial-depth stream carries whole books: no REST needed
                    self._fetcher.request(symbol)

    def _ws_snapshots(self, heads: list[tuple[str, bool]]) -> None:
        """auto: a websocket snapshot arrived, so that book needs no REST snapshot."""
        for symbol, is_snapshot in heads:
            if is_snapshot:
                self._snapshot_due.pop(symbol, None)

    def _snapshots_due(self, mono: int) -> None:
        """auto: fetch the REST book of each symbol whose websocket snapshot did not come in time."""
        assert self._fetcher is not None
        for symbol in [s for s, due in self._snapshot_due.items() if due <= mono]:
            del self._snapshot_due[symbol]
            self._fetcher.request(symbol)
            wait = self._snapshot_wait_ns / _NS
            self._record("resync", f"no websocket snapshot {wait:g} s after the subscribe ack: rest snapshot", symbol)

    # -- session actions ------------------------------------------------------------------

    async def _apply(self, link: _Link, actions: Sequence[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                pacer = link.pacer
                if pacer is not None:
                    wait = pacer.reserve(self._clock().mono_ns, self.venue.control_cost(action.op))
                    if wait > 0:
                        self._stats.paced_frames += 1
                        await asyncio.sleep(wait / _NS)
                try:
                    await link.ws.send(action.frame, text=True)
                except ConnectionClosed:
                    return
            elif isinstance(action, Wait):
                self._defer(action)
            elif isinstance(action, Record):
                self._record(action.kind, action.detail, action.symbol)
            elif isinstance(action, Reconnect):
                if action.graceful:
                    link.rotate = action.reason
                    self._wake.set()
                else:
                    link.close_reason = action.reason
                    await self._close(link, abort=True)
            elif isinstance(action, Refused):
                self._refused(link, action)

    def _defer(self, wait: Wait) -> None:
        """The request budget cannot afford `wait.symbol`'s resync now: say so once, ask again when it can."""
        if wait.symbol in self._deferred:
            return
        self._deferred[wait.symbol] = self._clock().mono_ns + wait.wait_ns
        self._stats.budget_waits += 1
        self._record("resync", f"waits {wait.wait_ns / _NS:.1f} s: {wait.reason}", wait.symbol)
        self._wake.set()

    async def _deferred_due(self, mono: int) -> None:
        for symbol in [s for s, at in self._deferred.items() if at <= mono]:
            del self._deferred[symbol]
            await self.resync(symbol)

    def _refused(self, link: _Link, refused: Refused) -> None:
        """Refused subscriptions leave the desired set and the URL; the others go on."""
        gone = set(refused.subscriptions) & set(self._desired)
        if not gone:
            return  # another link had it refused already
        self._stats.refused += len(gone)
        self._desired = {s: None for s in self._desired if s not in gone}
        self._plan(tuple(self._desired))
        if not self._desired and self._fatal is None:
            self._fatal = refused.error
            for other in list(self._links):
                other.close_reason = "every subscription was refused"
                other.ws.transport.abort()

    def note(self, kind: str, detail: str) -> None:
        """An `events` row from the connector's host: a sink's window dropped a batch (`drop`) or a sink
        failed one (`error`, counted in `emit_errors`)."""
        if kind == "error":
            self._stats.emit_errors += 1
        self._record(kind, detail)

    def _record(self, kind: str, detail: str, symbol: str | None = None, wall_ns: int | None = None) -> None:
        """Write an events row into the buffers (it ships with the next flush)."""
        ts = self._clock().wall_ns if wall_ns is None else wall_ns
        self._columns.events.add(symbol, ts, kind, detail[:_DETAIL])
        if self._policy.oldest_mono_ns is None:
            self._policy.noted(self._clock().mono_ns)
            self._wake.set()

    # -- the timer ------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Flush idle buffers, run keepalive and rotations on time. A failure here is fatal."""
        try:
            while True:
                mono = self._clock().mono_ns
                for link in list(self._links):
                    await self._apply(link, link.session.poll(mono))
                    self._maybe_rotate(link, mono)
                if self._snapshot_due:
                    self._snapshots_due(mono)
                if self._deferred:
                    await self._deferred_due(mono)
                if self._flush_due(self._columns.rows(), mono):
                    await self._flush()
                await self._wait(self._next_wake(self._clock().mono_ns))
        except Exception as exc:
            self._fatal = self._fatal or exc
            for link in list(self._links):
                await self._close(link, abort=True)

    def _next_wake(self, mono: int) -> float:
        deadlines = [mono + _NS]
        if self._snapshot_due:
            deadlines.append(min(self._snapshot_due.values()))
        if self._deferred:
            deadlines.append(min(self._deferred.values()))
        oldest = self._policy.oldest_mono_ns
        if oldest is not None:
            due = oldest + self._policy.batch_ns
            # a flush held back for the downstream (`_flush_due`) is tried again when it said
            deadlines.append(due if due > mono else max(mono, self._held_until_ns))
        for link in self._links:
            deadline = link.session.next_deadline_ns()
            if deadline is not None:
                deadlines.append(deadline)
            if self._rotate_ns is not None and not (link.rotating or link.retired or link.handover):
                deadlines.append(link.opened_ns + self._rotate_ns)
        return max(0.0, (min(deadlines) - mono) / _NS)

    async def _wait(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on stop()."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    # -- rotation (make-before-break) -----------------------------------------------------

    def _maybe_rotate(self, link: _Link, mono: int) -> None:
        if link.rotating or link.retired or link.handover is not None or self._stop.is_set():
            return
        if link.rotate is None and self._rotate_ns is not None and mono - link.opened_ns >= self._rotate_ns:
            link.rotate = f"lifetime {self._rotate_ns / _NS:g} s reached"
        if link.rotate is not None:
            link.rotating = True
            self._spawn(self._rotate(link, link.rotate))

    async def _rotate(self, old: _Link, reason: str) -> None:
        """Open the replacement, run both until a frame arrives on both, then (after a margin) retire the old."""
        opening: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._opening.add(opening)  # _serve() must not give up while the replacement is on its way
        try:
            new = await self._open(
                fresh=old not in self._links, reason=f" (replacing link {old.number}: {reason})", replacing=old
            )
        except Exception as exc:
            self._stats.connect_failures += 1
            self._record("error", f"replacing link {old.number} failed: {exc!r}")
            if self._rotation_delays is None:
                self._rotation_delays = self._delays()
            await self._sleep(next(self._rotation_delays))
            old.rotating = False
            return
        finally:
            self._opening.discard(opening)
            opening.set_result(None)
        handover = new.handover
        if handover is None:
            return  # the old link was gone before the new one opened: a plain reconnect
        loop = asyncio.get_running_loop()
        give_up = loop.time() + max(4 * self._overlap_s, 10.0)
        while not handover.proven and new.handover is handover and loop.time() < give_up:
            await asyncio.sleep(0.01)
        if new not in self._links:
            return  # the replacement died; _closed() re-armed the old link
        if not handover.proven and old in self._links:
            self._record("error", f"link {old.number} retired without a proven overlap with link {new.number}")
        await self._sleep(self._overlap_s)
        if old in self._links:
            old.retired = True
            self._stats.rotations += 1
            self._rotation_delays = None
            await self._close(old, abort=False)  # _closed() ends the handover
        else:
            _end_handover(new)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- flushing and emitting ------------------------------------------------------------

    def _flush_due(self, rows: int, mono: int) -> bool:
        """The flush policy's verdict, except that a batch due by age only waits while the downstream is behind
        (see `behind`), for at most DEFER_FACTOR (or DEFER_SOME_FACTOR) x batch_ms."""
        policy = self._policy
        if not policy.due(rows, mono):
            return False
        oldest = policy.oldest_mono_ns
        if rows >= policy.batch_rows or self._behind is None or oldest is None:
            return True
        last = oldest + DEFER_FACTOR * policy.batch_ns
        if mono >= last:
            return True
        if mono < self._held_until_ns:
            return False  # the downstream was behind less than _DEFER_POLL_NS ago
        share = self._behind()
        if not share:
            return True
        if share < 1:  # a downstream keeping up waits for its rows at most DEFER_SOME_FACTOR x batch_ms
            last = oldest + DEFER_SOME_FACTOR * policy.batch_ns
            if mono >= last:
                return True
        self._held_until_ns = min(mono + _DEFER_POLL_NS, last)
        return False

    def inflight(self) -> int:
        """Batches sent and not yet answered (or waiting for a slot in the window)."""
        return self._gate.pending

    async def _flush(self) -> None:
        async with self._flush_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        columns = self._columns
        self._policy.reset()
        if not columns.pending():
            return
        receipt = self._clock()
        batches = columns.flush(receipt.wall_ns)
        batches.anchor = anchor(receipt)
        if self._notices:
            batches.notices, self._notices = tuple(self._notices), []
        self._count(batches)
        await self._ship(batches)

    def _count(self, batches: Batches) -> None:
        stats = self._stats
        events = batches.events.num_rows if batches.events is not None else 0
        stats.events += events
        stats.rows += batches.rows() - events
        stats.rejects += batches.rejects

    async def _ship(self, batches: Batches, precious: bool = False) -> None:
        rows = batches.rows()
        self._outstanding_rows += rows
        try:
            admitted = await self._gate.acquire(rows, precious)
        except BaseException:
            self._outstanding_rows -= rows
            raise
        if not admitted:
            self._outstanding_rows -= rows
            self._record("drop", f"flow window full: dropped a batch of {rows} rows")
            return
        try:
            ack = self._emit(batches)
        except Exception as exc:
            self._outstanding_rows -= rows
            self._gate.release(ok=False, rows=rows)
            self._stats.emit_errors += 1
            self._record("error", f"emit failed: {exc!r}")
            return
        self._stats.batches += 1
        task = asyncio.ensure_future(self._acknowledged(ack, rows))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _acknowledged(self, ack: Awaitable[object], rows: int) -> None:
        try:
            await ack
        except Exception as exc:
            self._outstanding_rows -= rows
            self._gate.release(ok=False, rows=rows)
            self._stats.emit_errors += 1
            self._record("error", f"downstream failed a batch: {exc!r}")
        else:
            self._outstanding_rows -= rows
            self._gate.release(ok=True, rows=rows)

    async def _deliver_snapshot(self, symbol: str, body: bytes, receipt: Receipt) -> bool:
        """Emit a fetched REST snapshot in stream order: diffs received before it are flushed first."""
        if symbol not in self._books():
            return True  # unsubscribed while it was fetched
        async with self._flush_lock:
            await self._flush_locked()
            columns = self.venue.columns()
            try:
                seq = self.venue.parse_snapshot(body, symbol, receipt, columns)
            except ParseError as exc:
                self._stats.rejects += 1
                self._record("reject", f"rest snapshot: {exc}", symbol, receipt.wall_ns)
                return False
            flushed = columns.flush(receipt.wall_ns)
            snapshot = SnapshotBatches(
                flushed.exchange, l2=flushed.l2, l2_messages=flushed.l2_messages, symbol=symbol, seq=seq
            )
            self._count(snapshot)
            self._record("resync", f"rest snapshot seq {seq}: {snapshot.rows()} levels", symbol, receipt.wall_ns)
            await self._ship(snapshot, precious=True)
            return True

    # -- shutting down --------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Cancel helpers, drop the links, flush what is buffered and wait (bounded) for the acks."""
        for task in list(self._tasks):
            task.cancel()
        for link in list(self._links):
            await self._close(link, abort=True)
        if self._closing:  # clean closes still finishing: what they record ships with the last flush
            await asyncio.wait(set(self._closing))
        if self._fetcher is not None:
            await self._fetcher.aclose()
            self._fetcher = None
        try:
            async with asyncio.timeout(self._drain_timeout_s):
                await self._flush()
                await self._gate.drain()
        except TimeoutError:
            # counted, never ignored: these rows may still be stored (a late ack) or be lost with this process
            stats = self._stats
            stats.shutdown_timeouts += 1
            stats.shutdown_unacked_batches = self._gate.pending
            stats.shutdown_unacked_rows = self._outstanding_rows + self._columns.rows()
            log.warning(
                "%s: stop: %d batch(es), %d row(s) not acknowledged within %g s",
                self.venue.name,
                stats.shutdown_unacked_batches,
                stats.shutdown_unacked_rows,
                self._drain_timeout_s,
            )


def _rotation_ns(venue: Venue, rotate_after_s: float | Literal["auto"] | None) -> int | None:
    if rotate_after_s == "auto":
        lifetime = getattr(venue, "max_lifetime_s", None) or _LIFETIMES_S.get(venue.name)
        if lifetime is None:
            return None
        rotate_after_s = max(lifetime - _ROTATION_MARGIN_S, lifetime / 2)
    return None if rotate_after_s is None else int(float(rotate_after_s) * _NS)


def _end_handover(link: _Link) -> None:
    """Detach a link and its partner from their handover."""
    for partner in (link.replaces, link.replaced_by):
        if partner is not None:
            partner.handover = partner.replaces = partner.replaced_by = None
    link.handover = link.replaces = link.replaced_by = None


def _short(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 3] + "..."


__all__ = ["Connector", "ConnectorStats", "Emit", "SnapshotBatches"]
