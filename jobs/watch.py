"""While the capture runs: stats every interval (metrics, StatsD, the live view), rotation, restarts,
the stop condition; and, once the simulator paused, waiting for the pipeline to catch up."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from jobs.fleet import Running
from xtrader.config import Capture
from xtrader.driver.live import REFRESH_PER_S, live_view
from xtrader.driver.simthread import SimulatorThread
from xtrader.driver.totals import aggregate
from xtrader.driver.until import StopWhen, caught_up
from xtrader.progress import Progress
from xtrader.statsd_export import push_statsd
from xtrader.status import EVENTS_WINDOW_S

log = logging.getLogger("xtrader.capture")

#: and how long nothing may move before it stops waiting (rows lost to a fault never arrive)
SETTLE_TIMEOUT_S = 60.0
SETTLE_QUIET_S = 3.0


def watch(
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
    view: dict[str, Any] = {}
    if capture.metrics.live_table and sys.stdout.isatty():
        from rich.live import Live
        from rich.text import Text

        live = Live(Text("xtrader capture: starting ..."), refresh_per_second=REFRESH_PER_S)
        live.start()
    missing = ["no stats read yet"] if until else []
    progress = Progress(capture.metrics.log_interval_s)  # without a terminal: a progress line now and then
    try:
        while not stop_event.is_set():
            elapsed = time.monotonic() - started
            if duration_s is not None and elapsed >= duration_s:
                break
            stop_event.wait(min(interval, max(0.05, (duration_s - elapsed) if duration_s else interval)))
            try:
                if live is not None:  # the stats, the streams table and the last minute's events in one read
                    view = ray.get(running.controller.live_view.remote(time.time() - EVENTS_WINDOW_S), timeout=10)
                    stats = view["stats"]
                else:
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
                height = live.console.size.height
                live.update(
                    live_view(
                        view["streams"],
                        view["events"],
                        totals=totals,
                        elapsed=elapsed,
                        throughput=throughput,
                        height=height,
                    )
                )
            else:
                progress.update(totals, elapsed, throughput)
            if until:
                missing = until.missing(running.plan, stats, totals)
                if not missing:
                    break
    finally:
        if live is not None:
            live.stop()
    return missing


def settle(running: Running, sim: SimulatorThread, aggregator: Any) -> None:
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


def _restart_idle(running: Running, stats: Mapping[str, Any]) -> None:
    """A connector Ray restarted after a failure starts itself (`ConnectorActor.restart`); one still idle (a
    restart while it was being set up) is started here."""
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
