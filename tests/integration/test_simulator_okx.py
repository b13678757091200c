"""Simulator, OKX v5: subscribe flow, error codes, keepalive, books (seqId, checksum), REST, replay, faults.

The client code here is written from docs/EXCHANGES.md section 3 only (not xtrader.venues).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import zlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.captures import capture_path, records
from tests.integration.sim_client import client, collect, rest_get, take
from xtrader.simulator import Simulator
from xtrader.simulator.okx import Okx

PUBLIC = "/ws/v5/public"
BTC = "BTC-USDT"


# -- a plain OKX client (EXCHANGES.md 3) ------------------------------------------------------------------------


def crc32_signed(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """3.7: best 25 bids and asks interleaved, price and size strings exactly as received, signed CRC32."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    c = zlib.crc32(":".join(parts).encode())
    return c - (1 << 32) if c >= 1 << 31 else c


def test_checksum_matches_the_documented_vectors() -> None:
    assert crc32_signed([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]) == -1881014294
    assert crc32_signed([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")]) == 831078360


class Book:
    """A `books` channel book: snapshot, then updates accepted when prevSeqId == last seqId (3.5, 3.6)."""

    def __init__(self, verify_checksum: bool = True) -> None:
        self.verify = verify_checksum
        self.bids: dict[Decimal, tuple[str, str]] = {}
        self.asks: dict[Decimal, tuple[str, str]] = {}
        self.seq: int | None = None
        self.gaps = self.applied = self.checked = self.bad_checksums = self.no_change = self.resets = 0
        self.steps: list[int] = []

    def on_message(self, msg: dict[str, Any]) -> None:
        d = msg["data"][0]
        if msg["action"] == "snapshot":
            assert d["prevSeqId"] == -1
            self.bids, self.asks = {}, {}
        elif self.seq is None:
            return
        elif d["prevSeqId"] != self.seq:
            self.gaps += 1
            return
        elif d["seqId"] == d["prevSeqId"]:
            assert d["asks"] == [] and d["bids"] == []
            self.no_change += 1
        elif d["seqId"] < d["prevSeqId"]:
            self.resets += 1
        else:
            self.steps.append(d["seqId"] - d["prevSeqId"])
        self.apply(d)

    def load_rest(self, snap: dict[str, Any]) -> None:
        self.bids, self.asks = {}, {}
        self.apply({**snap, "checksum": 0})

    def apply(self, d: dict[str, Any]) -> None:
        for side, levels in ((self.bids, d["bids"]), (self.asks, d["asks"])):
            for px, sz, deprecated, orders in levels:
                assert deprecated == "0" and isinstance(orders, str)
                if Decimal(sz) == 0:
                    side.pop(Decimal(px), None)
                else:
                    side[Decimal(px)] = (px, sz)
        self.seq = d["seqId"]
        self.applied += 1
        if self.verify and d["checksum"] != 0:  # 3.7: 0 means "no checksum"
            self.checked += 1
            bids = [self.bids[p] for p in sorted(self.bids, reverse=True)[:25]]
            asks = [self.asks[p] for p in sorted(self.asks)[:25]]
            if crc32_signed(bids, asks) != d["checksum"]:
                self.bad_checksums += 1

    def top(self, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        bids = [(p, Decimal(self.bids[p][1])) for p in sorted(self.bids, reverse=True)[:depth]]
        asks = [(p, Decimal(self.asks[p][1])) for p in sorted(self.asks)[:depth]]
        return bids, asks


def levels(rest_levels: list[list[str]]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(px), Decimal(sz)) for px, sz, _, _ in rest_levels]


def args(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"channel": c, "instId": i} for c, i in pairs]


async def send(ws: ClientConnection, op: str, arg_list: list[dict[str, str]], rid: str | None = None) -> None:
    msg: dict[str, Any] = {"op": op, "args": arg_list}
    if rid is not None:
        msg["id"] = rid
    await ws.send(json.dumps(msg))


async def events(ws: ClientConnection, count: int, timeout: float = 2.0) -> list[dict[str, Any]]:
    """The next `count` `event` messages (acks, errors, notices), skipping pushes."""
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len(out) < count:
        msg = json.loads(await asyncio.wait_for(ws.recv(), end - loop.time()))
        if "event" in msg:
            out.append(msg)
    return out


def pushes(texts: list[str], channel: str | None = None) -> list[dict[str, Any]]:
    msgs = [json.loads(t) for t in texts if t != "pong"]
    return [m for m in msgs if "data" in m and (channel is None or m["arg"]["channel"] == channel)]


async def run_book(ws: ClientConnection, book: Book, seconds: float) -> list[dict[str, Any]]:
    """Feed `books` pushes to `book` for `seconds`; return every push received."""
    got = pushes(await collect(ws, seconds))
    for m in got:
        if m["arg"]["channel"] == "books":
            book.on_message(m)
    return got


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(venues=["okx"], symbols=2, rate=400, seed=7) as s:
        yield s


# -- subscribe flow ---------------------------------------------------------------------------------------------


async def test_one_ack_per_arg_with_conn_id_and_echoed_id(sim: Simulator) -> None:
    async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
        await send(ws, "subscribe", args(("books", BTC), ("trades", BTC), ("tickers", "ETH-USDT")), rid="1512")
        acks = await events(ws, 3)
        assert [a["arg"] for a in acks] == args(("books", BTC), ("trades", BTC), ("tickers", "ETH-USDT"))
        assert all(list(a) == ["id", "event", "arg", "connId"] and a["id"] == "1512" for a in acks)
        assert all(a["event"] == "subscribe" for a in acks)
        conn_id = acks[0]["connId"]
        assert len(conn_id) == 8 and {a["connId"] for a in acks} == {conn_id}
        got = pushes(await collect(ws, 0.3))
        assert {m["arg"]["channel"] for m in got} == {"books", "trades", "tickers"}
        await send(ws, "unsubscribe", args(("books", BTC), ("trades", BTC), ("tickers", "ETH-USDT")))
        unacks = await events(ws, 3)
        assert all(list(u) == ["event", "arg", "connId"] and u["event"] == "unsubscribe" for u in unacks)
        await collect(ws, 0.1)  # already in flight
        assert await collect(ws, 0.3) == []


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        ("{not json", "60012"),
        (json.dumps({"op": "subscribe", "args": args(("books", BTC)), "id": "bad-id!"}), "60012"),
        (json.dumps({"op": "frobnicate", "args": args(("books", BTC))}), "60012"),
        (json.dumps({"op": "subscribe"}), "60013"),
        (json.dumps({"op": "subscribe", "args": ["books"]}), "60013"),
        (json.dumps({"op": "subscribe", "args": args(("books9", BTC))}), "60018"),
        (json.dumps({"op": "subscribe", "args": args(("books", "BTC-NOPE"))}), "60018"),
        (json.dumps({"op": "subscribe", "args": args(("books-l2-tbt", BTC))}), "64003"),
        (json.dumps({"op": "subscribe", "args": args(("books50-l2-tbt", BTC))}), "64003"),
        (json.dumps({"op": "subscribe", "args": args(("candle1m", BTC))}), "64001"),
        (
            json.dumps({"op": "login", "args": [{"apiKey": "k", "passphrase": "p", "timestamp": "1", "sign": "s"}]}),
            "60009",
        ),
    ],
)
async def test_error_codes(sim: Simulator, request_text: str, code: str) -> None:
    async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
        await ws.send(request_text)
        (reply,) = await events(ws, 1)
        assert reply["event"] == "error" and reply["code"] == code and reply["msg"] and reply["connId"]
        assert await collect(ws, 0.2) == []  # and nothing subscribed


async def test_books_l2_tbt_beside_books_is_64004_and_business_refuses_public_channels(sim: Simulator) -> None:
    async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
        await send(ws, "subscribe", args(("books", BTC), ("books-l2-tbt", BTC)), rid="7")
        ack, err = await events(ws, 2)
        assert ack["event"] == "subscribe" and err["code"] == "64004" and err["id"] == "7"
    async with client(sim.urls["okx"]["ws"] + "/ws/v5/business") as ws:
        await send(ws, "subscribe", args(("books", BTC), ("trades-all", BTC), ("candle1m", BTC)))
        err, ack1, ack2 = await events(ws, 3)
        assert err["code"] == "60018" and ack1["arg"]["channel"] == "trades-all" and ack2["event"] == "subscribe"
        got = pushes(await collect(ws, 0.5))
        assert got and {m["arg"]["channel"] for m in got} == {"trades-all"}
        assert all(list(m["data"][0]) == ["instId", "tradeId", "px", "sz", "side", "source", "ts"] for m in got)


async def test_cumulative_subscribes_are_acked_each_time_and_stream_once(sim: Simulator) -> None:
    async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
        wanted = args(("tickers", BTC), ("trades", BTC), ("books", BTC))
        for n in (1, 2, 3):  # as cryptofeed does: every request repeats the earlier channels
            await send(ws, "subscribe", wanted[:n])
        texts = await collect(ws, 0.6)
    acks = [json.loads(t) for t in texts if '"event"' in t]
    assert [a["arg"]["channel"] for a in acks] == ["tickers", "tickers", "trades", "tickers", "trades", "books"]
    books = pushes(texts, "books")
    assert [m["action"] for m in books].count("snapshot") == 1
    book = Book()
    for m in books:
        book.on_message(m)
    assert book.gaps == 0 and book.applied == len(books)
    trade_ids = [m["data"][0]["tradeId"] for m in pushes(texts, "trades")]
    assert trade_ids and len(trade_ids) == len(set(trade_ids))


async def test_text_ping_pong_and_websocket_ping(sim: Simulator) -> None:
    async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 2) == "pong"
        await asyncio.wait_for(await ws.ping(), 2)  # websocket-level pings are answered too


async def test_idle_connections_close_4004() -> None:
    options = {"okx": {"idle_timeout_s": 0.5}}
    async with Simulator(venues=["okx"], symbols=1, rate=100, venue_options=options) as sim:
        url = sim.urls["okx"]["ws"]
        async with client(url + PUBLIC) as bare, client(url + "/ws/v5/business") as quiet:
            await send(quiet, "subscribe", args(("candle1m", BTC)))  # acked, then never pushes
            for _ in range(8):  # text pings every 0.15 s: their pongs keep the quiet one alive
                await quiet.send("ping")
                with contextlib.suppress(ConnectionClosed):
                    await bare.send("ping")  # ...but not a connection without any subscription
                await collect(quiet, 0.15)
            assert quiet.close_code is None
            await collect(bare, 0.1)
            assert bare.close_code == 4004
            await collect(quiet, 1.0)  # now silent: no push for 0.5 s
            assert quiet.close_code == 4004
        conns = {c["path"]: c for c in sim.stats()["venues"]["okx"]["connections"]}
    bare_stats = conns[PUBLIC]
    assert bare_stats["close_reason"] == "no subscription for 0.5 s"
    assert 0.5 <= bare_stats["closed_at"] - bare_stats["opened_at"] < 0.9
    assert conns["/ws/v5/business"]["close_reason"] == "no data push for 0.5 s"


# -- payloads ---------------------------------------------------------------------------------------------------


async def test_payload_shapes(sim: Simulator) -> None:
    async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
        await send(ws, "subscribe", args(*((c, BTC) for c in ("books", "books5", "bbo-tbt", "trades", "tickers"))))
        first: dict[tuple[str, str | None], dict[str, Any]] = {}
        for m in pushes(await collect(ws, 0.8)):
            first.setdefault((m["arg"]["channel"], m.get("action")), m)
    snap, update = first[("books", "snapshot")], first[("books", "update")]
    assert list(snap) == ["arg", "action", "data"] and snap["arg"] == {"channel": "books", "instId": BTC}
    for m in (snap, update):
        d = m["data"][0]
        assert list(d) == ["asks", "bids", "ts", "checksum", "prevSeqId", "seqId"] and d["checksum"] == 0
        assert isinstance(d["ts"], str) and int(d["ts"]) > 1_600_000_000_000
        assert all(len(lv) == 4 and all(isinstance(x, str) for x in lv) and lv[2] == "0" for lv in d["asks"])
    assert snap["data"][0]["prevSeqId"] == -1 and len(snap["data"][0]["bids"]) > 100
    b5 = first[("books5", None)]["data"][0]
    assert list(b5) == ["asks", "bids", "instId", "ts", "seqId"] and len(b5["asks"]) == len(b5["bids"]) == 5
    bbo = first[("bbo-tbt", None)]["data"][0]
    assert list(bbo) == ["asks", "bids", "ts", "seqId"] and len(bbo["asks"]) == len(bbo["bids"]) == 1
    trade = first[("trades", None)]["data"][0]
    assert list(trade) == ["instId", "tradeId", "px", "sz", "side", "ts", "count", "source", "seqId"]
    assert trade["side"] in ("buy", "sell") and trade["source"] == "0" and int(trade["count"]) >= 1
    ticker = first[("tickers", None)]["data"][0]
    assert " ".join(ticker) == (
        "instType instId last lastSz askPx askSz bidPx bidSz open24h high24h low24h volCcy24h vol24h sodUtc0 sodUtc8 ts"
    )
    assert ticker["instType"] == "SPOT" and Decimal(ticker["askPx"]) > Decimal(ticker["bidPx"])


async def test_trades_cross_the_spread(sim: Simulator) -> None:
    async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
        await send(ws, "subscribe", args(("books", BTC), ("trades", BTC)))
        book = Book()
        best: tuple[Decimal, Decimal] | None = None  # (bid, ask) before the latest update
        checked = 0
        for m in pushes(await collect(ws, 1.0)):
            if m["arg"]["channel"] == "books":
                if book.bids and book.asks:
                    best = (max(book.bids), min(book.asks))
                book.on_message(m)
            elif best is not None:
                t = m["data"][0]
                px = Decimal(t["px"])  # a taker buy lifts the ask, a taker sell hits the bid
                assert px >= best[1] if t["side"] == "buy" else px <= best[0]
                checked += 1
    assert checked > 3


# -- books: ground truth, checksum, seqId rules -----------------------------------------------------------------


async def test_book_with_checksum_verified_on_every_message_equals_ground_truth() -> None:
    options = {"okx": {"checksum": True}}
    async with Simulator(venues=["okx"], symbols=2, rate=600, seed=3, venue_options=options) as sim:
        book = Book()
        async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
            await send(ws, "subscribe", args(("books", BTC)))
            await run_book(ws, book, 1.0)
            sim.pause()
            await sim.drain()
            await run_book(ws, book, 0.1)
        truth = sim.book("okx", BTC, depth=400)
    assert book.gaps == 0 and book.applied > 100
    assert book.checked == book.applied and book.bad_checksums == 0  # every message, snapshot included
    assert min(book.steps) >= 1 and max(book.steps) > 1  # seqId steps are not +1
    assert truth["code"] == "0"
    data = truth["data"][0]
    assert book.seq == data["seqId"]
    assert book.top(400) == (levels(data["bids"]), levels(data["asks"]))


async def test_checksum_is_zero_by_default_as_in_production(sim: Simulator) -> None:
    async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
        await send(ws, "subscribe", args(("books", BTC)))
        got = pushes(await collect(ws, 0.4), "books")
    assert len(got) > 10 and {m["data"][0]["checksum"] for m in got} == {0}


async def test_no_change_messages_and_snapshot_resends() -> None:
    options = {"okx": {"nochange_s": 0.2, "checksum": 1}}
    async with (
        Simulator(venues=["okx"], symbols=1, rate=300, venue_options=options) as sim,
        client(sim.urls["okx"]["ws"] + PUBLIC) as ws,
    ):
        await send(ws, "subscribe", args(("books", BTC), ("books5", BTC), ("bbo-tbt", BTC)))
        book = Book()
        await run_book(ws, book, 0.3)
        sim.pause()
        await sim.drain()
        got = await run_book(ws, book, 0.7)
    quiet = [m for m in got if m["arg"]["channel"] == "books" and m["data"][0]["seqId"] == book.seq]
    no_change = [m for m in quiet if m["data"][0]["prevSeqId"] == m["data"][0]["seqId"]]
    assert len(no_change) >= 2 and book.no_change == len(no_change) and book.gaps == 0 and book.bad_checksums == 0
    assert all(m["data"][0]["asks"] == [] == m["data"][0]["bids"] for m in no_change)
    for channel in ("books5", "bbo-tbt"):  # snapshot-only channels resend their latest snapshot
        resent = [json.dumps(m) for m in got if m["arg"]["channel"] == channel][-2:]
        assert len(resent) == 2 and resent[0] == resent[1]


@pytest.mark.parametrize("trigger", ["reset_sequence", "seq_reset_s"])
async def test_sequence_reset_is_accepted_by_the_documented_rule(trigger: str) -> None:
    options: dict[str, Any] = {"checksum": True}
    if trigger == "seq_reset_s":
        options["seq_reset_s"] = 0.5  # the first reset lands between the two reads below
    async with Simulator(venues=["okx"], symbols=1, rate=400, venue_options={"okx": options}) as sim:
        async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
            await send(ws, "subscribe", args(("books", BTC), ("bbo-tbt", BTC)))
            book = Book()
            await run_book(ws, book, 0.3)
            before = book.seq
            venue = sim.venues["okx"]
            assert isinstance(venue, Okx)
            if trigger == "reset_sequence":
                venue.reset_sequence(BTC)
            got = await run_book(ws, book, 0.3)
            sim.pause()
            await sim.drain()
            await run_book(ws, book, 0.1)
        truth = sim.book("okx", BTC, depth=400)["data"][0]
    resets = [m["data"][0] for m in got if m["arg"]["channel"] == "books" and m["data"][0]["seqId"] < before]
    assert resets and resets[0]["prevSeqId"] > resets[0]["seqId"]  # e.g. (15 -> 3)
    assert (
        book.resets == venue.resets >= 1 and book.gaps == 0 and book.bad_checksums == 0 and book.checked == book.applied
    )
    assert book.seq == truth["seqId"] and book.top(400) == (levels(truth["bids"]), levels(truth["asks"]))
    bbo_seqs = [m["data"][0]["seqId"] for m in got if m["arg"]["channel"] == "bbo-tbt"]
    assert min(bbo_seqs) < before  # the same per-instrument sequence on every channel


async def test_rest_snapshot_bridges_updates_when_there_is_no_ws_snapshot() -> None:
    """3.6, the announced path: buffer updates, GET /api/v5/market/books, bridge by seqId."""
    options = {"okx": {"initial_snapshot": False}}
    async with Simulator(venues=["okx"], symbols=1, rate=500, seed=4, venue_options=options) as sim:
        book = Book()
        async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
            await send(ws, "subscribe", args(("books", BTC)))
            buffered = pushes(await collect(ws, 0.2), "books")
            assert buffered and all(m["action"] == "update" for m in buffered)
            first_prev = buffered[0]["data"][0]["prevSeqId"]
            inside = bridged_exactly = 0
            for _ in range(8):  # several snapshots: some land between two stream seqIds, as allowed
                url = f"{sim.urls['okx']['rest']}/api/v5/market/books?instId={BTC}&sz=400"
                snap = (await rest_get(url)).json()["data"][0]
                assert snap["seqId"] >= first_prev
                buffered += pushes(await collect(ws, 0.05), "books")
                kept = [m for m in buffered if m["data"][0]["seqId"] > snap["seqId"]]
                assert kept[0]["data"][0]["prevSeqId"] <= snap["seqId"] < kept[0]["data"][0]["seqId"]
                inside += kept[0]["data"][0]["prevSeqId"] < snap["seqId"]
                bridged_exactly += kept[0]["data"][0]["prevSeqId"] == snap["seqId"]
            book.load_rest(snap)
            for m in kept:
                d = m["data"][0]
                if book.seq is not None and d["prevSeqId"] < book.seq < d["seqId"]:
                    book.apply(d)  # the bridging update
                else:
                    book.on_message(m)
            await run_book(ws, book, 0.3)
            sim.pause()
            await sim.drain()
            await run_book(ws, book, 0.1)
        truth = sim.book("okx", BTC, depth=400)["data"][0]
    assert inside and bridged_exactly and book.gaps == 0
    assert book.seq == truth["seqId"] and book.top(400) == (levels(truth["bids"]), levels(truth["asks"]))


# -- REST -------------------------------------------------------------------------------------------------------


async def test_rest_instruments_books_and_errors(sim: Simulator) -> None:
    base = sim.urls["okx"]["rest"]
    spot = (await rest_get(base + "/api/v5/public/instruments?instType=SPOT")).json()
    assert spot["code"] == "0" and [i["instId"] for i in spot["data"]] == sim.symbols["okx"] == [BTC, "ETH-USDT"]
    assert spot["data"][0]["tickSz"] == "0.01" and spot["data"][0]["state"] == "live"
    for query in ("SWAP", "FUTURES", "OPTION&uly=BTC-USD", "OPTION&instFamily=BTC-USD"):
        r = await rest_get(base + "/api/v5/public/instruments?instType=" + query)
        assert r.status_code == 200 and r.json() == {"code": "0", "msg": "", "data": []}
    for path, status, code in (
        ("/api/v5/public/instruments?instType=OPTION", 400, "50014"),
        ("/api/v5/public/instruments", 400, "50014"),
        ("/api/v5/public/instruments?instType=BONDS", 400, "51000"),
        ("/api/v5/market/books?instId=NOPE-USDT", 200, "51001"),
        ("/api/v5/market/books", 400, "50014"),
        (f"/api/v5/market/books?instId={BTC}&sz=401", 400, "51000"),
    ):
        r = await rest_get(base + path)
        assert (r.status_code, r.json()["code"]) == (status, code), path
    books = (await rest_get(base + f"/api/v5/market/books?instId={BTC}")).json()
    assert books["code"] == "0" and list(books["data"][0]) == ["asks", "bids", "ts", "seqId"]
    assert len(books["data"][0]["asks"]) == 1  # sz defaults to 1
    assert (await rest_get(base + "/api/v5/public/time")).json()["data"][0]["ts"].isdigit()


async def test_tls_websocket_and_rest(sim: Simulator) -> None:
    async with client(sim.urls["okx"]["wss"] + PUBLIC, ca_file=sim.ca_file) as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 2) == "pong"
    r = await rest_get(sim.urls["okx"]["rest_tls"] + f"/api/v5/market/books?instId={BTC}&sz=5", ca_file=sim.ca_file)
    assert r.status_code == 200 and len(r.json()["data"][0]["bids"]) == 5


async def test_shutdown_notice_64008_then_close(sim: Simulator) -> None:
    async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
        await send(ws, "subscribe", args(("books", BTC)))
        (ack,) = await events(ws, 1)
        await sim.server_shutdown("okx")
        notices = [m for m in (json.loads(t) for t in await collect(ws, 0.5)) if m.get("event") == "notice"]
    assert len(notices) == 1 and notices[0]["code"] == "64008" and notices[0]["connId"] == ack["connId"]
    assert ws.close_code == 1001


async def test_ground_truth_counts_rows_once_across_redundant_connections() -> None:
    async with Simulator(venues=["okx"], symbols=2, rate=500, seed=9) as sim:
        wanted = args(("books", BTC), ("trades", BTC), ("bbo-tbt", BTC), ("books5", "ETH-USDT"), ("tickers", BTC))
        async with client(sim.urls["okx"]["ws"] + PUBLIC) as a, client(sim.urls["okx"]["ws"] + PUBLIC) as b:
            await send(a, "subscribe", wanted)
            await send(b, "subscribe", wanted)
            await asyncio.sleep(0.6)
            sim.pause()
            await sim.drain()
            got_a, got_b = pushes(await collect(a, 0.2)), pushes(await collect(b, 0.2))
        stats = sim.stats()["venues"]["okx"]

    def rows(msgs: list[dict[str, Any]], table: str) -> int:
        tables = {"books": "l2", "books5": "l2_partial", "trades": "trades", "bbo-tbt": "bbo", "tickers": "bbo"}
        n = 0
        for m in msgs:
            if tables[m["arg"]["channel"]] == table:
                d = m["data"][0]
                n += len(d["asks"]) + len(d["bids"]) if table.startswith("l2") else len(m["data"])
        return n

    for table in ("l2", "l2_partial", "trades", "bbo"):
        assert sum(stats["sent"][table].values()) == rows(got_a, table) + rows(got_b, table), table
        union = [json.loads(u) for u in {json.dumps(m) for m in got_a + got_b}]
        assert sum(stats["unique"][table].values()) == rows(union, table), table
    assert sum(stats["unique"]["l2"].values()) < sum(stats["sent"]["l2"].values())
    assert stats["seq"][BTC]["last"] == sim.book("okx", BTC)["data"][0]["seqId"]
    assert stats["generated"]["l2"][BTC] > 0 and set(stats["generated"]["l2"]) == {BTC, "ETH-USDT"}


# -- replay -----------------------------------------------------------------------------------------------------


async def test_replay_of_the_okx_capture_is_byte_for_byte() -> None:
    recs = [r for r in records("okx") if r.kind == "ws"]
    target = urlsplit(recs[0].url).path
    sent = [r.msg or "" for r in recs if r.dir == "send"]
    frames = [r.msg or "" for r in recs if r.dir == "recv"]
    async with Simulator(venues=[], replay=capture_path("okx")) as sim:
        async with client(sim.urls["okx"]["ws"] + target, max_size=None) as ws:
            for request in sent:  # the replay holds each recorded ack until the client has asked
                await ws.send(request)
            got = await take(ws, len(frames))
            assert await collect(ws, 0.1) == []
        assert [g.encode() for g in got] == [f.encode() for f in frames]
        book = Book()  # the 2022 recording: legacy checksums on every book message
        for m in (json.loads(g) for g in got):
            if "data" in m and m["arg"] == {"channel": "books", "instId": BTC}:
                m["data"][0].setdefault("prevSeqId", book.seq if book.seq is not None else -1)
                m["data"][0].setdefault("seqId", (book.seq or 0) + 1)
                book.on_message(m)
        assert book.checked > 50 and book.bad_checksums == 0
        http = [r for r in records("okx") if r.kind == "http"]
        url = urlsplit(http[0].url)
        r = await rest_get(sim.urls["okx"]["rest"] + url.path + "?" + url.query)
        assert r.content == (http[0].msg or "").encode()


# -- faults -----------------------------------------------------------------------------------------------------


async def faulted(
    faults: str, seconds: float = 0.6, channels: tuple[str, ...] = ("books",), checksum: bool = False
) -> tuple[list[str], dict[str, Any], int | None]:
    """Subscribe with per-connection faults: (texts received, that connection's stats, close code)."""
    options = {"okx": {"checksum": checksum}}
    async with Simulator(venues=["okx"], symbols=1, rate=400, seed=2, venue_options=options) as sim:
        async with client(f"{sim.urls['okx']['ws']}{PUBLIC}?faults={faults}") as ws:
            await send(ws, "subscribe", args(*((c, BTC) for c in channels)))
            texts = await collect(ws, seconds)
            sim.pause()
            await sim.drain()
            texts += await collect(ws, 0.1)
            code = ws.close_code
        conn = sim.stats()["venues"]["okx"]["connections"][0]
    return [t for t in texts if '"event"' not in t], conn, code


def book_of(texts: list[str], verify: bool = True) -> Book:
    book = Book(verify)
    for m in pushes(texts, "books"):
        book.on_message(m)
    return book


async def test_fault_drop_rate_is_a_seq_gap() -> None:
    texts, conn, _ = await faulted("drop_rate=0.2")
    seqs = [(m["data"][0]["prevSeqId"], m["data"][0]["seqId"]) for m in pushes(texts, "books")[1:]]
    gaps = sum(1 for a, b in itertools.pairwise(seqs) if b[0] != a[1])
    assert gaps > 0 and conn["faults_applied"]["drop"] > 0 and len(texts) == conn["messages"]
    assert all(b[1] > a[1] for a, b in itertools.pairwise(seqs))  # order kept


async def test_fault_duplicate_rate() -> None:
    texts, conn, _ = await faulted("duplicate_rate=0.3")
    dups = sum(1 for a, b in itertools.pairwise(texts) if a == b)
    assert dups == conn["faults_applied"]["duplicate"] > 0
    book = book_of([t for i, t in enumerate(texts) if i == 0 or t != texts[i - 1]])
    assert book.gaps == 0


async def test_fault_reorder_rate() -> None:
    texts, conn, _ = await faulted("reorder_rate=0.2")
    seqs = [m["data"][0]["seqId"] for m in pushes(texts, "books")]
    assert sum(1 for a, b in itertools.pairwise(seqs) if b < a) == conn["faults_applied"]["reorder"] > 0
    assert book_of(sorted(texts, key=lambda t: json.loads(t)["data"][0]["seqId"])).gaps == 0


async def test_fault_bad_checksum_rate_with_legacy_checksums() -> None:
    texts, conn, _ = await faulted("bad_checksum_rate=0.2", checksum=True)
    book = book_of(texts)
    assert book.gaps == 0 and book.checked == book.applied > 50
    assert book.bad_checksums == conn["faults_applied"]["bad_checksum"] > 0  # exactly those, nothing else


async def test_fault_bad_checksum_rate_is_ignored_when_checksums_are_zero() -> None:
    texts, conn, _ = await faulted("bad_checksum_rate=1")
    assert {m["data"][0]["checksum"] for m in pushes(texts, "books")} == {0}
    assert "bad_checksum" not in conn["faults_applied"]


async def test_fault_malformed_rate() -> None:
    texts, conn, _ = await faulted("malformed_rate=0.3")
    bad = 0
    for t in texts:
        try:
            json.loads(t)
        except json.JSONDecodeError:
            bad += 1
    assert bad == conn["faults_applied"]["malformed"] > 0


async def test_fault_unknown_rate() -> None:
    texts, conn, _ = await faulted("unknown_rate=0.3")
    msgs = [json.loads(t) for t in texts]
    unknown = [m for m in msgs if m["arg"]["channel"] != "books"]
    assert len(unknown) == conn["faults_applied"]["unknown"] > 0
    assert all(m["arg"]["channel"] == "sim-unknown" and isinstance(m["data"], list) for m in unknown)
    assert book_of(texts).gaps == 0


async def test_fault_disconnect_after_msgs() -> None:
    texts, conn, code = await faulted("disconnect_after_msgs=5")
    assert len(texts) == 5 and code == 1000 and conn["messages"] == 5 and book_of(texts).gaps == 0


async def test_fault_close_without_frame() -> None:
    texts, _, code = await faulted("close_without_frame=1,disconnect_after_msgs=3")
    assert len(texts) == 3 and code == 1006


async def test_fault_disconnect_after_s() -> None:
    start = time.monotonic()
    _, conn, code = await faulted("disconnect_after_s=0.3", seconds=2.0)
    assert code == 1000 and conn["close_reason"] == "fault disconnect_after_s" and time.monotonic() - start < 2.0


async def test_fault_shutdown_after_s() -> None:
    async with (
        Simulator(venues=["okx"], symbols=1, rate=300) as sim,
        client(sim.urls["okx"]["ws"] + PUBLIC + "?faults=shutdown_after_s=0.2") as ws,
    ):
        await send(ws, "subscribe", args(("books", BTC)))
        msgs = [json.loads(t) for t in await collect(ws, 1.0)]
    codes = [m.get("code") for m in msgs if m.get("event") == "notice"]
    assert codes == ["64008"] and ws.close_code == 1001


async def test_fault_stall_after_s_keeps_the_socket_and_pongs() -> None:
    async with (
        Simulator(venues=["okx"], symbols=1, rate=300) as sim,
        client(sim.urls["okx"]["ws"] + PUBLIC + "?faults=stall_after_s=0.3") as ws,
    ):
        await send(ws, "subscribe", args(("books", BTC)))
        assert len(await collect(ws, 0.4)) > 10
        assert await collect(ws, 0.4) == []
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 1) == "pong"
        assert ws.close_code is None


async def test_fault_no_pong_silences_text_and_websocket_pongs() -> None:
    async with (
        Simulator(venues=["okx"], symbols=1, rate=100) as sim,
        client(sim.urls["okx"]["ws"] + PUBLIC + "?faults=no_pong=1") as ws,
    ):
        await ws.send("ping")
        waiter = await ws.ping()
        await send(ws, "subscribe", args(("trades", BTC)))
        texts = await collect(ws, 0.5)
        assert "pong" not in texts and not waiter.done()
        assert any('"event":"subscribe"' in t for t in texts)  # acks still come back


async def test_fault_rest_429_delay_and_stale_snapshot() -> None:
    async with Simulator(venues=["okx"], symbols=1, rate=300) as sim:
        rest = sim.urls["okx"]["rest"]
        url = f"{rest}/api/v5/market/books?instId={BTC}&sz=400&faults=rest_429=2"
        replies = [await rest_get(url) for _ in range(3)]
        assert [r.status_code for r in replies] == [429, 429, 200]
        assert replies[0].json()["code"] == "50011" and replies[0].headers["Retry-After"] == "1"
        start = time.monotonic()
        r = await rest_get(f"{rest}/_faults/rest_delay_s=0.3/api/v5/market/books?instId={BTC}")
        assert r.status_code == 200 and time.monotonic() - start >= 0.3
        async with client(sim.urls["okx"]["ws"] + PUBLIC) as ws:
            await send(ws, "subscribe", args(("books", BTC)))
            updates = [m for m in pushes(await collect(ws, 0.3), "books") if m["action"] == "update"]
            url = f"{rest}/_faults/stale_snapshot=1/api/v5/market/books?instId={BTC}&sz=400"
            stale, fresh = [(await rest_get(url)).json()["data"][0] for _ in range(2)]
        first_prev = updates[0]["data"][0]["prevSeqId"]
        assert stale["seqId"] < first_prev <= fresh["seqId"]  # 3.6 step 2: too old, fetch again


async def test_venue_option_errors_name_the_option() -> None:
    with pytest.raises(ValueError, match="no option 'checksums'"):
        Simulator(venues=["okx"], venue_options={"okx": {"checksums": True}})
    with pytest.raises(ValueError, match="checksum='maybe'"):
        Simulator(venues=["okx"], venue_options={"okx": {"checksum": "maybe"}})
    with pytest.raises(ValueError, match="'deribit', which is not simulated"):
        Simulator(venues=["okx"], venue_options={"deribit": {}})
    with pytest.raises(ValueError, match="venue 'binance' has no option"):
        Simulator(venues=["binance"], venue_options={"binance": {"checksum": True}})
