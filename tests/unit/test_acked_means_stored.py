"""Issue 10, chaos: the arbiter's and the book's output is never lost silently, without Ray.

Root causes of the runs of trades missing with no events row (`tests/cluster/test_chaos.py`):

- the ArbiterActor and the OrderBookActor answered a call as soon as its output was *sent* to the sinks
  (the book: merely queued), so a connector's acknowledgement did not mean stored: an arbiter or book
  killed after answering lost that output, and Ray, seeing the call answered, never retried it (and the
  arbiter had already taken the rows' keys, so the other connection's copies were dropped as duplicates);
- a sink write that still failed after Ray's retries (the sink restarting again, a full disk) was only
  logged ("downstream call failed"): no retry of our own, no events row, no count.

The actors here are the real classes; their peers are stand-ins whose calls the test answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pyarrow as pa

from actors._route import Outputs
from actors.arbiter import ArbiterActor
from actors.book import OrderBookActor
from tests.unit.test_book_order import SNAPSHOT, Held
from tests.unit.test_services import l2_batch, trades_batch
from xtrader import metrics


class ActorUnavailableError(Exception):
    """Named as Ray's: what a call to an actor that is restarting fails with."""


class FlakySink:
    """A sink handle whose first `failures` writes fail as a restarting actor's do; it stores the others by key."""

    def __init__(self, failures: int = 0, name: str = "sink") -> None:
        self.failures = failures
        self.stored: dict[tuple[str, int], dict[str, pa.RecordBatch]] = {}
        self.calls: list[tuple[str, int]] = []
        self.write = self
        self.stats = self
        self.name = name

    def remote(self, *args: Any) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if len(args) < 3:  # stats
            future.set_result({})
            return future
        source, seq, tables = args[0], args[1], args[2]
        self.calls.append((source, seq))
        if self.failures:
            self.failures -= 1
            future.set_exception(ActorUnavailableError("The actor is temporarily unavailable: the actor restarted"))
            return future
        self.stored.setdefault((source, seq), tables)
        future.set_result(True)
        return future

    def rows(self, table: str) -> int:
        return sum(t[table].num_rows for t in self.stored.values() if table in t)

    def events(self) -> list[str]:
        return [d for t in self.stored.values() if "events" in t for d in t["events"].column("detail").to_pylist()]


async def test_an_arbiter_answers_a_call_only_once_the_sinks_stored_its_output() -> None:
    sink = Held("write", "stats")
    arbiter = ArbiterActor("binance", "binance", [sink], None, inputs=["binance/c0/r0"])
    call = asyncio.create_task(
        arbiter.on_batch("binance/c0/r0", trades_batch("binance", [("X", "1")]), "binance/c0/r0#1", 0)
    )
    for _ in range(100):
        if sink.calls:
            break
        await asyncio.sleep(0.01)
    [(_, ack)] = sink.take("write")
    await asyncio.sleep(0.05)
    assert not call.done(), "the arbiter answered before the sink stored the trades: killed now, they are lost"
    ack.set_result(True)
    await asyncio.wait_for(call, 5)


async def test_a_book_answers_a_call_only_once_the_sinks_stored_its_rows() -> None:
    sink = Held("write", "stats")
    book = OrderBookActor("deribit", "deribit", [sink], snapshot_interval_s=0)
    call = asyncio.create_task(book.on_batch("c0", l2_batch("deribit", [SNAPSHOT]), False, "arbiter#1", 0))
    for _ in range(100):
        if sink.calls:
            break
        await asyncio.sleep(0.01)
    writes = sink.take("write")
    assert writes, "the book sent nothing to the sink"
    await asyncio.sleep(0.05)
    assert not call.done(), "the book answered before the sink stored the l2 rows: killed now, they are lost"
    for _, ack in writes:
        ack.set_result(True)
    await asyncio.wait_for(call, 5)
    if book.ticker is not None:
        book.ticker.cancel()


async def test_a_write_failing_while_the_sink_restarts_is_sent_again_with_the_same_key() -> None:
    sink = FlakySink(failures=3)
    outputs = Outputs("arbiter:binance", [sink], sink_kinds=["parquet"])
    tables = {"trades": trades_batch("binance", [("X", "1"), ("X", "2")]).trades}
    await outputs.write(tables, key=("arbiter:binance|c0#1", 7))
    await asyncio.wait_for(outputs.drain(), 10)
    assert sink.calls == [("arbiter:binance|c0#1", 7)] * 4  # the same request each time: a repeat at the sink
    assert sink.rows("trades") == 2
    assert outputs.accounted == {}
    assert outputs.stats()["retries"] == 3 and outputs.stats()["failures"] == 0


async def test_a_write_given_up_is_accounted_with_an_events_row_naming_its_key() -> None:
    broken, working = FlakySink(failures=10**6), FlakySink()
    outputs = Outputs("book:binance", [broken, working], sink_kinds=["parquet", "questdb"], retry_s=0.3)
    tables = {"trades": trades_batch("binance", [("X", "1"), ("X", "2"), ("X", "3")]).trades}
    await outputs.write(tables, key=("book:binance|a#1", 5))
    await asyncio.wait_for(outputs.drain(), 10)
    assert working.rows("trades") == 3
    assert outputs.accounted == {("parquet", "trades", "binance"): 3}  # for the sink that never got them only
    [detail] = working.events()
    assert detail.startswith("lost: 3 trades rows (key book:binance|a#1 seq 5-5) for parquet"), detail
    stats = metrics.Stats("book:binance")
    outputs.report_accounted(stats)
    snapshot = stats.snapshot()
    assert metrics.total(snapshot, metrics.ACCOUNTED_ROWS, exchange="binance", channel="trades/parquet") == 3
    assert metrics.total(snapshot, metrics.ACCOUNTED_ROWS, channel="trades/questdb") == 0


async def test_a_connectors_given_up_write_is_its_events_row_and_is_accounted() -> None:
    noted: list[tuple[str, str]] = []
    outputs = Outputs(
        "binance/c0/r0",
        [FlakySink(failures=10**6)],
        sink_kinds=["parquet"],
        retry_s=0.2,
        on_event=lambda kind, detail: noted.append((kind, detail)),
    )
    await outputs.write({"trades": trades_batch("binance", [("X", "1")]).trades})
    await asyncio.wait_for(outputs.drain(), 10)
    assert outputs.accounted == {("parquet", "trades", "binance"): 1}
    [(kind, detail)] = noted
    assert kind == "error" and f"key {outputs.source_id} seq 0-0" in detail, detail


async def test_a_restarted_book_starts_at_the_arbiters_floor_instead_of_waiting_for_acknowledged_calls() -> None:
    """A book restarted mid-stream gets call N (Ray's retry) first: every call below the floor the arbiter
    sends was acknowledged, so the new book processes N at once instead of holding it (and the arbiter's
    window, now that a call is answered only once stored) for the reorder timeout."""
    book = OrderBookActor("deribit", "deribit", [FlakySink()], snapshot_interval_s=0)
    call = book.on_batch("c0", l2_batch("deribit", [SNAPSHOT]), False, "arbiter#1", 57, floor=57)
    await asyncio.wait_for(call, 1.0)  # the reorder timeout is 5 s
    assert book.inorder.stats()["skipped"] == 0
    if book.ticker is not None:
        book.ticker.cancel()


async def test_the_arbiter_tells_the_book_the_lowest_unacknowledged_call() -> None:
    book = Held("on_batch", "stats")
    outputs = Outputs("arbiter:deribit", [FlakySink()], book=book, sink_kinds=["parquet"])
    for n in range(3):
        await outputs.emit(l2_batch("deribit", [(("P", 11 + n, 10 + n, None, False, [(90.0, 1.0)], []))]))
    calls = book.take("on_batch")
    assert [args[-1] for args, _ in calls] == [0, 0, 0]
    calls[0][1].set_result(None)
    calls[2][1].set_result(None)
    await asyncio.sleep(0.01)
    await outputs.emit(l2_batch("deribit", [("P", 14, 13, None, False, [(90.0, 1.0)], [])]))
    [(args, ack)] = book.take("on_batch")
    assert args[-1] == 1  # 1 still unacknowledged
    calls[1][1].set_result(None)
    ack.set_result(None)
    await outputs.drain()
