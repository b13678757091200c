"""Deribit API v2 (JSON-RPC over one websocket): public book, trades and top of book.

Docs: https://docs.deribit.com/articles/notifications,
https://docs.deribit.com/subscriptions/orderbook/bookinstrument_nameinterval,
https://docs.deribit.com/subscriptions/trades/tradesinstrument_nameinterval,
https://docs.deribit.com/subscriptions/market-data/quoteinstrument_name,
https://docs.deribit.com/api-reference/session-management/public-set_heartbeat
(summary in EXCHANGES.md section 4).

Every frame is JSON-RPC 2.0. Requests carry an `id`; their responses carry the
same `id` and a `result` (or an `error` `{code, message}`). Market data comes as
notifications `{"method": "subscription", "params": {"channel", "data"}}`, e.g.
(real, 2021-07-22)::

    {"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-24SEP21-8000-P.raw",
     "data":{"type":"change","timestamp":1626993726358,"prev_change_id":33195894526,
     "instrument_name":"BTC-24SEP21-8000-P","change_id":33195894530,"bids":[],"asks":[["delete",0.001,0.0]]}}}

Wire names (they appear only in this module):
    change_id: book sequence id of the message -> l2 `seq`.
    prev_change_id: the previous message's change_id; absent on snapshots -> l2 `prev_seq`.
    type: "snapshot" (replaces the book; the first push after subscribing) or "change".
    bids / asks: `[action, price, amount]` levels, action new / change / delete
        (delete -> size 0); the grouped channel `book.{inst}.{group}.{depth}.{interval}`
        sends a complete top-N snapshot of `[price, amount]` pairs, no type, no prev_change_id.
    timestamp: exchange time in ms (every payload).
    instrument_name: the instrument id (`BTC-PERPETUAL`, `BTC-24SEP21-8000-P`).
    trade_id (a string, e.g. "ETH-311974188"; anything else is rejected), direction
        (taker side), price, amount (USD for inverse products, coin for options and
        linear ones): fields of each trade of a `trades.*` notification, whose `data`
        is an array.
    best_bid_price, best_bid_amount, best_ask_price, best_ask_amount: `quote.*`
        and `ticker.*` top of book.

Prices and amounts are JSON numbers (sometimes in exponent notation): they are
appended as orjson decodes them (int or float); strings or booleans there are
rejected.

Notes on choices made here:
    * The `raw` interval needs an authenticated connection: unauthenticated it is
      refused with error 13778 (and a request mixing raw with other channels may
      fail as a whole). Raw channels parse, and are sent in subscribe requests of
      their own, but this client does not authenticate, so `login_required` names
      them and the configuration refuses them; use `100ms` (which still carries
      every update, batched). Source: EXCHANGES.md 4.2, from
      https://docs.deribit.com/subscriptions/orderbook/bookinstrument_nameinterval
      (as stored mid-2026; not re-checked offline).
    * An empty side of the top of book is null in `quote` but was `0.0` price and
      `0.0` amount in `ticker` pushes (real 2021 capture): a side with a null price
      or a zero amount becomes a null bid/ask in the bbo table.
    * Platform state: every connection subscribes `platform_state` and
      `platform_state.public_methods_state` in its setup (docs: "platform_state" and
      "platform_state.public_methods_state" under https://docs.deribit.com/subscriptions/platform/,
      as stored in the search corpus, no date shown; read offline, not re-checked live). A
      `maintenance: true` push, or `allow_unauthenticated_public_requests: false`, becomes a
      `pause` control: an events row, no more requests on the link, and a reconnect that waits
      (`Connector(pause_wait_s=)`) instead of hammering; `false` / `true` resumes. The page lists
      `price_index` + `locked` (an index lock: an events row only); the `maintenance` field name is
      the channel's stated purpose ("detect maintenance periods") as this client reads it
      **[unverified]**.
    * Credits (https://docs.deribit.com/articles/rate-limits and the support article "Rate Limits",
      https://support.deribit.com/hc/en-us/articles/25944617523357-Rate-Limits, via EXCHANGES.md 4.5,
      as stored mid-2026, not re-checked offline): 500 credits a request from a 50,000 pool refilled
      at 10,000/s; subscribe calls reported at 3,000 from a 30,000 pool **[unverified]**. The
      connection's pacer (`control_pacer`) plans with the stricter numbers: a 30,000 pool refilled at
      10,000/s, 3,000 a (un)subscribe, 500 anything else. Error 10028 `too_many_requests` ends the
      session: it is retried, never a refusal, and the reconnect waits `CREDIT_REFILL_S` for the pool.
    * Subscribe requests hold at most `MAX_CHANNELS_PER_REQUEST` channels (very large
      requests fail with -32600); a connection carries at most
      `max_streams_per_connection` channels, so a few requests each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import orjson

from xtrader.batch import Columns
from xtrader.budget import Credits
from xtrader.clock import Receipt
from xtrader.errors import ConfigError, ParseError
from xtrader.venues import register
from xtrader.venues.base import NO_CONTROL, Connection, Control, Keepalive, Subscription, Venue
from xtrader.venues.deribit_columns import COMPILED, DeribitColumns

#: seconds between server heartbeats we ask for (Deribit's minimum is 10)
HEARTBEAT_S = 15
#: channels per public/subscribe request
MAX_CHANNELS_PER_REQUEST = 100
#: platform channels every connection subscribes in its setup
PLATFORM_CHANNELS = ("platform_state", "platform_state.public_methods_state")
#: the pacer's credit pool, refill per second, and costs (see "Credits" above)
CREDIT_POOL, CREDIT_REFILL_PER_S = 30_000, 10_000
SUBSCRIBE_COST, REQUEST_COST = 3_000, 500
#: after 10028, wait this long for the pool to refill before reconnecting
CREDIT_REFILL_S = 50_000 / 10_000
_TOO_MANY = "10028 "
#: book / trades / ticker update intervals (`raw` needs authentication)
INTERVALS = frozenset({"raw", "100ms", "agg2"})

_MS = 1_000_000
_NUMBER = frozenset({int, float})
#: Arrow refuses to cast ints beyond +-2**53 to float64 (not exactly representable)
_EXACT = 1 << 53
_ACTIONS = frozenset({"new", "change", "delete"})
_SIDES = frozenset({"buy", "sell"})
_ERRORS = (KeyError, TypeError, IndexError, ValueError, AttributeError, orjson.JSONDecodeError)

Handler = Callable[[Any, Receipt, Columns], Sequence[Control]]

#: Where each stored column comes from, per table (docs/tables.md is generated from this; keep it true to the
#: handlers below). `exchange` and `receive_ts` are not wire fields and are documented once for every venue.
FIELD_SOURCES: dict[str, dict[str, str]] = {
    "trades": {
        "symbol": "`instrument_name`",
        "exchange_ts": "`timestamp` (ms)",
        "trade_id": "`trade_id`",
        "side": "`direction`",
        "price": "`price`",
        "size": "`amount` (USD for inverse products, coin for options and linear ones)",
    },
    "l2": {
        "symbol": "`instrument_name`",
        "exchange_ts": "`timestamp` (ms)",
        "seq": "`change_id`",
        "prev_seq": "`prev_change_id`; null on snapshots and grouped books",
        "first_seq": "null",
        "side": "`bids` → bid, `asks` → ask",
        "price": "level `[action, price, amount]` (grouped book: `[price, amount]`): price",
        "size": "level amount; 0 when the action is `delete`",
        "is_snapshot": '`type` == "snapshot"; always true for grouped books (`book.{inst}.{group}.{depth}.{interval}`)',
    },
    "bbo": {
        "symbol": "`instrument_name`",
        "exchange_ts": "`timestamp` (ms)",
        "seq": "null (quote and ticker carry no book sequence)",
        "bid_price": "`best_bid_price`; null when the side is empty (null price or zero amount)",
        "bid_size": "`best_bid_amount`; null when the side is empty",
        "ask_price": "`best_ask_price`; null when the side is empty (null price or zero amount)",
        "ask_size": "`best_ask_amount`; null when the side is empty",
    },
}


def channel_name(subscription: Subscription) -> str:
    """The Deribit channel of a subscription.

    Defaults: trades -> `trades.{inst}.100ms`, l2 -> `book.{inst}.100ms`, bbo -> `quote.{inst}`.
    `Subscription.channel` picks an interval (`raw`, `100ms`, `agg2`) for trades and l2,
    a grouped book `{group}.{depth}.{interval}` (e.g. `none.10.100ms`) for l2, and
    `quote`, `ticker` or `ticker.{interval}` for bbo.

    Raises:
        ConfigError: the channel variant does not exist for the table.
    """
    inst, variant, table = subscription.symbol, subscription.channel, subscription.table
    if table == "bbo":
        if variant is None or variant == "quote":
            return f"quote.{inst}"
        if variant == "ticker":
            return f"ticker.{inst}.100ms"
        if variant.startswith("ticker.") and variant[7:] in INTERVALS:
            return f"{variant[:6]}.{inst}.{variant[7:]}"
    else:
        prefix = "book" if table == "l2" else "trades"
        if variant is None:
            return f"{prefix}.{inst}.100ms"
        if variant in INTERVALS:
            return f"{prefix}.{inst}.{variant}"
        parts = variant.split(".")
        if table == "l2" and len(parts) == 3 and parts[2] in INTERVALS:
            return f"book.{inst}.{variant}"
    raise ConfigError(f"deribit: channel {variant!r} is not a {table} variant (subscription {subscription})")


def _request(request_id: int, method: str, params: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def _unique_channels(subscriptions: Sequence[Subscription]) -> list[str]:
    return list(dict.fromkeys(channel_name(s) for s in subscriptions))


def _chunks(channels: list[str]) -> list[list[str]]:
    """Channels in requests of <= MAX_CHANNELS_PER_REQUEST, `raw` ones in requests of their own."""
    step = MAX_CHANNELS_PER_REQUEST
    chunks: list[list[str]] = []
    for group in ([c for c in channels if not c.endswith(".raw")], [c for c in channels if c.endswith(".raw")]):
        chunks.extend(group[i : i + step] for i in range(0, len(group), step))
    return chunks


@register
class Deribit(Venue):
    """Deribit v2 public market data. Books start from the first websocket push (a snapshot)."""

    name: ClassVar[str] = "deribit"
    official_ws_base: ClassVar[str] = "wss://www.deribit.com"
    official_rest_base: ClassVar[str] = "https://www.deribit.com"
    sync_kind: ClassVar[str] = "deribit"
    needs_snapshot: ClassVar[bool] = False
    #: no documented cap; 32 connections per IP is the scarcer resource
    max_streams_per_connection: ClassVar[int] = 300
    field_sources: ClassVar[Mapping[str, Mapping[str, str]]] = FIELD_SOURCES

    def login_required(self, subscription: Subscription) -> str | None:
        try:
            name = channel_name(subscription)
        except ConfigError:
            return None  # not a channel at all: `connections` reports it
        if not name.endswith(".raw"):
            return None
        return f"deribit: channel {name} (interval raw) needs an authenticated connection (error 13778 otherwise)"

    def connections(self, subscriptions: Sequence[Subscription]) -> list[Connection]:
        """Pack subscriptions into connections of at most `max_streams_per_connection` channels.

        Raises:
            ConfigError: a subscription names a channel variant Deribit does not have.
        """
        url = f"{self.ws_base}/ws/api/v2"
        unique = list(dict.fromkeys(subscriptions))
        for subscription in unique:
            channel_name(subscription)  # validate the whole plan before connecting
        step = self.max_streams_per_connection
        return [Connection(url, tuple(unique[i : i + step])) for i in range(0, len(unique), step)]

    def setup_messages(self, request_id: int) -> list[bytes]:
        """`public/set_heartbeat` and the platform-state subscription, a request of their own: their
        replies confirm no market-data subscription."""
        return [
            _request(request_id, "public/set_heartbeat", {"interval": HEARTBEAT_S}),
            _request(request_id + 1, "public/subscribe", {"channels": list(PLATFORM_CHANNELS)}),
        ]

    def control_pacer(self) -> Credits:
        return Credits(CREDIT_POOL, CREDIT_REFILL_PER_S)

    def control_cost(self, op: str) -> int:
        return SUBSCRIBE_COST if op in ("setup", "open", "subscribe", "unsubscribe") else REQUEST_COST

    def retryable(self, control: Control) -> bool:
        """10028 too_many_requests: wait for credits, then ask again."""
        return control.kind == "error" and control.detail.startswith(_TOO_MANY)

    def cooldown_s(self, control: Control) -> float | None:
        return CREDIT_REFILL_S if self.retryable(control) else None

    def initial_messages(self, connection: Connection, request_id: int) -> list[bytes]:
        """The subscribe requests (ids request_id, +1, ...); the heartbeat is `setup_messages`."""
        return self.subscribe_messages(connection.subscriptions, request_id)

    def request_groups(self, subscriptions: Sequence[Subscription]) -> list[tuple[Subscription, ...]]:
        """Requests of <= MAX_CHANNELS_PER_REQUEST channels, `raw` ones apart (see `_channel_requests`):
        each has its own id, so a refused one (13778) refuses only its own channels."""
        by_channel: dict[str, list[Subscription]] = {}
        for subscription in subscriptions:
            by_channel.setdefault(channel_name(subscription), []).append(subscription)
        return [tuple(s for c in chunk for s in by_channel[c]) for chunk in _chunks(list(by_channel))]

    def reply_covers(
        self, control: Control, subscriptions: tuple[Subscription, ...]
    ) -> tuple[Subscription, ...] | None:
        """An ack covers the channels its result lists (the others were not subscribed: check each
        result, EXCHANGES.md 4.2); an error covers the whole request."""
        if control.kind != "ack":
            return subscriptions
        confirmed = set(control.detail.split(",")) if control.detail else set()
        return tuple(s for s in subscriptions if channel_name(s) in confirmed)

    def subscribe_messages(self, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        """`public/subscribe` requests of <= MAX_CHANNELS_PER_REQUEST channels, ids request_id, +1, ..."""
        return self._channel_requests("public/subscribe", subscriptions, request_id)

    def unsubscribe_messages(self, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        """`public/unsubscribe` requests, split like the subscribe requests."""
        return self._channel_requests("public/unsubscribe", subscriptions, request_id)

    def _channel_requests(self, method: str, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        """Chunks of MAX_CHANNELS_PER_REQUEST; `raw` channels go in requests of their own, because
        an unauthenticated request mixing raw with other channels has been seen to fail as a whole."""
        chunks = _chunks(_unique_channels(subscriptions))
        return [_request(request_id + n, method, {"channels": chunk}) for n, chunk in enumerate(chunks)]

    def keepalive(self) -> Keepalive:
        """The server heartbeats every HEARTBEAT_S once asked; silence for 2.5 of them means dead."""
        return Keepalive(ping=None, idle_s=float(HEARTBEAT_S), stale_s=2.5 * HEARTBEAT_S)

    def reply(self, control: Control, request_id: int) -> bytes | None:
        """A `test_request` heartbeat must be answered with `public/test` or the server closes."""
        if control.kind == "test_request":
            return _request(request_id, "public/test", {})
        return None

    def instruments_request(self) -> list[str]:
        """One `public/get_instruments` per settlement currency."""
        return [f"{self.rest_base}/api/v2/public/get_instruments?currency={c}" for c in ("BTC", "ETH", "USDC", "SOL")]

    def parse_instruments(self, body: bytes) -> set[str]:
        """The `instrument_name`s of a get_instruments response.

        Raises:
            ParseError: the body is not a get_instruments result (or is an error response).
        """
        try:
            message = orjson.loads(body)
            if "error" in message:
                raise ParseError(f"deribit get_instruments error: {_error_detail(message['error'])}")
            names = {item["instrument_name"] for item in message["result"]}
        except _ERRORS as exc:
            raise ParseError(f"deribit get_instruments: {exc!r}") from None
        if not all(type(n) is str for n in names):
            raise ParseError("deribit get_instruments: non-string instrument_name")
        return names

    def columns(self) -> Columns:
        """Column buffers with the compiled parser's when it is built (`deribit_columns.COMPILED`)."""
        if COMPILED and not self.keep_text:
            return DeribitColumns(self.name)
        return super().columns()

    def _parse(self, frame: bytes | str, receipt: Receipt, out: Columns) -> Sequence[Control]:
        """The Python parser: route a frame on its JSON-RPC `method` (None: a response to one of our requests).

        Atomicity without `out.mark()` (which costs as much as the rest of a parse):
        the book and top-of-book handlers validate everything before appending, and
        the trades handler truncates its own lists when a later trade is malformed.
        """
        try:
            message = orjson.loads(frame)
            if type(message) is not dict:
                raise ParseError(f"deribit: not a JSON-RPC object: {type(message).__name__}")
            handler = _METHODS.get(message.get("method"))
            if handler is None:
                return (Control("unknown", f"method {message['method']!r}"),)
            return handler(message, receipt, out)
        except _ERRORS as exc:
            raise ParseError(f"deribit: {exc!r}") from None


# --- responses and heartbeats -------------------------------------------------------------


def _error_detail(error: Any) -> str:
    code, text = error["code"], error["message"]
    if type(code) is not int or type(text) is not str:
        raise ParseError(f"deribit: malformed error {error!r}")
    return f"{code} {text}"


def _response(message: Any, receipt: Receipt, out: Columns) -> Sequence[Control]:
    """`{"id": 7, "result": [...channels]}` -> ack listing them; `"result": "ok"` (set_heartbeat) -> ack."""
    request_id = message.get("id")
    if "result" in message:
        result = message["result"]
        if type(result) is list:
            detail = ",".join(result)  # TypeError (-> ParseError) on a non-string channel
        elif type(result) is str:
            detail = result
        else:
            detail = orjson.dumps(result).decode()  # public/test: {"version": "1.2.26"}
        return (Control("ack", detail, request_id),)
    if "error" in message:
        return (Control("error", _error_detail(message["error"]), request_id),)
    return (Control("unknown", "response without result or error", request_id),)


_HEARTBEATS = {
    "heartbeat": (Control("heartbeat"),),
    "test_request": (Control("test_request"),),
}


def _heartbeat(message: Any, receipt: Receipt, out: Columns) -> Sequence[Control]:
    """`{"method": "heartbeat", "params": {"type": "heartbeat" | "test_request"}}`."""
    kind = message["params"]["type"]
    if type(kind) is not str:
        raise ParseError(f"deribit: heartbeat type {kind!r}")
    return _HEARTBEATS.get(kind) or (Control("unknown", f"heartbeat type {kind!r}"),)


def _notification(message: Any, receipt: Receipt, out: Columns) -> Sequence[Control]:
    """`{"method": "subscription", "params": {"channel": "book.X.100ms", "data": ...}}`."""
    params = message["params"]
    channel = params["channel"]
    if type(channel) is not str:
        raise ParseError(f"deribit: channel {channel!r}")
    prefix = channel.partition(".")[0]
    if prefix == "platform_state":
        return _platform_state(channel, params["data"])
    handler = _CHANNELS.get(prefix)
    if handler is None:
        return (Control("unknown", f"channel {channel}"),)
    handler(channel, params["data"], receipt.wall_ns, out)
    return NO_CONTROL


def _platform_state(channel: str, data: Any) -> Sequence[Control]:
    """`platform_state` / `platform_state.public_methods_state` pushes -> pause / resume / notice controls."""
    if type(data) is not dict:
        raise ParseError(f"deribit: {channel} data {data!r:.100}")
    controls: list[Control] = []
    allowed = data.get("allow_unauthenticated_public_requests")
    if type(allowed) is bool:
        kind = "resume" if allowed else "pause"
        controls.append(Control(kind, f"{channel}: public methods {'enabled' if allowed else 'disabled'}"))
    maintenance = data.get("maintenance")
    if type(maintenance) is bool:
        controls.append(Control("pause" if maintenance else "resume", f"{channel}: maintenance {maintenance}"))
    if "locked" in data:
        controls.append(Control("notice", f"{channel}: index {data.get('price_index')} locked={data['locked']}"))
    return controls or (Control("unknown", f"{channel}: {orjson.dumps(data).decode()[:200]}"),)


# --- market data ------------------------------------------------------------------------------


def _book(channel: str, data: Any, receive_ts: int, out: Columns) -> None:
    """Incremental `book.{inst}.{interval}` or grouped `book.{inst}.{group}.{depth}.{interval}`."""
    symbol, seq, ts = data["instrument_name"], data["change_id"], data["timestamp"]
    if type(symbol) is not str or type(seq) is not int or type(ts) is not int:
        raise ParseError("deribit book: bad instrument_name, change_id or timestamp")
    if channel.count(".") == 4:  # grouped: a complete top-N snapshot of [price, amount]
        bid_prices, bid_sizes = _pairs(data["bids"])
        ask_prices, ask_sizes = _pairs(data["asks"])
        prev_seq, is_snapshot = None, True
    else:
        kind = data["type"]
        if kind == "snapshot":
            is_snapshot = True
        elif kind == "change":
            is_snapshot = False
        else:
            raise ParseError(f"deribit book: type {kind!r}")
        prev_seq = data.get("prev_change_id")
        if prev_seq is not None and type(prev_seq) is not int:
            raise ParseError(f"deribit book: prev_change_id {prev_seq!r}")
        bid_prices, bid_sizes = _actions(data["bids"])
        ask_prices, ask_sizes = _actions(data["asks"])
    l2 = out.l2
    l2.message(symbol, ts * _MS, receive_ts, seq, prev_seq, None, is_snapshot, None, len(bid_prices), len(ask_prices))
    l2.price.extend(bid_prices)
    l2.price.extend(ask_prices)
    l2.size.extend(bid_sizes)
    l2.size.extend(ask_sizes)


def _actions(levels: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """`[[action, price, amount], ...]` -> (prices, sizes); a `delete` level gets size 0."""
    if type(levels) is not list:
        raise ParseError("deribit book: levels are not a list")
    if not levels:
        return (), ()
    actions, prices, sizes = zip(*levels, strict=True)
    if not (_ACTIONS.issuperset(actions) and _numbers(prices) and _numbers(sizes)):
        raise ParseError("deribit book: bad level action, price or amount")
    if "delete" in actions:
        sizes = tuple(0 if action == "delete" else size for action, size in zip(actions, sizes, strict=True))
    return prices, sizes


def _numbers(values: tuple[Any, ...]) -> bool:
    """True when every value is a JSON number that Arrow casts to float64 (no bool, str, None)."""
    types = set(map(type, values))
    if not _NUMBER.issuperset(types):
        return False
    return int not in types or all(-_EXACT <= v <= _EXACT for v in values if type(v) is int)


def _pairs(levels: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """`[[price, amount], ...]` -> (prices, sizes)."""
    if type(levels) is not list:
        raise ParseError("deribit book: levels are not a list")
    if not levels:
        return (), ()
    prices, sizes = zip(*levels, strict=True)
    if not (_numbers(prices) and _numbers(sizes)):
        raise ParseError("deribit book: bad level price or amount")
    return prices, sizes


def _trades(channel: str, data: Any, receive_ts: int, out: Columns) -> None:
    """`trades.{inst}.{interval}`: `data` is an array of trades."""
    if type(data) is not list:
        raise ParseError("deribit trades: data is not an array")
    trades = out.trades
    start = len(trades.symbol)
    try:
        for trade in data:
            symbol, ts, trade_id = trade["instrument_name"], trade["timestamp"], trade["trade_id"]
            side, price, size = trade["direction"], trade["price"], trade["amount"]
            if (
                type(symbol) is not str
                or type(ts) is not int
                or type(trade_id) is not str
                or side not in _SIDES
                or not _numbers((price, size))
            ):
                raise ParseError(f"deribit trades: malformed trade {trade!r}")
            trades.symbol.append(symbol)
            trades.exchange_ts.append(ts * _MS)
            trades.receive_ts.append(receive_ts)
            trades.trade_id.append(trade_id)
            trades.side.append(side)
            trades.price.append(price)
            trades.size.append(size)
    except Exception:
        for name in ("symbol", "exchange_ts", "receive_ts", "trade_id", "side", "price", "size"):
            del getattr(trades, name)[start:]  # an earlier trade of this frame must not stay behind
        raise


def _is_price(value: Any) -> bool:
    """None (an empty side) or a JSON number that Arrow casts to float64 exactly (as `_numbers`)."""
    kind = type(value)
    return value is None or kind is float or (kind is int and -_EXACT <= value <= _EXACT)


def _top_of_book(channel: str, data: Any, receive_ts: int, out: Columns) -> None:
    """`quote.{inst}` or `ticker.{inst}.{interval}`: their best_* fields -> one bbo row."""
    symbol, ts = data["instrument_name"], data["timestamp"]
    bid_price, bid_size = data["best_bid_price"], data["best_bid_amount"]
    ask_price, ask_size = data["best_ask_price"], data["best_ask_amount"]
    if (
        type(symbol) is not str
        or type(ts) is not int
        or not _is_price(bid_price)
        or not _is_price(bid_size)
        or not _is_price(ask_price)
        or not _is_price(ask_size)
    ):
        raise ParseError("deribit quote: bad instrument_name, timestamp or best_* field")
    if bid_price is None or not bid_size:  # empty side: null price, or ticker's 0.0 / 0.0
        bid_price = bid_size = None
    if ask_price is None or not ask_size:
        ask_price = ask_size = None
    bbo = out.bbo
    bbo.symbol.append(symbol)
    bbo.exchange_ts.append(ts * _MS)
    bbo.receive_ts.append(receive_ts)
    bbo.seq.append(None)
    bbo.bid_price.append(bid_price)
    bbo.bid_size.append(bid_size)
    bbo.ask_price.append(ask_price)
    bbo.ask_size.append(ask_size)


#: JSON-RPC `method` -> handler; None is a response to one of our requests
_METHODS: dict[object, Handler] = {
    None: _response,
    "subscription": _notification,
    "heartbeat": _heartbeat,
}

#: channel prefix (before the first dot) -> data handler
_CHANNELS: dict[str, Callable[[str, Any, int, Columns], None]] = {
    "book": _book,
    "trades": _trades,
    "ticker": _top_of_book,
    "quote": _top_of_book,
}
