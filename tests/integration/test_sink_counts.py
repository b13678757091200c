"""Issue 10, sink restart accounting: a restarted sink's counts (`rows`, `origins`) are those of everything durable.

The summary's `written` is the sink's `rows`; a sink that counts from zero after a restart undercounts
what its predecessor stored. The counts are kept with the seen state, so they are exactly the rows of the
batches the sink would answer as repeats: the write-ahead log's (Parquet) or the saved state's (QuestDB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.integration import sink_batches
from tests.integration.ilp_receiver import IlpReceiver
from tests.integration.test_sink_durability import ROWS_PER_BATCH, batch, expected_ids, trade_ids
from xtrader.sinkfront import SinkFront
from xtrader.sinks.parquet import ParquetSink
from xtrader.sinks.questdb import QuestDBSink

CRASH = """
import os, signal, sys
from tests.integration.test_sink_durability import batch
from xtrader.sinkfront import SinkFront
from xtrader.sinks.parquet import ParquetSink
root = sys.argv[1]
front = SinkFront(ParquetSink(root, "w1", max_rows=3_000, row_group_rows=1_000), "parquet")
for n in range(6):
    assert front.write("arbiter:s|c0~1", n, {"trades": batch(n)})
front.flush()  # published: the log is truncated (its keys and counts saved first)
assert front.write("arbiter:s|c0~1", 6, {"trades": batch(6)})
assert front.write("book:s|c0~1", 0, {"trades": batch(7)}, origin="rest")
print("acknowledged", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def parquet(root: Path) -> ParquetSink:
    return ParquetSink(root, "w1", max_rows=3_000, row_group_rows=1_000)


def test_a_parquet_sink_restarted_after_a_crash_counts_every_row_its_predecessor_acknowledged(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH), str(tmp_path)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == -9 and "acknowledged" in result.stdout, result.stderr
    n = ROWS_PER_BATCH  # batch(k): binance for even k, okx for odd k

    front = SinkFront(parquet(tmp_path), "parquet")
    stats = front.stats()
    assert stats["rows"] == {"trades": {"binance": 4 * n, "okx": 4 * n}}, stats["rows"]
    assert stats["origins"] == {"rest": {"trades": {"okx": n}}}, stats["origins"]
    assert not front.write("arbiter:s|c0~1", 6, {"trades": batch(6)})  # a repeat is not counted again
    assert front.write("arbiter:s|c0~1", 7, {"trades": batch(8)})
    front.close()
    assert trade_ids(tmp_path) == expected_ids(9)

    again = SinkFront(parquet(tmp_path), "parquet")  # a clean restart: everything published, the log truncated
    assert again.stats()["rows"] == {"trades": {"binance": 5 * n, "okx": 4 * n}}
    assert again.stats()["origins"] == {"rest": {"trades": {"okx": n}}}
    again.close()


def test_a_restarted_questdb_sink_counts_what_its_predecessor_stored(tmp_path: Path) -> None:
    with IlpReceiver() as receiver:
        conf = f"http::addr=127.0.0.1:{receiver.port};"
        front = SinkFront(QuestDBSink(conf, tmp_path, fsync=False), "questdb", owner="capture-1")
        for n in range(3):
            assert front.write("book:s|c0~1", n, {"trades": sink_batches.trades(rows=5, first_id=10 * n)})
        front.write("book:s|c0~1", 3, {"trades": sink_batches.trades(rows=4, first_id=30)}, origin="rest")
        front.close()

        again = SinkFront(QuestDBSink(conf, tmp_path, fsync=False), "questdb", owner="capture-1")
        assert again.stats()["rows"] == {"trades": {"binance": 19}}
        assert again.stats()["origins"] == {"rest": {"trades": {"binance": 4}}}
        assert not again.write("book:s|c0~1", 1, {"trades": sink_batches.trades(rows=5, first_id=10)})
        assert again.stats()["rows"] == {"trades": {"binance": 19}}
        again.close()

        later = SinkFront(QuestDBSink(conf, tmp_path, fsync=False), "questdb", owner="capture-2")
        assert later.stats()["rows"] == {}  # another capture on the same spill folder counts its own rows
        assert not later.write("book:s|c0~1", 2, {"trades": sink_batches.trades(rows=5, first_id=20)})  # keys kept
        later.close()


def test_a_restarted_parquet_writer_counts_the_files_its_predecessor_published(tmp_path: Path) -> None:
    """The summary's `written` is the writer's count of rows in published files: a restarted sink counted only
    its own (the 10-minute soak's summary said 36,523 binance trades written where all 235,517 were on disk)."""
    n = ROWS_PER_BATCH
    front = SinkFront(parquet(tmp_path), "parquet")
    for k in range(4):
        assert front.write("arbiter:s|c0~1", k, {"trades": batch(k)})
    front.close()  # everything in published files, the log truncated
    assert front.writer.stats()["rows"] == {"trades": {"binance": 2 * n, "okx": 2 * n}}

    again = SinkFront(parquet(tmp_path), "parquet")  # the same writer id: the same sink, restarted
    assert again.write("arbiter:s|c0~1", 4, {"trades": batch(4)})
    again.close()
    assert again.writer.stats()["rows"] == {"trades": {"binance": 3 * n, "okx": 2 * n}}
    assert len(trade_ids(tmp_path)) == 5 * n

    other = SinkFront(ParquetSink(tmp_path, "w2", max_rows=3_000, row_group_rows=1_000), "parquet")
    assert other.writer.stats()["rows"] == {}  # another writer's files are not its own
    other.close()
