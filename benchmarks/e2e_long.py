"""`xtrader bench`'s xtrader_e2e throughput entry with a longer window: more pre-generated steps, either mode.

    python benchmarks/e2e_long.py [--steps 600000] [--mode realtime|archival] [--fused] [--cryptofeed]
                                  [--preset FIELD=VALUE ...] [--latency]

The bench's own window is about 2.5 CPU-seconds of actors, too short to tell a 10-20 % change in one stage from
the machine's noise. This runs the same `xtrader.bench.e2e.throughput` (connector actors -> order-book actor ->
Parquet sink actor on a local Ray, the Binance USD-M bench feed over wss, rows counted on disk) on `--steps`
steps and prints one JSON line: msgs/s, msgs per CPU-second of the actors, each actor's CPU seconds, rows.
`--cryptofeed` also runs the bench's cryptofeed entry on the same number of steps (its own feed) and adds it and
the ratio. `--preset batch_rows=10000` sets a latency preset field for this run (what a configuration leaving
the field out gets; the fused preset's own value included), to compare presets on the same machine.
`--latency` measures the bench's latency entry instead (code latency at 10,000 msg/s after 10 s, over 10 s).
The bench feed queues a whole pool for a slow client (a venue would cut it off 200,000 frames
behind), so cryptofeed works through any --steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=600_000)
    parser.add_argument("--mode", choices=("realtime", "archival"), default="realtime")
    parser.add_argument("--fused", action="store_true", help="every stage in one actor process (pipeline.fused)")
    parser.add_argument("--cryptofeed", action="store_true", help="cryptofeed on the same steps, and the ratio")
    parser.add_argument("--preset", action="append", default=[], metavar="FIELD=VALUE", help="a preset field's value")
    parser.add_argument("--latency", action="store_true", help="latency at 10,000 msg/s instead of throughput")
    args = parser.parse_args()
    import ray

    from xtrader import config

    for item in args.preset:
        name, _, value = item.partition("=")
        if name not in config.PRESETS[args.mode]:
            parser.error(f"--preset {item}: the preset fields are {', '.join(config.PRESETS[args.mode])}")
        config.PRESETS[args.mode][name] = config.FUSED_PRESETS[args.mode][name] = (
            float(value) if "." in value else int(value)
        )

    from xtrader.bench import e2e
    from xtrader.bench.runner import SYMBOLS

    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as bundle:
        pass
    e2e.init_ray(bundle.name)
    try:
        if args.latency:
            steps_per_frame = 0.6564  # the bench feed's steps per frame (xtrader bench's `steps_per_frame`)
            result = e2e.latency(
                bundle.name, 10_000.0, steps_per_frame, SYMBOLS, 10.0, 10.0, args.mode, fused=args.fused
            )
        else:
            result = e2e.throughput(bundle.name, args.steps, SYMBOLS, args.mode, fused=args.fused)
    finally:
        ray.shutdown()
        Path(bundle.name).unlink()
    if args.latency:
        print(
            json.dumps({key: result.get(key) for key in ("rate_msgs_per_s", "messages", "p50_ms", "p99_ms", "p999_ms")})
        )
        return
    out = {key: result[key] for key in ("msgs_per_s", "msgs_per_cpu_s", "cpu_s_by", "rows")}
    if args.cryptofeed:
        from xtrader.bench import vs_cryptofeed

        theirs = vs_cryptofeed.throughput(vs_cryptofeed.venv_python(), args.steps, SYMBOLS)
        out["cryptofeed"] = {key: theirs[key] for key in ("messages", "msgs_per_s", "msgs_per_cpu_s")}
        out["ratio"] = round(result["msgs_per_cpu_s"] / theirs["msgs_per_cpu_s"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
