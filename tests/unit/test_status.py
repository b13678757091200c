"""`xtrader status` rendering (`xtrader.status.render`), on Arrow tables built from synthetic stats."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from rich.console import Console

from xtrader.schema import EVENTS
from xtrader.status import EVENTS_SHOWN, render, totals_line
from xtrader.streams_table import events_table, streams

STREAMS = {
    "okx": {"venue": "okx", "tables": ["l2"], "symbols": ["BTC-USDT", "ETH-USDT"], "connectors": ["okx/c0/r0"]},
}


def connector(**overrides: Any) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "connected": 1,
        "last_message_age_s": 0.25,
        "reconnects": 3,
        "error": None,
        "node": "10.1.2.3",
        "subscriptions": {"l2": ["BTC-USDT", "ETH-USDT"]},
        "symbol_rows": {"l2": {"BTC-USDT": 12_345, "ETH-USDT": 10}},
    }
    stats.update(overrides)
    return stats


def events(kinds: list[str]) -> pa.Table:
    n = len(kinds)
    batch = pa.RecordBatch.from_pydict(
        {
            "exchange": pa.array(["okx"] * n),
            "symbol": pa.array(["BTC-USDT"] * n),
            "ts": pa.array([1_800_000_000_000_000_000 + i * 1_000_000_000 for i in range(n)], pa.int64()),
            "kind": pa.array(kinds),
            "detail": pa.array([f"detail {i}" for i in range(n)]),
        }
    )
    return events_table([pa.Table.from_batches([batch]).cast(EVENTS)])


def text_of(renderable: Any) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_view_shows_every_stream_its_state_counters_totals_and_the_last_events() -> None:
    stats = {"okx/c0/r0": connector(), "book/okx": {"invalid": ["ETH-USDT"], "symbols": {"BTC-USDT": {"gaps": 2}}}}
    table = streams(STREAMS, stats, {("okx/c0/r0", "l2", "BTC-USDT"): 1234.5})
    text = text_of(render(table, events(["connect", "gap", "resync"])))
    btc = next(line for line in text.splitlines() if "BTC-USDT" in line and "okx/c0/r0" in line)
    for part in ("okx", "l2", "live", "1,234.5", "12,345", "0.2", "10.1.2.3"):
        assert part in btc, btc
    eth = next(line for line in text.splitlines() if "ETH-USDT" in line and "okx/c0/r0" in line)
    assert "resyncing" in eth
    assert "2 streams (1 live, 1 resyncing); 1,234.5 rows/s; 12,355 rows; 2 gaps, 0 resyncs, 3 reconnects" in text
    assert "events in the last 60 s: 1 connect, 1 gap, 1 resync" in text
    assert "detail 2" in text


def test_only_the_newest_events_are_listed_and_an_empty_capture_renders() -> None:
    text = text_of(render(streams(STREAMS, {}), events(["connect"] * (EVENTS_SHOWN + 5))))
    assert f"{EVENTS_SHOWN + 5} connect" in text
    assert "detail 4 " not in text and "detail 5 " in text  # the oldest five are left out
    assert "0 streams (none)" in text


def test_totals_count_a_connections_reconnects_once() -> None:
    info = {"okx": {**STREAMS["okx"], "tables": ["l2", "trades"]}}
    subs = {"l2": ["BTC-USDT"], "trades": ["BTC-USDT"]}
    rows = {"l2": {"BTC-USDT": 1}, "trades": {"BTC-USDT": 1}}
    table = streams(info, {"okx/c0/r0": connector(subscriptions=subs, symbol_rows=rows)})
    assert "3 reconnects" in totals_line(table)


def test_an_events_detail_is_shown_as_written_not_read_as_markup() -> None:
    table = events(["disconnect"])
    table = table.set_column(table.schema.get_field_index("detail"), "detail", pa.array(["closed [code 1006] [/]"]))
    text = text_of(render(streams(STREAMS, {}), table))
    assert "closed [code 1006] [/]" in text
