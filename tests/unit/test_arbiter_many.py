"""`Arbiter.offer_many` over a batch's keys gives what offering them one at a time gives (`offer`: one key), batch
cuts and table changes between keys included; its eviction past `capacity` comes at the end of the call."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xtrader.arbiter import Arbiter

try:  # the C loop as built, whatever XTRADER_PURE_PYTHON says (both loops are tested either way)
    from xtrader import _arbiter

    C_OFFER: Any = _arbiter.offer
except ImportError:
    C_OFFER = None

key = st.one_of(
    st.tuples(st.sampled_from(["l2", "trades", "bbo"]), st.sampled_from(["A", "B"]), st.integers(0, 30)),
    st.tuples(st.sampled_from(["l2", "trades"]), st.integers(0, 5)),
)
#: batches of (connection, keys, time step)
batches = st.lists(
    st.tuples(st.sampled_from(["c0", "c1"]), st.lists(key, max_size=25), st.integers(0, 40)), max_size=30
)


def state(arbiter: Any) -> Any:
    return arbiter.stats.as_dict(), {table: list(seen.items()) for table, seen in arbiter.tables.items() if seen}


class Reference:
    """What an arbiter must do, written plainly: each key offered in turn against a dict per table; after each
    call, each table keeps its `capacity` newest keys; `expire` forgets the keys past the TTL."""

    def __init__(self, capacity: int, ttl: int, grace: int) -> None:
        self.capacity, self.ttl, self.grace = capacity, ttl, grace
        self.tables: dict[Any, dict[Any, int]] = {}
        self.stats = Arbiter().stats

    def offer_many(self, connection: str, keys: list[Any], now: int, table: Any = None) -> list[bool]:
        verdicts = []
        for key in keys:
            seen = self.tables.setdefault(key[0] if table is None else table, {})
            first = seen.get(key)
            fresh = first is None or (bool(self.ttl) and now - first > self.ttl + self.grace)
            if fresh:
                seen.pop(key, None)
                seen[key] = now
            verdicts.append(fresh)
        for table, seen in self.tables.items():
            self.tables[table] = dict(list(seen.items())[-self.capacity :])
        if not verdicts:
            return verdicts
        unique = sum(verdicts)
        self.stats.unique += unique
        self.stats.duplicates += len(verdicts) - unique
        self.stats.wins[connection] = self.stats.wins.get(connection, 0) + unique
        return verdicts

    def remember(self, key: Any, now: int, table: Any = None) -> None:
        table = key[0] if table is None else table
        seen = self.tables.setdefault(table, {})
        seen.pop(key, None)
        seen[key] = now
        self.tables[table] = dict(list(seen.items())[-self.capacity :])

    def expire(self, now: int) -> int:
        if not self.ttl or now <= self.ttl + self.grace:
            return 0
        before = sum(map(len, self.tables.values()))
        for table, seen in self.tables.items():
            self.tables[table] = {k: t for k, t in seen.items() if t >= now - self.ttl - self.grace}
        return before - sum(map(len, self.tables.values()))


#: the offer loop in C (`xtrader/_arbiter.c`) and in Python: each is held to the reference
LOOPS = {"c": C_OFFER, "python": None}


def test_the_c_loop_is_built_and_used() -> None:
    if os.environ.get("XTRADER_PURE_PYTHON", "") in ("1", "true", "yes"):
        pytest.skip("XTRADER_PURE_PYTHON=1: the Python loop by request")
    assert C_OFFER is not None, "xtrader/_arbiter.c is not built: pip install -e ."
    assert Arbiter.c_offer is C_OFFER  # what every Arbiter uses


#: calls of (connection, keys, time step, what else: "expire" the TTL's keys, or "remember" the first key, and
#: ids: keys that are not tuples, offered as table "l2"'s (`table=`, as `xtrader.update_ids`' ints are), or None)
calls = st.lists(
    st.tuples(
        st.sampled_from(["c0", "c1"]),
        st.lists(key, max_size=25),
        st.integers(0, 40),
        st.sampled_from(["", "", "expire", "remember"]),
        st.one_of(st.none(), st.lists(st.integers(-3, 30), max_size=25)),
    ),
    max_size=40,
)


@pytest.mark.parametrize("loop", sorted(LOOPS))
@settings(max_examples=300, deadline=None)
@given(calls=calls, capacity=st.integers(1, 40), ttl=st.sampled_from([0, 10, 50]), grace=st.sampled_from([0, 15]))
def test_offer_many_is_offer_of_each_key_in_turn(loop: str, calls: Any, capacity: int, ttl: int, grace: int) -> None:
    reference, arbiter = Reference(capacity, ttl, grace), Arbiter(capacity=capacity, ttl_ns=ttl)
    arbiter.c_offer = LOOPS[loop]
    if loop == "c" and arbiter.c_offer is None:
        pytest.fail("xtrader/_arbiter.c is not built: pip install -e .")
    arbiter.grace_ns = grace
    now = 0
    for connection, keys, step, also, ids in calls:
        now += step
        assert arbiter.offer_many(connection, keys, now) == reference.offer_many(connection, keys, now)
        if ids is not None:
            assert arbiter.offer_many(connection, ids, now, "l2") == reference.offer_many(connection, ids, now, "l2")
            if also == "remember" and ids:
                arbiter.remember(ids[-1], now, "l2")
                reference.remember(ids[-1], now, "l2")
        if also == "expire":
            assert arbiter.expire(now) == reference.expire(now)
        elif also == "remember" and keys:
            arbiter.remember(keys[0], now)
            reference.remember(keys[0], now)
        assert state(arbiter) == state(reference)
        # a table's order holds each of its keys once past its head, plus older entries of moved keys only
        for table, seen in arbiter.tables.items():
            order, head, moved = arbiter.orders[table]
            live = order[head:]
            assert sorted(map(repr, set(live))) == sorted(map(repr, seen))
            assert len(live) == len(seen) + sum(moved.values())


@settings(max_examples=50, deadline=None)
@given(capacity=st.integers(1, 3000), ttl=st.sampled_from([0, 7]))
def test_the_order_of_a_long_run_stays_bounded_and_both_loops_agree(capacity: int, ttl: int) -> None:
    # thousands of keys a table, some delivered again after the TTL: the orders are compacted (their used
    # entries dropped), never longer than twice the keys they track, and the two loops keep the same state
    arbiters = [Arbiter(capacity=capacity, ttl_ns=ttl) for _ in LOOPS]
    for arbiter, loop in zip(arbiters, sorted(LOOPS), strict=True):
        arbiter.c_offer = LOOPS[loop]
    for now in range(0, 400):
        keys = [("l2", "A", n % 9000) for n in range(now * 37, now * 37 + 50)] + [("trades", now % 11)]
        for arbiter in arbiters:
            arbiter.offer_many("c0", keys, now)
            if now % 13 == 0:
                arbiter.expire(now)
    assert state(arbiters[0]) == state(arbiters[1])
    assert arbiters[0].orders == arbiters[1].orders
    for table, (order, head, moved) in arbiters[0].orders.items():
        tracked = len(arbiters[0].tables[table]) + sum(moved.values())
        assert len(order) == head + tracked
        assert len(order) <= max(2 * tracked, 1024 + tracked), (table, len(order), tracked)
