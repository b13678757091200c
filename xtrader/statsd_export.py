"""StatsD export: the counters, gauges and latency histograms of /metrics, pushed over UDP.

The driver pushes the `xtrader.metrics.Aggregator` snapshot once per
`metrics.interval_s` (and once more at the end) when `metrics.statsd` names a
`host:port`. Plain StatsD lines through the `statsd` client library, so any
StatsD server takes them (statsd, Telegraf, statsd_exporter, the Datadog agent).

A series is named `<prefix>.<metric>.<exchange>.<channel>.<actor>`: the
metric without its `xtrader_` prefix (and, for latencies, without `_seconds`),
then the three labels of /metrics in that order (`none` when empty; characters
other than letters, digits, `_` and `-` become `-`), e.g.
`xtrader.rows_total.binance.l2.sink-parquet`.

- counters: the increase since the previous push (`|c`), so the server's sums
  equal the /metrics totals;
- gauges: the current value (`|g`);
- latency histograms: for each series with new observations since the previous
  push, their p50, p99 and p999 in milliseconds as timings (`|ms`), the
  quantile last: `xtrader.code_latency.binance.trades.sink-parquet.p99`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from statsd import StatsClient

from xtrader.histogram import QUANTILES, Histogram

if TYPE_CHECKING:
    from xtrader.config import Capture

log = logging.getLogger("xtrader.capture")

#: (metric, exchange, channel, actor)
_Key = tuple[str, str, str, str]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:8125`) -> (host, port).

    Raises:
        ValueError: not `host:port` with a port in 1..65535.
    """
    host, sep, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port with a port in 1..65535, got {address!r}")
    return host, int(port)


def series_name(series: Mapping[str, Any]) -> str:
    """The StatsD name of a metrics series (without the client's prefix)."""
    metric = str(series["name"]).removeprefix("xtrader_").removesuffix("_seconds")
    labels = (_UNSAFE.sub("-", str(series[label])) or "none" for label in ("exchange", "channel", "actor"))
    return ".".join((metric, *labels))


class StatsdExporter:
    """Pushes `xtrader.metrics` snapshots to a StatsD server.

    Args:
        address: `host:port` of the server (UDP).
        prefix: first component of every name.
        client: a `statsd.StatsClient` (default: one for `address`).

    Raises:
        ValueError: a malformed address.
        OSError: a host name that does not resolve.
    """

    def __init__(self, address: str, prefix: str = "xtrader", client: StatsClient | None = None) -> None:
        host, port = parse_address(address)
        self.address = f"{host}:{port}"
        self.client = client or StatsClient(host, port, prefix=prefix, ipv6=":" in host)
        self._counters: dict[_Key, int] = {}
        self._histograms: dict[_Key, Histogram] = {}

    def push(self, snapshot: Mapping[str, Any]) -> int:
        """Send one snapshot (`Aggregator.snapshot()`); returns the number of StatsD lines sent."""
        pipe = self.client.pipeline()
        lines = 0
        for series in snapshot.get("counters", ()):
            key = _key(series)
            value = int(series["value"])
            increase = value - self._counters.get(key, 0)
            self._counters[key] = value
            if increase > 0:
                pipe.incr(series_name(series), increase)
                lines += 1
        for series in snapshot.get("gauges", ()):
            pipe.gauge(series_name(series), series["value"])
            lines += 1
        for series in snapshot.get("histograms", ()):
            key = _key(series)
            current = Histogram.from_dict(series["value"])
            new = current.since(self._histograms.get(key))
            self._histograms[key] = current
            if not new.count:
                continue
            name = series_name(series)
            for quantile, q in QUANTILES.items():
                pipe.timing(f"{name}.{quantile}", new.quantile(q) / 1e6)
                lines += 1
        pipe.send()
        return lines

    def close(self) -> None:
        self.client.close()


def _key(series: Mapping[str, Any]) -> _Key:
    return (series["name"], series["exchange"], series["channel"], series["actor"])


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
