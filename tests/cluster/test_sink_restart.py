"""Issue 10, defect 6, with a real Ray restart: a SinkActor killed by Ray (and restarted with the same
writer id) answers a retry of a batch it acknowledged before its death as a repeat, even once the batch's
write-ahead log record was truncated (its file published); new batches of the same source are stored."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.test_sink_durability import batch, expected_ids, parquet_spec, trade_ids

pytestmark = pytest.mark.usefixtures("ray_session")


def test_a_sink_actor_restarted_by_ray_keeps_its_seen_state(tmp_path: Path) -> None:
    import ray

    from actors import actor
    from actors.sink import SinkActor, writer_id

    sink = actor(SinkActor).remote(parquet_spec(tmp_path), writer_id("restart-test"))
    source = "arbiter:s0|binance/s0/c0#e1"
    assert ray.get([sink.write.remote(source, n, {"trades": batch(n)}) for n in range(4)], timeout=120) == [True] * 4
    ray.get(sink.flush.remote(), timeout=120)  # published: the log records are truncated

    ray.kill(sink, no_restart=False)
    deadline = time.monotonic() + 180
    while True:  # the restarted actor answers again
        try:
            repeat = ray.get(sink.write.remote(source, 2, {"trades": batch(2)}), timeout=30)
            break
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            assert time.monotonic() < deadline, "the sink actor did not come back"
            time.sleep(0.5)
    assert repeat is False  # acknowledged before the restart: a repeat
    assert ray.get(sink.write.remote(source, 4, {"trades": batch(4)}), timeout=120) is True
    ray.get(sink.close.remote(), timeout=120)
    ray.kill(sink, no_restart=True)
    assert trade_ids(tmp_path) == expected_ids(5)
