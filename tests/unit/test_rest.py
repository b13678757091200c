"""rest: Retry-After parsing and the snapshot fetcher's reaction to HTTP statuses (mock transport)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from xtrader import budget
from xtrader.clock import Receipt
from xtrader.rest import SnapshotFetcher, retry_after_s
from xtrader.venues import venue

BODY = b'{"lastUpdateId":7,"bids":[["1.0","2.0"]],"asks":[["1.1","3.0"]]}'


@pytest.fixture(autouse=True)
def _fresh_weight_budgets():
    """The weight budget is per host and process-wide: each test starts with none spent."""
    budget.reset_shared()
    yield
    budget.reset_shared()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("3", 3.0), (" 0.5 ", 0.5), ("-4", 0.0), ("soon", None), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0)],
)
def test_retry_after(header, seconds):
    now_s = 1445412480.0  # 07:28:00 GMT that day
    assert retry_after_s(header, now_s=now_s) == seconds


class Script:
    """A mock venue answering each request with the next scripted response."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(time.monotonic())
        return self.responses.pop(0) if self.responses else httpx.Response(200, content=BODY)


async def fetch(script: Script, deliver_ok=(True,), **kwargs):
    delivered: list[tuple[str, bytes]] = []
    events: list[tuple[str, str, str | None]] = []
    answers = list(deliver_ok)

    async def deliver(symbol: str, body: bytes, receipt: Receipt) -> bool:
        delivered.append((symbol, body))
        return answers.pop(0) if answers else True

    fetcher = SnapshotFetcher(
        venue("binance", rest_base="http://sim"),
        deliver,
        lambda kind, detail, symbol: events.append((kind, detail, symbol)),
        transport=httpx.MockTransport(script),
        backoff_base_s=0.01,
        backoff_cap_s=0.02,
        **kwargs,
    )
    assert fetcher.request("BTCUSDT")
    assert not fetcher.request("BTCUSDT")  # coalesced while in flight
    while fetcher.in_flight():
        await asyncio.sleep(0.005)
    await fetcher.aclose()
    return fetcher.stats, delivered, events


async def test_a_snapshot_is_fetched_and_delivered():
    script = Script()
    stats, delivered, _ = await fetch(script)
    assert delivered == [("BTCUSDT", BODY)]
    assert (stats.requests, stats.snapshots, stats.coalesced) == (1, 1, 1)


async def test_429_waits_for_retry_after():
    script = Script(httpx.Response(429, headers={"Retry-After": "0.3"}))
    stats, delivered, events = await fetch(script)
    assert stats.throttled == 1 and len(delivered) == 1
    assert script.times[1] - script.times[0] >= 0.29
    assert any("HTTP 429" in d for _, d, _ in events)


async def test_418_without_retry_after_waits_the_ban_time():
    script = Script(httpx.Response(418))
    stats, _, _ = await fetch(script, ban_wait_s=0.2)
    assert stats.banned == 1
    assert script.times[1] - script.times[0] >= 0.19


async def test_server_errors_retry_and_client_errors_give_up():
    retried = Script(httpx.Response(503), httpx.Response(502))
    stats, delivered, _ = await fetch(retried)
    assert stats.errors == 2 and len(delivered) == 1

    given_up = Script(httpx.Response(400, json={"code": -1121, "msg": "Invalid symbol."}))
    stats, delivered, events = await fetch(given_up)
    assert delivered == [] and stats.requests == 1
    assert any("-1121" in d for _, d, _ in events)


async def test_a_body_the_deliverer_rejects_is_fetched_again():
    stats, delivered, _ = await fetch(Script(), deliver_ok=(False, True))
    assert len(delivered) == 2 and stats.snapshots == 1 and stats.requests == 2


def fetcher_of(script: Script, events: list, delivered: list) -> SnapshotFetcher:
    async def deliver(symbol: str, body: bytes, receipt: Receipt) -> bool:
        delivered.append(symbol)
        return True

    return SnapshotFetcher(
        venue("binance", rest_base="http://sim"),
        deliver,
        lambda kind, detail, symbol: events.append((kind, detail, symbol)),
        transport=httpx.MockTransport(script),
        backoff_base_s=0.01,
        backoff_cap_s=0.02,
    )


async def test_a_429_pauses_every_fetcher_of_the_host_not_only_its_own():
    """Issue 13: the weight limit is per IP, so one connector's 429 holds back the others too."""
    first = Script(httpx.Response(429, headers={"Retry-After": "0.5"}))
    second = Script()
    events: list = []
    delivered: list = []
    a, b = fetcher_of(first, events, delivered), fetcher_of(second, events, delivered)
    a.request("BTCUSDT")
    while not first.times:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # the 429 is in
    b.request("ETHUSDT")
    while a.in_flight() or b.in_flight():
        await asyncio.sleep(0.005)
    await a.aclose()
    await b.aclose()
    assert sorted(delivered) == ["BTCUSDT", "ETHUSDT"]
    assert second.times[0] - first.times[0] >= 0.45


async def test_a_spent_weight_budget_makes_the_snapshot_wait_and_say_so():
    budget._WEIGHTS["sim"] = budget.WeightBudget(100, window_s=0.5)  # plans with 90: one 1000-level snapshot (50)
    script = Script()
    events: list = []
    delivered: list = []
    fetcher = fetcher_of(script, events, delivered)
    fetcher.request("BTCUSDT")
    fetcher.request("ETHUSDT")
    while fetcher.in_flight():
        await asyncio.sleep(0.005)
    await fetcher.aclose()
    assert sorted(delivered) == ["BTCUSDT", "ETHUSDT"]
    assert script.times[1] - script.times[0] >= 0.45
    assert fetcher.stats.budget_waits == 1
    assert any(k == "resync" and "weight budget" in d for k, d, _ in events)


async def test_the_used_weight_header_counts_what_other_processes_on_the_ip_spent():
    budget._WEIGHTS["sim"] = budget.WeightBudget(1000, window_s=0.5)  # plans with 900
    script = Script(httpx.Response(200, content=BODY, headers={"X-MBX-USED-WEIGHT-1M": "890"}))
    events: list = []
    delivered: list = []
    fetcher = fetcher_of(script, events, delivered)
    fetcher.request("BTCUSDT")
    while fetcher.in_flight():
        await asyncio.sleep(0.005)
    fetcher.request("ETHUSDT")  # 890 + 50 > 900: waits for the window
    while fetcher.in_flight():
        await asyncio.sleep(0.005)
    await fetcher.aclose()
    assert script.times[1] - script.times[0] >= 0.4
    assert fetcher.stats.budget_waits == 1
