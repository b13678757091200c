"""The final summary as a person reads it: rich tables of what `xtrader.driver.summary.summary` returns.

Pure (the summary dict in, a rich renderable out); the driver prints it when stdout is a terminal, before
the `xtrader-summary:` JSON line scripts read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.markup import escape

_YES, _NO = "[green]yes[/]", "[bold red]NO[/]"


def accounted(entry: Mapping[str, Any], sink: str) -> int:
    """Rows received but never stored in `sink` (each with an events row); 0 for a summary without the field."""
    return int((entry.get("accounted") or {}).get(sink) or 0)


def expected(entry: Mapping[str, Any], sink: str) -> int:
    """What `sink` must hold: sent + rest - accounted."""
    return int(entry["sent"]) + int(entry["rest"]) - accounted(entry, sink)


def written_ok(entry: Mapping[str, Any]) -> bool | None:
    """Whether every enabled sink holds what the simulator sent plus the REST snapshot rows, less the rows
    accounted as lost (None: no ground truth, a real venue)."""
    if entry["sent"] is None:
        return None
    return all(w is None or w == expected(entry, sink) for sink, w in entry["written"].items())


def _n(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def _lost(value: int) -> str:
    return f"[yellow]{value:,}[/]" if value else "0"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.3f}"


def _check(entry: Mapping[str, Any]) -> str:
    ok = written_ok(entry)
    if ok is None:
        return "-"
    if ok:
        return _YES
    written = entry["written"].items()
    off = ", ".join(
        f"{sink} {w - expected(entry, sink):+,}" for sink, w in written if w is not None and w != expected(entry, sink)
    )
    return f"{_NO} ({off})"


def rows_table(result: Mapping[str, Any]) -> Any:
    """Per table and venue: sent, rest, written and accounted per enabled sink, and whether
    written == sent + rest - accounted."""
    from rich.table import Table

    sinks = [sink for sink, out in result["sinks"].items() if out is not None]
    table = Table(
        title=f"xtrader summary - {result['duration_s']:,.1f} s - {result['throughput_msgs_per_s']:,.1f} msg/s",
        caption="OK: every sink holds sent + rest - accounted (rest: the rows of REST snapshots; accounted: "
        "rows lost, each recorded with its key)",
    )
    table.add_column("table")
    table.add_column("venue")
    for name in ("sent", "rest", *(f"written {sink}" for sink in sinks), *(f"accounted {sink}" for sink in sinks)):
        table.add_column(name, justify="right")
    table.add_column("OK")
    for name, venues in result["tables"].items():
        for venue, entry in venues.items():
            written = [_n(entry["written"].get(sink)) for sink in sinks]
            lost = [_lost(accounted(entry, sink)) for sink in sinks]
            table.add_row(
                escape(name), escape(venue), _n(entry["sent"]), _n(entry["rest"]), *written, *lost, _check(entry)
            )
    return table


def facts_table(result: Mapping[str, Any]) -> Any:
    """Events, books, latency, throughput, sink flushes, unknown symbols, the stop condition."""
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    events = result["events"]
    shown = ", ".join(
        f"[yellow]{n:,} {kind}[/]" if n and kind in ("rejects", "drops") else f"{n:,} {kind}"
        for kind, n in events.items()
    )
    table.add_row("events", shown or "none")
    books = result["books"]
    if books["checked"]:
        mark = _YES if books["matched"] == books["checked"] else _NO
        table.add_row("books", f"{books['matched']:,} of {books['checked']:,} match the simulator: {mark}")
    else:
        table.add_row("books", "none checked")
    latency = result["latency_ms"]
    table.add_row("latency ms", "  ".join(f"{p} {_ms(latency.get(p))}" for p in ("p50", "p99", "p999")))
    table.add_row("throughput", f"{result['throughput_msgs_per_s']:,.1f} msg/s over {result['duration_s']:,.1f} s")
    for sink, out in result["sinks"].items():
        if out is not None:
            flush = out["flush_ms"]
            table.add_row(f"{sink} flush ms", f"p50 {_ms(flush['p50'])}  p99 {_ms(flush['p99'])}")
    if result.get("unknown_symbols"):
        table.add_row("unknown symbols", "[yellow]" + escape(", ".join(result["unknown_symbols"])) + "[/] (left out)")
    until = result.get("until")
    if until is not None:
        if until["met"]:
            table.add_row("stop condition met", f"{_YES} after {until['after_s']:,.1f} s")
        else:
            table.add_row("stop condition met", f"{_NO}: " + escape("; ".join(until["missing"])))
    return table


def summary_renderable(result: Mapping[str, Any]) -> Any:
    """Both tables, one above the other."""
    from rich.console import Group

    return Group(rows_table(result), facts_table(result))
