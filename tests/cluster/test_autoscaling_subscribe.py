"""The fleet grows and shrinks with run-time subscriptions (issue 9): subscribe -> the Ray autoscaler adds
nodes; unsubscribe -> the nodes go idle and the autoscaler removes them, while the capture keeps running.

The cluster is a `FakeAutoscalingCluster` (tests/cluster/private_ray.py): a head of our own with 1 CPU
and a `capture` worker type (2 CPUs, at most 2 nodes) whose nodes are real raylets on this machine.
The driver (`python -m tests.cluster.test_autoscaling_subscribe`) joins only that head and runs the real
capture (`jobs.run.run`) of binance alone (its one connector fills the head) in a thread, while its
main thread steers it through `xtrader.control.attach()`:

1. okx, deribit and binance_futures (two connections) are subscribed: 4 connectors of 1 CPU, which only
   new nodes can hold. Each call returns at once; `streams()` shows them `waiting for 1 CPU`.
2. The autoscaler adds nodes; the new groups are placed there and every new stream goes live.
3. Everything added is unsubscribed: the connectors stop, their placement groups are REMOVED, the
   nodes go idle and are removed, while binance keeps capturing on the head.
4. The capture is stopped: the summary covers every stream that ran (written == sent + rest).

The driver prints one JSON line; the test checks it.
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

from tests.cluster.conftest import assert_written, wait_for

NAMESPACE = "xtrader-autoscaling-subscribe-test"
CAPTURE = "grow"
HEAD_CPUS = 1
WORKER_CPUS = 2
MAX_WORKERS = 2
TABLES = ["trades", "l2", "bbo"]
#: what is subscribed at run time: 4 connectors of 1 CPU (binance_futures has a book and a market connection)
ADDED = {
    "okx": ["BTC-USDT", "ETH-USDT"],
    "deribit": ["BTC-PERPETUAL", "ETH-PERPETUAL"],
    "binance_futures": ["BTCUSDT", "ETHUSDT"],
}
#: the whole test (cluster start, growth, shrink, drain) on a busy 2-core machine
TEST_TIMEOUT_S = 300.0
RESULT = "autoscaling-subscribe-result: "
REPO = Path(__file__).resolve().parents[2]


def test_subscribe_grows_the_fleet_and_unsubscribe_shrinks_it(tmp_path: Path) -> None:
    from tests.cluster.private_ray import FakeAutoscalingCluster

    started = time.monotonic()
    cluster = FakeAutoscalingCluster(
        {"CPU": HEAD_CPUS},
        {
            "capture": {
                "resources": {"CPU": WORKER_CPUS},
                "node_config": {},
                "min_workers": 0,
                "max_workers": MAX_WORKERS,
            }
        },
        idle_timeout_minutes=0.1,
    )
    try:
        cluster.start()
    except (RuntimeError, TimeoutError, OSError) as exc:
        # the cluster is the test's own: not starting is a failure of this test, never a reason to skip it
        pytest.fail(f"the test's private fake autoscaling cluster did not start: {exc}")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.cluster.test_autoscaling_subscribe", str(tmp_path / "data")],
            cwd=REPO,
            env=cluster.env(),
            capture_output=True,
            text=True,
            timeout=TEST_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out, err = (x.decode(errors="replace") if isinstance(x, bytes) else x or "" for x in (exc.stdout, exc.stderr))
        pytest.fail(f"the driver ran over {TEST_TIMEOUT_S:g} s: {out[-3000:]} {err[-6000:]}")
    finally:
        cluster.shutdown()
        left = cluster.head.processes() if cluster.head is not None else []
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert not left, f"processes of the fake cluster still running: {left}"
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    assert len(lines) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    r = json.loads(lines[0].removeprefix(RESULT))
    print({k: v for k, v in r.items() if k not in ("live", "stopped", "summary")})

    # binance alone fills the head: the capture starts on one node
    assert r["nodes_before"] == 1, r
    # every subscribe returned with its streams still waiting for the CPUs no node had
    for venue, call in r["subscribed"].items():
        assert call["connectors"], (venue, call)
        assert set(call["states"]) == {"waiting for 1 CPU"}, (venue, call)
        # one row per (table, symbol) for each of its connections while none is placed
        assert len(call["states"]) == len(TABLES) * len(ADDED[venue]) * len(call["connectors"]), (venue, call)
    added = [c for call in r["subscribed"].values() for c in call["connectors"]]
    assert len(added) == 4, added
    # the autoscaler added the nodes (3 CPUs missing: 2 nodes of 2 CPUs) and the new groups went there
    assert r["nodes_max"] == 1 + MAX_WORKERS, r
    assert set(r["bundle_nodes"]) == {r["groups"][c] for c in added}, r
    assert all(node is not None and node != r["head_node"] for node in r["bundle_nodes"].values()), r
    # every new stream went live there, with rows
    live = r["live"]
    assert {row["venue"] for row in live} == {"binance", *ADDED}, live
    for row in live:
        assert row["state"] == "live" and row["rows"] > 0, row
    # unsubscribe stopped every added connector and removed its placement group
    for venue, changed in r["unsubscribed"].items():
        assert sorted(changed) == sorted(r["subscribed"][venue]["connectors"]), (venue, changed)
    assert {r["groups"][c] for c in added} <= {g for g, state in r["group_states"].items() if state == "REMOVED"}, r
    assert set(r["actors_after_unsubscribe"]).isdisjoint(added), r
    assert {row["state"] for row in r["stopped"]} == {"stopped"}, r["stopped"]
    assert {row["venue"] for row in r["stopped"]} == set(ADDED), r["stopped"]
    # ... so the added nodes went idle and were removed while the capture ran on
    assert r["nodes_after_unsubscribe"] == 1, r
    assert r["binance_rows_after_shrink"] > r["binance_rows_at_shrink"], r
    # the summary covers every stream that ran, those added at run time too
    summary = r["summary"]
    for table in TABLES:
        assert set(summary["tables"][table]) == {"binance", *ADDED}, summary["tables"][table]
    assert_written(summary)
    print(
        f"autoscaling on subscribe: 1 -> {r['nodes_max']} nodes {r['grown_after_s']:.1f} s after subscribing, "
        f"every stream live {r['live_after_s']:.1f} s after; back to 1 node {r['shrunk_after_s']:.1f} s after "
        f"unsubscribing; whole test {elapsed:.1f} s"
    )


# -- the driver (a subprocess joined to the fake cluster only) --------------------------------------------------


def what_holds_nodes(head: str) -> dict[str, Any]:
    """Per alive node other than the head: its resources in use, its live actors and placement groups."""
    import ray
    from ray.util.state import list_actors

    nodes = [n for n in ray.nodes() if n["Alive"] and n["NodeID"] != head]  # type: ignore[no-untyped-call]
    actors = list_actors(filters=[("state", "=", "ALIVE")], detail=True)
    groups = ray.util.placement_group_table().values()
    return {
        n["NodeID"]: {
            "resources": n["Resources"],
            "available": ray.available_resources(),
            "actors": [(a.class_name, a.name, a.pid) for a in actors if a.node_id == n["NodeID"]],
            "groups": [
                (g.get("name"), g.get("state"))
                for g in groups
                if n["NodeID"] in (g.get("bundles_to_node_id") or {}).values()
            ],
        }
        for n in nodes
    }


def drive(out: str) -> dict[str, Any]:
    import ray

    from jobs.run import run
    from xtrader.config import Capture, Cluster, Metrics, ParquetSink, Pipeline, Simulator, Sinks, Stream
    from xtrader.control import attach

    ray.init(address=os.environ["RAY_ADDRESS"], namespace=NAMESPACE, log_to_driver=False)

    def alive() -> int:
        return sum(1 for node in ray.nodes() if node["Alive"])  # type: ignore[no-untyped-call]

    def group_table() -> dict[str, dict[str, Any]]:
        return {g["name"]: g for g in ray.util.placement_group_table().values() if g.get("name")}

    head = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" in n["Resources"])  # type: ignore[no-untyped-call]
    capture = Capture(
        name=CAPTURE,
        streams=(Stream(venue="binance", symbols=("BTCUSDT", "ETHUSDT"), tables=tuple(TABLES)),),
        pipeline=Pipeline(connector_cpus=1.0),
        sinks=Sinks(parquet=ParquetSink(root=out)),
        cluster=Cluster(address=os.environ["RAY_ADDRESS"], namespace=NAMESPACE, placement_timeout_s=60.0),
        metrics=Metrics(port=0, live_table=False),
        simulator=Simulator(symbols=2, rate=50.0, seed=3),
    )
    stop = threading.Event()
    summary: dict[str, Any] = {}
    failure: list[BaseException] = []

    def capture_thread() -> None:
        try:
            summary.update(run(capture, TEST_TIMEOUT_S - 60, stop_event=stop))
        except BaseException as exc:  # reported below, not lost in the thread
            failure.append(exc)

    driver = threading.Thread(target=capture_thread)
    driver.start()
    r: dict[str, Any] = {"head_node": head}
    try:

        def attached() -> Any:
            try:
                control = attach(namespace=NAMESPACE, timeout_s=120)
                return control if "binance/c0/r0" in control.actors() else None
            except LookupError:
                return None

        control = wait_for("the capture's controller", attached, timeout_s=120)

        def states(venues: set[str]) -> list[dict[str, Any]]:
            return [row for row in control.streams().to_pylist() if row["venue"] in venues]

        wait_for("binance live", lambda: {row["state"] for row in states({"binance"})} == {"live"}, timeout_s=120)
        r["nodes_before"] = alive()

        # 1. subscribe: returns at once, the new streams wait for CPUs
        subscribed_at = time.monotonic()
        r["subscribed"] = {}
        for venue, symbols in ADDED.items():
            t0 = time.monotonic()
            connectors = control.subscribe(venue, TABLES, symbols)
            took = time.monotonic() - t0
            rows = states({venue})
            print(f"subscribe {venue}: {took:.1f} s, {rows and rows[0]['state']}", file=sys.stderr, flush=True)
            r["subscribed"][venue] = {
                "connectors": connectors,
                "call_s": took,
                "states": [row["state"] for row in rows],
                "nodes": alive(),
            }
        added = [c for call in r["subscribed"].values() for c in call["connectors"]]
        # a connector's placement group is "<capture>:<stream>/c<n>" (one per connection and its copies)
        r["groups"] = {c: f"{CAPTURE}:{c.rsplit('/', 1)[0]}" for c in added}

        # 2. the autoscaler adds nodes; every new stream goes live there
        nodes_seen = [alive()]
        every = {"binance", *ADDED}

        def all_live() -> list[dict[str, Any]] | None:
            nodes_seen.append(alive())
            rows = states(every)
            ok = (
                {row["venue"] for row in rows} == every
                and all(row["state"] == "live" and (row["rows"] or 0) > 0 for row in rows)
                and len(rows) == len(TABLES) * 2 * len(every)
            )
            return rows if ok else None

        r["live"] = wait_for("every stream live on the new nodes", all_live, timeout_s=180)
        r["live_after_s"] = time.monotonic() - subscribed_at
        r["grown_after_s"] = r["live_after_s"]
        r["nodes_max"] = max(nodes_seen)
        names = {r["groups"][c] for c in added}
        table = group_table()
        r["bundle_nodes"] = {
            name: (table[name].get("bundles_to_node_id") or {}).get(0) if name in table else None for name in names
        }

        # 3. unsubscribe everything added: connectors stop, groups go, nodes go idle and are removed
        unsubscribed_at = time.monotonic()
        r["unsubscribed"] = {venue: control.unsubscribe(venue, TABLES, symbols) for venue, symbols in ADDED.items()}
        r["group_states"] = {name: g["state"] for name, g in group_table().items()}
        r["actors_after_unsubscribe"] = control.actors()
        r["stopped"] = states(set(ADDED))
        binance_rows = lambda: sum(row["rows"] or 0 for row in states({"binance"}))  # noqa: E731
        try:
            wait_for("the added nodes removed", lambda: alive() == 1, timeout_s=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still there: {what_holds_nodes(head)}") from None
        r["shrunk_after_s"] = time.monotonic() - unsubscribed_at
        r["nodes_after_unsubscribe"] = alive()
        r["binance_rows_at_shrink"] = at_shrink = binance_rows()
        wait_for("binance still capturing", lambda: binance_rows() > at_shrink, timeout_s=60)
        r["binance_rows_after_shrink"] = binance_rows()

        # 4. stop: the summary covers every stream that ran
        control.stop()
    finally:
        stop.set()  # after control.stop() this changes nothing; after a failure it ends the capture
        driver.join(120)
    if failure:
        raise failure[0]
    r["summary"] = {"tables": summary["tables"]}
    return r


if __name__ == "__main__":
    print(RESULT + json.dumps(drive(sys.argv[1]), default=str), flush=True)
