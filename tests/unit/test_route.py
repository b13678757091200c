"""actors/_route.py without Ray: where a producer's batches go, and their (source_id, batch_seq)."""

from __future__ import annotations

import asyncio
from typing import Any

from actors._route import Outputs
from tests.unit.test_services import l2_batch, trades_batch
from xtrader.batch import Batches


class Method:
    def __init__(self, calls: list[tuple[Any, ...]], name: str) -> None:
        self.calls = calls
        self.name = name

    def remote(self, *args: Any) -> Any:
        self.calls.append((self.name, *args))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class Handle:
    def __init__(self, name: str) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.write = Method(self.calls, f"{name}.write")
        self.on_batch = Method(self.calls, f"{name}.on_batch")


def both(a: Batches, b: Batches) -> Batches:
    return Batches(a.exchange, trades=a.trades, l2=b.l2, l2_messages=b.l2_messages)


async def test_trades_go_to_every_sink_and_l2_to_the_book_with_numbered_batches() -> None:
    sinks, book = [Handle("parquet"), Handle("questdb")], Handle("book")
    outputs = Outputs("binance/c0/r0", sinks, book)
    batch = both(trades_batch("binance", [("X", "1")]), l2_batch("binance", [("X", 5, None, 5, False, [], [])]))
    refs = outputs.submit(batch) + outputs.submit(batch)
    await asyncio.gather(*refs)
    seqs = [call[2] for call in sinks[0].calls]
    assert seqs == [0, 1]
    assert sinks[0].calls[0][1] == sinks[1].calls[0][1] == outputs.source_id
    assert set(sinks[0].calls[0][3]) == {"trades"}
    assert [call[0] for call in book.calls] == ["book.on_batch", "book.on_batch"]
    assert book.calls[0][1] == "binance/c0/r0" and book.calls[0][3] is False


async def test_with_an_arbiter_everything_but_rest_snapshots_goes_there() -> None:
    sink, book, arbiter = Handle("parquet"), Handle("book"), Handle("arbiter")
    outputs = Outputs("okx/c0/r1", [sink], book, arbiter)
    await asyncio.gather(*outputs.submit(trades_batch("okx", [("X", "1")])))
    snapshot = l2_batch("binance", [("X", 5, None, None, True, [(1.0, 1.0)], [])])
    await asyncio.gather(*outputs.submit(snapshot, rest=True))
    assert [c[0] for c in arbiter.calls] == ["arbiter.on_batch"]
    assert [c[0] for c in book.calls] == ["book.on_batch"] and book.calls[0][3] is True
    assert sink.calls == []


async def test_windowed_writes_wait_for_acks_and_drain() -> None:
    sink = Handle("parquet")
    outputs = Outputs("book:binance", [sink], max_inflight=1)
    for _ in range(3):
        await outputs.write({"trades": trades_batch("binance", [("X", "1")]).trades})
    await outputs.drain()
    assert [c[2] for c in sink.calls] == [0, 1, 2]
    assert outputs.stats()["acked_batches"] == 3


class HeldMethod(Method):
    """A method whose calls are acknowledged only when the test says so (a book that is restarting)."""

    def __init__(self, calls: list[tuple[Any, ...]], name: str) -> None:
        super().__init__(calls, name)
        self.pending: list[asyncio.Future[None]] = []

    def remote(self, *args: Any) -> Any:
        self.calls.append((self.name, *args))
        future = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future

    def ack_all(self) -> None:
        for future in self.pending:
            if not future.done():
                future.set_result(None)


def held_book() -> tuple[Handle, Handle, HeldMethod]:
    """(a sink, a book whose calls wait for `ack_all`, that method)."""
    sink, book = Handle("parquet"), Handle("book")
    book.on_batch = held = HeldMethod(book.calls, "book.on_batch")
    return sink, book, held


def trade_and_l2(levels: list[tuple[float, float]]) -> Batches:
    """One trade and one l2 message of `levels` bids."""
    return both(trades_batch("binance", [("X", "1")]), l2_batch("binance", [("X", 5, None, 5, False, levels, [])]))


async def test_a_connector_batch_is_passed_on_while_the_book_holds_its_earlier_calls() -> None:
    sink, book, held = held_book()
    outputs = Outputs("binance/c0/r0", [sink], book, max_inflight=1, book_window_rows=3)
    batch = trade_and_l2([(1.0, 1.0)])
    for _ in range(3):  # none of the book's calls acknowledged: the trades are written all the same
        await asyncio.wait_for(outputs.dispatch(batch), 1)
    assert [c[2] for c in sink.calls] == [0, 1, 2]
    assert [c[5] for c in book.calls] == [0, 1, 2]  # the book's calls, numbered in order
    assert book.calls[2][-1] == 0  # the floor: call 0 is not acknowledged yet
    fourth = asyncio.ensure_future(outputs.dispatch(batch))  # 3 l2 rows wait at the book: its window is full
    await asyncio.sleep(0.01)
    assert not fourth.done() and len(book.calls) == 3 and [c[2] for c in sink.calls] == [0, 1, 2, 3]
    held.ack_all()
    await asyncio.wait_for(fourth, 1)
    held.ack_all()
    await asyncio.wait_for(outputs.drain(), 1)
    assert [c[5] for c in book.calls] == [0, 1, 2, 3]


async def test_an_arbiter_passes_trades_on_while_the_book_holds_its_earlier_calls() -> None:
    sink, book, held = held_book()
    outputs = Outputs("arbiter:binance/s0", [sink], book, max_inflight=1, book_window_rows=2)
    batch = trade_and_l2([(1.0, 1.0)])
    acks = []
    for seq in range(2):  # emit returns once the writes have their slots: the book's acks are awaited apart
        acks += await asyncio.wait_for(outputs.emit(batch, key=("binance/c0/r0#x", seq)), 1)
    assert [c[2] for c in sink.calls] == [0, 1] and len(book.calls) == 2
    third = asyncio.ensure_future(outputs.emit(batch, key=("binance/c0/r0#x", 2)))
    await asyncio.sleep(0.01)  # the book's window (2 rows) is full: the third batch's trades are written, its l2 waits
    assert not third.done() and [c[2] for c in sink.calls] == [0, 1, 2] and len(book.calls) == 2
    held.ack_all()
    acks += await asyncio.wait_for(third, 1)
    held.ack_all()
    assert all(await asyncio.gather(*acks))
    await asyncio.wait_for(outputs.drain(), 1)


async def test_lossy_a_full_book_window_drops_the_l2_counted_and_the_book_is_told_the_number() -> None:
    sink, book, held = held_book()
    events: list[tuple[str, str]] = []
    outputs = Outputs(
        "binance/c0/r0",
        [sink],
        book,
        policy="lossy",
        book_window_rows=1,
        on_event=lambda kind, detail: events.append((kind, detail)),
        sink_kinds=["parquet"],
    )
    batch = trade_and_l2([(1.0, 1.0), (0.9, 2.0)])
    for _ in range(2):  # the second batch's l2 finds the book's window full: dropped, its trades written
        await asyncio.wait_for(outputs.dispatch(batch), 1)
    assert [c[2] for c in sink.calls] == [0, 1] and [c[5] for c in book.calls] == [0]
    assert outputs.accounted == {("parquet", "l2", "binance"): 2}
    assert [kind for kind, _ in events] == ["drop"] and "2 l2 rows" in events[0][1], events
    held.ack_all()
    await asyncio.wait_for(outputs.drain(), 1)
    await asyncio.wait_for(outputs.dispatch(batch), 1)  # the next call tells the book number 1 will not come
    assert [c[5] for c in book.calls] == [0, 2] and book.calls[1][6] == (1,)
    held.ack_all()
    await asyncio.wait_for(outputs.drain(), 1)


async def test_outputs_are_behind_while_a_downstream_holds_that_many_calls_unacknowledged() -> None:
    """`behind(n)`: what a connector asks before a flush due by age (`xtrader.connector.Connector`, `behind`)."""
    sink, book, held = held_book()
    outputs = Outputs("binance/c0/r0", [sink], book, max_inflight=4, book_window_rows=1_000)
    batch = trade_and_l2([(1.0, 1.0)])
    assert not outputs.behind(1)
    for n in range(1, 4):  # the sink answers at once; the book holds every call
        await asyncio.wait_for(outputs.dispatch(batch), 1)
        # one of the two downstreams (the book, the sink) is behind
        assert outputs.book_window.gate.pending == n and outputs.behind(n) == 0.5 and not outputs.behind(n + 1)
    held.ack_all()
    await asyncio.wait_for(outputs.drain(), 1)
    assert not outputs.behind(1)


def test_the_book_and_arbiter_actors_have_a_slot_for_every_call_their_producers_may_keep_open() -> None:
    """A call queued inside Ray (no slot free) can be overtaken for seconds: a false gap (test_book_backlog.py)."""
    from actors import OPTIONS, PRODUCER_CALLS, PRODUCERS

    outputs = Outputs("c", [], book=object(), book_window_rows=1_000)
    assert outputs.book_window.gate.window.max_inflight == PRODUCER_CALLS
    for name in ("OrderBookActor", "ArbiterActor"):
        assert OPTIONS[name]["max_concurrency"] > PRODUCERS * PRODUCER_CALLS
