"""What one actor call costs, by what it carries: Ray's own pickling of a RecordBatch against `actors._wire`.

    python benchmarks/ray_call.py [--calls 400] [--inline-bytes 1048576] [--json]

Real l2 batches (the bench feed's frames through the Binance USD-M parser: 300 rows, about 2,000 rows, and a
dict of three small ones, as a connector's tables travel) and, for scale, an int and 90 KB of bytes, each
handed `--calls` times to an actor method that only returns 1, 4 calls in flight (a connector's window).
First with Ray's default serialization, then in the same process and Ray with `actors._wire.install()`
(RecordBatches as Arrow IPC bytes). Reported per call: wall, the caller's CPU and the actor's CPU (psutil /
process_time). A local Ray of its own (`num_cpus=2`), with a token in a temp dir (never `~/.ray`), started as xtrader
starts one (`actors._wire.RAY_SYSTEM_CONFIG`: arguments up to 1 MiB inline); `--inline-bytes 102400` is Ray's own
default.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def l2_batches() -> dict[str, Any]:
    from xtrader.bench.feed import frames
    from xtrader.clock import Receipt
    from xtrader.venues import venue

    v = venue("binance_futures")
    data, _ = frames(3000)
    out = v.columns()
    for frame in data[:1200]:
        v.parse(frame, Receipt(time.time_ns(), time.perf_counter_ns()), out)
    l2 = out.flush().l2
    assert l2 is not None
    small = l2.slice(0, 300)
    return {
        "int": 1,
        "bytes, 90 KB": b"x" * 90_000,
        "l2 batch, 300 rows": small,
        f"l2 batch, {l2.num_rows} rows": l2,
        "dict of 3 l2 batches (300 + 50 + 50 rows)": {"a": small, "b": l2.slice(300, 50), "c": l2.slice(350, 50)},
    }


def measure(payloads: dict[str, Any], calls: int) -> dict[str, dict[str, float]]:
    import psutil
    import ray

    @ray.remote
    class Counter:
        def take(self, _: Any) -> int:
            return 1

        def cpu(self) -> float:
            return time.process_time()

    counter = Counter.remote()  # type: ignore[attr-defined]
    ray.get(counter.take.remote(1))
    me = psutil.Process()
    out = {}
    for name, payload in payloads.items():
        for _ in range(20):  # warm
            ray.get(counter.take.remote(payload))
        mine, theirs, wall = sum(me.cpu_times()[:2]), ray.get(counter.cpu.remote()), time.perf_counter()
        refs: list[Any] = []
        for _ in range(calls):
            refs.append(counter.take.remote(payload))
            if len(refs) >= 4:
                ray.get(refs.pop(0))
        ray.get(refs)
        wall = time.perf_counter() - wall
        mine = sum(me.cpu_times()[:2]) - mine
        theirs = ray.get(counter.cpu.remote()) - theirs
        out[name] = {
            "wall_us": round(wall / calls * 1e6),
            "caller_cpu_us": round(mine / calls * 1e6),
            "actor_cpu_us": round(theirs / calls * 1e6),
            "cpu_us": round((mine + theirs) / calls * 1e6),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument(
        "--inline-bytes", type=int, default=None, help="max_direct_call_object_size (default: xtrader's)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        token = Path(tmp) / "token"
        token.write_text(os.urandom(16).hex())
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
        import ray

        from actors import _wire

        inline = args.inline_bytes or _wire.INLINE_BYTES
        system = {**_wire.RAY_SYSTEM_CONFIG, "max_direct_call_object_size": inline}
        ray.init(
            num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, _system_config=system
        )
        try:
            payloads = l2_batches()
            result: dict[str, Any] = {"default": measure(payloads, args.calls)}
            _wire.install()
            result["actors._wire"] = measure(payloads, args.calls)
        finally:
            ray.shutdown()
    result["settings"] = {"calls": args.calls, "inline_bytes": inline}
    result["machine"] = {"cpus": os.cpu_count(), "load_1m": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"per call, {args.calls} calls, 4 in flight, inline up to {inline} bytes (load {os.getloadavg()[0]:.2f})")
    print(f"{'payload':45} {'default: wall / caller / actor CPU us':>40} {'actors._wire':>28}")
    for name in result["default"]:
        a, b = result["default"][name], result["actors._wire"][name]
        print(
            f"{name:45} {a['wall_us']:>14} / {a['caller_cpu_us']:>6} / {a['actor_cpu_us']:>6}"
            f"      {b['wall_us']:>8} / {b['caller_cpu_us']:>6} / {b['actor_cpu_us']:>6}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
