"""A restarted ArbiterActor rebuilds its first-arrival state from what downstream already took (issue 10).

Ray restarts an actor by running its constructor again: the new arbiter starts with no keys. Connection
c1 lags c0; the arbiter passes c0's copies on, dies, and the restarted arbiter then gets c1's late copies
of the same updates. Without a rebuild they win again (under c1's derived keys, new to the sinks) and are
stored twice. Real actor classes, a real Parquet sink and order-book actor, in one process; the "restart"
is what Ray does: the constructor again, with the same arguments.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from actors.arbiter import ArbiterActor
from actors.book import OrderBookActor
from actors.sink import SinkActor
from tests.integration.local_actors import parquet_sink
from tests.unit.test_services import l2_batch, trades_batch
from xtrader.batch import Batches

STREAM, VENUE, SYMBOL = "okx/s0", "okx", "BTC-USDT"
C0, C1 = f"{STREAM}/c0", f"{STREAM}/c1"
S0, S1 = f"{C0}#e1", f"{C1}#e1"  # the connectors' source ids (their incarnations outlive the arbiter's)


class Inline:
    """An actor handle without Ray: `handle.method.remote(...)` runs the method now (a coroutine as a task)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.actor, name)

        class Remote:
            @staticmethod
            def remote(*args: Any, **kwargs: Any) -> Any:
                if inspect.iscoroutinefunction(method):
                    return asyncio.ensure_future(method(*args, **kwargs))
                future = asyncio.get_running_loop().create_future()
                future.set_result(method(*args, **kwargs))
                return future

        return Remote()


def trades(first: int, rows: int) -> Batches:
    return trades_batch(VENUE, [(SYMBOL, str(first + i)) for i in range(rows)])


def l2(first: int, last: int) -> Batches:
    """OKX messages first..last, one bid and one ask each (message 1 is the book's snapshot)."""
    return l2_batch(
        VENUE,
        [(SYMBOL, s, s - 1, None, s == 1, [(100.0 - s, 1.0)], [(100.0 + s, 1.0)]) for s in range(first, last + 1)],
    )


def arbiter(sink: Inline, book: Inline) -> ArbiterActor:
    return ArbiterActor(STREAM, VENUE, [sink], book, inputs=[C0, C1])


async def settle(arb: ArbiterActor, book: OrderBookActor) -> None:
    await arb.drain()
    await book.inorder.flush()
    await book.outputs.drain()


def stored(root: Path, table: str, column: str) -> Counter[Any]:
    files = sorted((root / table).rglob("*.parquet"))
    return Counter(v for f in files for v in pq.read_table(f, columns=[column]).column(column).to_pylist())


async def test_a_restarted_arbiter_does_not_pass_on_late_copies_of_what_it_passed_on_before(tmp_path: Path) -> None:
    sink_actor: SinkActor = parquet_sink(tmp_path)
    sink = Inline(sink_actor)
    book_actor = OrderBookActor(STREAM, VENUE, [sink], snapshot_interval_s=0)
    book = Inline(book_actor)

    first = arbiter(sink, book)
    await first.on_batch(C0, trades(0, 5), S0, 0)  # c0 is ahead: its copies win
    await first.on_batch(C0, l2(1, 3), S0, 1)
    await first.on_batch(C1, trades(0, 2), S1, 0)  # c1's first copies arrive (duplicates)
    await settle(first, book_actor)
    assert first.arbiter.stats.kept_rows == {"trades": 5, "l2": 6}

    restarted = arbiter(sink, book)  # killed; Ray runs the constructor again; c1's late copies come next
    await restarted.on_batch(C1, trades(2, 3), S1, 1)  # 2..4: c0's won before the restart
    await restarted.on_batch(C1, l2(2, 4), S1, 2)  # 2, 3 as well; 4 is new
    await restarted.on_batch(C1, trades(5, 2), S1, 3)  # new
    await restarted.on_batch(C0, trades(5, 3), S0, 2)  # 5, 6 are c1's now; 7 is new
    await restarted.on_batch(C0, l2(4, 5), S0, 3)
    await settle(restarted, book_actor)
    sink_actor.close()

    trade_ids = stored(tmp_path, "trades", "trade_id")
    assert trade_ids == Counter(str(i) for i in range(8)), trade_ids  # every trade once
    seqs = stored(tmp_path, "l2", "seq")
    assert seqs == Counter({s: 2 for s in range(1, 6)}), seqs  # every message once (a bid and an ask row)
    assert restarted.stats()["rebuilt"] == {"trades": 5, "l2": 3}  # what it learned from downstream


async def test_what_a_killed_arbiter_chose_but_never_sent_is_not_suppressed_after_the_restart(tmp_path: Path) -> None:
    """Only what downstream took counts as passed on: an update the dead arbiter had won but not sent yet
    (it died between choosing and sending) comes again, as c1's late copy and as Ray's retry of c0's call,
    and is stored once (a high-water mark of what was chosen would drop both copies: a loss)."""
    sink_actor: SinkActor = parquet_sink(tmp_path)
    sink = Inline(sink_actor)
    book_actor = OrderBookActor(STREAM, VENUE, [sink], snapshot_interval_s=0)
    book = Inline(book_actor)

    first = arbiter(sink, book)
    await first.on_batch(C0, trades(0, 5), S0, 0)
    await settle(first, book_actor)
    first.arbiter.filter(C0, trades(5, 3))  # c0's call 1: chosen, then the arbiter dies before it sends

    restarted = arbiter(sink, book)
    await restarted.on_batch(C1, trades(0, 8), S1, 0)  # c1's late copies: 0..4 stored before, 5..7 never sent
    await restarted.on_batch(C0, trades(5, 3), S0, 1)  # Ray's retry of c0's call 1
    await restarted.on_batch(C0, trades(8, 1), S0, 2)
    await settle(restarted, book_actor)
    sink_actor.close()

    trade_ids = stored(tmp_path, "trades", "trade_id")
    assert trade_ids == Counter(str(i) for i in range(9)), trade_ids  # nothing lost, nothing twice
