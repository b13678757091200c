"""The controller's `stats()` (the driver's loop, `streams()`, `xtrader status` all read it) must not wait for an
actor that does not answer: a killed actor Ray is restarting takes a minute to come back on a loaded machine,
and every reader of the live view was held that long (the soak benchmark's stats went stale for 110 s)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import ray

from actors.controller import ControllerActor

pytestmark = pytest.mark.usefixtures("ray_session")


@ray.remote(num_cpus=0)
class Answering:
    """Answers `stats()` with a count of its answers, after `delay_s`."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.answers = 0

    def hang(self) -> None:
        self.delay_s = 600.0

    async def stats(self) -> dict[str, Any]:
        await asyncio.sleep(self.delay_s)
        self.answers += 1
        return {"started": True, "rows": {"trades": {"binance": self.answers}}}


def test_an_actor_that_does_not_answer_does_not_hold_the_others_stats() -> None:
    controller = ray.remote(num_cpus=0, max_concurrency=16)(ControllerActor).remote("stats-timeout")
    sink, book = Answering.remote(), Answering.remote()  # type: ignore[attr-defined]
    ray.get(controller.register.remote({"sink/parquet": sink, "book/binance": book}, {}))
    first = ray.get(controller.stats.remote(), timeout=60)
    assert first["sink/parquet"]["rows"] == {"trades": {"binance": 1}}, first

    ray.get(sink.hang.remote())
    # without a bound per actor this waits the 600 s the sink hangs
    second = ray.get(controller.stats.remote(), timeout=60)
    assert second["book/binance"]["rows"] == {"trades": {"binance": 2}}, second
    assert "no answer within" in second["sink/parquet"]["error"], second
    # the last answer is kept, so the totals the driver reads never fall back while an actor restarts
    assert second["sink/parquet"]["rows"] == {"trades": {"binance": 1}}, second
    ray.kill(controller)
