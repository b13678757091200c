"""`xtrader_e2e`: the whole pipeline on a local Ray, on the benchmark feed over wss.

The capture is built and started with the driver's own functions (`jobs.fleet.start` / `stop`):
connector actors (one per USD-M route) -> arbiter (redundant streams only) -> order-book actor -> Parquet
sink actor, with `pipeline.latency_mode` as given. CPU is read with psutil on the pids of those actors (asked
of each actor), never the feed's or the driver's.

- throughput: a fresh feed with a pool of pre-encoded steps, paused until every stream is subscribed; the
  wall window runs from `resume()` until the Parquet sink has accepted every row the feed sent (plus the
  REST snapshot rows). The capture is then drained and its sink closed; `cpu_s` runs until the close
  returned (the last rows are on disk), `cpu_s_to_accepted` only to the end of the wall window. The rows
  are counted on disk: written == sent + rest. `events` are the capture summary's (gaps, resyncs,
  reconnects, rejects, duplicates, drops).
- latency: a fresh feed generating live at `rate` msg/s; after `warmup_s` the sinks' code-latency (receipt
  -> the sink accepted the row) and overall-latency (sink wall time - exchange time) histograms are read,
  and again `seconds` later; the figures are those of the observations in between. `book` is the book
  actor's code latency (receipt -> the message applied to the book), over the same interval.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from actors._wire import RAY_SYSTEM_CONFIG, install
from xtrader.bench.cpu import CpuMeter
from xtrader.bench.feed import VENUE, Feed, FeedOptions, streams
from xtrader.bench.limits import wait_sent, wait_subscribed
from xtrader.bench.report import rates
from xtrader.config import LatencyMode, Transport, WalMode

TABLES: tuple[Literal["trades", "l2"], ...] = ("trades", "l2")
#: Ray options of the local Ray the bench starts (workers trust the feeds' CAs through SSL_CERT_FILE)
NUM_CPUS = 8


def init_ray(ca_bundle: str) -> None:
    import logging

    import ray

    ray.init(
        num_cpus=NUM_CPUS,
        include_dashboard=False,
        namespace="xtrader-bench",
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"SSL_CERT_FILE": ca_bundle}},
        _system_config=dict(RAY_SYSTEM_CONFIG),  # batches inline, as a capture's own Ray (`actors._wire`)
    )
    install()  # the batches this process hands to actors travel as the actors' own do


def trust(ca_bundle: str, feed: Feed) -> None:
    """Add the feed's CA to the bundle the Ray workers trust (read when a connector is created)."""
    with open(ca_bundle, "a", encoding="utf-8") as out:
        out.write(Path(feed.ca_file).read_text(encoding="utf-8") + "\n")


def capture_of(
    feed: Feed,
    out: str,
    latency_mode: LatencyMode,
    streams: int = 1,
    tables: tuple[Literal["trades", "l2"], ...] = TABLES,
    wal: WalMode = "os",
    transport: Transport = "picows",
    fused: bool = False,
) -> Any:
    """One stream over the feed's symbols, or `streams` streams (`s0`, `s1`...) each with its own share; `wal`:
    the Parquet sink's write-ahead log (`ParquetSink.wal`); `transport`: the connectors' (`Pipeline.ws_transport`);
    `fused`: every stage in one actor process (`Pipeline.fused`)."""
    from xtrader.config import Capture, Cluster, Metrics, ParquetSink, Pipeline, Sinks, Stream

    shares = [tuple(feed.symbols[i::streams]) for i in range(streams)]
    return Capture(
        name="bench",
        streams=tuple(
            Stream(
                name=f"s{i}" if streams > 1 else None,
                venue=VENUE,
                symbols=share,
                tables=tables,
                ws_base=feed.urls["wss"],
                rest_base=feed.urls["rest"],
            )
            for i, share in enumerate(shares)
        ),
        pipeline=Pipeline(connector_cpus=1.0, latency_mode=latency_mode, ws_transport=transport, fused=fused),
        sinks=Sinks(parquet=ParquetSink(root=out, wal=wal)),
        cluster=Cluster(num_cpus=NUM_CPUS),
        metrics=Metrics(enabled=False, live_table=False),
    )


def actor_pids(running: Any) -> dict[str, int]:
    """The pid of every connector, arbiter, book and sink actor (the controller only answers the driver)."""
    import ray

    handles = running.all()
    pids = ray.get([h.__ray_call__.remote(lambda self: os.getpid()) for h in handles.values()], timeout=60)
    return dict(zip(handles, pids, strict=True))


def sink_rows(running: Any) -> tuple[int, int]:
    """(rows the Parquet sink accepted, of which from REST snapshots) over TABLES."""
    import ray

    stats = ray.get(running.sinks["sink/parquet"].accepted.remote(), timeout=60)  # polled: no histograms
    rows = sum(int(stats.get("rows", {}).get(t, {}).get(VENUE, 0)) for t in TABLES)
    rest = sum(int(stats.get("origins", {}).get("rest", {}).get(t, {}).get(VENUE, 0)) for t in TABLES)
    return rows, rest


def of_actors(snapshot: Any, name: str, actor_prefix: str) -> Any:
    """One histogram merging the series `name` of the actors whose name starts with `actor_prefix`.

    Code latency is recorded twice: by the sinks (receipt -> the sink accepted the row) and by the book
    actor (receipt -> the book applied the message); the bench's figure is the sinks'.
    """
    from xtrader.histogram import Histogram

    merged = Histogram()
    for series in snapshot.get("histograms", ()):
        if series["name"] == name and str(series["actor"]).startswith(actor_prefix):
            merged.merge(Histogram.from_dict(series["value"]))
    return merged


def rows_on_disk(root: str) -> int:
    import pyarrow.dataset as ds

    total = 0
    for table in TABLES:
        if (Path(root) / table).exists():
            total += ds.dataset(Path(root) / table, format="parquet", partitioning="hive").count_rows()
    return total


def sent_rows(state: dict[str, Any]) -> int:
    return sum(int(n) for t in TABLES for n in state["unique"].get(t, {}).values())


def throughput(
    ca_bundle: str,
    steps: int,
    symbols: int,
    latency_mode: LatencyMode = "realtime",
    timeout_s: float = 600.0,
    *,
    split: int = 1,
    tables: tuple[Literal["trades", "l2"], ...] = TABLES,
    inspect: Callable[[str, Any], dict[str, Any]] | None = None,
    wal: WalMode = "os",
    transport: Transport = "picows",
    fused: bool = False,
) -> dict[str, Any]:
    """`split` streams share the symbols (benchmarks/scale.py); `inspect(out, final)` reads the Parquet root and
    the final stats before they go (`result["inspect"]`). `cpu_s_by` is each actor's CPU, the feed's and this
    driver's, to the end of the wall window."""
    from jobs.fleet import start, stop, teardown
    from xtrader.driver.totals import aggregate
    from xtrader.plan import build_plan

    inspected: dict[str, Any] = {}
    with Feed(FeedOptions(symbols=symbols, pregenerate=steps)) as feed, tempfile.TemporaryDirectory() as out:
        trust(ca_bundle, feed)
        capture = capture_of(feed, out, latency_mode, split, tables, wal, transport, fused)
        running = start(capture, build_plan(capture))
        try:
            pids = actor_pids(running)
            wait_subscribed(feed, len(feed.symbols) * len(tables))
            time.sleep(1.0)  # the connectors' REST snapshots, while the market stands still
            others = {"feed": feed.pid, "driver": os.getpid()}
            meter = CpuMeter([*pids.values(), *others.values()])
            meter.start()
            started = time.monotonic()
            feed.resume()
            sent = wait_sent(feed, timeout_s)
            state = feed.state()
            expected = sent_rows(state)
            deadline = time.monotonic() + timeout_s
            while True:
                rows, rest = sink_rows(running)
                if rows >= expected + rest:
                    done = time.monotonic()
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"xtrader_e2e: {rows} of {expected} + {rest} rows accepted in {timeout_s:g} s")
                time.sleep(0.01)
            by_pid = meter.stop_by_pid()
            processes = set(pids.values())  # a fused capture's stages share one
            accepted_cpu = sum(by_pid.get(pid, 0.0) for pid in processes)
            final = stop(running)  # drain, and close the sink: the last rows go to disk
            cpu = sum(meter.stop_by_pid().get(pid, 0.0) for pid in processes)
        finally:
            teardown(running)
        written = rows_on_disk(out)
        if inspect is not None:
            inspected = inspect(out, final)
    result = rates(sent, done - started, cpu)
    result["cpu_s_to_accepted"] = round(accepted_cpu, 4)
    events = aggregate(final)["events"]  # what the capture summary reports: gaps, resyncs, reconnects...
    result.update(
        {
            "rows": {"sent": expected, "rest": rest, "written": written, "complete": written == expected + rest},
            "steps_per_frame": round(steps / sent, 4) if sent else None,
            "actors": sorted(pids),
            "pids": pids,  # a fused capture's stages share one process
            "events": events,
            "cpu_s_by": {name: round(by_pid.get(pid, 0.0), 4) for name, pid in {**pids, **others}.items()},
            "inspect": inspected,
        }
    )
    return result


def latency(
    ca_bundle: str,
    rate: float,
    steps_per_frame: float,
    symbols: int,
    warmup_s: float,
    seconds: float,
    latency_mode: LatencyMode = "realtime",
    wal: WalMode = "os",
    transport: Transport = "picows",
    fused: bool = False,
) -> dict[str, Any]:
    """Code and overall latency at `rate` frames/s (live market), after `warmup_s`, over `seconds`."""
    import ray

    from jobs.fleet import start, stop, teardown
    from xtrader import metrics
    from xtrader.plan import build_plan

    def histograms() -> tuple[Any, Any, Any, int]:
        stats = ray.get(running.controller.stats.remote(), timeout=60)
        snapshots = [s["metrics"] for s in stats.values() if isinstance(s, dict) and isinstance(s.get("metrics"), dict)]
        merged = metrics.merge(snapshots)
        return (
            of_actors(merged, metrics.CODE_LATENCY, "sink/"),
            of_actors(merged, metrics.CODE_LATENCY, "book/"),
            of_actors(merged, metrics.OVERALL_LATENCY, "sink/"),
            metrics.total(merged, metrics.MESSAGES),
        )

    with Feed(FeedOptions(symbols=symbols, rate=rate * steps_per_frame)) as feed, tempfile.TemporaryDirectory() as out:
        trust(ca_bundle, feed)
        capture = capture_of(feed, out, latency_mode, wal=wal, transport=transport, fused=fused)
        running = start(capture, build_plan(capture))
        try:
            wait_subscribed(feed, len(streams(feed.symbols)))
            feed.resume()
            time.sleep(warmup_s)
            code0, book0, overall0, messages0 = histograms()
            sent0, t0 = feed.state()["messages"], time.monotonic()
            time.sleep(seconds)
            code1, book1, overall1, messages1 = histograms()
            sent1, t1 = feed.state()["messages"], time.monotonic()
            feed.pause()
            stop(running)
        finally:
            teardown(running)
    code = metrics.latency_ms(code1.since(code0))
    overall = metrics.latency_ms(overall1.since(overall0))
    book = metrics.latency_ms(book1.since(book0))
    return {
        "rate_msgs_per_s": round((sent1 - sent0) / (t1 - t0), 1),
        "messages": messages1 - messages0,
        "p50_ms": code["p50"],
        "p99_ms": code["p99"],
        "p999_ms": code["p999"],
        "overall": {"p50_ms": overall["p50"], "p99_ms": overall["p99"], "p999_ms": overall["p999"]},
        "book": {"p50_ms": book["p50"], "p99_ms": book["p99"], "p999_ms": book["p999"]},
    }
