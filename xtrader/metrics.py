"""Metric names and labels in one place, per-actor stats, mergeable snapshots, Prometheus exposition.

Every actor keeps a `Stats` (plain counters, gauges and latency histograms,
labelled by exchange and channel, and by the actor itself) and hands out
`Stats.snapshot()`: a plain, JSON-able dict. The driver feeds the snapshots
into an `Aggregator` every second, which keeps counters monotonic across actor
restarts, computes throughput and serves everything at `/metrics` through a
`MetricsServer` (its own `CollectorRegistry`).

Labels are exchange (venue name), channel (table: trades, l2, bbo, events,
book_snapshots; empty when not about one) and actor (its plan id). Never the
symbol: one series per instrument would multiply the series by thousands.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector, CollectorRegistry

from xtrader.histogram import QUANTILES, Histogram

LABELS = ("exchange", "channel", "actor")

MESSAGES = "xtrader_messages_total"
ROWS = "xtrader_rows_total"
BYTES = "xtrader_bytes_total"
REJECTS = "xtrader_rejects_total"
GAPS = "xtrader_gaps_total"
RESYNCS = "xtrader_resyncs_total"
RECONNECTS = "xtrader_reconnects_total"
DUPLICATES = "xtrader_duplicates_total"
DROPPED_ROWS = "xtrader_dropped_rows_total"
ACCOUNTED_ROWS = "xtrader_accounted_rows_total"
QUEUE_DEPTH = "xtrader_queue_depth"
QUEUE_HIGH_WATER = "xtrader_queue_depth_high_water"
THROUGHPUT = "xtrader_throughput_msgs_per_s"
CODE_LATENCY = "xtrader_code_latency_seconds"
OVERALL_LATENCY = "xtrader_overall_latency_seconds"
SINK_FLUSH = "xtrader_sink_flush_seconds"
BOOK_SYNC = "xtrader_book_sync_seconds"
BUDGET_WAITS = "xtrader_budget_waits_total"
ARBITER_SKEW = "xtrader_arbiter_skew_seconds"

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    help: str


#: Every metric xtrader exports. Histograms (ns inside) are exported as quantile gauges in seconds.
METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(MESSAGES, "counter", "Websocket data frames received."),
        MetricSpec(ROWS, "counter", "Rows produced (connectors) or written (sinks)."),
        MetricSpec(BYTES, "counter", "Frame bytes received (connectors) or bytes written (sinks)."),
        MetricSpec(REJECTS, "counter", "Frames that failed to parse or that the venue refused."),
        MetricSpec(GAPS, "counter", "Sequence gaps and checksum failures detected in books."),
        MetricSpec(RESYNCS, "counter", "Book resynchronisations (resubscribe or new REST snapshot)."),
        MetricSpec(RECONNECTS, "counter", "Websocket reconnections."),
        MetricSpec(DUPLICATES, "counter", "Updates dropped by an arbiter as later copies of a redundant stream."),
        MetricSpec(DROPPED_ROWS, "counter", "Rows dropped by the lossy flow-control policy."),
        MetricSpec(
            ACCOUNTED_ROWS,
            "counter",
            "Rows received but never stored in a sink (channel: table/sink), each covered by an events row "
            "naming its batch key: lossy drops, writes given up after every retry.",
        ),
        MetricSpec(QUEUE_DEPTH, "gauge", "Batches sent downstream and not yet acknowledged."),
        MetricSpec(QUEUE_HIGH_WATER, "gauge", "Highest queue depth seen."),
        MetricSpec(THROUGHPUT, "gauge", "Data frames per second over the last aggregation interval."),
        MetricSpec(
            ARBITER_SKEW,
            "gauge",
            "How far a redundant stream's slowest connection is behind its fastest, in exchange time: its "
            "arbiter keeps update keys this much longer than arbiter_ttl_s.",
        ),
        MetricSpec(CODE_LATENCY, "histogram", "Receipt to sink write, monotonic clock (same host)."),
        MetricSpec(OVERALL_LATENCY, "histogram", "Sink write wall time minus exchange event time."),
        MetricSpec(SINK_FLUSH, "histogram", "Duration of one sink flush."),
        MetricSpec(BOOK_SYNC, "histogram", "Time from subscription to a synchronised book."),
        MetricSpec(
            BUDGET_WAITS,
            "counter",
            "Resyncs, REST snapshots and reconnects held back by a venue limit (request budget, "
            "REST weight, credits, maintenance); each also has an events row.",
        ),
    )
}

#: Gauges combined by max (not sum) when series are merged.
_MAX_GAUGES = frozenset({QUEUE_HIGH_WATER, ARBITER_SKEW})

#: A series key: (metric name, exchange, channel, actor).
Key = tuple[str, str, str, str]
Snapshot = dict[str, Any]


def _known(name: str, kind: Kind) -> None:
    spec = METRICS.get(name)
    if spec is None or spec.kind != kind:
        raise KeyError(
            f"{name!r} is not a known {kind}; known: {', '.join(n for n, s in METRICS.items() if s.kind == kind)}"
        )


class Stats:
    """The metrics of one actor. Not thread-safe: one owner updates it, `snapshot()` copies it out."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self.incarnation = time.time_ns()  # a restarted actor has a new one
        self._counters: dict[tuple[str, str, str], int] = {}
        self._gauges: dict[tuple[str, str, str], float] = {}
        self._histograms: dict[tuple[str, str, str], Histogram] = {}

    def count(self, name: str, value: int = 1, exchange: str = "", channel: str = "") -> None:
        """Add `value` to a counter."""
        key = (name, exchange, channel)
        if key not in self._counters:
            _known(name, "counter")
            self._counters[key] = 0
        self._counters[key] += value

    def gauge(self, name: str, value: float, exchange: str = "", channel: str = "") -> None:
        """Set a gauge."""
        _known(name, "gauge")
        self._gauges[(name, exchange, channel)] = value

    def queue(self, depth: int, exchange: str = "", channel: str = "") -> None:
        """Set the queue depth and raise its high-water mark."""
        self._gauges[(QUEUE_DEPTH, exchange, channel)] = depth
        high = (QUEUE_HIGH_WATER, exchange, channel)
        self._gauges[high] = max(self._gauges.get(high, 0), depth)

    def histogram(self, name: str, exchange: str = "", channel: str = "") -> Histogram:
        """The histogram to `record` into (keep it: the lookup is the slow part)."""
        key = (name, exchange, channel)
        found = self._histograms.get(key)
        if found is None:
            _known(name, "histogram")
            found = self._histograms[key] = Histogram()
        return found

    def set_histogram(self, name: str, histogram: Histogram, exchange: str = "", channel: str = "") -> None:
        """Replace a histogram with one kept elsewhere (e.g. by a sink's own thread, copied out under its lock)."""
        _known(name, "histogram")
        self._histograms[(name, exchange, channel)] = histogram

    def snapshot(self) -> Snapshot:
        """A plain copy of every series, labelled with this actor (see `merge`)."""
        return {
            "actors": [self.actor],
            "incarnation": self.incarnation,
            "counters": [_series(key, self.actor, value) for key, value in self._counters.items()],
            "gauges": [_series(key, self.actor, value) for key, value in self._gauges.items()],
            "histograms": [_series(key, self.actor, h.as_dict()) for key, h in self._histograms.items()],
        }


def _series(key: tuple[str, str, str], actor: str, value: Any) -> dict[str, Any]:
    name, exchange, channel = key
    return {"name": name, "exchange": exchange, "channel": channel, "actor": actor, "value": value}


def _key(series: Mapping[str, Any], keep: Iterable[str] = LABELS) -> Key:
    kept = set(keep)
    labels = tuple(series[label] if label in kept else "" for label in LABELS)
    return (series["name"], *labels)


def merge(snapshots: Iterable[Snapshot], keep: Iterable[str] = LABELS) -> Snapshot:
    """Combine snapshots: counters and histograms add, gauges add (high-water marks: max).

    Args:
        snapshots: from `Stats.snapshot`, `merge` or `Aggregator.snapshot`.
        keep: labels kept; the others are emptied and their series combined (e.g. keep=("exchange",)).
    """
    keep = tuple(keep)
    actors: list[str] = []
    counters: dict[Key, int] = {}
    gauges: dict[Key, float] = {}
    histograms: dict[Key, Histogram] = {}
    for snapshot in snapshots:
        actors.extend(a for a in snapshot.get("actors", ()) if a not in actors)
        for series in snapshot.get("counters", ()):
            key = _key(series, keep)
            counters[key] = counters.get(key, 0) + series["value"]
        for series in snapshot.get("gauges", ()):
            key = _key(series, keep)
            combine = max if series["name"] in _MAX_GAUGES else _add
            gauges[key] = combine(gauges[key], series["value"]) if key in gauges else series["value"]
        for series in snapshot.get("histograms", ()):
            key = _key(series, keep)
            histograms.setdefault(key, Histogram()).merge(Histogram.from_dict(series["value"]))
    return {
        "actors": actors,
        "counters": [_labelled(key, value) for key, value in counters.items()],
        "gauges": [_labelled(key, value) for key, value in gauges.items()],
        "histograms": [_labelled(key, h.as_dict()) for key, h in histograms.items()],
    }


def _add(a: float, b: float) -> float:
    return a + b


def _labelled(key: Key, value: Any) -> dict[str, Any]:
    name, exchange, channel, actor = key
    return {"name": name, "exchange": exchange, "channel": channel, "actor": actor, "value": value}


def total(snapshot: Snapshot, name: str, **labels: str) -> int:
    """Sum of a counter over the series matching `labels` (e.g. exchange="okx")."""
    return sum(
        series["value"]
        for series in snapshot.get("counters", ())
        if series["name"] == name and all(series[k] == v for k, v in labels.items())
    )


def latency(snapshot: Snapshot, name: str, **labels: str) -> Histogram:
    """One histogram merging every series of `name` matching `labels`."""
    merged = Histogram()
    for series in snapshot.get("histograms", ()):
        if series["name"] == name and all(series[k] == v for k, v in labels.items()):
            merged.merge(Histogram.from_dict(series["value"]))
    return merged


class Aggregator:
    """The driver's view: the latest snapshot of every actor, restarts folded in, throughput per exchange.

    Counters and histograms of an actor that went backwards (the actor restarted)
    are added to what it had reported before, so totals never decrease.

    Args:
        clock: seconds, monotonic (a fake one in tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # the /metrics thread reads while the driver updates
        self._latest: dict[str, Snapshot] = {}
        self._base: dict[str, Snapshot] = {}  # per actor: totals of its earlier lives
        self._last_tick: tuple[float, dict[str, int]] | None = None
        self._throughput: dict[str, float] = {}

    def update(self, snapshot: Snapshot) -> None:
        """Store an actor's snapshot (from `Stats.snapshot`)."""
        (actor,) = snapshot["actors"]
        with self._lock:
            previous = self._latest.get(actor)
            restarted = previous is not None and previous.get("incarnation") != snapshot.get("incarnation")
            if previous is not None and (restarted or _went_back(previous, snapshot)):
                self._base[actor] = merge([self._base.get(actor, {}), previous])
            self._latest[actor] = snapshot

    def forget(self, actor: str) -> None:
        """Drop an actor that is gone for good (its totals are lost from the live view)."""
        with self._lock:
            self._latest.pop(actor, None)
            self._base.pop(actor, None)

    def snapshot(self) -> Snapshot:
        """Every actor's series (restarts folded in), plus the throughput gauges of the last `tick`."""
        with self._lock:
            merged = merge([*self._base.values(), *self._latest.values()])
            throughput = dict(self._throughput)
        merged["gauges"].extend(
            _labelled((THROUGHPUT, exchange, "", ""), rate) for exchange, rate in throughput.items()
        )
        return merged

    def tick(self) -> dict[str, float]:
        """Compute frames per second per exchange since the previous tick (call once per interval)."""
        now = self._clock()
        snapshot = self.snapshot()
        messages: dict[str, int] = {}
        for series in snapshot["counters"]:
            if series["name"] == MESSAGES:
                messages[series["exchange"]] = messages.get(series["exchange"], 0) + series["value"]
        with self._lock:
            if self._last_tick is not None and now > self._last_tick[0]:
                then, before = self._last_tick
                self._throughput = {
                    exchange: (count - before.get(exchange, 0)) / (now - then) for exchange, count in messages.items()
                }
            self._last_tick = (now, messages)
            return dict(self._throughput)


def _went_back(previous: Snapshot, current: Snapshot) -> bool:
    before = {_key(s): s["value"] for s in previous.get("counters", ())}
    if any(s["value"] < before.get(_key(s), 0) for s in current.get("counters", ())):
        return True
    seen = {_key(s): s["value"]["count"] for s in previous.get("histograms", ())}
    return any(s["value"]["count"] < seen.get(_key(s), 0) for s in current.get("histograms", ()))


class _SnapshotCollector(Collector):
    """Turns a snapshot into Prometheus families at each scrape."""

    def __init__(self, source: Callable[[], Snapshot]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        snapshot = self._source()
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for spec in METRICS.values():
            if spec.kind == "counter":
                families[spec.name] = CounterMetricFamily(spec.name, spec.help, labels=LABELS)
            elif spec.kind == "gauge":
                families[spec.name] = GaugeMetricFamily(spec.name, spec.help, labels=LABELS)
            else:
                families[spec.name] = GaugeMetricFamily(spec.name, spec.help, labels=(*LABELS, "quantile"))
        for series in snapshot.get("counters", ()):
            families[series["name"]].add_metric([series[label] for label in LABELS], series["value"])
        for series in snapshot.get("gauges", ()):
            families[series["name"]].add_metric([series[label] for label in LABELS], series["value"])
        for series in snapshot.get("histograms", ()):
            histogram = Histogram.from_dict(series["value"])
            if histogram.count == 0:
                continue
            for q in QUANTILES.values():
                labels = [*(series[label] for label in LABELS), f"{q:g}"]
                families[series["name"]].add_metric(labels, histogram.quantile(q) / 1e9)
        yield from families.values()


class MetricsServer:
    """Prometheus `/metrics` over HTTP, with a registry of its own.

    Args:
        source: returns the snapshot to expose (usually `Aggregator.snapshot`).
        host: bind address (127.0.0.1 keeps it local).
        port: 0 picks a free port; see `port` after `start()`.
    """

    def __init__(self, source: Callable[[], Snapshot], host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_SnapshotCollector(source))
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> int:
        """Serve in a daemon thread; return the bound port."""
        self._server, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        self.port = int(self._server.server_port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def latency_ms(histogram: Histogram) -> dict[str, float | None]:
    """p50 / p99 / p999 in milliseconds (None when empty), as the run summary reports them."""
    return {name: None if math.isnan(ns) else round(ns / 1e6, 3) for name, ns in histogram.percentiles().items()}
