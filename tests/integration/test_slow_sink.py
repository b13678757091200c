"""A slow sink (writes delayed by `SinkActor.stall`) behind a real ConnectorActor fed by the simulator, with real
Parquet files and QuestDB through the ILP receiver (actors in-process, called like Ray calls them).

- block: the producer slows down, its windows stay bounded, nothing is lost, the latency is reported;
- lossy: memory bounded, the other sink stays fresh, and `dropped + written == sent` exactly for each sink;
- defect 11: a slow QuestDB does not throttle Parquet (each sink has its own bound).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from actors.connector import ConnectorActor
from actors.sink import SinkActor
from tests.integration.ilp_receiver import IlpReceiver
from tests.integration.local_actors import (
    LocalHandle,
    connector_actor,
    front_rows,
    parquet_sink,
    questdb_sink,
    sent_trades,
)
from tests.integration.test_parquet_sink import read_pyarrow
from xtrader.config import Pipeline
from xtrader.connector import DEFER_SOME_FACTOR
from xtrader.simulator import Simulator

TABLES = ("trades", "bbo")


async def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not reached in {timeout_s} s: {what}"
        await asyncio.sleep(0.02)


@dataclass
class Rig:
    sim: Simulator
    connector: ConnectorActor
    parquet: SinkActor
    questdb: SinkActor
    receiver: IlpReceiver
    root: Path

    def window(self, sink: str) -> dict[str, int]:
        index = 0 if sink == "parquet" else 1
        return self.connector.outputs.sink_windows[index].stats()

    def emitted_rows(self) -> int:
        """Rows the connector handed downstream (every table, events included)."""
        stats = self.connector.connector.stats()
        return int(stats["rows"] or 0) + int(stats["events"] or 0)

    def questdb_rows(self) -> int:
        return sum(len(self.receiver.table(t)) for t in ("trades", "bbo", "events"))

    def parquet_trade_ids(self) -> Counter[str]:
        self.parquet.flush()
        table = read_pyarrow(self.root, "trades")
        return Counter(table.column("trade_id").to_pylist())

    async def settle(self) -> None:
        """Freeze the market and wait until the connector got everything sent and every sink acked."""
        self.sim.pause()
        await self.sim.drain()
        await wait_until(
            lambda: sum(self.connector.symbol_rows.get("trades", {}).values()) >= sent_trades(self.sim, "binance"),
            what="connector caught up",
        )
        await self.connector.connector.stop()
        if self.connector.task is not None:
            await asyncio.wait_for(self.connector.task, 60)
        await self.connector.outputs.drain()


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[Rig, list[LocalHandle]]] = []
    receiver = IlpReceiver().start()

    async def make(pipeline: Pipeline, rate: int = 300) -> Rig:
        sim = Simulator(venues=["binance"], symbols=2, rate=rate, seed=3)
        await sim.start()
        root = tmp_path / "parquet"
        parquet = parquet_sink(root)
        questdb = questdb_sink(receiver.conf(), tmp_path / "spill")
        handles = [LocalHandle(parquet), LocalHandle(questdb)]
        connector = connector_actor(sim, "binance", TABLES, handles, pipeline)
        await connector.start()
        rig = Rig(sim, connector, parquet, questdb, receiver, root)
        made.append((rig, handles))
        return rig

    yield make
    for rig, handles in made:
        await rig.connector.connector.stop()
        if rig.connector.task is not None:
            await asyncio.wait_for(rig.connector.task, 60)
        for handle in handles:
            handle.shutdown()
        rig.parquet.close()
        rig.questdb.close()
        await rig.sim.stop()
    receiver.stop()


def pipeline(**changes: Any) -> Pipeline:
    return Pipeline(batch_rows=500, batch_ms=20, **changes)


async def stalled_share(rig: Rig, sink: SinkActor, delay_s: float, measure_s: float) -> tuple[float, int, int]:
    """Stall `sink` (each write waits `delay_s`) and measure, over `measure_s`, the share of the trades the
    simulator sent that reached the Parquet sink; (share, trades sent, trades stored)."""
    await wait_until(lambda: front_rows(rig.parquet, "trades") > 0, what="first trades in Parquet")
    sent0, stored0 = sent_trades(rig.sim, "binance"), front_rows(rig.parquet, "trades")
    sink.stall(delay_s, measure_s + 1.0)
    await asyncio.sleep(measure_s)
    sent, stored = sent_trades(rig.sim, "binance") - sent0, front_rows(rig.parquet, "trades") - stored0
    return stored / max(sent, 1), sent, stored


async def test_a_slow_questdb_does_not_throttle_parquet(rig_factory: Callable[..., Any]) -> None:
    """Defect 11: with `block`, Parquet keeps up with the exchange while QuestDB takes 0.5 s per write."""
    rig: Rig = await rig_factory(pipeline(policy="block"))
    share, sent, stored = await stalled_share(rig, rig.questdb, delay_s=0.5, measure_s=2.0)
    print(f"\nParquet during a QuestDB stall: {stored} of {sent} trades sent ({share:.0%})")
    assert sent > 100
    assert share > 0.8, f"Parquet got {stored} of {sent} trades while QuestDB stalled"
    # and once QuestDB is fast again, both hold every trade exactly once
    await rig.settle()
    total = sent_trades(rig.sim, "binance")
    ids = rig.parquet_trade_ids()
    assert len(ids) == total and set(ids.values()) == {1}
    await wait_until(lambda: len(rig.receiver.table("trades")) >= total, what="QuestDB caught up")
    quest = Counter(row.fields["trade_id"] for row in rig.receiver.table("trades"))
    assert len(quest) == total and set(quest.values()) == {1}


async def test_block_slow_sink_slows_the_producer_bounded_lossless_with_latency_reported(
    rig_factory: Callable[..., Any],
) -> None:
    """block: a stalled Parquet sink fills its window, then the producer waits (stops reading); nothing lost."""
    bound = 8
    rig: Rig = await rig_factory(pipeline(policy="block", max_inflight=4, sink_max_inflight=bound))
    delay_s = 0.3
    # 4 s: while behind, the producer makes a call per batch_rows (or DEFER_SOME_FACTOR x batch_ms), so the window
    # fills more slowly
    share, _, _ = await stalled_share(rig, rig.parquet, delay_s=delay_s, measure_s=4.0)
    assert share < 0.5, "the stalled sink took everything: no stall happened"
    window = rig.window("parquet")
    connector = rig.connector.connector.stats()
    # the producer slowed down: the sink's window filled and the producer waited for it; memory stayed within the
    # bounds (its own gate holds few batches: they grow while the sink is behind, `Connector` `behind`)
    assert window["high_water"] == bound and window["waits"] > 0
    assert connector["flow_high_water"] <= 4
    assert window["dropped_rows"] == 0 and connector["flow_dropped_rows"] == 0
    await rig.settle()
    total = sent_trades(rig.sim, "binance")
    ids = rig.parquet_trade_ids()
    assert len(ids) == total and set(ids.values()) == {1}, "a trade was lost or duplicated"
    # the end-to-end latency during the stall is reported: rows waited at least one stalled write
    stats = rig.parquet.stats()
    assert stats["stalled_writes"] > 0
    assert stats["stall_latency_ms"]["p50"] >= delay_s * 1000
    assert stats["latency_ms"]["p999"] >= delay_s * 1000
    print(f"\nblock, Parquet stalled {delay_s} s/write: latency during the stall {stats['stall_latency_ms']}")


async def test_lossy_slow_sink_drops_only_its_own_rows_and_counts_them_exactly(
    rig_factory: Callable[..., Any],
) -> None:
    """lossy: the stalled QuestDB drops (counted) within its bound; Parquet stays fresh and complete."""
    bound = 4
    rig: Rig = await rig_factory(pipeline(policy="lossy", max_inflight=4, sink_max_inflight=bound))
    share, sent, stored = await stalled_share(rig, rig.questdb, delay_s=0.3, measure_s=2.0)
    assert share > 0.8, f"Parquet got {stored} of {sent} trades while QuestDB stalled: not fresh"
    await rig.settle()
    emitted = rig.emitted_rows()
    quest, parquet = rig.window("questdb"), rig.window("parquet")
    connector = rig.connector.connector.stats()
    assert quest["high_water"] <= bound and parquet["high_water"] <= bound
    assert quest["dropped_rows"] > 0 and parquet["dropped_rows"] == 0
    # exact accounting per sink: every row the connector emitted is written once or counted dropped
    dropped = connector["flow_dropped_rows"]
    assert dropped == 0, "the connector's own window dropped: a slow sink made every sink lose rows"
    parquet_rows = sum(front_rows(rig.parquet, t) for t in ("trades", "bbo", "events"))
    assert parquet_rows == emitted
    await wait_until(lambda: rig.questdb_rows() + quest["dropped_rows"] >= emitted, what="QuestDB acks")
    assert rig.questdb_rows() + quest["dropped_rows"] == emitted
    # and Parquet holds every trade the simulator sent, once
    ids = rig.parquet_trade_ids()
    assert len(ids) == sent_trades(rig.sim, "binance") and set(ids.values()) == {1}


async def test_a_stalled_sink_gets_fewer_bigger_batches_while_the_reading_goes_on(
    rig_factory: Callable[..., Any],
) -> None:
    """A ConnectorActor whose sink holds its calls (`Outputs.behind`) lets its batches grow, up to
    DEFER_SOME_FACTOR x batch_ms (its other downstreams keep up), instead of adding a call every batch_ms to
    the queue: under a sustained load the pipeline then spends its CPU on rows (the 10,000 msg/s soak fell
    behind for good when it did not). It reads on all the while, and nothing is lost or stored twice."""
    rig: Rig = await rig_factory(Pipeline(batch_rows=100_000, batch_ms=20, policy="block"))  # no flush by rows
    await wait_until(lambda: front_rows(rig.parquet, "trades") > 0, what="first trades in Parquet")
    before = rig.connector.connector.stats()
    rig.parquet.stall(0.3, 3.0)
    await asyncio.sleep(2.0)
    during = rig.connector.connector.stats()
    batches, messages = during["batches"] - before["batches"], during["messages"] - before["messages"]
    assert messages > 300, "the reading went on"
    assert batches <= 2.0 / (DEFER_SOME_FACTOR * 0.020) + 3, f"{batches} batches in 2 s while the sink was behind"
    await rig.settle()
    ids = rig.parquet_trade_ids()
    assert len(ids) == sent_trades(rig.sim, "binance") and set(ids.values()) == {1}, "a trade lost or stored twice"
