"""`xtrader demo --redundancy 2 --chaos ...` (issue 10): actors killed while the capture runs, on top of the
simulator's disconnects; with two connections per stream nothing is lost: written == sent + rest for every
table and venue, no duplicate row, every book equal to the simulator's, every fault an `events` row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from jobs.demo import demo_capture
from jobs.run import run
from tests.cluster.conftest import MIN_ROWS, UNTIL_TIMEOUT_S, assert_until_met
from tests.cluster.test_pipeline import assert_complete, read
from xtrader.chaos import parse_chaos
from xtrader.driver.until import StopWhen

pytestmark = pytest.mark.usefixtures("ray_session")

#: one fault at a time: on a busy machine a restart can take longer than the clock leaves it, and two overlapping
#: faults (a connector killed while the other connection of its stream is still restarting) lose what only the
#: second victim held, which no redundancy of 2 covers (docs/guide.md, "What redundancy covers")
SPEC = "kill_connector_every_s=7,kill_sink_every_s=11,kill_book_every_s=13,one_at_a_time=1"
#: restarts seen (new processes) before the capture may stop: every fault of SPEC has happened and been survived
RESTARTS = {"connector": 2, "sink": 1, "book": 1}


def test_redundant_connections_cover_killed_actors(tmp_path: Path) -> None:
    capture = demo_capture(
        str(tmp_path / "data"),
        symbols=2,
        rate=40.0,
        faults="disconnect_after_s=9",
        redundancy=2,
        venues=("binance", "okx"),
    )
    pids: dict[str, set[int]] = {}

    def faults_done(stats: dict[str, Any], totals: dict[str, Any]) -> bool:
        for name, s in stats.items():
            if isinstance(s, dict) and s.get("pid") and not s.get("error"):
                pids.setdefault(name, set()).add(s["pid"])
        restarts = {kind: 0 for kind in RESTARTS}
        for name, seen in pids.items():
            kind = "sink" if name.startswith("sink/") else "book" if name.startswith("book/") else "connector"
            if "/c" in name or kind != "connector":
                restarts[kind] += len(seen) - 1
        return all(restarts[kind] >= n for kind, n in RESTARTS.items())

    until = StopWhen(min_rows=MIN_ROWS, books_valid=True, check=faults_done)
    summary = run(capture, UNTIL_TIMEOUT_S, until=until, chaos=parse_chaos(SPEC))
    assert_until_met(summary)
    chaos = summary["chaos"]
    assert chaos["connector"] >= 2 and chaos["sink"] >= 1 and chaos["book"] >= 1, chaos
    assert_complete(summary, tmp_path / "data", faults=True)
    events = read(tmp_path / "data", "events")
    injected = events.filter(pc.equal(events.column("kind").cast("string"), "chaos"))
    assert injected.num_rows >= sum(chaos.values()), (injected.num_rows, chaos)
