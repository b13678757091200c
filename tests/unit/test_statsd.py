"""StatsD export: what arrives at a real UDP listener, parsed line by line (name, value, type)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from xtrader import metrics
from xtrader.config import parse_config
from xtrader.errors import ConfigError
from xtrader.histogram import Histogram
from xtrader.metrics import Aggregator, Stats
from xtrader.statsd_export import StatsdExporter, open_statsd, parse_address, push_statsd

Line = tuple[str, float, str]


class Listener:
    """A UDP socket on loopback collecting StatsD lines."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def lines_until(self, done: str, timeout_s: float = 10.0) -> list[Line]:
        """Every line received until one named `done` arrived (the exporter sends in snapshot order)."""
        lines: list[Line] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            for text in data.decode("ascii").splitlines():
                name, _, rest = text.partition(":")
                value, kind = rest.split("|")[:2]
                lines.append((name, float(value), kind))
            if any(name == done for name, _, _ in lines):
                return lines
        raise AssertionError(f"{done} did not arrive within {timeout_s} s; got {lines}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    yield running
    running.close()


def by_name(lines: list[Line]) -> dict[str, tuple[float, str]]:
    return {name: (value, kind) for name, value, kind in lines}


def snapshot_of(*stats: Stats) -> Aggregator:
    aggregator = Aggregator()
    for s in stats:
        aggregator.update(s.snapshot())
    return aggregator


def test_counters_gauges_and_latency_timings_arrive_as_statsd_lines(listener: Listener) -> None:
    connector = Stats("binance_futures/c0/r1")
    connector.count(metrics.MESSAGES, 1000, "binance_futures", "trades")
    connector.queue(3, "binance_futures")
    sink = Stats("sink/parquet")
    sink.count(metrics.ROWS, 500, "binance_futures", "l2")
    sink.histogram(metrics.CODE_LATENCY, "binance_futures", "l2").record_many([2_000_000] * 990 + [80_000_000] * 10)
    sink.histogram(metrics.SINK_FLUSH, channel="parquet").record_many([5_000_000] * 100)
    exporter = StatsdExporter(listener.address)
    try:
        assert exporter.push(snapshot_of(connector, sink).snapshot()) == 2 + 2 + 2 * 3
        first = by_name(listener.lines_until("xtrader.sink_flush.none.parquet.sink-parquet.p999"))
        assert first["xtrader.messages_total.binance_futures.trades.binance_futures-c0-r1"] == (1000, "c")
        assert first["xtrader.rows_total.binance_futures.l2.sink-parquet"] == (500, "c")
        assert first["xtrader.queue_depth.binance_futures.none.binance_futures-c0-r1"] == (3, "g")
        assert first["xtrader.queue_depth_high_water.binance_futures.none.binance_futures-c0-r1"] == (3, "g")
        latency = "xtrader.code_latency.binance_futures.l2.sink-parquet"
        assert first[f"{latency}.p50"][1] == "ms"
        assert first[f"{latency}.p50"][0] == pytest.approx(2.0, rel=0.005)
        assert first[f"{latency}.p99"][0] == pytest.approx(2.0, rel=0.005)
        assert first[f"{latency}.p999"][0] == pytest.approx(80.0, rel=0.005)
        assert first["xtrader.sink_flush.none.parquet.sink-parquet.p50"] == (pytest.approx(5.0, rel=0.005), "ms")

        # the next push: counters send their increase, timings only the new observations
        connector.count(metrics.MESSAGES, 250, "binance_futures", "trades")
        sink.histogram(metrics.CODE_LATENCY, "binance_futures", "l2").record_many([40_000_000] * 10)
        exporter.push(snapshot_of(connector, sink).snapshot())
        second = listener.lines_until(f"{latency}.p999")
        names = [name for name, _, _ in second]
        assert by_name(second)["xtrader.messages_total.binance_futures.trades.binance_futures-c0-r1"] == (250, "c")
        assert "xtrader.rows_total.binance_futures.l2.sink-parquet" not in names  # unchanged: nothing to add
        assert not any(name.startswith("xtrader.sink_flush.") for name in names)  # no new flush
        assert by_name(second)[f"{latency}.p50"][0] == pytest.approx(40.0, rel=0.005)
    finally:
        exporter.close()


def test_the_capture_configuration_switches_the_export_on(listener: Listener) -> None:
    streams = {"streams": [{"venue": "okx", "symbols": ["BTC-USDT"]}]}
    assert open_statsd(parse_config(streams, environ={})) is None  # off by default
    capture = parse_config(streams, environ={"XTRADER_METRICS_STATSD": listener.address})
    assert capture.metrics.statsd == listener.address
    exporter = open_statsd(capture)
    assert exporter is not None
    try:
        book = Stats("book/okx")
        book.count(metrics.GAPS, 2, "okx", "l2")
        aggregator = snapshot_of(book)
        aggregator.tick()
        push_statsd(exporter, aggregator)  # what the driver calls every interval_s
        lines = by_name(listener.lines_until("xtrader.gaps_total.okx.l2.book-okx"))
        assert lines["xtrader.gaps_total.okx.l2.book-okx"] == (2, "c")
    finally:
        exporter.close()


@pytest.mark.parametrize("address", ["localhost", "localhost:0", "localhost:99999", ":8125", "host:port"])
def test_a_bad_address_names_the_field(address: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_address(address)
    streams = {"streams": [{"venue": "okx", "symbols": ["BTC-USDT"]}], "metrics": {"statsd": address}}
    with pytest.raises(ConfigError, match=r"metrics\.statsd: expected host:port"):
        parse_config(streams, environ={})


def test_an_unresolvable_host_is_reported_and_the_capture_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    capture = parse_config(
        {"streams": [{"venue": "okx", "symbols": ["BTC-USDT"]}], "metrics": {"statsd": "no-such-host.invalid:8125"}},
        environ={},
    )
    assert open_statsd(capture) is None
    assert "StatsD export to no-such-host.invalid:8125 not started" in capsys.readouterr().err


def test_since_is_the_observations_added_after_an_earlier_copy() -> None:
    histogram = Histogram()
    histogram.record_many([1_000] * 5)
    earlier = histogram.copy()
    histogram.record_many([9_000_000] * 3)
    new = histogram.since(earlier)
    assert (new.count, new.total) == (3, 27_000_000)
    assert new.quantile(0.5) == pytest.approx(9_000_000, rel=0.005)
    assert histogram.since(None).count == 8
    assert histogram.since(histogram.copy()).count == 0
