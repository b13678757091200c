"""When a capture may stop: a condition on its progress (`--min-rows`, `--until-books-valid`), and when the
pipeline has caught up with a paused simulator.

Both read the actors' stats the driver collects every `metrics.interval_s`, so a capture on a slow or busy
machine simply takes longer to get there; `--duration` stays the upper bound. Rows count when a sink actor
has taken them (a Parquet file holds them from its next row group or rotation; every sink flushes at the end).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xtrader.plan import Plan


@dataclass(frozen=True)
class StopWhen:
    """Stop the capture as soon as every condition given holds (checked at each stats interval).

    Args:
        min_rows: every table the capture subscribes (trades, l2, bbo) has at least this many rows
            from the venue's stream (REST snapshot rows not counted) taken by every sink, for every
            venue that streams it.
        books_valid: every subscribed symbol has a valid order book.
        check: any other condition (Python API only): called with every actor's stats and the aggregated
            totals, True when met.
    """

    min_rows: int = 0
    books_valid: bool = False
    check: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | None = None

    def __bool__(self) -> bool:
        return bool(self.min_rows or self.books_valid or self.check)

    def missing(self, plan: Plan, stats: Mapping[str, Any], totals: Mapping[str, Any]) -> list[str]:
        """What is still missing (empty when every condition holds), each as `what: have < want`."""
        out: list[str] = []
        if self.min_rows:
            for table, venue in _tables(plan):
                for spec in plan.sinks:
                    rows = _stream_rows(stats.get(spec.id), table, venue)
                    if rows < self.min_rows:
                        out.append(f"{table}/{venue} {spec.kind}: {rows} rows < {self.min_rows}")
        if self.books_valid:
            for book in plan.books:
                s = stats.get(book.id)
                valid = int(s.get("valid", 0)) if isinstance(s, dict) else 0
                if valid < len(book.symbols):
                    out.append(f"{book.id}: {valid}/{len(book.symbols)} books valid")
        if self.check is not None and not self.check(stats, totals):
            out.append("the caller's condition does not hold")
        return out


def caught_up(stats: Mapping[str, Any], sim_stats: Mapping[str, Any]) -> list[str]:
    """After the simulator paused: (table, venue) whose rows the sinks took are still below what it sent.

    Rows are what each sink actor took minus the REST snapshot rows (those were not on the wire); [] when
    every sink has everything.
    """
    out: list[str] = []
    sinks = {name: s for name, s in stats.items() if name.startswith("sink/")}
    for venue, data in sim_stats.get("venues", {}).items():
        for table, symbols in data.get("unique", {}).items():
            sent = int(sum(symbols.values()))
            for name, sink in sinks.items():
                rows = _stream_rows(sink, table, venue)
                if rows < sent:
                    out.append(f"{table}/{venue} {name}: {rows} of {sent}")
    return out


def _tables(plan: Plan) -> list[tuple[str, str]]:
    """(table, venue) of every market-data table a stream of the plan subscribes."""
    pairs = {(s.table, c.venue) for c in plan.connectors for s in c.subscriptions if s.table in ("trades", "l2", "bbo")}
    return sorted(pairs)


def _stream_rows(sink: Any, table: str, venue: str) -> int:
    """Rows of `table` from `venue` a sink actor took (its stats), REST snapshot rows apart."""
    if not isinstance(sink, dict):
        return 0
    rows = int(sink.get("rows", {}).get(table, {}).get(venue, 0))
    return rows - int(sink.get("origins", {}).get("rest", {}).get(table, {}).get(venue, 0))
