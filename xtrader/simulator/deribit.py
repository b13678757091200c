"""Deribit API v2 (JSON-RPC over one websocket), written from docs/EXCHANGES.md sections 4 and 7.

Wire names (all Deribit's): ``change_id`` / ``prev_change_id`` the book sequence (per
instrument; a message follows on when its ``prev_change_id`` equals the previous ``change_id``),
``type`` ``snapshot`` | ``change``, levels ``[action, price, amount]`` with action ``new`` /
``change`` / ``delete``, ``trade_id`` (a string, ``"BTC-1234"``), ``trade_seq``, ``direction`` (the
taker's side), ``tick_direction`` (0 plus, 1 zero-plus, 2 minus, 3 zero-minus), ``best_bid_price`` /
``best_bid_amount`` / ``best_ask_price`` / ``best_ask_amount``. Payload keys are in reverse
alphabetical order, as the real venue writes them (see the capture: ``type, timestamp,
prev_change_id, instrument_name, change_id, bids, asks``).

Endpoints: websocket ``/ws/api/v2`` (requests in deribit_session.py) and REST
``GET /api/v2/public/{get_instruments,get_order_book,ticker,get_time,test}``.

Instruments: the framework's catalogue as perpetuals, ``BTC-PERPETUAL`` and ``ETH-PERPETUAL``
(inverse: ``amount`` in USD, ``contract_size`` 10 and 1 USD) then ``SOL_USDC-PERPETUAL``,
``BNB_USDC-PERPETUAL``, ... (linear: ``amount`` in the base coin). Prices and amounts are JSON
numbers; book amounts of a million or more are written in exponent notation (``1.0002e6``), which
the real venue does at times.

Deliberate simplifications: every interval (``raw``, ``100ms``, ``agg2``) gets one message per
market step (the generator rate paces messages, not the interval); tick sizes are the
generator's (BTC-PERPETUAL ticks 0.01, not 0.5); only the generated perpetuals are listed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import orjson

from .connection import Connection
from .deribit_session import DeribitConnection, RpcError, envelope, invalid_params, now_us
from .faults import Faults
from .generate import ASK, BID, Instrument, Market, Snapshot, Step, fixed, memo
from .truth import Frame
from .venue import HttpReply, HttpRequest, Keepalive, Venue, VenueOptions

INTERVALS = ("raw", "100ms", "agg2")
GROUPED_DEPTHS = (1, 10, 20)
ORDER_BOOK_DEPTHS = (1, 5, 10, 20, 50, 100, 1000, 10000)
VERSION = "1.2.26"  # what public/test and public/hello report
REST_PREFIX = "/api/v2/"
PERPETUAL_EXPIRY_MS = 32503708800000  # perpetuals "expire" in the year 3000
CURRENCIES = ("BTC", "ETH", "SOL", "USDC", "USDT", "EURR", "any")
KINDS = ("future", "option", "spot", "future_combo", "option_combo")
INVERSE_CONTRACT_USD = {"BTC": 10, "ETH": 1}  # inverse perpetuals; every other base is linear USDC
# Grouped-book group values (price units) per currency; "none" is valid everywhere.
GROUPS = {"BTC": ("1", "2", "5", "10"), "ETH": ("0.05", "0.1", "0.25", "1", "2.5")}
ETH_GROUP_CODES = {"5": "0.05", "10": "0.1", "25": "0.25", "100": "1", "250": "2.5"}  # the doc's "value ÷ 100"
WS_ONLY = (
    "public/subscribe",
    "public/unsubscribe",
    "public/unsubscribe_all",
    "public/set_heartbeat",
    "public/disable_heartbeat",
)
Bbo = tuple[int | None, int, int | None, int]  # bid tick, bid lots, ask tick, ask lots (None: empty side)
_NOTIFY = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'


@dataclass(frozen=True)
class Channel:
    """A resolved subscription channel."""

    kind: str  # book | grouped | trades | ticker | quote
    symbol: str
    interval: str | None
    group_ticks: int = 0  # grouped: bucket width in ticks (0: "none")
    depth: int = 0  # grouped: levels per side


@dataclass
class Contract:
    """One perpetual: its Deribit metadata, encoders and the tape state of its trades."""

    instrument: Instrument
    index: int
    inverse: bool
    contract_units: int  # inverse: USD per lot
    price_text: Callable[[int], str]
    amount_text: Callable[[int], str]
    book_channels: tuple[str, ...]
    trades_channels: tuple[str, ...]
    ticker_channels: tuple[str, ...]
    quote_channel: str
    grouped: dict[str, Channel] = field(default_factory=dict)  # channel -> spec, while subscribed
    trade_seq: int = 0
    last_trade_tick: int | None = None
    tick_direction: int = 0
    volume_units: int = 0  # amounts traded, in amount units (USD for inverse, lots for linear)
    high_tick: int | None = None
    low_tick: int | None = None
    open_tick: int | None = None
    open_interest_units: int = 0
    cache_id: int = -1  # published change_id the cached initial frames belong to
    cache: dict[str, Frame] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.instrument.symbol

    @property
    def base(self) -> str:
        return self.instrument.base

    @property
    def trade_prefix(self) -> str:
        return self.name.split("-", 1)[0]  # BTC, ETH, SOL_USDC

    @property
    def settlement(self) -> str:
        return self.base if self.inverse else "USDC"

    def price(self, ticks: int) -> float:
        return float(self.price_text(ticks))

    def amount(self, lots: int) -> float:
        return float(self.amount_text(lots))


class Deribit(Venue):
    """Deribit v2: JSON-RPC requests, subscription notifications, a change_id chain per instrument."""

    name: ClassVar[str] = "deribit"
    official: ClassVar[dict[str, str]] = {"ws": "wss://www.deribit.com", "rest": "https://www.deribit.com"}
    capture_names: ClassVar[tuple[str, ...]] = ("DERIBIT",)
    default_keepalive: ClassVar[Keepalive] = Keepalive()  # no websocket pings: set_heartbeat instead
    first_update_id: ClassVar[int] = 70_000_000_000
    update_id_gap: ClassVar[int] = 40  # change_ids jump, as the real ones do
    settings_help: ClassVar[dict[str, str]] = {
        "min_heartbeat_s": "lowest interval public/set_heartbeat accepts (default 10, the documented minimum)",
        "test_request_timeout_s": "how long a test_request waits for public/test before the close (0: one interval)",
        "credit_pool": "request credits a connection can bank (default 50000)",
        "credit_refill_per_s": "credits refilled per second (default 10000)",
        "request_cost": "credits one request costs (default 500)",
        "subscribe_cost": "credits a subscribe or unsubscribe costs (default 500)",
        "max_frame_bytes": "largest request frame; bigger ones get -32600 (default 32768)",
        "maintenance_at_s": "seconds after start when a maintenance begins (0: never): platform_state pushes "
        '{"maintenance":true}, every connection is closed (1001) and new ones get HTTP 503 until it ends',
        "maintenance_s": "how long the maintenance lasts (default 5)",
    }

    def __init__(self, options: VenueOptions) -> None:
        super().__init__(options)
        self.keepalive = Keepalive(None, None, options.inbound_per_s, options.max_lifetime_s)
        self.min_heartbeat_s = self.setting("min_heartbeat_s", 10.0)
        self.test_request_timeout_s = self.setting("test_request_timeout_s", 0.0)
        self.credit_pool = self.setting("credit_pool", 50_000)
        self.credit_refill_per_s = self.setting("credit_refill_per_s", 10_000)
        self.request_cost = self.setting("request_cost", 500)
        self.subscribe_cost = self.setting("subscribe_cost", 500)
        self.max_frame_bytes = self.setting("max_frame_bytes", 32 * 1024)
        self.maintenance_at_s = self.setting("maintenance_at_s", 0.0)
        self.maintenance_s = self.setting("maintenance_s", 5.0)
        self._born = time.monotonic()
        self._maintenance_timer: asyncio.TimerHandle | None = None
        self.maintenance_refused = 0  # websocket opens refused during the maintenance
        self._maintenance_tasks: set[asyncio.Future[None]] = set()
        # Deribit names its perpetuals itself: rebuild the markets under those names (same seeds).
        self.instruments = [replace(i, quote=_name_suffix(i.base)) for i in self.instruments]
        rng = random.Random(f"{options.seed}:{self.name}")
        self.markets = {
            i.symbol: Market(
                i,
                f"{options.seed}:{self.name}:{i.symbol}",
                self.first_update_id + rng.randrange(10**6),
                self.update_id_gap,
                options.depth,
            )
            for i in self.instruments
        }
        self._rng = rng
        self._market_list = list(self.markets.values())
        self.contracts = {i.symbol: _contract(i, k, options.seed) for k, i in enumerate(self.instruments)}
        self.tokens: dict[str, float] = {}  # access and refresh tokens issued by public/auth -> expiry
        self._prefixes: dict[str, bytes] = {}
        self._rest_counts: dict[str, int] = {}

    # -- channels ----------------------------------------------------------------------

    def resolve(self, channel: str) -> Channel | None:
        """The spec of a channel this venue serves, None for anything else (left out of acks)."""
        parts = channel.split(".")
        if len(parts) < 2 or parts[1] not in self.contracts:
            return None
        kind, symbol = parts[0], parts[1]
        if kind == "quote" and len(parts) == 2:
            return Channel("quote", symbol, None)
        if kind in ("book", "trades", "ticker") and len(parts) == 3 and parts[2] in INTERVALS:
            return Channel(kind, symbol, parts[2])
        if kind == "book" and len(parts) == 5 and parts[4] in INTERVALS:
            if not parts[3].isdigit() or int(parts[3]) not in GROUPED_DEPTHS:
                return None
            ticks = self._group_ticks(self.contracts[symbol], parts[2])
            if ticks is None:
                return None
            return Channel("grouped", symbol, parts[4], ticks, int(parts[3]))
        return None

    def _group_ticks(self, contract: Contract, group: str) -> int | None:
        if group == "none":
            return 0
        base = contract.base
        value = ETH_GROUP_CODES.get(group) if base == "ETH" else group
        if value is None or value not in GROUPS.get(base, ()):
            return None
        whole, _, frac = value.partition(".")
        scale = contract.instrument.tick_scale
        if len(frac) > scale:
            return None
        return int(whole + frac.ljust(scale, "0"))

    def attach(self, conn: Connection, channel: str, spec: Channel) -> None:
        """Subscribe `conn`, queueing first what the channel starts with (book snapshot, current ticker)."""
        contract = self.contracts[spec.symbol]
        frame = self._initial(contract, spec)
        if frame is not None:
            conn.enqueue(frame, conn.render(channel, frame))
        if spec.kind == "grouped":
            contract.grouped[channel] = spec
        self.subscribe(conn, channel)

    def render(self, channel: str, frame: Frame) -> bytes:
        """The notification envelope around a frame's ``data``."""
        prefix = self._prefixes.get(channel)
        if prefix is None:
            prefix = self._prefixes[channel] = _NOTIFY + channel.encode() + b'","data":'
        return prefix + frame.data + b"}}"

    # -- publishing ----------------------------------------------------------------------

    def publish(self, market: Market, step: Step, now_ms: int) -> None:
        contract = self.contracts[market.instrument.symbol]
        subs = self.subscribers
        want_trades = any(c in subs for c in contract.trades_channels)
        trades = self._tape(contract, step, now_ms, want_trades)  # the tape advances even when unheard
        if not subs:
            return
        sym = contract.name
        if any(c in subs for c in contract.book_channels):
            data, rows = self._change(contract, step, now_ms)
            frame = Frame(data, "book", "l2", sym, rows=rows, first_seq=step.last_id, last_seq=step.last_id)
            for channel in contract.book_channels:
                self.fan_out(channel, frame)
        if contract.grouped:
            self._publish_grouped(contract, market, step.last_id, now_ms)
        if trades:
            frame = Frame(orjson.dumps(trades), "trades", "trades", sym, rows=len(trades))
            for channel in contract.trades_channels:
                self.fan_out(channel, frame)
        bbo: Bbo = step.bbo
        if (step.bbo_changed or step.fills) and any(c in subs for c in contract.ticker_channels):
            frame = Frame(orjson.dumps(self.ticker(contract, bbo, now_ms)), "ticker", "bbo", sym, rows=1)
            for channel in contract.ticker_channels:
                self.fan_out(channel, frame)
        if step.bbo_changed and contract.quote_channel in subs:
            frame = Frame(orjson.dumps(_quote(contract, bbo, now_ms)), "quote", "bbo", sym, rows=1)
            self.fan_out(contract.quote_channel, frame)

    def _change(self, contract: Contract, step: Step, now_ms: int) -> tuple[bytes, int]:
        """A ``change`` message: each changed level once, with its action against the last message."""
        before: dict[tuple[int, int], int] = {}
        for op in step.ops:
            before.setdefault((op.side, op.tick), op.prev_lots)
        bids, asks = step.levels()
        bid_text, bid_rows = _actions(contract, BID, sorted(bids.items(), reverse=True), before)
        ask_text, ask_rows = _actions(contract, ASK, sorted(asks.items()), before)
        data = (
            f'{{"type":"change","timestamp":{now_ms},"prev_change_id":{step.prev_id},'
            f'"instrument_name":"{contract.name}","change_id":{step.last_id},"bids":{bid_text},"asks":{ask_text}}}'
        )
        return data.encode(), bid_rows + ask_rows

    def _publish_grouped(self, contract: Contract, market: Market, change_id: int, now_ms: int) -> None:
        frames: dict[tuple[int, int], Frame] = {}
        snapshot: Snapshot | None = None
        for channel, spec in list(contract.grouped.items()):
            if channel not in self.subscribers:
                del contract.grouped[channel]
                continue
            key = (spec.group_ticks, spec.depth)
            frame = frames.get(key)
            if frame is None:
                snapshot = snapshot or market.snapshot(10**9)
                frame = frames[key] = self._grouped_frame(contract, spec, snapshot, change_id, now_ms)
            self.fan_out(channel, frame)

    def _grouped_frame(self, contract: Contract, spec: Channel, snap: Snapshot, change_id: int, now_ms: int) -> Frame:
        bids = _group(snap.bids, spec.group_ticks, spec.depth, BID)
        asks = _group(snap.asks, spec.group_ticks, spec.depth, ASK)
        data = (
            f'{{"timestamp":{now_ms},"instrument_name":"{contract.name}","change_id":{change_id},'
            f'"bids":{_pairs(contract, bids)},"asks":{_pairs(contract, asks)}}}'
        )
        rows = len(bids) + len(asks)
        return Frame(data.encode(), "book_grouped", "l2_partial", contract.name, rows=rows)

    def _initial(self, contract: Contract, spec: Channel) -> Frame | None:
        """The first message of a channel; one shared Frame per published book state."""
        if spec.kind == "trades":
            return None
        market = self.markets[contract.name]
        if contract.cache_id != market.published_id:
            contract.cache_id, contract.cache = market.published_id, {}
        key = f"{spec.kind}.{spec.group_ticks}.{spec.depth}"
        frame = contract.cache.get(key)
        if frame is not None:
            return frame
        now_ms = int(time.time() * 1000)
        change_id = market.published_id
        snap = market.snapshot(10**9)
        sym = contract.name
        if spec.kind == "book":
            bid_text, bid_rows = _actions(contract, BID, snap.bids, {})
            ask_text, ask_rows = _actions(contract, ASK, snap.asks, {})
            data = (
                f'{{"type":"snapshot","timestamp":{now_ms},"instrument_name":"{sym}",'
                f'"change_id":{change_id},"bids":{bid_text},"asks":{ask_text}}}'
            )
            frame = Frame(
                data.encode(), "book", "l2", sym, rows=bid_rows + ask_rows, first_seq=change_id, last_seq=change_id
            )
        elif spec.kind == "grouped":
            frame = self._grouped_frame(contract, spec, snap, change_id, now_ms)
        else:
            bbo = _top(snap)
            body = self.ticker(contract, bbo, now_ms) if spec.kind == "ticker" else _quote(contract, bbo, now_ms)
            frame = Frame(orjson.dumps(body), spec.kind, "bbo", sym, rows=1)
        contract.cache[key] = frame
        return frame

    def _tape(self, contract: Contract, step: Step, now_ms: int, encode: bool) -> list[dict[str, Any]]:
        """Advance trade_seq, tick direction and stats over the step's fills; the trades if `encode`."""
        if not step.fills:
            return []
        mark = _mark(contract, step.bbo)
        index = _index(mark, contract)
        out: list[dict[str, Any]] = []
        for fill in step.fills:
            last = contract.last_trade_tick
            if last is None or fill.tick > last:
                contract.tick_direction = 0
            elif fill.tick < last:
                contract.tick_direction = 2
            elif contract.tick_direction in (0, 2):
                contract.tick_direction += 1  # same price: zero-plus after a plus, zero-minus after a minus
            contract.last_trade_tick = fill.tick
            contract.trade_seq += 1
            units = fill.lots * contract.contract_units if contract.inverse else fill.lots
            contract.volume_units += units
            taker_buys = not fill.buyer_is_maker
            if taker_buys:
                contract.open_interest_units += units
            else:
                contract.open_interest_units = max(0, contract.open_interest_units - units // 2)
            contract.high_tick = fill.tick if contract.high_tick is None else max(contract.high_tick, fill.tick)
            contract.low_tick = fill.tick if contract.low_tick is None else min(contract.low_tick, fill.tick)
            if contract.open_tick is None:
                contract.open_tick = fill.tick
            if not encode:
                continue
            out.append(
                {
                    "trade_seq": contract.trade_seq,
                    "trade_id": f"{contract.trade_prefix}-{fill.trade_id}",
                    "timestamp": now_ms,
                    "tick_direction": contract.tick_direction,
                    "price": contract.price(fill.tick),
                    "mark_price": mark,
                    "instrument_name": contract.name,
                    "index_price": index,
                    "direction": "buy" if taker_buys else "sell",
                    "contracts": float(fill.lots),
                    "amount": contract.amount(fill.lots),
                }
            )
        return out

    def ticker(self, contract: Contract, bbo: Bbo, now_ms: int) -> dict[str, Any]:
        """A perpetual's ``ticker`` payload (also the body of public/ticker)."""
        mark = _mark(contract, bbo)
        index = _index(mark, contract)
        scale = contract.instrument.tick_scale
        band = max(1, round(mark * 0.03 * 10**scale))
        mark_ticks = round(mark * 10**scale)
        last = contract.last_trade_tick
        volume = (
            contract.volume_units if contract.inverse else contract.volume_units / 10**contract.instrument.lot_scale
        )
        volume_usd = volume if contract.inverse else volume * mark
        volume_base = volume / mark if contract.inverse and mark else volume
        change = 0.0
        if contract.open_tick and last is not None:
            change = round((last - contract.open_tick) * 100 / contract.open_tick, 4)
        funding = round((mark - index) / index / 8, 8) if index else 0.0
        body = {
            "timestamp": now_ms,
            "stats": {
                "volume_usd": round(float(volume_usd), 2),
                "volume": round(volume_base, 8),
                "price_change": change,
                "low": None if contract.low_tick is None else contract.price(contract.low_tick),
                "high": None if contract.high_tick is None else contract.price(contract.high_tick),
            },
            "state": "open",
            "settlement_price": mark,
            "open_interest": float(contract.open_interest_units)
            if contract.inverse
            else contract.amount(contract.open_interest_units),
            "min_price": contract.price(mark_ticks - band),
            "max_price": contract.price(mark_ticks + band),
            "mark_price": mark,
            "last_price": None if last is None else contract.price(last),
            "interest_value": 0.0,
            "instrument_name": contract.name,
            "index_price": index,
            "funding_8h": funding,
            "estimated_delivery_price": index,
            "current_funding": funding,
        }
        body.update(_best(contract, bbo))
        return body

    # -- ground truth and REST ---------------------------------------------------------

    def format_book(self, symbol: str, snapshot: Snapshot) -> dict[str, Any]:
        """The public/get_order_book result: ticker fields, ``change_id``, ``bids``/``asks`` as [price, amount]."""
        contract = self.contracts[symbol]
        body = self.ticker(contract, _top(snapshot), int(time.time() * 1000))
        body["change_id"] = snapshot.last_id
        body["bids"] = [[contract.price(t), contract.amount(q)] for t, q in snapshot.bids]
        body["asks"] = [[contract.price(t), contract.amount(q)] for t, q in snapshot.asks]
        return dict(sorted(body.items(), reverse=True))

    def call(self, method: str, params: Mapping[str, Any], request: HttpRequest | None = None) -> Any:
        """Methods that need no session (shared by REST and the websocket).

        Raises:
            RpcError: the venue's error answer.
        """
        if method == "public/get_instruments":
            return self._instruments(params)
        if method == "public/get_order_book":
            return self._order_book(params, request)
        if method == "public/ticker":
            contract = self._contract_param(params)
            snap = self.markets[contract.name].snapshot(1)
            return self.ticker(contract, _top(snap), int(time.time() * 1000))
        if method == "public/get_time":
            return int(time.time() * 1000)
        if method in ("public/test", "public/hello"):
            return {"version": VERSION}
        raise RpcError(-32601, "Method not found")

    def _contract_param(self, params: Mapping[str, Any]) -> Contract:
        name = params.get("instrument_name")
        if name is None:
            raise invalid_params("instrument_name", "must be present")
        contract = self.contracts.get(name) if isinstance(name, str) else None
        if contract is None:
            raise invalid_params("instrument_name", "wrong format")
        return contract

    def _instruments(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        currency = params.get("currency")
        if currency is None:
            raise invalid_params("currency", "must be present")
        if currency not in CURRENCIES:
            raise invalid_params("currency", "wrong format")
        kind = params.get("kind")
        if kind is not None and kind not in KINDS:
            raise invalid_params("kind", "wrong format")
        expired = _bool_param(params, "expired", False)
        if expired or kind not in (None, "future"):
            return []
        return [_instrument(c) for c in self.contracts.values() if currency in ("any", c.settlement)]

    def _order_book(self, params: Mapping[str, Any], request: HttpRequest | None) -> dict[str, Any]:
        contract = self._contract_param(params)
        depth = _int_param(params, "depth", 10)
        if depth not in ORDER_BOOK_DEPTHS:
            raise invalid_params("depth", "must be one of " + ", ".join(map(str, ORDER_BOOK_DEPTHS)))
        market = self.markets[contract.name]
        if request is not None:
            key = request.fault_key
            n = self._rest_counts[key] = self._rest_counts.get(key, 0) + 1
            if n <= request.faults.rest_429:
                self.truth.rest["get_order_book_429"] += 1
                raise RpcError(10028, "too_many_requests", http_status=429)
            skey = f"{key}|{contract.name}"
            s = self._rest_counts[skey] = self._rest_counts.get(skey, 0) + 1
            if s <= request.faults.stale_snapshot:
                self.truth.rest["get_order_book_stale"] += 1
                full = market.initial
                return self.format_book(contract.name, Snapshot(full.last_id, full.bids[:depth], full.asks[:depth]))
        return self.format_book(contract.name, market.snapshot(depth))

    async def rest(self, request: HttpRequest) -> HttpReply | None:
        if not request.path.startswith(REST_PREFIX):
            return None
        us_in = now_us()
        method = request.path[len(REST_PREFIX) :]
        self.truth.rest[method] += 1
        try:
            if method in WS_ONLY or method.startswith("private/"):
                raise (
                    RpcError(10030, "must_be_websocket_request")
                    if method in WS_ONLY
                    else RpcError(13009, "unauthorized")
                )
            result = self.call(method, request.query, request)
        except RpcError as exc:
            headers = {"Retry-After": "1"} if exc.http_status == 429 else None
            return HttpReply.json(exc.http_status, envelope(None, us_in, error=exc), headers)
        return HttpReply.json(200, envelope(None, us_in, result=result))

    # -- optional hooks ----------------------------------------------------------------

    def in_maintenance(self) -> bool:
        if not self.maintenance_at_s:
            return False
        since = time.monotonic() - self._born - self.maintenance_at_s
        return 0 <= since < self.maintenance_s

    def _maintenance_begins(self) -> None:
        """Tell every platform_state subscriber, then close every connection."""
        for conn in list(self.connections):
            if isinstance(conn, DeribitConnection):
                task = asyncio.ensure_future(conn.maintenance())
                self._maintenance_tasks.add(task)
                task.add_done_callback(self._maintenance_tasks.discard)

    def open_ws(self, path: str, query: str, faults: Faults) -> Connection | HttpReply:
        if path.rstrip("/") != "/ws/api/v2":
            return HttpReply.json(404, envelope(None, now_us(), error=RpcError(-32601, "Method not found")))
        if self.in_maintenance():
            self.maintenance_refused += 1
            return HttpReply.json(503, envelope(None, now_us(), error=RpcError(11098, "maintenance")))
        if self.maintenance_at_s and self._maintenance_timer is None:
            delay = max(0.0, self._born + self.maintenance_at_s - time.monotonic())
            self._maintenance_timer = asyncio.get_running_loop().call_later(delay, self._maintenance_begins)
        conn = DeribitConnection(self, path + ("?" + query if query else ""), faults)
        self.connections.add(conn)
        return conn

    def unknown_message(self, conn: Connection) -> bytes:
        return orjson.dumps(
            {"jsonrpc": "2.0", "method": "sim_unknown_event", "params": {"timestamp": int(time.time() * 1000)}}
        )


# -- encoding helpers ------------------------------------------------------------------------


def _name_suffix(base: str) -> str:
    return "-PERPETUAL" if base in INVERSE_CONTRACT_USD else "_USDC-PERPETUAL"


def _contract(instrument: Instrument, index: int, seed: int) -> Contract:
    name = instrument.symbol
    inverse = instrument.base in INVERSE_CONTRACT_USD
    units = INVERSE_CONTRACT_USD.get(instrument.base, 1)
    tick_scale, lot_scale = instrument.tick_scale, instrument.lot_scale

    @memo
    def price_text(ticks: int) -> str:
        return _trim(fixed(ticks, tick_scale, tick_scale))

    def amount_text(lots: int) -> str:
        if inverse:
            return _usd(lots * units)
        return _trim(fixed(lots, lot_scale, lot_scale))

    rng = random.Random(f"{seed}:deribit:{name}:tape")
    return Contract(
        instrument,
        index,
        inverse,
        units,
        price_text,
        amount_text,
        tuple(f"book.{name}.{i}" for i in INTERVALS),
        tuple(f"trades.{name}.{i}" for i in INTERVALS),
        tuple(f"ticker.{name}.{i}" for i in INTERVALS),
        f"quote.{name}",
        trade_seq=rng.randrange(10**6, 10**8),
        open_interest_units=rng.randrange(10**6, 10**8),
    )


def _trim(text: str) -> str:
    """A decimal string as a JSON number like Deribit writes it: no trailing zeros, at least ``.0``."""
    if "." not in text:
        return text + ".0"
    text = text.rstrip("0")
    return text + "0" if text.endswith(".") else text


def _usd(units: int) -> str:
    """An inverse amount (whole USD): exponent notation from a million up (``1.0002e6``)."""
    if units < 10**6:
        return f"{units}.0"
    digits = str(units)
    mantissa = digits.rstrip("0")
    return f"{mantissa[0]}.{mantissa[1:] or '0'}e{len(digits) - 1}"


def _actions(
    contract: Contract, side: int, levels: list[tuple[int, int]], before: dict[tuple[int, int], int]
) -> tuple[str, int]:
    """``[[action, price, amount], ...]`` against the sizes `before` (absent: a new level)."""
    px, amt = contract.price_text, contract.amount_text
    out = []
    for tick, lots in levels:
        prev = before.get((side, tick), 0)
        if lots:
            out.append(f'["{"change" if prev else "new"}",{px(tick)},{amt(lots)}]')
        elif prev:
            out.append(f'["delete",{px(tick)},0.0]')
        # else: the level came and went inside one step; the last message never showed it
    return "[" + ",".join(out) + "]", len(out)


def _pairs(contract: Contract, levels: list[tuple[int, int]]) -> str:
    px, amt = contract.price_text, contract.amount_text
    return "[" + ",".join(f"[{px(t)},{amt(q)}]" for t, q in levels) + "]"


def _group(levels: list[tuple[int, int]], ticks: int, depth: int, side: int) -> list[tuple[int, int]]:
    """Top `depth` buckets of `ticks` width: bids rounded down, asks up, amounts summed."""
    if not ticks:
        return levels[:depth]
    out: list[tuple[int, int]] = []
    for tick, lots in levels:
        bucket = (tick // ticks) * ticks if side == BID else -((-tick) // ticks) * ticks
        if out and out[-1][0] == bucket:
            out[-1] = (bucket, out[-1][1] + lots)
        elif len(out) == depth:
            break
        else:
            out.append((bucket, lots))
    return out


def _top(snap: Snapshot) -> Bbo:
    bid, bid_lots = snap.bids[0] if snap.bids else (None, 0)
    ask, ask_lots = snap.asks[0] if snap.asks else (None, 0)
    return (bid, bid_lots, ask, ask_lots)


def _best(contract: Contract, bbo: Bbo) -> dict[str, Any]:
    """The best_* fields; an empty side has a null price and a zero amount."""
    bid, bid_lots, ask, ask_lots = bbo
    return {
        "best_bid_price": None if bid is None else contract.price(bid),
        "best_bid_amount": contract.amount(bid_lots) if bid is not None else 0.0,
        "best_ask_price": None if ask is None else contract.price(ask),
        "best_ask_amount": contract.amount(ask_lots) if ask is not None else 0.0,
    }


def _quote(contract: Contract, bbo: Bbo, now_ms: int) -> dict[str, Any]:
    body: dict[str, Any] = {"timestamp": now_ms, "instrument_name": contract.name}
    body.update(_best(contract, bbo))
    return body


def _mark(contract: Contract, bbo: Bbo) -> float:
    bid, _, ask, _ = bbo
    ticks = [t for t in (bid, ask) if t is not None]
    if not ticks:
        return contract.instrument.mid
    scale = contract.instrument.tick_scale
    return round(sum(ticks) / len(ticks) / float(10**scale), scale + 1)


def _index(mark: float, contract: Contract) -> float:
    return round(mark * 0.9998, contract.instrument.tick_scale + 1)


def _instrument(c: Contract) -> dict[str, Any]:
    """A get_instruments entry, reverse alphabetical like the real ones."""
    tick = float(fixed(1, c.instrument.tick_scale, c.instrument.tick_scale))
    size = float(c.contract_units) if c.inverse else c.amount(1)
    quote = "USD" if c.inverse else "USDC"
    body = {
        "tick_size_steps": [],
        "tick_size": tick,
        "taker_commission": 0.0005,
        "settlement_period": "perpetual",
        "settlement_currency": c.settlement,
        "rfq": False,
        "quote_currency": quote,
        "price_index": f"{c.base.lower()}_{quote.lower()}",
        "min_trade_amount": size,
        "max_liquidation_commission": 0.0075,
        "max_leverage": 50 if c.inverse else 25,
        "maker_commission": 0.0,
        "kind": "future",
        "is_active": True,
        "instrument_name": c.name,
        "instrument_id": 210_000 + c.index,
        "instrument_type": "reversed" if c.inverse else "linear",
        "future_type": "reversed" if c.inverse else "linear",
        "expiration_timestamp": PERPETUAL_EXPIRY_MS,
        "creation_timestamp": 1_534_242_287_000 + c.index * 86_400_000,
        "counter_currency": quote,
        "contract_size": size,
        "block_trade_tick_size": tick,
        "block_trade_min_trade_amount": 200_000 if c.inverse else 100,
        "block_trade_commission": 0.00025,
        "base_currency": c.base,
    }
    return dict(sorted(body.items(), reverse=True))


def _int_param(params: Mapping[str, Any], name: str, default: int) -> int:
    raw = params.get(name, default)
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or (isinstance(raw, str) and not raw.isdigit()):
        raise invalid_params(name, "must be an integer")
    return int(raw)


def _bool_param(params: Mapping[str, Any], name: str, default: bool) -> bool:
    raw = params.get(name, default)
    if isinstance(raw, bool):
        return raw
    if raw in ("true", "false"):
        return bool(raw == "true")
    raise invalid_params(name, "must be a boolean")
