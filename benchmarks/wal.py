"""What the Parquet sink's write-ahead log costs: rows/s and per-batch latency with and without it, same run.

    python benchmarks/wal.py [--batches 400] [--rows 500] [--rounds 3] [--dir DIR]

Each round writes the same `--batches` trades batches of `--rows` rows through a
`SinkFront` into a fresh `ParquetSink` (realtime mode, fsync on) three times:
with `wal=False` (main before issue 10: acknowledged once in memory), with the log
and `wal_sync="os"` (acknowledged once in the kernel, fsync'd every tick) and
with `wal_sync="batch"` (fsync'd before every acknowledgement), in rotating
order so load on the shared machine hits all alike. Latency is one `SinkFront.write`
call (what a producer's acknowledgement waits for); rows/s counts the writes
plus the final `close()` (every row published), in wall time and per CPU second
of the process (steadier on a shared machine); medians over rounds. `--dir` must be on the disk
under test (not tmpfs): fsync is the cost being measured.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xtrader.batch import TradeColumns
from xtrader.sinkfront import SinkFront
from xtrader.sinks.parquet import ParquetSink

START_NS = 1_704_153_600_000_000_000


def trades_batch(rows: int, first: int) -> pa.RecordBatch:
    columns = TradeColumns()
    for i in range(rows):
        columns.symbol.append(("BTCUSDT", "ETHUSDT", "SOLUSDT")[i % 3])
        columns.exchange_ts.append(START_NS + (first + i) * 1_000_000)
        columns.receive_ts.append(START_NS + (first + i) * 1_000_000 + 5_000_000)
        columns.trade_id.append(first + i)
        columns.side.append("buy" if i % 2 else "sell")
        columns.price.append(f"{42000 + (i % 100) * 0.1:.1f}")
        columns.size.append(f"{0.001 * (1 + i % 17):.3f}")
    return columns.build("binance")


def run(root: Path, batches: list[pa.RecordBatch], mode: str) -> tuple[float, float, list[float]]:
    """(rows/s including close, rows per CPU second of the process, per-write latencies in s)."""
    sink = ParquetSink(root, "bench", wal=mode != "off", wal_sync="batch" if mode == "batch" else "os")
    front = SinkFront(sink, "parquet")
    front.start_timer(1.0)  # as SinkActor does (realtime flush_interval_s)
    latencies = []
    started, cpu = time.perf_counter(), time.process_time()
    for seq, batch in enumerate(batches):
        t0 = time.perf_counter()
        front.write("bench#1", seq, {"trades": batch})
        latencies.append(time.perf_counter() - t0)
    front.close()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    rows = sum(b.num_rows for b in batches)
    return rows / elapsed, rows / cpu, latencies


MODES = ("off", "os", "batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the sinks write (default: a temp dir under the CWD)")
    args = parser.parse_args()
    batches = [trades_batch(args.rows, n * args.rows) for n in range(args.batches)]
    results: dict[str, tuple[list[float], list[float], list[float]]] = {mode: ([], [], []) for mode in MODES}
    with tempfile.TemporaryDirectory(dir=args.dir or Path.cwd()) as directory:
        for round_ in range(args.rounds):
            order = MODES[round_ % len(MODES) :] + MODES[: round_ % len(MODES)]
            for mode in order:
                rate, per_cpu, latencies = run(Path(directory) / f"r{round_}-{mode}", batches, mode)
                results[mode][0].append(rate)
                results[mode][1].append(per_cpu)
                results[mode][2].extend(latencies)
    print(f"{args.rounds} rounds x {args.batches} batches x {args.rows} rows, Parquet fsync on, flush tick 1 s")
    print(
        f"{'wal':>6} {'rows/s':>9} {'rows/cpu-s':>11} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'x rows/s':>9} {'x rows/cpu-s':>13} {'x p50':>6}"
    )
    base_rate, base_cpu = statistics.median(results["off"][0]), statistics.median(results["off"][1])
    base_p50 = percentile(results["off"][2], 0.5)
    for mode in MODES:
        rates, per_cpu, latencies = results[mode]
        rate, cpu = statistics.median(rates), statistics.median(per_cpu)
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        ratios = f"{rate / base_rate:>9.2f} {cpu / base_cpu:>13.2f} {p50 / base_p50:>6.2f}"
        print(f"{mode:>6} {rate:>9,.0f} {cpu:>11,.0f} {p50 * 1e3:>7.3f} {p99 * 1e3:>7.3f} {ratios}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


if __name__ == "__main__":
    main()
