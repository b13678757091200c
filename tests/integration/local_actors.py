"""The capture's actors in one process, for integration tests without Ray: a real ConnectorActor against the
simulator, real SinkActors (Parquet files, QuestDB through the ILP receiver), called through handles that
behave like Ray's (`handle.method.remote(...)` returns an awaitable; an actor runs one call at a time, in order).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from actors.connector import ConnectorActor
from actors.sink import SinkActor
from xtrader.config import ParquetSink, Pipeline, QuestDBSink
from xtrader.plan import ConnectorSpec, SinkSpec
from xtrader.simulator import Simulator
from xtrader.venues import Subscription, venue


class LocalHandle:
    """A stand-in for a Ray actor handle: calls run on the actor's own thread, one at a time, in order."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=type(actor).__name__)

    def __getattr__(self, name: str) -> _Method:
        return _Method(getattr(self.actor, name), self.pool)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


class _Method:
    def __init__(self, method: Callable[..., Any], pool: ThreadPoolExecutor) -> None:
        self.method = method
        self.pool = pool

    def remote(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(self.method, *args, **kwargs))


def parquet_sink(root: Path, flush_interval_s: float = 0.2) -> SinkActor:
    config = ParquetSink(root=str(root), rotation_seconds=1.0)
    spec = SinkSpec("sink/parquet", "parquet", config, config.rotation("realtime"), 10_000, flush_interval_s, 0.0)
    return SinkActor(spec, "local")


def questdb_sink(conf: str, spill: Path, flush_interval_s: float = 0.2) -> SinkActor:
    config = QuestDBSink(enabled=True, conf=conf, spill_dir=str(spill))
    spec = SinkSpec("sink/questdb", "questdb", config, None, 10_000, flush_interval_s, 0.0)
    return SinkActor(spec)


def connector_actor(
    sim: Simulator,
    name: str,
    tables: Sequence[str],
    sinks: Sequence[LocalHandle],
    pipeline: Pipeline,
) -> ConnectorActor:
    """A ConnectorActor for every simulated symbol of `name` in `tables` (no l2: no book actor)."""
    urls = sim.urls[name]
    v = venue(name, ws_base=urls["ws"], rest_base=urls["rest"])
    subscriptions = [Subscription(t, s) for s in sim.symbols[name] for t in tables]  # type: ignore[arg-type]
    (connection,) = v.connections(subscriptions)
    spec = ConnectorSpec(
        id=f"{name}/c0/r0",
        stream=name,
        venue=name,
        url=connection.url,
        ws_base=urls["ws"],
        rest_base=urls["rest"],
        subscriptions=tuple(connection.subscriptions),
        connection=0,
        replica=0,
        placement_group="",
        bundle_index=0,
        cpus=1.0,
    )
    return ConnectorActor(spec, list(sinks), None, None, pipeline=pipeline)


def sent_trades(sim: Simulator, name: str) -> int:
    """Trades the simulator wrote to some socket (the ground truth)."""
    return int(sum(sim.stats()["venues"][name]["unique"].get("trades", {}).values()))


def front_rows(sink: SinkActor, table: str) -> int:
    """Rows the sink's front took of `table` (all venues)."""
    return int(sum(sink.front.rows.get(table, {}).values()))
