"""rest: Retry-After parsing and the snapshot fetcher's reaction to HTTP statuses (mock transport)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from xtrader.clock import Receipt
from xtrader.rest import SnapshotFetcher, retry_after_s
from xtrader.venues import venue

BODY = b'{"lastUpdateId":7,"bids":[["1.0","2.0"]],"asks":[["1.1","3.0"]]}'


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
