"""The progress line a capture prints when nobody watches a terminal (`ray job logs` shows it)."""

from __future__ import annotations

import io
import json

from xtrader.config import parse_config
from xtrader.histogram import Histogram
from xtrader.progress import PROGRESS_PREFIX, Progress, progress_line


def totals() -> dict[str, object]:
    latency = Histogram()
    for ns in (1_000_000, 2_000_000, 50_000_000):
        latency.record(ns)
    return {
        "written": {"parquet": {"trades": {"binance": 10, "okx": 5}, "l2": {"binance": 7}}, "questdb": {}},
        "messages": 40,
        "events": {"gaps": 1, "drops": 0},
        "latency": latency,
    }


def test_a_progress_line_is_one_json_object_after_its_prefix() -> None:
    line = progress_line(totals(), 12.34, 99.96)
    assert line.startswith(PROGRESS_PREFIX) and "\n" not in line
    data = json.loads(line.removeprefix(PROGRESS_PREFIX))
    assert data["elapsed_s"] == 12.3 and data["msgs_per_s"] == 100.0 and data["messages"] == 40
    assert data["written"] == {"parquet": 22, "questdb": 0}
    assert data["events"] == {"gaps": 1, "drops": 0}
    assert data["latency_ms"]["p50"] is not None and data["latency_ms"]["p99"] >= data["latency_ms"]["p50"]


def test_progress_prints_once_per_interval() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(5.0, out, clock=lambda: now[0])
    printed = []
    for t in (1.0, 4.9, 5.0, 7.0, 9.9, 10.1, 30.0):
        now[0] = t
        printed.append(progress.update(totals(), t, 1.0))
    assert printed == [False, False, True, False, False, True, True]
    assert out.getvalue().count(PROGRESS_PREFIX) == 3


def test_an_interval_of_zero_prints_nothing() -> None:
    out = io.StringIO()
    progress = Progress(0.0, out, clock=lambda: 1e9)
    assert not progress.update(totals(), 1.0, 1.0)
    assert out.getvalue() == ""


def test_the_interval_is_configured_and_checked() -> None:
    streams = [{"venue": "binance", "symbols": ["BTCUSDT"]}]
    assert parse_config({"streams": streams}).metrics.log_interval_s == 10.0
    capture = parse_config({"streams": streams}, environ={"XTRADER_METRICS_LOG_INTERVAL_S": "2"})
    assert capture.metrics.log_interval_s == 2.0
