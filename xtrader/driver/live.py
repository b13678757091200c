"""The live terminal view of a running capture."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xtrader.driver.totals import metrics_latency_ms


def live_table(totals: Mapping[str, Any], elapsed: float, throughput: float) -> Any:
    from rich.table import Table

    table = Table(title=f"xtrader capture - {elapsed:.0f} s - {throughput:.0f} msg/s")
    for column in ("sink", "table", "exchange", "rows"):
        table.add_column(column)
    for sink, tables in sorted(totals["written"].items()):
        for name, venues in sorted(tables.items()):
            for exchange, rows in sorted(venues.items()):
                table.add_row(sink, name, exchange, str(rows))
    events = totals["events"]
    latency = metrics_latency_ms(totals["latency"])
    table.caption = " ".join(f"{k}={v}" for k, v in events.items()) + f" latency_ms={latency}"
    return table
