"""The capture driver: validate -> plan -> placement groups -> actors -> metrics -> drain -> summary.

`python -m jobs.capture --config FILE` is the `ray job submit` entrypoint;
`xtrader capture FILE` and `xtrader demo` call `run()` in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.until import StopWhen, caught_up
from xtrader.config import Capture
from xtrader.errors import ConfigError, XtraderError
from xtrader.plan import Endpoint, Plan, build_plan

log = logging.getLogger("xtrader.capture")

SUMMARY_PREFIX = "xtrader-summary: "
#: the sinks, in summary order
SINK_KINDS = ("parquet", "questdb")
#: exit statuses
EXIT_OK, EXIT_CONFIG, EXIT_PLACEMENT, EXIT_FAILED = 0, 2, 3, 1
#: after the simulator stopped sending: the longest the driver waits for the pipeline to store what was sent,
#: and how long nothing may move before it stops waiting (rows lost to a fault never arrive)
SETTLE_TIMEOUT_S = 60.0
SETTLE_QUIET_S = 3.0


class PlacementTimeout(XtraderError):
    """Placement groups still pending after the timeout (the cluster cannot, or not yet, hold them)."""

    terminal = True


# -- configuration -------------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> Capture:
    """Read a YAML / JSON capture file, apply the environment (`XTRADER_<NAME>` and the documented aliases,
    see `xtrader.config.load_config`) and `overrides` (command-line values), validate the whole of it.

    Raises:
        ConfigError: unreadable file or invalid configuration (the message names the field and value).
    """
    from xtrader.config import load_config as load

    return load(Path(path), overrides=overrides)


# -- the simulator, in a thread of the driver ------------------------------------------------------------------


class SimulatorThread:
    """Runs `xtrader.simulator.Simulator` on its own event loop in a daemon thread."""

    def __init__(self, **options: Any) -> None:
        from xtrader.simulator.server import Simulator

        self.sim = Simulator(**options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="xtrader-simulator", daemon=True)

    def start(self) -> dict[str, Endpoint]:
        self.thread.start()
        self.call(self.sim.start())
        return {name: Endpoint(urls["ws"], urls["rest"]) for name, urls in self.sim.urls.items()}

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn: Any, *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)

        return self.call(wrapper())

    def pause(self) -> None:
        """Stop the markets at a message boundary and wait until every send queue is empty."""
        self.run(self.sim.pause)
        with contextlib.suppress(TimeoutError):
            self.call(self.sim.drain(10.0))

    def stats(self) -> dict[str, Any]:
        return self.run(self.sim.stats)  # type: ignore[no-any-return]

    def book(self, venue: str, symbol: str, depth: int = 20) -> dict[str, Any]:
        return self.run(self.sim.book, venue, symbol, depth)  # type: ignore[no-any-return]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.sim.stop(), timeout=10.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)


def simulator_for(capture: Capture) -> SimulatorThread | None:
    """The simulator a capture asks for (serving the venues of its simulated streams), or None."""
    sim = capture.simulator
    if sim is None or not sim.enabled:
        return None
    from xtrader.simulator.registry import VENUES as SIMULATED

    # every venue it can simulate, whatever the streams: a venue can be subscribed at run time
    venues = sorted(SIMULATED)
    try:
        return SimulatorThread(
            venues=venues,
            symbols=sim.symbols,
            rate=sim.rate,
            seed=sim.seed,
            faults=sim.faults or None,
            host=sim.host,
            port=sim.port,
            depth=sim.depth,
            venue_options=sim.options,
        )
    except ValueError as exc:
        raise ConfigError(f"simulator: {exc}") from None


# -- the running capture -----------------------------------------------------------------------------------------


@dataclass
class Running:
    """Handles of everything the driver created."""

    plan: Plan
    groups: dict[str, Any] = field(default_factory=dict)
    sinks: dict[str, Any] = field(default_factory=dict)
    books: dict[str, Any] = field(default_factory=dict)
    arbiters: dict[str, Any] = field(default_factory=dict)
    connectors: dict[str, Any] = field(default_factory=dict)
    controller: Any = None
    added_streams: list[dict[str, Any]] = field(default_factory=list)  # streams started at run time

    def all(self) -> dict[str, Any]:
        return {**self.sinks, **self.books, **self.arbiters, **self.connectors}


def wait_for_placement(groups: dict[str, Any], timeout_s: float) -> None:
    """Wait for every placement group; raise PlacementTimeout naming the pending ones (never hang)."""
    import ray

    ready = {group.ready(): name for name, group in groups.items()}
    _, pending = ray.wait(list(ready), num_returns=len(ready), timeout=timeout_s)
    if pending:
        names = sorted(ready[ref] for ref in pending)
        raise PlacementTimeout(
            f"{len(names)} placement group(s) still pending after {timeout_s:g} s: {', '.join(names)}; "
            "the cluster lacks the CPUs (or nodes, for STRICT_SPREAD) they need: add nodes, lower "
            "pipeline.connector_cpus, or raise cluster.placement_timeout_s"
        )


def start(capture: Capture, plan: Plan) -> Running:
    """Create placement groups and every actor, wire them, start the connectors."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from actors import actor, actor_name, name_prefix
    from actors.controller import CONTROLLER_NAME, ControllerActor
    from actors.grow import create_stream_actors
    from actors.sink import SinkActor, writer_id

    pipeline = capture.pipeline
    running = Running(plan)
    for group in plan.placement_groups:
        running.groups[group.id] = placement_group(
            [dict(b) for b in group.bundles], strategy=group.strategy, name=f"{capture.name}:{group.id}"
        )
    try:
        wait_for_placement(running.groups, capture.cluster.placement_timeout_s)
    except PlacementTimeout:
        for group in running.groups.values():
            remove_placement_group(group)
        raise
    try:
        prefix = name_prefix(capture.name)  # every actor is named: its peers look it up (restart-safe arguments)
        for spec in plan.sinks:
            running.sinks[spec.id] = actor(SinkActor, num_cpus=spec.cpus, name=actor_name(prefix, spec.id)).remote(
                spec, writer_id(capture.name)
            )
        made = create_stream_actors(pipeline, plan, running.groups, prefix)
        running.books.update(made.books)
        running.arbiters.update(made.arbiters)
        running.connectors.update(made.connectors)
        wiring = []
        for book_spec in plan.books:
            venue_connectors = [c for c in plan.connectors if c.venue == book_spec.venue]
            handles = {c.id: running.connectors[c.id] for c in venue_connectors}
            carriers = {c.id: sorted({s.symbol for s in c.subscriptions if s.table == "l2"}) for c in venue_connectors}
            wiring.append(running.books[book_spec.id].set_connectors.remote(handles, carriers))
        for arbiter_spec in plan.arbiters:
            wiring.append(running.arbiters[arbiter_spec.id].register.remote(list(arbiter_spec.inputs)))
        ray.get(wiring, timeout=capture.cluster.placement_timeout_s)
        streams = {
            s.id: {
                "venue": s.venue,
                "tables": list(s.tables),
                "symbols": list(s.symbols),
                "connectors": [c.id for c in plan.connectors if c.stream == s.id],
                # where the venue is served (the controller reads its instrument list to check run-time requests)
                "ws_base": next((c.ws_base for c in plan.connectors if c.stream == s.id), None),
                "rest_base": next((c.rest_base for c in plan.connectors if c.stream == s.id), None),
            }
            for s in capture.streams
        }
        groups = {c.id: f"{capture.name}:{c.placement_group}" for c in plan.connectors}
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(CONTROLLER_NAME))  # a previous capture's controller
        running.controller = actor(ControllerActor, name=CONTROLLER_NAME).remote(capture.name, prefix)
        ray.get(running.controller.register.remote(running.all(), streams, groups))
        # every service actor constructed (a bad sink configuration fails here, not mid-stream) before data flows
        services = {**running.sinks, **running.books, **running.arbiters}
        ray.get([handle.stats.remote() for handle in services.values()], timeout=capture.cluster.placement_timeout_s)
        ray.get([handle.start.remote() for handle in running.connectors.values()])
    except BaseException:
        # nothing of a start that failed half-way stays behind: a retry (or the next capture on this
        # cluster) would find its placement groups' and actors' names taken
        teardown(running)
        raise
    return running


def stop(running: Running, timeout_s: float = 60.0) -> dict[str, Any]:
    """Drain in data-flow order and close every sink; returns every actor's final stats."""
    import ray

    def wait(refs: list[Any]) -> list[Any]:
        out = []
        for ref in refs:
            try:
                out.append(ray.get(ref, timeout=timeout_s))
            except Exception as exc:  # one stuck actor must not keep the others' data from being flushed
                log.error("drain: %r", exc)
                out.append({"error": repr(exc)})
        return out

    final: dict[str, Any] = {}
    try:  # connectors the control plane stopped at run time (unsubscribed from everything): their final stats
        retired = ray.get(running.controller.retired_connectors.remote(), timeout=10)
    except Exception:
        retired = {}
    final.update(retired)
    try:  # what run-time subscriptions started: drained, flushed and summarised with the rest
        added = ray.get(running.controller.added_actors.remote(), timeout=10)
    except Exception:
        added = {}
    for kind in ("connectors", "arbiters", "books"):
        getattr(running, kind).update(added.get(kind, {}))
    running.added_streams = list(added.get("streams", []))
    names = [n for n in running.connectors if n not in retired]
    for name, stats in zip(names, wait([running.connectors[n].stop.remote() for n in names]), strict=True):
        final[name] = stats
    wait([a.drain.remote() for a in running.arbiters.values()])
    wait([b.drain.remote() for b in running.books.values()])
    for group in (running.arbiters, running.books):
        names = list(group)
        for name, stats in zip(names, wait([group[n].stats.remote() for n in names]), strict=True):
            final[name] = stats
    names = list(running.sinks)
    for name, stats in zip(names, wait([running.sinks[n].close.remote() for n in names]), strict=True):
        final[name] = stats
    return final


def teardown(running: Running) -> None:
    import ray
    from ray.util.placement_group import remove_placement_group

    for handle in [*running.all().values(), running.controller]:
        if handle is not None:
            with contextlib.suppress(Exception):
                ray.kill(handle)
    for group in running.groups.values():
        with contextlib.suppress(Exception):
            remove_placement_group(group)


# -- metrics --------------------------------------------------------------------------------------------------------


def aggregate(stats: Mapping[str, Any], aggregator: Any = None) -> dict[str, Any]:
    """Totals across actors: rows stored per sink/table/venue (and how many came from REST), events, latency.

    Every actor's `metrics` snapshot goes into `aggregator` (an `xtrader.metrics.Aggregator`, which
    keeps counters monotonic across restarts and serves /metrics); the totals come from it.
    """
    from xtrader import metrics

    aggregator = aggregator or metrics.Aggregator()
    written: dict[str, dict[str, dict[str, int]]] = {}
    rest_rows: dict[str, dict[str, dict[str, int]]] = {}
    for name, s in stats.items():
        if not isinstance(s, dict) or set(s) == {"error"}:
            continue  # an actor that did not answer
        if isinstance(s.get("metrics"), dict):
            aggregator.update(s["metrics"])
        if name.startswith("sink/"):
            kind = s.get("sink", name.split("/", 1)[1])
            # what the sink itself reports as stored (QuestDB: delivered, not spilled), else what it accepted
            writer: dict[str, Any] = s["writer"] if isinstance(s.get("writer"), dict) else {}
            stored = writer.get("rows")
            written[kind] = stored if isinstance(stored, dict) else s.get("rows", {})
            rest_rows[kind] = s.get("origins", {}).get("rest", {})
    snapshot = aggregator.snapshot()
    high_water = max((g["value"] for g in snapshot["gauges"] if g["name"] == metrics.QUEUE_HIGH_WATER), default=0)
    return {
        "written": written,
        "rest_rows": rest_rows,
        "latency": metrics.latency(snapshot, metrics.CODE_LATENCY),
        # per sink (the series' channel is the sink's name): its writer's flush durations
        "sink_flush": {kind: metrics.latency(snapshot, metrics.SINK_FLUSH, channel=kind) for kind in SINK_KINDS},
        "events": {
            "gaps": metrics.total(snapshot, metrics.GAPS),
            "resyncs": metrics.total(snapshot, metrics.RESYNCS),
            "reconnects": metrics.total(snapshot, metrics.RECONNECTS),
            "rejects": metrics.total(snapshot, metrics.REJECTS),
            "duplicates": metrics.total(snapshot, metrics.DUPLICATES),
            "drops": metrics.total(snapshot, metrics.DROPPED_ROWS),
        },
        "messages": metrics.total(snapshot, metrics.MESSAGES),
        "high_water": high_water,
    }


def metrics_latency_ms(histogram: Any) -> dict[str, float | None]:
    from xtrader.metrics import latency_ms

    return latency_ms(histogram)


def live_table(totals: Mapping[str, Any], elapsed: float, throughput: float) -> Any:
    from rich.table import Table

    table = Table(title=f"xtrader capture - {elapsed:.0f} s - {throughput:.0f} msg/s")
    for column in ("sink", "table", "exchange", "rows"):
        table.add_column(column)
    for sink, tables in sorted(totals["written"].items()):
        for name, venues in sorted(tables.items()):
            for exchange, rows in sorted(venues.items()):
                table.add_row(sink, name, exchange, str(rows))
    events = totals["events"]
    latency = metrics_latency_ms(totals["latency"])
    table.caption = " ".join(f"{k}={v}" for k, v in events.items()) + f" latency_ms={latency}"
    return table


# -- ground truth ----------------------------------------------------------------------------------------------------


def _levels(book: Any) -> tuple[list[tuple[float, float]], list[tuple[float, float]]] | None:
    """(bids, asks) from a simulator book in its venue's REST shape."""
    if isinstance(book, dict):
        if "bids" in book and "asks" in book:

            def side(levels: Any) -> list[tuple[float, float]]:
                out = []
                for level in levels:
                    if isinstance(level, dict):
                        out.append((float(level["price"]), float(level["amount"])))
                    else:
                        values = [v for v in level if not isinstance(v, str) or v not in ("new", "change", "delete")]
                        out.append((float(values[0]), float(values[1])))
                return out

            return side(book["bids"]), side(book["asks"])
        for key in ("result", "data"):
            if key in book:
                return _levels(book[key])
    if isinstance(book, list) and book:
        return _levels(book[0])
    return None


def compare_books(
    sim: SimulatorThread, running: Running, depth: int = 20, sim_stats: Mapping[str, Any] | None = None
) -> tuple[int, int, list[str]]:
    """(checked, matched, mismatches): each final book's top `depth` against the simulator's.

    A symbol the simulator sent no l2 message for is not checked (nothing could build its book).
    """
    import ray

    venues = (sim_stats or {}).get("venues", {})

    checked = matched = 0
    mismatches: list[str] = []
    for spec in running.plan.books:
        try:
            tops = ray.get(running.books[spec.id].tops.remote(depth), timeout=30)
        except Exception as exc:
            mismatches.append(f"{spec.venue}: {exc!r}")
            continue
        for symbol in spec.symbols:
            if venues and not venues.get(spec.venue, {}).get("unique", {}).get("l2", {}).get(symbol):
                continue
            raw = sim.book(spec.venue, symbol, depth)
            if not _truth_was_sent(raw, venues.get(spec.venue, {}).get("seq", {}).get(symbol)):
                continue  # the last updates were published but never sent (lost to faults): unverifiable
            checked += 1
            truth = _levels(raw)
            ours = tops.get(symbol)
            if (
                truth is not None
                and ours is not None
                and (list(ours[0]), list(ours[1])) == (truth[0][:depth], truth[1][:depth])
            ):
                matched += 1
            else:
                mismatches.append(f"{spec.venue} {symbol}: {_difference(ours, truth)}")
    return checked, matched, mismatches


def _truth_seq(book: Any) -> int | None:
    """The sequence of the simulator's book in its venue's REST shape (None when it has none)."""
    if isinstance(book, dict):
        for key in ("lastUpdateId", "change_id", "seqId"):
            if key in book:
                return int(book[key])
        for key in ("result", "data"):
            if key in book:
                return _truth_seq(book[key])
    if isinstance(book, list) and book:
        return _truth_seq(book[0])
    return None


def _truth_was_sent(book: Any, sent: Mapping[str, int] | None) -> bool:
    """False when the simulator's book is past the last l2 message it actually wrote to any socket.

    The final update(s) of a symbol may be published and then lost to a fault (dropped, or
    queued on a connection that was killed) with nothing sent after them: no client can learn
    of them, so that book cannot be checked. Unknown sequences are checked.
    """
    seq = _truth_seq(book)
    if seq is None or not sent or sent.get("last") is None:
        return True
    return seq <= int(sent["last"])


def _difference(ours: Any, truth: Any) -> str:
    if ours is None:
        return "no valid book"
    if truth is None:
        return "no simulator book"
    for side, a, b in (("bids", ours[0], truth[0]), ("asks", ours[1], truth[1])):
        for level, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return f"{side}[{level}] {x} != simulator {y}"
        if len(a) != len(b[: len(a)]) or len(a) < min(len(b), 20):
            return f"{side}: {len(a)} levels, simulator {len(b)}"
    return "differs"


def summary(
    capture: Capture,
    duration_s: float,
    *,
    totals: Mapping[str, Any],
    sim_stats: Mapping[str, Any] | None,
    books: tuple[int, int],
    unknown_symbols: list[str],
) -> dict[str, Any]:
    """The final summary object (shape fixed by the issue)."""
    tables: dict[str, dict[str, Any]] = {}
    sinks = {kind: getattr(capture.sinks, kind).enabled for kind in SINK_KINDS}
    captured = sorted({t for s in capture.streams for t in s.tables}, key=["trades", "l2", "bbo"].index)
    venues = sorted({s.venue for s in capture.streams})
    for table in captured:
        tables[table] = {}
        for venue in venues:
            if not any(s.venue == venue and table in s.tables for s in capture.streams):
                continue
            sent = None
            if sim_stats is not None and venue in sim_stats.get("venues", {}):
                sent = int(sum(sim_stats["venues"][venue].get("unique", {}).get(table, {}).values()))
            # written: the rows each sink really holds (REST snapshot rows included, as on disk);
            # rest: the rows that came from REST snapshots, not the wire (written == sent + rest)
            written: dict[str, int | None] = {}
            rest = 0
            for sink, enabled in sinks.items():
                if not enabled:
                    written[sink] = None
                    continue
                written[sink] = int(totals["written"].get(sink, {}).get(table, {}).get(venue, 0))
                rest = max(rest, int(totals["rest_rows"].get(sink, {}).get(table, {}).get(venue, 0)))
            tables[table][venue] = {"sent": sent, "rest": rest, "written": written}
    messages = totals["messages"]
    flush = totals.get("sink_flush", {})
    sinks_out = {sink: {"flush_ms": _p50_p99(flush.get(sink))} if enabled else None for sink, enabled in sinks.items()}
    return {
        "duration_s": round(duration_s, 3),
        "tables": tables,
        "events": dict(totals["events"]),
        "books": {"checked": books[0], "matched": books[1]},
        "latency_ms": metrics_latency_ms(totals["latency"]),
        "throughput_msgs_per_s": round(messages / duration_s, 1) if duration_s > 0 else 0.0,
        "unknown_symbols": unknown_symbols,
        "sinks": sinks_out,
    }


def _p50_p99(histogram: Any) -> dict[str, float | None]:
    """p50 and p99 of a histogram in ms (None when it is empty or absent)."""
    if histogram is None:
        return {"p50": None, "p99": None}
    values = metrics_latency_ms(histogram)
    return {"p50": values["p50"], "p99": values["p99"]}


# -- run ---------------------------------------------------------------------------------------------------------------


def run(
    capture: Capture,
    duration_s: float | None = None,
    *,
    summary_json: str | None = None,
    verbose: bool = False,
    stop_event: threading.Event | None = None,
    ray_init: Mapping[str, Any] | None = None,
    until: StopWhen | None = None,
) -> dict[str, Any]:
    """Run a whole capture and return its summary (also printed, and written to `summary_json`).

    It runs until `duration_s`, a stop request (`stop_event`, SIGINT/SIGTERM, `attach().stop()`), or, with
    `until`, as soon as its condition holds; then the summary has `until`: whether it was met
    (`met`), when (`after_s`) and, if not, what was still missing (`missing`).

    Raises:
        ConfigError: the plan is invalid.
        PlacementTimeout: placement groups stayed pending.
    """
    import ray

    from xtrader.metrics import Aggregator, MetricsServer

    stop_event = stop_event or threading.Event()
    sim = simulator_for(capture)
    endpoints = sim.start() if sim is not None else None
    running: Running | None = None
    aggregator = Aggregator()
    metrics: MetricsServer | None = None
    statsd: Any = None
    try:
        plan = build_plan(capture, endpoints)
        unknown = validate_symbols(capture, plan) if capture.pipeline.validate_symbols else []
        if unknown:
            capture = without_symbols(capture, unknown)
            plan = build_plan(capture, endpoints)
        if not ray.is_initialized():
            options = dict(ray_init or {})
            options.setdefault("address", capture.cluster.address)
            if options["address"] is None and not os.environ.get("RAY_ADDRESS"):
                # a local Ray of our own (under `ray job submit`, RAY_ADDRESS names the cluster)
                options.setdefault("num_cpus", capture.cluster.num_cpus or max(8, int(plan.total_cpus) + 2))
                options.setdefault("include_dashboard", False)
            options.setdefault("namespace", capture.cluster.namespace)
            options.setdefault("log_to_driver", verbose)
            options.setdefault("logging_level", logging.INFO if verbose else logging.WARNING)
            ray.init(**options)
        if capture.metrics.enabled:
            try:
                metrics = MetricsServer(aggregator.snapshot, capture.metrics.host, capture.metrics.port)
                metrics.start()
                print(f"xtrader: metrics on {metrics.url}", file=sys.stderr, flush=True)
            except OSError as exc:
                metrics = None
                print(f"xtrader: metrics endpoint not started: {exc}", file=sys.stderr)
        statsd = open_statsd(capture)
        started = time.monotonic()
        running = start(capture, plan)
        ray.get(running.controller.configure.remote(capture, endpoints))  # streams added at run time are planned so
        missing = _loop(
            capture,
            running,
            started,
            duration_s=duration_s,
            stop_event=stop_event,
            aggregator=aggregator,
            statsd=statsd,
            until=until,
        )
        until_state = None
        if until:
            until_state = {"met": not missing, "after_s": round(time.monotonic() - started, 3), "missing": missing}
            if missing:
                print(f"xtrader: stop condition not met: {'; '.join(missing)}", file=sys.stderr, flush=True)
        if sim is not None:
            sim.pause()
            _settle(running, sim, aggregator)
        duration = time.monotonic() - started
        final = stop(running)
        totals = aggregate(final, aggregator)
        push_statsd(statsd, aggregator)  # the final counts
        books = (0, 0)
        sim_stats = None
        if sim is not None:
            sim_stats = sim.stats()
            checked, matched, mismatches = compare_books(sim, running, capture.pipeline.book_snapshot_depth, sim_stats)
            books = (checked, matched)
            if mismatches:
                print("xtrader: books not matching the simulator: " + "; ".join(mismatches), file=sys.stderr)
        if running.added_streams:  # the summary covers every stream that ran
            from xtrader.config import Stream

            added = tuple(Stream.model_validate(stream) for stream in running.added_streams)
            capture = capture.model_copy(update={"streams": (*capture.streams, *added)})
        result = summary(capture, duration, totals=totals, sim_stats=sim_stats, books=books, unknown_symbols=unknown)
        if until_state is not None:
            result["until"] = until_state
        if verbose:
            print(json.dumps({"actors": final}, default=str)[:20000], file=sys.stderr)
            print_latency(aggregator.snapshot())
        print(SUMMARY_PREFIX + json.dumps(result, separators=(",", ":")), flush=True)
        if summary_json:
            Path(summary_json).parent.mkdir(parents=True, exist_ok=True)
            Path(summary_json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        return result
    finally:
        if metrics is not None:
            metrics.stop()
        if statsd is not None:
            statsd.close()
        if running is not None:
            teardown(running)
        if sim is not None:
            sim.stop()


def _loop(
    capture: Capture,
    running: Running,
    started: float,
    *,
    duration_s: float | None,
    stop_event: threading.Event,
    aggregator: Any,
    statsd: Any = None,
    until: StopWhen | None = None,
) -> list[str]:
    """Aggregate stats every interval (and push them to StatsD) until stopped, or until `until` holds;
    what `until` still missed."""
    import ray

    interval = capture.metrics.interval_s
    live = None
    if capture.metrics.live_table and sys.stdout.isatty():
        from rich.live import Live

        live = Live(refresh_per_second=2)
        live.start()
    missing = ["no stats read yet"] if until else []
    try:
        while not stop_event.is_set():
            elapsed = time.monotonic() - started
            if duration_s is not None and elapsed >= duration_s:
                break
            stop_event.wait(min(interval, max(0.05, (duration_s - elapsed) if duration_s else interval)))
            try:
                stats = ray.get(running.controller.stats.remote(), timeout=10)
                if ray.get(running.controller.should_stop.remote(), timeout=10):
                    break
            except Exception as exc:
                log.warning("stats: %r", exc)
                continue
            _rotate(running)
            _restart_idle(running, stats)
            totals = aggregate(stats, aggregator)
            throughput = sum(aggregator.tick().values())
            push_statsd(statsd, aggregator)
            elapsed = time.monotonic() - started
            if live is not None:
                live.update(live_table(totals, elapsed, throughput))
            if until:
                missing = until.missing(running.plan, stats, totals)
                if not missing:
                    break
    finally:
        if live is not None:
            live.stop()
    return missing


def _settle(running: Running, sim: SimulatorThread, aggregator: Any) -> None:
    """After `sim.pause()`: wait until the sinks stored every row the simulator sent and every book is valid.

    Gives up after SETTLE_TIMEOUT_S, or once nothing moved for SETTLE_QUIET_S (rows lost to a fault, e.g.
    on a killed connection, never arrive); the summary then shows the difference.
    """
    import ray

    books = StopWhen(books_valid=True)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last: Any = None
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            stats = ray.get(running.controller.stats.remote(), timeout=10)
        except Exception as exc:
            log.warning("settle: %r", exc)
            continue
        totals = aggregate(stats, aggregator)
        missing = caught_up(stats, sim.stats()) + books.missing(running.plan, stats, totals)
        if not missing:
            return
        moved = (totals["messages"], totals["written"], missing)
        if moved != last:
            last, quiet_since = moved, time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE_QUIET_S:
            log.warning("settle: still missing, nothing moving: %s", "; ".join(missing))
            return
        time.sleep(0.2)


def open_statsd(capture: Capture) -> Any:
    """The StatsD exporter `metrics.statsd` asks for (an `xtrader.statsd_export.StatsdExporter`), or None.

    A host that does not resolve is reported on stderr and the capture runs without it, as /metrics does.
    """
    address = capture.metrics.statsd
    if not address:
        return None
    from xtrader.statsd_export import StatsdExporter

    try:
        exporter = StatsdExporter(address)
    except OSError as exc:
        print(f"xtrader: StatsD export to {address} not started: {exc}", file=sys.stderr)
        return None
    print(f"xtrader: metrics pushed to StatsD at {exporter.address}", file=sys.stderr, flush=True)
    return exporter


def push_statsd(statsd: Any, aggregator: Any) -> None:
    """Push the aggregated metrics to StatsD (no-op without an exporter); a failure is logged, never raised."""
    if statsd is None:
        return
    try:
        statsd.push(aggregator.snapshot())
    except Exception as exc:  # the capture must not stop for its metrics
        log.warning("statsd: %r", exc)


def print_latency(snapshot: Mapping[str, Any]) -> None:
    """Latency per series (actor, exchange, table) on stderr: where the time goes."""
    from xtrader.histogram import Histogram
    from xtrader.metrics import latency_ms

    for series in snapshot.get("histograms", ()):
        histogram = Histogram.from_dict(series["value"])
        labels = f"{series['actor']} {series['exchange']} {series['channel']}"
        print(f"{series['name']} {labels}: n={histogram.count} {latency_ms(histogram)}", file=sys.stderr)


def _restart_idle(running: Running, stats: Mapping[str, Any]) -> None:
    """A connector Ray restarted after a failure comes back idle: start it again."""
    for connector_id, handle in running.connectors.items():
        s = stats.get(connector_id)
        if isinstance(s, dict) and s.get("started") is False:
            log.warning("%s: restarted by Ray; starting it again", connector_id)
            handle.start.remote()


def _rotate(running: Running) -> None:
    """Ask each redundant stream's arbiter for a connection to replace (rotation) and have it reconnect."""
    import ray

    specs = {a.id: a for a in running.plan.arbiters if a.rotation_interval_s > 0}
    for arbiter_id, spec in specs.items():
        try:
            loser = ray.get(running.arbiters[arbiter_id].rotation_due.remote(), timeout=5)
        except Exception as exc:
            log.warning("%s: rotation: %r", arbiter_id, exc)
            continue
        if loser is not None and loser in running.connectors:
            log.info("%s: replacing %s, the connection winning least", spec.stream, loser)
            running.connectors[loser].rotate.remote(f"won least of {len(spec.inputs)} redundant connections")


def validate_symbols(capture: Capture, plan: Plan) -> list[str]:
    """Requested symbols the venue's instrument list does not know (`venue:symbol`); [] when it cannot be read."""
    import httpx

    from xtrader.venues import venue as make_venue

    unknown: list[str] = []
    bases = {c.stream: (c.venue, c.ws_base, c.rest_base) for c in plan.connectors}
    for stream in capture.streams:
        name, ws_base, rest_base = bases[stream.id]
        v = make_venue(name, ws_base, rest_base)
        urls = v.instruments_request()
        if not urls:
            continue
        known: set[str] = set()
        try:
            for url in urls:
                response = httpx.get(url, timeout=10.0)
                response.raise_for_status()
                known |= v.parse_instruments(response.content)
        except Exception as exc:
            log.warning("%s: instrument list unavailable (%r); symbols not checked", stream.id, exc)
            continue
        unknown.extend(f"{name}:{s}" for s in stream.symbols if s not in known)
    if unknown:
        print(f"xtrader: unknown symbols, not subscribed: {', '.join(unknown)}", file=sys.stderr)
    return unknown


def without_symbols(capture: Capture, unknown: list[str]) -> Capture:
    """The capture minus `venue:symbol` entries; ConfigError when a stream is left with none."""
    data = capture.model_dump()
    for index, stream in enumerate(data["streams"]):
        kept = [s for s in stream["symbols"] if f"{stream['venue']}:{s}" not in unknown]
        if not kept:
            raise ConfigError(f"streams[{index}].symbols: none is known to {stream['venue']}: {stream['symbols']}")
        stream["symbols"] = kept
    return Capture.model_validate(data)


def install_signal_handlers(stop_event: threading.Event) -> None:
    """SIGINT / SIGTERM stop the capture cleanly (drain and flush)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_event.set())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.capture", description="Run an xtrader capture on Ray.")
    add_capture_arguments(parser)
    parser.add_argument("--config", required=True, help="capture configuration (YAML or JSON)")
    return parser


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `python -m jobs.capture` and `xtrader capture`."""
    parser.add_argument("--duration", type=float, default=None, help="seconds to run, at most (default: until stopped)")
    add_until_arguments(parser)
    parser.add_argument("--summary-json", default=None, help="also write the final summary to this file")
    parser.add_argument("--latency-mode", choices=("realtime", "archival"), default=None, help="batching preset")
    parser.add_argument("--lossy", action="store_true", help="drop batches instead of blocking (counted)")
    parser.add_argument("--verbose", action="store_true", help="log actor output and details")


def add_until_arguments(parser: argparse.ArgumentParser) -> None:
    """Stop conditions (`xtrader capture`, `python -m jobs.capture`, `xtrader demo`)."""
    parser.add_argument(
        "--min-rows",
        type=int,
        default=0,
        metavar="N",
        help="stop once every table (trades, l2, bbo) of every venue has N rows from the venue's stream in every "
        "sink; with --duration, exit 1 if that did not happen in time",
    )
    parser.add_argument(
        "--until-books-valid",
        action="store_true",
        help="stop once every subscribed symbol has a valid order book (with --min-rows: both); "
        "with --duration, exit 1 if that did not happen in time",
    )


def until_from(args: argparse.Namespace) -> StopWhen | None:
    """The stop condition the flags ask for (None: none)."""
    if args.min_rows < 0:
        raise ConfigError(f"--min-rows: must be >= 0, got {args.min_rows}")
    until = StopWhen(min_rows=args.min_rows, books_valid=args.until_books_valid)
    return until if until else None


def until_met(result: Mapping[str, Any]) -> bool:
    """False when the run had a stop condition that did not hold before --duration ran out."""
    return bool(result.get("until", {}).get("met", True))


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.latency_mode:
        out["latency_mode"] = args.latency_mode
    if args.lossy:
        out["policy"] = "lossy"
    return out


def run_file(path: str, args: argparse.Namespace) -> int:
    """Load, validate and run a capture file; the process exit status."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        capture = load_config(path, overrides_from(args))
        until = until_from(args)
    except ConfigError as exc:
        print(f"xtrader capture: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    stop_event = threading.Event()
    install_signal_handlers(stop_event)
    try:
        result = run(
            capture,
            args.duration,
            summary_json=args.summary_json,
            verbose=args.verbose,
            stop_event=stop_event,
            until=until,
        )
    except ConfigError as exc:
        print(f"xtrader capture: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except PlacementTimeout as exc:
        print(f"xtrader capture: {exc}", file=sys.stderr)
        return EXIT_PLACEMENT
    return EXIT_OK if until_met(result) else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_file(args.config, args)


if __name__ == "__main__":
    raise SystemExit(main())
