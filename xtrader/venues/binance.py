"""Binance spot (`binance`) and USD-M futures (`binance_futures`); COIN-M frames parse with the futures venue.

Subscriptions travel in the URL of combined-stream connections
(`/stream?streams=btcusdt@aggTrade/btcusdt@depth@100ms`), so nothing is sent
after connecting. Every event then arrives wrapped as `{"stream": .., "data": ..}`;
raw `/ws/<stream>` framing parses too, except spot partial depth, which names
its symbol only in the stream name. USD-M must route by path since 2026-04-23:
book streams on `/public`, everything else on `/market` (a stream on the wrong
path goes silent without an error), so its subscriptions split by route first.

Wire names (glossed once here; they appear nowhere outside this module):
    stream        combined-stream name (`nknusdt@depth@100ms`); data: the event
    e             event type: trade, aggTrade, depthUpdate, bookTicker (futures
                  only; the spot bookTicker has no `e`), serverShutdown, kline, ...
    E             event (output) time; T: trade / transaction time (ms, or µs
                  with `timeUnit=MICROSECOND` on spot)
    s             symbol, uppercase (stream names are lowercase)
    a             aggregate trade id (aggTrade); t: trade id (trade)
    p, q          trade price and quantity (decimal strings)
    m             buyer is the maker: true means the taker sold
    U, u          first and last book update id of a depthUpdate
    pu            futures only: the previous depthUpdate's `u`
    b, a          depthUpdate bid / ask levels `[["price", "qty"], ..]`, qty "0" deletes
    u b B a A     bookTicker: update id, best bid price / qty, best ask price / qty
    lastUpdateId  book update id of a REST snapshot or spot partial depth;
                  bids, asks: its levels
    result, id    reply to SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS;
    error         `{"code": 2, "msg": ".."}` reply to a bad request

Real payloads (shared captures binance.jsonl, binance_futures.jsonl):
    {"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,
     "p":"0.35280000","q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}}
    {"stream":"nknusdt@bookTicker","data":{"u":499869768,"s":"NKNUSDT","b":"0.35210000",
     "B":"672.00000000","a":"0.35260000","A":"3199.00000000"}}
    {"stream":"sushiusdt@depth@100ms","data":{"e":"depthUpdate","E":1626992741037,"T":1626992741024,
     "s":"SUSHIUSDT","U":600859599090,"u":600859600917,"pu":600859598061,"b":[["7.5040","813"]],"a":[]}}
    REST /fapi/v1/depth: {"lastUpdateId":600859605926,"E":1626992741264,"T":1626992741261,
     "bids":[["7.6110","6"],..],"asks":[..]}

Limits (EXCHANGES.md 1.3, 1.5, 2.2, 2.4, as stored mid-2026; the pages themselves could not be checked offline):
spot accepts 5 incoming messages per second per connection, USD-M 10 (more closes the link);
REST weight is counted per IP per minute (`REQUEST_WEIGHT` in exchangeInfo: 6000 spot, 2400 USD-M) and
reported in the `X-MBX-USED-WEIGHT-1M` header; GET /api/v3/depth weighs 5 (limit <= 100), 25 (<= 500),
50 (<= 1000), 250 (<= 5000) -- "Order book" in
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints and rest-api.md of
https://github.com/binance/binance-spot-api-docs;
GET /fapi/v1/depth weighs 2 (<= 50), 5 (100), 10 (500), 20 (1000) -- "Order Book" in
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Order-Book.
HTTP 429 asks to back off (`Retry-After`); 418 is an IP ban. `xtrader.budget` keeps under all of them.

Docs: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams ·
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams ·
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Important-WebSocket-Change-Notice
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import msgspec
import orjson

from xtrader.batch import Columns
from xtrader.budget import Window
from xtrader.clock import Receipt
from xtrader.errors import ConfigError, ParseError
from xtrader.venues import register
from xtrader.venues.base import NO_CONTROL, Connection, Control, Keepalive, SnapshotRequest, Subscription, Venue
from xtrader.venues.binance_columns import COMPILED, BinanceColumns

_MS = 1_000_000  # ns per ms
_US = 1_000  # ns per µs

#: default stream per table, and the channel variants a Subscription may ask for
_DEFAULT_CHANNEL = {"trades": "aggTrade", "l2": "depth@100ms", "bbo": "bookTicker"}
_CHANNELS = {
    "trades": re.compile(r"aggTrade|trade"),
    "l2": re.compile(r"depth(?:5|10|20)?(?:@\d+ms)?"),
    "bbo": re.compile(r"bookTicker"),
}
_SYMBOL = re.compile(r"[A-Za-z0-9_\-]+")

_STR = {str}

#: (data, stream name or None, ns per wire time unit, receive_ts, out) -> controls
Handler = Callable[[dict[str, Any], str | None, int, int, Columns], Sequence[Control]]


def _bad(what: str) -> ParseError:
    return ParseError(f"binance: bad {what}")


def _append_levels(l2: Any, bids: Any, asks: Any) -> None:
    """Append `[["price", "qty"], ..]` bids then asks to l2.price / l2.size, strings kept as sent.

    All strings: Arrow then casts the whole column at once (a number among strings would fail the
    batch). A plain loop is the fastest form for the 1-3 levels of a real frame (measured); on a bad
    level the levels appended so far are removed, so the caller appends its header only after this.
    """
    if type(bids) is not list or type(asks) is not list:
        raise _bad("levels")
    price, size = l2.price, l2.size
    start = len(price)
    try:
        for level in bids + asks:
            if type(level) is not list:
                raise _bad("level")
            level_price, level_size = level[0], level[1]  # IndexError when a level has < 2 entries
            if type(level_price) is not str or type(level_size) is not str:
                raise _bad("level value")
            price.append(level_price)
            size.append(level_size)
    except BaseException:
        del price[start:], size[start:]
        raise


def _append_book(
    out: Columns,
    symbol: Any,
    bids: Any,
    asks: Any,
    *,
    exchange_ts: int | None,
    receive_ts: int,
    seq: Any,
    prev_seq: Any = None,
    first_seq: Any = None,
    is_snapshot: bool,
) -> None:
    """Validate, then append one l2 message (bids and asks, then the header)."""
    if type(symbol) is not str or type(seq) is not int:
        raise _bad("book message")
    if (prev_seq is not None and type(prev_seq) is not int) or (first_seq is not None and type(first_seq) is not int):
        raise _bad("book update id")
    l2 = out.l2
    _append_levels(l2, bids, asks)
    l2.message(symbol, exchange_ts, receive_ts, seq, prev_seq, first_seq, is_snapshot, None, len(bids), len(asks))


def _trade_row(data: dict[str, Any], trade_id: Any, scale: int, now: int, out: Columns) -> Sequence[Control]:
    symbol, ts, price, size, maker = data["s"], data["T"], data["p"], data["q"], data["m"]
    if (
        type(symbol) is not str
        or type(ts) is not int
        or type(trade_id) is not int
        or type(price) is not str
        or type(size) is not str
        or type(maker) is not bool
    ):
        raise _bad("trade")
    trades = out.trades
    trades.symbol.append(symbol)
    trades.exchange_ts.append(ts * scale)
    trades.receive_ts.append(now)
    trades.trade_id.append(trade_id)
    trades.side.append("sell" if maker else "buy")  # m: the buyer made, so the taker sold
    trades.price.append(price)
    trades.size.append(size)
    return NO_CONTROL


def _agg_trade(data: dict[str, Any], stream: str | None, scale: int, now: int, out: Columns) -> Sequence[Control]:
    return _trade_row(data, data["a"], scale, now, out)


def _trade(data: dict[str, Any], stream: str | None, scale: int, now: int, out: Columns) -> Sequence[Control]:
    return _trade_row(data, data["t"], scale, now, out)


def _book_ticker(data: dict[str, Any], stream: str | None, scale: int, now: int, out: Columns) -> Sequence[Control]:
    symbol, seq, bid, bid_size, ask, ask_size = data["s"], data["u"], data["b"], data["B"], data["a"], data["A"]
    ts = data.get("T")  # futures transaction time; the spot bookTicker carries no time at all
    if (
        type(symbol) is not str
        or type(seq) is not int
        or (ts is not None and type(ts) is not int)
        or type(bid) is not str
        or type(bid_size) is not str
        or type(ask) is not str
        or type(ask_size) is not str
    ):
        raise _bad("bookTicker")
    bbo = out.bbo
    bbo.symbol.append(symbol)
    bbo.exchange_ts.append(None if ts is None else ts * scale)
    bbo.receive_ts.append(now)
    bbo.seq.append(seq)
    bbo.bid_price.append(bid)
    bbo.bid_size.append(bid_size)
    bbo.ask_price.append(ask)
    bbo.ask_size.append(ask_size)
    return NO_CONTROL


def _is_partial(stream: str) -> bool:
    """`btcusdt@depth5@100ms` (a complete top N) as opposed to `btcusdt@depth@100ms` (a diff)."""
    at = stream.find("@depth")
    return at >= 0 and stream[at + 6 : at + 7].isdigit()


#: stream name -> is it a partial depth stream (few distinct names per connection; bounded)
_PARTIAL: dict[str, bool] = {}


def _depth_update(data: dict[str, Any], stream: str | None, scale: int, now: int, out: Columns) -> Sequence[Control]:
    # futures: T (transaction time) is shared with the bookTicker of the same u; spot has only E
    ts = data.get("T")
    if ts is None:
        ts = data["E"]
    symbol, seq, first_seq, prev_seq, bids, asks = data["s"], data["u"], data["U"], data.get("pu"), data["b"], data["a"]
    if (
        type(ts) is not int
        or type(symbol) is not str
        or type(seq) is not int
        or (first_seq is not None and type(first_seq) is not int)
        or (prev_seq is not None and type(prev_seq) is not int)
    ):
        raise _bad("depthUpdate")
    # a futures partial depth (@depth5/10/20) is depthUpdate-shaped: only the stream name tells it apart
    is_snapshot = False
    if stream is not None:
        partial = _PARTIAL.get(stream)
        if partial is None:
            if len(_PARTIAL) >= 4096:
                _PARTIAL.clear()
            partial = _PARTIAL[stream] = _is_partial(stream)
        is_snapshot = partial
    l2 = out.l2
    _append_levels(l2, bids, asks)
    l2.symbol.append(symbol)
    l2.exchange_ts.append(ts * scale)
    l2.receive_ts.append(now)
    l2.seq.append(seq)
    l2.prev_seq.append(prev_seq)
    l2.first_seq.append(first_seq)
    l2.is_snapshot.append(is_snapshot)
    l2.checksum.append(None)
    l2.bid_rows.append(len(bids))
    l2.ask_rows.append(len(asks))
    return NO_CONTROL


def _spot_partial(data: dict[str, Any], stream: str | None, scale: int, now: int, out: Columns) -> Sequence[Control]:
    if stream is None:
        raise ParseError("binance: spot partial depth outside a combined stream has no symbol")
    symbol = stream[: stream.index("@")].upper()
    if not symbol:
        raise _bad("stream name")
    _append_book(
        out,
        symbol,
        data["bids"],
        data["asks"],
        exchange_ts=None,
        receive_ts=now,
        seq=data["lastUpdateId"],
        is_snapshot=True,
    )
    return NO_CONTROL


def _request_id(data: dict[str, Any]) -> Any:
    rid = data.get("id")
    if rid is not None and type(rid) is not int and type(rid) is not str:
        raise _bad("request id")
    return rid


def _result(data: dict[str, Any], stream: str | None, scale: int, now: int, out: Columns) -> Sequence[Control]:
    # null for (UN)SUBSCRIBE, the stream list for LIST_SUBSCRIPTIONS, a value for GET_PROPERTY
    result = data["result"]
    detail = "" if result is None else orjson.dumps(result).decode()
    return (Control("ack", detail, _request_id(data)),)


def _error(data: dict[str, Any], stream: str | None, scale: int, now: int, out: Columns) -> Sequence[Control]:
    error = data["error"]
    code, message = error["code"], error.get("msg", "")
    if type(code) is not int or type(message) is not str:
        raise _bad("error reply")
    return (Control("error", f"{code}: {message}", _request_id(data)),)


def _shutdown(data: dict[str, Any], stream: str | None, scale: int, now: int, out: Columns) -> Sequence[Control]:
    return (Control("shutdown", "serverShutdown"),)


def _unknown(data: dict[str, Any], stream: str | None, scale: int, now: int, out: Columns) -> Sequence[Control]:
    if stream is not None:
        return (Control("unknown", stream),)
    kind = data.get("e")
    return (Control("unknown", str(kind) if kind is not None else "keys=" + ",".join(list(data)[:5])),)


#: frames without `e`, told apart by the one key their shape is known by (checked in this order)
_KEYLESS: tuple[tuple[str, Handler], ...] = (
    ("u", _book_ticker),
    ("lastUpdateId", _spot_partial),
    ("result", _result),
    ("error", _error),
)


def _keyless(data: dict[str, Any], stream: str | None, scale: int, now: int, out: Columns) -> Sequence[Control]:
    for key, handler in _KEYLESS:
        if key in data:
            return handler(data, stream, scale, now, out)
    return _unknown(data, stream, scale, now, out)


#: event type `e` -> handler; anything else (kline, markPriceUpdate, 24hrTicker, ...) is unknown
_EVENTS: dict[Any, Handler] = {
    "aggTrade": _agg_trade,
    "trade": _trade,
    "depthUpdate": _depth_update,
    "bookTicker": _book_ticker,
    "serverShutdown": _shutdown,
    None: _keyless,
}

_ERRORS = (KeyError, TypeError, IndexError, ValueError, AttributeError, orjson.JSONDecodeError)


# -- typed decoding: the common combined-stream frames, decoded and type-checked by msgspec --------------------
#
# msgspec decodes the hot frames (depthUpdate, aggTrade, trade, bookTicker with `e`, wrapped in
# `{"stream":..,"data":..}`) straight into these structs, strictly: a string where an int is expected, a bool
# for an int, a float for an int, a missing field, a level that is not exactly two strings all fail the
# decode. Any frame the typed decoder does not take (other events, other shapes, malformed frames) goes
# through the dict parser above, unchanged, which accepts or rejects it exactly as before. So the typed path
# only ever takes frames the dict parser accepts, and appends the same values.


class _Depth(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    s: str
    U: int | None
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    E: int | None = None
    T: int | None = None
    pu: int | None = None


class _AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade"):
    s: str
    a: int
    p: str
    q: str
    T: int
    m: bool


class _Trade(msgspec.Struct, tag_field="e", tag="trade"):
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class _Ticker(msgspec.Struct, tag_field="e", tag="bookTicker"):
    s: str
    u: int
    b: str
    B: str
    a: str
    A: str
    T: int | None = None


class _Frame(msgspec.Struct):
    stream: str
    data: _Depth | _AggTrade | _Trade | _Ticker


_decode_typed = msgspec.json.Decoder(_Frame).decode


def _typed(frame: bytes | str, scale: int, now: int, out: Columns) -> bool:
    """Append a hot frame's rows from its typed decoding; False (nothing appended) when the dict parser
    must decide (a frame the structs do not describe, or malformed)."""
    try:
        message = _decode_typed(frame)
    except (msgspec.DecodeError, RecursionError):  # deep nesting: the dict parser says ParseError
        return False
    data = message.data
    if type(data) is _Depth:
        ts = data.T if data.T is not None else data.E
        if ts is None:
            return False
        stream = message.stream
        partial = _PARTIAL.get(stream)
        if partial is None:
            if len(_PARTIAL) >= 4096:
                _PARTIAL.clear()
            partial = _PARTIAL[stream] = _is_partial(stream)
        l2 = out.l2
        price, size = l2.price, l2.size
        bids, asks = data.b, data.a
        for level_price, level_size in bids:
            price.append(level_price)
            size.append(level_size)
        for level_price, level_size in asks:
            price.append(level_price)
            size.append(level_size)
        l2.symbol.append(data.s)
        l2.exchange_ts.append(ts * scale)
        l2.receive_ts.append(now)
        l2.seq.append(data.u)
        l2.prev_seq.append(data.pu)
        l2.first_seq.append(data.U)
        l2.is_snapshot.append(partial)
        l2.checksum.append(None)
        l2.bid_rows.append(len(bids))
        l2.ask_rows.append(len(asks))
    elif type(data) is _Ticker:
        bbo = out.bbo
        bbo.symbol.append(data.s)
        bbo.exchange_ts.append(None if data.T is None else data.T * scale)
        bbo.receive_ts.append(now)
        bbo.seq.append(data.u)
        bbo.bid_price.append(data.b)
        bbo.bid_size.append(data.B)
        bbo.ask_price.append(data.a)
        bbo.ask_size.append(data.A)
    else:
        assert type(data) is _AggTrade or type(data) is _Trade
        trades = out.trades
        trades.symbol.append(data.s)
        trades.exchange_ts.append(data.T * scale)
        trades.receive_ts.append(now)
        trades.trade_id.append(data.a if isinstance(data, _AggTrade) else data.t)
        trades.side.append("sell" if data.m else "buy")  # m: the buyer made, so the taker sold
        trades.price.append(data.p)
        trades.size.append(data.q)
    return True


#: Where each stored column comes from, per table (docs/tables.md is generated from this; keep it true to the
#: handlers above). `exchange` and `receive_ts` are not wire fields and are documented once for every venue.
SPOT_FIELD_SOURCES: dict[str, dict[str, str]] = {
    "trades": {
        "symbol": "`s`",
        "exchange_ts": "`T` (trade time; ms, or µs with `timeUnit=MICROSECOND`)",
        "trade_id": "`a` (aggTrade) / `t` (trade)",
        "side": "`m`: true (buyer is maker) → sell, false → buy",
        "price": "`p`",
        "size": "`q`",
    },
    "l2": {
        "symbol": "`s` (depthUpdate); partial depth: the stream name's symbol, uppercased; REST: the request's",
        "exchange_ts": "`E` (depthUpdate event time); null for partial depth and the REST snapshot (no time sent)",
        "seq": "`u` (depthUpdate); `lastUpdateId` (partial depth, REST `/api/v3/depth`)",
        "prev_seq": "null (spot sends no `pu`)",
        "first_seq": "`U` (depthUpdate); null otherwise",
        "side": "`b` / `bids` → bid, `a` / `asks` → ask",
        "price": "level `[price, qty]`: price",
        "size": 'level `[price, qty]`: qty ("0" deletes)',
        "is_snapshot": "false for depthUpdate; true for partial depth (`depth5/10/20`) and the REST snapshot",
    },
    "bbo": {
        "symbol": "`s`",
        "exchange_ts": "null (the spot bookTicker carries no time)",
        "seq": "`u`",
        "bid_price": "`b`",
        "bid_size": "`B`",
        "ask_price": "`a`",
        "ask_size": "`A`",
    },
}

FUTURES_FIELD_SOURCES: dict[str, dict[str, str]] = {
    "trades": {
        **SPOT_FIELD_SOURCES["trades"],
        "exchange_ts": "`T` (trade time, ms)",
    },
    "l2": {
        "symbol": "`s` (depthUpdate, also partial depth); REST: the request's",
        "exchange_ts": "`T` (transaction time; `E` only when `T` is absent); REST `/fapi/v1/depth`: `T`",
        "seq": "`u` (depthUpdate, also partial depth); `lastUpdateId` (REST snapshot)",
        "prev_seq": "`pu` (depthUpdate); null for the REST snapshot",
        "first_seq": "`U` (depthUpdate); null for the REST snapshot",
        "side": "`b` / `bids` → bid, `a` / `asks` → ask",
        "price": "level `[price, qty]`: price",
        "size": 'level `[price, qty]`: qty ("0" deletes)',
        "is_snapshot": "true for partial depth (stream `@depth5/10/20`) and the REST snapshot; false for diffs",
    },
    "bbo": {
        **SPOT_FIELD_SOURCES["bbo"],
        "exchange_ts": "`T` (transaction time, shared with the depthUpdate of the same `u`)",
    },
}


class _Binance(Venue):
    """What Binance spot and futures share: stream names, framing, event parsing, REST shapes.

    Args:
        ws_base: websocket base replacing the official one.
        rest_base: REST base replacing the official one.
        microseconds: ask for µs timestamps (`timeUnit=MICROSECOND` in the URL)
            and scale wire times accordingly; spot only.
    """

    needs_snapshot = True
    #: URL path prefixes a stream may be routed to, in connection order
    routes: ClassVar[tuple[str, ...]] = ("",)
    #: REST paths of the depth snapshot and the instrument list
    depth_path: ClassVar[str]
    instruments_path: ClassVar[str]
    #: snapshot depth asked for when the caller gives none
    default_depth: ClassVar[int]
    #: the largest snapshot depth the venue serves
    max_depth: ClassVar[int]
    #: (limit, weight) steps of the snapshot's request weight, ascending
    depth_weights: ClassVar[tuple[tuple[int, int], ...]]
    #: incoming messages per second per connection the venue allows (going over closes the link)
    inbound_per_s: ClassVar[int]
    #: seconds between the server's websocket pings
    server_ping_s: ClassVar[float]
    supports_microseconds: ClassVar[bool] = False

    def control_pacer(self) -> Window:
        """One frame less than the venue's per-second limit (the library's pongs count too), over 1.1 s
        (frames sent 1 s apart may arrive closer together)."""
        return Window(self.inbound_per_s - 1, 1.1)

    def snapshot_weight(self, depth: int | None) -> int:
        limit = self.snapshot_limit(depth)
        return next((weight for top, weight in self.depth_weights if limit <= top), self.depth_weights[-1][1])

    def __init__(self, ws_base: str | None = None, rest_base: str | None = None, *, microseconds: bool = False) -> None:
        super().__init__(ws_base, rest_base)
        if microseconds and not self.supports_microseconds:
            raise ConfigError(f"{self.name}: microseconds=True, but the venue has no timeUnit=MICROSECOND option")
        self.microseconds = microseconds
        self._scale = _US if microseconds else _MS
        self._query = "&timeUnit=MICROSECOND" if microseconds else ""

    def stream(self, subscription: Subscription) -> str:
        """The stream name of a subscription: `<lowercase symbol>@<channel>`.

        Raises:
            ConfigError: unknown table, channel not a stream of that table, or a malformed symbol.
        """
        table, symbol, channel = subscription.table, subscription.symbol, subscription.channel
        pattern = _CHANNELS.get(table)
        if pattern is None:
            raise ConfigError(f"{self.name}: table={table!r} is not one of {sorted(_CHANNELS)}")
        channel = _DEFAULT_CHANNEL[table] if channel is None else channel
        if not pattern.fullmatch(channel):
            raise ConfigError(f"{self.name}: channel={channel!r} is not a {table} stream")
        if not _SYMBOL.fullmatch(symbol):
            raise ConfigError(f"{self.name}: symbol={symbol!r} is not a Binance symbol")
        return f"{symbol.lower()}@{channel}"

    def route(self, stream: str) -> str:
        """The URL path prefix serving `stream` (spot: none)."""
        return ""

    def connections(self, subscriptions: Sequence[Subscription]) -> list[Connection]:
        by_route: dict[str, dict[str, list[Subscription]]] = {route: {} for route in self.routes}
        for subscription in subscriptions:
            stream = self.stream(subscription)
            by_route[self.route(stream)].setdefault(stream, []).append(subscription)
        connections = []
        cap = self.max_streams_per_connection
        for route, streams in by_route.items():
            names = list(streams)
            for start in range(0, len(names), cap):
                chunk = names[start : start + cap]
                url = f"{self.ws_base}{route}/stream?streams={'/'.join(chunk)}{self._query}"
                connections.append(Connection(url, tuple(s for name in chunk for s in streams[name])))
        return connections

    def initial_messages(self, connection: Connection, request_id: int) -> list[bytes]:
        return []  # subscribed by the URL

    def subscribe_messages(self, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        return self._request("SUBSCRIBE", subscriptions, request_id)

    def unsubscribe_messages(self, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        return self._request("UNSUBSCRIBE", subscriptions, request_id)

    def _request(self, method: str, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        streams = list(dict.fromkeys(self.stream(s) for s in subscriptions))
        if not streams:
            return []
        return [orjson.dumps({"method": method, "params": streams, "id": request_id})]

    def keepalive(self) -> Keepalive:
        """The server pings; the websocket library pongs. Three missed pings mean the link is dead.

        Spot pings every 20 s (stale after 60 s, when the server itself gives up on
        a silent client); USD-M every 3 min (stale after 9 min, inside its 10 min cut-off).
        """
        return Keepalive(ping=None, idle_s=self.server_ping_s, stale_s=3 * self.server_ping_s)

    def snapshot_limit(self, depth: int | None) -> int:
        """The `limit` parameter for a snapshot of at least `depth` levels (capped by the venue)."""
        return self.default_depth if depth is None else max(1, min(depth, self.max_depth))

    def snapshot_request(self, symbol: str, depth: int | None = None) -> SnapshotRequest:
        url = f"{self.rest_base}{self.depth_path}?symbol={symbol.upper()}&limit={self.snapshot_limit(depth)}"
        return SnapshotRequest(symbol, url)

    def parse_snapshot(self, body: bytes, symbol: str, receipt: Receipt, out: Columns) -> int:
        """Append the snapshot as is_snapshot rows; return its lastUpdateId. Futures time: T (REST is always ms)."""
        mark = out.mark()
        try:
            snapshot = orjson.loads(body)
            seq, ts = snapshot["lastUpdateId"], snapshot.get("T")
            if ts is not None and type(ts) is not int:
                raise _bad("snapshot time")
            exchange_ts = None if ts is None else ts * _MS
            _append_book(
                out,
                symbol,
                snapshot["bids"],
                snapshot["asks"],
                exchange_ts=exchange_ts,
                receive_ts=receipt.wall_ns,
                seq=seq,
                is_snapshot=True,
            )
            return int(seq)
        except ParseError:
            out.rollback(mark)
            raise
        except _ERRORS as exc:
            out.rollback(mark)
            raise ParseError(f"{self.name}: not a depth snapshot: {exc!r}") from exc

    def instruments_request(self) -> list[str]:
        return [f"{self.rest_base}{self.instruments_path}"]

    def parse_instruments(self, body: bytes) -> set[str]:
        """Every listed symbol (whatever its status: a halted symbol still exists)."""
        try:
            symbols = {entry["symbol"] for entry in orjson.loads(body)["symbols"]}
        except _ERRORS as exc:
            raise ParseError(f"{self.name}: not an exchangeInfo body: {exc!r}") from exc
        if {*map(type, symbols)} - _STR:
            raise ParseError(f"{self.name}: exchangeInfo symbol is not a string")
        return symbols

    def columns(self) -> Columns:
        """Column buffers with the compiled parser's when it is built (`binance_columns.COMPILED`)."""
        if COMPILED and not self.keep_text:
            return BinanceColumns(self.name, scale=self._scale)
        return super().columns()

    def _parse(self, frame: bytes | str, receipt: Receipt, out: Columns) -> Sequence[Control]:
        """The Python parser: typed decoding of the hot frames, else the dict parser. Every handler validates a
        whole event before appending any of it (one event per frame), so a rejected frame leaves nothing behind
        without a mark()/rollback()."""
        if _typed(frame, self._scale, receipt.wall_ns, out):
            return NO_CONTROL
        try:
            message: Any = orjson.loads(frame)
            if type(message) is dict:
                stream = message.get("stream")
                data: Any
                if stream is None:  # raw /ws framing, or a reply
                    data = message
                elif type(stream) is str:
                    data = message["data"]
                else:
                    raise _bad("stream name")
                if type(data) is dict:
                    return _EVENTS.get(data.get("e"), _unknown)(data, stream, self._scale, receipt.wall_ns, out)
                if type(data) is list:  # all-market arrays (`!ticker@arr`): not routed
                    return (Control("unknown", str(stream)),)
            elif type(message) is list:
                return (Control("unknown", "array"),)
            raise _bad("frame")
        except _ERRORS as exc:
            raise ParseError(f"{self.name}: malformed frame: {exc!r}") from exc


@register
class BinanceSpot(_Binance):
    """Binance spot: `wss://stream.binance.com:9443/stream?streams=..`, REST `/api/v3`."""

    name = "binance"
    official_ws_base = "wss://stream.binance.com:9443"
    official_rest_base = "https://api.binance.com"
    sync_kind = "binance_spot"
    field_sources = SPOT_FIELD_SOURCES
    depth_path = "/api/v3/depth"
    instruments_path = "/api/v3/exchangeInfo"
    #: 1000 levels (weight 50) unless configured: the documented procedure's 5000 (weight 250 of the
    #: 6000-per-minute IP budget) lets a few resyncs exhaust the budget (issue 13 section 2)
    default_depth = 1000
    max_depth = 5000
    depth_weights = ((100, 5), (500, 25), (1000, 50), (5000, 250))
    weight_limit = 6000
    inbound_per_s = 5
    server_ping_s = 20.0
    supports_microseconds = True


@register
class BinanceFutures(_Binance):
    """Binance USD-M futures: streams routed to `/public` (book) or `/market` (the rest), REST `/fapi/v1`."""

    name = "binance_futures"
    official_ws_base = "wss://fstream.binance.com"
    official_rest_base = "https://fapi.binance.com"
    sync_kind = "binance_futures"
    field_sources = FUTURES_FIELD_SOURCES
    routes = ("/public", "/market")
    depth_path = "/fapi/v1/depth"
    instruments_path = "/fapi/v1/exchangeInfo"
    default_depth = 1000
    max_depth = 1000
    depth_weights = ((50, 2), (100, 5), (500, 10), (1000, 20))
    weight_limit = 2400
    inbound_per_s = 10
    server_ping_s = 180.0
    #: the only snapshot sizes /fapi/v1/depth accepts
    depth_limits: ClassVar[tuple[int, ...]] = (5, 10, 20, 50, 100, 500, 1000)

    def route(self, stream: str) -> str:
        channel = stream.partition("@")[2]
        return "/public" if channel.startswith("depth") or channel == "bookTicker" else "/market"

    def snapshot_limit(self, depth: int | None) -> int:
        if depth is None:
            return self.default_depth
        return next((limit for limit in self.depth_limits if limit >= depth), self.depth_limits[-1])
