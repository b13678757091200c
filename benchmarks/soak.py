"""Soak (issue 10): the demo's pipeline for many minutes at a steady rate, with process faults of mixed kinds,
sampling the resident memory (RSS) of every actor process as it goes.

    PYTHONPATH=. python benchmarks/soak.py --minutes 10 --rate 5000 --out /tmp/soak

`--rate` is the target in messages per second, all venues together: the simulator's steps per second per
venue are `rate / (venues x --msgs-per-step)` (a generated market step makes about 1.7 messages: one book
diff, and the trades and top-of-book change it may cause); the rate actually sent is measured and printed.
`--chaos` takes `xtrader demo --chaos`'s SPEC; the default kills a connector every 60 s, a book every 90 s
and a sink every 120 s (21 faults in 10 minutes, about one every 30 s, of mixed kinds), with redundancy 2 so
that no kill loses data.

Printed at the end (and written to OUT/soak.json with every sample): messages per second sent, rows sent
vs stored per table and venue (Parquet read back: `on_disk == sent + rest - accounted`), duplicates in
Parquet, the events by kind, and per actor the RSS after warm-up and at the end of its longest-lived
process (a killed actor restarts in a new process: each incarnation is its own series). Warm-up: 120 s by
default, the arbiter's key window (`arbiter_ttl_s`, 60 s) plus the pipeline's backlog fill its memory until then.
`--reanalyse OUT` reads a finished soak's data and samples again.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from tests.cluster.test_pipeline import counts, duplicates, read, websocket_rows

DEFAULT_CHAOS = "kill_connector_every_s=60,kill_book_every_s=90,kill_sink_every_s=120"
#: what makes a row unique, per table (websocket rows)
KEYS = {
    "trades": ["exchange", "symbol", "trade_id"],
    "bbo": ["exchange", "symbol", "seq", "exchange_ts", "bid_price", "bid_size", "ask_price", "ask_size"],
    "l2": ["exchange", "symbol", "seq", "is_snapshot", "side", "price"],
}
VENUES = ("binance", "binance_futures", "okx", "deribit")
#: what a soak.json says of the run itself (kept by `--reanalyse`)
HEADER = (
    "command",
    "capture_s",
    "wall_s",
    "received_msgs_per_s",
    "feed_msgs_per_s",
    "chaos",
    "events",
    "books",
    "latency_ms",
    "warmup_s",
)


def rss_mb(pid: int) -> float | None:
    """Resident memory of a local process in MiB (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Sampler:
    """The capture's stop condition, called at every stats interval: samples RSS, stops after `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start: float | None = None
        self.samples: list[dict[str, Any]] = []

    def __call__(self, stats: Mapping[str, Any], totals: Mapping[str, Any]) -> bool:
        now = time.monotonic()
        if self.start is None:
            self.start = now
        t = round(now - self.start, 1)
        for actor, s in stats.items():
            pid = s.get("pid") if isinstance(s, dict) else None
            if isinstance(pid, int):
                mb = rss_mb(pid)
                if mb is not None:
                    self.samples.append({"t": t, "actor": actor, "pid": pid, "rss_mb": round(mb, 1)})
        mb = rss_mb(os.getpid())
        self.samples.append({"t": t, "actor": "driver", "pid": os.getpid(), "rss_mb": round(mb or 0.0, 1)})
        return now - self.start >= self.seconds


def growth(samples: list[dict[str, Any]], warmup_s: float) -> list[dict[str, Any]]:
    """Per actor, its longest-lived process: RSS at the first sample `warmup_s` after that process's first
    sample, at its last, and the growth in between."""
    series: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for s in samples:
        series[(s["actor"], s["pid"])].append((s["t"], s["rss_mb"]))
    best: dict[str, tuple[float, list[tuple[float, float]]]] = {}
    for (actor, _pid), points in series.items():
        life = points[-1][0] - points[0][0]
        if actor not in best or life > best[actor][0]:
            best[actor] = (life, points)
    out = []
    for actor, (life, points) in sorted(best.items()):
        warm = [p for p in points if p[0] - points[0][0] >= warmup_s]
        if len(warm) < 2:
            out.append({"actor": actor, "life_s": round(life), "after_warmup_mb": None, "end_mb": points[-1][1]})
            continue
        first, last = warm[0][1], warm[-1][1]
        out.append(
            {
                "actor": actor,
                "life_s": round(life),
                "processes": sum(1 for a, _ in series if a == actor),
                "after_warmup_mb": first,
                "end_mb": last,
                "growth_pct": round(100 * (last - first) / first, 1),
                "measured_s": round(warm[-1][0] - warm[0][0]),
            }
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=5000.0, help="target messages per second, all venues")
    p.add_argument("--chaos", default=DEFAULT_CHAOS)
    p.add_argument("--faults", default="", help="the simulator's --faults SPEC")
    p.add_argument("--redundancy", type=int, default=2)
    p.add_argument("--fused", action="store_true", help="every stage in one actor process (pipeline.fused)")
    p.add_argument("--symbols", type=int, default=3)
    p.add_argument("--venues", default=",".join(VENUES))
    p.add_argument("--warmup-s", type=float, default=120.0)
    p.add_argument("--msgs-per-step", type=float, default=1.7)
    p.add_argument("--out", default="/tmp/xtrader-soak")
    p.add_argument("--reanalyse", metavar="OUT", help="only analyse a finished soak's OUT again")
    args = p.parse_args()
    if args.reanalyse:
        return reanalyse(Path(args.reanalyse))

    from jobs.demo import demo_capture
    from jobs.run import run
    from xtrader.chaos import parse_chaos
    from xtrader.driver.until import StopWhen

    venues = tuple(v for v in args.venues.split(",") if v)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"soak: {out} is not empty")
    steps = args.rate / (len(venues) * args.msgs_per_step)
    capture = demo_capture(
        str(out / "data"),
        symbols=args.symbols,
        rate=steps,
        faults=args.faults,
        redundancy=args.redundancy,
        venues=venues,
    )
    if args.fused:
        from xtrader.config import Capture

        capture = Capture.model_validate(
            {**capture.model_dump(), "pipeline": {**capture.pipeline.model_dump(), "fused": True}}
        )
    sampler = Sampler(args.minutes * 60)
    started = time.monotonic()
    summary = run(
        capture,
        args.minutes * 60 + 300,
        until=StopWhen(check=sampler),
        chaos=parse_chaos(args.chaos),
    )
    wall = time.monotonic() - started
    header = {
        "command": "python benchmarks/soak.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "reanalyse"),
        "capture_s": round(sampler.seconds),
        "wall_s": round(wall),
        # messages the connectors received, every connection counted: divide by redundancy for the feed's
        "received_msgs_per_s": summary["throughput_msgs_per_s"],
        "feed_msgs_per_s": round(summary["throughput_msgs_per_s"] / max(args.redundancy, 1)),
        "chaos": summary["chaos"],
        "events": summary["events"],
        "books": summary["books"],
        "latency_ms": summary["latency_ms"],
        "warmup_s": args.warmup_s,
    }
    entries = {
        f"{table}/{venue}": {
            "sent": e["sent"],
            "accounted": int((e.get("accounted") or {}).get("parquet") or 0),  # per sink, like written
            "summary": {"rest": e["rest"], "written": e["written"]},
        }
        for table, venues_ in summary["tables"].items()
        for venue, e in venues_.items()
    }
    return analyse(out, header, entries, sampler.samples, args.warmup_s)


def analyse(
    out: Path,
    header: dict[str, Any],
    entries: dict[str, dict[str, Any]],
    samples: list[dict[str, Any]],
    warmup_s: float,
) -> int:
    """Parquet under OUT/data against the summary's `entries` ("TABLE/VENUE": sent, accounted, summary.rest), RSS
    growth; writes OUT/soak.json, prints the verdict; 1 when a row is unaccounted for or a keyed row is stored twice.

    Every row on disk is counted, REST snapshot rows included: `on_disk == sent + rest - accounted` per table and
    venue (OKX REST book rows cannot be told from its websocket snapshot rows on disk; the summary's `rest` counts
    them). Duplicates are looked for among websocket rows by each table's key; a sequence-less top-of-book row
    (Deribit's bbo) has no key, so identical ones are counted apart (`identical_seqless_bbo`): the simulator can
    send the same quote twice (A -> B -> A), and the exact count above is what shows none was stored twice."""
    rows: dict[str, dict[str, Any]] = {}
    dup: dict[str, int] = {}
    identical_seqless = 0
    for table in sorted({name.split("/")[0] for name in entries}):
        stored = read(out / "data", table)
        on_disk = counts(stored)
        for name, e in entries.items():
            if not name.startswith(table + "/"):
                continue
            venue = name.split("/", 1)[1]
            expected = int(e["sent"]) + int(e["summary"]["rest"]) - int(e["accounted"])
            rows[name] = {**e, "on_disk": on_disk.get(venue, 0), "unaccounted": expected - on_disk.get(venue, 0)}
        keys = [k for k in KEYS.get(table, KEYS["l2"]) if k in stored.column_names]
        websocket = websocket_rows(stored, table)
        if table == "bbo":
            seqless = pc.is_null(websocket.column("seq"))
            identical_seqless = duplicates(websocket.filter(seqless), keys)
            websocket = websocket.filter(pc.invert(seqless))
        dup[table] = duplicates(websocket, keys)
    rss = growth(samples, warmup_s)
    actors = [r for r in rss if r["actor"] != "driver" and r.get("growth_pct") is not None]
    driver = next((r for r in rss if r["actor"] == "driver"), {})
    result = {
        **header,
        "unaccounted_rows": sum(abs(r["unaccounted"]) for r in rows.values()),
        "duplicates": dup,
        "identical_seqless_bbo": identical_seqless,
        "rss": rss,
        "tables": rows,
    }
    (out / "soak.json").write_text(json.dumps({**result, "samples": samples}, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "tables"}, indent=1))
    bad = result["unaccounted_rows"] != 0 or any(dup.values())
    worst = max(actors, key=lambda r: r["growth_pct"], default={"actor": None, "growth_pct": None})
    print(
        f"soak: unaccounted rows {result['unaccounted_rows']}, duplicates {dup} (identical sequence-less bbo rows "
        f"{identical_seqless}), worst actor RSS growth {worst['growth_pct']} % ({worst['actor']}), driver (and the "
        f"simulator in it) {driver.get('growth_pct')} %"
    )
    return 1 if bad else 0


def reanalyse(out: Path) -> int:
    """`analyse` again over a finished soak's OUT (its soak.json and data)."""
    old = json.loads((out / "soak.json").read_text())
    header = {k: v for k, v in old.items() if k in HEADER}
    if "warmup_s" not in header:  # a soak.json written before the field was kept: the command has it
        header["warmup_s"] = float(old["command"].split("--warmup-s ")[1].split()[0])
    entries = {
        name: {"sent": r["sent"], "accounted": r["accounted"], "summary": r["summary"]}
        for name, r in old["tables"].items()
    }
    return analyse(out, header, entries, old["samples"], header["warmup_s"])


if __name__ == "__main__":
    raise SystemExit(main())
