"""Parquet write cost and size of stored rows: Parquet's default dictionary encoding of every column against the
sink's (`xtrader.sinks.partition.DICTIONARY_COLUMNS`: the few-valued columns and prices), in the same process.

    python benchmarks/parquet_write.py [--steps 60000] [--rounds 3]

Rows: the bench feed's l2 and trades (`xtrader.bench.feed.frames`, parsed and flushed in 65,536-row batches as the
connector does), in file schema, written in 65,536-row row groups with zstd into memory. CPU time of this process
per row written, and bytes per row; the best of `--rounds` for each setting.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xtrader.bench.feed import frames
from xtrader.clock import Receipt
from xtrader.sinks.partition import DICTIONARY_COLUMNS, split
from xtrader.venues import venue

GROUP = 65_536


def tables(steps: int) -> dict[str, pa.Table]:
    data, _ = frames(steps, 3)
    v = venue("binance_futures")
    out = v.columns()
    parse = v.parser(out)
    batches: dict[str, list[pa.RecordBatch]] = {"l2": [], "trades": []}

    def flush() -> None:
        for name, batch in out.flush().tables().items():
            if name in batches:
                batches[name].extend(piece.batch for piece in split(name, batch))

    for index, frame in enumerate(data):
        parse(frame, Receipt(1_700_000_000_000_000_000 + index, index))
        if out.rows() >= GROUP:
            flush()
    flush()
    return {name: pa.Table.from_batches(bs) for name, bs in batches.items()}


def write(table: pa.Table, options: dict[str, Any]) -> int:
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, table.schema, compression="zstd", **options) as writer:
        for offset in range(0, table.num_rows, GROUP):
            writer.write_table(table.slice(offset, GROUP), row_group_size=GROUP)
    return buffer.tell()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stored = tables(args.steps)
    settings: dict[str, Any] = {
        "every column (Parquet's default)": lambda name: {},
        "DICTIONARY_COLUMNS (the sink's)": lambda name: {"use_dictionary": DICTIONARY_COLUMNS[name]},
    }
    print("| table | rows | dictionary pages | ns a row written | bytes a row |")
    print("|---|---:|---|---:|---:|")
    for name, table in stored.items():
        for label, options in settings.items():
            best, size = float("inf"), 0
            for _ in range(args.rounds):
                cpu = time.process_time()
                size = write(table, options(name))
                best = min(best, time.process_time() - cpu)
            print(
                f"| {name} | {table.num_rows:,} | {label} | {best / table.num_rows * 1e9:.0f} | "
                f"{size / table.num_rows:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
