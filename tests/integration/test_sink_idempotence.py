"""Issue 10, defect 6: idempotence survives restarts, of the sink and of its producers. Real files, real crashes.

A sink keeps, per producer source, which batch_seqs it stored; that state must outlive the sink (durable
with the data, even after the write-ahead log was truncated), and a producer restarted by Ray must send a
retried call's output under the same (source_id, batch_seq) as before its death.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from actors.arbiter import ArbiterActor
from actors.book import OrderBookActor
from tests.integration import sink_batches
from tests.integration.ilp_receiver import IlpReceiver
from tests.integration.test_sink_durability import batch, expected_ids, trade_ids
from tests.unit.test_services import l2_batch, trades_batch
from xtrader.sinkfront import SinkFront
from xtrader.sinks.parquet import ParquetSink
from xtrader.sinks.questdb import QuestDBSink


def parquet(root: Path) -> ParquetSink:
    return ParquetSink(root, "w1", max_rows=3_000, row_group_rows=1_000, fsync=False)


def log_records(root: Path) -> int:
    from xtrader.sinks.wal import read_segment

    return sum(len(read_segment(path)[0]) for path in (root / ".wal" / "w1").glob("*.wal"))


# ---------------------------------------------------------------------------------------------------------
# the sink's seen state outlives the sink


def test_a_restarted_sink_answers_a_retry_of_an_acknowledged_batch_as_a_repeat_after_its_log_was_truncated(
    tmp_path: Path,
) -> None:
    sink = parquet(tmp_path)
    front = SinkFront(sink, "parquet")
    for n in range(6):
        assert front.write("arbiter:s|c0~1", n, {"trades": batch(n)})
    front.close()
    assert log_records(tmp_path) == 0  # every row is in a published file: the log was truncated

    again = SinkFront(parquet(tmp_path), "parquet")
    assert not again.write("arbiter:s|c0~1", 3, {"trades": batch(3)})  # a retry from before the restart
    assert again.write("arbiter:s|c0~1", 6, {"trades": batch(6)})  # new data of the same source
    again.close()
    assert trade_ids(tmp_path) == expected_ids(7)  # each row once


CRASH = """
import os, signal, sys
from tests.integration.test_sink_durability import batch
from xtrader.sinkfront import SinkFront
from xtrader.sinks.parquet import ParquetSink
root = sys.argv[1]
front = SinkFront(ParquetSink(root, "w1", max_rows=3_000, row_group_rows=1_000), "parquet")
for n in range(6):
    assert front.write("arbiter:s|c0~1", n, {"trades": batch(n)})
front.flush()  # published: the log is truncated
for n in range(6, 8):
    assert front.write("arbiter:s|c0~1", n, {"trades": batch(n)})
print("acknowledged", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_after_a_crash_retries_of_published_and_of_logged_batches_are_repeats(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH), str(tmp_path)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == -9 and "acknowledged" in result.stdout, result.stderr
    assert log_records(tmp_path) == 2  # batches 0-5 only in published files, 6 and 7 in the log

    restarted = ParquetSink(tmp_path, "w1", max_rows=3_000, row_group_rows=1_000)
    front = SinkFront(restarted, "parquet")
    repeats = [front.write("arbiter:s|c0~1", n, {"trades": batch(n)}) for n in (0, 5, 7)]
    assert repeats == [False, False, False]
    assert front.write("arbiter:s|c0~1", 8, {"trades": batch(8)})
    front.close()
    assert trade_ids(tmp_path) == expected_ids(9)


def test_a_restarted_questdb_sink_answers_a_retry_as_a_repeat(tmp_path: Path) -> None:
    with IlpReceiver() as receiver:
        conf = f"http::addr=127.0.0.1:{receiver.port};"
        front = SinkFront(QuestDBSink(conf, tmp_path, fsync=False), "questdb")
        for n in range(3):
            assert front.write("book:s|c0~1", n, {"trades": sink_batches.trades(rows=5, first_id=10 * n)})
        front.close()

        again = SinkFront(QuestDBSink(conf, tmp_path, fsync=False), "questdb")
        assert not again.write("book:s|c0~1", 1, {"trades": sink_batches.trades(rows=5, first_id=10)})
        assert again.write("book:s|c0~1", 3, {"trades": sink_batches.trades(rows=5, first_id=30)})
        again.close()
        ids = Counter(row.fields["trade_id"] for row in receiver.table("trades"))
        assert ids == Counter(str(10 * n + i) for n in range(4) for i in range(5))


# ---------------------------------------------------------------------------------------------------------
# restarted producers: the arbiter and the order-book actor


class SinkHandle:
    """A SinkActor handle without Ray: `write.remote(...)` runs the real front now and returns its ack."""

    def __init__(self, front: SinkFront) -> None:
        self.front = front
        self.write = self
        self.stats = self
        self.keys: list[tuple[str, int]] = []

    def remote(self, *args: Any) -> Any:
        if args and isinstance(args[0], str):
            self.keys.append((args[0], args[1]))
            result: Any = self.front.write(*args)
        else:
            result = {}
        future = asyncio.get_running_loop().create_future()
        future.set_result(result)
        return future


def trades_of(first: int, rows: int = 2) -> Any:
    return trades_batch("binance", [("BTCUSDT", str(first + i)) for i in range(rows)])


def stored_trades(root: Path) -> Counter[tuple[str, str]]:
    return trade_ids(root)


async def test_a_retried_on_batch_after_the_arbiter_restarted_is_not_written_twice(tmp_path: Path) -> None:
    sink = SinkHandle(SinkFront(parquet(tmp_path), "parquet"))
    arbiter = ArbiterActor("binance/s0", "binance", [sink])
    await arbiter.on_batch("binance/s0/c0", trades_of(0), "binance/s0/c0~e1", 0)
    await arbiter.on_batch("binance/s0/c0", trades_of(2), "binance/s0/c0~e1", 1)
    await arbiter.drain()
    first_keys = list(sink.keys)

    restarted = ArbiterActor("binance/s0", "binance", [sink])  # Ray restarts the actor and retries call 1
    await restarted.on_batch("binance/s0/c0", trades_of(2), "binance/s0/c0~e1", 1)
    await restarted.on_batch("binance/s0/c0", trades_of(4), "binance/s0/c0~e1", 2)  # new data
    await restarted.drain()
    assert sink.keys[len(first_keys)] == first_keys[1]  # the same (source_id, batch_seq) as before the restart
    sink.front.close()
    assert stored_trades(tmp_path) == Counter(("binance", str(i)) for i in range(6))  # each trade once


async def test_a_retried_on_batch_after_the_book_actor_restarted_is_not_written_twice(tmp_path: Path) -> None:
    sink = SinkHandle(SinkFront(parquet(tmp_path), "parquet"))

    def message(seq: int) -> Any:
        return l2_batch("okx", [("BTC-USDT", seq, seq - 1, None, seq == 1, [(10.0 - seq, 1.0)], [(20.0 + seq, 1.0)])])

    book = OrderBookActor("okx/s0", "okx", [sink], snapshot_interval_s=0)
    for seq in (1, 2):
        await book.on_batch("okx/s0/c0", message(seq), False, "okx/s0/c0~e1", seq - 1)
    await book.outputs.drain()
    restarted = OrderBookActor("okx/s0", "okx", [sink], snapshot_interval_s=0)
    await restarted.on_batch("okx/s0/c0", message(2), False, "okx/s0/c0~e1", 1)  # Ray's retry of call 1
    await restarted.on_batch("okx/s0/c0", message(3), False, "okx/s0/c0~e1", 2)
    await restarted.inorder.flush()
    await restarted.outputs.drain()
    sink.front.close()
    l2 = pa.concat_tables([_read(p) for p in sorted((tmp_path / "l2").rglob("*.parquet"))])
    seqs = Counter(l2.column("seq").to_pylist())
    assert seqs == {1: 2, 2: 2, 3: 2}, seqs  # two rows (a bid and an ask) per message, each message once


def _read(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["seq"])


class BookHandle:
    """An OrderBookActor handle without Ray: `on_batch.remote(...)` runs the actor's coroutine as a task."""

    def __init__(self, book: OrderBookActor) -> None:
        self.book = book
        self.on_batch = self
        self.stats = self

    def remote(self, *args: Any) -> Any:
        if not args:
            future = asyncio.get_running_loop().create_future()
            future.set_result({})
            return future
        return asyncio.ensure_future(self.book.on_batch(*args))


async def test_derived_keys_leave_no_gap_at_the_sink_where_an_input_made_no_output(tmp_path: Path) -> None:
    """Duplicates the arbiter drops, trades-only inputs the book never sees: their keys are skipped, not gaps."""
    front = SinkFront(parquet(tmp_path), "parquet")
    sink = SinkHandle(front)
    book = OrderBookActor("okx/s0", "okx", [sink], snapshot_interval_s=0)
    arbiter = ArbiterActor("okx/s0", "okx", [sink], BookHandle(book))
    for n in range(20):
        if n % 2:
            batches = l2_batch("okx", [("BTC-USDT", n, n - 1, None, n == 1, [(10.0, 1.0 + n)], [])])
        else:
            batches = trades_batch("okx", [("BTC-USDT", str(n))])
        for connection in ("c0", "c1"):  # the second copy of each batch is a duplicate: no output
            await arbiter.on_batch(f"okx/s0/{connection}", batches, f"okx/s0/{connection}#e1", n)
    await arbiter.drain()
    await book.inorder.flush()
    await book.outputs.drain()
    await arbiter.on_batch("okx/s0/c0", trades_batch("okx", [("BTC-USDT", "x")]), "okx/s0/c0#e1", 20)
    await arbiter.drain()
    await book.outputs.drain()
    front.close()
    derived = {source: seen for source, seen in front.seen.sources.items() if "|" in source}
    assert derived, front.seen.sources
    gaps = {source: sorted(seen.above) for source, seen in derived.items() if seen.above}
    assert not gaps, gaps
    assert front.seen["arbiter:okx/s0|okx/s0/c0#e1"].floor == 20
    assert front.seen["arbiter:okx/s0|okx/s0/c1#e1"].floor == 19
