"""`xtrader status`: the running capture's streams, totals and last minute's events as rich tables.

`render(streams, events)` is pure (Arrow tables in, a rich renderable out) and is what `--watch`
refreshes, and what `xtrader demo` / `xtrader capture` show live in a terminal (`xtrader.driver.live`);
`main` attaches (`xtrader.control.attach`) and prints, or says that no capture is running.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

import pyarrow as pa

#: exit statuses
EXIT_OK, EXIT_NO_CAPTURE = 0, 1
#: events shown (the newest)
EVENTS_SHOWN = 10
#: the events listed are those of the last ... seconds
EVENTS_WINDOW_S = 60.0
#: lines a rich table takes besides its rows: title, top border, header, header separator, bottom border
_TABLE_CHROME = 5

_STATE_STYLE = {"live": "green", "resyncing": "yellow", "connecting": "cyan", "stalled": "red", "stopped": "dim"}


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def shown_rows(rows: list[dict[str, Any]], max_rows: int | None) -> list[dict[str, Any]]:
    """At most `max_rows` of `rows`, in their order: the streams not live first (those a person looks for),
    then the live ones."""
    if max_rows is None or len(rows) <= max_rows:
        return rows
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["state"] == "live", i))
    return [rows[i] for i in sorted(order[: max(0, max_rows)])]


def streams_renderable(streams: pa.Table, title: str = "xtrader streams", max_rows: int | None = None) -> Any:
    """The streams table; with `max_rows`, at most that many rows (the others counted in its caption)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for name, justify in (
        ("venue", "left"),
        ("table", "left"),
        ("symbol", "left"),
        ("connection", "left"),
        ("state", "left"),
        ("rows/s", "right"),
        ("rows", "right"),
        ("age s", "right"),
        ("gaps", "right"),
        ("resyncs", "right"),
        ("reconnects", "right"),
        ("p99 ms", "right"),
        ("node", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    rows = streams.to_pylist()
    shown = shown_rows(rows, max_rows)
    if len(shown) < len(rows):
        hidden = Counter(r["state"] for r in rows) - Counter(r["state"] for r in shown)
        states = ", ".join(f"{n} {state}" for state, n in sorted(hidden.items()))
        table.caption = f"{len(rows) - len(shown)} more streams not shown ({states}): a taller terminal shows them"
    for row in shown:
        state = row["state"]
        style = _STATE_STYLE.get(state, "magenta")  # "waiting for N CPU"
        table.add_row(
            escape(row["venue"]),
            escape(row["table"]),
            escape(row["symbol"]),
            escape(row["connection"]),
            f"[{style}]{state}[/]",
            _fmt(row["rows_per_s"]),
            _fmt(row["rows"]),
            _fmt(row["last_message_age_s"]),
            _fmt(row["gaps"]),
            _fmt(row["resyncs"]),
            _fmt(row["reconnects"]),
            _fmt(row["latency_p99_ms"], 2),
            _fmt(row["node"]),
        )
    return table


def totals_line(streams: pa.Table) -> str:
    """Streams per state, total rows/s and rows, gaps, resyncs and reconnects (per connection, once)."""
    rows = streams.to_pylist()
    states = Counter(r["state"] for r in rows)
    rate = sum(r["rows_per_s"] or 0.0 for r in rows)
    total_rows = sum(r["rows"] or 0 for r in rows)
    gaps = sum(r["gaps"] or 0 for r in rows)
    resyncs = sum(r["resyncs"] or 0 for r in rows)
    reconnects = sum(({r["connection"]: r["reconnects"] or 0 for r in rows}).values())
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
    return (
        f"{len(rows)} streams ({by_state}); {rate:,.1f} rows/s; {total_rows:,} rows; "
        f"{gaps} gaps, {resyncs} resyncs, {reconnects} reconnects"
    )


def events_renderable(events: pa.Table, window_s: float = EVENTS_WINDOW_S) -> Any:
    from rich.markup import escape
    from rich.table import Table

    rows = events.to_pylist()
    kinds = Counter(str(r["kind"]) for r in rows)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
    table = Table(title=f"events in the last {window_s:g} s: {summary}")
    for name in ("time (UTC)", "exchange", "symbol", "kind", "detail"):
        table.add_column(name)
    for r in rows[-EVENTS_SHOWN:]:
        ts = r["ts"]
        table.add_row(
            ts.strftime("%H:%M:%S.%f")[:-3] if ts is not None else "-",
            escape(str(r["exchange"])),
            escape(r["symbol"] or "-"),
            escape(str(r["kind"])),
            escape((r["detail"] or "")[:120]),  # error texts carry brackets: text, not markup
        )
    return table


def render(
    streams: pa.Table,
    events: pa.Table,
    window_s: float = EVENTS_WINDOW_S,
    *,
    title: str = "xtrader streams",
    header: str | None = None,
    height: int | None = None,
) -> Any:
    """The whole status view: `header` (a line above it all, if any), the streams table, the totals, the
    last minute's events.

    `height`: the terminal's lines; the streams table then leaves out live streams (counted in its caption)
    so that the whole view fits, totals and events included.
    """
    from rich.console import Group
    from rich.text import Text

    max_rows = None
    if height is not None:
        events_lines = 1 + 4 + min(events.num_rows, EVENTS_SHOWN)  # title, borders and header, rows
        fixed = (1 if header else 0) + _TABLE_CHROME + 1 + 1 + events_lines  # + caption + totals
        max_rows = max(1, height - fixed - 1)  # and the line the cursor stands on
    parts: list[Any] = [Text(header)] if header else []
    parts += [
        streams_renderable(streams, title, max_rows),
        Text(totals_line(streams)),
        events_renderable(events, window_s),
    ]
    return Group(*parts)


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`xtrader status` flags (added to the CLI's subparser)."""
    parser.add_argument(
        "--address",
        default="auto",
        help="the capture's Ray: auto (default), HOST:PORT or ray://HEAD:10001",
    )
    parser.add_argument("--namespace", default="xtrader", help="the capture's cluster.namespace (default xtrader)")
    parser.add_argument("--watch", action="store_true", help="refresh until interrupted (Ctrl-C)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    return parser


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from xtrader.control import attach

    console = Console()
    try:
        control = attach(address=args.address, namespace=args.namespace)
    except (LookupError, ConnectionError) as exc:
        print(f"xtrader status: no capture running: {exc}", file=sys.stderr)
        return EXIT_NO_CAPTURE

    def view(height: int | None = None) -> Any:
        return render(control.streams(), control.events(since=time.time() - EVENTS_WINDOW_S), height=height)

    try:
        if not args.watch:
            console.print(view())
            return EXIT_OK
        from rich.live import Live

        with Live(view(console.size.height), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(args.interval)
                live.update(view(console.size.height))
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:  # the capture ended while we watched (its controller is gone)
        if _gone(exc):
            print("xtrader status: the capture is no longer running", file=sys.stderr)
            return EXIT_NO_CAPTURE
        raise


def _gone(exc: BaseException) -> bool:
    try:
        from ray.exceptions import RayActorError
    except ImportError:  # pragma: no cover - ray is a dependency
        return False
    return isinstance(exc, RayActorError)
