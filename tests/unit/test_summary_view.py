"""The final summary as rich tables (`xtrader.driver.summary_view`): what a person reads at the end of a run in
a terminal. Summaries come from the real `summary()` on synthetic actor stats."""

from __future__ import annotations

from io import StringIO
from typing import Any

from rich.console import Console

from xtrader import metrics
from xtrader.config import Capture
from xtrader.driver.summary import summary
from xtrader.driver.summary_view import summary_renderable, written_ok
from xtrader.driver.totals import aggregate


def capture() -> Capture:
    return Capture.model_validate(
        {
            "streams": [
                {"venue": "binance", "tables": ["trades", "l2"], "symbols": ["BTCUSDT"]},
                {"venue": "okx", "tables": ["trades", "l2"], "symbols": ["BTC-USDT"]},
            ]
        }
    )


def stats(okx_l2_stored: int = 1_250) -> dict[str, Any]:
    connector = metrics.Stats("binance/c0/r0")
    connector.count(metrics.MESSAGES, 4_000, "binance")
    connector.count(metrics.RECONNECTS, 2, "binance")
    book = metrics.Stats("book/okx")
    book.count(metrics.GAPS, 3, "okx", "l2")
    sink = metrics.Stats("sink/parquet")
    sink.histogram(metrics.CODE_LATENCY, "binance", "trades").record_many([2_000_000] * 98 + [50_000_000] * 2)
    sink.histogram(metrics.SINK_FLUSH, channel="parquet").record_many([4_000_000] * 10)
    return {
        "binance/c0/r0": {"metrics": connector.snapshot()},
        "book/okx": {"metrics": book.snapshot()},
        "sink/parquet": {
            "sink": "parquet",
            "rows": {
                "trades": {"binance": 1_000, "okx": 700},
                "l2": {"binance": 2_345, "okx": okx_l2_stored},
            },
            "origins": {"rest": {"l2": {"binance": 345, "okx": 50}}},
            "metrics": sink.snapshot(),
        },
    }


SENT = {
    "venues": {
        "binance": {"unique": {"trades": {"BTCUSDT": 1_000}, "l2": {"BTCUSDT": 2_000}}},
        "okx": {"unique": {"trades": {"BTC-USDT": 700}, "l2": {"BTC-USDT": 1_200}}},
    }
}


def result(okx_l2_stored: int = 1_250, books: tuple[int, int] = (2, 2), **extra: Any) -> dict[str, Any]:
    out = summary(
        capture(),
        8.0,
        totals=aggregate(stats(okx_l2_stored)),
        sim_stats=SENT,
        books=books,
        unknown_symbols=extra.pop("unknown_symbols", []),
    )
    out.update(extra)
    return out


def text_of(renderable: Any, width: int = 120) -> str:
    console = Console(file=StringIO(), record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def line_of(text: str, *parts: str) -> str:
    return next(line for line in text.splitlines() if all(p in line for p in parts))


def test_every_table_and_venue_shows_sent_rest_written_accounted_and_ok() -> None:
    text = text_of(summary_renderable(result()))
    expected = {  # sent, rest, written parquet, accounted parquet
        ("trades", "binance"): ("1,000", "0", "1,000", "0"),
        ("l2", "binance"): ("2,000", "345", "2,345", "0"),
        ("trades", "okx"): ("700", "0", "700", "0"),
        ("l2", "okx"): ("1,200", "50", "1,250", "0"),
    }
    for (table, venue), numbers in expected.items():
        cells = [c.strip() for c in line_of(text, f" {table} ", f" {venue} ").split("│")]
        assert cells[1:-1] == [table, venue, *numbers, "yes"], cells
    assert "written parquet" in text and "accounted parquet" in text
    assert "written questdb" not in text and "accounted questdb" not in text  # not enabled: no column
    assert "NO" not in text


def test_a_table_whose_sink_holds_fewer_rows_than_sent_plus_rest_is_marked_with_the_difference() -> None:
    text = text_of(summary_renderable(result(okx_l2_stored=1_247)))
    assert "NO (parquet -3)" in line_of(text, " l2 ", " okx ")
    assert "yes" in line_of(text, " l2 ", " binance ")


def test_events_books_latency_throughput_and_flushes_are_listed() -> None:
    out = result()
    text = text_of(summary_renderable(out))
    assert "2 reconnects" in line_of(text, "events")
    assert "3 gaps" in line_of(text, "events")
    assert "2 of 2 match the simulator: yes" in line_of(text, "books")
    ms = out["latency_ms"]
    assert 1.9 < ms["p50"] < 2.1 and 45 < ms["p99"] <= ms["p999"] < 55
    assert f"p50 {ms['p50']:.3f}  p99 {ms['p99']:.3f}  p999 {ms['p999']:.3f}" in line_of(text, "latency ms")
    assert "500.0 msg/s over 8.0 s" in line_of(text, "throughput")  # 4,000 messages in 8 s
    assert "p50 4.0" in line_of(text, "parquet flush ms")
    assert "500.0 msg/s" in line_of(text, "xtrader summary")


def test_books_not_matching_the_simulator_and_an_unmet_stop_condition_are_marked() -> None:
    until = {"met": False, "after_s": 30.0, "missing": ["okx l2: 3 of 20 rows [parquet]"]}
    text = text_of(summary_renderable(result(books=(4, 3), until=until, unknown_symbols=["FOO-BAR"])))
    assert "3 of 4 match the simulator: NO" in line_of(text, "books")
    assert "NO: okx l2: 3 of 20 rows [parquet]" in line_of(text, "stop condition met")  # brackets kept as text
    assert "FOO-BAR" in line_of(text, "unknown symbols")


def test_a_real_venue_without_ground_truth_has_no_verdict() -> None:
    out = summary(capture(), 8.0, totals=aggregate(stats()), sim_stats=None, books=(0, 0), unknown_symbols=[])
    text = text_of(summary_renderable(out))
    cells = [c.strip() for c in line_of(text, " l2 ", " okx ").split("│")]
    assert cells[1:-1] == ["l2", "okx", "-", "50", "1,250", "0", "-"]
    assert "books" in text and "none checked" in text
    assert written_ok(out["tables"]["l2"]["okx"]) is None


def test_written_ok_compares_every_enabled_sink_with_sent_plus_rest() -> None:
    assert written_ok({"sent": 10, "rest": 2, "written": {"parquet": 12, "questdb": None}}) is True
    assert written_ok({"sent": 10, "rest": 2, "written": {"parquet": 12, "questdb": 11}}) is False


def test_written_ok_counts_the_accounted_rows_of_each_sink() -> None:
    lost = {"sent": 10, "rest": 2, "written": {"parquet": 12, "questdb": 11}, "accounted": {"parquet": 0, "questdb": 1}}
    assert written_ok(lost) is True
    unaccounted = {**lost, "accounted": {"parquet": 0, "questdb": 0}}
    assert written_ok(unaccounted) is False
