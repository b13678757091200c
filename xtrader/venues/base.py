"""The Venue interface: everything xtrader needs to know about an exchange, with no I/O.

A venue turns subscriptions into websocket URLs and messages, says how to keep
a connection alive, how to ask for a REST book snapshot, and parses frames
into column buffers (`xtrader.batch.Columns`). The connector (the only place
with sockets) drives it; tests drive it with recorded frames.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

from xtrader.batch import Columns
from xtrader.budget import Credits, Window
from xtrader.clock import Receipt
from xtrader.venues.compiled_columns import CompiledColumns

Table = Literal["trades", "l2", "bbo"]


@dataclass(frozen=True, order=True)
class Subscription:
    """One stream of one instrument.

    Attributes:
        table: the normalized table the stream feeds.
        symbol: the venue-native instrument id as it appears in payloads
            (`BTCUSDT`, `BTC-USDT-SWAP`, `BTC-PERPETUAL`).
        channel: a venue-native channel variant (e.g. Binance `depth@100ms`,
            OKX `books-l2-tbt`, Deribit `100ms`); None picks the venue default.
    """

    table: Table
    symbol: str
    channel: str | None = None


@dataclass(frozen=True)
class Connection:
    """A planned websocket connection: its URL and what it carries."""

    url: str
    subscriptions: tuple[Subscription, ...]


class Control(NamedTuple):
    """A non-data frame, returned by `Venue.parse` for the session to act on.

    kind is one of: ack (subscription confirmed), error (venue error reply),
    pong, heartbeat, test_request (must be answered: `Venue.reply`),
    shutdown (venue will close: reconnect now), notice, unknown (valid JSON
    we do not route; counted, not fatal).
    """

    kind: str
    detail: str = ""
    request_id: object = None


NO_CONTROL: tuple[Control, ...] = ()


@dataclass(frozen=True)
class Keepalive:
    """How the client keeps a connection alive.

    Attributes:
        ping: payload the client sends when idle for `idle_s` (OKX text `ping`);
            None when the server pings and the websocket library answers.
        idle_s: seconds of silence before the client pings.
        stale_s: seconds of silence after which the connection is presumed dead.
    """

    ping: bytes | None
    idle_s: float
    stale_s: float


@dataclass(frozen=True)
class SnapshotRequest:
    """A REST book snapshot to fetch (GET)."""

    symbol: str
    url: str


class Venue(ABC):
    """One exchange's protocol. Instances are cheap and hold only configuration.

    Args:
        ws_base: websocket base replacing the official one (e.g. a simulator's).
        rest_base: REST base replacing the official one.
    """

    #: registry name, also the value of every row's `exchange` column
    name: ClassVar[str]
    #: official bases; a simulator or mirror replaces them
    official_ws_base: ClassVar[str]
    official_rest_base: ClassVar[str]
    #: which sync rules `xtrader.sync` applies to this venue's books
    sync_kind: ClassVar[str]
    #: l2 batches must carry the exact price/size strings (checksum input)
    keep_text: ClassVar[bool] = False
    #: the book is initialised from a REST snapshot (else from a websocket snapshot)
    needs_snapshot: ClassVar[bool] = False
    #: values of a stream's `book_source` the venue supports, its default first; () means its one way
    #: (a REST snapshot when `needs_snapshot`, else the websocket's)
    book_sources: ClassVar[tuple[str, ...]] = ()
    #: streams (subscriptions) per connection this client stays under
    max_streams_per_connection: ClassVar[int] = 200
    #: the venue's book checksum over the top (price, size) text levels, best first
    #: (OKX's crc32); None when the venue publishes none
    book_checksum: ClassVar[Callable[[list[tuple[str, str]], list[tuple[str, str]]], int] | None] = None
    #: table -> column -> the wire field it comes from, in words (docs/tables.md is generated from it);
    #: `exchange` and `receive_ts` are never wire fields and are left out
    field_sources: ClassVar[Mapping[str, Mapping[str, str]]] = {}

    def __init__(self, ws_base: str | None = None, rest_base: str | None = None) -> None:
        self.ws_base = (ws_base or self.official_ws_base).rstrip("/")
        self.rest_base = (rest_base or self.official_rest_base).rstrip("/")

    def columns(self) -> Columns:
        """Fresh column buffers for one connection of this venue."""
        return Columns(self.name, keep_text=self.keep_text)

    @abstractmethod
    def connections(self, subscriptions: Sequence[Subscription]) -> list[Connection]:
        """Split subscriptions into websocket connections (URL routing, stream caps)."""

    @abstractmethod
    def initial_messages(self, connection: Connection, request_id: int) -> list[bytes]:
        """Frames to send right after connecting (subscribe requests not in the URL, heartbeat setup)."""

    def setup_messages(self, request_id: int) -> list[bytes]:
        """Frames that set a new connection up, sent as a request of their own before any subscription
        (Deribit's `public/set_heartbeat`): their reply confirms no subscription."""
        return []

    def request_groups(self, subscriptions: Sequence[Subscription]) -> list[tuple[Subscription, ...]]:
        """How a subscription change splits into requests; each gets its own id and is settled (or
        refused) on its own. Default: one request."""
        return [tuple(subscriptions)] if subscriptions else []

    def reply_covers(
        self, control: Control, subscriptions: tuple[Subscription, ...]
    ) -> tuple[Subscription, ...] | None:
        """The subscriptions of one request (`subscriptions`) that an ack or error reply is about.

        None: one of them, the venue does not say which (the request is settled, and what no
        ack confirmed refused, once `replies_expected` replies came). Default: the whole request.
        """
        return subscriptions

    def replies_expected(self, subscriptions: tuple[Subscription, ...]) -> int:
        """Replies (acks or errors) that answer a request for `subscriptions` in full. Default: one."""
        return 1

    @abstractmethod
    def subscribe_messages(self, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        """Frames that add subscriptions to an open connection."""

    @abstractmethod
    def unsubscribe_messages(self, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        """Frames that remove subscriptions from an open connection."""

    @abstractmethod
    def keepalive(self) -> Keepalive:
        """The keepalive rule of this venue."""

    def control_pacer(self) -> Window | Credits | None:
        """A fresh pacer of the frames one connection sends (the venue's inbound message limit), or None."""
        return None

    def control_cost(self, op: str) -> int:
        """What one frame of request `op` (setup, open, subscribe, unsubscribe, reply, ping) costs on the pacer."""
        return 1

    def request_budget(self) -> Window | None:
        """A fresh budget of subscribe/unsubscribe requests per connection (OKX: 480 per hour), or None."""
        return None

    def retryable(self, control: Control) -> bool:
        """An error reply that says "too many requests": retry later with backoff, never a refusal."""
        return False

    def cooldown_s(self, control: Control) -> float | None:
        """Seconds to wait before reconnecting after this error (Deribit 10028: the credits refill), or None."""
        return None

    def snapshot_weight(self, depth: int | None) -> int:
        """The REST request weight of one book snapshot of `depth` levels (0: the venue counts none)."""
        return 0

    #: the REST weight budget per IP and minute (0: none known)
    weight_limit: ClassVar[int] = 0

    def login_required(self, subscription: Subscription) -> str | None:
        """Why `subscription` needs a logged-in account (this client never logs in), or None when it is public."""
        return None

    def reply(self, control: Control, request_id: int) -> bytes | None:
        """A frame answering a control event (Deribit test_request), or None."""
        return None

    def snapshot_request(self, symbol: str, depth: int | None = None) -> SnapshotRequest | None:
        """The REST book snapshot for `symbol`, or None when the venue needs none."""
        return None

    def parse_snapshot(self, body: bytes, symbol: str, receipt: Receipt, out: Columns) -> int:
        """Append a REST snapshot's levels as `is_snapshot` l2 rows; return its sequence id.

        Raises:
            ParseError: the body is not a snapshot.
        """
        raise NotImplementedError(f"{self.name} has no REST snapshot")

    def instruments_request(self) -> list[str]:
        """REST URLs listing the venue's instruments (for start-up symbol validation)."""
        return []

    def parse_instruments(self, body: bytes) -> set[str]:
        """Instrument ids in one instruments response.

        Raises:
            ParseError: the body is not an instrument list.
        """
        return set()

    def parser(self, out: Columns) -> Callable[[bytes | str, Receipt], Sequence[Control]]:
        """`parse` into `out`, as one callable (`parser(out)(frame, receipt)`). Into a venue's `CompiledColumns`
        it is the C accumulator's `parse_or`: one C call for a frame C takes, `_parse` for the rest."""
        python = self._parse
        if isinstance(out, CompiledColumns):

            def declined(frame: bytes | str, receipt: Receipt) -> Sequence[Control]:
                return out.declined(frame, receipt, python)

            out.fast.set_fallback(NO_CONTROL, declined)
            parse_or: Callable[[bytes | str, Receipt], Sequence[Control]] = out.fast.parse_or
            return parse_or

        def parse_into(frame: bytes | str, receipt: Receipt) -> Sequence[Control]:
            return python(frame, receipt, out)

        return parse_into

    def parse(self, frame: bytes | str, receipt: Receipt, out: Columns) -> Sequence[Control]:
        """Append the frame's rows to `out`; return control events (usually none). Into a venue's
        `CompiledColumns` (`columns()` where its extension is built) the C parser takes the frame when it can,
        and the venue's Python parser (`_parse`) decides the rest; into any other columns `_parse` does.

        Raises:
            ParseError: the frame is malformed or not what the venue sends;
                nothing of it was appended.
        """
        if isinstance(out, CompiledColumns):
            if out.fast.parse(frame, receipt):
                return NO_CONTROL
            return out.declined(frame, receipt, self._parse)
        return self._parse(frame, receipt, out)

    @abstractmethod
    def _parse(self, frame: bytes | str, receipt: Receipt, out: Columns) -> Sequence[Control]:
        """The venue's Python parser: `parse`'s contract, for every frame (a compiled parser's declined ones)."""
