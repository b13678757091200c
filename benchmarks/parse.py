"""Parse + normalize + batch throughput on real frames, against bare orjson.loads of the same frames.

    python benchmarks/parse.py [--seconds 3] [--rounds 10] [--batch-rows 1000]

For each venue the real websocket frames of its shared capture are looped:
the baseline decodes each frame with `orjson.loads` only; the measured path
runs `venue.parse(frame, receipt, columns)` and flushes RecordBatches every
`batch_rows` rows, as the connector does. Both run in the same process,
alternately, `--rounds` times for `--seconds` each in total; the best round of
each is kept (other load on the machine only ever slows a round down). Rates are per
CPU second of this process (`time.process_time`), which other processes on a busy
machine disturb far less than wall time. The ratio
(measured / baseline messages per second) is what to compare across machines.

Every capture is measured twice: with CPython's default garbage-collector
settings, and after `xtrader.gc_tuning.tune_gc()` (what the connector actor
runs with).
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

from xtrader.clock import Receipt
from xtrader.errors import ParseError
from xtrader.gc_tuning import restore_gc, tune_gc
from xtrader.venues import venue

CAPTURES = Path(
    os.environ.get("XTRADER_CAPTURES", Path(__file__).resolve().parents[2] / "shared/data/exchange-captures")
)
CASES = [
    ("binance", None),
    ("binance", "depthUpdate"),
    ("binance_futures", None),
    ("binance_futures", "depthUpdate"),
    ("okx", None),
    ("deribit", None),
]


def frames(name: str, only: str | None = None) -> list[bytes]:
    """The received websocket frames of a capture (those containing `only`, when given)."""
    out = []
    with (CAPTURES / f"{name}.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if r["kind"] == "ws" and r["dir"] == "recv" and r["msg"] and (only is None or only in r["msg"]):
                out.append(r["msg"].encode())
    return out


def bare(data: list[bytes], seconds: float) -> float:
    """Messages per CPU second of orjson.loads alone."""
    loads = orjson.loads
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for frame in data:
            loads(frame)
        n += len(data)
    return n / (time.process_time() - cpu)


def parsed(name: str, data: list[bytes], seconds: float, batch_rows: int) -> tuple[float, float]:
    """(messages per CPU second, rows per message) of parse + flush to RecordBatches."""
    v = venue(name)
    out = v.columns()
    parse = v.parse
    receipt = Receipt(time.time_ns(), time.perf_counter_ns())
    n, rows, start, cpu = 0, 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for frame in data:
            try:  # noqa: SIM105 - contextlib.suppress costs ~0.3 µs a frame, as much as a third of a parse
                parse(frame, receipt, out)
            except ParseError:
                pass
            if out.rows() >= batch_rows:
                rows += out.flush().rows()
        n += len(data)
    rows += out.flush().rows()
    return n / (time.process_time() - cpu), rows / n


def measure(name: str, data: list[bytes], seconds: float, rounds: int, batch_rows: int) -> tuple[float, float, float]:
    """(best bare msg/s, best parse+batch msg/s, rows per frame) over alternating rounds."""
    best_bare = best_parsed = 0.0
    rows_per_frame = 0.0
    for _ in range(rounds):
        best_bare = max(best_bare, bare(data, seconds / rounds))
        got, rows_per_frame = parsed(name, data, seconds / rounds, batch_rows)
        best_parsed = max(best_parsed, got)
    return best_bare, best_parsed, rows_per_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per path, per capture and GC setting")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds; the best of each path is kept")
    parser.add_argument("--batch-rows", type=int, default=1000)
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    print("| capture | frames | rows/frame | GC | bare orjson.loads msg/s | parse+batch msg/s | ratio |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name, only in CASES:
        data = frames(name, only)
        label = name + (f" ({only} only)" if only else " (all frames)")
        for gc_setting in ("default", "tuned"):
            previous = tune_gc() if gc_setting == "tuned" else None
            try:
                base, got, rows = measure(name, data, args.seconds, args.rounds, args.batch_rows)
            finally:
                if previous is not None:
                    restore_gc(previous)
            print(
                f"| {label} | {len(data)} | {rows:.1f} | {gc_setting} | {base:,.0f} | {got:,.0f} | {got / base:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
