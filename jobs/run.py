"""One capture, start to summary: validate -> plan -> placement groups -> actors -> metrics -> drain -> summary."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actors import _wire
from jobs.chaos import ChaosThread
from jobs.fleet import PlacementTimeout, Running, book_tops, start, stop, teardown
from jobs.watch import settle, watch
from xtrader.chaos import Chaos
from xtrader.config import Capture
from xtrader.driver.jobstop import stop_wait_warning
from xtrader.driver.simthread import simulator_for
from xtrader.driver.summary import SUMMARY_PREFIX, print_latency, summary
from xtrader.driver.symbols import validate_symbols, without_symbols
from xtrader.driver.totals import aggregate
from xtrader.driver.truth import compare_books
from xtrader.driver.until import StopWhen
from xtrader.errors import ConfigError
from xtrader.plan import build_plan
from xtrader.statsd_export import open_statsd, push_statsd

log = logging.getLogger("xtrader.capture")

#: exit statuses
EXIT_OK, EXIT_CONFIG, EXIT_PLACEMENT, EXIT_FAILED = 0, 2, 3, 1


def init_options(
    capture: Capture, total_cpus: float, ray_init: Mapping[str, Any] | None = None, verbose: bool = False
) -> dict[str, Any]:
    """`ray.init`'s arguments: the configured cluster, RAY_ADDRESS (`ray job submit` sets it), or a new local Ray
    of our own: `address="local"`, since `address=None` joins any Ray another user started on the machine
    with `ray start` (and then fails, as `num_cpus` may not be given to an existing cluster, or its token
    differs)."""
    options = dict(ray_init or {})
    options.setdefault("address", capture.cluster.address)
    if options["address"] is None and not os.environ.get("RAY_ADDRESS"):
        options["address"] = "local"
        options.setdefault("num_cpus", capture.cluster.num_cpus or max(8, int(total_cpus) + 2))
        options.setdefault("include_dashboard", False)
        options.setdefault("_system_config", dict(_wire.RAY_SYSTEM_CONFIG))  # batches inline (`actors._wire`)
    options.setdefault("namespace", capture.cluster.namespace)
    options.setdefault("log_to_driver", verbose)
    options.setdefault("logging_level", logging.INFO if verbose else logging.WARNING)
    return options


def run(
    capture: Capture,
    duration_s: float | None = None,
    *,
    summary_json: str | None = None,
    verbose: bool = False,
    stop_event: threading.Event | None = None,
    ray_init: Mapping[str, Any] | None = None,
    until: StopWhen | None = None,
    handle_signals: bool = False,
    chaos: Chaos | None = None,
) -> dict[str, Any]:
    """Run a whole capture and return its summary (also printed, and written to `summary_json`).

        It runs until `duration_s`, a stop request (`stop_event`, SIGINT/SIGTERM, `attach().stop()`), or, with
        `until`, as soon as its condition holds; then the summary has `until`: whether it was met
        (`met`), when (`after_s`) and, if not, what was still missing (`missing`). With `handle_signals`,
        SIGINT / SIGTERM set `stop_event` (installed again once Ray started: `ray.init` installs a handler of
        its own that aborts the process on SIGTERM, before any sink is closed). `chaos`: process faults to inject
    while it runs (`xtrader demo --chaos`), each an `events` row, counted in the summary's `chaos`.

        Raises:
            ConfigError: the plan is invalid.
            PlacementTimeout: placement groups stayed pending.
    """
    import ray

    from xtrader.metrics import Aggregator, MetricsServer

    stop_event = stop_event or threading.Event()
    if handle_signals:
        install_signal_handlers(stop_event)
    sim = simulator_for(capture)
    endpoints = sim.start() if sim is not None else None
    running: Running | None = None
    stopped = False
    chaos_thread: ChaosThread | None = None
    chaos_counts: dict[str, int] = {}
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
            ray.init(**init_options(capture, plan.total_cpus, ray_init, verbose))
        if handle_signals:
            install_signal_handlers(stop_event)
        if capture.metrics.enabled:
            try:
                metrics = MetricsServer(aggregator.snapshot, capture.metrics.host, capture.metrics.port)
                metrics.start()
                print(f"xtrader: metrics on {metrics.url}", file=sys.stderr, flush=True)
            except OSError as exc:
                metrics = None
                print(f"xtrader: metrics endpoint not started: {exc}", file=sys.stderr)
        statsd = open_statsd(capture)
        running = start(capture, plan)
        ray.get(running.controller.configure.remote(capture, endpoints))  # streams added at run time are planned so
        started = time.monotonic()  # --duration is the time the capture runs, its start-up not included
        if chaos:
            chaos_thread = ChaosThread(chaos, running, started)
            chaos_thread.start()
        missing = watch(
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
        if chaos_thread is not None:  # no fault once the capture is over: the pipeline settles and drains
            chaos_counts = chaos_thread.stop()
        if sim is not None:
            sim.pause()
            settle(running, sim, aggregator)
        duration = time.monotonic() - started
        final = stop(running)
        stopped = True
        totals = aggregate(final, aggregator)
        push_statsd(statsd, aggregator)  # the final counts
        books = (0, 0)
        sim_stats = None
        if sim is not None:
            sim_stats = sim.stats()
            depth = capture.pipeline.book_snapshot_depth
            checked, matched, mismatches = compare_books(sim, running.plan, book_tops(running, depth), depth, sim_stats)
            books = (checked, matched)
            if mismatches:
                print("xtrader: books not matching the simulator: " + "; ".join(mismatches), file=sys.stderr)
        if running.added_streams:  # the summary covers every stream that ran
            from xtrader.config import Stream

            added = tuple(Stream.model_validate(stream) for stream in running.added_streams)
            capture = capture.model_copy(update={"streams": (*capture.streams, *added)})
        result = summary(
            capture,
            duration,
            totals=totals,
            sim_stats=sim_stats,
            books=books,
            unknown_symbols=unknown,
            chaos=chaos_counts,
        )
        if until_state is not None:
            result["until"] = until_state
        if verbose:
            print(json.dumps({"actors": final}, default=str)[:20000], file=sys.stderr)
            print_latency(aggregator.snapshot())
        if sys.stdout.isatty():  # for people; the JSON line below is for scripts
            from rich.console import Console

            from xtrader.driver.summary_view import summary_renderable

            Console().print(summary_renderable(result))
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
        if chaos_thread is not None:
            chaos_thread.stop()
        if running is not None:
            if not stopped:  # an error before the drain: still drain and close every sink before the teardown
                try:
                    stop(running)
                except Exception as exc:
                    log.error("stop after a failure: %r", exc)
            teardown(running)
        if sim is not None:
            sim.stop()


def install_signal_handlers(stop_event: threading.Event) -> None:
    """SIGINT / SIGTERM stop the capture cleanly (drain and flush)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_event.set())


def run_until_signalled(
    prog: str, capture: Capture, args: Any, until: StopWhen | None, chaos: Chaos | None = None
) -> dict[str, Any] | int:
    """`run()` for a command (`xtrader capture`, `python -m jobs.capture`, `xtrader demo`): SIGINT / SIGTERM
    stop it cleanly; its summary, or the exit status when it could not run (the reason printed on stderr).

    `args`: the command's flags (`duration`, `summary_json`, `verbose`).
    """
    warning = stop_wait_warning(os.environ)  # under `ray job submit`: the SIGKILL that follows `ray job stop`
    if warning:
        print(f"{prog}: warning: {warning}", file=sys.stderr, flush=True)
    try:
        return run(
            capture,
            args.duration,
            summary_json=args.summary_json,
            verbose=args.verbose,
            until=until,
            handle_signals=True,
            chaos=chaos,
        )
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except PlacementTimeout as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_PLACEMENT
