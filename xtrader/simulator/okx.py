"""OKX v5 public market data, written from docs/EXCHANGES.md sections 3 and 7.

Wire names (all OKX's): every push is ``{"arg":{"channel":..,"instId":..},["action":..,]"data":[{..}]}``
with ``data`` an array; levels are ``[px, sz, "0", numOrders]``, all strings, size ``"0"``
deletes; ``ts`` is ms as a string; ``seqId``/``prevSeqId`` chain the book messages of one
instrument (the same ids on every connection and channel; a snapshot has ``prevSeqId`` -1;
``prevSeqId == seqId`` on a no-change message; ``seqId < prevSeqId`` on a sequence reset).

Endpoints: ``/ws/v5/public`` (books, books5, bbo-tbt, trades, tickers; books-l2-tbt and
books50-l2-tbt are refused with 64003, there being no accounts), ``/ws/v5/business``
(trades-all; candles accepted but silent). REST: ``/api/v5/public/instruments``,
``/api/v5/market/books``, ``/api/v5/public/time``.

Instruments are spot pairs named like ``BTC-USDT``. `settings_help` lists the venue options
(``Simulator(venue_options={"okx": {...}})`` or ``--venue-option okx.NAME=VALUE``).

Deliberate simplifications: ``books`` sends one update per market step rather than per 100 ms;
the book stays within the 400 levels of ``books`` only while the simulator's ``depth`` is at
most 333 (the default is 200); SWAP, FUTURES and OPTION instrument lists are empty.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from .connection import Connection
from .faults import Faults
from .generate import ASK, BID, Instrument, Market, Snapshot, Step, fixed, memo
from .okx_session import BUSINESS_PATH, PUBLIC_PATH, OkxConnection
from .truth import Frame
from .venue import HttpReply, HttpRequest, Keepalive, Venue, VenueOptions

BOOKS_DEPTH = 400  # levels per side of the `books` snapshot
REST_BOOKS_MAX = 400
REST_BOOKS_BUDGET = (40, 2.0)  # requests per seconds, per IP (3.6)
CHECKSUM_LEVELS = 25
TICKER_INTERVAL_S = 0.1  # tickers: at most every 100 ms (3.4)


@dataclass(frozen=True)
class OkxInstrument(Instrument):
    """An instrument under OKX's name, ``BASE-QUOTE``."""

    @property
    def symbol(self) -> str:
        return f"{self.base}-{self.quote}"


@dataclass
class _Symbol:
    """Per-instrument state: formatters, seqId offset, ticker statistics, last pushes."""

    inst: Instrument
    px: Callable[[int], str]
    sz: Callable[[int], str]
    keys: dict[str, str]  # channel -> fan-out key
    args: dict[str, bytes]  # channel -> encoded `arg` object
    open_tick: int
    offset: int = 0  # seqId = update id - offset; moved by a sequence reset
    reset_pending: bool = False
    initial_seq: int = 0
    ts: int = field(default_factory=lambda: int(time.time() * 1000))  # ms of the last change
    quiet_since: float = field(default_factory=time.monotonic)  # last change or no-change push
    bbo: tuple[int, int, int, int] = (0, 0, 0, 0)
    last_tick: int = 0
    last_lots: int = 0
    high: int = 0
    low: int = 0
    volume: int = 0  # lots
    turnover: int = 0  # ticks * lots
    ticker_dirty: bool = False
    ticker_version: int = 0
    ticker_sent_at: float = 0.0
    books5_top: object = None  # the top 5 last pushed on books5
    last: dict[str, tuple[object, Frame]] = field(default_factory=dict)  # channel -> (state version, frame)


class Okx(Venue):
    """OKX v5 public: books with seqId/prevSeqId (optional legacy CRC32), books5, bbo-tbt, trades, tickers."""

    name: ClassVar[str] = "okx"
    official: ClassVar[dict[str, str]] = {"ws": "wss://ws.okx.com:8443", "rest": "https://www.okx.com"}
    capture_names: ClassVar[tuple[str, ...]] = ("OKX",)
    default_keepalive: ClassVar[Keepalive] = Keepalive()  # no server pings: the client sends text `ping`
    first_update_id: ClassVar[int] = 16_000_000_000
    update_id_gap: ClassVar[int] = 40  # seqId steps are not +1 (3.5)
    settings_help: ClassVar[dict[str, str]] = {
        "checksum": "1: legacy CRC32 checksums on book messages; 0 (default): checksum 0, as production since 2026-06",
        "nochange_s": "seconds without a change before the no-change push (default 60; 0: never)",
        "idle_timeout_s": "close 4004 after this long without a subscription or any push (default 30; 0: never)",
        "seq_reset_s": "reset every instrument's seqId this often (default 0: never; see also reset_sequence())",
        "initial_snapshot": "1 (default): books starts with a snapshot; 0: updates only, as OKX announced for "
        "books, books-elp, books-l2-tbt and books50-l2-tbt (changelog, 12 Feb 2026): build the book from REST",
    }

    def __init__(self, options: VenueOptions) -> None:
        super().__init__(options)
        self.checksum = self.setting("checksum", False)
        self.nochange_s = self.setting("nochange_s", 60.0)
        self.idle_timeout_s = self.setting("idle_timeout_s", 30.0)
        self.seq_reset_s = self.setting("seq_reset_s", 0.0)
        self.initial_snapshot = self.setting("initial_snapshot", True)
        self.resets = 0
        # Rename the generated instruments (BTCUSDT -> BTC-USDT); the markets stay as seeded.
        renamed: dict[str, Market] = {}
        for market in self.markets.values():
            i = market.instrument
            market.instrument = OkxInstrument(i.base, i.quote, i.mid, i.tick_scale, i.lot_scale, i.typical_size)
            renamed[market.instrument.symbol] = market
        self.markets = renamed
        self.instruments = [m.instrument for m in renamed.values()]
        self._state: dict[str, _Symbol] = {}
        for sym, market in renamed.items():
            i = market.instrument
            channels = ("bbo-tbt", "books", "books5", "trades", "tickers", "trades-all")
            b0, a0 = market.initial.bids[0][0], market.initial.asks[0][0]
            st = _Symbol(
                i,
                memo(_number(i.tick_scale)),
                _number(i.lot_scale),  # sizes hardly repeat: not memoised
                {c: f"{c}:{sym}" for c in channels},
                {c: orjson.dumps({"channel": c, "instId": sym}) for c in channels},
                (b0 + a0) // 2,
            )
            st.bbo = (b0, market.initial.bids[0][1], a0, market.initial.asks[0][1])
            st.last_tick = st.high = st.low = st.open_tick
            st.initial_seq = market.initial.last_id
            self._state[sym] = st
        self._conn_rng = random.Random(f"{options.seed}:{self.name}:conn")
        self._rest_rng = random.Random(f"{options.seed}:{self.name}:rest")
        self._rest_counts: dict[str, int] = {}
        self._rest_window: list[float] = []

    # -- websocket -----------------------------------------------------------------

    def open_ws(self, path: str, query: str, faults: Faults) -> Connection | HttpReply:
        if path not in (PUBLIC_PATH, BUSINESS_PATH):
            return HttpReply.json(404, {"code": "60018", "msg": f"no websocket endpoint at {path!r}"})
        conn_ref = f"{self._conn_rng.getrandbits(32):08x}"
        target = path + ("?" + query if query else "")
        conn = OkxConnection(self, target, faults, business=path == BUSINESS_PATH, conn_ref=conn_ref)
        self.connections.add(conn)
        return conn

    def attach(self, conn: OkxConnection, channel: str, sym: str) -> None:
        """Start a subscription: its first push (book snapshot, current books5/bbo/ticker), then the stream."""
        frame = self._first_push(channel, sym)
        if frame is not None:
            conn.enqueue(frame, frame.data)
        self.subscribe(conn, f"{channel}:{sym}")

    def reset_sequence(self, symbol: str | None = None) -> None:
        """Make the next book message of `symbol` (default: every instrument) a sequence reset (3.5)."""
        for sym, st in self._state.items():
            if symbol is None or sym == symbol:
                st.reset_pending = True

    def shutdown_notice(self, conn: Connection) -> bytes | None:
        ref = conn.conn_ref if isinstance(conn, OkxConnection) else ""
        return orjson.dumps(
            {
                "event": "notice",
                "code": "64008",
                "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                "connId": ref,
            }
        )

    def unknown_message(self, conn: Connection) -> bytes:
        sym = self.symbols[0]
        return orjson.dumps({"arg": {"channel": "sim-unknown", "instId": sym}, "data": [{"instId": sym, "ts": _ms()}]})

    def corrupt_checksum(self, frame: Frame, data: bytes) -> bytes | None:
        if not self.checksum:
            return None  # checksum 0 means "none": nothing to corrupt
        at = data.rfind(b'"checksum":')
        if at < 0:
            return None
        start = at + len(b'"checksum":')
        end = start
        while end < len(data) and data[end] in b"-0123456789":
            end += 1
        wrong = int(data[start:end]) ^ 0x2D5A3C1B  # stays a signed 32-bit value, never equal
        return data[:start] + str(wrong).encode() + data[end:]

    # -- encoding ------------------------------------------------------------------

    def publish(self, market: Market, step: Step, now_ms: int) -> None:
        sym = market.instrument.symbol
        st = self._state[sym]
        prev = step.prev_id - st.offset
        trade_offset = st.offset
        if st.reset_pending and prev > 0:
            st.reset_pending = False
            self.resets += 1
            # seqId restarts small and below prevSeqId (3.5's example: 15 -> 3).
            st.offset = step.last_id - min(1 + step.last_id % 16, prev - 1)
        seq = step.last_id - st.offset
        st.ts = now_ms
        st.quiet_since = time.monotonic()
        st.bbo = step.bbo
        for g in step.groups:
            st.last_tick, st.last_lots = g.tick, g.lots
            st.high, st.low = max(st.high, g.tick), min(st.low, g.tick)
            st.volume += g.lots
            st.turnover += g.tick * g.lots
        if step.groups or step.bbo_changed:
            st.ticker_dirty = True
            st.ticker_version += 1
        subs = self.subscribers
        if not subs:
            return
        keys, ts = st.keys, str(now_ms)
        version = (market.published_id, st.offset)
        # Per instrument, OKX pushes bbo-tbt, then books, then books5 (3.4).
        if step.bbo_changed and keys["bbo-tbt"] in subs:
            self.fan_out(keys["bbo-tbt"], self._bbo_frame(st, seq, ts, version))
        if keys["books"] in subs:
            bids, asks = step.levels()
            lv = self._level
            ask_rows = [lv(st, t, q) for t, q in sorted(asks.items())]
            bid_rows = [lv(st, t, q) for t, q in sorted(bids.items(), reverse=True)]
            checksum = self._checksum(st, *_top(market, CHECKSUM_LEVELS)) if self.checksum else 0
            body = _push(st.args["books"], b"update", ask_rows, bid_rows, ts, checksum, prev, seq)
            rows = len(ask_rows) + len(bid_rows)
            self.fan_out(keys["books"], Frame(body, "books", "l2", sym, rows=rows, first_seq=seq, last_seq=seq))
        if keys["books5"] in subs:
            top = _top(market, 5)
            if top != st.books5_top:  # books5 pushes only when its 5 levels changed
                self.fan_out(keys["books5"], self._books5_frame(st, top, seq, ts, version))
        if step.groups and keys["trades"] in subs:
            for k, g in enumerate(step.groups):
                trade = {
                    "instId": sym,
                    "tradeId": str(g.last_trade_id),
                    "px": st.px(g.tick),
                    "sz": st.sz(g.lots),
                    "side": "sell" if g.buyer_is_maker else "buy",  # the taker's side
                    "ts": ts,
                    "count": str(g.last_trade_id - g.first_trade_id + 1),
                    "source": "0",
                    "seqId": step.ops[k].last_id - trade_offset,  # the op this taker order caused
                }
                body = b'{"arg":' + st.args["trades"] + b',"data":[' + orjson.dumps(trade) + b"]}"
                self.fan_out(keys["trades"], Frame(body, "trades", "trades", sym, rows=1))
        if step.fills and keys["trades-all"] in subs:
            for f in step.fills:
                fill = {
                    "instId": sym,
                    "tradeId": str(f.trade_id),
                    "px": st.px(f.tick),
                    "sz": st.sz(f.lots),
                    "side": "sell" if f.buyer_is_maker else "buy",
                    "source": "0",
                    "ts": ts,
                }
                body = b'{"arg":' + st.args["trades-all"] + b',"data":[' + orjson.dumps(fill) + b"]}"
                self.fan_out(keys["trades-all"], Frame(body, "trades-all", "trades", sym, rows=1))

    def _level(self, st: _Symbol, tick: int, lots: int) -> list[str]:
        if not lots:
            return [st.px(tick), "0", "0", "0"]
        # No orders in the generator: a stable count per (price, size), so snapshots and updates agree.
        return [st.px(tick), st.sz(lots), "0", str(min(lots, 1 + (tick * 7 + lots) % 9))]

    def _checksum(self, st: _Symbol, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> int:
        """Legacy CRC32 (3.7): best 25 bids and asks interleaved, ``px:sz`` strings as sent, signed."""
        px, sz = st.px, st.sz
        b = [px(t) + ":" + sz(q) for t, q in bids[:CHECKSUM_LEVELS]]
        a = [px(t) + ":" + sz(q) for t, q in asks[:CHECKSUM_LEVELS]]
        parts = [x for pair in zip(b, a, strict=False) for x in pair]  # bid1, ask1, bid2, ask2...
        longer = b if len(b) > len(a) else a
        parts += longer[min(len(a), len(b)) :]  # one side ran out: the rest of the other
        crc = zlib.crc32(":".join(parts).encode())
        return crc - (1 << 32) if crc >= 1 << 31 else crc

    def _seq(self, market: Market, st: _Symbol) -> int:
        return market.published_id - st.offset

    def _bbo_frame(self, st: _Symbol, seq: int, ts: str, version: object) -> Frame:
        bt, bq, at, aq = st.bbo
        data = {"asks": [self._level(st, at, aq)], "bids": [self._level(st, bt, bq)], "ts": ts, "seqId": seq}
        body = b'{"arg":' + st.args["bbo-tbt"] + b',"data":[' + orjson.dumps(data) + b"]}"
        frame = Frame(body, "bbo-tbt", "bbo", st.inst.symbol, rows=1, first_seq=seq, last_seq=seq)
        st.last["bbo-tbt"] = (version, frame)
        return frame

    def _books5_frame(
        self, st: _Symbol, top: tuple[list[tuple[int, int]], list[tuple[int, int]]], seq: int, ts: str, version: object
    ) -> Frame:
        bids, asks = top
        st.books5_top = top
        data = {
            "asks": [self._level(st, t, q) for t, q in asks],
            "bids": [self._level(st, t, q) for t, q in bids],
            "instId": st.inst.symbol,
            "ts": ts,
            "seqId": seq,
        }
        body = b'{"arg":' + st.args["books5"] + b',"data":[' + orjson.dumps(data) + b"]}"
        rows = len(bids) + len(asks)
        frame = Frame(body, "books5", "l2_partial", st.inst.symbol, rows=rows, first_seq=seq, last_seq=seq)
        st.last["books5"] = (version, frame)
        return frame

    def _ticker_frame(self, st: _Symbol, ts: str) -> Frame:
        px, sz = st.px, st.sz
        bt, bq, at, aq = st.bbo
        i = st.inst
        data = {
            "instType": "SPOT",
            "instId": i.symbol,
            "last": px(st.last_tick),
            "lastSz": sz(st.last_lots),
            "askPx": px(at),
            "askSz": sz(aq),
            "bidPx": px(bt),
            "bidSz": sz(bq),
            "open24h": px(st.open_tick),
            "high24h": px(st.high),
            "low24h": px(st.low),
            "volCcy24h": _trim(fixed(st.turnover, i.tick_scale + i.lot_scale, i.tick_scale + i.lot_scale)),
            "vol24h": sz(st.volume),
            "sodUtc0": px(st.open_tick),
            "sodUtc8": px(st.open_tick),
            "ts": ts,
        }
        body = b'{"arg":' + st.args["tickers"] + b',"data":[' + orjson.dumps(data) + b"]}"
        frame = Frame(body, "tickers", "bbo", i.symbol, rows=1)
        st.last["tickers"] = (st.ticker_version, frame)
        return frame

    def _books_snapshot(self, market: Market, st: _Symbol) -> Frame:
        snap = market.snapshot(BOOKS_DEPTH)
        seq = snap.last_id - st.offset
        version = (snap.last_id, st.offset)
        cached = st.last.get("books:snapshot")
        if cached is not None and cached[0] == version:
            return cached[1]  # redundant connections subscribing at one state get one message
        checksum = self._checksum(st, snap.bids, snap.asks) if self.checksum else 0
        ask_rows = [self._level(st, t, q) for t, q in snap.asks]
        bid_rows = [self._level(st, t, q) for t, q in snap.bids]
        body = _push(st.args["books"], b"snapshot", ask_rows, bid_rows, str(st.ts), checksum, -1, seq)
        rows = len(ask_rows) + len(bid_rows)
        frame = Frame(body, "books", "l2", st.inst.symbol, rows=rows, first_seq=seq, last_seq=seq)
        st.last["books:snapshot"] = (version, frame)
        return frame

    def _first_push(self, channel: str, sym: str) -> Frame | None:
        market, st = self.markets[sym], self._state[sym]
        version = (market.published_id, st.offset)
        cached = st.last.get(channel)
        if channel == "books":
            return self._books_snapshot(market, st) if self.initial_snapshot else None
        if channel in ("books5", "bbo-tbt"):
            if cached is not None and cached[0] == version:
                return cached[1]  # the shared frame is still current: the same message
            seq, ts = self._seq(market, st), str(st.ts)
            if channel == "bbo-tbt":
                return self._bbo_frame(st, seq, ts, version)
            return self._books5_frame(st, _top(market, 5), seq, ts, version)
        if channel == "tickers":
            if cached is not None and cached[0] == st.ticker_version:
                return cached[1]
            return self._ticker_frame(st, str(st.ts))
        return None

    # -- periodic pushes -------------------------------------------------------------

    async def background(self) -> None:
        """Tickers (at most every 100 ms, when something changed), no-change messages, resets."""
        tick = max(0.01, min(0.1, self.nochange_s / 4)) if self.nochange_s else 0.1
        next_reset = time.monotonic() + self.seq_reset_s
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self.seq_reset_s and now >= next_reset:
                next_reset = now + self.seq_reset_s
                self.reset_sequence()
            for sym, st in self._state.items():
                if st.ticker_dirty and now - st.ticker_sent_at >= TICKER_INTERVAL_S:
                    st.ticker_dirty = False
                    if st.keys["tickers"] in self.subscribers:
                        st.ticker_sent_at = now
                        self.fan_out(st.keys["tickers"], self._ticker_frame(st, _ms()))
                if self.nochange_s and now - st.quiet_since >= self.nochange_s:
                    st.quiet_since = now
                    self._no_change(self.markets[sym], st)

    def _no_change(self, market: Market, st: _Symbol) -> None:
        """3.5: after a quiet spell, books gets an empty update with prevSeqId == seqId;
        books5 and bbo-tbt resend their latest snapshot."""
        subs = self.subscribers
        seq = self._seq(market, st)
        if st.keys["books"] in subs:
            checksum = self._checksum(st, *_top(market, CHECKSUM_LEVELS)) if self.checksum else 0
            body = _push(st.args["books"], b"update", [], [], _ms(), checksum, seq, seq)
            frame = Frame(body, "books", "l2", st.inst.symbol, rows=0, first_seq=seq, last_seq=seq)
            self.fan_out(st.keys["books"], frame)
        for channel in ("bbo-tbt", "books5"):
            if st.keys[channel] in subs:
                latest = self._first_push(channel, st.inst.symbol)
                if latest is not None:
                    self.fan_out(st.keys[channel], latest)

    # -- REST ----------------------------------------------------------------------

    def format_book(self, symbol: str, snapshot: Snapshot) -> dict[str, Any]:
        st = self._state[symbol]
        return _ok(
            [
                {
                    "asks": [self._level(st, t, q) for t, q in snapshot.asks],
                    "bids": [self._level(st, t, q) for t, q in snapshot.bids],
                    "ts": str(st.ts),
                    "seqId": snapshot.last_id - st.offset,
                }
            ]
        )

    async def rest(self, request: HttpRequest) -> HttpReply | None:
        path = request.path
        if path == "/api/v5/public/instruments":
            self.truth.rest["instruments"] += 1
            return self._instruments(request.query)
        if path == "/api/v5/market/books":
            self.truth.rest["books"] += 1
            return self._books(request)
        if path == "/api/v5/public/time":
            self.truth.rest["time"] += 1
            return HttpReply.json(200, _ok([{"ts": _ms()}]))
        return None

    def _instruments(self, query: dict[str, str]) -> HttpReply:
        kind = query.get("instType", "")
        if not kind:
            return _fail(400, "50014", "Parameter instType can not be empty.")
        if kind not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            return _fail(400, "51000", "Parameter instType error")
        if kind == "OPTION" and not (query.get("uly") or query.get("instFamily")):
            return _fail(400, "50014", "Parameter instFamily can not be empty.")
        if kind != "SPOT":
            return HttpReply.json(200, _ok([]))  # generated markets are spot only
        wanted = query.get("instId")
        return HttpReply.json(
            200, _ok([_instrument(m.instrument) for s, m in self.markets.items() if wanted in (None, s)])
        )

    def _books(self, request: HttpRequest) -> HttpReply:
        q = request.query
        inst = q.get("instId", "")
        if not inst:
            return _fail(400, "50014", "Parameter instId can not be empty.")
        market = self.markets.get(inst)
        if market is None:
            return _fail(200, "51001", "Instrument ID does not exist.")
        raw = q.get("sz", "1")
        if not raw.isdigit() or not 1 <= int(raw) <= REST_BOOKS_MAX:
            return _fail(400, "51000", "Parameter sz error")
        limit = int(raw)
        source = q.get("source")
        if source not in (None, "0"):
            return _fail(400, "51000", "Parameter source error")
        if source == "0":
            self.truth.rest["books_source_0"] += 1
        now = time.monotonic()
        window = self._rest_window
        count, span = REST_BOOKS_BUDGET
        while window and window[0] <= now - span:
            window.pop(0)
        if len(window) >= count:
            return _fail(429, "50011", "Too Many Requests")
        window.append(now)
        key = request.fault_key
        n = self._rest_counts[key] = self._rest_counts.get(key, 0) + 1
        if n <= request.faults.rest_429:
            self.truth.rest["books_429"] += 1
            return _fail(429, "50011", "Too Many Requests", {"Retry-After": "1"})
        st = self._state[inst]
        skey = f"{key}|{inst}"
        s = self._rest_counts[skey] = self._rest_counts.get(skey, 0) + 1
        if s <= request.faults.stale_snapshot:
            self.truth.rest["books_stale"] += 1
            full = market.initial
            snap = Snapshot(full.last_id, full.bids[:limit], full.asks[:limit])
            body = self.format_book(inst, snap)
            body["data"][0]["seqId"] = st.initial_seq  # the start-up book: older than anything streamed since
            return HttpReply.json(200, body)
        # Half the time, a state inside the next message: its seqId is then not one the stream carries,
        # which 3.6's rule allows (prevSeqId <= snapshot seqId < seqId).
        pending = market.pending
        inside = None
        if pending is not None and not st.reset_pending and self._rest_rng.random() < 0.5:
            inside = self._rest_rng.randrange(len(pending.ops))
        return HttpReply.json(200, self.format_book(inst, market.snapshot(limit, inside_pending=inside)))


def _instrument(i: Instrument) -> dict[str, str]:
    """One SPOT entry of /api/v5/public/instruments (the field set of the real answer)."""
    tick, lot = _trim(fixed(1, i.tick_scale, i.tick_scale)), _trim(fixed(1, i.lot_scale, i.lot_scale))
    return {
        "alias": "",
        "baseCcy": i.base,
        "category": "1",
        "ctMult": "",
        "ctType": "",
        "ctVal": "",
        "ctValCcy": "",
        "expTime": "",
        "instFamily": "",
        "instId": i.symbol,
        "instType": "SPOT",
        "lever": "10",
        "listTime": "1548133413000",
        "lotSz": lot,
        "maxIcebergSz": "9999999999",
        "maxLmtSz": "9999999999",
        "maxMktSz": "1000000",
        "maxStopSz": "1000000",
        "maxTriggerSz": "9999999999",
        "maxTwapSz": "9999999999",
        "minSz": lot,
        "optType": "",
        "quoteCcy": i.quote,
        "settleCcy": "",
        "state": "live",
        "stk": "",
        "tickSz": tick,
        "uly": "",
    }


def _push(
    arg: bytes, action: bytes, asks: list[list[str]], bids: list[list[str]], ts: str, checksum: int, prev: int, seq: int
) -> bytes:
    data = {"asks": asks, "bids": bids, "ts": ts, "checksum": checksum, "prevSeqId": prev, "seqId": seq}
    return b'{"arg":' + arg + b',"action":"' + action + b'","data":[' + orjson.dumps(data) + b"]}"


def _top(market: Market, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The best `n` levels per side of the published book, best first."""
    if market.pending is None:  # while publishing, the book is exactly the published one
        bids, asks = market.sides[BID], market.sides[ASK]
        # Sorting a few hundred int keys in C beats heapq's Python-level selection.
        return [(t, bids[t]) for t in sorted(bids, reverse=True)[:n]], [(t, asks[t]) for t in sorted(asks)[:n]]
    snap = market.snapshot(n)
    return snap.bids, snap.asks


def _ok(data: list[Any]) -> dict[str, Any]:
    return {"code": "0", "msg": "", "data": data}


def _fail(status: int, code: str, msg: str, headers: dict[str, str] | None = None) -> HttpReply:
    return HttpReply.json(status, {"code": code, "msg": msg, "data": []}, headers)


def _ms() -> str:
    return str(int(time.time() * 1000))


def _trim(text: str) -> str:
    """OKX writes decimals without trailing zeros (``30316``, ``5.16``, ``0.0112``)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def _number(scale: int) -> Callable[[int], str]:
    """``units * 10**-scale`` as OKX writes it."""

    def text(units: int) -> str:
        return _trim(fixed(units, scale, scale))

    return text
