"""The final summary: what each table and venue sent and wrote, events, books, latency."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from xtrader.chaos import counted
from xtrader.config import Capture
from xtrader.driver.totals import SINK_KINDS, metrics_latency_ms

SUMMARY_PREFIX = "xtrader-summary: "


def summary(
    capture: Capture,
    duration_s: float,
    *,
    totals: Mapping[str, Any],
    sim_stats: Mapping[str, Any] | None,
    books: tuple[int, int],
    unknown_symbols: list[str],
    chaos: dict[str, int] | None = None,
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
            # rest: the rows that came from REST snapshots, not the wire; accounted: per sink, rows received
            # but never stored there, each covered by an events row (written == sent + rest - accounted)
            written: dict[str, int | None] = {}
            accounted: dict[str, int | None] = {}
            rest = 0
            for sink, enabled in sinks.items():
                if not enabled:
                    written[sink] = accounted[sink] = None
                    continue
                written[sink] = int(totals["written"].get(sink, {}).get(table, {}).get(venue, 0))
                accounted[sink] = int(totals.get("accounted", {}).get(sink, {}).get(table, {}).get(venue, 0))
                rest = max(rest, int(totals["rest_rows"].get(sink, {}).get(table, {}).get(venue, 0)))
            tables[table][venue] = {"sent": sent, "rest": rest, "written": written, "accounted": accounted}
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
        "chaos": counted(chaos),
        "shutdown": dict(totals.get("shutdown", {"unacked_rows": 0, "sinks_not_closed": [], "closes_unconfirmed": 0})),
    }


def _p50_p99(histogram: Any) -> dict[str, float | None]:
    """p50 and p99 of a histogram in ms (None when it is empty or absent)."""
    if histogram is None:
        return {"p50": None, "p99": None}
    values = metrics_latency_ms(histogram)
    return {"p50": values["p50"], "p99": values["p99"]}


def print_latency(snapshot: Mapping[str, Any]) -> None:
    """Latency per series (actor, exchange, table) on stderr: where the time goes."""
    from xtrader.histogram import Histogram
    from xtrader.metrics import latency_ms

    for series in snapshot.get("histograms", ()):
        histogram = Histogram.from_dict(series["value"])
        labels = f"{series['actor']} {series['exchange']} {series['channel']}"
        print(f"{series['name']} {labels}: n={histogram.count} {latency_ms(histogram)}", file=sys.stderr)
