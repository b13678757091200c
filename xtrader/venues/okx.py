"""OKX v5 public market data: trades, order books (books*, books5), best bid/offer (bbo-tbt, tickers).

Docs: https://www.okx.com/docs-v5/en/#overview-websocket (connect, subscribe,
notifications), https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel,
https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-order-book (REST book),
https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments. Summary: EXCHANGES.md section 3.
OKX API changelog https://www.okx.com/docs-v5/log_en, "Delist initial snapshot and checksum field in order
book channels" (last update 12 Feb 2026; production "early August 2026"): books, books-elp, books-l2-tbt and
books50-l2-tbt stop sending the initial snapshot; the book then comes from `GET /api/v5/market/books?instId=..
&source=0` bridged by seqId (EXCHANGES.md 3.6). Read through EXCHANGES.md and issue 13; the changelog page
itself could not be checked offline. OKX support notice "OKX Will Change Subscription Rules for TBT Order
Book Channels on WebSocket API" (April 2022): books-l2-tbt / books50-l2-tbt need a login ("Please log in",
60011) and a VIP fee tier (64003). The tiers quoted below (books-l2-tbt VIP5, books50-l2-tbt VIP4) are issue
13's; EXCHANGES.md 3.4 says VIP4+ for both; neither could be checked offline.

A real push (okx.jsonl, 2022; newer messages add `seqId` / `prevSeqId`)::

    {"arg":{"channel":"books","instId":"BTC-USD-220527"},"action":"update",
     "data":[{"asks":[["30249.4","0","0","0"],["30261","4","0","1"]],"bids":[["30182.6","452","0","1"]],
              "ts":"1652459225464","checksum":-914047754}]}

Wire names (used only in this module):
    arg.channel, arg.instId: the channel and the instrument of a push or an ack.
    action: "snapshot" (replace the book) or "update" (upsert levels) on the incremental book channels.
    data: ARRAY of records; one frame may carry several.
    asks, bids: levels [px, sz, "0" (deprecated), numOrders], all strings, best first; sz "0" deletes.
    ts: exchange time, epoch milliseconds as a string.
    seqId, prevSeqId: book sequence id of this message and of the previous one (-1 on a snapshot;
        prevSeqId == seqId on a no-change message; seqId < prevSeqId on a reset).
    checksum: signed crc32 of the top 25 levels after the message (`okx_checksum`); 0 = none (OKX sends 0
        since 2026-06-23).
    tradeId, px, sz, side: trade id (the last of an aggregate), price, size, taker side.
    bidPx, bidSz, askPx, askSz: best bid / ask of `tickers` ("" when the side is empty).
    event, code, msg, id, connId: subscribe / unsubscribe acks, errors and notices (64008 = service upgrade).

Limits: at most 480 subscribe/unsubscribe/login requests per connection per hour, and error 60014
"Requests too frequent" (OKX API docs, "WebSocket" overview https://www.okx.com/docs-v5/en/#overview-websocket
and the WebSocket error-code table; read through EXCHANGES.md 3.1-3.2, as stored mid-2026: the pages
themselves could not be checked offline). `request_budget` keeps each connection under 480 per hour, and a
60014 is retried with backoff (`retryable`), never taken as a refusal.

Notes on choices made here:
    * Books without `seqId` (before OKX added it) get seq = `ts` in ms and a null prev_seq: only the
      checksum can check them. `prevSeqId` -1 (a snapshot) becomes a null prev_seq; a reset
      (seqId < prevSeqId) and a no-change message (prevSeqId == seqId, no levels: a header with 0 rows)
      are reported as sent, for `xtrader.sync` to judge.
    * `books-l2-tbt` / `books50-l2-tbt` need a logged-in VIP account; this client does not log in, so
      `login_required` names them and the configuration refuses them (OKX would answer 64003 at run time
      and the book would never become valid). They still parse, for captures taken with a login.
    * Every subscribe request of one call carries the same `id` (str of request_id); acks echo it and
      `Control.request_id` gives it back as an int.
    * Prices and sizes stay the venue's strings (checksum input); a string holding anything but
      `0-9 . - + e E` is rejected at parse time, because Arrow would refuse it at flush.
    * Books start from a websocket snapshot when one comes, else from the REST book (`snapshot_request`,
      `parse_snapshot`) bridged by seqId: a stream's `book_source` (`book_sources`: auto, ws, rest) says
      which the connector waits for; `xtrader.sync.OkxRules` accepts both. `needs_snapshot` stays False:
      not every book needs a REST snapshot.
    * With the extension built, `columns()` gives `OkxColumns` and the data pushes (books*, trades, bbo-tbt,
      tickers) are parsed in C (`_okx_fast.c`, `okx_columns.py`), which takes a frame only when it appends exactly
      what the handlers below would and declines the rest to them (`_parse`). A change to the handlers must be
      mirrored there; tests/unit/test_okx_compiled.py checks that both agree.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import orjson

from xtrader.batch import Columns
from xtrader.budget import Window
from xtrader.clock import Receipt
from xtrader.errors import ConfigError, ParseError
from xtrader.venues import register
from xtrader.venues.base import NO_CONTROL, Connection, Control, Keepalive, SnapshotRequest, Subscription, Venue
from xtrader.venues.okx_columns import COMPILED, OkxColumns

#: channels each table can be fed from; the first is the default
CHANNELS: dict[str, tuple[str, ...]] = {
    "trades": ("trades",),
    "l2": ("books", "books-l2-tbt", "books50-l2-tbt", "books5"),
    "bbo": ("bbo-tbt", "tickers"),
}
#: 50/400-level channels: OKX recommends fewer than 30 of them per connection (EXCHANGES.md 3.2)
DEEP_BOOKS = frozenset({"books", "books-l2-tbt", "books50-l2-tbt"})
#: need a logged-in account of this fee tier (issue 13; EXCHANGES.md 3.4 says VIP4+ for both): this client has none
LOGIN_CHANNELS = {"books-l2-tbt": "VIP5", "books50-l2-tbt": "VIP4"}
#: sz of the REST book: OKX serves at most 400 levels per side
REST_BOOK_MAX = 400
#: args of one request total at most 64 KB
MAX_REQUEST_BYTES = 64 * 1024

#: subscribe/unsubscribe/login requests per connection per hour (EXCHANGES.md 3.2)
REQUESTS_PER_HOUR = 480
#: "Requests too frequent": retried with backoff, never a refusal
_TOO_FREQUENT = "60014"
#: error codes about a whole request, not one of its args: bad JSON / op, bad args, too frequent
_REQUEST_ERRORS = frozenset({"60011", "60012", "60013", "60014"})
#: an error message naming its arg (60018: "Wrong URL or channel:books,instId:NOPE-USDT doesn't exist...")
_NAMED_ARG = re.compile(r"channel:([\w-]+),\s*instId:([\w-]+)")
_CODE = re.compile(r"code (\d+):")
_ERRORS = (KeyError, TypeError, IndexError, ValueError, AttributeError, OverflowError)
_PONG = (Control("pong"),)
_PONG_FRAMES = frozenset({b"pong", "pong"})
_SHUTDOWN_CODE = "64008"
_SIDES = frozenset({"buy", "sell"})
_STR = {str}
_LIST = {list}
#: characters of a decimal string. Checked cheaply (str.translate, in C) so that a frame whose numbers Arrow could
#: not cast ("1_0", " 1": float() takes them, Arrow does not) is rejected here, not at flush
_NOT_DECIMAL = str.maketrans("", "", "0123456789.-+eE")  # str.translate(_NOT_DECIMAL) leaves the other characters


def okx_checksum(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
    """OKX's legacy book checksum (EXCHANGES.md 3.7).

    Args:
        bids: (price_text, size_text) best first, exactly as received.
        asks: likewise.

    Returns:
        crc32 of "bid1px:bid1sz:ask1px:ask1sz:..." over the top 25 of each side, as a signed 32-bit int.
    """
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.append(bids[i][0])
            parts.append(bids[i][1])
        if i < len(asks):
            parts.append(asks[i][0])
            parts.append(asks[i][1])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _ns(ts: Any) -> int:
    """`ts` (ms as a string) -> epoch nanoseconds."""
    if type(ts) is not str:
        raise ParseError(f"okx: ts must be a string, got {ts!r:.40}")
    return int(ts) * 1_000_000


def _decimal(value: Any) -> str:
    """A price/size string, kept as sent."""
    if type(value) is not str or value.translate(_NOT_DECIMAL):
        raise ParseError(f"okx: not a decimal string: {value!r:.40}")
    return value


def _opt_int(record: dict[str, Any], key: str) -> int | None:
    value = record.get(key)
    if value is not None and type(value) is not int:
        raise ParseError(f"okx: {key} must be an integer, got {value!r:.40}")
    return value


def _book(record: Any, symbol: str, receive_ts: int, out: Columns, is_snapshot: bool, seq_fields: bool) -> None:
    """Check one book record completely, then append it: its bid and ask levels, then its header."""
    bids, asks = record["bids"], record["asks"]
    if type(bids) is not list or type(asks) is not list:
        raise ParseError("okx: asks/bids must be an array")
    levels = bids + asks
    if levels:
        if set(map(type, levels)) != _LIST:
            raise ParseError("okx: a level is not an array")
        prices, sizes, *_ = zip(*levels, strict=False)  # ValueError when a level has < 2 items
        # one C-speed check for all levels; join raises TypeError on a non-string
        if "".join(prices + sizes).translate(_NOT_DECIMAL):
            raise ParseError("okx: level price/size must be decimal strings")
    exchange_ts = record["ts"]
    if type(exchange_ts) is not str:
        raise ParseError(f"okx: ts must be a string, got {exchange_ts!r:.40}")
    exchange_ts = int(exchange_ts) * 1_000_000
    seq = record.get("seqId")
    prev_seq = checksum = None
    if seq is None:  # before seqId existed (e.g. the 2022 capture): ts in ms orders the messages
        seq = exchange_ts // 1_000_000
    elif type(seq) is not int:
        raise ParseError(f"okx: seqId must be an integer, got {seq!r:.40}")
    elif seq_fields:
        prev_seq = _opt_int(record, "prevSeqId")
        if prev_seq == -1:
            prev_seq = None
    if seq_fields:
        checksum = _opt_int(record, "checksum")
    l2 = out.l2
    if levels:
        l2.price += prices
        l2.size += sizes
    l2.symbol.append(symbol)
    l2.exchange_ts.append(exchange_ts)
    l2.receive_ts.append(receive_ts)
    l2.seq.append(seq)
    l2.prev_seq.append(prev_seq)
    l2.first_seq.append(None)
    l2.is_snapshot.append(is_snapshot)
    l2.checksum.append(checksum)
    l2.bid_rows.append(len(bids))
    l2.ask_rows.append(len(asks))


_ACTIONS = {"snapshot": True, "update": False}


def _books(msg: dict[str, Any], symbol: str, receive_ts: int, out: Columns) -> None:
    """books / books-l2-tbt / books50-l2-tbt: a snapshot, then incremental updates."""
    is_snapshot = _ACTIONS[msg["action"]]
    for record in msg["data"]:
        _book(record, symbol, receive_ts, out, is_snapshot, True)


def _books5(msg: dict[str, Any], symbol: str, receive_ts: int, out: Columns) -> None:
    """books5: every push is a full 5-level snapshot (no action, prevSeqId, checksum)."""
    for record in msg["data"]:
        _book(record, symbol, receive_ts, out, True, False)


def _trades(msg: dict[str, Any], symbol: str, receive_ts: int, out: Columns) -> None:
    trades = out.trades
    for record in msg["data"]:
        side = record["side"]
        trade_id = record["tradeId"]
        price = _decimal(record["px"])
        size = _decimal(record["sz"])
        exchange_ts = _ns(record["ts"])
        if side not in _SIDES or type(trade_id) is not str:  # in: TypeError when unhashable
            raise ParseError(f"okx: bad trade side/tradeId {side!r:.20}/{trade_id!r:.40}")
        trades.exchange_ts.append(exchange_ts)
        trades.symbol.append(symbol)
        trades.receive_ts.append(receive_ts)
        trades.trade_id.append(trade_id)
        trades.side.append(side)
        trades.price.append(price)
        trades.size.append(size)


_Side = tuple[str | None, str | None]


def _best(levels: Any) -> _Side:
    """bbo-tbt side: the first [px, sz, ...] level, or (None, None) when the side is empty."""
    if type(levels) is not list:
        raise ParseError("okx: asks/bids must be an array")
    if not levels:
        return None, None
    level = levels[0]
    if type(level) is not list:
        raise ParseError("okx: bad bbo level")
    return _decimal(level[0]), _decimal(level[1])


def _text(value: Any) -> str | None:
    """A tickers price/size string; "" (empty side) -> None."""
    return _decimal(value) or None


def _bbo_row(
    out: Columns, symbol: str, receive_ts: int, *, exchange_ts: int, seq: int | None, bid: _Side, ask: _Side
) -> None:
    bbo = out.bbo
    bbo.symbol.append(symbol)
    bbo.exchange_ts.append(exchange_ts)
    bbo.receive_ts.append(receive_ts)
    bbo.seq.append(seq)
    bbo.bid_price.append(bid[0])
    bbo.bid_size.append(bid[1])
    bbo.ask_price.append(ask[0])
    bbo.ask_size.append(ask[1])


def _bbo_tbt(msg: dict[str, Any], symbol: str, receive_ts: int, out: Columns) -> None:
    for record in msg["data"]:
        bid, ask = _best(record["bids"]), _best(record["asks"])
        _bbo_row(
            out, symbol, receive_ts, exchange_ts=_ns(record["ts"]), seq=_opt_int(record, "seqId"), bid=bid, ask=ask
        )


def _tickers(msg: dict[str, Any], symbol: str, receive_ts: int, out: Columns) -> None:
    for record in msg["data"]:
        bid = _text(record["bidPx"]), _text(record["bidSz"])
        ask = _text(record["askPx"]), _text(record["askSz"])
        _bbo_row(out, symbol, receive_ts, exchange_ts=_ns(record["ts"]), seq=None, bid=bid, ask=ask)


_Handler = Callable[[dict[str, Any], str, int, Columns], None]
_HANDLERS: dict[str, _Handler] = {
    "trades": _trades,
    "books": _books,
    "books-l2-tbt": _books,
    "books50-l2-tbt": _books,
    "books5": _books5,
    "bbo-tbt": _bbo_tbt,
    "tickers": _tickers,
}


#: Where each column comes from, per table (docs/tables.md is generated from this; keep it true to the handlers
#: above). `l2_wire` / `l2_messages` are the transport-only columns (`xtrader.schema.L2_WIRE`, `L2_MESSAGES`).
FIELD_SOURCES: dict[str, dict[str, str]] = {
    "trades": {
        "symbol": "`arg.instId`",
        "exchange_ts": "`ts` (ms, a string)",
        "trade_id": "`tradeId`",
        "side": "`side`",
        "price": "`px`",
        "size": "`sz`",
    },
    "l2": {
        "symbol": "`arg.instId`; REST `/api/v5/market/books`: the request's `instId`",
        "exchange_ts": "`ts` (ms, a string)",
        "seq": "`seqId`; `ts` in ms when the message has no `seqId` (data from before OKX added it)",
        "prev_seq": "`prevSeqId` (books, books-l2-tbt, books50-l2-tbt; null when -1, i.e. on a snapshot); "
        "null for books5 and the REST book",
        "first_seq": "null",
        "side": "`bids` → bid, `asks` → ask",
        "price": "level `[px, sz, _, numOrders]`: px",
        "size": 'level `[px, sz, _, numOrders]`: sz ("0" deletes)',
        "is_snapshot": '`action` == "snapshot" (books*); always true for books5 and the REST book',
    },
    "bbo": {
        "symbol": "`arg.instId`",
        "exchange_ts": "`ts` (ms, a string)",
        "seq": "`seqId` (bbo-tbt); null (tickers)",
        "bid_price": '`bids[0][0]` (bbo-tbt) / `bidPx` (tickers; "" → null)',
        "bid_size": '`bids[0][1]` (bbo-tbt) / `bidSz` (tickers; "" → null)',
        "ask_price": '`asks[0][0]` (bbo-tbt) / `askPx` (tickers; "" → null)',
        "ask_size": '`asks[0][1]` (bbo-tbt) / `askSz` (tickers; "" → null)',
    },
    "l2_wire": {
        "price_text": "level px, the exact string",
        "size_text": "level sz, the exact string",
    },
    "l2_messages": {
        "checksum": "`checksum` (books, books-l2-tbt, books50-l2-tbt; 0 since 2026-06-23 = none); "
        "null for books5 and the REST book",
    },
}


def _request_id(msg: dict[str, Any]) -> object:
    """The echoed request `id`: an int when it is one of ours (digits), else as sent (None when absent)."""
    value = msg.get("id")
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    return value


def _ack(msg: dict[str, Any]) -> Control:
    arg = msg["arg"]
    if type(arg) is not dict:
        raise ParseError("okx: ack without arg object")
    return Control("ack", f"{msg['event']} {arg.get('channel')} {arg.get('instId')}", _request_id(msg))


def _error(msg: dict[str, Any]) -> Control:
    return Control("error", f"code {msg.get('code')}: {msg.get('msg')}", _request_id(msg))


def _notice(msg: dict[str, Any]) -> Control:
    kind = "shutdown" if msg.get("code") == _SHUTDOWN_CODE else "notice"
    return Control(kind, f"code {msg.get('code')}: {msg.get('msg')}", _request_id(msg))


_EVENTS: dict[str, Callable[[dict[str, Any]], Control]] = {
    "subscribe": _ack,
    "unsubscribe": _ack,
    "error": _error,
    "notice": _notice,
}


def _other_event(msg: dict[str, Any]) -> Control:
    return Control("notice", f"{msg['event']}: {str(msg)[:200]}", _request_id(msg))


def _rest_data(body: bytes) -> list[Any]:
    """The `data` array of an OKX REST reply {"code":"0","msg":"","data":[...]}."""
    try:
        reply = orjson.loads(body)
        code, data = reply["code"], reply["data"]
    except _ERRORS as exc:  # orjson.JSONDecodeError is a ValueError
        raise ParseError(f"okx: not a REST reply: {exc}") from exc
    if code != "0" or type(data) is not list:
        raise ParseError(f"okx: REST error code {code!r}: {reply.get('msg')!r:.200}")
    return data


@register
class Okx(Venue):
    """OKX v5 public websocket (`/ws/v5/public`) and REST."""

    name: ClassVar[str] = "okx"
    official_ws_base: ClassVar[str] = "wss://ws.okx.com:8443"
    official_rest_base: ClassVar[str] = "https://www.okx.com"
    sync_kind: ClassVar[str] = "okx"
    keep_text: ClassVar[bool] = True
    needs_snapshot: ClassVar[bool] = False
    book_sources: ClassVar[tuple[str, ...]] = ("auto", "ws", "rest")
    max_streams_per_connection: ClassVar[int] = 200
    book_checksum: ClassVar[Callable[[list[tuple[str, str]], list[tuple[str, str]]], int] | None] = staticmethod(
        okx_checksum
    )
    field_sources: ClassVar[Mapping[str, Mapping[str, str]]] = FIELD_SOURCES
    #: 50/400-level book subscriptions per connection ("fewer than 30", EXCHANGES.md 3.2)
    max_deep_books_per_connection: ClassVar[int] = 29
    #: option families listed by instruments_request (OPTION needs `uly`)
    option_underlyings: ClassVar[tuple[str, ...]] = ("BTC-USD", "ETH-USD")

    # -- connections and requests -------------------------------------------------------------

    @staticmethod
    def channel(subscription: Subscription) -> str:
        """The OKX channel of a subscription (its override, else the table's default).

        Raises:
            ConfigError: the channel cannot feed the subscription's table.
        """
        allowed = CHANNELS[subscription.table]
        if subscription.channel is None:
            return allowed[0]
        if subscription.channel not in allowed:
            raise ConfigError(
                f"okx: channel {subscription.channel!r} cannot feed table {subscription.table!r} "
                f"(symbol {subscription.symbol}); use one of {', '.join(allowed)}"
            )
        return subscription.channel

    def login_required(self, subscription: Subscription) -> str | None:
        channel = subscription.channel if subscription.table == "l2" else None
        tier = LOGIN_CHANNELS.get(channel or "")
        if tier is None:
            return None
        return f"okx: channel {channel} needs a logged-in account of fee tier {tier} or above (error 64003 otherwise)"

    def connections(self, subscriptions: Sequence[Subscription]) -> list[Connection]:
        """Pack subscriptions into `/ws/v5/public` connections.

        A connection holds at most `max_streams_per_connection` streams, at most
        `max_deep_books_per_connection` 50/400-level books, and never `books-l2-tbt` together with
        another deep book channel of the same instrument (error 64004). Duplicates are dropped.
        """
        url = f"{self.ws_base}/ws/v5/public"
        groups: list[list[Subscription]] = []
        args: list[set[tuple[str, str]]] = []
        seen: set[tuple[str, str]] = set()
        for sub in subscriptions:
            arg = (self.channel(sub), sub.symbol)
            if arg in seen:
                continue
            seen.add(arg)
            for index, held in enumerate(args):
                if self._fits(arg, held):
                    group = groups[index]
                    break
            else:
                group, held = [], set()
                groups.append(group)
                args.append(held)
            group.append(sub)
            held.add(arg)
        return [Connection(url, tuple(group)) for group in groups]

    def _fits(self, arg: tuple[str, str], held: set[tuple[str, str]]) -> bool:
        if len(held) >= self.max_streams_per_connection:
            return False
        channel, symbol = arg
        if channel not in DEEP_BOOKS:
            return True
        if sum(1 for c, _ in held if c in DEEP_BOOKS) >= self.max_deep_books_per_connection:
            return False
        same = {c for c, s in held if s == symbol and c in DEEP_BOOKS}
        return not same or ("books-l2-tbt" not in same and channel != "books-l2-tbt")

    def initial_messages(self, connection: Connection, request_id: int) -> list[bytes]:
        return self.subscribe_messages(connection.subscriptions, request_id)

    def subscribe_messages(self, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        """`{"id":"N","op":"subscribe","args":[{"channel":..,"instId":..},...]}`, split to stay under 64 KB."""
        return self._requests("subscribe", subscriptions, request_id)

    def unsubscribe_messages(self, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        return self._requests("unsubscribe", subscriptions, request_id)

    def _requests(self, op: str, subscriptions: Sequence[Subscription], request_id: int) -> list[bytes]:
        """One request per <= 64 KB of args; every request carries the same `id` (acks map back to it)."""
        head = orjson.dumps({"id": str(request_id), "op": op})[:-1] + b',"args":['
        requests: list[bytes] = []
        chunk: list[bytes] = []
        size = len(head) + 2
        for arg in dict.fromkeys((self.channel(s), s.symbol) for s in subscriptions):
            encoded = orjson.dumps({"channel": arg[0], "instId": arg[1]})
            if chunk and size + len(encoded) + 1 > MAX_REQUEST_BYTES:
                requests.append(head + b",".join(chunk) + b"]}")
                chunk, size = [], len(head) + 2
            chunk.append(encoded)
            size += len(encoded) + 1
        if chunk:
            requests.append(head + b",".join(chunk) + b"]}")
        return requests

    def replies_expected(self, subscriptions: tuple[Subscription, ...]) -> int:
        """OKX answers each arg of a request: an ack or an error."""
        return len({(self.channel(s), s.symbol) for s in subscriptions})

    def reply_covers(
        self, control: Control, subscriptions: tuple[Subscription, ...]
    ) -> tuple[Subscription, ...] | None:
        """An ack covers its arg; an error its arg when the message names it ("channel:X,instId:Y"),
        the whole request for request-level codes (bad JSON, bad args, too frequent), else one
        unnamed arg (None)."""
        if control.kind == "ack":
            _, channel, inst = [*control.detail.split(" "), "", "", ""][:3]
            return tuple(s for s in subscriptions if self.channel(s) == channel and s.symbol == inst)
        named = _NAMED_ARG.search(control.detail)
        if named is not None:
            return tuple(s for s in subscriptions if self.channel(s) == named[1] and s.symbol == named[2])
        code = _CODE.match(control.detail)
        if code is not None and code[1] in _REQUEST_ERRORS:
            return subscriptions
        return None

    def request_budget(self) -> Window:
        """480 subscribe/unsubscribe/login requests per connection per hour (each frame is a request)."""
        return Window(REQUESTS_PER_HOUR, 3600.0)

    def retryable(self, control: Control) -> bool:
        """60014 "Requests too frequent": wait and ask again."""
        return control.kind == "error" and control.detail.startswith(f"code {_TOO_FREQUENT}:")

    def keepalive(self) -> Keepalive:
        """Text `ping` after 20 s of silence (the server drops a connection silent for 30 s)."""
        return Keepalive(ping=b"ping", idle_s=20.0, stale_s=30.0)

    # -- REST -----------------------------------------------------------------------------------

    def instruments_request(self) -> list[str]:
        base = f"{self.rest_base}/api/v5/public/instruments?instType="
        urls = [base + kind for kind in ("SPOT", "SWAP", "FUTURES")]
        urls += [f"{base}OPTION&uly={underlying}" for underlying in self.option_underlyings]
        return urls

    def parse_instruments(self, body: bytes) -> set[str]:
        try:
            ids = {item["instId"] for item in _rest_data(body)}
        except _ERRORS as exc:
            raise ParseError(f"okx: bad instruments reply: {exc}") from exc
        if ids and set(map(type, ids)) != _STR:
            raise ParseError("okx: instId must be a string")
        return ids

    def rest_book_request(self, symbol: str, depth: int = REST_BOOK_MAX) -> SnapshotRequest:
        """The REST book (`/api/v5/market/books`, `source=0` as in the changelog's example; EXCHANGES.md 3.6)."""
        depth = max(1, min(depth, REST_BOOK_MAX))
        return SnapshotRequest(symbol, f"{self.rest_base}/api/v5/market/books?instId={symbol}&sz={depth}&source=0")

    def snapshot_request(self, symbol: str, depth: int | None = None) -> SnapshotRequest:
        """The REST book that bridges a book without a websocket snapshot (400 levels unless `depth`)."""
        return self.rest_book_request(symbol, depth or REST_BOOK_MAX)

    def parse_rest_book(self, body: bytes, symbol: str, receipt: Receipt, out: Columns) -> int:
        """Append a REST book as `is_snapshot` l2 rows (seq = seqId); return its seqId.

        Raises:
            ParseError: not a book reply, or no integer seqId (the REST path bridges on it).
        """
        mark = out.mark()
        try:
            record = _rest_data(body)[0]
            if type(record.get("seqId")) is not int:
                raise ParseError("okx: REST book without an integer seqId")
            _book(record, symbol, receipt.wall_ns, out, is_snapshot=True, seq_fields=False)
        except ParseError:
            out.rollback(mark)
            raise
        except _ERRORS as exc:
            out.rollback(mark)
            raise ParseError(f"okx: bad REST book: {exc}") from exc
        seq: int = record["seqId"]
        return seq

    def parse_snapshot(self, body: bytes, symbol: str, receipt: Receipt, out: Columns) -> int:
        return self.parse_rest_book(body, symbol, receipt, out)

    # -- websocket frames -------------------------------------------------------------------------

    def columns(self) -> Columns:
        """Column buffers with the compiled parser's when it is built (`okx_columns.COMPILED`)."""
        if COMPILED:
            return OkxColumns(self.name, keep_text=self.keep_text)
        return super().columns()

    def _parse(self, frame: bytes | str, receipt: Receipt, out: Columns) -> Sequence[Control]:
        """The Python parser (every frame without the compiled one; the frames it declines with it)."""
        if len(frame) == 4 and frame in _PONG_FRAMES:
            return _PONG
        try:
            msg = orjson.loads(frame)
        except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
            raise ParseError(f"okx: not JSON: {exc}") from exc
        if type(msg) is not dict:
            raise ParseError("okx: frame is not a JSON object")
        try:
            event = msg.get("event")
            if event is not None:
                return (_EVENTS.get(event, _other_event)(msg),)
            arg = msg.get("arg")
            if arg is None:
                return (Control("unknown", str(msg)[:200]),)
            channel, symbol = arg["channel"], arg["instId"]
            handler = _HANDLERS.get(channel)
        except _ERRORS as exc:
            raise ParseError(f"okx: bad frame: {exc}") from exc
        if handler is None:
            return (Control("unknown", f"channel {channel!r:.100}"),)
        if type(symbol) is not str or type(msg.get("data")) is not list:
            raise ParseError("okx: push needs a string instId and a data array")
        # Handlers check a record completely before appending any of it, so a one-record push (nearly
        # all of them) that fails has appended nothing; only several records need the (costlier) mark.
        mark = out.mark() if len(msg["data"]) > 1 else None
        try:
            handler(msg, symbol, receipt.wall_ns, out)
        except (*_ERRORS, ParseError) as exc:
            if mark is not None:
                out.rollback(mark)
            if isinstance(exc, ParseError):
                raise
            raise ParseError(f"okx: bad {channel} push: {exc!r:.200}") from exc
        return NO_CONTROL
