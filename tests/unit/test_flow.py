"""flow: in-flight window accounting (pure) and its asyncio gate."""

from __future__ import annotations

import asyncio

import pytest

from xtrader.flow import FlowGate, Window


def test_window_sends_until_full_then_blocks():
    window = Window(max_inflight=2, policy="block")
    for _ in range(2):
        assert window.admit(10) == "send"
        window.sent()
    assert window.admit(10) == "wait"
    assert window.stats.waits == 1
    assert window.stats.dropped_rows == 0
    window.acked()
    assert window.admit(10) == "send"


def test_lossy_window_drops_and_counts_rows_when_full():
    window = Window(max_inflight=1, policy="lossy")
    window.sent()
    assert window.admit(7) == "drop"
    assert window.admit(5) == "drop"
    assert (window.stats.dropped_batches, window.stats.dropped_rows) == (2, 12)


def test_a_precious_batch_waits_even_when_lossy():
    window = Window(max_inflight=1, policy="lossy")
    window.sent()
    assert window.admit(100, precious=True) == "wait"
    assert window.stats.dropped_rows == 0


def test_high_water_mark_and_ack_counts():
    window = Window(max_inflight=3)
    for _ in range(3):
        window.sent()
    window.acked()
    window.acked(ok=False)
    window.sent()
    stats = window.stats
    assert (stats.inflight, stats.high_water, stats.sent_batches) == (2, 3, 4)
    assert (stats.acked_batches, stats.failed_batches) == (1, 1)


def test_ack_without_a_batch_is_a_bug():
    with pytest.raises(RuntimeError):
        Window().acked()


@pytest.mark.parametrize(("size", "policy"), [(0, "block"), (1, "drop-oldest")])
def test_window_rejects_bad_configuration(size, policy):
    with pytest.raises(ValueError):
        Window(size, policy)


async def test_gate_blocks_the_producer_until_an_ack_frees_a_slot():
    gate = FlowGate(max_inflight=1, policy="block")
    assert await gate.acquire(1)
    waiter = asyncio.create_task(gate.acquire(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    gate.release()
    assert await asyncio.wait_for(waiter, 1.0) is True
    assert gate.stats.inflight == 1
    assert gate.stats.dropped_batches == 0


async def test_lossy_gate_never_waits():
    gate = FlowGate(max_inflight=1, policy="lossy")
    assert await gate.acquire(3)
    assert await asyncio.wait_for(gate.acquire(3), 0.1) is False
    assert gate.stats.dropped_rows == 3


async def test_drain_waits_for_every_ack():
    gate = FlowGate(max_inflight=4)
    for _ in range(3):
        await gate.acquire(1)
    drained = asyncio.create_task(gate.drain())
    for _ in range(3):
        await asyncio.sleep(0)
        assert not drained.done()
        gate.release()
    await asyncio.wait_for(drained, 1.0)
    assert gate.stats.acked_batches == 3


def test_a_window_of_rows_is_full_once_that_many_rows_are_in_flight():
    window = Window(max_inflight=100, max_rows=1_000)
    window.sent(600)
    assert window.admit(600) == "send"  # a soft bound: let in while fewer rows than the bound are in flight
    window.sent(600)
    assert (window.full, window.inflight_rows) == (True, 1_200)
    assert window.admit(1) == "wait"
    window.acked(rows=600)
    assert (window.full, window.inflight_rows) == (False, 600)


def test_a_window_of_rows_rejects_a_bound_below_one():
    with pytest.raises(ValueError, match="max_rows"):
        Window(max_rows=0)


async def test_a_gate_of_rows_hands_a_freed_slot_to_the_waiter_with_its_rows():
    gate = FlowGate(max_inflight=100, max_rows=10)
    assert await gate.acquire(10)
    waiter = asyncio.ensure_future(gate.acquire(4))
    await asyncio.sleep(0)
    assert not waiter.done() and gate.waiting == 1
    gate.release(rows=10)
    assert await waiter
    assert (gate.window.inflight_rows, gate.stats.inflight) == (4, 1)
    gate.release(rows=4)
    await asyncio.wait_for(gate.drain(), 1)
    assert gate.window.inflight_rows == 0


async def test_a_cancelled_waiter_given_a_slot_passes_it_on_with_its_rows():
    gate = FlowGate(max_inflight=1, max_rows=100)
    assert await gate.acquire(5)
    first = asyncio.ensure_future(gate.acquire(7))
    second = asyncio.ensure_future(gate.acquire(3))
    await asyncio.sleep(0)
    gate.release(rows=5)  # the slot goes to `first`, cancelled before it runs: it passes the slot to `second`
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second
    assert (gate.stats.inflight, gate.window.inflight_rows) == (1, 3)
