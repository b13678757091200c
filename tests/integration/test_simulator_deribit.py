"""Simulator, Deribit v2 JSON-RPC: subscribe flow, errors, auth, heartbeat, limits, book chain, replay, faults.

The client here is written from EXCHANGES.md section 4 only: JSON-RPC requests over websockets,
``json.loads(..., parse_float=Decimal)`` for the numbers, a book kept by ``change_id`` /
``prev_change_id``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection

from tests.captures import capture_path, records
from tests.integration.sim_client import client, collect, rest_get, take
from xtrader.simulator import Simulator
from xtrader.simulator.deribit import Deribit
from xtrader.simulator.deribit import _quote as deribit_quote

WS = "/ws/api/v2"
BTC, ETH, SOL = "BTC-PERPETUAL", "ETH-PERPETUAL", "SOL_USDC-PERPETUAL"
FAST_HEARTBEAT = {"deribit": {"min_heartbeat_s": 0.05}}


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def request(rid: Any, method: str, params: dict[str, Any] | None = None) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})


async def rpc(ws: ClientConnection, rid: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send one request and return its response (notifications in between are skipped)."""
    await ws.send(request(rid, method, params))
    loop = asyncio.get_running_loop()
    end = loop.time() + 3
    while True:
        msg = loads(await asyncio.wait_for(ws.recv(), end - loop.time()))
        if msg.get("id") == rid and "method" not in msg:
            return msg  # type: ignore[no-any-return]


def notifications(texts: list[Any], prefix: str = "") -> list[dict[str, Any]]:
    """The ``params`` of every subscription notification whose channel starts with `prefix`."""
    out = []
    for text in texts:
        msg = loads(text)
        if msg.get("method") == "subscription" and msg["params"]["channel"].startswith(prefix):
            out.append(msg["params"])
    return out


class Book:
    """A local book from ``book.{inst}.{interval}``: snapshot, then changes chained by prev_change_id."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.change_id: int | None = None
        self.gaps = 0
        self.applied = 0
        self.snapshots = 0

    def on(self, data: dict[str, Any]) -> None:
        if data["type"] == "snapshot":
            assert "prev_change_id" not in data
            assert all(level[0] == "new" for level in data["bids"] + data["asks"])
            self.bids, self.asks, self.snapshots = {}, {}, self.snapshots + 1
        elif self.change_id is None:
            return  # waiting for a snapshot
        elif data["prev_change_id"] != self.change_id:
            self.gaps += 1  # the documented rule: discard the book and resubscribe
            self.change_id = None
            return
        for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for action, price, amount in levels:
                assert isinstance(price, (int, Decimal)) and isinstance(amount, (int, Decimal))
                if action == "delete":
                    side.pop(price, None)
                else:
                    side[price] = amount
        self.change_id = data["change_id"]
        self.applied += 1

    def top(self, depth: int) -> tuple[list[list[Decimal]], list[list[Decimal]]]:
        bids = [[p, a] for p, a in sorted(self.bids.items(), reverse=True)[:depth]]
        asks = [[p, a] for p, a in sorted(self.asks.items())[:depth]]
        return bids, asks


def decimals(levels: list[list[float]]) -> list[list[Decimal]]:
    return [[Decimal(repr(p)), Decimal(repr(a))] for p, a in levels]


def reverse_alphabetical(obj: dict[str, Any]) -> bool:
    return list(obj) == sorted(obj, reverse=True)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(venues=["deribit"], symbols=3, rate=400, seed=11, venue_options=FAST_HEARTBEAT) as s:
        yield s


# -- subscribe flow and payloads --------------------------------------------------------


async def test_subscribe_result_lists_only_the_channels_served(sim: Simulator) -> None:
    wanted = [f"book.{BTC}.100ms", f"trades.{BTC}.100ms", f"quote.{BTC}", f"ticker.{ETH}.agg2", f"book.{SOL}.100ms"]
    unknown = ["book.NOPE-PERPETUAL.100ms", f"book.{BTC}.5ms", f"kline.{BTC}.1", f"quote.{BTC}.100ms"]
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        reply = await rpc(ws, 42, "public/subscribe", {"channels": wanted + unknown + wanted[:1]})
        assert list(reply) == ["jsonrpc", "id", "result", "usIn", "usOut", "usDiff", "testnet"]
        assert reply["result"] == wanted and reply["testnet"] is False
        assert reply["usOut"] - reply["usIn"] == reply["usDiff"] >= 0
        assert reply["usIn"] > 1_600_000_000 * 10**6  # microseconds
        texts = await collect(ws, 0.6)
    got = notifications(texts)
    assert {n["channel"] for n in got} == set(wanted)
    assert all("id" not in loads(t) for t in texts)
    first = {n["channel"]: n["data"] for n in reversed(got)}
    book = first[f"book.{BTC}.100ms"]
    assert book["type"] == "snapshot" and list(book) == [
        "type",
        "timestamp",
        "instrument_name",
        "change_id",
        "bids",
        "asks",
    ]
    assert len(book["bids"]) > 100 and book["instrument_name"] == BTC
    quote = first[f"quote.{BTC}"]
    assert list(quote) == [
        "timestamp",
        "instrument_name",
        "best_bid_price",
        "best_bid_amount",
        "best_ask_price",
        "best_ask_amount",
    ]
    assert quote["best_bid_price"] < quote["best_ask_price"]
    ticker = first[f"ticker.{ETH}.agg2"]
    assert reverse_alphabetical(ticker) and {"mark_price", "index_price", "last_price", "funding_8h"} <= set(ticker)
    changes = [n["data"] for n in got if n["channel"] == f"book.{BTC}.100ms"][1:]
    assert changes and all(list(c)[:3] == ["type", "timestamp", "prev_change_id"] for c in changes)
    trades = [t for n in got if n["channel"].startswith("trades.") for t in n["data"]]
    assert trades and all(isinstance(n["data"], list) for n in got if n["channel"].startswith("trades."))
    for trade in trades:
        assert reverse_alphabetical(trade) and trade["instrument_name"] == BTC
        assert isinstance(trade["trade_id"], str) and trade["trade_id"].startswith("BTC-")
        assert trade["direction"] in ("buy", "sell") and trade["tick_direction"] in (0, 1, 2, 3)
        assert isinstance(trade["price"], Decimal) and trade["amount"] % 10 == 0  # 10 USD contracts
    assert [t["trade_seq"] for t in trades] == list(range(trades[0]["trade_seq"], trades[0]["trade_seq"] + len(trades)))


async def test_numbers_are_json_numbers_some_in_exponent_notation(sim: Simulator) -> None:
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        await rpc(ws, 1, "public/subscribe", {"channels": [f"book.{BTC}.100ms", f"book.{SOL}.100ms"]})
        texts = await collect(ws, 0.3)
    snapshot = next(t for t in texts if '"snapshot"' in t and BTC in t)
    assert "e6," in snapshot or "e6]" in snapshot  # amounts of a million USD and more: 1.0002e6
    for params in notifications(texts, "book."):
        for _, price, amount in params["data"]["bids"] + params["data"]["asks"]:
            assert not isinstance(price, str) and not isinstance(amount, str)


async def test_grouped_book_is_a_complete_top_n_each_time(sim: Simulator) -> None:
    channels = [
        f"book.{BTC}.none.10.100ms",
        f"book.{BTC}.1.1.100ms",
        f"book.{ETH}.25.20.agg2",
        f"book.{BTC}.3.10.100ms",
    ]
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        reply = await rpc(ws, 1, "public/subscribe", {"channels": channels})
        assert reply["result"] == channels[:3]  # BTC groups are 1, 2, 5, 10: 3 is not one
        got = notifications(await collect(ws, 0.5))
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for n in got:
        by_channel.setdefault(n["channel"], []).append(n["data"])
    for channel, depth in zip(channels[:3], (10, 1, 20), strict=True):
        pushes = by_channel[channel]
        assert pushes and all(list(p) == ["timestamp", "instrument_name", "change_id", "bids", "asks"] for p in pushes)
        # ETH's book spans a few dollars: fewer 0.25 buckets than the depth asked for
        sizes = {len(p["bids"]) for p in pushes} | {len(p["asks"]) for p in pushes}
        assert sizes == {depth} if depth < 20 else 0 < min(sizes) <= max(sizes) <= depth
        assert all(len(level) == 2 for p in pushes for level in p["bids"])
    for push in by_channel[channels[1]]:
        assert push["bids"][0][0] % 1 == 0 and push["asks"][0][0] % 1 == 0  # whole-dollar buckets
    eth = by_channel[channels[2]][-1]
    assert all(p % Decimal("0.25") == 0 for p, _ in eth["bids"])  # ETH code 25 means 0.25


async def test_unsubscribe_lists_what_it_removed_then_unsubscribe_all(sim: Simulator) -> None:
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        await rpc(ws, 1, "public/subscribe", {"channels": [f"book.{BTC}.100ms", f"quote.{ETH}"]})
        reply = await rpc(ws, 2, "public/unsubscribe", {"channels": [f"book.{BTC}.100ms", f"trades.{BTC}.100ms"]})
        assert reply["result"] == [f"book.{BTC}.100ms"]
        await collect(ws, 0.1)
        assert {n["channel"] for n in notifications(await collect(ws, 0.3))} == {f"quote.{ETH}"}
        assert (await rpc(ws, 3, "public/unsubscribe_all"))["result"] == "ok"
        await collect(ws, 0.1)
        assert notifications(await collect(ws, 0.3)) == []


async def test_resubscribing_gives_a_fresh_snapshot_that_chains_on(sim: Simulator) -> None:
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        channel = {"channels": [f"book.{ETH}.raw"]}
        await rpc(ws, 1, "public/auth", {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"})
        await rpc(ws, 2, "private/subscribe", channel)
        first = notifications(await collect(ws, 0.3))
        await rpc(ws, 3, "private/unsubscribe", channel)
        await collect(ws, 0.1)
        await rpc(ws, 4, "private/subscribe", channel)
        second = notifications(await collect(ws, 0.3))
    for batch in (first, second):
        book = Book()
        for n in batch:
            book.on(n["data"])
        assert batch[0]["data"]["type"] == "snapshot" and book.gaps == 0 and book.applied > 5
    assert second[0]["data"]["change_id"] > first[-1]["data"]["change_id"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", -32700),
        (request(1, "public/no_such_method"), -32601),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "params": {}}), -32601),
        (request(1, "public/subscribe", {"channels": "book.BTC-PERPETUAL.100ms"}), -32602),
        (request(1, "public/subscribe"), -32602),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/subscribe", "params": [1]}), -32602),
        (request(1, "public/set_heartbeat", {"interval": 0.01}), -32602),
        (request(1, "public/set_heartbeat", {"interval": "10"}), -32602),
        (request(1, "public/subscribe", {"channels": [f"trades.{BTC}.raw"]}), 13778),
        (request(1, "private/subscribe", {"channels": [f"trades.{BTC}.100ms"]}), 13009),
        (request(1, "public/auth", {"grant_type": "password"}), -32602),
        (request(1, "public/auth", {"grant_type": "client_credentials", "client_id": "x", "client_secret": ""}), 13004),
        (request(1, "public/get_instruments", {"currency": "DOGE"}), -32602),
        (request(1, "public/get_order_book", {"instrument_name": "NOPE", "depth": 5}), -32602),
        (request(1, "public/get_order_book", {"instrument_name": BTC, "depth": 7}), -32602),
        (request(1, "public/subscribe", {"channels": [f"book.{BTC}.100ms"] * 2000}), -32600),  # over 32 kB
    ],
)
async def test_error_codes(sim: Simulator, text: str, code: int) -> None:
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        await ws.send(text)
        reply = loads(await asyncio.wait_for(ws.recv(), 2))
        assert list(reply) == ["jsonrpc", "id", "error", "usIn", "usOut", "usDiff", "testnet"]
        assert reply["error"]["code"] == code and reply["error"]["message"]
        assert reply["id"] == (None if code == -32700 else 1)
        if code == -32602:
            assert set(reply["error"]["data"]) == {"reason", "param"}
        assert ws.close_code is None


async def test_raw_without_auth_fails_the_whole_request(sim: Simulator) -> None:
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        reply = await rpc(ws, 7, "public/subscribe", {"channels": [f"book.{BTC}.100ms", f"book.{BTC}.raw"]})
        assert reply["error"] == {"message": "raw_subscriptions_not_available_for_unauthorized", "code": 13778}
        assert await collect(ws, 0.3) == []  # not even the 100ms channel


async def test_auth_then_private_subscribe_raw_without_waiting(sim: Simulator) -> None:
    auth = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"}
    channels = [f"book.{BTC}.raw", f"trades.{BTC}.raw", f"ticker.{BTC}.raw"]
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        await ws.send(request(1, "public/auth", auth))
        await ws.send(request(2, "private/subscribe", {"channels": channels}))  # before the auth answer
        texts = await collect(ws, 0.5)
        replies = [loads(t) for t in texts if '"id"' in t[:40]]
        assert [r["id"] for r in replies] == [1, 2]  # answered in the order sent
        result = replies[0]["result"]
        assert list(result) == [
            "token_type",
            "scope",
            "refresh_token",
            "expires_in",
            "enabled_features",
            "access_token",
        ]
        assert replies[1]["result"] == channels
        assert {n["channel"] for n in notifications(texts)} == set(channels)
        refreshed = await rpc(
            ws, 3, "public/auth", {"grant_type": "refresh_token", "refresh_token": result["refresh_token"]}
        )
        assert refreshed["result"]["access_token"] != result["access_token"]
    async with client(sim.urls["deribit"]["ws"] + WS) as other:  # a token works as access_token elsewhere
        token = refreshed["result"]["access_token"]
        reply = await rpc(other, 1, "private/subscribe", {"channels": [f"quote.{ETH}"], "access_token": token})
        assert reply["result"] == [f"quote.{ETH}"]
        assert (await rpc(other, 2, "public/subscribe", {"channels": [f"book.{ETH}.raw"]}))["error"]["code"] == 13778


# -- book chain and ground truth -------------------------------------------------------


async def test_chain_holds_and_rebuilt_books_equal_ground_truth() -> None:
    async with Simulator(venues=["deribit"], symbols=3, rate=1500, seed=4) as sim:
        books = {s: Book() for s in (BTC, ETH, SOL)}
        async with client(sim.urls["deribit"]["ws"] + WS) as ws:
            await rpc(ws, 1, "public/subscribe", {"channels": [f"book.{s}.100ms" for s in books]})

            async def pump() -> None:
                async for text in ws:
                    msg = loads(text)
                    if msg.get("method") == "subscription":
                        data = msg["params"]["data"]
                        books[data["instrument_name"]].on(data)

            reader = asyncio.create_task(pump())
            await asyncio.sleep(1.5)
            sim.pause()
            await sim.drain()
            truths = {s: sim.book("deribit", s, depth=10**6) for s in books}
            for _ in range(200):
                if all(b.change_id == truths[s]["change_id"] for s, b in books.items()):
                    break
                await asyncio.sleep(0.01)
            reader.cancel()
        for symbol, book in books.items():
            truth = truths[symbol]
            assert book.snapshots == 1 and book.gaps == 0
            assert book.applied > (300 if symbol == BTC else 50)
            assert book.change_id == truth["change_id"]
            bids, asks = book.top(10**6)
            assert bids == decimals(truth["bids"]) and asks == decimals(truth["asks"])
            assert truth["best_bid_price"] == truth["bids"][0][0] < truth["best_ask_price"]
        stats = sim.stats()["venues"]["deribit"]
        conn = stats["connections"][0]
        assert stats["seq"][BTC]["last"] == truths[BTC]["change_id"]
        assert conn["rows"]["l2"] == stats["unique"]["l2"]


async def test_redundant_connections_count_once_in_unique() -> None:
    async with Simulator(venues=["deribit"], symbols=1, rate=300, seed=9) as sim:
        channels = {"channels": [f"book.{BTC}.100ms", f"trades.{BTC}.100ms", f"quote.{BTC}"]}
        url = sim.urls["deribit"]["ws"] + WS
        async with client(url) as a, client(url) as b:
            sim.pause()  # both connections get the same snapshot
            await rpc(a, 1, "public/subscribe", channels)
            await rpc(b, 1, "public/subscribe", channels)
            sim.resume()
            await asyncio.sleep(0.5)
            sim.pause()
            await sim.drain()
            got = [notifications(await collect(ws, 0.2)) for ws in (a, b)]
    assert [n["data"] for n in got[0]] == [n["data"] for n in got[1]]
    rows = {"l2": 0, "trades": 0, "bbo": 0}
    for n in got[0]:
        kind = n["channel"].split(".")[0]
        data = n["data"]
        if kind == "book":
            rows["l2"] += len(data["bids"]) + len(data["asks"])
        else:
            rows["trades" if kind == "trades" else "bbo"] += len(data) if kind == "trades" else 1
    stats = sim.stats()["venues"]["deribit"]
    for table, count in rows.items():
        assert stats["unique"][table][BTC] == count > 0
        assert stats["sent"][table][BTC] == 2 * count


# -- heartbeat -----------------------------------------------------------------------------


async def test_heartbeat_and_test_request_answered_keep_the_connection(sim: Simulator) -> None:
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        assert (await rpc(ws, 1, "public/set_heartbeat", {"interval": 0.1}))["result"] == "ok"
        kinds, rid = [], 100
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.2
        while loop.time() < end:
            try:
                msg = loads(await asyncio.wait_for(ws.recv(), end - loop.time()))
            except TimeoutError:
                break
            if msg.get("method") == "heartbeat":
                assert msg == {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": msg["params"]["type"]}}
                kinds.append(msg["params"]["type"])
                if kinds[-1] == "test_request":
                    rid += 1
                    await ws.send(request(rid, "public/test"))
            elif msg.get("id") is not None:
                assert msg["result"] == {"version": "1.2.26"}
        assert ws.close_code is None
        assert kinds.count("test_request") >= 3 and kinds.count("heartbeat") >= 3
        assert (await rpc(ws, 2, "public/disable_heartbeat"))["result"] == "ok"
        await collect(ws, 0.05)
        assert await collect(ws, 0.4) == [] and ws.close_code is None


async def test_unanswered_test_request_closes_the_connection(sim: Simulator) -> None:
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        await rpc(ws, 1, "public/set_heartbeat", {"interval": 0.15})
        start = time.monotonic()
        texts = await collect(ws, 3)
        elapsed = time.monotonic() - start
    assert [loads(t)["params"]["type"] for t in texts] == ["test_request"]
    assert 0.25 < elapsed < 0.8 and ws.close_code == 1000
    conn = sim.stats()["venues"]["deribit"]["connections"][0]
    assert conn["close_reason"] == "test_request not answered with public/test"


async def test_clients_that_never_set_heartbeat_are_fine_and_the_minimum_is_10s() -> None:
    async with Simulator(venues=["deribit"], symbols=1, rate=100) as sim:
        async with client(sim.urls["deribit"]["ws"] + WS) as ws:
            reply = await rpc(ws, 1, "public/set_heartbeat", {"interval": 5})
            assert reply["error"]["code"] == -32602 and reply["error"]["data"]["param"] == "interval"
            assert (await rpc(ws, 2, "public/set_heartbeat", {"interval": 10}))["result"] == "ok"
            assert (await rpc(ws, 3, "public/test"))["result"] == {"version": "1.2.26"}
        async with client(sim.urls["deribit"]["ws"] + WS) as ws:
            await rpc(ws, 1, "public/subscribe", {"channels": [f"quote.{BTC}"]})
            texts = await collect(ws, 1.0)
            assert texts and all(loads(t)["method"] == "subscription" for t in texts) and ws.close_code is None


# -- limits ----------------------------------------------------------------------------------


async def test_request_flood_gets_10028_and_the_session_ends() -> None:
    options = {"deribit": {"credit_pool": 2000, "credit_refill_per_s": 0, "request_cost": 500}}
    async with Simulator(venues=["deribit"], symbols=1, rate=0, venue_options=options) as sim:
        async with client(sim.urls["deribit"]["ws"] + WS) as ws:
            for i in range(6):
                await ws.send(request(i, "public/get_time"))
            texts = await collect(ws, 1.0)
        replies = [loads(t) for t in texts]
        assert [("result" in r) for r in replies] == [True] * 4 + [False]
        assert replies[4]["error"] == {"message": "too_many_requests", "code": 10028} and replies[4]["id"] == 4
        assert ws.close_code == 1008
    with pytest.raises(ValueError, match="no option 'credits'"):
        Simulator(venues=["deribit"], venue_options={"deribit": {"credits": 1}})


async def test_credits_refill_over_time() -> None:
    options = {"deribit": {"credit_pool": 1000, "credit_refill_per_s": 5000, "request_cost": 500}}
    async with (
        Simulator(venues=["deribit"], symbols=1, rate=0, venue_options=options) as sim,
        client(sim.urls["deribit"]["ws"] + WS) as ws,
    ):
        for i in range(8):  # 2 banked, then one more every 0.1 s
            assert "result" in await rpc(ws, i, "public/get_time")
            await asyncio.sleep(0.11)


# -- REST and instruments --------------------------------------------------------------------


async def test_get_instruments_per_currency_over_rest_and_websocket(sim: Simulator) -> None:
    rest = sim.urls["deribit"]["rest"] + "/api/v2/public/get_instruments"
    names = {}
    for currency in ("BTC", "ETH", "USDC", "SOL", "any"):
        r = await rest_get(f"{rest}?currency={currency}&expired=false")
        body = r.json()
        assert r.status_code == 200 and list(body) == ["jsonrpc", "result", "usIn", "usOut", "usDiff", "testnet"]
        names[currency] = [i["instrument_name"] for i in body["result"]]
        for inst in body["result"]:
            assert reverse_alphabetical(inst) and inst["expiration_timestamp"] == 32503708800000
            assert inst["kind"] == "future" and inst["settlement_period"] == "perpetual"
    assert names == {"BTC": [BTC], "ETH": [ETH], "USDC": [SOL], "SOL": [], "any": [BTC, ETH, SOL]}
    btc = (await rest_get(f"{rest}?currency=BTC")).json()["result"][0]
    assert (btc["contract_size"], btc["quote_currency"], btc["instrument_type"]) == (10.0, "USD", "reversed")
    assert (await rest_get(f"{rest}?currency=BTC&kind=option")).json()["result"] == []
    bad = await rest_get(f"{rest}?currency=XYZ")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == -32602
    assert (await rest_get(sim.urls["deribit"]["rest"] + "/api/v2/public/subscribe")).json()["error"]["code"] == 10030
    assert (await rest_get(sim.urls["deribit"]["rest"] + "/api/v2/public/nope")).json()["error"]["code"] == -32601
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        reply = await rpc(ws, 5, "public/get_instruments", {"currency": "USDC", "kind": "future"})
        assert [i["instrument_name"] for i in reply["result"]] == [SOL]
        book = (await rpc(ws, 6, "public/get_order_book", {"instrument_name": ETH, "depth": 5}))["result"]
        assert len(book["bids"]) == len(book["asks"]) == 5 and reverse_alphabetical(book)


async def test_tls_websocket_and_rest(sim: Simulator) -> None:
    async with client(sim.urls["deribit"]["wss"] + WS, ca_file=sim.ca_file) as ws:
        assert (await rpc(ws, 1, "public/test"))["result"]["version"]
    url = sim.urls["deribit"]["rest_tls"] + f"/api/v2/public/get_order_book?instrument_name={BTC}&depth=20"
    r = await rest_get(url, ca_file=sim.ca_file)
    assert r.status_code == 200 and len(r.json()["result"]["bids"]) == 20
    with pytest.raises(Exception, match="404"):
        async with client(sim.urls["deribit"]["ws"] + "/ws/api/v1"):
            pass


# -- replay ------------------------------------------------------------------------------------


async def test_replay_reproduces_deribit_capture_byte_for_byte() -> None:
    recs = list(records("deribit"))
    ws_recs = [r for r in recs if r.kind == "ws"]
    target = urlsplit(ws_recs[0].url).path
    sent = [r.msg or "" for r in ws_recs if r.dir == "send"]
    frames = [r.msg or "" for r in ws_recs if r.dir == "recv"]
    async with Simulator(venues=[], replay=capture_path("deribit")) as sim:
        async with client(sim.urls["deribit"]["ws"] + target, max_size=None) as ws:
            for text in sent:
                await ws.send(text)
            got = await take(ws, len(frames))
            assert await collect(ws, 0.1) == []
        assert [g.encode() for g in got] == [f.encode() for f in frames]
        for r in (r for r in recs if r.kind == "http"):
            url = urlsplit(r.url)
            body = await rest_get(sim.urls["deribit"]["rest"] + url.path + "?" + url.query)
            assert body.status_code == 200 and body.content == (r.msg or "").encode()
    assert len(frames) == 136 and loads(frames[0])["id"] == 0


# -- faults: each is what the client sees ---------------------------------------------------


async def run_book(
    faults: str, seconds: float = 0.8, rate: float = 600
) -> tuple[list[str], dict[str, Any], int | None]:
    """Subscribe one book channel on a connection with `faults`; texts after the ack, stats, close code."""
    async with Simulator(venues=["deribit"], symbols=1, rate=rate, seed=5) as sim:
        async with client(f"{sim.urls['deribit']['ws']}{WS}?faults={faults}") as ws:
            await ws.send(request(1, "public/subscribe", {"channels": [f"book.{BTC}.100ms"]}))
            texts = await collect(ws, seconds)
            sim.pause()
            await sim.drain()
            texts += await collect(ws, 0.1)
            code = ws.close_code
        conn = sim.stats()["venues"]["deribit"]["connections"][0]
    return [t for t in texts if '"id":1' not in t[:30]], conn, code


def chain_breaks(datas: list[dict[str, Any]]) -> int:
    return sum(1 for a, b in itertools.pairwise(datas) if b.get("prev_change_id") != a["change_id"])


def book_datas(texts: list[str]) -> list[dict[str, Any]]:
    return [n["data"] for n in notifications(texts, "book.")]


async def test_drop_rate_breaks_the_chain() -> None:
    texts, conn, _ = await run_book("drop_rate=0.2")
    datas = book_datas(texts)
    assert chain_breaks(datas) > 0 and conn["faults_applied"]["drop"] > 0
    assert len(datas) == conn["messages"]
    assert all(b["change_id"] > a["change_id"] for a, b in itertools.pairwise(datas))  # order kept


async def test_duplicate_rate() -> None:
    texts, conn, _ = await run_book("duplicate_rate=0.2")
    dups = sum(1 for a, b in itertools.pairwise(texts) if a == b)
    assert dups == conn["faults_applied"]["duplicate"] > 0
    unique = [d for i, d in enumerate(book_datas(texts)) if i == 0 or texts[i] != texts[i - 1]]
    assert chain_breaks(unique) == 0


async def test_reorder_rate() -> None:
    texts, conn, _ = await run_book("reorder_rate=0.2")
    datas = book_datas(texts)
    backwards = sum(1 for a, b in itertools.pairwise(datas) if b["change_id"] < a["change_id"])
    assert backwards == conn["faults_applied"]["reorder"] > 0
    assert chain_breaks(sorted(datas, key=lambda d: d["change_id"])) == 0  # nothing lost


async def test_malformed_rate() -> None:
    texts, conn, _ = await run_book("malformed_rate=0.2")
    bad = 0
    for text in texts:
        try:
            json.loads(text)
        except json.JSONDecodeError:
            bad += 1
    assert bad == conn["faults_applied"]["malformed"] > 0


async def test_unknown_rate() -> None:
    texts, conn, _ = await run_book("unknown_rate=0.2")
    methods = [loads(t)["method"] for t in texts]
    assert methods.count("sim_unknown_event") == conn["faults_applied"]["unknown"] > 0
    assert set(methods) == {"subscription", "sim_unknown_event"}
    assert chain_breaks(book_datas(texts)) == 0


async def test_bad_checksum_rate_is_ignored_deribit_has_no_checksum() -> None:
    texts, conn, _ = await run_book("bad_checksum_rate=1", seconds=0.3)
    assert chain_breaks(book_datas(texts)) == 0 and "bad_checksum" not in conn["faults_applied"]


async def test_disconnect_after_msgs_and_close_without_frame() -> None:
    texts, conn, code = await run_book("disconnect_after_msgs=5")
    assert len(texts) == 5 and code == 1000 and conn["messages"] == 5
    assert book_datas(texts)[0]["type"] == "snapshot" and chain_breaks(book_datas(texts)) == 0
    texts, _, code = await run_book("disconnect_after_msgs=3,close_without_frame=1")
    assert len(texts) == 3 and code == 1006


async def test_disconnect_after_s_and_shutdown_after_s() -> None:
    async with Simulator(venues=["deribit"], symbols=1, rate=200) as sim:
        for spec, code in (("disconnect_after_s=0.3", 1000), ("shutdown_after_s=0.3", 1001)):
            async with client(f"{sim.urls['deribit']['ws']}{WS}?faults={spec}") as ws:
                start = time.monotonic()
                await rpc(ws, 1, "public/subscribe", {"channels": [f"book.{BTC}.100ms"]})
                await collect(ws, 2.0)
                assert 0.25 < time.monotonic() - start < 1.5 and ws.close_code == code


async def test_stall_after_s_silences_data_and_heartbeats_but_answers_requests() -> None:
    async with (
        Simulator(venues=["deribit"], symbols=1, rate=300, venue_options=FAST_HEARTBEAT) as sim,
        client(f"{sim.urls['deribit']['ws']}{WS}?faults=stall_after_s=0.3") as ws,
    ):
        await rpc(ws, 1, "public/set_heartbeat", {"interval": 0.1})
        await rpc(ws, 2, "public/subscribe", {"channels": [f"book.{BTC}.100ms"]})
        before = await collect(ws, 0.4)
        assert len(notifications(before)) > 10
        assert await collect(ws, 0.5) == []  # no data, no heartbeats, no close for the unanswered test_request
        assert (await rpc(ws, 3, "public/test"))["result"]["version"] and ws.close_code is None


async def test_no_pong() -> None:
    async with Simulator(venues=["deribit"], symbols=1, rate=100) as sim:
        async with client(f"{sim.urls['deribit']['ws']}{WS}?faults=no_pong=1") as ws:
            pong = await ws.ping()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pong), 0.4)
            assert (await rpc(ws, 1, "public/test"))["result"]  # requests still answered
        async with client(sim.urls["deribit"]["ws"] + WS) as ws:
            await asyncio.wait_for(await ws.ping(), 1)


async def test_rest_delay_429_and_stale_snapshot() -> None:
    async with Simulator(venues=["deribit"], symbols=1, rate=300) as sim:
        rest = sim.urls["deribit"]["rest"] + f"/api/v2/public/get_order_book?instrument_name={BTC}&depth=5"
        start = time.monotonic()
        assert (await rest_get(rest + "&faults=rest_delay_s=0.3")).status_code == 200
        assert time.monotonic() - start >= 0.3
        answers = [await rest_get(rest + "&faults=rest_429=2") for _ in range(3)]
        assert [r.status_code for r in answers] == [429, 429, 200]
        assert answers[0].headers["Retry-After"] == "1" and answers[0].json()["error"]["code"] == 10028
        async with client(sim.urls["deribit"]["ws"] + WS) as ws:
            await rpc(ws, 1, "public/subscribe", {"channels": [f"book.{BTC}.100ms"]})
            first = book_datas(await collect(ws, 0.2))[0]["change_id"]
            stale_url = rest + "&faults=stale_snapshot=1"
            stale = (await rest_get(stale_url)).json()["result"]
            fresh = (await rest_get(stale_url)).json()["result"]
        assert stale["change_id"] < first <= fresh["change_id"]
        stats = sim.stats()["venues"]["deribit"]["rest"]
        assert stats["get_order_book_429"] == 2 and stats["get_order_book_stale"] == 1


async def test_closed_connection_is_unsubscribed(sim: Simulator) -> None:
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        await rpc(ws, 1, "public/subscribe", {"channels": [f"book.{BTC}.100ms"]})
    for _ in range(100):
        if not sim.venues["deribit"].subscribers:
            break
        await asyncio.sleep(0.01)
    assert sim.venues["deribit"].subscribers == {} and sim.connections("deribit") == []


async def test_repeated_subscribe_is_listed_again_but_sends_no_second_snapshot(sim: Simulator) -> None:
    async with client(sim.urls["deribit"]["ws"] + WS) as ws:
        channels = {"channels": [f"book.{ETH}.100ms"]}
        await ws.send(request(1, "public/subscribe", channels))
        await ws.send(request(2, "public/subscribe", channels))
        texts = await collect(ws, 0.4)
        assert [loads(t)["result"] for t in texts if '"id"' in t[:40]] == [channels["channels"]] * 2
        datas = book_datas(texts)
    assert [d["type"] for d in datas].count("snapshot") == 1 and chain_breaks(datas) == 0


def test_an_empty_side_is_a_null_price_in_quote_and_ticker() -> None:
    venue = Simulator(venues=["deribit"], symbols=1).venues["deribit"]
    assert isinstance(venue, Deribit)
    contract = venue.contracts[BTC]
    quote = deribit_quote(contract, (None, 0, 6500000, 3), 1)
    assert quote["best_bid_price"] is None and quote["best_bid_amount"] == 0.0
    assert (quote["best_ask_price"], quote["best_ask_amount"]) == (65000.0, 30.0)
    ticker = venue.ticker(contract, (6500000, 3, None, 0), 1)
    assert ticker["best_ask_price"] is None and ticker["best_bid_price"] == 65000.0
