"""`xtrader.bench.sizes` (benchmarks/scale.py's Ray-free part): bytes per row in Parquet and ILP, and the sizing."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pyarrow as pa
import pytest

from xtrader.batch import TradeColumns
from xtrader.bench.sizes import Sizing, ilp_bytes, parquet_bytes
from xtrader.sinks import ilp
from xtrader.sinks.parquet import ParquetSink

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from questdb.ingress import Buffer


def trades(rows: int) -> pa.RecordBatch:
    columns = TradeColumns()
    start = 1_704_153_600_000_000_000  # 2024-01-02: one date partition
    for i in range(rows):
        columns.symbol.append(("BTCUSDT", "ETHUSDT")[i % 2])
        columns.exchange_ts.append(start + i * 1_000_000 if i % 7 else None)  # some without exchange time
        columns.receive_ts.append(start + i * 1_000_000 + 4_321_987)
        columns.trade_id.append(3_000_000_000 + i)
        columns.side.append("buy" if i % 2 else "sell")
        columns.price.append(f"{42000 + (i % 977) * 0.01:.2f}")
        columns.size.append(f"{0.00001 * (1 + i % 5000):.5f}")
    return columns.build("binance")


def written(root: Path, batch: pa.RecordBatch) -> None:
    sink = ParquetSink(root, "w1", wal=False, fsync=False)
    sink.write("trades", batch)
    sink.close()


def test_parquet_bytes_are_the_files_on_disk_over_the_rows_in_their_footers(tmp_path: Path) -> None:
    written(tmp_path, trades(3000))
    on_disk = sum(os.path.getsize(Path(d) / f) for d, _, fs in os.walk(tmp_path / "trades") for f in fs)
    found = parquet_bytes(tmp_path, ("trades", "l2"))
    assert found["trades"]["rows"] == 3000 and found["trades"]["files"] >= 1
    assert found["trades"]["bytes"] == on_disk
    assert found["trades"]["bytes_per_row"] == round(on_disk / 3000, 1)
    assert found["l2"] == {"files": 0, "bytes": 0, "rows": 0, "bytes_per_row": None}


@pytest.mark.parametrize("version", [1, 2])
def test_ilp_bytes_are_those_the_sink_encodes_for_the_rows_it_was_given(tmp_path: Path, version: int) -> None:
    batch = trades(3000)
    written(tmp_path, batch)
    direct = Buffer(protocol_version=version)
    ilp.encode_rows(direct, "trades", "trades", batch)  # the row-by-row encoder, on the batch as the sink got it
    found = ilp_bytes(tmp_path, ("trades",), version)["trades"]
    assert found == {"rows": 3000, "bytes": len(direct), "bytes_per_row": round(len(direct) / 3000, 1)}
    capped = ilp_bytes(tmp_path, ("trades",), version, max_rows=1000)["trades"]
    assert capped["rows"] == 1000


def test_sizing_counts_cores_at_peak_and_nodes_at_the_allowed_utilisation() -> None:
    sizing = Sizing(msgs_per_cpu_s=10_000, msgs_per_instrument_s=20, burst=5, cores_per_node=8, utilisation=0.5)
    assert sizing.cpus(100, 2) == pytest.approx(2.0)  # 100 x 2 x 20 x 5 / 10,000
    assert sizing.nodes(100, 2) == 1
    assert sizing.nodes(1000, 2) == 5  # 20 cores / (8 x 0.5)
    assert sizing.nodes(1001, 2) == 6
    assert sizing.table((100,), (1, 2)).splitlines()[2] == "| 100 | 1 (1.0 cores) | 1 (2.0 cores) |"
    with pytest.raises(ValueError):
        Sizing(msgs_per_cpu_s=0)
    with pytest.raises(ValueError):
        Sizing(msgs_per_cpu_s=1, utilisation=1.5)
