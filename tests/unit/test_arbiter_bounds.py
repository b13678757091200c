"""The arbiter's memory is bounded in time (TTL) and in size (oldest key evicted first).

Time is passed in and the capacity is small, so each bound is reached on purpose.
One table (trades) only: the bounds hold whether keys share one LRU or have one per table.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.test_arbiter_many import LOOPS
from xtrader.arbiter import Arbiter
from xtrader.arbiter_batches import BatchArbiter
from xtrader.batch import Columns


@pytest.fixture(autouse=True, params=sorted(LOOPS))
def offer_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test with the offer loop in C (`xtrader/_arbiter.c`) and in Python."""
    loop = LOOPS[request.param]
    if request.param == "c" and loop is None:
        pytest.fail("xtrader/_arbiter.c is not built: pip install -e .")
    monkeypatch.setattr(Arbiter, "c_offer", loop)
    yield request.param


NOW = 1_700_000_000_000_000_000
TTL_NS = 5_000_000_000


def kept(
    arbiter: BatchArbiter, connection: str, trade_ids: list[int], now_ns: int, exchange_ns: int = NOW
) -> list[int]:
    """Offer one trade per id (symbol X, exchange time `exchange_ns`) from `connection` at `now_ns`; the ids it
    won."""
    columns = Columns("binance")
    t = columns.trades
    for trade_id in trade_ids:
        t.symbol.append("X")
        t.exchange_ts.append(exchange_ns)
        t.receive_ts.append(NOW)
        t.trade_id.append(str(trade_id))
        t.side.append("buy")
        t.price.append(1.0)
        t.size.append(2.0)
    batches = columns.flush(NOW)
    out = arbiter.filter(connection, batches, now_ns)
    return [] if out.trades is None else [int(i) for i in out.trades.column("trade_id").to_pylist()]


def test_a_key_is_a_duplicate_within_its_ttl_and_new_again_after_it() -> None:
    arbiter = BatchArbiter(capacity=100, ttl_ns=TTL_NS)
    assert kept(arbiter, "a", [1, 2], NOW) == [1, 2]
    assert kept(arbiter, "b", [1, 2], NOW + TTL_NS // 2) == []  # the other link's copies, in time
    # after the TTL the key is forgotten: a sequence reset may reuse it
    assert kept(arbiter, "b", [1], NOW + 3 * TTL_NS) == [1]
    assert kept(arbiter, "a", [1], NOW + 3 * TTL_NS + 1) == []  # remembered again from its new first arrival
    stats = arbiter.snapshot()
    assert stats["unique"] == 3 and stats["duplicates"] == 3


def test_no_ttl_remembers_a_key_for_ever() -> None:
    arbiter = BatchArbiter(capacity=100, ttl_ns=0)
    assert kept(arbiter, "a", [1], NOW) == [1]
    assert kept(arbiter, "b", [1], NOW + 1000 * TTL_NS) == []


def test_a_full_arbiter_forgets_its_oldest_key_first() -> None:
    arbiter = BatchArbiter(capacity=3, ttl_ns=0)
    assert kept(arbiter, "a", [1, 2, 3, 4], NOW) == [1, 2, 3, 4]
    # 4 keys in a memory of 3: the oldest, 1, is forgotten; the three newest are still duplicates
    assert kept(arbiter, "b", [2, 3, 4], NOW + 1) == []
    assert kept(arbiter, "b", [1], NOW + 2) == [1]
    stats = arbiter.snapshot()
    assert stats["unique"] == 5 and stats["duplicates"] == 3


def test_eviction_follows_first_arrival_order_over_many_keys() -> None:
    capacity = 50
    arbiter = BatchArbiter(capacity=capacity, ttl_ns=0)
    assert kept(arbiter, "a", list(range(200)), NOW) == list(range(200))
    # the newest `capacity` keys are remembered, every older one is forgotten
    newest = list(range(200 - capacity, 200))
    assert kept(arbiter, "b", newest, NOW + 1) == []
    assert kept(arbiter, "b", [0, 1, 149], NOW + 2) == [0, 1, 149]


def test_keys_past_their_ttl_are_forgotten_not_kept_until_the_capacity_pushes_them_out() -> None:
    # the soak (benchmarks/soak.py) saw each arbiter grow 240 -> 410 MB over 9 minutes: expired keys stayed
    # until the 500,000-key capacity of each table evicted them
    arbiter = BatchArbiter(capacity=100_000, ttl_ns=TTL_NS)
    for second in range(20):
        ids = list(range(second * 1000, (second + 1) * 1000))
        assert kept(arbiter, "a", ids, NOW + second * 1_000_000_000) == ids
    remembered = sum(arbiter.snapshot()["remembered"].values())
    # what arrived within the last TTL (5 s of 1,000 keys a second, plus the second at its edge), not 20,000
    assert remembered <= 6_000, remembered
    # and the verdicts are the TTL's: the last 5 s are duplicates, what is older is new
    assert kept(arbiter, "b", [19_999, 15_000], NOW + 19 * 1_000_000_000 + 1) == []
    assert kept(arbiter, "b", [1_000], NOW + 19 * 1_000_000_000 + 2) == [1_000]


def test_offer_treats_a_key_past_its_ttl_as_new_before_any_sweep() -> None:
    # `Arbiter.offer` decides by the key's age itself; `expire` (run per batch by BatchArbiter) only frees
    # memory. An arbiter offered keys without a sweep in between must still follow the TTL.
    arbiter = Arbiter(capacity=100, ttl_ns=TTL_NS)
    key = ("trades", "X", "1")
    assert arbiter.offer("a", key, NOW)
    assert not arbiter.offer("b", key, NOW + TTL_NS)  # at the TTL's edge: still a duplicate
    assert arbiter.offer("b", key, NOW + TTL_NS + 1)  # past it: new (a sequence reset may reuse it)
    assert not arbiter.offer("a", key, NOW + TTL_NS + 2)
    assert arbiter.stats.unique == 2 and arbiter.stats.duplicates == 2


def test_expire_frees_exactly_the_keys_past_their_ttl_oldest_first() -> None:
    arbiter = Arbiter(capacity=100, ttl_ns=TTL_NS)
    for n in range(10):
        arbiter.offer("a", ("trades", "X", str(n)), NOW + n * 1_000_000_000)
    # at NOW + 9 s: the keys of 0..3 s are more than the 5 s TTL old, those of 4..9 s are not
    assert arbiter.expire(NOW + 9 * 1_000_000_000) == 4
    assert arbiter.remembered() == {"trades": 6}
    assert arbiter.keys() == {("trades", "X", str(n)) for n in range(4, 10)}


SECOND = 1_000_000_000


def test_a_connection_further_behind_its_partner_than_the_ttl_still_finds_its_copies() -> None:
    """The redundancy-2 soak under faults: a reconnected copy ran live while its partner worked off a backlog
    more than arbiter_ttl_s long, and the partner's copies were stored twice (674 l2 and 189 bbo rows). Keys
    are kept for the TTL plus how far the slowest connection is behind the fastest, in exchange time."""
    arbiter = BatchArbiter(capacity=100_000, ttl_ns=TTL_NS)
    lag = 3 * TTL_NS  # b delivers what happened 15 s ago; a is live
    for second in range(16):
        now = NOW + second * SECOND
        assert kept(arbiter, "a", [1_000 + second], now, exchange_ns=now) == [1_000 + second]
        if second * SECOND >= lag:  # b reaches what a delivered `lag` ago, long past the TTL: copies
            assert kept(arbiter, "b", [1_000 + second - 15], now, exchange_ns=now - lag) == []
        else:
            assert kept(arbiter, "b", [second], now, exchange_ns=now - lag) == [second]
    stats = arbiter.snapshot()
    assert stats["skew_ms"] == 15_000, stats["skew_ms"]
    gauges = {g["name"]: g["value"] for g in stats["metrics"]["gauges"]}
    assert gauges["xtrader_arbiter_skew_seconds"] == 15.0, gauges
    # and once b has caught up, keys are kept for the TTL again (memory stays bounded)
    for second in range(16, 40):
        now = NOW + second * SECOND
        ids = list(range(second * 1_000, second * 1_000 + 100))
        assert kept(arbiter, "a", ids, now, exchange_ns=now) == ids
        assert kept(arbiter, "b", ids, now + 1, exchange_ns=now) == []
    stats = arbiter.snapshot()
    assert sum(stats["remembered"].values()) <= 600
    assert stats["skew_ms"] == 0 and stats["max_skew_ms"] >= 15_000


def test_a_silent_connection_does_not_hold_the_keys_longer() -> None:
    """A connection that stopped delivering (down, replaced) is not behind: after a TTL of silence, keys are
    kept for the TTL again, not for ever as its last exchange time falls further behind."""
    arbiter = BatchArbiter(capacity=100_000, ttl_ns=TTL_NS)
    assert kept(arbiter, "b", [0], NOW, exchange_ns=NOW) == [0]
    for second in range(1, 30):
        now = NOW + second * SECOND
        ids = list(range(second * 1_000, second * 1_000 + 100))
        assert kept(arbiter, "a", ids, now, exchange_ns=now) == ids
    # the last TTL of keys (and the second at its edge), plus at most the TTL b held them longer before it
    # counted as silent, long gone by now
    assert sum(arbiter.snapshot()["remembered"].values()) <= 600
