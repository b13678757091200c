"""Per-batch and per-frame costs outside parse and book sync, on the bench feed's frames.

    python benchmarks/per_batch.py [--src CHECKOUT] [--batch-rows 2000]

`--src`: import xtrader from another checkout (compare two commits on the same frames, one after the other).
Each figure is the best of 7 passes (wall time of this process; run it on a quiet machine):

- `dedup`: a connector's own `BatchArbiter.filter` (redundancy 1) over every batch of the frames, µs a frame;
- `count_symbols`: the connector's rows per symbol for the live view (`streams_table.count_symbols`), µs a frame;
- `record_many`: one latency histogram fed 2,000 values (`Histogram.record_many`), µs a call (the sink and the
  book record each batch 2-4 times);
- `clock.now`: the receipt the connector takes per frame, ns a call, against the NamedTuple's own constructor
  (`Receipt(time.time_ns(), time.perf_counter_ns())`, what `now` did before) in the same process.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--batch-rows", type=int, default=2000)
    args = parser.parse_args()
    sys.path.insert(0, args.src)

    import numpy as np

    from xtrader.arbiter_batches import BatchArbiter
    from xtrader.bench.feed import VENUE, frames
    from xtrader.clock import Receipt, now
    from xtrader.histogram import Histogram
    from xtrader.streams_table import count_symbols
    from xtrader.venues import venue

    data, _ = frames(20_000, 3)
    v = venue(VENUE)
    out = v.columns()
    batches = []
    for frame in data:
        v.parse(frame, Receipt(time.time_ns(), time.perf_counter_ns()), out)
        if out.rows() >= args.batch_rows:
            batches.append(out.flush())
    batches.append(out.flush())

    def dedup() -> None:
        arbiter = BatchArbiter()
        for batch in batches:
            arbiter.filter("c0", batch, time.monotonic_ns())

    def counts() -> None:
        into: dict[str, dict[str, int]] = {}
        for batch in batches:
            count_symbols(batch, into)

    latencies = np.random.default_rng(1).lognormal(17, 0.6, 2000).astype(np.int64)
    histogram = Histogram()

    def best(stage: object, number: int = 1) -> float:
        return min(timeit.repeat(stage, number=number, repeat=7)) / number  # type: ignore[arg-type]

    def constructor() -> Receipt:
        return Receipt(time.time_ns(), time.perf_counter_ns())

    best(now, 200_000), best(constructor, 200_000)  # warm-up: the first round of each was up to 2x slower
    print(
        f"{args.src}: dedup {best(dedup) / len(data) * 1e6:.3f} µs/frame  "
        f"count_symbols {best(counts) / len(data) * 1e6:.3f} µs/frame  "
        f"record_many {best(lambda: histogram.record_many(latencies), 200) * 1e6:.1f} µs  "
        f"clock.now {best(now, 200_000) * 1e9:.0f} ns (Receipt(...) {best(constructor, 200_000) * 1e9:.0f} ns)"
    )


if __name__ == "__main__":
    main()
