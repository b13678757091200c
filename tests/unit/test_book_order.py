"""l2 reaches the order book in each producer's order (issue 12, item 9), without Ray.

Ray does not keep the call order of an async actor's methods (a call whose argument is still being
fetched is overtaken), and the arbiter's awaits let a later batch reach the book first. Here the actor
handles are stand-ins whose calls are held until the test delivers them, in the order it chooses; the
actors behind them (OrderBookActor, ArbiterActor) are the real classes, and the book's verdict (gaps,
valid, levels) is the real `BookService`'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

from actors._inorder import InOrder
from actors._route import Outputs
from actors.arbiter import ArbiterActor
from actors.book import OrderBookActor
from tests.unit.test_services import l2_batch, trades_batch
from xtrader.batch import Batches
from xtrader.flow import FlowGate
from xtrader.reorder import Reorder


class Held:
    """An actor handle whose `.remote()` calls wait (recorded) until the test delivers or acks them."""

    def __init__(self, *methods: str) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        for method in methods:
            setattr(self, method, _Method(self, method))

    def take(self, method: str) -> list[tuple[tuple[Any, ...], asyncio.Future[Any]]]:
        """The held calls of `method`, oldest first (removed from the hold)."""
        taken = [(args, future) for name, args, future in self.calls if name == method]
        self.calls = [call for call in self.calls if call[0] != method]
        return taken


class _Method:
    def __init__(self, owner: Held, name: str) -> None:
        self.owner, self.name = owner, name

    def remote(self, *args: Any) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if self.name == "stats":
            future.set_result({})
        else:
            self.owner.calls.append((self.name, args, future))
        return future


class Sink:
    """A sink handle that acks every write at once."""

    def __init__(self) -> None:
        self.write = self
        self.stats = self

    def remote(self, *args: Any) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(True)
        return future


SNAPSHOT = ("P", 10, None, None, True, [(100.0, 1.0)], [(101.0, 1.0)])


def update(seq: int, price: float) -> tuple[Any, ...]:
    """A Deribit-style l2 update `seq` (prev seq - 1) setting a bid level at `price`."""
    return ("P", seq, seq - 1, None, False, [(price, float(seq))], [])


def book() -> OrderBookActor:
    return OrderBookActor("deribit", "deribit", [Sink()], snapshot_interval_s=0)


def assert_in_order(actor: OrderBookActor, last: int) -> None:
    stats = actor.service.stats()
    assert stats["counters"]["gaps"] == 0, stats["counters"]
    assert stats["valid"] == 1
    assert actor.service.sync("P").last == last


async def deliver(held: Held, actor: OrderBookActor, order: list[int]) -> None:
    """Run the held `on_batch` calls on the real book actor in `order` (indices of the calls as made).

    Each starts in that order and they run concurrently, as Ray runs an async actor's calls: a call
    returns only once its rows are stored, so one held for its predecessor waits for it."""
    calls = held.take("on_batch")
    assert len(calls) == len(order)
    running = []
    for index in order:
        args, future = calls[index]
        running.append((asyncio.create_task(actor.on_batch(*args)), future))
        await asyncio.sleep(0)
    for task, future in running:
        await task
        future.set_result(None)


async def test_the_book_applies_a_connectors_batches_in_the_order_sent_whatever_order_they_arrive() -> None:
    actor, held = book(), Held("on_batch", "stats")
    producer = Outputs("deribit/c0/r0", [Sink()], book=held)
    batches = [l2_batch("deribit", [SNAPSHOT])] + [l2_batch("deribit", [update(s, 90.0 + s)]) for s in (11, 12, 13)]
    refs = [ref for batch in batches for ref in producer.submit(batch)]
    await deliver(held, actor, [0, 2, 3, 1])  # as Ray may run them: 12 and 13 before 11
    await asyncio.gather(*refs)
    await actor.drain()
    assert_in_order(actor, 13)
    assert actor.service.tops()["P"][0][:3] == [(103.0, 13.0), (102.0, 12.0), (101.0, 11.0)]


async def test_the_arbiter_passes_l2_on_in_the_order_it_kept_it_though_an_l2_only_batch_waits_less() -> None:
    actor, held_book, sink = book(), Held("on_batch", "stats"), Held("write", "stats")
    await actor.on_batch("deribit/c0/r0", l2_batch("deribit", [SNAPSHOT]))
    arbiter = ArbiterActor("deribit", "deribit", [sink], held_book, max_inflight=1)
    await arbiter.register(["deribit/c0/r0", "deribit/c0/r1"])

    def both(trade: str, seq: int) -> Batches:
        a, b = trades_batch("deribit", [("P", trade)]), l2_batch("deribit", [update(seq, 90.0 + seq)])
        return Batches("deribit", trades=a.trades, l2=b.l2, l2_messages=b.l2_messages)

    tasks = [
        asyncio.create_task(arbiter.on_batch("deribit/c0/r0", batch))
        for batch in (both("t1", 11), both("t2", 12), l2_batch("deribit", [update(13, 103.0)]))
    ]
    delivered: list[int] = []
    running: list[asyncio.Task[None]] = []

    async def answer(args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        await actor.on_batch(*args)  # runs concurrently with later calls, as Ray runs them
        future.set_result(None)

    while not all(task.done() for task in tasks) or held_book.calls or sink.calls:
        await asyncio.sleep(0.01)
        # the book answers before the sink: each ack frees a slot a waiting batch takes
        for args, future in held_book.take("on_batch"):
            delivered.append(args[1].l2_messages.column("seq")[0].as_py())
            running.append(asyncio.create_task(answer(args, future)))
        for _, future in sink.take("write"):
            future.set_result(True)
    await asyncio.gather(*running)
    await actor.drain()
    assert sorted(delivered) == [11, 12, 13]
    assert_in_order(actor, 13)


async def test_a_freed_slot_goes_to_the_batch_that_waited_not_to_a_newcomer() -> None:
    gate = FlowGate(max_inflight=1)
    assert await gate.acquire(1)
    order: list[str] = []

    async def take(name: str) -> None:
        await gate.acquire(1)
        order.append(name)

    waiting = asyncio.create_task(take("waited"))
    await asyncio.sleep(0.01)
    assert order == []
    gate.release()
    newcomer = asyncio.create_task(take("newcomer"))
    await asyncio.sleep(0.01)
    assert order == ["waited"]  # the newcomer waits for the next slot
    gate.release()
    await asyncio.wait_for(asyncio.gather(waiting, newcomer), 1.0)
    assert order == ["waited", "newcomer"]
    assert gate.stats.inflight == 1


async def test_a_waiter_that_is_cancelled_gives_its_place_up() -> None:
    gate = FlowGate(max_inflight=1)
    assert await gate.acquire(1)
    cancelled = asyncio.create_task(gate.acquire(1))
    second = asyncio.create_task(gate.acquire(1))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.sleep(0.01)
    gate.release()
    assert await asyncio.wait_for(second, 1.0) is True
    assert gate.stats.inflight == 1
    gate.release()
    await asyncio.wait_for(gate.drain(), 1.0)


# -- the reorder buffer itself ----------------------------------------------------------------------------------


def test_reorder_releases_each_sources_items_in_number_order() -> None:
    order: Reorder[str] = Reorder(timeout_ns=100)
    assert order.push("a", 1, "a1", 0) == []
    assert order.push("b", 0, "b0", 0) == ["b0"]  # sources are independent
    assert order.push("a", 2, "a2", 0) == []
    assert order.push("a", 0, "a0", 0) == ["a0", "a1", "a2"]
    assert order.stats.as_dict() == {"held": 2, "skipped": 0, "late": 0, "waiting": 0}


def test_reorder_gives_up_on_a_missing_number_after_the_timeout_and_passes_a_late_one_through() -> None:
    order: Reorder[str] = Reorder(timeout_ns=100)
    assert order.push("a", 0, "a0", 0) == ["a0"]
    assert order.push("a", 2, "a2", 10) == []
    assert order.push("a", 3, "a3", 20) == []
    assert order.expired(109) == []
    assert order.expired(110) == ["a2", "a3"]
    assert order.push("a", 1, "a1", 120) == ["a1"]  # its turn passed: at once, counted
    assert order.push("a", 4, "a4", 130) == ["a4"]
    assert order.stats.as_dict() == {"held": 2, "skipped": 1, "late": 1, "waiting": 0}


def test_reorder_does_not_wait_for_numbers_the_producer_dropped() -> None:
    order: Reorder[str] = Reorder(timeout_ns=100)
    assert order.push("a", 2, "a2", 0) == []
    assert order.push("a", 3, "a3", 0, dropped=(0, 1)) == ["a2", "a3"]
    assert order.stats.skipped == 2


def test_reorder_flush_and_limit_release_what_is_held_in_order() -> None:
    order: Reorder[str] = Reorder(timeout_ns=10**12, limit=2)
    assert order.push("a", 5, "a5", 0) == []
    assert order.push("a", 3, "a3", 0) == []
    assert order.push("a", 4, "a4", 0) == ["a3", "a4", "a5"]  # beyond the limit: the oldest go, in order
    assert order.push("a", 8, "a8", 0) == []
    assert order.flush() == ["a8"]
    assert order.stats.waiting == 0


async def test_a_book_releases_a_batch_whose_predecessor_never_comes_after_the_timeout() -> None:
    actor = book()
    actor.inorder = InOrder(actor._process, timeout_s=0.05)
    await actor.on_batch("c0", l2_batch("deribit", [SNAPSHOT]), False, "src", 0)
    held = asyncio.create_task(actor.on_batch("c0", l2_batch("deribit", [update(12, 102.0)]), False, "src", 2))
    await asyncio.sleep(0.01)
    assert actor.service.sync("P").last == 10  # 12 waits for 11
    assert not held.done()  # and its call is answered only once it is processed and stored
    await asyncio.wait_for(held, 5)
    assert actor.stats()["order"]["skipped"] == 1
    assert actor.service.stats()["counters"]["gaps"] == 1  # 11 is really missing: the book says so
