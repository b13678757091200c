"""Totals across every actor's stats: rows stored per sink/table/venue, events, latency."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the sinks, in summary order
SINK_KINDS = ("parquet", "questdb")


def aggregate(stats: Mapping[str, Any], aggregator: Any = None) -> dict[str, Any]:
    """Totals across actors: rows stored (`written`) and taken (`received`) per sink/table/venue (and how many
    came from REST), events, latency.

    Every actor's `metrics` snapshot goes into `aggregator` (an `xtrader.metrics.Aggregator`, which
    keeps counters monotonic across restarts and serves /metrics); the totals come from it.
    """
    from xtrader import metrics

    aggregator = aggregator or metrics.Aggregator()
    written: dict[str, dict[str, dict[str, int]]] = {}
    received: dict[str, dict[str, dict[str, int]]] = {}
    rest_rows: dict[str, dict[str, dict[str, int]]] = {}
    unacked_rows = 0
    unconfirmed = 0
    not_closed: list[str] = []
    for name, s in stats.items():
        if not isinstance(s, dict) or set(s) == {"error"}:
            continue  # an actor that did not answer
        if isinstance(s.get("metrics"), dict):
            aggregator.update(s["metrics"])
        unacked_rows += int(s.get("shutdown_unacked_rows") or 0)
        unconfirmed += int(s.get("close_unconfirmed") or 0)
        if s.get("close_error"):
            not_closed.append(name)
        if name.startswith("sink/"):
            kind = s.get("sink", name.split("/", 1)[1])
            # what the sink itself reports as stored (QuestDB: delivered, not spilled), else what it accepted
            writer: dict[str, Any] = s["writer"] if isinstance(s.get("writer"), dict) else {}
            stored = writer.get("rows")
            written[kind] = stored if isinstance(stored, dict) else s.get("rows", {})
            received[kind] = s.get("rows", {})
            rest_rows[kind] = s.get("origins", {}).get("rest", {})
    snapshot = aggregator.snapshot()
    high_water = max((g["value"] for g in snapshot["gauges"] if g["name"] == metrics.QUEUE_HIGH_WATER), default=0)
    accounted: dict[str, dict[str, dict[str, int]]] = {kind: {} for kind in SINK_KINDS}
    for series in snapshot.get("counters", ()):
        if series["name"] == metrics.ACCOUNTED_ROWS and "/" in series["channel"]:
            table, kind = series["channel"].rsplit("/", 1)
            per = accounted.setdefault(kind, {}).setdefault(table, {})
            per[series["exchange"]] = per.get(series["exchange"], 0) + int(series["value"])
    return {
        "written": written,
        # per sink/table/venue: rows received but never to be stored there, each with an events row
        "accounted": accounted,
        # what each sink took (a Parquet sink's rows reach its files a row group or a file at a time)
        "received": received,
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
        # at stop: rows connectors shipped that were not acknowledged in time, sinks that never closed; and
        # clean closes of a link (at stop or after a rotation) that ended without the venue's close frame, TCP
        # dropped: frames the venue sent after the last one read may be lost (each is an events row)
        "shutdown": {
            "unacked_rows": unacked_rows,
            "sinks_not_closed": sorted(not_closed),
            "closes_unconfirmed": unconfirmed,
        },
    }


def metrics_latency_ms(histogram: Any) -> dict[str, float | None]:
    from xtrader.metrics import latency_ms

    return latency_ms(histogram)
