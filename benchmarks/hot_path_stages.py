"""Where `xtrader bench`'s hot_path spends its time: CPU µs per frame of each stage, on the bench feed's frames.

    python benchmarks/hot_path_stages.py [--batch-rows 500] [--rounds 5]

The frames are the bench's (`xtrader.bench.feed.frames(20_000, 3)`: Binance USD-M depth@100ms + aggTrade, 3
symbols). Stages, each the best of `--rounds` passes over every frame, CPU time of this process:
`loads` (bare `orjson.loads`, the limit), `parse` (`venue.parser(columns)` into column buffers, its own decoding
included), `flush` (parse + a flush to Arrow every `--batch-rows` rows, minus `parse`), `book` (every batch
of the flush pass fed to `BookService.on_batch`, as the book actor does, from the REST snapshots). `ratio` is
loads / (parse + flush + book): what hot_path/limit_parse would be without the per-frame Receipt and row count.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from xtrader.bench.feed import VENUE, frames
from xtrader.bookservice import BookService
from xtrader.clock import Receipt, now
from xtrader.venues import venue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data, snapshots = frames(20_000, 3)
    v = venue(VENUE)
    batches: list[Any] = []

    def best(stage: Callable[[], None]) -> float:
        fastest = float("inf")
        for _ in range(args.rounds):
            start = time.process_time()
            stage()
            fastest = min(fastest, time.process_time() - start)
        return fastest / len(data) * 1e6

    def loads() -> None:
        for frame in data:
            orjson.loads(frame)

    def parse() -> None:
        out = v.columns()
        parse = v.parser(out)  # as the connector parses
        for frame in data:
            parse(frame, now())
            if out.rows() > 100_000:
                out = v.columns()
                parse = v.parser(out)

    def parse_flush() -> None:
        out = v.columns()
        parse = v.parser(out)
        batches.clear()
        for frame in data:
            parse(frame, now())
            if out.rows() >= args.batch_rows:
                batches.append(out.flush())
        batches.append(out.flush())

    def book() -> None:
        service = BookService.for_venue(v)
        for symbol, body in snapshots.items():
            out = v.columns()
            v.parse_snapshot(body, symbol, Receipt(0, 0), out)
            service.on_batch("c0", out.flush(), rest=True)
        for batch in batches:
            service.on_batch("c0", batch)

    bare, parsed, flushed = best(loads), best(parse), best(parse_flush)
    booked = best(book)
    total = flushed + booked
    print(
        f"load average {os.getloadavg()[0]:.2f}; {len(data)} frames, {len(batches)} batches of {args.batch_rows} rows"
    )
    print(
        f"µs per frame: loads {bare:.2f}  parse {parsed:.2f}  flush {flushed - parsed:.2f}  book {booked:.2f}  "
        f"total {total:.2f}  ratio {bare / total:.3f}"
    )


if __name__ == "__main__":
    main()
