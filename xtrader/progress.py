"""A progress line every `metrics.log_interval_s` on stdout, for a capture nobody watches on a terminal.

Under `ray job submit` (and with stdout in a log file) the live table is off: the driver prints
`xtrader-metrics: {json}` instead, so `ray job logs` shows a running capture's rows and rates. The JSON
has `elapsed_s`, `msgs_per_s` (frames per second over the last interval), `messages`, `written` (rows
per sink), `events` (gaps, resyncs, reconnects, rejects, duplicates, drops) and `latency_ms` (p50, p99).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from xtrader.histogram import Histogram
from xtrader.metrics import latency_ms

PROGRESS_PREFIX = "xtrader-metrics: "


def progress_line(totals: Mapping[str, Any], elapsed_s: float, throughput: float) -> str:
    """One line from the driver's totals (`aggregate()`), the seconds since start and frames/s."""
    written = {
        sink: sum(sum(venues.values()) for venues in tables.values())
        for sink, tables in sorted(totals.get("written", {}).items())
    }
    histogram = totals.get("latency")
    latency = latency_ms(histogram) if isinstance(histogram, Histogram) else {}
    line = {
        "elapsed_s": round(elapsed_s, 1),
        "msgs_per_s": round(throughput, 1),
        "messages": totals.get("messages", 0),
        "written": written,
        "events": dict(totals.get("events", {})),
        "latency_ms": {key: latency.get(key) for key in ("p50", "p99")},
    }
    return PROGRESS_PREFIX + json.dumps(line, separators=(",", ":"))


class Progress:
    """Prints `progress_line` at most once per `interval_s` (the first after `interval_s`); 0: never."""

    def __init__(
        self, interval_s: float, out: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self._out = out
        self._clock = clock
        self._last = clock()

    def update(self, totals: Mapping[str, Any], elapsed_s: float, throughput: float) -> bool:
        """Print a line if the interval has passed; whether it printed."""
        now = self._clock()
        if self.interval_s <= 0 or now - self._last < self.interval_s:
            return False
        self._last = now
        print(progress_line(totals, elapsed_s, throughput), file=self._out or sys.stdout, flush=True)
        return True
