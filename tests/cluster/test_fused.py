"""`pipeline.fused`: every stage of a capture in one actor process, against the simulator's ground truth.

The same checks as tests/cluster/test_pipeline.py (rows written == rows sent, once; every final book equal to the
simulator's), and what fusing changes: one process for every stage, a crash restarting all of them together, and
streams added at run time (actors of their own) writing through the fused sinks and book.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jobs.demo import demo_capture
from jobs.run import run
from tests.cluster.conftest import UNTIL_TIMEOUT_S, assert_written, wait_for
from tests.cluster.test_pipeline import (
    assert_complete,
    book_count,
    book_stats,
    capture_until,
    controller,
    driven,
    duplicates,
    read,
    websocket_rows,
)
from xtrader.config import Capture

pytestmark = pytest.mark.usefixtures("ray_session")


def fused(capture: Capture, **pipeline: Any) -> Capture:
    data = capture.model_dump()
    data["pipeline"].update(fused=True, **pipeline)
    return Capture.model_validate(data)


def stage_pids(summary_or_stats: dict[str, Any]) -> dict[str, int]:
    """Each stage's pid, from the final stats (connectors, books, sinks and arbiters report theirs)."""
    return {
        name: int(stats["pid"])
        for name, stats in summary_or_stats.items()
        if isinstance(stats, dict) and isinstance(stats.get("pid"), int)
    }


def test_a_fused_capture_writes_every_row_once_and_its_books_match(tmp_path: Path) -> None:
    capture = fused(demo_capture(str(tmp_path / "data"), symbols=2, rate=40.0))
    pids: dict[str, int] = {}

    def one_process(stats: Mapping[str, Any], totals: Mapping[str, Any]) -> bool:
        pids.update(stage_pids(stats))
        return True

    from tests.cluster.test_pipeline import UNTIL
    from xtrader.driver.until import StopWhen

    summary = capture_until(capture, StopWhen(min_rows=UNTIL.min_rows, books_valid=True, check=one_process))
    assert_complete(summary, tmp_path / "data")
    assert summary["books"]["checked"] == book_count(capture)
    # every venue's connector, the books and the sink: one process
    assert {"sink/parquet", "book/binance", "binance/c0/r0", "okx/c0/r0", "deribit/c0/r0"} <= set(pids), pids
    assert len(set(pids.values())) == 1, pids


def test_fused_redundant_connections_are_deduplicated_by_the_arbiter_in_process(tmp_path: Path) -> None:
    capture = demo_capture(str(tmp_path / "data"), symbols=2, rate=40.0, venues=("binance", "okx"), redundancy=2)
    summary = capture_until(fused(capture))
    assert_complete(summary, tmp_path / "data")
    assert summary["books"]["checked"] == book_count(capture)
    assert summary["events"]["duplicates"] > 0


def test_a_killed_fused_host_restarts_every_stage_and_its_books_recover(tmp_path: Path) -> None:
    import ray

    capture = fused(demo_capture(str(tmp_path / "data"), symbols=2, rate=60.0, venues=("binance", "okx")))
    with driven(capture) as result:
        control = controller("binance/c0/r0")

        def streaming(pid: int | None = None) -> dict[str, Any] | None:
            """Stats once both venues stream with valid books (in a new process, when `pid` is the old one)."""
            stats = control.actor_stats()
            mine = stats.get("binance/c0/r0", {})
            valid = all(book_stats(control, v)["valid"] == 2 for v in ("binance", "okx"))
            fresh = mine.get("pid") not in (None, pid)
            return mine if fresh and mine.get("messages", 0) >= 100 and valid else None

        before = wait_for("both venues streaming, every book valid", streaming)
        stage = ray.get(control.handle.handle.remote("binance/c0/r0"))  # a FusedPeer: its host's name
        host = ray.get_actor(stage.host)
        ray.kill(host, no_restart=False)  # Ray restarts it: every stage is built again and starts itself
        after = wait_for("a new process streaming, every book valid again", lambda: streaming(before["pid"]))
        assert after["started_by"] == "restart"
        control.stop()
    assert result["books"]["matched"] == result["books"]["checked"] == book_count(capture)
    assert duplicates(read(tmp_path / "data", "trades"), ["exchange", "symbol", "trade_id"]) == 0
    for table, venues in result["tables"].items():  # what the dead process held is lost, and only that
        for venue, entry in venues.items():
            assert entry["written"]["parquet"] <= entry["sent"] + entry["rest"], (table, venue, entry)
            assert entry["written"]["parquet"] > 0, (table, venue, entry)


def test_a_stream_added_at_run_time_writes_through_the_fused_sink(tmp_path: Path) -> None:
    data = demo_capture(str(tmp_path / "data"), symbols=3, rate=60.0, venues=("binance", "okx")).model_dump()
    symbol = next(s["symbols"][0] for s in data["streams"] if s["venue"] == "okx")
    data["streams"] = [s for s in data["streams"] if s["venue"] == "binance"]  # okx is served, not captured
    *first, later = data["streams"][0]["symbols"]  # `later`: served, subscribed at run time
    data["streams"][0]["symbols"] = first
    capture = fused(Capture.model_validate(data))
    with driven(capture) as result:
        control = controller("binance/c0/r0")
        wait_for("2 binance books valid", lambda: book_stats(control, "binance")["valid"] >= 2)
        control.subscribe("okx", ["trades", "l2"], [symbol])  # a venue no stream captures: a new stream's actors
        wait_for(f"okx {symbol}'s book valid", lambda: book_stats(control, "okx")["valid"] >= 1)
        control.subscribe("binance", ["trades", "l2"], [later])  # a fused connection takes a symbol more
        wait_for(f"{later}'s book valid", lambda: book_stats(control, "binance")["valid"] >= 3)
        control.stop()
    l2 = websocket_rows(read(tmp_path / "data", "l2"), "l2")
    exchanges = set(l2.column("exchange").cast(pa.string()).to_pylist())
    assert {"binance", "okx"} <= exchanges
    assert {symbol, later} <= set(l2.column("symbol").cast(pa.string()).to_pylist())
    assert result["books"]["matched"] == result["books"]["checked"]
    assert_written(result)


def test_a_chaos_kill_of_a_fused_stage_restarts_the_process_and_the_capture_recovers(tmp_path: Path) -> None:
    from xtrader.chaos import parse_chaos
    from xtrader.driver.until import StopWhen

    capture = fused(demo_capture(str(tmp_path / "data"), symbols=2, rate=60.0, venues=("binance",)))

    def killed_and_recovered(stats: Mapping[str, Any], totals: Mapping[str, Any]) -> bool:
        connector = stats.get("binance/c0/r0", {})
        return connector.get("started_by") == "restart" and connector.get("messages", 0) >= 100

    until = StopWhen(min_rows=1, books_valid=True, check=killed_and_recovered)
    summary = run(capture, UNTIL_TIMEOUT_S, until=until, chaos=parse_chaos("kill_sink_every_s=4,one_at_a_time=1"))
    assert summary["until"]["met"], summary["until"]
    assert summary["chaos"]["sink"] >= 1
    assert summary["books"]["matched"] == summary["books"]["checked"] == book_count(capture)
    kinds = set(read(tmp_path / "data", "events").column("kind").cast(pa.string()).to_pylist())
    assert "chaos" in kinds
