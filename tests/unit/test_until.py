"""xtrader/driver/until.py: when a capture may stop (--min-rows, --until-books-valid) and when it has caught up."""

from __future__ import annotations

from typing import Any

from jobs.demo import demo_capture
from xtrader.driver.until import StopWhen, caught_up
from xtrader.plan import Endpoint, build_plan


def plan() -> Any:
    capture = demo_capture("/tmp/unused", symbols=2, venues=("binance", "okx"))
    fake = {s.venue: Endpoint("ws://127.0.0.1:1", "http://127.0.0.1:1") for s in capture.streams}
    return build_plan(capture, fake)


def sink(rows: dict[str, dict[str, int]], rest: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    return {"rows": rows, "origins": {"rest": rest or {}}}


EVERY = {table: {"binance": 25, "okx": 25} for table in ("trades", "l2", "bbo")}


def test_min_rows_names_every_table_and_venue_short_of_rows_rest_snapshot_rows_apart() -> None:
    rows = {**EVERY, "trades": {"binance": 25, "okx": 3}}
    stats = {"sink/parquet": sink(rows, rest={"l2": {"binance": 10}})}
    missing = StopWhen(min_rows=20).missing(plan(), stats, {})
    assert missing == ["l2/binance parquet: 15 rows < 20", "trades/okx parquet: 3 rows < 20"]
    assert StopWhen(min_rows=20).missing(plan(), {"sink/parquet": sink(EVERY)}, {}) == []


def test_books_valid_counts_every_subscribed_symbol() -> None:
    stats = {"book/binance": {"valid": 2}, "book/okx": {"valid": 1}}
    assert StopWhen(books_valid=True).missing(plan(), stats, {}) == ["book/okx: 1/2 books valid"]
    assert StopWhen(books_valid=True).missing(plan(), {"book/binance": {"error": "x"}, "book/okx": {"valid": 2}}, {})


def test_the_callers_condition_and_no_condition() -> None:
    until = StopWhen(check=lambda stats, totals: totals["events"]["gaps"] > 0)
    assert until.missing(plan(), {}, {"events": {"gaps": 0}}) == ["the caller's condition does not hold"]
    assert until.missing(plan(), {}, {"events": {"gaps": 1}}) == []
    assert not StopWhen()


def test_caught_up_when_every_sink_took_every_row_sent() -> None:
    sim = {"venues": {"okx": {"unique": {"trades": {"A": 3, "B": 2}, "l2": {"A": 7}}}}}
    behind = {"sink/parquet": sink({"trades": {"okx": 5}, "l2": {"okx": 6}}), "book/okx": {"valid": 2}}
    assert caught_up(behind, sim) == ["l2/okx sink/parquet: 6 of 7"]
    assert caught_up({"sink/parquet": sink({"trades": {"okx": 5}, "l2": {"okx": 7}})}, sim) == []
