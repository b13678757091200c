"""Binance spot and USD-M futures, written from docs/EXCHANGES.md sections 1, 2 and 7.

Wire names (all Binance's): ``e`` event type, ``E`` event ms, ``T`` trade/transaction ms,
``s`` symbol, ``U``/``u`` first/last book update id of a diff, ``pu`` (futures) the previous
diff's ``u``, ``b``/``a`` bid/ask levels ``[["px","qty"],...]``, ``m`` buyer is maker.

Endpoints: ``/ws/<s1>/<s2>``, ``/stream?streams=<s1>/<s2>`` (combined wrapper
``{"stream":..,"data":..}``); futures also under ``/public`` and ``/market`` (the routing
split). REST: ``/api/v3/{depth,exchangeInfo,ping,time}``, ``/fapi/v1/{same}``.

Deliberate simplifications: every diff/partial-depth speed suffix is accepted, and frames are
paced by the generator rate rather than by the suffix; ``timeUnit`` is ignored (always ms).
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from .binance_info import exchange_info
from .binance_session import MAX_STREAMS, BinanceConnection
from .connection import Connection
from .faults import Faults
from .generate import Market, Snapshot, Step, fixed, memo
from .truth import Frame
from .venue import HttpReply, HttpRequest, Keepalive, Venue, VenueOptions

_SYMBOL = re.compile(r"^[a-z0-9]+$")
_SILENT = re.compile(
    r"^(kline_(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)|miniTicker|ticker|ticker_(1h|4h|1d)"
    r"|avgPrice|forceOrder|markPrice|markPrice@1s)$"
)
PUBLIC, MARKET = "public", "market"


@dataclass(frozen=True)
class _StreamNames:
    """Every stream name a symbol's messages go to, built once rather than per step."""

    diff: tuple[str, ...]
    partial: tuple[tuple[int, tuple[str, ...]], ...]
    book_ticker: str
    trade: str
    agg_trade: str

    @classmethod
    def of(cls, low: str, speeds: tuple[str, ...]) -> _StreamNames:
        return cls(
            tuple(f"{low}@depth{s}" for s in speeds),
            tuple((n, tuple(f"{low}@depth{n}{s}" for s in speeds)) for n in (5, 10, 20)),
            f"{low}@bookTicker",
            f"{low}@trade",
            f"{low}@aggTrade",
        )


class BinanceSpot(Venue):
    """Binance spot: contiguous U/u diffs, REST /api/v3."""

    name: ClassVar[str] = "binance"
    official: ClassVar[dict[str, str]] = {"ws": "wss://stream.binance.com:9443", "rest": "https://api.binance.com"}
    capture_names: ClassVar[tuple[str, ...]] = ("BINANCE",)
    default_keepalive: ClassVar[Keepalive] = Keepalive(20.0, 60.0, 5, 24 * 3600.0)
    first_update_id: ClassVar[int] = 40_000_000_000
    update_id_gap: ClassVar[int] = 1
    futures: ClassVar[bool] = False
    rest_prefix: ClassVar[str] = "/api/v3/"
    diff_speeds: ClassVar[tuple[str, ...]] = ("", "@100ms", "@1000ms")
    depth_limits: ClassVar[tuple[int, ...] | None] = None  # spot: any 1..5000
    default_limit: ClassVar[int] = 100
    weight_budget: ClassVar[int] = 6000

    def __init__(self, options: VenueOptions) -> None:
        super().__init__(options)
        self._px: dict[str, Callable[[int], str]] = {}
        self._qty: dict[str, Callable[[int], str]] = {}
        for inst in self.instruments:
            pd = 8 if not self.futures else inst.tick_scale
            qd = 8 if not self.futures else inst.lot_scale
            self._px[inst.symbol] = memo(functools.partial(fixed, scale=inst.tick_scale, decimals=pd))
            self._qty[inst.symbol] = functools.partial(fixed, scale=inst.lot_scale, decimals=qd)
        self._names = {i.symbol: _StreamNames.of(i.symbol.lower(), self.diff_speeds) for i in self.instruments}
        self._rest_counts: dict[str, int] = {}
        self._rest_rng = random.Random(f"{options.seed}:{self.name}:rest")
        self._weight_window: list[tuple[float, int]] = []

    # -- streams -----------------------------------------------------------------

    def classify(self, stream: str) -> tuple[str, str] | None:
        """(kind, tier) of a valid stream name, None when Binance would reject it."""
        if stream == "!bookTicker":
            return ("bookTicker", PUBLIC)
        if stream.startswith("!"):
            ok = stream in ("!miniTicker@arr", "!ticker@arr", "!markPrice@arr", "!markPrice@arr@1s", "!forceOrder@arr")
            return ("silent", MARKET) if ok else None
        symbol, sep, channel = stream.partition("@")
        if not sep or not _SYMBOL.match(symbol):
            return None
        if channel in ("trade", "aggTrade"):
            return (channel, MARKET)
        if channel == "bookTicker":
            return ("bookTicker", PUBLIC)
        for speed in self.diff_speeds:
            if channel == "depth" + speed:
                return ("depth", PUBLIC)
            for n in (5, 10, 20):
                if channel == f"depth{n}{speed}":
                    return (f"depth{n}", PUBLIC)
        if self.futures and channel in ("markPrice", "markPrice@1s"):
            return ("markPrice", MARKET)
        if _SILENT.match(channel):
            return ("silent", MARKET)
        return None

    def serves(self, route: str | None, stream: str) -> bool:
        kind_tier = self.classify(stream)
        if kind_tier is None:
            return False
        if not self.futures:
            return True
        tier = kind_tier[1]
        return route == tier or (route is None and tier == PUBLIC)

    def open_ws(self, path: str, query: str, faults: Faults) -> Connection | HttpReply:
        route: str | None = None
        if self.futures:
            for prefix in (PUBLIC, MARKET):
                if path == "/" + prefix or path.startswith(f"/{prefix}/"):
                    route, path = prefix, path[len(prefix) + 1 :]
                    break
        streams: list[str]
        if path == "/stream":
            params = dict(p.partition("=")[::2] for p in query.split("&") if p)
            streams = [s for s in params.get("streams", "").split("/") if s]
            combined = True
        elif path == "/ws" or path.startswith("/ws/"):
            streams = [s for s in path[4:].split("/") if s]
            combined = False
        else:
            return HttpReply.json(404, {"code": -1, "msg": f"no websocket endpoint at {path!r}"})
        bad = [s for s in streams if self.classify(s) is None]
        if bad:
            return HttpReply.json(400, {"code": -1, "msg": f"invalid stream name {bad[0]!r}"})
        if len(set(streams)) > MAX_STREAMS:
            return HttpReply.json(400, {"code": -1, "msg": f"too many streams (max {MAX_STREAMS})"})
        conn = BinanceConnection(
            self, path + ("?" + query if query else ""), faults, route=route, combined=combined, streams=streams
        )
        self.connections.add(conn)
        return conn

    def _wanted(self, *streams: str) -> bool:
        return not self.subscribers.keys().isdisjoint(streams)

    def publish(self, market: Market, step: Step, now_ms: int) -> None:
        if not self.subscribers:
            return  # nobody listens: nothing to encode (ground truth counts generation apart)
        sym = market.instrument.symbol
        names = self._names[sym]
        px, qty = self._px[sym], self._qty[sym]
        fut = self.futures
        tx_ms = now_ms - (step.last_id % 4)  # transaction time a few ms before the event
        diff_streams = names.diff
        if self._wanted(*diff_streams):
            bids, asks = step.levels()
            body: dict[str, Any] = {"e": "depthUpdate", "E": now_ms}
            if fut:
                body["T"] = tx_ms
            body["s"] = sym
            body["U"] = step.first_id
            body["u"] = step.last_id
            if fut:
                body["pu"] = step.prev_id
            body["b"] = [[px(t), qty(q)] for t, q in bids.items()]
            body["a"] = [[px(t), qty(q)] for t, q in asks.items()]
            frame = Frame(
                orjson.dumps(body),
                "depth",
                "l2",
                sym,
                rows=len(bids) + len(asks),
                first_seq=step.first_id,
                last_seq=step.last_id,
            )
            for stream in diff_streams:
                self.fan_out(stream, frame)
        self._publish_partials(market, step, now_ms)
        if step.bbo_changed and self._wanted(names.book_ticker, "!bookTicker"):
            bt, bq, at, aq = step.bbo
            if fut:
                ticker: dict[str, Any] = {
                    "e": "bookTicker",
                    "u": step.last_id,
                    "s": sym,
                    "b": px(bt),
                    "B": qty(bq),
                    "a": px(at),
                    "A": qty(aq),
                    "T": tx_ms,
                    "E": now_ms,
                }
            else:
                ticker = {"u": step.last_id, "s": sym, "b": px(bt), "B": qty(bq), "a": px(at), "A": qty(aq)}
            frame = Frame(
                orjson.dumps(ticker), "bookTicker", "bbo", sym, rows=1, first_seq=step.last_id, last_seq=step.last_id
            )
            self.fan_out(names.book_ticker, frame)
            self.fan_out("!bookTicker", frame)
        if step.fills and names.trade in self.subscribers:
            for fill in step.fills:
                if fut:
                    trade: dict[str, Any] = {
                        "e": "trade",
                        "E": now_ms,
                        "T": tx_ms,
                        "s": sym,
                        "t": fill.trade_id,
                        "p": px(fill.tick),
                        "q": qty(fill.lots),
                        "X": "MARKET",
                        "m": fill.buyer_is_maker,
                    }
                else:
                    trade = {
                        "e": "trade",
                        "E": now_ms,
                        "s": sym,
                        "t": fill.trade_id,
                        "p": px(fill.tick),
                        "q": qty(fill.lots),
                        "T": tx_ms,
                        "m": fill.buyer_is_maker,
                        "M": True,
                    }
                self.fan_out(names.trade, Frame(orjson.dumps(trade), "trade", "trades", sym, rows=1))
        if step.groups and names.agg_trade in self.subscribers:
            for g in step.groups:
                if fut:
                    agg: dict[str, Any] = {
                        "e": "aggTrade",
                        "E": now_ms,
                        "a": g.agg_id,
                        "s": sym,
                        "p": px(g.tick),
                        "q": qty(g.lots),
                        "f": g.first_trade_id,
                        "l": g.last_trade_id,
                        "T": tx_ms,
                        "m": g.buyer_is_maker,
                    }
                else:
                    agg = {
                        "e": "aggTrade",
                        "E": now_ms,
                        "s": sym,
                        "a": g.agg_id,
                        "p": px(g.tick),
                        "q": qty(g.lots),
                        "f": g.first_trade_id,
                        "l": g.last_trade_id,
                        "T": tx_ms,
                        "m": g.buyer_is_maker,
                        "M": True,
                    }
                self.fan_out(names.agg_trade, Frame(orjson.dumps(agg), "aggTrade", "trades", sym, rows=1))

    def pregenerate_streams(self, symbol: str) -> tuple[str, ...] | None:
        """Diffs, bookTicker, trade and aggTrade; partial depth is encoded live when sent."""
        names = self._names[symbol]
        return (*names.diff, names.book_ticker, "!bookTicker", names.trade, names.agg_trade)

    def publish_pregenerated(self, market: Market, step: Step, frames: list[tuple[str, Frame]], now_ms: int) -> None:
        for stream, frame in frames:
            self.fan_out(stream, frame)
        if self.subscribers:
            self._publish_partials(market, step, now_ms)

    def _publish_partials(self, market: Market, step: Step, now_ms: int) -> None:
        """depth5/10/20 frames (one snapshot of the published book each), for subscribed ones."""
        for n, partial_streams in self._names[market.instrument.symbol].partial:
            if self._wanted(*partial_streams):
                frame = self._partial(market, step, n, now_ms, now_ms - (step.last_id % 4))
                for stream in partial_streams:
                    self.fan_out(stream, frame)

    def _partial(self, market: Market, step: Step, n: int, now_ms: int, tx_ms: int) -> Frame:
        sym = market.instrument.symbol
        px, qty = self._px[sym], self._qty[sym]
        snap = market.snapshot(n)
        bids = [[px(t), qty(q)] for t, q in snap.bids]
        asks = [[px(t), qty(q)] for t, q in snap.asks]
        if self.futures:
            body: dict[str, Any] = {
                "e": "depthUpdate",
                "E": now_ms,
                "T": tx_ms,
                "s": sym,
                "U": step.first_id,
                "u": step.last_id,
                "pu": step.prev_id,
                "b": bids,
                "a": asks,
            }
        else:
            body = {"lastUpdateId": step.last_id, "bids": bids, "asks": asks}
        return Frame(
            orjson.dumps(body),
            f"depth{n}",
            "l2_partial",
            sym,
            rows=len(bids) + len(asks),
            first_seq=step.last_id,
            last_seq=step.last_id,
        )

    # -- notices -------------------------------------------------------------------

    def shutdown_notice(self, conn: Connection) -> bytes | None:
        body = orjson.dumps({"e": "serverShutdown", "E": int(time.time() * 1000)})
        if getattr(conn, "combined", False):
            return b'{"stream":"!serverShutdown","data":' + body + b"}"
        return body

    def unknown_message(self, conn: Connection) -> bytes:
        body = orjson.dumps({"e": "simUnknownEvent", "E": int(time.time() * 1000), "s": self.symbols[0]})
        if getattr(conn, "combined", False):
            return b'{"stream":"' + self.symbols[0].lower().encode() + b'@simUnknown","data":' + body + b"}"
        return body

    # -- REST ----------------------------------------------------------------------

    def format_book(self, symbol: str, snapshot: Snapshot) -> dict[str, Any]:
        px, qty = self._px[symbol], self._qty[symbol]
        return {
            "lastUpdateId": snapshot.last_id,
            "bids": [[px(t), qty(q)] for t, q in snapshot.bids],
            "asks": [[px(t), qty(q)] for t, q in snapshot.asks],
        }

    async def rest(self, request: HttpRequest) -> HttpReply | None:
        if not request.path.startswith(self.rest_prefix):
            return None
        endpoint = request.path[len(self.rest_prefix) :]
        self.truth.rest[endpoint] += 1
        if endpoint == "ping":
            return HttpReply.json(200, {})
        if endpoint == "time":
            return HttpReply.json(200, {"serverTime": int(time.time() * 1000)})
        if endpoint == "exchangeInfo":
            return self._weighted(HttpReply.json(200, exchange_info(self)), 20 if not self.futures else 1)
        if endpoint == "depth":
            return self._depth(request)
        return None

    def _depth(self, request: HttpRequest) -> HttpReply:
        symbol = request.query.get("symbol", "")
        if not symbol:
            return HttpReply.json(
                400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}
            )
        market = self.markets.get(symbol)
        if market is None:
            return HttpReply.json(400, {"code": -1121, "msg": "Invalid symbol."})
        raw = request.query.get("limit", str(self.default_limit))
        if not raw.isdigit():
            return HttpReply.json(
                400,
                {
                    "code": -1100,
                    "msg": "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
                },
            )
        limit = int(raw)
        if self.depth_limits is not None and limit not in self.depth_limits:
            return HttpReply.json(400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."})
        limit = max(1, min(limit, 5000))
        key = request.fault_key
        n = self._rest_counts[key] = self._rest_counts.get(key, 0) + 1
        if n <= request.faults.rest_429:
            self.truth.rest["depth_429"] += 1
            return HttpReply.json(429, {"code": -1003, "msg": "Too many requests; simulated."}, {"Retry-After": "1"})
        skey = f"{key}|{symbol}"
        s = self._rest_counts[skey] = self._rest_counts.get(skey, 0) + 1
        if s <= request.faults.stale_snapshot:
            self.truth.rest["depth_stale"] += 1
            full = market.initial
            snap = Snapshot(full.last_id, full.bids[:limit], full.asks[:limit])
        else:
            # Land inside the next event's id range, as a real snapshot taken mid-stream does.
            pending = market.pending
            inside = None if pending is None else self._rest_rng.randrange(len(pending.ops))
            snap = market.snapshot(limit, inside_pending=inside)
        body = self.format_book(symbol, snap)
        if self.futures:
            now = int(time.time() * 1000)
            body = {"lastUpdateId": snap.last_id, "E": now, "T": now - 2, "bids": body["bids"], "asks": body["asks"]}
        return self._weighted(HttpReply.json(200, body), self._depth_weight(limit))

    def _depth_weight(self, limit: int) -> int:
        if self.futures:
            return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250

    def _weighted(self, reply: HttpReply, weight: int) -> HttpReply:
        """Charge request weight over a rolling minute; over budget is a 429 like the real one."""
        now = time.monotonic()
        window = self._weight_window
        while window and window[0][0] <= now - 60.0:
            window.pop(0)
        used = sum(w for _, w in window) + weight
        if used > self.weight_budget:
            return HttpReply.json(429, {"code": -1003, "msg": "Too much request weight used."}, {"Retry-After": "60"})
        window.append((now, weight))
        reply.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        return reply


class BinanceFutures(BinanceSpot):
    """Binance USD-M: U/u/pu with jumping ids, /public and /market routes, REST /fapi/v1."""

    name: ClassVar[str] = "binance_futures"
    official: ClassVar[dict[str, str]] = {"ws": "wss://fstream.binance.com", "rest": "https://fapi.binance.com"}
    capture_names: ClassVar[tuple[str, ...]] = ("BINANCE_FUTURES",)
    default_keepalive: ClassVar[Keepalive] = Keepalive(180.0, 600.0, 10, 24 * 3600.0)
    first_update_id: ClassVar[int] = 600_000_000_000
    update_id_gap: ClassVar[int] = 400
    futures: ClassVar[bool] = True
    rest_prefix: ClassVar[str] = "/fapi/v1/"
    diff_speeds: ClassVar[tuple[str, ...]] = ("", "@100ms", "@250ms", "@500ms")
    depth_limits: ClassVar[tuple[int, ...] | None] = (5, 10, 20, 50, 100, 500, 1000)
    default_limit: ClassVar[int] = 500
    weight_budget: ClassVar[int] = 2400

    async def background(self) -> None:
        """markPriceUpdate every 3 s (``@markPrice``) and 1 s (``@markPrice@1s``)."""
        tick = 0
        while True:
            await asyncio.sleep(1.0)
            tick += 1
            now = int(time.time() * 1000)
            for sym, market in self.markets.items():
                low = sym.lower()
                streams = [f"{low}@markPrice@1s"] + ([f"{low}@markPrice"] if tick % 3 == 0 else [])
                if not self._wanted(*streams):
                    continue
                bt, _, at, _ = market._bbo()
                mark = self._px[sym]((bt + at) // 2)
                body = {
                    "e": "markPriceUpdate",
                    "E": now,
                    "s": sym,
                    "p": mark,
                    "i": mark,
                    "P": mark,
                    "r": "0.00010000",
                    "T": (now // 28_800_000 + 1) * 28_800_000,
                }
                frame = Frame(orjson.dumps(body), "markPrice", None, sym, rows=0)
                for stream in streams:
                    self.fan_out(stream, frame)
