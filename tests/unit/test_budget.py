"""budget: request budgets and pacers, and books that never become valid for 10 minutes of FAKE time.

Pure: no sockets, no sleeping. The real `BookService` (with its per-symbol backoff), the real
`Session` (with the venue's request budget) and the real budget classes are driven by one fake
clock; every request that would go on the wire is counted and checked against the venue's
published limit (EXCHANGES.md 1.3, 1.5, 2.2, 3.2, 4.5).
"""

from __future__ import annotations

import random
from collections import deque

import orjson
import pytest

from tests.unit.test_services import l2_batch
from xtrader.bookservice import BookService
from xtrader.budget import Backoff, Credits, WeightBudget, Window, reset_shared, shared_weight
from xtrader.session import Record, Send, Session, Wait
from xtrader.venues import Subscription, venue
from xtrader.venues.base import Control

S = 1_000_000_000
MINUTES_10 = 600 * S


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000 * S

    def __call__(self) -> int:
        return self.now


def most_in_any_window(times: list[int], window_ns: int, weights: list[int] | None = None) -> int:
    """The largest total (count, or weight) of events inside any window of `window_ns`."""
    weights = weights or [1] * len(times)
    best = total = 0
    inside: deque[tuple[int, int]] = deque()
    for at, weight in sorted(zip(times, weights, strict=True)):
        inside.append((at, weight))
        total += weight
        while inside[0][0] <= at - window_ns:
            total -= inside.popleft()[1]
        best = max(best, total)
    return best


# -- the classes ------------------------------------------------------------------------------------------


def test_window_books_slots_in_order_and_never_exceeds_its_limit() -> None:
    window = Window(5, 1.0)
    waits = [window.reserve(0) for _ in range(7)]
    assert waits[:5] == [0] * 5 and waits[5] == S and waits[6] == S  # the 6th and 7th wait for the oldest to expire
    assert window.wait_ns(0) == S  # at 1 s the five at 0 have left the window: three more fit then
    assert [window.reserve(0) for _ in range(4)] == [S, S, S, 2 * S]
    assert window.remaining(3 * S) == 5


def test_credits_refill_and_a_drained_pool_waits() -> None:
    credits = Credits(30_000, 10_000)
    assert [credits.reserve(0, 3000) for _ in range(10)] == [0] * 10
    assert credits.reserve(0, 3000) == pytest.approx(0.3 * S, abs=10)
    credits.drain(S)
    assert credits.wait_ns(S, 3000) == pytest.approx(0.3 * S, abs=10)


def test_weight_budget_learns_the_ip_usage_from_the_header_and_a_429_pauses_every_fetch() -> None:
    budget = WeightBudget(6000)  # plans with 5400
    assert budget.reserve(0, 50) == 0
    budget.observe(0, 5400)  # another process on this IP spent the rest
    assert budget.reserve(S, 50) == 60 * S - S  # waits for the minute to pass
    other = WeightBudget(6000)
    other.pause(0, 60)
    assert other.reserve(S, 5) == 59 * S


def test_one_weight_budget_per_host_is_shared_by_the_whole_process() -> None:
    reset_shared()
    a = shared_weight("https://api.binance.com/api/v3/depth?symbol=A&limit=1000", 6000)
    b = shared_weight("https://api.binance.com/api/v3/depth?symbol=B&limit=1000", 6000)
    c = shared_weight("https://fapi.binance.com/fapi/v1/depth?symbol=A", 2400)
    assert a is b and a is not c
    reset_shared()


def test_backoff_grows_per_symbol_with_jitter_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(base_s=5, cap_s=300, rng=random.Random(1))
    delays = [backoff.next_ns("A") / S for _ in range(10)]
    assert 2.5 <= delays[0] <= 5 and 5 <= delays[1] <= 10 and all(150 <= d <= 300 for d in delays[7:])
    assert backoff.next_ns("B") <= 5 * S  # per symbol
    backoff.reset("A")
    assert backoff.next_ns("A") <= 5 * S


# -- books that never become valid: 10 minutes of fake time -----------------------------------------------


def stuck_service(exchange: str, kind: str, symbols: list[str], clock: Clock, cap_s: float = 300) -> BookService:
    """A book service whose books broke (a gap) and never become valid again."""
    service = BookService(exchange, kind, clock=clock, backoff=Backoff(5, cap_s, rng=random.Random(7)))
    for symbol in symbols:
        service.on_batch("c0", l2_batch(exchange, [(symbol, 10, None, None, True, [(1.0, 1.0)], [])]))
        service.on_batch("c0", l2_batch(exchange, [(symbol, 30, 20, 25, False, [(1.0, 2.0)], [])]))  # a gap
    return service


def test_okx_books_that_never_become_valid_stay_within_480_requests_per_connection_hour() -> None:
    clock = Clock()
    symbols = [f"S{i}-USDT" for i in range(25)]  # < 30 deep books on one connection
    service = stuck_service("okx", "okx", symbols, clock, cap_s=10)  # an impatient backoff: the budget must hold
    v = venue("okx", ws_base="ws://127.0.0.1:1")
    (connection,) = v.connections([Subscription("l2", s) for s in symbols])
    session = Session(v, connection)
    sent: list[int] = []
    sent += [clock.now for a in session.open(clock.now) if isinstance(a, Send)]
    waits: list[Wait] = []
    deferred: dict[str, int] = {}
    start = clock.now
    while clock.now - start < MINUTES_10:
        clock.now += S
        resyncs = [symbol for _, symbol in service.tick()[2]]
        resyncs += [s for s, at in deferred.items() if at <= clock.now]  # the connector's deferred resyncs
        for symbol in resyncs:
            deferred.pop(symbol, None)
            for action in session.resubscribe(symbol, clock.now):
                if isinstance(action, Send):
                    sent.append(clock.now)
                elif isinstance(action, Wait):
                    waits.append(action)
                    deferred[symbol] = clock.now + action.wait_ns
    assert most_in_any_window(sent, 3600 * S) <= 480  # the published limit, per connection and hour
    assert waits, "25 stuck books must run into the budget (and wait, saying so)"
    assert all("request budget spent" in w.reason for w in waits)
    assert len(sent) >= 400  # the budget is used, not starved


def test_okx_without_the_backoff_and_budget_a_stuck_book_would_exceed_the_limit() -> None:
    """The harness can fail: 4 stuck books resubscribed every 5 s (the old RESYNC_RETRY_S) with no request
    budget send 2 requests x 4 books x 720 per hour, far over 480."""
    v = venue("okx", ws_base="ws://127.0.0.1:1")
    symbols = [f"S{i}-USDT" for i in range(4)]
    (connection,) = v.connections([Subscription("l2", s) for s in symbols])
    session = Session(v, connection)
    session.budget = None  # (None at construction means "the venue's")
    sent = []
    now = 0
    session.open(now)
    while now < 3600 * S:
        now += 5 * S
        for symbol in symbols:
            sent += [now for a in session.resubscribe(symbol, now) if isinstance(a, Send)]
    assert most_in_any_window(sent, 3600 * S) > 480


def test_binance_spot_books_that_never_become_valid_stay_within_the_ip_weight_per_minute() -> None:
    reset_shared()
    clock = Clock()
    spot = venue("binance")
    symbols = [f"S{i}USDT" for i in range(30)]
    services = [stuck_service("binance", "binance_spot", symbols, clock) for _ in range(2)]  # two connectors
    requests: list[int] = []
    weights: list[int] = []
    pending: list[tuple[int, str]] = []
    start = clock.now
    while clock.now - start < MINUTES_10:
        clock.now += S
        for service in services:
            for _, symbol in service.tick()[2]:
                url = spot.snapshot_request(symbol).url
                budget = shared_weight(url, spot.weight_limit)
                wait = budget.reserve(clock.now, spot.snapshot_weight(None))
                pending.append((clock.now + wait, symbol))
        due = [p for p in pending if p[0] <= clock.now]
        pending = [p for p in pending if p[0] > clock.now]
        for at, _ in due:
            requests.append(at)
            weights.append(spot.snapshot_weight(None))
    assert spot.snapshot_weight(None) == 50
    assert most_in_any_window(requests, 60 * S, weights) <= 6000  # the published weight per IP and minute
    assert len(requests) > 60
    reset_shared()


def test_deribit_resubscribes_of_stuck_books_stay_within_the_credit_pool() -> None:
    clock = Clock()
    symbols = [f"S{i}-PERPETUAL" for i in range(50)]
    service = stuck_service("deribit", "deribit", symbols, clock)
    v = venue("deribit", ws_base="ws://127.0.0.1:1")
    (connection,) = v.connections([Subscription("l2", s) for s in symbols])
    session = Session(v, connection)
    pacer = v.control_pacer()
    sent: list[int] = []
    for action in session.open(clock.now):
        if isinstance(action, Send):
            sent.append(clock.now + pacer.reserve(clock.now, v.control_cost(action.op)))
    start = clock.now
    while clock.now - start < MINUTES_10:
        clock.now += S
        for _, symbol in service.tick()[2]:
            for action in session.resubscribe(symbol, clock.now):
                if isinstance(action, Send):
                    sent.append(clock.now + pacer.reserve(clock.now, v.control_cost(action.op)))
    # the documented default: a 50,000 pool refilled at 10,000/s, 500 a request; subscribes reportedly 3,000 of
    # 30,000: at most 10 subscribes in any second plus one more per 0.3 s
    assert most_in_any_window(sent, S) <= 10 + 4
    assert len(sent) > 100


# -- "too many requests" is retried, never a refusal ------------------------------------------------------


def okx_60014(request_id: int) -> bytes:
    return b'{"id":"%d","event":"error","code":"60014","msg":"Requests too frequent.","connId":"a"}' % request_id


def test_okx_60014_is_retried_with_backoff_not_refused() -> None:
    v = venue("okx", ws_base="ws://127.0.0.1:1")
    (connection,) = v.connections([Subscription("l2", "BTC-USDT")])
    session = Session(v, connection, backoff=Backoff(2, 120, rng=random.Random(3)))
    (frame,) = [a.frame for a in session.open(0) if isinstance(a, Send)]
    request_id = int(orjson.loads(frame)["id"])
    error = list(v.parse(okx_60014(request_id), _receipt(), v.columns()))
    actions = session.on_controls(error, S)
    assert session.refused == {} and session.failed is None
    assert session.subscriptions == (Subscription("l2", "BTC-USDT"),)
    assert any(isinstance(a, Record) and "not a refusal" in a.detail for a in actions)
    assert session.stats.too_frequent == 1
    assert [a for a in session.poll(S + S // 2) if isinstance(a, Send)] == []  # backing off
    retry = [a for a in session.poll(10 * S) if isinstance(a, Send)]
    assert len(retry) == 1 and orjson.loads(retry[0].frame)["op"] == "subscribe"
    assert session.stats.retries == 1


def test_deribit_10028_is_retried_and_the_reconnect_waits_for_credits() -> None:
    v = venue("deribit", ws_base="ws://127.0.0.1:1")
    (connection,) = v.connections([Subscription("l2", "BTC-PERPETUAL")])
    session = Session(v, connection)
    frames = [orjson.loads(a.frame) for a in session.open(0) if isinstance(a, Send)]
    error = b'{"jsonrpc":"2.0","id":%d,"error":{"message":"too_many_requests","code":10028}}' % frames[-1]["id"]
    session.on_controls(list(v.parse(error, _receipt(), v.columns())), S)
    assert session.refused == {} and session.cooldown_ns >= S + 5 * S


def test_deribit_platform_state_pauses_and_resumes_the_session() -> None:
    v = venue("deribit", ws_base="ws://127.0.0.1:1")
    (connection,) = v.connections([Subscription("l2", "BTC-PERPETUAL")])
    session = Session(v, connection)
    session.open(0)
    off = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"platform_state.public_methods_state",'
    off += b'"data":{"allow_unauthenticated_public_requests":false}}}'
    actions = session.on_controls(list(v.parse(off, _receipt(), v.columns())), S)
    assert session.paused is not None and "public methods disabled" in session.paused
    assert any(isinstance(a, Record) and "paused" in a.detail for a in actions)
    (wait,) = session.resubscribe("BTC-PERPETUAL", 2 * S)  # no request while paused
    assert isinstance(wait, Wait)
    on = off.replace(b"false", b"true")
    session.on_controls(list(v.parse(on, _receipt(), v.columns())), 3 * S)
    assert session.paused is None
    maintenance = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"platform_state",'
    maintenance += b'"data":{"maintenance":true}}}'
    assert [c.kind for c in v.parse(maintenance, _receipt(), v.columns())] == ["pause"]
    locked = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"platform_state",'
    locked += b'"data":{"price_index":"sol_usdc","locked":true}}}'
    assert [c.kind for c in v.parse(locked, _receipt(), v.columns())] == ["notice"]
    assert Control("pause", "x").kind == "pause"


def _receipt():  # type: ignore[no-untyped-def]
    from xtrader.clock import Receipt

    return Receipt(1_700_000_000_000_000_000, 0)
