"""ParquetSink: read back by pyarrow, DuckDB and Polars; rotation; atomic publication; errors; back-pressure."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tests.integration import sink_batches
from tests.integration.sink_batches import DAY
from xtrader import schema
from xtrader.sinks import files
from xtrader.sinks.common import SinkError
from xtrader.sinks.files import PartitionFiles
from xtrader.sinks.parquet import ParquetSink
from xtrader.sinks.partition import dataset


def make_sink(root: Path, **options: Any) -> ParquetSink:
    options.setdefault("fsync", False)
    return ParquetSink(root, "w1", **options)


def plain(table: pa.Table) -> pa.Table:
    return table.cast(sink_batches.plain_schema(table.schema))


def rows(table: pa.Table) -> Counter[tuple[Any, ...]]:
    """The table as a multiset of rows (file order across partitions is not defined)."""
    return Counter(tuple(record.values()) for record in plain(table).to_pylist())


def original(table: str, *batches: pa.RecordBatch) -> pa.Table:
    return pa.Table.from_batches([schema.stored(batch, table) for batch in batches])


def read_pyarrow(root: Path, table: str) -> pa.Table:
    return dataset(root, table).to_table()


def read_pyarrow_plain_hive(root: Path, table: str) -> pa.Table:
    return ds.dataset(root / table, format="parquet", partitioning="hive").to_table()


def read_duckdb(root: Path, table: str) -> pa.Table:
    query = f"select * from read_parquet('{root}/{table}/**/*.parquet', hive_partitioning=true)"
    return duckdb.sql(query).to_arrow_table()


def read_polars(root: Path, table: str) -> pa.Table:
    return pl.scan_parquet(root / table, hive_partitioning=True).collect().to_arrow()


READERS: dict[str, Callable[[Path, str], pa.Table]] = {
    "pyarrow": read_pyarrow,
    "pyarrow-plain-hive": read_pyarrow_plain_hive,
    "duckdb": read_duckdb,
    "polars": read_polars,
}


def published(root: Path) -> list[Path]:
    """Files in the table tree (not the hidden `.tmp` / `.wal` of the writers)."""
    return sorted(
        path for path in root.rglob("*") if path.is_file() and not path.relative_to(root).parts[0].startswith(".")
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[pa.RecordBatch]]]:
    """Every table, two exchanges for trades, one trades batch across midnight."""
    root = tmp_path_factory.mktemp("parquet")
    batches = {table: [batch] for table, batch in sink_batches.all_tables().items()}
    batches["trades"].append(sink_batches.trades("okx", rows=4, first_id=100))
    batches["trades"].append(sink_batches.trades("binance", rows=6, start_ns=DAY - 3_000_000, first_id=200))
    sink = make_sink(root, row_group_rows=3, max_rows=5)
    for table, table_batches in batches.items():
        for batch in table_batches:
            sink.write(table, batch)
    sink.close()
    return root, batches


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("table", list(schema.TABLES))
def test_every_reader_gets_the_original_columns_and_values(
    written: tuple[Path, dict[str, list[pa.RecordBatch]]], reader: str, table: str
) -> None:
    root, batches = written
    expected = original(table, *batches[table])

    read = READERS[reader](root, table)

    assert read.column_names == [*schema.TABLES[table].names, "date"]
    assert rows(read.drop_columns(["date"])) == rows(expected)
    assert read.num_rows == expected.num_rows  # no duplicates
    # each row sits in the partition of its own UTC date
    times = plain(read).column("exchange_ts" if "exchange_ts" in read.column_names else "ts").to_pylist()
    receive = plain(read).column("receive_ts").to_pylist() if "receive_ts" in read.column_names else times
    for when, fallback, date in zip(times, receive, plain(read).column("date").to_pylist(), strict=True):
        assert date == str(pa.scalar(when if when is not None else fallback, pa.timestamp("ns")).as_py().date())


def test_files_keep_the_arrow_types_and_exchange_as_string(written: tuple[Path, Any]) -> None:
    root, _ = written
    (file,) = (root / "bbo").rglob("*.parquet")
    stored = pq.read_schema(file)
    assert stored.field("exchange").type == pa.string()
    assert stored.field("symbol").type == schema.SYMBOL
    assert stored.field("exchange_ts").type == schema.TS
    assert pq.ParquetFile(file).metadata.row_group(0).column(0).compression == "ZSTD"


@pytest.mark.parametrize("table", list(schema.TABLES))
def test_only_few_valued_columns_and_prices_are_dictionary_encoded(written: tuple[Path, Any], table: str) -> None:
    """Times, sequence numbers, ids and sizes are nearly all distinct: a dictionary page for them costs CPU and
    bytes (Parquet's default encodes every column so); symbols, sides and prices repeat."""
    root, _ = written
    for file in (root / table).rglob("*.parquet"):
        meta = pq.ParquetFile(file).metadata
        for group in range(meta.num_row_groups):
            for index in range(meta.num_columns):
                chunk = meta.row_group(group).column(index)
                name = chunk.path_in_schema
                dictionary = chunk.has_dictionary_page
                few_valued = name in ("exchange", "symbol", "side", "kind") or name.endswith("price")
                assert dictionary == few_valued, f"{file.name} {name}: dictionary page {dictionary}"


def test_layout_is_hive_by_table_exchange_date(written: tuple[Path, Any]) -> None:
    root, _ = written
    names = {str(path.relative_to(root)) for path in published(root)}
    assert "trades/exchange=binance/date=2024-01-01/part-w1-0.parquet" in names
    assert "trades/exchange=binance/date=2024-01-02/part-w1-0.parquet" in names
    assert "trades/exchange=okx/date=2024-01-02/part-w1-0.parquet" in names
    assert "book_snapshots/exchange=okx/date=2024-01-02/part-w1-0.parquet" in names
    assert not (root / ".tmp").exists()  # nothing temporary left after close
    assert all(path.name.startswith("part-w1-") and path.suffix == ".parquet" for path in published(root))


def test_a_batch_across_midnight_is_split_by_date(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    batch = sink_batches.trades(rows=10, start_ns=DAY - 5_000_000)  # 5 rows before midnight, 5 after
    bbo = sink_batches.bbo(start_ns=DAY - 2_000)  # the third quote has no exchange time: receive_ts decides
    sink.write("trades", batch)
    sink.write("bbo", bbo)
    sink.close()

    per_date = {
        path.parent.name: pq.read_table(path).column("trade_id").to_pylist()
        for path in (tmp_path / "trades").rglob("*.parquet")
    }
    assert per_date == {"date=2024-01-01": ["0", "1", "2", "3", "4"], "date=2024-01-02": ["5", "6", "7", "8", "9"]}
    bbo_dates = {path.parent.name: pq.read_table(path).num_rows for path in (tmp_path / "bbo").rglob("*.parquet")}
    assert bbo_dates == {"date=2024-01-01": 2, "date=2024-01-02": 1}


def test_rotation_by_rows(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, max_rows=10, row_group_rows=4)
    for n in range(7):
        sink.write("trades", sink_batches.trades(rows=5, first_id=5 * n))
    sink.close()

    files = published(tmp_path)
    assert [pq.ParquetFile(f).metadata.num_rows for f in files] == [10, 10, 10, 5]
    assert all(
        pq.ParquetFile(f).metadata.row_group(i).num_rows <= 4
        for f in files
        for i in range(pq.ParquetFile(f).metadata.num_row_groups)
    )
    assert sorted(int(v) for v in dataset(tmp_path, "trades").to_table().column("trade_id").to_pylist()) == list(
        range(35)
    )


def test_rotation_by_bytes(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, max_bytes=6_000, row_group_rows=50)
    for n in range(12):
        sink.write("trades", sink_batches.trades(rows=50, first_id=50 * n))
    sink.close()

    files = published(tmp_path)
    assert len(files) >= 3
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == 600
    assert sink.stats()["files"] == len(files)
    assert sink.stats()["bytes"] == sum(f.stat().st_size for f in files)


def test_rotation_by_seconds_publishes_without_flush(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, max_seconds=0.2)
    sink.write("trades", sink_batches.trades(rows=3))
    wait_for(lambda: len(published(tmp_path)) == 1)
    sink.write("trades", sink_batches.trades(rows=3, first_id=3))
    wait_for(lambda: len(published(tmp_path)) == 2)
    sink.close()

    assert dataset(tmp_path, "trades").count_rows() == 6


def test_flush_makes_everything_written_so_far_readable(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)  # realtime defaults: nothing would be published for a minute
    sink.write("trades", sink_batches.trades(rows=3))
    assert published(tmp_path) == []

    sink.flush()

    assert dataset(tmp_path, "trades").count_rows() == 3
    assert sink.stats()["open_files"] == 0
    sink.close()


def test_archival_mode_writes_large_row_groups(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, mode="archival")
    for n in range(20):
        sink.write("trades", sink_batches.trades(rows=100, first_id=100 * n))
    sink.close()

    (file,) = published(tmp_path)
    metadata = pq.ParquetFile(file).metadata
    assert (metadata.num_row_groups, metadata.num_rows) == (1, 2000)


def test_readers_during_writing_never_see_a_torn_file(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, max_rows=20, row_group_rows=10)
    errors: list[BaseException] = []
    counts: list[int] = []
    stop = threading.Event()

    def read_continuously() -> None:
        while not stop.is_set():
            try:
                counts.append(ds.dataset(tmp_path / "trades", format="parquet", partitioning="hive").count_rows())
                duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/trades/**/*.parquet')").fetchall()
                pl.scan_parquet(tmp_path / "trades", hive_partitioning=True).select(pl.len()).collect()
            except FileNotFoundError:
                continue  # the table directory does not exist before the first file
            except BaseException as exc:
                errors.append(exc)
                return

    reader = threading.Thread(target=read_continuously)
    reader.start()
    for n in range(100):
        sink.write("trades", sink_batches.trades(rows=7, first_id=7 * n))
        if n % 10 == 0:
            sink.flush()
    sink.close()
    stop.set()
    reader.join()

    assert errors == []
    assert counts == sorted(counts)  # only whole files appear, so the count never goes back
    assert dataset(tmp_path, "trades").count_rows() == 700


def test_a_file_being_written_is_not_in_the_table_tree(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, row_group_rows=4)  # realtime defaults: the file stays open for a minute
    sink.write("trades", sink_batches.trades(rows=10))
    # two row groups are in the open file, two rows wait for the next one (rows count as written once published)
    wait_for(
        lambda: (s := sink.stats())["open_files"] == 1 and s["pending_rows"] == 2 and s["flush_p50_ms"] is not None
    )
    assert sink.stats()["rows"] == {}
    assert published(tmp_path) == []
    temporary = sorted((tmp_path / ".tmp").rglob("*.parquet.tmp"))
    assert len(temporary) == 1  # it is written under .tmp
    sink.close()
    (file,) = published(tmp_path)
    assert pq.ParquetFile(file).metadata.num_rows == 10


def test_a_file_appears_only_with_its_footer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pause at each publication and look as a reader would: before it and after it, every file is whole."""
    seen: list[str] = []
    publications: list[int] = []
    real_publish = files.publish_file

    def readable(path: Path) -> int | None:
        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:  # no footer (yet)
            return None

    def look(moment: str) -> None:
        for path in published(tmp_path):
            if readable(path) is None:
                seen.append(f"{moment}: {path.name} has no footer")

    def paused_publish(temporary: Path, final: Path) -> None:
        look("before")
        if final.exists():
            seen.append(f"before: {final.name} is visible before its publication")
        rows = readable(temporary)
        if not rows:
            seen.append(f"before: {temporary.name} is not complete when published ({rows} rows)")
        real_publish(temporary, final)
        look("after")
        if readable(final) != rows:
            seen.append(f"after: {final.name} holds {readable(final)} rows, not {rows}")
        publications.append(rows or 0)

    monkeypatch.setattr(files, "publish_file", paused_publish)
    sink = make_sink(tmp_path, max_rows=10, row_group_rows=4)
    for n in range(7):
        sink.write("trades", sink_batches.trades(rows=5, first_id=5 * n))
    sink.close()

    assert seen == []
    assert publications == [10, 10, 10, 5]
    assert dataset(tmp_path, "trades").count_rows() == 35


def test_a_failed_write_surfaces_on_the_next_call_and_its_rows_are_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(tmp_path)
    real_open = PartitionFiles._open
    failures = iter([OSError(28, "No space left on device")])

    def open_failing_once(self: PartitionFiles, part: Any) -> Any:
        for failure in failures:
            raise failure
        return real_open(self, part)

    monkeypatch.setattr(PartitionFiles, "_open", open_failing_once)
    sink.write("trades", sink_batches.trades(rows=4))

    with pytest.raises(SinkError, match="No space left") as caught:
        sink.flush()
    assert isinstance(caught.value.__cause__, OSError)
    assert sink.stats()["errors"] == 1
    assert sink.stats()["pending_rows"] == 4  # kept for retry

    sink.flush()  # the disk has room again
    sink.close()
    assert sorted(dataset(tmp_path, "trades").to_table().column("trade_id").to_pylist()) == ["0", "1", "2", "3"]


def test_a_failure_inside_a_file_keeps_the_written_rows_and_retries_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(tmp_path, row_group_rows=3)
    real_write = pq.ParquetWriter.write_table
    calls = 0

    def write_failing_second_time(self: pq.ParquetWriter, table: pa.Table, row_group_size: int | None = None) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(5, "Input/output error")
        real_write(self, table, row_group_size=row_group_size)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_failing_second_time)
    sink.write("trades", sink_batches.trades(rows=6))
    time.sleep(0.2)
    with pytest.raises(SinkError, match="Input/output error"):
        sink.write("trades", sink_batches.trades(rows=1, first_id=99))

    sink.write("trades", sink_batches.trades(rows=1, first_id=6))
    sink.close()
    ids = dataset(tmp_path, "trades").to_table().column("trade_id").to_pylist()
    assert sorted(ids, key=int) == ["0", "1", "2", "3", "4", "5", "6"]  # nothing lost, nothing twice


def test_write_waits_when_the_writer_falls_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(tmp_path, buffer_bytes=1)  # every batch fills the buffer
    real_process = ParquetSink._process

    def slow_process(self: ParquetSink, pieces: list[Any], *args: Any) -> BaseException | None:
        time.sleep(0.05)
        return real_process(self, pieces, *args)

    monkeypatch.setattr(ParquetSink, "_process", slow_process)
    for n in range(10):
        sink.write("trades", sink_batches.trades(rows=5, first_id=5 * n))
    sink.close()

    stats = sink.stats()
    assert stats["blocked_writes"] > 0
    assert stats["blocked_seconds"] > 0
    assert stats["queue_high_water_bytes"] > 0
    assert stats["rows"] == {"trades": {"binance": 50}}
    assert dataset(tmp_path, "trades").count_rows() == 50


def test_stats_count_rows_files_bytes_and_flush_times(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    for table, batch in sink_batches.all_tables().items():
        sink.write(table, batch)
    sink.write("trades", sink_batches.trades("okx", rows=2))
    sink.close()

    stats = sink.stats()
    assert stats["rows"] == {
        "trades": {"binance": 5, "okx": 2},
        "l2": {"okx": 9},
        "bbo": {"binance": 3},
        "events": {"deribit": 3},
        "book_snapshots": {"okx": 3},
    }
    assert stats["files"] == 6
    assert stats["bytes"] == sum(path.stat().st_size for path in published(tmp_path))
    assert 0 < stats["flush_p50_ms"] <= stats["flush_p99_ms"]
    assert (stats["queue_bytes"], stats["pending_rows"], stats["open_files"]) == (0, 0, 0)


def test_a_restarted_writer_publishes_complete_leftovers_and_never_reuses_a_name(tmp_path: Path) -> None:
    first = make_sink(tmp_path)
    first.write("trades", sink_batches.trades(rows=2))
    first.close()
    leftovers = tmp_path / ".tmp" / "w1" / "trades" / "exchange=binance" / "date=2024-01-02"
    leftovers.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        original("trades", sink_batches.trades(rows=1, first_id=50)).cast(pq.read_schema(published(tmp_path)[0])),
        leftovers / "part-w1-7.parquet.tmp",
    )
    (leftovers / "part-w1-8.parquet.tmp").write_bytes(b"PAR1 torn by a crash")

    second = make_sink(tmp_path)
    second.write("trades", sink_batches.trades(rows=1, first_id=60))
    second.close()

    names = [path.name for path in published(tmp_path)]
    assert names == ["part-w1-0.parquet", "part-w1-7.parquet", "part-w1-8.parquet"]
    assert second.stats()["recovered_files"] == 1
    assert second.stats()["discarded_temporary_files"] == 1
    assert sorted(dataset(tmp_path, "trades").to_table().column("trade_id").to_pylist()) == ["0", "1", "50", "60"]


def test_bad_input_is_refused_before_it_is_queued(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    with pytest.raises(ValueError, match="unknown table"):
        sink.write("quotes", sink_batches.trades())
    with pytest.raises(ValueError, match="lacks"):
        sink.write("l2", sink_batches.trades())
    with pytest.raises(ValueError, match="partition directory"):
        sink.write("trades", sink_batches.trades(exchange="../escape"))
    with pytest.raises(ValueError, match="writer_id"):
        ParquetSink(tmp_path, "a/b")
    sink.close()
    with pytest.raises(SinkError, match="closed"):
        sink.write("trades", sink_batches.trades())


def test_close_that_fails_can_be_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(tmp_path)
    sink.write("trades", sink_batches.trades(rows=2))
    real_publish = PartitionFiles._publish
    failures = iter([OSError(122, "Disk quota exceeded")])

    def publish_failing_once(self: PartitionFiles, part: Any) -> None:
        for failure in failures:
            raise failure
        real_publish(self, part)

    monkeypatch.setattr(PartitionFiles, "_publish", publish_failing_once)
    with pytest.raises(SinkError, match="quota"):
        sink.close()
    sink.close()

    assert dataset(tmp_path, "trades").count_rows() == 2


def test_the_flush_metric_is_the_writers_own_pass_time_and_is_exported_per_sink(tmp_path: Path) -> None:
    """xtrader_sink_flush_seconds is what the writer thread timed (not the queueing `write()`), per sink."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from xtrader import metrics
    from xtrader.sinkfront import SinkFront

    front = SinkFront(make_sink(tmp_path), "parquet", actor="sink/parquet")
    for seq in range(20):
        front.write("c0", seq, {"trades": sink_batches.trades(rows=2)})
    front.flush()
    passes = front.writer.flush_times()
    stats = front.stats()
    flush = metrics.latency(stats["metrics"], metrics.SINK_FLUSH, channel="parquet", actor="sink/parquet")
    assert flush.count == passes.count >= 1  # one per writer pass, however many writes it took
    assert flush.as_dict() == passes.as_dict()
    assert front.writer.stats()["flush_p50_ms"] == pytest.approx(flush.quantile(0.5) / 1e6)
    aggregator = metrics.Aggregator()
    aggregator.update(stats["metrics"])
    server = metrics.MetricsServer(aggregator.snapshot)
    server.start()
    try:
        text = httpx.get(server.url, timeout=5).text
    finally:
        server.stop()
        front.close()
    samples = {
        (s.labels["channel"], s.labels["quantile"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == metrics.SINK_FLUSH
        for s in family.samples
    }
    assert samples[("parquet", "0.5")] == pytest.approx(flush.quantile(0.5) / 1e9)
    assert samples[("parquet", "0.99")] == pytest.approx(flush.quantile(0.99) / 1e9)


def test_a_pass_that_only_buffers_rows_is_not_a_flush(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)  # realtime: rows wait for a 10,000-row group
    try:
        sink.write("trades", sink_batches.trades(rows=2))
        deadline = time.monotonic() + 30
        while sink.stats()["pending_rows"] != 2:  # the writer took the rows into its row-group buffer
            assert time.monotonic() < deadline, sink.stats()
            time.sleep(0.01)
        assert sink.flush_times().count == 0
        assert sink.stats()["flush_p50_ms"] is None
        sink.flush()  # writes the row group and publishes the file
        assert sink.flush_times().count == 1
    finally:
        sink.close()
