"""`xtrader bench`: the five entries one after the other, then the report."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

from xtrader.bench import e2e, hot_path, limits
from xtrader.bench import vs_cryptofeed as cf
from xtrader.bench.feed import frames
from xtrader.bench.report import ENTRIES, report
from xtrader.config import LatencyMode, Transport, WalMode

SYMBOLS = 3
#: pre-encoded steps per second of --seconds for the network entries, and at most (each step is ~1.5 frames
#: on depth + aggTrade). The bench feed queues a whole pool for a slow client (`FeedOptions.max_queue`), where a
#: venue, and the simulator by default, cuts one off 200,000 frames behind; that cut once capped the pool at
#: 100,000 steps, a window in which stopping the capture (its last Parquet writes) weighed several per cent.
STEPS_PER_S, MAX_STEPS = 40_000, 1_000_000
#: in-memory frames for limit_parse and hot_path (looped)
MEMORY_STEPS = 20_000
LATENCY_RATE = 10_000.0  # msg/s


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(terse=True),
    }


def run(
    seconds: float,
    skip: set[str],
    warmup_s: float,
    latency_mode: LatencyMode = "realtime",
    wal: WalMode = "os",
    transport: Transport = "picows",
) -> dict[str, Any]:
    """Every entry not in `skip`; the report object. `latency_mode` sets the batch size of hot_path and
    the pipeline preset of xtrader_e2e; `wal` its Parquet sink's write-ahead log (`ParquetSink.wal`);
    `transport` its connectors' websocket library (`Pipeline.ws_transport`)."""
    from xtrader.config import Pipeline

    batch_rows = int(Pipeline(latency_mode=latency_mode).batch_rows or 0)
    unknown = skip - set(ENTRIES)
    if unknown:
        raise ValueError(f"--skip: unknown entries {sorted(unknown)}; entries are {', '.join(ENTRIES)}")
    steps = min(MAX_STEPS, max(5_000, int(seconds * STEPS_PER_S)))
    start_machine = machine()
    entries: dict[str, Any] = {}

    def note(name: str) -> None:
        print(f"xtrader bench: {name}", file=sys.stderr, flush=True)

    data, snapshots = frames(MEMORY_STEPS, SYMBOLS)
    errors: dict[str, str] = {}

    def entry(name: str, measure: Callable[[], dict[str, Any]]) -> None:
        """Run one entry; a failure is reported (its entry null, `errors[name]`), the others still run."""
        if name in skip:
            return
        note(name)
        try:
            entries[name] = measure()
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()

    def xtrader_e2e(fused: bool) -> dict[str, Any]:
        import ray

        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as bundle:
            pass
        e2e.init_ray(bundle.name)
        try:
            result = e2e.throughput(
                bundle.name, steps, SYMBOLS, latency_mode, wal=wal, transport=transport, fused=fused
            )
            result["fused"] = fused
            note(f"xtrader_e2e{'_fused' if fused else ''}: latency at {LATENCY_RATE:g} msg/s after {warmup_s:g} s")
            result["latency"] = e2e.latency(
                bundle.name,
                LATENCY_RATE,
                result["steps_per_frame"],
                SYMBOLS,
                warmup_s,
                seconds,
                latency_mode,
                wal,
                transport,
                fused,
            )
            return result
        finally:
            ray.shutdown()
            os.unlink(bundle.name)

    def cryptofeed() -> dict[str, Any]:
        python = cf.venv_python()
        result = cf.throughput(python, steps, SYMBOLS)
        note(f"cryptofeed: latency at {LATENCY_RATE:g} msg/s after {warmup_s:g} s")
        result["latency"] = cf.latency(python, LATENCY_RATE, result["steps_per_frame"], SYMBOLS, warmup_s, seconds)
        return result

    entry("limit_recv", lambda: limits.limit_recv(steps, SYMBOLS))
    entry("limit_parse", lambda: limits.limit_parse(data, seconds))
    entry("hot_path", lambda: hot_path.hot_path(data, snapshots, seconds, batch_rows))
    entry("xtrader_e2e", lambda: xtrader_e2e(fused=False))
    entry("xtrader_e2e_fused", lambda: xtrader_e2e(fused=True))
    entry("cryptofeed", cryptofeed)
    result = report({name: entries.get(name) for name in ENTRIES}, start_machine)
    result["machine"]["load_1m_end"] = round(os.getloadavg()[0], 2)
    result["settings"] = {
        "seconds": seconds,
        "warmup_s": warmup_s,
        "symbols": SYMBOLS,
        "pool_steps": steps,
        "memory_frames": len(data),
        "latency_mode": latency_mode,
        "parquet_wal": wal,
        "ws_transport": transport,
        "batch_rows": batch_rows,
        "latency_rate_msgs_per_s": LATENCY_RATE,
        "skipped": sorted(skip),
    }
    result["errors"] = errors
    return result
