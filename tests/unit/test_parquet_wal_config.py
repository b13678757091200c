"""`sinks.parquet.wal` reaches the sink a SinkActor opens: os (the default) and batch log every batch before it is
acknowledged, batch fsyncs each one, off keeps no log (what `xtrader bench --wal off` measures against)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.sink import open_sink
from tests.integration import sink_batches
from xtrader.config import ParquetSink as ParquetConfig
from xtrader.config import parse_config
from xtrader.plan import build_plan

STREAMS = [{"venue": "binance", "symbols": ["BTCUSDT"], "tables": ["trades"]}]


def parquet_sink(root: Path, wal: str | None) -> object:
    parquet: dict[str, object] = {"root": str(root)}
    if wal is not None:
        parquet["wal"] = wal
    capture = parse_config({"streams": STREAMS, "sinks": {"parquet": parquet}})
    spec = next(s for s in build_plan(capture).sinks if isinstance(s.config, ParquetConfig))
    return open_sink(spec, "w")


@pytest.mark.parametrize(
    ("wal", "logged", "fsync_each"),
    [(None, True, False), ("os", True, False), ("batch", True, True), ("off", False, False)],
)
def test_the_configured_log_is_the_one_the_sink_keeps(
    tmp_path: Path, wal: str | None, logged: bool, fsync_each: bool
) -> None:
    sink = parquet_sink(tmp_path, wal)
    try:
        sink.write_tables({"trades": sink_batches.trades("binance", rows=100, first_id=0)}, "p", 0)
        log = sink._wal
        assert (log is not None) == logged
        assert sink.stats()["wal_bytes"] > 0 if logged else sink.stats()["wal_bytes"] == 0
        if log is not None:
            assert log.sync_each == fsync_each
    finally:
        sink.close()


def test_an_unknown_log_mode_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="wal"):
        parse_config({"streams": STREAMS, "sinks": {"parquet": {"root": str(tmp_path), "wal": "sometimes"}}})
