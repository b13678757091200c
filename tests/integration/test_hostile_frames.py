"""Hostile frames from the (simulated) exchange to a real connector over loopback: oversized, deeply nested,
invalid UTF-8, and hypothesis-generated garbage. Each is counted, dropped and recorded as an `events` row; the
link is kept (or, for a frame beyond `max_frame_bytes`, replaced) and the connector keeps capturing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_connector import (
    TABLES,
    Capture,
    assert_no_trade_missing,
    connector,
    plan,
    run_until,
    settle,
)
from xtrader.simulator import Simulator

NESTED = [
    b"[" * 100_000 + b"]" * 100_000,  # far past any parser's recursion limit
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"stream":"btcusdt@trade","data":' + b"[" * 2_000 + b"]" * 2_000 + b"}",
]
INVALID_UTF8 = [
    b'{"e":"trade","s":"\xff\xfe"}',
    b"\xc3\x28",
    b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTC\xed\xa0\x80USDT"}}',  # a lone surrogate
    b"\x00\x01\x02\x03",
    b"",
]


async def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def injected(sim: Simulator, name: str) -> int:
    return sum(c.stats.faults_applied["injected"] for c in sim.connections(name))


async def inject_and_settle(sim: Simulator, capture: Capture, frames: list[bytes]) -> None:
    """Once data flows: inject `frames` on the open link, then wait until the capture holds everything sent."""
    await wait_until(lambda: capture.rows("trades") > 0)
    assert sim.inject("binance", frames) == 1
    await wait_until(lambda: injected(sim, "binance") == len(frames))
    await settle(sim, "binance", capture, TABLES)


async def test_nested_and_invalid_utf8_frames_are_counted_dropped_and_the_link_kept() -> None:
    frames = NESTED + INVALID_UTF8
    async with Simulator(venues=["binance"], symbols=2, rate=300, seed=3) as sim:
        capture = Capture()
        v, connection = plan(sim, "binance")
        c = connector(v, connection, capture)
        stats = await run_until(
            c, lambda: capture.rows("trades") > 0, then=lambda: inject_and_settle(sim, capture, frames)
        )
    assert stats["rejects"] == len(frames)
    rejects = capture.events("reject")
    assert len(rejects) == len(frames)
    assert stats["reconnects"] == 0 and stats["connects"] == 1
    # each hostile frame lost only itself: every trade the simulator wrote intact was captured
    assert_no_trade_missing(sim, "binance", capture)


async def test_a_frame_beyond_max_frame_bytes_is_counted_recorded_and_the_link_replaced() -> None:
    limit = 64 << 10
    big = b'{"stream":"btcusdt@trade","data":{"e":"trade","pad":"' + b"x" * (2 * limit) + b'"}}'
    async with Simulator(venues=["binance"], symbols=2, rate=300, seed=3) as sim:
        capture = Capture()
        v, connection = plan(sim, "binance")
        c = connector(v, connection, capture, max_frame_bytes=limit)

        async def then() -> None:
            await wait_until(lambda: capture.rows("trades") > 0)
            assert sim.inject("binance", [big]) == 1
            await wait_until(lambda: c.stats()["oversized_frames"] == 1 and c.stats()["connects"] >= 2)
            # the new link captures again
            rows = capture.rows("trades")
            await wait_until(lambda: capture.rows("trades") > rows)

        stats = await run_until(c, lambda: capture.rows("trades") > 0, timeout_s=20, then=then)
    assert stats["oversized_frames"] == 1
    assert stats["reconnects"] >= 1
    details = [detail for _, detail, _ in capture.events("reject")]
    assert any("max_frame_bytes" in detail and str(limit) in detail for detail in details), details


_INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what orjson can encode


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | _INTS | st.floats(allow_nan=False) | st.text(max_size=20)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    )


_GARBAGE = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    _json_values().map(orjson.dumps),
    # a real-looking envelope with garbage inside
    _json_values().map(lambda data: orjson.dumps({"stream": "btcusdt@trade", "data": data})),
    st.fixed_dictionaries(
        {"e": st.sampled_from(["trade", "depthUpdate", "bookTicker"])},
        optional={
            "s": st.sampled_from(["BTCUSDT", "ETHUSDT", ""]) | st.text(max_size=5),
            "p": st.text(max_size=6) | _INTS | st.none(),
            "q": st.text(max_size=6) | st.floats() | st.none(),
            "t": _INTS | st.text(max_size=4),
            "T": _INTS | st.none(),
            "U": _INTS,
            "u": _INTS,
            "b": _json_values(),
            "a": _json_values(),
        },
    ).map(lambda data: orjson.dumps({"stream": "btcusdt@trade", "data": data}, option=orjson.OPT_NON_STR_KEYS)),
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=st.lists(_GARBAGE, min_size=1, max_size=30))
def test_hypothesis_garbage_frames_never_break_the_connector(frames: list[bytes]) -> None:
    async def scenario() -> tuple[dict[str, Any], Capture, Simulator]:
        async with Simulator(venues=["binance"], symbols=2, rate=300, seed=3) as sim:
            capture = Capture()
            v, connection = plan(sim, "binance")
            c = connector(v, connection, capture)
            stats = await run_until(
                c, lambda: capture.rows("trades") > 0, then=lambda: inject_and_settle(sim, capture, frames)
            )
            return stats, capture, sim

    stats, capture, _ = asyncio.run(scenario())
    # every frame reached the connector and was either taken or rejected, counted, and recorded
    assert stats["messages"] >= len(frames)
    assert len(capture.events("reject")) == stats["rejects"]
    assert stats["connects"] == 1 and stats["reconnects"] == 0
    assert stats["emit_errors"] == 0
