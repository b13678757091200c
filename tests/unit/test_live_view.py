"""The driver's live view (`xtrader.driver.live.live_view`): `xtrader status`'s per-stream rows, totals and last
minute's events, under a line of the driver's own totals; and fitting the terminal. Synthetic actor stats,
real `streams()` / `aggregate()`."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pyarrow as pa
from rich.console import Console

from xtrader import metrics
from xtrader.driver.live import live_view
from xtrader.driver.totals import aggregate
from xtrader.schema import EVENTS
from xtrader.streams_table import events_table, streams

VENUES = ("binance", "okx", "deribit", "binance_futures")
SYMBOLS = ("AAA", "BBB", "CCC")
TABLES = ("trades", "l2", "bbo")


def fleet(stalled: str = "deribit") -> tuple[dict[str, Any], dict[str, Any]]:
    """The demo's shape: 4 venues x 3 tables x 3 symbols, one connection each; `stalled`'s link is silent."""
    info: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for venue in VENUES:
        connection = f"{venue}/c0/r0"
        info[venue] = {"venue": venue, "tables": list(TABLES), "symbols": list(SYMBOLS), "connectors": [connection]}
        stats[connection] = {
            "connected": 1,
            "last_message_age_s": 42.0 if venue == stalled else 0.1,
            "reconnects": 1,
            "error": None,
            "node": "10.0.0.7",
            "subscriptions": {t: list(SYMBOLS) for t in TABLES},
            "symbol_rows": {t: dict.fromkeys(SYMBOLS, 100) for t in TABLES},
        }
    sink = metrics.Stats("sink/parquet")
    sink.histogram(metrics.CODE_LATENCY, "okx", "l2").record_many([3_000_000] * 100)
    sink.count(metrics.REJECTS, 4, "okx")
    stats["sink/parquet"] = {
        "sink": "parquet",
        "rows": {t: dict.fromkeys(VENUES, 1_000) for t in TABLES},  # taken
        "writer": {"rows": {t: dict.fromkeys(VENUES, 400) for t in TABLES}},  # in files (row groups written)
        "metrics": sink.snapshot(),
    }
    return info, stats


def events(n: int) -> pa.Table:
    batch = pa.RecordBatch.from_pydict(
        {
            "exchange": pa.array(["okx"] * n),
            "symbol": pa.array(["BBB"] * n),
            "ts": pa.array([1_800_000_000_000_000_000 + i * 1_000_000_000 for i in range(n)], pa.int64()),
            "kind": pa.array(["gap"] * n),
            "detail": pa.array([f"seq jump {i} [expected {i + 1}]" for i in range(n)]),
        }
    )
    return events_table([pa.Table.from_batches([batch]).cast(EVENTS)])


def text_of(renderable: Any, width: int = 200) -> str:
    console = Console(file=StringIO(), record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_live_view_shows_every_stream_the_totals_and_the_last_minutes_events() -> None:
    info, stats = fleet()
    table = streams(info, stats, {("okx/c0/r0", "l2", "BBB"): 55.5})
    text = text_of(live_view(table, events(3), totals=aggregate(stats), elapsed=12.3, throughput=4321.0))
    assert "xtrader capture - 12 s - 4,321 msg/s" in text
    for column in ("state", "rows/s", "age s", "gaps", "resyncs", "reconnects", "p99 ms", "node"):
        assert column in text
    for venue in VENUES:
        for t in TABLES:
            for symbol in SYMBOLS:
                assert any(venue in line and f" {t} " in line and symbol in line for line in text.splitlines())
    okx = next(line for line in text.splitlines() if "okx/c0/r0" in line and " l2 " in line and "BBB" in line)
    for part in ("live", "55.5", "100", "0.1", "3.00", "10.0.0.7"):
        assert part in okx, okx
    assert "stalled" in next(line for line in text.splitlines() if "deribit/c0/r0" in line)
    # 3 tables x 4 venues x 1,000 taken by the sink, of which 400 each already in files
    assert "sink rows: parquet 12,000 (4,800 in files)" in text
    assert "4 rejects" in text
    assert "36 streams (27 live, 9 stalled)" in text
    assert "events in the last 60 s: 3 gap" in text
    assert "seq jump 2 [expected 3]" in text  # an event's detail is shown as written, brackets included


def test_in_a_short_terminal_the_view_fits_and_keeps_the_streams_that_are_not_live() -> None:
    info, stats = fleet(stalled="binance_futures")
    table = streams(info, stats)
    view = live_view(table, events(12), totals=aggregate(stats), elapsed=1.0, throughput=0.0, height=40)
    text = text_of(view)
    assert len(text.rstrip("\n").splitlines()) < 40, text
    assert sum("stalled" in line for line in text.splitlines() if "binance_futures/c0/r0" in line) == 9
    assert "more streams not shown (" in text and " live)" in text
    assert "36 streams (27 live, 9 stalled)" in text  # the totals still count every stream
    assert "events in the last 60 s: 12 gap" in text
    assert "seq jump 11" in text  # the newest event is on screen


def test_a_tall_terminal_shows_every_stream() -> None:
    info, stats = fleet()
    text = text_of(
        live_view(streams(info, stats), events(2), totals=aggregate(stats), elapsed=1.0, throughput=0.0, height=200)
    )
    assert "not shown" not in text
    assert sum("/c0/r0" in line for line in text.splitlines()) == 36
