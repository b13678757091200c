"""Would pyarrow's C++ JSON reader parse the hot path faster than orjson? (issue 8, a candidate not adopted)

    python benchmarks/pyarrow_json.py [--chunk 1000] [--rounds 5]

The bench feed's frames (`xtrader.bench.feed.frames(20_000)`: Binance USD-M depth@100ms + aggTrade, 3 symbols)
decoded two ways, CPU time of this process, best of `--rounds`, per frame:
- `orjson.loads` of each frame (the limit `xtrader bench` calls limit_parse);
- `pyarrow.json.read_json` over `--chunk` frames at a time, newline-joined, with an explicit schema: Arrow
  columns straight out of C++, no Python object per frame. A depthUpdate's `a` (asks) and an aggTrade's `a`
  (aggregate id) differ in type, so each chunk is first split by stream type (one schema each): the split,
  the join and both reads are counted.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main() -> int:
    import orjson
    import pyarrow as pa
    import pyarrow.json as pj

    from xtrader.bench.feed import frames

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data, _ = frames(20_000)
    levels = pa.list_(pa.list_(pa.string()))
    head = [("e", pa.string()), ("E", pa.int64()), ("T", pa.int64()), ("s", pa.string())]
    depth = [*head, ("U", pa.int64()), ("u", pa.int64()), ("pu", pa.int64()), ("b", levels), ("a", levels)]
    trade = [*head, ("a", pa.int64()), ("p", pa.string()), ("q", pa.string()), ("f", pa.int64()), ("l", pa.int64())]
    trade.append(("m", pa.bool_()))
    read = pj.ReadOptions(use_threads=False, block_size=1 << 24)
    schemas = {
        kind: pj.ParseOptions(explicit_schema=pa.schema([("stream", pa.string()), ("data", pa.struct(fields))]))
        for kind, fields in (("depth", depth), ("trade", trade))
    }

    def loads() -> None:
        for frame in data:
            orjson.loads(frame)

    def columnar() -> None:
        for i in range(0, len(data), args.chunk):
            part = data[i : i + args.chunk]
            books = [f for f in part if b"@depth" in f[:48]]
            trades = [f for f in part if b"@aggTrade" in f[:48]]
            for kind, chunk in (("depth", books), ("trade", trades)):
                pj.read_json(io.BytesIO(b"\n".join(chunk)), read_options=read, parse_options=schemas[kind])

    n = len(data)
    a = best(loads, args.rounds) / n * 1e6
    b = best(columnar, args.rounds) / n * 1e6
    print(f"{n} frames, chunks of {args.chunk}: orjson.loads {a:.2f} us/frame, pyarrow.json {b:.2f} us/frame")
    print(f"pyarrow.json / orjson.loads speed: {a / b:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
