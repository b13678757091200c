"""Parse + normalize + batch throughput on real frames, against bare orjson.loads of the same frames.

    python benchmarks/parse.py [--seconds 3] [--batch-rows 1000]

For each venue the real websocket frames of its shared capture are looped:
the baseline decodes each frame with `orjson.loads` only; the measured path
runs `venue.parse(frame, receipt, columns)` and flushes a RecordBatch every
`batch_rows` rows. Both run in the same process, alternately, and the ratio
(measured / baseline messages per second) is what to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from xtrader.clock import Receipt
from xtrader.errors import ParseError
from xtrader.venues import venue

CAPTURES = Path(
    os.environ.get("XTRADER_CAPTURES", Path(__file__).resolve().parents[2] / "shared/data/exchange-captures")
)


def frames(name: str, only: str | None = None) -> list[bytes]:
    out = []
    with (CAPTURES / f"{name}.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if r["kind"] == "ws" and r["dir"] == "recv" and r["msg"] and (only is None or only in r["msg"]):
                out.append(r["msg"].encode())
    return out


def bare(data: list[bytes], seconds: float) -> float:
    loads = orjson.loads
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for frame in data:
            loads(frame)
        n += len(data)
    return n / (time.perf_counter() - start)


def parsed(name: str, data: list[bytes], seconds: float, batch_rows: int) -> tuple[float, int]:
    v = venue(name)
    out = v.columns()
    parse = v.parse
    receipt = Receipt(time.time_ns(), time.perf_counter_ns())
    n, batches, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for frame in data:
            with contextlib.suppress(ParseError):
                parse(frame, receipt, out)
            if out.rows() >= batch_rows:
                out.flush()
                batches += 1
        n += len(data)
    out.flush()
    return n / (time.perf_counter() - start), batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch-rows", type=int, default=1000)
    args = parser.parse_args()
    cases = [
        ("binance", None),
        ("binance", "depthUpdate"),
        ("binance_futures", None),
        ("binance_futures", "depthUpdate"),
        ("okx", None),
        ("deribit", None),
    ]
    print("| capture | frames | bare orjson.loads msg/s | parse+batch msg/s | ratio |")
    print("|---|---|---|---|---|")
    for name, only in cases:
        data = frames(name, only)
        base = bare(data, args.seconds / 2)
        got, _ = parsed(name, data, args.seconds, args.batch_rows)
        base = (base + bare(data, args.seconds / 2)) / 2  # bracket the measured run
        label = name + (f" ({only} only)" if only else " (all frames)")
        print(f"| {label} | {len(data)} | {base:,.0f} | {got:,.0f} | {got / base:.2f} |")


if __name__ == "__main__":
    main()
