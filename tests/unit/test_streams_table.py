"""The live view's tables (`xtrader.streams_table`), built from synthetic actor stats."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from xtrader import metrics
from xtrader.batch import Batches
from xtrader.histogram import Histogram
from xtrader.schema import EVENTS
from xtrader.streams_table import (
    STATS_SCHEMA,
    STREAMS_SCHEMA,
    EventTail,
    RateWindow,
    connector_counts,
    count_symbols,
    events_table,
    stats_table,
    streams,
)

STREAMS = {
    "binance": {
        "venue": "binance",
        "tables": ["trades", "l2"],
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "connectors": ["binance/c0/r0"],
    }
}


def connector(**overrides: Any) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "connected": 1,
        "last_message_age_s": 0.2,
        "reconnects": 2,
        "error": None,
        "stopped": False,
        "node": "10.0.0.7",
        "subscriptions": {"trades": ["BTCUSDT", "ETHUSDT"], "l2": ["BTCUSDT", "ETHUSDT"]},
        "symbol_rows": {"trades": {"BTCUSDT": 100, "ETHUSDT": 40}, "l2": {"BTCUSDT": 900}},
    }
    stats.update(overrides)
    return stats


def sink_with_latency(ns: list[int]) -> dict[str, Any]:
    stats = metrics.Stats("sink/parquet")
    histogram: Histogram = stats.histogram(metrics.CODE_LATENCY, "binance", "trades")
    for value in ns:
        histogram.record(value)
    return {"metrics": stats.snapshot()}


def book(invalid: list[str], gaps: int = 0) -> dict[str, Any]:
    return {"invalid": invalid, "symbols": {"BTCUSDT": {"gaps": gaps, "resyncs": 1}, "ETHUSDT": {"gaps": 0}}}


def rows_of(table: pa.Table) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["table"], r["symbol"]): r for r in table.to_pylist()}


def test_one_row_per_venue_table_symbol_connection_with_its_counters() -> None:
    stats = {
        "binance/c0/r0": connector(),
        "book/binance": book([], gaps=3),
        "sink/parquet": sink_with_latency([1_000_000] * 99 + [50_000_000]),
    }
    table = streams(STREAMS, stats, {("binance/c0/r0", "trades", "BTCUSDT"): 12.5})
    assert table.schema == STREAMS_SCHEMA
    assert table.num_rows == 4  # 2 tables x 2 symbols x 1 connection
    rows = rows_of(table)
    btc = rows[("trades", "BTCUSDT")]
    assert btc["venue"] == "binance" and btc["connection"] == "binance/c0/r0" and btc["stream"] == "binance"
    assert btc["state"] == "live"
    assert btc["rows_per_s"] == 12.5 and btc["rows"] == 100
    assert btc["reconnects"] == 2 and btc["last_message_age_s"] == 0.2 and btc["node"] == "10.0.0.7"
    assert btc["gaps"] is None and btc["resyncs"] is None  # book counters are l2's only
    assert btc["latency_p99_ms"] is not None and btc["latency_p99_ms"] >= 1.0
    assert rows[("l2", "BTCUSDT")]["gaps"] == 3 and rows[("l2", "BTCUSDT")]["resyncs"] == 1
    assert rows[("l2", "BTCUSDT")]["latency_p99_ms"] is None  # no l2 latency recorded
    assert rows[("l2", "ETHUSDT")]["rows"] is None and rows[("l2", "ETHUSDT")]["rows_per_s"] is None
    assert table.to_pandas().shape == (4, len(STREAMS_SCHEMA))


@pytest.mark.parametrize(
    ("overrides", "invalid", "expected"),
    [
        ({}, [], "live"),
        ({"connected": 0}, [], "connecting"),
        ({"last_message_age_s": None}, [], "connecting"),
        ({"last_message_age_s": 11.0}, [], "stalled"),
        ({}, ["BTCUSDT"], "resyncing"),
        ({"stopped": True}, [], "stopped"),
        ({"error": "RuntimeError('boom')"}, [], "stopped"),
    ],
)
def test_state(overrides: dict[str, Any], invalid: list[str], expected: str) -> None:
    stats = {"binance/c0/r0": connector(**overrides), "book/binance": book(invalid)}
    assert rows_of(streams(STREAMS, stats))[("l2", "BTCUSDT")]["state"] == expected


def test_resyncing_is_about_l2_only_and_unsubscribed_symbols_show_stopped() -> None:
    stats = {
        "binance/c0/r0": connector(subscriptions={"trades": ["BTCUSDT"], "l2": ["BTCUSDT"]}),
        "book/binance": book(["BTCUSDT"]),
    }
    info = {**STREAMS["binance"], "symbols": ["BTCUSDT"], "symbols_ran": ["ETHUSDT"]}
    rows = rows_of(streams({"binance": info}, stats))
    assert rows[("trades", "BTCUSDT")]["state"] == "live"
    assert rows[("trades", "ETHUSDT")]["state"] == "stopped"  # ran (it has rows), no longer subscribed
    assert rows[("trades", "ETHUSDT")]["rows"] == 40
    assert ("l2", "ETHUSDT") not in rows  # never carried any l2 row here and no longer subscribed


def test_an_actor_that_did_not_answer_and_a_pending_connection() -> None:
    info = {**STREAMS["binance"], "connectors": ["binance/c0/r0", "binance/c1/r0"]}
    stats = {"binance/c0/r0": {"error": "GetTimeoutError()"}}
    table = streams({"binance": info}, stats, pending={"binance/c1/r0": 2.0})
    states = {(r["connection"], r["table"], r["symbol"]): r["state"] for r in table.to_pylist()}
    assert states[("binance/c1/r0", "trades", "BTCUSDT")] == "waiting for 2 CPU"
    # the connector that did not answer: nothing known, its rows are not listed as carried
    assert not any(c == "binance/c0/r0" for c, _, _ in states)


def test_rate_window_is_rows_per_second_over_the_last_ten_seconds() -> None:
    key = ("c", "trades", "BTCUSDT")
    window = RateWindow(10.0)
    assert window.rates() == {}
    window.add(0.0, {key: 0})
    assert window.rates() == {}  # one sample: no rate yet
    window.add(5.0, {key: 500})
    assert window.rates() == {key: 100.0}
    for t in range(6, 31):
        window.add(float(t), {key: 500 + (t - 5) * 10, ("c", "l2", "X"): 7})
    # 10 rows/s for the last 25 s; the first 100 rows/s are out of the window
    assert window.rates()[key] == pytest.approx(10.0)
    assert len(window.samples) <= 12
    # a key that appeared within the window: all its rows are new
    assert window.rates()[("c", "l2", "X")] < 1.0


def test_connector_counts_and_count_symbols_on_real_batches() -> None:
    trades = pa.record_batch(
        {"symbol": pa.array(["A", "B", "A"]).dictionary_encode(), "price": pa.array([1.0, 2.0, 3.0])}
    )
    bbo = pa.record_batch({"symbol": pa.array(["B"]), "bid": pa.array([1.0])})
    counts: dict[str, dict[str, int]] = {}
    count_symbols(Batches("x", trades=trades, bbo=bbo), counts)
    count_symbols(Batches("x", trades=trades), counts)
    assert counts == {"trades": {"A": 4, "B": 2}, "bbo": {"B": 1}}
    stats = {"c0": {"symbol_rows": counts}, "sink/parquet": {"rows": {}}, "dead": {"error": "x"}}
    assert connector_counts(stats) == {("c0", "trades", "A"): 4, ("c0", "trades", "B"): 2, ("c0", "bbo", "B"): 1}


def test_stats_table_one_row_per_actor() -> None:
    stats = {
        "binance/c0/r0": connector(messages=10, rows=30),
        "binance/arbiter": {"venue": "binance"},
        "book/binance": {"exchange": "binance"},
        "sink/parquet": {"rows": {"trades": {"binance": 5, "okx": 6}}},
        "okx/c0/r0": {"error": "RayActorError()"},
    }
    table = stats_table(stats)
    assert table.schema == STATS_SCHEMA
    rows = {r["actor"]: r for r in table.to_pylist()}
    assert rows["binance/c0/r0"]["kind"] == "connector" and rows["binance/c0/r0"]["rows"] == 30
    assert rows["binance/arbiter"]["kind"] == "arbiter"
    assert rows["book/binance"]["kind"] == "book" and rows["book/binance"]["venue"] == "binance"
    assert rows["sink/parquet"]["kind"] == "sink" and rows["sink/parquet"]["rows"] == 11
    assert rows["okx/c0/r0"]["ok"] is False and rows["okx/c0/r0"]["error"] == "RayActorError()"


def event_batch(seconds: list[float], kind: str = "connect") -> pa.RecordBatch:
    n = len(seconds)
    return pa.RecordBatch.from_pydict(
        {
            "exchange": pa.array(["binance"] * n).dictionary_encode(),
            "symbol": pa.array([None] * n, pa.string()).dictionary_encode(),
            "ts": pa.array([int(s * 1e9) for s in seconds], pa.int64()).cast(EVENTS.field("ts").type),
            "kind": pa.array([kind] * n).dictionary_encode().cast(EVENTS.field("kind").type),
            "detail": pa.array(["d"] * n),
        }
    ).cast(EVENTS)


def test_events_since_and_the_bounded_tail() -> None:
    table = events_table([event_batch([30.0, 10.0]), event_batch([20.0], "gap")], since=15.0)
    assert table.schema == EVENTS
    assert [t.timestamp() for t in table["ts"].to_pylist()] == [20.0, 30.0]  # oldest first, 10 s left out
    assert events_table([]).num_rows == 0
    tail = EventTail(max_rows=3)
    for start in range(5):
        tail.add(event_batch([float(start), float(start) + 0.5]))
    assert 3 <= tail.rows <= 4  # whole batches kept, at most one more than needed
    assert tail.table().num_rows == tail.rows
    assert min(t.timestamp() for t in tail.table()["ts"].to_pylist()) >= 3.0
