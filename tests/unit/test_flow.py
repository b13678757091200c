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
