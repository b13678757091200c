"""In what order does Ray start an async actor's calls when more are waiting than it has slots?

    python benchmarks/ray_order.py                      # --calls 400 --every-ms 1 --hold-ms 50
    python benchmarks/ray_order.py --slots 256 --slots 2000

One caller sends `--calls` numbered calls, one every `--every-ms`, to an async actor with `max_concurrency` =
`--slots`; each call holds its slot for `--hold-ms` (as an order-book call waits for its rows to be stored). The
actor records the order the calls started in. Printed per slot count: how many calls started before an earlier
one, and the longest time a call waited in Ray's queue after a later call of the same caller had started (what an
order-book actor's reorder buffer would have to wait for it: tests/cluster/test_book_backlog.py).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any


def run(slots: int, calls: int, every_ms: float, hold_ms: float) -> dict[str, Any]:
    import ray

    @ray.remote(max_concurrency=slots, num_cpus=0)
    class Consumer:
        def __init__(self) -> None:
            self.started: list[tuple[int, float]] = []

        async def call(self, n: int) -> None:
            self.started.append((n, time.monotonic()))
            await asyncio.sleep(hold_ms / 1000)

        def order(self) -> list[tuple[int, float]]:
            return self.started

    consumer = Consumer.remote()  # type: ignore[attr-defined]
    ray.get(consumer.order.remote())
    refs = []
    for n in range(calls):
        refs.append(consumer.call.remote(n))
        time.sleep(every_ms / 1000)
    ray.get(refs)
    started = ray.get(consumer.order.remote())
    ray.kill(consumer)
    order = [n for n, _ in started]
    overtaken = sum(1 for i in range(1, len(order)) if order[i] < max(order[:i]))
    # a call's wait after a later one started: what a reorder buffer holds the later one for
    waits = [0.0]
    for i, (n, t) in enumerate(started):
        later = [t_m for m, t_m in started[:i] if m > n]
        if later:
            waits.append(t - min(later))
    worst = max(waits)
    return {"slots": slots, "calls": calls, "overtaken": overtaken, "longest_wait_s": round(worst, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slots", type=int, action="append", help="max_concurrency (repeatable); default 8 and 1000")
    p.add_argument("--calls", type=int, default=400)
    p.add_argument("--every-ms", type=float, default=1.0)
    p.add_argument("--hold-ms", type=float, default=50.0)
    args = p.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    for slots in args.slots or [8, 1000]:
        print(run(slots, args.calls, args.every_ms, args.hold_ms), flush=True)


if __name__ == "__main__":
    main()
