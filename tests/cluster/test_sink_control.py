"""A sink far behind its writes still answers what the driver asks it (stats, accepted rows, recent events).

A SinkActor runs its writes one at a time, in order. Its stats used to wait in the same queue: behind a backlog
of writes, the controller's stats call (5 s timeout) went unanswered, so the live view, Prometheus and the
capture's settling saw the sink's counts frozen (or none at all) exactly while it was behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_sink_durability import batch, expected_ids, parquet_spec, trade_ids

pytestmark = pytest.mark.usefixtures("ray_session")

WRITES = 40


def test_a_sink_behind_its_writes_answers_stats_before_they_are_done(tmp_path: Path) -> None:
    import ray

    from actors import actor
    from actors.sink import SinkActor, writer_id

    sink = actor(SinkActor).remote(parquet_spec(tmp_path), writer_id("control-test"))
    ray.get(sink.stall.remote(0.2, 1_000.0), timeout=60)  # every write 200 ms: 8 s of writes queued below
    source = "binance/s0/c0#e1"
    writes = [sink.write.remote(source, n, {"trades": batch(n)}) for n in range(WRITES)]
    ray.get(writes[0], timeout=120)  # the backlog is being worked on

    stats = ray.get(sink.stats.remote(), timeout=120)
    accepted = ray.get(sink.accepted.remote(), timeout=120)
    ray.get(sink.recent_events.remote(), timeout=120)
    done, _ = ray.wait(writes, num_returns=len(writes), timeout=0)
    assert stats["batches"] < WRITES, "stats waited behind every queued write"
    assert len(done) < WRITES, "every write had finished before stats answered"
    assert sum(accepted["rows"]["trades"].values()) >= sum(stats["rows"]["trades"].values()) > 0

    assert ray.get(writes, timeout=300) == [True] * WRITES
    final = ray.get(sink.close.remote(), timeout=120)  # in the writes' order: after every one of them
    ray.kill(sink, no_restart=True)
    assert final["batches"] == WRITES
    assert trade_ids(tmp_path) == expected_ids(WRITES)
