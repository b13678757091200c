"""QuestDB ILP serialization of a 1k-row trades batch: `Buffer.row()` (the sink's path) vs `Buffer.dataframe()`.

    python benchmarks/questdb_encode.py [--rows 1000] [--seconds 2]

Both paths start from the same Arrow RecordBatch and end with the same bytes in
a client Buffer (nothing is sent: network and server cost the same for both):
`row` is `xtrader.sinks.ilp.encode_rows`, `dataframe` is `ilp.encode_dataframe`
(zero-copy pandas columns, then `Buffer.dataframe()`). They are timed batch by
batch in turn, so load on the machine hits both alike; medians are reported,
for ILP protocol versions 1 (text floats) and 2 (binary floats).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xtrader.batch import TradeColumns
from xtrader.sinks import ilp

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from questdb.ingress import Buffer


def trades_batch(rows: int) -> pa.RecordBatch:
    columns = TradeColumns()
    start = 1_704_153_600_000_000_000
    for i in range(rows):
        columns.symbol.append(("BTCUSDT", "ETHUSDT", "SOLUSDT")[i % 3])
        columns.exchange_ts.append(start + i * 1_000_000)
        columns.receive_ts.append(start + i * 1_000_000 + 4_321_987)
        columns.trade_id.append(3_000_000_000 + i)
        columns.side.append("buy" if i % 2 else "sell")
        columns.price.append(f"{42000 + (i % 977) * 0.01:.2f}")
        columns.size.append(f"{0.00001 * (1 + i % 5000):.5f}")
    return columns.build("binance")


def rows_per_second(
    encoders: dict[str, Callable[[Buffer, pa.RecordBatch], None]], version: int, batch: pa.RecordBatch, seconds: float
) -> dict[str, float]:
    """Median rows/s of each encoder, timed alternately batch by batch so machine load hits both alike."""
    buffers = {name: Buffer(protocol_version=version) for name in encoders}
    samples: dict[str, list[float]] = {name: [] for name in encoders}
    started = time.perf_counter()
    while time.perf_counter() - started < seconds * len(encoders):
        for name, encode in encoders.items():
            begin = time.perf_counter()
            encode(buffers[name], batch)
            samples[name].append(time.perf_counter() - begin)
            buffers[name].clear()
    return {name: batch.num_rows / statistics.median(values[1:]) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows per batch")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    batch = trades_batch(args.rows)
    for version in (1, 2):
        encoders = {
            "row": lambda buffer, batch: ilp.encode_rows(buffer, "trades", "trades", batch),
            "dataframe": lambda buffer, batch: ilp.encode_dataframe(buffer, "trades", "trades", batch),
        }
        results = rows_per_second(encoders, version, batch, args.seconds)
        ratio = results["row"] / results["dataframe"]
        print(
            f"protocol {version}, {args.rows}-row trades batch: "
            + ", ".join(f"{name} {value:,.0f} rows/s" for name, value in results.items())
            + f"  (row / dataframe = {ratio:.2f})"
        )


if __name__ == "__main__":
    main()
