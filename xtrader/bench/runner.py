"""`xtrader bench`: the five entries one after the other, then the report."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from typing import Any

from xtrader.bench import cryptofeed as cf
from xtrader.bench import e2e, hot_path, limits
from xtrader.bench.feed import frames
from xtrader.bench.report import ENTRIES, report

SYMBOLS = 3
#: pre-encoded steps per second of --seconds for the network entries, and at most (each step is ~1.5 frames
#: on depth + aggTrade; the simulator cuts a client 200,000 frames behind, so a pool stays well below that)
STEPS_PER_S, MAX_STEPS = 20_000, 100_000
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


def run(seconds: float, skip: set[str], warmup_s: float, batch_rows: int = 1000) -> dict[str, Any]:
    """Every entry not in `skip`; the report object."""
    unknown = skip - set(ENTRIES)
    if unknown:
        raise ValueError(f"--skip: unknown entries {sorted(unknown)}; entries are {', '.join(ENTRIES)}")
    steps = min(MAX_STEPS, max(5_000, int(seconds * STEPS_PER_S)))
    start_machine = machine()
    entries: dict[str, Any] = {}

    def note(name: str) -> None:
        print(f"xtrader bench: {name}", file=sys.stderr, flush=True)

    data, snapshots = frames(MEMORY_STEPS, SYMBOLS)
    if "limit_recv" not in skip:
        note("limit_recv")
        entries["limit_recv"] = limits.limit_recv(steps, SYMBOLS)
    if "limit_parse" not in skip:
        note("limit_parse")
        entries["limit_parse"] = limits.limit_parse(data, seconds)
    if "hot_path" not in skip:
        note("hot_path")
        entries["hot_path"] = hot_path.hot_path(data, snapshots, seconds, batch_rows)
    steps_per_frame = 1 / 1.5
    if "xtrader_e2e" not in skip:
        import ray

        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as bundle:
            pass
        e2e.init_ray(bundle.name)
        try:
            note("xtrader_e2e: throughput")
            entry = e2e.throughput(bundle.name, steps, SYMBOLS)
            steps_per_frame = entry["steps_per_frame"] or steps_per_frame
            note(f"xtrader_e2e: latency at {LATENCY_RATE:g} msg/s after {warmup_s:g} s")
            entry["latency"] = e2e.latency(bundle.name, LATENCY_RATE, steps_per_frame, SYMBOLS, warmup_s, seconds)
            entries["xtrader_e2e"] = entry
        finally:
            ray.shutdown()
            os.unlink(bundle.name)
    if "cryptofeed" not in skip:
        python = cf.venv_python()
        note("cryptofeed: throughput")
        entry = cf.throughput(python, steps, SYMBOLS)
        note(f"cryptofeed: latency at {LATENCY_RATE:g} msg/s after {warmup_s:g} s")
        entry["latency"] = cf.latency(python, LATENCY_RATE, steps_per_frame, SYMBOLS, warmup_s, seconds)
        entries["cryptofeed"] = entry
    result = report({name: entries.get(name) for name in ENTRIES}, start_machine)
    result["machine"]["load_1m_end"] = round(os.getloadavg()[0], 2)
    result["settings"] = {
        "seconds": seconds,
        "warmup_s": warmup_s,
        "symbols": SYMBOLS,
        "pool_steps": steps,
        "memory_frames": len(data),
        "batch_rows": batch_rows,
        "latency_rate_msgs_per_s": LATENCY_RATE,
        "skipped": sorted(skip),
    }
    return result
