"""A capture that needs more connector CPUs than the cluster has: the Ray autoscaler adds nodes, then removes them.

The cluster is a `FakeAutoscalingCluster` (tests/cluster/private_ray.py): a head of our own (1 CPU, its
own temp dir and ports) whose autoscaler launches real raylets on this machine as 2-CPU worker nodes.
Nothing is shared with the test session's Ray: the capture's driver runs in a subprocess that joins
only this head (RAY_ADDRESS), in its own namespace.

The driver (`python -m tests.cluster.test_autoscaling`) runs the real capture (`jobs.run.run`:
simulator, plan, placement groups, ConnectorActors, books, sinks) with `cluster.address` set, while a
thread samples the alive nodes and where each placement group's bundles went. It prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import MIN_ROWS, UNTIL_TIMEOUT_S, assert_written

NAMESPACE = "xtrader-autoscaling-test"
CAPTURE = "autoscale"
HEAD_CPUS = 1
WORKER_CPUS = 2
RESULT = "autoscaling-result: "
REPO = Path(__file__).resolve().parents[2]


def test_placement_groups_grow_the_cluster_and_idle_nodes_go(tmp_path: Path) -> None:
    from tests.cluster.private_ray import FakeAutoscalingCluster

    started = time.monotonic()
    cluster = FakeAutoscalingCluster(
        {"CPU": HEAD_CPUS},
        {
            "connector.node": {
                "resources": {"CPU": WORKER_CPUS},
                "node_config": {},
                "min_workers": 0,
                "max_workers": 3,
            }
        },
    )
    try:
        cluster.start()
    except (RuntimeError, TimeoutError, OSError) as exc:
        # the cluster is the test's own: not starting is a failure of this test, never a reason to skip it
        pytest.fail(f"the test's private fake autoscaling cluster did not start: {exc}")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.cluster.test_autoscaling", str(tmp_path / "data")],
            cwd=REPO,
            env=cluster.env(),
            capture_output=True,
            text=True,
            timeout=UNTIL_TIMEOUT_S + 120,
            check=False,
        )
    finally:
        cluster.shutdown()
        left = cluster.head.processes() if cluster.head is not None else []
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert not left, f"processes of the fake cluster still running: {left}"
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    assert len(lines) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[0].removeprefix(RESULT))

    # the plan needs more connector CPUs than the head has
    assert result["connector_cpus"] > HEAD_CPUS
    assert result["nodes_before"] == 1
    # the autoscaler added the nodes the placement groups waited for ...
    assert result["nodes_max"] >= 1 + (result["connector_cpus"] - HEAD_CPUS) / WORKER_CPUS
    # ... every group was placed, and connectors run on the new nodes
    bundles = result["bundle_nodes"]
    assert len(bundles) == result["connectors"]
    assert all(node is not None for node in bundles.values()), bundles
    on_new_nodes = [group for group, node in bundles.items() if node != result["head_node"]]
    assert len(on_new_nodes) >= result["connectors"] - HEAD_CPUS, bundles
    # the connectors there captured everything the simulator sent
    assert result["until"]["met"], result["until"]
    assert_written({"tables": result["tables"]})
    # once the capture stopped, the idle nodes were removed
    assert result["nodes_after"] == 1, result
    print(
        f"autoscaling: {result['nodes_before']} -> {result['nodes_max']} -> {result['nodes_after']} nodes; "
        f"groups ready {result['placed_after_s']:.1f} s after the capture started, idle nodes gone "
        f"{result['idle_removed_after_s']:.1f} s after it stopped; whole test {elapsed:.1f} s"
    )
    assert elapsed < UNTIL_TIMEOUT_S


# -- the driver (a subprocess joined to the fake cluster only) --------------------------------------------------


def drive(out: str) -> dict[str, Any]:
    import ray

    from jobs.run import run
    from xtrader.config import Capture, Cluster, Metrics, ParquetSink, Pipeline, Simulator, Sinks, Stream
    from xtrader.driver.until import StopWhen
    from xtrader.plan import Endpoint, build_plan

    ray.init(address=os.environ["RAY_ADDRESS"], namespace=NAMESPACE, log_to_driver=False)

    def alive() -> list[dict[str, Any]]:
        return [node for node in ray.nodes() if node["Alive"]]  # type: ignore[no-untyped-call]

    head = next(n["NodeID"] for n in alive() if "node:__internal_head__" in n["Resources"])
    # binance_futures: two connections (book and market paths), okx and deribit one each: 4 x 1 CPU
    streams = tuple(
        Stream(venue=venue, symbols=tuple(symbols), tables=("trades", "l2", "bbo"))
        for venue, symbols in {
            "binance_futures": ["BTCUSDT", "ETHUSDT"],
            "okx": ["BTC-USDT", "ETH-USDT"],
            "deribit": ["BTC-PERPETUAL", "ETH-PERPETUAL"],
        }.items()
    )
    capture = Capture(
        name=CAPTURE,
        streams=streams,
        pipeline=Pipeline(connector_cpus=1.0),
        sinks=Sinks(parquet=ParquetSink(root=out)),
        cluster=Cluster(address=os.environ["RAY_ADDRESS"], namespace=NAMESPACE, placement_timeout_s=60.0),
        metrics=Metrics(port=0, live_table=False),
        simulator=Simulator(symbols=2, rate=50.0, seed=3),
    )
    fake = {s.venue: Endpoint("ws://127.0.0.1:1", "http://127.0.0.1:1") for s in streams}
    plan = build_plan(capture, fake)

    samples: list[tuple[float, int]] = []
    bundle_nodes: dict[str, str | None] = {}
    placed_at: list[float] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic() - t0, len(alive())))
            for group in ray.util.placement_group_table().values():
                name = group.get("name", "")
                if name.startswith(f"{CAPTURE}:") and group.get("state") == "CREATED":
                    for index, node in group.get("bundles_to_node_id", {}).items():
                        bundle_nodes.setdefault(f"{name}#{index}", node)
            if not placed_at and len(bundle_nodes) == len(plan.connectors):
                placed_at.append(time.monotonic() - t0)
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # until every table of every venue has rows and every book is valid: the connectors on the new nodes work
    summary = run(capture, UNTIL_TIMEOUT_S, until=StopWhen(min_rows=MIN_ROWS, books_valid=True))
    stopped = time.monotonic()
    deadline = stopped + 60
    while len(alive()) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    idle_removed = time.monotonic() - stopped
    stop.set()
    sampler.join()
    return {
        "connectors": len(plan.connectors),
        "connector_cpus": plan.connector_cpus,
        "head_node": head,
        "nodes_before": samples[0][1],
        "nodes_max": max(n for _, n in samples),
        "nodes_after": len(alive()),
        "placed_after_s": placed_at[0] if placed_at else None,
        "idle_removed_after_s": idle_removed,
        "bundle_nodes": bundle_nodes,
        "tables": summary["tables"],
        "until": summary["until"],
    }


if __name__ == "__main__":
    print(RESULT + json.dumps(drive(sys.argv[1])), flush=True)
