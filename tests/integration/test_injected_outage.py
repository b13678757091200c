"""The storage outages `--chaos` injects (`xtrader.sinks.outage`, `SinkActor.outage`; issue 10): while one lasts,
the sink it hits fails as its real fault would (the Parquet tree read-only, QuestDB unreachable), keeps the
data in its log or spill and writes it, exactly once, when the outage is over; the other sink is untouched."""

from __future__ import annotations

import threading
from pathlib import Path

from actors.sink import SinkActor
from tests.integration.ilp_receiver import IlpReceiver
from tests.integration.test_sink_durability import batch, expected_ids, trade_ids
from tests.integration.test_sink_outage import _flushed, events, fronts, quest_ids, wait_until
from xtrader.config import ParquetSink as ParquetConfig
from xtrader.plan import SinkSpec
from xtrader.sinks.files import RETRY_AFTER_ERROR_S, Limits, PartitionFiles
from xtrader.sinks.parquet import ParquetSink
from xtrader.sinks.partition import split
from xtrader.sinks.questdb import QuestDBSink

BATCHES = 40


def test_an_injected_parquet_outage_keeps_the_rows_in_the_log_and_questdb_unaffected(tmp_path: Path) -> None:
    with IlpReceiver() as receiver:
        front_p, front_q, rows = fronts(tmp_path, tmp_path / "parquet", receiver)
        parquet = front_p.writer
        assert isinstance(parquet, ParquetSink)
        parquet.outage.start(3600.0)
        for n in range(BATCHES):  # acknowledged by both: Parquet's once it is in its log
            assert front_p.write("producer#1", n, {"trades": batch(n)})
            assert front_q.write("producer#1", n, {"trades": batch(n)})
            if n % 10 == 0:
                front_p.tick(0.05)
        assert quest_ids(receiver) == expected_ids(BATCHES)
        wait_until(lambda: (front_p.tick(0.05), parquet.failing is not None)[1], what="the Parquet writer fails")
        assert "Read-only file system" in str(parquet.failing)
        assert sum(trade_ids(tmp_path / "parquet").values()) == 0
        front_p.write("producer#1", BATCHES, {})  # the sink's health is looked at after a write
        assert any("parquet sink failing" in d for d in events(rows, "error")), events(rows, "error")
        parquet.outage.until = 0.0  # over

        def caught_up() -> bool:
            front_p.tick(0.05)
            front_p.write("producer#2", len(rows), {})
            return parquet.failing is None and _flushed(front_p)

        wait_until(caught_up, what="the Parquet sink writes what waited")
        assert trade_ids(tmp_path / "parquet") == expected_ids(BATCHES)
        assert any("parquet sink writes again" in d for d in events(rows, "recovered"))
        front_p.close()
        front_q.close()
        assert trade_ids(tmp_path / "parquet") == expected_ids(BATCHES)


def test_an_injected_questdb_outage_spills_and_replays_once_and_parquet_unaffected(tmp_path: Path) -> None:
    with IlpReceiver() as receiver:
        front_p, front_q, rows = fronts(tmp_path, tmp_path / "parquet", receiver)
        questdb = front_q.writer
        assert isinstance(questdb, QuestDBSink)
        questdb.outage.start(3600.0)
        for n in range(BATCHES):
            assert front_p.write("producer#1", n, {"trades": batch(n)})
            assert front_q.write("producer#1", n, {"trades": batch(n)})
        front_p.flush()
        assert trade_ids(tmp_path / "parquet") == expected_ids(BATCHES)  # Parquet unaffected
        assert quest_ids(receiver) == {} and "injected" in str(questdb.failing)
        assert any("questdb sink failing" in d for d in events(rows, "error"))
        questdb.outage.until = 0.0
        wait_until(lambda: (front_q.tick(0.05), questdb.failing is None)[1], what="the spill replayed")
        assert quest_ids(receiver) == expected_ids(BATCHES)
        front_p.close()
        front_q.close()


def test_the_sink_actor_starts_an_outage_only_in_the_sink_it_hits(tmp_path: Path) -> None:
    spec = SinkSpec(
        id="sink/parquet",
        kind="parquet",
        config=ParquetConfig(root=str(tmp_path / "data")),
        rotation=None,
        row_group_rows=1000,
        flush_interval_s=0,
        cpus=0,
    )
    actor = SinkActor(spec)
    try:
        assert actor.outage("questdb_down", 5.0) is False
        assert not actor.front.writer.outage.active
        assert actor.outage("parquet_unwritable", 5.0) is True
        assert actor.front.writer.outage.active
        actor.front.writer.outage.until = 0.0
    finally:
        actor.close()


def test_a_failed_partition_is_retried_not_declared_recovered_by_a_pass_that_wrote_nothing(tmp_path: Path) -> None:
    """A pass after the retry delay with nothing due (no full row group, no hold) used to clear the retry flag:
    the sink said `recovered` every second while its disk still failed (seen with `--chaos parquet_unwritable_s`)."""
    limits = Limits(max_rows=1_000_000, max_bytes=1 << 30, max_seconds=3600.0, row_group_rows=1000)
    parts = PartitionFiles(tmp_path / "parquet", "w1", limits, "zstd", False, threading.Condition())
    parts.outage.start(3600.0)
    parts.add([(None, piece) for piece in split("trades", batch(0))], 0.0)
    assert parts.write(0.0, publish_all=False, hold_s=0.0) is not None  # held rows written: refused
    assert parts.retrying()
    # the retry is due; nothing else is: the rows are tried again, and refused again
    assert parts.write(0.0 + 2 * RETRY_AFTER_ERROR_S, publish_all=False) is not None
    assert parts.retrying()
    parts.outage.until = 0.0
    assert parts.write(0.0 + 4 * RETRY_AFTER_ERROR_S, publish_all=False) is None
    assert not parts.retrying() and parts.pending_rows() == 0
    assert parts.write(10.0, publish_all=True) is None
    assert trade_ids(tmp_path / "parquet") == expected_ids(1)
