"""A slow sink behind a real ConnectorActor (issue 10, defect 11): how much of the exchange's flow does each
sink get while the other stalls?

The simulator feeds one connector (binance, trades + bbo); its batches go to a Parquet sink (real files) and a
QuestDB sink (the ILP receiver of the tests), both SinkActors run in-process behind Ray-like handles
(tests/integration/local_actors.py). For `--stall-s` seconds every write of the `--slow` sink waits
`--delay-s`. Printed: trades the simulator sent during the stall, and the share each sink stored meanwhile,
the connector's and the slow sink's windows, and the slow sink's code latency during the stall.

    PYTHONPATH=. python benchmarks/slow_sink.py --slow questdb --delay-s 0.5 --stall-s 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from tests.integration.ilp_receiver import IlpReceiver
from tests.integration.local_actors import (
    LocalHandle,
    connector_actor,
    front_rows,
    parquet_sink,
    questdb_sink,
    sent_trades,
)
from xtrader.config import Pipeline
from xtrader.simulator import Simulator


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    receiver = IlpReceiver().start()
    sim = Simulator(venues=["binance"], symbols=2, rate=args.rate, seed=3)
    await sim.start()
    parquet = parquet_sink(tmp / "parquet")
    questdb = questdb_sink(receiver.conf(), tmp / "spill")
    handles = [LocalHandle(parquet), LocalHandle(questdb)]
    pipeline = Pipeline(
        batch_rows=500,
        batch_ms=20,
        policy=args.policy,
        max_inflight=args.max_inflight,
        sink_max_inflight=args.sink_max_inflight,
    )
    connector = connector_actor(sim, "binance", ("trades", "bbo"), handles, pipeline)
    await connector.start()
    try:
        await asyncio.sleep(args.warmup_s)
        slow = questdb if args.slow == "questdb" else parquet
        sent0 = sent_trades(sim, "binance")
        stored0 = {"parquet": front_rows(parquet, "trades"), "questdb": front_rows(questdb, "trades")}
        slow.stall(args.delay_s, args.stall_s)
        await asyncio.sleep(args.stall_s)
        sent = sent_trades(sim, "binance") - sent0
        stored = {
            "parquet": front_rows(parquet, "trades") - stored0["parquet"],
            "questdb": front_rows(questdb, "trades") - stored0["questdb"],
        }
        index = 0 if args.slow == "parquet" else 1
        stats = connector.stats()
        return {
            "slow": args.slow,
            "delay_s": args.delay_s,
            "stall_s": args.stall_s,
            "policy": args.policy,
            "sink_max_inflight": args.sink_max_inflight,
            "trades_sent_during_stall": sent,
            "stored_during_stall": stored,
            "share": {sink: round(rows / max(sent, 1), 3) for sink, rows in stored.items()},
            "slow_window": stats["sink_windows"][index],
            "connector_flow_waits": stats["flow_waits"],
            "slow_sink_stall_latency_ms": slow.stats()["stall_latency_ms"],
        }
    finally:
        await connector.connector.stop()
        if connector.task is not None:
            await asyncio.wait_for(connector.task, 60)
        for handle in handles:
            handle.shutdown()
        parquet.close()
        questdb.close()
        await sim.stop()
        receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", choices=["questdb", "parquet"], default="questdb")
    parser.add_argument("--delay-s", type=float, default=0.5, help="each write of the slow sink waits this long")
    parser.add_argument("--stall-s", type=float, default=3.0, help="how long the sink is slow (and measured)")
    parser.add_argument("--rate", type=int, default=300, help="simulator messages per second")
    parser.add_argument("--policy", choices=["block", "lossy"], default="block")
    parser.add_argument("--max-inflight", type=int, default=4)
    parser.add_argument("--sink-max-inflight", type=int, default=256)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(run(args, Path(tmp))), indent=2))


if __name__ == "__main__":
    main()
