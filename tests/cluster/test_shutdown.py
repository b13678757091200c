"""Issue 10 defect 8: the driver's stop closes every sink whatever happened before, retries a failed close, and
waits for each stage as a whole (not per actor in turn). Real Ray actors stand in for the pipeline's actors:
the behaviour under test is the driver's (jobs/fleet.py), not theirs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobs.fleet import Running, stop
from xtrader.plan import Plan

pytestmark = pytest.mark.usefixtures("ray_session")


def remote(cls: type) -> Any:
    import ray

    return ray.remote(num_cpus=0)(cls)


class Sink:
    """Fails its first `failures` closes; counts them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.closes = 0

    def close(self) -> dict[str, Any]:
        self.closes += 1
        if self.closes <= self.failures:
            raise OSError("disk full")
        return {"rows": {"trades": {"binance": 5}}, "closes": self.closes}

    def stats(self) -> dict[str, Any]:
        return {"rows": {"trades": {"binance": 5}}, "closes": self.closes}


class Slow:
    """A connector / book / arbiter stuck for `seconds` in every call."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def stop(self) -> dict[str, Any]:
        time.sleep(self.seconds)
        return {}

    def drain(self) -> None:
        time.sleep(self.seconds)

    def stats(self) -> dict[str, Any]:
        return {}


class Broken:
    """A controller whose every answer fails."""

    def retired_connectors(self) -> None:
        raise RuntimeError("controller lost")

    def added_actors(self) -> None:
        raise RuntimeError("controller lost")


def running(sinks: dict[str, Any], connectors: dict[str, Any] | None = None, controller: Any = None) -> Running:
    plan = Plan(capture="t", sinks=(), books=(), arbiters=(), placement_groups=(), connectors=(), routes=())
    return Running(plan, sinks=sinks, connectors=connectors or {}, controller=controller)


def test_a_failed_sink_close_is_tried_again() -> None:
    flaky = remote(Sink).remote(failures=2)
    final = stop(running({"sink/parquet": flaky}, controller=remote(Broken).remote()), timeout_s=30)
    assert final["sink/parquet"]["close_attempts"] == 3
    assert final["sink/parquet"]["rows"] == {"trades": {"binance": 5}}
    assert "close_error" not in final["sink/parquet"]


def test_a_sink_that_never_closes_is_reported_with_what_it_holds() -> None:
    hopeless = remote(Sink).remote(failures=99)
    final = stop(running({"sink/parquet": hopeless}, controller=remote(Broken).remote()), timeout_s=30)
    assert "disk full" in final["sink/parquet"]["close_error"]
    assert final["sink/parquet"]["rows"] == {"trades": {"binance": 5}}  # its last stats, for the summary


def test_stuck_connectors_are_waited_for_together_and_the_sinks_still_close() -> None:
    connectors = {f"conn/{i}": remote(Slow).remote(30.0) for i in range(6)}
    sink = remote(Sink).remote(failures=0)
    import ray

    ray.get([handle.stats.remote() for handle in [*connectors.values(), sink]], timeout=300)  # every one started
    started = time.monotonic()
    final = stop(running({"sink/parquet": sink}, connectors, controller=remote(Broken).remote()), timeout_s=3)
    elapsed = time.monotonic() - started
    assert all("no answer" in final[name]["error"] for name in connectors)
    assert final["sink/parquet"]["close_attempts"] == 1
    # one bound for the stage, not 3 s per stuck connector in turn (18 s); generous for a busy machine
    assert elapsed < 15, elapsed
