"""Arrow's memory pool under the sink's and the book's work: CPU (user and system) and page faults per pool.

    python benchmarks/memory_pool.py [--rounds 3] [--passes 4] [--gap-ms 20] [--dir DIR]
                                     [--pools mimalloc,jemalloc,system,mimalloc:MIMALLOC_PURGE_DELAY=-1]

Why: `perf record` on the actors of an `xtrader bench` run put 13-19 % of the Parquet sink's CPU in the kernel
zeroing pages (`clear_page_erms`), most of it under mimalloc (pyarrow's default pool) faulting fresh huge
pages. This measures that without Ray (it did not reproduce it: benchmarks/RESULTS.md, "Arrow's memory pool"),
one fresh process per pool (a pool is a process-wide choice, made before Arrow allocates), pools in rotating
order each round:

- the bench feed's frames (`xtrader.bench.feed`, Binance USD-M depth + aggTrade, 3 symbols) parsed and flushed
  to Arrow in 2,000-row batches, as a connector does;
- each batch's tables through Arrow IPC bytes and back (`actors._wire`, what every actor call does), then
  through a `SinkFront` into a `ParquetSink` (realtime, the write-ahead log on, fsync'd every 1 s tick), as the
  sink actor does; `--passes` times over the feed, then `close()`.
- the l2 batches fed to `BookService.on_batch` from the REST snapshots, as the book actor does.

Reported per pool, medians over rounds: user and system CPU seconds of the child process, minor page faults,
and rows per CPU second; ratios against the first pool. `--dir` should be on the disk under test (not tmpfs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

POOLS = ("mimalloc", "jemalloc", "system")


def child(pool: str, root: Path, passes: int, gap_s: float) -> dict[str, float]:
    """One pool's run in this (fresh) process; returns its CPU, faults and rows."""
    import pyarrow as pa

    pa.set_memory_pool(getattr(pa, f"{pool}_memory_pool")())
    from actors._wire import batch_from_ipc, batch_to_ipc
    from xtrader.bench.feed import VENUE, frames
    from xtrader.bookservice import BookService
    from xtrader.clock import Receipt, now
    from xtrader.sinkfront import SinkFront
    from xtrader.sinks.parquet import ParquetSink
    from xtrader.venues import venue

    data, snapshots = frames(20_000, 3)
    v = venue(VENUE)
    before = resource.getrusage(resource.RUSAGE_SELF)
    sink = ParquetSink(root, "bench", wal=True, wal_sync="os")
    front = SinkFront(sink, "parquet")
    front.start_timer(1.0)  # as SinkActor does (realtime flush_interval_s)
    service = BookService.for_venue(v)
    for symbol, body in snapshots.items():
        out = v.columns()
        v.parse_snapshot(body, symbol, Receipt(0, 0), out)
        service.on_batch("c0", out.flush(), rest=True)
    rows = seq = 0
    for _ in range(passes):
        out = v.columns()
        for frame in data:
            v.parse(frame, now(), out)
            if out.rows() >= 2_000:
                batches = out.flush()
                service.on_batch("c0", batches)
                for name, table in batches.tables().items():
                    batch = batch_from_ipc(batch_to_ipc(table))  # what an actor call carries
                    front.write("bench#1", seq, {name: batch})
                    rows += batch.num_rows
                    seq += 1
                if gap_s:
                    time.sleep(gap_s)  # the realtime batch bound between batches: freed memory may go back to the OS
        out = v.columns()
    front.close()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "rows": rows,
        "max_rss_mb": after.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--dir", default=None, help="where the sinks write (default: a temp dir under the CWD)")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="pause after each batch, as a realtime capture's")
    parser.add_argument("--pools", default=",".join(POOLS), help="pools (mimalloc, jemalloc, system) and env settings")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.dir), args.passes, args.gap_ms / 1e3)))
        return
    variants = args.pools.split(",")
    results: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory(dir=args.dir or Path.cwd()) as directory:
        for round_ in range(args.rounds):
            shift = round_ % len(variants)
            for n, variant in enumerate(variants[shift:] + variants[:shift]):
                pool, *settings = variant.split(":")
                env = {**os.environ, **dict(setting.split("=", 1) for setting in settings)}
                root = Path(directory) / f"r{round_}-{n}"
                command = [sys.executable, __file__, "--child", pool, "--dir", str(root), "--passes", str(args.passes)]
                command += ["--gap-ms", str(args.gap_ms)]
                done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
                results[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        f"{args.rounds} rounds, {args.passes} passes over the bench feed, {args.gap_ms:g} ms after each batch; "
        f"load {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"{'user s':>7} {'sys s':>7} {'faults':>9} {'rows/cpu-s':>11} {'x cpu':>6} {'x sys':>6} {'rss MB':>7}  pool")
    base: dict[str, float] = {}
    for variant in variants:
        runs = results[variant]
        user = statistics.median(r["user_s"] for r in runs)
        sys_s = statistics.median(r["sys_s"] for r in runs)
        cpu = statistics.median(r["user_s"] + r["sys_s"] for r in runs)
        faults = statistics.median(r["minor_faults"] for r in runs)
        rss = statistics.median(r["max_rss_mb"] for r in runs)
        base = base or {"cpu": cpu, "sys": sys_s}
        print(
            f"{user:>7.2f} {sys_s:>7.2f} {faults:>9,.0f} {runs[0]['rows'] / cpu:>11,.0f} "
            f"{cpu / base['cpu']:>6.2f} {sys_s / base['sys']:>6.2f} {rss:>7.0f}  {variant}"
        )


if __name__ == "__main__":
    main()
