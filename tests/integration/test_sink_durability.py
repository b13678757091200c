"""Acknowledged means durable, and the sink defects of issue 10 (1, 2, 3, 4, 9, 10, 12): real files, real crashes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration import sink_batches
from tests.integration.ilp_receiver import IlpReceiver
from tests.integration.test_parquet_sink import published, read_pyarrow, wait_for
from xtrader.sinkfront import SinkFront
from xtrader.sinks.common import SinkError, conform
from xtrader.sinks.files import PartitionFiles
from xtrader.sinks.parquet import ParquetSink
from xtrader.sinks.spill import Spill

ROWS_PER_BATCH = 500


def trade_ids(root: Path) -> Counter[tuple[str, str]]:
    """(exchange, trade_id) of every published trade row, with multiplicity."""
    if not (root / "trades").is_dir():
        return Counter()
    table = read_pyarrow(root, "trades")
    if table.num_rows == 0:  # the directory exists, but no file was published in it yet (no schema to read)
        return Counter()
    return Counter(zip(table.column("exchange").to_pylist(), table.column("trade_id").to_pylist(), strict=True))


def ids_of(ns: Iterable[int]) -> Counter[tuple[str, str]]:
    """(exchange, trade_id) of the rows of `batch(n)` for each n, once each."""
    return Counter(
        ("binance" if n % 2 == 0 else "okx", str(n * ROWS_PER_BATCH + i)) for n in ns for i in range(ROWS_PER_BATCH)
    )


def expected_ids(batches: int) -> Counter[tuple[str, str]]:
    return ids_of(range(batches))


def batch(n: int) -> pa.RecordBatch:
    """Batch n: 500 trades of binance (even n) or okx (odd n), trade ids n*500 .. n*500+499."""
    exchange = "binance" if n % 2 == 0 else "okx"
    return sink_batches.trades(exchange, rows=ROWS_PER_BATCH, first_id=n * ROWS_PER_BATCH)


# ---------------------------------------------------------------------------------------------------------
# 1. acknowledged Parquet rows survive the sink's death

CRASH = """
import os, signal, sys
from tests.integration.test_sink_durability import batch
from xtrader.sinkfront import SinkFront
from xtrader.sinks.parquet import ParquetSink
root, batches, no_truncate, source = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
if no_truncate:  # die as if every crash came between a file's publication and the log's truncation
    ParquetSink._truncate_wal = lambda self: None
sink = ParquetSink(root, "w1", max_rows=3_000, row_group_rows=1_000)
front = SinkFront(sink, "parquet")
for n in range(batches):
    assert front.write(source, n, {"trades": batch(n)})
print("acknowledged", batches, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def crash_after_acknowledging(root: Path, batches: int, no_truncate: bool = False, source: str = "producer#1") -> None:
    """Run a sink in a subprocess, acknowledge `batches` batches of `source`, SIGKILL it."""
    flag = "1" if no_truncate else "0"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH), str(root), str(batches), flag, source],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == -9, result.stderr
    assert f"acknowledged {batches}" in result.stdout


@pytest.mark.parametrize("no_truncate", [False, True], ids=["truncated", "log-never-truncated"])
def test_acknowledged_rows_survive_the_sinks_death_exactly_once(tmp_path: Path, no_truncate: bool) -> None:
    crash_after_acknowledging(tmp_path, 20, no_truncate)  # 10,000 rows; some files published, some not
    assert trade_ids(tmp_path) != expected_ids(20)  # the crash left rows unpublished

    restarted = ParquetSink(tmp_path, "w1", max_rows=3_000, row_group_rows=1_000)
    front = SinkFront(restarted, "parquet")
    restarted.flush()
    assert trade_ids(tmp_path) == expected_ids(20)  # every acknowledged row, exactly once
    assert not front.write("producer#1", 19, {"trades": batch(19)})  # a retry of an acknowledged batch: a repeat
    restarted.close()
    assert trade_ids(tmp_path) == expected_ids(20)
    assert restarted.stats()["replayed_rows"] > 0


def test_a_second_crash_during_replay_still_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    crash_after_acknowledging(tmp_path, 13)
    crash_after_acknowledging(tmp_path, 20, source="producer#2")  # replays the first log, then 20 more batches
    sink = ParquetSink(tmp_path, "w1", max_rows=3_000, row_group_rows=1_000)
    sink.close()
    assert trade_ids(tmp_path) == expected_ids(13) + expected_ids(20)


def test_a_clean_close_leaves_an_empty_log(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, "w1", max_rows=3_000, row_group_rows=1_000, fsync=False)
    for n in range(7):
        sink.write_tables({"trades": batch(n)}, "p", n)
    sink.close()
    assert sink.stats()["wal_bytes"] == 0
    assert trade_ids(tmp_path) == expected_ids(7)
    again = ParquetSink(tmp_path, "w1", fsync=False)
    again.close()
    assert again.stats()["replayed_rows"] == 0
    assert trade_ids(tmp_path) == expected_ids(7)


def test_the_log_is_bounded_by_publishing_early(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, "w1", fsync=False, wal_max_bytes=200_000)  # files would stay open for 60 s
    for n in range(40):
        sink.write_tables({"trades": batch(n)}, "p", n)
    wait_for(lambda: sink.stats()["files"] > 0 and sink.stats()["wal_bytes"] < 400_000)
    sink.close()
    assert trade_ids(tmp_path) == expected_ids(40)


# ---------------------------------------------------------------------------------------------------------
# 2. a batch is recorded seen only once stored; a SinkError is retried


class FullDisk:
    """Makes Parquet's write_table fail with ENOSPC `failures` times (pyarrow's own writer, patched)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
        self.failures = failures
        self.lock = threading.Lock()
        real = pq.ParquetWriter.write_table

        def write_table(writer: pq.ParquetWriter, table: pa.Table, *args: Any, **kwargs: Any) -> None:
            with self.lock:
                if self.failures:
                    self.failures -= 1
                    raise OSError(errno.ENOSPC, "No space left on device")
            real(writer, table, *args, **kwargs)

        monkeypatch.setattr(pq.ParquetWriter, "write_table", write_table)


def close(sink: ParquetSink) -> None:
    """Close, again after a write error reported by close() (the failed rows are kept for it)."""
    for _attempt in range(5):
        try:
            sink.close()
            return
        except SinkError:
            continue
    raise AssertionError("close() kept failing")


def test_a_full_disk_loses_no_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = FullDisk(monkeypatch, failures=0)
    sink = ParquetSink(tmp_path, "w1", row_group_rows=500, fsync=False)
    front = SinkFront(sink, "parquet")
    for n in range(300):
        if n == 100:
            disk.failures = 3  # the disk fills up; it is freed after three failed writes
        for _attempt in range(3):  # a producer retrying a failed call
            try:
                front.write("producer#1", n, {"trades": batch(n)})
                break
            except SinkError:
                continue
    close(sink)
    assert disk.failures == 0
    assert trade_ids(tmp_path) == expected_ids(300)


class PerTableWriter:
    """A writer taking one table at a time (like QuestDBSink), over a real ParquetSink; the disk fills once."""

    def __init__(self, sink: ParquetSink) -> None:
        self.sink = sink
        self.fail_on: str | None = None

    def write(self, table: str, batch: pa.RecordBatch) -> None:
        if table == self.fail_on:
            self.fail_on = None
            raise SinkError("No space left on device")
        self.sink.write(table, batch)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()


def test_a_batch_of_several_tables_is_retried_without_duplicating_the_stored_ones(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, "w1", fsync=False)
    writer = PerTableWriter(sink)
    front = SinkFront(writer, "parquet")
    tables = {"trades": batch(0), "bbo": sink_batches.bbo()}
    writer.fail_on = "bbo"
    for _attempt in range(3):  # a producer retrying a failed call
        try:
            front.write("producer#1", 0, tables)
            break
        except SinkError:
            continue
    assert not front.write("producer#1", 0, tables)  # stored: now a repeat
    sink.close()
    assert trade_ids(tmp_path) == expected_ids(1)
    assert read_pyarrow(tmp_path, "bbo").num_rows == 3
    assert front.stats()["rows"]["trades"] == {"binance": ROWS_PER_BATCH}


# ---------------------------------------------------------------------------------------------------------
# 3. rows held after a write error are bounded


def test_rows_held_after_a_write_error_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the log: beyond buffer_bytes, batches are taken into the log only (none refused, memory bounded)."""
    disk = FullDisk(monkeypatch, failures=10**9)
    sink = ParquetSink(tmp_path, "w1", row_group_rows=100, buffer_bytes=100_000, fsync=False)
    for n in range(300):
        try:
            sink.write("trades", batch(n))
        except SinkError:  # the writer's failure, reported once: this batch was not taken, the retry takes it
            sink.write("trades", batch(n))
        wait_for(lambda: sink.stats()["queue_bytes"] == 0)
    stats = sink.stats()
    assert stats["pending_rows"] <= 10 * ROWS_PER_BATCH, f"{stats['pending_rows']} rows held behind a failing disk"
    assert stats["log_only_batches"] > 250 and stats["failing"] is not None
    disk.failures = 0
    wait_for(lambda: not sink.stats()["pending_rows"] and sink.failing is None, timeout_s=20)
    sink.close()
    assert trade_ids(tmp_path) == ids_of(range(300))


def test_rows_held_after_a_write_error_are_bounded_without_a_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk(monkeypatch, failures=10**9)
    sink = ParquetSink(tmp_path, "w1", row_group_rows=100, buffer_bytes=100_000, fsync=False, wal=False)
    accepted, refusals = [], []
    for n in range(300):
        try:
            sink.write("trades", batch(n))
            accepted.append(n)
        except SinkError as exc:
            refusals.append(str(exc))
        wait_for(lambda: sink.stats()["queue_bytes"] == 0)
    stats = sink.stats()
    assert stats["pending_rows"] <= 10 * ROWS_PER_BATCH, f"{stats['pending_rows']} rows held behind a failing disk"
    assert any("no more taken until a write succeeds" in message for message in refusals)
    disk.failures = 0
    wait_for(lambda: not sink.stats()["pending_rows"], timeout_s=10)
    sink.close()
    assert trade_ids(tmp_path) == ids_of(accepted)


# ---------------------------------------------------------------------------------------------------------
# 4. spill files of l2 are replayed after a restart


def test_spilled_l2_batches_survive_a_restart(tmp_path: Path) -> None:
    spill = Spill(tmp_path, fsync=False)
    spill.append("l2", conform("l2", sink_batches.l2()))
    spill.append("trades", conform("trades", sink_batches.trades()))
    again = Spill(tmp_path, fsync=False)
    assert [entry.table for entry in again.entries()] == ["l2", "trades"]
    assert again.append("bbo", conform("bbo", sink_batches.bbo())).seq == 2  # no seq reused


# ---------------------------------------------------------------------------------------------------------
# 9. two writers on one root


def parquet_spec(root: Path, flush_interval_s: float = 1.0, row_group_rows: int = 1_000) -> Any:
    from xtrader.config import ParquetSink as ParquetConfig
    from xtrader.plan import SinkSpec

    return SinkSpec(
        id="sink/parquet",
        kind="parquet",
        config=ParquetConfig(root=str(root)),
        rotation=None,
        row_group_rows=row_group_rows,
        flush_interval_s=flush_interval_s,
        cpus=0,
    )


def test_two_sink_actors_on_one_root_do_not_clobber_each_other(tmp_path: Path) -> None:
    from actors.sink import SinkActor

    first = SinkActor(parquet_spec(tmp_path, row_group_rows=500))
    first.write("a", 0, {"trades": batch(0)})
    wait_for(lambda: first.stats()["writer"]["pending_rows"] == 0)  # in first's open temporary file
    second = SinkActor(parquet_spec(tmp_path, row_group_rows=500))
    second.write("b", 0, {"trades": batch(2)})
    first.close()
    second.close()
    assert trade_ids(tmp_path) == ids_of([0, 2])


def test_writer_ids_are_the_capture_name_and_a_unique_suffix() -> None:
    from actors.sink import writer_id

    ids = {writer_id("demo.1") for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("demo_1-") for i in ids)


# ---------------------------------------------------------------------------------------------------------
# 10. the periodic flush


def test_the_sink_actor_writes_held_rows_within_the_flush_interval(tmp_path: Path) -> None:
    from actors.sink import SinkActor

    sink = SinkActor(parquet_spec(tmp_path, flush_interval_s=0.2, row_group_rows=100_000))
    sink.write("a", 0, {"trades": batch(0)})
    wait_for(lambda: sink.stats()["writer"]["pending_rows"] == 0, timeout_s=10)  # no call but the timer's
    sink.close()


def test_the_questdb_spill_is_replayed_while_traffic_is_idle(tmp_path: Path) -> None:
    from actors.sink import SinkActor
    from xtrader.config import QuestDBSink as QuestDBConfig
    from xtrader.plan import SinkSpec

    with IlpReceiver() as receiver:
        config = QuestDBConfig(enabled=True, conf=f"http::addr=127.0.0.1:{receiver.port};", spill_dir=str(tmp_path))
        spec = SinkSpec("sink/questdb", "questdb", config, None, 1_000, 0.2, 0)
        sink = SinkActor(spec)
        receiver.stop_listening()
        sink.write("a", 0, {"trades": sink_batches.trades(rows=5)})
        assert sink.stats()["writer"]["spill_depth"] == 2  # the batch, and the sink's own "failing" events row
        receiver.start_listening()
        wait_for(lambda: len(receiver.table("trades")) == 5, timeout_s=15)  # no write, no flush: the timer
        sink.close()


# ---------------------------------------------------------------------------------------------------------
# 12. rows are counted when durable; every new folder is made durable up to the root


def test_rows_are_counted_written_only_once_their_file_is_published(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, "w1", row_group_rows=100, fsync=False)
    sink.write("trades", batch(0))
    wait_for(lambda: sink.stats()["pending_rows"] == 0 and sink.stats()["open_files"] == 1)
    assert sink.stats()["rows"] == {}  # in a row group of an unpublished file: not durable yet
    sink.flush()
    assert sink.stats()["rows"] == {"trades": {"binance": ROWS_PER_BATCH}}


def test_every_new_folder_is_fsynced_up_to_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    real = PartitionFiles._sync_directory

    def record(self: PartitionFiles, directory: Path) -> None:
        synced.append(directory)
        real(self, directory)

    monkeypatch.setattr(PartitionFiles, "_sync_directory", record)
    root = tmp_path / "data"
    root.mkdir()
    sink = ParquetSink(root, "w1", fsync=True)
    sink.write("trades", batch(0))
    sink.close()
    [path] = published(root)
    for directory in (root, root / "trades", root / "trades" / "exchange=binance", path.parent):
        assert directory in synced, f"{directory} not fsynced after a folder was created in it"
