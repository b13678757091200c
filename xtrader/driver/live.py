"""The live terminal view of a running capture (`xtrader demo` / `xtrader capture` when stdout is a terminal).

The same view as `xtrader status --watch` (`xtrader.status.render`: every stream's state, rows/s, last
message age, gaps, resyncs, reconnects, latency p99 and node; the totals; the last minute's events), with
a line above it of what only the driver knows: the rows each sink took and stored, the latency, the
rejected, duplicate and dropped rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from xtrader.driver.totals import metrics_latency_ms
from xtrader.status import EVENTS_WINDOW_S, render

#: the driver's view refreshes this often (rich's own refresh; the content changes every metrics interval)
REFRESH_PER_S = 2


def live_title(elapsed: float, throughput: float) -> str:
    return f"xtrader capture - {elapsed:.0f} s - {throughput:,.0f} msg/s"


def _rows(tables: Mapping[str, Mapping[str, int]]) -> int:
    return sum(rows for venues in tables.values() for rows in venues.values())


def totals_header(totals: Mapping[str, Any]) -> str:
    """Rows each sink took (and of those, already in files), code latency p50/p99, rejected/duplicate/dropped
    rows (from `aggregate`)."""
    stored = ", ".join(
        f"{sink} {_rows(tables):,} ({_rows(totals['written'].get(sink, {})):,} in files)"
        for sink, tables in sorted(totals["received"].items())
    )
    latency = metrics_latency_ms(totals["latency"])
    ms = " / ".join("-" if latency.get(p) is None else f"{latency[p]:,.2f}" for p in ("p50", "p99"))
    events = totals["events"]
    issues = ", ".join(f"{events.get(k, 0):,} {k}" for k in ("rejects", "duplicates", "drops"))
    return f"sink rows: {stored or 'none yet'}; latency p50 / p99: {ms} ms; {issues}"


def live_view(
    streams: pa.Table,
    events: pa.Table,
    *,
    totals: Mapping[str, Any],
    elapsed: float,
    throughput: float,
    height: int | None = None,
) -> Any:
    """The renderable the driver's `rich.live.Live` shows (fitting `height` lines when given)."""
    return render(
        streams,
        events,
        EVENTS_WINDOW_S,
        title=live_title(elapsed, throughput),
        header=totals_header(totals),
        height=height,
    )
