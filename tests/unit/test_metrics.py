"""Metrics: names and labels, per-actor stats, merging, restarts, throughput, histograms, /metrics."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from xtrader import metrics
from xtrader.histogram import QUANTILES, Histogram, bucket_bounds, bucket_index
from xtrader.metrics import (
    CODE_LATENCY,
    DROPPED_ROWS,
    LABELS,
    MESSAGES,
    METRICS,
    QUEUE_DEPTH,
    QUEUE_HIGH_WATER,
    ROWS,
    THROUGHPUT,
    Aggregator,
    MetricsServer,
    Stats,
    latency,
    latency_ms,
    merge,
    total,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def exact_quantile(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


# -- names and labels ----------------------------------------------------------------------------------------


def test_names_follow_prometheus_conventions() -> None:
    for name, spec in METRICS.items():
        assert name.startswith("xtrader_") and name == spec.name
        assert name.endswith("_total") == (spec.kind == "counter"), name
        if spec.kind == "histogram":
            assert name.endswith("_seconds")
    assert DROPPED_ROWS == "xtrader_dropped_rows_total"
    assert THROUGHPUT == "xtrader_throughput_msgs_per_s"


def test_labels_never_include_the_symbol() -> None:
    assert LABELS == ("exchange", "channel", "actor")


def test_every_documented_counter_exists() -> None:
    counters = {n.removeprefix("xtrader_").removesuffix("_total") for n, s in METRICS.items() if s.kind == "counter"}
    expected = {
        *("messages", "rows", "bytes", "rejects", "gaps", "resyncs", "reconnects", "duplicates", "dropped_rows"),
        "budget_waits",  # issue 13: waits for a venue's request budget, REST weight, credits or maintenance
        "accounted_rows",  # issue 10: rows received but never stored, each with an events row
    }
    assert counters == expected


# -- stats and snapshots ---------------------------------------------------------------------------------------


def test_stats_count_set_and_observe_per_exchange_and_channel() -> None:
    stats = Stats("okx/c0/r0")
    stats.count(MESSAGES, 3, "okx", "trades")
    stats.count(MESSAGES, 2, "okx", "trades")
    stats.count(ROWS, 7, "okx", "l2")
    stats.histogram(CODE_LATENCY, "okx", "trades").record(1_500)
    snapshot = stats.snapshot()
    assert snapshot["actors"] == ["okx/c0/r0"]
    assert {"name": MESSAGES, "exchange": "okx", "channel": "trades", "actor": "okx/c0/r0", "value": 5} in (
        snapshot["counters"]
    )
    assert total(snapshot, ROWS) == 7 and total(snapshot, ROWS, channel="trades") == 0
    assert latency(snapshot, CODE_LATENCY).count == 1


def test_a_snapshot_is_plain_json() -> None:
    stats = Stats("a")
    stats.count(MESSAGES, 1, "okx")
    stats.queue(2)
    stats.histogram(CODE_LATENCY).record(10)
    snapshot = stats.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot


def test_the_queue_high_water_mark_only_rises() -> None:
    stats = Stats("a")
    for depth in (1, 4, 2, 0):
        stats.queue(depth, "binance")
    gauges = {s["name"]: s["value"] for s in stats.snapshot()["gauges"]}
    assert gauges == {QUEUE_DEPTH: 0, QUEUE_HIGH_WATER: 4}


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.count("xtrader_message_total"),
        lambda s: s.count(QUEUE_DEPTH),
        lambda s: s.gauge(MESSAGES, 1.0),
        lambda s: s.histogram(MESSAGES),
    ],
)
def test_unknown_or_mistyped_metric_names_fail_loudly(call: Callable[[Stats], object]) -> None:
    with pytest.raises(KeyError, match="is not a known"):
        call(Stats("a"))


def test_merge_adds_counters_and_histograms_and_keeps_the_actor_label() -> None:
    one, two = Stats("binance/c0/r0"), Stats("binance/c0/r1")
    for stats, rows in ((one, 10), (two, 5)):
        stats.count(ROWS, rows, "binance", "trades")
        stats.histogram(CODE_LATENCY, "binance", "trades").record(rows * 1000)
        stats.queue(rows, "binance")
    merged = merge([one.snapshot(), two.snapshot()])
    assert merged["actors"] == ["binance/c0/r0", "binance/c0/r1"]
    assert len(merged["counters"]) == 2 and total(merged, ROWS) == 15
    rolled = merge([one.snapshot(), two.snapshot()], keep=("exchange",))
    assert rolled["counters"] == [{"name": ROWS, "exchange": "binance", "channel": "", "actor": "", "value": 15}]
    gauges = {s["name"]: s["value"] for s in rolled["gauges"]}
    assert gauges == {QUEUE_DEPTH: 15, QUEUE_HIGH_WATER: 10}  # depths add, high-water marks take the max
    assert latency(rolled, CODE_LATENCY).count == 2


# -- the driver's aggregator ----------------------------------------------------------------------------------------


def test_throughput_is_frames_per_second_per_exchange_between_ticks() -> None:
    clock = Clock()
    aggregator = Aggregator(clock)
    stats = Stats("okx/c0/r0")
    aggregator.update(stats.snapshot())
    assert aggregator.tick() == {}
    stats.count(MESSAGES, 500, "okx", "trades")
    stats.count(MESSAGES, 100, "okx", "l2")
    aggregator.update(stats.snapshot())
    clock.now += 2.0
    assert aggregator.tick() == {"okx": 300.0}
    gauges = [s for s in aggregator.snapshot()["gauges"] if s["name"] == THROUGHPUT]
    assert gauges == [{"name": THROUGHPUT, "exchange": "okx", "channel": "", "actor": "", "value": 300.0}]


def test_a_restarted_actor_does_not_make_totals_go_back() -> None:
    aggregator = Aggregator(Clock())
    first = Stats("sink/parquet")
    first.count(ROWS, 1000, "binance", "trades")
    first.histogram(CODE_LATENCY, "binance", "trades").record(5)
    aggregator.update(first.snapshot())
    restarted = Stats("sink/parquet")  # a new incarnation starts from zero
    restarted.count(ROWS, 10, "binance", "trades")
    aggregator.update(restarted.snapshot())
    restarted.count(ROWS, 5, "binance", "trades")
    aggregator.update(restarted.snapshot())
    snapshot = aggregator.snapshot()
    assert total(snapshot, ROWS) == 1015
    assert latency(snapshot, CODE_LATENCY).count == 1


def test_counters_going_back_count_as_a_restart_even_with_the_same_incarnation() -> None:
    aggregator = Aggregator(Clock())
    stats = Stats("a")
    stats.count(ROWS, 50, "okx")
    aggregator.update(stats.snapshot())
    stats._counters.clear()
    stats.count(ROWS, 20, "okx")
    aggregator.update(stats.snapshot())
    assert total(aggregator.snapshot(), ROWS) == 70


def test_forgotten_actors_leave_the_view() -> None:
    aggregator = Aggregator(Clock())
    stats = Stats("a")
    stats.count(ROWS, 5)
    aggregator.update(stats.snapshot())
    aggregator.forget("a")
    assert total(aggregator.snapshot(), ROWS) == 0


# -- histograms -------------------------------------------------------------------------------------------------------


def test_buckets_tile_the_integers() -> None:
    upper = 0
    for index in range(20_000):
        lower, next_upper = bucket_bounds(index)
        assert lower == upper
        upper = next_upper
    for value in [*range(3000), *(10**k + d for k in range(3, 16) for d in (-1, 0, 1))]:
        lower, upper = bucket_bounds(bucket_index(value))
        assert lower <= value < upper
        assert (upper - lower) <= max(1, lower / 128)


def test_small_values_are_exact() -> None:
    histogram = Histogram()
    for value in (3, 1, 2, 200, 7):
        histogram.record(value)
    assert histogram.quantile(0.5) == 3
    assert histogram.quantile(1.0) == 200
    assert histogram.quantile(0.0) == 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_are_within_half_a_percent_of_the_exact_order_statistic(seed: int) -> None:
    values = np.random.default_rng(seed).lognormal(mean=13, sigma=2, size=50_000).astype(np.int64)
    histogram = Histogram()
    histogram.record_many(values)
    for q in (*QUANTILES.values(), 0.9, 0.9999):
        exact = exact_quantile(values, q)
        assert abs(histogram.quantile(q) - exact) <= exact / 256 + 0.5, q
    assert histogram.count == len(values) and histogram.total == int(values.sum())
    assert (histogram.minimum, histogram.maximum) == (int(values.min()), int(values.max()))


def test_record_many_equals_record_one_by_one() -> None:
    values = np.random.default_rng(7).integers(-50, 10**12, size=5_000)
    vectorised, one_by_one = Histogram(), Histogram()
    vectorised.record_many(values)
    for value in values.tolist():
        one_by_one.record(value)
    assert vectorised.as_dict() == one_by_one.as_dict()
    assert vectorised.underflow == int((values < 0).sum())


def test_record_many_between_reads_and_single_records_equals_record_one_by_one() -> None:
    """`record_many` counts go to a dense array and reach the buckets when they are read: reads, copies, merges
    and single records in between see every count once, up to the largest int64."""
    rng = np.random.default_rng(11)
    parts = [rng.integers(-5, 10**12, size=700) for _ in range(4)] + [np.array([0, 255, 256, 2**53, 2**63 - 1])]
    vectorised, one_by_one, merged = Histogram(), Histogram(), Histogram()
    earlier = None
    for index, part in enumerate(parts):
        vectorised.record_many(part)
        merged.merge(vectorised.since(earlier))
        earlier = vectorised.copy()
        vectorised.record(index * 1_000)
        for value in [*part.tolist(), index * 1_000]:
            one_by_one.record(value)
        assert vectorised.as_dict() == one_by_one.as_dict(), index
        assert vectorised.quantile(0.5) == one_by_one.quantile(0.5)
    merged.merge(vectorised.since(earlier))
    assert merged.buckets == one_by_one.buckets and merged.count == one_by_one.count


def test_merged_histograms_equal_one_histogram_of_everything() -> None:
    values = np.random.default_rng(3).integers(0, 10**9, size=9_000)
    whole, merged = Histogram(), Histogram()
    whole.record_many(values)
    for part in np.array_split(values, 3):
        piece = Histogram()
        piece.record_many(part)
        merged.merge(Histogram.from_dict(json.loads(json.dumps(piece.as_dict()))))
    assert merged.as_dict() == whole.as_dict()


def test_an_empty_histogram_has_no_percentiles() -> None:
    assert all(math.isnan(v) for v in Histogram().percentiles().values())
    assert latency_ms(Histogram()) == {"p50": None, "p99": None, "p999": None}


def test_latency_ms_reports_milliseconds() -> None:
    histogram = Histogram()
    histogram.record_many([2_000_000] * 99 + [40_000_000])
    assert latency_ms(histogram) == pytest.approx({"p50": 2.0, "p99": 2.0, "p999": 40.0}, rel=1 / 256)


# -- Prometheus ---------------------------------------------------------------------------------------------------


def scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(server.url, timeout=5)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"exchange": "", "channel": "", "actor": "", **values}.items()))


def test_metrics_are_served_over_http_on_localhost() -> None:
    clock = Clock()
    aggregator = Aggregator(clock)
    stats = Stats("binance/c0/r0")
    aggregator.update(stats.snapshot())
    aggregator.tick()
    stats.count(MESSAGES, 1000, "binance", "trades")
    stats.count(DROPPED_ROWS, 3, "binance", "l2")
    stats.queue(4, "binance")
    stats.histogram(CODE_LATENCY, "binance", "trades").record_many([1_000_000] * 1000)
    aggregator.update(stats.snapshot())
    clock.now += 1.0
    aggregator.tick()
    server = MetricsServer(aggregator.snapshot, host="127.0.0.1", port=0)
    port = server.start()
    try:
        assert port > 0 and server.url == f"http://127.0.0.1:{port}/metrics"
        samples = scrape(server)
    finally:
        server.stop()
    actor = {"exchange": "binance", "actor": "binance/c0/r0"}
    assert samples[("xtrader_messages_total", labels(channel="trades", **actor))] == 1000
    assert samples[("xtrader_dropped_rows_total", labels(channel="l2", **actor))] == 3
    assert samples[("xtrader_queue_depth_high_water", labels(**actor))] == 4
    assert samples[("xtrader_throughput_msgs_per_s", labels(exchange="binance"))] == 1000.0
    for q in ("0.5", "0.99", "0.999"):
        quantile = tuple(sorted((*labels(channel="trades", **actor), ("quantile", q))))
        assert samples[("xtrader_code_latency_seconds", quantile)] == pytest.approx(0.001, rel=0.005)


def served(actor: str, exchange: str, messages: int) -> Callable[[], metrics.Snapshot]:
    """An aggregator's snapshot after one second of real stats from one actor."""
    clock = Clock()
    aggregator = Aggregator(clock)
    stats = Stats(actor)
    aggregator.update(stats.snapshot())
    aggregator.tick()
    stats.count(MESSAGES, messages, exchange, "trades")
    stats.count(ROWS, 2 * messages, exchange, "trades")
    stats.queue(3, exchange)
    stats.histogram(CODE_LATENCY, exchange, "trades").record_many([2_000_000] * 100)
    aggregator.update(stats.snapshot())
    clock.now += 1.0
    aggregator.tick()
    return aggregator.snapshot


def test_each_server_has_its_own_registry() -> None:
    one = MetricsServer(served("okx/c0/r0", "okx", 500))
    two = MetricsServer(served("deribit/c0/r0", "deribit", 70))
    assert one.registry is not two.registry
    one.start()
    two.start()
    try:
        first, second = scrape(one), scrape(two)
    finally:
        one.stop()
        two.stop()
    for samples, exchange, messages in ((first, "okx", 500), (second, "deribit", 70)):
        actor = {"exchange": exchange, "actor": f"{exchange}/c0/r0"}
        assert samples[("xtrader_messages_total", labels(channel="trades", **actor))] == messages
        assert samples[("xtrader_rows_total", labels(channel="trades", **actor))] == 2 * messages
        assert samples[("xtrader_throughput_msgs_per_s", labels(exchange=exchange))] == messages
        # only this server's own stats: nothing of the other's, no default process / Python collectors
        assert {dict(labels_).get("exchange") for _, labels_ in samples} == {exchange}, exchange
        assert not any(name.startswith(("python_", "process_", "gc_")) for name, _ in samples)
        assert all(value is not None and not math.isnan(value) for value in samples.values())


def test_the_module_imports_no_ray() -> None:
    assert "ray" not in vars(metrics)
