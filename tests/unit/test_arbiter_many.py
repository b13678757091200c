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


def state(arbiter: Arbiter) -> Any:
    return arbiter.stats.as_dict(), {table: list(seen.items()) for table, seen in arbiter.tables.items()}


#: the offer loop in C (`xtrader/_arbiter.c`) and in Python: each is held to the reference
LOOPS = {"c": C_OFFER, "python": None}


def test_the_c_loop_is_built_and_used() -> None:
    if os.environ.get("XTRADER_PURE_PYTHON", "") in ("1", "true", "yes"):
        pytest.skip("XTRADER_PURE_PYTHON=1: the Python loop by request")
    assert C_OFFER is not None, "xtrader/_arbiter.c is not built: pip install -e ."
    assert Arbiter.c_offer is C_OFFER  # what every Arbiter uses


@pytest.mark.parametrize("loop", sorted(LOOPS))
@settings(max_examples=300, deadline=None)
@given(
    batches=batches,
    capacity=st.integers(1, 40),
    ttl=st.sampled_from([0, 10, 50]),
    grace=st.sampled_from([0, 15]),
)
def test_offer_many_is_offer_of_each_key_in_turn(loop: str, batches: Any, capacity: int, ttl: int, grace: int) -> None:
    # the reference (the Python loop) evicts nothing while it takes a batch key by key, then keeps each table's
    # `capacity` newest
    one, many = Arbiter(capacity=10**9, ttl_ns=ttl), Arbiter(capacity=capacity, ttl_ns=ttl)
    one.c_offer, many.c_offer = None, LOOPS[loop]
    if loop == "c" and many.c_offer is None:
        pytest.fail("xtrader/_arbiter.c is not built: pip install -e .")
    one.grace_ns = many.grace_ns = grace
    now = 0
    for connection, keys, step in batches:
        now += step
        expected = [one.offer(connection, k, now) for k in keys]
        for table, seen in one.tables.items():
            one.tables[table] = dict(list(seen.items())[-capacity:])
        assert many.offer_many(connection, keys, now) == expected
        assert state(many) == state(one)
